import { deepStrictEqual, equal } from "node:assert/strict";
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
