/**
 * Writing new blobs and committing an archive. Blobs go into packs; a full pack is uploaded
 * while the next fills (as many uploads in flight as the backend has connections). Item-stream
 * blobs (archive metadata) and file data never share a pack: the session keeps one open pack
 * per type, so a damaged data pack costs file contents, never an archive's list of files
 * (docs/FORMAT.md). The commit follows the crash-safe order: every pack is durable, then the
 * merged index, then the archive, then the manifest (the commit point), the last two under the
 * commit lock.
 *
 * @module
 */

import type { Backend } from "../backends/backend.ts";
import { ChunkIndex } from "./chunk_index.ts";
import { Limiter } from "./concurrency.ts";
import type { ObjectTypeTag } from "./crypto.ts";
import { AlreadyExistsError } from "./errors.ts";
import { toHex } from "./ids.ts";
import type { ArchiveMeta } from "./archive.ts";
import type { ManifestEntry } from "./manifest.ts";
import { type PackEntry, PackWriter } from "./pack.ts";
import { commitChanges, type Repository, savePack, sealArchive } from "./repository.ts";
import { SpillingSink } from "./staging.ts";

/** Pack size target for a repository that has `packs` packs: 32 MiB x sqrt(packs / 100), clamped. */
export function packTarget(packs: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, Math.round((32 << 20) * Math.sqrt(packs / 100))));
}

/** What a write session needs of a repository. */
export type WritableRepository = Pick<
  Repository<Backend>,
  "backend" | "key" | "config" | "location" | "readManifest" | "readIndex"
>;

/** Collects new blobs for one backup (or a repair's salvage) and commits them. */
export class WriteSession {
  readonly #repo: WritableRepository;
  readonly #index: ChunkIndex;
  readonly #added = new ChunkIndex();
  /** Ids claimed by this session -> sealed length (0 until sealed). */
  readonly #reserved = new Map<string, number>();
  /** The open pack of each blob type (data, items): types never share a pack. */
  readonly #packs = new Map<ObjectTypeTag, PackWriter>();
  /**
   * Pack uploads (finish, then put) in flight: one per backend connection. `add` returns only
   * with a slot free, so at most `connections` packs are uploading while the next one fills.
   * For the local backend (2 connections) that is exactly what the former fixed
   * `MAX_UPLOADS = 1` did: `add` returned with at most one upload in flight, so the next full
   * pack started a second one while a third pack filled.
   */
  readonly #uploads: Limiter;
  #target: number;
  /** Bytes of sealed new blobs written (what this backup adds to the repository). */
  addedBytes = 0;

  /** Starts a session over the repository's current index. */
  constructor(repo: WritableRepository, index: ChunkIndex) {
    this.#repo = repo;
    this.#index = index;
    this.#uploads = new Limiter(repo.backend.capabilities.connections);
    this.#target = packTarget(
      index.packIds().length,
      repo.config.minPackSize,
      repo.config.maxPackSize,
    );
  }

  /** The blobs stored by this session so far, once their packs are uploaded (see flush). */
  get added(): ChunkIndex {
    return this.#added;
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
    if (this.#index.has(id)) return false;
    const hex = toHex(id);
    if (this.#reserved.has(hex)) return false;
    this.#reserved.set(hex, 0);
    return true;
  }

  /** Whether the repository or this session has (or is storing) the blob. */
  has(id: Uint8Array): boolean {
    return this.#index.has(id) || this.#reserved.has(toHex(id));
  }

  /** Stored (sealed) length of a blob the repository or this session has; 0 if not yet known. */
  storedLength(id: Uint8Array): number {
    return this.#index.get(id)?.length ?? this.#reserved.get(toHex(id)) ?? 0;
  }

  /**
   * Adds a sealed blob to the current pack and uploads the pack once it reaches the target.
   * Every caller waits until an upload slot is free, so full packs never pile up in memory
   * however fast blobs arrive.
   */
  async add(
    id: Uint8Array,
    type: ObjectTypeTag,
    sealed: Uint8Array,
    rawLength: number,
  ): Promise<void> {
    if (this.#uploads.failed) throw this.#uploads.failure;
    const length = sealed.length; // the pack takes the buffer over
    // cut before a blob that would pass the ceiling; a blob larger than it gets a pack alone
    let pack = this.#packs.get(type);
    if (
      pack && pack.count > 0 &&
      pack.finishedSizeWith(length, this.#repo.key) > this.#repo.config.maxPackSize
    ) {
      this.#startUpload(type);
      pack = undefined;
    }
    if (!pack) this.#packs.set(type, pack = new PackWriter({ sink: new SpillingSink() }));
    pack.add(id, type, sealed, rawLength);
    this.#reserved.set(toHex(id), length);
    this.addedBytes += length;
    if (pack.size >= this.#target) this.#startUpload(type);
    await this.#uploads.ready(); // throws the first upload failure
  }

  /**
   * Takes the open pack of a type out (synchronously: concurrent `add`s never see it half
   * gone) and queues its upload for the next free slot of #uploads.
   */
  #startUpload(type: ObjectTypeTag): void {
    const pack = this.#packs.get(type);
    this.#packs.delete(type);
    if (!pack || pack.count === 0) return;
    const upload = async (): Promise<void> => {
      const { id, body, entries, dispose } = await pack.finish(this.#repo.key);
      try {
        await savePack(this.#repo, id, body);
      } finally {
        dispose();
      }
      for (const e of entries) {
        this.#added.set(e.id, {
          pack: id,
          offset: e.offset,
          length: e.length,
          rawLength: e.rawLength,
        });
      }
    };
    // refused after an earlier upload failed (which add, flush and commit throw): drop the pack
    this.#uploads.spawn(upload).catch(() => pack.abandon());
  }

  /**
   * Takes in a pack that is in storage but not in the index (uploaded by a backup that was
   * killed before its commit): its blobs deduplicate from now on and enter the index at commit.
   */
  adopt(packId: Uint8Array, entries: readonly PackEntry[]): void {
    for (const e of entries) {
      const loc = { pack: packId, offset: e.offset, length: e.length, rawLength: e.rawLength };
      this.#index.set(e.id, loc);
      this.#added.set(e.id, loc);
    }
  }

  /**
   * Drops the open pack after a failure (removes its staging file, if any) and waits for the
   * uploads in flight, so none is cut off mid-write by the process exiting.
   */
  async abort(): Promise<void> {
    for (const pack of this.#packs.values()) pack.abandon();
    this.#packs.clear();
    await this.#uploads.settle();
  }

  /** Uploads the open packs and waits for every upload; throws the first upload failure. */
  async flush(): Promise<void> {
    for (const type of [...this.#packs.keys()]) this.#startUpload(type);
    await this.#uploads.drain();
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
      if (this.#added.size > 0) {
        const index = await tx.index();
        index.merge(this.#added);
        tx.saveIndex(index);
      }
      tx.saveArchive(archive.id, archive.sealed);
      manifest.archives.push(entry);
      tx.saveManifest(manifest);
    });
    return entry;
  }
}
