/**
 * The `vger` command line: parses arguments, loads the configuration, opens the backend, calls
 * lib/commands.ts and turns results and errors into output and exit codes
 * (0 ok, 1 error, 2 usage or configuration error, 3 done with warnings, 130, 143 or 129 interrupted
 * by SIGINT, SIGTERM or SIGHUP).
 *
 * @example Run the command line from TypeScript, output captured
 * ```ts
 * import { main } from "./cli.ts";
 *
 * let out = "";
 * const code = await main(["--version"], {
 *   out: (text) => void (out += text),
 *   err: (text) => void (out += text),
 *   isTerminal: false,
 * });
 * console.log(code, out); // 0 vger 0.1.0
 * ```
 *
 * @module
 */

import denoJson from "./deno.json" with { type: "json" };
import type { Backend } from "./backends/backend.ts";
import type { RepositoryConfig, VgerConfig } from "./lib/config.ts";
import {
  missingPermission,
  missingPermissionMessage,
  UsageError,
  VgerError,
} from "./lib/errors.ts";
import {
  bool,
  type CommandLine,
  helpText,
  lockWaitSeconds,
  parseCommandLine,
  str,
} from "./lib/cli_command_line.ts";
import { progressEnabled, ProgressMeter } from "./lib/cli_progress.ts";
import { tuneAllocator } from "./lib/cli_allocator.ts";
import type { RepoLock } from "./lib/repo_lock.ts";
import { escapeControl } from "./lib/printable.ts";
import { atExit, runExitHooks } from "./lib/exit_hooks.ts";
import { removeDeadStaging } from "./lib/staging.ts";
import {
  type CliIo,
  defaultIo,
  type Flags,
  passphraseFor,
  restTokenFor,
  type Run,
  writeAll,
} from "./lib/cli_run.ts";

export type { CliIo };

/** The version printed by `vger --version`. */
export const VERSION: string = denoJson.version;

/** Options of {@linkcode main} and {@linkcode runCli}. */
export interface MainOptions {
  /**
   * Wraps each backend the CLI opens, before any command uses it: tests inject faults or count
   * requests this way (tests/kill_switch.ts). Default: the backend as opened.
   */
  wrapBackend?: (backend: Backend) => Backend;
}

/** Runs the CLI; returns the exit code. */
export async function main(
  argv: string[],
  io: CliIo = defaultIo,
  options: MainOptions = {},
): Promise<number> {
  let line: CommandLine;
  try {
    line = parseCommandLine(argv);
  } catch (err) {
    io.err(`vger: ${describeError(err)}\n`);
    return exitCodeOf(err);
  }
  const { command, flags, args } = line;
  if (bool(flags, "version")) {
    io.out(`vger ${VERSION}\n`);
    return 0;
  }
  if (bool(flags, "help") || !command) {
    io.out(helpText(VERSION, command));
    return bool(flags, "help") ? 0 : 2;
  }
  try {
    if (command.name === "config") {
      return await (await import("./lib/cli_init.ts")).runConfig(flags, io);
    }
    // the configuration's parser (and a YAML library) is loaded only when there is a file
    const [config, { selectRepositories }] = await Promise.all([
      loadConfig(flags, io),
      import("./lib/config_select.ts"),
    ]);
    const repos = selectRepositories(config, str(flags, "repo"));
    let worst = 0;
    for (const repo of repos) {
      let code: number;
      try {
        code = await runCommand(command.name, { argv, args, flags }, config, repo, io, options);
      } catch (err) {
        // the reader of our output went away (`vger list | head`): not an error of ours
        if (err instanceof Deno.errors.BrokenPipe) return 0;
        io.err(`vger: ${describeError(err, repo)}\n`);
        code = exitCodeOf(err);
      }
      if (code !== 0 && (worst === 0 || worst === 3)) worst = code;
    }
    return worst;
  } catch (err) {
    io.err(`vger: ${describeError(err)}\n`);
    return exitCodeOf(err);
  }
}

function exitCodeOf(err: unknown): number {
  if (missingPermission(err)) return 2; // the command line must change
  if (err instanceof VgerError) {
    if (err.code === "usage") return 2;
    if (err.code === "interrupted") return 130;
    return 1;
  }
  return 1;
}

/** One line for an error: names in it may hold control characters, shown escaped. */
function describeError(err: unknown, repo?: RepositoryConfig): string {
  return describeErrorRaw(err, repo).split("\n").map(escapeControl).join("\n");
}

function describeErrorRaw(err: unknown, repo?: RepositoryConfig): string {
  const missing = missingPermission(err);
  if (missing) return missingPermissionMessage(missing);
  if (err instanceof VgerError) {
    // with several repositories a message must say which one it is about
    return repo && err.code !== "usage" && !err.message.includes(repo.path)
      ? `${err.message} (repository "${repo.path}")`
      : err.message;
  }
  const where = repo ? ` (repository "${repo.path}")` : "";
  return `Unexpected error${where}: ${
    err instanceof Error ? err.stack ?? err.message : String(err)
  }`;
}

async function loadConfig(flags: Flags, io: CliIo): Promise<VgerConfig | null> {
  const { loadConfigFile } = await import("./lib/config_file.ts");
  const config = await loadConfigFile({ explicit: str(flags, "config") });
  if (config && bool(flags, "verbose")) io.err(`vger: using configuration ${config.file}\n`);
  return config;
}

type Handler = (run: Run) => Promise<number>;

/** Each command's glue, imported when the command runs: a command loads only its own modules. */
const COMMANDS: Record<string, () => Promise<Handler>> = {
  init: async () => (await import("./lib/cli_init.ts")).runInit,
  backup: async () => (await import("./lib/cli_backup.ts")).runBackup,
  list: async () => (await import("./lib/cli_list.ts")).runList,
  extract: async () => (await import("./lib/cli_backup.ts")).runExtract,
  prune: async () => (await import("./lib/cli_prune.ts")).runPrune,
  compact: async () => (await import("./lib/cli_compact.ts")).runCompact,
  check: async () => {
    const { runCheck, runRepair } = await import("./lib/cli_check.ts");
    return (run) => bool(run.flags, "repair") ? runRepair(run) : runCheck(run);
  },
  "break-lock": async () => (await import("./lib/cli_break_lock.ts")).runBreakLock,
  versions: async () => (await import("./lib/cli_versions.ts")).runVersions,
  rollback: async () => (await import("./lib/cli_versions.ts")).runRollback,
  key: async () => (await import("./lib/cli_key.ts")).runKey,
  delete: async () => (await import("./lib/cli_prune.ts")).runDelete,
};

async function runCommand(
  command: string,
  { argv, args, flags }: { argv: string[]; args: string[]; flags: Flags },
  config: VgerConfig | null,
  repo: RepositoryConfig,
  io: CliIo,
  options: MainOptions,
): Promise<number> {
  const show = progressEnabled({
    quiet: bool(flags, "quiet"),
    json: bool(flags, "json"),
    progress: bool(flags, "progress"),
    isTerminal: io.isTerminal,
  });
  const meter = show ? new ProgressMeter(io.err, { terminal: io.isTerminal }) : undefined;
  const load = Object.hasOwn(COMMANDS, command) ? COMMANDS[command] : undefined;
  try {
    if (!load) throw new UsageError(`Unknown command "${command}" (see vger --help)`);
    // the command's modules load while the backend's do
    const [handler, { openBackend }, { preflight, usableCacheDir }] = await Promise.all([
      load(),
      import("./backends/mod.ts"),
      import("./lib/cli_preflight.ts"),
    ]);
    preflight(command, { flags, args }, repo);
    const run: Run = {
      argv,
      args,
      flags,
      config,
      repo,
      io,
      meter,
      warn: (m) => {
        meter?.clear();
        if (!bool(flags, "quiet")) io.err(`vger: warning: ${escapeControl(m)}\n`);
      },
      passphrase: () => passphraseFor(repo, config, false),
      backend: async () => {
        // a signal that ends the process removes the temp files of writes in flight
        const backend = await openBackend(repo, { atExit, restToken: restTokenFor(repo) });
        return options.wrapBackend ? options.wrapBackend(backend) : backend;
      },
      locking: {
        lockWaitMs: lockWaitSeconds(flags) * 1000,
        onLock: (lock: RepoLock) => void atExit(() => lock.release()),
        noLock: bool(flags, "no-lock"),
      },
      trusting: {
        knownRepos: {
          dir: usableCacheDir() ?? undefined,
          configuredMode: repo.modeNamed ? repo.encryption.mode : undefined,
          trust: bool(flags, "trust-repository"),
          onWarning: (m) => run.warn(m),
        },
      },
    };
    const readOnly = command === "list" || command === "extract" ||
      (command === "check" && !bool(flags, "repair"));
    if (bool(flags, "no-lock") && !readOnly) {
      throw new UsageError(
        `--no-lock is only for list, extract and check without --repair, not ${command}`,
      );
    }
    return await handler(run);
  } finally {
    meter?.finish();
  }
}

/** Exit codes of the signals that end vger as Ctrl-C does: 128 + the signal's number. */
const SIGNAL_EXIT_CODES = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 } as const;

/**
 * Runs the CLI as a program: signal handling, then exit with main's code. Every way out runs
 * the exit hooks first (lib/exit_hooks.ts): temp files of writes in flight and staged packs are
 * removed, locks released, codec workers joined (the process must not exit under a worker
 * inside OpenSSL).
 */
export async function runCli(options: MainOptions = {}): Promise<never> {
  tuneAllocator();
  let interrupted: Promise<never> | null = null;
  // once a signal came, the work it stopped fails in its own ways: no message of that, and the
  // exit code is the signal's
  const io: CliIo = {
    out: defaultIo.out,
    err: (text) => interrupted === null && defaultIo.err(text),
    get isTerminal() {
      return defaultIo.isTerminal;
    },
  };
  const hupIgnored = sighupIgnored();
  for (const [signal, code] of Object.entries(SIGNAL_EXIT_CODES)) {
    if (Deno.build.os === "windows" && signal !== "SIGINT") continue;
    // `nohup vger ...` asked for SIGHUP to be ignored; Deno catches it all the same once any
    // listener is added, so the listener must ignore it
    const ignore = signal === "SIGHUP" && hupIgnored;
    Deno.addSignalListener(signal as Deno.Signal, () => {
      if (!ignore) interrupted ??= exitOnSignal(signal, code);
    });
  }
  // staged packs of vger processes on this host that were killed (SIGKILL, a crash)
  removeDeadStaging();
  const code = await main(Deno.args, io, options);
  if (interrupted !== null) await interrupted;
  await runExitHooks();
  Deno.exit(code);
}

/** Whether this process was started with SIGHUP ignored (`nohup`); Linux only. */
function sighupIgnored(): boolean {
  try {
    const mask = /^SigIgn:\s*([0-9a-f]+)$/m.exec(Deno.readTextFileSync("/proc/self/status"));
    return mask !== null && (parseInt(mask[1].slice(-1), 16) & 1) === 1;
  } catch {
    return false; // not Linux, or no read access to /proc
  }
}

/** Says what happened, runs the exit hooks (at most 3 s) and exits with `code`. */
async function exitOnSignal(signal: string, code: number): Promise<never> {
  const how = signal === "SIGINT" ? "interrupted" : `interrupted by ${signal}`;
  writeAll(
    Deno.stderr,
    `\nvger: ${how}; nothing was committed, the repository is consistent\n`,
  );
  // leave no lock (others on this host would see it as stale, other hosts only later), no
  // temp file and no staged pack behind
  await runExitHooks({ timeoutMs: 3000 });
  Deno.exit(code);
}

if (import.meta.main) await runCli();
