/**
 * `vger compact` on the command line: its glue (progress) and its result as `--json` and as text.
 *
 * @module
 */

import { compactCommand } from "./commands.ts";
import type { CompactionResult, CorruptBlob } from "./compactor.ts";
import { bool, thresholdFlag } from "./cli_command_line.ts";
import { formatBytes } from "./cli_progress.ts";
import { emit, type Run } from "./cli_run.ts";

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
  /** Whether the new packs were composed on the server (no record travelled). */
  server_side: boolean;
  /** Bytes sent for the new packs: whole packs, or the server's compose plans. */
  bytes_uploaded: number;
  /** Bytes read for the rewrite: the live records, or (server-side) pack headers. */
  bytes_downloaded: number;
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
    server_side: result.serverSide,
    bytes_uploaded: result.bytesUploaded,
    bytes_downloaded: result.bytesDownloaded,
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
  const where = result.serverSide ? " on the server" : "";
  return `Compacted${where}: ${plan}; freed ${formatBytes(result.bytesFreed)} ` +
    `(${formatBytes(result.bytesUploaded)} up, ${formatBytes(result.bytesDownloaded)} down)`;
}

/** The warnings of `vger compact`: one per corrupt blob left in place. */
export function compactWarnings(corrupt: readonly CorruptBlob[]): string[] {
  return corrupt.map((c) =>
    `blob ${c.id} in pack ${c.pack} is corrupt and was left in place: ${c.reason}`
  );
}

/** `vger compact [--threshold PERCENT] [--dry-run] [--no-server-side]`. */
export async function runCompact(run: Run): Promise<number> {
  const { flags, repo, meter } = run;
  const threshold = thresholdFlag(flags);
  const dryRun = !!bool(flags, "dry-run");
  const r = await compactCommand(await run.backend(), {
    ...run.locking,
    ...run.trusting,
    passphrase: run.passphrase,
    thresholdPercent: threshold,
    dryRun,
    serverSide: !bool(flags, "no-server-side"),
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
    () => compactJson(repo.path, r, { dryRun }),
    () => compactSummary(r, { dryRun }),
  );
  for (const w of compactWarnings(r.corrupt)) run.warn(w);
  return r.corrupt.length > 0 ? 3 : 0;
}
