/**
 * Unit tests of lib/repair.ts: check --repair.
 */

import { deepStrictEqual, equal, ok, rejects } from "node:assert/strict";
import "./platform_deno.ts"; // the native codecs, as the CLI has them
import { LocalBackend } from "../backends/local.ts";
import { MemoryBackend } from "../backends/memory.ts";
import { backup } from "./archiver.ts";
import { hasErrors } from "./check_report.ts";
import { checkRepository } from "./checker.ts";
import { loadIndexOrRebuild } from "./index_recovery.ts";
import { repairRepository } from "./repair.ts";
import { loadCodecs } from "./compress.ts";
import { ObjectType } from "./crypto.ts";
import { BackendError } from "./errors.ts";
import { bytesEqual, toHex } from "./ids.ts";
import { packKey } from "./storage_keys.ts";
import { PackWriter } from "./pack.ts";
import { initRepository, Repository } from "./repository.ts";
import { extract } from "./restorer.ts";
import { seededBytes } from "./_fuzz.ts";
import { edit, FAST, fixture, kinds, only, packOf, PASS } from "./_test_repos.ts";

await loadCodecs();

const randomData = seededBytes;

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
  await f.backend.put(packKey(copy.id), copy.body!);
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
