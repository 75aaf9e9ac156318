/**
 * Worker entry: the CPU-heavy per-blob work (compress + seal, open + decompress), so that both
 * cores work while the main thread reads, chunks and writes. Spawned by lib/codec_pool.ts.
 *
 * @module
 */

import "./platform_deno.ts"; // the native codecs and hashes (lib/platform.ts)
import { MAX_CHUNK_LIMIT } from "./chunker.ts";
import {
  compressFramed,
  compressInto,
  type CompressionOptions,
  compressWithin,
  decompress,
  loadCodecs,
} from "./compress.ts";
import { describeBlob, type EncryptionMode, type ObjectTypeTag, RepoKey } from "./crypto.ts";
import { IntegrityError, VgerError } from "./errors.ts";
import { bytesEqual, toHex } from "./ids.ts";
import { ownsBuffer, release, releaseBacking, transferable } from "./bytes.ts";
import { platform, type Sha256Hasher } from "./platform.ts";

/** A request to a codec worker. */
export type CodecRequest =
  | { op: "init"; seq: number; material: Uint8Array; mode: EncryptionMode }
  /** Reply once every request before it is done; the pool sends nothing after it. */
  | { op: "stop"; seq: number }
  | {
    op: "encode";
    seq: number;
    type: ObjectTypeTag;
    id: Uint8Array;
    data: Uint8Array;
    compression: CompressionOptions;
  }
  /**
   * Hashes chunks of a read block (their ids come back) and holds the block under `token` until
   * the sealHeld request of that token. `ranges`: offset and length of each chunk in the block.
   */
  | { op: "hashBlock"; seq: number; token: number; block: Uint8Array; ranges: Uint32Array }
  /**
   * Compresses and seals these chunks of the block held under `token`, which then goes back
   * (for reuse) with their sealed objects.
   */
  | { op: "sealHeld"; seq: number; token: number; jobs: FlatJobs; compression: CompressionOptions }
  | {
    op: "decodeBatch";
    seq: number;
    type: ObjectTypeTag;
    /** The pack's hex id, for messages. */
    packHex: string;
    bytes: Uint8Array;
    /** The blobs' ids, 32 bytes each, in order (flat: a message of one object per blob costs). */
    ids: Uint8Array;
    /** Per blob: offset and length of its sealed object in `bytes`, and its plaintext length. */
    layout: Float64Array;
  }
  /** The SHA-256 of the parts' bytes in order; the parts are transferred here and back. */
  | { op: "sha256"; seq: number; parts: Uint8Array[] }
  /**
   * Adds bytes (transferred here, then freed) to the SHA-256 stream `stream` of this worker,
   * made on first use; with `digest`, replies with the digest of all and forgets the stream.
   */
  | {
    op: "hashStream";
    seq: number;
    stream: number;
    bytes?: Uint8Array;
    /** Hand `bytes` back once hashed (for reuse), instead of freeing them. */
    back?: boolean;
    digest?: boolean;
  }
  | ({ op: "verify"; seq: number } & VerifyPart)
  /**
   * verify of many blobs that lie in one buffer: per blob, its id in `ids` (32 bytes each) and
   * its offset, length, plaintext length and type in `layout` (flat, as decodeBatch's). Named
   * in errors, only when they fail, by type, id and `where`.
   */
  | {
    op: "verifyBatch";
    seq: number;
    bytes: Uint8Array;
    ids: Uint8Array;
    layout: Float64Array;
    where?: string;
  }
  | {
    op: "decode";
    seq: number;
    type: ObjectTypeTag;
    id: Uint8Array;
    sealed: Uint8Array;
    maxLength: number;
    what: string;
  };

/** One blob of a batch: where it lies in the batch's bytes and what it must decode to. */
export interface BatchPart {
  /** Blob id. */
  id: Uint8Array;
  /** Offset of the sealed object in the batch. */
  offset: number;
  /** Length of the sealed object. */
  length: number;
  /** Expected plaintext length. */
  rawLength: number;
}

/** A sealed blob to verify: it must open, decompress to `rawLength` bytes and hash to `id`. */
export interface VerifyPart {
  /** Object type tag. */
  type: ObjectTypeTag;
  /** Blob id. */
  id: Uint8Array;
  /** The sealed object (transferred). */
  sealed: Uint8Array;
  /** Expected plaintext length. */
  rawLength: number;
  /**
   * Names the blob in errors; without it, a batch's blob is named (only if it fails) by its type
   * and id and the batch's `where`.
   */
  what?: string;
}

/** Where a chunk lies in a read block. */
export interface ChunkRange {
  /** Offset in the block. */
  offset: number;
  /** Length of the chunk. */
  length: number;
}

/**
 * Block jobs as they cross to a worker: flat, not an object and an id buffer per job (a block
 * of tiny files holds thousands of them, and cloning those was a tenth of the reading thread).
 */
export interface FlatJobs {
  /** The jobs' ids, 32 bytes each, in order. */
  ids: Uint8Array<ArrayBuffer>;
  /** Per job: offset and length in the block, and object type. */
  layout: Uint32Array<ArrayBuffer>;
}

/** `jobs` as a worker receives them. */
export function flattenJobs(jobs: readonly BlockJob[]): FlatJobs {
  const ids = new Uint8Array(jobs.length * 32);
  const layout = new Uint32Array(jobs.length * 3);
  for (let i = 0; i < jobs.length; i++) {
    const j = jobs[i];
    if (j.id.length !== 32) throw new RangeError("block job ids must be 32 bytes");
    ids.set(j.id, i * 32);
    layout[i * 3] = j.offset;
    layout[i * 3 + 1] = j.length;
    layout[i * 3 + 2] = j.type;
  }
  return { ids, layout };
}

/** A new chunk inside a read block: where it lies, its id and object type. */
export interface BlockJob {
  /** Offset in the block. */
  offset: number;
  /** Length of the chunk. */
  length: number;
  /** Chunk id. */
  id: Uint8Array;
  /** Object type tag. */
  type: ObjectTypeTag;
}

/** Why one blob of a batch failed: the error's code and message, rebuilt on the other side. */
export type BlobFailure = { ok: false; code: string; message: string };

/** The outcome of one blob of a batch: a view into a transferred buffer, or a failure. */
export type BatchResult =
  | { ok: true; buffer: ArrayBuffer; offset: number; length: number }
  | BlobFailure;

function failureOf(err: unknown): BlobFailure {
  return {
    ok: false,
    code: err instanceof VgerError ? err.code : "internal",
    message: err instanceof Error ? err.message : String(err),
  };
}

/** A reply from a codec worker. */
export type CodecReply =
  | {
    seq: number;
    ok: true;
    data?: Uint8Array;
    batch?: BatchResult[];
    /** verifyBatch: the blobs that failed, by their place in the batch. */
    failures?: (BlobFailure & { index: number })[];
    /**
     * sealHeld: the sealed objects of the jobs, in order, back to back in one buffer (one
     * transfer, not one per chunk: a block may hold thousands of tiny files' chunks)...
     */
    sealed?: Uint8Array;
    /** ...and their lengths... */
    sealedLengths?: Uint32Array;
    /** ...and CRC-32s (the pack records' checksums, computed here, not on the reading thread). */
    sealedCrcs?: Uint32Array;
    /** hashBlock: the chunks' ids, in order, 32 bytes each in one buffer. */
    ids?: Uint8Array;
    /** sha256: the parts, handed back. */
    parts?: Uint8Array[];
  }
  | { seq: number; ok: false; code: string; message: string };

let key: RepoKey | undefined;
/** Stands for an unnamed blob's name in messages until it fails (see VerifyPart.what). */
const UNNAMED = "\u0000blob\u0000";
/** Blocks hashed and waiting for their sealHeld request, by token. */
const held = new Map<number, Uint8Array>();
/** The SHA-256 streams of hashStream requests, by the pool's stream number. */
const streams = new Map<number, Sha256Hasher>();

async function handle(req: Exclude<CodecRequest, { op: "stop" }>): Promise<CodecReply> {
  if (req.op === "init") {
    await loadCodecs();
    key = await RepoKey.fromMaterial(req.material, req.mode);
    return { seq: req.seq, ok: true };
  }
  if (!key) throw new Error("codec worker used before init");
  if (req.op === "encode") {
    const framed = compressFramed(req.data, req.compression, key.sealHead, key.sealTail);
    release(req.data);
    const sealed = await key.sealFramed(req.type, req.id, framed);
    return { seq: req.seq, ok: true, data: sealed };
  }
  if (req.op === "sealHeld") {
    const block = held.get(req.token);
    held.delete(req.token);
    if (!block) throw new VgerError("internal", `Codec worker holds no block ${req.token}`);
    const { ids, layout } = req.jobs;
    const n = layout.length / 3;
    const { sealHead: head, sealTail: tail } = key;
    if (sealsWithin(block, layout, head + 1 + tail)) {
      return await sealWithin(key, req.seq, block, req.jobs, req.compression);
    }
    // else (chunks from the block's start: tests, callers other than backup) each chunk is
    // compressed, framed and sealed in place in a reply buffer, one after the other: room for
    // every chunk as it is (the most compression leaves), no buffer per chunk
    let room = 0;
    for (let i = 0; i < n; i++) room += head + 1 + layout[i * 3 + 1] + tail;
    const sealed = new Uint8Array(room);
    const sealedLengths = new Uint32Array(n);
    const sealedCrcs = new Uint32Array(n);
    let at = 0;
    for (let i = 0; i < n; i++) {
      const offset = layout[i * 3], length = layout[i * 3 + 1], type = layout[i * 3 + 2];
      const chunk = block.subarray(offset, offset + length);
      const body = compressInto(chunk, req.compression, sealed.subarray(at + head, room - tail));
      const framed = sealed.subarray(at, at + head + body + tail);
      const id = ids.subarray(i * 32, i * 32 + 32);
      await key.sealFramed(type as ObjectTypeTag, id, framed);
      sealedLengths[i] = framed.length;
      sealedCrcs[i] = platform().crc32(framed);
      at += framed.length;
    }
    // the block goes back for the next read: no fresh pages on the reading thread; the sealed
    // objects are a view of the reply's first bytes (the rest is what compression saved)
    return {
      seq: req.seq,
      ok: true,
      sealed: sealed.subarray(0, at),
      sealedLengths,
      sealedCrcs,
      data: block,
    };
  }
  if (req.op === "hashBlock") {
    const { ranges } = req;
    const ids = new Uint8Array(ranges.length / 2 * 32);
    for (let i = 0; i < ranges.length / 2; i++) {
      const offset = ranges[i * 2];
      ids.set(await key.chunkId(req.block.subarray(offset, offset + ranges[i * 2 + 1])), i * 32);
    }
    held.set(req.token, req.block);
    return { seq: req.seq, ok: true, ids };
  }
  if (req.op === "decodeBatch") return decodeBatch(key, req);
  if (req.op === "hashStream") {
    // no await before the update: updates of a stream run in the order they were sent
    let hash = streams.get(req.stream);
    if (!hash) streams.set(req.stream, hash = platform().sha256());
    if (req.bytes) {
      hash.update(req.bytes);
      if (req.back) return { seq: req.seq, ok: true, data: req.bytes };
      release(req.bytes);
    }
    if (!req.digest) return { seq: req.seq, ok: true };
    streams.delete(req.stream);
    return { seq: req.seq, ok: true, data: hash.digest() };
  }
  if (req.op === "sha256") {
    const hash = platform().sha256();
    for (const part of req.parts) hash.update(part);
    return { seq: req.seq, ok: true, data: hash.digest(), parts: req.parts };
  }
  if (req.op === "verify") {
    await verifyOne(key, req);
    return { seq: req.seq, ok: true };
  }
  if (req.op === "verifyBatch") {
    const { bytes, ids, layout } = req;
    const failures: (BlobFailure & { index: number })[] = [];
    const shared = sharedRanges(layout, 4);
    for (let i = 0; i < layout.length / 4; i++) {
      const offset = layout[i * 4], length = layout[i * 4 + 1];
      const rawLength = layout[i * 4 + 2], type = layout[i * 4 + 3];
      const part: VerifyPart = {
        type: type as ObjectTypeTag,
        id: ids.subarray(i * 32, i * 32 + 32),
        sealed: bytes.subarray(offset, offset + length),
        rawLength,
      };
      try {
        await verifyOne(key, part, shared[i] === 0);
      } catch (err) {
        const failure = failureOf(err);
        const what = `${describeBlob(part.id, part.type)} ${req.where ?? ""}`.trimEnd();
        failure.message = failure.message.replaceAll(UNNAMED, what);
        failures.push({ ...failure, index: i });
      }
    }
    // the batch's buffer is this worker's alone: freed now, not at the next collection
    if (bytes.buffer instanceof ArrayBuffer && !bytes.buffer.detached) bytes.buffer.transfer(0);
    return { seq: req.seq, ok: true, failures };
  }
  const plain = await key.open(req.type, req.id, req.sealed, req.what); // none mode: a view
  let data = decompress(plain, req.maxLength, req.what); // codec none: a view into plain
  if (data.buffer === req.sealed.buffer || data.buffer === plain.buffer || !ownsBuffer(data)) {
    const own = data.slice();
    if (data.buffer !== req.sealed.buffer && data.buffer !== plain.buffer) releaseBacking(data);
    data = own;
  }
  release(plain); // release() ignores views, so each buffer is freed once, after its last use
  release(req.sealed);
  return { seq: req.seq, ok: true, data };
}

/**
 * Whether a block's chunks can be sealed over the block itself, from its start: they are in
 * order, apart, and start past `overhead` bytes per chunk (the most a sealed chunk outgrows its
 * chunk), so that the sealed objects before a chunk never reach it before it is read.
 */
function sealsWithin(block: Uint8Array, layout: Uint32Array, overhead: number): boolean {
  const n = layout.length / 3;
  if (n > 0 && layout[0] < n * overhead) return false;
  let end = 0;
  for (let i = 0; i < n; i++) {
    if (layout[i * 3] < end) return false;
    end = layout[i * 3] + layout[i * 3 + 1];
  }
  return end <= block.length;
}

/** A codec worker's buffer for compressed chunks, grown to the largest seen. */
let scratch = new Uint8Array(0);
function scratchOf(length: number): Uint8Array {
  if (scratch.length < length) {
    release(scratch);
    scratch = new Uint8Array(Math.max(64 << 10, 2 ** Math.ceil(Math.log2(length))));
  }
  return scratch;
}

/**
 * Compresses and seals a block's chunks one after the other over the block's own bytes, from its
 * start (see {@linkcode sealsWithin}): the reply is the block, with no buffer of its own (one per
 * block in flight was ~12 MiB each).
 */
async function sealWithin(
  key: RepoKey,
  seq: number,
  block: Uint8Array,
  { ids, layout }: FlatJobs,
  compression: CompressionOptions,
): Promise<CodecReply> {
  const n = layout.length / 3;
  const { sealHead: head, sealTail: tail } = key;
  const sealedLengths = new Uint32Array(n);
  const sealedCrcs = new Uint32Array(n);
  let at = 0;
  for (let i = 0; i < n; i++) {
    const offset = layout[i * 3], length = layout[i * 3 + 1], type = layout[i * 3 + 2];
    const body = compressWithin(block, offset, length, compression, at + head, scratchOf);
    const framed = block.subarray(at, at + head + body + tail);
    await key.sealFramed(type as ObjectTypeTag, ids.subarray(i * 32, i * 32 + 32), framed);
    sealedLengths[i] = framed.length;
    sealedCrcs[i] = platform().crc32(framed);
    at += framed.length;
  }
  return { seq, ok: true, sealed: block.subarray(0, at), sealedLengths, sealedCrcs, data: block };
}

/**
 * Opens, decompresses and re-hashes one blob: the plaintext never travels back to the main
 * thread. Throws IntegrityError naming `what`.
 */
async function verifyOne(key: RepoKey, part: VerifyPart, inPlace = true): Promise<void> {
  const what = part.what ?? UNNAMED;
  // the sealed bytes are this worker's (transferred): decrypted over them, unless shared
  const plain = await key.open(part.type, part.id, part.sealed, what, inPlace);
  // a damaged index may claim any length: never inflate past the largest possible chunk
  const data = decompress(plain, Math.min(part.rawLength, MAX_CHUNK_LIMIT), what);
  try {
    if (data.length !== part.rawLength) {
      throw new IntegrityError(
        `${what} is corrupt: ${data.length} bytes, the index says ${part.rawLength}`,
      );
    }
    if (!bytesEqual(await key.chunkId(data), part.id)) {
      throw new IntegrityError(`${what} is corrupt: its contents do not match its id`);
    }
  } finally {
    if (data.buffer !== plain.buffer && data.buffer !== part.sealed.buffer) releaseBacking(data);
    if (plain.buffer !== part.sealed.buffer) releaseBacking(plain);
    release(part.sealed);
  }
}

/**
 * Which blobs of a verify batch share bytes with another (one record named twice, or records
 * that overlap: a damaged pack or index), by their place in the batch: those are not decrypted in
 * place, which would leave the other only plaintext to open. `stride`: numbers per blob in
 * `layout`, offset and length first.
 */
function sharedRanges(layout: ArrayLike<number>, stride: number): Uint8Array {
  const n = layout.length / stride;
  const shared = new Uint8Array(n);
  const order = Array.from({ length: n }, (_, i) => i)
    .sort((a, b) => layout[a * stride] - layout[b * stride]);
  for (let k = 0; k < n; k++) {
    const i = order[k];
    const end = layout[i * stride] + layout[i * stride + 1];
    for (let j = k + 1; j < n && layout[order[j] * stride] < end; j++) {
      shared[i] = 1;
      shared[order[j]] = 1;
    }
  }
  return shared;
}

async function decodeBatch(
  key: RepoKey,
  req: Extract<CodecRequest, { op: "decodeBatch" }>,
): Promise<CodecReply> {
  const { seq, type, bytes, ids, layout } = req;
  const batch: (Uint8Array | BlobFailure)[] = [];
  const n = layout.length / 3;
  const idSize = ids.length / n;
  for (let i = 0; i < n; i++) {
    const id = ids.subarray(i * idSize, (i + 1) * idSize);
    const offset = layout[i * 3], length = layout[i * 3 + 1], rawLength = layout[i * 3 + 2];
    // names are made here, not on the main thread: one string per chunk adds up there
    const p = { id, offset, length, rawLength, what: `Chunk ${toHex(id)} in pack ${req.packHex}` };
    try {
      const plain = await key.open(
        type,
        p.id,
        bytes.subarray(p.offset, p.offset + p.length),
        p.what,
      ); // (not in place: a chunk stored as it is would then need a copy of its own)
      let data = decompress(plain, p.rawLength, p.what);
      if (data.length !== p.rawLength) {
        throw new IntegrityError(
          `${p.what} is corrupt: ${data.length} bytes, the index says ${p.rawLength}`,
        );
      }
      if (data.buffer === bytes.buffer) data = data.slice(); // none mode and codec none
      else if (data.buffer !== plain.buffer && !ownsBuffer(data)) {
        const own = data.slice();
        releaseBacking(data);
        data = own;
      }
      if (data.buffer !== plain.buffer) release(plain);
      batch.push(data);
    } catch (err) {
      batch.push(failureOf(err));
    }
  }
  release(bytes);
  return { seq, ok: true, batch: shareSmall(batch) };
}

/** Plaintexts smaller than this share one buffer per decodeBatch reply. */
const SHARED_MAX = 64 << 10;

/**
 * The replies of a batch, its small plaintexts copied into one buffer: a reply transfers one
 * buffer for all of them, not one each (restoring 400,000 small files, the posting and receiving
 * of one buffer per file cost the main thread ~3 s).
 */
function shareSmall(results: (Uint8Array | BlobFailure)[]): BatchResult[] {
  let total = 0;
  for (const r of results) if (r instanceof Uint8Array && r.length < SHARED_MAX) total += r.length;
  const shared = new Uint8Array(total);
  let at = 0;
  return results.map((r): BatchResult => {
    if (!(r instanceof Uint8Array)) return r;
    if (r.length >= SHARED_MAX) {
      return { ok: true, buffer: r.buffer as ArrayBuffer, offset: r.byteOffset, length: r.length };
    }
    const offset = at;
    const length = r.length;
    shared.set(r, offset);
    at += length;
    release(r); // after r.length is read: it detaches r
    return { ok: true, buffer: shared.buffer, offset, length };
  });
}

/** The worker's global scope, typed without the deno.worker lib (JSR bans that directive). */
const scope = self as unknown as {
  onmessage: ((e: MessageEvent<CodecRequest>) => void) | null;
  postMessage(message: unknown, transfer: Transferable[]): void;
};

/** Requests being handled (they await between native calls, so several may be under way). */
const active = new Set<Promise<unknown>>();

scope.onmessage = async (e: MessageEvent<CodecRequest>) => {
  const req = e.data;
  if (req.op === "stop") {
    // no native call is under way once every earlier request is done: the pool may then
    // terminate this worker and the process exit without OpenSSL being cleaned up under it
    await Promise.allSettled([...active]);
    scope.postMessage({ seq: req.seq, ok: true }, []);
    return;
  }
  let reply: CodecReply;
  const work = handle(req);
  active.add(work);
  try {
    reply = await work;
  } catch (err) {
    reply = { seq: req.seq, ...failureOf(err) };
  } finally {
    active.delete(work);
  }
  // a set: a block sealed over itself is both `data` and `sealed`
  const transfer = new Set<ArrayBuffer>();
  if (reply.ok && reply.data) transfer.add(reply.data.buffer as ArrayBuffer);
  if (reply.ok && reply.sealed) transfer.add(reply.sealed.buffer as ArrayBuffer);
  if (reply.ok && reply.sealedLengths) transfer.add(reply.sealedLengths.buffer as ArrayBuffer);
  if (reply.ok && reply.sealedCrcs) transfer.add(reply.sealedCrcs.buffer as ArrayBuffer);
  if (reply.ok && reply.ids) transfer.add(reply.ids.buffer as ArrayBuffer);
  if (reply.ok && reply.parts) { for (const b of transferable(reply.parts)) transfer.add(b); }
  if (reply.ok && reply.batch) { for (const r of reply.batch) if (r.ok) transfer.add(r.buffer); }
  scope.postMessage(reply, [...transfer]);
};
