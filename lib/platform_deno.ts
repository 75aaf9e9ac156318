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
  // lz4-napi takes and returns Buffers; any Uint8Array works at run time
  lz4 ??= (await import("lz4-napi")) as unknown as Lz4Codec;
  return { lz4 };
});
