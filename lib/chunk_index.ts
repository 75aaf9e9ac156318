/**
 * A compact in-memory map from chunk id to the place its stored object lives, and the binary
 * encoding of the repository index.
 *
 * Memory stays near 60 bytes per entry: no JS object per entry and no hex strings. Entries live
 * in one packed `Uint32Array` record store; an open-addressing table of record numbers (linear
 * probing, backward-shift deletion, doubling at load factor 0.75) finds them. Chunk ids are
 * HMAC-SHA-256 outputs, hence uniformly random, so the home slot is simply taken from the first
 * 4 id bytes. Pack ids are interned into a small table of pack numbers.
 *
 * Binary format (plaintext; the repository encrypts it), all integers little-endian:
 *
 * ```
 * offset        size     field
 * 0             5        magic, ASCII "VGIDX"
 * 5             1        version, 1
 * 6             4        u32 P, number of packs
 * 10            32 * P   pack ids, 32 bytes each, strictly ascending bytewise (no duplicates);
 *                        a pack's number is its position in this table (0-based)
 * 10 + 32P      4        u32 N, number of entries
 * 14 + 32P      48 * N   entries, strictly ascending by chunk id bytewise (no duplicates):
 *                          32 bytes  chunk id
 *                          u32       pack number, < P
 *                          u32       offset of the stored object inside the pack
 *                          u32       length of the stored object
 *                          u32       raw (plaintext) length of the chunk
 * 14 + 32P + 48N         end; nothing may follow
 * ```
 *
 * Every pack in the table is referenced by at least one entry. The encoding is canonical: the
 * same set of entries always encodes to the same bytes, and decoding rejects anything that
 * encoding would not produce.
 *
 * @example Look up where a chunk lives
 * ```ts
 * import { ChunkIndex } from "./chunk_index.ts";
 *
 * const index = new ChunkIndex();
 * const id = crypto.getRandomValues(new Uint8Array(32));
 * const pack = crypto.getRandomValues(new Uint8Array(32));
 * index.set(id, { pack, offset: 0, length: 1000, rawLength: 2000 });
 * const copy = ChunkIndex.decode(index.encode());
 * if (copy.get(id)?.rawLength !== 2000) throw new Error("lost the entry");
 * ```
 *
 * @module
 */

import { IntegrityError } from "./errors.ts";

/** Where a chunk's stored object lives. */
export interface ChunkLocation {
  /** The 32-byte id of the pack that holds the object. */
  pack: Uint8Array;
  /** Offset of the stored object inside the pack. */
  offset: number;
  /** Length of the stored (compressed and encrypted) object. */
  length: number;
  /** Length of the chunk's plaintext. */
  rawLength: number;
}

/** Bytes of a chunk or pack id. */
export const ID_BYTES: number = 32;
/** u32 words per record: 8 id words (big-endian, so word order is byte order), then fields. */
const STRIDE = 12;
const PACK = 8;
const OFFSET = 9;
const LENGTH = 10;
const RAW = 11;
const MIN_SLOTS = 16;
const MIN_RECORDS = 16;
const MAX_LOAD = 0.75;

const MAGIC = [0x56, 0x47, 0x49, 0x44, 0x58]; // "VGIDX"
const VERSION = 1;
/** Bytes of the encoding's header: magic, version, pack count (see the module doc). */
export const HEADER_BYTES: number = 10;
/** Bytes of an encoded entry: id, pack number, offset, length, raw length. */
export const ENTRY_BYTES: number = 48;
/**
 * The most entries an index may hold: 16 Mi blobs, 16 TiB of unique data at the default 1 MiB
 * average chunk. Fixed rather than derived from the packs' total size, which would cost a
 * listing of every pack that list and extract do not otherwise make.
 */
export const MAX_INDEX_ENTRIES: number = 1 << 24;
/** The most bytes of an index plaintext a reader accepts (1.25 GiB: each pack has an entry). */
export const MAX_INDEX_BYTES: number = HEADER_BYTES + 4 +
  MAX_INDEX_ENTRIES * (ID_BYTES + ENTRY_BYTES);

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

function toHex(bytes: Uint8Array, start = 0, end = bytes.length): string {
  let s = "";
  for (let i = start; i < end; i++) s += HEX[bytes[i]];
  return s;
}

function corrupt(reason: string): IntegrityError {
  return new IntegrityError(`Index is corrupt: ${reason}`);
}

function checkU32(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
    throw new RangeError(`Chunk location ${name} must be an integer in [0, 2^32), got ${value}`);
  }
}

function checkId(what: string, id: Uint8Array): void {
  if (!(id instanceof Uint8Array) || id.length !== ID_BYTES) {
    const got = id instanceof Uint8Array ? `${id.length} bytes` : typeof id;
    throw new RangeError(`${what} must be ${ID_BYTES} bytes, got ${got}`);
  }
}

/** Reads 4 bytes big-endian as an unsigned word. */
function wordAt(b: Uint8Array, i: number): number {
  return ((b[i] << 24) | (b[i + 1] << 16) | (b[i + 2] << 8) | b[i + 3]) >>> 0;
}

function compareBytes(a: Uint8Array, ai: number, b: Uint8Array, bi: number, n: number): number {
  for (let k = 0; k < n; k++) {
    const d = a[ai + k] - b[bi + k];
    if (d !== 0) return d;
  }
  return 0;
}

/** The first 6 bytes at `b[i..]` as a number, the key of the pack interning map. */
function prefixOf(b: Uint8Array, i: number): number {
  return wordAt(b, i) * 65536 + ((b[i + 4] << 8) | b[i + 5]);
}

function compareRecords(rec: Uint32Array, x: number, y: number): number {
  for (let k = 0; k < 8; k++) {
    const d = rec[x * STRIDE + k] - rec[y * STRIDE + k];
    if (d !== 0) return d;
  }
  return 0;
}

/**
 * Fills `order` with the record numbers sorted by id. Ids are random, so a counting sort on the
 * top bits (about log2(n) of them) leaves buckets of a few records; only large (crafted) buckets
 * use a full sort.
 */
function sortById(rec: Uint32Array, order: Uint32Array): void {
  const n = order.length;
  const bits = Math.min(16, Math.max(1, Math.ceil(Math.log2(n + 1))));
  const shift = 32 - bits;
  const buckets = 1 << bits;
  const start = new Uint32Array(buckets + 1);
  for (let r = 0; r < n; r++) start[(rec[r * STRIDE] >>> shift) + 1]++;
  for (let b = 1; b <= buckets; b++) start[b] += start[b - 1];
  const next = start.slice(0, buckets);
  for (let r = 0; r < n; r++) order[next[rec[r * STRIDE] >>> shift]++] = r;
  for (let b = 0; b < buckets; b++) {
    const lo = start[b];
    const hi = start[b + 1];
    if (hi - lo > 32) {
      order.subarray(lo, hi).sort((x, y) => compareRecords(rec, x, y));
      continue;
    }
    for (let i = lo + 1; i < hi; i++) {
      const r = order[i];
      let j = i - 1;
      while (j >= lo && compareRecords(rec, order[j], r) > 0) order[j + 1] = order[j--];
      order[j + 1] = r;
    }
  }
}

function nextPow2(n: number): number {
  let p = MIN_SLOTS;
  while (p < n) p *= 2;
  return p;
}

/**
 * A map from 32-byte chunk id to {@linkcode ChunkLocation}, held in typed arrays.
 *
 * Do not modify the index while iterating {@linkcode ChunkIndex.entries}; doing so throws.
 */
export class ChunkIndex {
  /** Record number + 1 per slot; 0 marks an empty slot. Length is a power of two. */
  #slots: Uint32Array;
  /** 32 - log2(slots.length): the home slot is the top bits of the first id word. */
  #shift: number;
  /** Dense records, STRIDE words each; records [0, count) are live. */
  #records: Uint32Array;
  #count = 0;
  /** Pack ids, 32 bytes per pack number. */
  #packs: Uint8Array;
  /** Entries per pack number; a number whose count drops to 0 is freed for reuse. */
  #packRefs: Uint32Array;
  #packCount = 0;
  #freePacks: number[] = [];
  /** Pack number by the first 6 bytes of its id (pack ids are random, so this rarely collides). */
  #packByPrefix = new Map<number, number>();
  /** Pack number by hex id, only for packs whose prefix another pack already holds. */
  #packByHex = new Map<string, number>();
  /** The id being looked up, as 8 big-endian words. */
  #key = new Uint32Array(8);
  /** Bumped on every change, so iterators notice modification. */
  #version = 0;

  /** Creates an empty index with room for `initialCapacity` entries before it grows. */
  constructor(initialCapacity = 0) {
    if (!Number.isInteger(initialCapacity) || initialCapacity < 0) {
      throw new RangeError(
        `Initial capacity must be a non-negative integer, got ${initialCapacity}`,
      );
    }
    const slots = nextPow2(Math.ceil(initialCapacity / MAX_LOAD));
    this.#slots = new Uint32Array(slots);
    this.#shift = 32 - Math.log2(slots);
    this.#records = new Uint32Array(Math.max(MIN_RECORDS, initialCapacity) * STRIDE);
    this.#packs = new Uint8Array(4 * ID_BYTES);
    this.#packRefs = new Uint32Array(4);
  }

  /** Number of entries. */
  get size(): number {
    return this.#count;
  }

  /** Approximate bytes of memory this index holds (sum of its typed array byteLengths). */
  get memoryBytes(): number {
    return this.#slots.byteLength + this.#records.byteLength + this.#packs.byteLength +
      this.#packRefs.byteLength + this.#key.byteLength;
  }

  /** Whether `id` has an entry. */
  has(id: Uint8Array): boolean {
    this.#load(id);
    return this.#find() >= 0;
  }

  /** Whether `id` has an entry in pack `pack` at `offset` (nothing is allocated). */
  isAt(id: Uint8Array, pack: Uint8Array, offset: number): boolean {
    const b = this.#recordIn(id, pack);
    return b >= 0 && this.#records[b + OFFSET] === offset;
  }

  /**
   * The stored (sealed) length of `id`'s object, or -1 when it has no entry. Nothing is
   * allocated (`get` copies the pack id: a backup asks this once per chunk it already has).
   */
  lengthOf(id: Uint8Array): number {
    this.#load(id);
    const slot = this.#find();
    return slot < 0 ? -1 : this.#records[(this.#slots[slot] - 1) * STRIDE + LENGTH];
  }

  /** The location of `id`, or undefined. The returned object and its pack id are fresh copies. */
  get(id: Uint8Array): ChunkLocation | undefined {
    this.#load(id);
    const slot = this.#find();
    return slot < 0 ? undefined : this.#locationAt(this.#slots[slot] - 1);
  }

  /**
   * Whether the entry of `id` lies in pack `pack`, and if so whether exactly at `offset`,
   * `length` and `rawLength`: null when `id` has no entry there, else true or false. Nothing is
   * allocated (a check compares hundreds of thousands of header entries).
   */
  matchesIn(
    id: Uint8Array,
    pack: Uint8Array,
    offset: number,
    length: number,
    rawLength: number,
  ): boolean | null {
    const b = this.#recordIn(id, pack);
    if (b < 0) return null;
    const rec = this.#records;
    return rec[b + OFFSET] === offset && rec[b + LENGTH] === length && rec[b + RAW] === rawLength;
  }

  /** Where in #records the entry of `id` starts when it lies in pack `pack`, else -1. */
  #recordIn(id: Uint8Array, pack: Uint8Array): number {
    this.#load(id);
    const slot = this.#find();
    if (slot < 0) return -1;
    const b = (this.#slots[slot] - 1) * STRIDE;
    const inPack = compareBytes(this.#packs, this.#records[b + PACK] * ID_BYTES, pack, 0, ID_BYTES);
    return inPack === 0 ? b : -1;
  }

  /** Adds or replaces. offset/length/rawLength are integers in [0, 2^32). */
  set(id: Uint8Array, loc: ChunkLocation): void {
    this.setAt(id, loc.pack, loc.offset, loc.length, loc.rawLength);
  }

  /** {@linkcode set} without a location object (a backup sets two per new chunk). */
  setAt(id: Uint8Array, pack: Uint8Array, offset: number, length: number, rawLength: number): void {
    this.#load(id);
    checkId("Pack id", pack);
    checkU32("offset", offset);
    checkU32("length", length);
    checkU32("rawLength", rawLength);
    this.#put(this.#intern(pack, 0), offset, length, rawLength);
  }

  /** Removes; returns whether it was present (backward-shift deletion, no tombstones). */
  delete(id: Uint8Array): boolean {
    this.#load(id);
    let hole = this.#find();
    if (hole < 0) return false;
    const slots = this.#slots;
    const rec = this.#records;
    const mask = slots.length - 1;
    const shift = this.#shift;
    const r = slots[hole] - 1;
    // Pull later members of the probe run back so that lookups never meet a false gap.
    for (let j = (hole + 1) & mask; slots[j] !== 0; j = (j + 1) & mask) {
      const home = rec[(slots[j] - 1) * STRIDE] >>> shift;
      const stays = hole <= j ? hole < home && home <= j : hole < home || home <= j;
      if (stays) continue;
      slots[hole] = slots[j];
      hole = j;
    }
    slots[hole] = 0;
    this.#unref(rec[r * STRIDE + PACK]);
    // Keep records dense: move the last record into the freed place.
    const last = this.#count - 1;
    if (r !== last) {
      let j = rec[last * STRIDE] >>> shift;
      while (slots[j] !== last + 1) j = (j + 1) & mask;
      slots[j] = r + 1;
      rec.copyWithin(r * STRIDE, last * STRIDE, last * STRIDE + STRIDE);
    }
    this.#count = last;
    this.#version++;
    return true;
  }

  /**
   * Every entry, in no particular order. Each yielded pair, id and location are fresh objects
   * (never reused), so they may be kept.
   */
  *entries(): IterableIterator<[Uint8Array, ChunkLocation]> {
    const version = this.#version;
    for (let r = 0; r < this.#count; r++) {
      yield [this.#idAt(r), this.#locationAt(r)];
      if (this.#version !== version) {
        throw new Error("Cannot iterate chunk index: it was modified during iteration");
      }
    }
  }

  /**
   * How many entries each pack holds, by lower-case hex pack id, in pack id order (from the counts
   * the index keeps: no walk over the entries).
   */
  entriesPerPack(): Map<string, number> {
    const packs = this.#packs;
    return new Map(
      this.#livePacks().map((
        n,
      ) => [toHex(packs, n * ID_BYTES, (n + 1) * ID_BYTES), this.#packRefs[n]]),
    );
  }

  /** Distinct pack ids that at least one entry points to, sorted bytewise. */
  packIds(): Uint8Array[] {
    return this.#livePacks().map((n) => this.#packs.slice(n * ID_BYTES, (n + 1) * ID_BYTES));
  }

  /**
   * Adds every entry of `other`; for an id in both, other's entry wins, or this one's with
   * `keepOwn` (so that the larger of two tables can take the smaller in, whichever wins).
   */
  merge(other: ChunkIndex, options: { keepOwn?: boolean } = {}): void {
    if (other === this) return;
    const map = new Int32Array(other.#packCount).fill(-1);
    const src = other.#records;
    const key = this.#key;
    for (let r = 0; r < other.#count; r++) {
      const b = r * STRIDE;
      for (let k = 0; k < 8; k++) key[k] = src[b + k];
      if (options.keepOwn && this.#find() >= 0) continue;
      const otherPack = src[b + PACK];
      let pn = map[otherPack];
      if (pn < 0) {
        pn = this.#intern(other.#packs, otherPack * ID_BYTES);
        map[otherPack] = pn;
      }
      this.#put(pn, src[b + OFFSET], src[b + LENGTH], src[b + RAW]);
    }
  }

  /**
   * Deterministic binary encoding (entries sorted by id); see the module doc for the layout. With
   * `head` spare bytes before it and `tail` after, it can be sealed in place (no copy of it).
   */
  encode(head = 0, tail = 0): Uint8Array {
    const packs = this.#livePacks();
    const renumber = new Uint32Array(this.#packCount);
    packs.forEach((n, i) => renumber[n] = i);
    const n = this.#count;
    const rec = this.#records;
    const order = new Uint32Array(n);
    sortById(rec, order);
    const framed = new Uint8Array(
      head + HEADER_BYTES + packs.length * ID_BYTES + 4 + n * ENTRY_BYTES + tail,
    );
    const out = framed.subarray(head, framed.length - tail);
    const view = new DataView(out.buffer, out.byteOffset, out.length);
    out.set(MAGIC, 0);
    out[5] = VERSION;
    view.setUint32(6, packs.length, true);
    let p = HEADER_BYTES;
    for (const pn of packs) {
      out.set(this.#packs.subarray(pn * ID_BYTES, (pn + 1) * ID_BYTES), p);
      p += ID_BYTES;
    }
    view.setUint32(p, n, true);
    p += 4;
    for (let i = 0; i < n; i++) {
      const b = order[i] * STRIDE;
      for (let k = 0; k < 8; k++, p += 4) view.setUint32(p, rec[b + k], false);
      view.setUint32(p, renumber[rec[b + PACK]], true);
      view.setUint32(p + 4, rec[b + OFFSET], true);
      view.setUint32(p + 8, rec[b + LENGTH], true);
      view.setUint32(p + 12, rec[b + RAW], true);
      p += 16;
    }
    return framed;
  }

  /**
   * Parses encode()'s output; any malformed input throws IntegrityError whose message starts
   * with "Index is corrupt: ". Counts are checked against the length before anything is
   * allocated, so memory stays a small multiple of `bytes.length`.
   */
  static decode(bytes: Uint8Array): ChunkIndex {
    const len = bytes.length;
    if (len < HEADER_BYTES) {
      throw corrupt(`truncated header (${len} bytes, need at least ${HEADER_BYTES})`);
    }
    for (let i = 0; i < MAGIC.length; i++) {
      if (bytes[i] !== MAGIC[i]) throw corrupt("bad magic (not a vger index)");
    }
    if (bytes[5] !== VERSION) {
      throw corrupt(`unsupported version ${bytes[5]} (expected ${VERSION})`);
    }
    const view = new DataView(bytes.buffer, bytes.byteOffset, len);
    const packCount = view.getUint32(6, true);
    const entriesAt = HEADER_BYTES + packCount * ID_BYTES;
    if (entriesAt + 4 > len) {
      throw corrupt(
        `pack count ${packCount} needs at least ${entriesAt + 4} bytes, got ${len} (truncated)`,
      );
    }
    const count = view.getUint32(entriesAt, true);
    const expected = entriesAt + 4 + count * ENTRY_BYTES;
    if (expected !== len) {
      const why = expected > len ? "truncated" : "trailing bytes";
      throw corrupt(`entry count ${count} needs exactly ${expected} bytes, got ${len} (${why})`);
    }
    if (count > MAX_INDEX_ENTRIES) {
      throw corrupt(`entry count ${count} is over the limit of ${MAX_INDEX_ENTRIES}`);
    }

    const index = new ChunkIndex(count);
    for (let i = 1; i < packCount; i++) {
      const at = HEADER_BYTES + i * ID_BYTES;
      const cmp = compareBytes(bytes, at - ID_BYTES, bytes, at, ID_BYTES);
      if (cmp === 0) throw corrupt(`duplicate pack id ${toHex(bytes, at, at + ID_BYTES)}`);
      if (cmp > 0) throw corrupt(`pack ids are not in ascending order at pack ${i}`);
    }
    const packRoom = Math.max(4, packCount);
    index.#packs = new Uint8Array(packRoom * ID_BYTES);
    index.#packs.set(bytes.subarray(HEADER_BYTES, entriesAt));
    index.#packRefs = new Uint32Array(packRoom);
    index.#packCount = packCount;

    const rec = index.#records;
    const refs = index.#packRefs;
    const slots = index.#slots;
    const shift = index.#shift;
    let next = 0;
    let wrapped = 0;
    let p = entriesAt + 4;
    for (let r = 0; r < count; r++, p += ENTRY_BYTES) {
      const b = r * STRIDE;
      for (let k = 0; k < 8; k++) rec[b + k] = wordAt(bytes, p + 4 * k);
      if (r > 0) {
        const cmp = compareBytes(bytes, p - ENTRY_BYTES, bytes, p, ID_BYTES);
        if (cmp === 0) throw corrupt(`duplicate chunk id ${toHex(bytes, p, p + ID_BYTES)}`);
        if (cmp > 0) throw corrupt(`chunk ids are not in ascending order at entry ${r}`);
      }
      const pn = view.getUint32(p + 32, true);
      if (pn >= packCount) {
        throw corrupt(`entry ${r} points to pack number ${pn} but there are ${packCount} packs`);
      }
      rec[b + PACK] = pn;
      rec[b + OFFSET] = view.getUint32(p + 36, true);
      rec[b + LENGTH] = view.getUint32(p + 40, true);
      rec[b + RAW] = view.getUint32(p + 44, true);
      refs[pn]++;
      // Ids are distinct and ascending, so home slots never decrease: every slot from the home
      // up to `next` is taken and the first free one is `next`. Placing by cursor keeps decode
      // linear even when crafted ids share a home; runs past the end wrap to the first gap.
      const home = rec[b] >>> shift;
      let j = home > next ? home : next;
      if (j < slots.length) {
        next = j + 1;
      } else {
        while (slots[wrapped] !== 0) wrapped++;
        j = wrapped;
      }
      slots[j] = r + 1;
    }
    index.#count = count;
    for (let pn = 0; pn < packCount; pn++) {
      if (refs[pn] === 0) {
        const hex = toHex(index.#packs, pn * ID_BYTES, (pn + 1) * ID_BYTES);
        throw corrupt(`pack ${pn} (${hex}) is not referenced by any entry`);
      }
      index.#remember(pn);
    }
    return index;
  }

  /** Loads `id` into #key as 8 big-endian words. */
  #load(id: Uint8Array): void {
    checkId("Chunk id", id);
    const key = this.#key;
    for (let k = 0; k < 8; k++) key[k] = wordAt(id, 4 * k);
  }

  /** The slot holding #key, or ~slot of the empty slot where it would go. */
  #find(): number {
    const key = this.#key;
    const slots = this.#slots;
    const rec = this.#records;
    const mask = slots.length - 1;
    const k0 = key[0];
    for (let i = k0 >>> this.#shift;; i = (i + 1) & mask) {
      const s = slots[i];
      if (s === 0) return ~i;
      const b = (s - 1) * STRIDE;
      if (
        rec[b] === k0 && rec[b + 1] === key[1] && rec[b + 2] === key[2] &&
        rec[b + 3] === key[3] && rec[b + 4] === key[4] && rec[b + 5] === key[5] &&
        rec[b + 6] === key[6] && rec[b + 7] === key[7]
      ) return i;
    }
  }

  /** Adds or replaces the entry for #key; `pn` is an interned pack number not yet counted. */
  #put(pn: number, offset: number, length: number, rawLength: number): void {
    let slot = this.#find();
    let b: number;
    if (slot >= 0) {
      b = (this.#slots[slot] - 1) * STRIDE;
      // Count the new pack before releasing the old one, so a same-pack replace never frees it.
      const old = this.#records[b + PACK];
      this.#packRefs[pn]++;
      this.#unref(old);
    } else {
      if (this.#count + 1 > this.#slots.length * MAX_LOAD) {
        this.#rehash(this.#slots.length * 2);
        slot = this.#find();
      }
      if ((this.#count + 1) * STRIDE > this.#records.length) {
        const grown = new Uint32Array(this.#records.length * 2);
        grown.set(this.#records);
        this.#records = grown;
      }
      const r = this.#count++;
      b = r * STRIDE;
      this.#records.set(this.#key, b);
      this.#slots[~slot] = r + 1;
      this.#packRefs[pn]++;
    }
    const rec = this.#records;
    rec[b + PACK] = pn;
    rec[b + OFFSET] = offset;
    rec[b + LENGTH] = length;
    rec[b + RAW] = rawLength;
    this.#version++;
  }

  #rehash(size: number): void {
    const slots = new Uint32Array(size);
    const shift = 32 - Math.log2(size);
    const mask = size - 1;
    const rec = this.#records;
    for (let r = 0; r < this.#count; r++) {
      let j = rec[r * STRIDE] >>> shift;
      while (slots[j] !== 0) j = (j + 1) & mask;
      slots[j] = r + 1;
    }
    this.#slots = slots;
    this.#shift = shift;
  }

  /** The pack number of the 32 bytes at `bytes[at..]`, adding the pack if new. */
  #intern(bytes: Uint8Array, at: number): number {
    const packs = this.#packs;
    const known = this.#packByPrefix.get(prefixOf(bytes, at));
    if (known !== undefined && compareBytes(packs, known * ID_BYTES, bytes, at, ID_BYTES) === 0) {
      return known;
    }
    if (this.#packByHex.size > 0) {
      const other = this.#packByHex.get(toHex(bytes, at, at + ID_BYTES));
      if (other !== undefined) return other;
    }
    let pn = this.#freePacks.pop();
    if (pn === undefined) {
      pn = this.#packCount++;
      if (pn >= this.#packRefs.length) {
        const grown = new Uint8Array(packs.length * 2);
        grown.set(packs);
        this.#packs = grown;
        const refs = new Uint32Array(this.#packRefs.length * 2);
        refs.set(this.#packRefs);
        this.#packRefs = refs;
      }
    }
    this.#packs.set(bytes.subarray(at, at + ID_BYTES), pn * ID_BYTES);
    this.#packRefs[pn] = 0;
    this.#remember(pn);
    return pn;
  }

  /** Makes pack number `pn` findable by #intern. */
  #remember(pn: number): void {
    const prefix = prefixOf(this.#packs, pn * ID_BYTES);
    if (!this.#packByPrefix.has(prefix)) this.#packByPrefix.set(prefix, pn);
    else this.#packByHex.set(toHex(this.#packs, pn * ID_BYTES, (pn + 1) * ID_BYTES), pn);
  }

  #unref(pn: number): void {
    if (--this.#packRefs[pn] !== 0) return;
    const prefix = prefixOf(this.#packs, pn * ID_BYTES);
    if (this.#packByPrefix.get(prefix) === pn) this.#packByPrefix.delete(prefix);
    else this.#packByHex.delete(toHex(this.#packs, pn * ID_BYTES, (pn + 1) * ID_BYTES));
    this.#freePacks.push(pn);
  }

  /** Referenced pack numbers, sorted by pack id bytes. */
  #livePacks(): number[] {
    const live: number[] = [];
    for (let pn = 0; pn < this.#packCount; pn++) if (this.#packRefs[pn] > 0) live.push(pn);
    const packs = this.#packs;
    return live.sort((a, b) => compareBytes(packs, a * ID_BYTES, packs, b * ID_BYTES, ID_BYTES));
  }

  #idAt(r: number): Uint8Array {
    const id = new Uint8Array(ID_BYTES);
    const view = new DataView(id.buffer);
    for (let k = 0; k < 8; k++) view.setUint32(4 * k, this.#records[r * STRIDE + k], false);
    return id;
  }

  #locationAt(r: number): ChunkLocation {
    const b = r * STRIDE;
    const rec = this.#records;
    const pn = rec[b + PACK];
    return {
      pack: this.#packs.slice(pn * ID_BYTES, (pn + 1) * ID_BYTES),
      offset: rec[b + OFFSET],
      length: rec[b + LENGTH],
      rawLength: rec[b + RAW],
    };
  }
}
