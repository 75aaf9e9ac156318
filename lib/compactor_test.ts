import { createHash } from "node:crypto";
import "./platform_deno.ts"; // the native codecs, as the CLI has them
import { seededBytes } from "./_fuzz.ts";
import { KiB, readPackHeaderArray, withRepo } from "./_test_repos.ts";
import { deepStrictEqual, equal, ok, rejects } from "node:assert/strict";
import { MemoryBackend } from "../backends/memory.ts";
import { LocalBackend } from "../backends/local.ts";
import {
  type ComposePlan,
  ComposeRefusedError,
  type ComposeResult,
  type PutBody,
  type RefusedRange,
} from "../backends/backend.ts";
import { recordProblem } from "./server_compose.ts";
import { decodeItems, encodeItem, type Item, ItemStreamBuffer, newItemEncoder } from "./archive.ts";
import { backup } from "./archiver.ts";
import { CodecPool } from "./codec_pool.ts";
import {
  type CompactionPlan,
  type CompactProgress,
  compactRepository,
  DEFAULT_THRESHOLD_PERCENT,
  planCompaction,
} from "./compactor.ts";
import { compress, loadCodecs } from "./compress.ts";
import { ObjectType, type ObjectTypeTag } from "./crypto.ts";
import { IntegrityError, LockedError, UsageError } from "./errors.ts";
import { bytesEqual, fromHex, randomBytes, toHex } from "./ids.ts";
import { packKey } from "./storage_keys.ts";
import { COMMIT_LOCK } from "./lock.ts";
import { encodeManifest } from "./manifest.ts";
import { crc32, PackWriter } from "./pack.ts";
import { initRepository, Repository } from "./repository.ts";
import { extract } from "./restorer.ts";
import { WriteSession } from "./write_session.ts";

await loadCodecs();

const FAST = { iterations: 1, memoryKiB: 1024, parallelism: 1 };
const PASS = "compact me";
/** 180 KiB of random data: six chunks fill a 1 MiB pack. */
const CHUNK = 180 << 10;
/** Pack preamble + trailer + header count + AES-GCM seal overhead. */
const PACK_FIXED = 9 + 4 + 4 + 29;

const randomData = seededBytes;

/** The contents of a named chunk. */
function chunkData(name: string): Uint8Array {
  let seed = 7;
  for (const c of name) seed = Math.imul(seed, 31) + c.charCodeAt(0);
  return randomData(CHUNK, seed);
}

type Files = [path: string, chunks: string[]][];

interface Fixture<B extends MemoryBackend = MemoryBackend> {
  backend: B;
  repo: Repository<B>;
  /** Chunk id by name. */
  ids: Map<string, Uint8Array>;
  /** Item-stream blob id by archive name. */
  itemBlobs: Map<string, Uint8Array>;
  /**
   * Pack (hex) by label: P1 (A0 B0 A1 B1 A2 B2), P2 (A3..A7 B3), P3 (items of one), P4 (C0 of
   * keep), P5 (items of keep).
   */
  packs: Record<"P1" | "P2" | "P3" | "P4" | "P5", string>;
}

/** Stores blobs the way the archiver does; `forge` stores other contents under a chunk's id. */
async function addBlob<B extends MemoryBackend>(
  repo: Repository<B>,
  session: WriteSession,
  type: ObjectTypeTag,
  data: Uint8Array,
  stored = data,
): Promise<Uint8Array> {
  const id = await repo.key.chunkId(data);
  if (session.reserve(id)) {
    const sealed = await repo.key.seal(type, id, compress(stored, { algorithm: "lz4" }));
    await session.add(id, type, sealed, data.length);
  }
  return id;
}

async function writeArchive<B extends MemoryBackend>(
  f: Omit<Fixture<B>, "packs">,
  name: string,
  files: Files,
  forge?: string,
): Promise<void> {
  const { repo } = f;
  const session = new WriteSession(repo, await repo.readIndex());
  const encoder = newItemEncoder();
  const buffer = new ItemStreamBuffer();
  for (const [path, names] of files) {
    const chunks: Uint8Array[] = [];
    for (const n of names) {
      const data = chunkData(n);
      const stored = n === forge ? chunkData(`${n}-forged`) : data;
      const id = await addBlob(repo, session, ObjectType.data, data, stored);
      f.ids.set(n, id);
      chunks.push(id);
    }
    const item: Item = {
      path,
      type: "file",
      mode: 0o644,
      uid: 0,
      gid: 0,
      mtimeNs: 0n,
      size: names.length * CHUNK,
      chunks,
    };
    equal(buffer.add(encodeItem(encoder, item)), null, "one item blob per archive");
  }
  const blob = buffer.flush()!;
  const blobId = await addBlob(repo, session, ObjectType.items, blob);
  f.itemBlobs.set(name, blobId);
  await session.commit({
    name,
    hostname: "h",
    username: "u",
    time: "2024-01-01T00:00:00.000Z",
    timeEnd: "2024-01-01T00:00:01.000Z",
    sources: ["/src"],
    items: [blobId],
    stats: { files: files.length, original: 0, compressed: 0, deduplicated: 0 },
  });
}

const ONE: Files = [
  ["src/f1", ["A0", "B0", "A1", "B1", "A2", "B2"]],
  ["src/f2", ["A3", "A4", "A5", "A6", "A7", "B3"]],
];
const KEEP: Files = [
  ["src/f1", ["A0", "A1", "A2", "A3", "A4", "A5", "A6", "A7"]],
  ["src/f2", ["C0"]],
];

/**
 * Archive "one" (packs P1: A0 B0 A1 B1 A2 B2, P2: A3..A7 B3, P3: its item blob) and archive
 * "keep" (A0..A7, deduplicated, and C0 in P4; its item blob in P5: item blobs and data never
 * share a pack). Deleting "one" leaves P1 half
 * dead, P2 one sixth dead and P3 all dead.
 */
async function fixture<B extends MemoryBackend>(
  backend: B,
  options: { forge?: string } = {},
): Promise<Fixture<B>> {
  await initRepository(backend, {
    encryption: "aes256gcm",
    passphrase: PASS,
    kdf: FAST,
    minPackSize: 1 << 20,
    maxPackSize: 2 << 20, // the target is the 1 MiB floor; packs may pass it by one record
  });
  const repo = await Repository.open(backend, { passphrase: PASS });
  const f = { backend, repo, ids: new Map<string, Uint8Array>(), itemBlobs: new Map() };
  await writeArchive(f, "one", ONE, options.forge);
  await writeArchive(f, "keep", KEEP, options.forge);
  const index = await repo.readIndex();
  const packOf = (id: Uint8Array) => toHex(index.get(id)!.pack);
  const packs = {
    P1: packOf(f.ids.get("A0")!),
    P2: packOf(f.ids.get("A3")!),
    P3: packOf(f.itemBlobs.get("one")!),
    P4: packOf(f.ids.get("C0")!),
    P5: packOf(f.itemBlobs.get("keep")!),
  };
  equal(new Set(Object.values(packs)).size, 5, "five distinct packs");
  equal(index.packIds().length, 5);
  for (const n of ["B0", "A1", "B1", "A2", "B2"]) equal(packOf(f.ids.get(n)!), packs.P1);
  equal(packOf(f.ids.get("B3")!), packs.P2);
  return { ...f, packs };
}

/** Deletes an archive from the manifest (the delete command does not exist yet). */
async function deleteArchive(repo: Repository<MemoryBackend>, name: string): Promise<void> {
  const manifest = await repo.readManifest();
  manifest.archives = manifest.archives.filter((a) => a.name !== name);
  await repo.backend.put(
    "manifest",
    await repo.key.seal(ObjectType.manifest, "manifest", encodeManifest(manifest)),
  );
}

/** Every object in storage with a digest of its bytes. */
async function snapshot(backend: MemoryBackend): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for await (const o of backend.list("")) {
    const bytes = (await backend.get(o.key))!;
    out.set(o.key, createHash("sha256").update(bytes).digest("hex"));
  }
  return new Map([...out].sort());
}

async function storedPacks(backend: MemoryBackend): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for await (const o of backend.list("packs/")) out.set(o.key.slice(9), o.size);
  return out;
}

const sum = (xs: Iterable<number>) => [...xs].reduce((a, b) => a + b, 0);
const ids = (packs: { id: string }[]) => packs.map((p) => p.id).sort();

/** Reads every chunk of every archive left and compares it with what was written. */
async function assertArchivesIntact(repo: Repository<MemoryBackend>): Promise<void> {
  const index = await repo.readIndex();
  const manifest = await repo.readManifest();
  for (const entry of manifest.archives) {
    const expected = new Map((entry.name === "keep" ? KEEP : ONE).map(([p, c]) => [p, c]));
    const meta = await repo.readArchive(entry);
    const blob = await repo.readBlob(index, meta.items[0], ObjectType.items);
    const items = decodeItems(blob, "items");
    equal(items.length, expected.size);
    for (const item of items) {
      const names = expected.get(item.path)!;
      equal(item.chunks!.length, names.length);
      for (const [k, id] of item.chunks!.entries()) {
        const data = await repo.readBlob(index, id, ObjectType.data);
        ok(bytesEqual(data, chunkData(names[k])), `${entry.name} ${item.path} chunk ${k}`);
      }
    }
  }
}

/** Bytes of the records of named chunks (object length + 8). */
async function recordBytes(f: Fixture, names: string[]): Promise<number> {
  const index = await f.repo.readIndex();
  return sum(names.map((n) => index.get(f.ids.get(n)!)!.length + 8));
}

function assertNothingToDo(plan: CompactionPlan): void {
  ok(plan.nothingToDo, JSON.stringify(plan));
  deepStrictEqual(
    [plan.deletePacks, plan.rewritePacks, plan.unreferencedPacks, plan.deadBlobs],
    [[], [], [], 0],
  );
}

Deno.test("plan lists the emptied and the sparse packs with their bytes; dry run changes nothing", async () => {
  const f = await fixture(new MemoryBackend());
  const before = await planCompaction(f.repo);
  assertNothingToDo(before);
  equal(before.packs, 5);

  await deleteArchive(f.repo, "one");
  const plan = await planCompaction(f.repo);
  const sizes = await storedPacks(f.backend);
  equal(plan.thresholdPercent, DEFAULT_THRESHOLD_PERCENT);
  equal(plan.archives, 1);
  equal(plan.storedBytes, sum(sizes.values()));
  deepStrictEqual(ids(plan.deletePacks), [f.packs.P3]);
  deepStrictEqual(ids(plan.rewritePacks), [f.packs.P1]);
  deepStrictEqual(plan.unreferencedPacks, []);
  deepStrictEqual(plan.missingPacks, []);
  equal(plan.deadBlobs, 5, "B0..B3 and the item blob of one");
  equal(plan.missingChunks, 0);
  ok(!plan.nothingToDo);

  const live = await recordBytes(f, ["A0", "A1", "A2"]);
  const dead = await recordBytes(f, ["B0", "B1", "B2"]);
  const p1 = plan.rewritePacks[0];
  deepStrictEqual(p1, {
    id: f.packs.P1,
    size: sizes.get(f.packs.P1)!,
    blobs: 6,
    liveBlobs: 3,
    liveBytes: live,
    // the dead records and their header entries; a fully live pack has no unused bytes
    unusedBytes: dead + 3 * 45,
  });
  equal(plan.deletePacks[0].size, sizes.get(f.packs.P3));
  equal(plan.copyBlobs, 3);
  equal(plan.copyBytes, live);
  const newPack = live + PACK_FIXED + 3 * 45;
  equal(plan.bytesToFree, sizes.get(f.packs.P1)! + sizes.get(f.packs.P3)! - newPack);

  const stored = await snapshot(f.backend);
  const dry = await compactRepository(f.repo, { dryRun: true });
  deepStrictEqual(dry.plan, plan);
  deepStrictEqual([dry.deletedPacks, dry.newPacks, dry.bytesFreed], [[], [], 0]);
  deepStrictEqual(await snapshot(f.backend), stored, "same objects and bytes");
});

Deno.test("compact reclaims the space, every remaining archive reads back, and a second run has nothing to do", async () => {
  const f = await fixture(new MemoryBackend());
  await deleteArchive(f.repo, "one");
  const plan = await planCompaction(f.repo);
  const storedBefore = sum((await storedPacks(f.backend)).values());
  const phases = new Set<string>();
  const result = await compactRepository(f.repo, { onProgress: (p) => phases.add(p.phase) });
  deepStrictEqual(result.plan, plan);
  deepStrictEqual(result.corrupt, []);
  deepStrictEqual(result.rewrittenPacks, [f.packs.P1]);
  deepStrictEqual(result.deletedPacks.sort(), [f.packs.P1, f.packs.P3].sort());
  equal(result.newPacks.length, 1);
  deepStrictEqual([...phases], ["scan", "copy", "index", "delete"]);

  const after = await storedPacks(f.backend);
  deepStrictEqual(
    [...after.keys()].sort(),
    [f.packs.P2, f.packs.P4, f.packs.P5, result.newPacks[0]].sort(),
  );
  equal(sum(after.values()), storedBefore - result.bytesFreed);
  equal(result.bytesFreed, plan.bytesToFree, "one new pack: the estimate is exact");
  ok(result.bytesFreed > 3 * CHUNK);

  const index = await f.repo.readIndex();
  equal(index.size, 10, "A0..A7, C0 and the item blob of keep");
  for (const n of ["B0", "B1", "B2", "B3"]) equal(index.get(f.ids.get(n)!), undefined, n);
  equal(index.get(f.itemBlobs.get("one")!), undefined);
  for (const n of ["A0", "A1", "A2"]) {
    equal(toHex(index.get(f.ids.get(n)!)!.pack), result.newPacks[0]);
  }
  equal(toHex(index.get(f.ids.get("A3")!)!.pack), f.packs.P2, "P2 is under the threshold: kept");
  await assertArchivesIntact(f.repo);

  const again = await compactRepository(f.repo);
  assertNothingToDo(again.plan);
  deepStrictEqual([again.deletedPacks, again.newPacks, again.bytesFreed], [[], [], 0]);
});

Deno.test("threshold 0 rewrites every pack with unused space, the default only the sparse ones", async () => {
  const f = await fixture(new MemoryBackend());
  await deleteArchive(f.repo, "one");
  const at20 = await planCompaction(f.repo, { thresholdPercent: 20 });
  const at0 = await planCompaction(f.repo, { thresholdPercent: 0 });
  const at60 = await planCompaction(f.repo, { thresholdPercent: 60 });
  deepStrictEqual(ids(at20.rewritePacks), [f.packs.P1]);
  deepStrictEqual(ids(at0.rewritePacks), [f.packs.P1, f.packs.P2].sort());
  deepStrictEqual(ids(at60.rewritePacks), [], "P1 is half empty, under 60 %");
  for (const p of [at20, at0, at60]) deepStrictEqual(ids(p.deletePacks), [f.packs.P3]);
  equal(at0.copyBlobs, 3 + 5);
  ok(at0.bytesToFree > at20.bytesToFree);

  const result = await compactRepository(f.repo, { thresholdPercent: 0 });
  deepStrictEqual(result.rewrittenPacks.sort(), [f.packs.P1, f.packs.P2].sort());
  deepStrictEqual(result.corrupt, []);
  await assertArchivesIntact(f.repo);
  // every pack left is exactly its live records plus the minimal framing
  assertNothingToDo(await planCompaction(f.repo, { thresholdPercent: 0 }));
  const index = await f.repo.readIndex();
  const live = sum([...index.entries()].map(([, l]) => l.length + 8));
  const packs = await storedPacks(f.backend);
  equal(sum(packs.values()), live + packs.size * PACK_FIXED + index.size * 45);

  for (const bad of [-1, 101, NaN]) {
    await rejects(planCompaction(f.repo, { thresholdPercent: bad }), UsageError);
  }
});

Deno.test("a pack that no index entry references (an interrupted backup) is deleted", async () => {
  const f = await fixture(new MemoryBackend());
  const session = new WriteSession(f.repo, await f.repo.readIndex());
  await addBlob(f.repo, session, ObjectType.data, chunkData("orphan"));
  await session.flush(); // uploaded, never committed
  const packs = await storedPacks(f.backend);
  const orphan = [...packs.keys()].find((p) => !Object.values(f.packs).includes(p))!;
  ok(orphan);

  const plan = await planCompaction(f.repo);
  deepStrictEqual(plan.unreferencedPacks, [{
    id: orphan,
    size: packs.get(orphan)!,
    blobs: 0,
    liveBlobs: 0,
    liveBytes: 0,
    unusedBytes: packs.get(orphan)!,
  }]);
  deepStrictEqual([plan.deletePacks, plan.rewritePacks, plan.deadBlobs], [[], [], 0]);
  const indexBefore = await f.backend.get("index");

  const result = await compactRepository(f.repo);
  deepStrictEqual(result.deletedPacks, [orphan]);
  equal(result.bytesFreed, packs.get(orphan));
  equal(await f.backend.size(packKey(fromHex(orphan))), null);
  deepStrictEqual(await f.backend.get("index"), indexBefore, "the index needed no change");
  await assertArchivesIntact(f.repo);
  assertNothingToDo(await planCompaction(f.repo));
});

Deno.test("corrupt live blobs in a pack to rewrite are reported, not copied, and their pack is kept", async () => {
  // A2 is stored with other contents under its own id: the envelope opens, only the id check
  // can tell. A1 gets a flipped byte with a recomputed CRC-32: only authentication can tell.
  const f = await fixture(new MemoryBackend(), { forge: "A2" });
  await deleteArchive(f.repo, "one");
  const index = await f.repo.readIndex();
  const a1 = index.get(f.ids.get("A1")!)!;
  const key = packKey(a1.pack);
  const pack = (await f.backend.get(key))!;
  pack[a1.offset + 100] ^= 0x40;
  new DataView(pack.buffer).setUint32(
    a1.offset - 4,
    crc32(pack.subarray(a1.offset, a1.offset + a1.length)),
    true,
  );
  await f.backend.put(key, pack);

  const result = await compactRepository(f.repo);
  const byId = new Map(result.corrupt.map((c) => [c.id, c]));
  equal(result.corrupt.length, 2);
  const c1 = byId.get(toHex(f.ids.get("A1")!))!;
  const c2 = byId.get(toHex(f.ids.get("A2")!))!;
  equal(c1.pack, f.packs.P1);
  ok(/authentication failed/.test(c1.reason), c1.reason);
  ok(/do not match its id/.test(c2.reason), c2.reason);

  // P1 still holds the corrupt blobs, and the index still points there; P3 is gone
  deepStrictEqual(result.deletedPacks, [f.packs.P3]);
  ok((await f.backend.size(key)) !== null);
  const after = await f.repo.readIndex();
  for (const n of ["A1", "A2"]) equal(toHex(after.get(f.ids.get(n)!)!.pack), f.packs.P1, n);
  equal(toHex(after.get(f.ids.get("A0")!)!.pack), result.newPacks[0]);
  // the new pack holds only the good blob
  const newPack = fromHex(result.newPacks[0]);
  const entries = await readPackHeaderArray(
    f.backend,
    f.repo.key,
    packKey(newPack),
    (await f.backend.size(packKey(newPack)))!,
  );
  deepStrictEqual(entries.map((e) => toHex(e.id)), [toHex(f.ids.get("A0")!)]);

  // a later compact reports them again and still keeps P1
  const again = await compactRepository(f.repo);
  deepStrictEqual(ids(again.plan.rewritePacks), [f.packs.P1]);
  equal(again.corrupt.length, 2);
  deepStrictEqual(again.deletedPacks, []);
  ok((await f.backend.size(key)) !== null);
});

Deno.test("a crash after the index write leaves a consistent repository; the next compact finishes", async () => {
  const f = await fixture(new MemoryBackend());
  await deleteArchive(f.repo, "one");
  const first = await compactRepository(f.repo, { stopAfter: "index" });
  deepStrictEqual(first.deletedPacks, []);
  const packs = await storedPacks(f.backend);
  ok(packs.has(f.packs.P1) && packs.has(f.packs.P3) && packs.has(first.newPacks[0]));
  const index = await f.repo.readIndex();
  ok(!index.packIds().map(toHex).includes(f.packs.P1), "P1 is no longer referenced");
  await assertArchivesIntact(f.repo);

  const plan = await planCompaction(f.repo);
  deepStrictEqual(ids(plan.unreferencedPacks), [f.packs.P1, f.packs.P3].sort());
  deepStrictEqual([plan.deletePacks, plan.rewritePacks, plan.deadBlobs], [[], [], 0]);
  const second = await compactRepository(f.repo);
  deepStrictEqual(second.deletedPacks.sort(), [f.packs.P1, f.packs.P3].sort());
  deepStrictEqual(second.newPacks, []);
  await assertArchivesIntact(f.repo);
  assertNothingToDo(await planCompaction(f.repo));
});

Deno.test("a lost lock stops compaction before the next step", async () => {
  const f = await fixture(new MemoryBackend());
  await deleteArchive(f.repo, "one");
  let calls = 0;
  const checkLock = () => {
    if (++calls === 3) throw new LockedError("Lock lost");
  };
  await rejects(compactRepository(f.repo, { checkLock }), LockedError);
  equal(calls, 3, "before copying, before the index, before deleting");
  const packs = await storedPacks(f.backend);
  for (const p of Object.values(f.packs)) ok(packs.has(p), "nothing deleted");
  await assertArchivesIntact(f.repo);
  const plan = await planCompaction(f.repo);
  deepStrictEqual(ids(plan.unreferencedPacks), [f.packs.P1, f.packs.P3].sort(), "index written");
});

Deno.test("a crash after writing the new packs leaves the old index in charge; the next compact redoes it", async () => {
  const f = await fixture(new MemoryBackend());
  await deleteArchive(f.repo, "one");
  const indexBefore = await f.backend.get("index");
  const first = await compactRepository(f.repo, { stopAfter: "packs" });
  equal(first.newPacks.length, 1);
  deepStrictEqual(await f.backend.get("index"), indexBefore);
  await assertArchivesIntact(f.repo);

  const plan = await planCompaction(f.repo);
  deepStrictEqual(ids(plan.unreferencedPacks), first.newPacks);
  deepStrictEqual(ids(plan.rewritePacks), [f.packs.P1]);
  deepStrictEqual(ids(plan.deletePacks), [f.packs.P3]);
  const second = await compactRepository(f.repo);
  deepStrictEqual(
    second.deletedPacks.sort(),
    [f.packs.P1, f.packs.P3, first.newPacks[0]].sort(),
  );
  await assertArchivesIntact(f.repo);
  assertNothingToDo(await planCompaction(f.repo));
});

Deno.test("compact refuses to run when an archive's items cannot be read", async () => {
  const f = await fixture(new MemoryBackend());
  await deleteArchive(f.repo, "one");
  const loc = (await f.repo.readIndex()).get(f.itemBlobs.get("keep")!)!;
  const pack = (await f.backend.get(packKey(loc.pack)))!;
  pack[loc.offset + 40] ^= 1;
  await f.backend.put(packKey(loc.pack), pack);
  const stored = await snapshot(f.backend);
  await rejects(compactRepository(f.repo), (err: unknown) => {
    ok(err instanceof IntegrityError);
    ok(/archive "keep" cannot be read completely/.test(err.message), err.message);
    return true;
  });
  deepStrictEqual(await snapshot(f.backend), stored);
});

/** Adds an archive to the manifest just before the commit lock is taken (a racing backup). */
class RacingBackend extends MemoryBackend {
  repo?: Repository<RacingBackend>;
  override async create(key: string, body: PutBody): Promise<boolean> {
    if (key === COMMIT_LOCK && this.repo) {
      const repo = this.repo;
      this.repo = undefined;
      const manifest = await repo.readManifest();
      manifest.archives.push({ ...manifest.archives[0], name: "racer", id: randomBytes(32) });
      await this.put(
        "manifest",
        await repo.key.seal(ObjectType.manifest, "manifest", encodeManifest(manifest)),
      );
    }
    return await super.create(key, body);
  }
}

Deno.test("compact stops before the index when an archive appears meanwhile", async () => {
  const f = await fixture(new RacingBackend());
  await deleteArchive(f.repo, "one");
  const indexBefore = await f.backend.get("index");
  f.backend.repo = f.repo;
  await rejects(compactRepository(f.repo), LockedError);
  deepStrictEqual(await f.backend.get("index"), indexBefore);
  const packs = await storedPacks(f.backend);
  for (const p of Object.values(f.packs)) ok(packs.has(p), p);
  equal(await f.backend.size(COMMIT_LOCK), null, "the commit lock is released");
});

Deno.test("backup, delete an archive, compact with a codec pool: the other archive extracts byte-identical", async () => {
  const dir = await Deno.makeTempDir({ prefix: "vger-compact-" });
  try {
    const files: Record<string, Uint8Array> = {
      "a/x.bin": randomData(1_500_000, 1),
      "a/y.bin": randomData(2_500_000, 2),
      "b/x.bin": randomData(1_500_000, 1),
      "b/z.bin": randomData(700_000, 3),
      "b/small.txt": new TextEncoder().encode("hello\n"),
    };
    for (const [p, data] of Object.entries(files)) {
      await Deno.mkdir(`${dir}/src/${p.split("/")[0]}`, { recursive: true });
      await Deno.writeFile(`${dir}/src/${p}`, data);
    }
    const backend = new LocalBackend(`${dir}/repo`);
    await initRepository(backend, {
      encryption: "aes256gcm",
      passphrase: PASS,
      kdf: FAST,
      chunker: { minSize: 64 << 10, avgSize: 256 << 10, maxSize: 1 << 20 },
      minPackSize: 1 << 20,
      maxPackSize: 1 << 20,
    });
    const repo = await Repository.open(backend, { passphrase: PASS });
    const compression = { algorithm: "lz4" as const, zstdLevel: 3 };
    await backup(repo, { name: "a", sources: [`${dir}/src/a`], compression });
    await backup(repo, { name: "b", sources: [`${dir}/src/b`], compression });

    const manifest = await repo.readManifest();
    manifest.archives = manifest.archives.filter((a) => a.name !== "a");
    await backend.put(
      "manifest",
      await repo.key.seal(ObjectType.manifest, "manifest", encodeManifest(manifest)),
    );
    const packBytes = async () => {
      let n = 0;
      for await (const o of backend.list("packs/")) n += o.size;
      return n;
    };
    const before = await packBytes();
    const pool = new CodecPool(repo.key.material, repo.config.encryption, 2);
    try {
      const result = await compactRepository(repo, { pool });
      deepStrictEqual(result.corrupt, []);
      ok(result.plan.deletePacks.length > 0, "y.bin's packs are deleted");
      ok(result.bytesFreed > 2_000_000, `${result.bytesFreed}`);
      equal(await packBytes(), before - result.bytesFreed);
      assertNothingToDo((await compactRepository(repo, { pool })).plan);
    } finally {
      pool.close();
    }

    const out = `${dir}/out`;
    const restored = await extract(repo, { archive: "b", dest: out });
    deepStrictEqual(restored.warnings, []);
    for (const p of ["b/x.bin", "b/z.bin", "b/small.txt"]) {
      const got = await Deno.readFile(`${out}/${dir.replace(/^\/+/, "")}/src/${p}`);
      ok(bytesEqual(got, files[p]), p);
    }
    await backend.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("compact splits a pack that mixes file data and item blobs (as older versions wrote) into packs of one type, through the client and server-side", async () => {
  // through the client, and composed in storage
  for (const backend of [new MemoryBackend(), new ComposingBackend()]) {
    await initRepository(backend, {
      encryption: "aes256gcm",
      passphrase: PASS,
      kdf: FAST,
      minPackSize: 1 << 20,
      maxPackSize: 2 << 20,
    });
    const repo = await Repository.open(backend, { passphrase: PASS });
    // one pack as older versions wrote it: a file's chunk, the archive's item blob, a dead chunk
    const w = new PackWriter();
    const seal = async (type: ObjectTypeTag, data: Uint8Array): Promise<Uint8Array> => {
      const id = await repo.key.chunkId(data);
      w.add(
        id,
        type,
        await repo.key.seal(type, id, compress(data, { algorithm: "lz4" })),
        data.length,
      );
      return id;
    };
    const liveId = await seal(ObjectType.data, chunkData("L0"));
    await seal(ObjectType.data, chunkData("D0"));
    const buffer = new ItemStreamBuffer();
    buffer.add(encodeItem(newItemEncoder(), {
      path: "src/f",
      type: "file",
      mode: 0o644,
      uid: 0,
      gid: 0,
      mtimeNs: 0n,
      size: CHUNK,
      chunks: [liveId],
    }));
    const itemBlob = buffer.flush()!;
    const itemsId = await seal(ObjectType.items, itemBlob);
    const mixed = await w.finish(repo.key);
    await backend.put(packKey(mixed.id), mixed.body!);
    mixed.dispose();
    const session = new WriteSession(repo, await repo.readIndex());
    session.adopt(mixed.id, mixed.entries);
    await session.commit({
      name: "old",
      hostname: "h",
      username: "u",
      time: "2024-01-01T00:00:00.000Z",
      timeEnd: "2024-01-01T00:00:01.000Z",
      sources: ["/src"],
      items: [itemsId],
      stats: { files: 1, original: 0, compressed: 0, deduplicated: 0 },
    });

    const result = await compactRepository(repo, { thresholdPercent: 0 });
    deepStrictEqual(result.rewrittenPacks, [toHex(mixed.id)]);
    equal(result.newPacks.length, 2, "one pack per type");
    equal(result.serverSide, backend instanceof ComposingBackend);
    if (backend instanceof ComposingBackend) equal(backend.plans.length, 2, "one compose per type");
    const types = [];
    for (const hex of result.newPacks) {
      const key = packKey(fromHex(hex));
      const entries = await readPackHeaderArray(
        backend,
        repo.key,
        key,
        (await backend.get(key))!.length,
      );
      deepStrictEqual(entries.length, 1);
      types.push(entries[0].type);
    }
    deepStrictEqual(types.sort(), [ObjectType.data, ObjectType.items].sort());
    const index = await repo.readIndex();
    ok(bytesEqual(await repo.readBlob(index, itemsId, ObjectType.items), itemBlob));
    ok(bytesEqual(await repo.readBlob(index, liveId, ObjectType.data), chunkData("L0")));
  }
});

Deno.test("compact reports the bytes copied up to the plan's copyBytes", async () => {
  await withRepo(async (dir, repo) => {
    // "all" stores files in turn dropped and kept, so most packs hold both and get rewritten
    await Deno.mkdir(`${dir}/all`);
    await Deno.mkdir(`${dir}/keep`);
    for (let i = 0; i < 24; i++) {
      const data = seededBytes(200 * KiB, 100 + i);
      await Deno.writeFile(`${dir}/all/f${String(i).padStart(2, "0")}`, data);
      if (i % 2) await Deno.writeFile(`${dir}/keep/f${i}`, data);
    }
    const compression = { algorithm: "lz4" as const };
    await backup(repo, { name: "both", sources: [`${dir}/all`], compression });
    await backup(repo, { name: "keep", sources: [`${dir}/keep`], compression });
    const manifest = await repo.readManifest();
    manifest.archives = manifest.archives.filter((a) => a.name !== "both");
    await repo.backend.put(
      "manifest",
      await repo.key.seal(ObjectType.manifest, "manifest", encodeManifest(manifest)),
    );
    const plan = await planCompaction(repo, { thresholdPercent: 1 });
    ok(plan.copyBlobs > 0, "some live blobs must move");
    const updates: CompactProgress[] = [];
    const result = await compactRepository(repo, {
      thresholdPercent: 1,
      onProgress: (p) => updates.push({ ...p }),
    });
    deepStrictEqual(result.corrupt, []);
    const copy = updates.filter((u) => u.phase === "copy");
    deepStrictEqual(copy[0], {
      phase: "copy",
      done: 0,
      total: plan.copyBlobs,
      bytes: 0,
      totalBytes: plan.copyBytes,
    });
    const end = copy.at(-1)!;
    deepStrictEqual(
      [end.done, end.total, end.bytes, end.totalBytes],
      [plan.copyBlobs, plan.copyBlobs, plan.copyBytes, plan.copyBytes],
    );
    for (let i = 1; i < copy.length; i++) ok(copy[i].bytes! > copy[i - 1].bytes!);
    deepStrictEqual([...new Set(updates.map((u) => u.phase))], ["scan", "copy", "index", "delete"]);
  });
});

/**
 * A memory backend that composes as vger-server does: it declares that it checks records, runs
 * the server's record check (lib/server_compose.ts) on every range, refuses the bad ones, and
 * keeps every plan it was sent.
 */
class ComposingBackend extends MemoryBackend {
  override readonly capabilities = { connections: 4, composeChecksRecords: true };
  readonly plans: ComposePlan[] = [];

  override async compose(plan: ComposePlan): Promise<ComposeResult> {
    this.plans.push(plan);
    const refused: RefusedRange[] = [];
    for (const [i, r] of plan.ranges.entries()) {
      const why = recordProblem(await this.getRange(r.key, r.offset, r.length), r.type!);
      if (why !== null) refused.push({ range: i, reason: why });
    }
    if (refused.length > 0) throw new ComposeRefusedError("refused", refused);
    return { ...(await super.compose(plan)), sentBytes: 1000 };
  }
}

Deno.test("server-side compact sends the live records of each rewritten pack as ranges and a header it sealed; the index, the archives and the traffic show it", async () => {
  const f = await fixture(new ComposingBackend());
  await deleteArchive(f.repo, "one");
  const before = await f.repo.readIndex();
  const result = await compactRepository(f.repo);
  ok(result.serverSide);
  deepStrictEqual(result.corrupt, []);
  deepStrictEqual(result.rewrittenPacks, [f.packs.P1]);
  equal(f.backend.plans.length, 1);
  const plan = f.backend.plans[0];
  deepStrictEqual(plan.prefix, new Uint8Array([...new TextEncoder().encode("VGERPACK"), 1]));
  deepStrictEqual(
    plan.ranges,
    ["A0", "A1", "A2"].map((n) => {
      const loc = before.get(f.ids.get(n)!)!;
      return {
        key: packKey(loc.pack),
        offset: loc.offset - 8,
        length: loc.length + 8,
        type: ObjectType.data,
      };
    }),
  );
  // the new pack: the records verbatim after the preamble, then the header the client sealed
  const id = fromHex(result.newPacks[0]);
  const stored = (await f.backend.get(packKey(id)))!;
  equal(toHex(new Uint8Array(createHash("sha256").update(stored).digest())), result.newPacks[0]);
  const entries = await readPackHeaderArray(f.backend, f.repo.key, packKey(id), stored.length);
  deepStrictEqual(
    entries.map((e) => toHex(e.id)),
    ["A0", "A1", "A2"].map((n) => toHex(f.ids.get(n)!)),
  );
  equal(entries[0].offset, 17);
  const after = await f.repo.readIndex();
  for (const [n, e] of ["A0", "A1", "A2"].map((n, i) => [n, entries[i]] as const)) {
    deepStrictEqual(after.get(f.ids.get(n)!), {
      pack: id,
      offset: e.offset,
      length: e.length,
      rawLength: before.get(f.ids.get(n)!)!.rawLength,
    });
  }
  await assertArchivesIntact(f.repo);
  // a plan went up and P1's header came down (and the new header back), no record
  equal(result.bytesUploaded, 1000);
  ok(result.bytesDownloaded > 0 && result.bytesDownloaded < 2 * KiB, `${result.bytesDownloaded}`);
  ok(result.plan.copyBytes > 3 * CHUNK);
  assertNothingToDo((await compactRepository(f.repo)).plan);

  // the same repository state compacted through the client: records down, a whole pack up
  const g = await fixture(new ComposingBackend());
  await deleteArchive(g.repo, "one");
  const old = await compactRepository(g.repo, { serverSide: false });
  ok(!old.serverSide);
  equal(g.backend.plans.length, 0);
  const newSizes = [...(await storedPacks(g.backend))].filter(([k]) => old.newPacks.includes(k));
  equal(old.bytesUploaded, sum(newSizes.map(([, size]) => size)), "the new pack, whole");
  ok(old.bytesDownloaded >= old.plan.copyBytes, `${old.bytesDownloaded}`);
  await assertArchivesIntact(g.repo);
});

Deno.test("server-side compact: a record the server refuses is reported as corrupt, left in its pack, and the pack is composed without it; a pack whose header cannot be read is copied through the client", async () => {
  const f = await fixture(new ComposingBackend());
  await deleteArchive(f.repo, "one");
  const index = await f.repo.readIndex();
  const a1 = index.get(f.ids.get("A1")!)!;
  const key = packKey(a1.pack);
  const pack = (await f.backend.get(key))!;
  pack[a1.offset + 100] ^= 0x40; // the CRC-32 no longer matches
  await f.backend.put(key, pack);

  const result = await compactRepository(f.repo);
  ok(result.serverSide);
  equal(f.backend.plans.length, 2, "composed again without the refused record");
  deepStrictEqual(f.backend.plans[1].ranges.length, 2);
  deepStrictEqual(result.corrupt.map((c) => [c.id, c.pack]), [[
    toHex(f.ids.get("A1")!),
    f.packs.P1,
  ]]);
  ok(
    /server refused its record: CRC-32 mismatch/.test(result.corrupt[0].reason),
    result.corrupt[0].reason,
  );
  deepStrictEqual(result.deletedPacks, [f.packs.P3], "P1 holds a live corrupt blob: kept");
  const after = await f.repo.readIndex();
  equal(toHex(after.get(f.ids.get("A1")!)!.pack), f.packs.P1);
  for (const n of ["A0", "A2"]) equal(toHex(after.get(f.ids.get(n)!)!.pack), result.newPacks[0]);

  // a pack with a damaged trailer: its header cannot be read, its records are copied and verified
  const g = await fixture(new ComposingBackend());
  await deleteArchive(g.repo, "one");
  const p1 = packKey(fromHex(g.packs.P1));
  const bytes = (await g.backend.get(p1))!;
  bytes[bytes.length - 1] ^= 0xff;
  await g.backend.put(p1, bytes);
  const copied = await compactRepository(g.repo);
  equal(g.backend.plans.length, 0);
  deepStrictEqual(copied.corrupt, []);
  equal(copied.newPacks.length, 1);
  await assertArchivesIntact(g.repo);
});
