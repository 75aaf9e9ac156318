/**
 * The `vger` command line: parses arguments, loads the configuration, opens the backend, calls
 * lib/commands.ts and turns results and errors into output and exit codes
 * (0 ok, 1 error, 2 usage or configuration error, 3 done with warnings, 130 interrupted).
 *
 * @module
 */

import denoJson from "./deno.json" with { type: "json" };
import { LocalBackend } from "./backends/local.ts";
import { KillSwitchBackend } from "./backends/kill_switch.ts";
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
  pruneCommand,
  repairCommand,
} from "./lib/commands.ts";
import {
  DEFAULT_ARCHIVE_NAME_FORMAT,
  formatArchiveName,
  loadConfigFile,
  type RepositoryConfig,
  selectRepositories,
  type VgerConfig,
} from "./lib/config.ts";
import { writeStarterConfig } from "./lib/starter_config.ts";
import { defaultSecretIo, resolvePassphrase } from "./lib/secrets.ts";
import { DEFAULT_CHUNKER_PARAMS } from "./lib/chunker.ts";
import type { Item } from "./lib/archive.ts";
import { errorMessage, UsageError, VgerError } from "./lib/errors.ts";
import { type CommandLine, helpText, parseCommandLine } from "./lib/command_line.ts";
import { DEFAULT_KDF, type KdfParams } from "./lib/key_file.ts";
import { ExcludeMatcher } from "./lib/patterns.ts";
import { formatBytes, progressEnabled, ProgressMeter } from "./lib/progress.ts";
import { scanSources } from "./lib/scanner.ts";
import { filesCacheDir } from "./lib/files_cache.ts";
import { type CompressionAlgorithm, validateCompression } from "./lib/compress.ts";
import { toHex } from "./lib/ids.ts";
import { tuneAllocator } from "./lib/allocator.ts";
import { describeRetention, isEmptyPolicy } from "./lib/retention.ts";
import type { RepoLock } from "./lib/repo_lock.ts";

/** Locks held by running commands, released when Ctrl-C ends the process. */
const heldLocks = new Set<RepoLock>();

/** The version printed by `vger --version`. */
export const VERSION: string = denoJson.version;

/** Option values as parsed (see lib/command_line.ts). */
type Flags = CommandLine["flags"];

function str(flags: Flags, name: string): string | undefined {
  const v = flags[name];
  return typeof v === "string" ? v : undefined;
}

function bool(flags: Flags, name: string): boolean {
  return flags[name] === true;
}

function list(flags: Flags, name: string): string[] {
  const v = flags[name];
  return Array.isArray(v) ? v : [];
}

/** The one archive a command works on (`--archive` given at most once). */
function oneArchive(flags: Flags, command: string): string | undefined {
  const a = list(flags, "archive");
  if (a.length > 1) throw new UsageError(`${command} takes one --archive, not ${a.length}`);
  return a[0];
}

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

/** Runs the CLI; returns the exit code. */
export async function main(argv: string[], io: CliIo = defaultIo): Promise<number> {
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
        code = await runCommand(command.name, args, flags, config, repo, io);
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

function describeError(err: unknown, repo?: RepositoryConfig): string {
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
  if (bool(flags, "json")) io.out(JSON.stringify({ written: dest }) + "\n");
  else if (!bool(flags, "quiet")) {
    io.err(`Wrote ${dest}: set the repository path and source_directories, then run vger init\n`);
  }
  return 0;
}

function openBackend(repo: RepositoryConfig): Backend {
  if (repo.backend !== "local") {
    throw new UsageError(
      `The ${repo.backend} backend is not available yet (repository "${repo.path}")`,
    );
  }
  const backend = new LocalBackend(repo.path);
  // crash-safety tests stop vger after the N-th write (tests/crash_test.ts)
  const killAfter = Deno.env.get("VGER_TEST_KILL_AFTER_WRITES");
  return killAfter ? new KillSwitchBackend(backend, Number(killAfter)) : backend;
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

function intFlag(v: string | undefined, name: string, dflt: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new UsageError(`--${name} takes a whole number, not "${v}"`);
  }
  return n;
}

function modeString(item: Item): string {
  const t = item.type === "dir" ? "d" : item.type === "symlink" ? "l" : "-";
  const rwx = "rwxrwxrwx";
  let s = "";
  for (let i = 0; i < 9; i++) s += item.mode & (1 << (8 - i)) ? rwx[i] : "-";
  return t + s;
}

async function runCommand(
  command: string,
  args: string[],
  flags: Flags,
  config: VgerConfig | null,
  repo: RepositoryConfig,
  io: CliIo,
): Promise<number> {
  const show = progressEnabled({
    quiet: bool(flags, "quiet"),
    json: bool(flags, "json"),
    progress: bool(flags, "progress"),
    isTerminal: io.isTerminal,
  });
  const meter = show ? new ProgressMeter(io.err, { terminal: io.isTerminal }) : undefined;
  try {
    return await dispatch(command, args, flags, config, repo, io, meter);
  } finally {
    meter?.finish();
  }
}

async function dispatch(
  command: string,
  args: string[],
  flags: Flags,
  config: VgerConfig | null,
  repo: RepositoryConfig,
  io: CliIo,
  meter: ProgressMeter | undefined,
): Promise<number> {
  const warn = (m: string) => {
    meter?.clear();
    if (!bool(flags, "quiet")) io.err(`vger: warning: ${m}\n`);
  };
  const passphrase = () => passphraseFor(repo, config, false);
  const locking = {
    lockWaitMs: intFlag(str(flags, "lock-wait"), "lock-wait", 0) * 1000,
    onLock: (lock: RepoLock) => heldLocks.add(lock),
  };
  switch (command) {
    case "init": {
      const mode = str(flags, "encryption") ?? repo.encryption.mode;
      if (mode !== "aes256gcm" && mode !== "none") {
        throw new UsageError(`--encryption must be "aes256gcm" or "none", not "${mode}"`);
      }
      const pass = mode === "none" ? undefined : await passphraseFor(repo, config, true);
      if (mode !== "none" && pass === undefined) {
        throw new UsageError(
          "A passphrase is needed: set VGER_PASSPHRASE or encryption.passphrase",
        );
      }
      const cfg = await initCommand(openBackend(repo), {
        encryption: mode,
        passphrase: pass,
        kdf: kdfFromFlags(flags),
        chunker: config?.chunker ?? DEFAULT_CHUNKER_PARAMS,
        minPackSize: repo.minPackSize,
        maxPackSize: repo.maxPackSize,
      });
      if (bool(flags, "json")) {
        io.out(
          JSON.stringify({ repository: repo.path, id: cfg.id, encryption: cfg.encryption }) + "\n",
        );
      } else if (!bool(flags, "quiet")) {
        io.err(`Created repository ${repo.path} (${cfg.encryption})\n`);
      }
      return 0;
    }
    case "backup": {
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
      const result = await backupCommand(openBackend(repo), {
        ...locking,
        onIndexRebuilt: warn,
        passphrase,
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
      const s = result.stats;
      if (bool(flags, "json")) {
        io.out(
          JSON.stringify({
            repository: repo.path,
            archive: result.archive.name,
            id: toHex(result.archive.id),
            files: s.files,
            original_size: s.original,
            compressed_size: s.compressed,
            deduplicated_size: s.deduplicated,
            duration_seconds: result.seconds,
            unchanged_files: result.unchangedFiles,
            warnings: result.warnings,
          }) + "\n",
        );
      } else if (!bool(flags, "quiet")) {
        io.out(
          `Archive ${result.archive.name}: ${s.files} files, original ${
            formatBytes(s.original)
          }, ` +
            `compressed ${formatBytes(s.compressed)}, deduplicated ${
              formatBytes(s.deduplicated)
            }, ` +
            `${result.seconds.toFixed(1)} s\n`,
        );
      }
      return result.warnings.length > 0 ? 3 : 0;
    }
    case "list": {
      const backend = openBackend(repo);
      const archive = oneArchive(flags, "list");
      if (!archive) {
        const archives = await listArchivesCommand(backend, { passphrase });
        if (bool(flags, "json")) {
          io.out(
            JSON.stringify({
              repository: repo.path,
              archives: archives.map((a) => ({
                name: a.name,
                id: toHex(a.id),
                time: a.time,
                hostname: a.hostname,
                username: a.username,
                files: a.stats.files,
                original_size: a.stats.original,
                compressed_size: a.stats.compressed,
                deduplicated_size: a.stats.deduplicated,
              })),
            }) + "\n",
          );
        } else {
          for (const a of archives) {
            io.out(
              `${a.name.padEnd(32)} ${a.time}  ${a.hostname}  ${a.stats.files} files  ${
                formatBytes(a.stats.original)
              }\n`,
            );
          }
        }
        return 0;
      }
      const items = listItemsCommand(backend, {
        onIndexRebuilt: warn,
        passphrase,
        archive,
        patterns: args,
      });
      if (bool(flags, "json")) {
        const rows: unknown[] = [];
        for await (const i of items) {
          rows.push({
            path: i.path,
            type: i.type,
            mode: i.mode,
            uid: i.uid,
            gid: i.gid,
            user: i.user ?? null,
            group: i.group ?? null,
            size: i.size,
            mtime_ns: i.mtimeNs.toString(),
            target: i.target ?? null,
          });
        }
        io.out(
          JSON.stringify({ repository: repo.path, archive, items: rows }) + "\n",
        );
      } else {
        for await (const i of items) {
          const when = new Date(Number(i.mtimeNs / 1_000_000n)).toISOString().slice(0, 19).replace(
            "T",
            " ",
          );
          const owner = `${i.user ?? i.uid} ${i.group ?? i.gid}`;
          io.out(
            `${modeString(i)} ${owner.padEnd(17)} ${String(i.size).padStart(12)} ${when} ${i.path}${
              i.target !== undefined ? ` -> ${i.target}` : ""
            }\n`,
          );
        }
      }
      return 0;
    }
    case "extract": {
      const archive = oneArchive(flags, "extract");
      if (!archive) throw new UsageError("extract needs --archive NAME");
      const dest = str(flags, "dest");
      if (!dest) throw new UsageError("extract needs --dest DIR");
      const result = await extractCommand(openBackend(repo), {
        ...locking,
        onIndexRebuilt: warn,
        passphrase,
        archive,
        dest,
        patterns: args,
        overwrite: bool(flags, "overwrite"),
        onWarning: warn,
        onProgress: meter && ((p) => meter.update(p)),
      });
      meter?.finish();
      if (bool(flags, "json")) {
        io.out(
          JSON.stringify({
            repository: repo.path,
            archive,
            files: result.files,
            bytes: result.bytes,
            warnings: result.warnings,
          }) + "\n",
        );
      } else if (!bool(flags, "quiet")) {
        io.out(`Restored ${result.files} items, ${formatBytes(result.bytes)} to ${dest}\n`);
      }
      return result.warnings.length > 0 ? 3 : 0;
    }
    case "prune": {
      if (isEmptyPolicy(repo.retention)) {
        warn(`the retention policy of ${repo.path} is empty: nothing is pruned`);
      }
      const dryRun = !!bool(flags, "dry-run");
      const result = await pruneCommand(openBackend(repo), {
        ...locking,
        passphrase,
        policy: repo.retention,
        dryRun,
      });
      if (bool(flags, "json")) {
        io.out(
          JSON.stringify({
            repository: repo.path,
            dry_run: dryRun,
            policy: describeRetention(repo.retention),
            archives: result.decisions.map((d) => ({
              name: d.archive.name,
              time: d.archive.time,
              keep: d.keep,
              reasons: d.reasons,
            })),
            deleted: result.deleted.map((a) => a.name),
          }) + "\n",
        );
        return 0;
      }
      if (bool(flags, "list") || dryRun) {
        for (const d of result.decisions) {
          const what = d.keep ? "keep " : dryRun ? "would prune" : "prune";
          const why = d.keep ? `  (${d.reasons.join(", ")})` : "";
          io.out(`${what.padEnd(11)} ${d.archive.name.padEnd(32)} ${d.archive.time}${why}\n`);
        }
      }
      if (!bool(flags, "quiet")) {
        const pruned = result.decisions.filter((d) => !d.keep).length;
        io.out(
          `${dryRun ? "Would prune" : "Pruned"} ${pruned} of ${result.decisions.length} archives ` +
            `(${describeRetention(repo.retention)})\n`,
        );
      }
      return 0;
    }
    case "compact": {
      const threshold = str(flags, "threshold") === undefined
        ? undefined
        : Number(str(flags, "threshold"));
      if (threshold !== undefined && !(threshold >= 0 && threshold <= 100)) {
        throw new UsageError(
          `--threshold takes a percentage from 0 to 100, not "${str(flags, "threshold")}"`,
        );
      }
      const dryRun = !!bool(flags, "dry-run");
      const r = await compactCommand(openBackend(repo), {
        ...locking,
        passphrase,
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
      const p = r.plan;
      if (bool(flags, "json")) {
        io.out(
          JSON.stringify({
            repository: repo.path,
            dry_run: dryRun,
            threshold_percent: p.thresholdPercent,
            packs: p.packs,
            delete_packs: p.deletePacks.map((x) => x.id),
            rewrite_packs: p.rewritePacks.map((x) => x.id),
            unreferenced_packs: p.unreferencedPacks.map((x) => x.id),
            bytes_to_free: p.bytesToFree,
            bytes_freed: r.bytesFreed,
            corrupt: r.corrupt,
          }) + "\n",
        );
      } else if (!bool(flags, "quiet")) {
        const plan = `${p.deletePacks.length + p.unreferencedPacks.length} packs to delete, ` +
          `${p.rewritePacks.length} to rewrite (${p.copyBlobs} blobs, ${
            formatBytes(p.copyBytes)
          } ` +
          `to copy), ${formatBytes(p.bytesToFree)} to free`;
        if (dryRun || p.nothingToDo) {
          io.out(`${p.nothingToDo ? "Nothing to do: " : "Plan: "}${plan}\n`);
        } else io.out(`Compacted: ${plan}; freed ${formatBytes(r.bytesFreed)}\n`);
      }
      for (const c of r.corrupt) {
        warn(`blob ${c.id} in pack ${c.pack} is corrupt and was left in place: ${c.reason}`);
      }
      return r.corrupt.length > 0 ? 3 : 0;
    }
    case "check": {
      const backend = openBackend(repo);
      if (bool(flags, "repair")) {
        const dryRun = !!bool(flags, "dry-run");
        const r = await repairCommand(backend, {
          ...locking,
          passphrase,
          dryRun,
          confirm: async (names) => {
            if (bool(flags, "yes")) return true;
            if (!Deno.stdin.isTerminal()) {
              warn(`not removing ${names.length} archives without --yes: ${names.join(", ")}`);
              return false;
            }
            const answer = await promptLine(
              `Remove ${names.length} archives whose data is gone (${names.join(", ")})? [y/N] `,
            );
            return /^y(es)?$/i.test(answer.trim());
          },
        });
        const kept = r.brokenArchives.filter((b) => !r.removedArchives.includes(b.name));
        if (bool(flags, "json")) {
          io.out(
            JSON.stringify({
              repository: repo.path,
              dry_run: dryRun,
              entries: r.entries,
              packs: r.packs,
              unreadable_packs: r.unreadablePacks,
              index_changed: r.indexChanged,
              index_written: r.indexWritten,
              broken_archives: r.brokenArchives,
              removed_archives: r.removedArchives,
              manifest_error: r.manifestError ?? null,
            }) + "\n",
          );
        } else if (!bool(flags, "quiet")) {
          io.out(
            `Index: ${r.entries} blobs in ${r.packs} packs` +
              (r.indexWritten
                ? " (rebuilt and written)"
                : r.indexChanged
                ? " (would be rewritten)"
                : " (unchanged)") +
              "\n",
          );
          for (const p of r.unreadablePacks) io.out(`unreadable pack ${p.key}: ${p.error}\n`);
          for (const b of r.brokenArchives) {
            const removed = r.removedArchives.includes(b.name);
            io.out(`archive ${b.name}: ${b.reason}${removed ? " (removed)" : ""}\n`);
          }
        }
        return kept.length > 0 || r.manifestError ? 1 : 0;
      }
      const r = await checkCommand(backend, {
        ...locking,
        passphrase,
        verifyData: bool(flags, "verify-data"),
        onProgress: meter && ((p) =>
          meter.update(
            p.phase === "data"
              ? {
                phase: "verify",
                files: p.packs,
                totalFiles: p.totalPacks,
                unit: "packs",
                bytes: p.packBytes,
                totalBytes: p.totalPackBytes,
              }
              : { phase: "headers", files: p.packs, totalFiles: p.totalPacks, unit: "packs" },
          )),
      });
      meter?.finish();
      const errors = r.problems.filter((p) => p.severity === "error").length;
      if (bool(flags, "json")) {
        io.out(
          JSON.stringify({
            repository: repo.path,
            verify_data: !!bool(flags, "verify-data"),
            errors,
            warnings: r.problems.length - errors,
            problems: r.problems.map((p) => ({
              kind: p.kind,
              severity: p.severity,
              message: p.message,
              affects: {
                archives: p.affects.archives,
                paths: p.affects.paths,
                paths_truncated: p.affects.pathsTruncated,
              },
            })),
            stats: {
              archives: r.stats.archives,
              packs: r.stats.packs,
              blobs: r.stats.blobs,
              bytes_read: r.stats.bytesRead,
            },
          }) + "\n",
        );
      } else {
        for (const p of r.problems) {
          const a = p.affects;
          const affects = a.archives.length > 0
            ? ` (affects ${a.archives.map((n) => `"${n}"`).join(", ")}${
              a.paths.length > 0
                ? `: ${a.paths.slice(0, 5).join(", ")}${
                  a.paths.length > 5 || a.pathsTruncated ? ", ..." : ""
                }`
                : ""
            })`
            : "";
          io.out(`${p.severity}: ${p.message}${affects}\n`);
        }
        if (!bool(flags, "quiet")) {
          io.out(
            `Checked ${r.stats.archives} archives, ${r.stats.packs} packs, ${r.stats.blobs} blobs` +
              `${bool(flags, "verify-data") ? `, read ${formatBytes(r.stats.bytesRead)}` : ""}: ` +
              `${errors} errors, ${r.problems.length - errors} warnings\n`,
          );
        }
      }
      return errors > 0 ? 1 : 0;
    }
    case "break-lock": {
      const removed = await breakLockCommand(openBackend(repo), { all: bool(flags, "all") });
      if (bool(flags, "json")) {
        io.out(
          JSON.stringify({
            repository: repo.path,
            removed: removed.map((l) => ({ key: l.key, ...l.info })),
          }) + "\n",
        );
      } else if (!bool(flags, "quiet")) {
        for (const l of removed) {
          const who = l.info
            ? `${l.info.host}/${l.info.pid} since ${l.info.time} (${l.info.command})`
            : "unreadable";
          io.out(`Removed lock ${l.key}: ${who}\n`);
        }
        if (removed.length === 0) {
          io.out(`No ${bool(flags, "all") ? "" : "stale "}locks in ${repo.path}\n`);
        }
      }
      return 0;
    }
    case "key":
      return await keyCommand(args, flags, config, repo, io, locking);
    case "delete": {
      const names = list(flags, "archive") ?? [];
      if (names.length === 0) throw new UsageError("delete needs --archive NAME (one or more)");
      const deleted = await deleteCommand(openBackend(repo), {
        ...locking,
        passphrase,
        names,
        dryRun: bool(flags, "dry-run"),
      });
      if (bool(flags, "json")) {
        io.out(
          JSON.stringify({
            repository: repo.path,
            dry_run: !!bool(flags, "dry-run"),
            archives: deleted.map((a) => ({ name: a.name, id: toHex(a.id), time: a.time })),
          }) + "\n",
        );
      } else if (!bool(flags, "quiet")) {
        const verb = bool(flags, "dry-run") ? "Would delete" : "Deleted";
        for (const a of deleted) io.out(`${verb} archive ${a.name} (${a.time})\n`);
      }
      return 0;
    }
    default:
      throw new UsageError(`Unknown command "${command}" (see vger --help)`);
  }
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
async function keyCommand(
  args: string[],
  flags: Flags,
  config: VgerConfig | null,
  repo: RepositoryConfig,
  io: CliIo,
  locking: { lockWaitMs: number; onLock: (lock: RepoLock) => void },
): Promise<number> {
  const [sub, ...rest] = args;
  const backend = openBackend(repo);
  const say = (text: string, json: Record<string, unknown>) => {
    if (bool(flags, "json")) io.out(JSON.stringify({ repository: repo.path, ...json }) + "\n");
    else if (!bool(flags, "quiet")) io.err(text + "\n");
  };
  switch (sub) {
    case "change-passphrase": {
      const passphrase = await needPassphrase(repo, config);
      const newPassphrase = await resolvePassphrase({
        repository: repo.label ?? repo.path,
        env: Deno.env.get("VGER_NEW_PASSPHRASE"),
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
        ...locking,
        passphrase,
        newPassphrase,
        kdf: kdfGiven ? kdfFromFlags(flags) : undefined,
      });
      say(
        `Changed the passphrase of ${repo.path}; earlier key exports still open it with the old one`,
        {
          changed: true,
          kdf: {
            memory_kib: r.kdf.memoryKiB,
            iterations: r.kdf.iterations,
            parallelism: r.kdf.parallelism,
          },
        },
      );
      return 0;
    }
    case "export": {
      const dest = str(flags, "dest") ?? rest[0];
      if (!dest) throw new UsageError("key export needs --dest FILE");
      const bytes = await keyExportCommand(backend, {
        passphrase: await needPassphrase(repo, config),
      });
      try {
        await Deno.writeFile(dest, bytes, { createNew: true, mode: 0o600 });
      } catch (err) {
        throw new UsageError(`Cannot write the key export "${dest}": ${errorMessage(err)}`, {
          cause: err,
        });
      }
      say(`Wrote the key of ${repo.path} to ${dest}; keep it and the passphrase, apart`, {
        written: dest,
      });
      return 0;
    }
    case "import": {
      const file = rest[0];
      if (!file) throw new UsageError("key import needs FILE (a file written by vger key export)");
      let keyFile: Uint8Array;
      try {
        keyFile = await Deno.readFile(file);
      } catch (err) {
        throw new UsageError(`Cannot read the key file "${file}": ${errorMessage(err)}`, {
          cause: err,
        });
      }
      const r = await keyImportCommand(backend, {
        ...locking,
        keyFile,
        passphrase: await needPassphrase(repo, config),
        force: bool(flags, "force"),
        source: `"${file}"`,
      });
      say(
        r.previous === "identical"
          ? `The key file of ${repo.path} already is ${file}: nothing changed`
          : `Imported ${file} as the key of ${repo.path} (the old one was ${r.previous})`,
        { imported: file, previous: r.previous },
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

function kdfFromFlags(flags: Flags): KdfParams {
  return {
    memoryKiB: intFlag(str(flags, "kdf-memory"), "kdf-memory", DEFAULT_KDF.memoryKiB),
    iterations: intFlag(str(flags, "kdf-iterations"), "kdf-iterations", DEFAULT_KDF.iterations),
    parallelism: intFlag(
      str(flags, "kdf-parallelism"),
      "kdf-parallelism",
      DEFAULT_KDF.parallelism,
    ),
  };
}

/** Runs the CLI as a program: Ctrl-C handling, then exit with main's code. */
export async function runCli(): Promise<never> {
  tuneAllocator();
  Deno.addSignalListener("SIGINT", async () => {
    writeAll(
      Deno.stderr,
      "\nvger: interrupted; nothing was committed, the repository is consistent\n",
    );
    // leave no lock behind (others on this host would see it as stale, other hosts only later)
    const releases = [...heldLocks].map((l) => l.release().catch(() => {}));
    await Promise.race([Promise.all(releases), new Promise((r) => setTimeout(r, 2000))]);
    Deno.exit(130);
  });
  Deno.exit(await main(Deno.args));
}

if (import.meta.main) await runCli();
