import { deepStrictEqual, equal, ok } from "node:assert/strict";
import { FilesCache, filesCacheDir, RACY_NS } from "./files_cache.ts";

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
    deepStrictEqual(second.lookup("home/a", stamp), ids);
    equal(second.lookup("home/b", stamp), null);
    for (
      const changed of [
        { ...stamp, size: 11 },
        { ...stamp, mtimeNs: stamp.mtimeNs + 1n },
        { ...stamp, ctimeNs: stamp.ctimeNs + 1n },
        { ...stamp, ino: 78n },
      ]
    ) equal(second.lookup("home/a", changed), null, JSON.stringify(changed, (_k, v) => `${v}`));
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
