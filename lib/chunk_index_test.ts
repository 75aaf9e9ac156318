import { deepStrictEqual, equal, notDeepStrictEqual, ok, throws } from "node:assert/strict";
import { ChunkIndex, type ChunkLocation } from "./chunk_index.ts";
import { EncodedIndex } from "./encoded_index.ts";
import { IntegrityError } from "./errors.ts";
import { fuzzCases, FuzzClock, randomBytes, rng } from "./_fuzz.ts";

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

function hex(b: Uint8Array): string {
  let s = "";
  for (const x of b) s += HEX[x];
  return s;
}

function randomLocation(next: () => number, packs: Uint8Array[]): ChunkLocation {
  return {
    pack: packs[next() % packs.length],
    offset: next(),
    length: next(),
    rawLength: next(),
  };
}

function sameLocation(a: ChunkLocation | undefined, b: ChunkLocation): boolean {
  return a !== undefined && a.offset === b.offset && a.length === b.length &&
    a.rawLength === b.rawLength && hex(a.pack) === hex(b.pack);
}

/** The oracle: hex id to [id, location]. */
type Oracle = Map<string, [Uint8Array, ChunkLocation]>;

function put(index: ChunkIndex, oracle: Oracle, id: Uint8Array, loc: ChunkLocation): void {
  index.set(id, loc);
  oracle.set(hex(id), [id, loc]);
}

/** Compares the index with the oracle both ways; returns the number of disagreements. */
function mismatches(index: ChunkIndex, oracle: Oracle): number {
  let bad = index.size === oracle.size ? 0 : 1;
  for (const [id, loc] of oracle.values()) {
    if (!index.has(id) || !sameLocation(index.get(id), loc) || index.lengthOf(id) !== loc.length) {
      bad++;
    }
  }
  for (const [id, loc] of index.entries()) {
    const want = oracle.get(hex(id));
    if (want === undefined || !sameLocation(loc, want[1])) bad++;
  }
  return bad;
}

function assertCorrupt(bytes: Uint8Array, reason?: RegExp): void {
  throws(() => ChunkIndex.decode(bytes), (err: unknown) => {
    ok(err instanceof IntegrityError, `expected IntegrityError, got ${err}`);
    ok(err.message.startsWith("Index is corrupt: "), err.message);
    if (reason) ok(reason.test(err.message), err.message);
    return true;
  });
}

/** A small index: 3 packs, 6 entries, encoded. */
function smallIndex(): { index: ChunkIndex; bytes: Uint8Array } {
  const next = rng(7);
  const packs = [0, 1, 2].map(() => randomBytes(next, 32));
  const index = new ChunkIndex();
  for (let i = 0; i < 6; i++) {
    index.set(randomBytes(next, 32), { ...randomLocation(next, packs), pack: packs[i % 3] });
  }
  return { index, bytes: index.encode() };
}

Deno.test("set, get, lengthOf, has, delete and replace agree with a Map over 200k random ids", () => {
  const next = rng(1);
  const packs = Array.from({ length: 50 }, () => randomBytes(next, 32));
  const index = new ChunkIndex();
  const oracle: Oracle = new Map();
  const ids = Array.from({ length: 200_000 }, () => randomBytes(next, 32));
  for (const id of ids) {
    put(index, oracle, id, randomLocation(next, packs));
  }
  equal(index.size, 200_000);
  equal(mismatches(index, oracle), 0);

  // Delete half, replace a quarter, then re-insert part of the deleted ones.
  const deleted: Uint8Array[] = [];
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (i % 2 === 0) {
      equal(index.delete(id), true);
      equal(index.delete(id), false);
      oracle.delete(hex(id));
      deleted.push(id);
    } else if (i % 4 === 1) {
      put(index, oracle, id, randomLocation(next, packs));
    }
  }
  equal(index.size, 100_000);
  for (const id of deleted) {
    if (index.has(id) || index.get(id) !== undefined || index.lengthOf(id) !== -1) {
      throw new Error(`${hex(id)} survived`);
    }
  }
  equal(mismatches(index, oracle), 0);
  for (let i = 0; i < deleted.length; i += 3) {
    put(index, oracle, deleted[i], randomLocation(next, packs));
  }
  equal(mismatches(index, oracle), 0);
  // An unknown id is absent.
  equal(index.has(randomBytes(next, 32)), false);
});

Deno.test("probing survives deletes when many ids share their first 4 bytes", () => {
  const next = rng(2);
  const packs = Array.from({ length: 5 }, () => randomBytes(next, 32));
  const index = new ChunkIndex();
  const oracle: Oracle = new Map();
  for (let step = 0; step < 60_000; step++) {
    const id = randomBytes(next, 32);
    // 8 distinct prefixes and 256 suffixes: long clusters, many re-inserts of deleted ids.
    // Prefix 0xff homes near the last slot, so its cluster wraps onto the one of prefix 0x00.
    id.fill(0, 0, 31);
    id[0] = [0x00, 0x01, 0x40, 0x80, 0x81, 0xc0, 0xfe, 0xff][next() & 7];
    id[31] = next() & 0xff;
    const op = next() % 3;
    if (op === 0) {
      equal(index.delete(id), oracle.delete(hex(id)));
    } else {
      put(index, oracle, id, randomLocation(next, packs));
    }
  }
  ok(index.size > 0);
  equal(mismatches(index, oracle), 0);
});

Deno.test("encode then decode gives the same entries and the same bytes", () => {
  const next = rng(3);
  const packs = Array.from({ length: 20 }, () => randomBytes(next, 32));
  const index = new ChunkIndex();
  const oracle: Oracle = new Map();
  for (let i = 0; i < 5_000; i++) {
    const id = randomBytes(next, 32);
    put(index, oracle, id, randomLocation(next, packs));
  }
  const bytes = index.encode();
  equal(bytes.length, 6 + 4 + 20 * 32 + 4 + 5_000 * 48);
  const copy = ChunkIndex.decode(bytes);
  equal(mismatches(copy, oracle), 0);
  deepStrictEqual(copy.encode(), bytes);
  deepStrictEqual(copy.packIds().map(hex), index.packIds().map(hex));
  // The decoded index stays fully usable.
  const extra = randomBytes(next, 32);
  copy.set(extra, randomLocation(next, [randomBytes(next, 32)]));
  equal(copy.size, 5_001);
  equal(copy.delete(extra), true);
  deepStrictEqual(copy.encode(), bytes);
  // A view into a larger buffer decodes too.
  const padded = new Uint8Array(bytes.length + 8);
  padded.set(bytes, 3);
  deepStrictEqual(ChunkIndex.decode(padded.subarray(3, 3 + bytes.length)).encode(), bytes);
});

Deno.test("encoding is the same whatever the insertion order and history", () => {
  const next = rng(4);
  const packs = Array.from({ length: 10 }, () => randomBytes(next, 32));
  const entries = Array.from(
    { length: 3_000 },
    () => [randomBytes(next, 32), randomLocation(next, packs)] as const,
  );
  const a = new ChunkIndex();
  for (const [id, loc] of entries) a.set(id, loc);
  const b = new ChunkIndex(10_000);
  // Reverse order, with noise that is inserted, replaced and deleted again.
  const noisePack = randomBytes(next, 32);
  const noise = Array.from({ length: 500 }, () => randomBytes(next, 32));
  for (const id of noise) b.set(id, randomLocation(next, [noisePack]));
  for (const [id, loc] of [...entries].reverse()) {
    b.set(id, randomLocation(next, packs));
    b.set(id, loc);
  }
  for (const id of noise) b.delete(id);
  deepStrictEqual(b.encode(), a.encode());
  deepStrictEqual(new ChunkIndex().encode(), ChunkIndex.decode(new ChunkIndex().encode()).encode());
  a.delete(entries[0][0]);
  notDeepStrictEqual(b.encode(), a.encode());
});

Deno.test("decode rejects empty input, bad magic, bad version and trailing bytes", () => {
  const { bytes } = smallIndex();
  assertCorrupt(new Uint8Array(0), /truncated header/);
  const magic = bytes.slice();
  magic[0] = 0x57;
  assertCorrupt(magic, /bad magic/);
  const version = bytes.slice();
  version[5] = 2;
  assertCorrupt(version, /unsupported version 2/);
  const trailing = new Uint8Array(bytes.length + 1);
  trailing.set(bytes);
  assertCorrupt(trailing, /trailing bytes/);
});

Deno.test("decode rejects the small index truncated at every position", () => {
  const { bytes } = smallIndex();
  ChunkIndex.decode(bytes);
  for (let n = 0; n < bytes.length; n++) assertCorrupt(bytes.subarray(0, n), /truncated/);
});

Deno.test("decode rejects a pack number out of range, duplicate or unsorted ids and packs", () => {
  const { bytes } = smallIndex();
  const view = (b: Uint8Array) => new DataView(b.buffer);
  const entriesAt = 10 + 3 * 32 + 4;
  const entry = (i: number) => entriesAt + i * 48;

  const outOfRange = bytes.slice();
  view(outOfRange).setUint32(entry(2) + 32, 3, true);
  assertCorrupt(outOfRange, /entry 2 points to pack number 3 but there are 3 packs/);

  const duplicate = bytes.slice();
  duplicate.copyWithin(entry(4), entry(3), entry(3) + 32);
  assertCorrupt(duplicate, /duplicate chunk id [0-9a-f]{64}/);

  const unsorted = bytes.slice();
  unsorted.copyWithin(entry(1), entry(0), entry(0) + 48);
  unsorted.set(bytes.subarray(entry(1), entry(1) + 48), entry(0));
  assertCorrupt(unsorted, /not in ascending order at entry 1/);

  const duplicatePack = bytes.slice();
  duplicatePack.copyWithin(10 + 32, 10, 10 + 32);
  assertCorrupt(duplicatePack, /duplicate pack id/);

  // Point every entry at pack 0 or 1: pack 2 is then unreferenced.
  const unreferenced = bytes.slice();
  for (let i = 0; i < 6; i++) view(unreferenced).setUint32(entry(i) + 32, i % 2, true);
  assertCorrupt(unreferenced, /pack 2 \([0-9a-f]{64}\) is not referenced/);
});

Deno.test("decode rejects a huge claimed count in a tiny input without allocating", () => {
  const header = [0x56, 0x47, 0x49, 0x44, 0x58, 1];
  const huge = (packs: number, entries: number) => {
    const b = new Uint8Array(14 + 64);
    b.set(header);
    const v = new DataView(b.buffer);
    v.setUint32(6, packs, true);
    v.setUint32(10, entries, true);
    return b;
  };
  const before = Deno.memoryUsage();
  const start = performance.now();
  for (let i = 0; i < 100; i++) {
    assertCorrupt(huge(0xffffffff, 0), /pack count 4294967295 needs at least/);
    assertCorrupt(huge(0, 0xffffffff), /entry count 4294967295 needs exactly/);
    assertCorrupt(huge(0, 10_000_000), /entry count 10000000 needs exactly/);
  }
  const after = Deno.memoryUsage();
  ok(performance.now() - start < 1_000);
  // 10M entries would need ~700 MB; a few MB of drift is test noise.
  ok(after.external - before.external < 16 << 20, `external grew ${after.external}`);
  ok(after.heapUsed - before.heapUsed < 64 << 20, `heap grew ${after.heapUsed}`);
});

Deno.test("decode throws only IntegrityError on random and mutated inputs (fuzz)", () => {
  const { bytes } = smallIndex();
  const next = rng(5);
  const cases = fuzzCases();
  const clock = new FuzzClock({ meanCaseMs: 2.5 });
  let accepted = 0;
  for (let i = 0; i < cases; i++) {
    clock.lap(i);
    let input: Uint8Array;
    const kind = i % 4;
    if (kind === 0) {
      input = randomBytes(next, next() % 400);
    } else if (kind === 1) {
      // Valid header, random rest, so the count checks are reached.
      input = randomBytes(next, 10 + (next() % 400));
      input.set(bytes.subarray(0, 6));
    } else if (kind === 2) {
      input = bytes.slice();
      const flips = 1 + (next() % 4);
      for (let f = 0; f < flips; f++) input[next() % input.length] ^= 1 << (next() % 8);
    } else {
      // Splice: delete or insert a run of bytes somewhere.
      const at = next() % bytes.length;
      const run = 1 + (next() % 60);
      input = next() % 2 === 0
        ? Uint8Array.of(...bytes.subarray(0, at), ...bytes.subarray(at + run))
        : Uint8Array.of(...bytes.subarray(0, at), ...randomBytes(next, run), ...bytes.subarray(at));
    }
    let decoded: ChunkIndex | undefined;
    try {
      decoded = ChunkIndex.decode(input);
    } catch (err) {
      ok(err instanceof IntegrityError, `input ${i}: ${err}`);
      ok(err.message.startsWith("Index is corrupt: "), err.message);
      continue;
    }
    // Whatever is accepted is canonical: it encodes back to the very same bytes.
    accepted++;
    deepStrictEqual(decoded.encode(), input);
  }
  ok(accepted > 0, "some flips only change offsets and lengths, which stay valid");
  clock.done();
});

Deno.test("merge adds every entry of the other index and the other's entries win", () => {
  const next = rng(6);
  const packA = randomBytes(next, 32);
  const packB = randomBytes(next, 32);
  const packC = randomBytes(next, 32);
  const shared = Array.from({ length: 100 }, () => randomBytes(next, 32));
  const onlyA = Array.from({ length: 100 }, () => randomBytes(next, 32));
  const onlyB = Array.from({ length: 100 }, () => randomBytes(next, 32));
  const a = new ChunkIndex();
  const b = new ChunkIndex();
  for (const id of [...shared, ...onlyA]) a.set(id, randomLocation(next, [packA]));
  for (const id of onlyB) b.set(id, randomLocation(next, [packB]));
  for (const id of shared) b.set(id, randomLocation(next, [packC]));
  const bBytes = b.encode();
  a.merge(b);
  deepStrictEqual(b.encode(), bBytes);
  equal(a.size, 300);
  for (const id of [...shared, ...onlyB]) ok(sameLocation(a.get(id), b.get(id)!));
  for (const id of onlyA) equal(hex(a.get(id)!.pack), hex(packA));
  deepStrictEqual(a.packIds().map(hex), [packA, packB, packC].map(hex).sort());
  a.merge(a);
  equal(a.size, 300);
});

Deno.test("merge with keepOwn keeps this index's entries and gives the same index as the other way round", () => {
  const next = rng(61);
  const [packA, packB, packC] = [0, 1, 2].map(() => randomBytes(next, 32));
  const shared = Array.from({ length: 50 }, () => randomBytes(next, 32));
  const onlyA = Array.from({ length: 200 }, () => randomBytes(next, 32));
  const onlyB = Array.from({ length: 30 }, () => randomBytes(next, 32));
  const build = () => {
    const a = new ChunkIndex();
    const b = new ChunkIndex();
    onlyA.forEach((id, i) => a.set(id, { pack: packA, offset: i, length: 7, rawLength: 8 }));
    for (const id of shared) a.set(id, { pack: packC, offset: 1, length: 2, rawLength: 3 });
    onlyB.forEach((id, i) => b.set(id, { pack: packB, offset: i, length: 9, rawLength: 9 }));
    for (const id of shared) b.set(id, { pack: packB, offset: 4, length: 5, rawLength: 6 });
    return { a, b };
  };
  const one = build();
  one.b.merge(one.a); // a's entries win
  const other = build();
  other.a.merge(other.b, { keepOwn: true }); // a keeps its own
  // the same entries, in the same canonical bytes, whichever table took the other in
  deepStrictEqual(other.a.encode(), one.b.encode());
  for (const id of shared) equal(other.a.get(id)!.offset, 1);
  equal(other.a.size, 280);
});

Deno.test("encode with spare room before and after writes the same bytes between them", () => {
  const next = rng(62);
  const index = new ChunkIndex();
  const packs = [randomBytes(next, 32), randomBytes(next, 32)];
  for (let i = 0; i < 40; i++) index.set(randomBytes(next, 32), randomLocation(next, packs));
  const framed = index.encode(13, 16);
  deepStrictEqual(framed.subarray(13, framed.length - 16), index.encode());
  ok(framed.subarray(0, 13).every((b) => b === 0) && framed.subarray(-16).every((b) => b === 0));
});

Deno.test("packIds lists only packs that some entry still points to", () => {
  const next = rng(8);
  const [p1, p2, p3] = [0, 1, 2].map(() => randomBytes(next, 32));
  const [x, y, z] = [0, 1, 2].map(() => randomBytes(next, 32));
  const index = new ChunkIndex();
  deepStrictEqual(index.packIds(), []);
  index.set(x, { pack: p1, offset: 0, length: 1, rawLength: 1 });
  index.set(y, { pack: p2, offset: 0, length: 1, rawLength: 1 });
  index.set(z, { pack: p2, offset: 9, length: 1, rawLength: 1 });
  deepStrictEqual(index.packIds().map(hex), [p1, p2].map(hex).sort());
  index.set(x, { pack: p3, offset: 0, length: 1, rawLength: 1 });
  deepStrictEqual(index.packIds().map(hex), [p2, p3].map(hex).sort());
  index.delete(y);
  deepStrictEqual(index.packIds().map(hex), [p2, p3].map(hex).sort());
  index.delete(z);
  deepStrictEqual(index.packIds().map(hex), [hex(p3)]);
  // A freed pack number is reused without mixing up ids.
  index.set(y, { pack: p1, offset: 0, length: 1, rawLength: 1 });
  equal(hex(index.get(x)!.pack), hex(p3));
  equal(hex(index.get(y)!.pack), hex(p1));
  const decoded = ChunkIndex.decode(index.encode());
  deepStrictEqual(decoded.packIds().map(hex), [p1, p3].map(hex).sort());
});

Deno.test("entriesPerPack counts each live pack's entries, through replaces and deletes", () => {
  const next = rng(81);
  const [p1, p2, p3] = [0, 1, 2].map(() => randomBytes(next, 32));
  const ids = Array.from({ length: 40 }, () => randomBytes(next, 32));
  const index = new ChunkIndex();
  const oracle = new Map<string, Uint8Array>(); // id hex -> pack
  const packs = [p1, p2, p3];
  for (let round = 0; round < 400; round++) {
    const id = ids[next() % ids.length];
    if (next() % 4 === 0) {
      index.delete(id);
      oracle.delete(hex(id));
    } else {
      const pack = packs[next() % packs.length];
      index.set(id, { pack, offset: round, length: 1, rawLength: 1 });
      oracle.set(hex(id), pack);
    }
    const want = new Map<string, number>();
    for (const pack of [...oracle.values()].map(hex).sort()) {
      want.set(pack, (want.get(pack) ?? 0) + 1);
    }
    deepStrictEqual(index.entriesPerPack(), want);
  }
});

Deno.test("matchesIn tells absent, elsewhere, in another pack, moved and exact apart", () => {
  const next = rng(82);
  const [p1, p2] = [0, 1].map(() => randomBytes(next, 32));
  const [x, y] = [0, 1].map(() => randomBytes(next, 32));
  const index = new ChunkIndex();
  index.set(x, { pack: p1, offset: 100, length: 20, rawLength: 30 });
  equal(index.matchesIn(x, p1, 100, 20, 30), true);
  equal(index.matchesIn(x, p1, 101, 20, 30), false);
  equal(index.matchesIn(x, p1, 100, 21, 30), false);
  equal(index.matchesIn(x, p1, 100, 20, 31), false);
  equal(index.matchesIn(x, p2, 100, 20, 30), null); // in another pack
  equal(index.matchesIn(y, p1, 100, 20, 30), null); // no entry
  // an id given as a view into a larger buffer is read at its offset
  const big = new Uint8Array(100);
  big.set(x, 7);
  equal(index.matchesIn(big.subarray(7, 39), p1, 100, 20, 30), true);
});

Deno.test("returned ids and locations are copies that cannot change the index", () => {
  const next = rng(9);
  const id = randomBytes(next, 32);
  const pack = randomBytes(next, 32);
  const index = new ChunkIndex();
  index.set(id, { pack, offset: 1, length: 2, rawLength: 3 });
  pack.fill(0);
  index.get(id)!.pack.fill(1);
  const [[gotId, loc]] = [...index.entries()];
  gotId.fill(2);
  loc.pack.fill(3);
  equal(hex(index.get(id)!.pack), hex(ChunkIndex.decode(index.encode()).get(id)!.pack));
  notDeepStrictEqual(index.get(id)!.pack, new Uint8Array(32));
  ok(index.has(id));
});

Deno.test("bad arguments throw RangeError and leave the index unchanged", () => {
  const index = new ChunkIndex();
  const pack = new Uint8Array(32);
  const id = new Uint8Array(32);
  throws(() => index.get(new Uint8Array(31)), RangeError);
  throws(() => index.set(id, { pack: new Uint8Array(33), offset: 0, length: 0, rawLength: 0 }));
  for (const bad of [-1, 2 ** 32, 1.5, NaN]) {
    throws(() => index.set(id, { pack, offset: bad, length: 0, rawLength: 0 }), RangeError);
    throws(() => index.set(id, { pack, offset: 0, length: 0, rawLength: bad }), RangeError);
  }
  equal(index.size, 0);
  deepStrictEqual(index.packIds(), []);
  index.set(id, { pack, offset: 2 ** 32 - 1, length: 0, rawLength: 0 });
  equal(index.get(id)!.offset, 2 ** 32 - 1);
});

Deno.test("modifying the index while iterating throws", () => {
  const index = new ChunkIndex();
  const pack = new Uint8Array(32);
  for (let i = 0; i < 3; i++) {
    index.set(Uint8Array.from({ length: 32 }, () => i), {
      pack,
      offset: 0,
      length: 0,
      rawLength: 0,
    });
  }
  throws(() => {
    for (const [id] of index.entries()) index.delete(id);
  }, /modified during iteration/);
});

Deno.test("memory stays near 60 bytes per entry", () => {
  const next = rng(10);
  const packs = Array.from({ length: 30 }, () => randomBytes(next, 32));
  const index = new ChunkIndex();
  for (let i = 0; i < 100_000; i++) index.set(randomBytes(next, 32), randomLocation(next, packs));
  const perEntry = index.memoryBytes / index.size;
  // Records are 48 bytes, slots 4 bytes at load >= 0.375; doubling adds at most 2x on records.
  ok(perEntry >= 48 && perEntry <= 108, `${perEntry} bytes per entry`);
});

Deno.test("pack ids that share a long prefix stay distinct through set, delete and decode", () => {
  const packs = [1, 2, 3].map((last) => {
    const p = new Uint8Array(32).fill(0xab);
    p[31] = last;
    return p;
  });
  const ids = Array.from({ length: 6 }, (_, i) => new Uint8Array(32).fill(i + 1));
  const index = new ChunkIndex();
  ids.forEach((id, i) => index.set(id, { pack: packs[i % 3], offset: i, length: 0, rawLength: 0 }));
  deepStrictEqual(index.packIds().map(hex), packs.map(hex));
  // Free the pack that owns the prefix, then add entries to the others and to it again.
  index.delete(ids[0]);
  index.delete(ids[3]);
  deepStrictEqual(index.packIds().map(hex), [packs[1], packs[2]].map(hex));
  index.set(ids[0], { pack: packs[2], offset: 0, length: 0, rawLength: 0 });
  index.set(ids[3], { pack: packs[0], offset: 3, length: 0, rawLength: 0 });
  deepStrictEqual(index.packIds().map(hex), packs.map(hex));
  const decoded = ChunkIndex.decode(index.encode());
  for (const d of [index, decoded]) {
    equal(hex(d.get(ids[0])!.pack), hex(packs[2]));
    equal(hex(d.get(ids[3])!.pack), hex(packs[0]));
    equal(hex(d.get(ids[4])!.pack), hex(packs[1]));
    d.set(ids[5], { pack: packs[1], offset: 0, length: 0, rawLength: 0 });
    d.set(ids[1], { pack: packs[0], offset: 0, length: 0, rawLength: 0 });
    deepStrictEqual(d.packIds().map(hex), packs.map(hex));
    d.delete(ids[3]);
    d.delete(ids[1]);
    deepStrictEqual(d.packIds().map(hex), [packs[1], packs[2]].map(hex));
  }
  deepStrictEqual(decoded.encode(), index.encode());
});

Deno.test("encode sorts ids that share a long prefix", () => {
  const next = rng(11);
  const pack = randomBytes(next, 32);
  const index = new ChunkIndex();
  const ids = Array.from({ length: 2_000 }, () => {
    const id = randomBytes(next, 32);
    id.fill(7, 0, 3 + (next() % 20)); // one big bucket, and ties deep into the id
    return id;
  });
  for (const id of ids) index.set(id, { pack, offset: 0, length: 0, rawLength: 0 });
  const sorted = ids.map(hex).sort();
  deepStrictEqual(
    [...ChunkIndex.decode(index.encode()).entries()].map(([id]) => hex(id)).sort(),
    sorted,
  );
  const bytes = index.encode();
  const got = Array.from(
    { length: 2_000 },
    (_, i) => hex(bytes.subarray(46 + i * 48, 78 + i * 48)),
  );
  deepStrictEqual(got, sorted);
});

Deno.test("decode stays linear when every id shares its first 4 bytes", () => {
  const count = 100_000;
  const packAt = 10;
  const bytes = new Uint8Array(14 + 32 + count * 48);
  const view = new DataView(bytes.buffer);
  bytes.set([0x56, 0x47, 0x49, 0x44, 0x58, 1]);
  view.setUint32(6, 1, true);
  bytes.fill(9, packAt, packAt + 32);
  view.setUint32(packAt + 32, count, true);
  for (let i = 0; i < count; i++) {
    const at = 46 + i * 48;
    bytes.fill(0xff, at, at + 4); // the last home slot, so the run also wraps around
    view.setUint32(at + 28, i, false);
  }
  const start = performance.now();
  const index = ChunkIndex.decode(bytes);
  // Quadratic probing would take minutes; linear placement takes milliseconds.
  ok(performance.now() - start < 2_000, `${performance.now() - start} ms`);
  equal(index.size, count);
  const probe = bytes.slice(46 + 777 * 48, 46 + 777 * 48 + 32);
  equal(index.get(probe)?.pack[0], 9);
  deepStrictEqual(index.encode(), bytes);
});

Deno.test("EncodedIndex reads every entry of an encoded index in place, in ascending id order", () => {
  const next = rng(91);
  const packs = Array.from({ length: 7 }, () => randomBytes(next, 32));
  const index = new ChunkIndex();
  const ids: Uint8Array[] = [];
  for (let i = 0; i < 3000; i++) {
    const id = randomBytes(next, 32);
    if (i % 500 === 0) id.fill(0, 0, 2); // several ids in the lowest 16-bit bucket
    ids.push(id);
    index.set(id, randomLocation(next, packs));
  }
  const plain = index.encode();
  ChunkIndex.decode(plain);
  const view = new EncodedIndex(plain);
  equal(view.count, index.size);
  equal(view.packCount, index.packIds().length);
  let previous = "";
  for (let i = 0; i < view.count; i++) {
    const id = hex(view.idAt(i));
    ok(id > previous, "ascending by id");
    previous = id;
  }
  for (const id of ids) {
    const i = view.find(id);
    ok(i >= 0);
    deepStrictEqual(view.idAt(i), id);
    const loc = {
      pack: view.packId(view.packOf(i)),
      offset: view.offsetOf(i),
      length: view.lengthOf(i),
      rawLength: view.rawOf(i),
    };
    ok(sameLocation(index.get(id), loc));
  }
  equal(view.find(randomBytes(next, 32)), -1);
  equal(view.find(new Uint8Array(32).fill(0xff)), -1);
  const empty = new EncodedIndex(new ChunkIndex().encode());
  equal(empty.count, 0);
  equal(empty.packCount, 0);
  equal(empty.find(ids[0]), -1);
});
