/**
 * Per-blob compression. A compressed blob is `codec u8 || payload`:
 *   0 none: payload is the data
 *   1 lz4:  payload is an LZ4 block with its uncompressed size prepended (u32 LE), as lz4_flex's
 *           `compress_prepend_size` writes it (lz4-napi)
 *   2 zstd: payload is a zstd frame
 * Data that does not get smaller is stored with codec 0, so incompressible chunks cost nothing
 * to read back.
 *
 * The lz4 codec is liblz4 through FFI (lib/native_lz4.ts), which compresses into the caller's
 * buffer, else lz4-napi (native, N-API), else lz4-wasm-nodejs: measured here in two Workers on
 * 2 MiB blocks lz4-napi compresses mixed data at 569 vs 386 MB/s and incompressible data at
 * 2.3-2.9 vs 0.3-0.8 GB/s; the native ones cost `--allow-ffi` (the restore of xattrs needs it
 * anyway).
 *
 * @module
 */

import { IntegrityError, UsageError, VgerError } from "./errors.ts";
import { release, releaseResult } from "./bytes.ts";
import { loadPlatform, platform, type ZstdCodec } from "./platform.ts";

/** Compression algorithms. */
export type CompressionAlgorithm = "lz4" | "zstd" | "none";

/** Compression settings of a backup. */
export interface CompressionOptions {
  /** The algorithm. */
  algorithm: CompressionAlgorithm;
  /** zstd level (1-22), only used with zstd. */
  zstdLevel?: number;
}

/** The default: lz4. */
export const DEFAULT_COMPRESSION: Readonly<CompressionOptions> = { algorithm: "lz4", zstdLevel: 3 };

const CODEC_NONE = 0;
const CODEC_LZ4 = 1;
const CODEC_ZSTD = 2;

/** Throws UsageError on unknown algorithms or zstd levels out of range. */
export function validateCompression(c: CompressionOptions): void {
  if (!["lz4", "zstd", "none"].includes(c.algorithm)) {
    throw new UsageError(
      `Unknown compression algorithm "${c.algorithm}": use "lz4", "zstd" or "none"`,
    );
  }
  const level = c.zstdLevel ?? 3;
  if (!Number.isInteger(level) || level < 1 || level > 22) {
    throw new UsageError(`Invalid zstd_level ${level}: use a whole number from 1 to 22`);
  }
}

/**
 * Loads the native codecs that load asynchronously (lz4-napi, when lib/platform_deno.ts is
 * installed). Loaded on demand rather than imported, so that a missing Deno permission (lz4-napi
 * needs --allow-ffi and --allow-env) is an error the CLI can name instead of a crash while modules
 * load, and only by a thread that meets lz4: the codec workers, and
 * {@linkcode decompressLoading} (a zstd or uncompressed repository never loads lz4-napi).
 */
export async function loadCodecs(): Promise<void> {
  await loadPlatform();
}

/**
 * {@linkcode decompress}, after loading the native lz4 codec when the blob is lz4 (without it, the
 * portable decoder of lib/platform.ts would do, more slowly).
 */
export async function decompressLoading(
  blob: Uint8Array,
  maxLength: number,
  what: string,
): Promise<Uint8Array> {
  if (blob[0] === CODEC_LZ4) await loadCodecs();
  return decompress(blob, maxLength, what);
}

function zstdCodec(): ZstdCodec {
  const zstd = platform().zstd;
  if (!zstd) {
    throw new VgerError("unsupported", "zstd is not available here: no zstd codec is installed");
  }
  return zstd;
}

/** Compresses data into `codec || payload`, falling back to codec none when it does not shrink. */
export function compress(data: Uint8Array, options: CompressionOptions): Uint8Array {
  return compressFramed(data, options, 0, 0);
}

/**
 * Like {@linkcode compress}, but the result sits in a buffer with `head` spare bytes before it
 * and `tail` after, so that the caller can seal it in place without another copy.
 */
export function compressFramed(
  data: Uint8Array,
  options: CompressionOptions,
  head: number,
  tail: number,
): Uint8Array {
  const out = new Uint8Array(head + 1 + data.length + tail);
  const n = compressInto(data, options, out.subarray(head, head + 1 + data.length));
  if (n === 1 + data.length) return out;
  // compressed: a buffer of its own size, as it may be kept (or sent on) whole
  const framed = out.slice(0, head + n + tail);
  release(out);
  return framed;
}

/** The codec byte of a payload compressed by `options`. */
function codecOf(options: CompressionOptions): number {
  return options.algorithm === "lz4" ? CODEC_LZ4 : CODEC_ZSTD;
}

/**
 * Compresses `data` by `options` into `out`, which has room for fewer bytes than `data` (the
 * payload must come out smaller, else the data is stored as it is): the payload's length, or 0.
 */
function payloadInto(data: Uint8Array, options: CompressionOptions, out: Uint8Array): number {
  if (data.length === 0) return 0;
  if (options.algorithm === "lz4") return platform().lz4.compressInto(data, out);
  if (options.algorithm !== "zstd") return 0;
  const payload = zstdCodec().compress(data, options.zstdLevel ?? 3);
  const n = payload.length <= out.length ? payload.length : 0;
  if (n) out.set(payload);
  releaseResult(payload); // at once (see lib/bytes.ts); it detaches `payload`
  return n;
}

/**
 * {@linkcode compressInto} for a chunk of `block` at `offset`, written at `to` in the same block
 * (before the chunk, or over its start: the payload goes through `scratch`, and data that does
 * not shrink moves as memmove does). The caller keeps `to + 1 + length` within the bytes it may
 * overwrite. Returns the length written.
 */
export function compressWithin(
  block: Uint8Array,
  offset: number,
  length: number,
  options: CompressionOptions,
  to: number,
  scratch: (length: number) => Uint8Array,
): number {
  if (options.algorithm !== "none" && length > 0) {
    const out = scratch(length);
    const n = payloadInto(
      block.subarray(offset, offset + length),
      options,
      out.subarray(0, length - 1),
    );
    if (n > 0) {
      block.set(out.subarray(0, n), to + 1);
      block[to] = codecOf(options);
      return 1 + n;
    }
  }
  block.copyWithin(to + 1, offset, offset + length);
  block[to] = CODEC_NONE;
  return 1 + length;
}

/**
 * Writes `codec || payload` of `data` into `out`, which has room for `1 + data.length` bytes
 * (the most it can take: data that does not shrink is stored as it is), and returns its length.
 * lz4 compresses straight into `out` (lib/native_lz4.ts), with no buffer per chunk.
 */
export function compressInto(
  data: Uint8Array,
  options: CompressionOptions,
  out: Uint8Array,
): number {
  if (out.length < 1 + data.length) {
    throw new VgerError("internal", `Compression output of ${out.length} bytes is too small`);
  }
  const n = payloadInto(data, options, out.subarray(1, data.length));
  if (n > 0) {
    out[0] = codecOf(options);
    return 1 + n;
  }
  out[0] = CODEC_NONE;
  out.set(data, 1);
  return 1 + data.length;
}

/**
 * Reverses {@linkcode compress}. `maxLength` bounds the output so that a hostile blob cannot
 * make us allocate without limit; `what` names the blob in errors.
 */
export function decompress(blob: Uint8Array, maxLength: number, what: string): Uint8Array {
  if (blob.length < 1) throw new IntegrityError(`${what} is corrupt: empty compressed blob`);
  const payload = blob.subarray(1);
  switch (blob[0]) {
    case CODEC_NONE:
      if (payload.length > maxLength) {
        throw new IntegrityError(`${what} is corrupt: ${payload.length} bytes exceeds the limit`);
      }
      return payload;
    case CODEC_LZ4: {
      if (payload.length < 4) throw new IntegrityError(`${what} is corrupt: short lz4 block`);
      const size = new DataView(payload.buffer, payload.byteOffset, 4).getUint32(0, true);
      if (size > maxLength) {
        throw new IntegrityError(`${what} is corrupt: lz4 size ${size} exceeds the limit`);
      }
      const out = new Uint8Array(size);
      try {
        platform().lz4.uncompressInto(payload, out);
        return out;
      } catch (cause) {
        throw new IntegrityError(`${what} is corrupt: bad lz4 data`, { cause });
      }
    }
    case CODEC_ZSTD: {
      const codec = zstdCodec();
      try {
        return codec.decompress(payload, Math.max(1, maxLength));
      } catch (cause) {
        throw new IntegrityError(`${what} is corrupt: bad zstd data`, { cause });
      }
    }
    default:
      throw new IntegrityError(`${what} is corrupt: unknown codec ${blob[0]}`);
  }
}
