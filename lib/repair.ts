/**
 * `vger check --repair`: rebuilds the index from the pack headers (lib/index_recovery.ts),
 * salvages damaged packs (their blobs that still verify, read through lib/pack_reader.ts, are
 * copied into new packs by the backup's packer, lib/write_session.ts), and removes archives whose
 * file list is unreadable from the manifest when the user agrees.
 *
 * @example Repair a repository, asking before archives are removed
 * ```ts ignore
 * import { repairRepository } from "./repair.ts";
 *
 * const result = await repairRepository(repo, { confirm: () => Promise.resolve(true) });
 * console.log(result.entries, "blobs in", result.packs, "packs");
 * ```
 *
 * @module
 */

import type { Backend } from "../backends/backend.ts";
import { decodeItems } from "./archive.ts";
import { ChunkIndex, type ChunkLocation } from "./chunk_index.ts";
import type { CodecPool } from "./codec_pool.ts";
import { ObjectType, type ObjectTypeTag } from "./crypto.ts";
import { errorMessage, isDamage } from "./errors.ts";
import { bytesEqual, fromHex, toHex } from "./ids.ts";
import {
  buildIndex,
  readIndexIfSound,
  rebuildFromPacks,
  saveRebuiltIndex,
} from "./index_recovery.ts";
import type { Manifest, ManifestEntry } from "./manifest.ts";
import { readVerifiedRecord, scanRecords } from "./pack_reader.ts";
import { commitChanges, deletePack, type Repository } from "./repository.ts";
import { packKey, parsePackKey } from "./storage_keys.ts";
import { verifyPack } from "./verifier.ts";
import { WriteSession } from "./write_session.ts";
import {
  type CheckProgress,
  type CheckStats,
  type DamagedFile,
  MAX_PATHS,
  type RepairResult,
  Report,
  type SalvagedPack,
} from "./check_report.ts";

/** What repair needs of a repository: what check needs, over a writable backend, and its config. */
export type RepairableRepository = Pick<
  Repository<Backend>,
  | "backend"
  | "key"
  | "config"
  | "location"
  | "readManifest"
  | "readIndex"
  | "readArchive"
  | "readBlob"
>;

/** Options of {@linkcode repairRepository}. */
export interface RepairOptions {
  /** Only report: write no index, remove no archive. */
  dryRun?: boolean;
  /** Also read every pack through; packs with a blob that fails verification are salvaged. */
  verifyData?: boolean;
  /** Bytes per range read when verifying data (default 4 MiB). */
  readRange?: number;
  /** With `verifyData`: called as the packs are read through (phase "data"). */
  onProgress?(progress: CheckProgress): void;
  /** Asked before broken archives are removed from the manifest (ask the user, or --yes). */
  confirm(archives: string[]): Promise<boolean>;
  /** Open and decompress item-stream blobs in these workers. */
  pool?: CodecPool;
  /** Throws when the caller's exclusive repository lock was lost; called before each write. */
  checkLock?: () => void;
}

/**
 * Rebuilds the index from the pack headers and salvages damaged packs: a pack whose header does
 * not read (truncated, corrupt) and, with `verifyData`, a pack with a blob that fails
 * verification. Every blob of such a pack that the old index places there and that still
 * verifies is copied into a new pack; the rest leave the index. The new packs are stored first,
 * then the index (under the commit lock), and only then are the damaged packs deleted. Archives
 * whose file list reads are kept, their files with lost chunks reported as damaged (a backup of
 * the same files stores the chunks again); archives whose file list is unreadable are removed
 * from the manifest when `confirm` agrees (under the commit lock, re-reading the manifest). A
 * dry run writes nothing, does not ask, and reports the same.
 */
export async function repairRepository(
  repo: RepairableRepository,
  options: RepairOptions,
): Promise<RepairResult> {
  const current = await readIndexIfSound(repo);
  const built = await rebuildFromPacks(repo, current);
  const listing = built.listing;

  // Damaged packs that the index has blobs in: salvage what verifies, drop the rest.
  const damaged = new Map<string, string>();
  const referenced = built.index.entriesPerPack();
  /** Packs whose header is unreadable: salvaged by the index's entries and by a scan. */
  const scan = new Set<string>();
  for (const u of built.unreadable) {
    scan.add(u.hex);
    damaged.set(u.hex, u.error);
  }
  if (options.verifyData) {
    const stats: CheckStats = { archives: 0, packs: 0, blobs: 0, bytesRead: 0 };
    const hexes = [...referenced.keys()].filter((hex) =>
      listing.packs.has(hex) && !damaged.has(hex)
    )
      .sort();
    let totalPackBytes = 0;
    for (const hex of hexes) totalPackBytes += listing.packs.get(hex)!;
    let done = 0;
    let doneBytes = 0;
    const progress = (packBytes: number) =>
      options.onProgress?.({
        phase: "data",
        packs: done,
        totalPacks: hexes.length,
        bytes: stats.bytesRead,
        packBytes,
        totalPackBytes,
      });
    for (const hex of hexes) {
      const size = listing.packs.get(hex)!;
      const report = new Report();
      await verifyPack(repo, built.index, hex, size, [], {
        report,
        stats,
        options: { pool: options.pool, readRange: options.readRange },
      }, (pos) => progress(doneBytes + Math.min(pos, size)));
      done++;
      doneBytes += size;
      progress(doneBytes);
      const errors = report.problems().filter((p) => p.severity === "error");
      if (errors.length > 0) {
        damaged.set(
          hex,
          errors[0].message + (errors.length > 1 ? ` (and ${errors.length - 1} more)` : ""),
        );
      }
    }
  }
  const salvage = await salvagePacks(repo, built.index, damaged, listing.packs, {
    ...options,
    scan,
  });
  // A lost blob may have another copy in a sound pack (the rebuild kept one location): use it.
  let copies: ChunkIndex | null = null;
  if (salvage.lost.size > 0) {
    const sound = new Map([...listing.packs].filter(([hex]) => !damaged.has(hex)));
    copies = (await buildIndex(repo, sound)).index;
  }
  /** Points an index built from the headers at the salvaged copies; drops the lost blobs. */
  const applySalvage = (index: ChunkIndex): void => {
    const drop: Uint8Array[] = [];
    for (const [id, loc] of index.entries()) {
      const hex = toHex(loc.pack);
      if (!damaged.has(hex)) continue;
      // a dry run keeps the blobs that verify where they are
      if (!options.dryRun || salvage.lost.has(toHex(id))) drop.push(id);
    }
    for (const id of drop) {
      index.delete(id);
      const copy = copies?.get(id);
      if (copy) index.set(id, copy);
    }
    if (salvage.added) index.merge(salvage.added);
    else index.merge(salvage.found); // a dry run: where the scan found them
  };
  applySalvage(built.index);

  const indexChanged = current === null ||
    !bytesEqual(current.encode(), built.index.encode());
  // The damaged packs go before the index that drops them is written: their sound blobs are
  // durable in new packs by now. A crash in between leaves an index naming a missing pack (check
  // finds it, the next backup stores its chunks again), never an unreferenced damaged pack that
  // the next backup would adopt from its header, corrupt blobs and all.
  if (!options.dryRun) {
    for (const s of salvage.packs) {
      options.checkLock?.();
      const hex = parsePackKey(s.key)!;
      await deletePack(repo, hex);
      built.listing.packs.delete(hex);
      s.removed = true;
    }
  }
  let indexWritten = false;
  if (indexChanged && !options.dryRun) {
    options.checkLock?.();
    // A backup may have stored packs, or committed, since the listing: the index catches up
    // under the lock so that it does not drop their entries.
    await saveRebuiltIndex(repo, built, current, applySalvage);
    indexWritten = true;
  }
  const index = built.index;
  const salvaged = new Set(salvage.packs.map((p) => p.key));
  const result: RepairResult = {
    entries: index.size,
    packs: index.packIds().length,
    unreadablePacks: [
      ...built.unreadable.filter((u) => !salvaged.has(u.key)).map(({ key, error }) => ({
        key,
        error,
      })),
      ...built.listing.stray.map((key) => ({ key, error: `Object ${key} is not a pack` })),
    ],
    indexChanged,
    indexWritten,
    brokenArchives: [],
    removedArchives: [],
    salvagedPacks: salvage.packs,
    damagedFiles: [],
    damagedFilesTruncated: false,
  };

  let manifest: Manifest;
  try {
    manifest = await repo.readManifest();
  } catch (err) {
    if (!isDamage(err)) throw err;
    result.manifestError = errorMessage(err);
    return result;
  }
  const clean = new Set<string>();
  for (const entry of manifest.archives) {
    const reason = await findDamage(repo, index, entry, { clean, pool: options.pool, result });
    if (reason !== null) {
      result.brokenArchives.push({ name: entry.name, id: toHex(entry.id), reason });
    }
  }
  if (
    result.brokenArchives.length === 0 || options.dryRun ||
    !(await options.confirm(result.brokenArchives.map((b) => b.name)))
  ) return result;
  const drop = new Set(result.brokenArchives.map((b) => b.id));
  options.checkLock?.();
  await commitChanges(repo, async (tx) => {
    // Re-read: another process may have committed since; remove by id, not by name, so a new
    // archive that took a broken one's name stays.
    const m = await tx.manifest();
    const keep = m.archives.filter((a) => !drop.has(toHex(a.id)));
    if (keep.length === m.archives.length) return;
    result.removedArchives = m.archives.filter((a) => drop.has(toHex(a.id))).map((a) => a.name);
    tx.saveManifest({ ...m, archives: keep });
  });
  return result;
}

/** What {@linkcode salvagePacks} did. */
interface Salvage {
  packs: SalvagedPack[];
  /** Hex ids of the blobs that did not verify. */
  lost: Set<string>;
  /** Where the verified blobs now are (null on a dry run). */
  added: ChunkIndex | null;
  /** Blobs found by scanning, at their place in the damaged pack (for a dry run's report). */
  found: ChunkIndex;
}

/**
 * Reads every blob that the index places in a damaged pack, by the index's offset and length,
 * and, in the packs of `scan` (whose header is unreadable), every record from the start; copies
 * those whose record, envelope and hash verify into new packs (through the same packer as
 * backups: data and item blobs in packs of their own). On a dry run only verifies. A pack in
 * which nothing could be identified is not in the result (it is left as it is).
 */
async function salvagePacks(
  repo: RepairableRepository,
  index: ChunkIndex,
  damaged: Map<string, string>,
  sizes: Map<string, number>,
  options: RepairOptions & { scan: Set<string> },
): Promise<Salvage> {
  const out: Salvage = { packs: [], lost: new Set(), added: null, found: new ChunkIndex() };
  if (damaged.size === 0) return out;
  const blobs = new Map<string, [Uint8Array, ChunkLocation][]>();
  for (const hex of damaged.keys()) blobs.set(hex, []);
  for (const [id, loc] of index.entries()) blobs.get(toHex(loc.pack))?.push([id, loc]);
  const session = options.dryRun ? null : new WriteSession(repo, new ChunkIndex());
  try {
    for (const hex of [...damaged.keys()].sort()) {
      const key = packKey(fromHex(hex));
      const size = sizes.get(hex) ?? 0;
      const entry: SalvagedPack = {
        key,
        reason: damaged.get(hex)!,
        kept: 0,
        lost: 0,
        removed: false,
      };
      const list = blobs.get(hex)!.sort((a, b) => a[1].offset - b[1].offset);
      const kept = new Set<string>();
      for (const [id, loc] of list) {
        const sealed = await readVerifiedRecord(repo, key, size, id, loc, options.pool);
        if (sealed === null) {
          entry.lost++;
          out.lost.add(toHex(id));
          continue;
        }
        entry.kept++;
        kept.add(toHex(id));
        if (session) {
          options.checkLock?.();
          await session.add(id, sealed[0] as ObjectTypeTag, sealed, loc.rawLength);
        }
      }
      // without a header, the records themselves say what they hold (the index may lack some)
      if (options.scan.has(hex)) {
        for await (const b of scanRecords(repo, key, size)) {
          const idHex = toHex(b.id);
          const loc = index.get(b.id);
          if (kept.has(idHex) || (loc && !damaged.has(toHex(loc.pack)))) continue;
          if (out.lost.delete(idHex)) entry.lost--; // the index's offset was wrong
          entry.kept++;
          kept.add(idHex);
          const at = { pack: fromHex(hex), offset: b.offset, length: b.sealed.length };
          out.found.set(b.id, { ...at, rawLength: b.rawLength });
          if (session) {
            options.checkLock?.();
            await session.add(b.id, b.type, b.sealed, b.rawLength);
          }
        }
      }
      if (entry.kept + entry.lost > 0) out.packs.push(entry);
    }
    if (session) {
      await session.flush();
      out.added = session.added;
    }
  } catch (err) {
    await session?.abort();
    throw err;
  }
  return out;
}

/**
 * Why an archive's file list cannot be read (the first missing or unreadable object), or null.
 * Files whose chunks the index lacks are added to `opts.result.damagedFiles`. Item blobs whose
 * files are all whole go into `clean`, so archives that share them do not read them again.
 */
async function findDamage(
  repo: RepairableRepository,
  index: ChunkIndex,
  entry: ManifestEntry,
  opts: { clean: Set<string>; pool?: CodecPool; result: RepairResult },
): Promise<string | null> {
  const result = opts.result;
  try {
    const meta = await repo.readArchive(entry);
    const damaged: DamagedFile[] = [];
    for (const blobId of meta.items) {
      const blobHex = toHex(blobId);
      if (opts.clean.has(blobHex)) continue;
      if (!index.has(blobId)) return `metadata blob ${blobHex} is missing`;
      const blob = await repo.readBlob(index, blobId, ObjectType.items, opts.pool);
      let whole = true;
      for (const item of decodeItems(blob, `Metadata blob ${blobHex}`, { archive: entry.name })) {
        let missing = 0;
        for (const c of item.chunks ?? []) if (!index.has(c)) missing++;
        if (missing === 0) continue;
        whole = false;
        damaged.push({ archive: entry.name, path: item.path, missingChunks: missing });
      }
      if (whole) opts.clean.add(blobHex);
    }
    // only an archive that is kept has damaged files
    for (const d of damaged) {
      if (result.damagedFiles.length < MAX_PATHS) result.damagedFiles.push(d);
      else result.damagedFilesTruncated = true;
    }
    return null;
  } catch (err) {
    // never remove an archive because the storage failed for a moment
    if (!isDamage(err)) throw err;
    return errorMessage(err);
  }
}
