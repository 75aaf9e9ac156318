/**
 * Repository files are the owner's alone: every file vger creates in a repository is 0600 and
 * every directory 0700 whatever the umask, and they carry the group bits the owner gave the
 * repository's root directory (as restic does).
 *
 * @module
 */

import { deepStrictEqual, ok } from "node:assert/strict";
import process from "node:process";
import { initRepo, runVgerOk, withTempDir } from "./_helpers.ts";

/** Every entry under `root` (root included) as "path mode" lines, "path" relative to `root`. */
async function modes(root: string, rel = "."): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const path = rel === "." ? root : `${root}/${rel}`;
  out.set(rel, (await Deno.lstat(path)).mode! & 0o777);
  for await (const e of Deno.readDir(path)) {
    const child = rel === "." ? e.name : `${rel}/${e.name}`;
    if (e.isDirectory) { for (const [k, v] of await modes(root, child)) out.set(k, v); }
    else out.set(child, (await Deno.lstat(`${root}/${child}`)).mode! & 0o777);
  }
  return out;
}

/** The entries whose mode is not `file` (files) or `dir` (directories). */
async function wrongModes(repo: string, file: number, dir: number): Promise<string[]> {
  const wrong: string[] = [];
  for (const [path, mode] of await modes(repo)) {
    const isDir = (await Deno.lstat(`${repo}/${path}`)).isDirectory;
    const want = isDir ? dir : file;
    if (mode !== want) wrong.push(`${path} is ${mode.toString(8)}, expected ${want.toString(8)}`);
  }
  return wrong;
}

/** Runs `fn` with the process umask (which children inherit) set to `mask`. */
async function withUmask<T>(mask: number, fn: () => Promise<T>): Promise<T> {
  const old = process.umask(mask);
  try {
    return await fn();
  } finally {
    process.umask(old);
  }
}

async function initAndBackup(dir: string, repo: string): Promise<void> {
  await Deno.mkdir(`${dir}/src`, { recursive: true });
  await Deno.writeTextFile(`${dir}/src/a.txt`, "hello");
  await initRepo(repo);
  await runVgerOk(["-R", repo, "backup", "-a", "one", `${dir}/src`]);
}

for (const mask of [0o022, 0o002, 0o000]) {
  Deno.test({
    name: `repository files are 0600 and directories 0700 under umask ${
      mask.toString(8).padStart(3, "0")
    }`,
    ignore: Deno.build.os === "windows",
    fn: () =>
      withTempDir((dir) =>
        withUmask(mask, async () => {
          const repo = `${dir}/repo`;
          await initAndBackup(dir, repo);
          const all = await modes(repo);
          ok(all.has("config") && all.has("manifest"), [...all.keys()].join(", "));
          ok([...all.keys()].some((p) => p.startsWith("packs/")), "no pack was written");
          ok([...all.keys()].some((p) => p.startsWith("keys/")), "no key was written");
          deepStrictEqual(await wrongModes(repo, 0o600, 0o700), []);
        })
      ),
  });
}

Deno.test({
  name: "a group-accessible repository root gives its group bits to new files and directories",
  ignore: Deno.build.os === "windows",
  fn: () =>
    withTempDir((dir) =>
      withUmask(0o077, async () => {
        const repo = `${dir}/repo`;
        await Deno.mkdir(repo);
        await Deno.chmod(repo, 0o750);
        await initAndBackup(dir, repo);
        const wrong = (await wrongModes(repo, 0o640, 0o750)).filter((w) => !w.startsWith(". "));
        deepStrictEqual(wrong, []);
        deepStrictEqual((await modes(repo)).get("."), 0o750, "the root's own mode changed");
      })
    ),
});
