/**
 * `deno task bench`: builds a corpus, then times vger's backup, unchanged re-backup, incremental
 * backup and restore through the real CLI in subprocesses, printing MB/s and peak RSS (VmHWM).
 *
 * `deno task bench:smoke` (BENCH_SMOKE=1) is the CI-sized run: a 48 MiB corpus, seconds, and
 * checks that assert no time but catch a large regression in what the steps do (see
 * {@linkcode smokeChecks}).
 *
 * Environment: BENCH_MB (corpus size, default 768; 48 for the smoke run), BENCH_DIR (scratch dir,
 * default a temp dir), BENCH_COMPRESSION (lz4 | zstd | none, default lz4).
 * For the comparison with restic and borg on one corpus see bench/README.md.
 *
 * @module
 */

import { RACY_NS } from "../lib/files_cache.ts";

const cli = new URL("../cli.ts", import.meta.url).pathname;
const smoke = Deno.env.get("BENCH_SMOKE") === "1";
const totalMb = Number(Deno.env.get("BENCH_MB") ?? (smoke ? 48 : 768));
const compression = Deno.env.get("BENCH_COMPRESSION") ?? "lz4";
const work = Deno.env.get("BENCH_DIR") ?? await Deno.makeTempDir({ prefix: "vger-bench-" });
const src = `${work}/src`;
const repo = `${work}/repo`;

/** Deterministic bytes: xorshift32. */
function fill(buf: Uint8Array, seed: number, compressible: boolean): void {
  let x = seed | 1;
  const words = "the quick brown fox jumps over lazy dogs while backups run quietly ".split(" ");
  if (!compressible) {
    const w = new Uint32Array(buf.buffer, buf.byteOffset, buf.length >>> 2);
    for (let i = 0; i < w.length; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      w[i] = x;
    }
    return;
  }
  const enc = new TextEncoder();
  let o = 0;
  while (o < buf.length) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    const b = enc.encode(words[(x >>> 0) % words.length] + " " + (x & 0xffff) + "\n");
    buf.set(b.subarray(0, buf.length - o), o);
    o += b.length;
  }
}

async function makeCorpus(): Promise<number> {
  await Deno.mkdir(src, { recursive: true });
  let bytes = 0;
  const budget = totalMb << 20;
  // 25%: 4,000 small files (1-64 KiB, compressible); 75%: large files, half random
  let seed = 1;
  for (let d = 0; d < 40; d++) {
    await Deno.mkdir(`${src}/small/d${d}`, { recursive: true });
    for (let f = 0; f < 100; f++) {
      const size = 1024 +
        ((seed * 2654435761) >>> 0) % (Math.max(2048, budget / 4 / 4000 * 2 - 1024));
      const b = new Uint8Array(size);
      fill(b, seed++, true);
      await Deno.writeFile(`${src}/small/d${d}/f${f}.txt`, b);
      bytes += size;
    }
  }
  await Deno.mkdir(`${src}/large`, { recursive: true });
  let i = 0;
  while (bytes < budget) {
    const size = Math.min(64 << 20, Math.max(budget >> 3, 1 << 20), budget - bytes);
    const b = new Uint8Array(size);
    fill(b, seed++, i % 2 === 0);
    await Deno.writeFile(`${src}/large/file${i++}.bin`, b);
    bytes += size;
  }
  return bytes;
}

/** What one CLI run took. */
interface StepResult {
  seconds: number;
  rssMiB: number;
  /** The run's `--json` document, when it was asked for one. */
  json: Record<string, unknown>;
}

async function run(args: string[]): Promise<StepResult> {
  const t0 = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", cli, "-R", repo, ...args],
    env: { VGER_PASSPHRASE: "bench", NO_COLOR: "1", VGER_CACHE_DIR: `${work}/cache` },
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  let peak = 0;
  const poll = setInterval(() => {
    try {
      const m = /VmHWM:\s+(\d+) kB/.exec(Deno.readTextFileSync(`/proc/${child.pid}/status`));
      if (m) peak = Math.max(peak, Number(m[1]) * 1024);
    } catch { /* exited */ }
  }, 20);
  const out = await child.output();
  clearInterval(poll);
  if (!out.success && out.code !== 3) throw new Error(`vger ${args[0]} failed: ${out.code}`);
  const text = new TextDecoder().decode(out.stdout).trim();
  const json = args.includes("--json") && text ? JSON.parse(text.split("\n").at(-1)!) : {};
  return { seconds: (performance.now() - t0) / 1000, rssMiB: peak / 1048576, json };
}

async function mutate(): Promise<number> {
  // append to 1% of small files, change 1 MiB in the middle of two large files
  let changed = 0;
  for (let d = 0; d < 40; d += 10) {
    await Deno.writeTextFile(`${src}/small/d${d}/f0.txt`, "appended line\n", { append: true });
    changed += 14;
  }
  for (const f of ["file0.bin", "file1.bin"]) {
    const file = await Deno.open(`${src}/large/${f}`, { write: true });
    const size = (await file.stat()).size;
    await file.seek(Math.min(10 << 20, size >> 1), Deno.SeekMode.Start);
    const b = new Uint8Array(1 << 20);
    fill(b, 999, false);
    await file.write(b);
    file.close();
    changed += b.length;
  }
  return changed;
}

/** SHA-256 (hex) of every file under `root`, by relative path. */
async function treeHashes(root: string, rel = ""): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for await (const e of Deno.readDir(rel ? `${root}/${rel}` : root)) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory) {
      for (const [k, v] of await treeHashes(root, r)) out.set(k, v);
      continue;
    }
    const digest = new Uint8Array(
      await crypto.subtle.digest("SHA-256", await Deno.readFile(`${root}/${r}`)),
    );
    out.set(r, Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join(""));
  }
  return out;
}

/**
 * The smoke run's checks. No time is asserted (the machine's load decides those), but a large
 * regression in what the steps do shows: an unchanged re-backup that reads files again (files
 * cache broken), a restore that differs from the source, a peak RSS above the ceilings in
 * bench/smoke_limits.json (set about 1.5x what the steps took when they were last lowered).
 */
async function smokeChecks(rows: [string, StepResult, number][]): Promise<string[]> {
  const failures: string[] = [];
  const restored = await treeHashes(`${work}/restore${src}`);
  const source = await treeHashes(src);
  if (restored.size !== source.size || [...source].some(([k, v]) => restored.get(k) !== v)) {
    failures.push(`the restored tree differs from the source (${restored.size} files restored)`);
  }
  // the unchanged re-backup ran before mutate(), which added no file
  const unchanged = rows.find(([n]) => n === "backup (unchanged)")![1].json;
  if (unchanged.unchanged_files !== source.size || unchanged.deduplicated_size !== 0) {
    failures.push(
      `the unchanged re-backup read files again: ${unchanged.unchanged_files} of ${source.size} unchanged, ${unchanged.deduplicated_size} bytes added`,
    );
  }
  const limits: Record<string, number> = JSON.parse(
    await Deno.readTextFile(new URL("./smoke_limits.json", import.meta.url)),
  );
  for (const [name, r] of rows) {
    const limit = limits[name];
    if (limit !== undefined && r.rssMiB > limit) {
      failures.push(`${name}: peak RSS ${r.rssMiB.toFixed(0)} MiB, the ceiling is ${limit} MiB`);
    }
  }
  return failures;
}

try {
  console.error(`corpus: ${totalMb} MiB in ${src}`);
  const bytes = await makeCorpus();
  const mb = bytes / 1e6;
  // the files cache records no file changed within RACY_NS of a backup's start (git's racy-clean
  // rule): wait, so that the unchanged re-backup measures (and the smoke run checks) hits on
  // every file
  await new Promise((r) => setTimeout(r, Number(RACY_NS / 1_000_000n) + 100));
  await run(["init"]);
  const backup = (archive: string) =>
    run(["backup", "--compression", compression, "--archive", archive, "--json", src]);
  const rows: [string, StepResult, number][] = [];
  rows.push(["backup (first)", await backup("b1"), mb]);
  rows.push(["backup (unchanged)", await backup("b2"), mb]);
  await mutate();
  rows.push(["backup (incremental)", await backup("b3"), mb]);
  rows.push([
    "restore",
    await run(["extract", "--archive", "b3", "--dest", `${work}/restore`]),
    mb,
  ]);
  console.log(`| step | seconds | MB/s | peak RSS MiB |\n|---|---:|---:|---:|`);
  for (const [name, r, m] of rows) {
    console.log(
      `| ${name} | ${r.seconds.toFixed(2)} | ${(m / r.seconds).toFixed(0)} | ${
        r.rssMiB.toFixed(0)
      } |`,
    );
  }
  if (smoke) {
    const failures = await smokeChecks(rows);
    for (const f of failures) console.error(`bench smoke: ${f}`);
    if (failures.length) Deno.exitCode = 1;
    else {console.error(
        "bench smoke: ok (every file a cache hit, restore identical, RSS under the ceilings)",
      );}
  }
} finally {
  if (!Deno.env.get("BENCH_DIR")) await Deno.remove(work, { recursive: true });
}
