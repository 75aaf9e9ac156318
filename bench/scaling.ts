/**
 * `deno task bench:scaling`: memory and time against the number of files. For each N it builds a
 * tree of N small files (10-200 bytes, 100 per directory) on tmpfs, then runs vger's first
 * backup, unchanged re-backup, restore and `check --verify-data` through /usr/bin/time (and
 * restic's, on the same tree, with BENCH_PEERS=restic), and prints wall seconds, CPU seconds, peak
 * RSS and the bytes per file above the fixed base (the same step on a one-file tree).
 *
 * Environment:
 * - BENCH_FILES: the counts, comma-separated (default "100000,400000");
 * - BENCH_WORK: scratch directory (default /dev/shm/vger-scaling; trees are kept between runs,
 *   repositories and restores are removed after each count);
 * - BENCH_PEERS: "restic" to run restic too;
 * - BENCH_STEPS: which steps, comma-separated (default "backup1,backup2,restore,check");
 * - VGER_CMD: how to run vger (default `deno run -A cli.ts` of this checkout).
 *
 * Each step of each tool is one run; run it under the shared lock, one count at a time when the
 * machine is shared.
 */

import { RACY_NS } from "../lib/files_cache.ts";

const cli = new URL("../cli.ts", import.meta.url).pathname;
const counts = (Deno.env.get("BENCH_FILES") ?? "100000,400000").split(",").map(Number);
const work = Deno.env.get("BENCH_WORK") ?? "/dev/shm/vger-scaling";
const peers = (Deno.env.get("BENCH_PEERS") ?? "").split(",").filter((p) => p !== "");
const steps = (Deno.env.get("BENCH_STEPS") ?? "backup1,backup2,restore,check").split(",");
const vgerCmd = (Deno.env.get("VGER_CMD") ?? `${Deno.execPath()} run -A ${cli}`).split(" ");
const PASSPHRASE = "scaling-bench-passphrase";

/** One timed run: wall and CPU seconds, peak RSS in KiB. */
interface Timing {
  wall: number;
  cpu: number;
  rssKiB: number;
}

/** Builds (once) a tree of `n` files of 10-200 bytes, 100 per directory, 100 directories each. */
function makeTree(n: number): string {
  const root = `${work}/tree-${n}`;
  const done = `${work}/tree-${n}.done`;
  try {
    Deno.statSync(done);
    return root;
  } catch {
    // not built yet
  }
  removeIfThere(root);
  const enc = new TextEncoder();
  let x = 0x9e3779b9;
  const line = new Uint8Array(256);
  for (let i = 0; i < n; i++) {
    const dir = `${root}/g${Math.floor(i / 10000)}/d${Math.floor(i / 100) % 100}`;
    if (i % 100 === 0) Deno.mkdirSync(dir, { recursive: true });
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    const size = 10 + ((x >>> 0) % 191);
    const head = enc.encodeInto(`file ${i} ${x >>> 0} `, line).written;
    for (let j = head; j < size; j++) line[j] = 97 + ((x >>> (j % 24)) + j) % 26;
    Deno.writeFileSync(`${dir}/f${i % 100}.txt`, line.subarray(0, Math.max(size, head)));
  }
  Deno.writeTextFileSync(done, "");
  // the files cache records no file changed within 2 s of a backup's start (the racy-clean
  // rule): a backup started at once would leave the last files out, and the unchanged re-backup
  // would read them again
  const until = Date.now() + Number(RACY_NS / 1_000_000n) + 200;
  while (Date.now() < until) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
  return root;
}

/** Removes a directory tree, if it exists. */
function removeIfThere(path: string): void {
  try {
    Deno.removeSync(path, { recursive: true });
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
}

/** Runs a command under /usr/bin/time; throws when it fails. */
async function timed(cmd: string[], env: Record<string, string>): Promise<Timing> {
  const out = `${work}/time.txt`;
  const r = await new Deno.Command("/usr/bin/time", {
    args: ["-f", "%e %U %S %M", "-o", out, ...cmd],
    env,
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!r.success) {
    throw new Error(`${cmd.join(" ")} failed: ${new TextDecoder().decode(r.stderr).slice(-2000)}`);
  }
  const last = Deno.readTextFileSync(out).trim().split("\n").at(-1)!;
  const [wall, user, sys, rss] = last.split(" ").map(Number);
  return { wall, cpu: user + sys, rssKiB: rss };
}

/** The steps of one tool on one tree, each timed. */
async function runTool(tool: string, tree: string): Promise<Map<string, Timing>> {
  const dir = `${work}/run-${tool}`;
  removeIfThere(dir);
  Deno.mkdirSync(dir, { recursive: true });
  const out = new Map<string, Timing>();
  try {
    if (tool === "vger") {
      Deno.writeTextFileSync(
        `${dir}/vger.yaml`,
        `repositories:\n  - path: "${dir}/repo"\n    label: "bench"\nencryption:\n  mode: "aes256gcm"\n` +
          `source_directories:\n  - "${tree}"\ncompression:\n  algorithm: "lz4"\n`,
      );
      const env = { VGER_PASSPHRASE: PASSPHRASE, XDG_CACHE_HOME: `${dir}/cache` };
      const v = (...args: string[]) => [...vgerCmd, "--config", `${dir}/vger.yaml`, ...args];
      await timed(v("init"), env);
      const step: Record<string, string[]> = {
        backup1: v("backup", "--archive", "a1"),
        backup2: v("backup", "--archive", "a2"),
        restore: v("extract", "--archive", "a2", "--dest", `${dir}/restore`),
        check: v("check", "--verify-data"),
      };
      for (const [name, cmd] of Object.entries(step)) {
        if (steps.includes(name) || (name === "backup1" && steps.includes("backup2"))) {
          out.set(name, await timed(cmd, env));
        }
      }
    } else if (tool === "restic") {
      const env = {
        RESTIC_PASSWORD: PASSPHRASE,
        RESTIC_REPOSITORY: `${dir}/repo`,
        RESTIC_CACHE_DIR: `${dir}/cache`,
      };
      await timed(["restic", "init", "--repository-version", "2"], env);
      const backup = ["restic", "backup", "--compression", "auto", "--host", "bench", tree];
      const step: Record<string, string[]> = {
        backup1: backup,
        backup2: backup,
        restore: ["restic", "restore", "latest", "--target", `${dir}/restore`],
        check: ["restic", "check", "--read-data"],
      };
      for (const [name, cmd] of Object.entries(step)) {
        if (steps.includes(name) || (name === "backup1" && steps.includes("backup2"))) {
          out.set(name, await timed(cmd, env));
        }
      }
    } else throw new Error(`Unknown peer "${tool}"`);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
  return out;
}

const tools = ["vger", ...peers];
const results: { tool: string; n: number; step: string; t: Timing }[] = [];
Deno.mkdirSync(work, { recursive: true });
for (const tool of tools) {
  const base = await runTool(tool, makeTree(1));
  for (const [step, t] of base) results.push({ tool, n: 1, step, t });
}
for (const n of counts) {
  const tree = makeTree(n);
  for (const tool of tools) {
    for (const [step, t] of await runTool(tool, tree)) results.push({ tool, n, step, t });
  }
}

const rows = [
  "| tool | files | step | wall s | CPU s | peak RSS MiB | bytes/file above base |",
  "|---|---:|---|---:|---:|---:|---:|",
];
for (const r of results) {
  const base = results.find((b) => b.tool === r.tool && b.step === r.step && b.n === 1)!;
  const perFile = r.n === 1 ? "" : ((r.t.rssKiB - base.t.rssKiB) * 1024 / r.n).toFixed(0);
  rows.push(
    `| ${r.tool} | ${r.n.toLocaleString("en")} | ${r.step} | ${r.t.wall.toFixed(2)} | ` +
      `${r.t.cpu.toFixed(2)} | ${(r.t.rssKiB / 1024).toFixed(0)} | ${perFile} |`,
  );
}
console.log(rows.join("\n"));
