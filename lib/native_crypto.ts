/**
 * AES-256-GCM, HMAC-SHA-256 and SHA-256 from OpenSSL's libcrypto (`libcrypto.so.3`) through
 * `Deno.dlopen`. OpenSSL uses AES-NI/VAES and SHA-NI and writes into caller-owned buffers, so a
 * 2 MiB chunk is sealed in place several times faster than Web Crypto, which also allocates a
 * fresh output buffer for every call. Needs `--allow-ffi`; without it, or without libcrypto 3,
 * {@linkcode nativeCrypto} returns null and callers use Web Crypto.
 *
 * Calls are synchronous, run on the calling thread and reuse one OpenSSL context per thread, so
 * they must not be interleaved (they cannot be: each call runs to completion). Each Worker loads
 * its own copy with its own contexts; OpenSSL itself is thread-safe.
 *
 * @example Seal a buffer in place and open it again
 * ```ts ignore
 * import { nativeCrypto } from "./native_crypto.ts";
 *
 * const nc = nativeCrypto();
 * if (nc) {
 *   const key = crypto.getRandomValues(new Uint8Array(32));
 *   const nonce = crypto.getRandomValues(new Uint8Array(12));
 *   const aad = new TextEncoder().encode("chunk 1");
 *   const buf = new Uint8Array(1000 + 16); // plaintext in buf[0..1000), room for the tag
 *   const sealed = nc.aesGcmSeal(key, nonce, aad, buf.subarray(0, 1000), buf); // 1016
 *   const opened = nc.aesGcmOpen(key, nonce, aad, buf.subarray(0, sealed), buf); // 1000
 * }
 * ```
 *
 * @module
 */

import { VgerError } from "./errors.ts";
import type { FastCrypto } from "./platform.ts";
import { LIBCRYPTO, openLibrary } from "./native_library.ts";

/** OpenSSL's AES-256-GCM, HMAC-SHA-256 and SHA-256, working on caller-owned buffers. */
export interface NativeCrypto extends FastCrypto {
  /** SHA-256 (one shot). */
  sha256(data: Uint8Array): Uint8Array;
}

/** Bytes of an AES-256 key. */
export const AES_KEY_LENGTH = 32;
/** Bytes of an AES-GCM nonce (the 96-bit GCM default; other lengths are rejected). */
export const GCM_NONCE_LENGTH = 12;
/** Bytes of an AES-GCM tag. */
export const GCM_TAG_LENGTH = 16;
/** Largest plaintext, ciphertext, AAD or HMAC key of one call: OpenSSL takes them as C ints. */
export const MAX_NATIVE_LENGTH = 0x7fff_ffff;

const EVP_CTRL_GCM_GET_TAG = 0x10;
const EVP_CTRL_GCM_SET_TAG = 0x11;
const SHA256_LENGTH = 32;

const SYMBOLS = {
  EVP_CIPHER_fetch: { parameters: ["pointer", "buffer", "pointer"], result: "pointer" },
  EVP_CIPHER_CTX_new: { parameters: [], result: "pointer" },
  EVP_EncryptInit_ex: {
    parameters: ["pointer", "pointer", "pointer", "buffer", "buffer"],
    result: "i32",
  },
  EVP_EncryptUpdate: {
    parameters: ["pointer", "buffer", "buffer", "buffer", "i32"],
    result: "i32",
  },
  EVP_EncryptFinal_ex: { parameters: ["pointer", "buffer", "buffer"], result: "i32" },
  EVP_DecryptInit_ex: {
    parameters: ["pointer", "pointer", "pointer", "buffer", "buffer"],
    result: "i32",
  },
  EVP_DecryptUpdate: {
    parameters: ["pointer", "buffer", "buffer", "buffer", "i32"],
    result: "i32",
  },
  EVP_DecryptFinal_ex: { parameters: ["pointer", "buffer", "buffer"], result: "i32" },
  EVP_CIPHER_CTX_ctrl: { parameters: ["pointer", "i32", "i32", "buffer"], result: "i32" },
  EVP_MD_fetch: { parameters: ["pointer", "buffer", "pointer"], result: "pointer" },
  EVP_Digest: {
    parameters: ["buffer", "usize", "buffer", "buffer", "pointer", "pointer"],
    result: "i32",
  },
  HMAC_CTX_new: { parameters: [], result: "pointer" },
  HMAC_Init_ex: { parameters: ["pointer", "buffer", "i32", "pointer", "pointer"], result: "i32" },
  HMAC_Update: { parameters: ["pointer", "buffer", "usize"], result: "i32" },
  HMAC_Final: { parameters: ["pointer", "buffer", "buffer"], result: "i32" },
  ERR_get_error: { parameters: [], result: "u64" },
  ERR_error_string_n: { parameters: ["u64", "buffer", "usize"], result: "void" },
  ERR_clear_error: { parameters: [], result: "void" },
} as const;

type Libcrypto = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

// Lazily-initialised cache, one per thread (module instance): undefined = not tried, null = unavailable.
let cached: NativeCrypto | null | undefined;

/** OpenSSL functions, or null when FFI or libcrypto.so.3 is unavailable. Loaded once per thread (each Worker loads its own). */
export function nativeCrypto(): NativeCrypto | null {
  if (cached === undefined) cached = load();
  return cached;
}

function load(): NativeCrypto | null {
  // no FFI, no libcrypto.so.3, or an OpenSSL lacking a symbol: fall back to Web Crypto
  const lib = openLibrary(LIBCRYPTO, SYMBOLS);
  if (!lib) return null;
  try {
    return new OpenSsl(lib.symbols);
  } catch {
    // OpenSSL without AES-256-GCM or SHA-256 (a restricted provider configuration).
    lib.close();
    return null;
  }
}

const encoder = new TextEncoder();

function cString(s: string): Uint8Array<ArrayBuffer> {
  return encoder.encode(s + "\0");
}

function internal(message: string): VgerError {
  return new VgerError("internal", message);
}

// Deno's FFI wants ArrayBuffer-backed views in its types; any view works at run time.
function buf(a: Uint8Array): Uint8Array<ArrayBuffer> {
  return a as Uint8Array<ArrayBuffer>;
}

/** Throws unless `a` is a view of exactly `length` bytes. */
function checkExact(a: Uint8Array, length: number, what: string): void {
  if (a.length !== length) {
    throw internal(`AES-256-GCM ${what} has ${a.length} bytes, expected ${length}`);
  }
}

/** Throws when `n` does not fit OpenSSL's int lengths. */
function checkLength(n: number, what: string): void {
  if (n > MAX_NATIVE_LENGTH) {
    throw internal(`Cannot process ${what} of ${n} bytes: larger than ${MAX_NATIVE_LENGTH} bytes`);
  }
}

/**
 * Throws when the first `n` bytes of `input` and `out` overlap without starting at the same byte:
 * GCM reads ahead (to hash the ciphertext), so only exact in-place operation is safe.
 */
function checkAliasing(input: Uint8Array, out: Uint8Array, n: number, what: string): void {
  if (n === 0 || input.buffer !== out.buffer || input.byteOffset === out.byteOffset) return;
  if (input.byteOffset < out.byteOffset + n && out.byteOffset < input.byteOffset + n) {
    throw internal(
      `Cannot ${what} with AES-256-GCM: input and output overlap at different offsets`,
    );
  }
}

/**
 * The key an OpenSSL context was last initialised with. Re-keying costs more than a small call
 * (AES key schedule and GHASH tables, HMAC pads), and the same key is used for every chunk.
 */
class LastKey {
  #bytes = new Uint8Array(64);
  #length = -1; // -1: the context holds no known key

  /** Whether `key` equals the remembered key. */
  matches(key: Uint8Array): boolean {
    if (key.length !== this.#length) return false;
    const b = this.#bytes;
    for (let i = 0; i < key.length; i++) if (key[i] !== b[i]) return false;
    return true;
  }

  /** Remembers `key` (call after the context took it), or forgets when it does not fit. */
  remember(key: Uint8Array): void {
    if (key.length > this.#bytes.length) this.#length = -1;
    else {
      this.#bytes.set(key);
      this.#length = key.length;
    }
  }

  /** Forgets the key (call before re-keying, so a failed call leaves nothing stale). */
  forget(): void {
    this.#length = -1;
  }
}

class OpenSsl implements NativeCrypto {
  #c: Libcrypto;
  #aes: Deno.PointerObject;
  #sha256: Deno.PointerObject;
  // One cipher and one HMAC context per thread; re-keyed only when the key changes.
  #cipherCtx: Deno.PointerObject;
  #hmacCtx: Deno.PointerObject;
  #aesKey = new LastKey();
  #hmacKey = new LastKey();
  // Scratch for the int out-parameters and the tag, and a non-null stand-in for empty inputs
  // (Deno may pass NULL for an empty view, which HMAC_Init_ex would read as "keep the old key").
  #outLen = new Int32Array(1);
  #tag = new Uint8Array(GCM_TAG_LENGTH);
  #empty = new Uint8Array(1);

  constructor(c: Libcrypto) {
    this.#c = c;
    const aes = c.EVP_CIPHER_fetch(null, cString("AES-256-GCM"), null);
    const sha256 = c.EVP_MD_fetch(null, cString("SHA256"), null);
    const cipherCtx = c.EVP_CIPHER_CTX_new();
    const hmacCtx = c.HMAC_CTX_new();
    if (!aes || !sha256 || !cipherCtx || !hmacCtx) {
      throw internal("Cannot load OpenSSL: AES-256-GCM or SHA-256 is unavailable");
    }
    this.#aes = aes;
    this.#sha256 = sha256;
    this.#cipherCtx = cipherCtx;
    this.#hmacCtx = hmacCtx;
    // Bind the cipher once; later calls pass only key and nonce, which skips re-allocating the
    // GCM state and the implicit algorithm fetch that EVP_aes_256_gcm() costs on every init.
    this.#ok(c.EVP_EncryptInit_ex(cipherCtx, aes, null, null, null), "EVP_EncryptInit_ex");
  }

  aesGcmSeal(
    key: Uint8Array,
    nonce: Uint8Array,
    aad: Uint8Array,
    plaintext: Uint8Array,
    out: Uint8Array,
  ): number {
    checkExact(key, AES_KEY_LENGTH, "key");
    checkExact(nonce, GCM_NONCE_LENGTH, "nonce");
    checkLength(aad.length, "additional data");
    checkLength(plaintext.length, "plaintext");
    const n = plaintext.length;
    if (out.length < n + GCM_TAG_LENGTH) {
      throw internal(`AES-256-GCM output has ${out.length} bytes, needs ${n + GCM_TAG_LENGTH}`);
    }
    checkAliasing(plaintext, out, n, "seal");
    const c = this.#c;
    const ctx = this.#cipherCtx;
    const outLen = this.#outLen;
    this.#ok(
      c.EVP_EncryptInit_ex(ctx, null, null, this.#newAesKey(key), buf(nonce)),
      "EVP_EncryptInit_ex",
    );
    this.#aesKey.remember(key);
    if (aad.length > 0) {
      this.#ok(c.EVP_EncryptUpdate(ctx, null, outLen, buf(aad), aad.length), "EVP_EncryptUpdate");
    }
    if (n > 0) {
      this.#ok(c.EVP_EncryptUpdate(ctx, buf(out), outLen, buf(plaintext), n), "EVP_EncryptUpdate");
      if (outLen[0] !== n) throw internal(`EVP_EncryptUpdate wrote ${outLen[0]} of ${n} bytes`);
    }
    // GCM is a stream mode: Final writes no bytes, but wants a valid pointer.
    this.#ok(c.EVP_EncryptFinal_ex(ctx, this.#tag, outLen), "EVP_EncryptFinal_ex");
    this.#ok(
      c.EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, GCM_TAG_LENGTH, this.#tag),
      "EVP_CIPHER_CTX_ctrl(GET_TAG)",
    );
    out.set(this.#tag, n);
    return n + GCM_TAG_LENGTH;
  }

  aesGcmOpen(
    key: Uint8Array,
    nonce: Uint8Array,
    aad: Uint8Array,
    input: Uint8Array,
    out: Uint8Array,
  ): number {
    checkExact(key, AES_KEY_LENGTH, "key");
    checkExact(nonce, GCM_NONCE_LENGTH, "nonce");
    checkLength(aad.length, "additional data");
    checkLength(input.length, "ciphertext");
    if (input.length < GCM_TAG_LENGTH) return -1; // no room for a tag: cannot be authentic
    const n = input.length - GCM_TAG_LENGTH;
    if (out.length < n) throw internal(`AES-256-GCM output has ${out.length} bytes, needs ${n}`);
    checkAliasing(input, out, n, "open");
    const c = this.#c;
    const ctx = this.#cipherCtx;
    const outLen = this.#outLen;
    // Copied before decrypting, so that writing plaintext cannot clobber the tag.
    this.#tag.set(input.subarray(n));
    this.#ok(
      c.EVP_DecryptInit_ex(ctx, null, null, this.#newAesKey(key), buf(nonce)),
      "EVP_DecryptInit_ex",
    );
    this.#aesKey.remember(key);
    this.#ok(
      c.EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, GCM_TAG_LENGTH, this.#tag),
      "EVP_CIPHER_CTX_ctrl(SET_TAG)",
    );
    if (aad.length > 0) {
      this.#ok(c.EVP_DecryptUpdate(ctx, null, outLen, buf(aad), aad.length), "EVP_DecryptUpdate");
    }
    if (n > 0) {
      this.#ok(c.EVP_DecryptUpdate(ctx, buf(out), outLen, buf(input), n), "EVP_DecryptUpdate");
      if (outLen[0] !== n) throw internal(`EVP_DecryptUpdate wrote ${outLen[0]} of ${n} bytes`);
    }
    if (c.EVP_DecryptFinal_ex(ctx, this.#tag, outLen) > 0) return n;
    // Wrong key, nonce, AAD, ciphertext or tag. Drop whatever OpenSSL queued for this thread,
    // and the unauthenticated plaintext already written.
    c.ERR_clear_error();
    out.fill(0, 0, n);
    return -1;
  }

  hmacSha256(key: Uint8Array, data: Uint8Array, out?: Uint8Array): Uint8Array {
    if (out && out.length !== SHA256_LENGTH) {
      throw internal(`HMAC output has ${out.length} bytes, expected ${SHA256_LENGTH}`);
    }
    checkLength(key.length, "HMAC key");
    const c = this.#c;
    const ctx = this.#hmacCtx;
    if (this.#hmacKey.matches(key)) {
      // A NULL key and digest restart from the pads of the key the context already holds.
      this.#ok(c.HMAC_Init_ex(ctx, null, 0, null, null), "HMAC_Init_ex");
    } else {
      this.#hmacKey.forget();
      // Never NULL here: HMAC_Init_ex would keep the previous key.
      const k = key.length > 0 ? buf(key) : this.#empty;
      this.#ok(c.HMAC_Init_ex(ctx, k, key.length, this.#sha256, null), "HMAC_Init_ex");
      this.#hmacKey.remember(key);
    }
    if (data.length > 0) {
      this.#ok(c.HMAC_Update(ctx, buf(data), BigInt(data.length)), "HMAC_Update");
    }
    const md = out ?? new Uint8Array(SHA256_LENGTH);
    this.#ok(c.HMAC_Final(ctx, buf(md), this.#outLen), "HMAC_Final");
    return md;
  }

  sha256(data: Uint8Array): Uint8Array {
    const md = new Uint8Array(SHA256_LENGTH);
    const d = data.length > 0 ? buf(data) : this.#empty;
    this.#ok(
      this.#c.EVP_Digest(d, BigInt(data.length), md, this.#outLen, this.#sha256, null),
      "EVP_Digest",
    );
    return md;
  }

  /** The key argument of an AES init: NULL keeps the context's key when it is the same one. */
  #newAesKey(key: Uint8Array): Uint8Array<ArrayBuffer> | null {
    if (this.#aesKey.matches(key)) return null;
    this.#aesKey.forget();
    return buf(key);
  }

  /** Throws with OpenSSL's reason when a call returned <= 0; these fail only on misuse or OOM. */
  #ok(result: number, fn: string): void {
    if (result > 0) return;
    const code = this.#c.ERR_get_error();
    let reason = "no reason given";
    if (code) {
      const text = new Uint8Array(256);
      this.#c.ERR_error_string_n(BigInt(code), text, BigInt(text.length));
      const end = text.indexOf(0);
      reason = new TextDecoder().decode(text.subarray(0, end < 0 ? text.length : end));
    }
    this.#c.ERR_clear_error();
    throw internal(`OpenSSL ${fn} failed: ${reason}`);
  }
}
