/**
 * `vger compact`: removes stored data that no archive references, like borg's
 * `compact --threshold` and restic's `prune`. lib/compact_plan.ts works out the plan (the live
 * set, how each pack is used, which packs are deleted or rewritten); this module executes it.
 *
 * **Execute**, in this crash-safe order:
 * 1. read the live records of each pack to rewrite through the shared reader (lib/pack_reader.ts:
 *    coalesced ranges, never whole packs) and verify each one before copying it: record length
 *    and CRC-32, open (authenticated) and decompress, plaintext length, and chunk id =
 *    HMAC(plaintext). A blob that fails is reported
 *    in `corrupt` and left where it is, so its pack stays; corrupt data is never laundered into a
 *    fresh pack with a valid CRC and header;
 * 2. write the new packs (the sealed objects copied verbatim; no re-encryption) through the one
 *    packer (lib/packer.ts, as backups write them) and put them;
 *    **server-side** (steps 1 and 2 in storage, when the backend composes and checks records:
 *    vger-server): each rewritten pack's header is read (authenticated) for its blobs' types,
 *    and lib/pack_compose.ts has the storage compose each new pack from the kept records and a
 *    header the client seals; the server checks every record (length, CRC-32, type byte) but
 *    cannot authenticate it, a weaker check than the client's (docs/FORMAT.md). Records it
 *    refuses are reported in `corrupt` and left in place; a pack whose header cannot be read is
 *    copied through the client as above;
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

import type { Backend } from "../backends/backend.ts";
import type { ChunkIndex } from "./chunk_index.ts";
import {
  type CompactionPlan,
  liveEntriesByPack,
  type PlanOptions,
  type Scan,
  scanCompaction,
} from "./compact_plan.ts";
import { type Abortable, LockedError, throwIfAborted } from "./errors.ts";
import { toHex } from "./ids.ts";
import { recordSize } from "./pack.ts";
import { readLiveRecords, type WantedRecord } from "./pack_reader.ts";
import {
  canCompose,
  countingBackend,
  keptRecords,
  PackComposer,
  type Traffic,
} from "./pack_compose.ts";
import { Packer, type StoredPack } from "./packer.ts";
import { commitChanges, type CommitTx, deletePack, type Repository } from "./repository.ts";

export {
  type CompactionPlan,
  type CompactProgress,
  DEFAULT_THRESHOLD_PERCENT,
  type PackUsage,
  planCompaction,
  type PlanOptions,
} from "./compact_plan.ts";

/**
 * Options of {@linkcode compactRepository}. An aborted `signal` stops it between packs: before
 * the index commit, the new packs stay unreferenced; after it, the old packs not yet deleted do
 * (the next compact removes either).
 */
export interface CompactOptions extends PlanOptions, Abortable {
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
  /**
   * Compose the new packs in storage when the backend can (vger-server); default true. False
   * copies every live blob through the client (`--no-server-side`).
   */
  serverSide?: boolean;
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
  /** Whether the new packs were composed in storage (server-side). */
  serverSide: boolean;
  /** Bytes sent to the storage for the new packs (whole packs, or compose plans). */
  bytesUploaded: number;
  /** Bytes read from the storage for the rewrite (live records, or pack headers). */
  bytesDownloaded: number;
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
      serverSide: false,
      bytesUploaded: 0,
      bytesDownloaded: 0,
    };
  }
  return await execute(repo, s, options);
}

// ---------------------------------------------------------------------------------------------
// Execute

/** How far the copy phase is: live blobs done (copied, composed, or left as corrupt). */
interface CopyProgress {
  done: number;
  bytes: number;
  report(): void;
}

function copyProgress(s: Scan, options: CompactOptions): CopyProgress {
  const p: CopyProgress = {
    done: 0,
    bytes: 0,
    report: () =>
      options.onProgress?.({
        phase: "copy",
        done: p.done,
        total: s.plan.copyBlobs,
        bytes: p.bytes,
        totalBytes: s.plan.copyBytes,
      }),
  };
  return p;
}

/** The index entries of `entries` as records to read. */
function wantedOf(s: Scan, entries: number[]): WantedRecord[] {
  return entries.map((i): WantedRecord => ({
    id: s.table.idAt(i),
    offset: s.table.offsetOf(i),
    length: s.table.lengthOf(i),
    rawLength: s.table.rawOf(i),
  }));
}

/** Steps 1 and 2: verify and copy the live blobs of the packs `packs` (numbers) to rewrite. */
async function copyLive(
  repo: Repository<Backend>,
  s: Scan,
  packs: Map<number, number[]>,
  packer: Packer,
  corrupt: CorruptBlob[],
  progress: CopyProgress,
  options: CompactOptions & { traffic: Traffic },
): Promise<void> {
  const { table } = s;
  const reader = { backend: countingBackend(repo.backend, options.traffic), key: repo.key };
  for (const [pn, entries] of packs) {
    throwIfAborted(options.signal, "Compact");
    const pack = toHex(table.packId(pn));
    const wanted = wantedOf(s, entries);
    // the shared reader yields in record order, so new packs keep the old order
    for await (
      const r of readLiveRecords(reader, table.packId(pn), wanted, { pool: options.pool })
    ) {
      const { id, length, rawLength } = r.wanted;
      if (r.error !== undefined) {
        // compact's own words for a record whose length is not the index's
        const reason = r.fault === "length"
          ? `Blob ${toHex(id)} in pack ${pack} is corrupt: record length differs from the index`
          : r.error.message;
        corrupt.push({ id: toHex(id), pack, reason });
      } else await packer.add(id.slice(), r.type, r.sealed, rawLength);
      // a live blob is done, copied or not
      progress.done++;
      progress.bytes += recordSize(length);
      progress.report();
    }
  }
  await packer.flush();
}

/**
 * Steps 1 and 2 server-side: the kept records of each pack to rewrite (typed by its header) are
 * composed into new packs in storage. Resolves to the packs whose header could not be read,
 * which the caller copies through the client.
 */
async function composeLive(
  repo: Repository<Backend>,
  s: Scan,
  composer: PackComposer,
  corrupt: CorruptBlob[],
  progress: CopyProgress,
  traffic: Traffic,
  signal: AbortSignal | undefined,
): Promise<Map<number, number[]>> {
  const { table } = s;
  const reader = { backend: countingBackend(repo.backend, traffic), key: repo.key };
  const usage = new Map(s.plan.rewritePacks.map((p) => [p.id, p]));
  const unreadable = new Map<number, number[]>();
  for (const [pn, entries] of liveEntriesByPack(table, s.rewrite)) {
    throwIfAborted(signal, "Compact");
    const id = table.packId(pn);
    const u = usage.get(toHex(id))!;
    const got = await keptRecords(
      reader,
      { id, size: u.size, entries: u.blobs },
      wantedOf(s, entries),
    );
    if (got === null) {
      unreadable.set(pn, entries);
      continue;
    }
    for (const l of got.lost) {
      corrupt.push({ id: toHex(l.id), pack: toHex(l.pack), reason: l.reason });
    }
    for (const k of got.kept) await composer.add({ ...k, id: k.id.slice(), pack: k.pack.slice() });
    for (const i of entries) {
      progress.done++;
      progress.bytes += recordSize(table.lengthOf(i));
    }
    progress.report();
  }
  await composer.flush();
  for (const r of composer.refused) {
    corrupt.push({ id: toHex(r.id), pack: toHex(r.pack), reason: r.reason });
  }
  return unreadable;
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
  const traffic: Traffic = { sent: 0, read: 0 };
  const serverSide = (options.serverSide ?? true) && canCompose(repo.backend) &&
    s.rewrite.length > 0;
  const composer = new PackComposer(repo, { target: s.target, traffic });
  const progress = copyProgress(s, options);
  options.checkLock?.();
  try {
    progress.report();
    const rest = serverSide
      ? await composeLive(repo, s, composer, corrupt, progress, traffic, options.signal)
      : liveEntriesByPack(s.table, s.rewrite);
    await copyLive(repo, s, rest, packer, corrupt, progress, { ...options, traffic });
  } catch (err) {
    await packer.abort();
    throw err;
  }
  const newPacks: StoredPack[] = [...composer.packs, ...packer.packs];
  const moved = composer.stored;
  moved.merge(packer.stored);
  const packed = packer.packs.reduce((sum, p) => sum + p.size, 0);
  const result: CompactionResult = {
    plan,
    deletedPacks: [],
    rewrittenPacks: plan.rewritePacks.map((p) => p.id),
    newPacks: newPacks.map((p) => toHex(p.id)),
    bytesFreed: -newPacks.reduce((sum, p) => sum + p.size, 0),
    corrupt,
    serverSide,
    bytesUploaded: traffic.sent + packed,
    bytesDownloaded: traffic.read,
  };
  if (options.stopAfter === "packs") return result;

  options.onProgress?.({ phase: "index", done: 0, total: 1 });
  throwIfAborted(options.signal, "Compact");
  options.checkLock?.();
  const referenced = await commitChanges(repo, (tx) => commitIndex(repo, tx, s, moved), {
    lockHeld: options.lockHeld,
  });
  options.onProgress?.({ phase: "index", done: 1, total: 1 });
  if (options.stopAfter === "index") return result;

  const doomed = [...plan.deletePacks, ...plan.rewritePacks, ...plan.unreferencedPacks]
    // a pack the new index still uses (a corrupt live blob in it) stays
    .filter((p) => !referenced.has(p.id));
  options.checkLock?.();
  for (const [n, p] of doomed.entries()) {
    throwIfAborted(options.signal, "Compact");
    options.onProgress?.({ phase: "delete", done: n, total: doomed.length });
    await deletePack(repo, p.id);
    result.deletedPacks.push(p.id);
    result.bytesFreed += p.size;
  }
  options.onProgress?.({ phase: "delete", done: doomed.length, total: doomed.length });
  return result;
}
