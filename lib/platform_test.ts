import { deepStrictEqual, equal, ok, throws } from "node:assert/strict";
import { createHash } from "node:crypto";
import zlib from "node:zlib";
import * as lz4napi from "lz4-napi";
import { fuzzCases, FuzzClock, mutate, rng } from "./_fuzz.ts";
import { decompress } from "./compress.ts";
import { IntegrityError } from "./errors.ts";
import { crc32Portable, lz4DecompressBlock, platform, Sha256Portable } from "./platform.ts";

/** Decodes `u32le size || block` with the lz4 codec in use. */
function unlz4(framed: Uint8Array): Uint8Array {
  const out = new Uint8Array(new DataView(framed.buffer, framed.byteOffset).getUint32(0, true));
  platform().lz4.uncompressInto(framed, out);
  return out;
}

function randomish(n: number, seed: number, text: boolean): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed | 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = text ? 97 + ((x >>> 0) % 7) : x & 0xff;
  }
  return out;
}

const SIZES = [0, 1, 3, 4, 55, 56, 63, 64, 65, 119, 120, 128, 1000, 4096, 100_003];

Deno.test("the portable CRC-32 equals zlib's", () => {
  for (const n of SIZES) {
    const data = randomish(n, n + 1, false);
    equal(crc32Portable(data), zlib.crc32(data) >>> 0, `${n} bytes`);
    equal(crc32Portable(data.subarray(1)), zlib.crc32(data.subarray(1)) >>> 0);
  }
});

Deno.test("the portable SHA-256 equals node:crypto's, fed in any pieces", () => {
  for (const n of SIZES) {
    const data = randomish(n, n + 7, false);
    const want = new Uint8Array(createHash("sha256").update(data).digest());
    const one = new Sha256Portable();
    one.update(data);
    deepStrictEqual(one.digest(), want, `${n} bytes in one piece`);
    const pieces = new Sha256Portable();
    for (let at = 0, step = 1; at < n; at += step, step = step * 3 % 97 + 1) {
      pieces.update(data.subarray(at, Math.min(n, at + step)));
    }
    deepStrictEqual(pieces.digest(), want, `${n} bytes in pieces`);
  }
});

Deno.test("the portable lz4 decoder reads lz4-napi's blocks", () => {
  for (const n of SIZES) {
    for (const text of [true, false]) {
      const data = randomish(n, n + 3, text);
      const framed = lz4napi.compressSync(data as never) as Uint8Array;
      deepStrictEqual(unlz4(framed), data, `${n} bytes, text ${text}`);
    }
  }
  // overlapping matches (a run), the longest literal and match lengths
  const run = new Uint8Array(70_000).fill(120);
  deepStrictEqual(unlz4(lz4napi.compressSync(run as never)), run);
});

Deno.test("the portable lz4 decoder rejects malformed blocks", () => {
  const framed = lz4napi.compressSync(randomish(5000, 9, true) as never) as Uint8Array;
  const block = framed.subarray(4);
  throws(() => lz4DecompressBlock(block, 4999), /malformed lz4 block/);
  throws(() => lz4DecompressBlock(block, 5001), /malformed lz4 block/);
  throws(() => lz4DecompressBlock(block.subarray(0, block.length - 3), 5000), /malformed lz4/);
  throws(() => lz4DecompressBlock(new Uint8Array([0x00, 0x05, 0x00]), 16), /offset/);
  throws(() => lz4DecompressBlock(new Uint8Array([0xf0]), 16), /truncated literal length/);
});

Deno.test("without lib/platform_deno.ts there is no lz4 compression and no zstd", () => {
  // this test file does not import lib/platform_deno.ts: the portable platform is in use
  throws(
    () => platform().lz4.compressInto(new Uint8Array(10), new Uint8Array(20)),
    /not available/,
  );
  equal(platform().zstd, null);
  equal(platform().fastCrypto(), null);
});

Deno.test("decompress with the portable lz4 decoder throws only IntegrityError on random and mutated blobs (fuzz)", () => {
  const next = rng(41);
  const data = randomish(3000, 5, true);
  const valid = new Uint8Array([1, ...(lz4napi.compressSync(data as never) as Uint8Array)]);
  deepStrictEqual(decompress(valid, data.length, "Chunk fuzz"), data);
  const cases = fuzzCases();
  const clock = new FuzzClock({ meanCaseMs: 7.5 });
  for (let i = 0; i < cases; i++) {
    clock.lap(i);
    const input = mutate(valid, next, { kind: i, specials: [0x00, 0xff, 0x0f, 0xf0, 0x01] });
    input[0] = 1; // keep it an lz4 blob
    const max = i % 5 === 0 ? 1 << 20 : data.length;
    let out: Uint8Array;
    try {
      out = decompress(input, max, "Chunk fuzz");
    } catch (err) {
      ok(err instanceof IntegrityError, `input ${i}: ${err}`);
      ok(err.message.startsWith("Chunk fuzz is corrupt: "), err.message);
      continue;
    }
    ok(out.length <= max, `input ${i}: ${out.length} bytes > ${max}`);
  }
  clock.done();
});
