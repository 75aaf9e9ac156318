import { deepStrictEqual, equal, notDeepStrictEqual, ok, rejects } from "node:assert/strict";
import {
  type EncryptionMode,
  ObjectType,
  RepoKey,
  SEAL_OVERHEAD_AES,
  SEAL_OVERHEAD_NONE,
  sha256Parts,
} from "./crypto.ts";
import { IntegrityError } from "./errors.ts";

const MODES: EncryptionMode[] = ["aes256gcm", "none"];
const enc = new TextEncoder();

/** Seeded xorshift32, so a failing case can be replayed. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>>= 0);
  };
}

function randomBytes(next: () => number, n: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = next() >>> 24;
  return out;
}

function concat(...parts: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** A random input (kind 0) or a mutation of `valid`: flips, truncation, insertions, deletions. */
function mutate(valid: Uint8Array, next: () => number, kind: number): Uint8Array {
  switch (kind % 7) {
    case 0:
      return randomBytes(next, next() % (2 * valid.length + 1));
    case 1: {
      const out = valid.slice();
      const flips = 1 + (next() % 4);
      for (let f = 0; f < flips; f++) out[next() % out.length] ^= 1 << (next() % 8);
      return out;
    }
    case 2:
      return valid.slice(0, next() % valid.length);
    case 3: {
      const at = next() % (valid.length + 1);
      return concat(
        valid.subarray(0, at),
        randomBytes(next, 1 + (next() % 40)),
        valid.subarray(at),
      );
    }
    case 4: {
      const at = next() % valid.length;
      return concat(valid.subarray(0, at), valid.subarray(at + 1 + (next() % 40)));
    }
    case 5: {
      const at = next() % (valid.length + 1);
      return concat(valid.subarray(0, at), valid, valid.subarray(at));
    }
    default: {
      const out = valid.slice();
      out[next() % out.length] = [0x00, 0xff, 0x7f, 0x80, 0x01][next() % 5];
      return out;
    }
  }
}

async function assertCorrupt(p: Promise<unknown>, what: string, reason: RegExp): Promise<void> {
  await rejects(p, (err: unknown) => {
    ok(err instanceof IntegrityError, `expected IntegrityError, got ${err}`);
    ok(err.message.startsWith(`${what} is corrupt: `), err.message);
    ok(reason.test(err.message), err.message);
    return true;
  });
}

for (const mode of MODES) {
  Deno.test(`seal then open gives back the plaintext in ${mode} mode`, async () => {
    const key = await RepoKey.generate(mode);
    const next = rng(11);
    for (const size of [0, 1, 31, 1000, 70_000]) {
      const plain = randomBytes(next, size);
      const id = await key.chunkId(plain);
      const sealed = await key.seal(ObjectType.data, id, plain);
      const overhead = mode === "none" ? SEAL_OVERHEAD_NONE : SEAL_OVERHEAD_AES;
      equal(sealed.length, size + overhead);
      equal(sealed[0], ObjectType.data);
      deepStrictEqual(await key.open(ObjectType.data, id, sealed, "chunk"), plain);
    }
    const word = await key.seal(ObjectType.index, "index", enc.encode("hello"));
    deepStrictEqual(await key.open(ObjectType.index, "index", word, "Index"), enc.encode("hello"));
  });

  Deno.test(`open names the object when the type tag is wrong in ${mode} mode`, async () => {
    const key = await RepoKey.generate(mode);
    const sealed = await key.seal(ObjectType.manifest, "manifest", enc.encode("m"));
    await assertCorrupt(
      key.open(ObjectType.index, "manifest", sealed, "Manifest"),
      "Manifest",
      /type tag 4, expected 5/,
    );
    // Rewriting the tag byte does not help: the tag is also in the AAD.
    const retagged = sealed.slice();
    retagged[0] = ObjectType.index;
    await assertCorrupt(
      key.open(ObjectType.index, "manifest", retagged, "Manifest"),
      "Manifest",
      /authentication failed|checksum mismatch/,
    );
  });

  Deno.test(`open fails when the identity (AAD) differs in ${mode} mode`, async () => {
    const key = await RepoKey.generate(mode);
    const a = await key.chunkId(enc.encode("a"));
    const b = await key.chunkId(enc.encode("b"));
    const sealed = await key.seal(ObjectType.data, a, enc.encode("a"));
    await assertCorrupt(
      key.open(ObjectType.data, b, sealed, "Chunk 00ff"),
      "Chunk 00ff",
      /authentication failed|checksum mismatch/,
    );
    const idx = await key.seal(ObjectType.index, "index", enc.encode("x"));
    await assertCorrupt(
      key.open(ObjectType.index, "indey", idx, "Index"),
      "Index",
      /authentication failed|checksum mismatch/,
    );
  });

  Deno.test(`open rejects truncated envelopes in ${mode} mode`, async () => {
    const key = await RepoKey.generate(mode);
    const sealed = await key.seal(ObjectType.archive, "arch", enc.encode("some archive bytes"));
    const overhead = mode === "none" ? SEAL_OVERHEAD_NONE : SEAL_OVERHEAD_AES;
    for (let n = 0; n < sealed.length; n++) {
      await assertCorrupt(
        key.open(ObjectType.archive, "arch", sealed.subarray(0, n), "Archive x"),
        "Archive x",
        n < overhead ? new RegExp(`${n} bytes is too short`) : /authentication failed|checksum/,
      );
    }
  });

  Deno.test(`open rejects every single flipped bit in ${mode} mode`, async () => {
    const key = await RepoKey.generate(mode);
    const sealed = await key.seal(ObjectType.items, "id", enc.encode("items!"));
    for (let bit = 0; bit < sealed.length * 8; bit++) {
      const bad = sealed.slice();
      bad[bit >> 3] ^= 1 << (bit & 7);
      await assertCorrupt(
        key.open(ObjectType.items, "id", bad, "Metadata blob"),
        "Metadata blob",
        /./,
      );
    }
  });

  Deno.test(`a key from the same material opens what another sealed in ${mode} mode`, async () => {
    const a = await RepoKey.generate(mode);
    const b = await RepoKey.fromMaterial(a.material, mode);
    const sealed = await a.seal(ObjectType.data, "x", enc.encode("shared"));
    deepStrictEqual(await b.open(ObjectType.data, "x", sealed, "chunk"), enc.encode("shared"));
    deepStrictEqual(await b.chunkId(enc.encode("q")), await a.chunkId(enc.encode("q")));
  });

  Deno.test(`open throws only IntegrityError on 2,000 random and mutated envelopes in ${mode} mode`, async () => {
    const key = await RepoKey.generate(mode);
    const next = rng(mode === "none" ? 21 : 22);
    const plain = randomBytes(next, 120);
    const valid = await key.seal(ObjectType.data, "fuzz", plain);
    const start = performance.now();
    let accepted = 0;
    for (let i = 0; i < 2_000; i++) {
      const input = mutate(valid, next, i);
      let out: Uint8Array;
      try {
        out = await key.open(ObjectType.data, "fuzz", input, "Chunk fuzz");
      } catch (err) {
        ok(err instanceof IntegrityError, `input ${i}: ${err}`);
        ok(err.message.startsWith("Chunk fuzz is corrupt: "), err.message);
        continue;
      }
      // Only the untouched envelope authenticates (a mutation that restores it, e.g. a no-op set).
      deepStrictEqual(input, valid, `input ${i} was accepted`);
      deepStrictEqual(out, plain);
      accepted++;
    }
    ok(accepted < 2_000);
    ok(performance.now() - start < 20_000);
  });
}

Deno.test("two seals of the same plaintext differ (random nonce) in aes256gcm mode", async () => {
  const key = await RepoKey.generate("aes256gcm");
  const plain = enc.encode("same plaintext twice");
  const one = await key.seal(ObjectType.data, "x", plain);
  const two = await key.seal(ObjectType.data, "x", plain);
  notDeepStrictEqual(one, two);
  notDeepStrictEqual(one.subarray(1, 13), two.subarray(1, 13));
  // The ciphertext does not contain the plaintext.
  ok(!new TextDecoder().decode(one).includes("same plaintext"));
});

Deno.test("plaintext mode stores type, SHA-256(type || identity || plaintext) and the plaintext", async () => {
  const key = await RepoKey.generate("none");
  const plain = enc.encode("visible");
  const sealed = await key.seal(ObjectType.manifest, "manifest", plain);
  equal(sealed[0], ObjectType.manifest);
  const aad = concat(Uint8Array.of(ObjectType.manifest), enc.encode("manifest"));
  deepStrictEqual(sealed.subarray(1, 33), await sha256Parts([aad, plain]));
  deepStrictEqual(sealed.subarray(33), plain);
});

Deno.test("aes256gcm mode stores type, 12-byte nonce, then AES-GCM ciphertext and tag", async () => {
  const key = await RepoKey.generate("aes256gcm");
  const plain = enc.encode("secret bytes");
  const sealed = await key.seal(ObjectType.index, "index", plain);
  equal(sealed[0], ObjectType.index);
  const aes = await crypto.subtle.importKey("raw", key.material.slice(0, 32), "AES-GCM", false, [
    "decrypt",
  ]);
  const out = await crypto.subtle.decrypt(
    {
      name: "AES-GCM",
      iv: sealed.slice(1, 13),
      additionalData: concat(Uint8Array.of(ObjectType.index), enc.encode("index")),
    },
    aes,
    sealed.slice(13),
  );
  deepStrictEqual(new Uint8Array(out), plain);
});

Deno.test("chunk ids are HMAC-SHA-256 under the second half of the key material", async () => {
  const key = await RepoKey.generate("aes256gcm");
  const data = enc.encode("chunk data");
  const mac = await crypto.subtle.importKey(
    "raw",
    key.material.slice(32),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  deepStrictEqual(
    await key.chunkId(data),
    new Uint8Array(await crypto.subtle.sign("HMAC", mac, data)),
  );
  deepStrictEqual(
    await key.deriveSecret("gear"),
    await key.chunkId(enc.encode("vger-derive:gear")),
  );
  notDeepStrictEqual(await key.deriveSecret("gear"), await key.deriveSecret("config"));
});

Deno.test("key material of the wrong length is rejected with IntegrityError", async () => {
  await rejects(RepoKey.fromMaterial(new Uint8Array(63), "none"), IntegrityError);
  await rejects(RepoKey.fromMaterial(new Uint8Array(65), "aes256gcm"), IntegrityError);
});
