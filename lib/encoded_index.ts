/**
 * An encoded chunk index read in place (the layout is chunk_index.ts's): for the passes that only
 * look entries up, such as compact's plan, without building a ChunkIndex.
 *
 * @module
 */

import { ENTRY_BYTES, HEADER_BYTES, ID_BYTES } from "./chunk_index.ts";

/**
 * The entries of an encoded index read in place: numbered 0 to count - 1 in ascending id order
 * (the canonical encoding), found by binary search, with no ChunkIndex built. The bytes must be
 * ones {@linkcode ChunkIndex.decode} accepted; the view keeps them and does not check them again.
 *
 * @example Find an entry without decoding into a map
 * ```ts
 * import { ChunkIndex } from "./chunk_index.ts";
 * import { EncodedIndex } from "./encoded_index.ts";
 *
 * const index = new ChunkIndex();
 * const id = crypto.getRandomValues(new Uint8Array(32));
 * index.set(id, { pack: new Uint8Array(32), offset: 17, length: 100, rawLength: 70 });
 * const plain = index.encode();
 * ChunkIndex.decode(plain); // validates
 * const view = new EncodedIndex(plain);
 * if (view.offsetOf(view.find(id)) !== 17) throw new Error("lost the entry");
 * ```
 */
export class EncodedIndex {
  /** Number of entries. */
  readonly count: number;
  readonly #bytes: Uint8Array;
  readonly #view: DataView;
  readonly #entriesAt: number;
  /** First entry number whose id starts with each 16-bit prefix; [65536] = count. */
  readonly #buckets = new Uint32Array(65537);

  /** A view of `plain`, the output of {@linkcode ChunkIndex.encode} (validated by decode). */
  constructor(plain: Uint8Array) {
    this.#bytes = plain;
    this.#view = new DataView(plain.buffer, plain.byteOffset, plain.byteLength);
    const packs = this.#view.getUint32(HEADER_BYTES - 4, true);
    this.#entriesAt = HEADER_BYTES + 4 + ID_BYTES * packs;
    this.count = this.#view.getUint32(this.#entriesAt - 4, true);
    let b = 0;
    for (let i = 0; i < this.count; i++) {
      const at = this.#entriesAt + ENTRY_BYTES * i;
      const prefix = (plain[at] << 8) | plain[at + 1];
      while (b <= prefix) this.#buckets[b++] = i;
    }
    while (b <= 65536) this.#buckets[b++] = this.count;
  }

  /** Number of packs in the pack table. */
  get packCount(): number {
    return (this.#entriesAt - HEADER_BYTES - 4) / ID_BYTES;
  }

  /** Entry number of `id`, or -1. */
  find(id: Uint8Array): number {
    const bytes = this.#bytes;
    const prefix = (id[0] << 8) | id[1];
    let lo = this.#buckets[prefix];
    let hi = this.#buckets[prefix + 1];
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const at = this.#entriesAt + ENTRY_BYTES * mid;
      let d = 0;
      for (let k = 2; k < ID_BYTES && d === 0; k++) d = bytes[at + k] - id[k];
      if (d === 0) return mid;
      if (d < 0) lo = mid + 1;
      else hi = mid;
    }
    return -1;
  }

  /** A view of entry i's id (valid as long as the bytes). */
  idAt(i: number): Uint8Array {
    const at = this.#entriesAt + ENTRY_BYTES * i;
    return this.#bytes.subarray(at, at + ID_BYTES);
  }

  /** Pack number of entry i (see {@linkcode packId}). */
  packOf(i: number): number {
    return this.#view.getUint32(this.#entriesAt + ENTRY_BYTES * i + ID_BYTES, true);
  }

  /** Offset of entry i's stored object in its pack. */
  offsetOf(i: number): number {
    return this.#view.getUint32(this.#entriesAt + ENTRY_BYTES * i + ID_BYTES + 4, true);
  }

  /** Length of entry i's stored object. */
  lengthOf(i: number): number {
    return this.#view.getUint32(this.#entriesAt + ENTRY_BYTES * i + ID_BYTES + 8, true);
  }

  /** Plaintext length of entry i's chunk. */
  rawOf(i: number): number {
    return this.#view.getUint32(this.#entriesAt + ENTRY_BYTES * i + ID_BYTES + 12, true);
  }

  /** A view of the id of pack number `pn` (valid as long as the bytes). */
  packId(pn: number): Uint8Array {
    const at = HEADER_BYTES + ID_BYTES * pn;
    return this.#bytes.subarray(at, at + ID_BYTES);
  }
}
