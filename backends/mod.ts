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
 * const backend = openBackend({ backend: "local", path: dir });
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

/** Where a repository is stored (lib/config.ts's `RepositoryConfig` is one). */
export interface BackendConfig {
  /** The kind of storage: `local` (a directory); `s3` and `rest` are not built yet. */
  readonly backend: string;
  /** The directory, or the bucket path or URL of remote storage. */
  readonly path: string;
}

/** Options of {@linkcode openBackend}. */
export interface OpenBackendOptions {
  /**
   * Registers a hook run when the process exits on a signal and returns its unregistering
   * function (cli.ts passes lib/exit_hooks.ts's `atExit`): a local backend removes the temp
   * files of writes in flight with it.
   */
  atExit?: (hook: () => void) => () => void;
}

/**
 * The backend of a configured repository. Throws UsageError for a kind not built yet and for
 * an unknown kind. Nothing is touched until the backend's first call.
 */
export function openBackend(config: BackendConfig, options: OpenBackendOptions = {}): Backend {
  switch (config.backend) {
    case "local":
      return new LocalBackend(config.path, { atExit: options.atExit });
    case "s3":
    case "rest":
      throw new UsageError(
        `The ${config.backend} backend is not available yet (repository "${config.path}")`,
      );
    default:
      throw new UsageError(
        `Unknown backend ${
          JSON.stringify(config.backend)
        } (repository "${config.path}"): the kinds are local, s3 and rest`,
      );
  }
}
