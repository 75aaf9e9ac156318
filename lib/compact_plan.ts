/**
 * The plan of `vger compact` (lib/compactor.ts executes it): which blobs are live, how each pack
 * is used, and which packs are deleted or rewritten. It reads the manifest, the index and the
 * archives' item streams and changes nothing.
 *
 * **Plan.** The live set is every item-stream blob of every archive in the manifest and every
 * chunk those items name. Per pack (grouping the index entries by pack): packs with no live blob
 * are deleted; packs whose unused share reaches the threshold (default 20 %; 0 rewrites every pack
 * with any unused byte) are rewritten, i.e. their live blobs are copied into new packs; packs in
 * storage that the index does not reference at all (left by a crashed or refused backup) are
 * deleted; index entries of dead blobs are dropped. A pack's unused bytes are its size minus what
 * a pack holding exactly its live blobs would take (their records plus the preamble, the sealed
 * header and the trailer), so a pack whose every record is live has none.
 *
 * **Live set.** The index's own plaintext is kept: its entries are sorted by id (FORMAT.md, the
 * canonical encoding), so a 65 536-bucket table on the first two id bytes plus a short binary
 * search finds an id's entry number (encoded_index.ts's {@linkcode EncodedIndex}), and liveness is
 * one bit per index entry. That is 48 bytes per entry for the sorted table (which replaces a
 * second copy of the index) plus 1 bit, instead of ~100 bytes per id for a Set of hex strings.
 *
 * @example Plan
 * ```ts ignore
 * import { planCompaction } from "./compact_plan.ts";
 *
 * const plan = await planCompaction(repo, { thresholdPercent: 10 });
 * console.log(`${plan.bytesToFree} bytes to free`);
 * ```
 *
 * @module
 */

import type { ReadonlyBackend } from "../backends/backend.ts";
import { decodeItems } from "./archive.ts";
import type { ChunkLocation } from "./chunk_index.ts";
import { EncodedIndex } from "./encoded_index.ts";
import type { CodecPool } from "./codec_pool.ts";
import { ObjectType, SEAL_OVERHEAD_AES, SEAL_OVERHEAD_NONE } from "./crypto.ts";
import { IntegrityError, NotFoundError, UsageError } from "./errors.ts";
import { bytesEqual, toHex } from "./ids.ts";
import { listPacks } from "./index_recovery.ts";
import type { ManifestEntry } from "./manifest.ts";
import { HEADER_ENTRY_SIZE, packSizeBesidesRecords, recordSize } from "./pack.ts";
import { packTarget } from "./packer.ts";
import type { Repository } from "./repository.ts";

/** Default unused share (percent) from which a pack is rewritten. */
export const DEFAULT_THRESHOLD_PERCENT = 20;

/** Where compaction is and how far. */
export interface CompactProgress {
  /** scan: archives walked; copy: live blobs done (copied, or left as corrupt); delete: packs. */
  phase: "scan" | "copy" | "index" | "delete";
  /** Done so far. */
  done: number;
  /** Total of this phase. */
  total: number;
  /** copy: record bytes of the live blobs done (copied, or left as corrupt). */
  bytes?: number;
  /** copy: record bytes of the live blobs to copy (the plan's `copyBytes`). */
  totalBytes?: number;
}

/** Options of {@linkcode planCompaction}. */
export interface PlanOptions {
  /** Rewrite packs whose unused share is at least this percent (0..100, default 20). */
  thresholdPercent?: number;
  /** Codec workers for reading item-stream blobs (default: the main thread). */
  pool?: CodecPool;
  /** Called as the work advances. */
  onProgress?: (progress: CompactProgress) => void;
}

/** How one pack is used. */
export interface PackUsage {
  /** Pack id (hex). */
  id: string;
  /** Size in storage (0 when it is missing). */
  size: number;
  /** Index entries pointing into it. */
  blobs: number;
  /** Of those, blobs some archive uses. */
  liveBlobs: number;
  /** Bytes of the live records (object lengths + 8 each). */
  liveBytes: number;
  /** Bytes a rewrite would free: size minus what a pack of just the live blobs takes. */
  unusedBytes: number;
}

/** What compaction would do. */
export interface CompactionPlan {
  /** The threshold used (percent). */
  thresholdPercent: number;
  /** Archives walked for the live set. */
  archives: number;
  /** Pack objects in storage. */
  packs: number;
  /** Their total size. */
  storedBytes: number;
  /** Indexed packs with no live blob: deleted. */
  deletePacks: PackUsage[];
  /** Packs whose unused share reaches the threshold: live blobs copied, then deleted. */
  rewritePacks: PackUsage[];
  /** Packs in storage that the index does not reference: deleted. */
  unreferencedPacks: PackUsage[];
  /** Indexed packs with live blobs that are missing from storage (left alone; run check). */
  missingPacks: PackUsage[];
  /** Index entries of blobs no archive uses: dropped. */
  deadBlobs: number;
  /** Live blobs to copy out of rewritten packs. */
  copyBlobs: number;
  /** Their record bytes. */
  copyBytes: number;
  /** Estimated storage freed (deleted and rewritten packs minus the new packs). */
  bytesToFree: number;
  /** Chunks that items reference but the index lacks (damage compaction cannot repair). */
  missingChunks: number;
  /** Whether compaction would change nothing. */
  nothingToDo: boolean;
}

/** Works out what compaction would do; reads only. */
export async function planCompaction(
  repo: Repository<ReadonlyBackend>,
  options: PlanOptions = {},
): Promise<CompactionPlan> {
  return (await scanCompaction(repo, options)).plan;
}

// ---------------------------------------------------------------------------------------------
// The index table: the sorted index plaintext, with one live bit per entry

/** The index plaintext read in place (lib/chunk_index.ts), with a live and a walked bit per entry. */
export class IndexTable extends EncodedIndex {
  readonly #live: Uint8Array;
  /** Item-stream blobs whose items were already walked. */
  readonly #walked: Uint8Array;

  /** A table over `plain`, the index's plaintext, with nothing live yet. */
  constructor(plain: Uint8Array) {
    super(plain);
    this.#live = new Uint8Array(Math.ceil(this.count / 8));
    this.#walked = new Uint8Array(Math.ceil(this.count / 8));
  }

  /** Whether entry i is live. */
  isLive(i: number): boolean {
    return (this.#live[i >>> 3] & (1 << (i & 7))) !== 0;
  }

  /** Marks entry i live. */
  markLive(i: number): void {
    this.#live[i >>> 3] |= 1 << (i & 7);
  }

  /** Marks an item blob walked; returns whether it already was. */
  markWalked(i: number): boolean {
    const was = (this.#walked[i >>> 3] & (1 << (i & 7))) !== 0;
    this.#walked[i >>> 3] |= 1 << (i & 7);
    return was;
  }

  /** Whether `loc` is where entry i says the blob is. */
  sameLocation(i: number, loc: ChunkLocation): boolean {
    return loc.offset === this.offsetOf(i) && bytesEqual(loc.pack, this.packId(this.packOf(i)));
  }
}

// ---------------------------------------------------------------------------------------------
// Scan and plan

/** What a scan found: the plan, and what executing it needs. */
export interface Scan {
  /** The plan. */
  plan: CompactionPlan;
  /** The index, with the live set marked. */
  table: IndexTable;
  /** Hex ids of the archives the live set covers. */
  archiveIds: Set<string>;
  /** Pack numbers (in the table) to rewrite. */
  rewrite: number[];
  /** Pack target size for new packs. */
  target: number;
}

/** Bytes a pack of `n` blobs takes besides their records. */
function packOverhead(repo: Pick<Repository<ReadonlyBackend>, "key">, n: number): number {
  const seal = repo.key.encrypted ? SEAL_OVERHEAD_AES : SEAL_OVERHEAD_NONE;
  return packSizeBesidesRecords(n, seal);
}

function checkThreshold(t: number): number {
  if (typeof t !== "number" || !Number.isFinite(t) || t < 0 || t > 100) {
    throw new UsageError(`Invalid compaction threshold ${t}: use a percentage from 0 to 100`);
  }
  return t;
}

/** An archive whose items cannot be read leaves the live set unknown: refuse to compact. */
function incomplete(
  repo: Repository<ReadonlyBackend>,
  entry: ManifestEntry,
  err: unknown,
): unknown {
  if (!(err instanceof IntegrityError || err instanceof NotFoundError)) return err;
  return new IntegrityError(
    `Cannot compact "${repo.location}": archive "${entry.name}" cannot be read completely, so the data it uses is unknown (${err.message}); run vger check`,
    { cause: err },
  );
}

/** Finds the live set (reading the manifest, the index and every archive's items), then plans. */
export async function scanCompaction(
  repo: Repository<ReadonlyBackend>,
  options: PlanOptions,
): Promise<Scan> {
  const thresholdPercent = checkThreshold(options.thresholdPercent ?? DEFAULT_THRESHOLD_PERCENT);
  // List before reading the index: a pack committed in between is then indexed, never taken
  // for an unreferenced one.
  const stored = (await listPacks(repo.backend)).packs;
  const manifest = await repo.readManifest();
  const { plain, index } = await repo.readIndexPlain();
  const table = new IndexTable(plain);

  const archiveIds = new Set<string>();
  const missing = new Set<string>();
  const total = manifest.archives.length;
  for (const [n, entry] of manifest.archives.entries()) {
    options.onProgress?.({ phase: "scan", done: n, total });
    archiveIds.add(toHex(entry.id));
    let items: Uint8Array[];
    try {
      items = (await repo.readArchive(entry)).items;
    } catch (err) {
      throw incomplete(repo, entry, err);
    }
    for (const blobId of items) {
      const i = table.find(blobId);
      const what = `Metadata blob ${toHex(blobId)}`;
      if (i < 0) {
        throw incomplete(repo, entry, new IntegrityError(`${what} is missing from the index`));
      }
      table.markLive(i);
      // An unchanged tree gives the same blobs: walk each one once.
      if (table.markWalked(i)) continue;
      try {
        const blob = await repo.readBlob(index, blobId, ObjectType.items, options.pool);
        for (const item of decodeItems(blob, what, { archive: entry.name })) {
          for (const c of item.chunks ?? []) {
            const j = table.find(c);
            if (j >= 0) table.markLive(j);
            else missing.add(toHex(c));
          }
        }
      } catch (err) {
        throw incomplete(repo, entry, err);
      }
    }
  }
  options.onProgress?.({ phase: "scan", done: total, total });
  return planFromUsage(repo, table, stored, {
    thresholdPercent,
    archives: total,
    archiveIds,
    missingChunks: missing.size,
  });
}

/**
 * The plan from the index with its live set marked and the packs in storage (hex id -> size):
 * pure, no I/O.
 */
function planFromUsage(
  repo: Pick<Repository<ReadonlyBackend>, "key" | "config">,
  table: IndexTable,
  stored: Map<string, number>,
  facts: {
    thresholdPercent: number;
    archives: number;
    archiveIds: Set<string>;
    missingChunks: number;
  },
): Scan {
  const { thresholdPercent, archiveIds } = facts;
  const P = table.packCount;
  const blobs = new Uint32Array(P);
  const liveBlobs = new Uint32Array(P);
  const liveBytes = new Float64Array(P);
  let deadBlobs = 0;
  for (let i = 0; i < table.count; i++) {
    const pn = table.packOf(i);
    blobs[pn]++;
    if (table.isLive(i)) {
      liveBlobs[pn]++;
      liveBytes[pn] += recordSize(table.lengthOf(i));
    } else deadBlobs++;
  }

  const plan: CompactionPlan = {
    thresholdPercent,
    archives: facts.archives,
    packs: stored.size,
    storedBytes: 0,
    deletePacks: [],
    rewritePacks: [],
    unreferencedPacks: [],
    missingPacks: [],
    deadBlobs,
    copyBlobs: 0,
    copyBytes: 0,
    bytesToFree: 0,
    missingChunks: facts.missingChunks,
    nothingToDo: false,
  };
  for (const size of stored.values()) plan.storedBytes += size;
  const rewrite: number[] = [];
  const indexed = new Set<string>();
  for (let pn = 0; pn < P; pn++) {
    const id = toHex(table.packId(pn));
    indexed.add(id);
    const size = stored.get(id);
    const usage: PackUsage = {
      id,
      size: size ?? 0,
      blobs: blobs[pn],
      liveBlobs: liveBlobs[pn],
      liveBytes: liveBytes[pn],
      unusedBytes: 0,
    };
    if (liveBlobs[pn] === 0) {
      usage.unusedBytes = usage.size;
      plan.deletePacks.push(usage);
    } else if (size === undefined) {
      plan.missingPacks.push(usage);
    } else {
      usage.unusedBytes = Math.max(
        0,
        size - liveBytes[pn] - packOverhead(repo, liveBlobs[pn]),
      );
      if (usage.unusedBytes > 0 && usage.unusedBytes * 100 >= thresholdPercent * size) {
        plan.rewritePacks.push(usage);
        rewrite.push(pn);
        plan.copyBlobs += liveBlobs[pn];
        plan.copyBytes += liveBytes[pn];
      }
    }
  }
  for (const [id, size] of stored) {
    if (!indexed.has(id)) {
      plan.unreferencedPacks.push({
        id,
        size,
        blobs: 0,
        liveBlobs: 0,
        liveBytes: 0,
        unusedBytes: size,
      });
    }
  }
  const byId = (a: PackUsage, b: PackUsage) => a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
  plan.deletePacks.sort(byId);
  plan.unreferencedPacks.sort(byId);
  plan.missingPacks.sort(byId);

  const target = packTarget(P, repo.config.minPackSize, repo.config.maxPackSize);
  const newPacks = plan.copyBlobs === 0 ? 0 : Math.max(1, Math.ceil(plan.copyBytes / target));
  const newBytes = plan.copyBytes + newPacks * packOverhead(repo, 0) +
    HEADER_ENTRY_SIZE * plan.copyBlobs;
  let freed = -newBytes;
  for (const p of [...plan.deletePacks, ...plan.rewritePacks, ...plan.unreferencedPacks]) {
    freed += p.size;
  }
  plan.bytesToFree = freed;
  plan.nothingToDo = plan.deletePacks.length === 0 && plan.rewritePacks.length === 0 &&
    plan.unreferencedPacks.length === 0 && deadBlobs === 0;
  return { plan, table, archiveIds, rewrite, target };
}
// ---------------------------------------------------------------------------------------------
// What to read for a rewrite

/** Live entry numbers of each pack to rewrite, in record order. */
export function liveEntriesByPack(table: IndexTable, rewrite: number[]): Map<number, number[]> {
  const byPack = new Map<number, number[]>(rewrite.map((pn) => [pn, []]));
  for (let i = 0; i < table.count; i++) {
    if (table.isLive(i)) byPack.get(table.packOf(i))?.push(i);
  }
  for (const list of byPack.values()) list.sort((a, b) => table.offsetOf(a) - table.offsetOf(b));
  return byPack;
}
