import { deepStrictEqual, equal, ok } from "node:assert/strict";
import "./platform_deno.ts"; // the native codecs, as the CLI has them
import { type BlockJob, CodecPool, type SealedBlock, VerifyBatch } from "./codec_pool.ts";
import { compress, type CompressionOptions, decompress, loadCodecs } from "./compress.ts";
import { type EncryptionMode, ObjectType, RepoKey } from "./crypto.ts";
import { seededBytes } from "./_fuzz.ts";

await loadCodecs();

/** Runs `fn` with a new key of `mode` and a pool of one worker holding it, closed after. */
async function withPool(
  mode: EncryptionMode,
  fn: (key: RepoKey, pool: CodecPool) => Promise<void>,
): Promise<void> {
  const key = await RepoKey.generate(mode);
  const pool = new CodecPool(key.material, mode, 1);
  try {
    await fn(key, pool);
  } finally {
    await pool.close();
  }
}

/** Seals `jobs` of `block` in one of the pool's workers (which hashes the block first, as backup has it). */
async function sealBlock(
  pool: CodecPool,
  block: Uint8Array,
  jobs: BlockJob[],
  compression: CompressionOptions,
): Promise<SealedBlock> {
  const held = await pool.hashBlock(block, jobs.map(({ offset, length }) => ({ offset, length })));
  return await held.seal(jobs, compression);
}

for (const mode of ["aes256gcm", "none"] as const) {
  for (const algorithm of ["lz4", "zstd", "none"] as const) {
    Deno.test(`${mode}, ${algorithm}: chunks past room for their growth are sealed over the block itself, and open to their chunks`, async () => {
      await withPool(mode, async (key, pool) => {
        const overhead = key.sealHead + 1 + key.sealTail;
        // tiny and large, compressible and not, with gaps (chunks found stored, not sent)
        const sizes = [1, 7, 200, 40_000, 0, 3, 70_000, 129, 65_536, 11];
        const slack = sizes.length * overhead;
        const block = new Uint8Array(slack + sizes.reduce((a, b) => a + b + 5, 0));
        const jobs = [];
        let at = slack;
        for (const [i, size] of sizes.entries()) {
          const data = i % 2
            ? seededBytes(size, i)
            : new TextEncoder().encode("text ".repeat(size)).subarray(0, size);
          block.set(data, at);
          const id = await key.chunkId(data);
          jobs.push({ offset: at, length: size, id, type: ObjectType.data, data: data.slice() });
          at += size + (i % 3 === 0 ? 5 : 0); // some chunks apart, some back to back
        }
        const { buffer, byteLength } = block;
        const sealed = await sealBlock(pool, block, jobs, { algorithm });
        equal(sealed.block.byteLength, byteLength);
        for (const [i, job] of jobs.entries()) {
          equal(
            sealed.sealed[i].buffer,
            sealed.block.buffer,
            "a view of the block, no reply buffer",
          );
          const plain = await key.open(ObjectType.data, job.id, sealed.sealed[i], "chunk");
          // (zstd's output is a node Buffer: compared as bytes)
          deepStrictEqual(new Uint8Array(decompress(plain, job.length, "chunk")), job.data);
        }
        ok(buffer.detached, "the block went to the worker and back");
        sealed.dispose(); // nothing to give back: the block is the caller's
        equal(sealed.block.byteLength, byteLength);
      });
    });
  }
}

Deno.test("chunks without room before them for their growth are sealed into a reply buffer, the block left as it was", async () => {
  await withPool("aes256gcm", async (key, pool) => {
    const block = seededBytes(64 << 10, 5); // incompressible, from offset 0: no room
    const copy = block.slice();
    const jobs = [0, 1].map((i) => ({
      offset: i * (32 << 10),
      length: 32 << 10,
      type: ObjectType.data,
    }));
    const ids = await Promise.all(
      jobs.map((j) => key.chunkId(block.subarray(j.offset, j.offset + j.length))),
    );
    const sealed = await sealBlock(pool, block, jobs.map((j, i) => ({ ...j, id: ids[i] })), {
      algorithm: "lz4",
    });
    ok(sealed.sealed[0].buffer !== sealed.block.buffer, "a reply buffer of its own");
    deepStrictEqual(sealed.block, copy);
    for (const [i, j] of jobs.entries()) {
      const plain = await key.open(ObjectType.data, ids[i], sealed.sealed[i], "chunk");
      deepStrictEqual(
        decompress(plain, j.length, "chunk"),
        copy.subarray(j.offset, j.offset + j.length),
      );
    }
    sealed.dispose();
  });
});

Deno.test("batches that name one blob twice (a chunk of two files) open both: blobs are decrypted over a verify batch only when no other shares their bytes", async () => {
  await withPool("aes256gcm", async (key, pool) => {
    const chunks = [seededBytes(5000, 1), new TextEncoder().encode("twice ".repeat(300))];
    const ids = await Promise.all(chunks.map((c) => key.chunkId(c)));
    const sealed = await Promise.all(
      chunks.map((c, i) => key.seal(ObjectType.data, ids[i], compress(c, { algorithm: "lz4" }))),
    );
    const bytes = new Uint8Array(sealed[0].length + sealed[1].length);
    bytes.set(sealed[0]);
    bytes.set(sealed[1], sealed[0].length);
    const a = { id: ids[0], offset: 0, length: sealed[0].length, rawLength: chunks[0].length };
    const b = {
      id: ids[1],
      offset: sealed[0].length,
      length: sealed[1].length,
      rawLength: chunks[1].length,
    };
    const decoded = await pool.decodeBatch(ObjectType.data, "ab", bytes.slice(), [b, a, b, a, b]);
    const expected = [chunks[1], chunks[0], chunks[1], chunks[0], chunks[1]];
    decoded.forEach((d, i) => {
      ok(d instanceof Uint8Array, `blob ${i}: ${d}`);
      deepStrictEqual(new Uint8Array(d), expected[i]);
    });
    const batch = new VerifyBatch(8, 1 << 20);
    for (const i of [0, 1, 0]) batch.add(ObjectType.data, ids[i], sealed[i], chunks[i].length);
    equal((await pool.verifyBatch(batch)).size, 0, "no blob reported damaged");
  });
});
