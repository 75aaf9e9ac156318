import { readBlobsAhead } from "./archive_items.ts";
import { createHash } from "node:crypto";
import "./platform_deno.ts"; // the native codecs, as the CLI has them
import { seededBytes } from "./_fuzz.ts";
import { addBlob } from "./_test_repos.ts";
import { deepStrictEqual, equal, notEqual, ok, rejects } from "node:assert/strict";
import { MemoryBackend } from "../backends/memory.ts";
import type { BackendCapabilities, PutBody, StoragePolicy } from "../backends/backend.ts";
import { type ArchiveMeta, encodeArchiveMeta } from "./archive.ts";
import { DEFAULT_CHUNKER_PARAMS } from "./chunker.ts";
import { loadCodecs } from "./compress.ts";
import { ObjectType } from "./crypto.ts";
import {
  AlreadyExistsError,
  DecryptionError,
  ForbiddenError,
  IntegrityError,
  NotFoundError,
  UsageError,
} from "./errors.ts";
import { toHex } from "./ids.ts";
import { packKey } from "./storage_keys.ts";
import type { KdfParams } from "./key_file.ts";
import { COMMIT_LOCK } from "./lock.ts";
import {
  commitChanges,
  deleteArchive,
  deleteArchiveObject,
  deletePack,
  type InitOptions,
  initRepository,
  listArchiveObjects,
  loadKeyFile,
  loadRepoConfig,
  Repository,
  requireRole,
  saveKeyFile,
  saveManifest,
  savePack,
  sealArchive,
  unlockKeyFile,
} from "./repository.ts";
import { deleteArchives } from "./archive_delete.ts";
import { WriteSession } from "./write_session.ts";

await loadCodecs();

const FAST: KdfParams = { iterations: 1, memoryKiB: 1024, parallelism: 1 };
const PASS = "correct horse battery staple";
const enc = new TextEncoder();
const dec = new TextDecoder();

/** A MemoryBackend that records every write, in order. */
class RecordingBackend extends MemoryBackend {
  log: string[] = [];

  override put(key: string, body: PutBody): Promise<void> {
    this.log.push(`put ${key}`);
    return super.put(key, body);
  }

  override create(key: string, body: PutBody): Promise<boolean> {
    this.log.push(`create ${key}`);
    return super.create(key, body);
  }

  override delete(key: string): Promise<void> {
    this.log.push(`delete ${key}`);
    return super.delete(key);
  }
}

async function newRepo(
  options: Partial<InitOptions> = {},
): Promise<{ backend: RecordingBackend; repo: Repository<RecordingBackend> }> {
  const backend = new RecordingBackend("memory:test");
  await initRepository(backend, {
    encryption: "aes256gcm",
    passphrase: PASS,
    kdf: FAST,
    minPackSize: 1 << 20,
    maxPackSize: 4 << 20,
    ...options,
  });
  const repo = await Repository.open(backend, { passphrase: options.passphrase ?? PASS });
  return { backend, repo };
}

const randomData = seededBytes;

function meta(name: string, items: Uint8Array[]): ArchiveMeta {
  return {
    name,
    hostname: "host",
    username: "user",
    time: "2024-05-06T07:08:09.000Z",
    timeEnd: "2024-05-06T07:08:10.000Z",
    sources: ["/src"],
    items,
    stats: { files: 2, original: 300_000, compressed: 1234, deduplicated: 567 },
  };
}

async function editConfig(backend: MemoryBackend, edit: (text: string) => string): Promise<void> {
  const before = dec.decode((await backend.get("config"))!);
  const after = edit(before);
  notEqual(after, before, "the edit changed the config");
  await backend.put("config", enc.encode(after));
}

/** A plain Uint8Array view (lz4 and zstd output are Node Buffers). */
function plain(b: Uint8Array): Uint8Array {
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

function integrity(pattern: RegExp): (err: unknown) => boolean {
  return (err: unknown) => {
    ok(err instanceof IntegrityError, `expected IntegrityError, got ${err}`);
    ok(pattern.test(err.message), err.message);
    return true;
  };
}

for (const encryption of ["aes256gcm", "none"] as const) {
  Deno.test(`init writes key, index, manifest, then config; open reads them back (${encryption})`, async () => {
    const { backend, repo } = await newRepo({ encryption });
    deepStrictEqual(backend.log, [
      "put keys/repokey",
      "put index",
      "put manifest",
      "create config",
    ]);
    equal(repo.config.encryption, encryption);
    equal(repo.key.encrypted, encryption === "aes256gcm");
    deepStrictEqual(repo.config.chunker, { ...DEFAULT_CHUNKER_PARAMS });
    deepStrictEqual([repo.config.minPackSize, repo.config.maxPackSize], [1 << 20, 4 << 20]);
    ok(/^[0-9a-f]{64}$/.test(repo.config.id));
    deepStrictEqual(await repo.readManifest(), { archives: [], counter: 1 });
    equal((await repo.readIndex()).size, 0);
    const config = JSON.parse(dec.decode((await backend.get("config"))!));
    equal(config.encryption, encryption);
  });
}

Deno.test("init refuses a location that holds a repository or part of one", async () => {
  const { backend } = await newRepo();
  await rejects(
    initRepository(backend, { encryption: "none" }),
    (err: unknown) => err instanceof AlreadyExistsError && /config is present/.test(err.message),
  );
  for (const key of ["keys/repokey", "manifest", "index"]) {
    const partial = new MemoryBackend();
    await partial.put(key, Uint8Array.of(1));
    await rejects(initRepository(partial, { encryption: "none" }), AlreadyExistsError);
    equal(await partial.size("config"), null, "nothing was written");
  }
});

Deno.test("init rejects bad pack sizes and chunker parameters before writing anything", async () => {
  const backend = new MemoryBackend();
  await rejects(initRepository(backend, { encryption: "none", minPackSize: 1000 }), UsageError);
  await rejects(
    initRepository(backend, { encryption: "none", minPackSize: 8 << 20, maxPackSize: 4 << 20 }),
    UsageError,
  );
  await rejects(
    initRepository(backend, {
      encryption: "none",
      chunker: { minSize: 64, avgSize: 100, maxSize: 200 },
    }),
    UsageError,
  );
  const keys = [];
  for await (const o of backend.list("")) keys.push(o.key);
  deepStrictEqual(keys, []);
});

Deno.test("open with a wrong passphrase gives DecryptionError", async () => {
  const { backend } = await newRepo();
  await rejects(Repository.open(backend, { passphrase: "wrong" }), DecryptionError);
  await rejects(Repository.open(backend, {}), UsageError);
  const asked: string[] = [];
  const repo = await Repository.open(backend, {
    passphrase: () => {
      asked.push("asked");
      return Promise.resolve(PASS);
    },
  });
  deepStrictEqual(asked, ["asked"]);
  equal(repo.location, "memory:test");
});

Deno.test("open of a plaintext repository never asks for a passphrase", async () => {
  const { backend } = await newRepo({ encryption: "none", passphrase: undefined });
  const repo = await Repository.open(backend, {
    passphrase: () => Promise.reject(new Error("must not be asked")),
  });
  equal(repo.key.encrypted, false);
});

Deno.test("open reports a missing config or key file as NotFoundError", async () => {
  await rejects(Repository.open(new MemoryBackend("memory:empty")), (err: unknown) => {
    ok(err instanceof NotFoundError);
    ok(err.message.includes('"memory:empty": config not found'), err.message);
    return true;
  });
  const { backend } = await newRepo();
  await backend.delete("keys/repokey");
  await rejects(Repository.open(backend, { passphrase: PASS }), NotFoundError);
});

Deno.test("switching the config to encryption none is detected on open", async () => {
  const { backend } = await newRepo();
  await editConfig(backend, (t) => t.replace('"encryption":"aes256gcm"', '"encryption":"none"'));
  await rejects(Repository.open(backend, { passphrase: PASS }), integrity(/inconsistent/));
});

Deno.test("switching a plaintext repository's config to aes256gcm is detected on open", async () => {
  const { backend } = await newRepo({ encryption: "none", passphrase: undefined });
  await editConfig(backend, (t) => t.replace('"encryption":"none"', '"encryption":"aes256gcm"'));
  await rejects(Repository.open(backend, { passphrase: PASS }), integrity(/inconsistent/));
});

Deno.test("changed chunker or pack parameters in the config fail the MAC on open", async () => {
  const edits = [
    (t: string) => t.replace(`"min_size":${DEFAULT_CHUNKER_PARAMS.minSize}`, '"min_size":65536'),
    (t: string) => t.replace(`"avg_size":${DEFAULT_CHUNKER_PARAMS.avgSize}`, '"avg_size":1048576'),
    (t: string) => t.replace(`"max_pack_size":${4 << 20}`, `"max_pack_size":${8 << 20}`),
    (t: string) => t.replace(/"mac":"(.)/, (_m, c: string) => `"mac":"${c === "0" ? "1" : "0"}`),
  ];
  for (const edit of edits) {
    const { backend } = await newRepo();
    await editConfig(backend, edit);
    await rejects(Repository.open(backend, { passphrase: PASS }), integrity(/MAC does not match/));
  }
});

Deno.test("a config damaged into bad JSON gives IntegrityError", async () => {
  const { backend } = await newRepo();
  await editConfig(backend, (t) => t.slice(0, 20));
  await rejects(
    Repository.open(backend, { passphrase: PASS }),
    integrity(/Repository config is corrupt/),
  );
});

Deno.test("blobs written through a WriteSession commit read back byte for byte", async () => {
  const { backend, repo } = await newRepo();
  const session = new WriteSession(repo, await repo.readIndex());
  const chunks = [randomData(200_000, 1), new Uint8Array(100_000), enc.encode("tiny")];
  const ids = [];
  for (const c of chunks) ids.push(await addBlob(repo, session, ObjectType.data, c));
  // A duplicate is not stored twice.
  equal(session.reserve(ids[0]), false);
  const items = enc.encode("item stream blob");
  const itemsId = await addBlob(repo, session, ObjectType.items, items);
  backend.log = [];
  const entry = await session.commit(meta("first", [itemsId]));

  const again = await Repository.open(backend, { passphrase: PASS });
  const index = await again.readIndex();
  equal(index.size, 4);
  for (const [i, c] of chunks.entries()) {
    deepStrictEqual(plain(await again.readBlob(index, ids[i], ObjectType.data)), c);
  }
  deepStrictEqual(plain(await again.readBlob(index, itemsId, ObjectType.items)), items);
  // Asking for a blob under the wrong type fails authentication.
  await rejects(again.readBlob(index, itemsId, ObjectType.data), IntegrityError);

  const manifest = await again.readManifest();
  deepStrictEqual(manifest.archives, [entry]);
  deepStrictEqual(
    await again.readArchive(await again.findArchive("first")),
    meta("first", [itemsId]),
  );
  deepStrictEqual(entry.id, await again.key.chunkId(encodeArchiveMeta(meta("first", [itemsId]))));
  await rejects(again.findArchive("nope"), NotFoundError);

  // Two packs, data and item blobs apart, each stored under the SHA-256 of its bytes.
  const packs = [];
  for await (const o of backend.list("packs/")) packs.push(o.key);
  equal(packs.length, 2);
  for (const key of packs) {
    const bytes = (await backend.get(key))!;
    equal(key, packKey(new Uint8Array(createHash("sha256").update(bytes).digest())));
  }
  const dataPack = packKey(index.get(ids[0])!.pack);
  const itemsPack = packKey(index.get(itemsId)!.pack);
  deepStrictEqual([dataPack, itemsPack].sort(), packs.sort());
  for (const id of ids) equal(packKey(index.get(id)!.pack), dataPack);

  // Write order: packs, then (under the commit lock) index, archive, manifest.
  deepStrictEqual(backend.log.slice(0, 2).sort(), packs.map((k) => `put ${k}`).sort());
  deepStrictEqual(backend.log.slice(2), [
    `create ${COMMIT_LOCK}`,
    "put index",
    `put archives/${toHex(entry.id)}`,
    "put manifest",
    `delete ${COMMIT_LOCK}`,
  ]);
});

/** A RecordingBackend of `connections` connections whose pack puts wait until `open()` is called. */
class GatedPackBackend extends RecordingBackend {
  override readonly capabilities: BackendCapabilities;
  packPuts = 0;
  peakPackPuts = 0;
  #gate = Promise.withResolvers<void>();

  constructor(connections: number) {
    super("memory:gated");
    this.capabilities = { connections };
  }

  /** Lets every held and later pack put complete. */
  open(): void {
    this.#gate.resolve();
  }

  override async put(key: string, body: PutBody): Promise<void> {
    if (!key.startsWith("packs/")) return super.put(key, body);
    this.peakPackPuts = Math.max(this.peakPackPuts, ++this.packPuts);
    try {
      await this.#gate.promise;
      await super.put(key, body);
    } finally {
      this.packPuts--;
    }
  }
}

Deno.test("a WriteSession uploads as many packs at once as the backend has connections", async () => {
  const tick = () => new Promise((r) => setTimeout(r, 1));
  for (const connections of [1, 3]) {
    const backend = new GatedPackBackend(connections);
    await initRepository(backend, {
      encryption: "none",
      minPackSize: 1 << 20,
      maxPackSize: 4 << 20,
    });
    const repo = await Repository.open(backend);
    const session = new WriteSession(repo, await repo.readIndex());
    const adding = (async () => {
      for (let i = 0; i < 40; i++) {
        await addBlob(repo, session, ObjectType.data, randomData(300_000, 100 + i));
        // add returns with a slot free: the next full pack starts its upload at once
        ok(backend.packPuts < connections, `${backend.packPuts} uploads after add`);
      }
    })();
    // the puts hang until opened: uploads pile up to the limit, and no further
    for (let i = 0; backend.packPuts < connections; i++) {
      ok(i < 5000, `only ${backend.packPuts} of ${connections} uploads ever started`);
      await tick();
    }
    for (let i = 0; i < 20; i++) await tick();
    equal(backend.packPuts, connections);
    backend.open();
    await adding;
    await session.commit(meta("a", []));
    let packs = 0;
    for await (const _ of backend.list("packs/")) packs++;
    ok(packs >= 8, `${packs} packs`);
    equal(backend.peakPackPuts, connections);
  }
});

Deno.test("readBlob names the blob and its pack when the pack is damaged or the blob unknown", async () => {
  const { backend, repo } = await newRepo();
  const session = new WriteSession(repo, await repo.readIndex());
  const data = randomData(5000, 2);
  const id = await addBlob(repo, session, ObjectType.data, data);
  await session.commit(meta("a", []));
  const index = await repo.readIndex();
  const loc = index.get(id)!;
  const key = packKey(loc.pack);
  const bytes = (await backend.get(key))!;
  bytes[loc.offset + 20] ^= 1;
  await backend.put(key, bytes);
  await rejects(
    repo.readBlob(index, id, ObjectType.data),
    integrity(new RegExp(`^Chunk ${toHex(id)} in pack ${toHex(loc.pack)} is corrupt`)),
  );
  await backend.put(key, bytes.subarray(0, loc.offset + 10));
  await rejects(repo.readBlob(index, id, ObjectType.data), integrity(/cannot be read/));
  await rejects(
    repo.readBlob(index, new Uint8Array(32), ObjectType.data),
    integrity(/missing from the index/),
  );
});

Deno.test("objects swapped by whoever holds the storage fail authentication", async () => {
  const { backend, repo } = await newRepo();
  const session = new WriteSession(repo, await repo.readIndex());
  const id = await addBlob(repo, session, ObjectType.data, enc.encode("x"));
  const a = await session.commit(meta("a", []));
  const s2 = new WriteSession(repo, await repo.readIndex());
  const b = await s2.commit(meta("b", [id]));
  // The index in place of the manifest: wrong type tag.
  await backend.put("manifest", (await backend.get("index"))!);
  await rejects(repo.readManifest(), integrity(/^Manifest is corrupt: type tag/));
  // Archive b's object under archive a's id: wrong identity.
  await backend.put(`archives/${toHex(a.id)}`, (await backend.get(`archives/${toHex(b.id)}`))!);
  await rejects(
    repo.readArchive(a),
    integrity(/^Archive "a" \(archives\/[0-9a-f]{64}\) is corrupt/),
  );
});

Deno.test("a commit under a taken name fails, leaves the manifest as it was and frees the lock", async () => {
  const { backend, repo } = await newRepo();
  const s1 = new WriteSession(repo, await repo.readIndex());
  await addBlob(repo, s1, ObjectType.data, randomData(1000, 3));
  await s1.commit(meta("same", []));
  const before = await backend.get("manifest");
  const s2 = new WriteSession(repo, await repo.readIndex());
  await addBlob(repo, s2, ObjectType.data, randomData(1000, 4));
  await rejects(s2.commit(meta("same", [])), AlreadyExistsError);
  deepStrictEqual(await backend.get("manifest"), before);
  equal(await backend.size(COMMIT_LOCK), null);
  // The second pack stays, unreferenced, for compact to remove.
  const packs = [];
  for await (const o of backend.list("packs/")) packs.push(o.key);
  equal(packs.length, 2);
  equal((await repo.readIndex()).size, 1);
});

Deno.test("two sessions started from the same index both land in the merged index and manifest", async () => {
  const { backend, repo } = await newRepo();
  const start = await repo.readIndex();
  const s1 = new WriteSession(repo, start);
  const s2 = new WriteSession(repo, await repo.readIndex());
  const id1 = await addBlob(repo, s1, ObjectType.data, randomData(3000, 5));
  const id2 = await addBlob(repo, s2, ObjectType.data, randomData(3000, 6));
  await Promise.all([s1.commit(meta("one", [])), s2.commit(meta("two", []))]);
  const again = await Repository.open(backend, { passphrase: PASS });
  const index = await again.readIndex();
  ok(index.has(id1) && index.has(id2));
  deepStrictEqual((await again.readManifest()).archives.map((a) => a.name).sort(), ["one", "two"]);
  deepStrictEqual(plain(await again.readBlob(index, id2, ObjectType.data)), randomData(3000, 6));
});

Deno.test("a session with more new blobs than the index holds takes the index in; a session commits once", async () => {
  const { backend, repo } = await newRepo();
  const s1 = new WriteSession(repo, await repo.readIndex());
  const old = await addBlob(repo, s1, ObjectType.data, randomData(3000, 7));
  await s1.commit(meta("one", []));
  const s2 = new WriteSession(repo, await repo.readIndex());
  const added = [];
  for (let i = 0; i < 5; i++) {
    added.push(await addBlob(repo, s2, ObjectType.data, randomData(900, 10 + i)));
  }
  await s2.commit(meta("two", []));
  await rejects(s2.commit(meta("three", [])), /commits once/);
  const again = await Repository.open(backend, { passphrase: PASS });
  const index = await again.readIndex();
  equal(index.size, 6);
  deepStrictEqual(plain(await again.readBlob(index, old, ObjectType.data)), randomData(3000, 7));
  for (const [i, id] of added.entries()) {
    deepStrictEqual(
      plain(await again.readBlob(index, id, ObjectType.data)),
      randomData(900, 10 + i),
    );
  }
  deepStrictEqual((await again.readManifest()).archives.map((a) => a.name), ["one", "two"]);
});

Deno.test("every manifest write (backup commit, delete) raises the manifest counter by one", async () => {
  const backend = new MemoryBackend();
  await initRepository(backend, { encryption: "none" });
  const repo = await Repository.open(backend);
  equal((await repo.readManifest()).counter, 1);
  equal(repo.manifestCounter, 1);
  const entry = {
    name: "a",
    id: new Uint8Array(32),
    time: new Date(0).toISOString(),
    hostname: "h",
    username: "u",
    stats: { files: 0, original: 0, compressed: 0, deduplicated: 0 },
  };
  const m = await repo.readManifest();
  m.archives.push(entry);
  await saveManifest(repo, m);
  equal(m.counter, 2);
  equal(repo.manifestCounter, 2);
  await deleteArchives(repo, ["a"]);
  equal(repo.manifestCounter, 3);
  const again = await Repository.open(backend);
  deepStrictEqual(await again.readManifest(), { archives: [], counter: 3 });
});

Deno.test("a manifest older than one already read by the same repository object is refused", async () => {
  const backend = new MemoryBackend();
  await initRepository(backend, { encryption: "none" });
  const repo = await Repository.open(backend);
  const old = await backend.get("manifest");
  await saveManifest(repo, await repo.readManifest());
  equal(repo.manifestCounter, 2);
  // the storage serves the old copy to a later read of the same command
  await backend.put("manifest", old!);
  await rejects(() => repo.readManifest(), /number 1, older than number 2 already seen/);
  // a repository object told of a newer counter (by the client's memory) refuses it likewise
  const fresh = await Repository.open(backend);
  fresh.noteManifestCounter(2);
  await rejects(() => fresh.readManifest(), /served an old copy/);
});

Deno.test("commitChanges writes index, archive, manifest in that order under the commit lock, and nothing when the change throws", async () => {
  const { backend, repo } = await newRepo();
  const meta: ArchiveMeta = {
    name: "a",
    time: new Date(0).toISOString(),
    timeEnd: new Date(0).toISOString(),
    hostname: "h",
    username: "u",
    sources: [],
    items: [],
    stats: { files: 0, original: 0, compressed: 0, deduplicated: 0 },
  };
  const archive = await sealArchive(repo, meta);
  backend.log = [];
  await rejects(
    commitChanges(repo, async (tx) => {
      tx.saveIndex(await tx.index());
      throw new UsageError("changed my mind");
    }),
    UsageError,
  );
  deepStrictEqual(backend.log, [`create ${COMMIT_LOCK}`, `delete ${COMMIT_LOCK}`]);
  backend.log = [];
  const got = await commitChanges(repo, async (tx) => {
    const m = await tx.manifest();
    equal(await tx.manifest(), m, "read once");
    const { name, time, hostname, username, stats } = meta;
    m.archives.push({ name, id: archive.id, time, hostname, username, stats });
    // asked in any order, written in the crash-safe one
    tx.saveManifest(m);
    tx.saveArchive(archive.id, archive.sealed);
    tx.saveIndex(await tx.index());
    return 7;
  });
  equal(got, 7);
  deepStrictEqual(backend.log, [
    `create ${COMMIT_LOCK}`,
    "put index",
    `put archives/${toHex(archive.id)}`,
    "put manifest",
    `delete ${COMMIT_LOCK}`,
  ]);
  equal(repo.manifestCounter, 2);
  equal((await repo.readArchive(await repo.findArchive("a"))).name, "a");
  backend.log = [];
  await commitChanges(repo, async (tx) => tx.saveManifest(await tx.manifest()), { lockHeld: true });
  deepStrictEqual(backend.log, ["put manifest"]);
  equal((await repo.readManifest()).counter, 3);
  await deleteArchive(repo, archive.id);
  deepStrictEqual(backend.log, ["put manifest", `delete archives/${toHex(archive.id)}`]);
});

Deno.test("savePack and deletePack write and remove a pack under its key, by id or hex id", async () => {
  const { backend } = await newRepo();
  const id = new Uint8Array(32).fill(0xab);
  backend.log = [];
  await savePack({ backend }, id, [enc.encode("pa"), enc.encode("ck")]);
  equal(dec.decode((await backend.get(packKey(id)))!), "pack");
  await deletePack({ backend }, id);
  await savePack({ backend }, id, enc.encode("again"));
  await deletePack({ backend }, toHex(id));
  equal(await backend.get(packKey(id)), null);
  const key = packKey(id);
  deepStrictEqual(backend.log, [`put ${key}`, `delete ${key}`, `put ${key}`, `delete ${key}`]);
});

Deno.test("listArchiveObjects names each object under archives/ with its id, or null for a stray one, and deleteArchiveObject removes it", async () => {
  const { backend } = await newRepo();
  const hex = "cd".repeat(32);
  await backend.put(`archives/${hex}`, enc.encode("archive"));
  await backend.put("archives/stray", enc.encode("x"));
  const listed = [];
  for await (const o of listArchiveObjects({ backend })) listed.push(o);
  deepStrictEqual(
    listed.sort((a, b) => a.key < b.key ? -1 : 1),
    [{ key: `archives/${hex}`, hex }, { key: "archives/stray", hex: null }],
  );
  for (const o of listed) await deleteArchiveObject({ backend }, o);
  equal(await backend.get(`archives/${hex}`), null);
  equal(await backend.get("archives/stray"), null);
});

Deno.test("saveKeyFile reads the written key file back, and puts the previous one back (or none) when its check fails", async () => {
  const { backend, repo } = await newRepo();
  const original = (await loadKeyFile(backend))!;
  equal((await loadRepoConfig(backend))!.config.id, repo.config.id);
  const { key } = await unlockKeyFile(original, (await loadRepoConfig(backend))!, {
    passphrase: PASS,
    location: backend.location,
  });
  deepStrictEqual(key.material, repo.key.material);
  const seen: (Uint8Array | null)[] = [];
  await saveKeyFile(backend, enc.encode("new"), {
    previous: original,
    failure: "Cannot test",
    check: (back) => Promise.resolve(void seen.push(back)),
  });
  deepStrictEqual(seen, [enc.encode("new")]);
  const refuse = () => Promise.reject(new IntegrityError("wrong"));
  await rejects(
    saveKeyFile(backend, enc.encode("bad"), {
      previous: original,
      failure: "Cannot test",
      check: refuse,
    }),
    (e) =>
      e instanceof IntegrityError &&
      e.message ===
        "Cannot test: the written key file did not read back correctly (wrong); the previous one was put back",
  );
  deepStrictEqual(await loadKeyFile(backend), original);
  await rejects(
    saveKeyFile(backend, enc.encode("bad"), {
      previous: null,
      failure: "Cannot test",
      check: refuse,
    }),
    IntegrityError,
  );
  equal(await loadKeyFile(backend), null);
  await backend.delete("config");
  equal(await loadRepoConfig(backend), null);
});

Deno.test("init creates the config first on a storage that takes writes only once it exists, and last elsewhere", async () => {
  for (const configFirst of [true, false]) {
    const order: string[] = [];
    // vger-server's rule for a new repository: nothing but the create of its config
    class Server extends MemoryBackend {
      override readonly capabilities: BackendCapabilities = { connections: 1, configFirst };
      override async put(key: string, body: PutBody): Promise<void> {
        if (configFirst && (await this.size("config")) === null) {
          throw new Error(`unknown repository: put of ${key}`);
        }
        order.push(key);
        return await super.put(key, body);
      }
      override async create(key: string, body: PutBody): Promise<boolean> {
        order.push(key);
        return await super.create(key, body);
      }
    }
    const backend = new Server();
    await initRepository(backend, { encryption: "aes256gcm", passphrase: "p", kdf: FAST });
    deepStrictEqual(
      order,
      configFirst
        ? ["config", "keys/repokey", "index", "manifest"]
        : ["keys/repokey", "index", "manifest", "config"],
    );
    const repo = await Repository.open(backend, { passphrase: "p" });
    deepStrictEqual((await repo.readManifest()).archives, []);
    await rejects(
      initRepository(backend, { encryption: "aes256gcm", passphrase: "p", kdf: FAST }),
      /already exists/,
    );
  }
});

Deno.test("requireRole refuses up front in one line naming the role needed, or that the server is append-only", async () => {
  const at = (policy?: StoragePolicy) => ({
    location: "http://h/laptop",
    ...(policy ? { policy: () => Promise.resolve(policy) } : {}),
  });
  const refusal = async (policy: StoragePolicy | undefined, needed: "append-only" | "full") => {
    try {
      await requireRole(at(policy), needed, "do it");
      return "allowed";
    } catch (err) {
      return (err as Error).message;
    }
  };
  equal(await refusal(undefined, "full"), "allowed", "no policy: everything");
  equal(await refusal({ appendOnly: false }, "full"), "allowed", "no role named: full");
  equal(await refusal({ appendOnly: true, role: "append-only" }, "append-only"), "allowed");
  equal(await refusal({ appendOnly: true, role: "full" }, "append-only"), "allowed");
  equal(
    await refusal({ appendOnly: true, role: "read-only" }, "append-only"),
    'Cannot do it: repository "http://h/laptop" needs role append-only or full; this token is read-only',
  );
  equal(
    await refusal({ appendOnly: true, role: "append-only" }, "full"),
    'Cannot do it: repository "http://h/laptop" needs role full; this token is append-only',
  );
  equal(
    await refusal({ appendOnly: true, role: "full" }, "full"),
    'Cannot do it: repository "http://h/laptop" is append-only (its server refuses deletes and overwrites)',
  );
  await rejects(
    requireRole(at({ appendOnly: false, role: "read-only" }), "full", "x"),
    ForbiddenError,
  );
});

Deno.test("readBlobsAhead yields blobs in order with at most `ahead` reads at once, a failed read in its place", async () => {
  let inFlight = 0;
  let most = 0;
  const repo = {
    async readBlob(_index: unknown, id: Uint8Array): Promise<Uint8Array> {
      inFlight++;
      most = Math.max(most, inFlight);
      // later blobs finish first: the order must still be the ids'
      await new Promise((resolve) => setTimeout(resolve, 20 - 3 * id[0]));
      inFlight--;
      if (id[0] === 3) throw new IntegrityError("Metadata blob 03 cannot be read: gone");
      return new Uint8Array([id[0], id[0]]);
    },
  } as unknown as Repository;
  const ids = [0, 1, 2, 3, 4, 5].map((n) => new Uint8Array([n]));
  const got: (number | string)[] = [];
  for await (
    const blob of readBlobsAhead(repo, undefined as never, ids, {
      type: ObjectType.items,
      ahead: 3,
    })
  ) {
    got.push(blob instanceof Uint8Array ? blob[0] : blob.message);
  }
  deepStrictEqual(got, [0, 1, 2, "Metadata blob 03 cannot be read: gone", 4, 5]);
  equal(most, 3);
});
