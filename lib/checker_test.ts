import { deepStrictEqual, equal, ok } from "node:assert/strict";
import "./platform_deno.ts"; // the native codecs, as the CLI has them
import { MemoryBackend } from "../backends/memory.ts";
import type { BackendCapabilities } from "../backends/backend.ts";
import { backup } from "./archiver.ts";
import { type CheckProgress, type CheckResult, hasErrors } from "./check_report.ts";
import { checkRepository } from "./checker.ts";
import { rebuildIndex } from "./index_recovery.ts";
import { repairRepository } from "./repair.ts";
import { compress, loadCodecs } from "./compress.ts";
import { ObjectType } from "./crypto.ts";
import { bytesEqual, toHex } from "./ids.ts";
import { packKey } from "./storage_keys.ts";
import { PACK_PREAMBLE, PackWriter } from "./pack.ts";
import { initRepository, Repository } from "./repository.ts";
import { WriteSession } from "./write_session.ts";
import { concat, fuzzCases, FuzzClock, mutate, rng, seededBytes } from "./_fuzz.ts";
import {
  commit,
  edit,
  errors,
  FAST,
  type Fixture,
  fixture,
  KiB,
  kinds,
  MiB,
  only,
  packKeys,
  packOf,
  PASS,
  RANGES,
  withRepo,
  writeTree,
} from "./_test_repos.ts";

await loadCodecs();

const randomData = seededBytes;

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
  await f.backend.put(packKey(pack.id), pack.body!);
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
