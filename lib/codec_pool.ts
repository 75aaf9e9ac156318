/**
 * A pool of codec workers (lib/codec_worker.ts): compress+seal and open+decompress blobs on
 * every core. Buffers are transferred, not copied.
 *
 * @module
 */

import type { CompressionOptions } from "./compress.ts";
import type { EncryptionMode, ObjectTypeTag } from "./crypto.ts";
import { IntegrityError, VgerError } from "./errors.ts";
import { ownsBuffer, releaseOwned, transferable } from "./bytes.ts";
import { atExit } from "./exit_hooks.ts";
import type {
  BatchPart,
  BlockJob,
  ChunkRange,
  CodecReply,
  CodecRequest,
  VerifyPart,
} from "./codec_worker.ts";
import { flattenJobs } from "./codec_worker.ts";

export type { BlockJob, VerifyPart };

/**
 * Sealed blobs to verify in one message ({@linkcode CodecPool.verifyBatch}), kept flat: their
 * bytes back to back in one buffer, their ids, places, lengths and types in typed arrays. No
 * object per blob: a batch waits for its worker while the next ones fill, and objects kept that
 * long were promoted to V8's old generation, ~100 MiB of it in a check of 400,000 blobs.
 */
export class VerifyBatch {
  /** The sealed objects, back to back. */
  readonly bytes: Uint8Array;
  /** Bytes of `bytes` used. */
  size = 0;
  /** Blobs added. */
  count = 0;
  /** 32 bytes of id per blob. */
  readonly ids: Uint8Array;
  /** Per blob: offset in `bytes`, sealed length, plaintext length, type tag. */
  readonly layout: Float64Array;

  /** A batch of at most `maxBlobs` blobs and `maxBytes` sealed bytes. */
  constructor(readonly maxBlobs: number, maxBytes: number) {
    this.bytes = new Uint8Array(maxBytes);
    this.ids = new Uint8Array(maxBlobs * 32);
    this.layout = new Float64Array(maxBlobs * 4);
  }

  /** Whether a sealed object of `length` bytes still fits. */
  fits(length: number): boolean {
    return this.count < this.maxBlobs && this.size + length <= this.bytes.length;
  }

  /** Adds a blob (its sealed object copied; check {@linkcode fits} first); returns its place. */
  add(type: ObjectTypeTag, id: Uint8Array, sealed: Uint8Array, rawLength: number): number {
    if (id.length !== 32) throw new RangeError("VerifyBatch: ids must be 32 bytes");
    if (!this.fits(sealed.length)) throw new RangeError("VerifyBatch: the blob does not fit");
    const i = this.count++;
    this.bytes.set(sealed, this.size);
    this.ids.set(id, i * 32);
    const at = i * 4;
    this.layout[at] = this.size;
    this.layout[at + 1] = sealed.length;
    this.layout[at + 2] = rawLength;
    this.layout[at + 3] = type;
    this.size += sealed.length;
    return i;
  }

  /** The type tag of the blob at `i`. */
  typeAt(i: number): ObjectTypeTag {
    return this.layout[i * 4 + 3] as ObjectTypeTag;
  }
}

/** A read block back from a worker, and the sealed objects of its jobs, in order. */
export interface SealedBlock {
  /** The block, for reuse once the sealed objects are in packs (they may be views of it). */
  block: Uint8Array;
  /**
   * One sealed object per job: views of the block's first bytes when the chunks lay past room for
   * their growth (lib/codec_worker.ts, `sealsWithin`), else of a reply buffer.
   */
  sealed: Uint8Array[];
  /** The CRC-32 of each sealed object (its pack record's checksum). */
  crcs: Uint32Array;
  /**
   * Frees a reply buffer the sealed objects are views of at once, once they are in packs (not
   * when the garbage collector finds it: 16 MiB each held ~100 MiB of the workers' heaps).
   */
  dispose(): void;
}

/** A read block held by a worker after {@linkcode CodecPool.hashBlock}. */
export interface HashedBlock {
  /** The ids of the chunks, in order. */
  ids: Uint8Array[];
  /** Seals these chunks of the block there and hands it back. */
  seal(jobs: BlockJob[], compression: CompressionOptions): Promise<SealedBlock>;
}

/** A SHA-256 computed in a worker from bytes handed over in order (see {@linkcode CodecPool.hashStream}). */
export interface HashStream {
  /**
   * Adds bytes; they are handed over (do not use them afterwards). Resolves once they are
   * hashed (never rejects: a failure fails the digest).
   */
  update(bytes: Uint8Array): Promise<void>;
  /**
   * Adds bytes, handed over as `update`'s, and resolves to them once hashed (the same bytes, for
   * reuse: fresh pages cost page faults); rejects when they could not be hashed.
   */
  updateAndReturn(bytes: Uint8Array): Promise<Uint8Array>;
  /** The SHA-256 of everything added; call once, last. */
  digest(): Promise<Uint8Array>;
}

interface Pending {
  resolve(reply: CodecReply & { ok: true }): void;
  reject(err: Error): void;
  worker: number;
}

/**
 * An id that is a view into a larger buffer (an index table, an item blob) would be cloned into
 * the message with that whole buffer: measured, a 640 KiB copy per blob made compaction 4x slower
 * and 500 MiB bigger. Ids cross as their own 32 bytes.
 */
function ownId(id: Uint8Array): Uint8Array {
  return ownsBuffer(id) ? id : id.slice();
}

/** The error a worker reported, as the class it was thrown as. */
function errorOf(failure: { code: string; message: string }): Error {
  return failure.code === "integrity"
    ? new IntegrityError(failure.message)
    : new VgerError(failure.code, failure.message);
}

/** How long close() waits for a worker to finish its request before terminating it. */
const JOIN_TIMEOUT_MS = 5000;

/**
 * Owns the workers; call close() when done or the process will not exit. The process must not
 * exit while a worker is inside a native call (OpenSSL cleaned up at exit under a worker crashes
 * it): close() joins the workers, and until they are joined an exit hook (lib/exit_hooks.ts)
 * makes cli.ts wait for them.
 */
export class CodecPool {
  #workers: Worker[];
  #load: number[];
  #pending = new Map<number, Pending>();
  #seq = 0;
  #streams = 0;
  #tokens = 0;
  #ready: Promise<unknown>;
  #closed: Promise<void> | null = null;
  #forgetExitHook: () => void;

  /** Starts `size` workers holding the repository key. */
  constructor(material: Uint8Array, mode: EncryptionMode, size = navigator.hardwareConcurrency) {
    const n = Math.max(1, Math.min(size, 8));
    this.#workers = Array.from(
      { length: n },
      () => new Worker(new URL("./codec_worker.ts", import.meta.url).href, { type: "module" }),
    );
    this.#load = this.#workers.map(() => 0);
    this.#workers.forEach((w, i) => {
      w.onmessage = (e: MessageEvent<CodecReply>) => this.#reply(e.data);
      w.onerror = (e) => {
        e.preventDefault();
        this.#failWorker(i, new VgerError("internal", `Codec worker failed: ${e.message}`));
      };
    });
    this.#ready = Promise.all(
      this.#workers.map((_, i) => this.#send(i, { op: "init", seq: 0, material, mode }, [])),
    );
    // a pool closed before its workers started (a backup with nothing new) rejects this with
    // nobody waiting; users of the pool still see the failure through their own awaits
    this.#ready.catch(() => {});
    this.#forgetExitHook = atExit(() => this.close());
  }

  /** Number of workers. */
  get size(): number {
    return this.#workers.length;
  }

  /**
   * Workers for a command whose own thread is busy the whole time (a backup's reading thread, a
   * restore's writing one): the CPUs left beside it, at least one. On 2 CPUs one worker made the
   * first backup, the 1% changed re-backup and the restore as fast as two or faster, and 20-50
   * MiB smaller (a V8 heap and a glibc arena less; bench/README.md, issue 14 session 10); a
   * `check --verify-data`, whose main thread mostly waits on reads, keeps one per CPU.
   */
  static sizeBesideBusyThread(): number {
    return Math.max(1, navigator.hardwareConcurrency - 1);
  }

  #reply(r: CodecReply): void {
    const p = this.#pending.get(r.seq);
    if (!p) return;
    this.#pending.delete(r.seq);
    this.#load[p.worker]--;
    if (r.ok) p.resolve(r);
    else p.reject(errorOf(r));
  }

  #failWorker(i: number, err: Error): void {
    for (const [seq, p] of this.#pending) {
      if (p.worker === i) {
        this.#pending.delete(seq);
        p.reject(err);
      }
    }
  }

  #send(
    worker: number,
    req: CodecRequest,
    transfer: ArrayBuffer[],
  ): Promise<CodecReply & { ok: true }> {
    const seq = ++this.#seq;
    req.seq = seq;
    this.#load[worker]++;
    return new Promise((resolve, reject) => {
      this.#pending.set(seq, { resolve, reject, worker });
      this.#workers[worker].postMessage(req, transfer);
    });
  }

  #pick(): number {
    let best = 0;
    for (let i = 1; i < this.#load.length; i++) if (this.#load[i] < this.#load[best]) best = i;
    return best;
  }

  /** Compresses and seals a blob. `data` must own its buffer exactly; it is transferred. */
  async encode(
    type: ObjectTypeTag,
    id: Uint8Array,
    data: Uint8Array,
    compression: CompressionOptions,
  ): Promise<Uint8Array> {
    await this.#ready;
    const transfer = ownsBuffer(data) ? [data.buffer as ArrayBuffer] : [];
    return (await this.#send(
      this.#pick(),
      { op: "encode", seq: 0, type, id: ownId(id), data, compression },
      transfer,
    )).data!;
  }

  /** The block and the sealed objects (views of the one buffer they came in) of a reply. */
  #sealedBlock(reply: CodecReply & { ok: true }): SealedBlock {
    const bytes = reply.sealed!;
    const sealed: Uint8Array[] = [];
    let at = 0;
    for (const length of reply.sealedLengths!) {
      sealed.push(bytes.subarray(at, at += length));
    }
    // the reply's buffer is this block's alone (the view may leave out its unused end), or the
    // block's own
    return {
      block: reply.data!,
      sealed,
      crcs: reply.sealedCrcs!,
      dispose: () => {
        // sealed over the block itself (the usual case): the block is the caller's to reuse
        if (bytes.buffer !== reply.data!.buffer) releaseOwned(bytes);
      },
    };
  }

  /**
   * Hashes chunks of a read block in one worker, which keeps the block: the ids come back, in
   * order, with `seal`, which then compresses and seals there the chunks chosen (the new ones)
   * and hands the block back with their sealed objects, in job order. Call `seal` once, even with
   * no jobs, to have the block back. The block must own its buffer (it is transferred).
   */
  async hashBlock(block: Uint8Array, chunks: ChunkRange[]): Promise<HashedBlock> {
    await this.#ready;
    const worker = this.#pick();
    const token = ++this.#tokens;
    const ranges = new Uint32Array(chunks.length * 2);
    chunks.forEach((c, i) => ranges.set([c.offset, c.length], i * 2));
    const req: CodecRequest = { op: "hashBlock", seq: 0, token, block, ranges };
    const reply = await this.#send(worker, req, [block.buffer as ArrayBuffer, ranges.buffer]);
    const ids = reply.ids!;
    return {
      // copies: an id may be kept long after the rest of the block's are gone
      // views of the reply's one buffer: an ArrayBuffer per id costs V8 more than the id
      ids: Array.from({ length: ids.length / 32 }, (_, i) => ids.subarray(i * 32, i * 32 + 32)),
      seal: async (jobs, compression) => {
        const flat = flattenJobs(jobs);
        const seal: CodecRequest = { op: "sealHeld", seq: 0, token, jobs: flat, compression };
        return this.#sealedBlock(
          await this.#send(worker, seal, [flat.ids.buffer, flat.layout.buffer]),
        );
      },
    };
  }

  /**
   * The SHA-256 of the parts' bytes in order (a pack's id), computed in a worker. The parts'
   * buffers are transferred there and back, whole (the caller hands them over): use the
   * returned parts, not the ones given.
   */
  async sha256(parts: Uint8Array[]): Promise<{ digest: Uint8Array; parts: Uint8Array[] }> {
    await this.#ready;
    const req: CodecRequest = { op: "sha256", seq: 0, parts };
    const reply = await this.#send(this.#pick(), req, transferable(parts));
    return { digest: reply.data!, parts: reply.parts! };
  }

  /**
   * A SHA-256 stream computed in one worker: `update` hands bytes over (their buffer is
   * transferred when they own it, and freed there), `digest` returns the hash of all of them in
   * order. A failed update fails the digest.
   */
  hashStream(): HashStream {
    const worker = this.#pick();
    const stream = ++this.#streams;
    let failure: unknown = null;
    const send = (bytes: Uint8Array | undefined, digest: boolean, back = false) =>
      this.#send(
        worker,
        { op: "hashStream", seq: 0, stream, bytes, back, digest },
        bytes && ownsBuffer(bytes) ? [bytes.buffer as ArrayBuffer] : [],
      );
    // each call awaits the workers' start once: its message goes out in the order of the calls
    const ready = this.#ready;
    const pending = new Set<Promise<void>>();
    // an update: sent in call order, awaited by the digest, its failure the digest's
    const post = (bytes: Uint8Array, back: boolean) => {
      const reply = (async () => {
        await ready;
        return await send(bytes, false, back);
      })();
      const settled = reply.then(() => {}, (err) => {
        failure ??= err;
      });
      pending.add(settled);
      void settled.finally(() => pending.delete(settled));
      return reply;
    };
    return {
      update: (bytes) => post(bytes, false).then(() => {}, () => {}),
      updateAndReturn: async (bytes) => (await post(bytes, true)).data!,
      digest: async () => {
        await ready;
        const reply = send(undefined, true);
        await Promise.all(pending);
        if (failure) throw failure;
        return (await reply).data!;
      },
    };
  }

  /** Opens and decompresses a sealed blob; `sealed` is transferred when it owns its buffer. */
  async decode(
    type: ObjectTypeTag,
    id: Uint8Array,
    sealed: Uint8Array,
    maxLength: number,
    what: string,
  ): Promise<Uint8Array> {
    await this.#ready;
    const transfer = ownsBuffer(sealed) ? [sealed.buffer as ArrayBuffer] : [];
    const req: CodecRequest = {
      op: "decode",
      seq: 0,
      type,
      id: ownId(id),
      sealed,
      maxLength,
      what,
    };
    return (await this.#send(this.#pick(), req, transfer)).data!;
  }

  /**
   * Opens, decompresses and re-hashes a sealed blob in a worker; throws IntegrityError (naming
   * `what`) unless it has `rawLength` bytes and hashes to `id`. `sealed` is transferred when it
   * owns its buffer.
   */
  async verify(
    type: ObjectTypeTag,
    id: Uint8Array,
    sealed: Uint8Array,
    rawLength: number,
    what: string,
  ): Promise<void> {
    await this.#ready;
    const transfer = ownsBuffer(sealed) ? [sealed.buffer as ArrayBuffer] : [];
    const req: CodecRequest = {
      op: "verify",
      seq: 0,
      type,
      id: ownId(id),
      sealed,
      rawLength,
      what,
    };
    await this.#send(this.#pick(), req, transfer);
  }

  /**
   * Verifies a batch of blobs in one worker, one message for all (see {@linkcode verify}); the
   * batch's buffers are transferred (it is empty afterwards). Each blob is named in its error,
   * only if it fails, by its type, id and `where` (such as "in pack packs/ab/..."). Returns the
   * errors of the blobs that failed, by their place in the batch.
   */
  async verifyBatch(batch: VerifyBatch, where?: string): Promise<Map<number, Error>> {
    await this.#ready;
    const bytes = batch.bytes.subarray(0, batch.size);
    const ids = batch.ids.subarray(0, batch.count * 32);
    const layout = batch.layout.subarray(0, batch.count * 4);
    const req: CodecRequest = { op: "verifyBatch", seq: 0, bytes, ids, layout, where };
    const reply = await this.#send(this.#pick(), req, [
      bytes.buffer as ArrayBuffer,
      ids.buffer as ArrayBuffer,
      layout.buffer as ArrayBuffer,
    ]);
    return new Map(reply.failures!.map((f) => [f.index, errorOf(f)]));
  }

  /**
   * Opens and decompresses several blobs that lie in one buffer (a coalesced range read) in one
   * worker; `bytes` is transferred. Each result is a plaintext or an Error for that blob.
   */
  async decodeBatch(
    type: ObjectTypeTag,
    packHex: string,
    bytes: Uint8Array,
    parts: BatchPart[],
  ): Promise<(Uint8Array | Error)[]> {
    await this.#ready;
    const transfer = ownsBuffer(bytes) ? [bytes.buffer as ArrayBuffer] : [];
    const idSize = parts[0]?.id.length ?? 0;
    const ids = new Uint8Array(parts.length * idSize);
    const layout = new Float64Array(parts.length * 3);
    parts.forEach((p, i) => {
      if (p.id.length !== idSize) throw new RangeError("decodeBatch: ids of different lengths");
      ids.set(p.id, i * idSize);
      layout.set([p.offset, p.length, p.rawLength], i * 3);
    });
    transfer.push(ids.buffer, layout.buffer);
    const req: CodecRequest = { op: "decodeBatch", seq: 0, type, packHex, bytes, ids, layout };
    const reply = await this.#send(this.#pick(), req, transfer);
    return reply.batch!.map((r) =>
      r.ok ? new Uint8Array(r.buffer, r.offset, r.length) : errorOf(r)
    );
  }

  /**
   * Stops the workers: pending requests are rejected at once; the promise resolves when every
   * worker has finished the request it was doing (at most 5 s) and is terminated. Callers need
   * not await it (the exit hook does); calling it again returns the same promise.
   */
  close(): Promise<void> {
    if (this.#closed) return this.#closed;
    const joins = this.#workers.map((w, i) => {
      this.#failWorker(i, new VgerError("internal", "Codec pool closed"));
      return new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, JOIN_TIMEOUT_MS);
        w.onmessage = (e: MessageEvent<CodecReply>) => {
          if (e.data.seq !== -1) return; // a reply to a request already rejected
          clearTimeout(timer);
          resolve();
        };
        w.onerror = (e) => {
          e.preventDefault();
          clearTimeout(timer);
          resolve();
        };
        w.postMessage({ op: "stop", seq: -1 } satisfies CodecRequest);
      }).then(() => w.terminate());
    });
    this.#closed = Promise.all(joins).then(() => this.#forgetExitHook());
    return this.#closed;
  }
}
