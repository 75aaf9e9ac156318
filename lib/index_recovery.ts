/**
 * Index recovery: the chunk index rebuilt from the pack headers, reconciled with the stored one,
 * and written back under the commit lock after catching up with packs stored meanwhile. Used by
 * `check --repair` (lib/repair.ts), by check on an unreadable index (lib/checker.ts) and by the
 * commands that read or back up over a lost index (lib/commands.ts), so that none of them needs
 * the check engine for it. Part of the repository layer: it lists and reads packs.
 *
 * When two packs hold the same blob, the copy the stored index names wins, else the pack with
 * the smaller id, so a rebuild does not depend on listing order.
 *
 * @example Read the index, or rebuild it in memory when it is lost
 * ```ts ignore
 * import { loadIndexOrRebuild } from "./index_recovery.ts";
 *
 * const loaded = await loadIndexOrRebuild(repo);
 * if (loaded.rebuilt) console.warn(loaded.problem);
 * ```
 *
 * @module
 */

import type { Backend, ReadonlyBackend } from "../backends/backend.ts";
import { ChunkIndex, type ChunkLocation } from "./chunk_index.ts";
import { errorMessage, IntegrityError, isDamage, NotFoundError } from "./errors.ts";
import { bytesEqual, fromHex, toHex } from "./ids.ts";
import type { PackEntry } from "./pack.ts";
import { countingReader, headerReadLimiter, readPackHeader } from "./pack_reader.ts";
import { commitChanges, type CommitTarget, type Repository } from "./repository.ts";
import { packKey, PACKS_PREFIX, parsePackKey } from "./storage_keys.ts";
import type { WriteSession } from "./write_session.ts";

/** A pack whose header could not be read during a rebuild. */
export interface UnreadablePack {
  /** Its storage key. */
  key: string;
  /** Why. */
  error: string;
}

/** The outcome of {@linkcode rebuildIndex}. */
export interface RebuildResult {
  /** Every blob of every readable pack. */
  index: ChunkIndex;
  /** Packs (and other objects under `packs/`) whose header could not be read. */
  unreadablePacks: UnreadablePack[];
}

/** The outcome of {@linkcode loadIndexOrRebuild}. */
export interface LoadedIndex {
  /** The stored index, or one rebuilt in memory. */
  index: ChunkIndex;
  /** Whether the stored index was unreadable and this one was rebuilt. */
  rebuilt: boolean;
  /** Why it was rebuilt (one line, for a warning). */
  problem?: string;
  /** Packs left out of the rebuilt index because their header could not be read. */
  unreadablePacks: UnreadablePack[];
}

/** The packs in storage. */
export interface PackListing {
  /** Hex pack id -> size in bytes. */
  packs: Map<string, number>;
  /** Keys under packs/ that are not pack names. */
  stray: string[];
}

/** Lists the packs in storage (and the objects under packs/ that are not packs). */
export async function listPacks(backend: ReadonlyBackend): Promise<PackListing> {
  const packs = new Map<string, number>();
  const stray: string[] = [];
  for await (const { key, size } of backend.list(PACKS_PREFIX)) {
    const hex = parsePackKey(key);
    if (hex !== null) packs.set(hex, size);
    else stray.push(key);
  }
  return { packs, stray };
}

/** A pack whose header could not be read, with its hex id. */
export interface UnreadableHeader {
  /** Its storage key. */
  key: string;
  /** Its id, in hex. */
  hex: string;
  /** Why (one line). */
  error: string;
}

/** An index built from pack headers, and the packs whose header did not read. */
export interface BuiltIndex {
  /** The index. */
  index: ChunkIndex;
  /** Packs left out, sorted by key. */
  unreadable: UnreadableHeader[];
}

/**
 * Adds the blobs of the given packs' headers to an index (a new one unless `into`). For a blob
 * in several packs, the one `prefer` names wins, else the pack with the smaller id. Bytes read
 * go to `onBytes`. A pack whose header is damaged is left out and named in `unreadable`; a
 * failing backend throws.
 */
export async function buildIndex(
  repo: Pick<Repository<ReadonlyBackend>, "backend" | "key">,
  packs: Map<string, number>,
  opts: { into?: ChunkIndex; prefer?: ChunkIndex; onBytes?: (bytes: number) => void } = {},
): Promise<BuiltIndex> {
  const index = opts.into ?? new ChunkIndex();
  const unreadable: UnreadableHeader[] = [];
  const reader = countingReader(repo.backend, opts.onBytes);
  await headerReadLimiter(repo.backend).forEach(packs, async ([hex, size]) => {
    const key = packKey(fromHex(hex));
    let entries: PackEntry[];
    try {
      entries = [...await readPackHeader(reader, repo.key, key, size)];
    } catch (err) {
      // a failing backend must not look like a lost pack: repair would drop its archives
      if (!isDamage(err)) throw err;
      unreadable.push({ key, hex, error: errorMessage(err) });
      return;
    }
    const pack = fromHex(hex);
    for (const e of entries) {
      const loc = { pack, offset: e.offset, length: e.length, rawLength: e.rawLength };
      const old = index.get(e.id);
      if (old && !preferNew(old, loc, opts.prefer?.get(e.id))) continue;
      index.set(e.id, loc);
    }
  });
  unreadable.sort((a, b) => a.key < b.key ? -1 : 1);
  return { index, unreadable };
}

/**
 * Keeps the stored index's entries for packs whose header is unreadable: their data may well be
 * intact, and repair salvages every one of them that verifies (and drops the rest).
 */
export function keepUnreadable(
  built: BuiltIndex,
  current: ChunkIndex | null,
  packs: Map<string, number>,
): void {
  if (!current || built.unreadable.length === 0) return;
  const bad = new Set(built.unreadable.map((u) => u.hex));
  for (const [id, loc] of current.entries()) {
    const hex = toHex(loc.pack);
    if (!bad.has(hex) || !packs.has(hex) || built.index.has(id)) continue;
    built.index.set(id, loc);
  }
}

function sameLocation(a: ChunkLocation, b: ChunkLocation): boolean {
  return bytesEqual(a.pack, b.pack) && a.offset === b.offset && a.length === b.length;
}

/** Which copy of a blob a rebuilt index keeps. */
function preferNew(old: ChunkLocation, loc: ChunkLocation, wanted?: ChunkLocation): boolean {
  if (wanted && sameLocation(wanted, loc)) return true;
  if (wanted && sameLocation(wanted, old)) return false;
  return toHex(loc.pack) < toHex(old.pack);
}

/**
 * Rebuilds the index from the headers of every pack in storage. When two packs hold the same
 * blob, the pack with the smaller id wins, so the result does not depend on listing order.
 */
export async function rebuildIndex(
  repo: Pick<Repository<ReadonlyBackend>, "backend" | "key">,
): Promise<RebuildResult> {
  const listing = await listPacks(repo.backend);
  const { index, unreadable } = await buildIndex(repo, listing.packs);
  return {
    index,
    unreadablePacks: [
      ...unreadable.map(({ key, error }) => ({ key, error })),
      ...listing.stray.map((key) => ({ key, error: `Object ${key} is not a pack` })),
    ],
  };
}

/**
 * Reads the index; when it is missing or corrupt, rebuilds it in memory from the pack headers
 * and says so (nothing is written: {@linkcode writeRebuiltIndex} writes it). Other errors are
 * thrown.
 */
export async function loadIndexOrRebuild(
  repo: Pick<Repository<ReadonlyBackend>, "backend" | "key" | "readIndex">,
): Promise<LoadedIndex> {
  try {
    return { index: await repo.readIndex(), rebuilt: false, unreadablePacks: [] };
  } catch (err) {
    if (!(err instanceof IntegrityError || err instanceof NotFoundError)) throw err;
    const { index, unreadablePacks } = await rebuildIndex(repo);
    const left = unreadablePacks.length > 0
      ? `, leaving out ${unreadablePacks.length} unreadable packs`
      : "";
    return {
      index,
      rebuilt: true,
      problem: `${
        errorMessage(err)
      }; rebuilt it in memory from ${index.packIds().length} pack headers${left}`,
      unreadablePacks,
    };
  }
}

/** An index rebuilt from the packs in storage, as repair and a lost index's rewrite hold it. */
export interface IndexRebuild extends BuiltIndex {
  /** The packs the rebuild saw (kept up to date by {@linkcode saveRebuiltIndex}). */
  listing: PackListing;
}

/** What rebuilding and writing the index needs of a repository. */
export type RecoverableRepository = Pick<Repository<Backend>, "backend" | "key"> & CommitTarget;

/** The stored index, or null when it is missing or damaged (a failing backend throws). */
export async function readIndexIfSound(
  repo: Pick<Repository<ReadonlyBackend>, "readIndex">,
): Promise<ChunkIndex | null> {
  try {
    return await repo.readIndex();
  } catch (err) {
    if (!isDamage(err)) throw err;
    return null;
  }
}

/**
 * Lists the packs and rebuilds the index from their headers, preferring the copies `current`
 * (the stored index, when it reads) names, and keeping its entries for packs whose header is
 * unreadable.
 */
export async function rebuildFromPacks(
  repo: Pick<Repository<ReadonlyBackend>, "backend" | "key">,
  current: ChunkIndex | null,
): Promise<IndexRebuild> {
  const listing = await listPacks(repo.backend);
  const built = await buildIndex(repo, listing.packs, { prefer: current ?? undefined });
  keepUnreadable(built, current, listing.packs);
  return { ...built, listing };
}

/**
 * Writes a rebuilt index under the commit lock. A backup may have stored packs, or committed,
 * since the listing: under the lock the packs are listed again and the index catches up (the
 * headers of new packs are added; when a pack is gone, it is rebuilt again, and `adjust` is
 * applied again to the new one), so that the written index drops no one's entries.
 */
export async function saveRebuiltIndex(
  repo: RecoverableRepository,
  rebuild: IndexRebuild,
  current: ChunkIndex | null,
  adjust?: (index: ChunkIndex) => void,
): Promise<void> {
  await commitChanges(repo, async (tx) => {
    const now = await listPacks(repo.backend);
    const gone = [...rebuild.listing.packs.keys()].some((hex) => !now.packs.has(hex));
    if (gone) {
      const built = await buildIndex(repo, now.packs, { prefer: current ?? undefined });
      keepUnreadable(built, current, now.packs);
      adjust?.(built.index);
      rebuild.index = built.index;
      rebuild.unreadable = built.unreadable;
    } else {
      const fresh = new Map([...now.packs].filter(([hex]) => !rebuild.listing.packs.has(hex)));
      const more = await buildIndex(repo, fresh, { into: rebuild.index });
      for (const u of more.unreadable) rebuild.unreadable.push(u);
    }
    rebuild.listing = now;
    tx.saveIndex(rebuild.index);
  });
}

/** What {@linkcode writeRebuiltIndex} did. */
export interface RewrittenIndex {
  /** Entries of the rebuilt index. */
  entries: number;
  /** Packs it references. */
  packs: number;
  /** Whether it was written (it differed from the stored one, or that one did not read). */
  written: boolean;
}

/**
 * Rebuilds the index from the pack headers and writes it back when it differs from the stored
 * one (or that one is lost): what a backup does over a lost index, salvaging nothing (damaged
 * packs are left to `check --repair`). `checkLock` throws when the caller's exclusive repository
 * lock was lost; it is called before the write.
 */
export async function writeRebuiltIndex(
  repo: RecoverableRepository,
  options: { checkLock?: () => void } = {},
): Promise<RewrittenIndex> {
  const current = await readIndexIfSound(repo);
  const rebuild = await rebuildFromPacks(repo, current);
  const written = current === null || !bytesEqual(current.encode(), rebuild.index.encode());
  if (written) {
    options.checkLock?.();
    await saveRebuiltIndex(repo, rebuild, current);
  }
  return { entries: rebuild.index.size, packs: rebuild.index.packIds().length, written };
}

/** Options of {@linkcode reconcileWithPacks}. */
export interface ReconcileOptions {
  /** Called with a warning when packs the index names are missing. */
  onWarning?: (message: string) => void;
}

/**
 * Brings the index a backup loaded at its start (the session's) in line with the packs in
 * storage:
 * - chunks of packs that are gone are dropped, so the backup stores them again instead of
 *   referencing lost data (the commit's merge then points the stored index at the new copies);
 * - packs in storage that the index does not know (uploaded by a backup killed before its
 *   commit) are read by their headers and adopted, so their chunks are not uploaded twice; an
 *   unreadable one is not adopted (compact deletes it).
 */
export async function reconcileWithPacks(
  repo: Pick<Repository<ReadonlyBackend>, "backend" | "key" | "location">,
  session: Pick<WriteSession, "index" | "adopt">,
  options: ReconcileOptions = {},
): Promise<void> {
  const index = session.index;
  const present = (await listPacks(repo.backend)).packs;
  const indexed = new Set(index.packIds().map(toHex));
  const missing = new Set([...indexed].filter((hex) => !present.has(hex)));
  if (missing.size > 0) {
    const lost: Uint8Array[] = [];
    for (const [id, loc] of index.entries()) if (missing.has(toHex(loc.pack))) lost.push(id);
    for (const id of lost) index.delete(id);
    options.onWarning?.(
      `${missing.size} pack${missing.size > 1 ? "s are" : " is"} missing from "${repo.location}" ` +
        `(${lost.length} blobs): their data is stored again; run vger check --repair`,
    );
  }
  for (const [hex, size] of present) {
    if (indexed.has(hex)) continue;
    const id = fromHex(hex);
    try {
      session.adopt(id, await readPackHeader(repo.backend, repo.key, packKey(id), size));
    } catch {
      // an unreadable leftover is not adopted; compact deletes it
    }
  }
}
