/**
 * `vger compact`: removes stored data that no archive references, like borg's
 * `compact --threshold` and restic's `prune`.
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
 * search finds an id's entry number, and liveness is one bit per index entry. That is 48 bytes per
 * entry for the sorted table (which replaces a second copy of the index) plus 1 bit, instead of
 * ~100 bytes per id for a Set of hex strings.
 *
 * **Execute**, in this crash-safe order:
 * 1. read the live records of each pack to rewrite (coalesced ranges, never whole packs) and
 *    verify each one before copying it: record length and CRC-32, open (authenticated) and
 *    decompress, plaintext length, and chunk id = HMAC(plaintext). A blob that fails is reported
 *    in `corrupt` and left where it is, so its pack stays; corrupt data is never laundered into a
 *    fresh pack with a valid CRC and header;
 * 2. write the new packs (the sealed objects copied verbatim; no re-encryption) and put them;
 * 3. under the commit lock: re-read the manifest (abort when an archive appeared that the live
 *    set did not include) and the index, drop the entries of dead blobs, point the copied blobs
 *    to their new packs, put `index`;
 * 4. only then delete the emptied, rewritten and unreferenced packs, skipping any pack the new
 *    index still references (e.g. one that holds a corrupt live blob).
 * A crash before 3 leaves the old index pointing at the old packs (the new packs are
 * unreferenced); after 3 the old packs are unreferenced extras. Either way every archive stays
 * restorable and the next compact deletes the leftovers.
 *
 * **Locking.** Deleting unreferenced packs and dropping dead entries is only safe when no backup
 * runs: a running backup may be uploading packs the index does not list yet, or may have
 * deduplicated against a blob this compaction considers dead. The caller must hold an exclusive
 * repository lock for the whole compaction (and pass `checkLock`, so that a lost lock stops it
 * before the next step). Step 3 additionally takes `locks/commit` (unless `lockHeld` says the
 * caller's lock already is that lock) and re-checks the manifest.
 *
 * @example Plan, then compact
 * ```ts ignore
 * import { compactRepository, planCompaction } from "./compactor.ts";
 *
 * const plan = await planCompaction(repo, { thresholdPercent: 10 });
 * console.log(`${plan.bytesToFree} bytes to free`);
 * const result = await compactRepository(repo, { thresholdPercent: 10 });
 * console.log(`${result.bytesFreed} bytes freed, ${result.corrupt.length} corrupt blobs`);
 * ```
 *
 * @module
 */

import type { Backend, ReadonlyBackend } from "../backends/backend.ts";
import { decodeItems } from "./archive.ts";
import { ChunkIndex, type ChunkLocation, EncodedIndex } from "./chunk_index.ts";
import type { CodecPool } from "./codec_pool.ts";
import { decompress } from "./compress.ts";
import { ObjectType, type ObjectTypeTag, SEAL_OVERHEAD_AES, SEAL_OVERHEAD_NONE } from "./crypto.ts";
import { IntegrityError, LockedError, NotFoundError, UsageError, VgerError } from "./errors.ts";
import { bytesEqual, toHex } from "./ids.ts";
import type { ManifestEntry } from "./manifest.ts";
import {
  HEADER_ENTRY_SIZE,
  MAX_BLOB,
  packSizeBesidesRecords,
  PackWriter,
  parseRecordPrefix,
  recordFault,
  recordSize,
  recordStart,
} from "./pack.ts";
import { SpillingSink } from "./staging.ts";
import { release } from "./bytes.ts";
import {
  commitChanges,
  type CommitTx,
  deletePack,
  type Repository,
  savePack,
} from "./repository.ts";
import { packKey, PACKS_PREFIX, parsePackKey } from "./storage_keys.ts";
import { packTarget } from "./packer.ts";

/** Default unused share (percent) from which a pack is rewritten. */
export const DEFAULT_THRESHOLD_PERCENT = 20;

/** Largest range read at once when copying records. */
const MAX_RANGE = 8 << 20;
/** Dead bytes between two live records that are still read in one range. */
const MAX_GAP = 256 << 10;

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

/** Options of {@linkcode compactRepository}. */
export interface CompactOptions extends PlanOptions {
  /** Only plan; change nothing. */
  dryRun?: boolean;
  /**
   * The caller already holds `locks/commit` (as its exclusive lock), so step 3 must not take it
   * again. Default false: step 3 takes the commit lock.
   */
  lockHeld?: boolean;
  /**
   * Called before each step that changes storage (copying, the index, deleting); throws to stop,
   * e.g. `() => lock.assertHeld()` when the exclusive lock was lost.
   */
  checkLock?: () => void;
  /** Tests only: stop after writing the new packs or the new index, as a crash would. */
  stopAfter?: "packs" | "index";
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

/** A live blob that failed verification and was left in its pack. */
export interface CorruptBlob {
  /** Blob id (hex). */
  id: string;
  /** Pack id (hex). */
  pack: string;
  /** Why it failed. */
  reason: string;
}

/** What compaction did. */
export interface CompactionResult {
  /** The plan it followed. */
  plan: CompactionPlan;
  /** Packs deleted (hex ids). */
  deletedPacks: string[];
  /** Packs whose live blobs were copied (hex ids); deleted unless they hold a corrupt blob. */
  rewrittenPacks: string[];
  /** Packs written (hex ids). */
  newPacks: string[];
  /** Bytes of deleted packs minus bytes of new packs. */
  bytesFreed: number;
  /** Live blobs that failed verification (left in place, their packs kept). */
  corrupt: CorruptBlob[];
}

/** Works out what compaction would do; reads only. */
export async function planCompaction(
  repo: Repository<ReadonlyBackend>,
  options: PlanOptions = {},
): Promise<CompactionPlan> {
  return (await scan(repo, options)).plan;
}

/** Compacts the repository (or only plans, with `dryRun`). Hold an exclusive lock around it. */
export async function compactRepository(
  repo: Repository<Backend>,
  options: CompactOptions = {},
): Promise<CompactionResult> {
  const s = await scan(repo, options);
  if (options.dryRun || s.plan.nothingToDo) {
    return {
      plan: s.plan,
      deletedPacks: [],
      rewrittenPacks: [],
      newPacks: [],
      bytesFreed: 0,
      corrupt: [],
    };
  }
  return await execute(repo, s, options);
}

// ---------------------------------------------------------------------------------------------
// The index table: the sorted index plaintext, with one live bit per entry

/** The index plaintext read in place (lib/chunk_index.ts), with a live and a walked bit per entry. */
class IndexTable extends EncodedIndex {
  readonly #live: Uint8Array;
  /** Item-stream blobs whose items were already walked. */
  readonly #walked: Uint8Array;

  constructor(plain: Uint8Array) {
    super(plain);
    this.#live = new Uint8Array(Math.ceil(this.count / 8));
    this.#walked = new Uint8Array(Math.ceil(this.count / 8));
  }

  isLive(i: number): boolean {
    return (this.#live[i >>> 3] & (1 << (i & 7))) !== 0;
  }

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

interface Scan {
  plan: CompactionPlan;
  table: IndexTable;
  /** Hex ids of the archives the live set covers. */
  archiveIds: Set<string>;
  /** Pack numbers (in the table) to rewrite. */
  rewrite: number[];
  /** Pack target size for new packs. */
  target: number;
}

/** Bytes a pack of `n` blobs takes besides their records. */
function packOverhead(repo: Repository<ReadonlyBackend>, n: number): number {
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

async function scan(repo: Repository<ReadonlyBackend>, options: PlanOptions): Promise<Scan> {
  const thresholdPercent = checkThreshold(options.thresholdPercent ?? DEFAULT_THRESHOLD_PERCENT);
  // List before reading the index: a pack committed in between is then indexed, never taken
  // for an unreferenced one.
  const stored = new Map<string, number>();
  for await (const o of repo.backend.list(PACKS_PREFIX)) {
    const hex = parsePackKey(o.key);
    if (hex !== null) stored.set(hex, o.size);
  }
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
        for (const item of decodeItems(blob, what)) {
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
    archives: total,
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
    missingChunks: missing.size,
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
// Execute

/**
 * Copies verified records into new packs and remembers where they went. Item-stream blobs and
 * file data go into packs of their own, as backups write them.
 */
class Copier {
  readonly moved = new ChunkIndex();
  readonly newPacks: string[] = [];
  newBytes = 0;
  /** The open pack of each blob type. */
  readonly #writers = new Map<ObjectTypeTag, PackWriter>();
  readonly #repo: Repository<Backend>;
  readonly #target: number;

  constructor(repo: Repository<Backend>, target: number) {
    this.#repo = repo;
    this.#target = target;
  }

  async add(id: Uint8Array, type: ObjectTypeTag, sealed: Uint8Array, raw: number): Promise<void> {
    const max = this.#repo.config.maxPackSize;
    // cut before a record that would pass the ceiling, as backups do
    let writer = this.#writers.get(type);
    if (
      writer && writer.count > 0 &&
      writer.finishedSizeWith(sealed.length, this.#repo.key) > max
    ) {
      await this.#flushType(type);
      writer = undefined;
    }
    if (!writer) this.#writers.set(type, writer = new PackWriter({ sink: new SpillingSink() }));
    writer.add(id, type, sealed, raw);
    if (writer.size >= this.#target) await this.#flushType(type);
  }

  async flush(): Promise<void> {
    for (const type of [...this.#writers.keys()]) await this.#flushType(type);
  }

  async #flushType(type: ObjectTypeTag): Promise<void> {
    const writer = this.#writers.get(type);
    this.#writers.delete(type);
    if (!writer || writer.count === 0) return;
    const pack = await writer.finish(this.#repo.key);
    try {
      await savePack(this.#repo, pack.id, pack.body);
    } finally {
      pack.dispose();
    }
    for (const e of pack.entries) {
      this.moved.set(e.id, {
        pack: pack.id,
        offset: e.offset,
        length: e.length,
        rawLength: e.rawLength,
      });
    }
    this.newPacks.push(toHex(pack.id));
    this.newBytes += pack.size;
  }

  abandon(): void {
    for (const writer of this.#writers.values()) writer.abandon();
    this.#writers.clear();
  }
}

/** Checks a sealed object against its id; throws IntegrityError. */
async function verifyBlob(
  repo: Repository<ReadonlyBackend>,
  pool: CodecPool | undefined,
  id: Uint8Array,
  sealed: Uint8Array,
  rawLength: number,
  what: string,
): Promise<ObjectTypeTag> {
  const type = sealed[0];
  if (type !== ObjectType.data && type !== ObjectType.items) {
    throw new IntegrityError(`${what} is corrupt: type tag ${type}`);
  }
  if (pool) {
    // the pool takes its copy over (`sealed` itself goes into the new pack) and re-hashes there
    await pool.verify(type, id, sealed.slice(), rawLength, what);
    return type;
  }
  const max = Math.min(MAX_BLOB, rawLength);
  const plain = decompress(await repo.key.open(type, id, sealed, what), max, what);
  if (plain.length !== rawLength) {
    throw new IntegrityError(
      `${what} is corrupt: ${plain.length} bytes, the index says ${rawLength}`,
    );
  }
  if (!bytesEqual(await repo.key.chunkId(plain), id)) {
    throw new IntegrityError(`${what} is corrupt: its contents do not match its id`);
  }
  return type;
}

/** Live entry numbers of each pack to rewrite, in record order. */
function liveEntriesByPack(table: IndexTable, rewrite: number[]): Map<number, number[]> {
  const byPack = new Map<number, number[]>(rewrite.map((pn) => [pn, []]));
  for (let i = 0; i < table.count; i++) {
    if (table.isLive(i)) byPack.get(table.packOf(i))?.push(i);
  }
  for (const list of byPack.values()) list.sort((a, b) => table.offsetOf(a) - table.offsetOf(b));
  return byPack;
}

/** Groups entries (in record order) into ranges of at most MAX_RANGE with small gaps. */
function ranges(table: IndexTable, entries: number[]): number[][] {
  const out: number[][] = [];
  let cur: number[] = [];
  let start = 0;
  let end = 0;
  for (const i of entries) {
    const s = recordStart(table.offsetOf(i));
    const e = table.offsetOf(i) + table.lengthOf(i);
    if (cur.length > 0 && (s - end > MAX_GAP || e - start > MAX_RANGE || s < end)) {
      out.push(cur);
      cur = [];
    }
    if (cur.length === 0) start = s;
    cur.push(i);
    end = e;
  }
  if (cur.length > 0) out.push(cur);
  return out;
}

/** Steps 1 and 2: verify and copy the live blobs of the packs to rewrite. */
async function copyLive(
  repo: Repository<Backend>,
  s: Scan,
  copier: Copier,
  corrupt: CorruptBlob[],
  options: CompactOptions,
): Promise<void> {
  const { table } = s;
  let done = 0;
  let bytesDone = 0;
  const total = s.plan.copyBlobs;
  const totalBytes = s.plan.copyBytes;
  const progress = () =>
    options.onProgress?.({ phase: "copy", done, total, bytes: bytesDone, totalBytes });
  /** Counts a live blob as done, copied or not. */
  const blobDone = (i: number) => {
    done++;
    bytesDone += recordSize(table.lengthOf(i));
    progress();
  };
  progress();
  for (const [pn, entries] of liveEntriesByPack(table, s.rewrite)) {
    const packHex = toHex(table.packId(pn));
    const key = packKey(table.packId(pn));
    for (const group of ranges(table, entries)) {
      const start = recordStart(table.offsetOf(group[0]));
      const last = group[group.length - 1];
      const end = table.offsetOf(last) + table.lengthOf(last);
      let bytes: Uint8Array;
      try {
        bytes = await repo.backend.getRange(key, start, end - start);
      } catch (err) {
        if (!(err instanceof IntegrityError || err instanceof NotFoundError)) throw err;
        for (const i of group) {
          corrupt.push({ id: toHex(table.idAt(i)), pack: packHex, reason: err.message });
          blobDone(i);
        }
        continue;
      }
      const checked = await Promise.all(group.map(async (i) => {
        const id = table.idAt(i);
        const what = `Blob ${toHex(id)} in pack ${packHex}`;
        const at = table.offsetOf(i) - start;
        const length = table.lengthOf(i);
        const stored = parseRecordPrefix(bytes, recordStart(at));
        const sealed = bytes.slice(at, at + length);
        try {
          const fault = recordFault(stored, sealed, length);
          if (fault === "length") {
            throw new IntegrityError(`${what} is corrupt: record length differs from the index`);
          }
          if (fault === "crc") {
            throw new IntegrityError(`${what} is corrupt: CRC-32 mismatch`);
          }
          const type = await verifyBlob(repo, options.pool, id, sealed, table.rawOf(i), what);
          return { i, id, type, sealed };
        } catch (err) {
          if (!(err instanceof VgerError && err.code === "integrity")) throw err;
          corrupt.push({ id: toHex(id), pack: packHex, reason: err.message });
          return null;
        }
      }));
      release(bytes); // every blob was sliced out of it
      // add in record order, so new packs keep the old order
      for (const [n, c] of checked.entries()) {
        if (c) await copier.add(c.id.slice(), c.type, c.sealed, table.rawOf(c.i));
        blobDone(group[n]);
      }
    }
  }
  await copier.flush();
}

/**
 * Step 3: re-reads the manifest and the index, drops dead entries, points copied blobs to their
 * new packs and stores the index. Returns the packs the stored index references.
 */
async function commitIndex(
  repo: Repository<Backend>,
  tx: CommitTx,
  s: Scan,
  moved: ChunkIndex,
): Promise<Set<string>> {
  const { table } = s;
  const manifest = await tx.manifest();
  const added = manifest.archives.find((a) => !s.archiveIds.has(toHex(a.id)));
  if (added) {
    throw new LockedError(
      `Cannot compact "${repo.location}": archive "${added.name}" was added while compacting; run compact again while no backup runs`,
    );
  }
  const index = await tx.index();
  let changed = false;
  for (let i = 0; i < table.count; i++) {
    if (table.isLive(i)) continue;
    const id = table.idAt(i);
    const loc = index.get(id);
    // an entry someone else changed meanwhile is theirs: leave it
    if (loc && table.sameLocation(i, loc)) changed = index.delete(id) || changed;
  }
  for (const [id, loc] of moved.entries()) {
    const i = table.find(id);
    const cur = index.get(id);
    if (i >= 0 && cur && table.sameLocation(i, cur)) {
      index.set(id, loc);
      changed = true;
    }
  }
  if (changed) tx.saveIndex(index);
  return new Set(index.packIds().map(toHex));
}

async function execute(
  repo: Repository<Backend>,
  s: Scan,
  options: CompactOptions,
): Promise<CompactionResult> {
  const { plan } = s;
  const corrupt: CorruptBlob[] = [];
  const copier = new Copier(repo, s.target);
  options.checkLock?.();
  try {
    await copyLive(repo, s, copier, corrupt, options);
  } catch (err) {
    copier.abandon();
    throw err;
  }
  const result: CompactionResult = {
    plan,
    deletedPacks: [],
    rewrittenPacks: plan.rewritePacks.map((p) => p.id),
    newPacks: copier.newPacks,
    bytesFreed: -copier.newBytes,
    corrupt,
  };
  if (options.stopAfter === "packs") return result;

  options.onProgress?.({ phase: "index", done: 0, total: 1 });
  options.checkLock?.();
  const referenced = await commitChanges(repo, (tx) => commitIndex(repo, tx, s, copier.moved), {
    lockHeld: options.lockHeld,
  });
  options.onProgress?.({ phase: "index", done: 1, total: 1 });
  if (options.stopAfter === "index") return result;

  const doomed = [...plan.deletePacks, ...plan.rewritePacks, ...plan.unreferencedPacks]
    // a pack the new index still uses (a corrupt live blob in it) stays
    .filter((p) => !referenced.has(p.id));
  options.checkLock?.();
  for (const [n, p] of doomed.entries()) {
    options.onProgress?.({ phase: "delete", done: n, total: doomed.length });
    await deletePack(repo, p.id);
    result.deletedPacks.push(p.id);
    result.bytesFreed += p.size;
  }
  options.onProgress?.({ phase: "delete", done: doomed.length, total: doomed.length });
  return result;
}
