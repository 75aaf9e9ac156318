/**
 * Removing archives from the manifest (`vger delete`, and `vger prune` for what the retention
 * policy drops). Only metadata changes: the chunks stay in their packs until `vger compact`.
 *
 * Order: the manifest is rewritten first (under the commit lock, re-read so a concurrent backup's
 * archive is kept), then the archive objects are removed. A crash in between leaves archive
 * objects nothing lists, which is harmless.
 *
 * @module
 */

import type { Backend } from "../backends/backend.ts";
import { NotFoundError } from "./errors.ts";
import { toHex } from "./ids.ts";
import type { ManifestEntry } from "./manifest.ts";
import {
  commitChanges,
  deleteArchive,
  deleteArchiveObject,
  listArchiveObjects,
  type Repository,
} from "./repository.ts";

/**
 * Removes archive objects that the manifest does not list (written by a backup killed before its
 * commit, or left by a delete killed after its manifest write); returns how many. Only under an
 * exclusive repository lock: a running backup's archive object is written just before its commit.
 */
export async function removeUnlistedArchives(repo: Repository<Backend>): Promise<number> {
  const listed = new Set((await repo.readManifest()).archives.map((a) => toHex(a.id)));
  let removed = 0;
  for await (const o of listArchiveObjects(repo)) {
    if (!listed.has(o.hex ?? "")) {
      await deleteArchiveObject(repo, o);
      removed++;
    }
  }
  return removed;
}

/** Options of {@linkcode deleteArchives}. */
export interface DeleteOptions {
  /** Only report what would be deleted. */
  dryRun?: boolean;
}

/**
 * Deletes archives by name; throws NotFoundError naming every name that does not exist (and then
 * deletes nothing). Returns the deleted (or, with dryRun, the to-be-deleted) entries.
 */
export async function deleteArchives(
  repo: Repository<Backend>,
  names: readonly string[],
  options: DeleteOptions = {},
): Promise<ManifestEntry[]> {
  const wanted = new Set(names);
  const check = (archives: ManifestEntry[]) => {
    const missing = [...wanted].filter((n) => !archives.some((a) => a.name === n));
    if (missing.length > 0) {
      throw new NotFoundError(
        `Archive${missing.length > 1 ? "s" : ""} ${
          missing.map((n) => `"${n}"`).join(", ")
        } not found in "${repo.location}"`,
      );
    }
    return archives.filter((a) => wanted.has(a.name));
  };
  if (options.dryRun) return check((await repo.readManifest()).archives);
  const deleted = await commitChanges(repo, async (tx) => {
    const manifest = await tx.manifest();
    const gone = check(manifest.archives);
    manifest.archives = manifest.archives.filter((a) => !wanted.has(a.name));
    tx.saveManifest(manifest);
    return gone;
  });
  for (const a of deleted) await deleteArchive(repo, a.id);
  return deleted;
}
