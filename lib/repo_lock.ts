/**
 * Repository locks: the long locks a command holds from start to end, modelled on restic's.
 * (The short commit lock `locks/commit` is lib/lock.ts; it is listed here only so that
 * `break-lock --all` can remove it.)
 *
 * A lock is the object `locks/<random 64-hex id>`, JSON
 * `{"host","pid","time","exclusive","command"}`, written with the backend's put-if-absent.
 * Shared locks (backup, list, extract, check) coexist; an exclusive lock (delete, prune,
 * compact, check --repair, key changes) conflicts with every other lock.
 *
 * Acquiring writes the own lock first and then lists `locks/`: of any two acquirers, the one
 * that lists second sees the other's file, so both cannot succeed. A lock is stale, and blocks
 * nobody, when its time is older than the TTL, when it was written on this host by a process that
 * no longer runs, or when it does not parse. Stale locks are only removed by
 * {@linkcode breakLocks}. A holder rewrites its lock every TTL/3 so that it never looks stale.
 *
 * @example
 * ```ts
 * import type { Backend } from "../backends/backend.ts";
 * import { RepoLock } from "./repo_lock.ts";
 *
 * async function underLock(backend: Backend): Promise<void> {
 *   await using lock = await RepoLock.acquire(backend, "shared", { command: "backup" });
 *   lock.assertHeld(); // throws LockedError if another process broke the lock
 * }
 * ```
 *
 * @module
 */

import type { Backend, ReadonlyBackend } from "../backends/backend.ts";
import { errorMessage, LockedError } from "./errors.ts";
import { randomBytes, toHex } from "./ids.ts";
import {
  COMMIT_LOCK,
  decodeLock,
  encodeLock,
  isStale,
  type LockInfo,
  type LockJudge as Judge,
  lockJudge,
  readLockBytes,
  type StaleOptions,
} from "./lock.ts";
import { lockKey, LOCKS_PREFIX, parseLockKey } from "./storage_keys.ts";

export type { LockInfo, StaleOptions };

/** Shared locks coexist; an exclusive lock excludes every other lock. */
export type LockMode = "shared" | "exclusive";

/** Options of {@linkcode RepoLock.acquire}. */
export interface LockOptions extends StaleOptions {
  /** The command taking the lock, shown to whoever it blocks. */
  command: string;
  /** How long to wait for a conflicting lock to go away (`--lock-wait`; default 0). */
  waitMs?: number;
  /** Stops waiting (with the signal's reason) when aborted, e.g. on Ctrl-C. */
  signal?: AbortSignal;
  /** Told once about each stale lock that is ignored, so that the CLI can warn about it. */
  onStale?: (entry: LockEntry) => void;
}

/** One object under `locks/`, as {@linkcode listLocks} reports it. */
export interface LockEntry {
  /** The object key, `locks/<id>` (or `locks/commit`). */
  key: string;
  /** The parsed lock, or null when the object does not parse. */
  info: LockInfo | null;
  /** Whether it blocks nobody: too old, of a dead process on this host, or malformed. */
  stale: boolean;
}

/** Default time after which an unrefreshed lock is stale. */
export const DEFAULT_LOCK_TTL_MS = 30 * 60 * 1000;

/** First and largest pause between attempts while waiting; each pause is randomized. */
const BACKOFF_START_MS = 25;
const BACKOFF_MAX_MS = 2000;

/** A held repository lock; release it (or `await using` it) when the command ends. */
export class RepoLock {
  /** The object key of this lock, `locks/<id>`. */
  readonly key: string;
  /** Whether the lock is shared or exclusive. */
  readonly mode: LockMode;
  #backend: Backend;
  #judge: Judge;
  #command: string;
  /** Clock time of the last successful write of the lock object. */
  #writtenAt: number;
  #timer: ReturnType<typeof setInterval> | undefined;
  #refreshing: Promise<void> | undefined;
  /** Why the lock is no longer held (broken by another process, or expired), once known. */
  #lost: LockedError | undefined;
  #released = false;

  private constructor(
    backend: Backend,
    key: string,
    mode: LockMode,
    judge: Judge,
    command: string,
    writtenAt: number,
  ) {
    this.#backend = backend;
    this.key = key;
    this.mode = mode;
    this.#judge = judge;
    this.#command = command;
    this.#writtenAt = writtenAt;
    const every = Math.max(1, Math.floor(judge.ttlMs / 3));
    const timer = setInterval(() => {
      // a failed refresh is retried by the next tick; only expiry or removal loses the lock
      this.refresh().catch(() => {});
    }, every);
    // A forgotten lock must not keep the process alive; its file then goes stale on its own.
    Deno.unrefTimer(timer);
    this.#timer = timer;
  }

  /**
   * Takes a lock on the repository, waiting up to `waitMs` for conflicting locks to go away;
   * throws LockedError naming the holder when they do not.
   */
  static async acquire(
    backend: Backend,
    mode: LockMode,
    options: LockOptions,
  ): Promise<RepoLock> {
    const judge = judgeOf(options);
    const exclusive = mode === "exclusive";
    const waitMs = Math.max(0, options.waitMs ?? 0);
    // Waiting uses the real clock: an injected clock only dates and judges locks.
    const deadline = performance.now() + waitMs;
    const signal = options.signal;
    const reported = new Set<string>();
    let pause = BACKOFF_START_MS;
    const sleep = async (cap = Infinity): Promise<void> => {
      const left = deadline - performance.now();
      // randomized so that two acquirers that collided do not collide again in step
      await delay(Math.min(left, cap, pause * (0.5 + Math.random())), signal);
      pause = Math.min(pause * 2, BACKOFF_MAX_MS);
    };
    for (;;) {
      signal?.throwIfAborted();
      const id = toHex(randomBytes(32));
      const key = lockKey(id);
      let writtenAt = judge.now();
      const body = lockBody(judge, writtenAt, exclusive, options.command);
      if (!(await backend.create(key, body))) continue; // a 256-bit id collided: draw again
      let held = false;
      let vanished = false;
      let blockers: LockEntry[] = [];
      try {
        for (;;) {
          const { own, others } = await readLocks(backend, judge, key);
          if (!own) {
            // broken by someone (break-lock --all) before we got it: write a new one
            vanished = true;
            break;
          }
          for (const e of others) {
            if (e.stale && !reported.has(e.key)) {
              reported.add(e.key);
              options.onStale?.(e);
            }
          }
          blockers = others.filter((e) => !e.stale && (exclusive || e.info!.exclusive));
          if (blockers.length === 0) {
            held = true;
            return new RepoLock(backend, key, mode, judge, options.command, writtenAt);
          }
          // An exclusive acquirer keeps its file while it waits, so that a stream of shared
          // locks cannot starve it, unless a lower-id exclusive lock is there: then it yields.
          // Proceeding at once on the lower id would be unsafe (the other may already hold).
          const keep = exclusive &&
            blockers.every((b) => !b.info!.exclusive || parseLockKey(b.key)! > id);
          if (!keep || performance.now() >= deadline) break;
          if (judge.now() - writtenAt >= judge.ttlMs / 3) {
            // a long wait must not let our waiting lock look stale
            writtenAt = judge.now();
            await backend.put(key, lockBody(judge, writtenAt, exclusive, options.command));
          }
          await sleep(judge.ttlMs / 3);
        }
      } finally {
        // also on errors and aborts: a waiter's file must not outlive the wait
        if (!held) await backend.delete(key).catch(() => {});
      }
      if (performance.now() >= deadline) {
        if (vanished) {
          throw new LockedError(
            `Cannot lock repository "${backend.location}": ${key} was removed by another ` +
              `process right after it was written`,
          );
        }
        throw lockedBy(backend.location, blockers);
      }
      await sleep();
    }
  }

  /**
   * Rewrites the lock with a fresh time. Notes, for {@linkcode RepoLock.assertHeld}, when the
   * object was removed by another process or went unrefreshed for longer than the TTL.
   */
  refresh(): Promise<void> {
    // one refresh at a time: a late put must never recreate a lock that release deleted
    this.#refreshing ??= this.#refresh().finally(() => {
      this.#refreshing = undefined;
    });
    return this.#refreshing;
  }

  async #refresh(): Promise<void> {
    if (this.#released || this.#lost) return;
    const location = this.#backend.location;
    const now = this.#judge.now();
    if (now - this.#writtenAt > this.#judge.ttlMs) {
      // Others may have judged us stale meanwhile (a suspended laptop) and taken the repository.
      this.#lose(
        new LockedError(
          `Lock on repository "${location}" expired: it was not refreshed for ` +
            `${Math.round((now - this.#writtenAt) / 1000)} s and other processes may have ` +
            `ignored it`,
        ),
      );
      return;
    }
    if ((await this.#backend.size(this.key)) === null) {
      this.#lose(
        new LockedError(
          `Lock on repository "${location}" was removed by another process (break-lock?): ` +
            `${this.key} is gone`,
        ),
      );
      return;
    }
    const body = lockBody(this.#judge, now, this.mode === "exclusive", this.#command);
    try {
      await this.#backend.put(this.key, body);
    } catch (err) {
      // Transient: the next refresh tries again; only the TTL check above gives up.
      throw new LockedError(
        `Cannot refresh lock on repository "${location}": ${errorMessage(err)}`,
        { cause: err },
      );
    }
    this.#writtenAt = now;
  }

  #lose(err: LockedError): void {
    this.#lost = err;
    this.#stopTimer();
  }

  /** Throws LockedError when the lock was lost (broken or expired); call before committing. */
  assertHeld(): void {
    if (this.#lost) throw this.#lost;
    if (this.#released) {
      throw new LockedError(`Lock on repository "${this.#backend.location}" was released`);
    }
  }

  /** Stops refreshing and deletes the lock object; calling it again does nothing. */
  async release(): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    this.#stopTimer();
    await this.#refreshing?.catch(() => {});
    await this.#backend.delete(this.key);
  }

  /** Releases the lock at the end of an `await using` block. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.release();
  }

  #stopTimer(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}

/** Every object under `locks/` (the commit lock too) with its parsed content and staleness. */
export async function listLocks(
  backend: ReadonlyBackend,
  options: StaleOptions = {},
): Promise<LockEntry[]> {
  const judge = judgeOf(options);
  const { others } = await readLocks(backend, judge, undefined, true);
  return others.sort((a, b) => a.key < b.key ? -1 : a.key > b.key ? 1 : 0);
}

/** Options of {@linkcode breakLocks}. */
export interface BreakLocksOptions extends StaleOptions {
  /** Remove every lock, live ones and `locks/commit` included (default: only stale ones). */
  all?: boolean;
}

/**
 * Removes stale locks, or with `all` every lock including `locks/commit`; returns the removed
 * ones, for `vger break-lock` to report.
 */
export async function breakLocks(
  backend: Backend,
  options: BreakLocksOptions = {},
): Promise<LockEntry[]> {
  const judge = judgeOf(options);
  const removed: LockEntry[] = [];
  for (const entry of await listLocks(backend, options)) {
    if (!options.all) {
      if (entry.key === COMMIT_LOCK || !entry.stale) continue;
      // Judge again from a fresh read: its holder may have refreshed it since the listing.
      const again = await readEntry(backend, judge, entry.key);
      if (again === null || !again.stale) continue;
    }
    await backend.delete(entry.key);
    removed.push(entry);
  }
  return removed;
}

function judgeOf(options: StaleOptions): Judge {
  return lockJudge(options, DEFAULT_LOCK_TTL_MS);
}

function lockBody(judge: Judge, time: number, exclusive: boolean, command: string): Uint8Array {
  const info: LockInfo = {
    host: judge.host,
    pid: judge.pid,
    time: new Date(time).toISOString(),
    exclusive,
    command,
  };
  return encodeLock(info);
}

/**
 * Reads every lock but `own` (and but the commit lock unless `withCommit`); `own` tells whether
 * the own lock was in the listing.
 */
async function readLocks(
  backend: ReadonlyBackend,
  judge: Judge,
  ownKey: string | undefined,
  withCommit = false,
): Promise<{ own: boolean; others: LockEntry[] }> {
  const keys: string[] = [];
  let own = false;
  for await (const { key } of backend.list(LOCKS_PREFIX)) {
    if (key === ownKey) own = true;
    else if (withCommit || key !== COMMIT_LOCK) keys.push(key);
  }
  const entries = await Promise.all(keys.map((key) => readEntry(backend, judge, key)));
  return { own, others: entries.filter((e): e is LockEntry => e !== null) };
}

/** The lock at `key` judged now, or null when it vanished since it was listed. */
async function readEntry(
  backend: ReadonlyBackend,
  judge: Judge,
  key: string,
): Promise<LockEntry | null> {
  // too large to be a lock: judged as any malformed lock (stale), without reading it
  const bytes = await readLockBytes(backend, key);
  if (bytes === null) return null;
  const info = parseLock(key, bytes);
  return { key, info, stale: info === null || await isStale(info, judge) };
}

/** The lock's content, or null when it is not a well-formed lock. */
function parseLock(key: string, bytes: Uint8Array): LockInfo | null {
  const commit = key === COMMIT_LOCK;
  if (!commit && parseLockKey(key) === null) return null;
  // the commit lock (lib/lock.ts) has no mode or command: it is exclusive, held by a commit
  return decodeLock(bytes, commit);
}

function lockedBy(location: string, blockers: LockEntry[]): LockedError {
  // name an exclusive holder first, then the oldest
  const [b] = blockers.toSorted((x, y) =>
    Number(y.info!.exclusive) - Number(x.info!.exclusive) ||
    Date.parse(x.info!.time) - Date.parse(y.info!.time)
  );
  const i = b.info!;
  return new LockedError(
    `Repository "${location}" is locked by ${i.host}/${i.pid} since ${i.time} ` +
      `(${i.command}, ${i.exclusive ? "exclusive" : "shared"})`,
  );
}

/** Resolves after `ms`, or rejects with the signal's reason when it is aborted first. */
function delay(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, Math.max(0, ms));
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
