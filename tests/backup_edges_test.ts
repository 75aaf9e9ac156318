/**
 * Edge cases of backup and extract through the real CLI (and the library where the CLI cannot
 * set the scene): special files, unreadable and vanishing files, files that grow while read,
 * the repository inside its own source, duplicate archive names, overwriting, archives that try
 * to write outside the destination, and the exit codes of common mistakes.
 */

import { deepStrictEqual, equal, ok } from "node:assert/strict";
import { LocalBackend } from "../backends/local.ts";
import { encodeItem, type Item, ItemStreamBuffer, newItemEncoder } from "../lib/archive.ts";
import { backup } from "../lib/archiver.ts";
import { compress, loadCodecs } from "../lib/compress.ts";
import { ObjectType, type ObjectTypeTag } from "../lib/crypto.ts";
import { lstatEntry } from "../lib/fs_meta.ts";
import { Repository } from "../lib/repository.ts";
import { WriteSession } from "../lib/write_session.ts";
import {
  chownTree,
  exists,
  filterSnapshot,
  initRepo,
  listItems,
  makeUnprivilegedUser,
  NOBODY_ID,
  PASSPHRASE,
  PROJECT_DIR,
  pseudoRandomBytes,
  restoredPath,
  type RunOptions,
  runVger,
  runVgerOk,
  sha256File,
  storedPath,
  treeSnapshot,
  type UnprivilegedUser,
  withTempDir,
} from "./_helpers.ts";

await loadCodecs();

const MiB = 1 << 20;
const encoder = new TextEncoder();
const isRoot = Deno.uid() === 0;

/** Relative path -> size of every file under `root` (a repository's objects). */
async function fileSizes(root: string, rel = ""): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for await (const e of Deno.readDir(rel ? `${root}/${rel}` : root)) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory) Object.assign(out, await fileSizes(root, r));
    else out[r] = (await Deno.lstat(`${root}/${r}`)).size;
  }
  return out;
}

/** Names in a directory, sorted. */
async function namesIn(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) names.push(e.name);
  return names.sort();
}

Deno.test("backup stores FIFOs and devices without opening them and skips sockets, warning naming each, exit 3", async () => {
  await withTempDir(async (dir) => {
    const src = `${dir}/src`;
    await Deno.mkdir(`${src}/sub`, { recursive: true });
    await Deno.writeTextFile(`${src}/a.txt`, "regular file\n");
    await Deno.writeTextFile(`${src}/sub/b.txt`, "another one\n");
    const fifo = `${src}/sub/fifo`;
    const mkfifo = await new Deno.Command("mkfifo", { args: [fifo] }).output();
    equal(mkfifo.code, 0, new TextDecoder().decode(mkfifo.stderr));
    const socket = `${src}/socket`;
    const listener = Deno.listen({ transport: "unix", path: socket });
    try {
      const stored = [src, `${src}/a.txt`, `${src}/sub`, `${src}/sub/b.txt`, fifo];
      if (isRoot) {
        const dev = `${src}/null-device`;
        const mknod = await new Deno.Command("mknod", { args: [dev, "c", "1", "3"] }).output();
        equal(mknod.code, 0, new TextDecoder().decode(mknod.stderr));
        stored.push(dev);
      }
      const source = filterSnapshot(await treeSnapshot(src), (_, e) => e.type !== "socket");
      equal(Object.keys(source).length, stored.length);

      const repo = await initRepo(`${dir}/repo`);
      // reading the FIFO would block forever (no writer); the timeout turns a hang into a failure
      const r = await runVger(["-R", repo, "backup", "--archive", "one", src], {
        timeoutMs: 60_000,
      });
      ok(!r.timedOut, "backup hung: it opened a FIFO or device");
      equal(r.code, 3, r.stderr);
      deepStrictEqual(r.stderr.trim().split("\n"), [
        `vger: warning: Skipped "${socket}": a socket (sockets are not backed up)`,
      ]);

      const items = (await listItems(repo, "one")).map((i) => i.path).sort();
      deepStrictEqual(items, stored.map(storedPath).sort());

      const dest = `${dir}/out`;
      const x = await runVger(["-R", repo, "extract", "--archive", "one", "--dest", dest]);
      equal(x.code, 0, x.stderr);
      deepStrictEqual(await treeSnapshot(restoredPath(dest, src)), source);
    } finally {
      listener.close();
    }
  });
});

/** Runs vger as `user` (root) or as ourselves (not root). */
function asUser(user: UnprivilegedUser | undefined): RunOptions {
  return user ? { user } : {};
}

Deno.test("backup as a non-root user skips an unreadable file with a permission-denied warning, exits 3", async () => {
  // CI runs as root, which reads everything: run vger as nobody through setpriv then
  const user = isRoot ? await makeUnprivilegedUser(NOBODY_ID, NOBODY_ID) : undefined;
  try {
    await withTempDir(async (dir) => {
      await Deno.chmod(dir, 0o755);
      const src = `${dir}/src`;
      await Deno.mkdir(`${src}/sub`, { recursive: true });
      await Deno.writeTextFile(`${src}/readable.txt`, "anyone may read this\n");
      await Deno.writeTextFile(`${src}/sub/also.txt`, "and this\n");
      const secret = `${src}/secret.txt`;
      await Deno.writeTextFile(secret, "nobody may read this\n");
      await Deno.mkdir(`${dir}/repo`);
      if (user) {
        await chownTree(src, user.uid, user.gid);
        await chownTree(`${dir}/repo`, user.uid, user.gid);
      }
      await Deno.chmod(secret, 0o000);

      // can vger start at all as that user? (the project dir must be readable by it)
      const probe = await runVger(["--version"], asUser(user));
      if (probe.code !== 0) {
        throw new Error(
          `vger cannot even start as uid ${
            user?.uid ?? Deno.uid()
          }: the project dir ${PROJECT_DIR} ` +
            `and node_modules must be readable (and dirs searchable) by that user.\n` +
            `exit ${probe.code}, stderr:\n${probe.stderr}`,
        );
      }

      const repo = await initRepo(`${dir}/repo/r`, asUser(user));
      const r = await runVger(["-R", repo, "backup", "--archive", "one", src], asUser(user));
      equal(r.code, 3, r.stderr);
      ok(
        r.stderr.includes(`Skipped "${secret}": permission denied`),
        `no permission-denied warning names ${secret}:\n${r.stderr}`,
      );
      equal(r.stderr.trim().split("\n").length, 1, `unexpected warnings:\n${r.stderr}`);

      const items = (await listItems(repo, "one")).map((i) => i.path).sort();
      deepStrictEqual(
        items,
        [src, `${src}/readable.txt`, `${src}/sub`, `${src}/sub/also.txt`].map(storedPath),
      );
      const dest = `${dir}/out`;
      await runVgerOk(["-R", repo, "extract", "--archive", "one", "--dest", dest]);
      deepStrictEqual(
        await treeSnapshot(restoredPath(dest, src)),
        await treeSnapshot(src, { skip: (rel) => rel === "secret.txt" }),
      );
    });
  } finally {
    await user?.cleanup();
  }
});

/** What backing up a tree with entries that vanish mid-walk reported, and where. */
interface VanishRun {
  src: string;
  repo: string;
  warnings: string[];
}

/**
 * Backs up a tree through the library while deleting entries at exact moments of the walk. The
 * walk lists a directory, then for each name: lstat, isExcluded, xattrs, then open or readDir;
 * isExcluded is the hook that lets the test delete entries right there.
 */
async function backupWhileVanishing(dir: string): Promise<VanishRun> {
  const src = `${dir}/src`;
  await Deno.mkdir(`${src}/d-dir-gone`, { recursive: true });
  await Deno.writeTextFile(`${src}/d-dir-gone/inner.txt`, "gone with its dir\n");
  const files = ["a-trigger.txt", "b-gone-before-stat.txt", "c-gone-before-open.txt", "e-kept.txt"];
  for (const f of files) await Deno.writeTextFile(`${src}/${f}`, `contents of ${f}\n`);
  const repoPath = await initRepo(`${dir}/repo`);
  const backend = new LocalBackend(repoPath);
  const warnings: string[] = [];
  try {
    const repo = await Repository.open(backend, { passphrase: PASSPHRASE });
    const result = await backup(repo, {
      name: "one",
      sources: [src],
      compression: { algorithm: "lz4", zstdLevel: 3 },
      onWarning: (m) => warnings.push(m),
      isExcluded: (path) => {
        if (path === storedPath(`${src}/a-trigger.txt`)) {
          Deno.removeSync(`${src}/b-gone-before-stat.txt`); // listed, not yet stat'ed
        } else if (path === storedPath(`${src}/c-gone-before-open.txt`)) {
          Deno.removeSync(`${src}/c-gone-before-open.txt`); // stat'ed, not yet opened
        } else if (path === storedPath(`${src}/d-dir-gone`)) {
          Deno.removeSync(`${src}/d-dir-gone`, { recursive: true }); // stat'ed, not yet listed
        }
        return false;
      },
    });
    deepStrictEqual(result.warnings, warnings);
  } finally {
    await backend.close();
  }
  return { src, repo: repoPath, warnings };
}

Deno.test("entries that vanish between listing, stat and reading are skipped with warnings; the rest is backed up", async () => {
  await withTempDir(async (dir) => {
    const { src, repo, warnings } = await backupWhileVanishing(dir);
    for (
      const w of [
        `Skipped "${src}/b-gone-before-stat.txt": no such file or directory`,
        `Skipped "${src}/c-gone-before-open.txt": no such file or directory`,
        `Skipped directory "${src}/d-dir-gone": no such file or directory`,
      ]
    ) ok(warnings.includes(w), `missing warning ${w} in:\n${warnings.join("\n")}`);

    const items = (await listItems(repo, "one")).map((i) => i.path).sort();
    deepStrictEqual(items, [src, `${src}/a-trigger.txt`, `${src}/e-kept.txt`].map(storedPath));
    const dest = `${dir}/out`;
    await runVgerOk(["-R", repo, "extract", "--archive", "one", "--dest", dest]);
    // the deletions changed the mtime of src itself after the backup recorded it
    const notRoot = (rel: string) => rel !== ".";
    deepStrictEqual(
      filterSnapshot(await treeSnapshot(restoredPath(dest, src)), notRoot),
      filterSnapshot(await treeSnapshot(src), notRoot),
    );
  });
});

Deno.test("an entry that vanishes after its stat gets one warning, not also a misleading 'extended attributes not saved'", async () => {
  await withTempDir(async (dir) => {
    const { src, warnings } = await backupWhileVanishing(dir);
    // Only the "Skipped" warnings: a vanished entry was not saved at all, so a second warning
    // saying its extended attributes were "not saved" (implying the entry was) is wrong.
    deepStrictEqual(warnings.sort(), [
      `Skipped "${src}/b-gone-before-stat.txt": no such file or directory`,
      `Skipped "${src}/c-gone-before-open.txt": no such file or directory`,
      `Skipped directory "${src}/d-dir-gone": no such file or directory`,
    ]);
  });
});

Deno.test("backup of a source path that does not exist fails with exit 1 naming it and adds nothing", async () => {
  await withTempDir(async (dir) => {
    const repo = await initRepo(`${dir}/repo`);
    const missing = `${dir}/no/such/source`;
    await Deno.mkdir(`${dir}/real`);
    const before = await fileSizes(repo);
    const r = await runVger(["-R", repo, "backup", "--archive", "one", `${dir}/real`, missing]);
    equal(r.code, 1, r.stderr);
    ok(r.stderr.includes(`"${missing}"`), `the error does not name ${missing}:\n${r.stderr}`);
    deepStrictEqual(await fileSizes(repo), before);
  });
});

Deno.test("a file that keeps growing while it is read is archived up to its size at open, with a warning naming it (exit 3)", async () => {
  await withTempDir(async (dir) => {
    const src = `${dir}/src`;
    await Deno.mkdir(src);
    const big = `${src}/growing.bin`;
    {
      using f = await Deno.open(big, { write: true, create: true });
      for (let i = 0; i < 25; i++) await f.write(pseudoRandomBytes(8 * MiB, 100 + i));
    }
    const initial = (await Deno.stat(big)).size;
    equal(initial, 200 * MiB);
    const repo = await initRepo(`${dir}/repo`);

    // a child appends 64 KiB blocks (each filled with a different byte) every 10 ms
    const appenderCode = `
      const f = Deno.openSync(Deno.args[0], { append: true });
      const block = new Uint8Array(65536);
      for (let i = 0; i < 4096; i++) {
        block.fill((i * 7 + 1) & 255);
        for (let o = 0; o < block.length;) o += f.writeSync(block.subarray(o));
        await new Promise((r) => setTimeout(r, 10));
      }`;
    const appender = new Deno.Command(Deno.execPath(), {
      args: ["eval", appenderCode, big],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    let sizeBeforeBackup = initial;
    let r;
    try {
      const deadline = Date.now() + 30_000;
      while (sizeBeforeBackup === initial && Date.now() < deadline) {
        await new Promise((res) => setTimeout(res, 20));
        sizeBeforeBackup = (await Deno.stat(big)).size;
      }
      ok(sizeBeforeBackup > initial, "the appender never appended");
      r = await runVger(["-R", repo, "backup", "--archive", "one", src]);
    } finally {
      appender.kill("SIGKILL");
      await appender.status;
    }
    equal(r.code, 3, r.stderr);
    ok(
      r.stderr.includes(`vger: warning: File "${big}" changed while it was read`),
      `no warning naming the changing file: ${r.stderr}`,
    );
    const finalSize = (await Deno.stat(big)).size;

    const item = (await listItems(repo, "one")).find((i) => i.path === storedPath(big));
    ok(item, "the growing file is not in the archive");
    ok(
      item.size >= sizeBeforeBackup && item.size < finalSize,
      `archived size ${item.size} is not a size the file had during the backup ` +
        `(${sizeBeforeBackup} when it started, ${finalSize} at the end)`,
    );
    const dest = `${dir}/out`;
    await runVgerOk(["-R", repo, "extract", "--archive", "one", "--dest", dest, storedPath(big)]);
    const restored = restoredPath(dest, big);
    equal((await Deno.stat(restored)).size, item.size);
    equal(await sha256File(restored), await sha256File(big, item.size));
  });
});

Deno.test("a file changed during its first read only is read again and stored whole, without a warning", async () => {
  await withTempDir(async (dir) => {
    const src = `${dir}/src`;
    await Deno.mkdir(src);
    const file = `${src}/torn.bin`;
    const size = 48 * MiB;
    await Deno.writeFile(file, pseudoRandomBytes(size, 7));
    const repoPath = await initRepo(`${dir}/repo`);
    const backend = new LocalBackend(repoPath);
    const warnings: string[] = [];
    let changed = false;
    try {
      const repo = await Repository.open(backend, { passphrase: PASSPHRASE });
      const result = await backup(repo, {
        name: "one",
        sources: [src],
        compression: { algorithm: "lz4", zstdLevel: 3 },
        onWarning: (m) => warnings.push(m),
        // the first progress report comes with the first chunk, long before the end is read:
        // rewrite the start (already read) and the end (not yet read), so this read is torn
        onProgress: (p) => {
          if (changed || p.current !== file) return;
          changed = true;
          using f = Deno.openSync(file, { write: true });
          f.writeSync(pseudoRandomBytes(MiB, 8));
          f.seekSync(size - MiB, Deno.SeekMode.Start);
          f.writeSync(pseudoRandomBytes(MiB, 9));
        },
      });
      deepStrictEqual(result.warnings, []);
    } finally {
      await backend.close();
    }
    ok(changed, "the file was not changed during the read");
    deepStrictEqual(warnings, []);
    const dest = `${dir}/out`;
    await runVgerOk(["-R", repoPath, "extract", "--archive", "one", "--dest", dest]);
    const restored = restoredPath(dest, file);
    equal(await sha256File(restored), await sha256File(file), "the stored file is torn");
    const item = (await listItems(repoPath, "one")).find((i) => i.path === storedPath(file));
    equal(item?.mtime_ns, lstatEntry(file).mtimeNs.toString(), "the item has the stat of the read");
  });
});

Deno.test("a repository inside the source directory is not backed up into itself", async () => {
  await withTempDir(async (dir) => {
    const src = `${dir}/src`;
    await Deno.mkdir(`${src}/docs`, { recursive: true });
    await Deno.writeTextFile(`${src}/docs/note.txt`, "keep me\n");
    const repo = await initRepo(`${src}/repo`);
    const r = await runVger(["-R", repo, "backup", "--archive", "one", src]);
    equal(r.code, 0, r.stderr);
    const paths = (await listItems(repo, "one")).map((i) => i.path).sort();
    const repoStored = storedPath(repo);
    deepStrictEqual(
      paths.filter((p) => p === repoStored || p.startsWith(`${repoStored}/`)),
      [],
      "the repository was backed up into itself",
    );
    deepStrictEqual(paths, [src, `${src}/docs`, `${src}/docs/note.txt`].map(storedPath));
  });
});

Deno.test("backup to an archive name that exists fails with exit 1 naming it and adds nothing", async () => {
  await withTempDir(async (dir) => {
    const src = `${dir}/src`;
    await Deno.mkdir(src);
    await Deno.writeTextFile(`${src}/first.txt`, "first\n");
    const repo = await initRepo(`${dir}/repo`);
    await runVgerOk(["-R", repo, "backup", "--archive", "dup", src]);
    const before = await fileSizes(repo);
    const listed = await runVgerOk(["-R", repo, "list", "--json"]);

    await Deno.writeFile(`${src}/new.bin`, pseudoRandomBytes(3 * MiB, 7)); // new data to add
    const r = await runVger(["-R", repo, "backup", "--archive", "dup", src]);
    equal(r.code, 1, r.stderr);
    ok(r.stderr.includes(`Archive "dup" already exists`), r.stderr);
    deepStrictEqual(await fileSizes(repo), before);
    equal((await runVgerOk(["-R", repo, "list", "--json"])).stdout, listed.stdout);
  });
});

Deno.test("extract keeps existing files without --overwrite (warning, exit 3) and replaces them with it", async () => {
  await withTempDir(async (dir) => {
    const src = `${dir}/src`;
    await Deno.mkdir(`${src}/sub`, { recursive: true });
    await Deno.writeTextFile(`${src}/sub/file.txt`, "archived contents\n");
    await Deno.symlink("sub/file.txt", `${src}/link`);
    const source = await treeSnapshot(src);
    const repo = await initRepo(`${dir}/repo`);
    await runVgerOk(["-R", repo, "backup", "--archive", "one", src]);

    const dest = `${dir}/out`;
    await runVgerOk(["-R", repo, "extract", "--archive", "one", "--dest", dest]);
    const file = `${restoredPath(dest, src)}/sub/file.txt`;
    const link = `${restoredPath(dest, src)}/link`;
    await Deno.writeTextFile(file, "changed locally\n");
    await Deno.remove(link);
    await Deno.symlink("elsewhere", link);

    const keep = await runVger(["-R", repo, "extract", "--archive", "one", "--dest", dest]);
    equal(keep.code, 3, keep.stderr);
    ok(keep.stderr.includes(`Skipped "${file}": it exists`), keep.stderr);
    ok(keep.stderr.includes(`Skipped "${link}": it exists`), keep.stderr);
    equal(await Deno.readTextFile(file), "changed locally\n");
    equal(await Deno.readLink(link), "elsewhere");

    const replace = await runVger([
      "-R",
      repo,
      "extract",
      "--archive",
      "one",
      "--dest",
      dest,
      "--overwrite",
    ]);
    equal(replace.code, 0, replace.stderr);
    equal(await Deno.readTextFile(file), "archived contents\n");
    deepStrictEqual(await treeSnapshot(restoredPath(dest, src)), source);
  });
});

/** Writes an archive with hand-made items (and one data chunk per file) through the library. */
async function writeArchive(
  repoPath: string,
  name: string,
  items: (Omit<Item, "chunks" | "size" | "mode" | "uid" | "gid" | "mtimeNs"> & {
    data?: Uint8Array;
    mode?: number;
  })[],
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
    for (const { data, ...rest } of items) {
      const item: Item = {
        mode: rest.type === "dir" ? 0o755 : 0o644,
        uid: Deno.uid() ?? 0,
        gid: Deno.gid() ?? 0,
        mtimeNs: 1_700_000_000_000_000_000n,
        size: 0,
        ...rest,
      };
      if (item.type === "file") {
        const d = data ?? new Uint8Array(0);
        item.chunks = d.length > 0 ? [await store(ObjectType.data, d)] : [];
        item.size = d.length;
      }
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
      stats: { files: items.length, original: 0, compressed: 0, deduplicated: 0 },
    });
  } finally {
    await backend.close();
  }
}

Deno.test("extract never writes outside DEST: '..' paths, empty segments and symlinked parents are refused", async () => {
  await withTempDir(async (dir) => {
    const repo = await initRepo(`${dir}/repo`);
    const box = `${dir}/box`; // DEST's parent: must hold nothing but DEST afterwards
    const dest = `${box}/dest`;
    const outside = `${dir}/outside`;
    await Deno.mkdir(box);
    await Deno.mkdir(outside);
    const pwned = encoder.encode("pwned\n");
    await writeArchive(repo, "evil", [
      { path: "ok", type: "dir" },
      { path: "ok/safe.txt", type: "file", data: encoder.encode("safe\n") },
      { path: "../escape", type: "file", data: pwned },
      { path: "tmp/../../escape", type: "file", data: pwned },
      { path: "a//b", type: "file", data: pwned },
      { path: "./dot", type: "file", data: pwned },
      { path: "evil", type: "symlink", target: outside },
      { path: "evil/pwned", type: "file", data: pwned },
      { path: "evil/subdir", type: "dir" },
      { path: "evil/link", type: "symlink", target: "/etc/passwd" },
    ]);

    const r = await runVger(["-R", repo, "extract", "--archive", "evil", "--dest", dest]);
    equal(r.code, 3, r.stderr);
    deepStrictEqual(await namesIn(outside), [], "something was written through the symlink");
    deepStrictEqual(await namesIn(box), ["dest"], "something was written next to DEST");
    deepStrictEqual(await namesIn(dir), ["box", "outside", "repo"]);
    for (const p of ["../escape", "tmp/../../escape", "a//b", "./dot"]) {
      ok(r.stderr.includes(`Refused "${p}"`), `no warning names ${p}:\n${r.stderr}`);
    }
    for (const p of ["evil/pwned", "evil/subdir", "evil/link"]) {
      ok(r.stderr.includes(`Refused "${dest}/${p}"`), `no warning names ${p}:\n${r.stderr}`);
    }
    equal(await Deno.readTextFile(`${dest}/ok/safe.txt`), "safe\n");
  });
});

Deno.test("extract --overwrite never writes outside DEST when a symlink replaces a directory it already made", async () => {
  await withTempDir(async (dir) => {
    const repo = await initRepo(`${dir}/repo`);
    const box = `${dir}/box`;
    const dest = `${box}/dest`;
    const outside = `${dir}/outside`;
    await Deno.mkdir(box);
    await Deno.mkdir(outside, { mode: 0o750 });
    await Deno.chmod(outside, 0o750);
    const outsideBefore = (await treeSnapshot(outside))["."];
    // "x" is first a directory (extract creates and trusts it), then a symlink to outside that
    // --overwrite puts in its place, then a file below it
    await writeArchive(repo, "swap", [
      { path: "x", type: "dir", mode: 0o777 },
      { path: "x/first.txt", type: "file", data: encoder.encode("first\n") },
      { path: "x", type: "symlink", target: outside },
      { path: "x/pwned", type: "file", data: encoder.encode("pwned\n") },
      { path: "x/sub", type: "dir" },
    ]);
    const r = await runVger([
      "-R",
      repo,
      "extract",
      "--archive",
      "swap",
      "--dest",
      dest,
      "--overwrite",
    ]);
    deepStrictEqual(await namesIn(outside), [], `written through the symlink x:\n${r.stderr}`);
    deepStrictEqual(
      (await treeSnapshot(outside))["."],
      outsideBefore,
      "the directory metadata of x was applied through the symlink",
    );
    deepStrictEqual(await namesIn(box), ["dest"]);
    ok(r.stderr.includes(`"${dest}/x/pwned"`), `no warning names x/pwned:\n${r.stderr}`);
  });
});

Deno.test("extract of an archive with an empty item path fails without writing anything outside DEST", async () => {
  await withTempDir(async (dir) => {
    const repo = await initRepo(`${dir}/repo`);
    const box = `${dir}/box`;
    const dest = `${box}/dest`;
    await Deno.mkdir(box);
    await writeArchive(repo, "empty-path", [
      { path: "fine.txt", type: "file", data: encoder.encode("fine\n") },
      { path: "", type: "file", data: encoder.encode("no name\n") },
    ]);
    const r = await runVger(["-R", repo, "extract", "--archive", "empty-path", "--dest", dest]);
    // the item stream is rejected as corrupt (exit 1) or the item refused (exit 3)
    ok(r.code === 1 || r.code === 3, `exit ${r.code}: ${r.stderr}`);
    ok(/item without a path|Refused ""/.test(r.stderr), r.stderr);
    deepStrictEqual(await namesIn(box), (await exists(dest)) ? ["dest"] : []);
    if (await exists(dest)) {
      for (const name of await namesIn(dest)) ok(name === "fine.txt", `unexpected ${name} in DEST`);
    }
  });
});

Deno.test("CLI mistakes: wrong passphrase exits 1, no config and no --repo exits 2, unknown command or option exits 2", async () => {
  await withTempDir(async (dir) => {
    const repo = await initRepo(`${dir}/repo`);

    const wrong = await runVger(["-R", repo, "list"], { env: { VGER_PASSPHRASE: "not it" } });
    equal(wrong.code, 1, wrong.stderr);
    ok(wrong.stderr.includes("Wrong passphrase"), wrong.stderr);

    ok(
      !(await exists("/etc/vger/config.yaml")),
      "/etc/vger/config.yaml exists on this machine: cannot test the no-configuration case",
    );
    const empty = `${dir}/empty`;
    await Deno.mkdir(empty);
    const noConfig = await runVger(["list"], {
      cwd: empty,
      env: { HOME: empty, XDG_CONFIG_HOME: `${empty}/.config` },
    });
    equal(noConfig.code, 2, noConfig.stderr);
    ok(noConfig.stderr.includes("No configuration file found"), noConfig.stderr);

    const unknownCommand = await runVger(["-R", repo, "frobnicate"]);
    equal(unknownCommand.code, 2, unknownCommand.stderr);
    ok(unknownCommand.stderr.includes("frobnicate"), unknownCommand.stderr);

    const unknownOption = await runVger(["-R", repo, "list", "--frobnicate"]);
    equal(unknownOption.code, 2, unknownOption.stderr);
    ok(unknownOption.stderr.includes("frobnicate"), unknownOption.stderr);
  });
});
