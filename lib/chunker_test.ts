/**
 * Tests of the FastCDC chunker, including golden vectors that pin chunk boundaries (part of the
 * on-disk format).
 *
 * Golden vectors live in tests/testdata/chunker_golden.json. They must never change once
 * committed; to create them the first time (or, only with a format version bump, regenerate),
 * run `UPDATE_GOLDEN=1 deno test -A lib/chunker_test.ts`.
 *
 * Golden input generator (byte-exact): xorshift32 with state `s = 0x9E3779B9`; for each output
 * byte, `s ^= s << 13; s ^= s >>> 17; s ^= s << 5` (all modulo 2^32), then the byte is `s >>> 24`.
 * The input is the first 24 MiB (25165824 bytes) of that stream. The secret is the 32 bytes
 * 0x00, 0x01, ..., 0x1F.
 *
 * @module
 */

import { deepStrictEqual, equal, notDeepStrictEqual, ok, throws } from "node:assert/strict";
import {
  Chunker,
  chunkLengths,
  DEFAULT_CHUNKER_PARAMS,
  deriveGearTable,
  validateChunkerParams,
} from "./chunker.ts";
import type { ChunkerParams } from "./chunker.ts";
import { UsageError } from "./errors.ts";

const KiB = 1024;
const MiB = 1024 * 1024;
const GOLDEN_URL = new URL("../tests/testdata/chunker_golden.json", import.meta.url);
const GOLDEN_SEED = 0x9e3779b9;
const GOLDEN_INPUT_SIZE = 24 * MiB;
const SMALL_PARAMS: ChunkerParams = { minSize: 16 * KiB, avgSize: 64 * KiB, maxSize: 256 * KiB };
const TINY_PARAMS: ChunkerParams = { minSize: 1 * KiB, avgSize: 4 * KiB, maxSize: 16 * KiB };

/** The documented golden generator: xorshift32, one step per byte, top byte of the state. */
function xorshiftBytes(size: number, seed: number): Uint8Array {
  const out = new Uint8Array(size);
  let s = seed | 0;
  for (let i = 0; i < size; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = s >>> 24;
  }
  return out;
}

/** The golden secret: bytes 0..31. */
function goldenSecret(): Uint8Array {
  return Uint8Array.from({ length: 32 }, (_, i) => i);
}

async function chunkerFor(params: ChunkerParams, secret = goldenSecret()): Promise<Chunker> {
  return new Chunker(params, await deriveGearTable(secret));
}

/** Absolute end offsets of the chunks. */
function cutOffsets(lengths: number[]): number[] {
  let pos = 0;
  return lengths.map((len) => (pos += len));
}

function sum(values: number[]): number {
  return values.reduce((a, b) => a + b, 0);
}

/**
 * Feeds `data` to findCut in blocks of random sizes, growing the buffer as a reader would; with
 * `resume`, telling it how much it searched already (as the archiver does).
 */
function streamLengths(
  chunker: Chunker,
  data: Uint8Array,
  nextBlockSize: () => number,
  resume = false,
): number[] {
  const lengths: number[] = [];
  let buf = new Uint8Array(0);
  let readPos = 0;
  let scanned = 0;
  while (true) {
    const eof = readPos >= data.length;
    while (buf.length > 0) {
      const cut = chunker.findCut(buf, eof, resume ? scanned : 0);
      if (cut === 0) {
        ok(!eof, "findCut asked for more data at eof");
        scanned = buf.length;
        break;
      }
      ok(cut <= buf.length);
      lengths.push(cut);
      buf = buf.subarray(cut);
      scanned = 0;
    }
    if (eof) return lengths;
    const block = data.subarray(readPos, Math.min(data.length, readPos + nextBlockSize()));
    readPos += block.length;
    const grown = new Uint8Array(buf.length + block.length);
    grown.set(buf);
    grown.set(block, buf.length);
    buf = grown;
  }
}

Deno.test("chunks of random data lie within [minSize, maxSize] except the last", async () => {
  for (const params of [SMALL_PARAMS, TINY_PARAMS, DEFAULT_CHUNKER_PARAMS]) {
    const data = xorshiftBytes(16 * MiB + 12345, 0x1234567);
    const lengths = chunkLengths(await chunkerFor(params), data);
    equal(sum(lengths), data.length);
    ok(lengths.length > 1);
    for (const len of lengths.slice(0, -1)) {
      ok(len > params.minSize && len <= params.maxSize, `chunk length ${len} out of range`);
    }
    const last = lengths[lengths.length - 1];
    ok(last > 0 && last <= params.maxSize);
  }
});

Deno.test("chunkLengths of empty and short inputs", async () => {
  const chunker = await chunkerFor(SMALL_PARAMS);
  deepStrictEqual(chunkLengths(chunker, new Uint8Array(0)), []);
  deepStrictEqual(chunkLengths(chunker, new Uint8Array(100)), [100]);
  deepStrictEqual(chunkLengths(chunker, xorshiftBytes(SMALL_PARAMS.minSize, 7)), [
    SMALL_PARAMS.minSize,
  ]);
  equal(chunker.findCut(new Uint8Array(0), true), 0);
  equal(chunker.findCut(new Uint8Array(100), false), 0);
});

Deno.test("findCut never asks for more data once maxSize bytes are available", async () => {
  const chunker = await chunkerFor(TINY_PARAMS);
  const zeros = new Uint8Array(TINY_PARAMS.maxSize + 10);
  const data = xorshiftBytes(TINY_PARAMS.maxSize, 99);
  for (const buf of [zeros, zeros.subarray(0, TINY_PARAMS.maxSize), data]) {
    const cut = chunker.findCut(buf, false);
    ok(cut > TINY_PARAMS.minSize && cut <= TINY_PARAMS.maxSize);
    equal(chunker.findCut(buf, true), cut);
  }
});

Deno.test("streaming in arbitrary block sizes gives the same cuts as the whole buffer, searching again or resuming", async () => {
  let rng = 0xdeadbeef;
  const nextRandom = (bound: number): number => {
    rng ^= rng << 13;
    rng ^= rng >>> 17;
    rng ^= rng << 5;
    return (rng >>> 0) % bound;
  };
  const cases: [ChunkerParams, number, () => number][] = [
    [TINY_PARAMS, 3 * MiB + 17, () => 1 + nextRandom(40 * KiB)],
    [TINY_PARAMS, 256 * KiB + 3, () => 1 + nextRandom(64)],
    [SMALL_PARAMS, 8 * MiB + 1, () => 1 + nextRandom(600 * KiB)],
    [DEFAULT_CHUNKER_PARAMS, 24 * MiB + 5, () => 64 * KiB + nextRandom(3 * MiB)],
  ];
  for (const [params, size, nextBlockSize] of cases) {
    const chunker = await chunkerFor(params);
    const data = xorshiftBytes(size, size);
    const whole = chunkLengths(chunker, data);
    deepStrictEqual(streamLengths(chunker, data, nextBlockSize), whole);
    deepStrictEqual(streamLengths(chunker, data, nextBlockSize, true), whole);
  }
});

Deno.test("a 1-byte insertion in 32 MiB changes at most 2 chunks", async () => {
  const params = DEFAULT_CHUNKER_PARAMS;
  const chunker = await chunkerFor(params);
  const original = xorshiftBytes(32 * MiB, 0xc0ffee);
  const editPos = 16 * MiB + 777;
  const edited = new Uint8Array(original.length + 1);
  edited.set(original.subarray(0, editPos));
  edited[editPos] = 0x5a;
  edited.set(original.subarray(editPos), editPos + 1);

  const before = chunkLengths(chunker, original);
  const after = chunkLengths(chunker, edited);
  ok(before.length >= 8, `only ${before.length} chunks`);

  // Chunks as [start, end) in original coordinates; a chunk after the edit maps back by -1.
  const spans = (lengths: number[], shift: number): string[] => {
    let pos = 0;
    return lengths.map((len) => {
      const start = pos;
      pos += len;
      const unshift = start > editPos ? shift : 0;
      return `${start - unshift}:${pos - unshift}`;
    });
  };
  const old = new Set(spans(before, 0));
  const changed = spans(after, 1).filter((span) => !old.has(span));
  ok(changed.length >= 1 && changed.length <= 2, `${changed.length} chunks changed`);

  const beforeCuts = cutOffsets(before).filter((c) => c > editPos + params.maxSize);
  const afterCuts = cutOffsets(after).filter((c) => c > editPos + 1 + params.maxSize);
  ok(beforeCuts.length > 0);
  deepStrictEqual(afterCuts, beforeCuts.map((c) => c + 1));
});

Deno.test("different secrets give different cuts; the same secret the same table and cuts", async () => {
  const data = xorshiftBytes(8 * MiB, 42);
  const secretA = goldenSecret();
  const secretB = Uint8Array.from({ length: 32 }, (_, i) => i + 1);
  const gearA = await deriveGearTable(secretA);
  const gearA2 = await deriveGearTable(new Uint8Array(secretA));
  const gearB = await deriveGearTable(secretB);
  deepStrictEqual(gearA, gearA2);
  notDeepStrictEqual(gearA, gearB);
  for (const params of [SMALL_PARAMS, DEFAULT_CHUNKER_PARAMS]) {
    const cutsA = chunkLengths(new Chunker(params, gearA), data);
    const cutsA2 = chunkLengths(new Chunker(params, gearA2), data);
    const cutsB = chunkLengths(new Chunker(params, gearB), data);
    deepStrictEqual(cutsA, cutsA2);
    notDeepStrictEqual(cutsA, cutsB);
  }
  // Nearly all cut positions should differ, not just one.
  const offA = new Set(cutOffsets(chunkLengths(new Chunker(SMALL_PARAMS, gearA), data)));
  const offB = cutOffsets(chunkLengths(new Chunker(SMALL_PARAMS, gearB), data));
  const shared = offB.filter((c) => offA.has(c)).length;
  ok(shared <= 2, `${shared} of ${offB.length} cut points shared`);
});

Deno.test("deriveGearTable rejects a secret shorter than 16 bytes", async () => {
  let caught: unknown;
  try {
    await deriveGearTable(new Uint8Array(15));
  } catch (err) {
    caught = err;
  }
  ok(caught instanceof UsageError);
  ok(caught.message.includes("secret"));
  equal((await deriveGearTable(new Uint8Array(16))).length, 256);
});

Deno.test("Chunker rejects a gear table that is not 256 entries", () => {
  throws(() => new Chunker(DEFAULT_CHUNKER_PARAMS, new Uint32Array(255)), UsageError);
});

Deno.test("20 MiB of zeros is cut at maxSize, deterministically", async () => {
  const chunker = await chunkerFor(DEFAULT_CHUNKER_PARAMS);
  const zeros = new Uint8Array(20 * MiB);
  const lengths = chunkLengths(chunker, zeros);
  deepStrictEqual(lengths, [8 * MiB, 8 * MiB, 4 * MiB]);
  deepStrictEqual(chunkLengths(chunker, zeros), lengths);
});

Deno.test("mean chunk size of 64 MiB random data with default params is 1.5..3 MiB", async () => {
  const chunker = await chunkerFor(DEFAULT_CHUNKER_PARAMS);
  const data = xorshiftBytes(64 * MiB, 0x51ed270b);
  const lengths = chunkLengths(chunker, data);
  const mean = data.length / lengths.length;
  ok(mean >= 1.5 * MiB && mean <= 3 * MiB, `mean chunk size ${mean}`);
});

Deno.test("validateChunkerParams rejects each bad field by name", () => {
  validateChunkerParams(DEFAULT_CHUNKER_PARAMS);
  validateChunkerParams({ minSize: 64, avgSize: 64, maxSize: 64 });
  validateChunkerParams({ minSize: 64, avgSize: 256 * MiB, maxSize: 256 * MiB });
  const bad: [Partial<ChunkerParams>, string][] = [
    [{ minSize: 63 }, "minSize"],
    [{ minSize: 0 }, "minSize"],
    [{ minSize: 1.5 }, "minSize"],
    [{ minSize: NaN }, "minSize"],
    [{ minSize: 3 * MiB }, "minSize"],
    [{ avgSize: 3 * MiB }, "avgSize"],
    [{ avgSize: -2 }, "avgSize"],
    [{ avgSize: 16 * MiB }, "maxSize"],
    [{ maxSize: 1 * MiB }, "maxSize"],
    [{ maxSize: 256 * MiB + 1 }, "maxSize"],
    [{ maxSize: Infinity }, "maxSize"],
    [{ avgSize: 512 * MiB, maxSize: 512 * MiB }, "maxSize"],
  ];
  for (const [override, field] of bad) {
    const params = { ...DEFAULT_CHUNKER_PARAMS, ...override };
    throws(
      () => validateChunkerParams(params),
      (err: unknown) => err instanceof UsageError && err.message.includes(field),
      `expected a UsageError naming ${field} for ${JSON.stringify(override)}`,
    );
    throws(() => new Chunker(params, new Uint32Array(256)), UsageError);
  }
});

interface GoldenCase {
  name: string;
  params: ChunkerParams;
  lengths: number[];
}

interface Golden {
  description: string;
  generator: string;
  seed: string;
  inputSize: number;
  secretHex: string;
  gearFirst8: number[];
  cases: GoldenCase[];
}

Deno.test("golden vectors: chunk boundaries of a fixed input never change", async () => {
  const secret = goldenSecret();
  const gear = await deriveGearTable(secret);
  const data = xorshiftBytes(GOLDEN_INPUT_SIZE, GOLDEN_SEED);
  const cases: GoldenCase[] = [
    { name: "min 16 KiB, avg 64 KiB, max 256 KiB", params: SMALL_PARAMS, lengths: [] },
    { name: "defaults", params: { ...DEFAULT_CHUNKER_PARAMS }, lengths: [] },
  ];
  for (const c of cases) c.lengths = chunkLengths(new Chunker(c.params, gear), data);
  const actual: Golden = {
    description: "FastCDC chunk lengths pinned by lib/chunker_test.ts; never edit by hand",
    generator: "xorshift32: s ^= s << 13; s ^= s >>> 17; s ^= s << 5; byte = s >>> 24",
    seed: "0x9E3779B9",
    inputSize: GOLDEN_INPUT_SIZE,
    secretHex: Array.from(secret, (b) => b.toString(16).padStart(2, "0")).join(""),
    gearFirst8: Array.from(gear.subarray(0, 8)),
    cases,
  };
  if (Deno.env.get("UPDATE_GOLDEN") === "1") {
    await Deno.writeTextFile(GOLDEN_URL, JSON.stringify(actual, null, 2) + "\n");
  }
  const expected: Golden = JSON.parse(await Deno.readTextFile(GOLDEN_URL));
  deepStrictEqual(actual.gearFirst8, expected.gearFirst8);
  equal(expected.cases.length, 2);
  for (const [i, c] of expected.cases.entries()) {
    deepStrictEqual(c.params, actual.cases[i].params);
    equal(sum(c.lengths), GOLDEN_INPUT_SIZE);
    deepStrictEqual(actual.cases[i].lengths, c.lengths, `golden case "${c.name}"`);
  }
  deepStrictEqual(actual, expected);
});
