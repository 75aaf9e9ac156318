/**
 * Unit tests of lib/packer.ts, the one packer of backup, repair and compact.
 */

import { deepStrictEqual, equal, ok, rejects } from "node:assert/strict";
import "./platform_deno.ts"; // the native codecs, as the CLI has them
import { seededBytes } from "./_fuzz.ts";
import { LocalBackend } from "../backends/local.ts";
import { MemoryBackend } from "../backends/memory.ts";
import type { Backend, BackendCapabilities, PutBody } from "../backends/backend.ts";
import { compress, loadCodecs } from "./compress.ts";
import { ObjectType, type ObjectTypeTag } from "./crypto.ts";
import { bytesEqual, toHex } from "./ids.ts";
import { Packer, packTarget } from "./packer.ts";
import { crc32, parseRecordPrefix, RECORD_PREFIX, recordFault } from "./pack.ts";
import { CodecPool } from "./codec_pool.ts";
import { initRepository, Repository } from "./repository.ts";
import { packKey } from "./storage_keys.ts";
import { fixture, packKeys, readPackHeaderArray } from "./_test_repos.ts";

await loadCodecs();

/** A memory backend of `connections` connections whose pack puts wait until `open()`. */
class GatedBackend extends MemoryBackend {
  override readonly capabilities: BackendCapabilities;
  packPuts = 0;
  peakPackPuts = 0;
  /** Pack puts to fail (by order of arrival, from 1). */
  failPut = 0;
  #puts = 0;
  #gate = Promise.withResolvers<void>();

  constructor(connections: number, open = false) {
    super("memory:gated");
    this.capabilities = { connections };
    if (open) this.open();
  }

  /** Lets every held and later pack put complete. */
  open(): void {
    this.#gate.resolve();
  }

  override async put(key: string, body: PutBody): Promise<void> {
    if (!key.startsWith("packs/")) return await super.put(key, body);
    const n = ++this.#puts;
    this.peakPackPuts = Math.max(this.peakPackPuts, ++this.packPuts);
    try {
      await this.#gate.promise;
      if (n === this.failPut) throw new Error("disk on fire");
      await super.put(key, body);
    } finally {
      this.packPuts--;
    }
  }
}

async function newRepo(backend: GatedBackend): Promise<Repository<GatedBackend>> {
  await initRepository(backend, { encryption: "none", minPackSize: 1 << 20, maxPackSize: 4 << 20 });
  return await Repository.open(backend);
}

/** A sealed blob of `n` random bytes (stored uncompressed). */
async function blob(
  repo: Repository<GatedBackend>,
  type: ObjectTypeTag,
  n: number,
  seed: number,
): Promise<{ id: Uint8Array; sealed: Uint8Array; raw: number }> {
  const data = seededBytes(n, seed);
  const id = await repo.key.chunkId(data);
  const sealed = await repo.key.seal(type, id, compress(data, { algorithm: "none" }));
  return { id, sealed, raw: n };
}

/** Asserts that pack `p` is stored whole under the SHA-256 of its bytes. */
async function assertStoredUnderItsHash(
  backend: Backend,
  p: { id: Uint8Array; size: number },
): Promise<void> {
  const bytes = (await backend.get(packKey(p.id)))!;
  equal(bytes.length, p.size);
  const digest = await crypto.subtle.digest("SHA-256", bytes as BufferSource);
  equal(toHex(new Uint8Array(digest)), toHex(p.id));
}

/** The sealed object at `loc`, once its record's length and CRC-32 are asserted to match it. */
async function intactRecord(
  backend: Backend,
  loc: { pack: Uint8Array; offset: number; length: number },
): Promise<Uint8Array> {
  const key = packKey(loc.pack);
  const prefix = await backend.getRange(key, loc.offset - RECORD_PREFIX, RECORD_PREFIX);
  const sealed = await backend.getRange(key, loc.offset, loc.length);
  equal(recordFault(parseRecordPrefix(prefix), sealed), null);
  return sealed;
}

Deno.test("the packer keeps file data and item blobs apart, cuts packs at the target, and reports where every blob went", async () => {
  const backend = new GatedBackend(2, true);
  const repo = await newRepo(backend);
  const target = packTarget(0, repo.config.minPackSize, repo.config.maxPackSize);
  equal(target, 1 << 20);
  const packer = new Packer(repo, { target });
  const added: { id: Uint8Array; type: ObjectTypeTag }[] = [];
  for (let i = 0; i < 12; i++) {
    const type = i % 3 === 2 ? ObjectType.items : ObjectType.data;
    const b = await blob(repo, type, 300_000, i + 1);
    await packer.add(b.id, type, b.sealed, b.raw);
    added.push({ id: b.id, type });
  }
  await packer.flush();
  // 8 data blobs of ~300 kB: 4 per 1 MiB pack; 4 item blobs: 4 in one pack
  const packs = packer.packs;
  equal(packs.length, 3);
  equal(packer.stored.size, 12);
  const stored = new Map<string, number>();
  for await (const o of backend.list("packs/")) stored.set(o.key, o.size);
  deepStrictEqual([...stored.keys()].sort(), packs.map((p) => packKey(p.id)).sort());
  for (const p of packs) {
    equal(stored.get(packKey(p.id)), p.size);
    const entries = await readPackHeaderArray(backend, repo.key, packKey(p.id), p.size);
    equal(new Set(entries.map((e) => e.type)).size, 1, "one type per pack");
    for (const e of entries) {
      const loc = packer.stored.get(e.id)!;
      ok(bytesEqual(loc.pack, p.id));
      deepStrictEqual([loc.offset, loc.length, loc.rawLength], [e.offset, e.length, e.rawLength]);
    }
  }
  for (const a of added) {
    const loc = packer.stored.get(a.id)!;
    const entries = await readPackHeaderArray(
      backend,
      repo.key,
      packKey(loc.pack),
      stored.get(packKey(loc.pack))!,
    );
    equal(entries.find((e) => toHex(e.id) === toHex(a.id))!.type, a.type);
  }
});

Deno.test("the packer uploads as many packs at once as the backend has connections, and no more", async () => {
  const tick = () => new Promise((r) => setTimeout(r, 1));
  for (const connections of [1, 3]) {
    const backend = new GatedBackend(connections);
    const repo = await newRepo(backend);
    const packer = new Packer(repo, { target: 1 << 20 });
    const adding = (async () => {
      for (let i = 0; i < 40; i++) {
        const b = await blob(repo, ObjectType.data, 300_000, 100 + i);
        await packer.add(b.id, ObjectType.data, b.sealed, b.raw);
        // add returns with a slot free: the next full pack starts its upload at once
        ok(backend.packPuts < connections, `${backend.packPuts} uploads after add`);
      }
      await packer.flush();
    })();
    for (let i = 0; backend.packPuts < connections; i++) {
      ok(i < 5000, `only ${backend.packPuts} of ${connections} uploads ever started`);
      await tick();
    }
    for (let i = 0; i < 20; i++) await tick();
    equal(backend.packPuts, connections);
    equal(packer.packs.length, 0, "no pack is durable before its put returns");
    backend.open();
    await adding;
    equal(backend.peakPackPuts, connections);
    equal(packer.packs.length, 10);
    equal(packer.stored.size, 40);
  }
});

Deno.test("the packer keeps the bytes of packs in flight within uploadBytes, however many connections the backend has", async () => {
  const tick = () => new Promise((r) => setTimeout(r, 1));
  const backend = new GatedBackend(8);
  const repo = await newRepo(backend);
  // packs of four 300 kB blobs: a second one cut passes 2 MiB, and add waits
  const packer = new Packer(repo, { target: 1 << 20, uploadBytes: 2 << 20 });
  const adding = (async () => {
    for (let i = 0; i < 40; i++) {
      const b = await blob(repo, ObjectType.data, 300_000, 200 + i);
      await packer.add(b.id, ObjectType.data, b.sealed, b.raw);
    }
    await packer.flush();
  })();
  for (let i = 0; backend.packPuts < 2; i++) {
    ok(i < 5000, `only ${backend.packPuts} uploads ever started`);
    await tick();
  }
  for (let i = 0; i < 20; i++) await tick();
  equal(backend.packPuts, 2, "two packs in flight, not eight");
  backend.open();
  await adding;
  equal(backend.peakPackPuts, 2);
  equal(packer.packs.length, 10);
  equal(packer.stored.size, 40);
});

Deno.test("a failed upload is thrown by the next add and by flush; abort drops the open pack and waits for uploads in flight", async () => {
  const backend = new GatedBackend(2, true);
  backend.failPut = 1;
  const repo = await newRepo(backend);
  const packer = new Packer(repo, { target: 1 << 20 });
  const failed = rejects(
    (async () => {
      for (let i = 0; i < 40; i++) {
        const b = await blob(repo, ObjectType.data, 300_000, 200 + i);
        await packer.add(b.id, ObjectType.data, b.sealed, b.raw);
      }
    })(),
    /disk on fire/,
  );
  await failed;
  await rejects(packer.flush(), /disk on fire/);
  await packer.abort();
  equal(backend.packPuts, 0);
  // what is durable is listed, and only that
  const stored: string[] = [];
  for await (const o of backend.list("packs/")) stored.push(o.key);
  deepStrictEqual(stored.sort(), packer.packs.map((p) => packKey(p.id)).sort());
});

Deno.test("item blobs and file data never share a pack", async () => {
  const f = await fixture();
  const types = new Map<string, Set<number>>();
  for (const key of await packKeys(f.backend)) {
    const size = (await f.backend.get(key))!.length;
    const entries = await readPackHeaderArray(f.backend, f.repo.key, key, size);
    types.set(key, new Set(entries.map((e) => e.type)));
  }
  const sorted = [...types.values()].map((t) => [...t].sort());
  for (const t of sorted) equal(t.length, 1, `one type per pack: ${JSON.stringify(sorted)}`);
  equal(sorted.filter((t) => t[0] === ObjectType.items).length, 2, "a pack of items per archive");
});

Deno.test("packs hashed by a digest off the packer (a codec worker) are named by the SHA-256 of their bytes", async () => {
  const backend = new GatedBackend(2, true);
  const repo = await newRepo(backend);
  const pool = new CodecPool(repo.key.material, repo.config.encryption, 1);
  try {
    let digests = 0;
    const packer = new Packer(repo, {
      target: packTarget(0, repo.config.minPackSize, repo.config.maxPackSize),
      digest: (parts) => {
        digests++;
        return pool.sha256(parts);
      },
    });
    for (let i = 0; i < 8; i++) {
      const b = await blob(repo, ObjectType.data, 300_000, 100 + i);
      await packer.add(b.id, ObjectType.data, b.sealed, b.raw);
    }
    await packer.flush();
    equal(packer.packs.length, 2);
    equal(digests, 2);
    for (const p of packer.packs) {
      await assertStoredUnderItsHash(backend, p);
      const entries = await readPackHeaderArray(backend, repo.key, packKey(p.id), p.size);
      equal(entries.length, 4);
    }
  } finally {
    await pool.close();
  }
});

Deno.test("a codec worker's sealed block carries each object's CRC-32, and the packer writes it into the record", async () => {
  const backend = new GatedBackend(2, true);
  const repo = await newRepo(backend);
  const pool = new CodecPool(repo.key.material, repo.config.encryption, 1);
  try {
    const block = seededBytes(600_000, 7);
    const jobs = [0, 200_000, 450_000].map((offset, i, all) => ({
      offset,
      length: (all[i + 1] ?? block.length) - offset,
      type: ObjectType.data,
      id: new Uint8Array(32).fill(i + 1),
    }));
    const held = await pool.hashBlock(block, jobs);
    const r = await held.seal(jobs, { algorithm: "lz4" });
    equal(r.crcs.length, 3);
    const packer = new Packer(repo, { target: repo.config.minPackSize });
    r.sealed.forEach((sealed, i) => equal(r.crcs[i], crc32(sealed)));
    for (let i = 0; i < 3; i++) {
      await packer.add(jobs[i].id, ObjectType.data, r.sealed[i], jobs[i].length, r.crcs[i]);
    }
    await packer.flush();
    const [p] = packer.packs;
    const bytes = (await backend.get(packKey(p.id)))!;
    for (const e of await readPackHeaderArray(backend, repo.key, packKey(p.id), p.size)) {
      const prefix = parseRecordPrefix(bytes, e.offset - RECORD_PREFIX);
      equal(recordFault(prefix, bytes.subarray(e.offset, e.offset + e.length)), null);
    }
  } finally {
    await pool.close();
  }
});

Deno.test("on a backend that stages, packs are written where they are stored as they fill, hashed by a codec worker, and named by the SHA-256 of their bytes", async () => {
  const root = await Deno.makeTempDir({ prefix: "vger-packer-" });
  const backend = new LocalBackend(root);
  await initRepository(backend, { encryption: "none", minPackSize: 1 << 20, maxPackSize: 4 << 20 });
  const repo = await Repository.open(backend);
  const pool = new CodecPool(repo.key.material, repo.config.encryption, 1);
  try {
    let streams = 0;
    const packer = new Packer(repo, {
      target: packTarget(0, repo.config.minPackSize, repo.config.maxPackSize),
      hasher: () => {
        streams++;
        return pool.hashStream();
      },
    });
    const blobs = [];
    for (let i = 0; i < 9; i++) {
      const data = seededBytes(300_000 + i * 7, 200 + i);
      const id = await repo.key.chunkId(data);
      const type = i % 3 ? ObjectType.data : ObjectType.items;
      const framed = compress(data, { algorithm: "none" });
      blobs.push({ id, type, framed: framed.slice() });
      await packer.add(id, type, await repo.key.seal(type, id, framed), data.length);
    }
    await packer.flush();
    equal(streams, packer.packs.length);
    ok(packer.packs.length >= 3, `${packer.packs.length} packs`);
    for (const p of packer.packs) {
      await assertStoredUnderItsHash(backend, p);
    }
    for (const { id, type, framed } of blobs) {
      const sealed = await intactRecord(backend, packer.stored.get(id)!);
      deepStrictEqual(await repo.key.open(type, id, sealed, "blob"), framed);
    }
    for await (const e of Deno.readDir(root)) ok(!e.name.startsWith(".tmp-"), e.name);
  } finally {
    await pool.close();
    await backend.close();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("a sealed block's buffer may be freed once its objects are in packs, also a block of one object in a pack held in memory", async () => {
  const backend = new GatedBackend(2, true);
  const repo = await newRepo(backend);
  const pool = new CodecPool(repo.key.material, repo.config.encryption, 1);
  try {
    // no digest: the packs are kept as parts in memory (the sink of packs past the staging size)
    const packer = new Packer(repo, { target: repo.config.minPackSize });
    const framed: Uint8Array[] = [];
    const ids: Uint8Array[] = [];
    for (let i = 0; i < 3; i++) {
      const block = seededBytes(100_000 + i, 40 + i);
      const id = new Uint8Array(32).fill(i + 7);
      framed.push(compress(block, { algorithm: "none" })); // before the block goes to the worker
      // one job: the object's view covers the reply's whole buffer
      const job = { offset: 0, length: block.length, type: ObjectType.data, id };
      const r = await (await pool.hashBlock(block, [job])).seal([job], { algorithm: "none" });
      ids.push(id);
      await packer.add(id, ObjectType.data, r.sealed[0], block.length, r.crcs[0]);
      r.dispose();
      new Uint8Array(1 << 20).fill(0xee); // what a freed buffer's memory could hold next
    }
    await packer.flush();
    for (let i = 0; i < 3; i++) {
      const sealed = await intactRecord(backend, packer.stored.get(ids[i])!);
      deepStrictEqual(await repo.key.open(ObjectType.data, ids[i], sealed, "blob"), framed[i]);
    }
  } finally {
    await pool.close();
  }
});
