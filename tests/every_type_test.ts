/**
 * Every file type in one tree (issue 13): files (one of several chunks, one setuid, one empty),
 * directories (one sticky), symlinks, several hardlink groups (one across directories, one of
 * several chunks), a FIFO, a character and a block device, a socket, POSIX ACLs (access and
 * default) and xattrs in the user, security and trusted namespaces, every mtime set to the
 * nanosecond. Backed up and restored as root, and as a non-root user who owns the tree, then
 * compared by every byte and every piece of metadata (tests/_helpers.ts `treeSnapshot`) and by
 * the shape of the hardlink groups; partial restores take only some names of a group.
 *
 * @module
 */

import { deepStrictEqual, equal, ok } from "node:assert/strict";
import { nativeFs } from "../lib/fs_native.ts";
import {
  chownTree,
  DIR_ACL,
  FILE_ACL,
  filterSnapshot,
  initRepo,
  linkShape,
  makeUnprivilegedUser,
  NOBODY_ID,
  pseudoRandomBytes,
  type RunOptions,
  runVger,
  type TreeSnapshot,
  treeSnapshot,
  withTempDir,
} from "./_helpers.ts";

const isRoot = Deno.uid() === 0;
const bytes = (s: string) => new TextEncoder().encode(s);
const BIG = 3 << 20; // several chunks

async function sh(cmd: string, ...args: string[]): Promise<void> {
  const out = await new Deno.Command(cmd, { args, stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
}

/** Hardlink groups in the tree: relative paths, the first one being the group's first name. */
const GROUPS = [
  ["docs/a", "docs/a-again", "other/deep/a-elsewhere"],
  ["docs/b", "other/b"],
  ["data/big", "big-link"],
];

/**
 * Makes the tree under `src` (owned by `uid`:`gid`) and returns its socket listener, which the
 * caller closes. Every mtime is set last, directories deepest first.
 */
async function makeTree(src: string, uid: number, gid: number): Promise<Deno.UnixListener> {
  const fs = nativeFs()!;
  for (const d of ["docs", "other/deep", "data", "special", "shared"]) {
    await Deno.mkdir(`${src}/${d}`, { recursive: true });
  }
  await Deno.writeTextFile(`${src}/docs/a`, "first group\n");
  await Deno.writeTextFile(`${src}/docs/b`, "second group, other bytes\n");
  await Deno.writeFile(`${src}/data/big`, pseudoRandomBytes(BIG, 11));
  for (const [first, ...rest] of GROUPS) {
    for (const name of rest) await Deno.link(`${src}/${first}`, `${src}/${name}`);
  }
  await Deno.writeTextFile(`${src}/plain`, "not linked\n");
  await Deno.writeFile(`${src}/empty`, new Uint8Array());
  await Deno.writeTextFile(`${src}/data/tool`, "#!/bin/sh\n");
  await Deno.symlink("../docs/a", `${src}/data/link-to-a`);
  await Deno.symlink("/nowhere/at/all", `${src}/dangling`);
  await sh("mkfifo", "-m", "0640", `${src}/special/fifo`);
  await sh("mknod", "-m", "0666", `${src}/special/null`, "c", "1", "3");
  await sh("mknod", "-m", "0620", `${src}/special/loop`, "b", "7", "200");
  const socket = Deno.listen({ transport: "unix", path: `${src}/special/sock` });

  // ACLs: an access ACL on a file and a hardlinked name, a default ACL on a directory and a
  // file that inherits from it; xattrs in three namespaces, on a hardlink group too
  await Deno.chmod(`${src}/docs/b`, 0o664);
  fs.setXattr(`${src}/docs/b`, "system.posix_acl_access", FILE_ACL);
  fs.setXattr(`${src}/shared`, "system.posix_acl_default", DIR_ACL);
  await Deno.writeTextFile(`${src}/shared/inherits`, "inherits an ACL\n");
  fs.setXattr(`${src}/docs/a`, "user.group", bytes("one inode, three names"));
  fs.setXattr(`${src}/plain`, "user.note", bytes("plain"));
  fs.setXattr(`${src}/plain`, "user.empty", new Uint8Array());
  fs.setXattr(`${src}/plain`, "security.vger", bytes("sec"));
  fs.setXattr(`${src}/plain`, "trusted.vger", bytes("root only"));
  fs.setXattr(`${src}/data`, "trusted.dir", bytes("t"));
  fs.setXattr(`${src}/data`, "user.dir", bytes("d"));

  await chownTree(src, uid, gid);
  // after chown, which clears setuid: a setuid tool and a sticky directory
  await Deno.chmod(`${src}/data/tool`, 0o4755);
  await Deno.chmod(`${src}/other`, 0o1777);
  await Deno.chmod(`${src}/docs/a`, 0o640);

  const paths: string[] = [];
  const walk = async (rel: string) => {
    for await (const e of Deno.readDir(rel ? `${src}/${rel}` : src)) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory) await walk(r);
      paths.push(r); // children before their directory
    }
  };
  await walk("");
  for (const [i, p] of paths.entries()) {
    // a distinct time for each, with nanoseconds
    await sh("touch", "-h", "-d", `@${1_600_000_000 + i}.${String(123456789 + i)}`, `${src}/${p}`);
  }
  await sh("touch", "-h", "-d", "@1599999999.987654321", src);
  return socket;
}

/** What a restore may bring back of a snapshot: no socket. */
const withoutSocket = (s: TreeSnapshot) => filterSnapshot(s, (_, e) => e.type !== "socket");

const warnings = (stderr: string) =>
  stderr.split("\n").filter((l) => l.startsWith("vger: warning"));

/** Runs the CLI and asserts its exit code, showing stderr when it differs. */
async function vger(args: string[], code: number, options: RunOptions = {}) {
  const r = await runVger(args, options);
  equal(r.code, code, `vger ${args.join(" ")}: exit ${r.code}\n${r.stderr}`);
  return r;
}

Deno.test({
  name:
    "every file type, as root: backed up and restored with every byte and piece of metadata, hardlink groups whole and in part",
  ignore: !isRoot,
  fn: async () => {
    await withTempDir(async (dir) => {
      const src = `${dir}/src`;
      const socket = await makeTree(src, 0, 0);
      try {
        const source = await treeSnapshot(src);
        // the tree has what the test claims
        deepStrictEqual(
          ["special/fifo", "special/null", "special/loop", "special/sock", "dangling", "other"]
            .map((p) => source[p].type),
          ["fifo", "char", "block", "socket", "symlink", "dir"],
        );
        ok("trusted.vger" in source["plain"].xattrs && "security.vger" in source["plain"].xattrs);
        ok("system.posix_acl_access" in source["shared/inherits"].xattrs);
        equal(source["data/tool"].mode, 0o4755);
        const shape = await linkShape(src);
        deepStrictEqual(GROUPS.map((g) => g.map((p) => shape[p][1])), [[3, 3, 3], [2, 2], [2, 2]]);

        const repo = await initRepo(`${dir}/repo`);
        const b = await vger(["-R", repo, "backup", "--archive", "a", src], 3);
        deepStrictEqual(warnings(b.stderr), [
          `vger: warning: Skipped "${src}/special/sock": a socket (sockets are not backed up)`,
        ]);
        await vger(["-R", repo, "extract", "--archive", "a", "--dest", `${dir}/out`], 0);
        const out = `${dir}/out${src}`;
        deepStrictEqual(await treeSnapshot(out), withoutSocket(source));
        deepStrictEqual(await linkShape(out), shape);

        // a partial restore: two later names of the 3-name group (not its first), one name of
        // the big group, and the devices
        const rel = src.slice(1);
        const picks = ["docs/a-again", "other/deep/a-elsewhere", "big-link", "special/**"];
        await vger([
          "-R",
          repo,
          "extract",
          "--archive",
          "a",
          "--dest",
          `${dir}/part`,
          ...picks.map((p) => `${rel}/${p}`),
        ], 0);
        const part = `${dir}/part${src}`;
        deepStrictEqual(await linkShape(part), {
          "big-link": [0, 1],
          "docs/a-again": [1, 2],
          "other/deep/a-elsewhere": [1, 2],
        });
        const got = await treeSnapshot(part);
        for (
          const p of [
            "docs/a-again",
            "other/deep/a-elsewhere",
            "big-link",
            "special/fifo",
            "special/null",
            "special/loop",
          ]
        ) deepStrictEqual(got[p], source[p], p);
      } finally {
        socket.close();
      }
    });
  },
});

Deno.test({
  name:
    "every file type, as a non-root user who owns the tree: what the user may read and set comes back exactly, the rest is skipped with one warning each",
  ignore: !isRoot,
  fn: async () => {
    const user = await makeUnprivilegedUser(NOBODY_ID, NOBODY_ID);
    try {
      await withTempDir(async (dir) => {
        await Deno.chmod(dir, 0o755);
        const src = `${dir}/src`;
        const socket = await makeTree(src, user.uid, user.gid);
        try {
          const source = await treeSnapshot(src);
          const shape = await linkShape(src);
          for (const d of ["repo", "out"]) {
            await Deno.mkdir(`${dir}/${d}`);
            await chownTree(`${dir}/${d}`, user.uid, user.gid);
          }
          const repo = await initRepo(`${dir}/repo`, { user });

          // trusted.* is invisible to the user: not stored, and no warning (nothing was refused)
          const b = await vger(["-R", repo, "backup", "--archive", "a", src], 3, { user });
          deepStrictEqual(warnings(b.stderr), [
            `vger: warning: Skipped "${src}/special/sock": a socket (sockets are not backed up)`,
          ]);
          const r = await vger(
            ["-R", repo, "extract", "--archive", "a", "--dest", `${dir}/out`],
            3,
            { user },
          );
          const rel = src.slice(1);
          deepStrictEqual(warnings(r.stderr), [
            `vger: warning: Skipped 2 ("${rel}/special/loop", "${rel}/special/null") devices: creating devices needs root`,
            `vger: warning: Skipped 1 extended attribute (security.*; first on "${dir}/out/${rel}/plain"): setting them needs root`,
          ]);
          const out = `${dir}/out${src}`;
          // devices and the socket are not there; security.* could not be set, trusted.* was never
          // read; everything else is exact, owner included (the user owns the tree)
          const want = filterSnapshot(
            source,
            (_, e) => e.type !== "socket" && e.type !== "char" && e.type !== "block",
          );
          for (const e of Object.values(want)) {
            e.xattrs = Object.fromEntries(
              Object.entries(e.xattrs).filter(([k]) => /^(user|system)\./.test(k)),
            );
          }
          ok("user.group" in want["docs/a"].xattrs && "user.dir" in want["data"].xattrs);
          deepStrictEqual(await treeSnapshot(out), want);
          deepStrictEqual(await linkShape(out), shape);

          // a partial restore with one name of the 2-name group and two of the 3-name group
          await Deno.mkdir(`${dir}/part`);
          await chownTree(`${dir}/part`, user.uid, user.gid);
          await vger(
            [
              "-R",
              repo,
              "extract",
              "--archive",
              "a",
              "--dest",
              `${dir}/part`,
              `${rel}/other/b`,
              `${rel}/docs/a`,
              `${rel}/other/deep/a-elsewhere`,
            ],
            0,
            { user },
          );
          const part = `${dir}/part${src}`;
          deepStrictEqual(await linkShape(part), {
            "docs/a": [0, 2],
            "other/b": [1, 1],
            "other/deep/a-elsewhere": [0, 2],
          });
          const got = await treeSnapshot(part);
          for (const p of ["docs/a", "other/b", "other/deep/a-elsewhere"]) {
            deepStrictEqual(got[p], want[p], p);
          }
        } finally {
          socket.close();
        }
      });
    } finally {
      await user.cleanup();
    }
  },
});
