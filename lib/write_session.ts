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
import { ChunkIndex } from "./chunk_index.ts";
import type { ObjectTypeTag } from "./crypto.ts";
import { AlreadyExistsError, VgerError } from "./errors.ts";
import type { ArchiveMeta } from "./archive.ts";
import type { ManifestEntry } from "./manifest.ts";
import type { PackEntry } from "./pack.ts";
import { Packer, type PackerOptions, packTarget } from "./packer.ts";
import { commitChanges, type Repository, sealArchive } from "./repository.ts";

/** What a write session needs of a repository. */
export type WritableRepository = Pick<
  Repository<Backend>,
  "backend" | "key" | "config" | "location" | "readManifest" | "readIndex"
>;

/** The pack of a claimed blob not yet in a pack (no pack id is all zeros but by chance 2^-256). */
const UNPACKED = new Uint8Array(32);

/** Collects new blobs for one backup (or a repair's salvage) and commits them. */
export class WriteSession {
  readonly #repo: WritableRepository;
  readonly #index: ChunkIndex;
  /** The packer; it records where the blobs of each durable pack are in {@linkcode #blobs}. */
  readonly #packer: Packer;
  /**
   * Every blob of this session (adopted ones too): where it is once its pack is durable, and
   * until then a placeholder ({@linkcode UNPACKED}, its sealed length, 0 until sealed). One
   * compact table, ~60 bytes per new chunk, for the claims and the index entries to add.
   */
  readonly #blobs = new ChunkIndex();
  /** Whether commit ran: it may merge the repository's index into #blobs, so it runs once. */
  #committed = false;
  /** Bytes of sealed new blobs written (what this backup adds to the repository). */
  addedBytes = 0;

  /**
   * Starts a session over the repository's current index; `digest` hashes finished packs off
   * this thread, `hasher` packs written where they are stored (see {@linkcode PackerOptions}).
   */
  constructor(
    repo: WritableRepository,
    index: ChunkIndex,
    options: Pick<PackerOptions, "digest" | "hasher"> = {},
  ) {
    this.#repo = repo;
    this.#index = index;
    this.#packer = new Packer(repo, {
      target: packTarget(index.packIds().length, repo.config.minPackSize, repo.config.maxPackSize),
      digest: options.digest,
      hasher: options.hasher,
      stored: this.#blobs,
    });
  }

  /**
   * The blobs stored by this session: after {@linkcode flush}, where each is (before it, blobs
   * whose packs are not yet durable have placeholder locations).
   */
  get added(): ChunkIndex {
    return this.#blobs;
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
    if (this.#index.has(id) || this.#blobs.has(id)) return false;
    this.#blobs.setAt(id, UNPACKED, 0, 0, 0);
    return true;
  }

  /** Whether the repository or this session has (or is storing) the blob. */
  has(id: Uint8Array): boolean {
    return this.#index.has(id) || this.#blobs.has(id);
  }

  /** Stored (sealed) length of a blob the repository or this session has; 0 if not yet known. */
  storedLength(id: Uint8Array): number {
    const stored = this.#index.lengthOf(id);
    return stored >= 0 ? stored : Math.max(0, this.#blobs.lengthOf(id));
  }

  /**
   * Adds a sealed blob to the packer (which uploads a pack once it reaches the target). Every
   * caller waits until an upload slot is free, so full packs never pile up in memory however
   * fast blobs arrive: the promise to wait for, or undefined when there is room at once (a
   * promise per blob added up, backing up 100,000s of tiny files). `crc`: the sealed blob's
   * CRC-32 when already known (a codec worker's).
   */
  add(
    id: Uint8Array,
    type: ObjectTypeTag,
    sealed: Uint8Array,
    rawLength: number,
    crc?: number,
  ): Promise<void> | undefined {
    const length = sealed.length; // the pack takes the buffer over
    // before the packer has it: its upload then puts the real location over this one
    this.#blobs.setAt(id, UNPACKED, 0, length, 0);
    this.#packer.put(id, type, sealed, rawLength, crc); // throws the first upload failure
    this.addedBytes += length;
    return this.#packer.isReady() ? undefined : this.#packer.ready(); // throws a failure
  }

  /**
   * Takes in a pack that is in storage but not in the index (uploaded by a backup that was
   * killed before its commit): its blobs deduplicate from now on and enter the index at commit.
   */
  adopt(packId: Uint8Array, entries: Iterable<PackEntry>): void {
    for (const e of entries) {
      const loc = { pack: packId, offset: e.offset, length: e.length, rawLength: e.rawLength };
      this.#index.set(e.id, loc);
      this.#blobs.set(e.id, loc);
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
   * A session commits once.
   */
  async commit(
    meta: ArchiveMeta,
    options: { checkLock?: () => void } = {},
  ): Promise<ManifestEntry> {
    if (this.#committed) throw new VgerError("internal", "A write session commits once");
    this.#committed = true;
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
      const added = this.#blobs;
      if (added.packIds().some((p) => p.every((b) => b === 0))) {
        // a claimed blob never reached a pack: committing would index a location that is not
        throw new VgerError("internal", "A claimed blob was never stored; nothing committed");
      }
      if (added.size > 0) {
        const index = await tx.index();
        // the larger table takes the smaller in (this session's entries win either way): a
        // first backup's table becomes the index, with no copy of it beside it
        if (added.size >= index.size) {
          added.merge(index, { keepOwn: true });
          tx.saveIndex(added);
        } else {
          index.merge(added);
          tx.saveIndex(index);
        }
      }
      tx.saveArchive(archive.id, archive.sealed);
      manifest.archives.push(entry);
      tx.saveManifest(manifest);
    });
    return entry;
  }
}
