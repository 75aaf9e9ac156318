/**
 * Which repository a configuration entry names: the one spelling that the configuration's
 * duplicate check compares and that the client's memory of repositories keys by.
 *
 * @module
 */

/** Where a repository entry points (lib/config.ts's `RepositoryConfig` has these fields). */
export interface RepositoryLocation {
  /** `local`, `s3` or `rest`. */
  backend: string;
  /** The entry's path as written. */
  path: string;
  /** For S3: bucket, normalised prefix and endpoint. */
  s3?: { bucket: string; prefix: string; endpoint?: string };
}

/**
 * What makes two repository entries the same repository: for S3 the endpoint (none = AWS), the
 * bucket and the normalised prefix, however the path was written, spelled exactly as the S3
 * backend's `location` (`s3://BUCKET/PREFIX at ENDPOINT`), which keys lib/known_repos.ts's
 * records; else the backend and the path without trailing slashes. The duplicate check of
 * lib/config.ts's `parseConfig` compares these.
 *
 * @example
 * ```ts
 * import { parseConfig } from "./config.ts";
 * import { repositoryIdentity } from "./repository_identity.ts";
 * import { equal } from "node:assert/strict";
 *
 * const [a] = parseConfig(
 *   "repositories:\n  - {path: s3://b/vger/, backend: s3}\n",
 *   "a.yaml",
 * ).repositories;
 * const [b] = parseConfig(
 *   "repositories:\n  - {path: /vger, backend: s3, s3_bucket: b}\n",
 *   "b.yaml",
 * ).repositories;
 * equal(repositoryIdentity(a), repositoryIdentity(b));
 * ```
 */
export function repositoryIdentity(repo: RepositoryLocation): string {
  if (repo.backend === "s3" && repo.s3) {
    const { bucket, prefix, endpoint } = repo.s3;
    const url = `s3://${bucket}${prefix === "" ? "" : "/" + prefix}`;
    return endpoint === undefined ? url : `${url} at ${sameEndpoint(endpoint)}`;
  }
  const p = repo.path;
  return `${repo.backend} ${p.length > 1 ? p.replace(/\/+$/, "") : p}`;
}

/** An endpoint as backends/s3.ts names it in its location: no credentials, no trailing `/`. */
export function sameEndpoint(endpoint: string): string {
  try {
    const url = new URL(endpoint);
    url.username = "";
    url.password = "";
    return url.href.replace(/\/+$/, "");
  } catch {
    return endpoint;
  }
}

/** Whether `v` is an http:// or https:// URL with a host (a `rest` repository's path). */
export function isHttpUrl(v: string): boolean {
  try {
    const u = new URL(v);
    return (u.protocol === "http:" || u.protocol === "https:") && u.host !== "";
  } catch {
    return false;
  }
}

/** A URL scheme at the start of a repository path (`s3://`, `https://`...). */
export const SCHEME: RegExp = /^[a-z][a-z0-9+.-]*:\/\//i;
