/**
 * Whole-program round trip: a generated tree with every kind of entry is backed up and extracted
 * by the real CLI, and every byte and every piece of metadata of the restored tree is compared
 * with the source. Also: listing, glob-selected extract, and a 3 GiB sparse file within a memory
 * bound.
 */

import { deepStrictEqual, equal, ok } from "node:assert/strict";
import { nativeFs } from "../lib/fs_native.ts";
import {
  allocatedBytes,
  filterSnapshot,
  initRepo,
  listItems,
  NOBODY_ID,
  pseudoRandomBytes,
  restoredPath,
  runVger,
  runVgerOk,
  storedPath,
  treeSnapshot,
  withTempDir,
} from "./_helpers.ts";

const MiB = 1 << 20;
const encoder = new TextEncoder();
const isRoot = Deno.uid() === 0;

/** The sparse file: 1 MiB data, a 64 MiB hole, 1 MiB data. */
const SPARSE_SIZE = 66 * MiB;

/** Writes `bytes` to `path` and returns the path. */
async function put(path: string, bytes: Uint8Array | string): Promise<string> {
  await Deno.writeFile(path, typeof bytes === "string" ? encoder.encode(bytes) : bytes);
  return path;
}

/**
 * Builds the source tree under `src` (which must exist) and returns the relative path of the
 * sparse file. Owners, modes, xattrs and nanosecond mtimes are set last.
 */
async function buildTree(src: string): Promise<void> {
  const fs = nativeFs();
  ok(fs, "the round trip needs --allow-ffi for xattrs and nanosecond times");
  const mk = (rel: string, mode = 0o755) => Deno.mkdir(`${src}/${rel}`, { recursive: true, mode });

  // regular files of several sizes
  await mk("files");
  await put(`${src}/files/empty`, new Uint8Array(0));
  await put(`${src}/files/one-byte`, "x");
  await put(`${src}/files/4k`, pseudoRandomBytes(4096, 4));
  await put(`${src}/files/random-3m`, pseudoRandomBytes(3 * MiB + 123, 3));
  const line = "the quick brown fox jumps over the lazy dog, again and again and again\n";
  await put(`${src}/files/compressible-20m`, line.repeat(Math.ceil(20 * MiB / line.length)));

  // directories: empty, nested, 40 deep
  await mk("empty-dir");
  await mk("nested/a/b/c");
  await mk("nested/a/empty");
  await put(`${src}/nested/a/b/c/file.txt`, "deep inside\n");
  const deep = Array.from({ length: 40 }, (_, i) => `d${String(i).padStart(2, "0")}`).join("/");
  await mk(`deep/${deep}`);
  await put(`${src}/deep/${deep}/leaf.txt`, "forty levels down\n");

  // symlinks: relative, absolute, dangling, to a directory
  await mk("links");
  await Deno.symlink("../files/one-byte", `${src}/links/relative`);
  await Deno.symlink(`${src}/files/4k`, `${src}/links/absolute`);
  await Deno.symlink("does/not/exist", `${src}/links/dangling`);
  await Deno.symlink("../nested", `${src}/links/to-dir`);

  // awkward names
  await mk("names");
  await mk("names/日本");
  const names = [
    "é.txt",
    "日本/ファイル.txt",
    "emoji-🎉🦀.bin",
    "new\nline",
    "back\\slash",
    "with  spaces ",
    "-leading-dash",
    "L".repeat(251) + ".txt", // 255 bytes, the longest name ext4 takes
  ];
  equal(encoder.encode(names[names.length - 1]).length, 255);
  for (const [i, n] of names.entries()) await put(`${src}/names/${n}`, `name ${i}: ${n}\n`);

  // ownership (before modes: chown clears setuid)
  await mk("owned");
  await put(`${src}/owned/nobody-file`, "owned by nobody\n");
  await mk("owned/nobody-dir");
  await Deno.symlink("nobody-file", `${src}/owned/nobody-link`);
  if (isRoot) {
    for (const p of ["owned/nobody-file", "owned/nobody-dir", "owned/nobody-link"]) {
      fs.lchown(`${src}/${p}`, NOBODY_ID, NOBODY_ID);
    }
  }

  // modes
  await mk("modes");
  await mk("modes/sticky-dir");
  await put(`${src}/modes/sticky-dir/inside`, "in a sticky dir\n");
  await mk("modes/read-only-dir");
  await put(`${src}/modes/read-only-dir/inside`, "in a read-only dir\n");
  const modes: [string, number][] = [
    ["modes/private", 0o600],
    ["modes/executable", 0o755],
    ["modes/setuid", 0o4755],
    ["modes/setgid", 0o2750],
    ["modes/nothing", 0o000],
  ];
  for (const [p, mode] of modes) {
    await put(`${src}/${p}`, `mode ${mode.toString(8)}\n`);
    await Deno.chmod(`${src}/${p}`, mode);
  }
  await Deno.chmod(`${src}/modes/sticky-dir`, 0o1777);

  // extended attributes on files and directories, one binary value with NUL bytes
  const binary = Uint8Array.from({ length: 256 }, (_, i) => i);
  fs.setXattr(`${src}/files/4k`, "user.comment", encoder.encode("four kibibytes"));
  fs.setXattr(`${src}/files/4k`, "user.binary", binary);
  fs.setXattr(`${src}/nested`, "user.dir-attr", encoder.encode("on a directory"));
  fs.setXattr(`${src}/files/empty`, "user.empty-value", new Uint8Array(0));

  // a sparse file: 1 MiB data, 64 MiB hole, 1 MiB data
  await mk("sparse");
  {
    using f = await Deno.open(`${src}/sparse/holey`, { write: true, create: true });
    await f.write(pseudoRandomBytes(MiB, 11));
    await f.truncate(65 * MiB);
    await f.seek(65 * MiB, Deno.SeekMode.Start);
    await f.write(pseudoRandomBytes(MiB, 12));
  }

  // the read-only dir last of the content changes (nothing may be created in it afterwards)
  await Deno.chmod(`${src}/modes/read-only-dir`, 0o555);

  // nanosecond mtimes, children before parents, every one different
  const all: string[] = [];
  const walk = async (rel: string) => {
    all.push(rel);
    const p = rel === "" ? src : `${src}/${rel}`;
    if (!Deno.lstatSync(p).isDirectory) return;
    for await (const e of Deno.readDir(p)) await walk(rel === "" ? e.name : `${rel}/${e.name}`);
  };
  await walk("");
  let t = 1_600_000_000_123_456_789n;
  for (const rel of all.reverse()) {
    t += 1_000_003_007n;
    fs.setTimes(rel === "" ? src : `${src}/${rel}`, t, t);
  }
}

Deno.test("round trip: extract restores every byte and all metadata of a tree with every kind of entry", async (t) => {
  await withTempDir(async (dir) => {
    const src = `${dir}/src`;
    await Deno.mkdir(src);
    await buildTree(src);
    const source = await treeSnapshot(src);

    // the tree really has what it claims
    equal(source["modes/setuid"].mode, 0o4755);
    equal(source["modes/sticky-dir"].mode, 0o1777);
    equal(source["files/4k"].xattrs["user.binary"].length, 512);
    ok(
      source[
        "deep/d00/d01/d02/d03/d04/d05/d06/d07/d08/d09/d10/d11/d12/d13/d14/d15/d16/d17/d18/d19/d20/d21/d22/d23/d24/d25/d26/d27/d28/d29/d30/d31/d32/d33/d34/d35/d36/d37/d38/d39/leaf.txt"
      ],
    );
    if (isRoot) equal(source["owned/nobody-file"].uid, NOBODY_ID);
    ok(
      allocatedBytes(`${src}/sparse/holey`) < SPARSE_SIZE / 4,
      "the file system did not keep the source file sparse",
    );
    ok(source["files/random-3m"].mtimeNs % 1_000_000n !== 0n, "mtimes must carry nanoseconds");

    const repo = await initRepo(`${dir}/repo`);
    const backup = await runVger(["-R", repo, "backup", "--archive", "rt", src]);
    equal(backup.code, 0, backup.stderr);
    equal(backup.stderr, "", "a clean backup prints no warnings");

    await t.step(
      "extract restores contents, types, modes, owners, xattrs, ns mtimes and link targets",
      async () => {
        const dest = `${dir}/out`;
        const r = await runVger(["-R", repo, "extract", "--archive", "rt", "--dest", dest]);
        equal(r.code, 0, r.stderr);
        const restored = await treeSnapshot(restoredPath(dest, src));
        deepStrictEqual(restored, source);
      },
    );

    await t.step("a sparse file is restored sparse", () => {
      const path = `${restoredPath(`${dir}/out`, src)}/sparse/holey`;
      equal(Deno.statSync(path).size, SPARSE_SIZE);
      const allocated = allocatedBytes(path);
      ok(
        allocated < SPARSE_SIZE / 3,
        `restored copy allocates ${allocated} bytes of ${SPARSE_SIZE}: the hole was written out`,
      );
    });

    await t.step("list --archive --json lists every item with its metadata", async () => {
      const items = await listItems(repo, "rt");
      const byPath = new Map(items.map((i) => [i.path, i]));
      equal(byPath.size, items.length, "an item is listed twice");
      const expected = Object.keys(source).map((rel) => rel === "." ? src : `${src}/${rel}`);
      deepStrictEqual([...byPath.keys()].sort(), expected.map(storedPath).sort());
      for (const [rel, e] of Object.entries(source)) {
        const i = byPath.get(storedPath(rel === "." ? src : `${src}/${rel}`))!;
        deepStrictEqual(
          {
            type: i.type,
            mode: i.mode,
            uid: i.uid,
            gid: i.gid,
            size: i.size,
            mtime: i.mtime_ns,
            target: i.target,
          },
          {
            type: e.type,
            mode: e.mode,
            uid: e.uid,
            gid: e.gid,
            size: e.type === "file" ? e.size : 0,
            mtime: e.mtimeNs.toString(),
            target: e.target,
          },
          `item ${rel}`,
        );
      }
    });

    await t.step("list --json shows the archive with its item count", async () => {
      const r = await runVgerOk(["-R", repo, "list", "--json"]);
      const archives = JSON.parse(r.stdout).archives as { name: string; files: number }[];
      equal(archives.length, 1);
      equal(archives[0].name, "rt");
      equal(archives[0].files, Object.keys(source).length);
    });

    await t.step("extract with glob patterns restores only the matching subtrees", async () => {
      const dest = `${dir}/globbed`;
      const r = await runVger([
        "-R",
        repo,
        "extract",
        "--archive",
        "rt",
        "--dest",
        dest,
        "**/nested",
        `${storedPath(src)}/modes/s*`,
      ]);
      equal(r.code, 0, r.stderr);
      const selected = (rel: string) =>
        rel === "nested" || rel.startsWith("nested/") || /^modes\/s[^/]*(\/|$)/.test(rel);
      const restored = await treeSnapshot(restoredPath(dest, src));
      // "." and "modes" exist only as parents of what was selected
      deepStrictEqual(
        Object.keys(restored).sort(),
        [".", "modes", ...Object.keys(source).filter(selected)].sort(),
      );
      deepStrictEqual(
        filterSnapshot(restored, (rel) => selected(rel)),
        filterSnapshot(source, (rel) => selected(rel)),
      );
      // nothing else landed anywhere under dest
      const top: string[] = [];
      for await (const e of Deno.readDir(dest)) top.push(e.name);
      deepStrictEqual(top, [storedPath(src).split("/")[0]]);
    });
  });
});

Deno.test("a 3 GiB sparse file is backed up and restored with bounded memory and stays sparse", async () => {
  await withTempDir(async (dir) => {
    const size = 3 * 1024 * MiB;
    const src = `${dir}/src`;
    await Deno.mkdir(src);
    const huge = `${src}/huge`;
    {
      using f = await Deno.open(huge, { write: true, create: true });
      await f.truncate(size);
    }
    const repo = await initRepo(`${dir}/repo`);
    try {
      const b = await runVger(["-R", repo, "backup", "--archive", "big", src], {
        measureRss: true,
      });
      equal(b.code, 0, b.stderr);
      ok(
        b.peakRssBytes! < 512 * MiB,
        `backup peak RSS ${(b.peakRssBytes! / MiB).toFixed(0)} MiB exceeds 512 MiB`,
      );
    } finally {
      await Deno.remove(huge); // free the space as early as possible
    }

    const dest = `${dir}/out`;
    const x = await runVger(["-R", repo, "extract", "--archive", "big", "--dest", dest], {
      measureRss: true,
    });
    equal(x.code, 0, x.stderr);
    ok(
      x.peakRssBytes! < 384 * MiB,
      `extract peak RSS ${(x.peakRssBytes! / MiB).toFixed(0)} MiB exceeds 384 MiB`,
    );
    const restored = `${restoredPath(dest, src)}/huge`;
    try {
      equal(Deno.statSync(restored).size, size);
      ok(allocatedBytes(restored) < 64 * MiB, "the restored 3 GiB file is not sparse");
      using f = await Deno.open(restored, { read: true });
      const buf = new Uint8Array(4096);
      for (const at of [0, 1, size / 2 + 12345, size - 8 * MiB - 1, size - 4096]) {
        await f.seek(at, Deno.SeekMode.Start);
        let n = 0;
        while (n < buf.length) {
          const r = await f.read(buf.subarray(n));
          if (r === null) break;
          n += r;
        }
        equal(n, buf.length, `short read at ${at}`);
        ok(buf.every((b) => b === 0), `non-zero byte near offset ${at}`);
      }
    } finally {
      await Deno.remove(restored);
    }
  });
});
