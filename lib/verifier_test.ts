/**
 * Unit tests of lib/verifier.ts: check with verifyData reads every pack through.
 */

import { deepStrictEqual, equal, ok } from "node:assert/strict";
import "./platform_deno.ts"; // the native codecs, as the CLI has them
import { hasErrors } from "./check_report.ts";
import { checkRepository } from "./checker.ts";
import { CodecPool } from "./codec_pool.ts";
import { loadCodecs } from "./compress.ts";
import { crc32 } from "./pack.ts";
import { toHex } from "./ids.ts";
import { BackendDecorator } from "../backends/decorator.ts";
import { Repository } from "./repository.ts";
import { edit, errors, fixture, kinds, only, packOf, PASS, RANGES } from "./_test_repos.ts";

await loadCodecs();

Deno.test("verifyData through a codec pool reports a flipped bit in a shared chunk", async () => {
  const f = await fixture();
  const pool = new CodecPool(f.repo.key.material, f.repo.config.encryption, 2);
  try {
    deepStrictEqual((await checkRepository(f.repo, { verifyData: true, pool })).problems, []);
    const key = await packOf(f, "c1");
    const loc = (await f.repo.readIndex()).get(f.ids.c1)!;
    await edit(f, key, (b) => {
      b[loc.offset + 100] ^= 0x10;
      return b;
    });
    const r = await checkRepository(f.repo, { verifyData: true, pool });
    const blob = only(r, "corrupt-blob");
    ok(blob.message.includes(key), blob.message);
    ok(blob.message.includes("CRC-32"), blob.message);
    deepStrictEqual(blob.affects, {
      archives: ["a", "b"],
      paths: ["src/a1", "src/b2"],
      pathsTruncated: false,
    });
    only(r, "pack-hash-mismatch");
    ok(hasErrors(r));
  } finally {
    pool.close();
  }
});

Deno.test("verifyData finds a blob whose CRC matches but that does not open", async () => {
  const f = await fixture();
  const key = await packOf(f, "c2");
  const loc = (await f.repo.readIndex()).get(f.ids.c2)!;
  await edit(f, key, (b) => {
    b[loc.offset + 40] ^= 0x01;
    // recompute the record CRC, as a careless tool or a malicious server could
    const obj = b.subarray(loc.offset, loc.offset + loc.length);
    new DataView(b.buffer).setUint32(loc.offset - 4, crc32(obj), true);
    return b;
  });
  deepStrictEqual(errors(await checkRepository(f.repo)), [], "structure is intact");
  for (const pool of [undefined, new CodecPool(f.repo.key.material, "aes256gcm", 1)]) {
    try {
      const r = await checkRepository(f.repo, { verifyData: true, pool });
      const blob = only(r, "corrupt-blob");
      ok(/authentication failed/.test(blob.message), blob.message);
      ok(blob.message.includes(key));
      deepStrictEqual(blob.affects.paths, ["src/a1"]);
    } finally {
      pool?.close();
    }
  }
});

Deno.test("verifyData names each of two blobs that fail in one worker batch", async () => {
  const f = await fixture();
  const index = await f.repo.readIndex();
  // the fixture's chunks are in one pack, so both go to the worker in one batch
  equal(await packOf(f, "c1"), await packOf(f, "c2"));
  for (const name of ["c1", "c2"]) {
    const key = await packOf(f, name);
    const loc = index.get(f.ids[name])!;
    await edit(f, key, (b) => {
      b[loc.offset + 40] ^= 0x01;
      const obj = b.subarray(loc.offset, loc.offset + loc.length);
      new DataView(b.buffer).setUint32(loc.offset - 4, crc32(obj), true);
      return b;
    });
  }
  const pool = new CodecPool(f.repo.key.material, "aes256gcm", 1);
  try {
    const r = await checkRepository(f.repo, { verifyData: true, pool });
    const blobs = r.problems.filter((p) => p.kind === "corrupt-blob").map((p) => p.message);
    deepStrictEqual(
      blobs.map((m) => ["c1", "c2"].find((n) => m.includes(toHex(f.ids[n])))).sort(),
      ["c1", "c2"],
    );
    for (const m of blobs) ok(/authentication failed/.test(m), m);
  } finally {
    pool.close();
  }
});

Deno.test("verifyData with tiny read ranges hashes every byte once", async () => {
  const f = await fixture();
  let packSizes = 0;
  for await (const o of f.backend.list("packs/")) packSizes += o.size;
  for (const readRange of [4093, 65536, 1 << 30]) {
    const r = await checkRepository(f.repo, { verifyData: true, readRange });
    deepStrictEqual(r.problems, [], `readRange ${readRange}`);
    ok(r.stats.bytesRead >= packSizes);
  }
});

Deno.test("a flipped bit in pack data passes the structural check; verifyData finds it", async () => {
  const f = await fixture();
  const key = await packOf(f, "big");
  const loc = (await f.repo.readIndex()).get(f.ids.big)!;
  await edit(f, key, (b) => {
    b[loc.offset + 500_000] ^= 0x80;
    return b;
  });
  deepStrictEqual((await checkRepository(f.repo)).problems, []);
  for (const readRange of RANGES) {
    const r = await checkRepository(f.repo, { verifyData: true, readRange });
    deepStrictEqual(kinds(r), ["error corrupt-blob", "error pack-hash-mismatch"]);
    const blob = only(r, "corrupt-blob");
    ok(blob.message.includes(key) && blob.message.includes("Chunk"), blob.message);
    deepStrictEqual(blob.affects, { archives: ["b"], paths: ["src/b1"], pathsTruncated: false });
  }
});

Deno.test("a zero-filled region is found by verifyData", async () => {
  const f = await fixture();
  const key = await packOf(f, "big");
  const loc = (await f.repo.readIndex()).get(f.ids.big)!;
  await edit(f, key, (b) => {
    b.fill(0, loc.offset + 4096, loc.offset + 8192);
    return b;
  });
  deepStrictEqual(errors(await checkRepository(f.repo)), []);
  for (const readRange of RANGES) {
    const r = await checkRepository(f.repo, { verifyData: true, readRange });
    deepStrictEqual(only(r, "corrupt-blob").affects.paths, ["src/b1"]);
    only(r, "pack-hash-mismatch");
  }
});

Deno.test("plaintext repositories: verifyData re-hashes blobs and finds a flipped bit", async () => {
  const f = await fixture("none");
  deepStrictEqual((await checkRepository(f.repo, { verifyData: true })).problems, []);
  const key = await packOf(f, "c3");
  const loc = (await f.repo.readIndex()).get(f.ids.c3)!;
  await edit(f, key, (b) => {
    b[loc.offset + loc.length - 1] ^= 0x20;
    const obj = b.subarray(loc.offset, loc.offset + loc.length);
    new DataView(b.buffer).setUint32(loc.offset - 4, crc32(obj), true);
    return b;
  });
  const r = await checkRepository(f.repo, { verifyData: true });
  ok(/checksum mismatch/.test(only(r, "corrupt-blob").message));
  deepStrictEqual(only(r, "corrupt-blob").affects.paths, ["src/a2"]);
});

Deno.test("verifyData reads packs at once and reports their problems in the order of the pack ids, whichever finished first", async () => {
  const f = await fixture();
  const keys = [await packOf(f, "c1"), await packOf(f, "big")].sort();
  for (const key of keys) {
    await edit(f, key, (b) => {
      b[b.length >> 1] ^= 0x40; // in the middle of a record: one corrupt blob, a wrong hash
      return b;
    });
  }
  // the first pack's data is read only once the second pack has been read through (its header
  // reads are a range of the tail and one of 9 bytes at offset 0; reading through starts at 0)
  let second = () => {};
  const secondRead = new Promise<void>((resolve) => second = resolve);
  let secondStarted = false;
  let inFlight = 0;
  let most = 0;
  class Slow extends BackendDecorator {
    override async getRange(key: string, offset: number, length: number): Promise<Uint8Array> {
      most = Math.max(most, ++inFlight);
      try {
        const through = offset === 0 && length > 9;
        if (key === keys[0] && through) await Promise.race([secondRead, delay(5000)]);
        const bytes = await this.inner.getRange(key, offset, length);
        if (key === keys[1] && through) secondStarted = true;
        if (
          key === keys[1] && secondStarted && offset + length === await this.inner.size(key)
        ) second();
        return bytes;
      } finally {
        inFlight--;
      }
    }
  }
  const repo = await Repository.open(new Slow(f.backend), { passphrase: PASS });
  const r = await checkRepository(repo, { verifyData: true, readRange: 65536 });
  ok(most > 1, "packs are read at once");
  const order = r.problems.filter((p) => p.kind === "pack-hash-mismatch").map((p) =>
    keys.findIndex((k) => p.message.includes(k))
  );
  deepStrictEqual(order, [0, 1]);
  const blobs = r.problems.filter((p) => p.kind === "corrupt-blob").map((p) =>
    keys.findIndex((k) => p.message.includes(k))
  );
  deepStrictEqual(blobs, [0, 1]);
});

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
