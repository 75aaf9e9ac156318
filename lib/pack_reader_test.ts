import { deepStrictEqual, equal, ok } from "node:assert/strict";
import "./platform_deno.ts"; // the native codecs, as the CLI has them
import { MemoryBackend } from "../backends/memory.ts";
import { ChunkIndex } from "./chunk_index.ts";
import { CodecPool } from "./codec_pool.ts";
import { compress, loadCodecs } from "./compress.ts";
import { ObjectType } from "./crypto.ts";
import { bytesEqual, toHex } from "./ids.ts";
import {
  readLiveRecords,
  readVerifiedRecord,
  RecordBatcher,
  type WantedRecord,
} from "./pack_reader.ts";
import { initRepository, Repository } from "./repository.ts";
import { packKey } from "./storage_keys.ts";
import { WriteSession } from "./write_session.ts";
import { seededBytes } from "./_fuzz.ts";

await loadCodecs();

/** A MemoryBackend that counts range requests. */
class CountingBackend extends MemoryBackend {
  ranges = 0;

  override getRange(key: string, offset: number, length: number): Promise<Uint8Array> {
    this.ranges++;
    return super.getRange(key, offset, length);
  }
}

/** A repository with `n` data blobs of 20 kB in one pack; their records in pack order. */
async function onePack(n: number) {
  const backend = new CountingBackend("memory:reader");
  await initRepository(backend, { encryption: "none" });
  const repo = await Repository.open(backend);
  const session = new WriteSession(repo, new ChunkIndex());
  const data: Uint8Array[] = [];
  for (let i = 0; i < n; i++) {
    const plain = seededBytes(20_000, 40 + i);
    const id = await repo.key.chunkId(plain);
    session.reserve(id);
    const sealed = await repo.key.seal(ObjectType.data, id, compress(plain, { algorithm: "lz4" }));
    await session.add(id, ObjectType.data, sealed, plain.length);
    data.push(plain);
  }
  await session.flush();
  const index = session.added;
  const wanted: WantedRecord[] = [...index.entries()].map(([id, loc]) => ({ id, ...loc }))
    .sort((a, b) => a.offset - b.offset);
  const pack = [...index.entries()][0][1].pack;
  return { backend, repo, index, wanted, pack, data };
}

Deno.test("readLiveRecords reads adjacent records in one range request and verifies each", async () => {
  const { backend, repo, wanted, pack } = await onePack(6);
  backend.ranges = 0;
  const got = [];
  for await (const r of readLiveRecords(repo, pack, wanted)) got.push(r);
  equal(backend.ranges, 1);
  deepStrictEqual(got.map((r) => r.error), wanted.map(() => undefined));
  deepStrictEqual(got.map((r) => toHex(r.wanted.id)), wanted.map((w) => toHex(w.id)));
  const stored = (await backend.get(packKey(pack)))!;
  for (const r of got) {
    ok(bytesEqual(r.sealed!, stored.subarray(r.wanted.offset, r.wanted.offset + r.wanted.length)));
  }
  // ranges of at most maxRange bytes: one record each here
  backend.ranges = 0;
  for await (const _ of readLiveRecords(repo, pack, wanted, { maxRange: 1000 })) { /* read */ }
  equal(backend.ranges, wanted.length);
});

Deno.test("readLiveRecords names the record whose CRC-32 fails and still returns the others", async () => {
  const { backend, repo, wanted, pack } = await onePack(4);
  const key = packKey(pack);
  const bytes = (await backend.get(key))!.slice();
  bytes[wanted[2].offset + 5] ^= 0xff;
  await backend.put(key, bytes);
  const got = [];
  for await (const r of readLiveRecords(repo, pack, wanted)) got.push(r);
  deepStrictEqual(got.map((r) => r.fault ?? null), [null, null, "crc", null]);
  equal(
    got[2].error?.message,
    `Blob ${toHex(wanted[2].id)} in pack ${toHex(pack)} is corrupt: CRC-32 mismatch`,
  );
  // the same record read on its own does not verify either
  const size = bytes.length;
  equal(await readVerifiedRecord(repo, key, size, wanted[2].id, { pack, ...wanted[2] }), null);
  ok(await readVerifiedRecord(repo, key, size, wanted[1].id, { pack, ...wanted[1] }));
});

Deno.test("RecordBatcher reads adjacent records of one pack in one request and opens them in a worker", async () => {
  const { backend, repo, wanted, index } = await onePack(5);
  const pool = new CodecPool(repo.key.material, repo.config.encryption);
  try {
    const batcher = new RecordBatcher(repo, pool, { maxBytes: 8 << 20 });
    backend.ranges = 0;
    const reads = wanted.map((w) => batcher.read(w.id, index.get(w.id)!));
    batcher.flush();
    const plains = await Promise.all(reads);
    equal(backend.ranges, 1);
    for (const [i, w] of wanted.entries()) {
      ok(bytesEqual(await repo.key.chunkId(plains[i]), w.id));
    }
    // a budget of one record's bytes: one request per record
    const small = new RecordBatcher(repo, pool, { maxBytes: wanted[0].length });
    backend.ranges = 0;
    const again = wanted.map((w) => small.read(w.id, index.get(w.id)!));
    small.flush();
    await Promise.all(again);
    equal(backend.ranges, wanted.length);
  } finally {
    await pool.close();
  }
});
