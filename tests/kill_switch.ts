/**
 * A test decorator: kills the process (SIGKILL, no cleanup) right after the N-th write
 * (put, create or delete) completes, so crash-safety tests can stop vger at every write step.
 *
 * Run as a program, this file is the `vger` CLI (cli.ts's runCli) with every backend wrapped
 * in a kill switch set to VGER_TEST_KILL_AFTER_WRITES writes: tests/crash_test.ts runs it in a
 * child process ({@linkcode KILL_SWITCH_CLI}). No production module reads that variable.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import type { Backend, PutBody } from "../backends/backend.ts";
import { BackendDecorator } from "../backends/decorator.ts";
import { runCli } from "../cli.ts";

/** Absolute path of this file, the program to run instead of cli.ts for a kill switch. */
export const KILL_SWITCH_CLI: string = fileURLToPath(import.meta.url);

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

if (import.meta.main) {
  const writes = Number(Deno.env.get("VGER_TEST_KILL_AFTER_WRITES"));
  if (!Number.isSafeInteger(writes) || writes < 1) {
    console.error("tests/kill_switch.ts: set VGER_TEST_KILL_AFTER_WRITES to a count of writes");
    Deno.exit(2);
  }
  await runCli({ wrapBackend: (backend) => new KillSwitchBackend(backend, writes) });
}
