import { createHash } from "node:crypto";
import { deepStrictEqual, equal, ok, throws } from "node:assert/strict";
import { MemoryBackend } from "../backends/memory.ts";
import { ObjectType, type ObjectTypeTag, RepoKey, SEAL_OVERHEAD_AES } from "./crypto.ts";
import { IntegrityError } from "./errors.ts";
import { runExitHooks } from "./exit_hooks.ts";
import { SpillingSink } from "./staging.ts";
import { toHex } from "./ids.ts";
import { packKey } from "./storage_keys.ts";
import {
  crc32,
  decodePackHeader,
  encodePackHeader,
  entryName,
  FIRST_OBJECT_OFFSET,
  HEADER_ENTRY_SIZE,
  MAX_BLOB,
  MAX_BLOB_OBJECT,
  PACK_MAGIC,
  PACK_PREAMBLE,
  PACK_VERSION,
  PackEntries,
  type PackEntry,
  packSizeBesidesRecords,
  PackWriter,
  parseRecordPrefix,
  RECORD_PREFIX,
  recordFault,
  recordObject,
  recordSize,
  recordStart,
} from "./pack.ts";
import { MAX_CHUNK_LIMIT } from "./chunker.ts";
import { concat, fuzzCases, FuzzClock, mutate, randomBytes, rng } from "./_fuzz.ts";
import { assertCorrupt, makePack, PACK_SPECIALS, readPackHeaderArray, u32 } from "./_test_repos.ts";

/**
 * What a key-less server does: walk the records from offset 9 up to the header (located by the
 * trailing u32), checking each CRC-32. Returns [offset of the record prefix, object] pairs.
 */
function walkRecords(pack: Uint8Array): { start: number; object: Uint8Array }[] {
  const headerLength = u32(pack, pack.length - 4);
  const headerOffset = pack.length - 4 - headerLength;
  const out: { start: number; object: Uint8Array }[] = [];
  let at = PACK_PREAMBLE;
  while (at < headerOffset) {
    const length = u32(pack, at);
    const object = pack.subarray(at + RECORD_PREFIX, at + RECORD_PREFIX + length);
    if (at + RECORD_PREFIX + length > headerOffset || crc32(object) !== u32(pack, at + 4)) {
      throw new Error(`bad record at ${at}`);
    }
    out.push({ start: at, object });
    at += RECORD_PREFIX + length;
  }
  equal(at, headerOffset, "records end exactly where the header starts");
  return out;
}

Deno.test("a pack is magic, version, length+CRC records, sealed header and header length", async () => {
  const key = await RepoKey.generate("aes256gcm");
  const { id, bytes, entries, size, blobs } = await makePack(key, rng(1), 5);
  equal(size, bytes.length);
  deepStrictEqual(bytes.subarray(0, 8), PACK_MAGIC);
  equal(new TextDecoder().decode(bytes.subarray(0, 8)), "VGERPACK");
  equal(bytes[8], PACK_VERSION);
  let at = PACK_PREAMBLE;
  for (const [i, b] of blobs.entries()) {
    equal(u32(bytes, at), b.sealed.length);
    equal(u32(bytes, at + 4), crc32(b.sealed));
    deepStrictEqual(bytes.subarray(at + 8, at + 8 + b.sealed.length), b.sealed);
    deepStrictEqual(entries[i], {
      id: b.id,
      type: b.type,
      offset: at + 8,
      length: b.sealed.length,
      rawLength: b.plain.length,
    });
    at += 8 + b.sealed.length;
  }
  const headerLength = u32(bytes, bytes.length - 4);
  equal(at + headerLength + 4, bytes.length);
  const header = bytes.subarray(at, at + headerLength);
  equal(header[0], ObjectType.packHeader);
  const plain = await key.open(ObjectType.packHeader, "pack-header", header, "header");
  deepStrictEqual(plain, encodePackHeader(entries));
  // The pack id is the SHA-256 of every byte; its key is packs/<2 hex>/<hex>.
  deepStrictEqual(id, new Uint8Array(createHash("sha256").update(bytes).digest()));
  equal(packKey(id), `packs/${toHex(id).slice(0, 2)}/${toHex(id)}`);
});

/** Two header entries (a data blob, then an items blob) whose records end at 130. */
function twoEntries(seed: number): PackEntry[] {
  const next = rng(seed);
  return [
    { id: randomBytes(next, 32), type: ObjectType.data, offset: 17, length: 100, rawLength: 70 },
    { id: randomBytes(next, 32), type: ObjectType.items, offset: 125, length: 5, rawLength: 9 },
  ];
}

Deno.test("the header plaintext is u32 count then 45-byte entries", () => {
  const entries = twoEntries(2);
  const plain = encodePackHeader(entries);
  equal(plain.length, 4 + 2 * 45);
  equal(u32(plain, 0), 2);
  deepStrictEqual(plain.subarray(4, 36), entries[0].id);
  equal(plain[36], ObjectType.data);
  deepStrictEqual([u32(plain, 37), u32(plain, 41), u32(plain, 45)], [17, 100, 70]);
  equal(plain[49 + 32], ObjectType.items);
  deepStrictEqual(decodePackHeader(plain, 130, "Pack p"), entries);
  deepStrictEqual(decodePackHeader(encodePackHeader([]), 9, "Pack p"), []);
});

Deno.test("PackEntries.viewAt reads an entry as at() does, its id a view of the header", () => {
  const entries = twoEntries(21);
  const plain = encodePackHeader(entries);
  const decoded = PackEntries.decode(plain, 130, "Pack p");
  for (let i = 0; i < entries.length; i++) {
    const view = decoded.viewAt(i);
    deepStrictEqual({ ...view, id: view.id.slice() }, entries[i]);
    deepStrictEqual(decoded.at(i), entries[i]);
    equal(view.id.buffer, plain.buffer); // no copy
    ok(decoded.at(i).id.buffer !== plain.buffer); // a copy
  }
});

Deno.test("decodePackHeader rejects bad types, gaps, overlaps and records that stop short", () => {
  const next = rng(4);
  const e = (offset: number, length: number, type: ObjectTypeTag = ObjectType.data) => ({
    id: randomBytes(next, 32),
    type,
    offset,
    length,
    rawLength: 1,
  });
  const cases: [Uint8Array, number, RegExp][] = [
    [new Uint8Array(3), 9, /header too short/],
    [encodePackHeader([e(17, 10)]).subarray(0, 40), 27, /does not fit 1 entries/],
    [concat(encodePackHeader([e(17, 10)]), new Uint8Array(1)), 27, /does not fit 1 entries/],
    [encodePackHeader([e(17, 10, ObjectType.index)]), 27, /entry 0 has type 5/],
    [encodePackHeader([e(16, 10)]), 26, /entry 0 at offset 16/],
    [encodePackHeader([e(17, 10), e(36, 5)]), 41, /entry 1 at offset 36/],
    [encodePackHeader([e(17, 10), e(34, 5)]), 39, /entry 1 at offset 34/],
    [encodePackHeader([e(17, 10)]), 26, /entry 0 at offset 17/],
    [encodePackHeader([e(17, 10)]), 28, /records end before the header/],
  ];
  for (const [plain, end, reason] of cases) {
    throws(
      () => decodePackHeader(plain, end, "Pack x"),
      assertCorrupt("Pack x is corrupt: ", reason),
    );
  }
  const huge = new Uint8Array(4);
  new DataView(huge.buffer).setUint32(0, 0xffffffff, true);
  throws(() => decodePackHeader(huge, 9, "Pack x"), assertCorrupt("Pack x", /does not fit/));
});

Deno.test("a key-less server can walk and CRC-check every record up to the header", async () => {
  const key = await RepoKey.generate("aes256gcm");
  const { bytes, entries } = await makePack(key, rng(6), 9);
  const records = walkRecords(bytes);
  deepStrictEqual(
    records.map((r) => [r.start + RECORD_PREFIX, r.object.length]),
    entries.map((e) => [e.offset, e.length]),
  );
  // A flipped bit inside a record is caught by its CRC, without any key.
  const damaged = bytes.slice();
  damaged[entries[4].offset + 3] ^= 0x10;
  throws(() => walkRecords(damaged), /bad record at/);
});

Deno.test("the record helpers read each record's length and CRC and name its faults", async () => {
  const key = await RepoKey.generate("aes256gcm");
  const { bytes, entries, size } = await makePack(key, rng(7), 4);
  equal(entries[0].offset, FIRST_OBJECT_OFFSET);
  equal(HEADER_ENTRY_SIZE, 45);
  equal(MAX_BLOB, 256 << 20);
  equal(MAX_BLOB, MAX_CHUNK_LIMIT);
  equal(MAX_BLOB_OBJECT, MAX_BLOB + 1024);
  let records = 0;
  for (const e of entries) {
    equal(recordStart(e.offset), e.offset - 8);
    equal(recordSize(e.length), e.length + 8);
    records += recordSize(e.length);
    const record = bytes.subarray(
      recordStart(e.offset),
      recordStart(e.offset) + recordSize(e.length),
    );
    const prefix = parseRecordPrefix(record);
    deepStrictEqual(parseRecordPrefix(bytes, recordStart(e.offset)), prefix);
    const object = bytes.subarray(e.offset, e.offset + e.length);
    deepStrictEqual(prefix, { length: e.length, crc: crc32(object) });
    deepStrictEqual(recordObject(record), object);
    equal(recordFault(prefix, object), null);
    equal(recordFault(prefix, object, e.length), null);
    equal(recordFault(prefix, object, e.length + 1), "length");
    const flipped = object.slice();
    flipped[flipped.length >> 1] ^= 1;
    equal(recordFault(prefix, flipped), "crc");
  }
  equal(size, records + packSizeBesidesRecords(entries.length, SEAL_OVERHEAD_AES));
  throws(() => parseRecordPrefix(bytes, bytes.length - 4), RangeError);
});

Deno.test("records copied verbatim into a new pack with a client-sealed header stay readable", async () => {
  const key = await RepoKey.generate("aes256gcm");
  const { bytes, entries, blobs } = await makePack(key, rng(7), 8);
  const keep = [1, 2, 5, 7];
  // Server side: copy the kept records, byte for byte, after a fresh preamble.
  const records = walkRecords(bytes);
  const body = concat(
    bytes.subarray(0, PACK_PREAMBLE),
    ...keep.map((i) => {
      const r = records[i];
      return bytes.subarray(r.start, r.start + RECORD_PREFIX + r.object.length);
    }),
  );
  // Client side: the new offsets follow from the lengths alone.
  let at = PACK_PREAMBLE;
  const newEntries = keep.map((i) => {
    const e = { ...entries[i], offset: at + RECORD_PREFIX };
    at += RECORD_PREFIX + entries[i].length;
    return e;
  });
  const header = await key.seal(ObjectType.packHeader, "pack-header", encodePackHeader(newEntries));
  const trailer = new Uint8Array(4);
  new DataView(trailer.buffer).setUint32(0, header.length, true);
  const repacked = concat(body, header, trailer);
  const newId = new Uint8Array(createHash("sha256").update(repacked).digest());
  const backend = new MemoryBackend();
  await backend.put(packKey(newId), repacked);
  const read = await readPackHeaderArray(backend, key, packKey(newId), repacked.length);
  deepStrictEqual(read, newEntries);
  for (const [j, e] of read.entries()) {
    const sealed = await backend.getRange(packKey(newId), e.offset, e.length);
    deepStrictEqual(await key.open(e.type, e.id, sealed, entryName(e)), blobs[keep[j]].plain);
  }
});

Deno.test("decodePackHeader throws only IntegrityError on random and mutated inputs (fuzz)", async () => {
  const key = await RepoKey.generate("none");
  const { bytes, entries } = await makePack(key, rng(8), 4);
  const recordsEnd = bytes.length - 4 - u32(bytes, bytes.length - 4);
  const valid = encodePackHeader(entries);
  const next = rng(9);
  const cases = fuzzCases();
  const clock = new FuzzClock({ meanCaseMs: 5 });
  let accepted = 0;
  for (let i = 0; i < cases; i++) {
    clock.lap(i);
    const input = mutate(valid, next, { kind: i, specials: PACK_SPECIALS });
    let got: PackEntry[];
    try {
      got = decodePackHeader(input, recordsEnd, "Pack fuzz");
    } catch (err) {
      ok(err instanceof IntegrityError, `input ${i}: ${err}`);
      ok(err.message.startsWith("Pack fuzz is corrupt: "), err.message);
      continue;
    }
    accepted++;
    // Whatever is accepted tiles the records exactly.
    let expect = PACK_PREAMBLE + RECORD_PREFIX;
    for (const e of got) {
      equal(e.offset, expect);
      ok(e.type === ObjectType.data || e.type === ObjectType.items);
      expect += e.length + RECORD_PREFIX;
    }
    if (got.length > 0) equal(expect - RECORD_PREFIX, recordsEnd);
  }
  ok(accepted > 0, "flips in ids and raw lengths keep a valid header");
  clock.done();
});

// the spill test stages in this process's staging directory: remove it at the end, as the CLI
// does when it exits
globalThis.addEventListener("unload", () => void runExitHooks());

Deno.test("a pack larger than spillAbove is staged in a temp file and reads back the same", async () => {
  const key = await RepoKey.generate("aes256gcm");
  const writer = new PackWriter({ sink: new SpillingSink({ spillAbove: 4096 }) });
  const kept: { id: Uint8Array; sealed: Uint8Array; plain: Uint8Array }[] = [];
  let seed = 7;
  const next = () => (seed = (seed * 1103515245 + 12345) >>> 0);
  for (let i = 0; i < 200; i++) {
    const plain = randomBytes(next, 1 + (next() % 2000));
    const id = await key.chunkId(plain);
    const sealed = await key.seal(ObjectType.data, id, plain);
    kept.push({ id, sealed: sealed.slice(), plain });
    writer.add(id, ObjectType.data, sealed, plain.length);
  }
  const done = await writer.finish(key);
  ok(!Array.isArray(done.body), "the body should be a stream from the staging file");
  const parts: Uint8Array[] = [];
  for await (const p of (done.body as { pieces(): AsyncIterable<Uint8Array> }).pieces()) {
    parts.push(p);
  }
  const bytes = concat(...parts);
  equal(bytes.length, done.size);
  deepStrictEqual(new Uint8Array(createHash("sha256").update(bytes).digest()), done.id);
  const backend = new MemoryBackend();
  await backend.put("packs/x", bytes);
  const entries = await readPackHeaderArray(backend, key, "packs/x", bytes.length);
  equal(entries.length, kept.length);
  for (const [i, e] of entries.entries()) {
    deepStrictEqual(bytes.subarray(e.offset, e.offset + e.length), kept[i].sealed);
    deepStrictEqual(await key.open(ObjectType.data, e.id, kept[i].sealed, "x"), kept[i].plain);
  }
  done.dispose();
});

Deno.test("finishedSizeWith predicts the finished pack's exact size, so writers can keep the ceiling", async () => {
  for (const mode of ["aes256gcm", "none"] as const) {
    const key = await RepoKey.fromMaterial(new Uint8Array(64).fill(3), mode);
    const next = rng(5);
    const writer = new PackWriter();
    let predicted = 0;
    for (let i = 0; i < 5; i++) {
      const plain = randomBytes(next, 100 + i * 50);
      const id = await key.chunkId(plain);
      const sealed = await key.seal(ObjectType.data, id, plain);
      predicted = writer.finishedSizeWith(sealed.length, key);
      writer.add(id, ObjectType.data, sealed, plain.length);
    }
    const done = await writer.finish(key);
    equal(done.size, predicted, mode);
    done.dispose();
  }
});
