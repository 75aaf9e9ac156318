/**
 * An item's declared size is the truth for extract: a file whose chunks hold more (or fewer)
 * bytes than its item declares is an integrity error naming the file, and nothing past the
 * declared size is written (a hostile archive declaring 5 bytes must not fill the disk).
 *
 * @module
 */

import { equal, match, ok } from "node:assert/strict";
import { LocalBackend } from "../backends/local.ts";
import { encodeItem, type Item, ItemStreamBuffer, newItemEncoder } from "../lib/archive.ts";
import { compress } from "../lib/compress.ts";
import { ObjectType, type ObjectTypeTag } from "../lib/crypto.ts";
import { Repository } from "../lib/repository.ts";
import { WriteSession } from "../lib/write_session.ts";
import { initRepo, PASSPHRASE, runVger, withTempDir } from "./_helpers.ts";

/** Commits an archive of files `path -> [declared size, content]` through the library. */
async function writeArchive(
  repoPath: string,
  name: string,
  files: Record<string, [number, Uint8Array]>,
): Promise<void> {
  const backend = new LocalBackend(repoPath);
  try {
    const repo = await Repository.open(backend, { passphrase: PASSPHRASE });
    const session = new WriteSession(repo, await repo.readIndex());
    const store = async (type: ObjectTypeTag, data: Uint8Array): Promise<Uint8Array> => {
      const id = await repo.key.chunkId(data);
      if (session.reserve(id)) {
        const sealed = await repo.key.seal(type, id, compress(data, { algorithm: "none" }));
        await session.add(id, type, sealed, data.length);
      }
      return id;
    };
    const encoder = newItemEncoder();
    const buffer = new ItemStreamBuffer();
    const blobs: Uint8Array[] = [];
    for (const [path, [size, data]] of Object.entries(files)) {
      const item: Item = {
        path,
        type: "file",
        mode: 0o644,
        uid: Deno.uid() ?? 0,
        gid: Deno.gid() ?? 0,
        mtimeNs: 1_700_000_000_000_000_000n,
        size,
        chunks: [await store(ObjectType.data, data)],
      };
      const blob = buffer.add(encodeItem(encoder, item));
      if (blob) blobs.push(await store(ObjectType.items, blob));
    }
    const last = buffer.flush();
    if (last) blobs.push(await store(ObjectType.items, last));
    const now = new Date().toISOString();
    await session.commit({
      name,
      hostname: "attacker",
      username: "mallory",
      time: now,
      timeEnd: now,
      sources: ["/"],
      items: blobs,
      stats: { files: Object.keys(files).length, original: 0, compressed: 0, deduplicated: 0 },
    });
  } finally {
    await backend.close();
  }
}

Deno.test("extract writes no byte past a file's declared size: chunks of more or fewer bytes are an error naming the file", async () => {
  await withTempDir(async (dir) => {
    const repo = await initRepo(`${dir}/repo`);
    const mib = new Uint8Array(1 << 20).fill(0x61);
    await writeArchive(repo, "lying", {
      "small": [5, mib], // declares 5 bytes, its chunk holds 1 MiB
      "large": [2 << 20, mib], // declares 2 MiB, its chunk holds 1 MiB
      "honest": [mib.length, mib],
    });
    const dest = `${dir}/out`;
    const r = await runVger(["-R", repo, "extract", "--archive", "lying", "--dest", dest]);
    equal(r.code, 3, r.stderr);
    match(r.stderr, /"[^"]*\/out\/small": its chunks hold more bytes than its declared size of 5/);
    match(r.stderr, /"[^"]*\/out\/large": its chunks hold fewer bytes than its declared size/);
    for (const name of ["small", "large"]) {
      const st = await Deno.stat(`${dest}/${name}`).catch(() => null);
      equal(st, null, `"${name}" was restored with ${st?.size} bytes`);
    }
    equal((await Deno.stat(`${dest}/honest`)).size, mib.length);
    // no temp file is left in its place either
    const left = (await Array.fromAsync(Deno.readDir(dest))).map((e) => e.name).sort();
    ok(left.length === 1 && left[0] === "honest", `left in DEST: ${left}`);
  });
});
