/**
 * The versions of `manifest` and `index` a storage keeps (vger-server, docs/SERVER.md
 * "Versions"): listed, and read back and opened with the key for a rollback. Part of the
 * repository layer: it calls the backend's `listVersions` and `getVersion`. The rollback itself
 * writes through the one commit protocol (lib/repository.ts's `commitChanges`).
 *
 * @module
 */

import type { Backend, StoredVersion } from "../backends/backend.ts";
import { ChunkIndex, MAX_INDEX_BYTES } from "./chunk_index.ts";
import { ObjectType } from "./crypto.ts";
import { isDamage, NotFoundError, UsageError } from "./errors.ts";
import { decodeManifest, type Manifest, MAX_MANIFEST_BYTES } from "./manifest.ts";
import { listArchiveObjects, type Repository, sealedLimit } from "./repository.ts";
import { listPacks } from "./index_recovery.ts";
import { toHex } from "./ids.ts";

export type { StoredVersion } from "../backends/backend.ts";

/** A backend that keeps versions. */
type VersionedBackend = Required<Pick<Backend, "listVersions" | "getVersion">> & Backend;

/**
 * The backend, if it keeps versions; else a UsageError in one line: versions need a vger-server.
 */
export function versionedBackend(backend: Backend): VersionedBackend {
  if (backend.listVersions === undefined || backend.getVersion === undefined) {
    throw new UsageError(
      `Repository "${backend.location}" keeps no versions: versions and rollback need a ` +
        "vger-server (backend: rest)",
    );
  }
  return backend as VersionedBackend;
}

/** The versions the storage keeps, newest first; a UsageError where it keeps none. */
export async function listRepoVersions(backend: Backend): Promise<StoredVersion[]> {
  return await versionedBackend(backend).listVersions();
}

/** A kept version read back and opened: what a rollback writes. */
export interface OpenedVersion {
  /** The version as listed. */
  version: StoredVersion;
  /** Its manifest, opened and decoded. */
  manifest: Manifest;
  /** The index kept with it, or null when none is kept (the current index then stays). */
  index: ChunkIndex | null;
  /**
   * The highest manifest counter among this version and every newer one that opens: what other
   * clients may have seen, which the rolled-back manifest's counter must exceed.
   */
  newestCounter: number;
}

/**
 * Reads version `id` of the repository and opens its manifest and index with the key (an
 * IntegrityError or DecryptionError names what does not open); NotFoundError for an unknown id.
 */
export async function openVersion(
  repo: Pick<Repository<Backend>, "backend" | "key" | "location">,
  id: string,
): Promise<OpenedVersion> {
  const backend = versionedBackend(repo.backend);
  const versions = await backend.listVersions();
  const version = versions.find((v) => v.id === id);
  if (version === undefined) {
    throw new NotFoundError(
      `No version "${id}" in repository "${repo.location}" (vger versions lists them)`,
    );
  }
  const manifest = await readManifestVersion(repo, backend, id);
  if (manifest === null) {
    throw new NotFoundError(`Version "${id}" of repository "${repo.location}" vanished`);
  }
  let index: ChunkIndex | null = null;
  const sealedIndex = await backend.getVersion(id, "index", {
    maxBytes: sealedLimit(MAX_INDEX_BYTES),
  });
  if (sealedIndex !== null) {
    const what = `Index of version ${id}`;
    index = ChunkIndex.decode(await repo.key.open(ObjectType.index, "index", sealedIndex, what));
  }
  // every newer version counts: a client may have seen any of them
  let newestCounter = manifest.counter ?? 0;
  for (const v of versions) {
    if (v.id <= id) continue;
    try {
      const m = await readManifestVersion(repo, backend, v.id);
      if (m !== null) newestCounter = Math.max(newestCounter, m.counter ?? 0);
    } catch (err) {
      // a version that does not open (garbage written by an attacker) was read by nobody
      if (!isDamage(err)) throw err;
    }
  }
  return { version, manifest, index, newestCounter };
}

async function readManifestVersion(
  repo: Pick<Repository<Backend>, "key">,
  backend: VersionedBackend,
  id: string,
): Promise<Manifest | null> {
  const sealed = await backend.getVersion(id, "manifest", {
    maxBytes: sealedLimit(MAX_MANIFEST_BYTES),
  });
  if (sealed === null) return null;
  const what = `Manifest of version ${id}`;
  return decodeManifest(await repo.key.open(ObjectType.manifest, "manifest", sealed, what));
}

/** What a version names that the storage no longer holds. */
export interface MissingFromVersion {
  /** Packs its index names that are gone. */
  packs: number;
  /** Archive objects its manifest lists that are gone. */
  archives: number;
}

/**
 * Counts the packs of `opened`'s index and the archive objects of its manifest that storage no
 * longer holds (deleted since: compact, delete or prune with a full-access token).
 */
export async function missingFromVersion(
  repo: Pick<Repository<Backend>, "backend">,
  opened: Pick<OpenedVersion, "manifest" | "index">,
): Promise<MissingFromVersion> {
  let packs = 0;
  if (opened.index !== null) {
    const stored = (await listPacks(repo.backend)).packs;
    for (const id of opened.index.packIds()) if (!stored.has(toHex(id))) packs++;
  }
  const archives = new Set<string>();
  for await (const { hex } of listArchiveObjects(repo)) if (hex !== null) archives.add(hex);
  const gone = opened.manifest.archives.filter((a) => !archives.has(toHex(a.id))).length;
  return { packs, archives: gone };
}
