/**
 * A backend decorator that sends a request again when it failed transiently (a
 * {@linkcode TransientError}: HTTP 5xx, throttling, a dropped or reset connection, a timeout),
 * with exponential backoff and full jitter, a bounded number of attempts and a bounded total
 * time. Every other error passes through at once. Shared by the network backends (S3 and
 * REST); a local disk does not fail this way and is not wrapped.
 *
 * - `get`, `getRange`, `size`, `put` and `delete` are idempotent and are simply sent again.
 * - `list` restarts from the start after a failure and skips the keys it has already yielded
 *   (a listing has no order a resumption could rely on).
 * - `create` is not idempotent: an attempt may land and still fail on the way back, and the
 *   next attempt then finds the key taken. After a transient failure, an "exists" answer reads
 *   the stored bytes: equal to ours, the create is ours and succeeded; different, the key is
 *   someone else's and the answer is false, as if there had been no retry.
 * - `probeCreate` (when the inner backend has it) runs the probe through these retries.
 * - `policy`, `listVersions`, `getVersion` and `checkStructure` (when the inner backend has
 *   them) are asked again like reads.
 * - `compose` (when the inner backend has it) is idempotent and is simply sent again: the new
 *   object's key is the SHA-256 of its bytes, which the plan fixes (its prefix, its suffix and
 *   ranges of objects that are written once), so an attempt that landed and a later one write the
 *   same bytes under the same key, and the object is whole either way (all or nothing). Its
 *   sources are deleted only after the index naming the new object is committed, so a retry
 *   always finds them.
 *
 * @example
 * ```ts
 * import { MemoryBackend } from "./memory.ts";
 * import { RetryBackend } from "./retry.ts";
 *
 * const backend = new RetryBackend(new MemoryBackend(), { maxAttempts: 3 });
 * await backend.put("config", new TextEncoder().encode("hello"));
 * console.log(await backend.size("config")); // 5
 * ```
 *
 * @module
 */

import { BackendError, IntegrityError, TransientError } from "../lib/errors.ts";
import {
  type Backend,
  bodyPieces,
  bodySize,
  type ComposePlan,
  type GetOptions,
  type ObjectInfo,
  probeConditionalCreate,
  type PutBody,
} from "./backend.ts";
import { BackendDecorator } from "./decorator.ts";

/** Options of {@linkcode RetryBackend}; every field has a default. */
export interface RetryOptions {
  /**
   * Most attempts of one request, the first included. Default 10: with the default delays the
   * 9 waits are drawn below 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 20 and 20 s, 33 s in all on
   * average (65 s at most): longer than a Ceph gateway takes to restart (about 15 s) or a
   * throttling episode lasts, while a backup that cannot go on fails within about a minute.
   */
  maxAttempts?: number;
  /**
   * Most milliseconds from a request's first attempt after which no new attempt starts (no
   * wait is begun that would end later). Default 300 000: more than twice the S3 backend's
   * request timeout (`DEFAULT_S3_TIMEOUT_MS`, 120 s), so a request that timed out is sent at
   * least once more, while a gateway that stays down for five minutes is an outage, better
   * reported than hidden. Quick failures (5xx, throttling) run out of attempts long before.
   */
  maxTotalMs?: number;
  /**
   * Upper bound of the first wait, doubled each attempt (full jitter: the wait is uniform in
   * `[0, bound]`). Default 200 ms: a 5xx often passes at once, and jitter spreads the
   * `connections` parallel requests that failed together.
   */
  baseDelayMs?: number;
  /** Cap of the doubling bound. Default 20 000 ms, as the AWS SDK's standard retry mode. */
  maxDelayMs?: number;
  /** The clock, in milliseconds (tests inject one). Default `Date.now`. */
  now?: () => number;
  /** Waits `ms` milliseconds (tests inject one). Default a timer. */
  sleep?: (ms: number) => Promise<void>;
  /** A number in `[0, 1)` (tests inject one). Default `Math.random`. */
  random?: () => number;
}

/** Whether an error is worth sending the request again: a {@linkcode TransientError}. */
export function isTransient(err: unknown): boolean {
  return err instanceof TransientError;
}

/** A backend whose requests are sent again, with backoff, while they fail transiently. */
export class RetryBackend extends BackendDecorator {
  #maxAttempts: number;
  #maxTotalMs: number;
  #baseDelayMs: number;
  #maxDelayMs: number;
  #now: () => number;
  #sleep: (ms: number) => Promise<void>;
  #random: () => number;

  /** Wraps `inner`; see {@linkcode RetryOptions} for the defaults. */
  constructor(inner: Backend, options: RetryOptions = {}) {
    super(inner);
    this.#maxAttempts = Math.max(1, options.maxAttempts ?? 10);
    this.#maxTotalMs = options.maxTotalMs ?? 300_000;
    this.#baseDelayMs = options.baseDelayMs ?? 200;
    this.#maxDelayMs = options.maxDelayMs ?? 20_000;
    this.#now = options.now ?? Date.now;
    this.#sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
    this.#random = options.random ?? Math.random;
    if (inner.probeCreate) {
      // the probe's creates and delete go through the retries too (its two creates carry other
      // bytes, so a retried create never takes the other's object for its own)
      Object.defineProperty(this, "probeCreate", {
        value: () => probeConditionalCreate(this),
        configurable: true,
      });
    }
    if (inner.policy) {
      Object.defineProperty(this, "policy", {
        value: () => this.#retry("ask the policy of", "", () => this.inner.policy!()),
        configurable: true,
      });
    }
    if (inner.listVersions) {
      Object.defineProperty(this, "listVersions", {
        value: () => this.#retry("list the versions of", "", () => this.inner.listVersions!()),
        configurable: true,
      });
    }
    if (inner.getVersion) {
      Object.defineProperty(this, "getVersion", {
        value: (id: string, key: "manifest" | "index", options?: GetOptions) =>
          this.#retry("read", key, () => this.inner.getVersion!(id, key, options)),
        configurable: true,
      });
    }
    if (inner.checkStructure) {
      Object.defineProperty(this, "checkStructure", {
        value: () => this.#retry("check", "", () => this.inner.checkStructure!()),
        configurable: true,
      });
    }
    if (inner.compose) {
      Object.defineProperty(this, "compose", {
        value: (plan: ComposePlan) =>
          this.#retry("compose an object in", "", () => this.inner.compose!(plan)),
        configurable: true,
      });
    }
  }

  /** As the inner backend, retried. */
  override get(key: string, options?: GetOptions): Promise<Uint8Array | null> {
    return this.#retry("read", key, () => this.inner.get(key, options));
  }

  /** As the inner backend, retried. */
  override getRange(key: string, offset: number, length: number): Promise<Uint8Array> {
    return this.#retry("read", key, () => this.inner.getRange(key, offset, length));
  }

  /** As the inner backend, retried. */
  override size(key: string): Promise<number | null> {
    return this.#retry("stat", key, () => this.inner.size(key));
  }

  /** As the inner backend; after a failure, lists again from the start, skipping keys seen. */
  override async *list(prefix: string): AsyncIterable<ObjectInfo> {
    const seen = new Set<string>();
    const start = this.#now();
    for (let attempt = 1;; attempt++) {
      try {
        for await (const info of this.inner.list(prefix)) {
          if (seen.has(info.key)) continue;
          seen.add(info.key);
          yield info;
        }
        return;
      } catch (err) {
        await this.#backoff(err, attempt, start, "list", prefix + "*");
      }
    }
  }

  /** As the inner backend, retried. */
  override put(key: string, body: PutBody): Promise<void> {
    return this.#retry("write", key, () => this.inner.put(key, body));
  }

  /**
   * As the inner backend, retried. After a transient failure, "exists" is checked against the
   * stored bytes: ours means an earlier attempt landed (true), else false.
   */
  override async create(key: string, body: PutBody): Promise<boolean> {
    let failed = false;
    const created = await this.#retry("create", key, async () => {
      try {
        return await this.inner.create(key, body);
      } catch (err) {
        failed = true;
        throw err;
      }
    });
    if (created || !failed) return created;
    return await this.#holds(key, body);
  }

  /** As the inner backend, retried. */
  override delete(key: string): Promise<void> {
    return this.#retry("delete", key, () => this.inner.delete(key));
  }

  /** Whether the object at `key` has exactly the bytes of `body`. */
  async #holds(key: string, body: PutBody): Promise<boolean> {
    const size = bodySize(body);
    let stored: Uint8Array | null;
    try {
      stored = await this.get(key, { maxBytes: size });
    } catch (err) {
      if (err instanceof IntegrityError) return false; // larger than ours
      throw err;
    }
    if (stored === null || stored.length !== size) return false;
    let at = 0;
    for await (const piece of bodyPieces(body)) {
      for (let i = 0; i < piece.length; i++) {
        if (stored[at + i] !== piece[i]) return false;
      }
      at += piece.length;
    }
    return true;
  }

  /** Runs `request` until it succeeds, fails for good, or the attempts or time run out. */
  async #retry<T>(what: string, key: string, request: () => Promise<T>): Promise<T> {
    const start = this.#now();
    for (let attempt = 1;; attempt++) {
      try {
        return await request();
      } catch (err) {
        await this.#backoff(err, attempt, start, what, key);
      }
    }
  }

  /**
   * Waits before attempt `attempt + 1` after `err`; throws instead when `err` is not transient
   * or the attempts or the time are used up (the error then names the key and the attempts).
   */
  async #backoff(
    err: unknown,
    attempt: number,
    start: number,
    what: string,
    key: string,
  ): Promise<void> {
    if (!isTransient(err)) throw err;
    const bound = Math.min(this.#maxDelayMs, this.#baseDelayMs * 2 ** (attempt - 1));
    const delay = Math.floor(this.#random() * bound);
    const elapsed = this.#now() - start;
    if (attempt >= this.#maxAttempts || elapsed + delay >= this.#maxTotalMs) {
      const seconds = (elapsed / 1000).toFixed(1);
      const times = attempt === 1 ? "1 attempt" : `${attempt} attempts`;
      const message = (err as Error).message;
      const named = key === ""
        ? (message.includes(this.location)
          ? message
          : `Cannot ${what} ${this.location}: ${message}`)
        : message.includes(`"${key}"`)
        ? message
        : `Cannot ${what} "${key}" in ${this.location}: ${message}`;
      throw new BackendError(`${named} (gave up after ${times} in ${seconds} s)`, { cause: err });
    }
    await this.#sleep(delay);
  }
}
