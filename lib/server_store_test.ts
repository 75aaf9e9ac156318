import { deepStrictEqual, equal, rejects } from "node:assert/strict";
import { createHash } from "node:crypto";
import { MemoryBackend } from "../backends/memory.ts";
import { HttpError } from "./server_request.ts";
import { compareBytes, ServerStore } from "./server_store.ts";

function body(bytes: Uint8Array | string) {
  const b = typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes;
  return {
    size: b.length,
    async *pieces() {
      yield b;
    },
  };
}

function store(settings: Partial<ConstructorParameters<typeof ServerStore>[1]> = {}) {
  const backend = new MemoryBackend();
  return {
    backend,
    store: new ServerStore(backend, {
      appendOnly: false,
      maxObjectBytes: 1 << 20,
      quotaBytes: 0,
      ...settings,
    }),
  };
}

async function status(p: Promise<unknown>): Promise<number> {
  try {
    await p;
    return 0;
  } catch (err) {
    if (err instanceof HttpError) return err.status;
    throw err;
  }
}

Deno.test("store: a repository exists once its config is created; listings page in byte order", async () => {
  const { store: s, backend } = store();
  equal(await status(s.put("r", "index", body("x"), { create: false })), 404);
  equal(await s.put("r", "config", body("c"), { create: true }), 201);
  deepStrictEqual(await s.repositories(), ["r"]);
  // byte order differs from UTF-16 order past U+FFFF: "\u{10000}" sorts after "\uffff"
  for (const key of ["b", "a", "\uffff", "\u{10000}", "a/b"]) {
    await s.put("r", key, body(key), { create: false });
  }
  const keys = [];
  let after = "";
  for (let page = 0; page < 10; page++) {
    const got = await s.list("r", { prefix: "", after, limit: 2 });
    keys.push(...got.objects.map((o) => o.key));
    if (got.next === null) break;
    after = got.next;
  }
  deepStrictEqual(keys, ["a", "a/b", "b", "config", "\uffff", "\u{10000}"]);
  equal(compareBytes("\uffff", "\u{10000}") < 0, true);
  // the server's own state is outside every repository's listing
  equal((await Array.fromAsync(backend.list(".vger-server/repos/"))).length, 1);
  equal((await s.stats("r")).objects, 6);
  await rejects(s.stats("nope"), /Unknown repository "nope"/);
});

Deno.test("store: an object over the size limit is 413 before a byte is read; a pack must hash to its name", async () => {
  const { store: s } = store({ maxObjectBytes: 10 });
  await s.put("r", "config", body("c"), { create: true });
  let read = false;
  const big = {
    size: 11,
    async *pieces() {
      read = true;
      yield new Uint8Array(11);
    },
  };
  equal(await status(s.put("r", "x", big, { create: false })), 413);
  equal(read, false);
  const bytes = new TextEncoder().encode("pack");
  const id = createHash("sha256").update(bytes).digest("hex");
  const key = `packs/${id.slice(0, 2)}/${id}`;
  equal(await status(s.put("r", key, body("other"), { create: false })), 400);
  equal(await status(s.size("r", key)), 404);
  equal(await s.put("r", key, body(bytes), { create: true }), 201);
});

Deno.test("store: append-only refuses deletes and overwrites, keeps versions, lets locks be", async () => {
  const { store: s, backend } = store({ appendOnly: true });
  await s.put("r", "config", body("c"), { create: true });
  equal(await s.put("r", "keys/repokey", body("k"), { create: false }), 201);
  equal(await status(s.put("r", "keys/repokey", body("evil"), { create: false })), 403);
  equal(await status(s.delete("r", "keys/repokey")), 403);
  equal(await s.put("r", "manifest", body("m0"), { create: true }), 201);
  equal(await s.put("r", "manifest", body("m1"), { create: false }), 200);
  equal((await Array.fromAsync(backend.list(".vger-server/versions/r/manifest/"))).length, 2);
  equal(await s.put("r", "locks/x", body("l"), { create: false }), 201);
  equal(await s.put("r", "locks/x", body("l2"), { create: false }), 200);
  await s.delete("r", "locks/x");
  equal(await status(s.size("r", "locks/x")), 404);
});

Deno.test("store: versions are kept in full mode only with a retention; they count towards the quota and the sweep applies it", async () => {
  const { store: plain } = store();
  await plain.put("r", "config", body("c"), { create: true });
  await plain.put("r", "manifest", body("m1"), { create: false });
  await plain.put("r", "manifest", body("m2"), { create: false });
  deepStrictEqual(await plain.versions("r"), []);

  const { store: s } = store({ versionKeepDays: 1, versionKeepMin: 1, quotaBytes: 1000 });
  await s.put("r", "config", body("c"), { create: true });
  await s.put("r", "index", body("i1"), { create: false });
  await s.put("r", "manifest", body("m1"), { create: false });
  await s.put("r", "manifest", body("m22"), { create: false });
  const versions = await s.versions("r");
  deepStrictEqual(versions.map((v) => v.manifestBytes), [3, 2]);
  const kept = await s.version("r", versions[1].id, "manifest");
  equal(await new Response(kept.stream).text(), "m1");
  equal(await status(s.versions("nope")), 404);
  // the kept bytes count: objects (c, i1, m22), versions (i1, m1, m22) and two pairs of 24
  const stats = await s.stats("r");
  deepStrictEqual([stats.keptBytes, stats.usedBytes], [2 + 2 + 3 + 48, 6 + 55]);
  // two days on, all but the newest manifest version go
  const removed = await s.sweepVersions(() => Date.now() + 2 * 86_400_000);
  equal(removed.filter((k) => k.includes("/manifest/")).length, 1);
  deepStrictEqual((await s.versions("r")).map((v) => v.manifestBytes), [3]);
});

Deno.test("store: requests for a structure check of a repository whose check runs share it", async () => {
  const { store: s, backend } = store();
  await s.put("r", "config", body("c"), { create: true });
  let lists = 0;
  const list = backend.list.bind(backend);
  backend.list = (prefix: string) => {
    if (prefix === "r/") lists++;
    return list(prefix);
  };
  const [a, b] = await Promise.all([s.checkStructure("r", 1000), s.checkStructure("r", 1000)]);
  equal(a, b);
  equal(lists, 1);
  await s.checkStructure("r", 1000);
  equal(lists, 2, "a later request checks again");
  equal(await status(s.checkStructure("nope", 1000)), 404);
});

Deno.test("store: held deletes keep versions too, as long as they hold deletes (without version_keep_days)", async () => {
  const { store: s } = store({ deleteHoldDays: 3, versionKeepMin: 0 });
  await s.put("r", "config", body("c"), { create: true });
  await s.put("r", "manifest", body("m1"), { create: false });
  await s.put("r", "manifest", body("m2"), { create: false });
  equal((await s.versions("r")).length, 2);
  deepStrictEqual(await s.sweepVersions(() => Date.now() + 2 * 86_400_000), []);
  equal((await s.sweepVersions(() => Date.now() + 4 * 86_400_000)).length > 0, true);
  deepStrictEqual(await s.versions("r"), []);
});
