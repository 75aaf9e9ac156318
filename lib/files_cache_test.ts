import { deepStrictEqual, equal, ok } from "node:assert/strict";
import { createHash } from "node:crypto";
import { basename, dirname } from "node:path";
import { FilesCache, filesCacheDir, RACY_NS } from "./files_cache.ts";
import { compareWalkOrder } from "./walker.ts";

const START = 1_800_000_000_000_000_000n; // the backup's start, ns
const OLD = START - 3n * RACY_NS;
const stamp = { size: 10, mtimeNs: OLD, ctimeNs: OLD + 5n, ino: 77n };
const ids = [new Uint8Array(32).fill(1), new Uint8Array(32).fill(2)];

async function withCacheFile(fn: (path: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "vger-fc-test-" });
  try {
    await fn(`${dir}/repo-id/files`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("a saved cache gives the ids back only for the exact same size, mtime, ctime and inode", async () => {
  await withCacheFile(async (path) => {
    const first = await FilesCache.load(path, { startNs: START });
    equal(first.size, 0);
    first.record("home/a", stamp, ids);
    await first.save();
    equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    const second = await FilesCache.load(path, { startNs: START });
    equal(second.size, 1);
    equal(second.lookup("home/0", stamp), null);
    for (
      const changed of [
        { ...stamp, size: 11 },
        { ...stamp, mtimeNs: stamp.mtimeNs + 1n },
        { ...stamp, ctimeNs: stamp.ctimeNs + 1n },
        { ...stamp, ino: 78n },
      ]
    ) equal(second.lookup("home/a", changed), null, JSON.stringify(changed, (_k, v) => `${v}`));
    deepStrictEqual(second.lookup("home/a", stamp)?.ids, ids, "a hit after the misses");
    equal(second.lookup("home/b", stamp), null);
  });
});

Deno.test("files changed within RACY_NS of the start are not recorded; unseen files are dropped", async () => {
  await withCacheFile(async (path) => {
    const cache = await FilesCache.load(path, { startNs: START });
    cache.record("recent-mtime", { ...stamp, mtimeNs: START - RACY_NS + 1n }, ids);
    cache.record("recent-ctime", { ...stamp, ctimeNs: START - RACY_NS }, ids);
    cache.record("old", stamp, ids);
    await cache.save();
    const again = await FilesCache.load(path, { startNs: START });
    equal(again.size, 1);
    ok(again.lookup("old", stamp));
    // a run that does not see "old" again leaves it out of the next file
    await again.save();
    equal((await FilesCache.load(path, { startNs: START })).size, 0);
  });
});

Deno.test("a damaged or foreign cache file is ignored with a warning, never trusted", async () => {
  await withCacheFile(async (path) => {
    const cache = await FilesCache.load(path, { startNs: START });
    cache.record("home/a", stamp, ids);
    await cache.save();
    const good = await Deno.readFile(path);
    for (const at of [0, 10, good.length - 1]) {
      const bad = good.slice();
      bad[at] ^= 0x40;
      await Deno.writeFile(path, bad);
      const warnings: string[] = [];
      const loaded = await FilesCache.load(path, {
        startNs: START,
        onWarning: (m) => warnings.push(m),
      });
      equal(loaded.size, 0, `byte ${at}`);
      equal(loaded.lookup("home/a", stamp), null);
      equal(warnings.length, 1);
      ok(warnings[0].includes(path) && warnings[0].includes("damaged"), warnings[0]);
    }
    await Deno.writeFile(path, good.subarray(0, 20));
    equal((await FilesCache.load(path, { startNs: START })).size, 0);
  });
});

Deno.test("a cache that cannot be saved is a warning, not a failure", async () => {
  const dir = await Deno.makeTempDir({ prefix: "vger-fc-test-" });
  try {
    await Deno.writeTextFile(`${dir}/blocker`, "a file where the directory should be");
    const cache = await FilesCache.load(`${dir}/blocker/id/files`, { startNs: START });
    cache.record("a", stamp, ids);
    const warnings: string[] = [];
    await cache.save({ onWarning: (m) => warnings.push(m) });
    equal(warnings.length, 1);
    ok(warnings[0].includes("was not saved"), warnings[0]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the cache directory: VGER_CACHE_DIR, then XDG_CACHE_HOME/vger, then ~/.cache/vger", () => {
  const env = (vars: Record<string, string>) => (name: string) => vars[name];
  equal(filesCacheDir(env({ VGER_CACHE_DIR: "/c", XDG_CACHE_HOME: "/x", HOME: "/h" })), "/c");
  equal(filesCacheDir(env({ XDG_CACHE_HOME: "/x", HOME: "/h" })), "/x/vger");
  equal(filesCacheDir(env({ HOME: "/h" })), "/h/.cache/vger");
  equal(filesCacheDir(env({})), null);
});

/** Rows of random shape: unicode and long paths, no ids to more ids than the write buffer holds. */
function manyRows(n: number): { path: string; stamp: typeof stamp; ids: Uint8Array[] }[] {
  const rows = [];
  for (let i = 0; i < n; i++) {
    const count = i === 7 ? 40_000 : i % 5; // 40,000 ids: 1.28 MB, past the 1 MiB buffer
    const rowIds = Array.from({ length: count }, (_, j) => new Uint8Array(32).fill((i + j) & 255));
    rowIds.forEach((id, j) => new DataView(id.buffer).setUint32(0, i * 7 + j));
    const path = `home/ü-${i}/` + "x".repeat(i % 300) + (i % 3 === 0 ? "/日本" : "");
    rows.push({
      path,
      stamp: { size: i * 1000, mtimeNs: OLD - BigInt(i), ctimeNs: OLD + BigInt(i), ino: BigInt(i) },
      ids: rowIds,
    });
  }
  return rows;
}

Deno.test("thousands of rows, a row past the write buffer and unicode paths come back exactly", async () => {
  await withCacheFile(async (path) => {
    // recorded and looked up in walk order, as a backup does
    const rows = manyRows(3000).sort((a, b) => compareWalkOrder(a.path, b.path));
    const first = await FilesCache.load(path, { startNs: START });
    for (const r of rows) first.record(r.path, r.stamp, r.ids);
    await first.save();
    const again = await FilesCache.load(path, { startNs: START });
    equal(again.size, rows.length);
    for (const [i, r] of rows.entries()) {
      const other = rows[(i + 1) % rows.length].stamp;
      equal(again.lookup(r.path, other), null, `${r.path}: another stamp`);
      deepStrictEqual(again.lookup(r.path, r.stamp)?.ids, r.ids, r.path);
      equal(again.lookup(`${r.path}\0`, r.stamp), null, `${r.path}: a new file after it`);
    }
    // only the cache file is left in its directory: no temporary file
    deepStrictEqual([...Deno.readDirSync(dirname(path))].map((e) => e.name), ["files"]);
  });
});

Deno.test("the walk meets new and deleted files between cached ones; an earlier path misses", async () => {
  await withCacheFile(async (path) => {
    const cache = await FilesCache.load(path, { startNs: START });
    for (const p of ["d/a", "d/c", "d/c/x", "d/e", "d-f"]) cache.record(p, stamp, ids);
    await cache.save();
    const again = await FilesCache.load(path, { startNs: START });
    equal(again.size, 5);
    deepStrictEqual(again.lookup("d/a", stamp)?.ids, ids);
    equal(again.lookup("d/b", stamp), null, "new");
    // "d/c" deleted: the walk goes on with what was below it
    deepStrictEqual(again.lookup("d/c/x", stamp)?.ids, ids);
    equal(again.lookup("d/d", stamp), null, "new");
    // "d/e" deleted; "d-f" comes after everything below "d" in walk order
    deepStrictEqual(again.lookup("d-f", stamp)?.ids, ids);
    equal(
      again.lookup("d/e", stamp),
      null,
      "looked up out of walk order: a miss, never a wrong hit",
    );
  });
});

Deno.test("sources walked in another order than last time still hit; a source given twice hits twice", async () => {
  await withCacheFile(async (path) => {
    // last time: sources /b, /a, /b (b/1 deleted since, b/2 unchanged); this time: /a, /c, /b
    const cache = await FilesCache.load(path, { startNs: START });
    for (const p of ["b/1", "b/2", "a/1", "a/2", "b/1", "b/2"]) cache.record(p, stamp, ids);
    await cache.save();
    const again = await FilesCache.load(path, { startNs: START });
    deepStrictEqual(again.lookup("a/1", stamp)?.ids, ids);
    deepStrictEqual(again.lookup("a/2", stamp)?.ids, ids);
    equal(again.lookup("c/1", stamp), null, "new");
    deepStrictEqual(again.lookup("b/2", stamp)?.ids, ids);
    // walked twice this time too: the first run is behind, the last one still ahead
    const twice = await FilesCache.load(path, { startNs: START });
    for (const p of ["b/1", "b/2", "a/1", "a/2", "b/1", "b/2"]) {
      deepStrictEqual(twice.lookup(p, stamp)?.ids, ids, p);
    }
    equal(twice.lookup("a/1", stamp), null, "a third time: no run ahead holds it");
  });
});

Deno.test("a path recorded twice never answers with the other row's ids; a lone surrogate is never recorded", async () => {
  await withCacheFile(async (path) => {
    const cache = await FilesCache.load(path, { startNs: START });
    cache.record("a", stamp, ids);
    cache.record("a", { ...stamp, size: 11 }, [ids[1]]);
    cache.record("bad\ud800", stamp, ids);
    cache.record("bad\udc00", { ...stamp, size: 12 }, [ids[0]]);
    await cache.save();
    const again = await FilesCache.load(path, { startNs: START });
    equal(again.size, 2);
    equal(again.lookup("a", { ...stamp, size: 11 }), null);
    deepStrictEqual(again.lookup("a", stamp)?.ids, ids);
    equal(again.lookup("bad\ud800", stamp), null);
    equal(again.lookup("bad\udc00", { ...stamp, size: 12 }), null);
  });
});

Deno.test("a truncated, reordered, malformed or older-format cache is ignored, never trusted", async () => {
  await withCacheFile(async (path) => {
    const cache = await FilesCache.load(path, { startNs: START });
    cache.record("home/a", stamp, ids);
    cache.record("home/b", { ...stamp, ino: 78n }, [ids[0]]);
    await cache.save();
    const good = await Deno.readFile(path);
    const rowA = 41 + "home/a".length + 64;
    const rowB = 41 + "home/b".length + 32;
    equal(good.length, 8 + rowA + rowB + 36);
    /** The file with its checksum made right again: only the row checks can refuse it. */
    const resealed = (body: Uint8Array, count: number) => {
      const out = new Uint8Array(body.length + 36);
      out.set(body);
      new DataView(out.buffer).setUint32(body.length, count, true);
      out.set(
        createHash("sha256").update(out.subarray(0, body.length + 4)).digest(),
        body.length + 4,
      );
      return out;
    };
    const body = good.subarray(0, good.length - 36);
    const swapped = new Uint8Array(good.length);
    swapped.set(good.subarray(0, 8));
    swapped.set(good.subarray(8 + rowA, 8 + rowA + rowB), 8);
    swapped.set(good.subarray(8, 8 + rowA), 8 + rowB);
    swapped.set(good.subarray(good.length - 36), 8 + rowA + rowB);
    const longPath = body.slice();
    new DataView(longPath.buffer).setUint32(8, 1000, true);
    const manyIds = body.slice();
    new DataView(manyIds.buffer).setUint32(8 + 4 + 6 + 33, 3, true);
    const cases: [string, Uint8Array][] = [
      ...[1, 36, 37, good.length - 36 - 1, good.length / 2].map((cut): [string, Uint8Array] => [
        `truncated by ${cut}`,
        good.subarray(0, good.length - cut),
      ]),
      ["rows swapped, old checksum", swapped],
      ["a path length past the end", resealed(longPath, 2)],
      ["an id count past the end", resealed(manyIds, 2)],
      ["a row count too small (bytes left over)", resealed(body, 1)],
      ["a row count too large", resealed(body, 3)],
      ["a trailing byte", resealed(new Uint8Array([...body, 0]), 2)],
    ];
    for (const [what, bytes] of cases) {
      await Deno.writeFile(path, bytes);
      const warnings: string[] = [];
      const loaded = await FilesCache.load(path, {
        startNs: START,
        onWarning: (m) => warnings.push(m),
      });
      equal(loaded.size, 0, what);
      equal(loaded.lookup("home/a", stamp), null, what);
      equal(warnings.length, 1, what);
    }
    // an earlier version's cache (msgpack, "VGERFC1") is read again without a warning
    const warnings: string[] = [];
    await Deno.writeFile(path, new Uint8Array([...new TextEncoder().encode("VGERFC1\n"), 1, 2]));
    const older = await FilesCache.load(path, {
      startNs: START,
      onWarning: (m) => warnings.push(m),
    });
    equal(older.size, 0);
    deepStrictEqual(warnings, []);
    // the checks refuse only what is wrong: the file made right again loads
    await Deno.writeFile(path, resealed(body, 2));
    equal((await FilesCache.load(path, { startNs: START })).size, 2);
  });
});

Deno.test("a discarded cache leaves no file; a killed backup's temporary file goes at the next load", async () => {
  await withCacheFile(async (path) => {
    const first = await FilesCache.load(path, { startNs: START });
    for (const r of manyRows(20_000)) first.record(r.path, r.stamp, r.ids); // past one buffer
    const dir = dirname(path);
    equal([...Deno.readDirSync(dir)].length, 1, "the new cache is written as it grows");
    first.discard();
    first.record("home/a", stamp, ids);
    await first.save({ onWarning: () => {} });
    deepStrictEqual([...Deno.readDirSync(dir)], []);
    // a process that is gone (no pid is this large) left its file; one that runs keeps its own
    const dead = `${path}.tmp-${Deno.hostname()}-4999999-abcd1234`;
    const alive = `${path}.tmp-${Deno.hostname()}-${Deno.ppid}-abcd1234`;
    await Deno.writeFile(dead, new Uint8Array(10));
    await Deno.writeFile(alive, new Uint8Array(10));
    await FilesCache.load(path, { startNs: START });
    deepStrictEqual([...Deno.readDirSync(dir)].map((e) => e.name), [basename(alive)]);
  });
});

Deno.test("whether a file had extended attributes comes back with its ids", async () => {
  await withCacheFile(async (path) => {
    const cache = await FilesCache.load(path, { startNs: START });
    cache.record("a", stamp, ids, { noXattrs: true });
    cache.record("b", stamp, ids, { noXattrs: false });
    cache.record("c", stamp, ids);
    await cache.save();
    const again = await FilesCache.load(path, { startNs: START });
    deepStrictEqual(again.lookup("a", stamp), { ids, noXattrs: true });
    deepStrictEqual(again.lookup("b", stamp), { ids, noXattrs: false });
    deepStrictEqual(again.lookup("c", stamp), { ids, noXattrs: false });
  });
});
