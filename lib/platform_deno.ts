/**
 * Deno's native codecs and hashes for lib/platform.ts: CRC-32, SHA-256 and zstd from node:zlib
 * and node:crypto, lz4 from lz4-napi (loaded on demand by `loadCodecs`, so that a missing
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
import { installPlatform, type Lz4Codec, type Sha256Hasher } from "./platform.ts";

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
 * lz4-napi (native) when FFI is granted, else lz4_flex built to WASM (lz4-wasm-nodejs): the same
 * size-prepended block format, about 1.4x slower to compress (docs: feasibility), and needs only
 * read access to its .wasm file. Either reads what the other wrote.
 */
async function loadLz4(): Promise<Lz4Codec> {
  if (lz4NapiAllowed()) {
    try {
      // lz4-napi takes and returns Buffers; any Uint8Array works at run time
      return (await import("lz4-napi")) as unknown as Lz4Codec;
    } catch {
      // a scoped grant that does not cover it, or no prebuilt module for this platform
    }
  }
  const wasm = await import("lz4-wasm-nodejs");
  return { compressSync: wasm.compress, uncompressSync: wasm.decompress };
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
