/**
 * A repository that runs out of space: on an 8 MiB tmpfs (mounted by the test, which needs root),
 * or, where mounting is not permitted, with vger run under `prlimit --fsize` (SIGXFSZ ignored, so
 * the write fails with EFBIG instead of killing the process). Set VGER_TEST_DISK_FULL=prlimit to
 * force the fallback.
 *
 * The backup that does not fit must end with exit code 1 and one line naming the path and the
 * reason, and leave a repository in which every committed archive restores, `check` finds no
 * error and, once there is room again, the next backup succeeds.
 *
 * @module
 */

import { deepStrictEqual, equal, ok } from "node:assert/strict";
import {
  assertCheckClean,
  assertOneLine,
  assertRestores,
  CLI_PATH,
  FAST_KDF_ARGS,
  PASSPHRASE,
  pseudoRandomBytes,
  type RunResult,
  runVger,
  type TreeSnapshot,
  treeSnapshot,
  withTempDir,
} from "./_helpers.ts";

/** Size of the tmpfs the repository lives on. */
const TMPFS_SIZE = "8m";
/** RLIMIT_FSIZE of the fallback: below the smallest pack (min_pack_size is 1 MiB). */
const FSIZE_LIMIT = 512 * 1024;

async function run(cmd: string, args: string[]): Promise<Deno.CommandOutput> {
  return await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
}

/** Mounts an 8 MiB tmpfs on `dir`; false when that is not permitted here. */
async function mountTmpfs(dir: string): Promise<boolean> {
  if (Deno.env.get("VGER_TEST_DISK_FULL") === "prlimit" || Deno.uid() !== 0) return false;
  try {
    return (await run("mount", ["-t", "tmpfs", "-o", `size=${TMPFS_SIZE}`, "tmpfs", dir])).success;
  } catch {
    return false; // no mount(8)
  }
}

async function unmount(dir: string): Promise<void> {
  if ((await run("umount", [dir])).success) return;
  const lazy = await run("umount", ["-l", dir]);
  ok(lazy.success, `Cannot unmount ${dir}: ${new TextDecoder().decode(lazy.stderr)}`);
}

/** Runs vger with RLIMIT_FSIZE set and SIGXFSZ ignored (an ignored signal stays so over exec). */
async function runVgerWithFileSizeLimit(args: string[]): Promise<RunResult> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(Deno.env.toObject())) {
    if (!k.startsWith("VGER_")) env[k] = v;
  }
  Object.assign(env, {
    VGER_PASSPHRASE: PASSPHRASE,
    XDG_CONFIG_HOME: "/nonexistent/vger-test-config",
    NO_COLOR: "1",
  });
  const out = await new Deno.Command("sh", {
    args: [
      "-c",
      'trap "" XFSZ; exec prlimit --fsize="$0" "$@"',
      String(FSIZE_LIMIT),
      Deno.execPath(),
      "run",
      "-A",
      CLI_PATH,
      ...args,
    ],
    env,
    clearEnv: true,
    cwd: "/",
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: out.code,
    stdout: decoder.decode(out.stdout),
    stderr: decoder.decode(out.stderr),
    timedOut: false,
  };
}

async function files(path: string): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const e of Deno.readDir(path)) {
      if (e.isDirectory) out.push(...await files(`${path}/${e.name}`));
      else out.push(`${path}/${e.name}`);
    }
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  return out;
}

async function writeTree(dir: string, sizes: number[], seed: number): Promise<TreeSnapshot> {
  await Deno.mkdir(dir, { recursive: true });
  for (const [i, size] of sizes.entries()) {
    await Deno.writeFile(`${dir}/f${i}`, pseudoRandomBytes(size, seed + i));
  }
  await Deno.writeTextFile(`${dir}/readme.txt`, `tree ${seed}\n`);
  return await treeSnapshot(dir);
}

Deno.test("a backup that runs out of space fails with one line naming the path, and the repository stays usable", async () => {
  await withTempDir(async (dir) => {
    const mnt = `${dir}/mnt`;
    await Deno.mkdir(mnt);
    const tmpfs = await mountTmpfs(mnt);
    if (!tmpfs) {
      console.log(`no tmpfs for the repository: file size limited to ${FSIZE_LIMIT} bytes`);
    }
    try {
      const repo = `${mnt}/repo`;
      const config = `${dir}/vger.yaml`;
      await Deno.writeTextFile(
        config,
        `repositories:\n  - path: "${repo}"\n    min_pack_size: 1048576\n` +
          `    max_pack_size: 2097152\n`,
      );
      const vger = (args: readonly string[]) => runVger(["--config", config, ...args]);
      const ok0 = async (args: readonly string[]) => {
        const r = await vger(args);
        equal(r.code, 0, `vger ${args.join(" ")}: ${r.stderr}`);
        return r;
      };
      await ok0(["init", ...FAST_KDF_ARGS]);
      const small = `${dir}/small`;
      const smallSnapshot = await writeTree(small, [1 << 20, 700 << 10], 1);
      await ok0(["backup", "--archive", "small", small]);

      // 10 MiB of incompressible data: more than the tmpfs has left, and packs above the limit
      const big = `${dir}/big`;
      const bigSnapshot = await writeTree(big, [4 << 20, 4 << 20, 2 << 20], 10);
      const backupBig = ["--config", config, "backup", "--archive", "big", big];
      const failed = tmpfs ? await runVger(backupBig) : await runVgerWithFileSizeLimit(backupBig);
      assertOneLine(failed, /^vger: /, "the backup that does not fit");
      const line = failed.stderr.trim();
      const reason = tmpfs ? "disk full" : "file too large";
      ok(line.includes(`"${repo}/`), `the message names no path in the repository: ${line}`);
      ok(line.endsWith(`: ${reason}`), `not "${reason}": ${line}`);

      // nothing half-written or locked is left behind, the committed archive is intact
      deepStrictEqual((await files(repo)).filter((f) => f.includes("/.tmp-")), []);
      deepStrictEqual(await files(`${repo}/locks`), []);
      const list = JSON.parse((await ok0(["list", "--json"])).stdout);
      deepStrictEqual(list.archives.map((a: { name: string }) => a.name), ["small"]);

      // room again: a bigger tmpfs, or no file size limit
      if (tmpfs) {
        const grown = await run("mount", ["-o", "remount,size=64m", mnt]);
        ok(grown.success, new TextDecoder().decode(grown.stderr));
      }
      await assertCheckClean(vger, "after the backup that did not fit");
      await assertRestores(
        vger,
        "small",
        small,
        smallSnapshot,
        "after the backup that did not fit",
      );

      await ok0(["backup", "--archive", "big", big]);
      await assertRestores(vger, "big", big, bigSnapshot, "once there is room");
      await ok0(["compact"]);
      const after = JSON.parse((await ok0(["check", "--verify-data", "--json"])).stdout);
      deepStrictEqual(after.problems, []);
    } finally {
      if (tmpfs) await unmount(mnt);
    }
  });
});
