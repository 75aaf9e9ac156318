/**
 * Crash safety proven with real processes. vger is SIGKILLed right after each of its backend
 * writes (tests/kill_switch.ts runs the CLI with a decorator that counts them) and at
 * seeded-random moments, during a first backup, an incremental backup, delete, prune and
 * compact --threshold 0. After every kill:
 *
 * - `check --verify-data --json` exits 0 and reports only warnings about leftovers;
 * - every archive committed before the kill restores byte for byte (tree snapshot compare);
 * - the archive being written (or deleted) is either all there and restores, or not listed;
 * - the next backup succeeds despite the dead process's locks, `compact` succeeds, and
 *   `check --verify-data` afterwards reports no error.
 *
 * Write steps are covered by killing after write 1, 2, 3, ... until the command finishes on its
 * own (the number of writes varies by one or two between runs: packs fill in the order the codec
 * workers finish); see FULL for which commands are sampled. Kill points run CONCURRENCY at a
 * time, each in its own copy of a prepared repository. Two more tests read the first-backup runs:
 * the next backup must reuse the packs a killed backup uploaded, and compact must remove every
 * leftover (archive objects never committed, temp files of interrupted uploads).
 *
 * @module
 */

import { deepStrictEqual, equal, ok } from "node:assert/strict";
import {
  assertCheckClean,
  assertRestores,
  type CheckReport,
  FAST_KDF_ARGS,
  pseudoRandomBytes,
  removeTree,
  type RunOptions,
  type RunResult,
  runVger,
  spawnVger,
  type TreeSnapshot,
  treeSnapshot,
  type Vger,
  withTempDir,
} from "./_helpers.ts";
import { KILL_SWITCH_CLI } from "./kill_switch.ts";

/** Seed of the random kill delays; change it to explore other moments. */
const SEED = 0x5eed_c0de;
/** Random-moment kills per command (one that strikes after the command finished checks nothing). */
const RANDOM_KILLS = 2;
/** Kill points checked at once. */
const CONCURRENCY = 3;
/**
 * VGER_TEST_CRASH_FULL=1 kills the incremental backup, delete and prune after every write too.
 * By default they are killed after a sample of their writes, so that the file stays near 90 s
 * on two cores (each kill point costs ~7 vger processes); every write of the first backup and of
 * compact is always covered.
 */
const FULL = Deno.env.get("VGER_TEST_CRASH_FULL") === "1";
/** Exit code of a process that SIGKILL ended (128 + 9). */
const KILLED = 137;

/** A source tree and its snapshot taken when it was backed up. */
interface Source {
  path: string;
  snapshot: TreeSnapshot;
}

/** A repository with its own configuration file (pack and chunk sizes, retention). */
interface Workspace {
  dir: string;
  repo: string;
  config: string;
}

/** Small packs and chunks, so that a few MiB make several packs of several chunks each. */
async function writeConfig(dir: string): Promise<Workspace> {
  const repo = `${dir}/repo`;
  const config = `${dir}/vger.yaml`;
  await Deno.writeTextFile(
    config,
    [
      "repositories:",
      `  - path: "${repo}"`,
      "    min_pack_size: 1048576",
      "    max_pack_size: 2097152",
      "chunker:",
      "  min_size: 65536",
      "  avg_size: 262144",
      "  max_size: 1048576",
      "retention:",
      "  keep_last: 2",
      "",
    ].join("\n"),
  );
  return { dir, repo, config };
}

function vger(ws: Workspace, args: readonly string[], options?: RunOptions) {
  return runVger(["--config", ws.config, ...args], options);
}

/** {@linkcode vger} bound to `ws`, for tests/_helpers.ts's assertions. */
function on(ws: Workspace): Vger {
  return (args) => vger(ws, args);
}

async function vgerOk(ws: Workspace, args: readonly string[]): Promise<RunResult> {
  const r = await vger(ws, args);
  equal(r.code, 0, `vger ${args.join(" ")} in ${ws.dir}: ${r.stderr}${r.stdout}`);
  return r;
}

/** A new workspace in `dir` holding a copy of `base`'s repository. */
async function copyWorkspace(base: Workspace, dir: string): Promise<Workspace> {
  await Deno.mkdir(dir);
  const ws = await writeConfig(dir);
  const cp = await new Deno.Command("cp", { args: ["-a", base.repo, ws.repo] }).output();
  ok(cp.success, new TextDecoder().decode(cp.stderr));
  return ws;
}

/**
 * Sum of the sizes of the files under `path`: the space the repository takes, temp files of
 * unfinished writes left out (a test of their own counts them).
 */
async function treeBytes(path: string): Promise<number> {
  let total = 0;
  for await (const e of Deno.readDir(path)) {
    const p = `${path}/${e.name}`;
    if (e.isDirectory) total += await treeBytes(p);
    else if (e.isFile && !e.name.startsWith(".tmp-")) total += (await Deno.lstat(p)).size;
  }
  return total;
}

/** Files under `path` whose name starts with ".tmp-" (writes that never completed). */
async function tempFiles(path: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(path)) {
    const p = `${path}/${e.name}`;
    if (e.isDirectory) out.push(...await tempFiles(p));
    else if (e.name.startsWith(".tmp-")) out.push(p);
  }
  return out;
}

/** Bytes of the complete packs under `repo`/packs (temp files of unfinished writes left out). */
async function packBytes(repo: string): Promise<number> {
  let total = 0;
  try {
    for await (const shard of Deno.readDir(`${repo}/packs`)) {
      if (!shard.isDirectory) continue;
      for await (const e of Deno.readDir(`${repo}/packs/${shard.name}`)) {
        if (e.isFile && !e.name.startsWith(".tmp-")) {
          total += (await Deno.lstat(`${repo}/packs/${shard.name}/${e.name}`)).size;
        }
      }
    }
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  return total;
}

// ---------------------------------------------------------------------------------------------
// Fixture: two versions of a source tree and repositories at each stage

interface Fixture {
  dir: string;
  /** Version 1: two 1 MiB files, one of 768 KiB, two small ones (3 packs). */
  src1: Source;
  /** Version 2: one big file changed in the middle, one removed, one of 512 KiB added. */
  src2: Source;
}

async function makeFixture(dir: string): Promise<Fixture> {
  const src1 = `${dir}/src1`;
  await Deno.mkdir(`${src1}/sub`, { recursive: true });
  const files: [string, number][] = [
    ["big1", 1 << 20],
    ["big2", 1 << 20],
    ["sub/mid", 768 << 10],
  ];
  for (const [i, [name, size]] of files.entries()) {
    await Deno.writeFile(`${src1}/${name}`, pseudoRandomBytes(size, i + 1));
  }
  await Deno.writeTextFile(`${src1}/sub/notes.txt`, "crash safety\n".repeat(300));
  await Deno.writeTextFile(`${src1}/empty`, "");
  const src2 = `${dir}/src2`;
  const cp = await new Deno.Command("cp", { args: ["-a", src1, src2] }).output();
  ok(cp.success);
  {
    using f = await Deno.open(`${src2}/big2`, { write: true });
    await f.seek(400_000, Deno.SeekMode.Start);
    await f.write(pseudoRandomBytes(100_000, 22));
  }
  await Deno.remove(`${src2}/sub/mid`);
  await Deno.writeFile(`${src2}/sub/new`, pseudoRandomBytes(512 << 10, 5));
  return {
    dir,
    src1: { path: src1, snapshot: await treeSnapshot(src1) },
    src2: { path: src2, snapshot: await treeSnapshot(src2) },
  };
}

/** An initialised repository in `fx.dir/name`, after the given commands ran on it. */
async function baseRepo(
  fx: Fixture,
  name: string,
  steps: readonly (readonly string[])[],
): Promise<Workspace> {
  await Deno.mkdir(`${fx.dir}/${name}`);
  const ws = await writeConfig(`${fx.dir}/${name}`);
  await vgerOk(ws, ["init", ...FAST_KDF_ARGS]);
  for (const step of steps) await vgerOk(ws, step);
  return ws;
}

// ---------------------------------------------------------------------------------------------
// What must hold after a kill

/** What the repository held before the kill, and what the kill interrupted. */
interface Expectation {
  /** Archives committed before the kill and not touched by the command: each must restore. */
  committed: Record<string, Source>;
  /** Archives the command was writing or deleting: each is all there (and restores) or absent. */
  inFlight: Record<string, Source>;
  /** What the next backup backs up. */
  next: Source;
}

/** What a kill left and how recovery went; the reuse and leftover tests read it. */
interface Recovery {
  /** Archives listed right after the kill. */
  listedAfterKill: string[];
  /** Bytes in packs/ right after the kill (complete packs only: temp files not counted). */
  packBytesAfterKill: number;
  /** Temp files of interrupted writes right after the kill. */
  tempsAfterKill: string[];
  /** Problems `check --verify-data` reported right after the kill (warnings only). */
  problemsAfterKill: CheckReport["problems"];
  /** deduplicated_size and original_size of the next backup. */
  deduplicated: number;
  original: number;
  /** Repository bytes after the next backup, and after compact. */
  bytesAfterBackup: number;
  bytesAfterCompact: number;
  /** Temp files left after the next backup and compact. */
  tempsAfterCompact: string[];
  /** Problems `check --verify-data` reported after compact (warnings only: errors fail). */
  problemsAfterCompact: CheckReport["problems"];
}

async function listNames(ws: Workspace, what: string): Promise<string[]> {
  const r = await vger(ws, ["list", "--json"]);
  equal(r.code, 0, `${what}: list failed: ${r.stderr}`);
  return JSON.parse(r.stdout).archives.map((a: { name: string }) => a.name);
}

/**
 * The archives listed after a kill. Saves a `vger list` when the archive count that check
 * reported says it all: only the committed ones, or all of them (extracting each by name then
 * proves it is there).
 */
async function archivesAfterKill(
  ws: Workspace,
  exp: Expectation,
  count: number,
  what: string,
): Promise<string[]> {
  const committed = Object.keys(exp.committed);
  const all = [...committed, ...Object.keys(exp.inFlight)];
  if (count === committed.length) return committed;
  if (count === all.length) return all;
  return await listNames(ws, what);
}

/**
 * Asserts everything that must hold after a kill, then runs the next backup and compact and
 * checks again; returns what the reuse and leftover tests measure.
 */
async function assertRecovers(ws: Workspace, exp: Expectation, what: string): Promise<Recovery> {
  const packBytesAfterKill = await packBytes(ws.repo);
  const tempsAfterKill = await tempFiles(ws.repo);
  const before = await assertCheckClean(on(ws), `${what}, right after the kill`);
  for (const p of before.problems) {
    ok(
      // the killed process's lock is stale (dead pid on this host): check names it
      p.kind === "unreferenced-pack" || p.kind === "unreferenced-archive" ||
        p.kind === "stale-lock",
      `${what}: unexpected warning ${p.kind}: ${p.message}`,
    );
  }
  const names = await archivesAfterKill(ws, exp, before.stats.archives, what);
  for (const name of Object.keys(exp.committed)) {
    ok(names.includes(name), `${what}: committed archive "${name}" is gone (list: ${names})`);
  }
  for (const name of names) {
    ok(
      name in exp.committed || name in exp.inFlight,
      `${what}: unexpected archive "${name}" listed`,
    );
  }
  await Promise.all(
    names.map((name) => {
      const src = exp.committed[name] ?? exp.inFlight[name];
      return assertRestores(on(ws), name, src.path, src.snapshot, what);
    }),
  );

  // the dead process's locks (repository lock, maybe locks/commit) must not block anyone
  const backup = await vger(ws, ["backup", "--archive", "next", "--json", exp.next.path]);
  equal(backup.code, 0, `${what}: the next backup failed: ${backup.stderr}`);
  const summary = JSON.parse(backup.stdout);
  const bytesAfterBackup = await treeBytes(ws.repo);
  const compact = await vger(ws, ["compact", "--threshold", "0"]);
  equal(compact.code, 0, `${what}: compact after the next backup failed: ${compact.stderr}`);
  const after = await assertCheckClean(on(ws), `${what}, after the next backup and compact`);
  return {
    listedAfterKill: names,
    packBytesAfterKill,
    tempsAfterKill,
    problemsAfterKill: before.problems,
    deduplicated: summary.deduplicated_size,
    original: summary.original_size,
    bytesAfterBackup,
    bytesAfterCompact: await treeBytes(ws.repo),
    tempsAfterCompact: await tempFiles(ws.repo),
    problemsAfterCompact: after.problems,
  };
}

// ---------------------------------------------------------------------------------------------
// Killing

/** Runs a command that SIGKILLs itself after `writes` backend writes; false when it finished. */
async function runKilledAfterWrites(
  ws: Workspace,
  args: readonly string[],
  writes: number,
): Promise<boolean> {
  const r = await vger(ws, args, {
    program: KILL_SWITCH_CLI,
    env: { VGER_TEST_KILL_AFTER_WRITES: String(writes) },
  });
  if (r.code === 0) return false;
  equal(r.code, KILLED, `${args.join(" ")} with a kill after ${writes} writes: ${r.stderr}`);
  return true;
}

/** Runs a command and SIGKILLs it after `ms` ms; false when it had finished by then. */
async function runKilledAfterMs(
  ws: Workspace,
  args: readonly string[],
  ms: number,
): Promise<boolean> {
  const child = spawnVger(["--config", ws.config, ...args]);
  const output = child.output();
  await new Promise((r) => setTimeout(r, ms));
  try {
    child.kill("SIGKILL");
  } catch {
    // it exited already
  }
  const out = await output;
  if (out.code === 0) return false;
  equal(out.signal, "SIGKILL", `${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  return true;
}

/** mulberry32: a small seeded generator for reproducible kill moments. */
function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Caps the kill points in progress at once (each runs ~8 vger processes in a row). */
class Slots {
  #free: number;
  readonly #waiting: (() => void)[] = [];

  constructor(size: number) {
    this.#free = size;
  }

  async acquire(): Promise<void> {
    if (this.#free > 0) this.#free--;
    else await new Promise<void>((resolve) => this.#waiting.push(resolve));
  }

  release(): void {
    const next = this.#waiting.shift();
    if (next) next();
    else this.#free++;
  }
}

/** One kill point: when it struck, and how recovery went. */
interface KillOutcome {
  /** "backup killed after write 3", "prune killed after 812 ms (seed ...)". */
  label: string;
  /** The write after which the kill switch fired (kill-switch runs only). */
  writes?: number;
  recovery: Recovery;
}

/** Which writes to kill after: every one until the command finishes, or these. */
type WriteSteps = "every" | readonly number[];

/**
 * Kills `args` after the chosen writes (for "every": write 1, 2, 3, ... until a run finishes by
 * itself), each in a fresh copy of `base`, and checks recovery after each kill. Runs that finish
 * before the kill are not checked. Returns the kills in write order.
 */
async function killAfterWrites(
  base: Workspace,
  args: readonly string[],
  exp: Expectation,
  steps: WriteSteps,
  slots: Slots,
): Promise<KillOutcome[]> {
  const outcomes: KillOutcome[] = [];
  const jobs: Promise<void>[] = [];
  let finishedAt = Infinity;
  let failure: unknown = null;
  const kill = async (n: number) => {
    const ws = await copyWorkspace(base, `${base.dir}-w${n}`);
    try {
      if (!await runKilledAfterWrites(ws, args, n)) {
        finishedAt = Math.min(finishedAt, n);
        return;
      }
      const label = `${args[0]} killed after write ${n}`;
      outcomes.push({ label, writes: n, recovery: await assertRecovers(ws, exp, label) });
    } finally {
      await removeTree(ws.dir);
    }
  };
  const wanted = steps === "every" ? Array.from({ length: 200 }, (_, i) => i + 1) : steps;
  for (const n of wanted) {
    await slots.acquire();
    if (n >= finishedAt || failure !== null) {
      slots.release();
      break;
    }
    jobs.push(kill(n).catch((err) => void (failure ??= err)).finally(() => slots.release()));
  }
  await Promise.all(jobs);
  if (failure !== null) throw failure;
  if (steps === "every") ok(finishedAt <= 200, `${args[0]} was still killed after 200 writes`);
  return outcomes.sort((a, b) => a.writes! - b.writes!);
}

/**
 * Kills `args` at `count` seeded-random moments 50 to 1500 ms after its start, each in a fresh
 * copy of `base`, and checks recovery after each kill (runs that finished first are not).
 */
async function killAtRandomMoments(
  base: Workspace,
  args: readonly string[],
  exp: Expectation,
  seed: number,
  slots: Slots,
): Promise<KillOutcome[]> {
  const random = seededRandom(seed);
  const delays = Array.from({ length: RANDOM_KILLS }, () => 50 + Math.floor(random() * 1450));
  const outcomes: KillOutcome[] = [];
  await Promise.all(delays.map(async (ms, k) => {
    await slots.acquire();
    const ws = await copyWorkspace(base, `${base.dir}-r${k}`);
    try {
      if (!await runKilledAfterMs(ws, args, ms)) return;
      const label = `${args[0]} killed after ${ms} ms (seed ${seed})`;
      outcomes.push({ label, recovery: await assertRecovers(ws, exp, label) });
    } finally {
      slots.release();
      await removeTree(ws.dir);
    }
  }));
  return outcomes;
}

/** Kills at the chosen write steps and at random moments, CONCURRENCY kill points at a time. */
async function killMatrix(
  base: Workspace,
  args: readonly string[],
  exp: Expectation,
  steps: WriteSteps,
  seed: number,
): Promise<{ atWrites: KillOutcome[]; atMoments: KillOutcome[] }> {
  const slots = new Slots(CONCURRENCY);
  const [atWrites, atMoments] = await Promise.all([
    killAfterWrites(base, args, exp, steps, slots),
    killAtRandomMoments(base, args, exp, seed, slots),
  ]);
  return { atWrites, atMoments };
}

// ---------------------------------------------------------------------------------------------
// The matrix

/** The first-backup matrix, run once and read by three tests. */
interface FirstBackupRun {
  atWrites: KillOutcome[];
  atMoments: KillOutcome[];
  /** Repository bytes after one clean backup of src1, and the bytes of its packs. */
  cleanBytes: number;
  cleanPackBytes: number;
}

let firstBackupRun: Promise<FirstBackupRun> | undefined;

function firstBackupMatrix(): Promise<FirstBackupRun> {
  return firstBackupRun ??= withTempDir(async (dir) => {
    const fx = await makeFixture(dir);
    const base = await baseRepo(fx, "empty", []);
    const clean = await copyWorkspace(base, `${dir}/clean`);
    await vgerOk(clean, ["backup", "--archive", "a1", fx.src1.path]);
    const args = ["backup", "--archive", "a1", fx.src1.path];
    const exp: Expectation = { committed: {}, inFlight: { a1: fx.src1 }, next: fx.src1 };
    return {
      ...await killMatrix(base, args, exp, "every", SEED),
      cleanBytes: await treeBytes(clean.repo),
      cleanPackBytes: await packBytes(clean.repo),
    };
  });
}

Deno.test("a first backup killed after any write or at a random moment leaves a consistent repository, and the next backup and compact succeed", async () => {
  const { atWrites } = await firstBackupMatrix();
  // lock, >= 3 packs, commit lock, index, archive, manifest, commit unlock, unlock
  ok(atWrites.length >= 9, `only ${atWrites.length} kills: ${atWrites.map((o) => o.label)}`);
  // kills fell both before and after the commit point
  ok(atWrites.some((o) => o.recovery.listedAfterKill.includes("a1")));
  ok(atWrites.some((o) => !o.recovery.listedAfterKill.includes("a1")));
});

Deno.test("an incremental backup killed after a write or at a random moment keeps the committed archive restorable", async () => {
  await withTempDir(async (dir) => {
    const fx = await makeFixture(dir);
    const base = await baseRepo(fx, "one", [["backup", "--archive", "a1", fx.src1.path]]);
    const args = ["backup", "--archive", "a2", fx.src2.path];
    const exp: Expectation = {
      committed: { a1: fx.src1 },
      inFlight: { a2: fx.src2 },
      next: fx.src2,
    };
    // writes: lock, >= 1 pack, commit lock, index, archive, manifest, commit unlock, unlock
    const steps = FULL ? "every" : [2, 4, 6];
    const { atWrites } = await killMatrix(base, args, exp, steps, SEED + 1);
    ok(atWrites.length >= (FULL ? 7 : 3), `only ${atWrites.length} kills`);
  });
});

Deno.test("delete killed after a write or at a random moment leaves each archive either whole or gone", async () => {
  await withTempDir(async (dir) => {
    const fx = await makeFixture(dir);
    const base = await baseRepo(fx, "three", [
      ["backup", "--archive", "a1", fx.src1.path],
      ["backup", "--archive", "a2", fx.src2.path],
      ["backup", "--archive", "a3", fx.src1.path],
    ]);
    const args = ["delete", "--archive", "a1", "--archive", "a2"];
    const exp: Expectation = {
      committed: { a3: fx.src1 },
      inFlight: { a1: fx.src1, a2: fx.src2 },
      next: fx.src2,
    };
    // writes: lock, commit lock, manifest, commit unlock, archive a1, archive a2, unlock
    const { atWrites } = await killMatrix(base, args, exp, FULL ? "every" : [3, 5], SEED + 2);
    ok(atWrites.length >= (FULL ? 7 : 2), `only ${atWrites.length} kills`);
  });
});

Deno.test("prune killed after a write or at a random moment keeps what the policy keeps and leaves the pruned archive whole or gone", async () => {
  await withTempDir(async (dir) => {
    const fx = await makeFixture(dir);
    const base = await baseRepo(fx, "three", [
      ["backup", "--archive", "a1", fx.src1.path],
      ["backup", "--archive", "a2", fx.src2.path],
      ["backup", "--archive", "a3", fx.src1.path],
    ]);
    const exp: Expectation = {
      committed: { a2: fx.src2, a3: fx.src1 },
      inFlight: { a1: fx.src1 },
      next: fx.src2,
    };
    // writes: lock, commit lock, manifest, commit unlock, archive a1, unlock
    const { atWrites } = await killMatrix(base, ["prune"], exp, FULL ? "every" : [3], SEED + 3);
    ok(atWrites.length >= (FULL ? 6 : 1), `only ${atWrites.length} kills`);
  });
});

Deno.test("compact --threshold 0 killed after any write or at a random moment keeps every archive restorable", async () => {
  await withTempDir(async (dir) => {
    const fx = await makeFixture(dir);
    const base = await baseRepo(fx, "deleted", [
      ["backup", "--archive", "a1", fx.src1.path],
      ["backup", "--archive", "a2", fx.src2.path],
      ["delete", "--archive", "a1"],
    ]);
    // the plan really rewrites packs (live and dead chunks share them)
    const dry = await vgerOk(base, ["compact", "--threshold", "0", "--dry-run", "--json"]);
    const plan = JSON.parse(dry.stdout);
    ok(plan.rewrite_packs.length >= 1, `nothing to rewrite: ${dry.stdout}`);
    const args = ["compact", "--threshold", "0"];
    const exp: Expectation = { committed: { a2: fx.src2 }, inFlight: {}, next: fx.src1 };
    const { atWrites } = await killMatrix(base, args, exp, "every", SEED + 4);
    // lock, new packs, commit lock, index, commit unlock, old packs deleted, unlock
    ok(atWrites.length >= 5 + plan.rewrite_packs.length, `only ${atWrites.length} kills`);
  });
});

// ---------------------------------------------------------------------------------------------
// Leftovers: reused, bounded and removed

Deno.test("the backup after a first backup killed once its packs were uploaded reuses them, and leftovers stay bounded", async () => {
  const run = await firstBackupMatrix();
  // late kill points: every byte of data in complete packs, archive not committed
  const late = run.atWrites.filter((o) =>
    !o.recovery.listedAfterKill.includes("a1") &&
    o.recovery.packBytesAfterKill >= run.cleanPackBytes
  );
  ok(late.length > 0, "no kill left all packs uploaded and the archive uncommitted");
  const failures: string[] = [];
  for (const { label, recovery: r } of late) {
    if (r.deduplicated > 0.25 * r.original) {
      failures.push(
        `${label}: the next backup stored ${r.deduplicated} of ${r.original} bytes anew`,
      );
    }
    if (r.bytesAfterBackup >= 1.5 * run.cleanBytes) {
      failures.push(
        `${label}: repository has ${r.bytesAfterBackup} bytes after the next backup, ` +
          `a clean backup takes ${run.cleanBytes}`,
      );
    }
  }
  // whatever a kill left, compact brings the repository back close to a clean one
  for (const { label, recovery: r } of [...run.atWrites, ...run.atMoments]) {
    if (r.bytesAfterCompact > 1.1 * run.cleanBytes) {
      failures.push(
        `${label}: repository has ${r.bytesAfterCompact} bytes after compact, ` +
          `a clean backup takes ${run.cleanBytes}`,
      );
    }
  }
  deepStrictEqual(failures, []);
});

Deno.test("compact removes every leftover of a killed backup: archive objects never committed and temp files of interrupted uploads", async () => {
  const run = await firstBackupMatrix();
  const outcomes = [...run.atWrites, ...run.atMoments];
  // the kill after the archive object was written and before the manifest leaves an
  // unreferenced archive object behind (uploads in flight at a kill may leave temp files)
  ok(
    outcomes.some((o) =>
      o.recovery.problemsAfterKill.some((p) => p.kind === "unreferenced-archive")
    ),
    "no kill left an unreferenced archive object",
  );
  const failures: string[] = [];
  for (const { label, recovery: r } of outcomes) {
    for (const t of r.tempsAfterCompact) {
      failures.push(`${label}: ${t} is still there after compact`);
    }
    for (const p of r.problemsAfterCompact) {
      // compact leaves other processes' locks alone, stale or not: break-lock removes them
      if (p.kind !== "stale-lock") failures.push(`${label}: after compact: ${p.message}`);
    }
  }
  deepStrictEqual(failures, []);
});
