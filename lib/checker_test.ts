import { deepStrictEqual, equal, ok, rejects } from "node:assert/strict";
import "./platform_deno.ts"; // the native codecs, as the CLI has them
import { LocalBackend } from "../backends/local.ts";
import { MemoryBackend } from "../backends/memory.ts";
import type { BackendCapabilities } from "../backends/backend.ts";
import { encodeItem, type Item, ItemStreamBuffer, newItemEncoder } from "./archive.ts";
import { backup } from "./archiver.ts";
import {
  type CheckProgress,
  type CheckResult,
  hasErrors,
  type Problem,
  type ProblemKind,
} from "./check_report.ts";
import { checkRepository } from "./checker.ts";
import { loadIndexOrRebuild, rebuildIndex } from "./index_recovery.ts";
import { repairRepository } from "./repair.ts";
import { CodecPool } from "./codec_pool.ts";
import { compress, loadCodecs } from "./compress.ts";
import { type EncryptionMode, ObjectType, type ObjectTypeTag } from "./crypto.ts";
import { BackendError } from "./errors.ts";
import { bytesEqual, toHex } from "./ids.ts";
import { packKey } from "./storage_keys.ts";
import type { KdfParams } from "./key_file.ts";
import { crc32, PACK_PREAMBLE, PackWriter } from "./pack.ts";
import { readPackHeader } from "./pack_reader.ts";
import { initRepository, Repository } from "./repository.ts";
import { extract } from "./restorer.ts";
import { WriteSession } from "./write_session.ts";
import { concat, fuzzCases, FuzzClock, mutate, rng, seededBytes } from "./_fuzz.ts";
import { KiB, MiB, withRepo, writeTree } from "./_test_repos.ts";

await loadCodecs();

const FAST: KdfParams = { iterations: 1, memoryKiB: 1024, parallelism: 1 };
const PASS = "pass";

const randomData = seededBytes;

interface Fixture {
  backend: MemoryBackend;
  repo: Repository<MemoryBackend>;
  /** Chunk data by name. */
  data: Record<string, Uint8Array>;
  /** Chunk ids by name. */
  ids: Record<string, Uint8Array>;
}

/** Adds a blob (compressed, sealed) to the session unless the repository has it. */
async function addBlob(
  repo: Repository<MemoryBackend>,
  session: WriteSession,
  type: ObjectTypeTag,
  data: Uint8Array,
): Promise<Uint8Array> {
  const id = await repo.key.chunkId(data);
  if (session.reserve(id)) {
    const sealed = await repo.key.seal(type, id, compress(data, { algorithm: "lz4" }));
    await session.add(id, type, sealed, data.length);
  }
  return id;
}

/** Commits an archive of a directory `src` holding files made of the named chunks. */
async function commit(
  f: Fixture,
  name: string,
  files: Record<string, string[]>,
): Promise<void> {
  const session = new WriteSession(f.repo, await f.repo.readIndex());
  const item = (path: string, chunks?: Uint8Array[]): Item => ({
    path,
    type: chunks ? "file" : "dir",
    mode: 0o644,
    uid: 0,
    gid: 0,
    mtimeNs: 1_700_000_000_000_000_000n,
    size: chunks ? chunks.length : 0,
    chunks,
  });
  const encoder = newItemEncoder();
  const stream = new ItemStreamBuffer();
  const encoded = [encodeItem(encoder, item("src"))];
  for (const [path, names] of Object.entries(files)) {
    const chunks = [];
    for (const n of names) {
      f.ids[n] = await addBlob(f.repo, session, ObjectType.data, f.data[n]);
      chunks.push(f.ids[n]);
    }
    encoded.push(encodeItem(encoder, item(`src/${path}`, chunks)));
  }
  const items: Uint8Array[] = [];
  for (const e of encoded) {
    const blob = stream.add(e);
    if (blob) items.push(await addBlob(f.repo, session, ObjectType.items, blob));
  }
  const rest = stream.flush();
  if (rest) items.push(await addBlob(f.repo, session, ObjectType.items, rest));
  await session.commit({
    name,
    hostname: "host",
    username: "user",
    time: "2024-05-06T07:08:09.000Z",
    timeEnd: "2024-05-06T07:08:10.000Z",
    sources: ["/src"],
    items,
    stats: { files: encoded.length, original: 0, compressed: 0, deduplicated: 0 },
  });
}

/** A MemoryBackend of `connections` connections whose range reads take a few milliseconds. */
class SlowRangeBackend extends MemoryBackend {
  override readonly capabilities: BackendCapabilities;
  reads = 0;
  peakReads = 0;

  constructor(connections: number) {
    super("memory:slow");
    this.capabilities = { connections };
  }

  override async getRange(key: string, offset: number, length: number): Promise<Uint8Array> {
    this.peakReads = Math.max(this.peakReads, ++this.reads);
    try {
      await new Promise((r) => setTimeout(r, 2));
      return await super.getRange(key, offset, length);
    } finally {
      this.reads--;
    }
  }
}

Deno.test("check reads pack headers four at a time per backend connection", async () => {
  for (const connections of [1, 2]) {
    const backend = new SlowRangeBackend(connections);
    await initRepository(backend, {
      encryption: "none",
      minPackSize: 1 << 20,
      maxPackSize: 4 << 20,
    });
    const repo = await Repository.open(backend);
    const session = new WriteSession(repo, await repo.readIndex());
    for (let i = 0; i < 40; i++) {
      const data = randomData(300_000, 200 + i);
      const id = await repo.key.chunkId(data);
      if (session.reserve(id)) {
        const sealed = await repo.key.seal(ObjectType.data, id, data);
        await session.add(id, ObjectType.data, sealed, data.length);
      }
    }
    await session.flush();
    await session.commit({
      name: "a",
      hostname: "host",
      username: "user",
      time: "2024-05-06T07:08:09.000Z",
      timeEnd: "2024-05-06T07:08:10.000Z",
      sources: ["/src"],
      items: [],
      stats: { files: 0, original: 0, compressed: 0, deduplicated: 0 },
    });
    backend.peakReads = 0;
    const result = await checkRepository(repo);
    ok(result.stats.packs >= 8, `${result.stats.packs} packs`);
    equal(backend.peakReads, 4 * connections);
  }
});

/**
 * Two archives. "a": src/a1 = [c1, c2], src/a2 = [c3], all in one data pack, its item blob in
 * a pack of its own. "b": src/b1 = [big] (3.4 MiB, over the 3.2 MiB pack target: a pack of its
 * own), src/b2 = [c1] (shared with a); b's item blob is in a fourth pack.
 */
async function fixture(encryption: EncryptionMode = "aes256gcm"): Promise<Fixture> {
  const backend = new MemoryBackend("memory:check");
  await initRepository(backend, {
    encryption,
    passphrase: encryption === "none" ? undefined : PASS,
    kdf: FAST,
    minPackSize: 1 << 20,
    maxPackSize: 4 << 20,
  });
  const repo = await Repository.open(backend, { passphrase: PASS });
  const f: Fixture = {
    backend,
    repo,
    data: {
      c1: randomData(3000, 1),
      c2: randomData(5000, 2),
      c3: new TextEncoder().encode("hello ".repeat(500)),
      big: randomData(3_400_000, 3),
    },
    ids: {},
  };
  await commit(f, "a", { a1: ["c1", "c2"], a2: ["c3"] });
  await commit(f, "b", { b1: ["big"], b2: ["c1"] });
  return f;
}

/** The storage key of the pack that holds the named chunk. */
async function packOf(f: Fixture, name: string): Promise<string> {
  return packKey((await f.repo.readIndex()).get(f.ids[name])!.pack);
}

/** Rewrites a stored object through `edit`. */
async function edit(f: Fixture, key: string, fn: (b: Uint8Array) => Uint8Array): Promise<void> {
  await f.backend.put(key, fn((await f.backend.get(key))!));
}

function errors(r: CheckResult): Problem[] {
  return r.problems.filter((p) => p.severity === "error");
}

function only(r: CheckResult, kind: ProblemKind): Problem {
  const found = r.problems.filter((p) => p.kind === kind);
  equal(found.length, 1, `one ${kind} in ${JSON.stringify(r.problems, null, 1)}`);
  return found[0];
}

function kinds(r: CheckResult): string[] {
  return r.problems.map((p) => `${p.severity} ${p.kind}`).sort();
}

async function packKeys(backend: MemoryBackend): Promise<string[]> {
  const keys = [];
  for await (const o of backend.list("packs/")) keys.push(o.key);
  return keys.sort();
}

Deno.test("a clean repository has no problems, structurally and with verifyData", async () => {
  const f = await fixture();
  const index = await f.repo.readIndex();
  equal((await packKeys(f.backend)).length, 4);

  const structural = await checkRepository(f.repo);
  deepStrictEqual(structural.problems, []);
  equal(structural.indexRebuilt, false);
  deepStrictEqual(
    { ...structural.stats, bytesRead: 0 },
    { archives: 2, packs: 4, blobs: index.size, bytesRead: 0 },
  );

  let packSizes = 0;
  for await (const o of f.backend.list("packs/")) packSizes += o.size;
  const progress: number[] = [];
  const full = await checkRepository(f.repo, {
    verifyData: true,
    onProgress: (p) => progress.push(p.packs),
  });
  deepStrictEqual(full.problems, []);
  equal(full.stats.blobs, index.size, "every blob was opened and re-hashed");
  ok(full.stats.bytesRead >= packSizes, `${full.stats.bytesRead} >= ${packSizes}`);
  ok(progress.includes(4));
  equal(hasErrors(full), false);
});

Deno.test("item blobs and file data never share a pack", async () => {
  const f = await fixture();
  const types = new Map<string, Set<number>>();
  for (const key of await packKeys(f.backend)) {
    const size = (await f.backend.get(key))!.length;
    const entries = await readPackHeader(f.backend, f.repo.key, key, size);
    types.set(key, new Set(entries.map((e) => e.type)));
  }
  const sorted = [...types.values()].map((t) => [...t].sort());
  for (const t of sorted) equal(t.length, 1, `one type per pack: ${JSON.stringify(sorted)}`);
  equal(sorted.filter((t) => t[0] === ObjectType.items).length, 2, "a pack of items per archive");
});

Deno.test("verifyData through a codec pool reports a flipped bit in a shared chunk", async () => {
  const f = await fixture();
  const pool = new CodecPool(f.repo.key.material, f.repo.config.encryption, 2);
  try {
    deepStrictEqual((await checkRepository(f.repo, { verifyData: true, pool })).problems, []);
    const key = await packOf(f, "c1");
    const loc = (await f.repo.readIndex()).get(f.ids.c1)!;
    await edit(f, key, (b) => {
      b[loc.offset + 100] ^= 0x10;
      return b;
    });
    const r = await checkRepository(f.repo, { verifyData: true, pool });
    const blob = only(r, "corrupt-blob");
    ok(blob.message.includes(key), blob.message);
    ok(blob.message.includes("CRC-32"), blob.message);
    deepStrictEqual(blob.affects, {
      archives: ["a", "b"],
      paths: ["src/a1", "src/b2"],
      pathsTruncated: false,
    });
    only(r, "pack-hash-mismatch");
    ok(hasErrors(r));
  } finally {
    pool.close();
  }
});

Deno.test("verifyData finds a blob whose CRC matches but that does not open", async () => {
  const f = await fixture();
  const key = await packOf(f, "c2");
  const loc = (await f.repo.readIndex()).get(f.ids.c2)!;
  await edit(f, key, (b) => {
    b[loc.offset + 40] ^= 0x01;
    // recompute the record CRC, as a careless tool or a malicious server could
    const obj = b.subarray(loc.offset, loc.offset + loc.length);
    new DataView(b.buffer).setUint32(loc.offset - 4, crc32(obj), true);
    return b;
  });
  deepStrictEqual(errors(await checkRepository(f.repo)), [], "structure is intact");
  for (const pool of [undefined, new CodecPool(f.repo.key.material, "aes256gcm", 1)]) {
    try {
      const r = await checkRepository(f.repo, { verifyData: true, pool });
      const blob = only(r, "corrupt-blob");
      ok(/authentication failed/.test(blob.message), blob.message);
      ok(blob.message.includes(key));
      deepStrictEqual(blob.affects.paths, ["src/a1"]);
    } finally {
      pool?.close();
    }
  }
});

Deno.test("a deleted pack is a missing-pack error naming the archive and the files", async () => {
  const f = await fixture();
  // the same tree again: every blob, item stream included, is shared with "b"
  await commit(f, "b-again", { b1: ["big"], b2: ["c1"] });
  equal((await packKeys(f.backend)).length, 4);
  const key = await packOf(f, "big");
  await f.backend.delete(key);
  for (const verifyData of [false, true]) {
    const r = await checkRepository(f.repo, { verifyData });
    deepStrictEqual(kinds(r), ["error missing-pack"]);
    const p = only(r, "missing-pack");
    ok(p.message.includes(key), p.message);
    deepStrictEqual(p.affects, {
      archives: ["b", "b-again"],
      paths: ["src/b1"],
      pathsTruncated: false,
    });
  }
  const dry = await repairRepository(f.repo, {
    dryRun: true,
    confirm: () => Promise.resolve(true),
  });
  // their file lists read: both are kept, the file reported damaged in each
  deepStrictEqual(dry.brokenArchives, []);
  deepStrictEqual(dry.damagedFiles, [
    { archive: "b", path: "src/b1", missingChunks: 1 },
    { archive: "b-again", path: "src/b1", missingChunks: 1 },
  ]);
});

/** Read ranges to verify with: the default, and one so small that records span many ranges. */
const RANGES = [undefined, 4093];

Deno.test("verifyData with tiny read ranges hashes every byte once", async () => {
  const f = await fixture();
  let packSizes = 0;
  for await (const o of f.backend.list("packs/")) packSizes += o.size;
  for (const readRange of [4093, 65536, 1 << 30]) {
    const r = await checkRepository(f.repo, { verifyData: true, readRange });
    deepStrictEqual(r.problems, [], `readRange ${readRange}`);
    ok(r.stats.bytesRead >= packSizes);
  }
});

Deno.test("a flipped bit in pack data passes the structural check; verifyData finds it", async () => {
  const f = await fixture();
  const key = await packOf(f, "big");
  const loc = (await f.repo.readIndex()).get(f.ids.big)!;
  await edit(f, key, (b) => {
    b[loc.offset + 500_000] ^= 0x80;
    return b;
  });
  deepStrictEqual((await checkRepository(f.repo)).problems, []);
  for (const readRange of RANGES) {
    const r = await checkRepository(f.repo, { verifyData: true, readRange });
    deepStrictEqual(kinds(r), ["error corrupt-blob", "error pack-hash-mismatch"]);
    const blob = only(r, "corrupt-blob");
    ok(blob.message.includes(key) && blob.message.includes("Chunk"), blob.message);
    deepStrictEqual(blob.affects, { archives: ["b"], paths: ["src/b1"], pathsTruncated: false });
  }
});

Deno.test("repair with verifyData salvages the sound blobs of a pack with a flipped bit and drops the corrupt one", async () => {
  const f = await fixture();
  const key = await packOf(f, "c1");
  const loc = (await f.repo.readIndex()).get(f.ids.c2)!;
  await edit(f, key, (b) => {
    b[loc.offset + 100] ^= 0x80;
    return b;
  });
  // without verifyData the pack looks sound: nothing to salvage
  const plain = await repairRepository(f.repo, {
    dryRun: true,
    confirm: () => Promise.resolve(false),
  });
  deepStrictEqual(plain.salvagedPacks, []);

  const r = await repairRepository(f.repo, {
    verifyData: true,
    confirm: () => Promise.reject(new Error("no archive is broken")),
  });
  equal(r.salvagedPacks.length, 1);
  const s = r.salvagedPacks[0];
  ok(s.key === key && /Chunk .* is corrupt/.test(s.reason), s.reason);
  deepStrictEqual([s.kept, s.lost, s.removed], [2, 1, true]);
  deepStrictEqual(r.brokenArchives, []);
  deepStrictEqual(r.damagedFiles, [{ archive: "a", path: "src/a1", missingChunks: 1 }]);
  const index = await f.repo.readIndex();
  equal(index.has(f.ids.c2), false, "the corrupt chunk left the index: the next backup stores it");
  for (const n of ["c1", "c3"]) {
    ok(bytesEqual(await f.repo.readBlob(index, f.ids[n], ObjectType.data), f.data[n]), n);
  }
  const after = await checkRepository(f.repo, { verifyData: true });
  deepStrictEqual(kinds(after), ["error missing-chunk"]);
  deepStrictEqual(only(after, "missing-chunk").affects.paths, ["src/a1"]);
});

Deno.test("a repair that fails before its index is written leaves no damaged pack for a backup to adopt", async () => {
  const f = await fixture();
  const key = await packOf(f, "c1");
  const loc = (await f.repo.readIndex()).get(f.ids.c2)!;
  await edit(f, key, (b) => {
    b[loc.offset + 100] ^= 0x80;
    return b;
  });
  // the index write fails (a crash at that moment): the salvaged packs are stored by then
  const put = f.backend.put.bind(f.backend);
  f.backend.put = (k, body) =>
    k === "index" ? Promise.reject(new BackendError("index write failed")) : put(k, body);
  await rejects(
    repairRepository(f.repo, { verifyData: true, confirm: () => Promise.resolve(false) }),
    /index write failed/,
  );
  f.backend.put = put;
  // the damaged pack is gone, so no backup can take in its corrupt chunk from the header again
  equal(await f.backend.size(key), null);
  const again = await repairRepository(f.repo, { confirm: () => Promise.resolve(false) });
  deepStrictEqual(again.damagedFiles, [{ archive: "a", path: "src/a1", missingChunks: 1 }]);
  const index = await f.repo.readIndex();
  equal(index.has(f.ids.c2), false);
  for (const n of ["c1", "c3"]) {
    ok(bytesEqual(await f.repo.readBlob(index, f.ids[n], ObjectType.data), f.data[n]), n);
  }
});

Deno.test("repair scans a pack whose header and index are both lost, and keeps every blob that authenticates", async () => {
  const f = await fixture();
  const key = await packOf(f, "c1");
  await edit(f, key, (b) => {
    b[b.length - 10] ^= 0x04; // in the header
    return b;
  });
  await f.backend.put("index", randomData(64, 5));
  const never = () => Promise.reject(new Error("no archive is broken"));

  const dry = await repairRepository(f.repo, { dryRun: true, confirm: never });
  deepStrictEqual(dry.damagedFiles, [], "the scan finds every blob, also on a dry run");
  deepStrictEqual(dry.salvagedPacks.map((p) => [p.key, p.kept, p.lost, p.removed]), [
    [key, 3, 0, false],
  ]);
  deepStrictEqual(dry.unreadablePacks, []);

  const r = await repairRepository(f.repo, { confirm: never });
  deepStrictEqual(r.salvagedPacks.map((p) => [p.key, p.kept, p.lost, p.removed]), [
    [key, 3, 0, true],
  ]);
  deepStrictEqual(r.damagedFiles, []);
  deepStrictEqual(r.brokenArchives, []);
  deepStrictEqual((await checkRepository(f.repo, { verifyData: true })).problems, []);
});

Deno.test("a truncated pack without index entries: the scan keeps the records before the cut", async () => {
  const f = await fixture();
  const index = await f.repo.readIndex();
  const key = await packOf(f, "c1");
  const c3 = index.get(f.ids.c3)!;
  const c2 = index.get(f.ids.c2)!;
  ok(c2.offset < c3.offset, "c3 is the last record");
  await edit(f, key, (b) => b.slice(0, c3.offset + 10)); // c3 is cut
  await f.backend.delete("index");
  const r = await repairRepository(f.repo, {
    confirm: () => Promise.reject(new Error("no archive is broken")),
  });
  deepStrictEqual(r.salvagedPacks.map((p) => [p.kept, p.lost, p.removed]), [[2, 0, true]]);
  deepStrictEqual(r.damagedFiles, [{ archive: "a", path: "src/a2", missingChunks: 1 }]);
  const after = await f.repo.readIndex();
  ok(after.has(f.ids.c1) && after.has(f.ids.c2) && !after.has(f.ids.c3));
});

Deno.test("repair points a blob lost in a damaged pack at a sound copy in another pack", async () => {
  const f = await fixture();
  const index = await f.repo.readIndex();
  const loc = index.get(f.ids.c2)!;
  // a second copy of c2, in a pack the index does not use for it (as a concurrent backup leaves)
  const w = new PackWriter();
  w.add(f.ids.c2, ObjectType.data, await f.repo.readSealed(loc), loc.rawLength);
  const copy = await w.finish(f.repo.key);
  await f.backend.put(packKey(copy.id), copy.body);
  await edit(f, packKey(loc.pack), (b) => {
    b[loc.offset + 100] ^= 0x80;
    return b;
  });
  const r = await repairRepository(f.repo, {
    verifyData: true,
    confirm: () => Promise.reject(new Error("no archive is broken")),
  });
  deepStrictEqual([r.salvagedPacks[0].kept, r.salvagedPacks[0].lost], [2, 1]);
  deepStrictEqual(r.damagedFiles, []);
  const after = await f.repo.readIndex();
  deepStrictEqual(after.get(f.ids.c2)!.pack, copy.id);
  deepStrictEqual((await checkRepository(f.repo, { verifyData: true })).problems, []);
});

Deno.test("a zero-filled region is found by verifyData", async () => {
  const f = await fixture();
  const key = await packOf(f, "big");
  const loc = (await f.repo.readIndex()).get(f.ids.big)!;
  await edit(f, key, (b) => {
    b.fill(0, loc.offset + 4096, loc.offset + 8192);
    return b;
  });
  deepStrictEqual(errors(await checkRepository(f.repo)), []);
  for (const readRange of RANGES) {
    const r = await checkRepository(f.repo, { verifyData: true, readRange });
    deepStrictEqual(only(r, "corrupt-blob").affects.paths, ["src/b1"]);
    only(r, "pack-hash-mismatch");
  }
});

Deno.test("a truncated pack is reported by both checks, never thrown", async () => {
  const f = await fixture();
  const key = await packOf(f, "big");
  await edit(f, key, (b) => b.slice(0, b.length >> 1));
  const r = await checkRepository(f.repo);
  deepStrictEqual(kinds(r), ["error corrupt-pack"]);
  const p = only(r, "corrupt-pack");
  ok(p.message.includes(key) && /past its end/.test(p.message), p.message);
  deepStrictEqual(p.affects, { archives: ["b"], paths: ["src/b1"], pathsTruncated: false });

  for (const readRange of RANGES) {
    const full = await checkRepository(f.repo, { verifyData: true, readRange });
    ok(full.problems.some((x) => x.kind === "corrupt-blob" && /past the end/.test(x.message)));
    only(full, "pack-hash-mismatch");
  }
});

Deno.test("a flipped bit in a pack header makes the header unreadable", async () => {
  const f = await fixture();
  const key = await packOf(f, "c1");
  await edit(f, key, (b) => {
    b[b.length - 10] ^= 0x04;
    return b;
  });
  const r = await checkRepository(f.repo);
  deepStrictEqual(kinds(r), ["error corrupt-pack"]);
  const p = only(r, "corrupt-pack");
  ok(p.message.includes(key) && /header/.test(p.message), p.message);
  deepStrictEqual(p.affects.archives, ["a", "b"]);
  deepStrictEqual(p.affects.paths, ["src/a1", "src/a2", "src/b2"]);

  // the data itself is fine: verifyData walks the records the index points at
  for (const readRange of RANGES) {
    const full = await checkRepository(f.repo, { verifyData: true, readRange });
    deepStrictEqual(kinds(full), ["error corrupt-pack", "error pack-hash-mismatch"]);
  }

  // repair salvages every blob by the old index's offsets into a new pack, then drops the pack
  const repaired = await repairRepository(f.repo, {
    confirm: () => Promise.reject(new Error("nothing is broken")),
  });
  deepStrictEqual(repaired.brokenArchives, []);
  deepStrictEqual(repaired.damagedFiles, []);
  deepStrictEqual(repaired.unreadablePacks, []);
  equal(repaired.salvagedPacks.length, 1);
  const s = repaired.salvagedPacks[0];
  ok(s.key === key && /header/.test(s.reason), JSON.stringify(s));
  deepStrictEqual({ kept: s.kept, lost: s.lost, removed: s.removed }, {
    kept: 3,
    lost: 0,
    removed: true,
  });
  equal(repaired.indexWritten, true);
  equal(await f.backend.get(key), null, "the damaged pack is gone");
  deepStrictEqual((await checkRepository(f.repo, { verifyData: true })).problems, []);
});

Deno.test("index entries that disagree with the pack header are pack-header-mismatch", async () => {
  const f = await fixture();
  const index = await f.repo.readIndex();
  const c3 = index.get(f.ids.c3)!;
  index.set(f.ids.c3, { ...c3, offset: c3.offset + 8 });
  // c2 moved (in the index only) to the pack of the big chunk, whose header lacks it
  const c2 = index.get(f.ids.c2)!;
  index.set(f.ids.c2, { ...c2, pack: index.get(f.ids.big)!.pack });
  await f.backend.put("index", await f.repo.key.seal(ObjectType.index, "index", index.encode()));

  const r = await checkRepository(f.repo);
  deepStrictEqual(kinds(r), ["error pack-header-mismatch", "error pack-header-mismatch"]);
  const [x, y] = r.problems;
  const byPath = [x, y].sort((p, q) => p.affects.paths[0] < q.affects.paths[0] ? -1 : 1);
  deepStrictEqual(byPath.map((p) => p.affects.paths), [["src/a1"], ["src/a2"]]);
  ok(byPath[0].message.includes("not in the header"), byPath[0].message);
  ok(byPath[1].message.includes("lie elsewhere"), byPath[1].message);
  // no crash with verifyData either
  ok(hasErrors(await checkRepository(f.repo, { verifyData: true })));
});

Deno.test("a corrupt or lost index is reported and rebuilt equal to the original", async () => {
  const f = await fixture();
  const original = await f.repo.readIndex();
  for (const damage of ["garbage", "flip", "delete"]) {
    if (damage === "garbage") await f.backend.put("index", randomData(100, 9));
    if (damage === "flip") {
      await f.backend.put(
        "index",
        await f.repo.key.seal(ObjectType.index, "index", original.encode()),
      );
      await edit(f, "index", (b) => {
        b[20] ^= 1;
        return b;
      });
    }
    if (damage === "delete") await f.backend.delete("index");

    const r = await checkRepository(f.repo, { verifyData: true });
    deepStrictEqual(kinds(r), ["error corrupt-index"], damage);
    equal(r.indexRebuilt, true);
    ok(r.problems[0].message.includes("rebuilt"), r.problems[0].message);

    const loaded = await loadIndexOrRebuild(f.repo);
    equal(loaded.rebuilt, true);
    ok(loaded.problem && /Index/.test(loaded.problem), loaded.problem);
    deepStrictEqual(loaded.index.encode(), original.encode());
    deepStrictEqual(loaded.unreadablePacks, []);
  }
  await f.backend.put("index", await f.repo.key.seal(ObjectType.index, "index", original.encode()));
  const fine = await loadIndexOrRebuild(f.repo);
  equal(fine.rebuilt, false);
  equal(fine.problem, undefined);
});

Deno.test("an extra unreferenced pack and stray objects are warnings only", async () => {
  const f = await fixture();
  const w = new PackWriter();
  const data = randomData(2000, 7);
  const id = await f.repo.key.chunkId(data);
  w.add(
    id,
    ObjectType.data,
    await f.repo.key.seal(
      ObjectType.data,
      id,
      compress(data, {
        algorithm: "none",
      }),
    ),
    data.length,
  );
  const pack = await w.finish(f.repo.key);
  await f.backend.put(packKey(pack.id), pack.body);
  await f.backend.put("packs/zz/not-a-pack", Uint8Array.of(1, 2, 3));
  await f.backend.put(`archives/${"ab".repeat(32)}`, Uint8Array.of(1));

  for (const verifyData of [false, true]) {
    const r = await checkRepository(f.repo, { verifyData });
    deepStrictEqual(kinds(r), [
      "warning unknown-object",
      "warning unreferenced-archive",
      "warning unreferenced-pack",
    ]);
    ok(only(r, "unreferenced-pack").message.includes(packKey(pack.id)));
    equal(hasErrors(r), false);
  }
  const rebuilt = await rebuildIndex(f.repo);
  ok(rebuilt.index.has(id), "a rebuild takes every readable pack");
  deepStrictEqual(rebuilt.unreadablePacks.map((u) => u.key), ["packs/zz/not-a-pack"]);
});

Deno.test("repair keeps an archive whose chunk is gone and reports the file as damaged", async () => {
  const f = await fixture();
  await f.backend.delete(await packOf(f, "big"));
  const names = async () => (await f.repo.readManifest()).archives.map((a) => a.name);
  const damaged = [{ archive: "b", path: "src/b1", missingChunks: 1 }];
  const never = () => Promise.reject(new Error("no archive is broken: nothing to ask"));

  const dry = await repairRepository(f.repo, { dryRun: true, confirm: never });
  deepStrictEqual(dry.brokenArchives, []);
  deepStrictEqual(dry.damagedFiles, damaged);
  equal(dry.indexChanged, true);
  equal(dry.indexWritten, false);
  only(await checkRepository(f.repo), "missing-pack"); // the stored index is unchanged

  const r = await repairRepository(f.repo, { confirm: never });
  equal(r.indexWritten, true);
  deepStrictEqual(r.brokenArchives, []);
  deepStrictEqual(r.removedArchives, []);
  deepStrictEqual(r.damagedFiles, damaged);
  deepStrictEqual(await names(), ["a", "b"]);
  // the new index no longer lists the lost pack: b's chunk is now missing from it
  const after = await checkRepository(f.repo);
  deepStrictEqual(kinds(after), ["error missing-chunk"]);
  deepStrictEqual(only(after, "missing-chunk").affects.paths, ["src/b1"]);
});

Deno.test("repair removes an archive whose item stream is gone only when confirmed", async () => {
  const f = await fixture();
  const [, b] = (await f.repo.readManifest()).archives;
  const itemBlob = (await f.repo.readArchive(b)).items[0];
  await f.backend.delete(packKey((await f.repo.readIndex()).get(itemBlob)!.pack));
  const names = async () => (await f.repo.readManifest()).archives.map((a) => a.name);

  const dry = await repairRepository(f.repo, {
    dryRun: true,
    confirm: () => Promise.reject(new Error("a dry run must not ask")),
  });
  deepStrictEqual(dry.brokenArchives.map((x) => x.name), ["b"]);
  ok(dry.brokenArchives[0].reason.includes(toHex(itemBlob)), dry.brokenArchives[0].reason);
  deepStrictEqual(dry.removedArchives, []);
  deepStrictEqual(await names(), ["a", "b"]);

  const asked: string[][] = [];
  const declined = await repairRepository(f.repo, {
    confirm: (a) => {
      asked.push(a);
      return Promise.resolve(false);
    },
  });
  deepStrictEqual(asked, [["b"]]);
  equal(declined.indexWritten, true);
  deepStrictEqual(declined.removedArchives, []);
  deepStrictEqual(await names(), ["a", "b"]);

  const accepted = await repairRepository(f.repo, { confirm: () => Promise.resolve(true) });
  equal(accepted.indexWritten, false, "the index is already right");
  deepStrictEqual(accepted.removedArchives, ["b"]);
  deepStrictEqual(await names(), ["a"]);
  const after = await checkRepository(f.repo, { verifyData: true });
  // b's big chunk is now unreferenced in the index, which is no error
  equal(hasErrors(after), false, JSON.stringify(after.problems));
});

Deno.test("an index written by repair makes readBlob work again", async () => {
  const f = await fixture("none");
  const original = await f.repo.readIndex();
  await f.backend.put("index", randomData(64, 5));
  ok(await f.repo.readIndex().then(() => false, () => true), "the index is unreadable");

  const result = await repairRepository(f.repo, {
    confirm: () => Promise.reject(new Error("nothing is broken")),
  });
  equal(result.indexWritten, true);
  deepStrictEqual(result.brokenArchives, []);
  equal(result.entries, original.size);
  const index = await f.repo.readIndex();
  deepStrictEqual(index.encode(), original.encode());
  deepStrictEqual(await f.repo.readBlob(index, f.ids.big, ObjectType.data), f.data.big);
  deepStrictEqual((await checkRepository(f.repo, { verifyData: true })).problems, []);
});

Deno.test("plaintext repositories: verifyData re-hashes blobs and finds a flipped bit", async () => {
  const f = await fixture("none");
  deepStrictEqual((await checkRepository(f.repo, { verifyData: true })).problems, []);
  const key = await packOf(f, "c3");
  const loc = (await f.repo.readIndex()).get(f.ids.c3)!;
  await edit(f, key, (b) => {
    b[loc.offset + loc.length - 1] ^= 0x20;
    const obj = b.subarray(loc.offset, loc.offset + loc.length);
    new DataView(b.buffer).setUint32(loc.offset - 4, crc32(obj), true);
    return b;
  });
  const r = await checkRepository(f.repo, { verifyData: true });
  ok(/checksum mismatch/.test(only(r, "corrupt-blob").message));
  deepStrictEqual(only(r, "corrupt-blob").affects.paths, ["src/a2"]);
});

Deno.test("backup on disk, lose the index, repair, extract restores the files", async () => {
  const dir = await Deno.makeTempDir({ prefix: "vger-check-" });
  try {
    const src = `${dir}/src`;
    await Deno.mkdir(src);
    const files: Record<string, Uint8Array> = {
      "a.bin": randomData(300_000, 11),
      "b.txt": new TextEncoder().encode("text ".repeat(1000)),
    };
    for (const [n, d] of Object.entries(files)) await Deno.writeFile(`${src}/${n}`, d);
    const backend = new LocalBackend(`${dir}/repo`);
    await initRepository(backend, { encryption: "aes256gcm", passphrase: PASS, kdf: FAST });
    const repo = await Repository.open(backend, { passphrase: PASS });
    await backup(repo, { name: "one", sources: [src], compression: { algorithm: "lz4" } });
    deepStrictEqual((await checkRepository(repo, { verifyData: true })).problems, []);

    await Deno.remove(`${dir}/repo/index`);
    const loaded = await loadIndexOrRebuild(repo);
    equal(loaded.rebuilt, true);
    deepStrictEqual(kinds(await checkRepository(repo)), ["error corrupt-index"]);

    const result = await repairRepository(repo, { confirm: () => Promise.resolve(false) });
    equal(result.indexWritten, true);
    deepStrictEqual(result.brokenArchives, []);
    deepStrictEqual((await checkRepository(repo, { verifyData: true })).problems, []);
    await extract(repo, { archive: "one", dest: `${dir}/out` });
    for (const [n, d] of Object.entries(files)) {
      deepStrictEqual(await Deno.readFile(`${dir}/out${src}/${n}`), d);
    }
    await backend.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a lost archive object is corrupt-archive, and repair removes it from the manifest", async () => {
  const f = await fixture();
  const a = (await f.repo.readManifest()).archives[0];
  await f.backend.delete(`archives/${toHex(a.id)}`);
  const r = await checkRepository(f.repo);
  deepStrictEqual(kinds(r), ["error corrupt-archive"]);
  deepStrictEqual(r.problems[0].affects.archives, ["a"]);
  const repaired = await repairRepository(f.repo, { confirm: () => Promise.resolve(true) });
  deepStrictEqual(repaired.removedArchives, ["a"]);
  deepStrictEqual((await f.repo.readManifest()).archives.map((x) => x.name), ["b"]);
  deepStrictEqual(errors(await checkRepository(f.repo, { verifyData: true })), []);
});

/** A backend whose reads of one key fail the way a flaky network does. */
class FlakyBackend extends MemoryBackend {
  failing = "";
  override getRange(key: string, offset: number, length: number): Promise<Uint8Array> {
    if (key === this.failing) return Promise.reject(new BackendError(`Read of "${key}" timed out`));
    return super.getRange(key, offset, length);
  }
}

Deno.test("repair stops on a failing backend instead of dropping archives", async () => {
  const f = await fixture();
  const flaky = new FlakyBackend("memory:flaky");
  for await (const o of f.backend.list("")) await flaky.put(o.key, (await f.backend.get(o.key))!);
  const repo = await Repository.open(flaky, { passphrase: PASS });
  flaky.failing = await packOf(f, "big");
  await flaky.put("index", randomData(64, 5));
  await rejects(
    repairRepository(repo, { confirm: () => Promise.resolve(true) }),
    BackendError,
  );
  deepStrictEqual((await repo.readManifest()).archives.map((x) => x.name), ["a", "b"]);
  // once the backend answers again, the index rebuilds
  flaky.failing = "";
  const loaded = await loadIndexOrRebuild(repo);
  equal(loaded.rebuilt, true);
});

Deno.test("checking a pack of random or mutated bytes after its preamble reports problems, never throws (fuzz)", async () => {
  const backend = new MemoryBackend("memory:check-fuzz");
  await initRepository(backend, { encryption: "aes256gcm", passphrase: PASS, kdf: FAST });
  const repo = await Repository.open(backend, { passphrase: PASS });
  const f: Fixture = {
    backend,
    repo,
    data: { c1: randomData(700, 1), c2: randomData(300, 2), c3: new TextEncoder().encode("hi ") },
    ids: {},
  };
  await commit(f, "a", { a1: ["c1", "c2"], a2: ["c3"] });
  equal((await packKeys(backend)).length, 2, "a data pack and an items pack");
  const key = await packOf(f, "c1");
  const fullIndex = await repo.readIndex();
  const elsewhere = [...fullIndex.entries()].filter(([, l]) => packKey(l.pack) !== key).length;
  const original = (await backend.get(key))!;
  const preamble = original.subarray(0, PACK_PREAMBLE);
  const next = rng(61);
  const cases = fuzzCases();
  const clock = new FuzzClock({ maxCaseMs: 1_000, meanCaseMs: 10 });
  let unreadable = 0;
  for (let i = 0; i < cases; i++) {
    clock.lap(i);
    const input = concat(preamble, mutate(original.subarray(PACK_PREAMBLE), next, { kind: i }));
    await backend.put(key, input);
    let result: CheckResult;
    try {
      // odd cases read in tiny ranges, so records straddle range boundaries
      result = await checkRepository(repo, { verifyData: true, readRange: i % 2 ? 61 : undefined });
    } catch (err) {
      throw new Error(`input ${i}: checkRepository threw ${err}`, { cause: err });
    }
    for (const p of result.problems) ok(p.message.length > 0, `input ${i}: ${p.kind}`);
    if (bytesEqual(input, original)) deepStrictEqual(result.problems, [], `input ${i}`);
    else ok(hasErrors(result), `input ${i}: a changed pack (its SHA-256 is its name) is an error`);
    // rebuilding the index from the headers leaves the pack out or reads its authentic header
    const rebuilt = await rebuildIndex(repo);
    if (rebuilt.unreadablePacks.length > 0) {
      deepStrictEqual(rebuilt.unreadablePacks.map((u) => u.key), [key], `input ${i}`);
      equal(rebuilt.index.size, elsewhere, `input ${i}`);
      unreadable++;
    } else {
      equal(rebuilt.index.size, fullIndex.size, `input ${i}`);
    }
  }
  clock.done();
  ok(unreadable > 0 && unreadable < cases, `${unreadable} of ${cases} headers unreadable`);
  await backend.put(key, original);
  deepStrictEqual((await checkRepository(repo, { verifyData: true })).problems, []);
});

Deno.test("check reports packs and, with verifyData, pack bytes up to the totals in storage", async () => {
  await withRepo(async (dir, repo) => {
    await writeTree(`${dir}/src`, [1500 * KiB, 2 * MiB, 900 * KiB]);
    await backup(repo, { name: "a", sources: [`${dir}/src`], compression: { algorithm: "lz4" } });
    let packs = 0;
    let packBytes = 0;
    for await (const o of repo.backend.list("packs/")) {
      packs++;
      packBytes += o.size;
    }
    ok(packs >= 3, `${packs} packs`);
    const updates: CheckProgress[] = [];
    const result = await checkRepository(repo, {
      verifyData: true,
      readRange: 32 * KiB,
      onProgress: (p) => updates.push({ ...p }),
    });
    deepStrictEqual(result.problems, []);
    const headers = updates.filter((u) => u.phase === "headers");
    const data = updates.filter((u) => u.phase === "data");
    equal(updates.indexOf(data[0]), headers.length, "headers first, then data");
    deepStrictEqual(
      [headers.at(-1)!.packs, headers.at(-1)!.totalPacks, headers.at(-1)!.totalPackBytes],
      [packs, packs, packBytes],
    );
    const end = data.at(-1)!;
    deepStrictEqual(
      [end.packs, end.totalPacks, end.packBytes, end.totalPackBytes],
      [packs, packs, packBytes, packBytes],
    );
    equal(end.bytes, result.stats.bytesRead);
    ok(data.length > 2 * packs, `${data.length} updates: also within each pack`);
    for (let i = 1; i < data.length; i++) ok(data[i].packBytes >= data[i - 1].packBytes);
  });
});
