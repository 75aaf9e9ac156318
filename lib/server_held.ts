/**
 * vger-server's held deletes (docs/SERVER.md, "Held deletes"): with `delete_hold_days = N`,
 * whatever a client deletes or replaces (any role, any key but `locks/`; `manifest` and `index`
 * replaced are kept versions instead) is moved aside to
 * `.vger-server/held/<repo>/<stamp>/<key>` (`<stamp>`: milliseconds since the epoch, 15 digits,
 * and 8 random hex), where no client reaches, and purged only N days later by the server's
 * background sweep. The operator lists what is held and puts it back (`held`, `undelete`).
 * Everything goes through the backend: a copy, then the delete.
 *
 * @example
 * ```ts
 * import { MemoryBackend } from "../backends/memory.ts";
 * import { holdObject, listHeld } from "./server_held.ts";
 *
 * const backend = new MemoryBackend();
 * await backend.put("laptop/archives/ab", new Uint8Array([1, 2, 3]));
 * await holdObject(backend, "laptop", "archives/ab", { remove: true });
 * console.log((await listHeld(backend, "laptop", 30)).map((h) => h.key)); // ["archives/ab"]
 * ```
 *
 * @module
 */

import type { Backend } from "../backends/backend.ts";
import { HttpError } from "./server_request.ts";

/** Where held objects are: `.vger-server/held/<repo>/<stamp>/<key>`. */
export const HELD_PREFIX = ".vger-server/held/";

const DAY_MS = 86_400_000;
const STAMP = /^(\d{15})-[0-9a-f]{8}$/;

/** One held object. */
export interface HeldObject {
  /** Its repository. */
  repo: string;
  /** Its key in the repository. */
  key: string;
  /** Its size in bytes. */
  size: number;
  /** When it was deleted (or replaced). */
  deletedAt: Date;
  /** When the sweep purges it. */
  purgeAfter: Date;
  /** Where it is held (the backend's key). */
  storageKey: string;
}

/**
 * Moves (`remove`) or copies object `key` of `repo` aside; resolves to false when there was no
 * such object. The copy is durable before the original is deleted.
 */
export async function holdObject(
  backend: Backend,
  repo: string,
  key: string,
  options: { remove: boolean; now?: number },
): Promise<boolean> {
  const full = `${repo}/${key}`;
  const stamp = `${String(options.now ?? Date.now()).padStart(15, "0")}-${randomHex(4)}`;
  if (!(await copy(backend, full, `${HELD_PREFIX}${repo}/${stamp}/${key}`))) return false;
  if (options.remove) await backend.delete(full);
  return true;
}

/** The held objects of `repo` (every repository when null), by key, then oldest first. */
export async function listHeld(
  backend: Backend,
  repo: string | null,
  holdDays: number,
): Promise<HeldObject[]> {
  const found: HeldObject[] = [];
  const prefix = repo === null ? HELD_PREFIX : `${HELD_PREFIX}${repo}/`;
  for await (const info of backend.list(prefix)) {
    const [name, stamp, ...rest] = info.key.slice(HELD_PREFIX.length).split("/");
    const m = STAMP.exec(stamp ?? "");
    if (m === null || rest.length === 0) continue; // not ours: left alone
    const deletedAt = Number(m[1]);
    found.push({
      repo: name,
      key: rest.join("/"),
      size: info.size,
      deletedAt: new Date(deletedAt),
      purgeAfter: new Date(deletedAt + holdDays * DAY_MS),
      storageKey: info.key,
    });
  }
  return found.sort((a, b) =>
    a.repo < b.repo
      ? -1
      : a.repo > b.repo
      ? 1
      : a.key < b.key
      ? -1
      : a.key > b.key
      ? 1
      : a.storageKey < b.storageKey
      ? -1
      : 1
  );
}

/** The held bytes of `repo` (they count towards its quota). */
export async function heldBytes(backend: Backend, repo: string): Promise<number> {
  let total = 0;
  for await (const info of backend.list(`${HELD_PREFIX}${repo}/`)) total += info.size;
  return total;
}

/** Removes what has been held longer than `holdDays`; resolves to what it purged. */
export async function purgeHeld(
  backend: Backend,
  holdDays: number,
  now: number = Date.now(),
): Promise<HeldObject[]> {
  const purged: HeldObject[] = [];
  for (const held of await listHeld(backend, null, holdDays)) {
    if (held.purgeAfter.getTime() > now) continue;
    await backend.delete(held.storageKey);
    purged.push(held);
  }
  return purged;
}

/** What {@linkcode undelete} did. */
export interface UndeleteResult {
  /** Put back, each its newest held copy. */
  restored: HeldObject[];
  /** Left held, with the reason (the key exists again). */
  refused: { held: HeldObject; why: string }[];
}

/**
 * Puts back the newest held copy of each of `keys` of `repo` (every held key when null): a
 * create, so that a key that exists again is never overwritten (it is refused and stays held).
 * A key with no held copy is a 404 HttpError, before anything is restored. Once something is
 * back, the object `marker` (the server's record that the repository exists) is written.
 */
export async function undelete(
  backend: Backend,
  repo: string,
  keys: readonly string[] | null,
  options: { marker: string },
): Promise<UndeleteResult> {
  const newest = new Map<string, HeldObject>();
  for (const held of await listHeld(backend, repo, 0)) newest.set(held.key, held);
  for (const key of keys ?? []) {
    if (!newest.has(key)) {
      throw new HttpError(404, `Nothing held of "${key}" in repository "${repo}"`);
    }
  }
  const result: UndeleteResult = { restored: [], refused: [] };
  const wanted = keys === null ? [...newest.keys()] : [...new Set(keys)];
  // config last: the repository is whole (and listed again) once the rest is back
  wanted.sort((a, b) => (a === "config" ? 1 : b === "config" ? -1 : 0));
  for (const key of wanted) {
    const held = newest.get(key)!;
    const got = await backend.getStream!(held.storageKey);
    if (got === null) continue; // purged meanwhile
    const created = await backend.create(`${repo}/${key}`, {
      size: got.length,
      async *pieces() {
        for await (const piece of got.stream) yield piece;
      },
    });
    if (!created) {
      await got.stream.cancel().catch(() => {});
      result.refused.push({ held, why: "it exists again; remove it first to put this one back" });
      continue;
    }
    await backend.delete(held.storageKey);
    result.restored.push(held);
  }
  if (result.restored.length > 0) await backend.put(options.marker, new Uint8Array());
  return result;
}

/** Copies object `from` to `to` through the backend, streamed; false when `from` is absent. */
async function copy(backend: Backend, from: string, to: string): Promise<boolean> {
  if (backend.getStream === undefined) {
    throw new HttpError(500, "The server's storage cannot stream objects");
  }
  const got = await backend.getStream(from);
  if (got === null) return false;
  await backend.put(to, {
    size: got.length,
    async *pieces() {
      for await (const piece of got.stream) yield piece;
    },
  });
  return true;
}

function randomHex(bytes: number): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(bytes)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
}
