/**
 * Item types across versions: an archive holding an item type this version does not know (one a
 * newer vger wrote) is refused with one line naming the archive, the item and the type, by every
 * command that reads items, and nothing removes it for that; and a backup records its command
 * line and sources in the archive metadata (docs/FORMAT.md, "Items and the item stream").
 *
 * @module
 */

import { deepStrictEqual, equal, ok } from "node:assert/strict";
import { encode } from "@msgpack/msgpack";
import { LocalBackend } from "../backends/local.ts";
import { ItemStreamBuffer } from "../lib/archive.ts";
import { compress } from "../lib/compress.ts";
import { ObjectType, type ObjectTypeTag } from "../lib/crypto.ts";
import { Repository } from "../lib/repository.ts";
import { WriteSession } from "../lib/write_session.ts";
import {
  assertOneLine,
  initRepo,
  jsonOf,
  PASSPHRASE,
  runVger,
  runVgerOk,
  withTempDir,
} from "./_helpers.ts";

/** Commits an archive whose item stream is exactly `items` (raw msgpack maps), via the library. */
async function writeRawArchive(
  repoPath: string,
  name: string,
  items: Record<string, unknown>[],
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
    const buffer = new ItemStreamBuffer();
    const blobs: Uint8Array[] = [];
    for (const item of items) {
      const blob = buffer.add(encode(item));
      if (blob) blobs.push(await store(ObjectType.items, blob));
    }
    const last = buffer.flush();
    if (last) blobs.push(await store(ObjectType.items, last));
    const now = new Date().toISOString();
    await session.commit({
      name,
      hostname: "newer",
      username: "someone",
      time: now,
      timeEnd: now,
      sources: ["/future"],
      items: blobs,
      stats: { files: items.length, original: 0, compressed: 0, deduplicated: 0 },
    });
  } finally {
    await backend.close();
  }
}

/** The archive metadata of `name`, read through the library. */
async function archiveMeta(repoPath: string, name: string) {
  const backend = new LocalBackend(repoPath);
  try {
    const repo = await Repository.open(backend, { passphrase: PASSPHRASE });
    return await repo.readArchive(await repo.findArchive(name));
  } finally {
    await backend.close();
  }
}

const base = { m: 0o644, u: 0, g: 0, mt: 1_700_000_000, s: 0 };

Deno.test("an item type this vger does not know: list, extract, check, repair and compact stop with one line naming the archive and type, and keep the archive", async () => {
  await withTempDir(async (dir) => {
    const repo = await initRepo(`${dir}/repo`);
    const src = `${dir}/src`;
    await Deno.mkdir(src);
    await Deno.writeTextFile(`${src}/a.txt`, "kept\n");
    await runVgerOk(["-R", repo, "backup", "--archive", "today", src]);
    await writeRawArchive(repo, "future", [
      { p: "future", t: "d", ...base, m: 0o755 },
      { p: "future/door", t: "D", ...base }, // a Solaris door, say, from a newer vger
      { p: "future/z.txt", t: "f", ...base, c: [] },
    ]);
    const says =
      /^vger: Archive "future" holds item "future\/door" of type "D", which this version of vger does not know \(written by a newer vger\?\) \(repository "[^"]+"\)$/;
    for (
      const args of [
        ["list", "--archive", "future"],
        ["list", "--archive", "future", "--json"],
        ["extract", "--archive", "future", "--dest", `${dir}/out`],
        ["check"],
        ["check", "--repair"],
        ["compact"],
      ]
    ) {
      const r = await runVger(["-R", repo, ...args]);
      assertOneLine(r, says, args.join(" "));
    }
    // nothing was removed for it: both archives are listed, and the other one still restores
    const listed = jsonOf<{ archives: { name: string }[] }>(
      await runVgerOk(["-R", repo, "list", "--json"]),
    );
    deepStrictEqual(listed.archives.map((a) => a.name).sort(), ["future", "today"]);
    await runVgerOk(["-R", repo, "extract", "--archive", "today", "--dest", `${dir}/back`]);
    equal(await Deno.readTextFile(`${dir}/back${src}/a.txt`), "kept\n");
    // and it can be deleted like any archive (delete does not read items)
    await runVgerOk(["-R", repo, "delete", "--archive", "future"]);
    const r = await runVgerOk(["-R", repo, "check", "--json"]);
    equal(jsonOf<{ errors: number }>(r).errors, 0);
  });
});

Deno.test("a backup records its command line and its sources in the archive metadata, and list --json shows them", async () => {
  await withTempDir(async (dir) => {
    const repo = await initRepo(`${dir}/repo`);
    const src = `${dir}/src`;
    await Deno.mkdir(`${src}/x`, { recursive: true });
    await Deno.writeTextFile(`${src}/x/f`, "f");
    const args = ["-R", repo, "backup", "--archive", "one", "--exclude", "*.tmp", `${src}/x`];
    await runVgerOk(args);
    const meta = await archiveMeta(repo, "one");
    deepStrictEqual(meta.commandLine, args);
    deepStrictEqual(meta.sources, [`${src}/x`]);
    ok(meta.stats.files >= 2);
    // and `list --archive --json` shows them
    const listed = jsonOf<{ sources: string[]; command_line: string[] | null }>(
      await runVgerOk(["-R", repo, "list", "--archive", "one", "--json"]),
    );
    deepStrictEqual(listed.sources, [`${src}/x`]);
    deepStrictEqual(listed.command_line, args);
  });
});

Deno.test("list shows FIFOs, devices and hardlink groups of an archive, and extract makes them", async () => {
  await withTempDir(async (dir) => {
    const repo = await initRepo(`${dir}/repo`);
    await writeRawArchive(repo, "special", [
      { p: "t", t: "d", ...base, m: 0o755 },
      { p: "t/fifo", t: "p", ...base },
      { p: "t/null", t: "c", ...base, m: 0o666, ma: 1, mi: 3 },
      { p: "t/sda", t: "b", ...base, m: 0o660, ma: 8, mi: 0 },
      { p: "t/one", t: "f", ...base, c: [], h: "t/one" },
      { p: "t/two", t: "f", ...base, c: [], h: "t/one" },
    ]);
    const rows = jsonOf<{ items: Record<string, unknown>[] }>(
      await runVgerOk(["-R", repo, "list", "--archive", "special", "--json"]),
    ).items;
    deepStrictEqual(
      rows.map((r) => [r.path, r.type, r.major, r.minor, r.hardlink]),
      [
        ["t", "dir", undefined, undefined, undefined],
        ["t/fifo", "fifo", undefined, undefined, undefined],
        ["t/null", "chardev", 1, 3, undefined],
        ["t/sda", "blockdev", 8, 0, undefined],
        ["t/one", "file", undefined, undefined, "t/one"],
        ["t/two", "file", undefined, undefined, "t/one"],
      ],
    );
    const lines = (await runVgerOk(["-R", repo, "list", "--archive", "special"])).stdout
      .trimEnd().split("\n");
    equal(lines.length, 6);
    ok(/^prw-r--r-- .* t\/fifo$/.test(lines[1]), lines[1]);
    ok(/^crw-rw-rw- .*\b1, 3 .* t\/null$/.test(lines[2]), lines[2]);
    ok(/^brw-rw---- .*\b8, 0 .* t\/sda$/.test(lines[3]), lines[3]);
    ok(/ t\/one$/.test(lines[4]), lines[4]);
    ok(/ t\/two link to t\/one$/.test(lines[5]), lines[5]);
    // extract makes them (devices only as root: tests/special_files_test.ts has the rest)
    const out = `${dir}/out`;
    const r = await runVger(["-R", repo, "extract", "--archive", "special", "--dest", out]);
    equal(r.code, Deno.uid() === 0 ? 0 : 3, r.stderr);
    ok((await Deno.lstat(`${out}/t/fifo`)).isFifo);
    if (Deno.uid() === 0) {
      ok((await Deno.lstat(`${out}/t/null`)).isCharDevice);
      ok((await Deno.lstat(`${out}/t/sda`)).isBlockDevice);
    }
    equal((await Deno.stat(`${dir}/out/t/one`)).size, 0);
    equal((await Deno.stat(`${dir}/out/t/two`)).size, 0);
  });
});

Deno.test("a hardlink whose first name a later item replaced is not linked (a hostile archive), one warning, exit 3", async () => {
  await withTempDir(async (dir) => {
    const repo = await initRepo(`${dir}/repo`);
    const outside = `${dir}/outside.txt`;
    await Deno.writeTextFile(outside, "not to be linked into the restore\n");
    await writeRawArchive(repo, "hostile", [
      { p: "t", t: "d", ...base, m: 0o755 },
      { p: "t/x", t: "f", ...base, c: [], h: "t/x" },
      { p: "t/x", t: "l", ...base, m: 0o777, l: outside }, // replaces t/x with --overwrite
      { p: "t/y", t: "f", ...base, c: [], h: "t/x" },
    ]);
    const out = `${dir}/out`;
    const r = await runVger([
      "-R",
      repo,
      "extract",
      "--archive",
      "hostile",
      "--dest",
      out,
      "--overwrite",
    ]);
    equal(r.code, 3, r.stderr);
    deepStrictEqual(r.stderr.trim().split("\n"), [
      `vger: warning: Cannot restore "${out}/t/y" as a hard link to "${out}/t/x": it changed since it was restored`,
    ]);
    equal(await Deno.lstat(`${out}/t/y`).catch(() => null), null);
    equal((await Deno.stat(outside)).nlink, 1);
  });
});
