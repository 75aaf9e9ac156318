/**
 * A test decorator that counts a backend's requests by kind, so that a test can pin how many
 * requests each command makes (tests/request_counts_test.ts).
 *
 * Run as a program, this file is the `vger` CLI (cli.ts's runCli) with every backend it opens
 * counted; the totals are kept, as JSON, in the file VGER_TEST_COUNTS_FILE names (rewritten after
 * each request, so they survive the CLI's `Deno.exit`). Tests run it as {@linkcode COUNTING_CLI}.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import type { Backend, GetOptions, ObjectInfo, PutBody } from "../backends/backend.ts";
import { BackendDecorator } from "../backends/decorator.ts";
import { runCli } from "../cli.ts";

/** Absolute path of this file, the program to run instead of cli.ts to count requests. */
export const COUNTING_CLI: string = fileURLToPath(import.meta.url);

/** The kinds of request counted: every method of a Backend that reaches the storage. */
export type RequestKind = "get" | "getRange" | "size" | "list" | "put" | "create" | "delete";

/** Requests made, by kind. */
export type RequestCounts = Record<RequestKind, number>;

/** No requests yet. */
export function noRequests(): RequestCounts {
  return { get: 0, getRange: 0, size: 0, list: 0, put: 0, create: 0, delete: 0 };
}

/** Counts each request (a listing counts once, however many objects it yields) into `counts`. */
export class CountingBackend extends BackendDecorator {
  /** The counts, shared with whoever passed them in. */
  readonly counts: RequestCounts;
  #onCount: () => void;

  /** Counts into `counts` (shared by several backends if wanted); `onCount` runs after each. */
  constructor(inner: Backend, counts: RequestCounts = noRequests(), onCount = () => {}) {
    super(inner);
    this.counts = counts;
    this.#onCount = onCount;
  }

  #count(kind: RequestKind): void {
    this.counts[kind]++;
    this.#onCount();
  }

  /** Counts, then gets. */
  override get(key: string, options?: GetOptions): Promise<Uint8Array | null> {
    this.#count("get");
    return this.inner.get(key, options);
  }

  /** Counts, then reads the range. */
  override getRange(key: string, offset: number, length: number): Promise<Uint8Array> {
    this.#count("getRange");
    return this.inner.getRange(key, offset, length);
  }

  /** Counts, then asks the size. */
  override size(key: string): Promise<number | null> {
    this.#count("size");
    return this.inner.size(key);
  }

  /** Counts, then lists. */
  override list(prefix: string): AsyncIterable<ObjectInfo> {
    this.#count("list");
    return this.inner.list(prefix);
  }

  /** Counts, then stores. */
  override put(key: string, body: PutBody): Promise<void> {
    this.#count("put");
    return this.inner.put(key, body);
  }

  /** Counts, then creates. */
  override create(key: string, body: PutBody): Promise<boolean> {
    this.#count("create");
    return this.inner.create(key, body);
  }

  /** Counts, then deletes. */
  override delete(key: string): Promise<void> {
    this.#count("delete");
    return this.inner.delete(key);
  }
}

if (import.meta.main) {
  const file = Deno.env.get("VGER_TEST_COUNTS_FILE");
  if (!file) {
    console.error(
      "tests/counting_backend.ts: set VGER_TEST_COUNTS_FILE to the file for the counts",
    );
    Deno.exit(2);
  }
  const counts = noRequests();
  const save = () => Deno.writeTextFileSync(file, JSON.stringify(counts));
  save();
  await runCli({ wrapBackend: (backend) => new CountingBackend(backend, counts, save) });
}
