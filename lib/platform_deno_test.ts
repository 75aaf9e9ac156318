import { deepStrictEqual, equal, notEqual, ok } from "node:assert/strict";
import zlib from "node:zlib";
import "./platform_deno.ts";
import { loadCodecs } from "./compress.ts";
import { nativeCrypto } from "./native_crypto.ts";
import { crc32Portable, platform } from "./platform.ts";

Deno.test("importing platform_deno.ts installs the native codecs and hashes", async () => {
  const p = platform();
  notEqual(p.crc32, crc32Portable);
  const data = new TextEncoder().encode("the quick brown fox ".repeat(100));
  equal(p.crc32(data), zlib.crc32(data) >>> 0);
  ok(p.zstd, "no zstd codec");
  deepStrictEqual(new Uint8Array(p.zstd.decompress(p.zstd.compress(data, 3), data.length)), data);
  equal(p.fastCrypto(), nativeCrypto());
  ok(p.fastCrypto(), "OpenSSL is not used although the test runs with --allow-ffi on Linux");
  await loadCodecs();
  const lz4 = platform().lz4;
  equal(lz4.compressSync, (await import("lz4-napi")).compressSync);
  deepStrictEqual(new Uint8Array(lz4.uncompressSync(lz4.compressSync(data))), data);
});
