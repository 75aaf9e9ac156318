import { deepStrictEqual, equal, ok } from "node:assert/strict";
import { MemoryBackend } from "../backends/memory.ts";
import { Quota } from "./server_quota.ts";
import { HttpError } from "./server_request.ts";

const call = <T>(_repo: string, _key: string, fn: () => Promise<T>) => fn();

Deno.test("quota: concurrent reservations never pass the quota; released ones free their bytes", async () => {
  const backend = new MemoryBackend();
  await backend.put("r/config", new Uint8Array(10));
  await backend.put(".vger-server/versions/r/manifest/1", new Uint8Array(5));
  const quota = new Quota(backend, 100, call);
  deepStrictEqual(await quota.usage("r"), {
    usedBytes: 15,
    objects: 1,
    packs: 0,
    keptBytes: 5,
    heldBytes: 0,
  });
  const results = await Promise.allSettled(
    Array.from({ length: 10 }, (_, i) => quota.reserve("r", `k${i}`, 30, 0)),
  );
  const held = results.filter((r) => r.status === "fulfilled");
  equal(held.length, 2); // 15 + 2 x 30 = 75; a third would make 105
  for (const r of results) {
    if (r.status === "rejected") equal((r.reason as HttpError).status, 413);
  }
  // a replace frees the old bytes
  const replace = await quota.reserve("r", "config", 35, 10);
  await replace!.release();
  for (const r of held) {
    await (r as PromiseFulfilledResult<{ release(): Promise<void> }>).value.release();
  }
  deepStrictEqual(await Array.fromAsync(backend.list(".vger-server/reservations/")), []);
  deepStrictEqual(await Array.fromAsync(backend.list(".vger-server/mutex/")), []);
  const again = await quota.reserve("r", "k", 85, 0);
  await again!.release();
  // no quota: nothing is reserved, nothing written
  equal(await new Quota(backend, 0, call).reserve("r", "k", 1e12, 0), null);
});

Deno.test("quota: an upload that fits once the uploads in flight settle waits for them, briefly, instead of a 413", async () => {
  const backend = new MemoryBackend();
  const quota = new Quota(backend, 100, call);
  // an upload stored, its reservation not yet dropped: for a moment its bytes count twice
  const first = await quota.reserve("r", "packs/a", 40, 0);
  await backend.put("r/packs/a", new Uint8Array(40));
  setTimeout(() => void first!.release(), 60);
  const second = await quota.reserve("r", "packs/b", 40, 0); // 40 + 40 fit; 40 + 40 + 40 do not
  equal(await quota.reserve("r", "packs/c", 70, 0).catch((e) => e.status), 413, "over anyway");
  await second!.release();
  // an upload in flight that does not settle: refused once the waits are over (~1.5 s)
  const inFlight = await quota.reserve("r", "packs/d", 50, 0);
  const t0 = performance.now();
  equal(await quota.reserve("r", "packs/e", 40, 0).catch((e) => e.status), 413);
  const waited = performance.now() - t0;
  ok(waited >= 1000 && waited < 10_000, `waited ${waited} ms`);
  await inFlight!.release();
  deepStrictEqual(await Array.fromAsync(backend.list(".vger-server/reservations/")), []);
});
