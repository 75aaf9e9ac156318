/**
 * The files cache through the CLI: unchanged files are not read again, and no change of
 * contents, however disguised, is ever missed (restores are compared byte for byte).
 */

import { deepStrictEqual, equal, ok } from "node:assert/strict";
import {
  initRepo,
  pseudoRandomBytes,
  restoredPath,
  runVger,
  runVgerOk,
  treeSnapshot,
  withTempDir,
} from "./_helpers.ts";
import { nativeFs } from "../lib/fs_native.ts";

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Files written now are too fresh to be cached (the racy rule): wait past its window. */
const PAST_RACY_WINDOW_MS = 2200;

async function backupJson(args: string[], env?: Record<string, string>) {
  const r = await runVgerOk([...args, "--json"], { env });
  return JSON.parse(r.stdout) as { unchanged_files: number; files: number; archive: string };
}

async function restore(repo: string, archive: string, dest: string): Promise<void> {
  await runVgerOk(["-R", repo, "extract", "--archive", archive, "--dest", dest]);
}

Deno.test("files cache: unchanged files are taken from the cache; every change is still seen", async (t) => {
  await withTempDir(async (dir) => {
    const src = `${dir}/src`;
    const repo = `${dir}/repo`;
    const cache = `${dir}/cache`;
    const env = { VGER_CACHE_DIR: cache };
    await Deno.mkdir(`${src}/sub`, { recursive: true });
    await Deno.writeFile(`${src}/big.bin`, pseudoRandomBytes(3 << 20, 1));
    await Deno.writeTextFile(`${src}/same-size.txt`, "AAAAAAAAAA");
    await Deno.writeTextFile(`${src}/sub/note.txt`, "hello");
    await initRepo(repo);
    await delay(PAST_RACY_WINDOW_MS);

    await t.step("the first backup reads everything and fills the cache", async () => {
      const b1 = await backupJson(["-R", repo, "backup", "--archive", "b1", src], env);
      equal(b1.unchanged_files, 0);
      // known-repos/ is the client's memory of repositories (lib/known_repos.ts)
      const caches = [...Deno.readDirSync(cache)].filter((e) => e.name !== "known-repos");
      equal(caches.length, 1, "one cache directory per repository");
    });

    await t.step("a second backup of the unchanged tree reads no file", async () => {
      const b2 = await backupJson(["-R", repo, "backup", "--archive", "b2", src], env);
      equal(b2.unchanged_files, 3);
      await restore(repo, "b2", `${dir}/out2`);
      deepStrictEqual(
        await treeSnapshot(restoredPath(`${dir}/out2`, src)),
        await treeSnapshot(src),
      );
    });

    await t.step(
      "new contents of the same size with the old mtime put back are read again",
      async () => {
        const before = await Deno.stat(`${src}/same-size.txt`);
        await Deno.writeTextFile(`${src}/same-size.txt`, "BBBBBBBBBB");
        await Deno.utime(`${src}/same-size.txt`, before.atime!, before.mtime!);
        const b3 = await backupJson(["-R", repo, "backup", "--archive", "b3", src], env);
        equal(b3.unchanged_files, 2, "the disguised change (its ctime moved) is read again");
        await restore(repo, "b3", `${dir}/out3`);
        equal(
          await Deno.readTextFile(restoredPath(`${dir}/out3`, `${src}/same-size.txt`)),
          "BBBBBBBBBB",
        );
      },
    );

    await t.step("--no-files-cache reads every file", async () => {
      const b4 = await backupJson(
        ["-R", repo, "backup", "--archive", "b4", "--no-files-cache", src],
        env,
      );
      equal(b4.unchanged_files, 0);
    });

    await t.step("chunks that compaction removed are stored again, not referenced", async () => {
      await delay(PAST_RACY_WINDOW_MS); // same-size.txt changed above: let b5 cache it too
      const b5 = await backupJson(["-R", repo, "backup", "--archive", "b5", src], env);
      equal(b5.unchanged_files, 2, "b4 did not use the cache, b3 recorded two files");
      // every archive goes, so compaction removes every chunk the cache still lists
      for (const a of ["b1", "b2", "b3", "b4", "b5"]) {
        await runVgerOk(["-R", repo, "delete", "--archive", a]);
      }
      await runVgerOk(["-R", repo, "compact", "--threshold", "0"]);
      const b6 = await backupJson(["-R", repo, "backup", "--archive", "b6", src], env);
      equal(b6.unchanged_files, 0, "cached files whose chunks are gone must be read again");
      const check = await runVger(["-R", repo, "check", "--verify-data"]);
      equal(check.code, 0, check.stdout + check.stderr);
      await restore(repo, "b6", `${dir}/out6`);
      deepStrictEqual(
        await treeSnapshot(restoredPath(`${dir}/out6`, src)),
        await treeSnapshot(src),
      );
    });

    await t.step(
      "a damaged cache is ignored with a warning and the backup is complete",
      async () => {
        const [id] = [...Deno.readDirSync(cache)].map((e) => e.name)
          .filter((n) => n !== "known-repos");
        const file = `${cache}/${id}/files`;
        const bytes = await Deno.readFile(file);
        bytes[bytes.length - 3] ^= 1;
        await Deno.writeFile(file, bytes);
        const r = await runVgerOk(["-R", repo, "backup", "--archive", "b7", src], { env });
        ok(/files cache .* is damaged/.test(r.stderr), r.stderr);
        await restore(repo, "b7", `${dir}/out7`);
        deepStrictEqual(
          await treeSnapshot(restoredPath(`${dir}/out7`, src)),
          await treeSnapshot(src),
        );
      },
    );
  });
});

Deno.test({
  name: "files cache: extended attributes of unchanged files are kept, and one added later is seen",
  ignore: nativeFs() === null,
  fn: async () => {
    await withTempDir(async (dir) => {
      const fs = nativeFs()!;
      const src = `${dir}/src`;
      const repo = `${dir}/repo`;
      const env = { VGER_CACHE_DIR: `${dir}/cache` };
      await Deno.mkdir(src);
      await Deno.writeTextFile(`${src}/bare`, "no attributes yet");
      await Deno.writeTextFile(`${src}/with`, "one attribute");
      try {
        fs.setXattr(`${src}/with`, "user.vger", new TextEncoder().encode("kept"));
      } catch {
        return; // no user xattrs on this file system
      }
      await initRepo(repo);
      await delay(PAST_RACY_WINDOW_MS);
      await backupJson(["-R", repo, "backup", "--archive", "b1", src], env);
      const b2 = await backupJson(["-R", repo, "backup", "--archive", "b2", src], env);
      equal(b2.unchanged_files, 2);
      // an attribute added moves the ctime: the file is no longer taken from the cache
      fs.setXattr(`${src}/bare`, "user.vger", new TextEncoder().encode("added"));
      const b3 = await backupJson(["-R", repo, "backup", "--archive", "b3", src], env);
      equal(b3.unchanged_files, 1);
      for (const archive of ["b2", "b3"]) {
        await restore(repo, archive, `${dir}/${archive}`);
      }
      const b2Tree = await treeSnapshot(restoredPath(`${dir}/b2`, src));
      const b3Tree = await treeSnapshot(restoredPath(`${dir}/b3`, src));
      deepStrictEqual(b2Tree.with.xattrs, { "user.vger": "6b657074" });
      deepStrictEqual(b2Tree.bare.xattrs, {});
      deepStrictEqual(b3Tree, await treeSnapshot(src));
      deepStrictEqual(b3Tree.bare.xattrs, { "user.vger": "6164646564" });
    });
  },
});
