import { deepStrictEqual, equal, ok } from "node:assert/strict";
import "./platform_deno.ts"; // the native codecs, as the CLI has them
import { CodecPool } from "./codec_pool.ts";
import { decompress, loadCodecs } from "./compress.ts";
import { ObjectType, RepoKey } from "./crypto.ts";
import { seededBytes } from "./_fuzz.ts";

await loadCodecs();

Deno.test("blocks sealed one after another into reply buffers given back, smaller then larger, all open to their chunks", async () => {
  const key = await RepoKey.generate("aes256gcm");
  const pool = new CodecPool(key.material, "aes256gcm", 1);
  try {
    // (buffers come back as new ArrayBuffer objects: told apart by their sizes)
    const replies: number[] = [];
    // blocks of 64, 256 and 192 KiB: the first reply buffer is too small for the second block
    // (a new one), which is large enough for the third (sealed into again: its size stays)
    for (const [n, size] of [[4, 16 << 10], [8, 32 << 10], [6, 32 << 10]]) {
      const block = seededBytes(n * size, n + size + replies.length);
      const jobs = await Promise.all(
        Array.from({ length: n }, async (_, i) => {
          const chunk = block.subarray(i * size, (i + 1) * size);
          return {
            offset: i * size,
            length: size,
            id: await key.chunkId(chunk),
            type: ObjectType.data,
          };
        }),
      );
      const expected = jobs.map((j) => block.slice(j.offset, j.offset + j.length));
      const ids = jobs.map((j) => j.id.slice());
      const sealed = await pool.encodeBlock(block, jobs, { algorithm: "lz4" });
      equal(sealed.sealed.length, n);
      for (let i = 0; i < n; i++) {
        const plain = await key.open(ObjectType.data, ids[i], sealed.sealed[i], "chunk");
        deepStrictEqual(decompress(plain, size, "chunk"), expected[i]);
      }
      replies.push(sealed.sealed[0].buffer.byteLength);
      sealed.dispose();
    }
    ok(replies[1] > replies[0], "a reply buffer too small is not used");
    equal(replies[2], replies[1], "the third block was sealed into the second one's reply buffer");
  } finally {
    await pool.close();
  }
});
