import { deepStrictEqual, equal, rejects } from "node:assert/strict";
import { argon2idDeno, argon2idInWorker, argon2idLibrary, argon2idMapped } from "./kdf_deno.ts";
import { argon2idPortable } from "./platform.ts";
import { toHex } from "./ids.ts";

const utf8 = (s: string) => new TextEncoder().encode(s);

// the reference implementation's own test vector (phc-winner-argon2 src/test.c: argon2id,
// v=19, t=2, m=2^16, p=1, "password", "somesalt")
const VECTOR = "09316115d5cf24ed5a15a31a3ba326e5cf32edc24702987c02b6566f61913cf7";
const PARAMS = { iterations: 2, memoryKiB: 65536, parallelism: 1 };

Deno.test("libargon2, the KDF worker and hash-wasm give the reference vector", async () => {
  // CI installs libargon2: a null here (the mapped path silently not taken) fails
  const mapped = await argon2idMapped(utf8("password"), utf8("somesalt"), PARAMS);
  equal(mapped === null ? null : toHex(mapped), VECTOR);
  const malloced = await argon2idLibrary(utf8("password"), utf8("somesalt"), PARAMS);
  equal(malloced === null ? null : toHex(malloced), VECTOR);
  equal(toHex(await argon2idDeno(utf8("password"), utf8("somesalt"), PARAMS)), VECTOR);
  equal(toHex(await argon2idInWorker(utf8("password"), utf8("somesalt"), PARAMS)), VECTOR);
  equal(toHex(await argon2idPortable(utf8("password"), utf8("somesalt"), PARAMS)), VECTOR);
});

Deno.test("the KDF paths agree on several lanes and a non-ASCII passphrase", async () => {
  const salt = new Uint8Array(16).fill(7);
  const params = { iterations: 3, memoryKiB: 1024, parallelism: 4 };
  const want = await argon2idPortable(utf8("pässwörd ✓"), salt, params);
  deepStrictEqual(await argon2idMapped(utf8("pässwörd ✓"), salt, params), want);
  deepStrictEqual(await argon2idLibrary(utf8("pässwörd ✓"), salt, params), want);
  deepStrictEqual(await argon2idDeno(utf8("pässwörd ✓"), salt, params), want);
  deepStrictEqual(await argon2idInWorker(utf8("pässwörd ✓"), salt, params), want);
});

Deno.test("a KDF failure is an error, not a hang, on either path", async () => {
  // too little memory for the lanes: libargon2 refuses it, then hash-wasm inside the worker
  const bad = { iterations: 1, memoryKiB: 1, parallelism: 4 };
  await rejects(argon2idInWorker(utf8("x"), new Uint8Array(16), bad), /Key derivation failed/);
  await rejects(argon2idDeno(utf8("x"), new Uint8Array(16), bad), /Key derivation failed/);
});
