/**
 * The `vger` command line: parses arguments, loads the configuration, opens the backend, calls
 * lib/commands.ts and turns results and errors into output and exit codes
 * (0 ok, 1 error, 2 usage or configuration error, 3 done with warnings, 130, 143 or 129 interrupted
 * by SIGINT, SIGTERM or SIGHUP).
 *
 * @module
 */

import denoJson from "./deno.json" with { type: "json" };
import { openBackend } from "./backends/mod.ts";
import type { Backend } from "./backends/backend.ts";
import {
  backupCommand,
  breakLockCommand,
  checkCommand,
  compactCommand,
  deleteCommand,
  extractCommand,
  initCommand,
  keyChangePassphraseCommand,
  keyExportCommand,
  keyImportCommand,
  listArchivesCommand,
  listItemsCommand,
  type LockingOptions,
  pruneCommand,
  repairCommand,
  type TrustingOptions,
} from "./lib/commands.ts";
import {
  DEFAULT_ARCHIVE_NAME_FORMAT,
  type RepositoryConfig,
  selectRepositories,
  type VgerConfig,
} from "./lib/config.ts";
import { loadConfigFile } from "./lib/config_file.ts";
import { formatArchiveName } from "./lib/archive_name_format.ts";
import { writeStarterConfig } from "./lib/cli_starter_config.ts";
import { defaultSecretIo, resolvePassphrase } from "./lib/secrets.ts";
import { DEFAULT_CHUNKER_PARAMS } from "./lib/chunker.ts";
import { errorMessage, UsageError, VgerError } from "./lib/errors.ts";
import { MAX_KEY_FILE_BYTES } from "./lib/key_file.ts";
import {
  bool,
  type CommandLine,
  helpText,
  kdfFromFlags,
  list,
  lockWaitSeconds,
  oneArchive,
  parseCommandLine,
  str,
  thresholdFlag,
} from "./lib/cli_command_line.ts";
import { ExcludeMatcher } from "./lib/patterns.ts";
import { progressEnabled, ProgressMeter } from "./lib/cli_progress.ts";
import { scanSources } from "./lib/scanner.ts";
import { filesCacheDir } from "./lib/files_cache.ts";
import { type CompressionAlgorithm, validateCompression } from "./lib/compress.ts";
import { tuneAllocator } from "./lib/cli_allocator.ts";
import { isEmptyPolicy } from "./lib/retention.ts";
import type { RepoLock } from "./lib/repo_lock.ts";
import * as report from "./lib/cli_report.ts";
import { escapeControl } from "./lib/printable.ts";
import { atExit, runExitHooks } from "./lib/exit_hooks.ts";
import { removeDeadStaging } from "./lib/staging.ts";

/** The version printed by `vger --version`. */
export const VERSION: string = denoJson.version;

/** Option values as parsed (see lib/cli_command_line.ts). */
type Flags = CommandLine["flags"];

/** Where output goes; tests pass their own. */
export interface CliIo {
  /** Standard output. */
  out(text: string): void;
  /** Standard error. */
  err(text: string): void;
  /** Whether stderr is a terminal (progress). */
  isTerminal: boolean;
}

const encoder = new TextEncoder();
const defaultIo: CliIo = {
  out: (t) => writeAll(Deno.stdout, t),
  err: (t) => writeAll(Deno.stderr, t),
  get isTerminal() {
    return Deno.stderr.isTerminal();
  },
};

function writeAll(f: { writeSync(b: Uint8Array): number }, text: string): void {
  const b = encoder.encode(text);
  for (let o = 0; o < b.length;) o += f.writeSync(b.subarray(o));
}

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
    if (command.name === "config") return await configCommand(flags, io);
    const config = await loadConfig(flags, io);
    const repos = selectRepositories(config, str(flags, "repo"));
    let worst = 0;
    for (const repo of repos) {
      let code: number;
      try {
        code = await runCommand(command.name, args, flags, config, repo, io, options);
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
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    if (e instanceof Deno.errors.NotCapable) return 2; // the command line must change
  }
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
  // a missing permission may hide in the cause chain (lz4-napi wraps its loader's error)
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    if (e instanceof Deno.errors.NotCapable) {
      const m = /Requires (\w+) access/.exec(e.message);
      const flag = m ? `--allow-${m[1]}` : "a permission flag";
      return `Missing Deno permission: ${e.message.split(",")[0]}; run with ${flag} (or -A)`;
    }
  }
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
  const config = await loadConfigFile({ explicit: str(flags, "config") });
  if (config && bool(flags, "verbose")) io.err(`vger: using configuration ${config.file}\n`);
  return config;
}

/** `vger config`: the starter file (needs no configuration and no repository). */
async function configCommand(flags: Flags, io: CliIo): Promise<number> {
  const dest = str(flags, "dest") ?? "vger.yaml";
  await writeStarterConfig(dest);
  if (bool(flags, "json")) printJson(io, report.configJson(dest));
  else if (!bool(flags, "quiet")) io.err(report.configSummary(dest) + "\n");
  return 0;
}

async function promptLine(prompt: string): Promise<string> {
  writeAll(Deno.stderr, prompt);
  const buf = new Uint8Array(256);
  const n = await Deno.stdin.read(buf);
  return n === null ? "" : new TextDecoder().decode(buf.subarray(0, n));
}

function passphraseFor(
  repo: RepositoryConfig,
  config: VgerConfig | null,
  confirm: boolean,
): Promise<string | undefined> {
  return resolvePassphrase({
    repository: repo.label ?? repo.path,
    own: repo.encryption,
    top: config?.encryption,
    env: Deno.env.get("VGER_PASSPHRASE"),
    confirm,
  }, defaultSecretIo());
}

/** One command run against one repository, with the glue every command shares. */
interface Run {
  args: string[];
  flags: Flags;
  config: VgerConfig | null;
  repo: RepositoryConfig;
  io: CliIo;
  meter: ProgressMeter | undefined;
  /** Prints a warning (clearing the progress line first) unless --quiet. */
  warn(message: string): void;
  /** The repository's passphrase, resolved when the repository turns out to need one. */
  passphrase(): Promise<string | undefined>;
  /** Opens the repository's backend (wrapped by the caller's `wrapBackend`, if any). */
  backend(): Backend;
  /** --lock-wait, and each lock taken is released (at the latest) before the process exits. */
  locking: Required<LockingOptions>;
  /** The configured mode, this client's memory of repositories and --trust-repository. */
  trusting: TrustingOptions;
}

const COMMANDS: Record<string, (run: Run) => Promise<number>> = {
  init: runInit,
  backup: runBackup,
  list: runList,
  extract: runExtract,
  prune: runPrune,
  compact: runCompact,
  check: (run) => bool(run.flags, "repair") ? runRepair(run) : runCheck(run),
  "break-lock": runBreakLock,
  key: runKey,
  delete: runDelete,
};

async function runCommand(
  command: string,
  args: string[],
  flags: Flags,
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
  try {
    const run: Run = {
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
      backend: () => {
        // a signal that ends the process removes the temp files of writes in flight
        const backend = openBackend(repo, { atExit });
        return options.wrapBackend ? options.wrapBackend(backend) : backend;
      },
      locking: {
        lockWaitMs: lockWaitSeconds(flags) * 1000,
        onLock: (lock: RepoLock) => void atExit(() => lock.release()),
        noLock: bool(flags, "no-lock"),
      },
      trusting: {
        knownRepos: {
          dir: filesCacheDir((name) => Deno.env.get(name)) ?? undefined,
          configuredMode: repo.modeNamed ? repo.encryption.mode : undefined,
          trust: bool(flags, "trust-repository"),
          onWarning: (m) => run.warn(m),
        },
      },
    };
    const handler = Object.hasOwn(COMMANDS, command) ? COMMANDS[command] : undefined;
    if (!handler) throw new UsageError(`Unknown command "${command}" (see vger --help)`);
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

/** `--json`: the object on stdout; otherwise, unless `--quiet`, the lines on `to`. */
function emit(
  run: Run,
  json: () => unknown,
  lines: () => string | string[],
  to: "out" | "err" = "out",
): void {
  if (bool(run.flags, "json")) printJson(run.io, json());
  else if (!bool(run.flags, "quiet")) printLines(run.io[to], lines());
}

function printJson(io: CliIo, value: unknown): void {
  io.out(JSON.stringify(value) + "\n");
}

function printLines(write: (text: string) => void, lines: string | string[]): void {
  // text output: names in it may hold control characters, shown escaped (--json keeps them)
  for (const line of typeof lines === "string" ? [lines] : lines) {
    write(escapeControl(line) + "\n");
  }
}

async function runInit(run: Run): Promise<number> {
  const { flags, repo, config } = run;
  const mode = str(flags, "encryption") ?? repo.encryption.mode;
  if (mode !== "aes256gcm" && mode !== "none") {
    throw new UsageError(`--encryption must be "aes256gcm" or "none", not "${mode}"`);
  }
  const pass = mode === "none" ? undefined : await passphraseFor(repo, config, true);
  if (mode !== "none" && pass === undefined) {
    throw new UsageError("A passphrase is needed: set VGER_PASSPHRASE or encryption.passphrase");
  }
  const cfg = await initCommand(run.backend(), {
    ...run.trusting,
    encryption: mode,
    passphrase: pass,
    kdf: kdfFromFlags(flags),
    chunker: config?.chunker ?? DEFAULT_CHUNKER_PARAMS,
    minPackSize: repo.minPackSize,
    maxPackSize: repo.maxPackSize,
  });
  emit(run, () => report.initJson(repo.path, cfg), () => report.initSummary(repo.path, cfg), "err");
  return 0;
}

async function runBackup(run: Run): Promise<number> {
  const { args, flags, config, repo, meter, warn } = run;
  const sources = args.length > 0 ? args : repo.sourceDirectories;
  if (sources.length === 0) {
    throw new UsageError("Nothing to back up: give PATHS or set source_directories");
  }
  const name = oneArchive(flags, "backup") ?? formatArchiveName(
    config?.archiveNameFormat ?? DEFAULT_ARCHIVE_NAME_FORMAT,
    { hostname: Deno.hostname(), user: Deno.env.get("USER") ?? "unknown", now: new Date() },
  );
  const patterns = [...(config?.excludePatterns ?? []), ...list(flags, "exclude")];
  const excludes = new ExcludeMatcher(patterns);
  const algorithm = str(flags, "compression");
  const compression = algorithm
    ? { algorithm: algorithm as CompressionAlgorithm, zstdLevel: repo.compression.zstdLevel }
    : repo.compression;
  validateCompression(compression);
  const isExcluded = patterns.length > 0
    ? (p: string, isDir: boolean) => excludes.excludes(p, isDir)
    : undefined;
  // a concurrent scan gives the progress line its totals (percent, ETA), as restic's does
  const scan = new AbortController();
  if (meter) {
    scanSources(sources, { isExcluded, excludeDirs: [repo.path], signal: scan.signal })
      .then((t) => meter.setTotals(t), () => {});
  }
  const result = await backupCommand(run.backend(), {
    ...run.locking,
    ...run.trusting,
    onIndexRebuilt: warn,
    passphrase: run.passphrase,
    name,
    sources,
    compression,
    excludeDirs: [repo.path],
    isExcluded,
    filesCacheDir: bool(flags, "no-files-cache")
      ? undefined
      : filesCacheDir((name) => Deno.env.get(name)) ?? undefined,
    onWarning: warn,
    onProgress: meter && ((p) => meter.update(p)),
  }).finally(() => scan.abort());
  meter?.finish();
  emit(run, () => report.backupJson(repo.path, result), () => report.backupSummary(result));
  return result.warnings.length > 0 ? 3 : 0;
}

async function runList(run: Run): Promise<number> {
  const { args, flags, repo, io } = run;
  const backend = run.backend();
  const archive = oneArchive(flags, "list");
  if (!archive) {
    const archives = await listArchivesCommand(backend, {
      ...run.trusting,
      passphrase: run.passphrase,
    });
    if (bool(flags, "json")) {
      printJson(io, report.archivesJson(repo.path, archives));
    } else printLines(io.out, archives.map(report.archiveLine));
    return 0;
  }
  const items = listItemsCommand(backend, {
    ...run.trusting,
    onIndexRebuilt: run.warn,
    passphrase: run.passphrase,
    archive,
    patterns: args,
  });
  if (bool(flags, "json")) {
    const rows: report.ItemJson[] = [];
    for await (const i of items) rows.push(report.itemJson(i));
    printJson(io, report.itemsJson(repo.path, rows, { archive }));
  } else {
    // one line at a time: a long listing streams (and `vger list ... | head` stops it early)
    for await (const i of items) io.out(escapeControl(report.itemLine(i)) + "\n");
  }
  return 0;
}

async function runExtract(run: Run): Promise<number> {
  const { args, flags, repo, meter } = run;
  const archive = oneArchive(flags, "extract");
  if (!archive) throw new UsageError("extract needs --archive NAME");
  const dest = str(flags, "dest");
  if (!dest) throw new UsageError("extract needs --dest DIR");
  const result = await extractCommand(run.backend(), {
    ...run.locking,
    ...run.trusting,
    onIndexRebuilt: run.warn,
    passphrase: run.passphrase,
    archive,
    dest,
    patterns: args,
    overwrite: bool(flags, "overwrite"),
    onWarning: run.warn,
    onProgress: meter && ((p) => meter.update(p)),
  });
  meter?.finish();
  emit(
    run,
    () => report.extractJson(repo.path, result, { archive }),
    () => report.extractSummary(result, { dest }),
  );
  return result.warnings.length > 0 ? 3 : 0;
}

async function runPrune(run: Run): Promise<number> {
  const { flags, repo, io } = run;
  const policy = repo.retention;
  if (isEmptyPolicy(policy)) {
    run.warn(`the retention policy of ${repo.path} is empty: nothing is pruned`);
  }
  const dryRun = !!bool(flags, "dry-run");
  const result = await pruneCommand(run.backend(), {
    ...run.locking,
    ...run.trusting,
    passphrase: run.passphrase,
    policy,
    dryRun,
  });
  if (bool(flags, "json")) {
    printJson(io, report.pruneJson(repo.path, result, { dryRun, policy }));
    return 0;
  }
  // --quiet drops the summary line, not the decisions that --list or --dry-run ask for
  if (bool(flags, "list") || dryRun) {
    printLines(io.out, report.pruneDecisionLines(result.decisions, { dryRun }));
  }
  if (!bool(flags, "quiet")) printLines(io.out, report.pruneSummary(result, { dryRun, policy }));
  return 0;
}

async function runCompact(run: Run): Promise<number> {
  const { flags, repo, meter } = run;
  const threshold = thresholdFlag(flags);
  const dryRun = !!bool(flags, "dry-run");
  const r = await compactCommand(run.backend(), {
    ...run.locking,
    ...run.trusting,
    passphrase: run.passphrase,
    thresholdPercent: threshold,
    dryRun,
    onProgress: meter && ((p) =>
      meter.update({
        phase: p.phase,
        files: p.done,
        totalFiles: p.total,
        unit: p.phase === "scan" ? "archives" : p.phase === "copy" ? "blobs" : "packs",
        bytes: p.bytes,
        totalBytes: p.totalBytes,
      })),
  });
  meter?.finish();
  emit(
    run,
    () => report.compactJson(repo.path, r, { dryRun }),
    () => report.compactSummary(r, { dryRun }),
  );
  for (const w of report.compactWarnings(r.corrupt)) run.warn(w);
  return r.corrupt.length > 0 ? 3 : 0;
}

/** The meter's view of packs being read and verified (check --verify-data, repair). */
function packVerifyProgress(
  p: { packs: number; totalPacks: number; packBytes: number; totalPackBytes: number },
): Parameters<ProgressMeter["update"]>[0] {
  return {
    phase: "verify",
    files: p.packs,
    totalFiles: p.totalPacks,
    unit: "packs",
    bytes: p.packBytes,
    totalBytes: p.totalPackBytes,
  };
}

async function runCheck(run: Run): Promise<number> {
  const { flags, repo, io, meter } = run;
  const verifyData = bool(flags, "verify-data");
  const r = await checkCommand(run.backend(), {
    ...run.locking,
    ...run.trusting,
    passphrase: run.passphrase,
    verifyData,
    onProgress: meter && ((p) =>
      meter.update(
        p.phase === "data"
          ? packVerifyProgress(p)
          : { phase: "headers", files: p.packs, totalFiles: p.totalPacks, unit: "packs" },
      )),
  });
  meter?.finish();
  if (bool(flags, "json")) {
    printJson(io, report.checkJson(repo.path, r, { verifyData }));
  } else {
    // --quiet drops the summary line; problems are always printed
    printLines(io.out, r.problems.map(report.problemLine));
    if (!bool(flags, "quiet")) printLines(io.out, report.checkSummary(r, { verifyData }));
  }
  return r.problems.some((p) => p.severity === "error") ? 1 : 0;
}

async function runRepair(run: Run): Promise<number> {
  const { flags, repo, meter } = run;
  const dryRun = !!bool(flags, "dry-run");
  const r = await repairCommand(run.backend(), {
    ...run.locking,
    ...run.trusting,
    passphrase: run.passphrase,
    dryRun,
    verifyData: bool(flags, "verify-data"),
    onProgress: meter && ((p) => meter.update(packVerifyProgress(p))),
    confirm: async (names) => {
      meter?.finish(); // verifying is over: the question needs the line
      if (bool(flags, "yes")) return true;
      if (!Deno.stdin.isTerminal()) {
        run.warn(`not removing ${names.length} archives without --yes: ${names.join(", ")}`);
        return false;
      }
      const answer = await promptLine(
        `Remove ${names.length} archives whose file list is unreadable (${
          names.join(", ")
        })? [y/N] `,
      );
      return /^y(es)?$/i.test(answer.trim());
    },
  });
  meter?.finish();
  const kept = r.brokenArchives.filter((b) => !r.removedArchives.includes(b.name));
  emit(run, () => report.repairJson(repo.path, r, { dryRun }), () => report.repairLines(r));
  return kept.length > 0 || r.manifestError ? 1 : 0;
}

async function runBreakLock(run: Run): Promise<number> {
  const { flags, repo } = run;
  const all = bool(flags, "all");
  const removed = await breakLockCommand(run.backend(), { all });
  emit(
    run,
    () => report.breakLockJson(repo.path, removed),
    () => report.breakLockLines(repo.path, removed, { all }),
  );
  return 0;
}

async function runDelete(run: Run): Promise<number> {
  const { flags, repo } = run;
  const names = list(flags, "archive");
  if (names.length === 0) throw new UsageError("delete needs --archive NAME (one or more)");
  const dryRun = bool(flags, "dry-run");
  const deleted = await deleteCommand(run.backend(), {
    ...run.locking,
    ...run.trusting,
    passphrase: run.passphrase,
    names,
    dryRun,
  });
  emit(
    run,
    () => report.deleteJson(repo.path, deleted, { dryRun }),
    () => report.deleteLines(deleted, { dryRun }),
  );
  return 0;
}

async function needPassphrase(repo: RepositoryConfig, config: VgerConfig | null): Promise<string> {
  const pass = await passphraseFor(repo, config, false);
  if (pass === undefined) {
    throw new UsageError(
      `A passphrase is needed for repository "${repo.path}": set VGER_PASSPHRASE, ` +
        "encryption.passcommand or encryption.passphrase, or run on a terminal",
    );
  }
  return pass;
}

/** `vger key change-passphrase | export --dest FILE | import FILE`. */
async function runKey(run: Run): Promise<number> {
  const { flags, config, repo } = run;
  const [sub, ...rest] = run.args;
  const backend = run.backend();
  const say = (json: () => unknown, text: () => string) => emit(run, json, text, "err");
  switch (sub) {
    case "change-passphrase": {
      const passphrase = await needPassphrase(repo, config);
      const newPassphrase = await resolvePassphrase({
        repository: repo.label ?? repo.path,
        env: Deno.env.get("VGER_NEW_PASSPHRASE"),
        envName: "VGER_NEW_PASSPHRASE",
        confirm: true,
        promptText: `New passphrase for ${repo.label ?? repo.path}: `,
      }, defaultSecretIo());
      if (newPassphrase === undefined) {
        throw new UsageError(
          "A new passphrase is needed: set VGER_NEW_PASSPHRASE or run on a terminal",
        );
      }
      const kdfGiven = ["kdf-memory", "kdf-iterations", "kdf-parallelism"].some((k) =>
        str(flags, k) !== undefined
      );
      const r = await keyChangePassphraseCommand(backend, {
        ...run.locking,
        ...run.trusting,
        passphrase,
        newPassphrase,
        kdf: kdfGiven ? kdfFromFlags(flags) : undefined,
      });
      say(
        () => report.keyChangePassphraseJson(repo.path, r),
        () => report.keyChangePassphraseSummary(repo.path),
      );
      return 0;
    }
    case "export": {
      const dest = str(flags, "dest") ?? rest[0];
      if (!dest) throw new UsageError("key export needs --dest FILE");
      const bytes = await keyExportCommand(backend, {
        ...run.trusting,
        passphrase: await needPassphrase(repo, config),
      });
      try {
        await Deno.writeFile(dest, bytes, { createNew: true, mode: 0o600 });
      } catch (err) {
        throw new UsageError(`Cannot write the key export "${dest}": ${errorMessage(err)}`, {
          cause: err,
        });
      }
      say(
        () => report.keyExportJson(repo.path, dest),
        () => report.keyExportSummary(repo.path, dest),
      );
      return 0;
    }
    case "import": {
      const file = rest[0];
      if (!file) throw new UsageError("key import needs FILE (a file written by vger key export)");
      // Read at most one byte past the largest key file: FILE may be huge or endless.
      const keyFile = new Uint8Array(MAX_KEY_FILE_BYTES + 1);
      let keyLength = 0;
      try {
        using f = await Deno.open(file);
        while (keyLength < keyFile.length) {
          const n = await f.read(keyFile.subarray(keyLength));
          if (n === null) break;
          keyLength += n;
        }
      } catch (err) {
        throw new UsageError(`Cannot read the key file "${file}": ${errorMessage(err)}`, {
          cause: err,
        });
      }
      if (keyLength > MAX_KEY_FILE_BYTES) {
        throw new UsageError(
          `Cannot import the key file "${file}": larger than ${MAX_KEY_FILE_BYTES} bytes, so not a vger key file`,
        );
      }
      const r = await keyImportCommand(backend, {
        ...run.locking,
        ...run.trusting,
        keyFile: keyFile.subarray(0, keyLength),
        passphrase: await needPassphrase(repo, config),
        force: bool(flags, "force"),
        source: `"${file}"`,
      });
      say(
        () => report.keyImportJson(repo.path, r, { file }),
        () => report.keyImportSummary(repo.path, r, { file }),
      );
      return 0;
    }
    default:
      throw new UsageError(
        `key needs a subcommand: change-passphrase, export or import${
          sub ? `, not "${sub}"` : ""
        } (see vger key --help)`,
      );
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
