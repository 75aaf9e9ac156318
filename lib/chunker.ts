/**
 * Content-defined chunking (FastCDC with normalized chunking, level 2).
 *
 * Chunk boundaries are part of the on-disk format: the same repository secret and parameters must
 * cut the same bytes at the same places forever, or deduplication against old archives breaks.
 * The rules below are the specification; `tests/testdata/chunker_golden.json` pins them.
 *
 * ## Specification
 *
 * Notation: all arithmetic on the hash is on unsigned 32-bit integers (modulo 2^32). Byte
 * positions are 0-based. `u32be(x)` is the 4-byte big-endian encoding of `x`.
 *
 * **Parameters.** `minSize`, `avgSize`, `maxSize` are integers with
 * `64 <= minSize <= avgSize <= maxSize <= 268435456` (256 MiB) and `avgSize` a power of two.
 * The defaults are `minSize = 524288` (512 KiB), `avgSize = 2097152` (2 MiB),
 * `maxSize = 8388608` (8 MiB).
 *
 * **Gear table.** From a per-repository secret `K` of at least 16 bytes:
 * `T(c) = HMAC-SHA-256(key = K, message = ASCII("vger-gear-table") || u32be(c))` for
 * `c = 0, 1, ..., 31`; `S = T(0) || T(1) || ... || T(31)` (1024 bytes); and
 * `GEAR[j] = ` the big-endian unsigned 32-bit integer in bytes `S[4j .. 4j+3]`, for
 * `j = 0 .. 255`.
 *
 * **Masks.** Let `b = log2(avgSize)`. `MASK_S` is the 32-bit value whose top `b + 2` bits are one
 * and the rest zero; `MASK_L` is the value whose top `b - 2` bits are one and the rest zero
 * (`MASK(k) = (0xFFFFFFFF << (32 - k)) mod 2^32`). For the defaults, `b = 21`,
 * `MASK_S = 0xFFFFFE00` (23 bits) and `MASK_L = 0xFFFFE000` (19 bits).
 *
 * **Cutting one chunk.** Let `D` be the bytes from the start of the chunk to the end of the input,
 * `n = len(D)`, and `limit = min(n, maxSize)`.
 * 1. If `limit <= minSize`, the chunk length is `limit`.
 * 2. Otherwise set `h = 0` and, for each position `i = minSize, minSize + 1, ..., limit - 1` in
 *    order: set `h = (2 * h + GEAR[D[i]]) mod 2^32`; then if `i < avgSize` and
 *    `h AND MASK_S == 0`, or if `i >= avgSize` and `h AND MASK_L == 0`, the chunk length is
 *    `i + 1` and the scan stops. (The first `minSize` bytes are never hashed.)
 * 3. If the scan ends without a cut, the chunk length is `limit`.
 *
 * So every chunk but the last is at least `minSize + 1` and at most `maxSize` bytes long. On
 * random data the mean chunk length is about `1.14 * avgSize` when `minSize = avgSize / 4`.
 *
 * **Whole input.** Starting at position 0, cut one chunk, then the next chunk starts right after
 * it, until the input is consumed. An empty input has no chunks.
 *
 * Whether position `i` is a cut depends only on `D[minSize .. i]` (and, through the shift, only
 * on the last 32 of those bytes), never on bytes after it; so a cut found in a partial buffer is
 * final, and streaming and whole-buffer chunking agree.
 *
 * @module
 */

import { UsageError } from "./errors.ts";

/** Size limits of content-defined chunks, in bytes. */
export interface ChunkerParams {
  /** No cut before this many bytes; the first `minSize` bytes of a chunk are not hashed. */
  minSize: number;
  /** Target mean chunk size; a power of two. */
  avgSize: number;
  /** Hard upper bound; a chunk is cut here when the hash found no cut before it. */
  maxSize: number;
}

/** The default chunk sizes: 512 KiB minimum, 2 MiB average, 8 MiB maximum. */
export const DEFAULT_CHUNKER_PARAMS: Readonly<ChunkerParams> = Object.freeze({
  minSize: 512 * 1024,
  avgSize: 2 * 1024 * 1024,
  maxSize: 8 * 1024 * 1024,
});

/** The smallest `minSize` any chunker setting allows. */
export const MIN_CHUNK_LIMIT = 64;
/** The largest chunk any chunker setting allows (256 MiB), so the largest plaintext of any blob. */
export const MAX_CHUNK_LIMIT: number = 256 << 20;
const GEAR_LABEL = "vger-gear-table";
const MIN_SECRET_LENGTH = 16;

/**
 * Throws UsageError (lib/errors.ts) naming the bad field: require
 * 64 <= min <= avg <= max <= 256 MiB, avg a power of two.
 */
export function validateChunkerParams(p: ChunkerParams): void {
  for (const field of ["minSize", "avgSize", "maxSize"] as const) {
    const v = p[field];
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v <= 0) {
      throw new UsageError(`Invalid chunker ${field} ${v}: must be a positive integer`);
    }
  }
  const { minSize, avgSize, maxSize } = p;
  if (minSize < MIN_CHUNK_LIMIT) {
    throw new UsageError(`Invalid chunker minSize ${minSize}: must be at least ${MIN_CHUNK_LIMIT}`);
  }
  if (maxSize > MAX_CHUNK_LIMIT) {
    throw new UsageError(
      `Invalid chunker maxSize ${maxSize}: must be at most ${MAX_CHUNK_LIMIT} (256 MiB)`,
    );
  }
  if ((avgSize & (avgSize - 1)) !== 0 || avgSize > MAX_CHUNK_LIMIT) {
    throw new UsageError(`Invalid chunker avgSize ${avgSize}: must be a power of two`);
  }
  if (minSize > avgSize) {
    throw new UsageError(
      `Invalid chunker minSize ${minSize}: must not exceed avgSize ${avgSize}`,
    );
  }
  if (avgSize > maxSize) {
    throw new UsageError(
      `Invalid chunker maxSize ${maxSize}: must not be less than avgSize ${avgSize}`,
    );
  }
}

/**
 * 256-entry gear table derived deterministically from a per-repository secret (>= 16 bytes):
 * HMAC-SHA-256 (Web Crypto) of "vger-gear-table" || u32be(counter), in counter mode.
 */
export async function deriveGearTable(secret: Uint8Array): Promise<Uint32Array> {
  if (secret.length < MIN_SECRET_LENGTH) {
    throw new UsageError(
      `Invalid chunker secret: ${secret.length} bytes, need at least ${MIN_SECRET_LENGTH}`,
    );
  }
  const key = await crypto.subtle.importKey(
    "raw",
    new Uint8Array(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const label = new TextEncoder().encode(GEAR_LABEL);
  const blocks = await Promise.all(
    Array.from({ length: 32 }, (_, counter) => {
      const msg = new Uint8Array(label.length + 4);
      msg.set(label);
      new DataView(msg.buffer).setUint32(label.length, counter, false);
      return crypto.subtle.sign("HMAC", key, msg);
    }),
  );
  const gear = new Uint32Array(256);
  for (let c = 0; c < 32; c++) {
    const view = new DataView(blocks[c]);
    for (let k = 0; k < 8; k++) gear[c * 8 + k] = view.getUint32(k * 4, false);
  }
  return gear;
}

/** Top `bits` bits set, as a signed 32-bit integer (the hot loop works on int32 values). */
function topBitsMask(bits: number): number {
  return (0xffffffff << (32 - bits)) | 0;
}

/**
 * Finds FastCDC cut points; stateless between calls, so one instance may serve many streams.
 *
 * A streaming caller keeps a buffer that starts at the current chunk, calls
 * {@linkcode Chunker.findCut} with `eof = false`, and on 0 appends more input and calls again
 * (the scan restarts at `minSize`, so append generously, ideally up to `maxSize` bytes); at the
 * end of input it calls with `eof = true` until the buffer is empty.
 */
export class Chunker {
  #minSize: number;
  #avgSize: number;
  #maxSize: number;
  #maskS: number;
  #maskL: number;
  // Int32Array rather than Uint32Array: values stay int32 in V8's optimised code, no doubles.
  #gear: Int32Array;

  /** Validates the parameters and the 256-entry gear table. */
  constructor(params: ChunkerParams, gear: Uint32Array) {
    validateChunkerParams(params);
    if (!(gear instanceof Uint32Array) || gear.length !== 256) {
      throw new UsageError(
        `Invalid chunker gear table: need a Uint32Array of 256 entries, got ${gear?.length}`,
      );
    }
    this.#minSize = params.minSize;
    this.#avgSize = params.avgSize;
    this.#maxSize = params.maxSize;
    const bits = Math.log2(params.avgSize);
    this.#maskS = topBitsMask(bits + 2);
    this.#maskL = topBitsMask(bits - 2);
    this.#gear = new Int32Array(gear);
  }

  /**
   * data starts at the beginning of a chunk. Returns the length of the chunk that starts at
   * data[0]: a cut found by the rolling hash, or maxSize when no cut before it. When no cut is
   * found and data.length < maxSize: returns data.length if eof, else 0 meaning "give me more
   * data".
   *
   * `scanned` (default 0) says the first `scanned` bytes were searched already, by a call that
   * returned 0: only the rest is searched, with the same result as a search from the start. The
   * 32-bit hash depends on the last 32 bytes alone, so it is rebuilt from the 32 before.
   */
  findCut(data: Uint8Array, eof: boolean, scanned = 0): number {
    const max = this.#maxSize;
    const n = data.length;
    const limit = n < max ? n : max;
    const min = this.#minSize;
    if (limit > min) {
      const gear = this.#gear;
      const avg = this.#avgSize;
      const normal = limit < avg ? limit : avg;
      let h = 0;
      let i = scanned - 32 > min ? scanned - 32 : min;
      for (; i < scanned && i < limit; i++) h = ((h << 1) + gear[data[i]]) | 0;
      let mask = this.#maskS;
      for (; i < normal; i++) {
        h = ((h << 1) + gear[data[i]]) | 0;
        if ((h & mask) === 0) return i + 1;
      }
      mask = this.#maskL;
      for (; i < limit; i++) {
        h = ((h << 1) + gear[data[i]]) | 0;
        if ((h & mask) === 0) return i + 1;
      }
    }
    if (limit === max || eof) return limit;
    return 0;
  }
}

/**
 * Cut points of a whole in-memory buffer: chunk lengths in order (sum = data.length).
 *
 * @example Chunk a buffer
 * ```ts
 * import { Chunker, chunkLengths, DEFAULT_CHUNKER_PARAMS, deriveGearTable } from "./chunker.ts";
 *
 * const gear = await deriveGearTable(new Uint8Array(32)); // use the repository's secret
 * const chunker = new Chunker(DEFAULT_CHUNKER_PARAMS, gear);
 * const lengths = chunkLengths(chunker, new Uint8Array(20 * 1024 * 1024));
 * if (lengths.join() !== "8388608,8388608,4194304") throw new Error("unexpected cuts");
 * ```
 */
export function chunkLengths(chunker: Chunker, data: Uint8Array): number[] {
  const lengths: number[] = [];
  let offset = 0;
  while (offset < data.length) {
    const len = chunker.findCut(data.subarray(offset), true);
    lengths.push(len);
    offset += len;
  }
  return lengths;
}
