import { deepStrictEqual, equal, ok, rejects } from "node:assert/strict";
import { decode, encode } from "@msgpack/msgpack";
import { KEY_MATERIAL_LENGTH, sha256Parts } from "./crypto.ts";
import { DecryptionError, IntegrityError, UsageError } from "./errors.ts";
import { bytesEqual } from "./ids.ts";
import { type KdfParams, parseKeyFile, rewrapKeyFile, unwrapKey, wrapKey } from "./key_file.ts";
import {
  concat,
  footprint,
  fuzzCases,
  FuzzClock,
  hostileMsgpackShapes,
  hugeMsgpackClaims,
  mutate,
  rng,
} from "./_fuzz.ts";

/** The low, fast KDF costs every test repository uses. */
const FAST: KdfParams = { iterations: 1, memoryKiB: 1024, parallelism: 1 };
const LOCATION = "/tmp/test-repo";

/** Bytes a key file parser reads as lengths and msgpack markers. */
const KEY_FILE_SPECIALS = [0x00, 0xff, 0x7f, 0x80, 0x01, 0xc0, 0xdf];

/** Key file bytes for any msgpack value: the encoding, then its SHA-256 (a valid trailer). */
async function keyFileOf(value: unknown): Promise<Uint8Array> {
  const body = encode(value);
  return concat(body, await sha256Parts([body]));
}

function material(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(KEY_MATERIAL_LENGTH));
}

function assertKeyFileCorrupt(reason: RegExp): (err: unknown) => boolean {
  return (err: unknown) => {
    ok(err instanceof IntegrityError, `expected IntegrityError, got ${err}`);
    ok(err.message.includes("keys/repokey"), err.message);
    ok(reason.test(err.message), err.message);
    return true;
  };
}

Deno.test("wrapKey then unwrapKey gives back the key material (argon2id)", async () => {
  const m = material();
  const file = await wrapKey(m, "aes256gcm", "correct horse", FAST);
  const parsed = await parseKeyFile(file);
  equal(parsed.kdf, "argon2id");
  deepStrictEqual(parsed.params, FAST);
  equal(parsed.salt?.length, 16);
  equal(parsed.nonce?.length, 12);
  equal(parsed.key.length, KEY_MATERIAL_LENGTH + 16);
  deepStrictEqual(await unwrapKey(parsed, "correct horse", LOCATION), m);
});

Deno.test("the key file is a msgpack map followed by the SHA-256 of its bytes", async () => {
  const m = material();
  const file = await wrapKey(m, "aes256gcm", "pw", FAST);
  const body = file.subarray(0, file.length - 32);
  deepStrictEqual(file.subarray(file.length - 32), await sha256Parts([body]));
  const o = decode(body) as Record<string, unknown>;
  deepStrictEqual(Object.keys(o), ["v", "kdf", "t", "m", "p", "salt", "nonce", "key"]);
  equal(o.v, 1);
  equal(o.kdf, "argon2id");
  deepStrictEqual([o.t, o.m, o.p], [1, 1024, 1]);
  // The wrapped key is not the material in clear.
  ok(!body.join(",").includes(m.join(",")));
});

Deno.test("the key file of a plaintext repository holds the material as is", async () => {
  const m = material();
  const file = await wrapKey(m, "none", undefined);
  const parsed = await parseKeyFile(file);
  equal(parsed.kdf, "none");
  deepStrictEqual(await unwrapKey(parsed, undefined, LOCATION), m);
  deepStrictEqual(decode(file.subarray(0, file.length - 32)), { v: 1, kdf: "none", key: m });
});

Deno.test("a wrong passphrase gives DecryptionError naming the repository", async () => {
  const file = await wrapKey(material(), "aes256gcm", "right", FAST);
  await rejects(unwrapKey(await parseKeyFile(file), "wrong", LOCATION), (err: unknown) => {
    ok(err instanceof DecryptionError, `expected DecryptionError, got ${err}`);
    ok(err.message.includes(LOCATION), err.message);
    return true;
  });
});

Deno.test("an encrypted key without a passphrase gives UsageError", async () => {
  const file = await wrapKey(material(), "aes256gcm", "pw", FAST);
  await rejects(unwrapKey(await parseKeyFile(file), undefined, LOCATION), UsageError);
  await rejects(wrapKey(material(), "aes256gcm", undefined, FAST), UsageError);
});

Deno.test("any flipped bit gives IntegrityError mentioning keys/repokey", async () => {
  const file = await wrapKey(material(), "aes256gcm", "pw", FAST);
  for (let bit = 0; bit < file.length * 8; bit += 7) {
    const bad = file.slice();
    bad[bit >> 3] ^= 1 << (bit & 7);
    await rejects(parseKeyFile(bad), assertKeyFileCorrupt(/checksum mismatch/));
  }
});

Deno.test("changed KDF parameters with a recomputed checksum fail the unwrap", async () => {
  const file = await wrapKey(material(), "aes256gcm", "pw", { ...FAST, iterations: 2 });
  const o = decode(file.subarray(0, file.length - 32)) as Record<string, unknown>;
  // Whoever holds the storage lowers t; the AAD binds the parameters, so the unwrap fails.
  const lowered = await keyFileOf({ ...o, t: 1 });
  await rejects(unwrapKey(await parseKeyFile(lowered), "pw", LOCATION), DecryptionError);
  const salted = await keyFileOf({ ...o, salt: new Uint8Array(16) });
  await rejects(unwrapKey(await parseKeyFile(salted), "pw", LOCATION), DecryptionError);
});

Deno.test("KDF parameters above the bounds are rejected on load without running the KDF", async () => {
  const base = {
    v: 1,
    kdf: "argon2id",
    salt: new Uint8Array(16),
    nonce: new Uint8Array(12),
    key: new Uint8Array(KEY_MATERIAL_LENGTH + 16),
  };
  // Each of these would take minutes or gigabytes if the KDF ran; the rejection is immediate.
  const hostile = [
    { t: 11, m: 1 << 20, p: 16 },
    { t: 1_000_000, m: 1024, p: 1 },
    { t: 1, m: (1 << 20) + 1, p: 1 },
    { t: 1, m: 4 << 20, p: 1 },
    { t: 1, m: 1024, p: 17 },
    { t: 0, m: 1024, p: 1 },
    { t: 1, m: 7, p: 1 },
    { t: 1.5, m: 1024, p: 1 },
    { t: -1, m: 1024, p: 1 },
    { t: "3", m: 1024, p: 1 },
    { m: 1024, p: 1 },
  ];
  for (const params of hostile) {
    const file = await keyFileOf({ ...base, ...params });
    const start = performance.now();
    await rejects(parseKeyFile(file), assertKeyFileCorrupt(/KDF parameters out of bounds/));
    ok(performance.now() - start < 200, `${JSON.stringify(params)} took too long`);
  }
  // At the bounds the file parses (the KDF is only run by unwrapKey).
  const edge = await parseKeyFile(await keyFileOf({ ...base, t: 10, m: 1 << 20, p: 16 }));
  deepStrictEqual(edge.params, { iterations: 10, memoryKiB: 1 << 20, parallelism: 16 });
});

Deno.test("malformed fields give IntegrityError mentioning keys/repokey", async () => {
  const m = material();
  const good = {
    v: 1,
    kdf: "argon2id",
    t: 1,
    m: 1024,
    p: 1,
    salt: new Uint8Array(16),
    nonce: new Uint8Array(12),
    key: new Uint8Array(80),
  };
  const cases: [unknown, RegExp][] = [
    [[1, 2, 3], /unknown version/],
    ["a string", /not a map/],
    [null, /not a map/],
    [{ ...good, v: 2 }, /unknown version 2/],
    [{ ...good, kdf: "scrypt" }, /unknown kdf scrypt/],
    [{ ...good, salt: new Uint8Array(15) }, /bad salt, nonce or key/],
    [{ ...good, nonce: "x" }, /bad salt, nonce or key/],
    [{ ...good, key: m }, /bad salt, nonce or key/],
    [{ v: 1, kdf: "none", key: new Uint8Array(63) }, /bad key field/],
    [{ v: 1, kdf: "none" }, /bad key field/],
  ];
  for (const [value, reason] of cases) {
    await rejects(parseKeyFile(await keyFileOf(value)), assertKeyFileCorrupt(reason));
  }
  const notMsgpack = Uint8Array.of(0xc1);
  await rejects(
    parseKeyFile(concat(notMsgpack, await sha256Parts([notMsgpack]))),
    assertKeyFileCorrupt(/not msgpack/),
  );
  await rejects(parseKeyFile(new Uint8Array(32)), assertKeyFileCorrupt(/unexpected size 32/));
  await rejects(parseKeyFile(new Uint8Array(5000)), assertKeyFileCorrupt(/unexpected size 5000/));
});

Deno.test("field values that cannot be turned into text still give IntegrityError", async () => {
  // msgpack maps decode to plain objects, so a hostile file can hold {toString: 0}, which
  // String() cannot convert. The key file is not authenticated (its checksum is plain SHA-256).
  const unprintable = { toString: 0 };
  for (
    const value of [
      { v: unprintable },
      { v: 1, kdf: unprintable },
      { v: 1, kdf: "argon2id", t: unprintable, m: 1024, p: 1 },
    ]
  ) {
    await rejects(parseKeyFile(await keyFileOf(value)), assertKeyFileCorrupt(/./));
  }
});

Deno.test("rewrapKeyFile wraps the same material under the new passphrase only", async () => {
  const m = material();
  const old = await wrapKey(m, "aes256gcm", "old pass", FAST);
  const next = await rewrapKeyFile(old, {
    passphrase: "old pass",
    newPassphrase: "new pass",
    location: LOCATION,
  });
  deepStrictEqual(next.material, m);
  const parsed = await parseKeyFile(next.bytes);
  deepStrictEqual(await unwrapKey(parsed, "new pass", LOCATION), m);
  await rejects(unwrapKey(parsed, "old pass", LOCATION), DecryptionError);
  // fresh salt and nonce; by default the file's own KDF costs
  const before = await parseKeyFile(old);
  ok(!bytesEqual(parsed.salt!, before.salt!), "new salt");
  ok(!bytesEqual(parsed.nonce!, before.nonce!), "new nonce");
  deepStrictEqual(parsed.params, FAST);
  deepStrictEqual(next.kdf, FAST);
});

Deno.test("rewrapKeyFile re-salts even under the same passphrase", async () => {
  const old = await wrapKey(material(), "aes256gcm", "pw", FAST);
  const next = await rewrapKeyFile(old, { passphrase: "pw", newPassphrase: "pw", location: "r" });
  ok(!bytesEqual(next.bytes, old));
  deepStrictEqual(await unwrapKey(await parseKeyFile(next.bytes), "pw", "r"), next.material);
});

Deno.test("rewrapKeyFile uses the given KDF costs and checks their bounds before any work", async () => {
  const old = await wrapKey(material(), "aes256gcm", "pw", FAST);
  const costlier = { iterations: 2, memoryKiB: 2048, parallelism: 2 };
  const next = await rewrapKeyFile(old, {
    passphrase: "pw",
    newPassphrase: "pw2",
    kdf: costlier,
    location: LOCATION,
  });
  deepStrictEqual((await parseKeyFile(next.bytes)).params, costlier);
  deepStrictEqual(next.kdf, costlier);
  await rejects(
    rewrapKeyFile(old, {
      passphrase: "pw",
      newPassphrase: "pw2",
      kdf: { ...FAST, iterations: 11 },
      location: LOCATION,
    }),
    UsageError,
  );
});

Deno.test("rewrapKeyFile refuses a wrong passphrase, a damaged file and an unencrypted key", async () => {
  const old = await wrapKey(material(), "aes256gcm", "pw", FAST);
  await rejects(
    rewrapKeyFile(old, { passphrase: "nope", newPassphrase: "x", location: LOCATION }),
    (err: unknown) => {
      ok(err instanceof DecryptionError, `${err}`);
      ok(err.message.includes(LOCATION), err.message);
      return true;
    },
  );
  const damaged = old.slice();
  damaged[10] ^= 0x40;
  await rejects(
    rewrapKeyFile(damaged, { passphrase: "pw", newPassphrase: "x", location: LOCATION }),
    assertKeyFileCorrupt(/checksum mismatch/),
  );
  const plain = await wrapKey(material(), "none", undefined);
  await rejects(
    rewrapKeyFile(plain, { passphrase: "pw", newPassphrase: "x", location: LOCATION }),
    (err: unknown) => {
      ok(err instanceof UsageError, `${err}`);
      ok(err.message.includes(`"${LOCATION}": it is not encrypted`), err.message);
      return true;
    },
  );
});

Deno.test("parseKeyFile names the file as told in its messages", async () => {
  const bad = (await wrapKey(material(), "aes256gcm", "pw", FAST)).slice();
  bad[0] ^= 1;
  await rejects(parseKeyFile(bad, { name: '"/tmp/saved.key"' }), (err: unknown) => {
    ok(err instanceof IntegrityError);
    equal(err.message, 'Key file "/tmp/saved.key" is corrupt: checksum mismatch');
    return true;
  });
});

/**
 * Until parseKeyFile bounds what msgpack preallocates, a key file (4 KiB at most, and only
 * checksummed, so anyone who can write to the storage can forge one) can claim arrays of up to
 * 32 Mi elements, 256 MiB each, nested hundreds of times before the passphrase is even asked.
 * The next test is ignored until the fix; the fuzz test allows 5 s per case meanwhile.
 */
const MSGPACK_PREALLOCATION_FIXED = true;

Deno.test({
  name: "parseKeyFile refuses huge claimed lengths without allocating them",
  ignore: !MSGPACK_PREALLOCATION_FIXED,
  fn: async () => {
    const files = await Promise.all(
      hugeMsgpackClaims().map(async (body) => concat(body, await sha256Parts([body]))),
    );
    const fp = await footprint(async () => {
      for (const file of files) await rejects(parseKeyFile(file), assertKeyFileCorrupt(/./));
    }, 3);
    ok(fp.ms < 2_000, `${fp.ms} ms`);
    ok(fp.grownBytes < 16 << 20, `grew ${fp.grownBytes} bytes`);
  },
});

Deno.test("parseKeyFile throws only IntegrityError, and unwrapKey only DecryptionError, on random and mutated inputs (fuzz)", async () => {
  const m = material();
  const valid = await wrapKey(m, "aes256gcm", "pw", FAST);
  const validBody = valid.subarray(0, valid.length - 32);
  const next = rng(31);
  const cases = fuzzCases();
  const clock = new FuzzClock({
    maxCaseMs: MSGPACK_PREALLOCATION_FIXED ? 500 : 5_000,
    meanCaseMs: 15,
  });
  let parsedCount = 0;
  let unwrapped = 0;
  for (let i = 0; i < cases; i++) {
    clock.lap(i);
    // Odd inputs mutate the msgpack body and recompute the trailer, so the parser behind the
    // checksum is reached; even inputs mutate the whole file.
    const options = { kind: i >> 1, specials: KEY_FILE_SPECIALS };
    const input = i % 16 === 15
      ? hostileMsgpackShapes(1 + next() % 1000)[next() % 7]
      : i % 2 === 0
      ? mutate(valid, next, options)
      : mutate(validBody, next, options);
    const bytes = i % 2 === 0 ? input : concat(input, await sha256Parts([input]));
    let parsed;
    try {
      parsed = await parseKeyFile(bytes);
    } catch (err) {
      ok(err instanceof IntegrityError, `input ${i}: ${err}`);
      ok(err.message.startsWith("Key file keys/repokey is corrupt: "), err.message);
      continue;
    }
    parsedCount++;
    // The KDF is only run on cheap parameters; anything parsed either unwraps or is refused.
    if (
      parsed.kdf === "argon2id" &&
      (parsed.params!.memoryKiB > 4096 || parsed.params!.iterations > 2)
    ) {
      continue;
    }
    try {
      // AES-GCM authenticates: whatever unwraps is the original material.
      deepStrictEqual(await unwrapKey(parsed, "pw", LOCATION), m);
      unwrapped++;
    } catch (err) {
      ok(err instanceof DecryptionError, `input ${i}: ${err}`);
    }
  }
  ok(parsedCount > 0, "some body mutations keep a well-formed map");
  ok(unwrapped < parsedCount, "mutated salts, nonces and keys are refused");
  clock.done();
});
