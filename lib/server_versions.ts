/**
 * The kept versions of `manifest` and `index` in append-only mode (docs/SERVER.md,
 * "Append-only"): the server cannot read them, so it cannot judge a replacement; it keeps every
 * version instead, under `.vger-server/versions/<repo>/<key>/<stamp>`, where no client reaches.
 * The next issue lists them and rolls back to them.
 *
 * A replace streams the new bytes into a new version first, keeps the current object as a
 * version too if it is not one yet (the first replace after `init`), and then copies the new
 * version over the key. So every version a client ever wrote through a replace is kept, also
 * when two replaces race.
 *
 * @module
 */

import type { Backend, StreamBody } from "../backends/backend.ts";
import { HttpError } from "./server_request.ts";

/** Where the server keeps versions: `.vger-server/versions/`. */
export const VERSIONS_PREFIX = ".vger-server/versions/";
/** Which kept version each key holds: `.vger-server/current/<repo>/<key>` names it. */
const CURRENT_PREFIX = ".vger-server/current/";

/** Runs a storage call, turning failures into HttpErrors (ServerStore's). */
type Call = <T>(repo: string, key: string, fn: () => Promise<T>) => Promise<T>;

/** One kept version. */
export interface KeptVersion {
  /** Its name: a sortable time stamp and a random suffix. */
  id: string;
  /** When it was kept (from its name). */
  time: Date;
  /** Its size in bytes. */
  size: number;
}

/** The kept versions of the repositories on a backend. */
export class KeptVersions {
  readonly #backend: Backend;
  readonly #call: Call;

  /** Versions on `backend`; `call` wraps each storage call. */
  constructor(backend: Backend, call: Call) {
    this.#backend = backend;
    this.#call = call;
  }

  /** Replaces `key` of `repo` with `body`, keeping the replaced bytes and the new; 200 or 201. */
  async replace(repo: string, key: string, body: StreamBody): Promise<number> {
    const full = `${repo}/${key}`;
    const dir = `${VERSIONS_PREFIX}${repo}/${key}/`;
    const marker = `${CURRENT_PREFIX}${repo}/${key}`;
    const id = newId();
    await this.#call(repo, key, () => this.#backend.put(dir + id, body));
    const existed = await this.#call(repo, key, async () => {
      const current = await this.#backend.get(marker, { maxBytes: 256 });
      const keptName = current === null ? null : new TextDecoder().decode(current);
      const keptSize = keptName === null ? null : await this.#backend.size(dir + keptName);
      const size = await this.#backend.size(full);
      // the current object is kept unless the marker names a kept version of its size
      if (size !== null && keptSize !== size) {
        await copy(this.#backend, full, `${dir}${newId()}`);
      }
      await copy(this.#backend, dir + id, full);
      await this.#backend.put(marker, new TextEncoder().encode(id));
      return size !== null;
    });
    return existed ? 200 : 201;
  }

  /** Forgets which version `key` holds (it was written or deleted outside append-only mode). */
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
        found.push({ id, time: new Date(Number(id.split("-")[0])), size: info.size });
      }
    });
    return found.sort((a, b) => (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
  }
}

/** A new version's name: milliseconds since the epoch (15 digits, sortable) and 8 random hex. */
function newId(): string {
  const random = Array.from(
    crypto.getRandomValues(new Uint8Array(4)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
  return `${String(Date.now()).padStart(15, "0")}-${random}`;
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
