/**
 * `vger check`: finds damage in a repository and says which archives and files it touches.
 *
 * The structural check reads no file data: the manifest, the index, every archive and its item
 * stream (small), and every pack header, which must agree with the index entries that point at
 * the pack. With `verifyData`, lib/verifier.ts also reads every referenced pack through. An
 * unreadable index is rebuilt in memory from the pack headers (lib/index_recovery.ts) so that
 * the rest can still be checked; `check --repair` is lib/repair.ts.
 *
 * Problems are collected, never thrown: each names the object and, found by one walk over the
 * item streams at the end, the archives and stored paths that reference the damaged blobs. The
 * report's types are in lib/check_report.ts.
 *
 * @example Check a repository and list what is damaged
 * ```ts ignore
 * import { checkRepository } from "./checker.ts";
 * import { hasErrors } from "./check_report.ts";
 *
 * const result = await checkRepository(repo, { verifyData: true });
 * for (const p of result.problems) console.log(p.severity, p.message, p.affects.paths);
 * if (hasErrors(result)) Deno.exitCode = 1;
 * ```
 *
 * @module
 */

import { decodeItems } from "./archive.ts";
import type { ChunkIndex } from "./chunk_index.ts";
import type { CodecPool } from "./codec_pool.ts";
import { describeBlob, ObjectType, type ObjectTypeTag } from "./crypto.ts";
import {
  type Abortable,
  errorMessage,
  throwIfAborted,
  UnsupportedError,
  VgerError,
} from "./errors.ts";
import { fromHex, toHex } from "./ids.ts";
import { buildIndex, listPacks } from "./index_recovery.ts";
import type { Manifest } from "./manifest.ts";
import { FIRST_OBJECT_OFFSET, type PackEntries } from "./pack.ts";
import { countingReader, headerReadLimiter, readPackHeader } from "./pack_reader.ts";
import { listArchiveObjects, type Repository } from "./repository.ts";
import { readBlobsAhead } from "./archive_items.ts";
import { packKey } from "./storage_keys.ts";
import { type IndexedBlob, verifyPacks } from "./verifier.ts";
import {
  type CheckableRepository,
  type CheckProgress,
  type CheckResult,
  type CheckStats,
  type Found,
  Report,
} from "./check_report.ts";

/** Options of {@linkcode checkRepository}; an aborted `signal` stops it between packs and archives. */
export interface CheckOptions extends Abortable {
  /** Also read every pack and verify every blob. */
  verifyData?: boolean;
  /** Open and decompress blobs in these workers. */
  pool?: CodecPool;
  /** Called after each pack. */
  onProgress?(progress: CheckProgress): void;
  /** Bytes per range read when verifying data (default 4 MiB). */
  readRange?: number;
}

/** Distinct missing chunks reported one by one; the rest share one problem. */
const MAX_MISSING = 1000;

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
    const rebuilt = await buildIndex(repo, listing.packs, {
      onBytes: (bytes) => {
        stats.bytesRead += bytes;
      },
    });
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

  const referenced = index.entriesPerPack();
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
    const fromIndex = new Map([...broken].map(([hex, b]) => [hex, b.blobs]));
    await verifyPacks(repo, index, referenced, listing.packs, fromIndex, {
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
  if (manifest) await findUnreferencedArchives(repo, manifest, report);
  return { problems: report.problems(), stats, indexRebuilt };
}

interface Ctx {
  report: Report;
  stats: CheckStats;
  options: CheckOptions;
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
  const reader = countingReader(repo.backend, (bytes) => {
    stats.bytesRead += bytes;
  });
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
    let entries: PackEntries;
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
    // views, nothing kept: a pack of tiny chunks has a few hundred thousand entries
    for (let i = 0; i < entries.length; i++) {
      const e = entries.viewAt(i);
      const same = index.matchesIn(e.id, pack, e.offset, e.length, e.rawLength);
      if (same === null) continue;
      matched++;
      if (same) continue;
      differ++;
      const loc = index.get(e.id)!;
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
        headerIds: new Set(
          Array.from({ length: entries.length }, (_, i) => toHex(entries.viewAt(i).id)),
        ),
        describe: (b) =>
          `${prefix}: ${b.notInHeader} indexed blobs are not in the header` +
          (differ > 0 ? `, ${differ} lie elsewhere` : "") + ` (first: ${example || b.example})`,
      });
    } else if (found) {
      found.message = `${prefix}: ${differ} blobs lie elsewhere (first: ${example})`;
    }
  };
  await headerReadLimiter(repo.backend).forEach(referenced, async ([hex, count]) => {
    throwIfAborted(options.signal, "Check");
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
    throwIfAborted(options.signal, "Check");
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
    // the blobs to read, read ahead in order (one at a time, each waits a round trip)
    const toRead = items.filter((id) => !clean.has(toHex(id)) && index.has(id));
    const reads = readBlobsAhead(repo, index, toRead, {
      type: ObjectType.items,
      ahead: repo.backend.capabilities.connections,
      pool: options.pool,
    });
    let readAt = 0;
    for (const blobId of items) {
      const blobHex = toHex(blobId);
      report.touch(blobHex, name);
      const read = toRead[readAt] === blobId ? (readAt++, (await reads.next()).value) : undefined;
      if (clean.has(blobHex)) continue;
      if (!index.has(blobId)) {
        missingBlob(blobId, ObjectType.items).affect(name);
        continue;
      }
      try {
        const blob = read ?? await repo.readBlob(index, blobId, ObjectType.items, options.pool);
        if (blob instanceof VgerError) throw blob;
        let damaged = false;
        for (const item of decodeItems(blob, `Metadata blob ${blobHex}`, { archive: name })) {
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
        // an item type of a newer vger is no damage: stop, naming the archive
        if (!(err instanceof VgerError) || err instanceof UnsupportedError) throw err;
        report.add(
          "corrupt-archive",
          `Archive "${name}" cannot be listed in full: ${errorMessage(err)}`,
        ).affect(name);
      }
    }
  }
}

async function findUnreferencedArchives(
  repo: Pick<Repository, "backend">,
  manifest: Manifest,
  report: Report,
): Promise<void> {
  const known = new Set(manifest.archives.map((a) => toHex(a.id)));
  for await (const { key, hex } of listArchiveObjects(repo)) {
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
