/**
 * Before a command touches anything: the Deno permissions its own paths need (the local
 * repository, the sources, `--dest`, a key file), asked up front, so that a missing one is exit 2
 * naming the flag before anything is written, never a skipped file or a run that stops half way.
 * Deno is asked as it asks itself (a prompt on a terminal, unless `--no-prompt`).
 *
 * The cache directory is optional: without read and write on it vger runs with no files cache and
 * no memory of repositories, as without a HOME (README, "Permissions and least privilege").
 *
 * @module
 */

import { bool, type CommandLine, str } from "./cli_command_line.ts";
import type { RepositoryConfig } from "./config.ts";
import { filesCacheDir } from "./files_cache.ts";

/** The cache directory when this run may read and write it, else null (no cache). */
export function usableCacheDir(): string | null {
  const dir = filesCacheDir((name) => Deno.env.get(name));
  if (dir === null) return null;
  const granted = (name: "read" | "write") =>
    Deno.permissions.querySync({ name, path: dir }).state === "granted";
  return granted("read") && granted("write") ? dir : null;
}

/**
 * Throws Deno's NotCapable (cli.ts names the flag, exit 2) for the first path of `command` on
 * `repo` that this run may not read or write.
 */
export function preflight(
  command: string,
  line: Pick<CommandLine, "flags" | "args">,
  repo: RepositoryConfig,
): void {
  const { flags, args } = line;
  const need: ["read" | "write", string][] = [];
  if (repo.backend === "local") {
    need.push(["read", repo.path]);
    const readOnly = command === "list" || command === "extract" ||
      (command === "check" && !bool(flags, "repair"));
    if (!readOnly) need.push(["write", repo.path]);
    else if (command !== "list" && !bool(flags, "no-lock")) {
      need.push(["write", `${repo.path}/locks`]);
    }
  }
  if (command === "backup") {
    for (const s of args.length > 0 ? args : repo.sourceDirectories) need.push(["read", s]);
  }
  const dest = str(flags, "dest");
  if (dest !== undefined && (command === "extract" || command === "key")) {
    need.push(["write", dest]);
  }
  if (command === "key" && args[0] === "import" && args[1] !== undefined) {
    need.push(["read", args[1]]);
  }
  for (const [name, path] of need) {
    if (Deno.permissions.requestSync({ name, path }).state !== "granted") {
      throw new Deno.errors.NotCapable(`Requires ${name} access to "${path}"`);
    }
  }
}
