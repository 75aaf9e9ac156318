/**
 * `deno task bench`: builds a corpus, then times vger's backup, unchanged re-backup, incremental
 * backup and restore through the real CLI in subprocesses, printing MB/s and peak RSS (VmHWM).
 *
 * Environment: BENCH_MB (corpus size, default 768), BENCH_DIR (scratch dir, default a temp dir),
 * BENCH_COMPRESSION (lz4 | zstd | none, default lz4).
 * For the comparison with restic and borg on one corpus see bench/README.md.
 */

const cli = new URL("../cli.ts", import.meta.url).pathname;
const totalMb = Number(Deno.env.get("BENCH_MB") ?? 768);
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
    const size = Math.min(64 << 20, budget - bytes);
    const b = new Uint8Array(size);
    fill(b, seed++, i % 2 === 0);
    await Deno.writeFile(`${src}/large/file${i++}.bin`, b);
    bytes += size;
  }
  return bytes;
}

async function run(args: string[]): Promise<{ seconds: number; rssMiB: number }> {
  const t0 = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", cli, "-R", repo, ...args],
    env: { VGER_PASSPHRASE: "bench", NO_COLOR: "1" },
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  let peak = 0;
  const poll = setInterval(() => {
    try {
      const m = /VmHWM:\s+(\d+) kB/.exec(Deno.readTextFileSync(`/proc/${child.pid}/status`));
      if (m) peak = Math.max(peak, Number(m[1]) * 1024);
    } catch { /* exited */ }
  }, 20);
  const status = await child.status;
  clearInterval(poll);
  if (!status.success && status.code !== 3) {
    throw new Error(`vger ${args[0]} failed: ${status.code}`);
  }
  return { seconds: (performance.now() - t0) / 1000, rssMiB: peak / 1048576 };
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
    await file.seek(10 << 20, Deno.SeekMode.Start);
    const b = new Uint8Array(1 << 20);
    fill(b, 999, false);
    await file.write(b);
    file.close();
    changed += b.length;
  }
  return changed;
}

try {
  console.error(`corpus: ${totalMb} MiB in ${src}`);
  const bytes = await makeCorpus();
  const mb = bytes / 1e6;
  await run(["init"]);
  const rows: [string, { seconds: number; rssMiB: number }, number][] = [];
  rows.push([
    "backup (first)",
    await run(["backup", "--compression", compression, "--archive", "b1", src]),
    mb,
  ]);
  rows.push([
    "backup (unchanged)",
    await run(["backup", "--compression", compression, "--archive", "b2", src]),
    mb,
  ]);
  await mutate();
  rows.push([
    "backup (incremental)",
    await run(["backup", "--compression", compression, "--archive", "b3", src]),
    mb,
  ]);
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
} finally {
  if (!Deno.env.get("BENCH_DIR")) await Deno.remove(work, { recursive: true });
}
