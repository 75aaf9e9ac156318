/**
 * `vger` under least privilege: derives the exact Deno permissions of one invocation from the
 * configuration and the command's own arguments (lib/cli_launch.ts), then runs cli.ts with them
 * and nothing more; `--print-permissions` shows them instead.
 *
 * ```sh
 * deno run -P=launcher launch.ts [--mode strict|fast] [--print-permissions] VGER-ARGUMENTS...
 * deno run -P=launcher launch.ts --server [--print-permissions] --config FILE [COMMAND ARGS...]
 * deno task scoped backup          # the first, as a task
 * ```
 *
 * strict (the default) grants no FFI: vger takes its portable paths (Web Crypto, Deno's own file
 * calls); fast grants FFI for libc, OpenSSL and lz4-napi, so it is "scoped, not sandboxed"
 * (README, "Least privilege"). With `--server` it runs server.ts reading and writing only its
 * `data_dir` and listening only on its address. The launcher itself reads the configuration and
 * the environment and runs only Deno.
 *
 * @example Show what a backup would be granted
 * ```sh
 * deno run -P=launcher launch.ts --print-permissions --repo /srv/repo backup /home/alice
 * ```
 *
 * @module
 */

import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseCommandLine, str } from "./lib/cli_command_line.ts";
import {
  deviceAccessProblem,
  type LaunchMode,
  permissionFlags,
  type PermissionSet,
  permissionsFor,
  scopedRunProblem,
  serverPermissionsFor,
} from "./lib/cli_launch.ts";
import { parseServerConfig, serverEnvironment } from "./lib/server_config.ts";
import type { VgerConfig } from "./lib/config.ts";
import { selectRepositories } from "./lib/config_select.ts";
import { loadConfigFile } from "./lib/config_file.ts";
import { errorMessage } from "./lib/errors.ts";
import { filesCacheDir } from "./lib/files_cache.ts";
import { LIBARGON2, LIBC, LIBCRYPTO, LIBLZ4, libraryCandidates } from "./lib/native_library.ts";
import { stagingRoot } from "./lib/staging.ts";

/** The launcher's own options, taken out of the arguments before vger sees them. */
function launcherOptions(
  argv: string[],
): { mode: LaunchMode; print: boolean; server: boolean; rest: string[] } {
  let mode: LaunchMode = "strict";
  let print = false;
  let server = false;
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--print-permissions") print = true;
    else if (a === "--server" && rest.length === 0) server = true;
    else if (a === "--mode" || a.startsWith("--mode=")) {
      const value = a === "--mode" ? argv[++i] : a.slice("--mode=".length);
      if (value !== "strict" && value !== "fast") {
        throw new Error(`--mode takes strict or fast, not "${value ?? ""}"`);
      }
      mode = value;
    } else rest.push(a);
  }
  return { mode, print, server, rest };
}

/** vger's code as files (`lib/` and the npm packages, resolved), when it runs from files. */
function codeDirs(here: URL): string[] {
  if (here.protocol !== "file:") return [];
  const out = [fileURLToPath(new URL("lib", here))];
  const modules = fileURLToPath(new URL("node_modules", here));
  try {
    out.push(Deno.realPathSync(modules)); // Deno checks the path a file is read from
  } catch {
    out.push(modules);
  }
  return out;
}

/**
 * libc, OpenSSL, liblz4 and libargon2 by absolute path (a scoped grant names a file: lib/native_library.ts tries
 * the same paths), and the npm packages (lz4-napi's native module).
 */
function nativeLibraries(code: string[]): string[] {
  const out: string[] = [];
  for (const name of [LIBC, LIBCRYPTO, LIBLZ4, LIBARGON2]) {
    const found = libraryCandidates(name).slice(1).find((path) => {
      try {
        return Deno.statSync(path).isFile;
      } catch {
        return false;
      }
    });
    if (found) out.push(found);
  }
  return [...out, ...code.slice(1)];
}

/**
 * V8's young generation capped at 4 MiB per semi-space: vger's garbage otherwise grows it to its
 * maximum in the main thread and each codec worker (400k small files, first backup: peak RSS 607
 * -> 472 MiB in the same time; the shared corpus: -30 to -50 MiB on backup and restore, bench/README.md).
 * Only Deno's command line reaches the workers' isolates.
 */
const V8_FLAGS = "--v8-flags=--max-semi-space-size=4";

async function main(): Promise<number> {
  const { mode, print, server, rest } = launcherOptions(Deno.args);
  const here = new URL(".", import.meta.url);
  const code = codeDirs(here);
  const [set, entry] = server
    ? [await serverPermissions(rest), "server.ts"]
    : [await cliPermissions(rest, mode, code), "cli.ts"];
  const flags = permissionFlags(set);
  if (print) {
    console.log(flags.join(" "));
    return 0;
  }
  const problem = scopedRunProblem(set);
  if (problem !== null) throw new Error(problem);
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", V8_FLAGS, ...flags, new URL(entry, here).href, ...rest],
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
  // a signal to the launcher is one to vger: it cleans up and exits with the signal's code
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    Deno.addSignalListener(signal, () => {
      try {
        child.kill(signal);
      } catch {
        // already gone
      }
    });
  }
  return (await child.status).code;
}

/** The permissions of `vger ARGS` (see lib/cli_launch.ts). */
async function cliPermissions(
  args: string[],
  mode: LaunchMode,
  code: string[],
): Promise<PermissionSet> {
  const line = parseCommandLine(args);
  const env = (name: string) => Deno.env.get(name);
  let config: VgerConfig | null = null;
  let repos: ReturnType<typeof selectRepositories> = [];
  const command = line.command?.name;
  if (command !== undefined && command !== "config") {
    config = await loadConfigFile({ explicit: str(line.flags, "config"), env });
    repos = selectRepositories(config, str(line.flags, "repo"));
  }
  return permissionsFor({
    line,
    config,
    repos,
    env,
    cwd: Deno.cwd(),
    cacheDir: filesCacheDir(env),
    stagingRoot: stagingRoot(),
    codeDirs: code,
    mode,
    nativeLibraries: mode === "fast" ? nativeLibraries(code) : [],
  });
}

/** The permissions of `server.ts --config FILE [COMMAND ARGS]` (token commands not run). */
async function serverPermissions(args: string[]): Promise<PermissionSet> {
  if (args[0] !== "--config" || args[1] === undefined) {
    throw new Error("--server takes --config FILE [COMMAND ARGS...], as server.ts does");
  }
  const configFile = resolve(args[1]);
  const config = parseServerConfig(await Deno.readTextFile(configFile), {
    file: configFile,
    env: serverEnvironment(),
  });
  return serverPermissionsFor({ configFile, config });
}

if (import.meta.main) {
  try {
    Deno.exit(await main());
  } catch (err) {
    // the launcher's own read of a configuration under /dev
    const device = err instanceof Deno.errors.NotCapable
      ? /"(\/dev(?:\/[^"]*)?)"/.exec(err.message)?.[1]
      : undefined;
    const problem = device === undefined ? null : deviceAccessProblem(device);
    console.error(`vger launcher: ${problem ?? errorMessage(err)}`);
    Deno.exit(2);
  }
}
