/**
 * `deno task bench:startup`: the fixed costs every command pays. Runs an empty program, a program
 * that only derives a key (Argon2id with the default cost: the floor of any command's peak RSS on
 * an encrypted repository), `vger --version`, `list` of a tiny repository and a one-file backup
 * through the real CLI in subprocesses under /usr/bin/time (median of BENCH_REPS runs, default 5:
 * wall, CPU seconds, peak RSS), then splits `list` in one process: Deno's own start-up (an empty
 * program), the modules loaded, the key derivation (Argon2id, t=3, m=64 MiB, p=4, alone) and the
 * repository's reads, each request timed through the CLI's `wrapBackend` hook.
 *
 * Environment: BENCH_REPS; BENCH_REPO (optional: also split `list` of that repository, such as
 * a backup of the peers corpus, with VGER_PASSPHRASE as its passphrase), BENCH_DIR (scratch dir).
 * Run it under the shared lock (`flock /work/bench.lock deno task bench:startup`).
 */

import type { Backend } from "../backends/backend.ts";

const root = new URL("..", import.meta.url).pathname;
const cli = `${root}cli.ts`;

if (Deno.args[0] === "--probe") await probe(Deno.args[1], Deno.args.slice(2));
else await main();

async function main(): Promise<void> {
  const reps = Number(Deno.env.get("BENCH_REPS") ?? 5);
  const work = Deno.env.get("BENCH_DIR") ?? await Deno.makeTempDir({ prefix: "vger-startup-" });
  const repo = `${work}/repo`;
  const src = `${work}/src`;
  // vger's cache goes to XDG_CACHE_HOME, and so would Deno's own (cold on each run) without this
  const info = await new Deno.Command(Deno.execPath(), { args: ["info", "--json"] }).output();
  const denoDir: string = JSON.parse(new TextDecoder().decode(info.stdout)).denoDir;
  const env = {
    DENO_DIR: denoDir,
    VGER_PASSPHRASE: "bench",
    XDG_CACHE_HOME: `${work}/cache`,
    HOME: work,
    NO_COLOR: "1",
  };
  await Deno.mkdir(src, { recursive: true });
  await Deno.writeTextFile(`${src}/one.txt`, "one file\n");
  await Deno.writeTextFile(`${work}/empty.ts`, "");
  // the floor of every command on an encrypted repository: Deno and the key derivation, nothing else
  await Deno.writeTextFile(
    `${work}/kdf.ts`,
    `import { argon2idDeno } from "${new URL("../lib/kdf_deno.ts", import.meta.url).href}";
import { DEFAULT_KDF } from "${new URL("../lib/key_file.ts", import.meta.url).href}";
await argon2idDeno(new TextEncoder().encode("bench"), new Uint8Array(32), DEFAULT_KDF);
`,
  );
  await vger(env, ["-R", repo, "init"]);
  await vger(env, ["-R", repo, "backup", src]);

  console.log(`median of ${reps} runs        wall s   CPU s  peak RSS MiB`);
  const rows: [string, (i: number) => string[]][] = [
    ["deno run (empty program)", () => ["run", "-A", `${work}/empty.ts`]],
    [
      "the key derivation alone",
      () => ["run", "-A", "--config", `${root}deno.json`, `${work}/kdf.ts`],
    ],
    ["vger --version", () => ["run", "-A", cli, "--version"]],
    ["vger list (tiny repo)", () => ["run", "-A", cli, "-R", repo, "list"]],
    [
      "vger backup (one file)",
      (i) => ["run", "-A", cli, "-R", repo, "backup", "-qa", `b${i}`, src],
    ],
  ];
  for (const [name, args] of rows) {
    const runs: Timed[] = [];
    for (let i = 0; i < reps; i++) runs.push(await timed(env, args(i)));
    const med = (f: (r: Timed) => number) => runs.map(f).sort((a, b) => a - b)[reps >> 1];
    console.log(
      `${name.padEnd(28)} ${med((r) => r.wall).toFixed(3).padStart(6)}  ${
        med((r) => r.cpu).toFixed(3).padStart(6)
      }  ${med((r) => r.rssMiB).toFixed(1).padStart(8)}`,
    );
  }
  console.log("\nlist of the tiny repository, split (one process):");
  await splitList(env, repo);
  const big = Deno.env.get("BENCH_REPO");
  if (big) {
    console.log(`\nlist of ${big}, split (one process):`);
    await splitList({ ...env, VGER_PASSPHRASE: Deno.env.get("VGER_PASSPHRASE") ?? "" }, big);
  }
  if (!Deno.env.get("BENCH_DIR")) await Deno.remove(work, { recursive: true });
}

async function vger(env: Record<string, string>, args: string[]): Promise<void> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", cli, ...args],
    env,
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`vger ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
}

interface Timed {
  wall: number;
  cpu: number;
  rssMiB: number;
}

async function timed(env: Record<string, string>, args: string[]): Promise<Timed> {
  const out = await new Deno.Command("/usr/bin/time", {
    args: ["-f", "TIME %e %U %S %M", Deno.execPath(), ...args],
    env,
    stdout: "null",
    stderr: "piped",
    cwd: root,
  }).output();
  const text = new TextDecoder().decode(out.stderr);
  const m = /TIME ([\d.]+) ([\d.]+) ([\d.]+) (\d+)/.exec(text);
  if (!out.success || !m) throw new Error(`${args.join(" ")} failed: ${text}`);
  return { wall: +m[1], cpu: +m[2] + +m[3], rssMiB: +m[4] / 1024 };
}

async function splitList(env: Record<string, string>, repo: string): Promise<void> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", import.meta.filename!, "--probe", repo],
    env,
    stdout: "piped",
    stderr: "inherit",
    cwd: root,
  }).output();
  await Deno.stdout.write(out.stdout);
}

/** VmRSS and VmHWM of this process, in MiB. */
function memory(): { rss: number; hwm: number } {
  const s = Deno.readTextFileSync("/proc/self/status");
  const kb = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(s)?.[1] ?? 0);
  return { rss: kb("VmRSS") / 1024, hwm: kb("VmHWM") / 1024 };
}

/** The split: run in a process of its own by {@linkcode splitList}. */
async function probe(repo: string, _rest: string[]): Promise<void> {
  const lines: string[] = [];
  const mark = (what: string, from: number) => {
    const { rss, hwm } = memory();
    const now = performance.now();
    lines.push(
      `  ${what.padEnd(44)} ${(now - from).toFixed(1).padStart(7)} ms  (at ${
        now.toFixed(0).padStart(4)
      } ms)  RSS ${rss.toFixed(0).padStart(4)} MiB, peak ${hwm.toFixed(0).padStart(4)} MiB`,
    );
    return now;
  };
  let t = mark("Deno start-up (to the first line of code)", 0);
  const { main } = await import("../cli.ts");
  t = mark("cli.ts and its static imports loaded", t);
  const requests: string[] = [];
  let last = 0;
  const wrap = (backend: Backend): Backend => {
    const get = backend.get.bind(backend);
    backend.get = async (key, options) => {
      const t0 = performance.now();
      const r = await get(key, options);
      const t1 = performance.now();
      requests.push(
        `    get ${key.padEnd(16)} ${(t1 - t0).toFixed(1).padStart(7)} ms  (${t0.toFixed(0)}-${
          t1.toFixed(0)
        } ms, ${r?.length ?? 0} bytes; gap before it ${(t0 - last).toFixed(1)} ms)`,
      );
      last = t1;
      return r;
    };
    return backend;
  };
  let output = 0;
  const io = { out: (s: string) => void (output += s.length), err: () => {}, isTerminal: false };
  last = performance.now();
  const code = await main(["-R", repo, "list"], io, { wrapBackend: wrap });
  t = mark(`main(list): exit ${code}, ${output} bytes out`, t);
  lines.push(...requests);
  const { argon2id } = await import("hash-wasm");
  const t0 = performance.now();
  await argon2id({
    password: "bench",
    salt: new Uint8Array(16),
    iterations: 3,
    memorySize: 65536,
    parallelism: 4,
    hashLength: 32,
    outputType: "binary",
  });
  mark("Argon2id alone (t=3, m=64 MiB, p=4, hash-wasm)", t0);
  await openSplit(repo, mark);
  console.log(lines.join("\n"));
}

/** The repository opened through the library, and its manifest and index loaded, step by step. */
async function openSplit(repo: string, mark: (what: string, from: number) => number) {
  await import("../lib/platform_deno.ts");
  const { openBackend } = await import("../backends/mod.ts");
  const { Repository } = await import("../lib/repository.ts");
  const { ObjectType } = await import("../lib/crypto.ts");
  const { ChunkIndex } = await import("../lib/chunk_index.ts");
  const backend = await openBackend({ backend: "local", path: repo });
  let t = performance.now();
  const r = await Repository.open(backend, { passphrase: Deno.env.get("VGER_PASSPHRASE") });
  t = mark("Repository.open (config, key file, KDF)", t);
  await r.readManifest();
  t = mark("readManifest", t);
  const sealed = (await backend.get("index"))!;
  t = mark(`get index (${sealed.length} bytes)`, t);
  const plain = await r.key.open(ObjectType.index, "index", sealed, "Index");
  t = mark("decrypt index", t);
  const index = ChunkIndex.decode(plain);
  t = mark(`decode index (${index.size} entries)`, t);
  await r.readIndex();
  mark("readIndex again (all three)", t);
  await backend.close();
}
