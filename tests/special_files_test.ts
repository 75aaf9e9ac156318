/**
 * FIFOs and devices round-trip (issue 13): a backup stores them from their lstat alone (a FIFO
 * with no writer would block a reader: the backup finishing at all proves it never opened one),
 * skips sockets with one warning, and a restore re-creates them with mknod through libc: all of
 * them as root, FIFOs but not devices as another user (one summary warning, exit 3), and none
 * without --allow-ffi (one warning, exit 3). Compared by every piece of metadata.
 *
 * @module
 */

import { deepStrictEqual, equal, match, ok } from "node:assert/strict";
import {
  chownTree,
  exists,
  filterSnapshot,
  initRepo,
  makeUnprivilegedUser,
  NOBODY_ID,
  runVger,
  runVgerOk,
  treeSnapshot,
  withoutLibcFfi,
  withTempDir,
} from "./_helpers.ts";

const isRoot = Deno.uid() === 0;
const T = 1_600_000_000_123_456_789n;

async function sh(cmd: string, ...args: string[]): Promise<void> {
  const out = await new Deno.Command(cmd, { args, stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
}

/** A tree with a file, a FIFO, a character and a block device and a socket; returns the socket. */
async function makeTree(src: string): Promise<Deno.UnixListener> {
  await Deno.mkdir(`${src}/d`, { recursive: true });
  await Deno.writeTextFile(`${src}/d/file`, "data\n");
  await sh("mkfifo", "-m", "0640", `${src}/d/fifo`);
  await sh("mknod", "-m", "0666", `${src}/d/null`, "c", "1", "3");
  await sh("mknod", "-m", "0620", `${src}/d/loop`, "b", "7", "200");
  await Deno.chown(`${src}/d/fifo`, 1000, 1001);
  await Deno.chown(`${src}/d/loop`, 0, 6);
  const listener = Deno.listen({ transport: "unix", path: `${src}/d/sock` });
  for (const name of ["file", "fifo", "null", "loop"]) {
    await sh("touch", "-h", "-d", "@1600000000.123456789", `${src}/d/${name}`);
  }
  return listener;
}

/** The snapshot of a tree without its socket and its root (what a restore brings back). */
async function restorable(root: string) {
  return filterSnapshot(await treeSnapshot(root), (p, e) => p !== "." && e.type !== "socket");
}

/** Runs the CLI without FFI for libc ({@linkcode withoutLibcFfi}). */
const vgerWithoutFfi = (args: string[]) => runVger(args, { denoFlags: withoutLibcFfi() });

const warnings = (stderr: string) =>
  stderr.split("\n").filter((l) => l.startsWith("vger: warning"));

Deno.test({
  name:
    "FIFOs and devices back up without being opened and restore as root with every piece of metadata; sockets are skipped with one warning",
  ignore: !isRoot,
  fn: async () => {
    await withTempDir(async (dir) => {
      const src = `${dir}/src`;
      const listener = await makeTree(src);
      try {
        const repo = await initRepo(`${dir}/repo`);
        // a FIFO opened for reading would block until the timeout
        const b = await runVger(["-R", repo, "backup", "--archive", "a", src], {
          timeoutMs: 60_000,
        });
        equal(b.code, 3, b.stderr);
        deepStrictEqual(warnings(b.stderr), [
          `vger: warning: Skipped "${src}/d/sock": a socket (sockets are not backed up)`,
        ]);
        await runVgerOk(["-R", repo, "extract", "--archive", "a", "--dest", `${dir}/out`]);
        const restored = await restorable(`${dir}/out${src}`);
        deepStrictEqual(restored, await restorable(src));
        deepStrictEqual(
          [restored["d/fifo"].type, restored["d/null"].device, restored["d/loop"].device],
          ["fifo", "1,3", "7,200"],
        );
        deepStrictEqual([restored["d/fifo"].uid, restored["d/fifo"].gid], [1000, 1001]);
        equal(restored["d/loop"].mtimeNs, T);
        ok(!(await exists(`${dir}/out${src}/d/sock`)));
        // a second extract over the first, with --overwrite, replaces them in place
        await runVgerOk([
          "-R",
          repo,
          "extract",
          "--archive",
          "a",
          "--dest",
          `${dir}/out`,
          "--overwrite",
        ]);
        deepStrictEqual(await restorable(`${dir}/out${src}`), await restorable(src));
      } finally {
        listener.close();
      }
    });
  },
});

Deno.test({
  name:
    "as a non-root user a restore re-creates FIFOs and skips devices with one summary warning, exit 3",
  ignore: !isRoot,
  fn: async () => {
    const user = await makeUnprivilegedUser(NOBODY_ID, NOBODY_ID);
    try {
      await withTempDir(async (dir) => {
        await Deno.chmod(dir, 0o755);
        const src = `${dir}/src`;
        const listener = await makeTree(src);
        listener.close(); // and the socket is gone
        const repo = await initRepo(`${dir}/repo`);
        await runVgerOk(["-R", repo, "backup", "--archive", "a", src]);
        await chownTree(repo, user.uid, user.gid);
        await Deno.mkdir(`${dir}/out`);
        await chownTree(`${dir}/out`, user.uid, user.gid);
        const r = await runVger(["-R", repo, "extract", "--archive", "a", "--dest", `${dir}/out`], {
          user,
        });
        equal(r.code, 3, r.stderr);
        const rel = src.slice(1);
        deepStrictEqual(warnings(r.stderr), [
          `vger: warning: Skipped 2 ("${rel}/d/loop", "${rel}/d/null") devices: creating devices needs root`,
        ]);
        const got = await restorable(`${dir}/out${src}`);
        const want = await restorable(src);
        ok(!("d/null" in got) && !("d/loop" in got), Object.keys(got).join(" "));
        // the FIFO and the file come back whole, owned by the user who restored them
        for (const name of ["d/fifo", "d/file"]) {
          deepStrictEqual(got[name], { ...want[name], uid: user.uid, gid: user.gid }, name);
        }
      });
    } finally {
      await user.cleanup();
    }
  },
});

Deno.test({
  name:
    "without --allow-ffi a backup still stores FIFOs and devices (numbers from lstat) and a restore skips them with one warning, exit 3",
  ignore: !isRoot,
  fn: async () => {
    await withTempDir(async (dir) => {
      const src = `${dir}/src`;
      const listener = await makeTree(src);
      listener.close(); // and the socket is gone
      const repo = await initRepo(`${dir}/repo`);
      const b = await vgerWithoutFfi(["-R", repo, "backup", "--archive", "a", src]);
      equal(b.code, 0, b.stderr);
      const list = await runVgerOk(["-R", repo, "list", "--archive", "a"]);
      match(list.stdout, /^brw--w---- root \S+ +7, 200 .*\/d\/loop$/m);
      match(list.stdout, /^crw-rw-rw- root root +1, 3 .*\/d\/null$/m);
      match(list.stdout, /^prw-r----- \S+ 1001 +0 .*\/d\/fifo$/m);
      const r = await vgerWithoutFfi([
        "-R",
        repo,
        "extract",
        "--archive",
        "a",
        "--dest",
        `${dir}/out`,
      ]);
      equal(r.code, 3, r.stderr);
      const rel = src.slice(1);
      deepStrictEqual(warnings(r.stderr), [
        `vger: warning: Skipped 3 ("${rel}/d/fifo", "${rel}/d/loop", "${rel}/d/null") FIFOs and devices: creating them needs --allow-ffi`,
      ]);
      equal(await Deno.readTextFile(`${dir}/out${src}/d/file`), "data\n");
      for (const name of ["fifo", "loop", "null"]) {
        ok(!(await exists(`${dir}/out${src}/d/${name}`)));
      }
    });
  },
});
