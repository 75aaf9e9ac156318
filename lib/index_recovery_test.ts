import { deepStrictEqual, equal, ok } from "node:assert/strict";
import "./platform_deno.ts"; // the native codecs, as the CLI has them
import { MemoryBackend } from "../backends/memory.ts";
import { ChunkIndex } from "./chunk_index.ts";
import { compress, loadCodecs } from "./compress.ts";
import { ObjectType } from "./crypto.ts";
import { bytesEqual } from "./ids.ts";
import {
  loadIndexOrRebuild,
  readIndexIfSound,
  rebuildFromPacks,
  reconcileWithPacks,
  saveRebuiltIndex,
  writeRebuiltIndex,
} from "./index_recovery.ts";
import { initRepository, Repository } from "./repository.ts";
import { INDEX_KEY, packKey, packKeyHex } from "./storage_keys.ts";
import { WriteSession } from "./write_session.ts";
import { seededBytes } from "./_fuzz.ts";
import { checkRepository } from "./checker.ts";
import { edit, fixture, kinds } from "./_test_repos.ts";

await loadCodecs();

const randomData = seededBytes;

/** A MemoryBackend that counts puts. */
class CountingBackend extends MemoryBackend {
  puts = 0;

  override put(...args: Parameters<MemoryBackend["put"]>): Promise<void> {
    this.puts++;
    return super.put(...args);
  }
}

/** Stores `n` data blobs (one pack per flush) and commits them into the index. */
async function store(repo: Repository<CountingBackend>, n: number, seed: number): Promise<void> {
  const session = new WriteSession(repo, await repo.readIndex());
  for (let i = 0; i < n; i++) {
    const plain = seededBytes(10_000, seed + i);
    const id = await repo.key.chunkId(plain);
    if (!session.reserve(id)) continue;
    const sealed = await repo.key.seal(ObjectType.data, id, compress(plain, { algorithm: "lz4" }));
    await session.add(id, ObjectType.data, sealed, plain.length);
  }
  await session.flush();
  await session.commit({
    name: `a${seed}`,
    hostname: "host",
    username: "user",
    time: "2024-05-06T07:08:09.000Z",
    timeEnd: "2024-05-06T07:08:10.000Z",
    sources: ["/src"],
    items: [],
    stats: { files: 0, original: 0, compressed: 0, deduplicated: 0 },
  });
}

async function repository(): Promise<Repository<CountingBackend>> {
  const backend = new CountingBackend("memory:recovery");
  await initRepository(backend, { encryption: "none" });
  return await Repository.open(backend);
}

Deno.test("writeRebuiltIndex writes nothing over a whole index and writes back a lost one", async () => {
  const repo = await repository();
  await store(repo, 5, 1);
  await store(repo, 3, 100);
  const stored = await repo.readIndex();
  repo.backend.puts = 0;
  deepStrictEqual(await writeRebuiltIndex(repo), { entries: 8, packs: 2, written: false });
  equal(repo.backend.puts, 0);

  await repo.backend.delete(INDEX_KEY);
  equal(await readIndexIfSound(repo), null);
  const loaded = await loadIndexOrRebuild(repo);
  ok(loaded.rebuilt && /rebuilt it in memory from 2 pack headers/.test(loaded.problem!));
  deepStrictEqual(await writeRebuiltIndex(repo), { entries: 8, packs: 2, written: true });
  ok(bytesEqual((await repo.readIndex()).encode(), stored.encode()));
});

Deno.test("saveRebuiltIndex catches up under the commit lock with a pack stored after the listing", async () => {
  const repo = await repository();
  await store(repo, 4, 1);
  await repo.backend.delete(INDEX_KEY);
  const rebuild = await rebuildFromPacks(repo, null);
  equal(rebuild.index.size, 4);
  // a backup stores a pack (and commits) between the listing and the write
  const other = await Repository.open(repo.backend);
  const session = new WriteSession(other, new ChunkIndex());
  const plain = seededBytes(10_000, 999);
  const id = await other.key.chunkId(plain);
  session.reserve(id);
  const sealed = await other.key.seal(ObjectType.data, id, compress(plain, { algorithm: "lz4" }));
  await session.add(id, ObjectType.data, sealed, plain.length);
  await session.flush();
  let adjusted = 0;
  await saveRebuiltIndex(repo, rebuild, null, () => adjusted++);
  equal(adjusted, 0, "no pack vanished: the index is only added to");
  const written = await repo.readIndex();
  equal(written.size, 5);
  ok(written.has(id));
  equal(rebuild.listing.packs.size, 2);
});

Deno.test("reconcileWithPacks drops the chunks of lost packs with a warning and adopts readable unindexed packs", async () => {
  const repo = await repository();
  await store(repo, 3, 1);
  const [lost] = (await repo.readIndex()).packIds();
  // a backup killed after its upload: its pack is stored but not indexed
  const killed = new WriteSession(repo, await repo.readIndex());
  const ids: Uint8Array[] = [];
  for (let i = 0; i < 2; i++) {
    const plain = seededBytes(10_000, 50 + i);
    const id = await repo.key.chunkId(plain);
    killed.reserve(id);
    const sealed = await repo.key.seal(ObjectType.data, id, compress(plain, { algorithm: "lz4" }));
    await killed.add(id, ObjectType.data, sealed, plain.length);
    ids.push(id);
  }
  await killed.flush();
  await repo.backend.put(packKeyHex("ab".repeat(32)), new Uint8Array(100)); // unreadable
  await repo.backend.delete(packKey(lost));

  const session = new WriteSession(repo, await repo.readIndex());
  const warnings: string[] = [];
  await reconcileWithPacks(repo, session, { onWarning: (w) => warnings.push(w) });
  deepStrictEqual(warnings, [
    `1 pack is missing from "memory:recovery" (3 blobs): their data is stored again; run vger check --repair`,
  ]);
  equal(session.index.size, 2);
  ok(ids.every((id) => session.has(id) && session.added.has(id)));
  ok(session.index.packIds().every((p) => !bytesEqual(p, lost)));
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
