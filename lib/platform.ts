/**
 * What the host lends the portable modules: fast codecs and hashes. The repository read path
 * (pack, compress, crypto and the format modules) uses no `Deno.*` API and no `node:` built-in,
 * so that it also runs in a web browser; it asks {@linkcode platform} for a CRC-32, an
 * incremental SHA-256, the lz4 and zstd codecs and fast AES-GCM/HMAC. The defaults here are
 * portable (pure TypeScript, and Web Crypto in lib/crypto.ts); importing lib/platform_deno.ts
 * installs Deno's native ones (node:zlib, node:crypto, lz4-napi, OpenSSL through FFI), which the
 * CLI, the commands and the codec workers always do.
 *
 * @module
 */

import { VgerError } from "./errors.ts";

/**
 * An lz4 block codec in lz4_flex's size-prepended format (`u32le size || block`), working on
 * buffers the caller owns.
 */
export interface Lz4Codec {
  /**
   * Compresses `data` into `out` as `u32le size || block`; returns the bytes written, or 0 when
   * they would not fit in `out`.
   */
  compressInto(data: Uint8Array, out: Uint8Array): number;
  /**
   * Decompresses `u32le size || block` into `out`, which must be exactly `size` bytes long;
   * throws on malformed input.
   */
  uncompressInto(data: Uint8Array, out: Uint8Array): void;
}

/** The size a `u32le size || block` says, checked against the output it is decoded into. */
export function readLz4Size(data: Uint8Array, out: Uint8Array): number {
  if (data.length < 4) throw new Error("short lz4 block");
  const size = new DataView(data.buffer, data.byteOffset, 4).getUint32(0, true);
  if (size !== out.length) throw new Error(`lz4 size ${size}, expected ${out.length}`);
  return size;
}

/** Writes the `u32le size` that precedes an lz4 block. */
export function lz4SizePrefix(out: Uint8Array, size: number): void {
  new DataView(out.buffer, out.byteOffset, 4).setUint32(0, size, true);
}

/** A zstd codec. */
export interface ZstdCodec {
  /** Compresses into one zstd frame at `level`. */
  compress(data: Uint8Array, level: number): Uint8Array;
  /** Decompresses a zstd frame of at most `maxOutputLength` bytes; throws on malformed input. */
  decompress(frame: Uint8Array, maxOutputLength: number): Uint8Array;
}

/** An incremental SHA-256. */
export interface Sha256Hasher {
  /** Adds bytes (they are not kept: the caller may reuse them afterwards). */
  update(data: Uint8Array): void;
  /** The digest (32 bytes) of everything added; call once. */
  digest(): Uint8Array;
}

/** AES-256-GCM and HMAC-SHA-256 on caller-owned buffers (OpenSSL's: lib/native_crypto.ts). */
export interface FastCrypto {
  /**
   * AES-256-GCM encrypt: writes ciphertext (same length as plaintext) then the 16-byte tag into
   * `out` (out.length must be >= plaintext.length + 16; out may be the same memory as plaintext:
   * in-place), returns plaintext.length + 16. Key 32 bytes, nonce 12 bytes; throws a VgerError
   * (code "internal") on misuse: wrong lengths, short `out`, lengths above 2^31-1, or `out`
   * overlapping the input at a different offset.
   */
  aesGcmSeal(
    key: Uint8Array,
    nonce: Uint8Array,
    aad: Uint8Array,
    plaintext: Uint8Array,
    out: Uint8Array,
  ): number;
  /**
   * Decrypts ciphertext||tag (input.length >= 16) into `out` (>= input.length - 16; may alias
   * input); returns the plaintext length, or -1 when authentication fails (never throws for bad
   * data). On failure the first input.length - 16 bytes of `out` are zeroed, so no
   * unauthenticated plaintext escapes (in place, that destroys the ciphertext).
   */
  aesGcmOpen(
    key: Uint8Array,
    nonce: Uint8Array,
    aad: Uint8Array,
    input: Uint8Array,
    out: Uint8Array,
  ): number;
  /** HMAC-SHA-256 (one shot), into `out` (32 bytes) when given, else into a fresh array. */
  hmacSha256(key: Uint8Array, data: Uint8Array, out?: Uint8Array): Uint8Array;
}

/** Argon2id's costs (lib/key_file.ts's `KdfParams`). */
export interface Argon2Params {
  /** Iterations (t). */
  iterations: number;
  /** Memory in KiB (m). */
  memoryKiB: number;
  /** Lanes (p). */
  parallelism: number;
}

/** The codecs and hashes in use. */
export interface Platform {
  /** CRC-32 (zlib's polynomial) of bytes, as an unsigned number. */
  crc32(data: Uint8Array): number;
  /** A fresh incremental SHA-256. */
  sha256(): Sha256Hasher;
  /** The lz4 codec; the portable one only decompresses. */
  lz4: Lz4Codec;
  /** The zstd codec, or null when none is installed (there is no portable one yet). */
  zstd: ZstdCodec | null;
  /** Fast AES-GCM and HMAC, or null: then lib/crypto.ts uses Web Crypto (same bytes). */
  fastCrypto(): FastCrypto | null;
  /**
   * Argon2id of a UTF-8 passphrase and a salt, 32 bytes. The portable one is hash-wasm's, in this
   * thread; Deno's (lib/kdf_deno.ts) runs off the main thread and frees its memory when done.
   */
  argon2id(password: Uint8Array, salt: Uint8Array, params: Argon2Params): Promise<Uint8Array>;
}

let current: Platform;
let loader: (() => Promise<Partial<Platform>>) | undefined;

/** The codecs and hashes in use: the portable ones unless the host installed others. */
export function platform(): Platform {
  return current;
}

/**
 * Replaces some of the codecs and hashes; `load` (optional) is awaited by
 * {@linkcode loadPlatform} for the parts that load asynchronously (native modules).
 */
export function installPlatform(
  parts: Partial<Platform>,
  load?: () => Promise<Partial<Platform>>,
): void {
  current = { ...current, ...parts };
  if (load) loader = load;
}

/**
 * Awaits the installed loader, if any (lib/compress.ts's `loadCodecs`, called by the codec
 * workers and before an lz4 blob is decompressed in this thread); its errors (a missing Deno
 * permission) reach the caller, and the next call tries again. Once it succeeded, it is not
 * called again.
 */
export async function loadPlatform(): Promise<void> {
  if (!loader) return;
  const load = loader;
  installPlatform(await load());
  if (loader === load) loader = undefined; // loaded: later calls cost nothing
}

// --- portable implementations -------------------------------------------------------------

const CRC_TABLE = (() => {
  const t = new Uint32Array(256 * 4);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c;
  }
  for (let n = 0; n < 256; n++) {
    for (let s = 1; s < 4; s++) {
      t[s * 256 + n] = (t[(s - 1) * 256 + n] >>> 8) ^ t[t[(s - 1) * 256 + n] & 0xff];
    }
  }
  return t;
})();

/** CRC-32 in TypeScript (slicing by 4). */
export function crc32Portable(data: Uint8Array): number {
  const t = CRC_TABLE;
  let c = 0xffffffff;
  let i = 0;
  const n4 = data.length & ~3;
  for (; i < n4; i += 4) {
    c ^= data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24);
    c = t[768 + (c & 0xff)] ^ t[512 + ((c >>> 8) & 0xff)] ^ t[256 + ((c >>> 16) & 0xff)] ^
      t[c >>> 24];
  }
  for (; i < data.length; i++) c = t[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

const K256 = new Uint32Array([
  0x428a2f98,
  0x71374491,
  0xb5c0fbcf,
  0xe9b5dba5,
  0x3956c25b,
  0x59f111f1,
  0x923f82a4,
  0xab1c5ed5,
  0xd807aa98,
  0x12835b01,
  0x243185be,
  0x550c7dc3,
  0x72be5d74,
  0x80deb1fe,
  0x9bdc06a7,
  0xc19bf174,
  0xe49b69c1,
  0xefbe4786,
  0x0fc19dc6,
  0x240ca1cc,
  0x2de92c6f,
  0x4a7484aa,
  0x5cb0a9dc,
  0x76f988da,
  0x983e5152,
  0xa831c66d,
  0xb00327c8,
  0xbf597fc7,
  0xc6e00bf3,
  0xd5a79147,
  0x06ca6351,
  0x14292967,
  0x27b70a85,
  0x2e1b2138,
  0x4d2c6dfc,
  0x53380d13,
  0x650a7354,
  0x766a0abb,
  0x81c2c92e,
  0x92722c85,
  0xa2bfe8a1,
  0xa81a664b,
  0xc24b8b70,
  0xc76c51a3,
  0xd192e819,
  0xd6990624,
  0xf40e3585,
  0x106aa070,
  0x19a4c116,
  0x1e376c08,
  0x2748774c,
  0x34b0bcb5,
  0x391c0cb3,
  0x4ed8aa4a,
  0x5b9cca4f,
  0x682e6ff3,
  0x748f82ee,
  0x78a5636f,
  0x84c87814,
  0x8cc70208,
  0x90befffa,
  0xa4506ceb,
  0xbef9a3f7,
  0xc67178f2,
]);

/** SHA-256 in TypeScript (FIPS 180-4), incremental. */
export class Sha256Portable implements Sha256Hasher {
  #h = new Uint32Array([
    0x6a09e667,
    0xbb67ae85,
    0x3c6ef372,
    0xa54ff53a,
    0x510e527f,
    0x9b05688c,
    0x1f83d9ab,
    0x5be0cd19,
  ]);
  #w = new Uint32Array(64);
  #block = new Uint8Array(64);
  #filled = 0;
  #length = 0;

  /** Adds bytes. */
  update(data: Uint8Array): void {
    this.#length += data.length;
    let i = 0;
    if (this.#filled > 0) {
      const take = Math.min(64 - this.#filled, data.length);
      this.#block.set(data.subarray(0, take), this.#filled);
      this.#filled += take;
      i = take;
      if (this.#filled < 64) return;
      this.#compress(this.#block, 0);
      this.#filled = 0;
    }
    for (; i + 64 <= data.length; i += 64) this.#compress(data, i);
    if (i < data.length) {
      this.#block.set(data.subarray(i));
      this.#filled = data.length - i;
    }
  }

  /** The digest of everything added. */
  digest(): Uint8Array {
    const bits = this.#length * 8;
    const pad = new Uint8Array(((this.#filled + 8) >> 6) * 64 + 64 - this.#filled);
    pad[0] = 0x80;
    const dv = new DataView(pad.buffer);
    dv.setUint32(pad.length - 8, Math.floor(bits / 2 ** 32));
    dv.setUint32(pad.length - 4, bits >>> 0);
    this.update(pad);
    const out = new Uint8Array(32);
    const o = new DataView(out.buffer);
    for (let k = 0; k < 8; k++) o.setUint32(k * 4, this.#h[k]);
    return out;
  }

  #compress(b: Uint8Array, at: number): void {
    const w = this.#w;
    for (let t = 0; t < 16; t++) {
      const j = at + t * 4;
      w[t] = (b[j] << 24) | (b[j + 1] << 16) | (b[j + 2] << 8) | b[j + 3];
    }
    for (let t = 16; t < 64; t++) {
      const x = w[t - 15];
      const y = w[t - 2];
      const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
      const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
      w[t] = w[t - 16] + s0 + w[t - 7] + s1;
    }
    const h = this.#h;
    let [a, bb, c, d, e, f, g, hh] = h;
    for (let t = 0; t < 64; t++) {
      const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      const t1 = (hh + S1 + ((e & f) ^ (~e & g)) + K256[t] + w[t]) | 0;
      const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      const t2 = (S0 + ((a & bb) ^ (a & c) ^ (bb & c))) | 0;
      hh = g;
      g = f;
      f = e;
      e = (d + t1) | 0;
      d = c;
      c = bb;
      bb = a;
      a = (t1 + t2) | 0;
    }
    h[0] += a;
    h[1] += bb;
    h[2] += c;
    h[3] += d;
    h[4] += e;
    h[5] += f;
    h[6] += g;
    h[7] += hh;
  }
}

/** Decodes an lz4 block (`src`) into exactly `size` bytes; throws on malformed input. */
export function lz4DecompressBlock(src: Uint8Array, size: number): Uint8Array {
  const out = new Uint8Array(size);
  lz4DecompressBlockInto(src, out);
  return out;
}

/** Decodes an lz4 block (`src`) into all of `out`; throws on malformed input. */
export function lz4DecompressBlockInto(src: Uint8Array, out: Uint8Array): void {
  const size = out.length;
  let s = 0;
  let o = 0;
  const bad = (why: string) => new Error(`malformed lz4 block: ${why}`);
  while (s < src.length) {
    const token = src[s++];
    let lit = token >>> 4;
    if (lit === 15) {
      let b: number;
      do {
        if (s >= src.length) throw bad("truncated literal length");
        b = src[s++];
        lit += b;
      } while (b === 255);
    }
    if (s + lit > src.length || o + lit > size) throw bad("literals overrun");
    out.set(src.subarray(s, s + lit), o);
    s += lit;
    o += lit;
    if (s === src.length) break; // the last sequence has literals only
    if (s + 2 > src.length) throw bad("truncated offset");
    const offset = src[s] | (src[s + 1] << 8);
    s += 2;
    if (offset === 0 || offset > o) throw bad("offset out of range");
    let len = (token & 15) + 4;
    if ((token & 15) === 15) {
      let b: number;
      do {
        if (s >= src.length) throw bad("truncated match length");
        b = src[s++];
        len += b;
      } while (b === 255);
    }
    if (o + len > size) throw bad("match overruns the output");
    if (offset >= len) out.copyWithin(o, o - offset, o - offset + len);
    else for (let k = 0; k < len; k++) out[o + k] = out[o + k - offset];
    o += len;
  }
  if (o !== size) throw bad(`${o} bytes, expected ${size}`);
}

/** The portable lz4 codec: decompression only. */
const lz4Portable: Lz4Codec = {
  compressInto(): number {
    throw new VgerError(
      "internal",
      "lz4 compression is not available here: it needs the native codec (lib/platform_deno.ts)",
    );
  },
  uncompressInto(data: Uint8Array, out: Uint8Array): void {
    readLz4Size(data, out);
    lz4DecompressBlockInto(data.subarray(4), out);
  },
};

/** Argon2id by hash-wasm (WebAssembly), loaded on first use; see {@linkcode Platform.argon2id}. */
export async function argon2idPortable(
  password: Uint8Array,
  salt: Uint8Array,
  params: Argon2Params,
): Promise<Uint8Array> {
  const { argon2id } = await import("hash-wasm");
  return await argon2id({
    password,
    salt,
    iterations: params.iterations,
    memorySize: params.memoryKiB,
    parallelism: params.parallelism,
    hashLength: 32,
    outputType: "binary",
  });
}

current = {
  argon2id: argon2idPortable,
  crc32: crc32Portable,
  sha256: () => new Sha256Portable(),
  lz4: lz4Portable,
  zstd: null,
  fastCrypto: () => null,
};
