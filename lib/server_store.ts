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
 * const store = new ServerStore(new MemoryBackend(), { appendOnly: false, maxObjectBytes: 1 << 20 });
 * const body = { size: 2, async *pieces() { yield new Uint8Array([1, 2]); } };
 * console.log(await store.put("laptop", "config", body, { create: true })); // 201
 * ```
 *
 * @module
 */

import type { Backend, ObjectInfo, ObjectStream, StreamBody } from "../backends/backend.ts";
import { errorMessage } from "./errors.ts";
import { findHttpError, HttpError, type ListQuery } from "./server_request.ts";
import { CONFIG_KEY, PACKS_PREFIX } from "./storage_keys.ts";

/** The prefix of the server's own state in the backend: no repository name starts with `.`. */
export const STATE_PREFIX = ".vger-server/";
/** Markers of the repositories that exist: `.vger-server/repos/<name>`. */
const REPOS_PREFIX = `${STATE_PREFIX}repos/`;

/** What the store needs of the server's configuration. */
export interface StoreSettings {
  /** Whether clients may only add (docs/SERVER.md, "Append-only"). */
  readonly appendOnly: boolean;
  /** The largest object a client may store. */
  readonly maxObjectBytes: number;
}

/** Options of {@linkcode ServerStore.put}. */
export interface PutOptions {
  /** `If-None-Match: *`: store only if the key is absent (412 otherwise). */
  create: boolean;
}

/** One page of a listing (docs/SERVER.md, "listing"). */
export interface ListPage {
  /** The objects of the page, in byte order of their keys. */
  objects: { key: string; size: number }[];
  /** The `after` of the next page, or null on the last. */
  next: string | null;
}

/** Figures of one repository (docs/SERVER.md, "repository info"). */
export interface RepoStats {
  /** Bytes of every object. */
  usedBytes: number;
  /** How many objects. */
  objects: number;
  /** How many of them are packs. */
  packs: number;
}

/** The repositories of a server, on one backend. */
export class ServerStore {
  readonly #backend: Backend;
  readonly #settings: StoreSettings;

  /** A store over `backend` (nothing is touched until the first call). */
  constructor(backend: Backend, settings: StoreSettings) {
    this.#backend = backend;
    this.#settings = settings;
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
   * unknown repository is 404, except for the create of its `config`, which creates it.
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
    if (!(await this.exists(repo))) {
      if (key !== CONFIG_KEY || !options.create) {
        throw new HttpError(404, `Unknown repository "${repo}"`);
      }
      // the marker first: a crash after it leaves a marker without config, which is not listed
      await this.#call(repo, key, () => this.#backend.put(REPOS_PREFIX + repo, new Uint8Array()));
    }
    if (options.create) {
      const created = await this.#call(repo, key, () => this.#backend.create(full, body));
      if (!created) throw new HttpError(412, `Object "${key}" of repository "${repo}" exists`);
      return 201;
    }
    const existed = (await this.#call(repo, key, () => this.#backend.size(full))) !== null;
    await this.#call(repo, key, () => this.#backend.put(full, body));
    return existed ? 200 : 201;
  }

  /** Removes object `key` of `repo` (absent is fine). */
  async delete(repo: string, key: string): Promise<void> {
    await this.requireRepo(repo);
    await this.#call(repo, key, () => this.#backend.delete(`${repo}/${key}`));
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

  /** How much `repo` holds. */
  async stats(repo: string): Promise<RepoStats> {
    await this.requireRepo(repo);
    const stats: RepoStats = { usedBytes: 0, objects: 0, packs: 0 };
    await this.#call(repo, "", async () => {
      for await (const info of this.#backend.list(`${repo}/`)) count(stats, info, repo);
    });
    return stats;
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

function count(stats: RepoStats, info: ObjectInfo, repo: string): void {
  stats.usedBytes += info.size;
  stats.objects++;
  if (info.key.startsWith(`${repo}/${PACKS_PREFIX}`)) stats.packs++;
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
