/**
 * The one packer, shared by backup (and repair's salvage, through lib/write_session.ts) and
 * compact: takes sealed blobs by type, fills one open pack per type through pack.ts's
 * {@linkcode PackWriter} into a staging sink (lib/staging.ts), and uploads each full pack while
 * the next fills, as many at once as the backend has `connections`. Item-stream blobs (archive
 * metadata) and file data never share a pack, so a damaged data pack costs file contents, never
 * an archive's list of files (docs/FORMAT.md). The packer only writes packs: the caller commits
 * the index entries of the durable ones ({@linkcode Packer.stored}).
 *
 * @example Pack two blobs, then read where they went
 * ```ts ignore
 * import { Packer, packTarget } from "./packer.ts";
 *
 * const packer = new Packer(repo, { target: packTarget(0, 1 << 20, 64 << 20) });
 * await packer.add(id1, ObjectType.data, sealed1, raw1);
 * await packer.add(id2, ObjectType.items, sealed2, raw2);
 * await packer.flush(); // every pack durable; throws the first upload failure
 * console.log(packer.packs.length, packer.stored.get(id1)?.pack);
 * ```
 *
 * @module
 */

import type { Backend } from "../backends/backend.ts";
import { ChunkIndex } from "./chunk_index.ts";
import { Limiter, Signal } from "./concurrency.ts";
import type { ObjectTypeTag } from "./crypto.ts";
import { type PackDigest, PackWriter } from "./pack.ts";
import { type Repository, savePack, saveStagedPack, stagePack } from "./repository.ts";
import { DEFAULT_SPILL_ABOVE, SpillingSink, type StagedHasher, StagedSink } from "./staging.ts";

/** Pack size target for a repository that has `packs` packs: 32 MiB x sqrt(packs / 100), clamped. */
export function packTarget(packs: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, Math.round((32 << 20) * Math.sqrt(packs / 100))));
}

/**
 * Bytes of full packs waiting for or in their upload beyond which {@linkcode Packer.ready} waits,
 * whatever the backend's `connections` (a pack counts for its bytes in memory, at most the
 * staging threshold). Three 32 MiB packs: the two uploads and the filling pack of a local disk's
 * two connections are within it, and on S3 (8 connections) about four packs upload at once, not
 * eight (a first backup of 1.7 GB had a peak RSS of 792 MiB with eight, against 415 MiB on a
 * local disk).
 */
export const UPLOAD_BYTES = 96 << 20;

/** A settled promise, returned when there is nothing to wait for. */
const READY = Promise.resolve();

/** What the packer needs of a repository. */
export type PackerRepository = Pick<Repository<Backend>, "backend" | "key" | "config">;

/** A pack the packer stored. */
export interface StoredPack {
  /** Pack id. */
  id: Uint8Array;
  /** Its size in bytes. */
  size: number;
}

/** Options of {@linkcode Packer}. */
export interface PackerOptions {
  /** Size from which a pack is uploaded (see {@linkcode packTarget}). */
  target: number;
  /** Bytes of packs waiting for or in their upload at most (default {@linkcode UPLOAD_BYTES}). */
  uploadBytes?: number;
  /**
   * Hashes finished packs off this thread (a codec pool's `sha256`); used for packs that stay
   * in memory anyway (target and largest blob within the staging threshold).
   */
  digest?: PackDigest;
  /**
   * The table to record the durable blobs' locations in ({@linkcode Packer.stored}; default a
   * new one): a write session's, which holds its claimed blobs too, so one table serves both.
   */
  stored?: ChunkIndex;
  /**
   * A SHA-256 stream off this thread (a codec pool's `hashStream`): with it, on a backend that
   * stages objects (a local disk), each pack is written where it is stored as it fills, through
   * a few 1 MiB buffers, instead of being held whole in memory (lib/staging.ts's StagedSink).
   */
  hasher?: () => StagedHasher;
}

/** Fills packs per blob type and uploads them; see the module doc. */
export class Packer {
  readonly #repo: PackerRepository;
  readonly #target: number;
  readonly #maxUploadBytes: number;
  readonly #digest: PackDigest | undefined;
  readonly #hasher: (() => StagedHasher) | undefined;
  /** The staged sink of each pack written through one. */
  readonly #staged = new Map<PackWriter, StagedSink>();
  /** The buffers those sinks write through, shared. */
  readonly #stagingBuffers: Uint8Array[] = [];
  /** The largest pack a deferred-hash pack can become (its buffer's size). */
  readonly #capacity: number;
  /** Buffers of deferred-hash packs that were stored, for the next packs. */
  readonly #spareBuffers: Uint8Array[] = [];
  /** The open pack of each blob type (data, items): types never share a pack. */
  readonly #open = new Map<ObjectTypeTag, PackWriter>();
  /**
   * Pack uploads (finish, then put) in flight: one per backend connection. `ready` returns only
   * with a slot free, so at most `connections` packs are uploading while the next one fills.
   * For the local backend (2 connections) that is exactly what the former fixed
   * `MAX_UPLOADS = 1` did: `add` returned with at most one upload in flight, so the next full
   * pack started a second one while a third pack filled.
   */
  readonly #uploads: Limiter;
  /** Bytes in memory of the packs cut and not yet stored (see {@linkcode UPLOAD_BYTES}). */
  #uploadBytes = 0;
  /** An upload ended. */
  readonly #uploaded = new Signal();
  /** The index entries of every blob in a durable pack. */
  readonly #stored: ChunkIndex;
  /** The durable packs, in the order they were cut (a slot stays empty until stored). */
  readonly #packs: (StoredPack | undefined)[] = [];

  /** A packer writing to `repo`'s backend. */
  constructor(repo: PackerRepository, options: PackerOptions) {
    this.#repo = repo;
    this.#stored = options.stored ?? new ChunkIndex();
    this.#target = options.target;
    this.#maxUploadBytes = options.uploadBytes ?? UPLOAD_BYTES;
    // a pack grows past the target by one blob at most: a chunk, or an item blob of ~1 MiB
    const largest = Math.max(repo.config.chunker.maxSize, 1 << 20) + (1 << 20);
    this.#capacity = options.target + largest;
    if (this.#capacity <= DEFAULT_SPILL_ABOVE) this.#digest = options.digest;
    this.#hasher = options.hasher;
    this.#uploads = new Limiter(repo.backend.capabilities.connections);
  }

  /**
   * Where the blobs of every durable pack are (filled as uploads complete; after a successful
   * {@linkcode flush}, every blob given).
   */
  get stored(): ChunkIndex {
    return this.#stored;
  }

  /** The durable packs, in the order they were cut. */
  get packs(): StoredPack[] {
    return this.#packs.filter((p): p is StoredPack => p !== undefined);
  }

  /**
   * Adds a sealed blob (the pack takes `sealed` over) and waits until an upload slot is free, so
   * full packs never pile up in memory however fast blobs arrive. Throws the first upload
   * failure.
   */
  async add(
    id: Uint8Array,
    type: ObjectTypeTag,
    sealed: Uint8Array,
    rawLength: number,
    crc?: number,
  ): Promise<void> {
    this.put(id, type, sealed, rawLength, crc);
    await this.ready();
  }

  /**
   * The synchronous part of {@linkcode add}: throws the first upload failure, puts the blob into
   * the open pack of its type (cutting before a blob that would pass `max_pack_size`; a blob
   * larger than that gets a pack alone) and starts the pack's upload once it reaches the
   * target. Follow it with {@linkcode ready}. `crc`: the sealed blob's CRC-32, when known.
   */
  put(
    id: Uint8Array,
    type: ObjectTypeTag,
    sealed: Uint8Array,
    rawLength: number,
    crc?: number,
  ): void {
    if (this.#uploads.failed) throw this.#uploads.failure;
    let pack = this.#open.get(type);
    if (
      pack && pack.count > 0 &&
      pack.finishedSizeWith(sealed.length, this.#repo.key) > this.#repo.config.maxPackSize
    ) {
      this.#startUpload(type);
      pack = undefined;
    }
    if (!pack) pack = this.#newPack(type);
    pack.add(id, type, sealed, rawLength, crc);
    // with its header: tiny chunks' headers are a fifth of the pack, past its buffer's capacity
    if (pack.finishedSize(this.#repo.key) >= this.#target) this.#startUpload(type);
  }

  /** A new open pack for `type`: staged where it is stored when it can be, else in memory. */
  #newPack(type: ObjectTypeTag): PackWriter {
    const staged = this.#hasher ? stagePack(this.#repo) : undefined;
    let pack: PackWriter;
    if (staged) {
      const sink = new StagedSink(staged, this.#hasher!(), this.#stagingBuffers);
      pack = new PackWriter({ storing: sink });
      this.#staged.set(pack, sink);
    } else {
      pack = new PackWriter({
        sink: new SpillingSink(),
        digest: this.#digest,
        capacity: this.#capacity,
        buffer: this.#spareBuffers.pop(),
        recycle: (buffer) => {
          // one: the next pack's; more would only hold memory (measured: +25 MiB peak RSS)
          if (this.#spareBuffers.length < 1) this.#spareBuffers.push(buffer);
        },
      });
    }
    this.#open.set(type, pack);
    return pack;
  }

  /**
   * Waits until an upload slot is free and the packs waiting for or in their upload hold at
   * most `uploadBytes` (the producer's back-pressure); throws the first failure. Called after
   * every blob: when nothing is to wait for, it allocates nothing (a backup of 100,000 tiny
   * files made 130 MiB of garbage in here, awaiting what was ready).
   */
  ready(): Promise<void> {
    return this.isReady() ? READY : this.#whenReady();
  }

  /** Whether {@linkcode ready} would resolve at once (false after a failure). */
  isReady(): boolean {
    if (this.#uploads.failed) return false;
    if (!this.#uploads.hasRoom || this.#uploadBytes > this.#maxUploadBytes) return false;
    for (const pack of this.#open.values()) if (pack.backlogged) return false;
    return true;
  }

  #whenReady(): Promise<void> {
    return this.#uploads.failed ? Promise.reject(this.#uploads.failure) : this.#waitReady();
  }

  async #waitReady(): Promise<void> {
    for (const pack of this.#open.values()) await pack.drained();
    await this.#uploads.ready();
    while (this.#uploadBytes > this.#maxUploadBytes) {
      await this.#uploaded.wait();
      if (this.#uploads.failed) throw this.#uploads.failure;
    }
  }

  /**
   * Takes the open pack of a type out (synchronously: concurrent `add`s never see it half
   * gone) and queues its upload for the next free slot of #uploads.
   */
  #startUpload(type: ObjectTypeTag): void {
    const pack = this.#open.get(type);
    this.#open.delete(type);
    if (!pack || pack.count === 0) return;
    const slot = this.#packs.length;
    this.#packs.push(undefined);
    const staged = this.#staged.get(pack);
    this.#staged.delete(pack);
    const held = staged ? 0 : Math.min(pack.size, DEFAULT_SPILL_ABOVE);
    this.#uploadBytes += held;
    const uploaded = () => {
      this.#uploadBytes -= held;
      this.#uploaded.notify();
    };
    const upload = async (): Promise<void> => {
      try {
        const { id, body, entries, size, dispose } = await pack.finish(this.#repo.key);
        try {
          if (body === null) await saveStagedPack(staged!.staged, id);
          else await savePack(this.#repo, id, body);
        } finally {
          dispose();
        }
        for (const e of entries) {
          this.#stored.set(e.id, {
            pack: id,
            offset: e.offset,
            length: e.length,
            rawLength: e.rawLength,
          });
        }
        this.#packs[slot] = { id, size };
      } finally {
        uploaded();
      }
    };
    // refused after an earlier upload failed (which add, flush and commit throw): drop the pack
    this.#uploads.spawn(upload).catch(() => {
      pack.abandon();
      uploaded();
    });
  }

  /** Uploads the open packs and waits for every upload; throws the first upload failure. */
  async flush(): Promise<void> {
    for (const type of [...this.#open.keys()]) this.#startUpload(type);
    await this.#uploads.drain();
  }

  /**
   * Drops the open packs after a failure (removes their staging files, if any) and waits for
   * the uploads in flight, so none is cut off mid-write by the process exiting.
   */
  async abort(): Promise<void> {
    for (const pack of this.#open.values()) pack.abandon();
    this.#open.clear();
    await this.#uploads.settle();
  }
}
