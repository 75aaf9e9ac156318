/**
 * What the fuzz tests of lib/ share (private to the tests): how many cases to run, a seeded
 * PRNG, byte mutations, and the time and memory bounds every fuzz loop checks.
 *
 * The case count comes from the environment variable `VGER_FUZZ_CASES`: unset, a standard fuzz
 * test runs 2,000 cases (CI); `deno task fuzz` sets it high for a long run. A test whose cases
 * cost more (a whole repository check per case) asks for fewer by default and scales the same
 * way, so one variable lengthens every fuzz test in proportion.
 *
 * Every input derives from a fixed seed, so a failure names its case number and replays.
 *
 * @module
 */

import { ok } from "node:assert/strict";
import { UsageError } from "./errors.ts";

/** Cases of a standard fuzz test when `VGER_FUZZ_CASES` is unset. */
export const DEFAULT_FUZZ_CASES = 2000;

/**
 * The number of cases for a fuzz test that runs `defaultCases` in CI: `defaultCases`, scaled by
 * `VGER_FUZZ_CASES / 2000` when the variable is set.
 */
export function fuzzCases(defaultCases: number = DEFAULT_FUZZ_CASES): number {
  let raw: string | undefined;
  try {
    raw = Deno.env.get("VGER_FUZZ_CASES");
  } catch {
    return defaultCases; // no --allow-env: the CI default
  }
  if (raw === undefined || raw === "") return defaultCases;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 1) {
    throw new UsageError(`Invalid VGER_FUZZ_CASES "${raw}": use a positive integer`);
  }
  return Math.max(1, Math.round(defaultCases * n / DEFAULT_FUZZ_CASES));
}

/** Seeded xorshift32 (32-bit outputs), so a failing case can be replayed. */
export function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>>= 0);
  };
}

/** `n` bytes from `next`: the top byte of each output. */
export function randomBytes(next: () => number, n: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = next() >>> 24;
  return out;
}

/** The parts joined into one new array. */
export function concat(...parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Bytes at the edges of the integer ranges: lengths and counts near 0 and near the maximum. */
export const EDGE_BYTES: readonly number[] = [0x00, 0xff, 0x7f, 0x80, 0x01];

/** msgpack markers: nil, false, true, bin8, str32, array32, map32, int64, fixmap, fixarray. */
export const MSGPACK_MARKERS: readonly number[] = [
  0xc0,
  0xc2,
  0xc3,
  0xc4,
  0xdb,
  0xdd,
  0xdf,
  0xd3,
  0x81,
  0x91,
];

/**
 * Tiny msgpack inputs that claim huge arrays, maps, strings and byte strings, alone, nested and
 * as a map value. A decoder must refuse each without allocating what it claims (V8 allocates a
 * `new Array(n)` up front for n below 32 Mi: 8 bytes per claimed element).
 */
export function hugeMsgpackClaims(): Uint8Array<ArrayBuffer>[] {
  const head = (marker: number, n: number) => {
    const b = new Uint8Array(5);
    b[0] = marker;
    new DataView(b.buffer).setUint32(1, n);
    return b;
  };
  const out: Uint8Array<ArrayBuffer>[] = [];
  // array32, map32, str32, bin32
  for (const marker of [0xdd, 0xdf, 0xdb, 0xc6]) {
    for (const n of [0xffffffff, 30_000_000, 1_000_000]) out.push(head(marker, n));
  }
  out.push(concat(...Array.from({ length: 4 }, () => head(0xdd, 10_000_000))));
  // {v: 1, archives: [10M...]}, the shape the manifest, archive and key file decoders expect
  const key = (k: string) => concat(Uint8Array.of(0xa0 | k.length), new TextEncoder().encode(k));
  out.push(
    concat(
      Uint8Array.of(0x82),
      key("v"),
      Uint8Array.of(1),
      key("archives"),
      head(0xdd, 10_000_000),
    ),
  );
  return out;
}

/**
 * msgpack of about `size` bytes whose decoding costs memory out of proportion to its size (a
 * JS object or array, and the decoder's state, per byte): arrays and maps nested `size` levels
 * deep, one array or map of `size` empty ones, and the manifest's shape with `size` empty
 * entries. Every claim fits the bytes left, so only limits on depth, lengths and values stop
 * them.
 */
export function hostileMsgpackShapes(size: number): Uint8Array<ArrayBuffer>[] {
  const n = Math.max(1, size);
  const head = (marker: number, count: number) => {
    const b = new Uint8Array(5);
    b[0] = marker;
    new DataView(b.buffer).setUint32(1, count);
    return b;
  };
  const repeat = (unit: readonly number[], times: number) => {
    const out = new Uint8Array(unit.length * times);
    for (let i = 0; i < out.length; i++) out[i] = unit[i % unit.length];
    return out;
  };
  const key = (k: string) => concat(Uint8Array.of(0xa0 | k.length), new TextEncoder().encode(k));
  return [
    concat(repeat([0x91], n), Uint8Array.of(0xc0)), // [[[[...nil]]]]
    concat(repeat([0x81, 0xa0], n), Uint8Array.of(0xc0)), // {"": {"": ...nil}}
    concat(repeat([0xdd, 0, 0, 0, 1], n), Uint8Array.of(0xc0)), // the same in array32 heads
    concat(head(0xdd, n), repeat([0x90], n)), // [[], [], [], ...]
    concat(head(0xdf, n), repeat([0x00, 0x80], n)), // {0: {}, 0: {}, ...}
    concat(
      Uint8Array.of(0x82),
      key("v"),
      Uint8Array.of(1),
      key("archives"),
      head(0xdd, n),
      repeat([0x80], n),
    ),
    repeat([0x80], n), // a stream of empty maps
  ];
}

/** One of {@linkcode hostileMsgpackShapes}, of a size from 1 byte to 64 KiB, drawn from `next`. */
export function hostileMsgpack(next: () => number): Uint8Array<ArrayBuffer> {
  const shapes = hostileMsgpackShapes(1 + next() % (64 << 10));
  return shapes[next() % shapes.length];
}

/** Options of {@linkcode mutate}. */
export interface MutateOptions {
  /** Which mutation (taken modulo 7; 0 is a fresh random input). Default: drawn from `next`. */
  kind?: number;
  /** Bytes that mean something to the parser, written over a random position by kind 6. */
  specials?: readonly number[];
}

/**
 * A random input (kind 0) or a mutation of `valid`: bit flips (1), truncation (2), an inserted
 * random run (3), a deleted run (4), the input spliced into itself (5), or a special byte written
 * somewhere (6).
 */
export function mutate(
  valid: Uint8Array,
  next: () => number,
  options: MutateOptions = {},
): Uint8Array<ArrayBuffer> {
  const kind = options.kind ?? next();
  switch (kind % 7) {
    case 0:
      return randomBytes(next, next() % (2 * valid.length + 1));
    case 1: {
      const out = valid.slice();
      const flips = 1 + (next() % 4);
      for (let f = 0; f < flips; f++) out[next() % out.length] ^= 1 << (next() % 8);
      return out;
    }
    case 2:
      return valid.slice(0, next() % valid.length);
    case 3: {
      const at = next() % (valid.length + 1);
      return concat(
        valid.subarray(0, at),
        randomBytes(next, 1 + (next() % 40)),
        valid.subarray(at),
      );
    }
    case 4: {
      const at = next() % valid.length;
      return concat(valid.subarray(0, at), valid.subarray(at + 1 + (next() % 40)));
    }
    case 5: {
      const at = next() % (valid.length + 1);
      return concat(valid.subarray(0, at), valid, valid.subarray(at));
    }
    default: {
      const specials = options.specials ?? EDGE_BYTES;
      const out = valid.slice();
      out[next() % out.length] = specials[next() % specials.length];
      return out;
    }
  }
}

/** Options of {@linkcode FuzzClock}. */
export interface FuzzClockOptions {
  /** No single case may take longer (a hang, or an input that makes the parser crawl). */
  maxCaseMs?: number;
  /** The cases together may take at most this long each on average. */
  meanCaseMs?: number;
}

/**
 * Time bounds of a fuzz loop. Call `lap(i)` at the top of case `i` and `done()` after the loop:
 * each case must finish within `maxCaseMs` (default 500) and all within `meanCaseMs` (default
 * 10) per case on average, whatever the case count.
 */
export class FuzzClock {
  readonly #maxCaseMs: number;
  readonly #meanCaseMs: number;
  readonly #start = performance.now();
  #lapStart = this.#start;
  #case = -1;
  /** The slowest case so far, for the report. */
  slowestMs = 0;

  /** Starts the clock. */
  constructor(options: FuzzClockOptions = {}) {
    this.#maxCaseMs = options.maxCaseMs ?? 500;
    this.#meanCaseMs = options.meanCaseMs ?? 10;
  }

  /** Ends the previous case (failing when it took too long) and starts case `i`. */
  lap(i: number): void {
    this.#endCase();
    this.#case = i;
  }

  /** Ends the last case and checks the mean time per case. */
  done(): void {
    this.#endCase();
    const cases = this.#case + 1;
    const total = performance.now() - this.#start;
    ok(
      total <= cases * this.#meanCaseMs + 1000,
      `${cases} cases took ${Math.round(total)} ms, over ${this.#meanCaseMs} ms each`,
    );
  }

  #endCase(): void {
    const now = performance.now();
    const took = now - this.#lapStart;
    this.#lapStart = now;
    if (this.#case < 0) return;
    this.slowestMs = Math.max(this.slowestMs, took);
    ok(took <= this.#maxCaseMs, `input ${this.#case} took ${Math.round(took)} ms`);
  }
}

/** Time and memory that a run of hostile inputs took. */
export interface Footprint {
  /** Wall-clock time of all the calls. */
  ms: number;
  /** Largest growth of this isolate's heap plus external (ArrayBuffer) memory after any call. */
  grownBytes: number;
}

/**
 * Calls `fn` `times` times and measures the time and the largest memory growth, to show that
 * a tiny input claiming a huge length is refused before anything that large is allocated.
 * The isolate's own counters are used, not the process RSS, which tests running in parallel
 * share.
 */
export async function footprint(
  fn: () => unknown,
  times: number = 100,
): Promise<Footprint> {
  const used = () => {
    const m = Deno.memoryUsage();
    return m.heapUsed + m.external;
  };
  const base = used();
  let grown = 0;
  const start = performance.now();
  for (let i = 0; i < times; i++) {
    await fn();
    grown = Math.max(grown, used() - base);
  }
  return { ms: performance.now() - start, grownBytes: grown };
}

/** n bytes from xorshift32 seeded with `seed` (the same seed gives the same bytes). */
export function seededBytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x >>> 24;
  }
  return out;
}
