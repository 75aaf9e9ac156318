/**
 * lz4 from the reference C library (`liblz4.so.1`, Debian's liblz4-1, which borg also uses)
 * through `Deno.dlopen`. It compresses into and decompresses into buffers the caller owns, so a
 * codec worker compresses each chunk into one scratch buffer of its own, then over its read block
 * where it seals it: no per-chunk output buffer (lz4-napi's hold their compression bound, about
 * the input's size, until freed; bench/README.md, issue 14 sessions 10 and 12). Its blocks are plain lz4 blocks: lz4-napi's and
 * lz4-wasm-nodejs's decode them and it decodes theirs. Needs `--allow-ffi`; without it, or without
 * the library, {@linkcode nativeLz4} returns null and lib/platform_deno.ts uses lz4-napi.
 *
 * @module
 */

import { LIBLZ4, openLibrary } from "./native_library.ts";
import { type Lz4Codec, lz4DecompressBlockInto, lz4SizePrefix, readLz4Size } from "./platform.ts";

const SYMBOLS = {
  // int LZ4_compress_default(const char* src, char* dst, int srcSize, int dstCapacity)
  LZ4_compress_default: { parameters: ["buffer", "buffer", "i32", "i32"], result: "i32" },
  // int LZ4_decompress_safe(const char* src, char* dst, int compressedSize, int dstCapacity)
  LZ4_decompress_safe: { parameters: ["buffer", "buffer", "i32", "i32"], result: "i32" },
} as const;

/** lz4's largest input (LZ4_MAX_INPUT_SIZE). */
const MAX_INPUT = 0x7e000000;

// one per thread (module instance): undefined = not tried, null = unavailable
let cached: Lz4Codec | null | undefined;

// Deno's FFI wants ArrayBuffer-backed views in its types; any view works at run time.
function buf(a: Uint8Array): Uint8Array<ArrayBuffer> {
  return a as Uint8Array<ArrayBuffer>;
}

/** liblz4 as an {@linkcode Lz4Codec}, or null without FFI or the library. */
export function nativeLz4(): Lz4Codec | null {
  if (cached !== undefined) return cached;
  const lib = openLibrary(LIBLZ4, SYMBOLS);
  if (!lib) return cached = null;
  const { LZ4_compress_default, LZ4_decompress_safe } = lib.symbols;
  return cached = {
    compressInto(data: Uint8Array, out: Uint8Array): number {
      if (data.length === 0 || out.length <= 4 || data.length > MAX_INPUT) return 0;
      const capacity = Math.min(out.length - 4, MAX_INPUT);
      const n = LZ4_compress_default(buf(data), buf(out.subarray(4)), data.length, capacity);
      if (n <= 0) return 0; // does not fit
      lz4SizePrefix(out, data.length);
      return 4 + n;
    },
    uncompressInto(data: Uint8Array, out: Uint8Array): void {
      const size = readLz4Size(data, out);
      const block = data.subarray(4);
      // an empty output is a null pointer to the library: the portable decoder checks it
      if (size === 0 || block.length > MAX_INPUT) return lz4DecompressBlockInto(block, out);
      const n = LZ4_decompress_safe(buf(block), buf(out), block.length, out.length);
      if (n !== size) {
        throw new Error(n < 0 ? "malformed lz4 block" : `${n} bytes, expected ${size}`);
      }
    },
  };
}
