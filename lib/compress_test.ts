import { deepStrictEqual, equal, ok, throws } from "node:assert/strict";
import zlib from "node:zlib";
import "./platform_deno.ts"; // the native codecs, as the CLI has them
import {
  compress,
  type CompressionAlgorithm,
  decompress,
  DEFAULT_COMPRESSION,
  loadCodecs,
  validateCompression,
} from "./compress.ts";
import { IntegrityError, UsageError } from "./errors.ts";
import { concat, fuzzCases, FuzzClock, mutate, randomBytes, rng } from "./_fuzz.ts";

await loadCodecs();

const ALGORITHMS: CompressionAlgorithm[] = ["lz4", "zstd", "none"];
const CODEC: Record<CompressionAlgorithm, number> = { none: 0, lz4: 1, zstd: 2 };

/** A plain Uint8Array view (decompress may return a Node Buffer). */
function plain(b: Uint8Array): Uint8Array {
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

/** Compressible text: a few words repeated in a pseudo-random order. */
function text(next: () => number, n: number): Uint8Array {
  const words = ["alpha ", "beta ", "gamma ", "delta\n", "epsilon ", "zeta, "];
  let s = "";
  while (s.length < n) s += words[next() % words.length];
  return new TextEncoder().encode(s.slice(0, n));
}

/** Bytes a decompressor reads as codecs, sizes and lengths. */
const CODEC_SPECIALS = [0x00, 0xff, 0x7f, 0x80, 0x01, 0x02, 0x03];

function assertCorrupt(what: string, reason: RegExp): (err: unknown) => boolean {
  return (err: unknown) => {
    ok(err instanceof IntegrityError, `expected IntegrityError, got ${err}`);
    ok(err.message.startsWith(`${what} is corrupt: `), err.message);
    ok(reason.test(err.message), err.message);
    return true;
  };
}

for (const algorithm of ALGORITHMS) {
  Deno.test(`${algorithm} round trips empty, small, compressible and random data`, () => {
    const next = rng(1);
    const inputs = [
      new Uint8Array(0),
      Uint8Array.of(7),
      text(next, 100),
      text(next, 300_000),
      new Uint8Array(1 << 20),
      randomBytes(next, 70_000),
    ];
    for (const data of inputs) {
      const blob = compress(data, { algorithm, zstdLevel: 3 });
      deepStrictEqual(
        plain(decompress(blob, data.length, "Chunk c")),
        data,
        `${data.length} bytes`,
      );
      ok(blob.length <= data.length + 1, "never more than one byte of overhead");
    }
  });
}

Deno.test("compressible data gets the codec byte of its algorithm and shrinks", () => {
  const data = text(rng(2), 200_000);
  for (const algorithm of ["lz4", "zstd"] as const) {
    const blob = compress(data, { algorithm });
    equal(blob[0], CODEC[algorithm]);
    ok(blob.length < data.length / 2, `${algorithm}: ${blob.length}`);
  }
  const stored = compress(data, { algorithm: "none" });
  equal(stored[0], 0);
  deepStrictEqual(stored.subarray(1), data);
});

Deno.test("lz4 payload is the uncompressed size (u32 LE) then an LZ4 block; zstd is a frame", () => {
  const data = text(rng(3), 50_000);
  const lz4 = compress(data, { algorithm: "lz4" });
  equal(new DataView(lz4.buffer, lz4.byteOffset + 1, 4).getUint32(0, true), data.length);
  const zstd = compress(data, { algorithm: "zstd", zstdLevel: 5 });
  deepStrictEqual(new Uint8Array(zlib.zstdDecompressSync(zstd.subarray(1))), data);
  // zstd frame magic 0xFD2FB528, little-endian.
  deepStrictEqual(zstd.subarray(1, 5), Uint8Array.of(0x28, 0xb5, 0x2f, 0xfd));
});

Deno.test("incompressible data is stored with codec 0 whatever the algorithm", () => {
  const data = randomBytes(rng(4), 100_000);
  for (const algorithm of ALGORITHMS) {
    const blob = compress(data, { algorithm, zstdLevel: 19 });
    equal(blob[0], 0, algorithm);
    deepStrictEqual(blob.subarray(1), data);
  }
});

Deno.test("decompress refuses output larger than maxLength for every codec", () => {
  const data = text(rng(5), 100_000);
  for (const algorithm of ALGORITHMS) {
    const blob = compress(data, { algorithm });
    deepStrictEqual(plain(decompress(blob, data.length, "Chunk b")), data);
    throws(
      () => decompress(blob, data.length - 1, "Chunk b"),
      assertCorrupt("Chunk b", /./),
      algorithm,
    );
    throws(() => decompress(blob, 0, "Chunk b"), assertCorrupt("Chunk b", /./), algorithm);
  }
  // A forged lz4 size prefix is refused before anything is allocated.
  const forged = Uint8Array.of(1, 0xff, 0xff, 0xff, 0xff, 0x00);
  throws(
    () => decompress(forged, 1 << 20, "Chunk f"),
    assertCorrupt("Chunk f", /lz4 size 4294967295 exceeds/),
  );
  // A zstd bomb: 64 MiB of zeros in a tiny frame, read with a 1 MiB limit.
  const bomb = concat(Uint8Array.of(2), zlib.zstdCompressSync(new Uint8Array(64 << 20)));
  ok(bomb.length < 10_000);
  throws(() => decompress(bomb, 1 << 20, "Chunk z"), assertCorrupt("Chunk z", /bad zstd data/));
});

Deno.test("garbage, empty blobs, short lz4 blocks and unknown codecs give IntegrityError", () => {
  const next = rng(6);
  throws(
    () => decompress(new Uint8Array(0), 10, "Chunk e"),
    assertCorrupt("Chunk e", /empty compressed blob/),
  );
  throws(
    () => decompress(Uint8Array.of(1, 5, 0), 10, "Chunk s"),
    assertCorrupt("Chunk s", /short lz4 block/),
  );
  throws(
    () => decompress(Uint8Array.of(3, 1, 2), 10, "Chunk u"),
    assertCorrupt("Chunk u", /unknown codec 3/),
  );
  throws(
    () => decompress(Uint8Array.of(255), 10, "Chunk u"),
    assertCorrupt("Chunk u", /unknown codec 255/),
  );
  const junk = randomBytes(next, 500);
  throws(
    () => decompress(concat(Uint8Array.of(1, 0xe8, 0x03, 0, 0), junk), 1000, "Chunk g"),
    assertCorrupt("Chunk g", /bad lz4 data/),
  );
  throws(
    () => decompress(concat(Uint8Array.of(2), junk), 1000, "Chunk g"),
    assertCorrupt("Chunk g", /bad zstd data/),
  );
});

Deno.test("an lz4 block that decodes to fewer bytes than its size prefix says is refused", () => {
  const data = text(rng(7), 10_000);
  const blob = compress(data, { algorithm: "lz4" });
  const lying = blob.slice();
  new DataView(lying.buffer, 1, 4).setUint32(0, data.length + 10, true);
  throws(() => decompress(lying, 1 << 20, "Chunk l"), assertCorrupt("Chunk l", /bad lz4 data/));
});

for (const algorithm of ALGORITHMS) {
  Deno.test(`decompress throws only IntegrityError on random and mutated ${algorithm} blobs (fuzz)`, () => {
    const next = rng(10 + CODEC[algorithm]);
    const data = text(next, 3000);
    const valid = compress(data, { algorithm });
    const cases = fuzzCases();
    const clock = new FuzzClock({ meanCaseMs: 7.5 });
    for (let i = 0; i < cases; i++) {
      clock.lap(i);
      const input = mutate(valid, next, { kind: i, specials: CODEC_SPECIALS });
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
}

Deno.test("validateCompression accepts the defaults and rejects unknown algorithms and levels", () => {
  validateCompression(DEFAULT_COMPRESSION);
  validateCompression({ algorithm: "zstd", zstdLevel: 22 });
  throws(() => validateCompression({ algorithm: "gzip" as CompressionAlgorithm }), UsageError);
  throws(() => validateCompression({ algorithm: "zstd", zstdLevel: 0 }), UsageError);
  throws(() => validateCompression({ algorithm: "zstd", zstdLevel: 23 }), UsageError);
  throws(() => validateCompression({ algorithm: "zstd", zstdLevel: 2.5 }), UsageError);
});
