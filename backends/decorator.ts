/**
 * The base of backend decorators (cross-cutting concerns wrapped around any backend, as restic
 * and kopia do: fault injection in tests now; retry, limits, verify-after-write later): every
 * method forwards to the inner backend, a subclass overrides what it changes.
 *
 * @module
 */

import type { Backend, BackendCapabilities, GetOptions, ObjectInfo, PutBody } from "./backend.ts";

/** Forwards every call to the inner backend. */
export class BackendDecorator implements Backend {
  /** The wrapped backend. */
  protected readonly inner: Backend;

  /** Wraps `inner`. */
  constructor(inner: Backend) {
    this.inner = inner;
  }

  /** Where the inner backend is. */
  get location(): string {
    return this.inner.location;
  }

  /** What the inner backend can do. */
  get capabilities(): BackendCapabilities {
    return this.inner.capabilities;
  }

  /** As the inner backend. */
  get(key: string, options?: GetOptions): Promise<Uint8Array | null> {
    return this.inner.get(key, options);
  }

  /** As the inner backend. */
  getRange(key: string, offset: number, length: number): Promise<Uint8Array> {
    return this.inner.getRange(key, offset, length);
  }

  /** As the inner backend. */
  size(key: string): Promise<number | null> {
    return this.inner.size(key);
  }

  /** As the inner backend. */
  list(prefix: string): AsyncIterable<ObjectInfo> {
    return this.inner.list(prefix);
  }

  /** As the inner backend. */
  close(): Promise<void> {
    return this.inner.close();
  }

  /** As the inner backend. */
  removeLeftovers(): Promise<number> {
    return this.inner.removeLeftovers?.() ?? Promise.resolve(0);
  }

  /** As the inner backend. */
  put(key: string, body: PutBody): Promise<void> {
    return this.inner.put(key, body);
  }

  /** As the inner backend. */
  create(key: string, body: PutBody): Promise<boolean> {
    return this.inner.create(key, body);
  }

  /** As the inner backend. */
  delete(key: string): Promise<void> {
    return this.inner.delete(key);
  }
}
