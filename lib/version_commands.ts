/**
 * `vger versions` and `vger rollback ID`: the versions of `manifest` and `index` that vger-server
 * keeps (docs/SERVER.md, "Versions"), listed newest first, and one of them made current again.
 * A rollback writes the old index and manifest as a new commit, under the exclusive lock,
 * through the one commit protocol, its manifest re-sealed with a counter above every counter
 * any client may have seen, so that their rollback protection (lib/known_repos.ts) accepts it.
 *
 * @module
 */

import type { Backend } from "../backends/backend.ts";
import "./platform_deno.ts"; // the native codecs and hashes (lib/platform.ts)
import { isDamage, NotFoundError } from "./errors.ts";
import {
  type LockingOptions,
  openRepository,
  rememberManifest,
  type TrustingOptions,
  withRepoLock,
} from "./open_repository.ts";
import {
  listRepoVersions,
  missingFromVersion,
  openVersion,
  type StoredVersion,
  versionedBackend,
} from "./repo_versions.ts";
import { commitChanges, type OpenOptions, requireRole } from "./repository.ts";

export type { StoredVersion } from "./repo_versions.ts";

/** `vger versions`: the kept versions, newest first (no key needed). */
export async function versionsCommand(backend: Backend): Promise<StoredVersion[]> {
  return await listRepoVersions(backend);
}

/** What `vger rollback` did. */
export interface RollbackResult {
  /** The version made current. */
  version: StoredVersion;
  /** Archives in its manifest. */
  archives: number;
  /** The counter of the manifest written (above every counter seen). */
  counter: number;
  /** Whether its index was written too (false: none was kept with it; the current one stays). */
  indexRestored: boolean;
  /** Packs its index names that are gone (only with `force`, else the rollback refuses). */
  missingPacks: number;
  /** Archive objects its manifest lists that are gone (only with `force`). */
  missingArchives: number;
}

/** Options of {@linkcode rollbackCommand}. */
export interface RollbackOptions extends OpenOptions, TrustingOptions, LockingOptions {
  /** Roll back even when packs or archive objects the version names are gone. */
  force?: boolean;
}

/**
 * `vger rollback ID`: makes version `id`'s manifest and index current again, as a new commit
 * (a replace, which an append-only server allows). Fails in one line on a backend that keeps no
 * versions, on an unknown id, and (unless `force`) when packs or archive objects the version
 * names are gone, which the rollback cannot bring back.
 */
export async function rollbackCommand(
  backend: Backend,
  id: string,
  options: RollbackOptions,
): Promise<RollbackResult> {
  versionedBackend(backend);
  // a replace of manifest and index under the exclusive lock: what a backup may do
  await requireRole(backend, "append-only", "roll back");
  const repo = await openRepository(backend, options);
  const result = await withRepoLock(backend, "exclusive", "rollback", options, async () => {
    const old = await openVersion(repo, id);
    const missing = await missingFromVersion(repo, old);
    if ((missing.packs > 0 || missing.archives > 0) && !options.force) {
      throw new NotFoundError(
        `Cannot roll back "${repo.location}" to version ${id}: ${missing.packs} packs of its ` +
          `index and ${missing.archives} archive objects of its manifest are gone (deleted ` +
          "since; held deletes may bring them back); --force rolls back anyway",
      );
    }
    // the newest counter seen: newer versions, this client's memory, the current manifest
    let newest = Math.max(old.newestCounter, repo.manifestCounter);
    try {
      newest = Math.max(newest, (await repo.readManifest()).counter ?? 0);
    } catch (err) {
      // a damaged, missing or older current manifest is what the rollback replaces
      if (!isDamage(err)) throw err;
    }
    return await commitChanges(repo, (tx) => {
      if (old.index !== null) tx.saveIndex(old.index);
      const manifest = { ...old.manifest, counter: newest };
      tx.saveManifest(manifest);
      return Promise.resolve({
        version: old.version,
        archives: manifest.archives.length,
        counter: newest + 1,
        indexRestored: old.index !== null,
        missingPacks: missing.packs,
        missingArchives: missing.archives,
      });
    });
  });
  await rememberManifest(repo, options);
  return result;
}
