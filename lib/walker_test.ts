import { deepStrictEqual, ok } from "node:assert/strict";
import { compareWalkOrder, walkSources } from "./walker.ts";

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "vger-walker-test-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Whether a FIFO could be made (mkfifo may be missing). */
async function mkfifo(path: string): Promise<boolean> {
  try {
    const { success } = await new Deno.Command("mkfifo", { args: [path] }).output();
    return success;
  } catch {
    return false;
  }
}

Deno.test("walkSources yields pre-order with sorted names (FIFOs too), skips excluded paths, the repository, sockets and unreadable directories", async () => {
  await withTempDir(async (dir) => {
    const src = `${dir}/src`;
    for (const d of ["b", "B/x", "a/deep", "repo", "cache", "locked"]) {
      await Deno.mkdir(`${src}/${d}`, { recursive: true });
    }
    for (const f of ["b/2", "b/1", "B/x/f", "a/deep/g", "repo/pack", "cache/c", "z.log", "é"]) {
      await Deno.writeFile(`${src}/${f}`, new Uint8Array(3));
    }
    await Deno.symlink("/", `${src}/link`);
    const fifo = await mkfifo(`${src}/fifo`);
    const socket = Deno.listen({ transport: "unix", path: `${src}/sock` });
    await Deno.chmod(`${src}/locked`, 0o000);
    const root = Deno.uid() === 0;
    try {
      const warnings: string[] = [];
      const looked: [string, boolean][] = [];
      const all = [
        ...walkSources([src, `${dir}/missing`, `${src}/b/1`], {
          isExcluded: (p, isDir) => {
            looked.push([p, isDir]);
            return p.endsWith(".log") || (isDir && p.endsWith("/cache"));
          },
          excludeDirs: [`${src}/repo/`, `${dir}/does-not-exist`],
          onWarning: (w) => warnings.push(w),
        }),
      ];
      const seen = all.filter((e) => e !== undefined)
        .map((e) => [e.rel, e.kind, e.st.size === 3 || e.kind !== "file"]);
      // one undefined for each path looked at and skipped, so the caller may pause there:
      // cache, repo, z.log, the missing source, the socket and the unreadable directory
      const skipped = 5 + (root ? 0 : 1);
      deepStrictEqual(all.filter((e) => e === undefined).length, skipped);
      const rel = src.slice(1);
      deepStrictEqual(seen, [
        [rel, "dir", true],
        [`${rel}/B`, "dir", true],
        [`${rel}/B/x`, "dir", true],
        [`${rel}/B/x/f`, "file", true],
        [`${rel}/a`, "dir", true],
        [`${rel}/a/deep`, "dir", true],
        [`${rel}/a/deep/g`, "file", true],
        [`${rel}/b`, "dir", true],
        [`${rel}/b/1`, "file", true],
        [`${rel}/b/2`, "file", true],
        ...(fifo ? [[`${rel}/fifo`, "fifo", true]] : []),
        [`${rel}/link`, "symlink", true],
        ...(root ? [[`${rel}/locked`, "dir", true]] : []),
        [`${rel}/é`, "file", true],
        [`${rel}/b/1`, "file", true],
      ]);
      deepStrictEqual(warnings, [
        `Skipped "${src}/sock": a socket (sockets are not backed up)`,
        ...(root ? [] : [`Skipped directory "${src}/locked": permission denied`]),
        `Skipped "${dir}/missing": no such file or directory`,
      ]);
      // the patterns see every path looked at, without its leading "/", with whether it is a dir
      deepStrictEqual(looked.find(([p]) => p === `${rel}/cache`), [`${rel}/cache`, true]);
      deepStrictEqual(looked.find(([p]) => p === `${rel}/z.log`), [`${rel}/z.log`, false]);
      deepStrictEqual(looked.some(([p]) => p.startsWith(`${rel}/cache/`)), false);
    } finally {
      socket.close();
      await Deno.chmod(`${src}/locked`, 0o700);
    }
  });
});

Deno.test("compareWalkOrder sorts paths as walkSources yields them", async () => {
  await withTempDir(async (dir) => {
    for (const d of ["a", "a/b", "a-c", "a.d/e", "ab", "A", "é", "\u{1F600}", "\uFF5E"]) {
      await Deno.mkdir(`${dir}/${d}`, { recursive: true });
      await Deno.writeFile(`${dir}/${d}/f`, new Uint8Array(1));
    }
    const walked = [...walkSources([dir])].map((e) => e!.path);
    const sorted = [...walked].reverse().sort(compareWalkOrder);
    deepStrictEqual(sorted, walked);
    for (let i = 1; i < walked.length; i++) {
      ok(compareWalkOrder(walked[i - 1], walked[i]) < 0, `${walked[i - 1]} < ${walked[i]}`);
    }
  });
});
