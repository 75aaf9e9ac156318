/**
 * Hardlinks round-trip (issue 13): a backup reads a hard-linked inode once and stores every name
 * with the same chunks and its group (`h`, the group's first path); `list` shows later names as
 * `link to FIRST`; extract restores the names it selects as hard links among themselves, and a
 * name whose other names are not selected as a plain file (docs/FORMAT.md, "Hardlinks").
 *
 * @module
 */

import { deepStrictEqual, equal, match, ok } from "node:assert/strict";
import {
  chownTree,
  initRepo,
  jsonOf,
  linkShape,
  listItems,
  makeUnprivilegedUser,
  NOBODY_ID,
  pseudoRandomBytes,
  runVgerOk,
  storedPath,
  treeSnapshot,
  withTempDir,
} from "./_helpers.ts";

const BIG = 3 << 20; // several chunks

/**
 * A tree with three hardlink groups: a 3-name group across two directories, a 2-name group, a
 * several-chunk file with 2 names; a symlink pair; and a plain file. Returns the unique bytes.
 */
async function makeTree(src: string): Promise<number> {
  await Deno.mkdir(`${src}/a`, { recursive: true });
  await Deno.mkdir(`${src}/b/deep`, { recursive: true });
  await Deno.writeTextFile(`${src}/a/one`, "first group\n");
  await Deno.link(`${src}/a/one`, `${src}/a/one-again`);
  await Deno.link(`${src}/a/one`, `${src}/b/deep/one-elsewhere`);
  await Deno.writeTextFile(`${src}/a/two`, "second group, other bytes\n");
  await Deno.link(`${src}/a/two`, `${src}/b/two`);
  await Deno.writeFile(`${src}/b/big`, pseudoRandomBytes(BIG, 7));
  await Deno.link(`${src}/b/big`, `${src}/big-link`);
  await Deno.writeTextFile(`${src}/plain`, "not linked\n");
  await Deno.chmod(`${src}/a/two`, 0o600);
  return 12 + 26 + BIG + 11;
}

Deno.test("hardlinks: stored once with their group, listed with the first name, restored as hard links", async () => {
  await withTempDir(async (dir) => {
    const src = `${dir}/src`;
    const unique = await makeTree(src);
    const repo = await initRepo(`${dir}/repo`);
    const b = await runVgerOk(["-R", repo, "backup", "--archive", "a", "--json", src]);
    // each inode read once: the bytes read are those of the distinct inodes
    equal(jsonOf<{ original_size: number }>(b).original_size, unique);

    const items = await listItems(repo, "a");
    const h = Object.fromEntries(items.map((i) => [i.path.slice(storedPath(src).length + 1), i]));
    const first = storedPath(`${src}/a/one`);
    deepStrictEqual(
      ["a/one", "a/one-again", "b/deep/one-elsewhere"].map((p) => h[p].hardlink),
      [first, first, first],
    );
    deepStrictEqual(
      [h["a/two"].hardlink, h["b/two"].hardlink],
      Array(2).fill(`${storedPath(src)}/a/two`),
    );
    deepStrictEqual(
      [h["b/big"].hardlink, h["big-link"].hardlink],
      Array(2).fill(`${storedPath(src)}/b/big`),
    );
    equal(h["big-link"].size, BIG);
    equal(h["plain"].hardlink, undefined);
    equal(h["a"].hardlink, undefined);
    const lines = (await runVgerOk(["-R", repo, "list", "--archive", "a"])).stdout;
    match(lines, new RegExp(` ${first}-again link to ${first}\\n`));
    match(lines, new RegExp(` ${first}\\n`));

    await runVgerOk(["-R", repo, "extract", "--archive", "a", "--dest", `${dir}/out`]);
    const out = `${dir}/out${src}`;
    deepStrictEqual(await treeSnapshot(out), await treeSnapshot(src));
    const shape = await linkShape(out);
    deepStrictEqual(shape, await linkShape(src));
    equal(shape["a/one"][1], 3);
    equal(shape["big-link"][0], shape["b/big"][0]);
  });
});

Deno.test("hardlinks in partial restores: selected names link among themselves, a lone name is a plain file", async () => {
  await withTempDir(async (dir) => {
    const src = `${dir}/src`;
    await makeTree(src);
    const repo = await initRepo(`${dir}/repo`);
    await runVgerOk(["-R", repo, "backup", "--archive", "a", src]);
    const rel = storedPath(src);
    const source = await treeSnapshot(src);

    // only b/: every group's first name is outside, so each name is restored from its own chunks
    await runVgerOk(["-R", repo, "extract", "--archive", "a", "--dest", `${dir}/b`, `${rel}/b/**`]);
    const onlyB = await linkShape(`${dir}/b${src}`);
    deepStrictEqual(onlyB, { "b/big": [0, 1], "b/deep/one-elsewhere": [1, 1], "b/two": [2, 1] });
    const gotB = await treeSnapshot(`${dir}/b${src}/b`);
    for (const p of ["big", "deep/one-elsewhere", "two"]) {
      deepStrictEqual(gotB[p], source[`b/${p}`], p);
    }

    // two names of the 3-name group without its first: linked to each other, 2 links
    await runVgerOk([
      "-R",
      repo,
      "extract",
      "--archive",
      "a",
      "--dest",
      `${dir}/two`,
      `${rel}/a/one-again`,
      `${rel}/b/deep/one-elsewhere`,
    ]);
    const two = await linkShape(`${dir}/two${src}`);
    deepStrictEqual(two, { "a/one-again": [0, 2], "b/deep/one-elsewhere": [0, 2] });
    equal(await Deno.readTextFile(`${dir}/two${src}/a/one-again`), "first group\n");
    const st = await Deno.lstat(`${dir}/two${src}/a/one-again`);
    deepStrictEqual([st.mode! & 0o7777, st.mtime?.getTime()], [
      source["a/one"].mode,
      Number(source["a/one"].mtimeNs / 1_000_000n),
    ]);
    ok(!(await Deno.lstat(`${dir}/two${src}/a/one`).catch(() => null)));
  });
});

Deno.test({
  name: "hardlinks restore as hard links for a non-root user too",
  ignore: Deno.uid() !== 0,
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
        await runVgerOk(["-R", repo, "extract", "--archive", "a", "--dest", `${dir}/out`], {
          user,
        });
        deepStrictEqual(await linkShape(`${dir}/out${src}`), await linkShape(src));
        const got = await treeSnapshot(`${dir}/out${src}`);
        for (const [p, e] of Object.entries(await treeSnapshot(src))) {
          deepStrictEqual(got[p], { ...e, uid: user.uid, gid: user.gid }, p);
        }
      });
    } finally {
      await user.cleanup();
    }
  },
});
