import { deepStrictEqual, equal, rejects } from "node:assert/strict";
import { MemoryBackend } from "../backends/memory.ts";
import { IntegrityError, NotFoundError } from "../lib/errors.ts";
import { type Item, RepositoryReader } from "../lib/read_path.ts";

const GOLDEN = new URL("./testdata/repo-v1", import.meta.url).pathname;
const expected = JSON.parse(await Deno.readTextFile(`${GOLDEN}.expected.json`));

async function goldenBackend(): Promise<MemoryBackend> {
  const backend = new MemoryBackend("memory:golden");
  const walk = async (prefix: string): Promise<void> => {
    for await (const e of Deno.readDir(`${GOLDEN}/${prefix}`)) {
      const key = prefix ? `${prefix}/${e.name}` : e.name;
      if (e.isDirectory) await walk(key);
      else await backend.put(key, await Deno.readFile(`${GOLDEN}/${key}`));
    }
  };
  await walk("");
  return backend;
}

async function firstItems(reader: RepositoryReader): Promise<Item[]> {
  const items: Item[] = [];
  for await (const item of reader.items(expected.archives[0].name)) items.push(item);
  return items;
}

Deno.test("RepositoryReader lists the golden archives and reads a file as the archive declares it", async () => {
  const reader = await RepositoryReader.open(await goldenBackend(), {
    passphrase: expected.passphrase,
  });
  deepStrictEqual(
    (await reader.archives()).map((a) => a.name),
    expected.archives.map((a: { name: string }) => a.name),
  );
  const items = await firstItems(reader);
  deepStrictEqual(items.map((i) => i.path), expected.archives[0].items.map((i: Item) => i.path));
  const file = items.find((i) => i.type === "file" && i.size > 65536)!;
  const chunks: number[] = [];
  for await (const c of reader.fileChunks(file)) chunks.push(c.length);
  equal(chunks.reduce((a, b) => a + b, 0), file.size);
  equal((await reader.readFile(file)).length, file.size);
});

Deno.test("RepositoryReader refuses a file whose chunks hold more or fewer bytes than its size, and an unknown archive", async () => {
  const reader = await RepositoryReader.open(await goldenBackend(), {
    passphrase: expected.passphrase,
  });
  const file = (await firstItems(reader)).find((i) => i.type === "file" && i.size > 0)!;
  await rejects(
    reader.readFile({ ...file, size: file.size + 1 }),
    (e) => e instanceof IntegrityError && /chunks hold fewer bytes/.test(e.message),
  );
  await rejects(
    reader.readFile({ ...file, size: file.size - 1 }),
    (e) => e instanceof IntegrityError && /chunks hold more bytes/.test(e.message),
  );
  await rejects(reader.items("no-such-archive").next(), NotFoundError);
});
