/**
 * The kept versions of `manifest` and `index` (docs/SERVER.md, "Versions"): the server cannot
 * read them, so it cannot judge a replacement; it keeps every version instead, under
 * `.vger-server/versions/<repo>/<key>/<id>`, where no client reaches: in append-only mode always,
 * in every mode when `version_keep_days` is set. Clients list them (the repository's versions are
 * its manifest versions, each with the index that was current when it was written) and read them
 * back to roll back; {@linkcode KeptVersions.sweep} applies the retention.
 *
 * A replace streams the new bytes into a new version first, keeps the current object as a
 * version too if it is not one yet (the first replace after `init`), and then copies the new
 * version over the key. So every version a client ever wrote through a replace is kept, also
 * when two replaces race. A manifest version notes which index version was current
 * (`.vger-server/versions/<repo>/pairs/<manifest id>`): the commit protocol writes the index
 * first, so that is the index the manifest was committed with.
 *
 * @module
 */

import type { Backend, ObjectStream, StreamBody } from "../backends/backend.ts";
import { HttpError } from "./server_request.ts";
import { INDEX_KEY, MANIFEST_KEY } from "./storage_keys.ts";

/** Where the server keeps versions: `.vger-server/versions/`. */
export const VERSIONS_PREFIX = ".vger-server/versions/";
/** Which kept version each key holds: `.vger-server/current/<repo>/<key>` names it. */
const CURRENT_PREFIX = ".vger-server/current/";
/** The name of a version: 15 digits of milliseconds since the epoch, `-`, 8 hex digits. */
const VERSION_ID = /^\d{15}-[0-9a-f]{8}$/;
const DAY_MS = 86_400_000;

/** Runs a storage call, turning failures into HttpErrors (ServerStore's). */
type Call = <T>(repo: string, key: string, fn: () => Promise<T>) => Promise<T>;

/** The keys whose versions are kept. */
export type VersionedKey = typeof MANIFEST_KEY | typeof INDEX_KEY;

/** One kept version. */
export interface KeptVersion {
  /** Its name: a sortable time stamp and a random suffix. */
  id: string;
  /** When it was kept (from its name). */
  time: Date;
  /** Its size in bytes. */
  size: number;
}

/** One version of a repository: a kept manifest and the index it was committed with. */
export interface RepoVersion {
  /** The manifest version's id. */
  id: string;
  /** When it was kept. */
  time: Date;
  /** The manifest's size in bytes. */
  manifestBytes: number;
  /** The kept index that goes with it, or null when none is kept. */
  indexId: string | null;
  /** That index's size in bytes, or null. */
  indexBytes: number | null;
}

/** The retention of {@linkcode KeptVersions.sweep} (docs/SERVER.md, "Versions"). */
export interface VersionRetention {
  /** Versions younger than this many days are kept; 0: nothing is removed. */
  keepDays: number;
  /** The newest this many versions of each key are kept whatever their age. */
  keepMin: number;
  /** The clock, in milliseconds (tests move it). */
  now?: () => number;
}

/** Whether `id` is well formed as a version's name. */
export function isVersionId(id: string): boolean {
  return VERSION_ID.test(id);
}

/** The kept versions of the repositories on a backend. */
export class KeptVersions {
  readonly #backend: Backend;
  readonly #call: Call;
  /** The last time stamp given to a version: names are strictly increasing in this process. */
  #lastStamp = 0;

  /** Versions on `backend`; `call` wraps each storage call. */
  constructor(backend: Backend, call: Call) {
    this.#backend = backend;
    this.#call = call;
  }

  /** Replaces `key` of `repo` with `body`, keeping the replaced bytes and the new; 200 or 201. */
  async replace(repo: string, key: string, body: StreamBody): Promise<number> {
    const full = `${repo}/${key}`;
    const dir = `${VERSIONS_PREFIX}${repo}/${key}/`;
    // the current object, if it is kept now, gets the name before the new version's
    const oldStamp = this.#stamp();
    const id = newId(this.#stamp());
    await this.#call(repo, key, () => this.#backend.put(dir + id, body));
    const existed = await this.#call(repo, key, async () => {
      const size = await this.#backend.size(full);
      // the current object is kept unless the marker names a kept version of its size
      let keptOld: string | null = null;
      if (size !== null && (await this.#current(repo, key, size)) === null) {
        keptOld = newId(oldStamp);
        await copy(this.#backend, full, dir + keptOld);
      }
      // the index a new manifest goes with: the current one (commits write it first)
      const index = key === MANIFEST_KEY ? await this.#keepCurrentIndex(repo) : null;
      await copy(this.#backend, dir + id, full);
      await this.#setCurrent(repo, key, id);
      if (index !== null) {
        for (const m of keptOld === null ? [id] : [keptOld, id]) {
          await this.#backend.put(pairKey(repo, m), new TextEncoder().encode(index));
        }
      }
      return size !== null;
    });
    return existed ? 200 : 201;
  }

  /** Forgets which version `key` holds (it was written or deleted outside the versions). */
  async forget(repo: string, key: string): Promise<void> {
    await this.#call(
      repo,
      key,
      () => this.#backend.delete(`${CURRENT_PREFIX}${repo}/${key}`),
    );
  }

  /** The kept versions of `key` of `repo`, newest first. */
  async list(repo: string, key: string): Promise<KeptVersion[]> {
    const dir = `${VERSIONS_PREFIX}${repo}/${key}/`;
    const found: KeptVersion[] = [];
    await this.#call(repo, key, async () => {
      for await (const info of this.#backend.list(dir)) {
        const id = info.key.slice(dir.length);
        if (!isVersionId(id)) continue;
        found.push({ id, time: new Date(Number(id.split("-")[0])), size: info.size });
      }
    });
    return found.sort((a, b) => (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
  }

  /**
   * The versions of `repo`, newest first: each kept manifest with the index it was committed
   * with (the one its pair names; for a manifest kept without one, the newest index kept
   * before it).
   */
  async versions(repo: string): Promise<RepoVersion[]> {
    const manifests = await this.list(repo, MANIFEST_KEY);
    const indexes = await this.list(repo, INDEX_KEY);
    const sizes = new Map(indexes.map((v) => [v.id, v.size]));
    const out: RepoVersion[] = [];
    for (const m of manifests) {
      const indexId = await this.#pairedIndex(repo, m.id, indexes);
      out.push({
        id: m.id,
        time: m.time,
        manifestBytes: m.size,
        indexId,
        indexBytes: indexId === null ? null : sizes.get(indexId) ?? null,
      });
    }
    return out;
  }

  /**
   * The bytes of `key` of version `id` of `repo` (for `index`, the index that goes with the
   * manifest version `id`) as a stream; HttpError 404 when there is no such version.
   */
  async open(repo: string, id: string, key: VersionedKey): Promise<ObjectStream> {
    const absent = () => new HttpError(404, `No version "${id}" of ${key} in repository "${repo}"`);
    if (!isVersionId(id)) throw new HttpError(400, `Invalid version id in repository "${repo}"`);
    const dir = `${VERSIONS_PREFIX}${repo}/`;
    if ((await this.#call(repo, key, () => this.#backend.size(`${dir}manifest/${id}`))) === null) {
      throw absent();
    }
    let name = id;
    if (key === INDEX_KEY) {
      const paired = await this.#pairedIndex(repo, id, await this.list(repo, INDEX_KEY));
      if (paired === null) throw absent();
      name = paired;
    }
    const backend = this.#backend;
    if (backend.getStream === undefined) {
      throw new HttpError(500, "The server's storage cannot stream objects");
    }
    const got = await this.#call(repo, key, () => backend.getStream!(`${dir}${key}/${name}`));
    if (got === null) throw absent();
    return got;
  }

  /**
   * Applies the retention to `repo`'s versions: a version is removed when it is older than
   * `keepDays` and not among the newest `keepMin` of its key; an index version stays while a
   * kept manifest version goes with it. Resolves to the keys removed.
   */
  async sweep(repo: string, retention: VersionRetention): Promise<string[]> {
    if (retention.keepDays <= 0) return [];
    const now = (retention.now ?? Date.now)();
    const old = (v: KeptVersion, i: number) =>
      i >= retention.keepMin && now - v.time.getTime() > retention.keepDays * DAY_MS;
    const dir = `${VERSIONS_PREFIX}${repo}/`;
    const removed: string[] = [];
    const remove = async (key: string) => {
      await this.#call(repo, "", () => this.#backend.delete(key));
      removed.push(key);
    };
    const manifests = await this.list(repo, MANIFEST_KEY);
    const indexes = await this.list(repo, INDEX_KEY);
    const keptIndexes = new Set<string>();
    const keptManifests = new Set<string>();
    for (const [i, m] of manifests.entries()) {
      if (old(m, i)) {
        await remove(`${dir}manifest/${m.id}`);
        continue;
      }
      keptManifests.add(m.id);
      const paired = await this.#pairedIndex(repo, m.id, indexes);
      if (paired !== null) keptIndexes.add(paired);
    }
    for (const [i, v] of indexes.entries()) {
      if (old(v, i) && !keptIndexes.has(v.id)) await remove(`${dir}index/${v.id}`);
    }
    await this.#call(repo, "", async () => {
      for await (const info of this.#backend.list(`${dir}pairs/`)) {
        if (!keptManifests.has(info.key.slice(`${dir}pairs/`.length))) await remove(info.key);
      }
    });
    return removed;
  }

  /** A time stamp for a new version's name: now, or one above the last one given. */
  #stamp(): number {
    this.#lastStamp = Math.max(Date.now(), this.#lastStamp + 1);
    return this.#lastStamp;
  }

  /** The kept version of `key` that is current (its size is `size`), or null. */
  async #current(repo: string, key: string, size: number): Promise<string | null> {
    const marker = await this.#backend.get(`${CURRENT_PREFIX}${repo}/${key}`, { maxBytes: 256 });
    const name = marker === null ? null : new TextDecoder().decode(marker);
    if (name === null || !isVersionId(name)) return null;
    const keptSize = await this.#backend.size(`${VERSIONS_PREFIX}${repo}/${key}/${name}`);
    return keptSize === size ? name : null;
  }

  async #setCurrent(repo: string, key: string, id: string): Promise<void> {
    await this.#backend.put(`${CURRENT_PREFIX}${repo}/${key}`, new TextEncoder().encode(id));
  }

  /** The version of the current index, kept now if it is not yet; null without an index. */
  async #keepCurrentIndex(repo: string): Promise<string | null> {
    const full = `${repo}/${INDEX_KEY}`;
    const size = await this.#backend.size(full);
    if (size === null) return null;
    const current = await this.#current(repo, INDEX_KEY, size);
    if (current !== null) return current;
    const id = newId(this.#stamp());
    await copy(this.#backend, full, `${VERSIONS_PREFIX}${repo}/${INDEX_KEY}/${id}`);
    await this.#setCurrent(repo, INDEX_KEY, id);
    return id;
  }

  /** The index version that goes with manifest version `id` (`indexes` newest first). */
  async #pairedIndex(repo: string, id: string, indexes: KeptVersion[]): Promise<string | null> {
    const pair = await this.#call(
      repo,
      MANIFEST_KEY,
      () => this.#backend.get(pairKey(repo, id), { maxBytes: 64 }).catch(() => null),
    );
    const named = pair === null ? null : new TextDecoder().decode(pair);
    if (named !== null && indexes.some((v) => v.id === named)) return named;
    return indexes.find((v) => v.id <= id)?.id ?? null;
  }
}

function pairKey(repo: string, manifestId: string): string {
  return `${VERSIONS_PREFIX}${repo}/pairs/${manifestId}`;
}

/** A version's name: a time in milliseconds (15 digits, sortable) and 8 random hex digits. */
function newId(ms: number): string {
  const random = Array.from(
    crypto.getRandomValues(new Uint8Array(4)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
  return `${String(ms).padStart(15, "0")}-${random}`;
}

/** Copies object `from` to `to` through the backend, streamed. */
async function copy(backend: Backend, from: string, to: string): Promise<void> {
  const got = await backend.getStream?.(from);
  if (got === undefined) throw new HttpError(500, "The server's storage cannot stream objects");
  if (got === null) throw new HttpError(500, `Cannot keep "${from}": it vanished`);
  await backend.put(to, {
    size: got.length,
    async *pieces() {
      for await (const piece of got.stream) yield piece;
    },
  });
}
