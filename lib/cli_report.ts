/**
 * What `vger` prints: each command's result turned into its `--json` object (snake_case fields,
 * the stable machine-readable output) and into its human text lines (without the trailing
 * newline). Pure: cli.ts decides where each goes (stdout or stderr) and whether `--quiet`
 * silences it.
 *
 * @example Render a finished backup both ways
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { backupJson, backupSummary } from "./cli_report.ts";
 *
 * const result = {
 *   archive: {
 *     name: "docs",
 *     id: new Uint8Array(32),
 *     time: "2024-05-01T10:00:00.000Z",
 *     hostname: "h",
 *     username: "u",
 *     stats: { files: 3, original: 2048, compressed: 1024, deduplicated: 512 },
 *   },
 *   stats: { files: 3, original: 2048, compressed: 1024, deduplicated: 512 },
 *   warnings: [],
 *   seconds: 1.25,
 *   unchangedFiles: 0,
 * };
 * equal(backupJson("/mnt/repo", result).original_size, 2048);
 * equal(
 *   backupSummary(result),
 *   "Archive docs: 3 files, original 2.00 KiB, compressed 1.00 KiB, deduplicated 512 B, 1.3 s",
 * );
 * ```
 *
 * @module
 */

import type { Item } from "./archive.ts";
import type { BackupResult } from "./archiver.ts";
import type {
  Affected,
  BrokenArchive,
  CheckResult,
  DamagedFile,
  Problem,
  RepairResult,
  SalvagedPack,
  Severity,
  UnreadablePack,
} from "./check_report.ts";
import type { KeyChangePassphraseResult, KeyImportResult, PruneResult } from "./commands.ts";
import type { CompactionResult, CorruptBlob } from "./compactor.ts";
import { toHex } from "./ids.ts";
import type { ManifestEntry } from "./manifest.ts";
import { formatBytes } from "./cli_progress.ts";
import type { RepoConfig } from "./repo_config.ts";
import type { LockEntry, LockInfo } from "./repo_lock.ts";
import type { ExtractResult } from "./restorer.ts";
import { describeRetention, type RetentionDecision, type RetentionPolicy } from "./retention.ts";

/** Paths a check problem line names before it says "...". */
const AFFECTED_PATHS_SHOWN = 5;

// ---------------------------------------------------------------------------------------------
// config, init

/** `vger config --json`. */
export interface ConfigJson {
  /** The starter file written. */
  written: string;
}

/** The `--json` object of `vger config`. */
export function configJson(dest: string): ConfigJson {
  return { written: dest };
}

/** The line `vger config` prints (on stderr) after writing the starter file. */
export function configSummary(dest: string): string {
  return `Wrote ${dest}: set the repository path and source_directories, then run vger init`;
}

/** `vger init --json`. */
export interface InitJson {
  /** Repository path. */
  repository: string;
  /** Random repository id (hex). */
  id: string;
  /** Encryption mode. */
  encryption: string;
}

/** The `--json` object of `vger init`. */
export function initJson(repository: string, config: RepoConfig): InitJson {
  return { repository, id: config.id, encryption: config.encryption };
}

/** The line `vger init` prints (on stderr). */
export function initSummary(repository: string, config: RepoConfig): string {
  return `Created repository ${repository} (${config.encryption})`;
}

// ---------------------------------------------------------------------------------------------
// backup, extract

/** `vger backup --json`. */
export interface BackupJson {
  /** Repository path. */
  repository: string;
  /** Archive name. */
  archive: string;
  /** Archive id (hex). */
  id: string;
  /** Items backed up. */
  files: number;
  /** Bytes of file contents read. */
  original_size: number;
  /** Bytes after compression. */
  compressed_size: number;
  /** Bytes the archive added to the repository. */
  deduplicated_size: number;
  /** Seconds the backup took. */
  duration_seconds: number;
  /** Files taken from the files cache without reading them. */
  unchanged_files: number;
  /** Skipped files (exit code 3 when any). */
  warnings: string[];
}

/** The `--json` object of `vger backup`. */
export function backupJson(repository: string, result: BackupResult): BackupJson {
  const s = result.stats;
  return {
    repository,
    archive: result.archive.name,
    id: toHex(result.archive.id),
    files: s.files,
    original_size: s.original,
    compressed_size: s.compressed,
    deduplicated_size: s.deduplicated,
    duration_seconds: result.seconds,
    unchanged_files: result.unchangedFiles,
    warnings: result.warnings,
  };
}

/** The summary line of `vger backup`: files, sizes and seconds. */
export function backupSummary(result: BackupResult): string {
  const s = result.stats;
  return `Archive ${result.archive.name}: ${s.files} files, original ${formatBytes(s.original)}, ` +
    `compressed ${formatBytes(s.compressed)}, deduplicated ${formatBytes(s.deduplicated)}, ` +
    `${result.seconds.toFixed(1)} s`;
}

/** `vger extract --json`. */
export interface ExtractJson {
  /** Repository path. */
  repository: string;
  /** Archive name. */
  archive: string;
  /** Items restored. */
  files: number;
  /** File bytes restored. */
  bytes: number;
  /** Skipped items (exit code 3 when any). */
  warnings: string[];
}

/** The `--json` object of `vger extract`. */
export function extractJson(
  repository: string,
  result: ExtractResult,
  options: { archive: string },
): ExtractJson {
  return {
    repository,
    archive: options.archive,
    files: result.files,
    bytes: result.bytes,
    warnings: result.warnings,
  };
}

/** The summary line of `vger extract`. */
export function extractSummary(result: ExtractResult, options: { dest: string }): string {
  return `Restored ${result.files} items, ${formatBytes(result.bytes)} to ${options.dest}`;
}

// ---------------------------------------------------------------------------------------------
// list

/** One archive in `vger list --json`. */
export interface ArchiveJson {
  /** Archive name. */
  name: string;
  /** Archive id (hex). */
  id: string;
  /** When the backup started (ISO 8601). */
  time: string;
  /** Host that made it. */
  hostname: string;
  /** User that made it. */
  username: string;
  /** Items in it. */
  files: number;
  /** Bytes of file contents. */
  original_size: number;
  /** Bytes after compression. */
  compressed_size: number;
  /** Bytes it added to the repository. */
  deduplicated_size: number;
}

/** `vger list --json` without an archive. */
export interface ArchivesJson {
  /** Repository path. */
  repository: string;
  /** The manifest's archives, in its order. */
  archives: ArchiveJson[];
}

/** The `--json` object of `vger list` without an archive. */
export function archivesJson(repository: string, archives: readonly ManifestEntry[]): ArchivesJson {
  return {
    repository,
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
  };
}

/** One line of `vger list`: name (padded to 32), time, host, files and original size. */
export function archiveLine(archive: ManifestEntry): string {
  const a = archive;
  return `${a.name.padEnd(32)} ${a.time}  ${a.hostname}  ${a.stats.files} files  ${
    formatBytes(a.stats.original)
  }`;
}

/** One item in `vger list --archive NAME --json`. */
export interface ItemJson {
  /** Stored path, without the leading "/". */
  path: string;
  /** file, dir or symlink. */
  type: string;
  /** Permission bits. */
  mode: number;
  /** Owner uid. */
  uid: number;
  /** Owner gid. */
  gid: number;
  /** Owner user name, or null when unknown. */
  user: string | null;
  /** Owner group name, or null when unknown. */
  group: string | null;
  /** Size in bytes. */
  size: number;
  /** Modification time in nanoseconds since the epoch, as a decimal string (exceeds 2^53). */
  mtime_ns: string;
  /** Link target, or null when not a symlink. */
  target: string | null;
}

/** `vger list --archive NAME --json`. */
export interface ItemsJson {
  /** Repository path. */
  repository: string;
  /** Archive name. */
  archive: string;
  /** The selected items, in archive order. */
  items: ItemJson[];
}

/** One item of `vger list --archive NAME --json`. */
export function itemJson(item: Item): ItemJson {
  return {
    path: item.path,
    type: item.type,
    mode: item.mode,
    uid: item.uid,
    gid: item.gid,
    user: item.user ?? null,
    group: item.group ?? null,
    size: item.size,
    mtime_ns: item.mtimeNs.toString(),
    target: item.target ?? null,
  };
}

/** The `--json` object of `vger list --archive NAME`, from rows made by {@linkcode itemJson}. */
export function itemsJson(
  repository: string,
  items: ItemJson[],
  options: { archive: string },
): ItemsJson {
  return { repository, archive: options.archive, items };
}

/** An item's type and permission bits as `ls -l` shows them, e.g. `drwxr-x---`. */
export function modeString(item: Pick<Item, "type" | "mode">): string {
  const t = item.type === "dir" ? "d" : item.type === "symlink" ? "l" : "-";
  const rwx = "rwxrwxrwx";
  let s = "";
  for (let i = 0; i < 9; i++) s += item.mode & (1 << (8 - i)) ? rwx[i] : "-";
  return t + s;
}

/** The time column of `vger list --archive NAME`: UTC to the second, `2024-05-01 10:00:00`. */
export function itemTime(mtimeNs: bigint): string {
  return new Date(Number(mtimeNs / 1_000_000n)).toISOString().slice(0, 19).replace("T", " ");
}

/** One line of `vger list --archive NAME`: mode, owner, size, time, path (and link target). */
export function itemLine(item: Item): string {
  const owner = `${item.user ?? item.uid} ${item.group ?? item.gid}`;
  return `${modeString(item)} ${owner.padEnd(17)} ${String(item.size).padStart(12)} ${
    itemTime(item.mtimeNs)
  } ${item.path}${item.target !== undefined ? ` -> ${item.target}` : ""}`;
}

// ---------------------------------------------------------------------------------------------
// prune, delete, compact

/** One archive's fate in `vger prune --json`. */
export interface PruneDecisionJson {
  /** Archive name. */
  name: string;
  /** When the backup started (ISO 8601). */
  time: string;
  /** Whether the policy keeps it. */
  keep: boolean;
  /** The rules that keep it (empty when pruned). */
  reasons: string[];
}

/** `vger prune --json`. */
export interface PruneJson {
  /** Repository path. */
  repository: string;
  /** Whether nothing was deleted on purpose. */
  dry_run: boolean;
  /** The retention policy in words. */
  policy: string;
  /** Every archive, newest first. */
  archives: PruneDecisionJson[];
  /** Names of the archives deleted (none on a dry run). */
  deleted: string[];
}

/** The `--json` object of `vger prune`. */
export function pruneJson(
  repository: string,
  result: PruneResult,
  options: { dryRun: boolean; policy: RetentionPolicy },
): PruneJson {
  return {
    repository,
    dry_run: options.dryRun,
    policy: describeRetention(options.policy),
    archives: result.decisions.map((d) => ({
      name: d.archive.name,
      time: d.archive.time,
      keep: d.keep,
      reasons: d.reasons,
    })),
    deleted: result.deleted.map((a) => a.name),
  };
}

/** The lines of `vger prune --list` (and `--dry-run`): keep or (would) prune, name, time, why. */
export function pruneDecisionLines(
  decisions: readonly RetentionDecision<ManifestEntry>[],
  options: { dryRun: boolean },
): string[] {
  return decisions.map((d) => {
    const what = d.keep ? "keep " : options.dryRun ? "would prune" : "prune";
    const why = d.keep ? `  (${d.reasons.join(", ")})` : "";
    return `${what.padEnd(11)} ${d.archive.name.padEnd(32)} ${d.archive.time}${why}`;
  });
}

/** The summary line of `vger prune`: how many archives were (or would be) pruned, and the policy. */
export function pruneSummary(
  result: PruneResult,
  options: { dryRun: boolean; policy: RetentionPolicy },
): string {
  const pruned = result.decisions.filter((d) => !d.keep).length;
  return `${options.dryRun ? "Would prune" : "Pruned"} ${pruned} of ${result.decisions.length} ` +
    `archives (${describeRetention(options.policy)})`;
}

/** One archive in `vger delete --json`. */
export interface DeletedArchiveJson {
  /** Archive name. */
  name: string;
  /** Archive id (hex). */
  id: string;
  /** When the backup started (ISO 8601). */
  time: string;
}

/** `vger delete --json`. */
export interface DeleteJson {
  /** Repository path. */
  repository: string;
  /** Whether nothing was deleted on purpose. */
  dry_run: boolean;
  /** The archives deleted (or that would be). */
  archives: DeletedArchiveJson[];
}

/** The `--json` object of `vger delete`. */
export function deleteJson(
  repository: string,
  deleted: readonly ManifestEntry[],
  options: { dryRun: boolean },
): DeleteJson {
  return {
    repository,
    dry_run: options.dryRun,
    archives: deleted.map((a) => ({ name: a.name, id: toHex(a.id), time: a.time })),
  };
}

/** The lines of `vger delete`: one per archive deleted (or that would be). */
export function deleteLines(
  deleted: readonly ManifestEntry[],
  options: { dryRun: boolean },
): string[] {
  const verb = options.dryRun ? "Would delete" : "Deleted";
  return deleted.map((a) => `${verb} archive ${a.name} (${a.time})`);
}

/** `vger compact --json`. */
export interface CompactJson {
  /** Repository path. */
  repository: string;
  /** Whether nothing was changed on purpose. */
  dry_run: boolean;
  /** The threshold used (percent). */
  threshold_percent: number;
  /** Pack objects in storage. */
  packs: number;
  /** Ids of packs with no live blob. */
  delete_packs: string[];
  /** Ids of packs whose live blobs are copied out. */
  rewrite_packs: string[];
  /** Ids of packs the index does not reference. */
  unreferenced_packs: string[];
  /** Estimated storage freed. */
  bytes_to_free: number;
  /** Storage freed (0 on a dry run). */
  bytes_freed: number;
  /** Live blobs that failed verification and were left in place. */
  corrupt: CorruptBlob[];
}

/** The `--json` object of `vger compact`. */
export function compactJson(
  repository: string,
  result: CompactionResult,
  options: { dryRun: boolean },
): CompactJson {
  const p = result.plan;
  return {
    repository,
    dry_run: options.dryRun,
    threshold_percent: p.thresholdPercent,
    packs: p.packs,
    delete_packs: p.deletePacks.map((x) => x.id),
    rewrite_packs: p.rewritePacks.map((x) => x.id),
    unreferenced_packs: p.unreferencedPacks.map((x) => x.id),
    bytes_to_free: p.bytesToFree,
    bytes_freed: result.bytesFreed,
    corrupt: result.corrupt,
  };
}

/** The summary line of `vger compact`: the plan, or what was done and freed. */
export function compactSummary(result: CompactionResult, options: { dryRun: boolean }): string {
  const p = result.plan;
  const plan = `${p.deletePacks.length + p.unreferencedPacks.length} packs to delete, ` +
    `${p.rewritePacks.length} to rewrite (${p.copyBlobs} blobs, ${formatBytes(p.copyBytes)} ` +
    `to copy), ${formatBytes(p.bytesToFree)} to free`;
  if (options.dryRun || p.nothingToDo) {
    return `${p.nothingToDo ? "Nothing to do: " : "Plan: "}${plan}`;
  }
  return `Compacted: ${plan}; freed ${formatBytes(result.bytesFreed)}`;
}

/** The warnings of `vger compact`: one per corrupt blob left in place. */
export function compactWarnings(corrupt: readonly CorruptBlob[]): string[] {
  return corrupt.map((c) =>
    `blob ${c.id} in pack ${c.pack} is corrupt and was left in place: ${c.reason}`
  );
}

// ---------------------------------------------------------------------------------------------
// check, check --repair

/** Who a problem affects in `vger check --json`. */
export interface AffectedJson {
  /** Archive names. */
  archives: string[];
  /** Stored paths (at most 1000). */
  paths: string[];
  /** Whether more paths were affected than listed. */
  paths_truncated: boolean;
}

/** One problem in `vger check --json`. */
export interface ProblemJson {
  /** What it is about (lib/checker.ts ProblemKind). */
  kind: string;
  /** error or warning. */
  severity: Severity;
  /** One line naming the object and the reason. */
  message: string;
  /** Who references the damaged data. */
  affects: AffectedJson;
}

/** `vger check --json`. */
export interface CheckJson {
  /** Repository path. */
  repository: string;
  /** Whether every pack was read through. */
  verify_data: boolean;
  /** Problems of severity error. */
  errors: number;
  /** Problems of severity warning. */
  warnings: number;
  /** Everything found. */
  problems: ProblemJson[];
  /** What was looked at. */
  stats: { archives: number; packs: number; blobs: number; bytes_read: number };
}

function errorCount(result: CheckResult): number {
  return result.problems.filter((p) => p.severity === "error").length;
}

/** The `--json` object of `vger check`. */
export function checkJson(
  repository: string,
  result: CheckResult,
  options: { verifyData: boolean },
): CheckJson {
  const errors = errorCount(result);
  return {
    repository,
    verify_data: options.verifyData,
    errors,
    warnings: result.problems.length - errors,
    problems: result.problems.map((p) => ({
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
      archives: result.stats.archives,
      packs: result.stats.packs,
      blobs: result.stats.blobs,
      bytes_read: result.stats.bytesRead,
    },
  };
}

/** ` (affects "a", "b": p1, ..., p5, ...)`, or "" when no archive is known to be affected. */
function affectsSuffix(a: Affected): string {
  if (a.archives.length === 0) return "";
  const more = a.paths.length > AFFECTED_PATHS_SHOWN || a.pathsTruncated ? ", ..." : "";
  const paths = a.paths.length > 0
    ? `: ${a.paths.slice(0, AFFECTED_PATHS_SHOWN).join(", ")}${more}`
    : "";
  return ` (affects ${a.archives.map((n) => `"${n}"`).join(", ")}${paths})`;
}

/** One line of `vger check` per problem: severity, message, and the archives and paths hit. */
export function problemLine(problem: Problem): string {
  return `${problem.severity}: ${problem.message}${affectsSuffix(problem.affects)}`;
}

/** The summary line of `vger check`: what was looked at, and the errors and warnings found. */
export function checkSummary(result: CheckResult, options: { verifyData: boolean }): string {
  const errors = errorCount(result);
  const s = result.stats;
  return `Checked ${s.archives} archives, ${s.packs} packs, ${s.blobs} blobs` +
    `${options.verifyData ? `, read ${formatBytes(s.bytesRead)}` : ""}: ` +
    `${errors} errors, ${result.problems.length - errors} warnings`;
}

/** A file with lost chunks in `vger check --repair --json`. */
export interface DamagedFileJson {
  /** The archive's name. */
  archive: string;
  /** The stored path. */
  path: string;
  /** How many of its chunk references are lost. */
  missing_chunks: number;
}

/** `vger check --repair --json`. */
export interface RepairJson {
  /** Repository path. */
  repository: string;
  /** Whether nothing was written on purpose. */
  dry_run: boolean;
  /** Entries of the rebuilt index. */
  entries: number;
  /** Packs the rebuilt index references. */
  packs: number;
  /** Packs left out because their header could not be read. */
  unreadable_packs: UnreadablePack[];
  /** Whether the rebuilt index differs from the stored one. */
  index_changed: boolean;
  /** Whether the rebuilt index was written. */
  index_written: boolean;
  /** Archives whose file list cannot be read. */
  broken_archives: BrokenArchive[];
  /** Names of the archives removed from the manifest. */
  removed_archives: string[];
  /** Damaged packs whose verifying blobs were copied into new packs. */
  salvaged_packs: SalvagedPack[];
  /** Files of kept archives whose chunks are lost (at most 1000). */
  damaged_files: DamagedFileJson[];
  /** Whether more files are damaged than `damaged_files` lists. */
  damaged_files_truncated: boolean;
  /** Why archives could not be looked at, or null. */
  manifest_error: string | null;
}

/** The `--json` object of `vger check --repair`. */
export function repairJson(
  repository: string,
  result: RepairResult,
  options: { dryRun: boolean },
): RepairJson {
  return {
    repository,
    dry_run: options.dryRun,
    entries: result.entries,
    packs: result.packs,
    unreadable_packs: result.unreadablePacks,
    index_changed: result.indexChanged,
    index_written: result.indexWritten,
    broken_archives: result.brokenArchives,
    removed_archives: result.removedArchives,
    salvaged_packs: result.salvagedPacks,
    damaged_files: result.damagedFiles.map((f: DamagedFile) => ({
      archive: f.archive,
      path: f.path,
      missing_chunks: f.missingChunks,
    })),
    damaged_files_truncated: result.damagedFilesTruncated,
    manifest_error: result.manifestError ?? null,
  };
}

/**
 * The lines of `vger check --repair`: the index, unreadable and salvaged packs, broken archives,
 * damaged files.
 */
export function repairLines(result: RepairResult): string[] {
  const r = result;
  const index = r.indexWritten
    ? " (rebuilt and written)"
    : r.indexChanged
    ? " (would be rewritten)"
    : " (unchanged)";
  return [
    `Index: ${r.entries} blobs in ${r.packs} packs${index}`,
    ...r.unreadablePacks.map((p) => `unreadable pack ${p.key}: ${p.error}`),
    ...r.salvagedPacks.map((p) =>
      `damaged pack ${p.key}: ${p.reason}; ${
        r.indexWritten || p.removed ? "copied" : "would copy"
      } ${p.kept} blobs that verify into new packs, ${p.lost} lost${p.removed ? " (removed)" : ""}`
    ),
    ...r.brokenArchives.map((b) =>
      `archive ${b.name}: ${b.reason}${r.removedArchives.includes(b.name) ? " (removed)" : ""}`
    ),
    ...r.damagedFiles.map((f) =>
      `damaged file ${f.archive}:/${f.path}: ${f.missingChunks} chunks lost ` +
      `(a backup of the same file stores them again)`
    ),
    ...(r.damagedFilesTruncated ? ["(more damaged files not listed)"] : []),
  ];
}

// ---------------------------------------------------------------------------------------------
// break-lock, key

/** One removed lock in `vger break-lock --json`: its key and, when it parsed, its content. */
export interface RemovedLockJson extends Partial<LockInfo> {
  /** The object key, `locks/<id>`. */
  key: string;
}

/** `vger break-lock --json`. */
export interface BreakLockJson {
  /** Repository path. */
  repository: string;
  /** The locks removed. */
  removed: RemovedLockJson[];
}

/** The `--json` object of `vger break-lock`. */
export function breakLockJson(repository: string, removed: readonly LockEntry[]): BreakLockJson {
  return { repository, removed: removed.map((l) => ({ key: l.key, ...l.info })) };
}

/** The lines of `vger break-lock`: one per lock removed, or one saying there was none. */
export function breakLockLines(
  repository: string,
  removed: readonly LockEntry[],
  options: { all: boolean },
): string[] {
  if (removed.length === 0) return [`No ${options.all ? "" : "stale "}locks in ${repository}`];
  return removed.map((l) => {
    const who = l.info
      ? `${l.info.host}/${l.info.pid} since ${l.info.time} (${l.info.command})`
      : "unreadable";
    return `Removed lock ${l.key}: ${who}`;
  });
}

/** `vger key change-passphrase --json`. */
export interface KeyChangePassphraseJson {
  /** Repository path. */
  repository: string;
  /** Always true: the passphrase was changed. */
  changed: true;
  /** The Argon2id costs the key file is now wrapped with. */
  kdf: { memory_kib: number; iterations: number; parallelism: number };
}

/** The `--json` object of `vger key change-passphrase`. */
export function keyChangePassphraseJson(
  repository: string,
  result: KeyChangePassphraseResult,
): KeyChangePassphraseJson {
  return {
    repository,
    changed: true,
    kdf: {
      memory_kib: result.kdf.memoryKiB,
      iterations: result.kdf.iterations,
      parallelism: result.kdf.parallelism,
    },
  };
}

/** The line `vger key change-passphrase` prints (on stderr). */
export function keyChangePassphraseSummary(repository: string): string {
  return `Changed the passphrase of ${repository}; earlier key exports still open it with the old one`;
}

/** `vger key export --json`. */
export interface KeyExportJson {
  /** Repository path. */
  repository: string;
  /** The file the key was written to. */
  written: string;
}

/** The `--json` object of `vger key export`. */
export function keyExportJson(repository: string, dest: string): KeyExportJson {
  return { repository, written: dest };
}

/** The line `vger key export` prints (on stderr). */
export function keyExportSummary(repository: string, dest: string): string {
  return `Wrote the key of ${repository} to ${dest}; keep it and the passphrase, apart`;
}

/** `vger key import --json`. */
export interface KeyImportJson {
  /** Repository path. */
  repository: string;
  /** The file imported. */
  imported: string;
  /** What the key file was before: missing, damaged, intact or identical. */
  previous: KeyImportResult["previous"];
}

/** The `--json` object of `vger key import`. */
export function keyImportJson(
  repository: string,
  result: KeyImportResult,
  options: { file: string },
): KeyImportJson {
  return { repository, imported: options.file, previous: result.previous };
}

/** The line `vger key import` prints (on stderr). */
export function keyImportSummary(
  repository: string,
  result: KeyImportResult,
  options: { file: string },
): string {
  return result.previous === "identical"
    ? `The key file of ${repository} already is ${options.file}: nothing changed`
    : `Imported ${options.file} as the key of ${repository} (the old one was ${result.previous})`;
}
