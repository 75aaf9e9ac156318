/**
 * Chooses a repository's backend class from its configuration: the one place that knows which
 * kinds of storage exist. Entry points call {@linkcode openBackend}; nothing else constructs a
 * concrete backend for a configured repository.
 *
 * @example
 * ```ts
 * import { openBackend } from "./mod.ts";
 *
 * const dir = await Deno.makeTempDir();
 * const backend = await openBackend({ backend: "local", path: dir });
 * await backend.put("config", new TextEncoder().encode("hello"));
 * await backend.close();
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @module
 */

import { UsageError } from "../lib/errors.ts";
import type { Backend } from "./backend.ts";
import { LocalBackend } from "./local.ts";
import type { S3Backend } from "./s3.ts";

/** Where a repository is stored (lib/config.ts's `RepositoryConfig` is one). */
export interface BackendConfig {
  /** The kind of storage: `local` (a directory), `s3` or `rest` (a vger-server). */
  readonly backend: string;
  /**
   * The directory; for `s3`, `s3://BUCKET[/PREFIX]` or a bare PREFIX in the bucket of
   * `s3.bucket`; for `rest`, the repository's URL (`https://host/<repo>`).
   */
  readonly path: string;
  /** Parallel requests (the `connections` key); unset: the backend's own default. */
  readonly connections?: number;
  /** The S3 settings (lib/config.ts's `S3Config`); for `s3`. */
  readonly s3?: {
    readonly bucket?: string;
    /** The normalised prefix lib/config.ts found in `path`; with it, `path` is not parsed again. */
    readonly prefix?: string;
    readonly region?: string;
    readonly endpoint?: string;
    readonly accessKeyId?: string;
    readonly secretAccessKey?: string;
  };
  /** The REST settings (lib/config.ts's `RestConfig`); for `rest`. */
  readonly rest?: {
    /** `rest_token`. */
    readonly token?: string;
    /** `rest_token_command`: run by {@linkcode OpenBackendOptions.restToken}'s resolver. */
    readonly tokenCommand?: string;
  };
}

/** Options of {@linkcode openBackend}. */
export interface OpenBackendOptions {
  /**
   * Registers a hook run when the process exits on a signal and returns its unregistering
   * function (cli.ts passes lib/exit_hooks.ts's `atExit`): a local backend removes the temp
   * files of writes in flight with it.
   */
  atExit?: (hook: () => void) => () => void;
  /**
   * Resolves a `rest` repository's bearer token (cli.ts passes lib/secrets.ts's `resolveToken`
   * of `rest_token` and `rest_token_command`), called on the backend's first request. Without
   * it, `rest_token` is used as it is, and `rest_token_command` is refused.
   */
  restToken?: () => Promise<string | undefined>;
}

/**
 * The backend of a configured repository. Rejects with UsageError for an unknown kind, for an S3
 * path that names no bucket or two, and for a REST URL that names no repository. Only the chosen
 * backend's modules are loaded (a local repository loads no HTTP client); nothing is touched (and
 * the S3 SDK is not loaded, no token is resolved) until the backend's first call.
 */
export async function openBackend(
  config: BackendConfig,
  options: OpenBackendOptions = {},
): Promise<Backend> {
  switch (config.backend) {
    case "local":
      return openLocalBackend(config.path, { ...options, connections: config.connections });
    case "s3": {
      const s3 = s3Options(config);
      const [{ S3Backend }, { RetryBackend }] = await Promise.all([
        import("./s3.ts"),
        import("./retry.ts"),
      ]);
      // the SDK's own retries are off (maxAttempts: 1): this decorator is the one retry policy
      return new RetryBackend(new S3Backend(s3));
    }
    case "rest": {
      const token = restToken(config, options);
      const [{ RestBackend }, { RetryBackend }] = await Promise.all([
        import("./rest.ts"),
        import("./retry.ts"),
      ]);
      // no client retries under this decorator: it is the one retry policy
      return new RetryBackend(
        new RestBackend({ url: config.path, token, connections: config.connections }),
      );
    }
    default:
      throw new UsageError(
        `Unknown backend ${
          JSON.stringify(config.backend)
        } (repository "${config.path}"): the kinds are local, s3 and rest`,
      );
  }
}

/**
 * The local backend of a directory, opened at once: what {@linkcode openBackend} opens for a
 * `local` repository, and vger-server's storage over its `data_dir` (`createServer` is
 * synchronous).
 */
export function openLocalBackend(
  path: string,
  options: Pick<OpenBackendOptions, "atExit"> & { connections?: number } = {},
): Backend {
  return new LocalBackend(path, { atExit: options.atExit, connections: options.connections });
}

/** Where a `rest` repository's token comes from. */
function restToken(
  config: BackendConfig,
  options: OpenBackendOptions,
): (() => Promise<string | undefined>) | undefined {
  if (options.restToken) return options.restToken;
  if (config.rest?.tokenCommand !== undefined) {
    throw new UsageError(
      `Repository "${config.path}" has rest_token_command, which needs openBackend's restToken option`,
    );
  }
  const token = config.rest?.token;
  return token === undefined ? undefined : () => Promise.resolve(token);
}

/** Bucket and prefix of an `s3` repository from its path and `s3_bucket`. */
function s3Options(config: BackendConfig): ConstructorParameters<typeof S3Backend>[0] {
  const { path, s3 = {} } = config;
  const rest = {
    region: s3.region,
    endpoint: s3.endpoint,
    accessKeyId: s3.accessKeyId,
    secretAccessKey: s3.secretAccessKey,
    connections: config.connections,
  };
  if (s3.bucket !== undefined && s3.prefix !== undefined) {
    return { bucket: s3.bucket, prefix: s3.prefix, ...rest };
  }
  let bucket = s3.bucket;
  let prefix = path;
  const url = /^s3:\/\/([^/]*)(?:\/(.*))?$/.exec(path);
  if (url) {
    if (url[1] === "") throw new UsageError(`Repository "${path}" names no bucket`);
    if (bucket !== undefined && bucket !== url[1]) {
      throw new UsageError(
        `Repository "${path}" names bucket "${url[1]}" but s3_bucket is "${bucket}"`,
      );
    }
    bucket = url[1];
    prefix = url[2] ?? "";
  } else if (/^[a-z][a-z0-9+.-]*:\/\//i.test(path)) {
    throw new UsageError(`Repository "${path}" is not an s3:// URL or a key prefix`);
  }
  if (bucket === undefined) {
    throw new UsageError(
      `Repository "${path}" names no bucket: use s3://BUCKET/PREFIX or s3_bucket`,
    );
  }
  prefix = prefix.replace(/^\/+|\/+$/g, "");
  if (prefix.split("/").some((s) => s === "." || s === ".." || (s === "" && prefix !== ""))) {
    throw new UsageError(`Repository "${path}" has an invalid key prefix "${prefix}"`);
  }
  return { bucket, prefix, ...rest };
}
