/**
 * Keys and the sealed-object envelope that every stored object (chunk, item-stream blob, archive,
 * manifest, index, pack header) is wrapped in.
 *
 * Envelope, encrypted mode (`aes256gcm`):
 *   type u8 | nonce (12 random bytes) | AES-256-GCM ciphertext | 16-byte tag
 * Envelope, plaintext mode (`none`):
 *   type u8 | SHA-256(aad || plaintext) (32 bytes) | plaintext
 * The AAD is `type u8 || identity`, where identity names the object (a chunk id, an archive id,
 * the ASCII word "index", ...), so an object moved or swapped by whoever holds the storage fails
 * authentication.
 *
 * @module
 */

import { IntegrityError } from "./errors.ts";
import { IdSlab, randomBytes, toHex } from "./ids.ts";
import { platform } from "./platform.ts";

/** Type tags of sealed objects. */
export const ObjectType = {
  /** A chunk of file data (in packs). */
  data: 1,
  /** A blob of the archive item stream (in packs). */
  items: 2,
  /** Archive metadata (`archives/<id>`). */
  archive: 3,
  /** The manifest. */
  manifest: 4,
  /** The chunk index. */
  index: 5,
  /** A pack's trailing header. */
  packHeader: 6,
} as const;

/** One of the {@linkcode ObjectType} values. */
export type ObjectTypeTag = typeof ObjectType[keyof typeof ObjectType];

/** Encryption modes of a repository. */
export type EncryptionMode = "aes256gcm" | "none";

/** Length of the key material: 32-byte encryption key, then 32-byte chunk-id key. */
export const KEY_MATERIAL_LENGTH = 64;
/** Bytes an envelope adds in encrypted mode. */
export const SEAL_OVERHEAD_AES = 1 + 12 + 16;
/** Bytes an envelope adds in plaintext mode. */
export const SEAL_OVERHEAD_NONE = 1 + 32;

const encoder = new TextEncoder();

/** The AAD of an object: its type tag, then its identity. */
function aadFor(type: number, identity: Uint8Array | string): Uint8Array {
  const id = typeof identity === "string" ? encoder.encode(identity) : identity;
  const aad = new Uint8Array(1 + id.length);
  aad[0] = type;
  aad.set(id, 1);
  return aad;
}

/**
 * The unlocked key of a repository: seals and opens objects, computes chunk ids. Uses the
 * platform's fast crypto when there is one (under Deno OpenSSL through FFI, lib/native_crypto.ts:
 * ~4 GB/s AES-GCM here, and no fresh buffer per call; see lib/platform.ts) and Web Crypto
 * otherwise; both produce the same bytes.
 */
export class RepoKey {
  /** The raw key material (64 bytes), for handing to workers and wrapping in the key file. */
  readonly material: Uint8Array;
  /** Whether objects are encrypted (false in `none` mode). */
  readonly encrypted: boolean;
  #aes: CryptoKey;
  #idMac: CryptoKey;
  /** The chunk-id key (material[32..64]), one view for every id. */
  #idKey: Uint8Array;
  /** Where chunk ids are written: views of shared slabs, not an ArrayBuffer each. */
  readonly #ids = new IdSlab();

  private constructor(material: Uint8Array, encrypted: boolean, aes: CryptoKey, idMac: CryptoKey) {
    this.material = material;
    this.encrypted = encrypted;
    this.#aes = aes;
    this.#idMac = idMac;
    this.#idKey = material.subarray(32, 64);
  }

  /** Makes a key from 64 bytes of key material. */
  static async fromMaterial(material: Uint8Array, mode: EncryptionMode): Promise<RepoKey> {
    if (material.length !== KEY_MATERIAL_LENGTH) {
      throw new IntegrityError(`Key material has ${material.length} bytes, expected 64`);
    }
    const m = material.slice();
    const aes = await crypto.subtle.importKey("raw", m.subarray(0, 32), "AES-GCM", false, [
      "encrypt",
      "decrypt",
    ]);
    const idMac = await crypto.subtle.importKey(
      "raw",
      m.subarray(32, 64),
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["sign"],
    );
    return new RepoKey(m, mode === "aes256gcm", aes, idMac);
  }

  /** Generates fresh random key material. */
  static generate(mode: EncryptionMode): Promise<RepoKey> {
    return RepoKey.fromMaterial(randomBytes(KEY_MATERIAL_LENGTH), mode);
  }

  /**
   * The id of a chunk: HMAC-SHA-256 of its plaintext under the chunk-id key. It may be a view of
   * a buffer shared with other ids ({@linkcode IdSlab}): copy one that is kept for long.
   */
  async chunkId(data: Uint8Array): Promise<Uint8Array> {
    return this.chunkIdNow(data) ??
      new Uint8Array(await crypto.subtle.sign("HMAC", this.#idMac, data as BufferSource));
  }

  /**
   * {@linkcode chunkId} at once, through OpenSSL; null where only Web Crypto (asynchronous) is
   * there. A backup of many small files hashes most of them here: no promise per file.
   */
  chunkIdNow(data: Uint8Array): Uint8Array | null {
    const native = platform().fastCrypto();
    return native ? native.hmacSha256(this.#idKey, data, this.#ids.next()) : null;
  }

  /** A sub-secret for a named purpose (config MAC, chunker gear table): HMAC(chunk-id key, label). */
  deriveSecret(label: string): Promise<Uint8Array> {
    return this.chunkId(encoder.encode(`vger-derive:${label}`));
  }

  /** Bytes an envelope needs before the plaintext (see {@linkcode sealFramed}). */
  get sealHead(): number {
    return this.encrypted ? 13 : SEAL_OVERHEAD_NONE;
  }

  /** Bytes an envelope needs after the plaintext. */
  get sealTail(): number {
    return this.encrypted ? 16 : 0;
  }

  /** Seals plaintext into an envelope bound to its type and identity. */
  seal(
    type: ObjectTypeTag,
    identity: Uint8Array | string,
    plaintext: Uint8Array,
  ): Promise<Uint8Array> {
    const framed = new Uint8Array(this.sealHead + plaintext.length + this.sealTail);
    framed.set(plaintext, this.sealHead);
    return this.sealFramed(type, identity, framed);
  }

  /**
   * Seals in place: `framed` holds the plaintext between {@linkcode sealHead} spare bytes and
   * {@linkcode sealTail} spare bytes, and becomes the envelope (with OpenSSL, no copy at all).
   */
  async sealFramed(
    type: ObjectTypeTag,
    identity: Uint8Array | string,
    framed: Uint8Array,
  ): Promise<Uint8Array> {
    const aad = aadFor(type, identity);
    const plaintext = framed.subarray(this.sealHead, framed.length - this.sealTail);
    framed[0] = type;
    if (!this.encrypted) {
      framed.set(await sha256Parts([aad, plaintext]), 1);
      return framed;
    }
    const nonce = randomBytes(12);
    framed.set(nonce, 1);
    const native = platform().fastCrypto();
    if (native) {
      native.aesGcmSeal(this.material.subarray(0, 32), nonce, aad, plaintext, framed.subarray(13));
      return framed;
    }
    const ct = new Uint8Array(
      await crypto.subtle.encrypt(
        { name: "AES-GCM", iv: nonce as BufferSource, additionalData: aad as BufferSource },
        this.#aes,
        plaintext as BufferSource,
      ),
    );
    framed.set(ct, 13);
    return framed;
  }

  /**
   * Opens an envelope; `what` names the object in the error (`chunk 3fa0…`, `index`).
   * Throws IntegrityError when the type differs, the envelope is short, or authentication fails.
   * `inPlace`: `sealed` is the caller's to overwrite, and with OpenSSL the plaintext is decrypted
   * over it (a view of it is returned; zeros are left when authentication fails): no buffer per
   * blob in the codec workers.
   */
  async open(
    type: ObjectTypeTag,
    identity: Uint8Array | string,
    sealed: Uint8Array,
    what: string,
    inPlace = false,
  ): Promise<Uint8Array> {
    const overhead = this.encrypted ? SEAL_OVERHEAD_AES : SEAL_OVERHEAD_NONE;
    if (sealed.length < overhead) {
      throw new IntegrityError(`${what} is corrupt: ${sealed.length} bytes is too short`);
    }
    if (sealed[0] !== type) {
      throw new IntegrityError(`${what} is corrupt: type tag ${sealed[0]}, expected ${type}`);
    }
    const aad = aadFor(type, identity);
    if (!this.encrypted) {
      const body = sealed.subarray(SEAL_OVERHEAD_NONE);
      const sum = await sha256Parts([aad, body]);
      for (let i = 0; i < 32; i++) {
        if (sum[i] !== sealed[1 + i]) {
          throw new IntegrityError(`${what} is corrupt: checksum mismatch`);
        }
      }
      return body;
    }
    const native = platform().fastCrypto();
    if (native) {
      const out = inPlace
        ? sealed.subarray(13, sealed.length - 16)
        : new Uint8Array(sealed.length - SEAL_OVERHEAD_AES);
      const n = native.aesGcmOpen(
        this.material.subarray(0, 32),
        sealed.subarray(1, 13),
        aad,
        sealed.subarray(13),
        out,
      );
      if (n < 0) throw new IntegrityError(`${what} is corrupt: authentication failed`);
      return out;
    }
    try {
      return new Uint8Array(
        await crypto.subtle.decrypt(
          {
            name: "AES-GCM",
            iv: sealed.subarray(1, 13) as BufferSource,
            additionalData: aad as BufferSource,
          },
          this.#aes,
          sealed.subarray(13) as BufferSource,
        ),
      );
    } catch (cause) {
      throw new IntegrityError(`${what} is corrupt: authentication failed`, { cause });
    }
  }

  /**
   * The plaintext of an envelope WITHOUT checking its tag or checksum, or null when it is too
   * short: only to learn the id of a blob whose pack header and index entry are both lost (the
   * scan of `check --repair`). The caller must then {@linkcode RepoKey.open} the envelope under
   * that id, which authenticates it; nothing unauthenticated may be used otherwise.
   */
  async peek(sealed: Uint8Array): Promise<Uint8Array | null> {
    if (!this.encrypted) {
      return sealed.length < SEAL_OVERHEAD_NONE ? null : sealed.subarray(SEAL_OVERHEAD_NONE);
    }
    if (sealed.length < SEAL_OVERHEAD_AES) return null;
    // GCM encrypts with AES-CTR from the counter block nonce || 00000002 (NIST SP 800-38D)
    const counter = new Uint8Array(16);
    counter.set(sealed.subarray(1, 13));
    counter[15] = 2;
    const key = await crypto.subtle.importKey(
      "raw",
      this.material.subarray(0, 32) as BufferSource,
      { name: "AES-CTR" },
      false,
      ["decrypt"],
    );
    return new Uint8Array(
      await crypto.subtle.decrypt(
        { name: "AES-CTR", counter: counter as BufferSource, length: 32 },
        key,
        sealed.subarray(13, sealed.length - 16) as BufferSource,
      ),
    );
  }
}

/** SHA-256 of the concatenation of parts. */
export async function sha256Parts(parts: readonly Uint8Array[]): Promise<Uint8Array> {
  let data: Uint8Array;
  if (parts.length === 1) data = parts[0];
  else {
    let n = 0;
    for (const p of parts) n += p.length;
    data = new Uint8Array(n);
    let o = 0;
    for (const p of parts) {
      data.set(p, o);
      o += p.length;
    }
  }
  return new Uint8Array(await crypto.subtle.digest("SHA-256", data as BufferSource));
}

/** HMAC-SHA-256 of data under a raw key. */
export async function hmacSha256(key: Uint8Array, data: Uint8Array): Promise<Uint8Array> {
  const k = await crypto.subtle.importKey(
    "raw",
    key as BufferSource,
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  return new Uint8Array(await crypto.subtle.sign("HMAC", k, data as BufferSource));
}

/** AES-256-GCM encryption under a raw 32-byte key (used to wrap the key file). */
export async function aesGcmEncrypt(
  key: Uint8Array,
  nonce: Uint8Array,
  aad: Uint8Array,
  plaintext: Uint8Array,
): Promise<Uint8Array> {
  const k = await crypto.subtle.importKey("raw", key as BufferSource, "AES-GCM", false, [
    "encrypt",
  ]);
  return new Uint8Array(
    await crypto.subtle.encrypt(
      { name: "AES-GCM", iv: nonce as BufferSource, additionalData: aad as BufferSource },
      k,
      plaintext as BufferSource,
    ),
  );
}

/** AES-256-GCM decryption under a raw key; returns null when authentication fails. */
export async function aesGcmDecrypt(
  key: Uint8Array,
  nonce: Uint8Array,
  aad: Uint8Array,
  ciphertext: Uint8Array,
): Promise<Uint8Array | null> {
  const k = await crypto.subtle.importKey("raw", key as BufferSource, "AES-GCM", false, [
    "decrypt",
  ]);
  try {
    return new Uint8Array(
      await crypto.subtle.decrypt(
        { name: "AES-GCM", iv: nonce as BufferSource, additionalData: aad as BufferSource },
        k,
        ciphertext as BufferSource,
      ),
    );
  } catch {
    return null;
  }
}

/** Names a blob in messages: "Chunk <hex>", "Metadata blob <hex>", or "Blob <hex>" (type unknown). */
export function describeBlob(id: Uint8Array, type?: ObjectTypeTag | number): string {
  return `${type === ObjectType.items ? "Metadata blob" : type === undefined ? "Blob" : "Chunk"} ${
    toHex(id)
  }`;
}
