/**
 * Worker entry: the CPU-heavy per-blob work (compress + seal, open + decompress), so that both
 * cores work while the main thread reads, chunks and writes. Spawned by lib/codec_pool.ts.
 *
 * @module
 */

/// <reference lib="deno.worker" />

import { compress, type CompressionOptions, decompress } from "./compress.ts";
import { type EncryptionMode, type ObjectTypeTag, RepoKey } from "./crypto.ts";
import { VgerError } from "./errors.ts";
import { ownsBuffer, release, releaseBacking } from "./bytes.ts";

/** A request to a codec worker. */
export type CodecRequest =
  | { op: "init"; seq: number; material: Uint8Array; mode: EncryptionMode }
  | {
    op: "encode";
    seq: number;
    type: ObjectTypeTag;
    id: Uint8Array;
    data: Uint8Array;
    compression: CompressionOptions;
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

/** A reply from a codec worker. */
export type CodecReply =
  | { seq: number; ok: true; data?: Uint8Array }
  | { seq: number; ok: false; code: string; message: string };

let key: RepoKey | undefined;

async function handle(req: CodecRequest): Promise<CodecReply> {
  if (req.op === "init") {
    key = await RepoKey.fromMaterial(req.material, req.mode);
    return { seq: req.seq, ok: true };
  }
  if (!key) throw new Error("codec worker used before init");
  if (req.op === "encode") {
    const compressed = compress(req.data, req.compression);
    release(req.data);
    const sealed = await key.seal(req.type, req.id, compressed);
    release(compressed);
    return { seq: req.seq, ok: true, data: sealed };
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

self.onmessage = async (e: MessageEvent<CodecRequest>) => {
  let reply: CodecReply;
  try {
    reply = await handle(e.data);
  } catch (err) {
    reply = {
      seq: e.data.seq,
      ok: false,
      code: err instanceof VgerError ? err.code : "internal",
      message: err instanceof Error ? err.message : String(err),
    };
  }
  const transfer = reply.ok && reply.data ? [reply.data.buffer as ArrayBuffer] : [];
  self.postMessage(reply, transfer);
};
