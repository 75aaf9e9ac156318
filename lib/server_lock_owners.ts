/**
 * The locks of read-only tokens (docs/SERVER.md, "Tokens and roles"): `vger list`, `extract` and
 * `check` hold a shared repository lock, so a read-only token may create one, and refresh and
 * release the locks it created, and nothing else: no exclusive lock, no commit lock, no other
 * client's lock (which would let it block backups or unblock a compact). Who created a lock is
 * recorded under `.vger-server/lock-owners/<repo>/<lock id>` (the token's id, a hash, never the
 * token).
 *
 * @module
 */

import type { Backend, StreamBody } from "../backends/backend.ts";
import { decodeLock } from "./lock.ts";
import { HttpError } from "./server_request.ts";
import { roleRefusal } from "./server_roles.ts";
import { LOCKS_PREFIX, parseLockKey } from "./storage_keys.ts";

/** Where the owners of read-only tokens' locks are recorded. */
export const LOCK_OWNERS_PREFIX = ".vger-server/lock-owners/";
/** The largest lock a read-only token may write (a lock is about 200 bytes). */
const MAX_LOCK_BYTES = 4096;

/** Runs a storage call, turning failures into HttpErrors (ServerStore's). */
type Call = <T>(repo: string, key: string, fn: () => Promise<T>) => Promise<T>;

/** The owners of read-only tokens' locks on a backend. */
export class LockOwners {
  readonly #backend: Backend;
  readonly #call: Call;

  /** Owners on `backend`; `call` wraps each storage call. */
  constructor(backend: Backend, call: Call) {
    this.#backend = backend;
    this.#call = call;
  }

  /**
   * The bytes of a lock a read-only token writes to `key` of `repo`: a repository lock
   * (`locks/<64 hex>`), shared, at most 4 KiB; for a refresh (`create` false), one the token
   * created. Anything else is a 403 naming the role needed.
   */
  async checkWrite(
    repo: string,
    key: string,
    body: StreamBody,
    options: { create: boolean; ownerId: string },
  ): Promise<Uint8Array> {
    if (parseLockKey(key) === null) {
      throw roleRefusal(repo, `"${key}" cannot be written`, "append-only", "read-only");
    }
    if (!options.create) await this.#checkOwner(repo, key, options.ownerId, "replaced");
    if (body.size > MAX_LOCK_BYTES) {
      throw new HttpError(
        400,
        `Lock "${key}" of repository "${repo}" is over ${MAX_LOCK_BYTES} bytes`,
      );
    }
    const bytes = new Uint8Array(body.size);
    let at = 0;
    for await (const piece of body.pieces()) {
      if (at < bytes.length) bytes.set(piece.subarray(0, bytes.length - at), at);
      at += piece.length;
    }
    const info = at === bytes.length ? decodeLock(bytes) : null;
    if (info === null) {
      throw new HttpError(400, `Lock "${key}" of repository "${repo}" is not a lock`);
    }
    if (info.exclusive) {
      throw roleRefusal(repo, `an exclusive lock "${key}"`, "append-only", "read-only");
    }
    return bytes;
  }

  /** Refuses the delete of `key` of `repo` by a read-only token unless it created that lock. */
  async checkDelete(repo: string, key: string, ownerId: string): Promise<void> {
    if (parseLockKey(key) === null) {
      throw roleRefusal(repo, `"${key}" cannot be deleted`, "append-only", "read-only");
    }
    await this.#checkOwner(repo, key, ownerId, "deleted");
  }

  /** Records that the token `ownerId` created lock `key` of `repo`. */
  async created(repo: string, key: string, ownerId: string): Promise<void> {
    await this.#call(
      repo,
      key,
      () => this.#backend.put(this.#record(repo, key), new TextEncoder().encode(ownerId)),
    );
  }

  /** Forgets the owner of lock `key` of `repo` (it was deleted). */
  async forget(repo: string, key: string): Promise<void> {
    if (parseLockKey(key) === null) return;
    await this.#call(repo, key, () => this.#backend.delete(this.#record(repo, key)));
  }

  /** Removes the records of `repo`'s locks that are gone (swept, broken); resolves to how many. */
  async sweep(repo: string): Promise<number> {
    const dir = `${LOCK_OWNERS_PREFIX}${repo}/`;
    let removed = 0;
    for await (const info of this.#backend.list(dir)) {
      const lock = `${repo}/${LOCKS_PREFIX}${info.key.slice(dir.length)}`;
      if ((await this.#backend.size(lock)) === null) {
        await this.#backend.delete(info.key);
        removed++;
      }
    }
    return removed;
  }

  async #checkOwner(repo: string, key: string, ownerId: string, what: string): Promise<void> {
    const owner = await this.#call(
      repo,
      key,
      () => this.#backend.get(this.#record(repo, key), { maxBytes: 256 }),
    );
    if (owner === null || new TextDecoder().decode(owner) !== ownerId) {
      throw roleRefusal(
        repo,
        `another client's lock "${key}" cannot be ${what}`,
        "append-only",
        "read-only",
      );
    }
  }

  #record(repo: string, key: string): string {
    return `${LOCK_OWNERS_PREFIX}${repo}/${parseLockKey(key)}`;
  }
}
