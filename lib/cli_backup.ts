/**
 * `vger backup` and `vger extract` on the command line: their glue (archive name, excludes,
 * compression, the progress pre-scan) and their result as `--json` and as text.
 *
 * @example Render a finished backup both ways
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { backupJson, backupSummary } from "./cli_backup.ts";
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

import type { BackupResult } from "./archiver.ts";
import { formatArchiveName } from "./archive_name_format.ts";
import { backupCommand, extractCommand } from "./commands.ts";
import { DEFAULT_ARCHIVE_NAME_FORMAT } from "./config.ts";
import { bool, list, oneArchive, str } from "./cli_command_line.ts";
import { formatBytes } from "./cli_progress.ts";
import { emit, type Run } from "./cli_run.ts";
import { type CompressionAlgorithm, validateCompression } from "./compress.ts";
import { UsageError } from "./errors.ts";
import { filesCacheDir } from "./files_cache.ts";
import { toHex } from "./ids.ts";
import { ExcludeMatcher } from "./patterns.ts";
import type { ExtractResult } from "./restorer.ts";
import { scanSources } from "./scanner.ts";

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

/**
 * The command line an archive records: vger's arguments, with the user and password of any URL
 * (`https://user:secret@host/`) replaced by `***`, so no credential is ever stored.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { recordedCommandLine } from "./cli_backup.ts";
 *
 * deepStrictEqual(
 *   recordedCommandLine(["backup", "--repo", "https://me:tok@h/r", "/home"]),
 *   ["backup", "--repo", "https://***@h/r", "/home"],
 * );
 * ```
 */
export function recordedCommandLine(argv: string[]): string[] {
  return argv.map((a) => a.replace(/(\b[a-z][a-z0-9+.-]*:\/\/)[^/@\s]*@/gi, "$1***@"));
}

/** `vger backup [PATHS]`. */
export async function runBackup(run: Run): Promise<number> {
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
  const result = await backupCommand(await run.backend(), {
    ...run.locking,
    ...run.trusting,
    onIndexRebuilt: warn,
    passphrase: run.passphrase,
    name,
    sources,
    commandLine: recordedCommandLine(run.argv),
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
  emit(run, () => backupJson(repo.path, result), () => backupSummary(result));
  return result.warnings.length > 0 ? 3 : 0;
}

/** `vger extract --archive NAME --dest DIR [PATTERNS]`. */
export async function runExtract(run: Run): Promise<number> {
  const { args, flags, repo, meter } = run;
  const archive = oneArchive(flags, "extract");
  if (!archive) throw new UsageError("extract needs --archive NAME");
  const dest = str(flags, "dest");
  if (!dest) throw new UsageError("extract needs --dest DIR");
  const result = await extractCommand(await run.backend(), {
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
    () => extractJson(repo.path, result, { archive }),
    () => extractSummary(result, { dest }),
  );
  return result.warnings.length > 0 ? 3 : 0;
}
