/**
 * The repositories of vger-server on one backend (the local backend over `data_dir`): repository
 * `r`'s key `k` is the backend's key `r/k`, and the server's own state lives under
 * `.vger-server/` (docs/SERVER.md, "State that survives a restart"), which no repository name can
 * reach. Every storage call of the server goes through here; the HTTP layer (server_app.ts) only
 * parses requests and turns results and {@linkcode HttpError}s into responses.
 *
 * @example
 * ```ts
 * import { MemoryBackend } from "../backends/memory.ts";
 * import { ServerStore } from "./server_store.ts";
 *
 * const store = new ServerStore(new MemoryBackend(), { appendOnly: false, maxObjectBytes: 1 << 20, quotaBytes: 0 });
 * const body = { size: 2, async *pieces() { yield new Uint8Array([1, 2]); } };
 * console.log(await store.put("laptop", "config", body, { create: true })); // 201
 * ```
 *
 * @module
 */

import { createHash } from "node:crypto";
import type { Backend, ComposeResult, ObjectStream, StreamBody } from "../backends/backend.ts";
import { errorMessage } from "./errors.ts";
import { findHttpError, HttpError, type ListQuery } from "./server_request.ts";
import { appendOnlyAllows, keyClass } from "./server_policy.ts";
import { KeptVersions, type RepoVersion, type VersionedKey } from "./server_versions.ts";
import { Quota, type Usage } from "./server_quota.ts";
import { Freshness } from "./server_freshness.ts";
import { sweepLocks } from "./server_locks.ts";
import { checkStructure, type StructureCheckResult } from "./server_check.ts";
import { composePack, type ServerComposePlan } from "./server_compose.ts";
import { LockOwners } from "./server_lock_owners.ts";
import { type HeldObject, holdObject, purgeHeld } from "./server_held.ts";
import { type Access, type Role, roleRefusal } from "./server_roles.ts";
import { CONFIG_KEY, MANIFEST_KEY, parsePackKey } from "./storage_keys.ts";

/** The prefix of the server's own state in the backend: no repository name starts with `.`. */
export const STATE_PREFIX = ".vger-server/";
/** Markers of the repositories that exist: `.vger-server/repos/<name>`. */
export const REPOS_PREFIX = `${STATE_PREFIX}repos/`;

/** What the store needs of the server's configuration. */
export interface StoreSettings {
  /** Whether clients may only add (docs/SERVER.md, "Append-only"). */
  readonly appendOnly: boolean;
  /** The largest object a client may store. */
  readonly maxObjectBytes: number;
  /** The most bytes a repository may hold, 0 for no limit. */
  readonly quotaBytes: number;
  /** Days versions of `manifest` and `index` are kept; above 0 they are kept in every mode. */
  readonly versionKeepDays?: number;
  /** The newest versions of each key kept whatever their age (default 10). */
  readonly versionKeepMin?: number;
  /** Days a deleted object is held (docs/SERVER.md, "Held deletes"); 0 or absent: none. */
  readonly deleteHoldDays?: number;
}

/** Options of {@linkcode ServerStore.put}. */
export interface PutOptions {
  /** `If-None-Match: *`: store only if the key is absent (412 otherwise). */
  create: boolean;
  /** What the request's token may do; absent: role full. */
  access?: Access;
}

/** One page of a listing (docs/SERVER.md, "listing"). */
export interface ListPage {
  /** The objects of the page, in byte order of their keys. */
  objects: { key: string; size: number }[];
  /** The `after` of the next page, or null on the last. */
  next: string | null;
}

/** The repositories of a server, on one backend. */
export class ServerStore {
  readonly #backend: Backend;
  readonly #settings: StoreSettings;
  readonly #versions: KeptVersions;
  readonly #quota: Quota;
  readonly #freshness: Freshness;
  /** The structure checks running, by repository. */
  readonly #checks = new Map<string, Promise<StructureCheckResult>>();
  readonly #lockOwners: LockOwners;

  /** A store over `backend` (nothing is touched until the first call). */
  constructor(backend: Backend, settings: StoreSettings) {
    this.#backend = backend;
    this.#settings = settings;
    const call = <T>(repo: string, key: string, fn: () => Promise<T>) => this.#call(repo, key, fn);
    this.#versions = new KeptVersions(backend, call);
    this.#quota = new Quota(backend, settings.quotaBytes, call);
    this.#freshness = new Freshness(backend);
    this.#lockOwners = new LockOwners(backend, call);
  }

  /** The quota of every repository in bytes, 0 for none. */
  get quotaBytes(): number {
    return this.#quota.bytes;
  }

  /** The backend's location (the data directory), for logs. */
  get location(): string {
    return this.#backend.location;
  }

  /** Whether repository `repo` exists (its `config` is there). */
  async exists(repo: string): Promise<boolean> {
    return (await this.#call(
      repo,
      CONFIG_KEY,
      () => this.#backend.size(`${repo}/${CONFIG_KEY}`),
    )) !==
      null;
  }

  /** Throws HttpError 404 unless repository `repo` exists. */
  async requireRepo(repo: string): Promise<void> {
    if (!(await this.exists(repo))) throw new HttpError(404, `Unknown repository "${repo}"`);
  }

  /** The names of the repositories, sorted. */
  async repositories(): Promise<string[]> {
    const names: string[] = [];
    for await (const info of this.#backend.list(REPOS_PREFIX)) {
      const name = info.key.slice(REPOS_PREFIX.length);
      if (await this.exists(name)) names.push(name);
    }
    return names.sort();
  }

  /** The object `key` of `repo` as a stream (all, or `range`), or 404. */
  async get(
    repo: string,
    key: string,
    range?: (size: number) => { offset: number; length: number } | null,
  ): Promise<ObjectStream> {
    await this.requireRepo(repo);
    const full = `${repo}/${key}`;
    const backend = this.#backend;
    if (backend.getStream === undefined) {
      throw new HttpError(500, `The server's storage cannot stream objects`);
    }
    // The size decides the range; the stream is of the same file (a replacement in between is
    // caught: the range is asked again of what was opened).
    const size = await this.#call(repo, key, () => backend.size(full));
    if (size === null) throw notFound(repo, key);
    const wanted = range?.(size) ?? undefined;
    const got = await this.#call(repo, key, () => backend.getStream!(full, wanted ?? {}));
    if (got === null) throw notFound(repo, key);
    if (wanted && got.size !== size) {
      await got.stream.cancel();
      const again = range?.(got.size);
      return await this.#call(repo, key, async () => {
        const retry = await backend.getStream!(full, again ?? {});
        if (retry === null) throw notFound(repo, key);
        return retry;
      });
    }
    return got;
  }

  /** The size of object `key` of `repo`, or 404. */
  async size(repo: string, key: string): Promise<number> {
    await this.requireRepo(repo);
    const size = await this.#call(repo, key, () => this.#backend.size(`${repo}/${key}`));
    if (size === null) throw notFound(repo, key);
    return size;
  }

  /**
   * Stores `body` under `key` of `repo`; resolves to 201 (a new object) or 200 (replaced). An
   * unknown repository is 404, except for the create of its `config`, which creates it. A pack's
   * bytes must hash to its name (400); append-only mode refuses what docs/SERVER.md's table
   * refuses (403) and keeps each replaced `manifest` and `index`.
   */
  async put(repo: string, key: string, body: StreamBody, options: PutOptions): Promise<number> {
    if (body.size > this.#settings.maxObjectBytes) {
      throw new HttpError(
        413,
        `Object "${key}" of repository "${repo}" is too large: ${body.size} bytes, the server's ` +
          `limit is ${this.#settings.maxObjectBytes}`,
      );
    }
    const full = `${repo}/${key}`;
    const role = options.access?.role ?? "full";
    if (!(await this.exists(repo))) {
      if (key !== CONFIG_KEY || !options.create) {
        throw new HttpError(404, `Unknown repository "${repo}"`);
      }
      if (role === "read-only") {
        throw roleRefusal(repo, "creating a repository", "append-only", role);
      }
      // the marker first: a crash after it leaves a marker without config, which is not listed
      await this.#call(repo, key, () => this.#backend.put(REPOS_PREFIX + repo, new Uint8Array()));
    }
    const cls = keyClass(key);
    if (role === "read-only") {
      // a shared lock of its own, checked and read whole (at most 4 KiB), and nothing else
      const bytes = await this.#lockOwners.checkWrite(repo, key, body, {
        create: options.create,
        ownerId: options.access!.id,
      });
      body = {
        size: bytes.length,
        pieces: async function* () {
          yield bytes;
        },
      };
    }
    const appendOnly = this.#appendOnly(role) && cls !== "locks";
    const keeps = cls === "versioned" && this.#keepsVersions(role);
    // what the upload adds and frees: a replace frees the old bytes, unless they are kept
    let frees = 0;
    const holdsOld = !options.create && !appendOnly && this.#holds(key) && cls !== "pack";
    if (this.#quota.bytes > 0 && !options.create && !appendOnly && !holdsOld && !keeps) {
      frees = (await this.#call(repo, key, () => this.#backend.size(full))) ?? 0;
    }
    const adds = keeps ? 2 * body.size : body.size;
    const reservation = await this.#quota.reserve(repo, key, adds, frees);
    let status: number;
    try {
      if (holdsOld) {
        // a replace destroys what it replaces: hold a copy (a pack is only replaced by itself)
        await this.#call(repo, key, () => holdObject(this.#backend, repo, key, { remove: false }));
      }
      status = await this.#store(repo, key, body, options, role);
    } finally {
      await reservation?.release();
    }
    if (role === "read-only" && status === 201) {
      await this.#lockOwners.created(repo, key, options.access!.id);
    }
    if (cls === "archives" && status === 201) {
      await this.#call(repo, key, () => this.#freshness.archiveCreated(repo));
    } else if (key === MANIFEST_KEY) {
      await this.#call(repo, key, () => this.#freshness.manifestWritten(repo));
    }
    return status;
  }

  /**
   * Removes the temporary files of uploads a killed server left behind; resolves to how many.
   * Only while nothing else writes to the data directory (before the server listens).
   */
  async removeLeftovers(): Promise<number> {
    return await this.#call(".", "", async () => (await this.#backend.removeLeftovers?.()) ?? 0);
  }

  /** When `repo`'s last backup finished (RFC 3339 UTC), or null before the first. */
  async lastBackupAt(repo: string): Promise<string | null> {
    return await this.#call(repo, "", () => this.#freshness.lastBackupAt(repo));
  }

  /** Removes every lock not written for `ttlMs`; resolves to the keys removed (`repo/locks/x`). */
  async sweepLocks(ttlMs: number): Promise<string[]> {
    const repos = await this.repositories();
    const removed = await sweepLocks(this.#backend, repos, { ttlMs });
    for (const repo of repos) await this.#lockOwners.sweep(repo);
    return removed;
  }

  /** The storing part of {@linkcode put}, under its reservation. */
  async #store(
    repo: string,
    key: string,
    body: StreamBody,
    options: PutOptions,
    role: Role,
  ): Promise<number> {
    const full = `${repo}/${key}`;
    const cls = keyClass(key);
    const packId = parsePackKey(key);
    const checked = packId === null ? body : hashChecked(body, packId, repo, key);
    if (options.create) {
      const created = await this.#call(repo, key, () => this.#backend.create(full, checked));
      if (!created) throw new HttpError(412, `Object "${key}" of repository "${repo}" exists`);
      return 201;
    }
    if (cls === "versioned" && this.#keepsVersions(role)) {
      return await this.#versions.replace(repo, key, checked);
    }
    if (this.#appendOnly(role) && cls !== "locks") {
      if (cls === "versioned") return await this.#versions.replace(repo, key, checked);
      // a create, so that a concurrent writer cannot turn it into a replace
      if (await this.#call(repo, key, () => this.#backend.create(full, checked))) return 201;
      if (packId !== null) {
        // the same bytes are fine (a retried upload); other bytes are an overwrite. A create
        // that lost a race has read and checked the body already.
        if ((checked as CheckedBody).verified) return 200;
        try {
          await this.#call(repo, key, () => drain(checked));
        } catch (err) {
          if (err instanceof PackHashError) {
            throw this.#refused(repo, key, "replaced with other bytes", role);
          }
          throw err;
        }
        return 200;
      }
      throw this.#refused(repo, key, "replaced", role);
    }
    const existed = (await this.#call(repo, key, () => this.#backend.size(full))) !== null;
    await this.#call(repo, key, () => this.#backend.put(full, checked));
    if (cls === "versioned") await this.#versions.forget(repo, key);
    return existed ? 200 : 201;
  }

  /**
   * Removes object `key` of `repo` (absent is fine); append-only mode (or role) refuses all but
   * locks, a read-only token all but its own locks. With held deletes, the object is moved aside.
   */
  async delete(repo: string, key: string, options: { access?: Access } = {}): Promise<void> {
    await this.requireRepo(repo);
    const role = options.access?.role ?? "full";
    if (role === "read-only") await this.#lockOwners.checkDelete(repo, key, options.access!.id);
    if (this.#appendOnly(role) && !appendOnlyAllows(keyClass(key), "delete")) {
      throw this.#refused(repo, key, "deleted", role);
    }
    if (this.#holds(key)) {
      await this.#call(repo, key, () => holdObject(this.#backend, repo, key, { remove: true }));
    } else {
      await this.#call(repo, key, () => this.#backend.delete(`${repo}/${key}`));
    }
    if (keyClass(key) === "versioned") await this.#versions.forget(repo, key);
    if (keyClass(key) === "locks") await this.#lockOwners.forget(repo, key);
  }

  /** Purges what has been held longer than `delete_hold_days` (none when it is 0). */
  async purgeHeld(now?: number): Promise<HeldObject[]> {
    const days = this.#settings.deleteHoldDays ?? 0;
    if (days === 0) return [];
    return await this.#call(".", "", () => purgeHeld(this.#backend, days, now));
  }

  /** Whether a delete or replace of `key` is held (held deletes on, not a lock). */
  #holds(key: string): boolean {
    return (this.#settings.deleteHoldDays ?? 0) > 0 && keyClass(key) !== "locks";
  }

  /** Whether a token of `role` may only add (the server's mode, or the role). */
  #appendOnly(role: Role): boolean {
    return this.#settings.appendOnly || role !== "full";
  }

  /** The 403 of a delete or overwrite: the server's append-only mode, else the role needed. */
  #refused(repo: string, key: string, what: string, role: Role): HttpError {
    if (this.#settings.appendOnly) return refused(repo, key, what);
    return roleRefusal(repo, `"${key}" cannot be ${what}`, "full", role);
  }

  /** Throws the 404 or 403 of a compose `access` may not run on `repo` (before its plan is read). */
  async requireComposeAllowed(repo: string, access?: Access): Promise<void> {
    await this.requireRepo(repo);
    if (this.#settings.appendOnly) {
      throw new HttpError(
        403,
        `Repository "${repo}" is append-only: packs cannot be composed (compaction deletes)`,
      );
    }
    const role = access?.role ?? "full";
    if (role !== "full") {
      throw roleRefusal(repo, "packs cannot be composed (compaction deletes)", "full", role);
    }
  }

  /**
   * Composes a new pack of `repo` from ranges of its packs (lib/server_compose.ts checks every
   * record first); append-only mode and roles below full refuse it (403), as compaction deletes
   * what it replaces.
   */
  async compose(
    repo: string,
    plan: ServerComposePlan,
    options: { access?: Access } = {},
  ): Promise<ComposeResult> {
    await this.requireComposeAllowed(repo, options.access);
    return await this.#call(repo, "", () =>
      composePack(this.#backend, repo, plan, {
        maxObjectBytes: this.#settings.maxObjectBytes,
        reserve: (bytes) => this.#quota.reserve(repo, "packs/ (composed)", bytes, 0),
      }));
  }

  /** One page of the listing of `repo`'s objects (docs/SERVER.md). */
  async list(repo: string, query: ListQuery): Promise<ListPage> {
    await this.requireRepo(repo);
    const base = `${repo}/`;
    const found: { key: string; size: number }[] = [];
    await this.#call(repo, query.prefix, async () => {
      for await (const info of this.#backend.list(base + query.prefix)) {
        const key = info.key.slice(base.length);
        if (compareBytes(key, query.after) > 0) found.push({ key, size: info.size });
      }
    });
    found.sort((a, b) => compareBytes(a.key, b.key));
    const objects = found.slice(0, query.limit);
    const next = found.length > query.limit ? objects[objects.length - 1].key : null;
    return { objects, next };
  }

  /**
   * Whether replaced manifests and indexes are kept: in append-only mode (or for an append-only
   * token), and in every mode with a retention (or held deletes).
   */
  #keepsVersions(role: Role): boolean {
    return this.#appendOnly(role) || this.#versionKeepDays > 0;
  }

  /** `version_keep_days`, else `delete_hold_days` (held deletes keep versions as long), else 0. */
  get #versionKeepDays(): number {
    return (this.#settings.versionKeepDays || this.#settings.deleteHoldDays) ?? 0;
  }

  /** The versions of `repo` (docs/SERVER.md, "Versions"), newest first. */
  async versions(repo: string): Promise<RepoVersion[]> {
    await this.requireRepo(repo);
    return await this.#versions.versions(repo);
  }

  /** The kept `key` of version `id` of `repo` as a stream, or 404. */
  async version(repo: string, id: string, key: VersionedKey): Promise<ObjectStream> {
    await this.requireRepo(repo);
    return await this.#versions.open(repo, id, key);
  }

  /**
   * Applies the version retention (`version_keep_days`, else `delete_hold_days`, and
   * `version_keep_min`) to every repository; resolves to the keys removed. Nothing is removed
   * without either.
   */
  async sweepVersions(now?: () => number): Promise<string[]> {
    const keepDays = this.#versionKeepDays;
    if (keepDays <= 0) return [];
    const removed: string[] = [];
    for (const repo of await this.repositories()) {
      removed.push(
        ...await this.#versions.sweep(repo, {
          keepDays,
          keepMin: this.#settings.versionKeepMin ?? 10,
          now,
        }),
      );
    }
    return removed;
  }

  /**
   * The key-less structure check of `repo` (lib/server_check.ts); 404 for an unknown one. It
   * reads every pack: requests for a repository whose check is running share its result.
   */
  async checkStructure(repo: string, lockTtlMs: number): Promise<StructureCheckResult> {
    await this.requireRepo(repo);
    let running = this.#checks.get(repo);
    if (running === undefined) {
      running = this.#call(repo, "", () => checkStructure(this.#backend, repo, { lockTtlMs }))
        .finally(() => this.#checks.delete(repo));
      this.#checks.set(repo, running);
    }
    return await running;
  }

  /** How much `repo` holds: objects, packs, and bytes with its kept versions. */
  async stats(repo: string): Promise<Usage> {
    await this.requireRepo(repo);
    return await this.#quota.usage(repo);
  }

  /**
   * Runs a storage call; an HttpError it carries (from a request body) comes out as it is,
   * any other failure as a 500 naming the repository and key, without the server's paths.
   */
  async #call<T>(repo: string, key: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      const http = findHttpError(err);
      if (http) throw http;
      const why = errorMessage(err).replaceAll(`${this.#backend.location}/`, "");
      const what = key === "" ? `repository "${repo}"` : `"${key}" of repository "${repo}"`;
      throw new HttpError(500, `Storage failed on ${what}: ${why}`, { cause: err });
    }
  }
}

function refused(repo: string, key: string, what: string): HttpError {
  return new HttpError(
    403,
    `Repository "${repo}" is append-only: "${key}" cannot be ${what}`,
  );
}

/** A pack whose bytes do not hash to its name. */
class PackHashError extends HttpError {}

/** A body whose hash is checked as it is read; `verified` once it was read whole and matched. */
interface CheckedBody extends StreamBody {
  verified: boolean;
}

/** `body` with its SHA-256 checked against `hexId` as it is read (HttpError 400 at the end). */
function hashChecked(body: StreamBody, hexId: string, repo: string, key: string): CheckedBody {
  return {
    size: body.size,
    verified: false,
    async *pieces() {
      const hash = createHash("sha256");
      for await (const piece of body.pieces()) {
        hash.update(piece);
        yield piece;
      }
      const got = hash.digest("hex");
      if (got !== hexId) {
        throw new PackHashError(
          400,
          `Pack "${key}" of repository "${repo}" does not hash to its name (SHA-256 ${got})`,
        );
      }
      this.verified = true;
    },
  };
}

async function drain(body: StreamBody): Promise<void> {
  for await (const _ of body.pieces()) {
    // read through: the check runs at the end
  }
}

function notFound(repo: string, key: string): HttpError {
  return new HttpError(404, `No object "${key}" in repository "${repo}"`);
}

/** Byte order of UTF-8 strings (code unit order differs past U+FFFF). */
export function compareBytes(a: string, b: string): number {
  const x = new TextEncoder().encode(a);
  const y = new TextEncoder().encode(b);
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) if (x[i] !== y[i]) return x[i] - y[i];
  return x.length - y.length;
}
