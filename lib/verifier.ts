/**
 * Data verification (`check --verify-data`, and repair's search for damaged packs): reads every
 * referenced pack from start to end in ranges of a few MiB through lib/pack_reader.ts, checks
 * each record's CRC-32, opens and decompresses each blob, re-hashes its plaintext against its id
 * and checks that the SHA-256 of the pack is its name. Problems go to a
 * {@linkcode Report} (lib/check_report.ts), never thrown.
 *
 * Below the check engines: lib/checker.ts and lib/repair.ts call it; it imports neither.
 *
 * @module
 */

import type { ChunkIndex } from "./chunk_index.ts";
import { type CodecPool, VerifyBatch } from "./codec_pool.ts";
import { ByteBudget, Limiter } from "./concurrency.ts";
import { describeBlob, type ObjectTypeTag } from "./crypto.ts";
import { errorMessage, throwIfAborted, VgerError } from "./errors.ts";
import { fromHex, toHex } from "./ids.ts";
import { FIRST_OBJECT_OFFSET, recordSize, recordStart } from "./pack.ts";
import {
  checkRecord,
  countingReader,
  PackStream,
  readPackHeader,
  readRawRecord,
  verifySealed,
} from "./pack_reader.ts";
import { packKey } from "./storage_keys.ts";
import {
  type CheckableRepository,
  type CheckProgress,
  type CheckStats,
  Report,
} from "./check_report.ts";

/** Blobs are verified in batches of about this many bytes, or this many blobs. */
const BATCH_BYTES = 2 << 20;
const BATCH_BLOBS = 256;

/** Bytes per range read when reading a pack through. */
const DEFAULT_READ_RANGE = 4 << 20;
/**
 * Sealed bytes handed to the codec pool and not yet verified, at most (all packs together), per
 * worker: two batches, one being verified and one queued. Measured on a 1.05 GiB repository with
 * two workers: 64 MiB in all had a peak RSS of 399-403 MiB, 8 MiB 336 MiB, at the same CPU time.
 */
const DECODE_BUDGET_PER_WORKER = 2 * BATCH_BYTES;
/**
 * Bytes of ranges read ahead, at most, all packs together: each pack being read holds two
 * ranges (the one read and the one in flight), so this bounds how many packs are read at once
 * whatever the backend's `connections` (4 with the default ranges).
 */
const READ_AHEAD_BUDGET = 32 << 20;

/** The budget of sealed bytes in the codec pool: {@linkcode DECODE_BUDGET_PER_WORKER} each. */
function decodeBudgetFor(pool: CodecPool | undefined): ByteBudget {
  return new ByteBudget(DECODE_BUDGET_PER_WORKER * Math.max(1, pool?.size ?? 1));
}

/** An index entry of a pack whose header cannot be trusted (kept only for such packs). */
export interface IndexedBlob {
  /** The blob's id. */
  id: Uint8Array;
  /** Offset of its object in the pack. */
  offset: number;
  /** Length of its object. */
  length: number;
  /** Its plaintext length. */
  rawLength: number;
}

/** Where {@linkcode verifyPack} reports, and how it reads. */
export interface VerifyContext {
  /** Problems found go here. */
  report: Report;
  /** Blobs verified and bytes read are counted here. */
  stats: CheckStats;
  /** How to read and verify. */
  options: {
    /** Open and decompress blobs in these workers. */
    pool?: CodecPool;
    /** Bytes per range read (default 4 MiB). */
    readRange?: number;
    /** Called as the packs are read through (phase "data"). */
    onProgress?(progress: CheckProgress): void;
    /** Stops the verification between packs (an InterruptedError) once aborted. */
    signal?: AbortSignal;
  };
  /**
   * Sealed bytes in the codec pool and not yet verified, shared by the packs verified at once
   * (default: {@linkcode DECODE_BUDGET_PER_WORKER} per worker, for this pack alone).
   */
  decodeBudget?: ByteBudget;
}

/** One record to verify: from the pack header, or from the index when the header is bad. */
interface Expected {
  id: Uint8Array;
  /** Unknown (taken from the envelope) when the record comes from the index. */
  type?: ObjectTypeTag;
  offset: number;
  length: number;
  rawLength: number;
}

/**
 * Reads every referenced pack in storage through, in the order of their ids, and verifies its
 * records, blobs and hash (see {@linkcode verifyPack}); reports progress (phase "data") as the
 * ranges arrive. `fromIndex` holds, for packs whose header cannot be trusted, the index's entries
 * in them, sorted by offset.
 *
 * As many packs as the backend has `connections` are read at once (each with one range in
 * flight and one being verified), within a budget of bytes read ahead, sharing one budget of
 * sealed bytes in the codec pool; the problems of each pack join the report in the order of the
 * pack ids, whichever finished first.
 */
export async function verifyPacks(
  repo: CheckableRepository,
  index: ChunkIndex,
  referenced: Map<string, number>,
  stored: Map<string, number>,
  fromIndex: Map<string, IndexedBlob[]>,
  ctx: VerifyContext & { totalPackBytes: number },
): Promise<void> {
  const hexes = [...referenced.keys()].filter((hex) => stored.has(hex)).sort(); // else missing
  let done = 0;
  let doneBytes = 0;
  /** How far each pack being read has been read. */
  const reading = new Map<string, number>();
  const progress = () => {
    let packBytes = doneBytes;
    for (const pos of reading.values()) packBytes += pos;
    ctx.options.onProgress?.({
      phase: "data",
      packs: done,
      totalPacks: hexes.length,
      bytes: ctx.stats.bytesRead,
      packBytes,
      totalPackBytes: ctx.totalPackBytes,
    });
  };
  const decodeBudget = ctx.decodeBudget ?? decodeBudgetFor(ctx.options.pool);
  const reports = new Map<string, Report>();
  const range = ctx.options.readRange ?? DEFAULT_READ_RANGE;
  const packs = new Limiter(
    Math.max(
      1,
      Math.min(repo.backend.capabilities.connections, Math.floor(READ_AHEAD_BUDGET / (2 * range))),
    ),
  );
  try {
    await packs.forEach(hexes, async (hex) => {
      throwIfAborted(ctx.options.signal, "Check");
      const size = stored.get(hex)!;
      const report = new Report();
      reports.set(hex, report);
      reading.set(hex, 0);
      // packs are large: report within each one as its ranges arrive
      const onRead = (pos: number) => {
        reading.set(hex, Math.min(pos, size));
        progress();
      };
      await verifyPack(repo, index, hex, size, fromIndex.get(hex) ?? [], {
        ...ctx,
        report,
        decodeBudget,
      }, onRead);
      reading.delete(hex);
      done++;
      doneBytes += size;
      progress();
    });
  } finally {
    for (const hex of hexes) {
      const report = reports.get(hex);
      if (report) ctx.report.append(report);
    }
  }
}

/**
 * Reads one pack through and verifies its records, blobs and hash; what is wrong goes to
 * `ctx.report` (blobs the index uses are linked to their problems), what was read to
 * `ctx.stats`. The records are those of the pack's header, or `fromIndex` when the header does
 * not read.
 */
export async function verifyPack(
  repo: CheckableRepository,
  index: ChunkIndex,
  hex: string,
  size: number,
  fromIndex: IndexedBlob[],
  ctx: VerifyContext,
  onRead?: (pos: number) => void,
): Promise<void> {
  const { report, stats } = ctx;
  const pool = ctx.options.pool;
  const onBytes = (bytes: number) => {
    stats.bytesRead += bytes;
  };
  const pack = fromHex(hex);
  const key = packKey(pack);
  // the header's entries are taken as views of its bytes: a copy is an ArrayBuffer per entry
  let count: number;
  let recordAt: (i: number) => Expected;
  try {
    const entries = await readPackHeader(
      countingReader(repo.backend, onBytes),
      repo.key,
      key,
      size,
      {
        entries: fromIndex.length,
      },
    );
    count = entries.length;
    recordAt = (i) => entries.viewAt(i);
  } catch (err) {
    if (!(err instanceof VgerError)) throw err;
    count = fromIndex.length; // already reported; still verify what the index points at
    recordAt = (i) => fromIndex[i];
  }
  const reader = new PackStream(repo.backend, key, size, {
    range: ctx.options.readRange ?? DEFAULT_READ_RANGE,
    onBytes,
    onRead,
    // the pack's SHA-256 in a worker: it was a third of this thread's time
    hasher: pool?.hashStream(),
  });
  // sealed blobs being verified in the codec pool, bounded by their bytes
  const decoding = new Limiter(Infinity);
  const decodeBudget = ctx.decodeBudget ?? decodeBudgetFor(pool);

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
    try {
      // with a pool, the worker re-hashes: no plaintext comes back to this thread
      await verifySealed(repo, pool, { type, id: r.id, sealed, rawLength: r.rawLength }, what);
    } catch (err) {
      if (!(err instanceof VgerError)) throw err;
      fail({ ...r, type }, errorMessage(err), true);
    }
  };

  // blobs go to the workers in batches (one message per blob cost more than the work), flat
  // (VerifyBatch), with which record each blob is, to name those that fail: nothing per blob
  // outlives its turn of the loop below
  let batch: VerifyBatch | null = null;
  let batchRecords = new Int32Array(BATCH_BLOBS);
  const sendBatch = async (): Promise<void> => {
    if (batch === null || batch.count === 0) return;
    const sent = batch;
    const records = batchRecords;
    const bytes = sent.size;
    batch = null;
    batchRecords = new Int32Array(BATCH_BLOBS);
    const verifyParts = async (): Promise<void> => {
      let failures: Map<number, Error>;
      const count = sent.count;
      try {
        // each blob is named in the worker, and only when it fails: naming 100,000s of tiny
        // chunks here was a quarter of a check's garbage
        failures = await pool!.verifyBatch(sent, `in pack ${key}`);
      } catch (err) {
        if (!(err instanceof VgerError)) throw err;
        failures = new Map(Array.from({ length: count }, (_, i) => [i, err]));
      }
      for (const [i, err] of failures) {
        fail({ ...recordAt(records[i]), type: sent.typeAt(i) }, errorMessage(err), true);
      }
    };
    await decodeBudget.reserve(bytes);
    await decoding.spawn(() => verifyParts().finally(() => decodeBudget.release(bytes)));
  };

  try {
    for (let i = 0; i < count; i++) {
      const r = recordAt(i);
      stats.blobs++;
      // Header entries the index places elsewhere are unused copies: only their CRC matters.
      const used = r.type === undefined || index.isAt(r.id, pack, r.offset);
      if (r.offset < FIRST_OBJECT_OFFSET || r.offset + r.length > size) {
        fail(r, `it lies past the end of the pack (${size} bytes)`, used);
        continue;
      }
      const start = recordStart(r.offset);
      const n = recordSize(r.length);
      // in the range at hand, the record is taken without awaiting (most are: a promise and a
      // turn of the event loop per record was a tenth of the loop's time)
      let record = start === reader.pos ? reader.readBuffered(n) : null;
      if (record !== null) {
        // read above
      } else if (start >= reader.pos) {
        await reader.skipTo(start);
        record = await reader.read(n);
      } else {
        // overlapping index entries (damaged index): read this one on its own
        record = await readRawRecord(
          countingReader(repo.backend, onBytes),
          key,
          r.offset,
          r.length,
        );
      }
      const { sealed, type: t, fault } = checkRecord(record, r.length, r.type);
      const type = t as ObjectTypeTag;
      if (fault !== null) {
        fail(r, fault, used);
      } else if (used) {
        if (!pool) await verify(r, type, sealed);
        else {
          if (batch !== null && !batch.fits(sealed.length)) await sendBatch();
          // sized for a full batch of blobs like this one
          batch ??= new VerifyBatch(
            BATCH_BLOBS,
            Math.max(sealed.length, Math.min(BATCH_BYTES, sealed.length * BATCH_BLOBS)),
          );
          batchRecords[batch.add(type, r.id, sealed, r.rawLength)] = i;
          if (batch.size >= BATCH_BYTES || batch.count >= BATCH_BLOBS) await sendBatch();
        }
      }
      // a record read across ranges is a copy, up to a largest chunk: freed now, not when the
      // collector finds it (the corpus's check peaked 30-45 MiB higher)
      reader.free(record);
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
