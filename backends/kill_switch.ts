/**
 * A test decorator: kills the process (SIGKILL, no cleanup) right after the N-th write
 * (put, create or delete) completes, so crash-safety tests can stop vger at every write step.
 * cli.ts installs it only when VGER_TEST_KILL_AFTER_WRITES is set.
 *
 * @module
 */

import type { Backend, PutBody } from "./backend.ts";
import { BackendDecorator } from "./decorator.ts";

/** Wraps a backend so that the process dies after `writes` completed writes. */
export class KillSwitchBackend extends BackendDecorator {
  #left: number;

  /** Kills the process after `writes` writes have completed. */
  constructor(inner: Backend, writes: number) {
    super(inner);
    this.#left = writes;
  }

  #count(): void {
    if (--this.#left <= 0) Deno.kill(Deno.pid, "SIGKILL");
  }

  /** Stores, then counts the write. */
  override async put(key: string, body: PutBody): Promise<void> {
    await this.inner.put(key, body);
    this.#count();
  }

  /** Creates, then counts the write. */
  override async create(key: string, body: PutBody): Promise<boolean> {
    const created = await this.inner.create(key, body);
    this.#count();
    return created;
  }

  /** Deletes, then counts the write. */
  override async delete(key: string): Promise<void> {
    await this.inner.delete(key);
    this.#count();
  }
}
