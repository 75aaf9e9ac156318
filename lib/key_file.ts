/**
 * The key file `keys/repokey`: the repository's key material, wrapped under a key derived from
 * the passphrase with Argon2id (or stored as is in `none` mode).
 *
 * Layout: a msgpack map, then the SHA-256 of that map's bytes (32 bytes). The checksum tells a
 * damaged key file (IntegrityError) apart from a wrong passphrase (DecryptionError).
 *   { v: 1, kdf: "argon2id", t: iterations, m: memory KiB, p: parallelism, salt: bin(16),
 *     nonce: bin(12), key: bin(64 + 16) }        AES-256-GCM(Argon2id(passphrase, salt))
 *   { v: 1, kdf: "none", key: bin(64) }          plaintext mode
 * The AAD of the wrapping is `"vger-repokey" || u32le t || u32le m || u32le p || salt`, so the
 * parameters cannot be lowered by whoever holds the storage without the unwrap failing.
 * On load only t <= 10, m <= 1 GiB and p <= 16 are accepted (a hostile file must not make us
 * spend unbounded time or memory).
 *
 * @module
 */

import { decode, encode } from "@msgpack/msgpack";
import { checkMsgpack } from "./msgpack_guard.ts";
import { aesGcmDecrypt, aesGcmEncrypt, type EncryptionMode, sha256Parts } from "./crypto.ts";
import { KEY_MATERIAL_LENGTH } from "./crypto.ts";
import { DecryptionError, IntegrityError, UsageError } from "./errors.ts";
import { bytesEqual, concatBytes, randomBytes } from "./ids.ts";
import { platform } from "./platform.ts";

/** Argon2id cost parameters. */
export interface KdfParams {
  /** Iterations (t). */
  iterations: number;
  /** Memory in KiB (m). */
  memoryKiB: number;
  /** Lanes (p). */
  parallelism: number;
}

/** The defaults: t=3, m=64 MiB, p=4. */
export const DEFAULT_KDF: Readonly<KdfParams> = { iterations: 3, memoryKiB: 65536, parallelism: 4 };

/** The most bytes of a key file; read with this cap (a real one takes under 300). */
export const MAX_KEY_FILE_BYTES = 4096;

const MAX_T = 10;
const MAX_M = 1024 * 1024;
const MAX_P = 16;

/** Throws UsageError unless the parameters are within the accepted bounds. */
export function validateKdf(k: KdfParams): void {
  const ok = (v: number, lo: number, hi: number) => Number.isInteger(v) && v >= lo && v <= hi;
  if (!ok(k.iterations, 1, MAX_T)) throw new UsageError(`KDF iterations must be 1 to ${MAX_T}`);
  if (!ok(k.parallelism, 1, MAX_P)) throw new UsageError(`KDF parallelism must be 1 to ${MAX_P}`);
  if (!ok(k.memoryKiB, 8 * k.parallelism, MAX_M)) {
    throw new UsageError(`KDF memory must be ${8 * k.parallelism} to ${MAX_M} KiB`);
  }
}

function wrapAad(k: KdfParams, salt: Uint8Array): Uint8Array {
  const head = new TextEncoder().encode("vger-repokey");
  const nums = new Uint8Array(12);
  const dv = new DataView(nums.buffer);
  dv.setUint32(0, k.iterations, true);
  dv.setUint32(4, k.memoryKiB, true);
  dv.setUint32(8, k.parallelism, true);
  return concatBytes([head, nums, salt]);
}

async function deriveWrappingKey(
  passphrase: string,
  salt: Uint8Array,
  k: KdfParams,
): Promise<Uint8Array> {
  return await platform().argon2id(new TextEncoder().encode(passphrase), salt, k);
}

async function withChecksum(body: Uint8Array): Promise<Uint8Array> {
  return concatBytes([body, await sha256Parts([body])]);
}

/** Builds the key file bytes for key material. */
export async function wrapKey(
  material: Uint8Array,
  mode: EncryptionMode,
  passphrase: string | undefined,
  kdf: KdfParams = DEFAULT_KDF,
): Promise<Uint8Array> {
  if (mode === "none") return withChecksum(encode({ v: 1, kdf: "none", key: material }));
  if (passphrase === undefined) throw new UsageError("A passphrase is needed to encrypt the key");
  validateKdf(kdf);
  const salt = randomBytes(16);
  const nonce = randomBytes(12);
  const wk = await deriveWrappingKey(passphrase, salt, kdf);
  const key = await aesGcmEncrypt(wk, nonce, wrapAad(kdf, salt), material);
  return withChecksum(
    encode({
      v: 1,
      kdf: "argon2id",
      t: kdf.iterations,
      m: kdf.memoryKiB,
      p: kdf.parallelism,
      salt,
      nonce,
      key,
    }),
  );
}

/** What a parsed key file holds, before unwrapping. */
export interface ParsedKeyFile {
  /** "argon2id" or "none". */
  kdf: "argon2id" | "none";
  /** Argon2id parameters (argon2id only). */
  params?: KdfParams;
  /** Salt (argon2id only). */
  salt?: Uint8Array;
  /** Nonce (argon2id only). */
  nonce?: Uint8Array;
  /** Wrapped (or, for none, plain) key material. */
  key: Uint8Array;
}

/** A stored value for a message, without calling anything the value defines. */
function show(v: unknown): string {
  return typeof v === "number" || typeof v === "string" || typeof v === "boolean"
    ? String(v)
    : typeof v;
}

function isBytes(v: unknown, len?: number): v is Uint8Array {
  return v instanceof Uint8Array && (len === undefined || v.length === len);
}

/** Options of {@linkcode parseKeyFile}. */
export interface ParseKeyFileOptions {
  /** How messages name the file (default `keys/repokey`; a path for a file being imported). */
  name?: string;
}

/** Parses and checks a key file; throws IntegrityError naming `keys/repokey` on any damage. */
export async function parseKeyFile(
  bytes: Uint8Array,
  options: ParseKeyFileOptions = {},
): Promise<ParsedKeyFile> {
  const name = options.name ?? "keys/repokey";
  const bad = (why: string) => new IntegrityError(`Key file ${name} is corrupt: ${why}`);
  if (bytes.length < 33 || bytes.length > MAX_KEY_FILE_BYTES) {
    throw bad(`unexpected size ${bytes.length}`);
  }
  const body = bytes.subarray(0, bytes.length - 32);
  if (!bytesEqual(await sha256Parts([body]), bytes.subarray(bytes.length - 32))) {
    throw bad("checksum mismatch");
  }
  let obj: unknown;
  checkMsgpack(body, { maxDepth: 1, maxLength: 16 }, `Key file ${name}`);
  try {
    obj = decode(body);
  } catch (cause) {
    throw new IntegrityError(`Key file ${name} is corrupt: not msgpack`, { cause });
  }
  if (typeof obj !== "object" || obj === null) throw bad("not a map");
  const o = obj as Record<string, unknown>;
  if (o.v !== 1) throw bad(`unknown version ${show(o.v)}`);
  if (o.kdf === "none") {
    if (!isBytes(o.key, KEY_MATERIAL_LENGTH)) throw bad("bad key field");
    return { kdf: "none", key: o.key };
  }
  if (o.kdf !== "argon2id") throw bad(`unknown kdf ${show(o.kdf)}`);
  const params = { iterations: o.t, memoryKiB: o.m, parallelism: o.p } as KdfParams;
  try {
    validateKdf(params);
  } catch (cause) {
    throw new IntegrityError(
      `Key file ${name} is corrupt: KDF parameters out of bounds (t=${show(o.t)}, m=${
        show(o.m)
      }, p=${show(o.p)})`,
      { cause },
    );
  }
  if (!isBytes(o.salt, 16) || !isBytes(o.nonce, 12) || !isBytes(o.key, KEY_MATERIAL_LENGTH + 16)) {
    throw bad("bad salt, nonce or key field");
  }
  return { kdf: "argon2id", params, salt: o.salt, nonce: o.nonce, key: o.key };
}

/** Unwraps key material; throws DecryptionError on a wrong passphrase. */
export async function unwrapKey(
  parsed: ParsedKeyFile,
  passphrase: string | undefined,
  location: string,
): Promise<Uint8Array> {
  if (parsed.kdf === "none") return parsed.key;
  if (passphrase === undefined) {
    throw new UsageError(
      `Repository "${location}" is encrypted: set VGER_PASSPHRASE or a passphrase in the config`,
    );
  }
  const wk = await deriveWrappingKey(passphrase, parsed.salt!, parsed.params!);
  const m = await aesGcmDecrypt(
    wk,
    parsed.nonce!,
    wrapAad(parsed.params!, parsed.salt!),
    parsed.key,
  );
  if (m === null) throw new DecryptionError(`Wrong passphrase for repository "${location}"`);
  return m;
}

/** Options of {@linkcode rewrapKeyFile}. */
export interface RewrapOptions {
  /** The passphrase the key file is wrapped under now. */
  passphrase: string;
  /** The passphrase to wrap it under. */
  newPassphrase: string;
  /** Argon2id costs of the new wrapping (default: the file's own). */
  kdf?: KdfParams;
  /** The repository, for messages. */
  location: string;
}

/** A key file wrapped anew, with what it holds. */
export interface RewrappedKey {
  /** The new key file bytes. */
  bytes: Uint8Array;
  /** The key material both the old and the new file hold. */
  material: Uint8Array;
  /** The Argon2id costs of the new wrapping. */
  kdf: KdfParams;
}

/**
 * Wraps the key material of a key file under a new passphrase, with a fresh salt and nonce.
 * The material, and so every object of the repository, stays as it is. Throws DecryptionError
 * when `passphrase` is wrong, IntegrityError when the file is damaged, and UsageError for the
 * key file of an unencrypted repository.
 */
export async function rewrapKeyFile(
  keyFile: Uint8Array,
  options: RewrapOptions,
): Promise<RewrappedKey> {
  const parsed = await parseKeyFile(keyFile);
  if (parsed.kdf === "none") {
    throw new UsageError(
      `Cannot change the passphrase of repository "${options.location}": it is not encrypted`,
    );
  }
  const kdf = { ...(options.kdf ?? parsed.params!) };
  validateKdf(kdf);
  const material = await unwrapKey(parsed, options.passphrase, options.location);
  const bytes = await wrapKey(material, "aes256gcm", options.newPassphrase, kdf);
  return { bytes, material, kdf };
}
