/**
 * POSIX ACLs and the extended attribute namespaces root can read round-trip (issue 13): ACLs are
 * the xattrs `system.posix_acl_access` and `system.posix_acl_default`, made here from their
 * documented bytes (no setfacl needed); `security.*` and `trusted.*` are set as root. A restore as
 * root brings every one back; as another user it sets what an owner may (user.*, ACLs) and skips
 * the rest with one summary warning, exit 3; without FFI it skips them all with one warning.
 *
 * @module
 */

import { deepStrictEqual, equal, ok } from "node:assert/strict";
import { nativeFs } from "../lib/fs_native.ts";
import {
  chownTree,
  DIR_ACL,
  FILE_ACL,
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

const bytes = (s: string) => new TextEncoder().encode(s);

/** A file and a directory with ACLs and xattrs in the user, security and trusted namespaces. */
async function makeTree(src: string): Promise<void> {
  const fs = nativeFs()!;
  await Deno.mkdir(`${src}/dir`, { recursive: true });
  await Deno.writeTextFile(`${src}/dir/file`, "with attributes\n");
  await Deno.chmod(`${src}/dir/file`, 0o664); // the mode an ACL with mask rw- gives
  fs.setXattr(`${src}/dir/file`, "system.posix_acl_access", FILE_ACL);
  fs.setXattr(`${src}/dir`, "system.posix_acl_default", DIR_ACL);
  fs.setXattr(`${src}/dir/file`, "user.note", bytes("plain"));
  fs.setXattr(`${src}/dir/file`, "security.vger", bytes("sec"));
  fs.setXattr(`${src}/dir/file`, "trusted.vger", bytes("root only"));
  fs.setXattr(`${src}/dir`, "trusted.dir", bytes("t"));
  // made after its directory's default ACL: it inherits an access ACL from it
  await Deno.writeTextFile(`${src}/dir/bare`, "inherits\n");
}

const warnings = (stderr: string) =>
  stderr.split("\n").filter((l) => l.startsWith("vger: warning"));

Deno.test({
  name: "ACLs and user, security and trusted xattrs round-trip as root, byte for byte",
  ignore: !isRoot,
  fn: async () => {
    await withTempDir(async (dir) => {
      const src = `${dir}/src`;
      await makeTree(src);
      const before = await treeSnapshot(src);
      deepStrictEqual(Object.keys(before["dir/bare"].xattrs), ["system.posix_acl_access"]);
      deepStrictEqual(Object.keys(before["dir/file"].xattrs), [
        "security.vger",
        "system.posix_acl_access",
        "trusted.vger",
        "user.note",
      ]);
      const repo = await initRepo(`${dir}/repo`);
      await runVgerOk(["-R", repo, "backup", "--archive", "a", src]);
      await runVgerOk(["-R", repo, "extract", "--archive", "a", "--dest", `${dir}/out`]);
      deepStrictEqual(await treeSnapshot(`${dir}/out${src}`), before);
    });
  },
});

Deno.test({
  name:
    "as another user a restore sets user xattrs and ACLs and skips trusted and security ones with one summary warning, exit 3",
  ignore: !isRoot,
  fn: async () => {
    const user = await makeUnprivilegedUser(NOBODY_ID, NOBODY_ID);
    try {
      await withTempDir(async (dir) => {
        await Deno.chmod(dir, 0o755);
        const src = `${dir}/src`;
        await makeTree(src);
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
          `vger: warning: Skipped 3 extended attributes (security.*, trusted.*; first on "${dir}/out/${rel}/dir/file"): setting them needs root`,
        ]);
        const got = await treeSnapshot(`${dir}/out${src}`);
        const want = await treeSnapshot(src);
        const keep = (x: Record<string, string>) =>
          Object.fromEntries(Object.entries(x).filter(([k]) => /^(user|system)\./.test(k)));
        for (const p of ["dir", "dir/file", "dir/bare"]) {
          deepStrictEqual(got[p].xattrs, keep(want[p].xattrs), p);
          equal(got[p].mode, want[p].mode, p);
        }
        ok("system.posix_acl_access" in got["dir/file"].xattrs);
        ok("system.posix_acl_default" in got["dir"].xattrs);
      });
    } finally {
      await user.cleanup();
    }
  },
});

Deno.test({
  name:
    "without --allow-ffi (strict mode) a restore leaves out xattrs and ACLs, a documented loss: no warning, exit 0",
  ignore: !isRoot,
  fn: async () => {
    await withTempDir(async (dir) => {
      const src = `${dir}/src`;
      await makeTree(src);
      const repo = await initRepo(`${dir}/repo`);
      await runVgerOk(["-R", repo, "backup", "--archive", "a", src]);
      const out = await runVger(
        ["-R", repo, "extract", "--archive", "a", "--dest", `${dir}/out`],
        { denoFlags: withoutLibcFfi() },
      );
      const stderr = out.stderr;
      // strict mode's documented loss (README): no warning, and the contents come back whole
      equal(out.code, 0, stderr);
      deepStrictEqual(warnings(stderr), []);
      equal(await Deno.readTextFile(`${dir}/out${src}/dir/file`), "with attributes\n");
      deepStrictEqual(Object.keys((await treeSnapshot(`${dir}/out${src}`))["dir/file"].xattrs), []);
    });
  },
});
