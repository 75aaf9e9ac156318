/**
 * The commit lock: a short exclusive lock (`locks/commit`) held while a writer re-reads and
 * replaces the index and the manifest, so that two backups finishing together cannot drop each
 * other's archive. Created with the backend's atomic create (put-if-absent).
 *
 * Also what every lock object under `locks/` shares with the repository locks of
 * lib/repo_lock.ts: its content ({@linkcode LockInfo}, bytes in and out) and when it is stale
 * ({@linkcode isStale}).
 *
 * @module
 */

import type { Backend, ReadonlyBackend } from "../backends/backend.ts";
import { IntegrityError, LockedError } from "./errors.ts";
import { bytesEqual } from "./ids.ts";
import { COMMIT_LOCK_KEY } from "./storage_keys.ts";

/**
 * The content of a lock object. The commit lock stores only `host`, `pid` and `time`: it reads
 * as an exclusive lock of command `commit`.
 */
export interface LockInfo {
  /** Host name of the holder. */
  host: string;
  /** Process id of the holder. */
  pid: number;
  /** When the lock was written or last refreshed (ISO 8601). */
  time: string;
  /** Whether the lock is exclusive. */
  exclusive: boolean;
  /** The command that holds it, for messages (`backup`, `prune`...). */
  command: string;
}

/** Who "we" are and what time it is, when judging whether a lock is stale. */
export interface StaleOptions {
  /** A lock not refreshed for this long is stale (default 30 minutes; the commit lock: 10). */
  ttlMs?: number;
  /** The clock, in ms since the epoch (default Date.now); for tests. */
  now?: () => number;
  /** This host's name (default Deno.hostname()). */
  host?: string;
  /** This process's id (default Deno.pid); a lock with it is never judged dead. */
  pid?: number;
}

/** {@linkcode StaleOptions} with every default filled in. */
export type LockJudge = Required<StaleOptions>;

/** Key of the commit lock. */
export const COMMIT_LOCK = COMMIT_LOCK_KEY;

/** The most bytes of a lock object (`locks/*`); read with this cap (a real one takes ~150). */
export const MAX_LOCK_BYTES = 4096;

/** A commit lock older than this is stale (commits take seconds). */
const STALE_MS = 10 * 60 * 1000;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The options with their defaults: TTL `defaultTtlMs`, Date.now, this host and process. */
export function lockJudge(options: StaleOptions, defaultTtlMs: number): LockJudge {
  return {
    ttlMs: options.ttlMs ?? defaultTtlMs,
    now: options.now ?? Date.now,
    host: options.host ?? Deno.hostname(),
    pid: options.pid ?? Deno.pid,
  };
}

/** A lock object's bytes: JSON without whitespace; the commit lock's has no mode or command. */
export function encodeLock(info: LockInfo, commit = false): Uint8Array {
  const { host, pid, time, exclusive, command } = info;
  return encoder.encode(
    JSON.stringify(commit ? { host, pid, time } : { host, pid, time, exclusive, command }),
  );
}

/** A lock object's content, or null when it is not a well-formed lock (then it is stale). */
export function decodeLock(bytes: Uint8Array, commit = false): LockInfo | null {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(decoder.decode(bytes));
  } catch {
    return null;
  }
  if (typeof o !== "object" || o === null) return null;
  // the commit lock has neither field: it is exclusive, held by a commit
  const exclusive = commit ? true : o.exclusive;
  const command = commit ? "commit" : o.command;
  if (
    typeof o.host !== "string" || !Number.isSafeInteger(o.pid) || typeof o.time !== "string" ||
    Number.isNaN(Date.parse(o.time)) || typeof exclusive !== "boolean" ||
    typeof command !== "string"
  ) {
    return null;
  }
  return { host: o.host, pid: o.pid as number, time: o.time, exclusive, command };
}

/**
 * A lock object's bytes, or null when it does not exist; one too large to be a lock reads as
 * empty (malformed, so stale) without being read.
 */
export async function readLockBytes(
  backend: ReadonlyBackend,
  key: string,
): Promise<Uint8Array | null> {
  try {
    return await backend.get(key, { maxBytes: MAX_LOCK_BYTES });
  } catch (err) {
    if (err instanceof IntegrityError) return new Uint8Array(0);
    throw err;
  }
}

/**
 * Whether a lock blocks nobody: its time is more than the TTL in the past, or it was written on
 * this host by another process that no longer runs.
 */
export async function isStale(info: LockInfo, judge: LockJudge): Promise<boolean> {
  if (judge.now() - Date.parse(info.time) > judge.ttlMs) return true;
  if (info.host !== judge.host || info.pid === judge.pid) return false;
  return (await processExists(info.pid)) === false;
}

/** Whether a process with this id runs on this host; null when it cannot be told (no /proc). */
async function processExists(pid: number): Promise<boolean | null> {
  if (pid <= 0) return false;
  try {
    await Deno.stat(`/proc/${pid}`);
    return true;
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) return null; // no permission: assume alive
  }
  try {
    await Deno.stat("/proc/self");
    return false;
  } catch {
    return null; // no /proc (not Linux): a missing entry proves nothing
  }
}

/** Runs fn while holding the commit lock; waits up to `waitMs` for another holder. */
export async function withCommitLock<T>(
  backend: Backend,
  fn: () => Promise<T>,
  waitMs = 120_000,
): Promise<T> {
  const judge = lockJudge({}, STALE_MS);
  const me: LockInfo = {
    host: judge.host,
    pid: judge.pid,
    time: new Date().toISOString(),
    exclusive: true,
    command: "commit",
  };
  const body = encodeLock(me, true);
  const deadline = Date.now() + waitMs;
  let delay = 20;
  while (!(await backend.create(COMMIT_LOCK, body))) {
    const bytes = await readLockBytes(backend, COMMIT_LOCK);
    // released meanwhile: create again. Deleting it now could delete the lock of whoever took it
    // since (two commits at once, one manifest lost: seen with three clients over REST)
    if (bytes === null) continue;
    const holder = decodeLock(bytes, true);
    const stale = holder === null || await isStale(holder, judge);
    if (stale) {
      // only the lock judged stale goes: taken over meanwhile by another waiter, it is left
      // (storage offers no delete-if-unchanged, so a window of one request remains)
      const again = await readLockBytes(backend, COMMIT_LOCK);
      if (again !== null && bytesEqual(again, bytes)) await backend.delete(COMMIT_LOCK);
      continue;
    }
    if (Date.now() > deadline) {
      throw new LockedError(
        `Repository "${backend.location}" is locked by ${holder.host}/${holder.pid} since ${holder.time}`,
      );
    }
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 1000);
  }
  let result: T;
  try {
    result = await fn();
  } catch (err) {
    // the writer's failure is the news, not a release failing the same way (storage gone)
    await backend.delete(COMMIT_LOCK).catch(() => {});
    throw err;
  }
  await backend.delete(COMMIT_LOCK);
  return result;
}
