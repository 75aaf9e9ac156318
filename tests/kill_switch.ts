/**
 * A test decorator: kills the process (SIGKILL, no cleanup) at a chosen write step, so
 * crash-safety tests can stop vger exactly there: right after the N-th write (put, create or
 * delete) completes, right after the first write of a key with a given prefix completes, or in
 * the middle of a large upload, once the backend has read a given number of bytes of a body.
 *
 * Run as a program, this file is the `vger` CLI (cli.ts's runCli) with every backend wrapped
 * in a kill switch set from the environment ({@linkcode killSwitchFromEnv}): tests/crash_test.ts
 * and tests/s3_cli_test.ts run it in a child process ({@linkcode KILL_SWITCH_CLI}). No
 * production module reads these variables.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import { type Backend, bodyPieces, bodySize, type PutBody } from "../backends/backend.ts";
import { BackendDecorator } from "../backends/decorator.ts";
import { runCli } from "../cli.ts";

/** Absolute path of this file, the program to run instead of cli.ts for a kill switch. */
export const KILL_SWITCH_CLI: string = fileURLToPath(import.meta.url);

/** When a {@linkcode KillSwitchBackend} kills the process; the first condition met wins. */
export interface KillPoint {
  /** After this many completed writes (VGER_TEST_KILL_AFTER_WRITES). */
  writes?: number;
  /** After the first completed write of a key starting with this (VGER_TEST_KILL_AFTER_KEY). */
  afterKey?: string;
  /**
   * When the backend asks for more of a put's body after reading this many bytes of it
   * (VGER_TEST_KILL_IN_BODY_AFTER): an upload killed half way. Only bodies larger than this.
   */
  inBodyAfter?: number;
}

/** Wraps a backend so that the process dies at a {@linkcode KillPoint}. */
export class KillSwitchBackend extends BackendDecorator {
  #left: number;
  readonly #point: KillPoint;

  /** Kills the process after `point.writes` writes, or at its other conditions. */
  constructor(inner: Backend, point: number | KillPoint) {
    super(inner);
    this.#point = typeof point === "number" ? { writes: point } : point;
    this.#left = this.#point.writes ?? Infinity;
  }

  #count(key: string): void {
    const after = this.#point.afterKey;
    if (--this.#left <= 0 || (after !== undefined && key.startsWith(after))) {
      Deno.kill(Deno.pid, "SIGKILL");
    }
  }

  /** A body that kills the process when more of it is asked for past `inBodyAfter` bytes. */
  #body(body: PutBody): PutBody {
    const limit = this.#point.inBodyAfter;
    const size = bodySize(body);
    if (limit === undefined || size <= limit) return body;
    return {
      size,
      async *pieces() {
        let read = 0;
        for await (const piece of bodyPieces(body)) {
          if (read >= limit) Deno.kill(Deno.pid, "SIGKILL");
          read += piece.length;
          yield piece;
        }
      },
    };
  }

  /** Stores, then counts the write. */
  override async put(key: string, body: PutBody): Promise<void> {
    await this.inner.put(key, this.#body(body));
    this.#count(key);
  }

  /** Creates, then counts the write. */
  override async create(key: string, body: PutBody): Promise<boolean> {
    const created = await this.inner.create(key, this.#body(body));
    this.#count(key);
    return created;
  }

  /** Deletes, then counts the write. */
  override async delete(key: string): Promise<void> {
    await this.inner.delete(key);
    this.#count(key);
  }
}

/** The kill point the environment sets, or an error message naming the variables. */
export function killSwitchFromEnv(env: (name: string) => string | undefined): KillPoint | string {
  const point: KillPoint = {};
  const count = (name: string): number | undefined => {
    const text = env(name);
    if (text === undefined) return undefined;
    const n = Number(text);
    return Number.isSafeInteger(n) && n >= 1 ? n : NaN;
  };
  const writes = count("VGER_TEST_KILL_AFTER_WRITES");
  const inBody = count("VGER_TEST_KILL_IN_BODY_AFTER");
  const key = env("VGER_TEST_KILL_AFTER_KEY");
  if (Number.isNaN(writes) || Number.isNaN(inBody) || key === "") {
    return "tests/kill_switch.ts: VGER_TEST_KILL_AFTER_WRITES and VGER_TEST_KILL_IN_BODY_AFTER " +
      "take a count >= 1, VGER_TEST_KILL_AFTER_KEY a key prefix";
  }
  if (writes !== undefined) point.writes = writes;
  if (inBody !== undefined) point.inBodyAfter = inBody;
  if (key !== undefined) point.afterKey = key;
  if (Object.keys(point).length === 0) {
    return "tests/kill_switch.ts: set VGER_TEST_KILL_AFTER_WRITES, VGER_TEST_KILL_AFTER_KEY " +
      "or VGER_TEST_KILL_IN_BODY_AFTER";
  }
  return point;
}

if (import.meta.main) {
  const point = killSwitchFromEnv((name) => Deno.env.get(name));
  if (typeof point === "string") {
    console.error(point);
    Deno.exit(2);
  }
  await runCli({ wrapBackend: (backend) => new KillSwitchBackend(backend, point) });
}
