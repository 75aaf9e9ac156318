/**
 * vger-server's lock expiry (docs/SERVER.md, "Locks"): a background sweep removes every
 * `locks/` object of every repository that nobody has written for the TTL, judged by the time
 * the server's storage recorded when the object was last written (its own clock, which no client
 * sets), so a client that crashed does not block its repository forever and a client cannot keep
 * a lock alive by writing a time of its choosing into it.
 *
 * @module
 */

import type { Backend } from "../backends/backend.ts";
import { LOCKS_PREFIX } from "./storage_keys.ts";

/** Options of {@linkcode sweepLocks}. */
export interface SweepOptions {
  /** A lock not written for this long is removed. */
  ttlMs: number;
  /** The clock (tests move it). */
  now?: () => number;
}

/**
 * Removes the expired locks of the repositories `repos`; resolves to the keys removed
 * (`repo/locks/...`). Each lock's age is read again just before it is removed, so that one
 * refreshed meanwhile stays.
 */
export async function sweepLocks(
  backend: Backend,
  repos: readonly string[],
  options: SweepOptions,
): Promise<string[]> {
  const now = options.now ?? Date.now;
  const removed: string[] = [];
  for (const repo of repos) {
    for await (const info of backend.list(`${repo}/${LOCKS_PREFIX}`)) {
      if (!expired(info.modified, now(), options.ttlMs)) continue;
      // read its age again: a refresh since the listing keeps it
      let again: number | undefined;
      for await (const fresh of backend.list(info.key)) {
        if (fresh.key === info.key) again = fresh.modified;
      }
      if (!expired(again, now(), options.ttlMs)) continue;
      await backend.delete(info.key);
      removed.push(info.key);
    }
  }
  return removed;
}

function expired(modified: number | undefined, now: number, ttlMs: number): boolean {
  return modified !== undefined && now - modified > ttlMs;
}

/** How often the sweep runs for a TTL: a tenth of it, between 1 s and 60 s. */
export function sweepIntervalMs(ttlSeconds: number): number {
  return Math.min(60_000, Math.max(1000, (ttlSeconds * 1000) / 10));
}
