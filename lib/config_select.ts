/**
 * Which configured repositories a command runs on (`--repo LABEL|PATH`), and an ad-hoc
 * repository for a path no entry names. Apart from lib/config.ts, which parses the file (and
 * loads a YAML parser), so that a run without a configuration file loads no YAML parser.
 *
 * @module
 */

import { DEFAULT_COMPRESSION } from "./compress.ts";
import type { RepositoryConfig, VgerConfig } from "./config.ts";
import { UsageError } from "./errors.ts";
import { isHttpUrl, SCHEME } from "./repository_identity.ts";
import { closest } from "./suggest.ts";

/**
 * Picks the repositories a command runs on: all of them, in order, without a selector; else
 * those whose label or path is exactly `selector`, else those at the place it names however
 * spelled (`s3://b/p/` names `path: p` with `s3_bucket: b`; `/r/` names `/r`). An unmatched selector that looks like a label
 * (no "/" or ":") is a UsageError; an unmatched path is an ad-hoc repository that takes the
 * top-level defaults (a local directory, or a REST server for an http(s) URL).
 */
export function selectRepositories(
  config: VgerConfig | null,
  selector?: string,
): RepositoryConfig[] {
  if (selector === undefined || selector === "") {
    if (!config) {
      throw new UsageError(
        "No configuration file found and no repository given: use --repo PATH or create one " +
          "with vger config",
      );
    }
    return config.repositories;
  }
  if (config) {
    const byLabel = config.repositories.filter((r) => r.label === selector);
    if (byLabel.length > 0) return byLabel;
    const byPath = config.repositories.filter((r) => r.path === selector);
    if (byPath.length > 0) return byPath;
    const byLocation = config.repositories.filter((r) => sameLocation(r, selector));
    if (byLocation.length > 0) return byLocation;
    if (!/[/:\\]/.test(selector) && selector !== "." && selector !== "..") {
      const labels = config.repositories.flatMap((r) => (r.label ? [r.label] : []));
      const near = closest(selector, labels);
      const hint = near
        ? `did you mean "${near}"?`
        : labels.length > 0
        ? `labels: ${labels.join(", ")}`
        : "no repository has a label";
      throw new UsageError(
        `Unknown repository label "${selector}" in ${config.file} (${hint}); ` +
          `for a directory of that name use --repo ./${selector}`,
      );
    }
  }
  return [adHocRepository(selector, config)];
}

/**
 * Whether `selector` names entry `r` however either is spelled: an `s3://BUCKET[/PREFIX]` URL
 * the bucket and normalised prefix of an S3 entry (any endpoint, as a path never names one), a
 * local path the entry's path without trailing slashes.
 */
function sameLocation(r: RepositoryConfig, selector: string): boolean {
  const url = /^s3:\/\/([^/]+)(?:\/(.*))?$/i.exec(selector);
  if (url) {
    const prefix = (url[2] ?? "").replace(/^\/+|\/+$/g, "");
    return r.backend === "s3" && r.s3?.bucket === url[1] && r.s3.prefix === prefix;
  }
  const trim = (p: string) => p.replace(/(.)\/+$/, "$1");
  return r.backend === "local" && trim(r.path) === trim(selector);
}

function adHocRepository(path: string, config: VgerConfig | null): RepositoryConfig {
  const base: Omit<RepositoryConfig, "path" | "backend"> = {
    encryption: { mode: config?.encryption.mode ?? "aes256gcm" },
    // lib/config.ts's defaults for an entry without a compression block
    compression: {
      ...(config?.compression ??
        {
          algorithm: DEFAULT_COMPRESSION.algorithm,
          zstdLevel: DEFAULT_COMPRESSION.zstdLevel ?? 3,
        }),
    },
    retention: { ...config?.retention },
    sourceDirectories: [...(config?.sourceDirectories ?? [])],
  };
  if (config?.modeNamed) base.modeNamed = true;
  if (isHttpUrl(path)) return { path, backend: "rest", rest: {}, ...base };
  if (SCHEME.test(path)) {
    const where = config ? `an entry in ${config.file}` : "an entry in a configuration file";
    throw new UsageError(
      `Repository "${path}" needs ${where}: only local paths and http(s) URLs work without one`,
    );
  }
  return { path, backend: "local", ...base };
}
