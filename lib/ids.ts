/**
 * Identifiers: 32-byte ids (chunks, packs, archives) and their hex spelling.
 *
 * @module
 */

import { IntegrityError } from "./errors.ts";

/** Length in bytes of every id. */
export const ID_LENGTH = 32;

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

/** Lower-case hex of bytes. */
export function toHex(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i++) s += HEX[bytes[i]];
  return s;
}

/** Bytes of a hex string; throws IntegrityError on anything that is not even-length hex. */
export function fromHex(hex: string): Uint8Array {
  if (hex.length % 2 !== 0 || !/^[0-9a-f]*$/i.test(hex)) {
    throw new IntegrityError(`Invalid hex id "${hex.slice(0, 80)}"`);
  }
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(i * 2, 2), 16);
  return out;
}

/** Whether a string is a 64-character lower-case hex id. */
export function isHexId(s: string): boolean {
  return /^[0-9a-f]{64}$/.test(s);
}

/** Whether two byte arrays are equal. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Cryptographically random bytes (crypto.getRandomValues takes at most 64 KiB a call). */
export function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) {
    crypto.getRandomValues(out.subarray(i, Math.min(n, i + 65536)));
  }
  return out;
}

/** Concatenates byte arrays. */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/**
 * Room for ids, handed out 32 bytes at a time as views of 16 KiB slabs. In V8 every ArrayBuffer
 * costs its allocation and a few hundred bytes beside its contents (backing store, extension, GC
 * tracking); a backup of 400,000 tiny files made one per chunk id (10.5-10.6 s; 9.4-9.7 s with
 * slabs). A kept id keeps its slab (16 KiB) alive: whoever keeps a few ids for long copies them.
 */
export class IdSlab {
  #slab = new Uint8Array(0);
  #at = 0;

  /** A fresh 32-byte view for an id. */
  next(): Uint8Array {
    if (this.#at + ID_LENGTH > this.#slab.length) {
      this.#slab = new Uint8Array(SLAB_BYTES);
      this.#at = 0;
    }
    return this.#slab.subarray(this.#at, this.#at += ID_LENGTH);
  }
}

const SLAB_BYTES = 16 << 10;

/**
 * Ids copied into one buffer of their own, as views of it: for ids kept long (a hard-linked
 * inode's chunks until its last name), which must not keep the slabs or replies they are views of
 * alive.
 */
export function copyIds(ids: readonly Uint8Array[]): Uint8Array[] {
  const all = new Uint8Array(ids.length * ID_LENGTH);
  return ids.map((id, i) => {
    const copy = all.subarray(i * ID_LENGTH, (i + 1) * ID_LENGTH);
    copy.set(id);
    return copy;
  });
}
