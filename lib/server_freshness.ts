/**
 * vger-server's backup freshness (docs/SERVER.md, "Freshness"): `last_backup_at` is set when a
 * `manifest` write follows the creation of a new `archives/*` object in the same repository (a
 * backup), not on a manifest write without one (delete, prune, compact). Both facts live under
 * `.vger-server/freshness/<repo>/`, so they survive a restart and `deno serve --parallel` workers
 * share them.
 *
 * @module
 */

import type { Backend } from "../backends/backend.ts";

const FRESHNESS_PREFIX = ".vger-server/freshness/";

/** The freshness records of the repositories on a backend. */
export class Freshness {
  readonly #backend: Backend;

  /** Records on `backend`. */
  constructor(backend: Backend) {
    this.#backend = backend;
  }

  /** Notes that a new archive object was created in `repo`. */
  async archiveCreated(repo: string): Promise<void> {
    await this.#backend.put(`${FRESHNESS_PREFIX}${repo}/pending`, new Uint8Array());
  }

  /** Notes a manifest write in `repo`: after an archive's creation, a backup finished `at`. */
  async manifestWritten(repo: string, at: Date = new Date()): Promise<void> {
    const pending = `${FRESHNESS_PREFIX}${repo}/pending`;
    if ((await this.#backend.size(pending)) === null) return;
    await this.#backend.put(
      `${FRESHNESS_PREFIX}${repo}/last_backup_at`,
      new TextEncoder().encode(at.toISOString()),
    );
    await this.#backend.delete(pending);
  }

  /** When `repo`'s last backup finished (RFC 3339 UTC), or null before the first. */
  async lastBackupAt(repo: string): Promise<string | null> {
    const bytes = await this.#backend.get(`${FRESHNESS_PREFIX}${repo}/last_backup_at`, {
      maxBytes: 64,
    });
    if (bytes === null) return null;
    const text = new TextDecoder().decode(bytes);
    return Number.isNaN(Date.parse(text)) ? null : text;
  }
}
