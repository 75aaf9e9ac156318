/**
 * A backend that keeps objects in a Map, for tests and for `--dry-run` style work. It stores and
 * returns copies, so callers may reuse their buffers.
 *
 * @example
 * ```ts
 * import { MemoryBackend } from "./memory.ts";
 *
 * const backend = new MemoryBackend();
 * await backend.put("config", new TextEncoder().encode("hello"));
 * console.log(await backend.size("config")); // 5
 * ```
 *
 * @module
 */

import { BackendError, IntegrityError, NotFoundError } from "../lib/errors.ts";
import {
  type Backend,
  type BackendCapabilities,
  bodyPieces,
  bodySize,
  checkMaxBytes,
  composedBody,
  type ComposePlan,
  type ComposeResult,
  type GetOptions,
  isValidKey,
  type ObjectInfo,
  type ObjectStream,
  objectTooLarge,
  type PutBody,
  type StreamOptions,
  streamRange,
} from "./backend.ts";

/** A {@linkcode Backend} held in memory; every operation completes without I/O. */
export class MemoryBackend implements Backend {
  /** Where the storage is, for messages. */
  readonly location: string;
  /** Requests complete at once; a few in flight exercise the callers' concurrency. */
  readonly capabilities: BackendCapabilities = { connections: 4 };
  #objects = new Map<string, Uint8Array>();
  /** When each object was last written (milliseconds since the epoch). */
  #modified = new Map<string, number>();

  /** Creates an empty backend; `location` only labels it in messages. */
  constructor(location = "memory:") {
    this.location = location;
  }

  /** The whole object, or null when it does not exist; see {@linkcode Backend.get}. */
  get(key: string, options: GetOptions = {}): Promise<Uint8Array | null> {
    return settle(() => {
      checkKey(key);
      const data = this.#objects.get(key);
      if (data === undefined) return null;
      const max = checkMaxBytes(options.maxBytes);
      if (data.length > max) throw objectTooLarge(key, max, data.length);
      return data.slice();
    });
  }

  /** Exactly `length` bytes from `offset`; see {@linkcode Backend.getRange}. */
  getRange(key: string, offset: number, length: number): Promise<Uint8Array> {
    return settle(() => {
      checkKey(key);
      checkRange(key, offset, length);
      const data = this.#objects.get(key);
      if (data === undefined) throw new NotFoundError(`Object "${key}" not found`);
      if (offset + length > data.length) {
        throw new IntegrityError(
          `Object "${key}" is truncated: wanted bytes ${offset}..${offset + length}, ` +
            `size is ${data.length}`,
        );
      }
      return data.slice(offset, offset + length);
    });
  }

  /** The object's size, or null when it does not exist. */
  size(key: string): Promise<number | null> {
    return settle(() => {
      checkKey(key);
      return this.#objects.get(key)?.length ?? null;
    });
  }

  /** Part or all of an object as a stream; see {@linkcode Backend.getStream}. */
  getStream(key: string, options: StreamOptions = {}): Promise<ObjectStream | null> {
    return settle(() => {
      checkKey(key);
      const data = this.#objects.get(key);
      if (data === undefined) return null;
      const { offset, length } = streamRange(key, data.length, options);
      const bytes = data.slice(offset, offset + length);
      const stream = new ReadableStream<Uint8Array>({
        start(controller) {
          if (bytes.length > 0) controller.enqueue(bytes);
          controller.close();
        },
      });
      return { size: data.length, offset, length, stream };
    });
  }

  /** Every object whose key starts with `prefix`. */
  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    // A valid prefix is one that some valid key starts with.
    if (prefix !== "" && !isValidKey(prefix + "x")) {
      throw new BackendError(`Invalid object key prefix "${prefix}"`);
    }
    // Snapshot first so that writes during iteration do not disturb it.
    const found: ObjectInfo[] = [];
    for (const [key, data] of this.#objects) {
      if (key.startsWith(prefix)) {
        found.push({ key, size: data.length, modified: this.#modified.get(key) });
      }
    }
    yield* found;
  }

  /** Stores a copy of the body, replacing any old object. */
  async put(key: string, body: PutBody): Promise<void> {
    checkKey(key);
    this.#objects.set(key, await collect(body));
    this.#modified.set(key, Date.now());
  }

  /** Stores a copy of the body only if the key is absent; returns whether it did. */
  async create(key: string, body: PutBody): Promise<boolean> {
    checkKey(key);
    if (this.#objects.has(key)) return false;
    const bytes = await collect(body);
    // checked again after the await: another create may have landed meanwhile
    if (this.#objects.has(key)) return false;
    this.#objects.set(key, bytes);
    this.#modified.set(key, Date.now());
    return true;
  }

  /** Composes a new object (see {@linkcode Backend.compose}), stored once whole. */
  async compose(plan: ComposePlan): Promise<ComposeResult> {
    const bytes = await collect(composedBody(this, plan, () => {}));
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as BufferSource));
    const sha256 = Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
    const key = plan.name(sha256);
    await this.put(key, bytes);
    return { key, sha256, size: bytes.length, sentBytes: 0 };
  }

  /** Removes an object; removing an absent object is not an error. */
  delete(key: string): Promise<void> {
    return settle(() => {
      checkKey(key);
      this.#objects.delete(key);
      this.#modified.delete(key);
    });
  }

  /** Nothing to release; the objects stay until the backend is dropped. */
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** Runs `fn` now and turns its result or throw into a promise, so errors always reject. */
function settle<T>(fn: () => T): Promise<T> {
  return new Promise((resolve) => resolve(fn()));
}

function checkKey(key: string): void {
  if (!isValidKey(key)) throw new BackendError(`Invalid object key "${key}"`);
}

function checkRange(key: string, offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
    throw new BackendError(`Invalid range of object "${key}": offset ${offset}, length ${length}`);
  }
}

/** A copy of the body's bytes (callers may change their buffers afterwards). */
async function collect(body: PutBody): Promise<Uint8Array> {
  if (body instanceof Uint8Array) return body.slice();
  const out = new Uint8Array(bodySize(body));
  let at = 0;
  for await (const part of bodyPieces(body)) {
    if (at + part.length > out.length) throw new BackendError("Body is longer than its size");
    out.set(part, at);
    at += part.length;
  }
  if (at !== out.length) throw new BackendError("Body is shorter than its size");
  return out;
}
