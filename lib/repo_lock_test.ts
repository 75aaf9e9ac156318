import { deepStrictEqual, equal, match, notEqual, ok, rejects, throws } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import type { Backend } from "../backends/backend.ts";
import { LocalBackend } from "../backends/local.ts";
import { MemoryBackend } from "../backends/memory.ts";
import { LockedError } from "./errors.ts";
import { COMMIT_LOCK, withCommitLock } from "./lock.ts";
import {
  breakLocks,
  DEFAULT_LOCK_TTL_MS,
  listLocks,
  type LockEntry,
  type LockInfo,
  RepoLock,
} from "./repo_lock.ts";
import { fuzzCases, FuzzClock, mutate, rng } from "./_fuzz.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();
const HOST = Deno.hostname();

/** Runs a test once on a MemoryBackend and once on a LocalBackend in a temp dir. */
function eachBackend(name: string, fn: (backend: Backend) => Promise<void>): void {
  Deno.test(`${name} (memory)`, () => fn(new MemoryBackend("memory:locks")));
  Deno.test(`${name} (local)`, async () => {
    const root = await Deno.makeTempDir({ prefix: "vger-lock-" });
    const backend = new LocalBackend(root);
    try {
      await fn(backend);
    } finally {
      await backend.close();
      await Deno.remove(root, { recursive: true });
    }
  });
}

async function lockKeys(backend: Backend): Promise<string[]> {
  const keys: string[] = [];
  for await (const { key } of backend.list("locks/")) keys.push(key);
  return keys.sort();
}

async function readInfo(backend: Backend, key: string): Promise<LockInfo> {
  return JSON.parse(dec.decode((await backend.get(key))!));
}

/** Writes a foreign lock object the way another vger process would. */
async function plantLock(
  backend: Backend,
  info: Partial<LockInfo>,
  id = "f".repeat(64),
): Promise<string> {
  const full: LockInfo = {
    host: "other-host",
    pid: 4242,
    time: new Date().toISOString(),
    exclusive: false,
    command: "backup",
    ...info,
  };
  const key = `locks/${id}`;
  await backend.put(key, enc.encode(JSON.stringify(full)));
  return key;
}

/** A pid that cannot run on this host: far above the kernel's pid_max. */
async function impossiblePid(): Promise<number> {
  const max = Number((await Deno.readTextFile("/proc/sys/kernel/pid_max")).trim());
  return max + 1_000_000;
}

eachBackend("two shared locks coexist and release removes their files", async (backend) => {
  const a = await RepoLock.acquire(backend, "shared", { command: "backup" });
  const b = await RepoLock.acquire(backend, "shared", { command: "list" });
  notEqual(a.key, b.key);
  match(a.key, /^locks\/[0-9a-f]{64}$/);
  deepStrictEqual(await lockKeys(backend), [a.key, b.key].sort());
  const info = await readInfo(backend, a.key);
  deepStrictEqual(
    { host: info.host, pid: info.pid, exclusive: info.exclusive, command: info.command },
    { host: HOST, pid: Deno.pid, exclusive: false, command: "backup" },
  );
  ok(Math.abs(Date.parse(info.time) - Date.now()) < 60_000);
  await a.release();
  await a.release(); // twice is harmless
  deepStrictEqual(await lockKeys(backend), [b.key]);
  throws(() => a.assertHeld(), LockedError);
  b.assertHeld();
  await b.release();
  deepStrictEqual(await lockKeys(backend), []);
});

eachBackend("an exclusive lock conflicts with a shared one, both ways", async (backend) => {
  const shared = await RepoLock.acquire(backend, "shared", {
    command: "backup",
    host: "laptop",
    pid: 111,
  });
  const time = (await readInfo(backend, shared.key)).time;
  await rejects(
    RepoLock.acquire(backend, "exclusive", { command: "prune" }),
    (err: Error) => {
      ok(err instanceof LockedError);
      equal(
        err.message,
        `Repository "${backend.location}" is locked by laptop/111 since ${time} ` +
          `(backup, shared)`,
      );
      return true;
    },
  );
  // the failed acquirer left no file behind
  deepStrictEqual(await lockKeys(backend), [shared.key]);
  await shared.release();

  const excl = await RepoLock.acquire(backend, "exclusive", { command: "prune", host: "nas" });
  const t2 = (await readInfo(backend, excl.key)).time;
  for (const mode of ["shared", "exclusive"] as const) {
    await rejects(
      RepoLock.acquire(backend, mode, { command: "backup" }),
      new LockedError(
        `Repository "${backend.location}" is locked by nas/${Deno.pid} since ${t2} ` +
          `(prune, exclusive)`,
      ),
    );
  }
  deepStrictEqual(await lockKeys(backend), [excl.key]);
  await excl.release();
});

eachBackend("waiting succeeds when the holder releases within waitMs", async (backend) => {
  const holder = await RepoLock.acquire(backend, "exclusive", { command: "prune" });
  setTimeout(() => holder.release(), 150);
  const start = performance.now();
  await using lock = await RepoLock.acquire(backend, "shared", {
    command: "backup",
    waitMs: 5000,
  });
  const waited = performance.now() - start;
  ok(waited >= 140 && waited < 4000, `waited ${waited} ms`);
  deepStrictEqual(await lockKeys(backend), [lock.key]);
});

eachBackend("waiting fails after waitMs when the holder keeps the lock", async (backend) => {
  await using _holder = await RepoLock.acquire(backend, "shared", { command: "backup" });
  const start = performance.now();
  await rejects(
    RepoLock.acquire(backend, "exclusive", { command: "compact", waitMs: 300 }),
    /is locked by .* \(backup, shared\)$/,
  );
  const waited = performance.now() - start;
  ok(waited >= 295 && waited < 3000, `waited ${waited} ms`);
  equal((await lockKeys(backend)).length, 1);
});

Deno.test("an aborted wait stops with the signal's reason and leaves no file", async () => {
  const backend = new MemoryBackend();
  const holder = await RepoLock.acquire(backend, "shared", { command: "backup" });
  const controller = new AbortController();
  setTimeout(() => controller.abort(new Error("interrupted")), 100);
  await rejects(
    RepoLock.acquire(backend, "exclusive", {
      command: "prune",
      waitMs: 10_000,
      signal: controller.signal,
    }),
    /^Error: interrupted$/,
  );
  deepStrictEqual(await lockKeys(backend), [holder.key]);
  await holder.release();
});

eachBackend("a lock older than the TTL does not block and is reported", async (backend) => {
  let now = Date.parse("2030-01-01T00:00:00Z");
  const clock = (): number => now;
  const old = await RepoLock.acquire(backend, "exclusive", { command: "prune", now: clock });
  now += DEFAULT_LOCK_TTL_MS - 1000;
  await rejects(
    RepoLock.acquire(backend, "shared", { command: "backup", now: clock }),
    LockedError,
  );
  now += 2000;
  const seen: LockEntry[] = [];
  const fresh = await RepoLock.acquire(backend, "shared", {
    command: "backup",
    now: clock,
    onStale: (e) => seen.push(e),
  });
  deepStrictEqual(seen.map((e) => [e.key, e.stale, e.info?.command]), [[old.key, true, "prune"]]);
  // stale locks are not removed by acquire
  deepStrictEqual(await lockKeys(backend), [old.key, fresh.key].sort());
  // a configurable TTL
  const short = await RepoLock.acquire(backend, "shared", {
    command: "list",
    now: () => now + 5000,
    ttlMs: 4000,
  });
  await short.release();
  await fresh.release();
  await old.release();
});

eachBackend("a lock of a dead process on this host does not block", async (backend) => {
  await plantLock(
    backend,
    { host: HOST, pid: await impossiblePid(), exclusive: true },
    "1".repeat(64),
  );
  const child = new Deno.Command("true").spawn();
  await child.status;
  await plantLock(backend, { host: HOST, pid: child.pid, exclusive: true }, "2".repeat(64));
  const entries = await listLocks(backend);
  deepStrictEqual(entries.map((e) => e.stale), [true, true]);
  const lock = await RepoLock.acquire(backend, "exclusive", { command: "prune" });
  await lock.release();
});

eachBackend("a dead pid only counts on this host, and this pid is never dead", async (backend) => {
  const dead = await impossiblePid();
  await plantLock(backend, { host: "elsewhere", pid: dead, exclusive: true }, "1".repeat(64));
  await rejects(
    RepoLock.acquire(backend, "shared", { command: "backup" }),
    /locked by elsewhere\//,
  );
  await backend.delete(`locks/${"1".repeat(64)}`);
  // a lock of "our" pid, even one this process does not hold, is alive
  await plantLock(backend, { host: HOST, pid: dead, exclusive: true }, "2".repeat(64));
  await rejects(
    RepoLock.acquire(backend, "shared", { command: "backup", pid: dead }),
    /\(backup, exclusive\)$/,
  );
});

eachBackend("a malformed lock file is stale and does not block", async (backend) => {
  const junk = `locks/${"a".repeat(64)}`;
  await backend.put(junk, enc.encode("{not json"));
  const noTime = await plantLock(backend, { time: "yesterday", exclusive: true }, "b".repeat(64));
  await backend.put("locks/notanid", enc.encode(JSON.stringify({ host: "h", pid: 1 })));
  const entries = await listLocks(backend);
  deepStrictEqual(entries, [
    { key: junk, info: null, stale: true },
    { key: noTime, info: null, stale: true },
    { key: "locks/notanid", info: null, stale: true },
  ]);
  const reported: string[] = [];
  const lock = await RepoLock.acquire(backend, "exclusive", {
    command: "prune",
    onStale: (e) => reported.push(e.key),
  });
  deepStrictEqual(reported.sort(), [junk, noTime, "locks/notanid"].sort());
  await lock.release();
});

/** Acquires, holds briefly while checking that nobody else holds, releases. */
async function holdExclusively(
  backend: Backend,
  mode: "shared" | "exclusive",
  waitMs: number,
  state: { exclusive: number; shared: number; maxOverlap: number },
): Promise<boolean> {
  let lock: RepoLock;
  try {
    lock = await RepoLock.acquire(backend, mode, { command: mode, waitMs });
  } catch (err) {
    if (err instanceof LockedError) return false;
    throw err;
  }
  state[mode]++;
  if (state.exclusive > 1 || (state.exclusive === 1 && state.shared > 0)) state.maxOverlap++;
  await new Promise((r) => setTimeout(r, 5));
  state[mode]--;
  await lock.release();
  return true;
}

eachBackend("two concurrent exclusive acquirers never both succeed", async (backend) => {
  for (let round = 0; round < 20; round++) {
    const [a, b] = await Promise.all([
      RepoLock.acquire(backend, "exclusive", { command: "prune" }).catch((e) => e),
      RepoLock.acquire(backend, "exclusive", { command: "compact" }).catch((e) => e),
    ]);
    const won = [a, b].filter((x) => x instanceof RepoLock) as RepoLock[];
    ok(won.length <= 1, `round ${round}: both acquired`);
    for (const x of [a, b]) if (!(x instanceof RepoLock)) ok(x instanceof LockedError);
    for (const lock of won) await lock.release();
    deepStrictEqual(await lockKeys(backend), []);
  }
});

eachBackend(
  "of two waiting exclusive acquirers that never release, exactly one wins",
  async (backend) => {
    const results = await Promise.all(
      ["prune", "compact"].map((command) =>
        RepoLock.acquire(backend, "exclusive", { command, waitMs: 600 }).catch((e) => e)
      ),
    );
    const won = results.filter((x) => x instanceof RepoLock) as RepoLock[];
    equal(won.length, 1);
    ok(results.find((x) => !(x instanceof RepoLock)) instanceof LockedError);
    deepStrictEqual(await lockKeys(backend), [won[0].key]);
    await won[0].release();
  },
);

eachBackend(
  "concurrent acquirers that wait all get their turn, never overlapping",
  async (backend) => {
    const state = { exclusive: 0, shared: 0, maxOverlap: 0 };
    const modes = [
      "exclusive",
      "exclusive",
      "shared",
      "exclusive",
      "shared",
      "shared",
      "exclusive",
    ];
    const results = await Promise.all(
      modes.map((m) => holdExclusively(backend, m as "shared" | "exclusive", 20_000, state)),
    );
    deepStrictEqual(results, modes.map(() => true));
    equal(state.maxOverlap, 0);
    deepStrictEqual(await lockKeys(backend), []);
  },
);

Deno.test("a waiting exclusive acquirer keeps new shared locks out until it gets its turn", async () => {
  const backend = new MemoryBackend();
  const backup = await RepoLock.acquire(backend, "shared", { command: "backup" });
  const pending = RepoLock.acquire(backend, "exclusive", { command: "prune", waitMs: 10_000 });
  await new Promise((r) => setTimeout(r, 100));
  await rejects(
    RepoLock.acquire(backend, "shared", { command: "list" }),
    /\(prune, exclusive\)$/,
  );
  await backup.release();
  const prune = await pending;
  deepStrictEqual(await lockKeys(backend), [prune.key]);
  await prune.release();
});

Deno.test("holders and waiting exclusive acquirers refresh their locks in time", async () => {
  const backend = new MemoryBackend();
  const ttlMs = 600;
  const backup = await RepoLock.acquire(backend, "shared", { command: "backup", ttlMs });
  const pending = RepoLock.acquire(backend, "exclusive", { command: "prune", ttlMs, waitMs: 5000 });
  await new Promise((r) => setTimeout(r, 900));
  // both locks are older than the TTL by now, so only their refreshes keep them live
  deepStrictEqual((await listLocks(backend, { ttlMs })).map((e) => e.stale), [false, false]);
  await rejects(
    RepoLock.acquire(backend, "shared", { command: "list", ttlMs }),
    /\(prune, exclusive\)$/,
  );
  await backup.release();
  const prune = await pending;
  await prune.release();
  deepStrictEqual(await lockKeys(backend), []);
});

eachBackend("refresh rewrites the time in place", async (backend) => {
  let now = Date.parse("2030-01-01T00:00:00Z");
  const lock = await RepoLock.acquire(backend, "shared", { command: "backup", now: () => now });
  equal((await readInfo(backend, lock.key)).time, "2030-01-01T00:00:00.000Z");
  now += 20 * 60 * 1000;
  await lock.refresh();
  const info = await readInfo(backend, lock.key);
  deepStrictEqual(info, {
    host: HOST,
    pid: Deno.pid,
    time: "2030-01-01T00:20:00.000Z",
    exclusive: false,
    command: "backup",
  });
  deepStrictEqual(await lockKeys(backend), [lock.key]);
  // 40 minutes after it was taken the lock is alive thanks to the refresh
  now += 20 * 60 * 1000;
  deepStrictEqual((await listLocks(backend, { now: () => now })).map((e) => e.stale), [false]);
  lock.assertHeld();
  await lock.release();
});

Deno.test("the refresh timer rewrites the lock every TTL/3", async () => {
  const backend = new MemoryBackend();
  let now = Date.parse("2030-01-01T00:00:00Z");
  const lock = await RepoLock.acquire(backend, "shared", {
    command: "backup",
    ttlMs: 90,
    now: () => now,
  });
  now += 60;
  await new Promise((r) => setTimeout(r, 120));
  equal((await readInfo(backend, lock.key)).time, "2030-01-01T00:00:00.060Z");
  await lock.release();
  deepStrictEqual(await lockKeys(backend), []);
  // no timer tick recreates it after release
  await new Promise((r) => setTimeout(r, 80));
  deepStrictEqual(await lockKeys(backend), []);
});

eachBackend(
  "a lock broken by another process is detected by refresh and assertHeld",
  async (backend) => {
    const lock = await RepoLock.acquire(backend, "exclusive", { command: "prune" });
    lock.assertHeld();
    deepStrictEqual((await breakLocks(backend, { all: true })).map((e) => e.key), [lock.key]);
    await lock.refresh();
    throws(() => lock.assertHeld(), (err: Error) => {
      ok(err instanceof LockedError);
      match(err.message, /^Lock on repository ".*" was removed by another process/);
      return true;
    });
    // refresh does not bring it back
    await lock.refresh();
    deepStrictEqual(await lockKeys(backend), []);
    await lock.release();
  },
);

Deno.test("a lock left unrefreshed past the TTL counts as lost", async () => {
  const backend = new MemoryBackend();
  let now = Date.parse("2030-01-01T00:00:00Z");
  const lock = await RepoLock.acquire(backend, "shared", { command: "backup", now: () => now });
  now += DEFAULT_LOCK_TTL_MS + 1000;
  await lock.refresh();
  throws(() => lock.assertHeld(), /expired: it was not refreshed for 1801 s/);
  await lock.release();
  deepStrictEqual(await lockKeys(backend), []);
});

eachBackend("breakLocks removes only stale locks unless all is set", async (backend) => {
  const live = await RepoLock.acquire(backend, "shared", { command: "backup" });
  const old = await plantLock(
    backend,
    { time: new Date(Date.now() - DEFAULT_LOCK_TTL_MS - 60_000).toISOString() },
    "0".repeat(64),
  );
  const junk = `locks/${"c".repeat(64)}`;
  await backend.put(junk, enc.encode("garbage"));
  const commit = JSON.stringify({ host: "x", pid: 1, time: "2000-01-01T00:00:00Z" });
  await backend.put(COMMIT_LOCK, enc.encode(commit));

  const listed = await listLocks(backend);
  deepStrictEqual(
    listed.map((e) => [e.key, e.stale]),
    [
      [old, true],
      [junk, true],
      [live.key, false],
      [COMMIT_LOCK, true],
    ].sort(),
  );
  equal(listed.find((e) => e.key === COMMIT_LOCK)?.info?.command, "commit");

  const removed = await breakLocks(backend);
  deepStrictEqual(removed.map((e) => e.key).sort(), [old, junk].sort());
  equal(removed.find((e) => e.key === old)?.info?.host, "other-host");
  deepStrictEqual(await lockKeys(backend), [COMMIT_LOCK, live.key].sort());

  const all = await breakLocks(backend, { all: true });
  deepStrictEqual(all.map((e) => e.key).sort(), [COMMIT_LOCK, live.key].sort());
  deepStrictEqual(await lockKeys(backend), []);
  await live.release();
});

Deno.test("a process that holds a lock and never releases it still exits promptly", async () => {
  const root = await Deno.makeTempDir({ prefix: "vger-lock-" });
  try {
    const script = `
      import { LocalBackend } from ${JSON.stringify(import.meta.resolve("../backends/local.ts"))};
      import { RepoLock } from ${JSON.stringify(import.meta.resolve("./repo_lock.ts"))};
      const lock = await RepoLock.acquire(new LocalBackend(${JSON.stringify(root)}), "exclusive",
        { command: "prune" });
      console.log(lock.key);
    `;
    const path = `${root}/hold.ts`;
    await Deno.writeTextFile(path, script);
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--no-lock", path],
      cwd: fileURLToPath(new URL("..", import.meta.url)),
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const killer = setTimeout(() => child.kill(), 20_000);
    const out = await child.output();
    clearTimeout(killer);
    equal(out.code, 0, dec.decode(out.stderr));
    const key = dec.decode(out.stdout).trim();
    match(key, /^locks\/[0-9a-f]{64}$/);
    // the file stays, but the process is gone, so the lock is stale on this host
    const backend = new LocalBackend(root);
    deepStrictEqual((await listLocks(backend)).map((e) => [e.key, e.stale]), [[key, true]]);
    await RepoLock.acquire(backend, "exclusive", { command: "prune" }).then((l) => l.release());
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

/** JSON-significant characters: digits, quotes, braces, separators, letters of true/false. */
const JSON_SPECIALS = [...enc.encode('0912"{}[],:-etf ')];

Deno.test("lock objects of random and mutated bytes are judged, taken over or refused, never thrown (fuzz)", async () => {
  const now = Date.parse("2024-05-06T07:08:09.000Z");
  // "we" are pid 7 on fuzz-host; the planted locks are held by this very process (alive) on
  // fuzz-host, or by another host, so mutated pids and hosts reach every staleness rule
  const judge = { host: "fuzz-host", pid: 7, now: () => now };
  const lockOf = (host: string, exclusive: boolean) =>
    enc.encode(JSON.stringify({
      host,
      pid: Deno.pid,
      time: new Date(now - 60_000).toISOString(),
      exclusive,
      command: "backup",
    }));
  const bases = [lockOf("fuzz-host", false), lockOf("other-host", true)];
  const id = "ab".repeat(32);
  const next = rng(51);
  const cases = fuzzCases();
  const clock = new FuzzClock();
  let stale = 0;
  let live = 0;
  for (let i = 0; i < cases; i++) {
    clock.lap(i);
    const key = i % 4 === 3 ? COMMIT_LOCK : `locks/${id}`;
    const input = mutate(bases[i % 2], next, { kind: i >> 2, specials: JSON_SPECIALS });
    const backend = new MemoryBackend("memory:fuzz");
    await backend.put(key, input);
    const entries = await listLocks(backend, judge);
    equal(entries.length, 1, `input ${i}`);
    const [e] = entries;
    if (e.info === null) {
      ok(e.stale, `input ${i}: an unreadable lock blocks nobody`);
    } else {
      const { host, pid, time, exclusive, command } = e.info;
      ok(typeof host === "string" && typeof command === "string", `input ${i}`);
      ok(Number.isSafeInteger(pid) && typeof exclusive === "boolean", `input ${i}`);
      ok(!Number.isNaN(Date.parse(time)), `input ${i}: time ${time}`);
    }
    if (e.stale) stale++;
    else live++;
    // An exclusive acquirer gets the repository exactly when no live lock is there (the commit
    // lock is only the commits' business).
    const blocks = !e.stale && key !== COMMIT_LOCK;
    try {
      const lock = await RepoLock.acquire(backend, "exclusive", { ...judge, command: "fuzz" });
      ok(!blocks, `input ${i}: acquired over a live lock`);
      await lock.release();
    } catch (err) {
      ok(err instanceof LockedError, `input ${i}: ${err}`);
      ok(blocks, `input ${i}: refused by a stale lock: ${err.message}`);
    }
    // break-lock removes exactly the stale repository locks
    const removed = await breakLocks(backend, judge);
    deepStrictEqual(removed.map((r) => r.key), blocks || key === COMMIT_LOCK ? [] : [key]);
    if (key === COMMIT_LOCK) {
      // lib/lock.ts reads the commit lock with its own TTL: it waits (here not at all) or
      // takes over, and nothing else
      try {
        equal(await withCommitLock(backend, () => Promise.resolve(i), -1), i);
        equal(await backend.get(COMMIT_LOCK), null);
      } catch (err) {
        ok(err instanceof LockedError, `input ${i}: ${err}`);
      }
    }
  }
  clock.done();
  ok(stale > 0 && live > 0, `${stale} stale, ${live} live`);
});

Deno.test("the commit lock stores only host, pid and time, and is stale by the repository locks' rule with a 10-minute TTL", async () => {
  const backend = new MemoryBackend();
  let held = "";
  await withCommitLock(backend, async () => {
    held = dec.decode((await backend.get(COMMIT_LOCK))!);
  });
  match(held, /^\{"host":"[^"]*","pid":\d+,"time":"[^"]+"\}$/);
  deepStrictEqual(Object.keys(JSON.parse(held)), ["host", "pid", "time"]);
  equal(await backend.get(COMMIT_LOCK), null);

  const ago = (minutes: number) => new Date(Date.now() - minutes * 60_000).toISOString();
  const cases: [unknown, boolean][] = [
    [{ host: HOST, pid: await impossiblePid(), time: ago(0) }, true], // its process is gone
    [{ host: "other-host", pid: 1, time: ago(11) }, true], // older than 10 minutes
    [{ host: "other-host", pid: 1, time: "yesterday-ish" }, true], // not a date
    ["garbage", true],
    [{ host: "other-host", pid: 1, time: ago(9) }, false],
    [{ host: HOST, pid: Deno.pid, time: ago(0) }, false], // this process: never judged dead
  ];
  for (const [info, stale] of cases) {
    await backend.put(COMMIT_LOCK, enc.encode(JSON.stringify(info)));
    const [listed] = await listLocks(backend, { ttlMs: 10 * 60_000 });
    equal(listed.stale, stale, `listed: ${JSON.stringify(info)}`);
    if (stale) {
      equal(await withCommitLock(backend, () => Promise.resolve(7), -1), 7);
      equal(await backend.get(COMMIT_LOCK), null);
    } else {
      await rejects(withCommitLock(backend, () => Promise.resolve(7), -1), LockedError);
      await backend.delete(COMMIT_LOCK);
    }
  }
});

/** What a race does around one read of the commit lock: before it, and after it. */
interface AroundRead {
  before?: (inner: MemoryBackend) => Promise<unknown>;
  after?: (inner: MemoryBackend) => Promise<unknown>;
}

/** A MemoryBackend that runs the next of `reads` around each read of the commit lock. */
class CommitLockRace extends MemoryBackend {
  constructor(readonly reads: AroundRead[]) {
    super();
  }
  override async get(key: string, options?: { maxBytes?: number }): Promise<Uint8Array | null> {
    const race = key === COMMIT_LOCK ? this.reads.shift() : undefined;
    await race?.before?.(this);
    const bytes = await super.get(key, options);
    await race?.after?.(this);
    return bytes;
  }
}

const now = new Date().toISOString();
const lockOf = (host: string, time = now) => enc.encode(JSON.stringify({ host, pid: 1, time }));

Deno.test("a commit lock released while a waiter reads it is not deleted under the next holder", async () => {
  // A holds the lock; the waiter's create fails; A releases just before the waiter reads it (it
  // reads nothing) and C takes it just after: the waiter must not delete C's lock
  const backend = new CommitLockRace([{
    before: (inner) => inner.delete(COMMIT_LOCK),
    after: (inner) => inner.create(COMMIT_LOCK, lockOf("host-c")),
  }]);
  await backend.create(COMMIT_LOCK, lockOf("host-a"));
  let ran = false;
  await rejects(withCommitLock(backend, () => Promise.resolve(void (ran = true)), -1), LockedError);
  equal(ran, false, "committed while another commit held the lock");
  deepStrictEqual(await backend.get(COMMIT_LOCK), lockOf("host-c"));
});

Deno.test("a stale commit lock taken over by another waiter meanwhile is left to it", async () => {
  // X is stale; the waiter judges it so, and C (another waiter) replaces it before the waiter
  // deletes: the waiter reads the lock again and leaves C's
  const stale = lockOf("host-x", "2000-01-01T00:00:00Z");
  const backend = new CommitLockRace([{}, {
    before: async (inner) => {
      await inner.delete(COMMIT_LOCK);
      await inner.create(COMMIT_LOCK, lockOf("host-c"));
    },
  }]);
  await backend.put(COMMIT_LOCK, stale);
  let ran = false;
  await rejects(withCommitLock(backend, () => Promise.resolve(void (ran = true)), -1), LockedError);
  equal(ran, false, "committed while another commit held the lock");
  deepStrictEqual(await backend.get(COMMIT_LOCK), lockOf("host-c"));
  // a stale lock nobody takes over is still taken over
  await backend.put(COMMIT_LOCK, stale);
  equal(await withCommitLock(backend, () => Promise.resolve(7), -1), 7);
  equal(await backend.get(COMMIT_LOCK), null);
});
