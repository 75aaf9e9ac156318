import { deepStrictEqual, equal, ok, rejects } from "node:assert/strict";
import { MemoryBackend } from "../backends/memory.ts";
import { KeptVersions } from "./server_versions.ts";

const call = <T>(_repo: string, _key: string, fn: () => Promise<T>) => fn();

function body(text: string) {
  const bytes = new TextEncoder().encode(text);
  return {
    size: bytes.length,
    async *pieces() {
      yield bytes;
    },
  };
}

async function kept(versions: KeptVersions, backend: MemoryBackend): Promise<string[]> {
  const list = await versions.list("r", "manifest");
  const texts = [];
  for (const v of list.reverse()) {
    texts.push(
      new TextDecoder().decode((await backend.get(`.vger-server/versions/r/manifest/${v.id}`))!),
    );
  }
  return texts;
}

Deno.test("kept versions: the object created by init is kept on its first replace, then every new one", async () => {
  const backend = new MemoryBackend();
  const versions = new KeptVersions(backend, call);
  await backend.create("r/manifest", new TextEncoder().encode("init"));
  equal(await versions.replace("r", "manifest", body("b1")), 200);
  equal(await versions.replace("r", "manifest", body("b2")), 200);
  deepStrictEqual((await kept(versions, backend)).sort(), ["b1", "b2", "init"]);
  equal(new TextDecoder().decode((await backend.get("r/manifest"))!), "b2");
  // the newest first, with times from their names
  const list = await versions.list("r", "manifest");
  equal(list.length, 3);
  equal(list[0].time.getTime() <= Date.now(), true);
});

Deno.test("kept versions: racing replaces all keep their bytes; a write outside append-only is kept next time", async () => {
  const backend = new MemoryBackend();
  const versions = new KeptVersions(backend, call);
  await Promise.all(["a", "b", "c", "d"].map((t) => versions.replace("r", "manifest", body(t))));
  deepStrictEqual((await kept(versions, backend)).sort(), ["a", "b", "c", "d"]);
  // a put that bypassed the versions (the mode was off), then forget: its bytes are kept too
  await backend.put("r/manifest", new TextEncoder().encode("outside"));
  await versions.forget("r", "manifest");
  await versions.replace("r", "manifest", body("e"));
  deepStrictEqual((await kept(versions, backend)).sort(), ["a", "b", "c", "d", "e", "outside"]);
});

async function text(stream: ReadableStream<Uint8Array>): Promise<string> {
  return await new Response(stream).text();
}

Deno.test("kept versions: each manifest version goes with the index current when it was written", async () => {
  const backend = new MemoryBackend();
  const versions = new KeptVersions(backend, call);
  await backend.create("r/index", new TextEncoder().encode("i0"));
  await backend.create("r/manifest", new TextEncoder().encode("m0"));
  // commits: the index first, then the manifest
  await versions.replace("r", "index", body("i1"));
  await versions.replace("r", "manifest", body("m1"));
  await versions.replace("r", "manifest", body("m2")); // no index change (delete)
  await versions.replace("r", "index", body("i3"));
  await versions.replace("r", "manifest", body("m3"));
  const list = await versions.versions("r");
  const pairs = [];
  for (const v of list) {
    pairs.push([
      await text((await versions.open("r", v.id, "manifest")).stream),
      await text((await versions.open("r", v.id, "index")).stream),
    ]);
  }
  // init's manifest is kept on the first replace, with the index current then (approximate)
  deepStrictEqual(pairs, [["m3", "i3"], ["m2", "i1"], ["m1", "i1"], ["m0", "i1"]]);
  equal(list[0].manifestBytes, 2);
  equal(list[0].indexBytes, 2);
  for (let i = 1; i < list.length; i++) ok(list[i - 1].id > list[i].id, "not newest first");
});

Deno.test("kept versions: an unknown or malformed id is 404 or 400", async () => {
  const backend = new MemoryBackend();
  const versions = new KeptVersions(backend, call);
  await versions.replace("r", "manifest", body("m1"));
  await rejects(versions.open("r", "000000000000001-00000000", "manifest"), /No version/);
  await rejects(versions.open("r", "../../x", "manifest"), /Invalid version id/);
  // a manifest with no index kept has no index version
  const [only] = await versions.versions("r");
  equal(only.indexId, null);
  await rejects(versions.open("r", only.id, "index"), /No version/);
});

Deno.test("kept versions: the sweep removes versions older than the days beyond the newest count, and keeps an index a kept manifest goes with", async () => {
  const backend = new MemoryBackend();
  const versions = new KeptVersions(backend, call);
  await versions.replace("r", "index", body("i1"));
  for (const m of ["m1", "m2", "m3", "m4"]) await versions.replace("r", "manifest", body(m));
  const day = 86_400_000;
  // nothing without days, nothing while young
  deepStrictEqual(await versions.sweep("r", { keepDays: 0, keepMin: 0 }), []);
  deepStrictEqual(await versions.sweep("r", { keepDays: 1, keepMin: 0 }), []);
  // two days on: all but the newest two manifests go; the index stays (they go with it)
  const later = () => Date.now() + 2 * day;
  const removed = await versions.sweep("r", { keepDays: 1, keepMin: 2, now: later });
  equal(removed.filter((k) => k.includes("/manifest/")).length, 2);
  equal(removed.filter((k) => k.includes("/pairs/")).length, 2);
  equal(removed.filter((k) => k.includes("/index/")).length, 0);
  const left = await versions.versions("r");
  deepStrictEqual(left.map((v) => v.manifestBytes), [2, 2]);
  equal(await text((await versions.open("r", left[1].id, "manifest")).stream), "m3");
  equal(await text((await versions.open("r", left[1].id, "index")).stream), "i1");
  // keepMin 0: everything old goes, the index with the manifests
  await versions.sweep("r", { keepDays: 1, keepMin: 0, now: later });
  deepStrictEqual(await versions.versions("r"), []);
  deepStrictEqual(await versions.list("r", "index"), []);
  // the objects themselves stay
  equal(new TextDecoder().decode((await backend.get("r/manifest"))!), "m4");
});
