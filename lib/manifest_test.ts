import { deepStrictEqual, equal, ok, throws } from "node:assert/strict";
import { decode, encode } from "@msgpack/msgpack";
import { IntegrityError } from "./errors.ts";
import { decodeManifest, encodeManifest, type Manifest, type ManifestEntry } from "./manifest.ts";

/** Seeded xorshift32, so a failing case can be replayed. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>>= 0);
  };
}

function randomBytes(next: () => number, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = next() >>> 24;
  return out;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** A random input (kind 0) or a mutation of `valid`: flips, truncation, insertions, deletions. */
function mutate(valid: Uint8Array, next: () => number, kind: number): Uint8Array {
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
      // msgpack markers: nil, false, true, bin8, str32, array32, map32, fixmap, fixarray.
      const out = valid.slice();
      out[next() % out.length] = [0xc0, 0xc2, 0xc3, 0xc4, 0xdb, 0xdd, 0xdf, 0x81, 0x91][next() % 9];
      return out;
    }
  }
}

function entry(next: () => number, name: string): ManifestEntry {
  return {
    name,
    id: randomBytes(next, 32),
    time: new Date(1_700_000_000_000 + (next() % 1_000_000) * 1000).toISOString(),
    hostname: "host-a",
    username: "root",
    stats: {
      files: next() % 1000,
      original: next(),
      compressed: next() % 100_000,
      deduplicated: 12,
    },
  };
}

function sampleManifest(): Manifest {
  const next = rng(1);
  return { archives: [entry(next, "one"), entry(next, "two"), entry(next, "três ✓")] };
}

function assertCorrupt(reason: RegExp): (err: unknown) => boolean {
  return (err: unknown) => {
    ok(err instanceof IntegrityError, `expected IntegrityError, got ${err}`);
    ok(err.message.startsWith("Manifest is corrupt: "), err.message);
    ok(reason.test(err.message), err.message);
    return true;
  };
}

Deno.test("encodeManifest then decodeManifest gives back every archive in order", () => {
  const m = sampleManifest();
  deepStrictEqual(decodeManifest(encodeManifest(m)), m);
  deepStrictEqual(decodeManifest(encodeManifest({ archives: [] })), { archives: [] });
});

Deno.test("the manifest plaintext is a msgpack map {v: 1, archives: [...]}", () => {
  const m = sampleManifest();
  const o = decode(encodeManifest(m)) as Record<string, unknown>;
  deepStrictEqual(Object.keys(o), ["v", "archives"]);
  equal(o.v, 1);
  const first = (o.archives as Record<string, unknown>[])[0];
  deepStrictEqual(Object.keys(first), ["name", "id", "time", "hostname", "username", "stats"]);
  ok(first.id instanceof Uint8Array && first.id.length === 32);
  deepStrictEqual(Object.keys(first.stats as object), [
    "files",
    "original",
    "compressed",
    "deduplicated",
  ]);
});

Deno.test("decodeManifest accepts 64-bit stats and missing stats fields", () => {
  const next = rng(2);
  const e = entry(next, "a");
  const big = encode({ v: 1, archives: [{ ...e, stats: { files: 3n, original: 2n ** 40n } }] }, {
    useBigInt64: true,
  });
  deepStrictEqual(decodeManifest(big).archives[0].stats, {
    files: 3,
    original: 2 ** 40,
    compressed: 0,
    deduplicated: 0,
  });
});

Deno.test("decodeManifest rejects wrong structure, malformed entries and duplicate names", () => {
  const next = rng(3);
  const e = entry(next, "x");
  const cases: [unknown, RegExp][] = [
    [null, /unexpected structure/],
    [[1, 2], /unexpected structure/],
    [{ v: 2, archives: [] }, /unexpected structure/],
    [{ v: 1 }, /unexpected structure/],
    [{ v: 1, archives: {} }, /unexpected structure/],
    [{ v: 1, archives: [null] }, /archive entry 0 is malformed/],
    [{ v: 1, archives: [e, { ...e, name: 5 }] }, /archive entry 1 is malformed/],
    [{ v: 1, archives: [{ ...e, id: new Uint8Array(31) }] }, /archive entry 0 is malformed/],
    [{ v: 1, archives: [{ ...e, time: 0 }] }, /archive entry 0 is malformed/],
    [{ v: 1, archives: [{ ...e, stats: null }] }, /archive entry 0 is malformed/],
    [{ v: 1, archives: [{ ...e, hostname: undefined }] }, /archive entry 0 is malformed/],
    [{ v: 1, archives: [e, { ...e, id: new Uint8Array(32) }] }, /archive name "x" appears twice/],
  ];
  for (const [value, reason] of cases) {
    throws(() => decodeManifest(encode(value)), assertCorrupt(reason));
  }
  throws(() => decodeManifest(Uint8Array.of(0xc1)), assertCorrupt(/not msgpack/));
  throws(() => decodeManifest(new Uint8Array(0)), assertCorrupt(/not msgpack/));
  throws(
    () => decodeManifest(concat(encodeManifest(sampleManifest()), Uint8Array.of(0))),
    assertCorrupt(/not msgpack/),
  );
});

Deno.test("decodeManifest returns numbers for stats whatever the stored values", () => {
  const e = entry(rng(4), "a");
  const value = {
    v: 1,
    archives: [{ ...e, stats: { files: "12", original: { a: 1 }, compressed: true } }],
  };
  const stats = decodeManifest(encode(value)).archives[0].stats;
  for (const [field, v] of Object.entries(stats)) {
    equal(typeof v, "number", `stats.${field} is ${JSON.stringify(v)}`);
  }
});

Deno.test("decodeManifest throws only IntegrityError on 2,000 random and mutated inputs", () => {
  const valid = encodeManifest(sampleManifest());
  const next = rng(5);
  const start = performance.now();
  let accepted = 0;
  for (let i = 0; i < 2_000; i++) {
    const input = mutate(valid, next, i);
    let m: Manifest;
    try {
      m = decodeManifest(input);
    } catch (err) {
      ok(err instanceof IntegrityError, `input ${i}: ${err}`);
      ok(err.message.startsWith("Manifest is corrupt: "), err.message);
      continue;
    }
    accepted++;
    const names = new Set(m.archives.map((a) => a.name));
    equal(names.size, m.archives.length);
    for (const a of m.archives) equal(a.id.length, 32);
  }
  ok(accepted > 0, "flips inside ids and strings keep a valid manifest");
  ok(performance.now() - start < 10_000);
});
