/**
 * Deno's native codecs and hashes for lib/platform.ts: CRC-32, SHA-256 and zstd from node:zlib
 * and node:crypto, lz4 from liblz4 or lz4-napi (loaded on demand by `loadCodecs`, so that a missing
 * permission is an error the CLI can name) and AES-GCM/HMAC from OpenSSL through FFI
 * (lib/native_crypto.ts), Argon2id off the main thread (lib/kdf_deno.ts). Importing this module installs them; the commands, the codec workers
 * and every Deno entry point import it, so the CLI runs on the native code while the portable
 * read path stays free of Deno and Node APIs.
 *
 * @module
 */

import { createHash } from "node:crypto";
import zlib from "node:zlib";
import { nativeCrypto } from "./native_crypto.ts";
import { argon2idDeno } from "./kdf_deno.ts";
import { nativeLz4 } from "./native_lz4.ts";
import { installPlatform, type Lz4Codec, readLz4Size, type Sha256Hasher } from "./platform.ts";
import { releaseResult } from "./bytes.ts";

let lz4: Lz4Codec | undefined;

function sha256(): Sha256Hasher {
  const hash = createHash("sha256");
  return {
    update: (data) => void hash.update(data),
    digest: () => new Uint8Array(hash.digest()),
  };
}

installPlatform({
  argon2id: argon2idDeno,
  crc32: (data) => zlib.crc32(data) >>> 0,
  sha256,
  zstd: {
    compress: (data, level) =>
      zlib.zstdCompressSync(data, { params: { [zlib.constants.ZSTD_c_compressionLevel]: level } }),
    decompress: (frame, maxOutputLength) => zlib.zstdDecompressSync(frame, { maxOutputLength }),
  },
  fastCrypto: nativeCrypto,
}, async () => {
  lz4 ??= await loadLz4();
  return { lz4 };
});

/**
 * liblz4 through FFI (lib/native_lz4.ts), else lz4-napi (native, N-API), else lz4_flex built to
 * WASM (lz4-wasm-nodejs): the same size-prepended block format, each reads what the others wrote.
 * The WASM one is about 1.4x slower to compress (docs: feasibility) and needs only read access to
 * its .wasm file.
 */
async function loadLz4(): Promise<Lz4Codec> {
  const native = nativeLz4();
  if (native) return native;
  if (lz4NapiAllowed()) {
    try {
      // lz4-napi takes and returns Buffers; any Uint8Array works at run time
      const napi = await import("lz4-napi");
      return wholeBufferLz4(napi.compressSync as never, napi.uncompressSync as never);
    } catch {
      // a scoped grant that does not cover it, or no prebuilt module for this platform
    }
  }
  const wasm = await import("lz4-wasm-nodejs");
  return wholeBufferLz4(wasm.compress, wasm.decompress);
}

/** An {@linkcode Lz4Codec} over a library that returns a fresh buffer from each call. */
export function wholeBufferLz4(
  compress: (data: Uint8Array) => Uint8Array,
  uncompress: (data: Uint8Array) => Uint8Array,
): Lz4Codec {
  return {
    compressInto(data: Uint8Array, out: Uint8Array): number {
      const r = compress(data);
      const n = r.length <= out.length ? r.length : 0;
      if (n) out.set(r);
      releaseResult(r); // copied: freed at once; this detaches r, whose length was read before
      return n;
    },
    uncompressInto(data: Uint8Array, out: Uint8Array): void {
      readLz4Size(data, out);
      const r = uncompress(data);
      if (r.length !== out.length) throw new Error(`${r.length} bytes, expected ${out.length}`);
      out.set(r);
      releaseResult(r);
    },
  };
}

/**
 * Whether lz4-napi may load: FFI granted outright, or the variables its loader reads granted
 * (the launcher's fast mode grants them with FFI scoped to the npm packages). Asked, not tried:
 * a refused access would prompt on a terminal.
 */
function lz4NapiAllowed(): boolean {
  const granted = (d: Deno.PermissionDescriptor) =>
    Deno.permissions.querySync(d).state === "granted";
  if (granted({ name: "ffi" })) return true;
  return granted({ name: "env", variable: "NAPI_RS_FORCE_WASI" }) &&
    granted({ name: "env", variable: "NAPI_RS_NATIVE_LIBRARY_PATH" });
}
