/**
 * The storage interface every backend implements. It is key/value shaped and knows nothing of
 * repositories: keys are `/`-separated strings such as `config`, `keys/repokey`, `index`,
 * `archives/<id>`, `packs/ab/<id>` and `locks/<id>`.
 *
 * @module
 */

import { BackendError, IntegrityError } from "../lib/errors.ts";

/**
 * A body too large to hold in memory (a pack staged in a temp file), read in pieces.
 * `pieces()` may be called more than once (a retried put reads it again).
 */
export interface StreamBody {
  /** Total length in bytes. */
  readonly size: number;
  /** The bytes, in order. */
  pieces(): AsyncIterable<Uint8Array>;
}

/** The bytes of an object to store: one buffer, parts written one after another, or a stream. */
export type PutBody = Uint8Array | readonly Uint8Array[] | StreamBody;

/**
 * An object written piece by piece where it will be stored, whose key is known only once it is
 * complete (a pack is named by the hash of its bytes): see {@linkcode Backend.stage}.
 */
export interface StagedObject {
  /**
   * Appends `bytes` (synchronously: a local disk's page cache takes them in microseconds to
   * milliseconds, and the caller may reuse them as soon as it returns).
   */
  write(bytes: Uint8Array): void;
  /**
   * Stores what was written under `key`, atomically and durably, as `put` would, replacing any
   * old object; call once, after the last write.
   */
  finish(key: string): Promise<void>;
  /** Drops what was written: nothing is stored. Harmless after `finish` failed. */
  abort(): void;
}

/** Whether a body is a {@linkcode StreamBody}. */
export function isStreamBody(body: PutBody): body is StreamBody {
  return !(body instanceof Uint8Array) && !Array.isArray(body);
}

/** The pieces of any body, in order. */
export async function* bodyPieces(body: PutBody): AsyncGenerator<Uint8Array> {
  if (body instanceof Uint8Array) yield body;
  else if (isStreamBody(body)) yield* body.pieces();
  else yield* body;
}

/** Options of {@linkcode ReadonlyBackend.get}. */
export interface GetOptions {
  /**
   * The most bytes the caller accepts. A larger object is refused with the IntegrityError of
   * {@linkcode objectTooLarge} after reading at most `maxBytes + 1` of its bytes (a size check
   * first, or a bounded read); nothing of its size is allocated. Without it, any size.
   */
  maxBytes?: number;
}

/**
 * The error of an object larger than its reader accepts: names the object, its size (when only
 * a bounded read tells, "more than" the limit) and the limit.
 */
export function objectTooLarge(key: string, maxBytes: number, size?: number): IntegrityError {
  const got = size === undefined ? `more than ${maxBytes}` : `${size}`;
  return new IntegrityError(`Object "${key}" is too large: ${got} bytes, the limit is ${maxBytes}`);
}

/** The limit `maxBytes` sets (Infinity when absent); throws BackendError unless a count. */
export function checkMaxBytes(maxBytes: number | undefined): number {
  if (maxBytes === undefined) return Infinity;
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) {
    throw new BackendError(`Invalid size limit ${maxBytes}`);
  }
  return maxBytes;
}

/** One object in a listing. */
export interface ObjectInfo {
  /** The object's full key. */
  key: string;
  /** Its size in bytes. */
  size: number;
  /**
   * When it was last written (put, create), in milliseconds since the epoch, by the storage's
   * own clock; absent where a backend's listing does not tell.
   */
  modified?: number;
}

/** Options of {@linkcode ReadonlyBackend.getStream}: the part of the object to read. */
export interface StreamOptions {
  /** The first byte; 0 when absent. */
  offset?: number;
  /** How many bytes at most (clipped at the end of the object); to the end when absent. */
  length?: number;
}

/** Part of an object as a stream, with the object's size (see {@linkcode ReadonlyBackend.getStream}). */
export interface ObjectStream {
  /** The whole object's size in bytes. */
  readonly size: number;
  /** The first byte the stream yields. */
  readonly offset: number;
  /** How many bytes the stream yields: the asked length clipped at the end (0 from past it). */
  readonly length: number;
  /** The bytes; cancel it to release the object early. */
  readonly stream: ReadableStream<Uint8Array>;
}

/**
 * What a backend declares about itself. Optional operations (such as
 * {@linkcode Backend.removeLeftovers}) are optional methods: a backend without one does not
 * define it, and a decorator defines it exactly when the backend it wraps does.
 */
export interface BackendCapabilities {
  /**
   * How many requests are worth running at once: 1-2 for a local disk, 16 or more for object
   * storage. Engines take their concurrency from it, never from a constant of their own.
   */
  readonly connections: number;
  /**
   * Present when `create` relies on a server honouring a condition (`If-None-Match: *` on S3):
   * the server and bucket the verdict of {@linkcode Backend.probeCreate} holds for (never a
   * secret). Write commands probe once per scope and remember the verdict (lib/known_repos.ts).
   */
  readonly createProbeScope?: string;
  /**
   * True when the storage accepts writes to a new repository only once its `config` exists
   * (vger-server creates a repository with the `create` of its config): `init` then creates
   * `config` first, as its claim on the location, and writes the rest after it.
   */
  readonly configFirst?: boolean;
  /**
   * True when {@linkcode Backend.compose} checks every range as a pack record before composing
   * (vger-server: length prefix, CRC-32 and type byte, lib/pack.ts) and refuses the bad ones with
   * a {@linkcode ComposeRefusedError}. Compaction composes packs in storage only then: on a
   * storage that does not check, reading the records through the client (authenticated and
   * re-hashed) is as fast and stronger.
   */
  readonly composeChecksRecords?: boolean;
}

/** One piece of a composed object: a range of an existing object (see {@linkcode Backend.compose}). */
export interface ComposeRange {
  /** The existing object's key. */
  readonly key: string;
  /** The range's first byte. */
  readonly offset: number;
  /** Its length; the object must hold all of it. */
  readonly length: number;
  /**
   * The type byte of the pack record the range holds (lib/crypto.ts's `ObjectType`), for a
   * storage that checks records (`composeChecksRecords`); other storage ignores it.
   */
  readonly type?: number;
}

/** What {@linkcode Backend.compose} writes: `prefix`, then each range in order, then `suffix`. */
export interface ComposePlan {
  /** Bytes before the first range. */
  readonly prefix: Uint8Array;
  /** The ranges, in order. */
  readonly ranges: readonly ComposeRange[];
  /** Bytes after the last range. */
  readonly suffix: Uint8Array;
  /** The key of the new object, from the SHA-256 (lower-case hex) of all its bytes. */
  readonly name: (sha256: string) => string;
}

/** What {@linkcode Backend.compose} wrote. */
export interface ComposeResult {
  /** The new object's key: `plan.name(sha256)`. */
  key: string;
  /** The SHA-256 of its bytes, lower-case hex. */
  sha256: string;
  /** Its size in bytes. */
  size: number;
  /** Bytes sent over the network to have it composed (the request), 0 for a local storage. */
  sentBytes: number;
}

/** The most ranges one {@linkcode Backend.compose} takes (vger-server's limit too). */
export const MAX_COMPOSE_RANGES = 100_000;

/** Why a storage that checks records refused some ranges of a compose (nothing was written). */
export interface RefusedRange {
  /** The range's position in the plan. */
  range: number;
  /** Why, in words (untrusted text from a server: cut and escaped). */
  reason: string;
}

/**
 * A compose refused because some of its ranges do not hold intact pack records
 * (`composeChecksRecords`); nothing was written. `refused` names at least one of them.
 */
export class ComposeRefusedError extends IntegrityError {
  /** The ranges refused (at least one; a server may name only the first few). */
  readonly refused: readonly RefusedRange[];
  /** Creates the error of a compose whose `refused` ranges failed the checks. */
  constructor(message: string, refused: readonly RefusedRange[], options?: ErrorOptions) {
    super(message, options);
    this.refused = refused;
  }
}

/** Total size of what `plan` composes; throws BackendError for a malformed plan. */
export function composedSize(plan: ComposePlan): number {
  if (plan.ranges.length > MAX_COMPOSE_RANGES) {
    throw new BackendError(
      `Cannot compose ${plan.ranges.length} ranges: the limit is ${MAX_COMPOSE_RANGES}`,
    );
  }
  let size = plan.prefix.length + plan.suffix.length;
  for (const r of plan.ranges) {
    if (
      !isValidKey(r.key) || !Number.isSafeInteger(r.offset) || r.offset < 0 ||
      !Number.isSafeInteger(r.length) || r.length < 0
    ) {
      throw new BackendError(
        `Invalid range to compose: "${r.key}" offset ${r.offset}, length ${r.length}`,
      );
    }
    size += r.length;
  }
  return size;
}

/** Largest single read of a range while composing. */
const COMPOSE_READ_BYTES = 4 << 20;

/**
 * The bytes of `plan` in order, each range read from `source` in pieces of at most 4 MiB
 * (a missing object throws NotFoundError, a short one IntegrityError, as `getRange` does).
 */
export async function* composedPieces(
  source: Pick<ReadonlyBackend, "getRange">,
  plan: ComposePlan,
): AsyncGenerator<Uint8Array> {
  if (plan.prefix.length > 0) yield plan.prefix;
  for (const r of plan.ranges) {
    for (let at = 0; at < r.length; at += COMPOSE_READ_BYTES) {
      yield await source.getRange(
        r.key,
        r.offset + at,
        Math.min(COMPOSE_READ_BYTES, r.length - at),
      );
    }
  }
  if (plan.suffix.length > 0) yield plan.suffix;
}

/** A body of composed bytes that remembers why reading a source failed (see {@linkcode composedBody}). */
export interface ComposedBody extends StreamBody {
  /** The error of the source read that failed (NotFoundError, IntegrityError...), if one did. */
  sourceError?: unknown;
}

/**
 * The bytes of `plan` (read from `source` by {@linkcode composedPieces}) as a body whose every
 * piece also goes to `update` (a hash), for a backend's `compose`.
 */
export function composedBody(
  source: Pick<ReadonlyBackend, "getRange">,
  plan: ComposePlan,
  update: (piece: Uint8Array) => void,
): ComposedBody {
  const body: ComposedBody = {
    size: composedSize(plan),
    async *pieces() {
      try {
        for await (const piece of composedPieces(source, plan)) {
          update(piece);
          yield piece;
        }
      } catch (err) {
        throw (body.sourceError = err);
      }
    },
  };
  return body;
}

/**
 * What a token may do on a vger-server repository, weakest first: read-only (list, extract,
 * check), append-only (and back up), full (and delete, prune, compact, repair, key changes).
 */
export type StorageRole = "read-only" | "append-only" | "full";

/**
 * What the storage allows this client, beyond what it can do: vger-server's policy for the
 * client's token and repository.
 */
export interface StoragePolicy {
  /**
   * Append-only: deletes and overwrites are refused (HTTP 403), but for `manifest`, `index` and
   * `locks/*`, which may be replaced, and locks, which may be deleted. True for the server's
   * mode and for a role below full.
   */
  readonly appendOnly: boolean;
  /** The token's role on the repository; absent: full (a server that knows no roles). */
  readonly role?: StorageRole;
}

/** One kept version of a repository on vger-server: a manifest and the index it went with. */
export interface StoredVersion {
  /** The version's id (the server's name of the kept manifest). */
  readonly id: string;
  /** When the server kept it, RFC 3339 UTC. */
  readonly time: string;
  /** The kept manifest's size in bytes. */
  readonly manifestBytes: number;
  /** The kept index's size in bytes, or null when no index is kept with it. */
  readonly indexBytes: number | null;
}

/** One finding of a storage's own structure check (vger-server's key-less check). */
export interface StructureProblem {
  /** What it is about (lib/check_report.ts's kinds). */
  readonly kind: string;
  /** Errors make a check fail; warnings are leftovers. */
  readonly severity: "error" | "warning";
  /** One line naming the object and the reason. */
  readonly message: string;
}

/** What a storage's own structure check found and looked at. */
export interface StructureReport {
  /** Every finding, errors and warnings. */
  readonly problems: readonly StructureProblem[];
  /** Packs looked at. */
  readonly packs: number;
  /** Bytes of packs read. */
  readonly bytesRead: number;
}

/** The read side of a backend: all that list, extract and check need. */
export interface ReadonlyBackend {
  /** Where the storage is, for messages (a path or URL, never a secret). */
  readonly location: string;
  /** What this backend can do; decorators pass on exactly what the wrapped backend declares. */
  readonly capabilities: BackendCapabilities;
  /**
   * The whole object, or null when it does not exist. With `maxBytes`, an object larger than
   * that throws the IntegrityError of {@linkcode objectTooLarge} without being read.
   */
  get(key: string, options?: GetOptions): Promise<Uint8Array | null>;
  /**
   * Exactly `length` bytes from `offset`. Throws NotFoundError when the object is absent and
   * IntegrityError when it is shorter than `offset + length`.
   */
  getRange(key: string, offset: number, length: number): Promise<Uint8Array>;
  /** The object's size, or null when it does not exist. */
  size(key: string): Promise<number | null>;
  /**
   * Optional: part or all of an object as a stream, never held whole in memory (a server sending
   * a large pack), or null when it does not exist. The bytes are those of one version of the
   * object, also when it is replaced meanwhile. An `offset` past the end yields nothing.
   */
  getStream?(key: string, options?: StreamOptions): Promise<ObjectStream | null>;
  /** Every object whose key starts with `prefix`, in no particular order. */
  list(prefix: string): AsyncIterable<ObjectInfo>;
  /**
   * Optional: the bytes still free where the objects are stored (a server's health report), or
   * null where it cannot be told (a missing permission).
   */
  freeBytes?(): Promise<number | null>;
  /** Releases handles and connections. */
  close(): Promise<void>;
}

/** A backend that can also write. */
export interface Backend extends ReadonlyBackend {
  /**
   * Stores an object, replacing any old one atomically: a reader sees the old or the new bytes,
   * never a mix. The object is durable when the promise resolves.
   */
  put(key: string, body: PutBody): Promise<void>;
  /**
   * Stores an object only if the key is absent, atomically; returns false (and writes nothing)
   * when it already exists. Used for locks and write-once objects.
   */
  create(key: string, body: PutBody): Promise<boolean>;
  /** Removes an object; removing an absent object is not an error. */
  delete(key: string): Promise<void>;
  /**
   * Optional: starts an object written in pieces where it will be stored (a temporary file beside
   * the objects), so that a pack never needs to be held in memory whole. Absent where a body must
   * be sent at once (object storage, a server): writers then keep packs in memory and `put` them.
   */
  stage?(): StagedObject;
  /**
   * Optional: removes what interrupted writes left behind (temporary files), returning how
   * many. Only call it while no other process writes data (an exclusive lock). Absent on a
   * backend whose writes leave nothing behind.
   */
  removeLeftovers?(): Promise<number>;
  /**
   * Optional, present exactly when `capabilities.createProbeScope` is: checks that the server
   * honours `create`'s condition by creating a fresh key twice (the second must be refused) and
   * deleting it; resolves to whether it did. Absent on a backend whose `create` is atomic by
   * construction (a local disk, memory).
   */
  probeCreate?(): Promise<boolean>;
  /**
   * Optional: the storage's policy for this client, asked of the server the first time (then
   * as the server's answers tell it). Absent on a backend without one: everything is allowed.
   */
  policy?(): Promise<StoragePolicy>;
  /**
   * Optional: the versions of `manifest` and `index` the storage keeps (vger-server), newest
   * first. Absent on a backend that keeps none (local, S3).
   */
  listVersions?(): Promise<StoredVersion[]>;
  /**
   * Optional, present with {@linkcode listVersions}: the kept `manifest` or `index` of version
   * `id`, or null when there is none; `maxBytes` caps it as {@linkcode ReadonlyBackend.get}'s.
   */
  getVersion?(
    id: string,
    key: "manifest" | "index",
    options?: GetOptions,
  ): Promise<Uint8Array | null>;
  /**
   * Optional: the storage checks the repository's structure itself, without the key
   * (vger-server's key-less check: required objects, pack framing and hashes, names, locks).
   */
  checkStructure?(): Promise<StructureReport>;
  /**
   * Optional: stores a new object made of `plan.prefix`, the `plan.ranges` of existing objects
   * and `plan.suffix`, under `plan.name(sha256)` of its bytes, all or nothing (a temporary object
   * renamed into place, as put does); resolves to its key, SHA-256 and size. Idempotent: the
   * same plan over the same objects writes the same bytes under the same key. A missing object is
   * NotFoundError, a range past an object's end IntegrityError; a storage that checks records
   * (`composeChecksRecords`) refuses bad ones with {@linkcode ComposeRefusedError}. At most
   * {@linkcode MAX_COMPOSE_RANGES} ranges.
   */
  compose?(plan: ComposePlan): Promise<ComposeResult>;
}

/** The total length of a body. */
export function bodySize(body: PutBody): number {
  if (body instanceof Uint8Array) return body.length;
  if (isStreamBody(body)) return body.size;
  let n = 0;
  for (const part of body) n += part.length;
  return n;
}

/**
 * Whether `backend.create` refuses an existing key: creates `locks/probe-<random>`, creates it
 * again with other bytes (other bytes, so that a retried create cannot take the second for its
 * own) and deletes it; resolves to whether the second create was refused. A probe key left by
 * a killed process is a malformed lock, which lock takers judge stale and break-lock removes.
 */
export async function probeConditionalCreate(
  backend: Pick<Backend, "location" | "create" | "delete">,
): Promise<boolean> {
  const random = crypto.getRandomValues(new Uint8Array(12));
  const key = `locks/probe-${Array.from(random, (b) => b.toString(16).padStart(2, "0")).join("")}`;
  const text = new TextEncoder();
  if (!(await backend.create(key, text.encode("vger create probe 1\n")))) {
    throw new BackendError(`Cannot probe "${backend.location}": the fresh key "${key}" exists`);
  }
  try {
    return !(await backend.create(key, text.encode("vger create probe 2\n")));
  } finally {
    await backend.delete(key);
  }
}

/** The offset and length {@linkcode StreamOptions} ask of an object of `size` bytes. */
export function streamRange(
  key: string,
  size: number,
  options: StreamOptions,
): { offset: number; length: number } {
  const { offset = 0, length } = options;
  if (
    !Number.isSafeInteger(offset) || offset < 0 ||
    (length !== undefined && (!Number.isSafeInteger(length) || length < 0))
  ) {
    throw new BackendError(`Invalid range of object "${key}": offset ${offset}, length ${length}`);
  }
  return { offset, length: Math.max(0, Math.min(length ?? Infinity, size - offset)) };
}

/** Checks that a key is well formed: relative, `/`-separated, no empty, `.` or `..` segment. */
export function isValidKey(key: string): boolean {
  if (key.length === 0 || key.length > 1024) return false;
  return key.split("/").every((s) => s !== "" && s !== "." && s !== ".." && !s.includes("\0"));
}

/** The error of a range that ends past the end of object `key` of `size` bytes. */
export function truncated(
  key: string,
  offset: number,
  length: number,
  size: number,
): IntegrityError {
  return new IntegrityError(
    `Object "${key}" is truncated: wanted bytes ${offset}..${offset + length}, size is ${size}`,
  );
}

/**
 * The part of a network backend's `getRange` that needs no read of the range: the arguments are
 * checked, and a zero-length range, which an HTTP Range header cannot express, is answered from
 * the object's `size` (NotFoundError from `notFound` when it is absent). Resolves to that answer,
 * or to null when the bytes must be fetched.
 */
export async function rangeWithoutRead(
  key: string,
  offset: number,
  length: number,
  size: () => Promise<number | null>,
  notFound: () => Error,
): Promise<Uint8Array | null> {
  if (
    !Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0
  ) {
    throw new BackendError(`Invalid range of object "${key}": offset ${offset}, length ${length}`);
  }
  if (length > 0) return null;
  const found = await size();
  if (found === null) throw notFound();
  if (offset > found) throw truncated(key, offset, length, found);
  return new Uint8Array(0);
}
