/**
 * `vger check` and `vger check --repair` on the command line: their glue (progress, the question
 * before removing archives) and their result as `--json` and as text.
 *
 * @module
 */

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
import { checkCommand, repairCommand } from "./commands.ts";
import { bool } from "./cli_command_line.ts";
import { formatBytes, type ProgressMeter } from "./cli_progress.ts";
import { emit, printJson, printLines, promptLine, type Run } from "./cli_run.ts";

/** Paths a check problem line names before it says "...". */
const AFFECTED_PATHS_SHOWN = 5;

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
  /** What it is about (lib/check_report.ts ProblemKind). */
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

/** `vger check [--verify-data]`. */
export async function runCheck(run: Run): Promise<number> {
  const { flags, repo, io, meter } = run;
  const verifyData = bool(flags, "verify-data");
  const r = await checkCommand(await run.backend(), {
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
    printJson(io, checkJson(repo.path, r, { verifyData }));
  } else {
    // --quiet drops the summary line; problems are always printed
    printLines(io.out, r.problems.map(problemLine));
    if (!bool(flags, "quiet")) printLines(io.out, checkSummary(r, { verifyData }));
  }
  return r.problems.some((p) => p.severity === "error") ? 1 : 0;
}

/** `vger check --repair [--verify-data] [--dry-run] [--yes]`. */
export async function runRepair(run: Run): Promise<number> {
  const { flags, repo, meter } = run;
  const dryRun = !!bool(flags, "dry-run");
  const r = await repairCommand(await run.backend(), {
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
  emit(run, () => repairJson(repo.path, r, { dryRun }), () => repairLines(r));
  return kept.length > 0 || r.manifestError ? 1 : 0;
}
