/**
 * `vger compact`: removes stored data that no archive references, like borg's
 * `compact --threshold` and restic's `prune`. lib/compact_plan.ts works out the plan (the live
 * set, how each pack is used, which packs are deleted or rewritten); this module executes it.
 *
 * **Execute**, in this crash-safe order:
 * 1. read the live records of each pack to rewrite (coalesced ranges, never whole packs) and
 *    verify each one before copying it: record length and CRC-32, open (authenticated) and
 *    decompress, plaintext length, and chunk id = HMAC(plaintext). A blob that fails is reported
 *    in `corrupt` and left where it is, so its pack stays; corrupt data is never laundered into a
 *    fresh pack with a valid CRC and header;
 * 2. write the new packs (the sealed objects copied verbatim; no re-encryption) through the one
 *    packer (lib/packer.ts, as backups write them) and put them;
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
import type { ChunkIndex } from "./chunk_index.ts";
import type { CodecPool } from "./codec_pool.ts";
import {
  type CompactionPlan,
  type IndexTable,
  liveEntriesByPack,
  type PlanOptions,
  ranges,
  type Scan,
  scanCompaction,
} from "./compact_plan.ts";
import { decompress } from "./compress.ts";
import { ObjectType, type ObjectTypeTag } from "./crypto.ts";
import { IntegrityError, LockedError, NotFoundError, VgerError } from "./errors.ts";
import { bytesEqual, toHex } from "./ids.ts";
import { MAX_BLOB, parseRecordPrefix, recordFault, recordSize, recordStart } from "./pack.ts";
import { release } from "./bytes.ts";
import { Packer } from "./packer.ts";
import { commitChanges, type CommitTx, deletePack, type Repository } from "./repository.ts";
import { packKey } from "./storage_keys.ts";

export {
  type CompactionPlan,
  type CompactProgress,
  DEFAULT_THRESHOLD_PERCENT,
  type PackUsage,
  planCompaction,
  type PlanOptions,
} from "./compact_plan.ts";

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

/** Compacts the repository (or only plans, with `dryRun`). Hold an exclusive lock around it. */
export async function compactRepository(
  repo: Repository<Backend>,
  options: CompactOptions = {},
): Promise<CompactionResult> {
  const s = await scanCompaction(repo, options);
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
// Execute

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

/** A live blob read for copying: verified (its type and sealed object), or why it is corrupt. */
type LiveRecord =
  | { i: number; id: Uint8Array; type: ObjectTypeTag; sealed: Uint8Array; reason?: undefined }
  | { i: number; id: Uint8Array; reason: string };

/**
 * Reads one range of live records (entry numbers `group`, in record order) of pack number `pn`
 * and verifies each: record length and CRC-32, then {@linkcode verifyBlob}. The one place compact
 * reads pack records. Returns them in `group`'s order; a range that cannot be read makes each of
 * its blobs corrupt.
 */
async function readLiveRecords(
  repo: Repository<ReadonlyBackend>,
  pool: CodecPool | undefined,
  table: IndexTable,
  pn: number,
  group: number[],
): Promise<LiveRecord[]> {
  const packHex = toHex(table.packId(pn));
  const start = recordStart(table.offsetOf(group[0]));
  const last = group[group.length - 1];
  const end = table.offsetOf(last) + table.lengthOf(last);
  let bytes: Uint8Array;
  try {
    bytes = await repo.backend.getRange(packKey(table.packId(pn)), start, end - start);
  } catch (err) {
    if (!(err instanceof IntegrityError || err instanceof NotFoundError)) throw err;
    return group.map((i) => ({ i, id: table.idAt(i), reason: err.message }));
  }
  const checked = await Promise.all(group.map(async (i): Promise<LiveRecord> => {
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
      const type = await verifyBlob(repo, pool, id, sealed, table.rawOf(i), what);
      return { i, id, type, sealed };
    } catch (err) {
      if (!(err instanceof VgerError && err.code === "integrity")) throw err;
      return { i, id, reason: err.message };
    }
  }));
  release(bytes); // every blob was sliced out of it
  return checked;
}

/** Steps 1 and 2: verify and copy the live blobs of the packs to rewrite. */
async function copyLive(
  repo: Repository<Backend>,
  s: Scan,
  packer: Packer,
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
  progress();
  for (const [pn, entries] of liveEntriesByPack(table, s.rewrite)) {
    const pack = toHex(table.packId(pn));
    for (const group of ranges(table, entries)) {
      // add in record order, so new packs keep the old order
      for (const r of await readLiveRecords(repo, options.pool, table, pn, group)) {
        if (r.reason !== undefined) corrupt.push({ id: toHex(r.id), pack, reason: r.reason });
        else await packer.add(r.id.slice(), r.type, r.sealed, table.rawOf(r.i));
        // a live blob is done, copied or not
        done++;
        bytesDone += recordSize(table.lengthOf(r.i));
        progress();
      }
    }
  }
  await packer.flush();
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
  const packer = new Packer(repo, { target: s.target });
  options.checkLock?.();
  try {
    await copyLive(repo, s, packer, corrupt, options);
  } catch (err) {
    await packer.abort();
    throw err;
  }
  const newPacks = packer.packs;
  const result: CompactionResult = {
    plan,
    deletedPacks: [],
    rewrittenPacks: plan.rewritePacks.map((p) => p.id),
    newPacks: newPacks.map((p) => toHex(p.id)),
    bytesFreed: -newPacks.reduce((sum, p) => sum + p.size, 0),
    corrupt,
  };
  if (options.stopAfter === "packs") return result;

  options.onProgress?.({ phase: "index", done: 0, total: 1 });
  options.checkLock?.();
  const referenced = await commitChanges(repo, (tx) => commitIndex(repo, tx, s, packer.stored), {
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
