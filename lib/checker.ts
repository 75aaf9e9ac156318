/**
 * `vger check`: finds damage in a repository and says which archives and files it touches;
 * and index rebuild (`--repair`) from the pack headers.
 *
 * The structural check reads no file data: the manifest, the index, every archive and its item
 * stream (small), and every pack header, which must agree with the index entries that point at
 * the pack. `verifyData` also reads every referenced pack from start to end in ranges of a few
 * MiB, checks each record's CRC-32, opens and decompresses each blob, re-hashes its plaintext
 * against its id and checks that the SHA-256 of the pack is its name.
 *
 * Problems are collected, never thrown: each names the object and, found by one walk over the
 * item streams at the end, the archives and stored paths that reference the damaged blobs.
 *
 * @example Check a repository and list what is damaged
 * ```ts ignore
 * import { checkRepository, hasErrors } from "./checker.ts";
 *
 * const result = await checkRepository(repo, { verifyData: true });
 * for (const p of result.problems) console.log(p.severity, p.message, p.affects.paths);
 * if (hasErrors(result)) Deno.exitCode = 1;
 * ```
 *
 * @module
 */

import { createHash } from "node:crypto";
import type { Backend, ReadonlyBackend } from "../backends/backend.ts";
import { decodeItems } from "./archive.ts";
import { ChunkIndex, type ChunkLocation } from "./chunk_index.ts";
import type { CodecPool } from "./codec_pool.ts";
import { ByteBudget, Limiter } from "./concurrency.ts";
import { decompress } from "./compress.ts";
import { ObjectType, type ObjectTypeTag } from "./crypto.ts";
import { errorMessage, IntegrityError, NotFoundError, VgerError } from "./errors.ts";
import { bytesEqual, fromHex, toHex } from "./ids.ts";
import type { Manifest, ManifestEntry } from "./manifest.ts";
import {
  FIRST_OBJECT_OFFSET,
  MAX_BLOB,
  MAX_BLOB_OBJECT,
  PACK_PREAMBLE,
  type PackEntry,
  parseRecordPrefix,
  readPackHeader,
  RECORD_PREFIX,
  recordFault,
  recordObject,
  recordSize,
  recordStart,
} from "./pack.ts";
import { commitChanges, type Repository } from "./repository.ts";
import {
  ARCHIVES_PREFIX,
  packKey,
  PACKS_PREFIX,
  parseArchiveKey,
  parsePackKey,
} from "./storage_keys.ts";
import { WriteSession } from "./write_session.ts";

/** What a problem is about. */
export type ProblemKind =
  | "corrupt-manifest"
  | "corrupt-index"
  | "corrupt-archive"
  | "missing-chunk"
  | "missing-pack"
  | "corrupt-pack"
  | "pack-header-mismatch"
  | "corrupt-blob"
  | "pack-hash-mismatch"
  | "unreferenced-pack"
  | "unreferenced-archive"
  | "unknown-object"
  | "stale-lock";

/** Errors make `vger check` fail; warnings are leftovers that compact removes. */
export type Severity = "error" | "warning";

/** The archives and files that reference a damaged object. */
export interface Affected {
  /** Archive names, in manifest order. */
  archives: string[];
  /** Stored paths (without the leading "/"), at most 1000. */
  paths: string[];
  /** Whether more paths were affected than `paths` lists. */
  pathsTruncated: boolean;
}

/** One thing wrong with the repository. */
export interface Problem {
  /** What it is about. */
  kind: ProblemKind;
  /** Whether it makes the check fail. */
  severity: Severity;
  /** One line naming the object and the reason. */
  message: string;
  /** Who references the damaged data (empty when unknown or not applicable). */
  affects: Affected;
}

/** Counts of what a check looked at. */
export interface CheckStats {
  /** Archives checked. */
  archives: number;
  /** Packs in storage. */
  packs: number;
  /** Index entries checked; with verifyData, blobs opened and re-hashed. */
  blobs: number;
  /** Bytes read from packs. */
  bytesRead: number;
}

/** The outcome of {@linkcode checkRepository}. */
export interface CheckResult {
  /** Everything found, errors and warnings. */
  problems: Problem[];
  /** What was looked at. */
  stats: CheckStats;
  /** Whether the stored index was unreadable and the check used one rebuilt from the packs. */
  indexRebuilt: boolean;
}

/** Progress of a check: packs done and bytes read so far. */
export interface CheckProgress {
  /** headers: reading every pack header; data (verifyData): reading every pack through. */
  phase: "headers" | "data";
  /** Packs done in this phase (header read; read through). */
  packs: number;
  /** Packs this phase goes through (data: those present in storage). */
  totalPacks: number;
  /** Bytes read from packs, in all. */
  bytes: number;
  /** Data phase: bytes of the packs read through so far (0 in the headers phase). */
  packBytes: number;
  /** Bytes of the referenced packs in storage: what the data phase reads. */
  totalPackBytes: number;
}

/** Options of {@linkcode checkRepository}. */
export interface CheckOptions {
  /** Also read every pack and verify every blob. */
  verifyData?: boolean;
  /** Open and decompress blobs in these workers. */
  pool?: CodecPool;
  /** Called after each pack. */
  onProgress?(progress: CheckProgress): void;
  /** Bytes per range read when verifying data (default 4 MiB). */
  readRange?: number;
}

/** What the checker needs of a repository. */
export type CheckableRepository = Pick<
  Repository<ReadonlyBackend>,
  "backend" | "key" | "location" | "readManifest" | "readIndex" | "readArchive" | "readBlob"
>;

/** What repair needs of a repository: the same, over a writable backend, and its config. */
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

/** An archive whose file list (archive object or item stream) cannot be read. */
export interface BrokenArchive {
  /** Its name. */
  name: string;
  /** Its id, in hex. */
  id: string;
  /** The first missing or unreadable object found. */
  reason: string;
}

/** A file of a kept archive that references chunks the repaired index no longer has. */
export interface DamagedFile {
  /** The archive's name. */
  archive: string;
  /** The stored path (without the leading "/"). */
  path: string;
  /** How many of its chunk references are lost. */
  missingChunks: number;
}

/** A damaged pack whose blobs repair copied, as far as they verify, into new packs. */
export interface SalvagedPack {
  /** Its storage key. */
  key: string;
  /** What is wrong with it (one line). */
  reason: string;
  /** Blobs that verified and were copied into new packs (on a dry run: would be). */
  kept: number;
  /** Blobs that did not verify and left the index. */
  lost: number;
  /** Whether the damaged pack was deleted (after the index without it was written). */
  removed: boolean;
}

/** Options of {@linkcode repairRepository}. */
export interface RepairOptions {
  /** Only report: write no index, remove no archive. */
  dryRun?: boolean;
  /** Also read every pack through; packs with a blob that fails verification are salvaged. */
  verifyData?: boolean;
  /** False: only rebuild the index, salvage nothing (a backup's rebuild of a lost index). */
  salvage?: boolean;
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

/** The outcome of {@linkcode repairRepository}. */
export interface RepairResult {
  /** Entries of the rebuilt index. */
  entries: number;
  /** Packs the rebuilt index references. */
  packs: number;
  /** Packs left out because their header could not be read. */
  unreadablePacks: UnreadablePack[];
  /** Whether the rebuilt index differs from the stored one (or the stored one is unreadable). */
  indexChanged: boolean;
  /** Whether the rebuilt index was written (not on a dry run, not when unchanged). */
  indexWritten: boolean;
  /** Archives whose file list cannot be read: removed when confirmed. */
  brokenArchives: BrokenArchive[];
  /** Archives removed from the manifest. */
  removedArchives: string[];
  /** Damaged packs whose verifying blobs were copied into new packs. */
  salvagedPacks: SalvagedPack[];
  /** Files of kept archives whose chunks are lost (at most 1000; a backup stores them again). */
  damagedFiles: DamagedFile[];
  /** Whether more files are damaged than `damagedFiles` lists. */
  damagedFilesTruncated: boolean;
  /** Why archives could not be looked at (the manifest is unreadable). */
  manifestError?: string;
}

/** Bytes per range read when reading a pack through. */
const DEFAULT_READ_RANGE = 4 << 20;
/** Sealed bytes handed to the codec pool and not yet verified, at most. */
const DECODE_BUDGET = 64 << 20;
/**
 * Pack headers read at once per backend connection. A header read is three small range reads,
 * bound by latency rather than bandwidth, so a connection keeps several in flight; the local
 * backend's 2 connections give the 8 at once that were a fixed constant before.
 */
const HEADER_READS_PER_CONNECTION = 4;

/** A limiter for reading pack headers from this backend. */
function headerReads(backend: ReadonlyBackend): Limiter {
  return new Limiter(backend.capabilities.connections * HEADER_READS_PER_CONNECTION);
}
/** Paths listed per problem at most (a shared chunk can be in millions of files). */
const MAX_PATHS = 1000;
/** Distinct missing chunks reported one by one; the rest share one problem. */
const MAX_MISSING = 1000;

/** Whether a check found any error (the CLI exits 1 then). */
export function hasErrors(result: CheckResult): boolean {
  return result.problems.some((p) => p.severity === "error");
}

/**
 * Checks a repository's structure and, with `verifyData`, every byte of its packs. Damage is
 * reported in the result, never thrown; an unreadable index is rebuilt in memory from the pack
 * headers so that the rest can still be checked. Takes no lock and writes nothing.
 */
export async function checkRepository(
  repo: CheckableRepository,
  options: CheckOptions = {},
): Promise<CheckResult> {
  const report = new Report();
  const stats: CheckStats = { archives: 0, packs: 0, blobs: 0, bytesRead: 0 };
  // Manifest, then index, then the listing: the reverse of the write order, so that a backup
  // committing meanwhile cannot make a pack look missing (its packs precede its index).
  let manifest: Manifest | null = null;
  try {
    manifest = await repo.readManifest();
  } catch (err) {
    if (!(err instanceof VgerError)) throw err;
    report.add("corrupt-manifest", `${errorMessage(err)}; no archive can be checked`);
  }

  let index: ChunkIndex | null = null;
  let indexError: unknown = null;
  try {
    index = await repo.readIndex();
  } catch (err) {
    if (!(err instanceof VgerError)) throw err;
    indexError = err;
  }

  const listing = await listPacks(repo.backend);
  stats.packs = listing.packs.size;
  for (const key of listing.stray) {
    report.add(
      "unknown-object",
      `Object ${key} is not a pack (its name is not packs/<xx>/<64 hex digits>)`,
      "warning",
    );
  }

  let indexRebuilt = false;
  /** Packs already reported as unreadable by the rebuild (not "unreferenced"). */
  const reported = new Set<string>();
  if (index === null) {
    const err = indexError;
    const rebuilt = await buildIndex(repo, listing.packs, { stats });
    index = rebuilt.index;
    indexRebuilt = true;
    report.add(
      "corrupt-index",
      `${
        errorMessage(err)
      }; checking with an index rebuilt from the pack headers (repair writes it)`,
    );
    for (const u of rebuilt.unreadable) {
      reported.add(u.hex);
      report.add("corrupt-pack", `${u.error}; its blobs are not in the rebuilt index`);
    }
  }
  if (!options.verifyData) stats.blobs = index.size;

  const referenced = countEntriesPerPack(index);
  let totalPackBytes = 0;
  for (const hex of referenced.keys()) totalPackBytes += listing.packs.get(hex) ?? 0;
  const broken = await checkPackHeaders(repo, index, referenced, listing.packs, {
    report,
    stats,
    options,
    // a rebuilt index was made from these very headers
    skipHeaders: indexRebuilt,
    totalPackBytes,
  });
  if (options.verifyData) {
    await verifyPacks(repo, index, referenced, listing.packs, broken, {
      report,
      stats,
      options,
      totalPackBytes,
    });
  }
  if (manifest) await walkArchives(repo, index, manifest, { report, stats, options });

  for (const [hex] of listing.packs) {
    if (referenced.has(hex) || reported.has(hex)) continue;
    report.add(
      "unreferenced-pack",
      `Pack ${packKey(fromHex(hex))} is not referenced by the index (left by an interrupted ` +
        `backup; compact removes it)`,
      "warning",
    );
  }
  if (manifest) await findUnreferencedArchives(repo.backend, manifest, report);
  return { problems: report.problems(), stats, indexRebuilt };
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
 * and says so (nothing is written: `repairRepository` writes it). Other errors are thrown.
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
  const backend = repo.backend;
  let current: ChunkIndex | null = null;
  try {
    current = await repo.readIndex();
  } catch (err) {
    if (!isDamage(err)) throw err;
  }
  let listing = await listPacks(backend);
  let built = await buildIndex(repo, listing.packs, { prefer: current ?? undefined });
  keepUnreadable(built, current, listing.packs);

  // Damaged packs that the index has blobs in: salvage what verifies, drop the rest.
  const damaged = new Map<string, string>();
  const referenced = countEntriesPerPack(built.index);
  const salvaging = options.salvage ?? true;
  /** Packs whose header is unreadable: salvaged by the index's entries and by a scan. */
  const scan = new Set<string>();
  for (const u of salvaging ? built.unreadable : []) {
    scan.add(u.hex);
    damaged.set(u.hex, u.error);
  }
  if (options.verifyData && salvaging) {
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
      await backend.delete(s.key);
      listing.packs.delete(s.key.slice(s.key.lastIndexOf("/") + 1));
      s.removed = true;
    }
  }
  let indexWritten = false;
  if (indexChanged && !options.dryRun) {
    options.checkLock?.();
    await commitChanges(repo, async (tx) => {
      // A backup may have stored packs, or committed, since the listing: catch up under the
      // lock so that the written index does not drop their entries.
      const now = await listPacks(backend);
      const gone = [...listing.packs.keys()].some((hex) => !now.packs.has(hex));
      if (gone) {
        built = await buildIndex(repo, now.packs, { prefer: current ?? undefined });
        keepUnreadable(built, current, now.packs);
        applySalvage(built.index);
      } else {
        const fresh = new Map([...now.packs].filter(([hex]) => !listing.packs.has(hex)));
        const more = await buildIndex(repo, fresh, { into: built.index });
        built.unreadable.push(...more.unreadable);
      }
      listing = now;
      tx.saveIndex(built.index);
    });
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
      ...listing.stray.map((key) => ({ key, error: `Object ${key} is not a pack` })),
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
        const sealed = await readVerified(repo, key, size, id, loc, options.pool);
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

/** A blob found by {@linkcode scanRecords}. */
interface ScannedBlob {
  id: Uint8Array;
  type: ObjectTypeTag;
  sealed: Uint8Array;
  /** Offset of the object in the pack. */
  offset: number;
  rawLength: number;
}

/**
 * Walks the records of a pack whose header is unreadable from its first byte on, and yields each
 * blob that authenticates under the id its plaintext hashes to. A record whose CRC-32 fails is
 * skipped (its length still frames the next); a length that leaves the pack ends the walk.
 */
async function* scanRecords(
  repo: RepairableRepository,
  key: string,
  size: number,
): AsyncGenerator<ScannedBlob> {
  const read = async (offset: number, length: number): Promise<Uint8Array | null> => {
    try {
      const bytes = await repo.backend.getRange(key, offset, length);
      return bytes.length === length ? bytes : null;
    } catch (err) {
      if (isDamage(err)) return null;
      throw err; // a failing backend is not a lost blob
    }
  };
  let pos = PACK_PREAMBLE;
  while (pos + RECORD_PREFIX < size) {
    const prefix = await read(pos, RECORD_PREFIX);
    if (!prefix) return;
    const stored = parseRecordPrefix(prefix);
    const length = stored.length;
    const start = pos + RECORD_PREFIX;
    if (length < 1 || length > MAX_BLOB_OBJECT || start + length > size) return;
    const sealed = await read(start, length);
    if (!sealed) return;
    pos = start + length;
    if (recordFault(stored, sealed) !== null) continue;
    const type = sealed[0];
    if (type !== ObjectType.data && type !== ObjectType.items) continue;
    const what = `${type === ObjectType.items ? "Metadata blob" : "Chunk"} at offset ${start} ` +
      `of pack ${key}`;
    try {
      const blob = await repo.key.peek(sealed);
      if (!blob) continue;
      const plain = decompress(blob, MAX_BLOB, what);
      const id = await repo.key.chunkId(plain);
      await repo.key.open(type, id, sealed, what); // authenticates what peek read unchecked
      yield { id, type, sealed, offset: start, rawLength: plain.length };
    } catch (err) {
      if (!(err instanceof VgerError)) throw err;
    }
  }
}

/** The sealed object of a blob at `loc` in a damaged pack if it verifies, else null. */
async function readVerified(
  repo: RepairableRepository,
  key: string,
  size: number,
  id: Uint8Array,
  loc: ChunkLocation,
  pool?: CodecPool,
): Promise<Uint8Array | null> {
  if (loc.offset < FIRST_OBJECT_OFFSET || loc.offset + loc.length > size) return null;
  let record: Uint8Array;
  try {
    record = await repo.backend.getRange(key, recordStart(loc.offset), recordSize(loc.length));
  } catch (err) {
    // a failing backend is not a lost blob
    if (isDamage(err)) return null;
    throw err;
  }
  if (record.length !== recordSize(loc.length)) return null;
  const sealed = recordObject(record).slice();
  if (recordFault(parseRecordPrefix(record), sealed, loc.length) !== null) return null;
  const type = sealed[0];
  if (type !== ObjectType.data && type !== ObjectType.items) return null;
  const what = `${describeBlob(id, type)} in pack ${key}`;
  try {
    if (pool) {
      await pool.verify(type, id, sealed.slice(), loc.rawLength, what);
    } else {
      const max = Math.min(MAX_BLOB, loc.rawLength);
      const plain = decompress(await repo.key.open(type, id, sealed, what), max, what);
      if (plain.length !== loc.rawLength) return null;
      if (!bytesEqual(await repo.key.chunkId(plain), id)) return null;
    }
  } catch (err) {
    if (!(err instanceof VgerError)) throw err;
    return null;
  }
  return sealed;
}

// ---------------------------------------------------------------------------------------------
// Problems

/** A problem being collected: the archives and paths that reference it grow during the walk. */
class Found {
  readonly kind: ProblemKind;
  readonly severity: Severity;
  message: string;
  readonly archives = new Set<string>();
  readonly paths = new Set<string>();
  pathsTruncated = false;

  constructor(kind: ProblemKind, severity: Severity, message: string) {
    this.kind = kind;
    this.severity = severity;
    this.message = message;
  }

  affect(archive: string, path?: string): void {
    this.archives.add(archive);
    if (path === undefined || this.paths.has(path)) return;
    if (this.paths.size < MAX_PATHS) this.paths.add(path);
    else this.pathsTruncated = true;
  }

  problem(): Problem {
    return {
      kind: this.kind,
      severity: this.severity,
      message: this.message,
      affects: {
        archives: [...this.archives],
        paths: [...this.paths],
        pathsTruncated: this.pathsTruncated,
      },
    };
  }
}

/** The problems found so far, and which blob ids each one concerns. */
class Report {
  readonly #found: Found[] = [];
  /** Hex blob id -> the problems about it; only damaged ids are here (bounded memory). */
  readonly #byId = new Map<string, Found[]>();

  add(kind: ProblemKind, message: string, severity: Severity = "error"): Found {
    const f = new Found(kind, severity, message);
    this.#found.push(f);
    return f;
  }

  /** Records that the blob `hex` is damaged as `f` says, so the walk fills in who uses it. */
  link(hex: string, f: Found): void {
    const list = this.#byId.get(hex);
    if (!list) this.#byId.set(hex, [f]);
    else if (!list.includes(f)) list.push(f);
  }

  /** Whether any blob is linked (when none, the walk need not spell ids in hex). */
  get linked(): boolean {
    return this.#byId.size > 0;
  }

  /** Notes that `archive` (and the file `path`) references the blob `hex`; true if damaged. */
  touch(hex: string, archive: string, path?: string): boolean {
    const list = this.#byId.get(hex);
    if (!list) return false;
    for (const f of list) f.affect(archive, path);
    return true;
  }

  problems(): Problem[] {
    return this.#found.map((f) => f.problem());
  }
}

interface Ctx {
  report: Report;
  stats: CheckStats;
  options: CheckOptions;
}

// ---------------------------------------------------------------------------------------------
// Packs: listing, headers, rebuild

interface PackListing {
  /** Hex pack id -> size in bytes. */
  packs: Map<string, number>;
  /** Keys under packs/ that are not pack names. */
  stray: string[];
}

async function listPacks(backend: ReadonlyBackend): Promise<PackListing> {
  const packs = new Map<string, number>();
  const stray: string[] = [];
  for await (const { key, size } of backend.list(PACKS_PREFIX)) {
    const hex = parsePackKey(key);
    if (hex !== null) packs.set(hex, size);
    else stray.push(key);
  }
  return { packs, stray };
}

/** A range reader that counts the bytes it reads into `stats`. */
function counted(
  backend: ReadonlyBackend,
  stats?: CheckStats,
): { getRange(key: string, offset: number, length: number): Promise<Uint8Array> } {
  return {
    getRange: async (key, offset, length) => {
      const bytes = await backend.getRange(key, offset, length);
      if (stats) stats.bytesRead += bytes.length;
      return bytes;
    },
  };
}

interface Unreadable {
  key: string;
  hex: string;
  error: string;
}

/**
 * Adds the blobs of the given packs' headers to an index (a new one unless `into`). For a blob
 * in several packs, the one `prefer` names wins, else the pack with the smaller id.
 */
async function buildIndex(
  repo: Pick<Repository<ReadonlyBackend>, "backend" | "key">,
  packs: Map<string, number>,
  opts: { into?: ChunkIndex; prefer?: ChunkIndex; stats?: CheckStats } = {},
): Promise<{ index: ChunkIndex; unreadable: Unreadable[] }> {
  const index = opts.into ?? new ChunkIndex();
  const unreadable: Unreadable[] = [];
  const reader = counted(repo.backend, opts.stats);
  await headerReads(repo.backend).forEach(packs, async ([hex, size]) => {
    const key = packKey(fromHex(hex));
    let entries: PackEntry[];
    try {
      entries = await readPackHeader(reader, repo.key, key, size);
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
function keepUnreadable(
  built: { index: ChunkIndex; unreadable: Unreadable[] },
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

/** Hex pack id -> number of index entries pointing at it. */
function countEntriesPerPack(index: ChunkIndex): Map<string, number> {
  const counts = new Map<string, number>();
  for (const hex of index.packIds().map(toHex)) counts.set(hex, 0);
  for (const [, loc] of index.entries()) {
    const hex = toHex(loc.pack);
    counts.set(hex, counts.get(hex)! + 1);
  }
  return counts;
}

/** An index entry of a pack whose header cannot be trusted (kept only for such packs). */
interface IndexedBlob {
  id: Uint8Array;
  offset: number;
  length: number;
  rawLength: number;
}

interface BrokenPack {
  found: Found;
  size: number | null;
  /** Header ids, when the header was read but lacks some index entries. */
  headerIds?: Set<string>;
  /** Index entries of the pack (only kept when the data is verified next). */
  blobs: IndexedBlob[];
  count: number;
  beyondEnd: number;
  notInHeader: number;
  example?: string;
  /** Completes the message once the index has been walked. */
  describe(b: BrokenPack): string;
}

/**
 * Checks that every referenced pack exists and that its header agrees with the index. Returns the
 * packs found broken (missing, unreadable header, or index entries the header lacks), with their
 * index entries when the data is to be verified.
 */
async function checkPackHeaders(
  repo: CheckableRepository,
  index: ChunkIndex,
  referenced: Map<string, number>,
  stored: Map<string, number>,
  ctx: Ctx & { skipHeaders: boolean; totalPackBytes: number },
): Promise<Map<string, BrokenPack>> {
  const { report, stats, options } = ctx;
  const broken = new Map<string, BrokenPack>();
  const reader = counted(repo.backend, stats);
  let done = 0;
  const checkOne = async (hex: string, count: number): Promise<void> => {
    const key = packKey(fromHex(hex));
    const size = stored.get(hex) ?? null;
    const base = { size, blobs: [], count, beyondEnd: 0, notInHeader: 0 };
    if (size === null) {
      broken.set(hex, {
        ...base,
        found: report.add("missing-pack", `Pack ${key} is missing`),
        describe: (b) => `Pack ${key} is missing (the index lists ${b.count} blobs in it)`,
      });
      return;
    }
    if (ctx.skipHeaders) return;
    let entries: PackEntry[];
    try {
      entries = await readPackHeader(reader, repo.key, key, size, { entries: count });
    } catch (err) {
      if (!(err instanceof VgerError)) throw err;
      const msg = errorMessage(err);
      broken.set(hex, {
        ...base,
        found: report.add("corrupt-pack", msg),
        describe: (b) =>
          `${msg} (the index lists ${b.count} blobs in it` +
          (b.beyondEnd > 0 ? `, ${b.beyondEnd} past its end at ${size} bytes)` : ")"),
      });
      return;
    }
    const pack = fromHex(hex);
    let matched = 0;
    let differ = 0;
    let example = "";
    let found: Found | null = null;
    for (const e of entries) {
      const loc = index.get(e.id);
      if (!loc || !bytesEqual(loc.pack, pack)) continue;
      matched++;
      if (loc.offset === e.offset && loc.length === e.length && loc.rawLength === e.rawLength) {
        continue;
      }
      differ++;
      example ||= `${describeBlob(e.id, e.type)} is at offset ${loc.offset} length ${loc.length}` +
        ` in the index but at ${e.offset} length ${e.length} in the header`;
      found ??= report.add("pack-header-mismatch", "");
      report.link(toHex(e.id), found);
    }
    const prefix = `Pack ${key} header does not match the index`;
    if (matched < count) {
      found ??= report.add("pack-header-mismatch", "");
      broken.set(hex, {
        ...base,
        found,
        headerIds: new Set(entries.map((e) => toHex(e.id))),
        describe: (b) =>
          `${prefix}: ${b.notInHeader} indexed blobs are not in the header` +
          (differ > 0 ? `, ${differ} lie elsewhere` : "") + ` (first: ${example || b.example})`,
      });
    } else if (found) {
      found.message = `${prefix}: ${differ} blobs lie elsewhere (first: ${example})`;
    }
  };
  await headerReads(repo.backend).forEach(referenced, async ([hex, count]) => {
    await checkOne(hex, count);
    done++;
    options.onProgress?.({
      phase: "headers",
      packs: done,
      totalPacks: referenced.size,
      bytes: stats.bytesRead,
      packBytes: 0,
      totalPackBytes: ctx.totalPackBytes,
    });
  });
  if (broken.size === 0) return broken;

  // One pass over the index finds the entries of the broken packs.
  for (const [id, loc] of index.entries()) {
    const b = broken.get(toHex(loc.pack));
    if (!b) continue;
    const hex = toHex(id);
    if (b.headerIds) {
      if (b.headerIds.has(hex)) continue;
      b.notInHeader++;
      b.example ??= `chunk ${hex} at offset ${loc.offset}`;
    }
    report.link(hex, b.found);
    if (b.size !== null && (loc.offset < FIRST_OBJECT_OFFSET || loc.offset + loc.length > b.size)) {
      b.beyondEnd++;
    }
    if (options.verifyData && b.size !== null) {
      b.blobs.push({ id, offset: loc.offset, length: loc.length, rawLength: loc.rawLength });
    }
  }
  for (const b of broken.values()) {
    b.found.message = b.describe(b);
    b.blobs.sort((x, y) => x.offset - y.offset);
  }
  return broken;
}

// ---------------------------------------------------------------------------------------------
// Verifying data

/**
 * Reads a pack front to back in ranges, hashing every byte once in order; one range is fetched
 * ahead. Memory: two ranges plus the record being read.
 */
class PackReader {
  readonly #backend: ReadonlyBackend;
  readonly #key: string;
  readonly #size: number;
  readonly #stats: CheckStats;
  readonly #range: number;
  readonly #hash = createHash("sha256");
  #buf: Uint8Array = new Uint8Array(0);
  /** Pack offset of #buf[0]. */
  #bufStart = 0;
  /** Bytes requested from storage so far. */
  #requested = 0;
  #ahead: Promise<Uint8Array> | null = null;
  /** Bytes consumed. */
  pos = 0;

  readonly #onRead?: (pos: number) => void;

  constructor(
    backend: ReadonlyBackend,
    key: string,
    size: number,
    opts: { stats: CheckStats; range: number; onRead?: (pos: number) => void },
  ) {
    this.#backend = backend;
    this.#key = key;
    this.#size = size;
    this.#stats = opts.stats;
    this.#range = Math.max(1, opts.range);
    this.#onRead = opts.onRead;
  }

  #request(): Promise<Uint8Array> {
    const offset = this.#requested;
    const length = Math.min(this.#range, this.#size - offset);
    this.#requested += length;
    const p = this.#backend.getRange(this.#key, offset, length);
    p.catch(() => {}); // a read-ahead nobody awaits (the pack failed) must not go unhandled
    return p;
  }

  /** The next range, in order; starts fetching the one after it. */
  async #fetch(): Promise<void> {
    const start = this.#bufStart + this.#buf.length;
    const bytes = await (this.#ahead ?? this.#request());
    this.#ahead = this.#requested < this.#size ? this.#request() : null;
    this.#hash.update(bytes);
    this.#stats.bytesRead += bytes.length;
    this.#buf = bytes;
    this.#bufStart = start;
    this.#onRead?.(start + bytes.length);
  }

  /** Exactly `n` bytes from `pos` (the caller keeps `pos + n` within the pack). */
  async read(n: number): Promise<Uint8Array> {
    let at = this.pos - this.#bufStart;
    if (at + n <= this.#buf.length) {
      this.pos += n;
      return this.#buf.subarray(at, at + n);
    }
    const out = new Uint8Array(n);
    let filled = 0;
    for (;;) {
      const take = Math.min(n - filled, this.#buf.length - at);
      if (take > 0) out.set(this.#buf.subarray(at, at + take), filled);
      filled += take;
      if (filled === n) break;
      await this.#fetch();
      at = 0;
    }
    this.pos += n;
    return out;
  }

  /** Consumes (and hashes) bytes up to `offset`. */
  async skipTo(offset: number): Promise<void> {
    while (this.pos < offset) await this.read(Math.min(offset - this.pos, this.#range));
  }

  /** Reads the rest and returns the SHA-256 of the whole pack, in hex. */
  async digest(): Promise<string> {
    await this.skipTo(this.#size);
    return this.#hash.digest("hex");
  }
}

/** Blobs are verified in batches of about this many bytes, or this many blobs. */
const BATCH_BYTES = 2 << 20;
const BATCH_BLOBS = 256;

/** One record to verify: from the pack header, or from the index when the header is bad. */
interface Expected {
  id: Uint8Array;
  /** Unknown (taken from the envelope) when the record comes from the index. */
  type?: ObjectTypeTag;
  offset: number;
  length: number;
  rawLength: number;
}

async function verifyPacks(
  repo: CheckableRepository,
  index: ChunkIndex,
  referenced: Map<string, number>,
  stored: Map<string, number>,
  broken: Map<string, BrokenPack>,
  ctx: Ctx & { totalPackBytes: number },
): Promise<void> {
  const hexes = [...referenced.keys()].filter((hex) => stored.has(hex)).sort(); // else missing
  let done = 0;
  let doneBytes = 0;
  const progress = (packBytes: number) =>
    ctx.options.onProgress?.({
      phase: "data",
      packs: done,
      totalPacks: hexes.length,
      bytes: ctx.stats.bytesRead,
      packBytes,
      totalPackBytes: ctx.totalPackBytes,
    });
  for (const hex of hexes) {
    const size = stored.get(hex)!;
    // packs are large: report within each one as its ranges arrive
    const onRead = (pos: number) => progress(doneBytes + Math.min(pos, size));
    await verifyPack(repo, index, hex, size, broken.get(hex)?.blobs ?? [], ctx, onRead);
    done++;
    doneBytes += size;
    progress(doneBytes);
  }
}

/** Reads one pack through and verifies its records, blobs and hash. */
async function verifyPack(
  repo: CheckableRepository,
  index: ChunkIndex,
  hex: string,
  size: number,
  fromIndex: IndexedBlob[],
  ctx: Ctx,
  onRead?: (pos: number) => void,
): Promise<void> {
  const { report, stats } = ctx;
  const pool = ctx.options.pool;
  const pack = fromHex(hex);
  const key = packKey(pack);
  let records: Expected[];
  try {
    records = await readPackHeader(counted(repo.backend, stats), repo.key, key, size, {
      entries: fromIndex.length,
    });
  } catch (err) {
    if (!(err instanceof VgerError)) throw err;
    records = fromIndex; // already reported; still verify what the index points at
  }
  const reader = new PackReader(repo.backend, key, size, {
    stats,
    range: ctx.options.readRange ?? DEFAULT_READ_RANGE,
    onRead,
  });
  // sealed blobs being verified in the codec pool, bounded by their bytes
  const decoding = new Limiter(Infinity);
  const decodeBudget = new ByteBudget(DECODE_BUDGET);

  const fail = (r: Expected, why: string, used: boolean): void => {
    const what = `${describeBlob(r.id, r.type)} in pack ${key}`;
    const f = report.add(
      "corrupt-blob",
      `${why.startsWith(what) ? why : `${what} is corrupt: ${why}`}` +
        (used ? "" : " (an unused copy)"),
      used ? "error" : "warning",
    );
    if (used) report.link(toHex(r.id), f);
  };

  const verify = async (r: Expected, type: ObjectTypeTag, sealed: Uint8Array): Promise<void> => {
    const what = `${describeBlob(r.id, type)} in pack ${key}`;
    const max = Math.min(MAX_BLOB, r.rawLength);
    try {
      if (pool) {
        // the worker re-hashes: no plaintext comes back to this thread
        await pool.verify(type, r.id, sealed.slice(), r.rawLength, what);
        return;
      }
      const plain = decompress(await repo.key.open(type, r.id, sealed, what), max, what);
      if (plain.length !== r.rawLength) {
        throw new IntegrityError(`${plain.length} bytes, the index says ${r.rawLength}`);
      }
      if (!bytesEqual(await repo.key.chunkId(plain), r.id)) {
        throw new IntegrityError("its plaintext does not hash to its id");
      }
    } catch (err) {
      if (!(err instanceof VgerError)) throw err;
      fail({ ...r, type }, errorMessage(err), true);
    }
  };

  // blobs go to the workers in batches: one message per blob cost more than the work
  let batch: { r: Expected; type: ObjectTypeTag; sealed: Uint8Array }[] = [];
  let batchBytes = 0;
  const sendBatch = async (): Promise<void> => {
    if (batch.length === 0) return;
    const parts = batch;
    const bytes = batchBytes;
    batch = [];
    batchBytes = 0;
    const verifyParts = async (): Promise<void> => {
      let results: (Error | null)[];
      try {
        results = await pool!.verifyBatch(parts.map(({ r, type, sealed }) => ({
          type,
          id: r.id,
          sealed,
          rawLength: r.rawLength,
          what: `${describeBlob(r.id, type)} in pack ${key}`,
        })));
      } catch (err) {
        if (!(err instanceof VgerError)) throw err;
        results = parts.map(() => err);
      }
      results.forEach((err, i) => {
        if (err) fail({ ...parts[i].r, type: parts[i].type }, errorMessage(err), true);
      });
    };
    await decodeBudget.reserve(bytes);
    await decoding.spawn(() => verifyParts().finally(() => decodeBudget.release(bytes)));
  };

  try {
    for (const r of records) {
      stats.blobs++;
      // Header entries the index places elsewhere are unused copies: only their CRC matters.
      const loc = r.type === undefined ? undefined : index.get(r.id);
      const used = r.type === undefined ||
        (loc !== undefined && bytesEqual(loc.pack, pack) && loc.offset === r.offset);
      if (r.offset < FIRST_OBJECT_OFFSET || r.offset + r.length > size) {
        fail(r, `it lies past the end of the pack (${size} bytes)`, used);
        continue;
      }
      const start = recordStart(r.offset);
      let record: Uint8Array;
      if (start >= reader.pos) {
        await reader.skipTo(start);
        record = await reader.read(recordSize(r.length));
      } else {
        // overlapping index entries (damaged index): read this one on its own
        record = await counted(repo.backend, stats).getRange(key, start, recordSize(r.length));
      }
      const stored = parseRecordPrefix(record);
      const sealed = recordObject(record);
      const type = r.type ?? sealed[0];
      const fault = recordFault(stored, sealed, r.length);
      if (fault === "length") {
        fail(r, `its record says ${stored.length} bytes, expected ${r.length}`, used);
      } else if (fault === "crc") {
        fail(r, "CRC-32 mismatch", used);
      } else if (type !== ObjectType.data && type !== ObjectType.items) {
        fail(r, `type tag ${type}`, used);
      } else if (used) {
        if (!pool) await verify(r, type, sealed);
        else {
          batch.push({ r, type, sealed: sealed.slice() });
          batchBytes += r.length;
          if (batchBytes >= BATCH_BYTES || batch.length >= BATCH_BLOBS) await sendBatch();
        }
      }
    }
    await sendBatch();
    const digest = await reader.digest();
    if (digest !== hex) {
      report.add("pack-hash-mismatch", `Pack ${key} is corrupt: its SHA-256 is ${digest}`);
    }
  } catch (err) {
    if (!(err instanceof VgerError)) throw err;
    report.add("corrupt-pack", `Pack ${key} cannot be read: ${errorMessage(err)}`);
  } finally {
    try {
      await sendBatch(); // the blobs read before a failure are still verified
    } finally {
      await decoding.drain();
    }
  }
}

function describeBlob(id: Uint8Array, type?: ObjectTypeTag | number): string {
  return `${type === ObjectType.items ? "Metadata blob" : type === undefined ? "Blob" : "Chunk"} ${
    toHex(id)
  }`;
}

// ---------------------------------------------------------------------------------------------
// Archives

/**
 * Reads every archive and its item stream once: reports unreadable archives and chunks missing
 * from the index, and fills in who references each damaged blob.
 */
async function walkArchives(
  repo: CheckableRepository,
  index: ChunkIndex,
  manifest: Manifest,
  ctx: Ctx,
): Promise<void> {
  const { report, stats, options } = ctx;
  const missing = new Map<string, Found>();
  let overflow: Found | null = null;
  let overflowRefs = 0;
  /** The problem for a blob the index lacks; only the first MAX_MISSING get their own. */
  const missingBlob = (id: Uint8Array, type: ObjectTypeTag): Found => {
    const hex = toHex(id);
    let f = missing.get(hex);
    if (f) return f;
    if (missing.size >= MAX_MISSING) {
      overflowRefs++;
      overflow ??= report.add("missing-chunk", "");
      overflow.message = `${overflowRefs} more references to chunks missing from the index`;
      return overflow;
    }
    f = report.add("missing-chunk", `${describeBlob(id, type)} is missing from the index`);
    missing.set(hex, f);
    return f;
  };

  /** Item blobs already walked that reference no damaged chunk: other archives skip them. */
  const clean = new Set<string>();
  for (const entry of manifest.archives) {
    stats.archives++;
    const name = entry.name;
    let items: Uint8Array[];
    try {
      items = (await repo.readArchive(entry)).items;
    } catch (err) {
      if (!(err instanceof VgerError)) throw err;
      report.add("corrupt-archive", errorMessage(err)).affect(name);
      continue;
    }
    for (const blobId of items) {
      const blobHex = toHex(blobId);
      report.touch(blobHex, name);
      if (clean.has(blobHex)) continue;
      if (!index.has(blobId)) {
        missingBlob(blobId, ObjectType.items).affect(name);
        continue;
      }
      try {
        const blob = await repo.readBlob(index, blobId, ObjectType.items, options.pool);
        let damaged = false;
        for (const item of decodeItems(blob, `Metadata blob ${blobHex}`)) {
          if (!item.chunks) continue;
          for (const c of item.chunks) {
            if (!index.has(c)) {
              missingBlob(c, ObjectType.data).affect(name, item.path);
              damaged = true;
            } else if (report.linked && report.touch(toHex(c), name, item.path)) {
              damaged = true;
            }
          }
        }
        if (!damaged) clean.add(blobHex);
      } catch (err) {
        if (!(err instanceof VgerError)) throw err;
        report.add(
          "corrupt-archive",
          `Archive "${name}" cannot be listed in full: ${errorMessage(err)}`,
        ).affect(name);
      }
    }
  }
}

async function findUnreferencedArchives(
  backend: ReadonlyBackend,
  manifest: Manifest,
  report: Report,
): Promise<void> {
  const known = new Set(manifest.archives.map((a) => toHex(a.id)));
  for await (const { key } of backend.list(ARCHIVES_PREFIX)) {
    const hex = parseArchiveKey(key);
    if (hex === null) {
      report.add("unknown-object", `Object ${key} is not an archive`, "warning");
    } else if (!known.has(hex)) {
      report.add(
        "unreferenced-archive",
        `Archive object ${key} is not in the manifest (left by an interrupted or removed backup)`,
        "warning",
      );
    }
  }
}

/** Whether an error means stored data is gone or damaged (not a failing backend or network). */
function isDamage(err: unknown): boolean {
  if (!(err instanceof IntegrityError || err instanceof NotFoundError)) return false;
  // readBlob wraps any backend failure in an IntegrityError: look through it
  const cause = err.cause;
  return !(cause instanceof VgerError) || cause instanceof IntegrityError ||
    cause instanceof NotFoundError;
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
      for (const item of decodeItems(blob, `Metadata blob ${blobHex}`)) {
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
