import { deepStrictEqual } from "node:assert/strict";
import { MemoryBackend } from "../backends/memory.ts";
import { sweepIntervalMs, sweepLocks } from "./server_locks.ts";

Deno.test("sweepLocks removes the locks not written for the TTL, in every repository, and nothing else", async () => {
  const backend = new MemoryBackend();
  for (const key of ["a/locks/1", "a/locks/commit", "b/locks/2", "a/manifest", "c/locks/3"]) {
    await backend.put(key, new Uint8Array(1));
  }
  const later = Date.now() + 10_000;
  // not yet expired
  deepStrictEqual(await sweepLocks(backend, ["a", "b"], { ttlMs: 60_000, now: () => later }), []);
  // expired: only the repositories named, only their locks
  const removed = await sweepLocks(backend, ["a", "b"], { ttlMs: 5_000, now: () => later });
  deepStrictEqual(removed.sort(), ["a/locks/1", "a/locks/commit", "b/locks/2"]);
  const left = (await Array.fromAsync(backend.list(""))).map((o) => o.key).sort();
  deepStrictEqual(left, ["a/manifest", "c/locks/3"]);
  deepStrictEqual([sweepIntervalMs(3600), sweepIntervalMs(1.5), sweepIntervalMs(1200)], [
    60_000,
    1000,
    60_000,
  ]);
});
