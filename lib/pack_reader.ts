/**
 * The one reader of records from stored packs: every check of a record read from storage (its
 * prefix, CRC-32 and type tag, through pack.ts's functions) and of the blob it holds (opened,
 * decompressed and re-hashed against its id, in the codec pool when one is given) is made here.
 * Part of the repository layer: it calls the backend for pack objects.
 *
 * - {@linkcode readPackHeader} reads and authenticates a pack's header (one range request for its
 *   tail in the common case).
 * - {@linkcode PackStream} reads a pack front to back in ranges and hashes it (verify-data).
 * - {@linkcode readVerifiedRecord} reads one record where the index places it and verifies it;
 *   {@linkcode scanRecords} walks the records of a pack whose header is lost (repair's salvage).
 * - {@linkcode readLiveRecords} reads given records of one pack in few range requests and
 *   verifies each: a copy of a pack's live blobs (compact).
 * - {@linkcode RecordBatcher} gathers reads of adjacent records of one pack into one range
 *   request whose blobs one codec worker opens (restore's hot path).
 *
 * @example Read and verify one blob where the index places it
 * ```ts ignore
 * import { readVerifiedRecord } from "./pack_reader.ts";
 *
 * const sealed = await readVerifiedRecord(repo, packKey(loc.pack), packSize, id, loc, pool);
 * if (sealed === null) console.log("the blob is lost");
 * ```
 *
 * @module
 */

import { createHash } from "node:crypto";
import type { ReadonlyBackend } from "../backends/backend.ts";
import { release } from "./bytes.ts";
import type { ChunkLocation } from "./chunk_index.ts";
import { type CodecPool, type HashStream, VerifyBatch } from "./codec_pool.ts";
import { Limiter } from "./concurrency.ts";
import { decompress } from "./compress.ts";
import { describeBlob, ObjectType, type ObjectTypeTag, type RepoKey } from "./crypto.ts";
import { IntegrityError, isDamage, NotFoundError, VgerError } from "./errors.ts";
import { bytesEqual, toHex } from "./ids.ts";
import {
  checkPackPreamble,
  FIRST_OBJECT_OFFSET,
  headerInTail,
  MAX_BLOB,
  MAX_BLOB_OBJECT,
  PACK_PREAMBLE,
  PackEntries,
  packTailLength,
  parseRecordPrefix,
  RECORD_PREFIX,
  recordFault,
  recordObject,
  recordSize,
  recordStart,
} from "./pack.ts";
import type { Repository } from "./repository.ts";
import { packKey } from "./storage_keys.ts";

/** What reading verified records needs of a repository: its backend and its key. */
export type PackSource = Pick<Repository<ReadonlyBackend>, "backend" | "key">;

/** Something that reads byte ranges of stored objects (a backend, or a counting wrapper). */
export interface RangeReader {
  /** Reads `length` bytes of `key` from `offset` (fewer at the object's end). */
  getRange(key: string, offset: number, length: number): Promise<Uint8Array>;
}

/** Options of {@linkcode readPackHeader}. */
export interface ReadPackHeaderOptions {
  /** How many blobs the pack is expected to hold (from the index), to size the tail read. */
  entries?: number;
}

/**
 * Reads and authenticates a pack's header from storage with one range request for the pack's
 * tail (pack.ts's `packTailLength`), which holds the preamble too when it is the whole pack. A
 * larger pack takes a second request for its 9-byte preamble (the magic and version are checked
 * whatever the pack's size), and a header larger than the tail one more for its start. Requests
 * run one after the other, so a caller's limit on packs read at once bounds the requests too. The
 * entries stay the header's bytes (iterating yields fresh objects): a pack of tiny chunks holds
 * 100,000s, which as objects would outlive many collections.
 */
export async function readPackHeader(
  backend: RangeReader,
  key: RepoKey,
  packKeyName: string,
  packSize: number,
  options: ReadPackHeaderOptions = {},
): Promise<PackEntries> {
  const what = `Pack ${packKeyName}`;
  if (packSize < PACK_PREAMBLE + 4) throw new IntegrityError(`${what} is corrupt: too short`);
  const tailLength = packTailLength(packSize, {
    entries: options.entries,
    sealOverhead: key.sealHead + key.sealTail,
  });
  const tailOffset = packSize - tailLength;
  const tail = await backend.getRange(packKeyName, tailOffset, tailLength);
  const preamble = tailOffset > 0 ? await backend.getRange(packKeyName, 0, PACK_PREAMBLE) : null;
  checkPackPreamble(preamble ?? tail, what);
  const found = headerInTail(tail, packSize, what);
  let sealed = found.sealed;
  if (!sealed) {
    const head = await backend.getRange(packKeyName, found.offset, found.missing);
    sealed = new Uint8Array(found.length);
    sealed.set(head);
    sealed.set(tail.subarray(0, found.length - found.missing), found.missing);
  }
  const plain = await key.open(ObjectType.packHeader, "pack-header", sealed, `${what} header`);
  return PackEntries.decode(plain, found.offset, what);
}

/**
 * Reads the record of the object at `objectOffset`, `objectLength` bytes long, of the pack stored
 * as `packKeyName`, as it is stored (prefix and object, unchecked: {@linkcode checkRecord} checks
 * it), in one range request.
 */
export function readRawRecord(
  reader: RangeReader,
  packKeyName: string,
  objectOffset: number,
  objectLength: number,
): Promise<Uint8Array> {
  return reader.getRange(packKeyName, recordStart(objectOffset), recordSize(objectLength));
}

/** A range reader over `backend` that reports the bytes it reads to `onBytes`. */
export function countingReader(
  backend: ReadonlyBackend,
  onBytes?: (bytes: number) => void,
): RangeReader {
  return {
    getRange: async (key, offset, length) => {
      const bytes = await backend.getRange(key, offset, length);
      onBytes?.(bytes.length);
      return bytes;
    },
  };
}

/**
 * Pack headers read at once per backend connection. A header read is one to three small range
 * reads, bound by latency rather than bandwidth, so a connection keeps several in flight; the
 * local backend's 2 connections give the 8 at once that were a fixed constant before.
 */
const HEADER_READS_PER_CONNECTION = 4;

/** A limiter for reading pack headers from this backend. */
export function headerReadLimiter(backend: ReadonlyBackend): Limiter {
  return new Limiter(backend.capabilities.connections * HEADER_READS_PER_CONNECTION);
}

/**
 * Reads a pack front to back in ranges, hashing every byte once in order; one range is fetched
 * ahead. Memory: two ranges plus the record being read, and two more at the hasher, if any. A
 * view that {@linkcode PackStream.read} returns is valid until the next call (the range under it
 * is then freed).
 */
export class PackStream {
  readonly #backend: Pick<ReadonlyBackend, "getRange">;
  readonly #key: string;
  readonly #size: number;
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

  readonly #onBytes?: (bytes: number) => void;
  readonly #onRead?: (pos: number) => void;
  /** Hashes the ranges elsewhere (a codec worker), when given; else #hash does, here. */
  readonly #hasher?: HashStream;
  /** The ranges at the hasher. */
  #hashing: Promise<void>[] = [];

  /**
   * Reads the pack `key` of `size` bytes in ranges of `range` bytes; `onBytes` is told the bytes
   * of each range as it arrives, then `onRead` the pack offset read up to. With `hasher` (a
   * codec pool's {@linkcode CodecPool.hashStream}), each range is handed to it once read past,
   * and hashed there instead of on this thread.
   */
  constructor(
    backend: Pick<ReadonlyBackend, "getRange">,
    key: string,
    size: number,
    opts: {
      range: number;
      onBytes?: (bytes: number) => void;
      onRead?: (pos: number) => void;
      hasher?: HashStream;
    },
  ) {
    this.#hasher = opts.hasher;
    this.#backend = backend;
    this.#key = key;
    this.#size = size;
    this.#range = Math.max(1, opts.range);
    this.#onBytes = opts.onBytes;
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
    this.#onBytes?.(bytes.length);
    // the range read before is dead (callers never keep a view across reads): handed to the
    // hasher, or freed now rather than at the collector's next run, which let check's RSS grow
    // by ~100 MiB
    if (this.#hasher) {
      // two ranges at the hasher at most (one hashed, one queued): they never pile up there
      if (this.#hashing.length >= 2) await this.#hashing.shift();
      if (this.#buf.length > 0) this.#hashing.push(this.#hasher.update(this.#buf));
    } else {
      this.#hash.update(bytes);
      release(this.#buf);
    }
    this.#buf = bytes;
    this.#bufStart = start;
    this.#onRead?.(start + bytes.length);
  }

  /**
   * Exactly `n` bytes from `pos` when the range at hand holds them all (a view, as {@linkcode read}
   * gives), else null and nothing is consumed: the caller then awaits `read`.
   */
  readBuffered(n: number): Uint8Array | null {
    const at = this.pos - this.#bufStart;
    if (at < 0 || at + n > this.#buf.length) return null;
    this.pos += n;
    return this.#buf.subarray(at, at + n);
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

  /**
   * Frees what {@linkcode read} returned when it was a copy (a read across ranges); a view of the
   * current range, even one covering all of it, is left alone: the range is still to be hashed.
   */
  free(bytes: Uint8Array): void {
    if (bytes.buffer !== this.#buf.buffer) release(bytes);
  }

  /** Consumes (and hashes) bytes up to `offset`. */
  async skipTo(offset: number): Promise<void> {
    while (this.pos < offset) await this.read(Math.min(offset - this.pos, this.#range));
  }

  /** Reads the rest and returns the SHA-256 of the whole pack, in hex. */
  async digest(): Promise<string> {
    await this.skipTo(this.#size);
    if (!this.#hasher) return this.#hash.digest("hex");
    if (this.#buf.length > 0) void this.#hasher.update(this.#buf);
    this.#buf = new Uint8Array(0);
    return toHex(await this.#hasher.digest());
  }
}

/** What is wrong with a record: its length, its CRC-32, or its type tag. */
export type RecordFaultKind = "length" | "crc" | "type";

/** A record read from a pack, taken apart and checked. */
export interface CheckedRecord {
  /** The sealed object (a view into the record). */
  sealed: Uint8Array;
  /** Its type: the expected one, else the envelope's tag. */
  type: number;
  /** Why the record does not hold an intact data or item blob; null when it does. */
  fault: string | null;
  /** What the fault is about (null when none). */
  faultKind: RecordFaultKind | null;
}

/**
 * Takes a record (prefix and object) of an object expected to be `length` bytes apart and checks
 * its prefix, CRC-32 and type tag (`type` when known, else the envelope's first byte).
 */
export function checkRecord(record: Uint8Array, length: number, type?: number): CheckedRecord {
  const stored = parseRecordPrefix(record);
  const sealed = recordObject(record);
  const t = type ?? sealed[0];
  const fault = recordFault(stored, sealed, length);
  const badType = t !== ObjectType.data && t !== ObjectType.items;
  return {
    sealed,
    type: t,
    faultKind: fault ?? (badType ? "type" : null),
    fault: fault === "length"
      ? `its record says ${stored.length} bytes, expected ${length}`
      : fault === "crc"
      ? "CRC-32 mismatch"
      : badType
      ? `type tag ${t}`
      : null,
  };
}

/**
 * Opens a sealed blob, decompresses it and re-hashes its plaintext (in a worker when `pool` is
 * given: no plaintext comes back); throws an IntegrityError unless it has `rawLength` bytes and
 * hashes to `id`. `sealed` itself is not handed over (the pool gets a copy).
 */
export async function verifySealed(
  repo: Pick<Repository<ReadonlyBackend>, "key">,
  pool: CodecPool | undefined,
  blob: { type: ObjectTypeTag; id: Uint8Array; sealed: Uint8Array; rawLength: number },
  what: string,
): Promise<void> {
  const { type, id, sealed, rawLength } = blob;
  if (pool) {
    await pool.verify(type, id, sealed.slice(), rawLength, what);
    return;
  }
  const max = Math.min(MAX_BLOB, rawLength);
  const plain = decompress(await repo.key.open(type, id, sealed, what), max, what);
  // the codec worker's words, so the messages do not depend on whether a pool is used
  if (plain.length !== rawLength) {
    throw new IntegrityError(
      `${what} is corrupt: ${plain.length} bytes, the index says ${rawLength}`,
    );
  }
  if (!bytesEqual(await repo.key.chunkId(plain), id)) {
    throw new IntegrityError(`${what} is corrupt: its contents do not match its id`);
  }
}

/**
 * The sealed object of the blob `id` at `loc` in the pack `key` of `size` bytes, read on its own
 * and verified (record, envelope, length and hash), or null when it does not verify or cannot be
 * read because the data is damaged. A failing backend throws (it is not a lost blob).
 */
export async function readVerifiedRecord(
  repo: PackSource,
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
  const checked = checkRecord(record, loc.length);
  if (checked.fault !== null) return null;
  const type = checked.type as ObjectTypeTag;
  const sealed = checked.sealed.slice();
  const what = `${describeBlob(id, type)} in pack ${key}`;
  try {
    await verifySealed(repo, pool, { type, id, sealed, rawLength: loc.rawLength }, what);
  } catch (err) {
    if (!(err instanceof VgerError)) throw err;
    return null;
  }
  return sealed;
}

/** A blob found by {@linkcode scanRecords}. */
export interface ScannedBlob {
  /** Its id (the hash of its plaintext). */
  id: Uint8Array;
  /** Data or items. */
  type: ObjectTypeTag;
  /** The sealed object. */
  sealed: Uint8Array;
  /** Offset of the object in the pack. */
  offset: number;
  /** Plaintext length. */
  rawLength: number;
}

/**
 * Walks the records of a pack whose header is unreadable from its first byte on, and yields each
 * blob that authenticates under the id its plaintext hashes to. A record whose CRC-32 fails is
 * skipped (its length still frames the next); a length that leaves the pack ends the walk.
 */
export async function* scanRecords(
  repo: PackSource,
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

/** A record wanted from a pack: where the index places its object. */
export interface WantedRecord {
  /** The blob's id. */
  id: Uint8Array;
  /** Offset of its object in the pack. */
  offset: number;
  /** Length of its object. */
  length: number;
  /** Its plaintext length. */
  rawLength: number;
}

/** What {@linkcode readLiveRecords} found of one wanted record. */
export type LiveRecord =
  | {
    /** The record asked for. */
    wanted: WantedRecord;
    /** Its verified sealed object: a view of the range read, freed once the next range is asked for. */
    sealed: Uint8Array;
    /** Data or items. */
    type: ObjectTypeTag;
    /** Absent: it verified. */
    error?: undefined;
    /** Absent: it verified. */
    fault?: undefined;
  }
  | {
    /** The record asked for. */
    wanted: WantedRecord;
    /** Absent: it did not verify. */
    sealed?: undefined;
    /** Absent: it did not verify. */
    type?: undefined;
    /** Why, naming the blob (or the pack, when its range could not be read). */
    error: VgerError;
    /** What failed: the range read, the record (length, CRC-32, type tag), or the blob. */
    fault: "unreadable" | RecordFaultKind | "blob";
  };

/** Options of {@linkcode readLiveRecords}. */
export interface ReadLiveRecordsOptions {
  /** Open, decompress and re-hash the blobs in these workers. */
  pool?: CodecPool;
  /** Bytes per range request at most (default 8 MiB; a larger record gets a range of its own). */
  maxRange?: number;
  /** Bytes between two records that one range request reads over (default 256 KiB). */
  maxGap?: number;
  /** How messages name a blob (default: `Blob <id> in pack <pack id>`). */
  describe?(record: WantedRecord): string;
}

/**
 * Reads the given records of the pack `pack` (sorted by offset; those of a pack's live blobs) in
 * few range requests (adjacent records, and gaps up to `maxGap`, in ranges of at most
 * `maxRange`), checks each record's length, CRC-32 and type tag and verifies its blob (opened,
 * decompressed, re-hashed against its id), the blobs of one range at once. Yields one result per
 * wanted record, in order. A range that cannot be read because it is damaged or missing fails
 * its records (fault "unreadable"); a failing backend throws.
 */
export async function* readLiveRecords(
  repo: PackSource,
  pack: Uint8Array,
  wanted: WantedRecord[],
  options: ReadLiveRecordsOptions = {},
): AsyncGenerator<LiveRecord> {
  const maxRange = options.maxRange ?? 8 << 20;
  const maxGap = options.maxGap ?? 256 << 10;
  const packHex = toHex(pack);
  const key = packKey(pack);
  const describe = options.describe ??
    ((w: WantedRecord) => `Blob ${toHex(w.id)} in pack ${packHex}`);
  for (const group of recordRanges(wanted, maxRange, maxGap)) {
    const start = recordStart(group[0].offset);
    const last = group[group.length - 1];
    const end = last.offset + last.length;
    let bytes: Uint8Array;
    try {
      bytes = await repo.backend.getRange(key, start, end - start);
    } catch (err) {
      if (!(err instanceof IntegrityError || err instanceof NotFoundError)) throw err;
      for (const w of group) yield { wanted: w, error: err, fault: "unreadable" };
      continue;
    }
    // each record checked here, then the blobs of the range verified in one worker message
    // (a copy of each, opened there in place), or here one by one without a pool
    const results: LiveRecord[] = [];
    const batch = options.pool
      ? new VerifyBatch(group.length, Math.max(1, end - start))
      : undefined;
    for (const w of group) {
      const what = describe(w);
      const at = recordStart(w.offset) - start;
      const record = bytes.subarray(at, at + recordSize(w.length));
      if (record.length !== recordSize(w.length)) {
        const error = new IntegrityError(`${what} is corrupt: it lies past the end of the pack`);
        results.push({ wanted: w, error, fault: "length" });
        continue;
      }
      const checked = checkRecord(record, w.length);
      if (checked.faultKind !== null) {
        const error = new IntegrityError(`${what} is corrupt: ${checked.fault}`);
        results.push({ wanted: w, error, fault: checked.faultKind });
        continue;
      }
      const type = checked.type as ObjectTypeTag;
      const sealed = checked.sealed;
      if (batch) {
        batch.add(type, w.id, sealed, w.rawLength);
        results.push({ wanted: w, sealed, type });
        continue;
      }
      try {
        await verifySealed(
          repo,
          undefined,
          { type, id: w.id, sealed, rawLength: w.rawLength },
          what,
        );
        results.push({ wanted: w, sealed, type });
      } catch (err) {
        if (!(err instanceof VgerError && err.code === "integrity")) throw err;
        results.push({ wanted: w, error: err, fault: "blob" });
      }
    }
    if (batch && batch.count > 0) {
      const failures = await options.pool!.verifyBatch(batch, `in pack ${packHex}`);
      // the batch's places are those of the records that passed their checks, in order
      let place = 0;
      for (let i = 0; i < results.length; i++) {
        const r = results[i];
        if (r.error !== undefined) continue;
        const error = failures.get(place++);
        if (error === undefined) continue;
        if (!(error instanceof VgerError && error.code === "integrity")) throw error;
        results[i] = { wanted: r.wanted, error, fault: "blob" };
      }
    }
    yield* results;
    release(bytes); // the records' views of it were used (copied into packs) as they came
  }
}

/** Groups records (sorted by offset) into ranges of at most `maxRange` with gaps up to `maxGap`. */
function recordRanges(
  wanted: WantedRecord[],
  maxRange: number,
  maxGap: number,
): WantedRecord[][] {
  const out: WantedRecord[][] = [];
  let cur: WantedRecord[] = [];
  let start = 0;
  let end = 0;
  for (const w of wanted) {
    const s = recordStart(w.offset);
    const e = w.offset + w.length;
    if (cur.length > 0 && (s - end > maxGap || e - start > maxRange || s < end)) {
      out.push(cur);
      cur = [];
    }
    if (cur.length === 0) start = s;
    cur.push(w);
    end = e;
  }
  if (cur.length > 0) out.push(cur);
  return out;
}
