/**
 * Concurrency primitives shared by every stage: a {@linkcode Limiter} (at most N async tasks at
 * once), a {@linkcode ByteBudget} (at most N bytes held at once), a {@linkcode Signal} (wakes
 * whoever waits for a change: a producer and a consumer of a queue) and {@linkcode InOrder}
 * (results that come out of order handed on in order). How many storage requests
 * run at once is the backend's to say (`capabilities.connections`), never a constant in an
 * engine; the engines pass that number in. A leaf: it imports nothing.
 *
 * @example Upload at most two packs at once, and stop at the first failure
 * ```ts
 * import { Limiter } from "./concurrency.ts";
 *
 * const uploads = new Limiter(2);
 * for (const pack of ["a", "b", "c"]) {
 *   await uploads.spawn(async () => {
 *     await Promise.resolve(pack); // the upload
 *   });
 * }
 * await uploads.drain(); // throws the first failure of a spawned task
 * ```
 *
 * @module
 */

/**
 * Runs at most `limit` async tasks at once. Slots are handed out in the order they were asked
 * for. A task started with {@linkcode Limiter.spawn} runs in the background; its failure is
 * kept (the first one only) and thrown by every later `acquire`, `spawn`, `ready` and `drain`.
 */
export class Limiter {
  readonly #limit: number;
  #active = 0;
  /** Callers waiting for a slot, first come first served; release hands its slot over. */
  #waiters: (() => void)[] = [];
  /** Callers waiting for no task to be running. */
  #idle: (() => void)[] = [];
  #failed = false;
  #failure: unknown = undefined;

  /**
   * A limiter of `limit` (a positive integer) slots. `Infinity` limits nothing: a group of
   * background tasks whose first failure `drain` throws (pair it with a ByteBudget).
   */
  constructor(limit: number) {
    if (limit !== Infinity && (!Number.isInteger(limit) || limit < 1)) {
      throw new RangeError(`Concurrency limit must be a positive integer, got ${limit}`);
    }
    this.#limit = limit;
  }

  /** The number of slots. */
  get limit(): number {
    return this.#limit;
  }

  /** Slots taken now. */
  get active(): number {
    return this.#active;
  }

  /** The first failure of a spawned task, if any (`undefined` otherwise). */
  get failure(): unknown {
    return this.#failure;
  }

  /** Whether a spawned task has failed. */
  get failed(): boolean {
    return this.#failed;
  }

  /** Whether a slot is free now (`acquire` would take it at once). */
  get hasRoom(): boolean {
    return this.#active < this.#limit && this.#waiters.length === 0;
  }

  /** Waits for a free slot and takes it (give it back with `release`). */
  async acquire(): Promise<void> {
    this.#throwIfFailed();
    if (this.#active < this.#limit && this.#waiters.length === 0) {
      this.#active++;
      return;
    }
    await new Promise<void>((resolve) => this.#waiters.push(resolve));
    // the slot was handed over by release: give it back if a task failed meanwhile
    if (this.#failed) {
      this.release();
      this.#throwIfFailed();
    }
  }

  /** Gives a slot back (to the next waiter, if any). */
  release(): void {
    const next = this.#waiters.shift();
    if (next) return next();
    if (this.#active === 0) throw new Error("Limiter.release without acquire");
    this.#active--;
    if (this.#active === 0) {
      const idle = this.#idle;
      this.#idle = [];
      for (const wake of idle) wake();
    }
  }

  /** Runs `fn` in a slot and returns its result; its failure goes to the caller only. */
  async run<T>(fn: () => Promise<T>): Promise<T> {
    await this.acquire();
    try {
      return await fn();
    } finally {
      this.release();
    }
  }

  /**
   * Waits for a slot, then starts `fn` in it and returns without waiting for it. A failure of
   * `fn` is kept and thrown by later calls (see {@linkcode Limiter.drain}).
   */
  async spawn(fn: () => Promise<void>): Promise<void> {
    await this.acquire();
    (async () => await fn())()
      .catch((err) => {
        if (!this.#failed) {
          this.#failed = true;
          this.#failure = err;
        }
      })
      .finally(() => this.release());
  }

  /** Waits until a slot is free (without taking it): a producer's back-pressure. */
  async ready(): Promise<void> {
    await this.acquire();
    this.release();
  }

  /** Waits for every task to end, without throwing. */
  async settle(): Promise<void> {
    while (this.#active > 0 || this.#waiters.length > 0) {
      await new Promise<void>((resolve) => this.#idle.push(resolve));
    }
  }

  /** Waits for every task to end; throws the first failure of a spawned task. */
  async drain(): Promise<void> {
    await this.settle();
    this.#throwIfFailed();
  }

  /**
   * Runs `fn` over the items in their order, at most `limit` at a time. Stops starting new
   * ones at the first failure, waits for the running ones, then throws that failure.
   */
  async forEach<T>(items: Iterable<T>, fn: (item: T) => Promise<void>): Promise<void> {
    try {
      for (const item of items) await this.spawn(() => fn(item));
    } finally {
      await this.settle();
    }
    this.#throwIfFailed();
  }

  #throwIfFailed(): void {
    if (this.#failed) throw this.#failure;
  }
}

/**
 * Bounds the bytes held at once: `reserve` waits while the new bytes would pass the limit, and
 * `release` gives them back. A reservation larger than the whole budget is let through when
 * nothing else is held, so it never deadlocks. Waiters are served in order.
 */
export class ByteBudget {
  readonly #limit: number;
  #used = 0;
  #waiters: { bytes: number; resolve: () => void; reject: (err: unknown) => void }[] = [];
  #aborted = false;
  #reason: unknown = undefined;

  /** A budget of `limit` bytes (a positive number). */
  constructor(limit: number) {
    if (!(limit > 0)) throw new RangeError(`Byte budget must be positive, got ${limit}`);
    this.#limit = limit;
  }

  /** The budget's size in bytes. */
  get limit(): number {
    return this.#limit;
  }

  /** Bytes reserved now. */
  get used(): number {
    return this.#used;
  }

  /** Whether `bytes` could be reserved now without waiting. */
  fits(bytes: number): boolean {
    return this.#waiters.length === 0 && this.#admits(bytes);
  }

  /** Reserves `bytes` if that needs no waiting (and the budget is not aborted). */
  tryReserve(bytes: number): boolean {
    if (this.#aborted || !this.fits(bytes)) return false;
    this.#used += bytes;
    return true;
  }

  /** Reserves `bytes`, waiting while they would pass the budget; throws once aborted. */
  async reserve(bytes: number): Promise<void> {
    if (this.#aborted) throw this.#reason;
    if (this.fits(bytes)) {
      this.#used += bytes;
      return;
    }
    await new Promise<void>((resolve, reject) => this.#waiters.push({ bytes, resolve, reject }));
  }

  /** Gives `bytes` back and lets waiting reservations in. */
  release(bytes: number): void {
    this.#used -= bytes;
    while (this.#waiters.length > 0 && this.#admits(this.#waiters[0].bytes)) {
      const w = this.#waiters.shift()!;
      this.#used += w.bytes;
      w.resolve();
    }
  }

  /** Fails every waiting and later reservation with `reason` (a stage failed). */
  abort(reason: unknown): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#reason = reason;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w.reject(reason);
  }

  #admits(bytes: number): boolean {
    return this.#used === 0 || this.#used + bytes <= this.#limit;
  }
}

/**
 * Wakes everyone waiting for it: `wait` resolves at the next `notify`, never at an earlier one,
 * so a waiter re-checks its condition after each wake-up (a condition variable without a lock,
 * for a single-threaded event loop). A queue's producer and consumer each wait on one.
 */
export class Signal {
  #waiters: (() => void)[] = [];

  /** Resolves at the next {@linkcode Signal.notify}. */
  wait(): Promise<void> {
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Wakes every current waiter (later waiters wait for the next notify). */
  notify(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }
}

/** A step of {@linkcode InOrder}: what it waits for, and what it does then. */
interface Step {
  gate?: Promise<unknown>;
  run: () => Promise<void> | void;
}

/**
 * Runs steps in the order they were added, each once the promise it waits for (its gate) has
 * settled: work finished out of order (a worker hashing a file's chunks) is handed on in order
 * (the walk's). A step with no gate added while none waits runs at once, so the usual case costs
 * no promise. The first failure, of a gate or a step, skips the steps after it and is thrown by
 * the next `add`, `below` or `settle`.
 */
export class InOrder {
  #steps: (Step | undefined)[] = [];
  #head = 0;
  #running: Promise<void> | null = null;
  #failed = false;
  #failure: unknown = undefined;
  readonly #done = new Signal();

  /** Steps added and not yet run. */
  get waiting(): number {
    return this.#steps.length - this.#head;
  }

  /** Runs `run` after the steps before it, once `gate` (if any) settled. */
  add(run: () => Promise<void> | void, gate?: Promise<unknown>): Promise<void> | void {
    this.#throwIfFailed();
    if (this.#running === null && gate === undefined) return run();
    this.#steps.push({ gate, run });
    this.#running ??= this.#runSteps();
  }

  /** Waits until at most `n` steps wait. */
  async below(n: number): Promise<void> {
    while (this.waiting > n) await this.#done.wait();
    this.#throwIfFailed();
  }

  /** Waits until every step added ran. */
  async settle(): Promise<void> {
    await this.below(0);
  }

  async #runSteps(): Promise<void> {
    while (this.#head < this.#steps.length) {
      const step = this.#steps[this.#head]!;
      try {
        if (step.gate) await step.gate;
        const running = this.#failed ? undefined : step.run();
        if (running) await running;
      } catch (err) {
        if (!this.#failed) [this.#failed, this.#failure] = [true, err];
      }
      this.#steps[this.#head++] = undefined;
      if (this.#head >= 1024 && this.#head * 2 >= this.#steps.length) {
        this.#steps = this.#steps.slice(this.#head); // the steps run so far leave the array
        this.#head = 0;
      }
      this.#done.notify();
    }
    this.#steps = [];
    this.#head = 0;
    this.#running = null;
    this.#done.notify();
  }

  #throwIfFailed(): void {
    if (this.#failed) throw this.#failure;
  }
}
