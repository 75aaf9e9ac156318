/**
 * Restore's reads of data blobs: reads of records that lie close together in one pack gathered
 * into one range request, which one codec worker opens and decompresses as a whole.
 *
 * @module
 */

import type { ReadonlyBackend } from "../backends/backend.ts";
import type { ChunkLocation } from "./chunk_index.ts";
import type { CodecPool } from "./codec_pool.ts";
import { ObjectType, type ObjectTypeTag } from "./crypto.ts";
import { IntegrityError, VgerError } from "./errors.ts";
import { toHex } from "./ids.ts";
import { RECORD_PREFIX } from "./pack.ts";
import type { Repository } from "./repository.ts";
import { packKey } from "./storage_keys.ts";

/** A read waiting in a {@linkcode RecordBatcher}. */
interface BatchedRead {
  id: Uint8Array;
  loc: ChunkLocation;
  resolve: (plain: Uint8Array) => void;
  reject: (err: unknown) => void;
}

/**
 * Gathers reads of blobs that lie close together in one pack, in any order, into one range
 * request (of at most `maxBytes`, over gaps of at most `maxGap` bytes of other records), which
 * one codec worker opens and decompresses as a whole: no copies on this thread. Records of files
 * backed up side by side interleave in a pack (the codec workers finish blocks in any order), so
 * a batch of strictly adjacent records would be cut at every turn. A read that does not fit the
 * open batch sends it first; the caller sends the open batch with
 * {@linkcode RecordBatcher.flushFor} (or `flush`) before it waits for its reads. A failing read of
 * the range fails each of its blobs with an IntegrityError naming the pack.
 */
export class RecordBatcher {
  readonly #repo: Pick<Repository<ReadonlyBackend>, "backend">;
  readonly #pool: CodecPool;
  readonly #type: ObjectTypeTag;
  readonly #maxBytes: number;
  readonly #maxGap: number;
  #batch:
    | { pack: Uint8Array; packHex: string; start: number; end: number; parts: BatchedRead[] }
    | null = null;
  /** The reads of the open batch, for {@linkcode RecordBatcher.flushFor}. */
  readonly #open = new Set<Promise<Uint8Array>>();

  /**
   * Plaintext worth reading ahead of the user of the reads: 4 MiB per connection the storage
   * serves at once, 8 to 32 MiB. From a local repository (2 connections) 8 MiB: its reads are
   * fast, and 32 only held more (the corpus's restore on tmpfs, alternating runs: peak 224-255 ->
   * 196-206 MiB in the same time); from S3 or vger-server (8) 32 MiB, for the round trips.
   */
  get readAheadBytes(): number {
    const connections = this.#repo.backend.capabilities.connections;
    return Math.min(32 << 20, Math.max(8 << 20, connections * (4 << 20)));
  }

  /**
   * Reads blobs of `type` (default data) from `repo`'s packs, opening them in `pool`; a batch
   * spans at most `maxBytes` and reads over gaps of at most `maxGap` (default 256 KiB).
   */
  constructor(
    repo: Pick<Repository<ReadonlyBackend>, "backend">,
    pool: CodecPool,
    opts: { maxBytes: number; maxGap?: number; type?: ObjectTypeTag },
  ) {
    this.#repo = repo;
    this.#pool = pool;
    this.#maxBytes = opts.maxBytes;
    this.#maxGap = opts.maxGap ?? 256 << 10;
    this.#type = opts.type ?? ObjectType.data;
  }

  /**
   * The plaintext of the blob `id` at `loc`, once its batch is sent and opened. Its failure (an
   * IntegrityError naming the blob or the pack) is handled by the returned promise's catchers.
   */
  read(id: Uint8Array, loc: ChunkLocation): Promise<Uint8Array> {
    const packHex = toHex(loc.pack);
    const b = this.#batch;
    const end = loc.offset + loc.length;
    if (
      !b || b.packHex !== packHex ||
      // more than maxGap bytes of other records between it and the batch
      loc.offset > b.end + RECORD_PREFIX + this.#maxGap ||
      end + RECORD_PREFIX + this.#maxGap < b.start ||
      Math.max(b.end, end) - Math.min(b.start, loc.offset) > this.#maxBytes
    ) {
      this.flush();
      this.#batch = { pack: loc.pack, packHex, start: loc.offset, end, parts: [] };
    }
    const batch = this.#batch!;
    batch.start = Math.min(batch.start, loc.offset);
    batch.end = Math.max(batch.end, end);
    const read = new Promise<Uint8Array>((resolve, reject) => {
      batch.parts.push({ id, loc, resolve, reject });
    });
    this.#open.add(read);
    return read;
  }

  /**
   * Sends the open batch if it holds `read` (a promise {@linkcode RecordBatcher.read} returned):
   * what a consumer calls before it waits for a read. A read already sent leaves the open batch
   * to grow: a consumer that sent it at every wait would cut the batches to a few records each.
   */
  flushFor(read: Promise<Uint8Array>): void {
    if (this.#open.has(read)) this.flush();
  }

  /** Sends the open batch, if any: one range request, then one worker opens its blobs. */
  flush(): void {
    const b = this.#batch;
    this.#batch = null;
    this.#open.clear();
    if (!b) return;
    this.#repo.backend.getRange(packKey(b.pack), b.start, b.end - b.start).then((bytes) => {
      const parts = b.parts.map((p) => ({
        id: p.id,
        offset: p.loc.offset - b.start,
        length: p.loc.length,
        rawLength: p.loc.rawLength,
      }));
      // one worker opens the whole range: no copies on this thread
      return this.#pool.decodeBatch(this.#type, b.packHex, bytes, parts);
    }).then((results) => {
      results.forEach((r, i) => {
        const p = b.parts[i];
        if (r instanceof Error) p.reject(r);
        else p.resolve(r);
      });
    }, (err) => {
      const e = err instanceof VgerError && !(err instanceof IntegrityError)
        ? new IntegrityError(`Pack ${b.packHex} cannot be read: ${err.message}`, { cause: err })
        : err;
      for (const p of b.parts) p.reject(e);
    });
  }
}
