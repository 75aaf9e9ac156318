/**
 * A test decorator: kills the process (SIGKILL, no cleanup) right after the N-th write
 * (put, create or delete) completes, so crash-safety tests can stop vger at every write step.
 * cli.ts installs it only when VGER_TEST_KILL_AFTER_WRITES is set.
 *
 * @module
 */

import type { Backend, ObjectInfo, PutBody } from "./backend.ts";

/** Wraps a backend so that the process dies after `writes` completed writes. */
export class KillSwitchBackend implements Backend {
  readonly #inner: Backend;
  #left: number;

  /** Kills the process after `writes` writes have completed. */
  constructor(inner: Backend, writes: number) {
    this.#inner = inner;
    this.#left = writes;
  }

  /** Where the inner backend is. */
  get location(): string {
    return this.#inner.location;
  }

  #count(): void {
    if (--this.#left <= 0) Deno.kill(Deno.pid, "SIGKILL");
  }

  /** As the inner backend. */
  get(key: string): Promise<Uint8Array | null> {
    return this.#inner.get(key);
  }

  /** As the inner backend. */
  getRange(key: string, offset: number, length: number): Promise<Uint8Array> {
    return this.#inner.getRange(key, offset, length);
  }

  /** As the inner backend. */
  size(key: string): Promise<number | null> {
    return this.#inner.size(key);
  }

  /** As the inner backend. */
  list(prefix: string): AsyncIterable<ObjectInfo> {
    return this.#inner.list(prefix);
  }

  /** As the inner backend. */
  close(): Promise<void> {
    return this.#inner.close();
  }

  /** As the inner backend (not counted: it runs after the work it cleans up after). */
  removeLeftovers(): Promise<number> {
    return this.#inner.removeLeftovers?.() ?? Promise.resolve(0);
  }

  /** Stores, then counts the write. */
  async put(key: string, body: PutBody): Promise<void> {
    await this.#inner.put(key, body);
    this.#count();
  }

  /** Creates, then counts the write. */
  async create(key: string, body: PutBody): Promise<boolean> {
    const created = await this.#inner.create(key, body);
    this.#count();
    return created;
  }

  /** Deletes, then counts the write. */
  async delete(key: string): Promise<void> {
    await this.#inner.delete(key);
    this.#count();
  }
}
