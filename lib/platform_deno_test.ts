import { deepStrictEqual, equal, notEqual, ok } from "node:assert/strict";
import zlib from "node:zlib";
import "./platform_deno.ts";
import { loadCodecs } from "./compress.ts";
import { nativeCrypto } from "./native_crypto.ts";
import { nativeLz4 } from "./native_lz4.ts";
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
  equal(platform().lz4, nativeLz4(), "liblz4 is not used although the test runs with --allow-ffi");
  ok(nativeLz4(), "no liblz4");
});
