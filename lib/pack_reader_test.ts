import { deepStrictEqual, equal, ok, rejects, throws } from "node:assert/strict";
import { createHash } from "node:crypto";
import "./platform_deno.ts"; // the native codecs, as the CLI has them
import { MemoryBackend } from "../backends/memory.ts";
import { ChunkIndex } from "./chunk_index.ts";
import { CodecPool } from "./codec_pool.ts";
import { compress, loadCodecs } from "./compress.ts";
import { ObjectType, RepoKey } from "./crypto.ts";
import { bytesEqual, toHex } from "./ids.ts";
import {
  PackStream,
  readLiveRecords,
  readVerifiedRecord,
  type WantedRecord,
} from "./pack_reader.ts";
// restore's batcher of reads, tested here beside the reader's own reads on the same fixture
import { RecordBatcher } from "./record_batcher.ts";
import { initRepository, Repository } from "./repository.ts";
import { packKey } from "./storage_keys.ts";
import { WriteSession } from "./write_session.ts";
import {
  concat,
  footprint,
  fuzzCases,
  FuzzClock,
  mutate,
  randomBytes,
  rng,
  seededBytes,
} from "./_fuzz.ts";
import { IntegrityError } from "./errors.ts";
import {
  decodePackHeader,
  DEFAULT_TAIL_GUESS,
  encodePackHeader,
  entryName,
  HEADER_ENTRY_SIZE,
  headerLocation,
  PACK_MAGIC,
  PACK_PREAMBLE,
  PACK_VERSION,
  type PackEntry,
  packTailLength,
  PackWriter,
  RECORD_PREFIX,
} from "./pack.ts";
import { assertCorrupt, makePack, PACK_SPECIALS, readPackHeaderArray, u32 } from "./_test_repos.ts";

await loadCodecs();

/** A MemoryBackend that counts range requests. */
class CountingBackend extends MemoryBackend {
  ranges = 0;

  override getRange(key: string, offset: number, length: number): Promise<Uint8Array> {
    this.ranges++;
    return super.getRange(key, offset, length);
  }
}

/** A repository with `n` data blobs of 20 kB in one pack; their records in pack order. */
async function onePack(n: number) {
  const backend = new CountingBackend("memory:reader");
  await initRepository(backend, { encryption: "none" });
  const repo = await Repository.open(backend);
  const session = new WriteSession(repo, new ChunkIndex());
  const data: Uint8Array[] = [];
  for (let i = 0; i < n; i++) {
    const plain = seededBytes(20_000, 40 + i);
    const id = await repo.key.chunkId(plain);
    session.reserve(id);
    const sealed = await repo.key.seal(ObjectType.data, id, compress(plain, { algorithm: "lz4" }));
    await session.add(id, ObjectType.data, sealed, plain.length);
    data.push(plain);
  }
  await session.flush();
  const index = session.added;
  const wanted: WantedRecord[] = [...index.entries()].map(([id, loc]) => ({ id, ...loc }))
    .sort((a, b) => a.offset - b.offset);
  const pack = [...index.entries()][0][1].pack;
  return { backend, repo, index, wanted, pack, data };
}

Deno.test("readLiveRecords reads adjacent records in one range request and verifies each", async () => {
  const { backend, repo, wanted, pack } = await onePack(6);
  backend.ranges = 0;
  const got = [];
  // a record's sealed object is a view of its range, freed once the next range is read: copied
  for await (const r of readLiveRecords(repo, pack, wanted)) {
    got.push({ ...r, sealed: r.sealed?.slice() });
  }
  equal(backend.ranges, 1);
  deepStrictEqual(got.map((r) => r.error), wanted.map(() => undefined));
  deepStrictEqual(got.map((r) => toHex(r.wanted.id)), wanted.map((w) => toHex(w.id)));
  const stored = (await backend.get(packKey(pack)))!;
  for (const r of got) {
    ok(bytesEqual(r.sealed!, stored.subarray(r.wanted.offset, r.wanted.offset + r.wanted.length)));
  }
  // ranges of at most maxRange bytes: one record each here
  backend.ranges = 0;
  for await (const _ of readLiveRecords(repo, pack, wanted, { maxRange: 1000 })) { /* read */ }
  equal(backend.ranges, wanted.length);
});

Deno.test("readLiveRecords verifies a range's blobs in one worker batch, names the one that fails and hands the others over intact", async () => {
  const { backend, repo, wanted, pack } = await onePack(4);
  const pool = new CodecPool(repo.key.material, repo.config.encryption, 1);
  try {
    // the index's plaintext length of the second blob is wrong: only the worker can tell
    const claimed = wanted.map((w, i) => i === 1 ? { ...w, rawLength: w.rawLength + 1 } : w);
    const stored = (await backend.get(packKey(pack)))!;
    const faults: (string | null)[] = [];
    const messages: (string | undefined)[] = [];
    for await (const r of readLiveRecords(repo, pack, claimed, { pool })) {
      faults.push(r.fault ?? null);
      messages.push(r.error?.message);
      if (r.sealed) {
        const at = r.wanted.offset;
        ok(
          bytesEqual(r.sealed, stored.subarray(at, at + r.wanted.length)),
          "a record handed over intact",
        );
      }
    }
    deepStrictEqual(faults, [null, "blob", null, null]);
    ok(messages[1]?.includes(toHex(wanted[1].id)), messages[1]);
    ok(messages[1]?.includes(`in pack ${toHex(pack)}`), messages[1]);
    ok(messages[1]?.includes("the index says"), messages[1]);
  } finally {
    await pool.close();
  }
});

Deno.test("readLiveRecords names the record whose CRC-32 fails and still returns the others", async () => {
  const { backend, repo, wanted, pack } = await onePack(4);
  const key = packKey(pack);
  const bytes = (await backend.get(key))!.slice();
  bytes[wanted[2].offset + 5] ^= 0xff;
  await backend.put(key, bytes);
  const got = [];
  for await (const r of readLiveRecords(repo, pack, wanted)) got.push(r);
  deepStrictEqual(got.map((r) => r.fault ?? null), [null, null, "crc", null]);
  equal(
    got[2].error?.message,
    `Blob ${toHex(wanted[2].id)} in pack ${toHex(pack)} is corrupt: CRC-32 mismatch`,
  );
  // the same record read on its own does not verify either
  const size = bytes.length;
  equal(await readVerifiedRecord(repo, key, size, wanted[2].id, { pack, ...wanted[2] }), null);
  ok(await readVerifiedRecord(repo, key, size, wanted[1].id, { pack, ...wanted[1] }));
});

Deno.test("RecordBatcher reads adjacent records of one pack in one request and opens them in a worker", async () => {
  const { backend, repo, wanted, index } = await onePack(5);
  const pool = new CodecPool(repo.key.material, repo.config.encryption);
  try {
    const batcher = new RecordBatcher(repo, pool, { maxBytes: 8 << 20 });
    backend.ranges = 0;
    const reads = wanted.map((w) => batcher.read(w.id, index.get(w.id)!));
    batcher.flush();
    const plains = await Promise.all(reads);
    equal(backend.ranges, 1);
    for (const [i, w] of wanted.entries()) {
      ok(bytesEqual(await repo.key.chunkId(plains[i]), w.id));
    }
    // a budget of one record's bytes: one request per record
    const small = new RecordBatcher(repo, pool, { maxBytes: wanted[0].length });
    backend.ranges = 0;
    const again = wanted.map((w) => small.read(w.id, index.get(w.id)!));
    small.flush();
    await Promise.all(again);
    equal(backend.ranges, wanted.length);
  } finally {
    await pool.close();
  }
});

Deno.test("RecordBatcher reads records asked out of order and over small gaps in one request, and flushFor sends only a batch holding the read", async () => {
  const { backend, repo, wanted, index } = await onePack(5);
  const pool = new CodecPool(repo.key.material, repo.config.encryption);
  try {
    // records 3, 1, 4, 0: record 2 (20 kB) is a gap read over, the order does not matter
    const order = [3, 1, 4, 0];
    const batcher = new RecordBatcher(repo, pool, { maxBytes: 8 << 20 });
    backend.ranges = 0;
    const reads = order.map((i) => batcher.read(wanted[i].id, index.get(wanted[i].id)!));
    batcher.flushFor(Promise.resolve(new Uint8Array(0))); // not one of its reads: nothing sent
    await new Promise((resolve) => setTimeout(resolve, 10));
    equal(backend.ranges, 0);
    batcher.flushFor(reads[2]);
    const plains = await Promise.all(reads);
    equal(backend.ranges, 1);
    for (const [k, i] of order.entries()) {
      ok(bytesEqual(await repo.key.chunkId(plains[k]), wanted[i].id));
    }
    // once sent, flushFor of the same read sends nothing more
    batcher.flushFor(reads[0]);
    equal(backend.ranges, 1);
    // without gaps allowed, each turn back or jump forward starts a new request
    const strict = new RecordBatcher(repo, pool, { maxBytes: 8 << 20, maxGap: 0 });
    backend.ranges = 0;
    const again = order.map((i) => strict.read(wanted[i].id, index.get(wanted[i].id)!));
    strict.flush();
    await Promise.all(again);
    equal(backend.ranges, order.length);
  } finally {
    await pool.close();
  }
});

Deno.test("readPackHeader returns the entries, and each object opens under its id", async () => {
  for (const mode of ["aes256gcm", "none"] as const) {
    const key = await RepoKey.generate(mode);
    const { id, bytes, entries, blobs } = await makePack(key, rng(3), 7);
    const backend = new MemoryBackend();
    await backend.put(packKey(id), bytes);
    const read = await readPackHeaderArray(backend, key, packKey(id), bytes.length);
    deepStrictEqual(read, entries);
    for (const [i, e] of read.entries()) {
      const sealed = await backend.getRange(packKey(id), e.offset, e.length);
      deepStrictEqual(await key.open(e.type, e.id, sealed, entryName(e)), blobs[i].plain);
    }
    ok(entryName(read[2]).startsWith("metadata blob "));
    ok(entryName(read[0]).startsWith("chunk "));
  }
});

/** A memory backend that records each range request and how many were in flight at its start
 * (readPackHeader makes them one at a time, so a limit on packs read at once bounds them). */
function rangeLog(backend: MemoryBackend) {
  const requests: { offset: number; length: number; inFlight: number }[] = [];
  let inFlight = 0;
  return {
    requests,
    async getRange(key: string, offset: number, length: number): Promise<Uint8Array> {
      requests.push({ offset, length, inFlight: ++inFlight });
      try {
        await new Promise((resolve) => setTimeout(resolve, 1));
        return await backend.getRange(key, offset, length);
      } finally {
        inFlight--;
      }
    },
  };
}

Deno.test("readPackHeader reads a pack that fits the tail guess with exactly one range request", async () => {
  const key = await RepoKey.generate("aes256gcm");
  const { id, bytes, entries } = await makePack(key, rng(11), 40);
  ok(bytes.length < DEFAULT_TAIL_GUESS);
  const backend = new MemoryBackend();
  await backend.put(packKey(id), bytes);
  const log = rangeLog(backend);
  deepStrictEqual(await readPackHeaderArray(log, key, packKey(id), bytes.length), entries);
  deepStrictEqual(log.requests, [{ offset: 0, length: bytes.length, inFlight: 1 }]);
});

Deno.test("readPackHeader reads a larger pack's tail, then its preamble", async () => {
  const key = await RepoKey.generate("aes256gcm");
  const writer = new PackWriter();
  const next = rng(12);
  for (let i = 0; i < 3; i++) {
    const plain = randomBytes(next, 40_000);
    const id = await key.chunkId(plain);
    writer.add(id, ObjectType.data, await key.seal(ObjectType.data, id, plain), plain.length);
  }
  const done = await writer.finish(key);
  const bytes = concat(...(done.body as Uint8Array[]));
  ok(bytes.length > DEFAULT_TAIL_GUESS);
  const backend = new MemoryBackend();
  await backend.put("packs/x", bytes);
  const log = rangeLog(backend);
  deepStrictEqual(await readPackHeaderArray(log, key, "packs/x", bytes.length), [...done.entries]);
  deepStrictEqual(log.requests, [
    { offset: bytes.length - DEFAULT_TAIL_GUESS, length: DEFAULT_TAIL_GUESS, inFlight: 1 },
    { offset: 0, length: PACK_PREAMBLE, inFlight: 1 },
  ]);
});

Deno.test("readPackHeader reads a header larger than the tail guess with one more request, and none when told the entry count", async () => {
  const key = await RepoKey.generate("aes256gcm");
  const count = Math.ceil(DEFAULT_TAIL_GUESS / HEADER_ENTRY_SIZE) + 200;
  const { id, bytes, entries } = await makePack(key, rng(13), count);
  const headerLength = u32(bytes, bytes.length - 4);
  ok(headerLength + 4 > DEFAULT_TAIL_GUESS, `header of ${headerLength} bytes`);
  const backend = new MemoryBackend();
  await backend.put(packKey(id), bytes);
  const tailOffset = bytes.length - DEFAULT_TAIL_GUESS;
  const headerOffset = bytes.length - 4 - headerLength;

  const log = rangeLog(backend);
  deepStrictEqual(await readPackHeaderArray(log, key, packKey(id), bytes.length), entries);
  deepStrictEqual(log.requests, [
    { offset: tailOffset, length: DEFAULT_TAIL_GUESS, inFlight: 1 },
    { offset: 0, length: PACK_PREAMBLE, inFlight: 1 },
    { offset: headerOffset, length: tailOffset - headerOffset, inFlight: 1 },
  ]);

  const told = rangeLog(backend);
  const opts = { entries: count };
  deepStrictEqual(await readPackHeaderArray(told, key, packKey(id), bytes.length, opts), entries);
  const tail = packTailLength(bytes.length, { ...opts, sealOverhead: key.sealHead + key.sealTail });
  equal(tail, headerLength + 4);
  deepStrictEqual(told.requests, [
    { offset: bytes.length - tail, length: tail, inFlight: 1 },
    { offset: 0, length: PACK_PREAMBLE, inFlight: 1 },
  ]);
});

Deno.test("readPackHeader rejects short packs, bad magic, unknown version and bad trailers", async () => {
  const key = await RepoKey.generate("aes256gcm");
  const { bytes } = await makePack(key, rng(5), 3);
  const backend = new MemoryBackend();
  const name = "packs/00/x";
  const read = async (b: Uint8Array) => {
    await backend.put(name, b);
    return await readPackHeaderArray(backend, key, name, b.length);
  };
  const what = `Pack ${name}`;
  await rejects(read(bytes.subarray(0, 12)), assertCorrupt(what, /too short/));
  const magic = bytes.slice();
  magic[3] ^= 1;
  await rejects(read(magic), assertCorrupt(what, /bad magic/));
  const version = bytes.slice();
  version[8] = 2;
  await rejects(read(version), assertCorrupt(what, /unknown version 2/));
  for (const trailer of [0, bytes.length, 0xffffffff]) {
    const bad = bytes.slice();
    new DataView(bad.buffer).setUint32(bad.length - 4, trailer, true);
    await rejects(
      read(bad),
      assertCorrupt(what, new RegExp(`header length ${trailer} does not fit`)),
    );
  }
  const otherKey = await RepoKey.generate("aes256gcm");
  await backend.put(name, bytes);
  await rejects(
    readPackHeaderArray(backend, otherKey, name, bytes.length),
    assertCorrupt(`${what} header is corrupt`, /authentication failed/),
  );
  throws(() => headerLocation(Uint8Array.of(5, 0, 0, 0), 17, "P"), IntegrityError);
  deepStrictEqual(headerLocation(Uint8Array.of(4, 0, 0, 0), 17, "P"), { offset: 9, length: 4 });
});

Deno.test("readPackHeader throws only IntegrityError on random and mutated packs (fuzz)", async () => {
  const key = await RepoKey.generate("aes256gcm");
  const { bytes, entries } = await makePack(key, rng(10), 4);
  const recordsEnd = bytes.length - 4 - u32(bytes, bytes.length - 4);
  const plainHeader = encodePackHeader(entries);
  const backend = new MemoryBackend();
  const name = "packs/ff/fuzz";
  const next = rng(11);
  const cases = fuzzCases();
  const clock = new FuzzClock();
  let accepted = 0;
  for (let i = 0; i < cases; i++) {
    clock.lap(i);
    let input: Uint8Array;
    if (i % 3 === 2) {
      // An authentic header over a mutated plaintext, so decodePackHeader sees hostile entries.
      const sealed = await key.seal(
        ObjectType.packHeader,
        "pack-header",
        mutate(plainHeader, next, { kind: i, specials: PACK_SPECIALS }),
      );
      const trailer = new Uint8Array(4);
      new DataView(trailer.buffer).setUint32(0, sealed.length, true);
      input = concat(bytes.subarray(0, recordsEnd), sealed, trailer);
    } else {
      input = mutate(bytes, next, { kind: i, specials: PACK_SPECIALS });
    }
    await backend.put(name, input);
    let got: PackEntry[];
    try {
      got = await readPackHeaderArray(backend, key, name, input.length);
    } catch (err) {
      ok(err instanceof IntegrityError, `input ${i}: ${err}`);
      ok(err.message.startsWith(`Pack ${name}`), err.message);
      continue;
    }
    accepted++;
    const end = input.length - 4 - u32(input, input.length - 4);
    for (const e of got) {
      ok(e.offset >= PACK_PREAMBLE + RECORD_PREFIX && e.offset + e.length <= end);
    }
  }
  ok(accepted > 0, "flips inside records leave the header intact");
  clock.done();
});

Deno.test("huge header lengths and entry counts in tiny packs are refused without allocating", async () => {
  const key = await RepoKey.generate("aes256gcm");
  const backend = new MemoryBackend();
  const trailer = (n: number) => {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, n, true);
    return b;
  };
  const preamble = concat(PACK_MAGIC, Uint8Array.of(PACK_VERSION));
  // The trailer may claim up to 4 GiB; only a header that fits the pack is ever read.
  const packs = [0xffffffff, 64 << 20, (64 << 20) + 1, 1 << 30, 20].map((claim) =>
    concat(preamble, new Uint8Array(7), trailer(claim))
  );
  for (const [n, pack] of packs.entries()) await backend.put(`packs/huge/${n}`, pack);
  // An authentic header claiming 2^32 - 1 entries in 4 bytes.
  const sealed = await key.seal(ObjectType.packHeader, "pack-header", trailer(0xffffffff));
  const lying = concat(preamble, sealed, trailer(sealed.length));
  await backend.put("packs/huge/lying", lying);
  const fp = await footprint(async () => {
    for (const [n, pack] of packs.entries()) {
      await rejects(
        readPackHeaderArray(backend, key, `packs/huge/${n}`, pack.length),
        assertCorrupt(`Pack packs/huge/${n}`, /header length \d+ does not fit the pack/),
      );
    }
    await rejects(
      readPackHeaderArray(backend, key, "packs/huge/lying", lying.length),
      assertCorrupt("Pack packs/huge/lying", /header length does not fit 4294967295 entries/),
    );
    throws(
      () => decodePackHeader(trailer(0x7fffffff), 1 << 30, "Pack x"),
      assertCorrupt("Pack x", /does not fit 2147483647 entries/),
    );
  });
  ok(fp.ms < 2_000, `${fp.ms} ms`);
  // 2^32 entries would take 180 GiB; a few MiB of drift is test noise.
  ok(fp.grownBytes < 16 << 20, `grew ${fp.grownBytes} bytes`);
});

Deno.test("PackStream.free frees a read across ranges and leaves a view of the range, whose bytes are still hashed", async () => {
  const backend = new MemoryBackend();
  const data = seededBytes(3000, 41);
  await backend.put("packs/x", data);
  const stream = new PackStream(backend, "packs/x", data.length, { range: 1000 });
  await stream.read(300);
  const view = await stream.read(600); // inside the first range
  stream.free(view);
  deepStrictEqual(view, data.subarray(300, 900), "a view of the range was freed");
  const across = await stream.read(400); // 100 bytes of the first range, 300 of the second
  deepStrictEqual(across, data.subarray(900, 1300));
  stream.free(across);
  equal(across.length, 0, "the copy was not freed");
  equal(await stream.digest(), toHex(new Uint8Array(createHash("sha256").update(data).digest())));
});

Deno.test("PackStream.readBuffered takes bytes of the range at hand without awaiting, and nothing across ranges", async () => {
  const backend = new MemoryBackend();
  const data = seededBytes(2500, 43);
  await backend.put("packs/x", data);
  const stream = new PackStream(backend, "packs/x", data.length, { range: 1000 });
  equal(stream.readBuffered(10), null, "nothing is fetched before the first read");
  deepStrictEqual(await stream.read(100), data.subarray(0, 100));
  deepStrictEqual(stream.readBuffered(500), data.subarray(100, 600));
  equal(stream.pos, 600);
  equal(stream.readBuffered(401), null, "a read past the range's end is refused");
  equal(stream.pos, 600, "a refused read consumes nothing");
  deepStrictEqual(await stream.read(401), data.subarray(600, 1001));
  deepStrictEqual(stream.readBuffered(999), data.subarray(1001, 2000));
  equal(await stream.digest(), toHex(new Uint8Array(createHash("sha256").update(data).digest())));
});
