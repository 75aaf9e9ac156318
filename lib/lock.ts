/**
 * The commit lock: a short exclusive lock (`locks/commit`) held while a writer re-reads and
 * replaces the index and the manifest, so that two backups finishing together cannot drop each
 * other's archive. Created with the backend's atomic create (put-if-absent).
 *
 * @module
 */

import type { Backend } from "../backends/backend.ts";
import { IntegrityError, LockedError } from "./errors.ts";
import { COMMIT_LOCK_KEY } from "./storage_keys.ts";

/** Who holds a lock. */
export interface LockInfo {
  /** Host name. */
  host: string;
  /** Process id. */
  pid: number;
  /** When it was taken (ISO 8601). */
  time: string;
}

/** Key of the commit lock. */
export const COMMIT_LOCK = COMMIT_LOCK_KEY;

/** The most bytes of a lock object (`locks/*`); read with this cap (a real one takes ~150). */
export const MAX_LOCK_BYTES = 4096;

/** A commit lock older than this is stale (commits take seconds). */
const STALE_MS = 10 * 60 * 1000;

function parseLock(bytes: Uint8Array | null): LockInfo | null {
  if (!bytes) return null;
  try {
    const o = JSON.parse(new TextDecoder().decode(bytes));
    if (typeof o.host === "string" && typeof o.pid === "number" && typeof o.time === "string") {
      return o;
    }
  } catch {
    // a damaged lock file is treated as stale below
  }
  return null;
}

/** The commit lock's bytes; one too large to be a lock reads as a damaged (stale) one. */
async function readLockBytes(backend: Backend): Promise<Uint8Array | null> {
  try {
    return await backend.get(COMMIT_LOCK, { maxBytes: MAX_LOCK_BYTES });
  } catch (err) {
    if (err instanceof IntegrityError) return new Uint8Array(0);
    throw err;
  }
}

function processAlive(pid: number): boolean {
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

/** Runs fn while holding the commit lock; waits up to `waitMs` for another holder. */
export async function withCommitLock<T>(
  backend: Backend,
  fn: () => Promise<T>,
  waitMs = 120_000,
): Promise<T> {
  const me: LockInfo = { host: Deno.hostname(), pid: Deno.pid, time: new Date().toISOString() };
  const body = new TextEncoder().encode(JSON.stringify(me));
  const deadline = Date.now() + waitMs;
  let delay = 20;
  while (!(await backend.create(COMMIT_LOCK, body))) {
    const holder = parseLock(await readLockBytes(backend));
    const taken = holder === null ? NaN : Date.parse(holder.time);
    const stale = holder === null || Number.isNaN(taken) || Date.now() - taken > STALE_MS ||
      (holder.host === me.host && !processAlive(holder.pid));
    if (stale) {
      await backend.delete(COMMIT_LOCK);
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
  try {
    return await fn();
  } finally {
    await backend.delete(COMMIT_LOCK);
  }
}
