/**
 * vger-server's per-repository quota (docs/SERVER.md, "Quota"): every PUT reserves its
 * `Content-Length` before its body is read, against the quota minus what the repository holds
 * (its objects and its kept versions) minus the reservations of uploads in flight, also those of
 * other `deno serve --parallel` workers and processes: reservations are objects under
 * `.vger-server/reservations/<repo>/`, and the check-and-reserve runs under a per-repository
 * mutex, the object `.vger-server/mutex/<repo>` created with put-if-absent.
 *
 * An upload rewrites its reservation every {@linkcode RESERVATION_REFRESH_MS} while its body
 * streams; a reservation not rewritten for {@linkcode RESERVATION_STALE_MS} (its process died)
 * counts no more and is removed. A mutex older than {@linkcode MUTEX_STALE_MS} (its holder died
 * inside the few milliseconds it holds it) is broken.
 *
 * @module
 */

import type { Backend } from "../backends/backend.ts";
import { HttpError } from "./server_request.ts";
import { VERSIONS_PREFIX } from "./server_versions.ts";
import { HELD_PREFIX } from "./server_held.ts";
import { PACKS_PREFIX } from "./storage_keys.ts";

/** Where reservations are: `.vger-server/reservations/<repo>/<id>`. */
export const RESERVATIONS_PREFIX = ".vger-server/reservations/";
/** Where the per-repository mutexes are: `.vger-server/mutex/<repo>`. */
export const MUTEX_PREFIX = ".vger-server/mutex/";
/** How often an upload in flight rewrites its reservation. */
export const RESERVATION_REFRESH_MS = 20_000;
/** A reservation older than this is of a dead process. */
export const RESERVATION_STALE_MS = 90_000;
/** A mutex older than this is of a dead process (it is held for a listing at most). */
export const MUTEX_STALE_MS = 30_000;
/**
 * How long an upload that would fit but for the uploads in flight waits for them to settle before
 * it is asked again: doubling from the first wait to the last (~1.5 s in all), then it is refused.
 */
const SETTLE_FIRST_MS = 25;
const SETTLE_LAST_MS = 800;
/** How long a request waits for a repository's mutex before 503. */
const MUTEX_WAIT_MS = 30_000;

/** Runs a storage call, turning failures into HttpErrors (ServerStore's). */
type Call = <T>(repo: string, key: string, fn: () => Promise<T>) => Promise<T>;

/** A reservation held while an upload streams. */
export interface Reservation {
  /** Drops the reservation (after the upload, stored or not). */
  release(): Promise<void>;
}

/** What a repository holds, for the quota and the repository info. */
export interface Usage {
  /** Bytes of its objects, of its kept versions and of its held deletes. */
  usedBytes: number;
  /** How many objects (kept versions not counted). */
  objects: number;
  /** How many of them are packs. */
  packs: number;
  /** Bytes of its kept versions (in `usedBytes`). */
  keptBytes: number;
  /** Bytes of its held deletes (in `usedBytes`). */
  heldBytes: number;
}

/** The quota of the repositories on a backend. */
export class Quota {
  readonly #backend: Backend;
  readonly #quotaBytes: number;
  readonly #call: Call;
  /** This process's queue per repository: one request at a time asks for the disk mutex. */
  readonly #queues = new Map<string, Promise<unknown>>();

  /** The quota `quotaBytes` (0: none) on `backend`; `call` wraps each storage call. */
  constructor(backend: Backend, quotaBytes: number, call: Call) {
    this.#backend = backend;
    this.#quotaBytes = quotaBytes;
    this.#call = call;
  }

  /** The quota in bytes, 0 for none. */
  get bytes(): number {
    return this.#quotaBytes;
  }

  /** What `repo` holds now: its objects and its kept versions. */
  async usage(repo: string): Promise<Usage> {
    const usage: Usage = { usedBytes: 0, objects: 0, packs: 0, keptBytes: 0, heldBytes: 0 };
    const packs = `${repo}/${PACKS_PREFIX}`;
    await this.#call(repo, "", async () => {
      for await (const info of this.#backend.list(`${repo}/`)) {
        usage.usedBytes += info.size;
        usage.objects++;
        if (info.key.startsWith(packs)) usage.packs++;
      }
      for await (const info of this.#backend.list(`${VERSIONS_PREFIX}${repo}/`)) {
        usage.usedBytes += info.size;
        usage.keptBytes += info.size;
      }
      for await (const info of this.#backend.list(`${HELD_PREFIX}${repo}/`)) {
        usage.usedBytes += info.size;
        usage.heldBytes += info.size;
      }
    });
    return usage;
  }

  /**
   * Reserves `adds` bytes for an upload to `key` of `repo` (which frees `frees` bytes when it
   * replaces an object), or throws HttpError 413 when that would take the repository over its
   * quota. Resolves to null when there is no quota.
   */
  async reserve(
    repo: string,
    key: string,
    adds: number,
    frees: number,
  ): Promise<Reservation | null> {
    if (this.#quotaBytes === 0) return null;
    const id = randomHex(12);
    const name = `${RESERVATIONS_PREFIX}${repo}/${id}`;
    const record = () => new TextEncoder().encode(JSON.stringify({ bytes: adds, key }));
    // An upload's object counts as stored a moment before its reservation is dropped: an upload
    // that fits once those in flight settle waits for them (briefly) rather than being refused
    for (let wait = SETTLE_FIRST_MS;; wait *= 2) {
      const held = await this.#withMutex(repo, key, async () => {
        const { usedBytes } = await this.usage(repo);
        const reserved = await this.#reserved(repo);
        if (usedBytes - frees + reserved + adds <= this.#quotaBytes) {
          await this.#backend.put(name, record());
          return true;
        }
        if (usedBytes - frees + adds <= this.#quotaBytes && wait <= SETTLE_LAST_MS) {
          return false; // fits without the uploads in flight: asked again once they settle
        }
        throw new HttpError(
          413,
          `Repository "${repo}" is over its quota with "${key}": ${adds} more bytes` +
            `${frees > 0 ? ` (${frees} freed)` : ""} on ${usedBytes} stored and ${reserved} ` +
            `being uploaded, the quota is ${this.#quotaBytes}`,
        );
      });
      if (held) break;
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
    const refresh = setInterval(() => {
      this.#backend.put(name, record()).catch(() => {});
    }, RESERVATION_REFRESH_MS);
    Deno.unrefTimer(refresh);
    return {
      release: async () => {
        clearInterval(refresh);
        await this.#call(repo, key, () => this.#backend.delete(name));
      },
    };
  }

  /** The bytes reserved by uploads in flight in `repo`; stale reservations are removed. */
  async #reserved(repo: string): Promise<number> {
    let total = 0;
    const now = Date.now();
    for await (const info of this.#backend.list(`${RESERVATIONS_PREFIX}${repo}/`)) {
      if (info.modified !== undefined && now - info.modified > RESERVATION_STALE_MS) {
        await this.#backend.delete(info.key);
        continue;
      }
      const bytes = await this.#backend.get(info.key, { maxBytes: 4096 }).catch(() => null);
      if (bytes === null) continue; // released meanwhile
      try {
        const n = JSON.parse(new TextDecoder().decode(bytes)).bytes;
        if (Number.isSafeInteger(n) && n >= 0) total += n;
      } catch {
        // a reservation being rewritten is read again next time; count it as nothing now
      }
    }
    return total;
  }

  /**
   * Runs `fn` holding `repo`'s mutex: first its turn in this process's queue (no polling), then
   * the mutex on disk shared with other workers and processes (waits at most 30 s, then 503).
   */
  #withMutex<T>(repo: string, key: string, fn: () => Promise<T>): Promise<T> {
    const before = this.#queues.get(repo) ?? Promise.resolve();
    const run = before.catch(() => {}).then(() => this.#withDiskMutex(repo, key, fn));
    const tail = run.catch(() => {});
    this.#queues.set(repo, tail);
    tail.then(() => {
      if (this.#queues.get(repo) === tail) this.#queues.delete(repo);
    });
    return run;
  }

  /** Runs `fn` holding `repo`'s mutex on disk. */
  async #withDiskMutex<T>(repo: string, key: string, fn: () => Promise<T>): Promise<T> {
    const name = `${MUTEX_PREFIX}${repo}`;
    const mine = new TextEncoder().encode(JSON.stringify({ time: Date.now(), id: randomHex(8) }));
    const deadline = Date.now() + MUTEX_WAIT_MS;
    let pause = 2;
    for (;;) {
      if (await this.#call(repo, key, () => this.#backend.create(name, mine))) break;
      if (Date.now() > deadline) {
        throw new HttpError(503, `Repository "${repo}" is busy: try "${key}" again`);
      }
      await this.#breakStale(repo, key, name);
      await new Promise((r) => setTimeout(r, pause * (0.5 + Math.random())));
      pause = Math.min(pause * 2, 50);
    }
    try {
      return await this.#call(repo, key, fn);
    } finally {
      await this.#call(repo, key, () => this.#backend.delete(name));
    }
  }

  /** Removes `repo`'s mutex when its holder has held it too long (it died). */
  async #breakStale(repo: string, key: string, name: string): Promise<void> {
    await this.#call(repo, key, async () => {
      for await (const info of this.#backend.list(name)) {
        if (info.key !== name) continue;
        if (info.modified !== undefined && Date.now() - info.modified > MUTEX_STALE_MS) {
          await this.#backend.delete(name);
        }
      }
    });
  }
}

function randomHex(bytes: number): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(bytes)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
}
