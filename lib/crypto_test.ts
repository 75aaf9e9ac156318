import { deepStrictEqual, equal, notDeepStrictEqual, ok, rejects } from "node:assert/strict";
import "./platform_deno.ts"; // the native codecs, as the CLI has them
import {
  type EncryptionMode,
  ObjectType,
  RepoKey,
  SEAL_OVERHEAD_AES,
  SEAL_OVERHEAD_NONE,
  sha256Parts,
} from "./crypto.ts";
import { IntegrityError } from "./errors.ts";
import { platform } from "./platform.ts";
import { concat, fuzzCases, FuzzClock, mutate, randomBytes, rng } from "./_fuzz.ts";

const MODES: EncryptionMode[] = ["aes256gcm", "none"];
const enc = new TextEncoder();

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

  Deno.test(`peek reads an envelope's plaintext unchecked, to learn its id, in ${mode} mode`, async () => {
    const key = await RepoKey.generate(mode);
    const next = rng(12);
    for (const size of [0, 1, 16, 17, 1000, 70_000]) {
      const plain = randomBytes(next, size);
      const id = await key.chunkId(plain);
      const sealed = await key.seal(ObjectType.items, id, plain);
      const peeked = (await key.peek(sealed))!;
      deepStrictEqual(new Uint8Array(peeked), plain);
      // the id it hashes to is the one the envelope authenticates under
      deepStrictEqual(
        await key.open(ObjectType.items, await key.chunkId(peeked), sealed, "b"),
        plain,
      );
    }
    equal(await key.peek(new Uint8Array(5)), null, "too short");
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

  Deno.test(`open throws only IntegrityError on random and mutated envelopes in ${mode} mode (fuzz)`, async () => {
    const key = await RepoKey.generate(mode);
    const next = rng(mode === "none" ? 21 : 22);
    const plain = randomBytes(next, 120);
    const valid = await key.seal(ObjectType.data, "fuzz", plain);
    const cases = fuzzCases();
    const clock = new FuzzClock();
    let accepted = 0;
    for (let i = 0; i < cases; i++) {
      clock.lap(i);
      const input = mutate(valid, next, { kind: i });
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
    ok(accepted < cases);
    clock.done();
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

Deno.test("chunk ids handed out from shared slabs stay intact past many more ids and equal Web Crypto's HMAC", async () => {
  const key = await RepoKey.generate("aes256gcm");
  const datas = Array.from({ length: 1200 }, (_, i) => enc.encode(`chunk ${i}`));
  const ids: Uint8Array[] = [];
  for (const d of datas) ids.push(await key.chunkId(d)); // more than one 16 KiB slab of ids
  const idKey = await crypto.subtle.importKey(
    "raw",
    key.material.slice(32, 64) as Uint8Array<ArrayBuffer>,
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  for (const [i, d] of datas.entries()) {
    equal(ids[i].length, 32);
    deepStrictEqual(
      ids[i],
      new Uint8Array(await crypto.subtle.sign("HMAC", idKey, d as Uint8Array<ArrayBuffer>)),
      `id ${i}`,
    );
  }
  ok(ids[0].buffer === ids[1].buffer, "consecutive ids share a buffer");
});

Deno.test("open in place decrypts over the envelope (a view of it) with OpenSSL, refuses a bad one and leaves zeros", async () => {
  const key = await RepoKey.generate("aes256gcm");
  const plain = new TextEncoder().encode("in place ".repeat(1000));
  const sealed = await key.seal(ObjectType.data, "id", plain);
  const opened = await key.open(ObjectType.data, "id", sealed, "chunk x", true);
  deepStrictEqual(opened, plain);
  if (platform().fastCrypto()) {
    equal(opened.buffer, sealed.buffer, "a view of the envelope");
    equal(opened.byteOffset, sealed.byteOffset + 13);
  }
  const bad = await key.seal(ObjectType.data, "id", plain);
  bad[bad.length - 1] ^= 1;
  await rejects(() => key.open(ObjectType.data, "id", bad, "chunk y", true), /chunk y is corrupt/);
  if (platform().fastCrypto()) {
    ok(bad.subarray(13, bad.length - 16).every((b) => b === 0), "no unauthenticated plaintext");
  }
  // without the flag, the envelope is left as it was
  const again = await key.seal(ObjectType.data, "id", plain);
  const copy = again.slice();
  await key.open(ObjectType.data, "id", again, "chunk z");
  deepStrictEqual(again, copy);
});
