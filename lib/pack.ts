/**
 * Pack files: many sealed blobs in one storage object, with an encrypted header at the end so a
 * pack can be understood without the index.
 *
 *   pack    := magic "VGERPACK" (8) | version u8 (=1) | record* | header | u32le header_length
 *   record  := u32le object_length | u32le crc32(object) | object
 *   object  := a sealed envelope (lib/crypto.ts) of type data or items
 *   header  := sealed envelope of type packHeader, identity "pack-header", whose plaintext is
 *              u32le count, then count x entry
 *   entry   := id (32) | type u8 | u32le object_offset | u32le object_length | u32le raw_length
 * object_offset is where the object starts (its record starts 8 bytes earlier). Records follow
 * each other with no gap, so a key-less server can walk them from offset 9 to the header, verify
 * each by its CRC-32, copy kept records into a new pack and finish it with a header the client
 * computed (the client knows every new offset from the lengths). The pack id is the SHA-256 of
 * all the pack's bytes; the key is `packs/<first 2 hex>/<hex id>`.
 *
 * @module
 */

import { MAX_CHUNK_LIMIT } from "./chunker.ts";
import { ObjectType, type ObjectTypeTag, type RepoKey } from "./crypto.ts";
import { IntegrityError } from "./errors.ts";
import { ID_LENGTH, toHex } from "./ids.ts";
import { release, releaseOwned } from "./bytes.ts";
import { platform, type Sha256Hasher } from "./platform.ts";
import type { StreamBody } from "../backends/backend.ts";

/** The pack magic. */
export const PACK_MAGIC: Uint8Array = new TextEncoder().encode("VGERPACK");
/** The pack format version. */
export const PACK_VERSION = 1;
/** Bytes before the first record. */
export const PACK_PREAMBLE = 9;
/** Bytes of a record's prefix (length and CRC). */
export const RECORD_PREFIX = 8;
/** Offset of the first object in a pack (after the preamble and the first record's prefix). */
export const FIRST_OBJECT_OFFSET: number = PACK_PREAMBLE + RECORD_PREFIX;
/** Bytes of one header entry: id, type, object offset, object length, raw length. */
export const HEADER_ENTRY_SIZE: number = ID_LENGTH + 1 + 12;
/** Largest plaintext of any blob: the chunker's largest chunk (item blobs are smaller). */
export const MAX_BLOB: number = MAX_CHUNK_LIMIT;
/** Largest object a record of a blob is taken to hold when records are walked without a header. */
export const MAX_BLOB_OBJECT: number = MAX_BLOB + 1024;
/** Largest header we accept (a pack of 512 MiB of 512-byte blobs would need ~46 MiB). */
const MAX_HEADER = 64 << 20;

/** One blob in a pack. */
export interface PackEntry {
  /** Chunk id. */
  id: Uint8Array;
  /** Object type (data or items). */
  type: ObjectTypeTag;
  /** Offset of the object (after its record prefix). */
  offset: number;
  /** Length of the sealed object. */
  length: number;
  /** Length of the plaintext. */
  rawLength: number;
}

/** CRC-32 of bytes (zlib's polynomial; native under Deno: lib/platform.ts). */
export function crc32(data: Uint8Array): number {
  return platform().crc32(data);
}

/**
 * Bytes a pack of `count` blobs takes besides their records: preamble, header (sealed with
 * `sealOverhead` bytes of envelope) and trailer.
 */
export function packSizeBesidesRecords(count: number, sealOverhead: number): number {
  return PACK_PREAMBLE + 4 + sealOverhead + HEADER_ENTRY_SIZE * count + 4;
}

/** Where the record of the object at `objectOffset` starts (its prefix comes first). */
export function recordStart(objectOffset: number): number {
  return objectOffset - RECORD_PREFIX;
}

/** Bytes of the record of an object of `objectLength` bytes (prefix and object). */
export function recordSize(objectLength: number): number {
  return RECORD_PREFIX + objectLength;
}

/** What a record's prefix stores: the object's length and its CRC-32. */
export interface RecordPrefix {
  /** Length of the object the record holds. */
  length: number;
  /** CRC-32 of that object. */
  crc: number;
}

/** Reads the prefix of the record at `offset` of `bytes` (RangeError when it does not fit). */
export function parseRecordPrefix(bytes: Uint8Array, offset = 0): RecordPrefix {
  const dv = new DataView(bytes.buffer, bytes.byteOffset + offset, RECORD_PREFIX);
  return { length: dv.getUint32(0, true), crc: dv.getUint32(4, true) };
}

/** A view of the object of `record` (a record's bytes: prefix, then object). */
export function recordObject(record: Uint8Array): Uint8Array {
  return record.subarray(RECORD_PREFIX);
}

/**
 * Why a record does not hold the intact object `object` of `length` bytes: `"length"` when its
 * prefix gives another length, `"crc"` when the object does not match the stored CRC-32 (checked
 * only when the length agrees); null when it does.
 */
export function recordFault(
  prefix: RecordPrefix,
  object: Uint8Array,
  length: number = object.length,
): "length" | "crc" | null {
  if (prefix.length !== length) return "length";
  return crc32(object) === prefix.crc ? null : "crc";
}

/** Encodes a header's plaintext. */
export function encodePackHeader(entries: PackEntries | readonly PackEntry[]): Uint8Array {
  if (entries instanceof PackEntries) return entries.header();
  const out = new Uint8Array(4 + entries.length * HEADER_ENTRY_SIZE);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, entries.length, true);
  let o = 4;
  for (const e of entries) {
    out.set(e.id, o);
    out[o + 32] = e.type;
    dv.setUint32(o + 33, e.offset, true);
    dv.setUint32(o + 37, e.length, true);
    dv.setUint32(o + 41, e.rawLength, true);
    o += HEADER_ENTRY_SIZE;
  }
  return out;
}

/** Parses a header's plaintext, checking every entry lies inside `recordsEnd`. */
export function decodePackHeader(
  bytes: Uint8Array,
  recordsEnd: number,
  what: string,
): PackEntry[] {
  return [...PackEntries.decode(bytes, recordsEnd, what)];
}

/**
 * The entries of a pack as its header's plaintext: 45 bytes each and no object per entry, since a
 * pack of tiny files' chunks holds 100,000s of them (as objects with their ids, ~300 bytes each).
 * Iterating yields fresh {@linkcode PackEntry} objects.
 */
export class PackEntries implements Iterable<PackEntry> {
  /** The header's plaintext so far: the count (written by `header`), then the entries. */
  #bytes: Uint8Array = new Uint8Array(4 + 64 * HEADER_ENTRY_SIZE);
  #view: DataView = new DataView(this.#bytes.buffer);
  #count = 0;

  /** Number of entries. */
  get length(): number {
    return this.#count;
  }

  /** Appends an entry (the id is copied). */
  push(e: PackEntry): void {
    const o = 4 + this.#count * HEADER_ENTRY_SIZE;
    if (o + HEADER_ENTRY_SIZE > this.#bytes.length) {
      const grown = new Uint8Array(this.#bytes.length * 2);
      grown.set(this.#bytes);
      this.#bytes = grown;
      this.#view = new DataView(grown.buffer);
    }
    this.#bytes.set(e.id, o);
    this.#bytes[o + 32] = e.type;
    this.#view.setUint32(o + 33, e.offset, true);
    this.#view.setUint32(o + 37, e.length, true);
    this.#view.setUint32(o + 41, e.rawLength, true);
    this.#count++;
  }

  /**
   * A header's plaintext read in place (it must not change afterwards), checking every entry
   * lies inside `recordsEnd`: the records follow each other from the pack's first one, end where
   * the header starts, and each is data or items.
   */
  static decode(bytes: Uint8Array, recordsEnd: number, what: string): PackEntries {
    const bad = (why: string) => new IntegrityError(`${what} is corrupt: ${why}`);
    if (bytes.length < 4) throw bad("header too short");
    const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const n = dv.getUint32(0, true);
    if (bytes.length !== 4 + n * HEADER_ENTRY_SIZE) {
      throw bad(`header length does not fit ${n} entries`);
    }
    let expect = FIRST_OBJECT_OFFSET;
    for (let i = 0, o = 4; i < n; i++, o += HEADER_ENTRY_SIZE) {
      const type = bytes[o + 32];
      const offset = dv.getUint32(o + 33, true);
      const length = dv.getUint32(o + 37, true);
      if (type !== ObjectType.data && type !== ObjectType.items) {
        throw bad(`entry ${i} has type ${type}`);
      }
      if (offset !== expect || offset + length > recordsEnd) {
        throw bad(`entry ${i} at offset ${offset} does not follow the records`);
      }
      expect = offset + length + RECORD_PREFIX;
    }
    if (n > 0 && expect - RECORD_PREFIX !== recordsEnd) {
      throw bad("records end before the header");
    }
    const entries = new PackEntries();
    entries.#bytes = bytes;
    entries.#view = dv;
    entries.#count = n;
    return entries;
  }

  /** The entry at `i` (a fresh object, its id a copy). */
  at(i: number): PackEntry {
    const entry = this.viewAt(i);
    entry.id = entry.id.slice();
    return entry;
  }

  /**
   * The entry at `i` with its id a view of the header's bytes, not a copy: for loops over many
   * entries that keep none of them (a copy is an ArrayBuffer per entry).
   */
  viewAt(i: number): PackEntry {
    const o = 4 + i * HEADER_ENTRY_SIZE;
    return {
      id: this.#bytes.subarray(o, o + 32),
      type: this.#bytes[o + 32] as ObjectTypeTag,
      offset: this.#view.getUint32(o + 33, true),
      length: this.#view.getUint32(o + 37, true),
      rawLength: this.#view.getUint32(o + 41, true),
    };
  }

  *[Symbol.iterator](): Iterator<PackEntry> {
    for (let i = 0; i < this.#count; i++) yield this.at(i);
  }

  /** The header's plaintext (a copy: sealing may take its buffer over). */
  header(): Uint8Array {
    this.#view.setUint32(0, this.#count, true);
    return this.#bytes.slice(0, 4 + this.#count * HEADER_ENTRY_SIZE);
  }
}

/** A finished pack: its id, its bytes (in memory or staged in a file) and its blobs. */
export interface FinishedPack {
  /** SHA-256 of the pack's bytes. */
  id: Uint8Array;
  /** The bytes, ready to put; null when a {@linkcode StoringPackSink} has them in storage. */
  body: readonly Uint8Array[] | StreamBody | null;
  /** The blobs in it. */
  entries: PackEntries;
  /** Total size. */
  size: number;
  /** Frees the memory or removes the staging file; call once the pack is stored. */
  dispose(): void;
}

/**
 * Where a pack's bytes go while it is filled: memory ({@linkcode MemorySink}, the default), or
 * a staging file for large packs (`SpillingSink` of lib/staging.ts, which writers use).
 */
export interface PackSink {
  /** Takes `bytes` over (it may release them); `size` is the pack's size with them. */
  write(bytes: Uint8Array, size: number): void;
  /** The pack's `size` bytes, ready to put, and how to free them; once, after the last write. */
  finish(size: number): Pick<FinishedPack, "body" | "dispose">;
  /** Frees what the sink holds of a pack that will not be finished. */
  abandon(): void;
}

/**
 * A sink that writes a pack where it will be stored as it fills and hashes it itself, off the
 * writer's thread (`StagedSink` of lib/staging.ts): the writer neither hashes nor holds the
 * pack's bytes, and its owner stores the pack under the digest once finished.
 */
export interface StoringPackSink {
  /** Writes `bytes` (copied: they are the caller's again when it returns). */
  write(bytes: Uint8Array): void;
  /** Whether too many written bytes wait to be hashed (`drained` would wait). */
  readonly backlogged: boolean;
  /** Resolves once few enough written bytes wait to be hashed (the writer's back-pressure). */
  drained(): Promise<void>;
  /** The SHA-256 of everything written, once every byte was hashed; call once, last. */
  digest(): Promise<Uint8Array>;
  /** Drops what was written: nothing is stored. */
  abandon(): void;
}

/**
 * Hashes a pack's bytes somewhere else (a codec worker) and hands them back: the SHA-256 of
 * the concatenated `parts`, and the parts themselves, which may come back as new views.
 * {@linkcode PackWriter} passes one part: the whole pack.
 */
export type PackDigest = ( // the parts' buffers are handed over whole
  parts: Uint8Array[],
) => Promise<{ digest: Uint8Array; parts: Uint8Array[] }>;

/** A sink that keeps a pack's bytes in memory. */
export class MemorySink implements PackSink {
  #parts: Uint8Array[] = [];

  /**
   * Keeps a copy of `bytes`: they may be a view of a buffer their owner frees once the pack has
   * them (a codec worker's reply, whose objects went into packs: `SealedBlock.dispose`), also
   * when the view covers that buffer whole (a reply of one object). Writers that keep packs in
   * memory assemble them in one buffer (`digest`) or stage them; this sink is the simple one.
   */
  write(bytes: Uint8Array): void {
    this.#parts.push(bytes.slice());
  }

  /** The bytes kept, freed by `dispose`. */
  finish(): Pick<FinishedPack, "body" | "dispose"> {
    const parts = this.#parts;
    return { body: parts, dispose: () => parts.forEach(release) };
  }

  /** Nothing to free: the bytes go with the writer. */
  abandon(): void {}
}

/**
 * A pack being filled. Its bytes go to a {@linkcode PackSink}: memory unless the caller passes
 * another (the packers stage large packs in a temporary file, so that memory stays bounded
 * whatever the pack size).
 */
export class PackWriter {
  #sink: PackSink;
  #storing: StoringPackSink | null;
  #entries = new PackEntries();
  #size = 0;
  #hash: Sha256Hasher | null;
  /**
   * With a {@linkcode PackDigest}: the pack's bytes, assembled in one buffer (one message to
   * the worker that hashes it, one write) until they are hashed.
   */
  #digest: PackDigest | null;
  #buf: Uint8Array = new Uint8Array(0);
  #recycle: ((buffer: Uint8Array) => void) | null;

  /**
   * Starts a pack. With `storing`, its bytes go there, which hashes them. Else with `digest`,
   * the pack is assembled in memory (not in `sink`), in `buffer` (or a new one of `capacity`
   * bytes) to start with, and hashed by `digest` when finished, off this thread; `recycle` then
   * gets that buffer back once the pack is disposed of (fresh pages for every pack cost page
   * faults). Without either, the pack is hashed here as it is written to `sink`.
   */
  constructor(
    options: {
      storing?: StoringPackSink;
      sink?: PackSink;
      digest?: PackDigest;
      capacity?: number;
      buffer?: Uint8Array;
      recycle?: (buffer: Uint8Array) => void;
    } = {},
  ) {
    this.#sink = options.sink ?? new MemorySink();
    this.#storing = options.storing ?? null;
    this.#digest = this.#storing ? null : options.digest ?? null;
    this.#recycle = options.recycle ?? null;
    if (this.#digest) this.#buf = options.buffer ?? new Uint8Array(options.capacity ?? 1 << 20);
    this.#hash = this.#digest || this.#storing ? null : platform().sha256();
    const pre = new Uint8Array(PACK_PREAMBLE);
    pre.set(PACK_MAGIC);
    pre[8] = PACK_VERSION;
    this.#push(pre);
  }

  #push(b: Uint8Array): void {
    if (this.#storing) {
      this.#storing.write(b);
      this.#size += b.length;
      return;
    }
    if (this.#hash === null) {
      if (this.#size + b.length > this.#buf.length) {
        const grown = new Uint8Array(Math.max(this.#size + b.length, this.#buf.length * 2));
        grown.set(this.#buf.subarray(0, this.#size));
        if (!this.#recycle) release(this.#buf);
        this.#buf = grown;
      }
      this.#buf.set(b, this.#size);
      this.#size += b.length;
      release(b); // handed over: its bytes are in the pack's buffer now
      return;
    }
    this.#size += b.length;
    this.#hash.update(b);
    this.#sink.write(b, this.#size);
  }

  /** Whether the pack's sink has too much still to hash ({@linkcode drained} would wait). */
  get backlogged(): boolean {
    return this.#storing?.backlogged ?? false;
  }

  /** Resolves once the pack's sink can take more (see {@linkcode StoringPackSink.drained}). */
  drained(): Promise<void> {
    return this.#storing?.drained() ?? Promise.resolve();
  }

  /** Bytes so far. */
  get size(): number {
    return this.#size;
  }

  /** Number of blobs so far. */
  get count(): number {
    return this.#entries.length;
  }

  /** The size the pack would have if finished now: records, sealed header and trailer. */
  finishedSize(key: RepoKey): number {
    const header = 4 + this.#entries.length * HEADER_ENTRY_SIZE + key.sealHead + key.sealTail;
    return this.#size + header + 4;
  }

  /**
   * The size the finished pack would have with one more blob of `sealedLength` bytes: records,
   * sealed header and trailer. Writers cut before a blob that would pass `max_pack_size`.
   */
  finishedSizeWith(sealedLength: number, key: RepoKey): number {
    const header = 4 + (this.#entries.length + 1) * HEADER_ENTRY_SIZE + key.sealHead + key.sealTail;
    return this.#size + RECORD_PREFIX + sealedLength + header + 4;
  }

  /**
   * Appends a sealed object (the pack takes it over; what it keeps in memory it copies, so that
   * the owner of a larger buffer `sealed` is a view of may free it once this returns); returns
   * its entry. `crc` is its CRC-32
   * when the caller has it (computed where it was sealed), else it is computed here.
   */
  add(
    id: Uint8Array,
    type: ObjectTypeTag,
    sealed: Uint8Array,
    rawLength: number,
    crc: number = crc32(sealed),
  ): PackEntry {
    const prefix = new Uint8Array(RECORD_PREFIX);
    const dv = new DataView(prefix.buffer);
    dv.setUint32(0, sealed.length, true);
    dv.setUint32(4, crc, true);
    this.#push(prefix);
    const entry = { id, type, offset: this.#size, length: sealed.length, rawLength };
    this.#push(sealed); // may release sealed (staged packs): nothing reads it after this
    this.#entries.push(entry); // copies the id: a view of it may hold a larger buffer
    return entry;
  }

  /** Seals the header, appends it and the trailer. */
  async finish(key: RepoKey): Promise<FinishedPack> {
    const header = await key.seal(
      ObjectType.packHeader,
      "pack-header",
      encodePackHeader(this.#entries),
    );
    const trailer = new Uint8Array(4);
    new DataView(trailer.buffer).setUint32(0, header.length, true);
    this.#push(header); // pushing hands the buffer over: read its length first
    this.#push(trailer);
    const size = this.#size;
    if (this.#storing) {
      const id = await this.#storing.digest();
      return { id, body: null, dispose: () => {}, entries: this.#entries, size };
    }
    if (this.#hash === null) {
      const bytes = this.#buf.subarray(0, size); // its buffer goes to the worker and back
      this.#buf = new Uint8Array(0);
      const { digest, parts } = await this.#digest!([bytes]);
      const recycle = this.#recycle;
      return {
        id: digest,
        body: parts,
        dispose: () =>
          parts.forEach((p) =>
            recycle && p.buffer instanceof ArrayBuffer
              ? recycle(new Uint8Array(p.buffer))
              : releaseOwned(p)
          ),
        entries: this.#entries,
        size,
      };
    }
    const id = this.#hash.digest();
    return { id, ...this.#sink.finish(size), entries: this.#entries, size };
  }

  /** Drops a pack that will not be finished (removes its staging file). */
  abandon(): void {
    release(this.#buf);
    this.#buf = new Uint8Array(0);
    this.#sink.abandon();
    this.#storing?.abandon();
  }
}

/** Where a pack's header lies, from the pack's last 4 bytes and its size. */
export function headerLocation(
  trailer: Uint8Array,
  packSize: number,
  what: string,
): { offset: number; length: number } {
  const length = new DataView(trailer.buffer, trailer.byteOffset, 4).getUint32(0, true);
  const offset = packSize - 4 - length;
  if (length < 1 || length > MAX_HEADER || offset < PACK_PREAMBLE) {
    throw new IntegrityError(`${what} is corrupt: header length ${length} does not fit the pack`);
  }
  return { offset, length };
}

/** Bytes read from a pack's end when nothing tells how large its header is. */
export const DEFAULT_TAIL_GUESS = 64 << 10;

/**
 * How many bytes from the end of a pack of `packSize` bytes to read so that, in one request, they
 * hold the trailer and the header, never more than the pack: when the pack is expected to hold
 * `entries` blobs (the index says so), exactly the trailer and a header of that many entries
 * sealed with `sealOverhead` bytes of envelope (so nothing is read twice); else
 * {@linkcode DEFAULT_TAIL_GUESS}, which holds the header of a pack of up to ~1,400 blobs.
 */
export function packTailLength(
  packSize: number,
  options: { entries?: number; sealOverhead?: number } = {},
): number {
  const want = options.entries === undefined
    ? DEFAULT_TAIL_GUESS
    : 4 + HEADER_ENTRY_SIZE * options.entries + (options.sealOverhead ?? 0) + 4;
  return Math.max(0, Math.min(packSize, want));
}

/** Checks a pack's first {@linkcode PACK_PREAMBLE} bytes: the magic and the version. */
export function checkPackPreamble(preamble: Uint8Array, what: string): void {
  for (let i = 0; i < 8; i++) {
    if (preamble[i] !== PACK_MAGIC[i]) throw new IntegrityError(`${what} is corrupt: bad magic`);
  }
  if (preamble[8] !== PACK_VERSION) {
    throw new IntegrityError(`${what} has unknown version ${preamble[8]}`);
  }
}

/**
 * Finds a pack's sealed header in `tail`, the pack's last `tail.length` bytes (at least 4): the
 * header when the tail holds it whole, else where it lies and how many bytes before the tail it
 * starts (`missing`, to be read and put in front of the tail's part).
 */
export function headerInTail(
  tail: Uint8Array,
  packSize: number,
  what: string,
): { offset: number; length: number; sealed: Uint8Array | null; missing: number } {
  if (tail.length < 4) throw new IntegrityError(`${what} is corrupt: too short`);
  const loc = headerLocation(tail.subarray(tail.length - 4), packSize, what);
  const tailOffset = packSize - tail.length;
  const missing = Math.max(0, tailOffset - loc.offset);
  const start = loc.offset + missing - tailOffset;
  const part = tail.subarray(start, start + loc.length - missing);
  return { ...loc, sealed: missing === 0 ? part : null, missing };
}

/** Hex spelling of an entry's id, for messages. */
export function entryName(e: PackEntry): string {
  return `${e.type === ObjectType.items ? "metadata blob" : "chunk"} ${toHex(e.id)}`;
}
