/**
 * The bases of backend decorators (cross-cutting concerns wrapped around any backend, as restic
 * and kopia do: fault injection and request counting in tests now; retry, limits,
 * verify-after-write later): every method forwards to the inner backend, a subclass overrides
 * what it changes. A decorator has exactly the optional operations of the backend it wraps, no
 * more: {@linkcode ReadonlyBackendDecorator} wraps a backend that only reads,
 * {@linkcode BackendDecorator} one that also writes.
 *
 * @module
 */

import type {
  Backend,
  BackendCapabilities,
  ComposePlan,
  ComposeResult,
  GetOptions,
  ObjectInfo,
  ObjectStream,
  PutBody,
  ReadonlyBackend,
  StagedObject,
  StoragePolicy,
  StoredVersion,
  StreamOptions,
  StructureReport,
} from "./backend.ts";

/** Forwards every read to the inner backend. */
export class ReadonlyBackendDecorator<B extends ReadonlyBackend = ReadonlyBackend>
  implements ReadonlyBackend {
  /** The wrapped backend. */
  protected readonly inner: B;

  /** As the inner backend; absent when the inner backend has no such operation. */
  declare readonly getStream?: (
    key: string,
    options?: StreamOptions,
  ) => Promise<ObjectStream | null>;

  /** As the inner backend; absent when the inner backend has no such operation. */
  declare readonly freeBytes?: () => Promise<number | null>;

  /** Wraps `inner`, taking on its optional read operations. */
  constructor(inner: B) {
    this.inner = inner;
    if (inner.freeBytes) {
      Object.defineProperty(this, "freeBytes", { value: () => this.inner.freeBytes!() });
    }
    if (inner.getStream) {
      Object.defineProperty(this, "getStream", {
        value: (key: string, options?: StreamOptions) => this.inner.getStream!(key, options),
      });
    }
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
}

/**
 * Forwards every call to the inner backend. Optional operations are present exactly when the
 * inner backend has them (`"removeLeftovers" in decorator` tells the truth).
 */
export class BackendDecorator extends ReadonlyBackendDecorator<Backend> implements Backend {
  /** As the inner backend; absent when the inner backend has no such operation. */
  declare readonly removeLeftovers?: () => Promise<number>;
  /** As the inner backend; absent when the inner backend has no such operation. */
  declare readonly probeCreate?: () => Promise<boolean>;
  /** As the inner backend; absent when the inner backend has no such operation. */
  declare readonly policy?: () => Promise<StoragePolicy>;
  /** As the inner backend; absent when the inner backend has no such operation. */
  declare readonly listVersions?: () => Promise<StoredVersion[]>;
  /** As the inner backend; absent when the inner backend has no such operation. */
  declare readonly getVersion?: (
    id: string,
    key: "manifest" | "index",
    options?: GetOptions,
  ) => Promise<Uint8Array | null>;
  /** As the inner backend; absent when the inner backend has no such operation. */
  declare readonly checkStructure?: () => Promise<StructureReport>;
  /** As the inner backend; absent when the inner backend has no such operation. */
  declare readonly stage?: () => StagedObject;
  declare readonly compose?: (plan: ComposePlan) => Promise<ComposeResult>;

  /** Wraps `inner`, taking on its optional operations. */
  constructor(inner: Backend) {
    super(inner);
    if (inner.removeLeftovers) {
      Object.defineProperty(this, "removeLeftovers", {
        value: () => this.inner.removeLeftovers!(),
      });
    }
    if (inner.probeCreate) {
      // configurable: a decorator that changes how creates are sent may probe through itself
      Object.defineProperty(this, "probeCreate", {
        value: () => this.inner.probeCreate!(),
        configurable: true,
      });
    }
    if (inner.policy) {
      // configurable: a decorator that sends requests its own way may ask through itself
      Object.defineProperty(this, "policy", {
        value: () => this.inner.policy!(),
        configurable: true,
      });
    }
    // the server's versions and structure check (configurable: the retry decorator retries them)
    if (inner.listVersions) {
      Object.defineProperty(this, "listVersions", {
        value: () => this.inner.listVersions!(),
        configurable: true,
      });
    }
    if (inner.getVersion) {
      Object.defineProperty(this, "getVersion", {
        value: (id: string, key: "manifest" | "index", options?: GetOptions) =>
          this.inner.getVersion!(id, key, options),
        configurable: true,
      });
    }
    if (inner.checkStructure) {
      Object.defineProperty(this, "checkStructure", {
        value: () => this.inner.checkStructure!(),
        configurable: true,
      });
    }
    if (inner.compose) {
      // configurable: a decorator that sends requests its own way may compose through itself
      Object.defineProperty(this, "compose", {
        value: (plan: ComposePlan) => this.inner.compose!(plan),
        configurable: true,
      });
    }
    // a decorator that changes how objects are put (counts, retries, fails them) does not stage:
    // what it writes goes through its put
    if (inner.stage && this.put === BackendDecorator.prototype.put) {
      Object.defineProperty(this, "stage", { value: () => this.inner.stage!() });
    }
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
