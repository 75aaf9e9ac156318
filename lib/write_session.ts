/**
 * Writing new blobs and committing an archive. The session claims blob ids (dedup), hands the
 * sealed blobs to the one packer (lib/packer.ts: one open pack per blob type, uploads while the
 * next fills, as many in flight as the backend has connections) and commits. The commit follows
 * the crash-safe order: every pack is durable, then the merged index, then the archive, then the
 * manifest (the commit point), the last two under the commit lock.
 *
 * @module
 */

import type { Backend } from "../backends/backend.ts";
import { ChunkIndex, type ChunkLocation } from "./chunk_index.ts";
import type { ObjectTypeTag } from "./crypto.ts";
import { AlreadyExistsError } from "./errors.ts";
import type { ArchiveMeta } from "./archive.ts";
import type { ManifestEntry } from "./manifest.ts";
import type { PackDigest, PackEntry } from "./pack.ts";
import { Packer, packTarget } from "./packer.ts";
import { commitChanges, type Repository, sealArchive } from "./repository.ts";

/** What a write session needs of a repository. */
export type WritableRepository = Pick<
  Repository<Backend>,
  "backend" | "key" | "config" | "location" | "readManifest" | "readIndex"
>;

/** The pack of a claimed blob not yet in a pack (no pack id is all zeros but by chance 2^-256). */
const UNPACKED = new Uint8Array(32);

/** The placeholder location of a claimed blob of `sealedLength` bytes. */
function claimed(sealedLength: number): ChunkLocation {
  return { pack: UNPACKED, offset: 0, length: sealedLength, rawLength: 0 };
}

/** Collects new blobs for one backup (or a repair's salvage) and commits them. */
export class WriteSession {
  readonly #repo: WritableRepository;
  readonly #index: ChunkIndex;
  /** The packer; its `stored` index is this session's added blobs (adopted ones too). */
  readonly #packer: Packer;
  /**
   * Ids claimed by this session, with their sealed length (0 until sealed) as the location's
   * length and no pack yet ({@linkcode UNPACKED}): a compact table, ~60 bytes per new chunk.
   */
  readonly #reserved = new ChunkIndex();
  /** Bytes of sealed new blobs written (what this backup adds to the repository). */
  addedBytes = 0;

  /**
   * Starts a session over the repository's current index; `digest` hashes finished packs off
   * this thread (see {@linkcode Packer}).
   */
  constructor(repo: WritableRepository, index: ChunkIndex, options: { digest?: PackDigest } = {}) {
    this.#repo = repo;
    this.#index = index;
    this.#packer = new Packer(repo, {
      target: packTarget(index.packIds().length, repo.config.minPackSize, repo.config.maxPackSize),
      digest: options.digest,
    });
  }

  /** The blobs stored by this session so far, once their packs are uploaded (see flush). */
  get added(): ChunkIndex {
    return this.#packer.stored;
  }

  /** The index as loaded at the start (plus nothing new). */
  get index(): ChunkIndex {
    return this.#index;
  }

  /**
   * Claims a blob id: true when it is new (the caller must then add it), false when the
   * repository or this session already has it.
   */
  reserve(id: Uint8Array): boolean {
    if (this.#index.has(id) || this.#reserved.has(id)) return false;
    this.#reserved.set(id, claimed(0));
    return true;
  }

  /** Whether the repository or this session has (or is storing) the blob. */
  has(id: Uint8Array): boolean {
    return this.#index.has(id) || this.#reserved.has(id);
  }

  /** Stored (sealed) length of a blob the repository or this session has; 0 if not yet known. */
  storedLength(id: Uint8Array): number {
    return this.#index.get(id)?.length ?? this.#reserved.get(id)?.length ?? 0;
  }

  /**
   * Adds a sealed blob to the packer (which uploads a pack once it reaches the target). Every
   * caller waits until an upload slot is free, so full packs never pile up in memory however
   * fast blobs arrive.
   */
  async add(
    id: Uint8Array,
    type: ObjectTypeTag,
    sealed: Uint8Array,
    rawLength: number,
  ): Promise<void> {
    const length = sealed.length; // the pack takes the buffer over
    this.#packer.put(id, type, sealed, rawLength); // throws the first upload failure
    this.#reserved.set(id, claimed(length));
    this.addedBytes += length;
    await this.#packer.ready(); // throws the first upload failure
  }

  /**
   * Takes in a pack that is in storage but not in the index (uploaded by a backup that was
   * killed before its commit): its blobs deduplicate from now on and enter the index at commit.
   */
  adopt(packId: Uint8Array, entries: Iterable<PackEntry>): void {
    for (const e of entries) {
      const loc = { pack: packId, offset: e.offset, length: e.length, rawLength: e.rawLength };
      this.#index.set(e.id, loc);
      this.#packer.stored.set(e.id, loc);
    }
  }

  /**
   * Drops the open pack after a failure (removes its staging file, if any) and waits for the
   * uploads in flight, so none is cut off mid-write by the process exiting.
   */
  async abort(): Promise<void> {
    await this.#packer.abort();
  }

  /** Uploads the open packs and waits for every upload; throws the first upload failure. */
  async flush(): Promise<void> {
    await this.#packer.flush();
  }

  /**
   * Flushes, then commits: merged index, archive, manifest. Throws AlreadyExistsError when the
   * name was taken meanwhile (the uploaded data stays, unreferenced, for compact to remove).
   */
  async commit(
    meta: ArchiveMeta,
    options: { checkLock?: () => void } = {},
  ): Promise<ManifestEntry> {
    await this.flush();
    // a lock broken by another process (break-lock, or a stale-lock cleanup) means our view of
    // the repository may be out of date: do not commit on top of it
    options.checkLock?.();
    const repo = this.#repo;
    const archive = await sealArchive(repo, meta);
    const entry: ManifestEntry = {
      name: meta.name,
      id: archive.id,
      time: meta.time,
      hostname: meta.hostname,
      username: meta.username,
      stats: meta.stats,
    };
    await commitChanges(repo, async (tx) => {
      const manifest = await tx.manifest();
      if (manifest.archives.some((a) => a.name === meta.name)) {
        throw new AlreadyExistsError(`Archive "${meta.name}" already exists in "${repo.location}"`);
      }
      const added = this.#packer.stored;
      if (added.size > 0) {
        const index = await tx.index();
        index.merge(added);
        tx.saveIndex(index);
      }
      tx.saveArchive(archive.id, archive.sealed);
      manifest.archives.push(entry);
      tx.saveManifest(manifest);
    });
    return entry;
  }
}
