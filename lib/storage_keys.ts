/**
 * Every storage key of a repository, spelled once: the names of the single objects and, for the
 * objects stored under an id (packs, archives, locks), how a key is built from the id, parsed back
 * and listed. See docs/FORMAT.md for what each object holds.
 *
 * @example
 * ```ts
 * import { packKeyHex, parsePackKey } from "./storage_keys.ts";
 * const hex = "ab".repeat(32);
 * const key = packKeyHex(hex); // "packs/ab/abab..."
 * console.assert(parsePackKey(key) === hex);
 * ```
 *
 * @module
 */

import { isHexId, toHex } from "./ids.ts";

/** The repository config (plain JSON, authenticated by a MAC). */
export const CONFIG_KEY = "config";
/** The key file: the repository's key material, wrapped under the passphrase. */
export const KEY_FILE_KEY = "keys/repokey";
/** The manifest: the list of archives (the commit point). */
export const MANIFEST_KEY = "manifest";
/** The chunk index. */
export const INDEX_KEY = "index";
/** The short exclusive commit lock (lib/lock.ts). */
export const COMMIT_LOCK_KEY = "locks/commit";

/** The prefix of every pack key, to list the packs. */
export const PACKS_PREFIX = "packs/";
/** The prefix of every archive metadata key, to list the archives. */
export const ARCHIVES_PREFIX = "archives/";
/** The prefix of every lock key (the commit lock too), to list the locks. */
export const LOCKS_PREFIX = "locks/";

const PACK_KEY = /^packs\/([0-9a-f]{2})\/([0-9a-f]{64})$/;
const ARCHIVE_KEY = /^archives\/([0-9a-f]{64})$/;

/** The storage key of a pack: `packs/<first two hex digits>/<hex id>`. */
export function packKey(packId: Uint8Array): string {
  return packKeyHex(toHex(packId));
}

/** The storage key of a pack given its hex id: `packs/<first two hex digits>/<hex id>`. */
export function packKeyHex(hex: string): string {
  return `${PACKS_PREFIX}${hex.slice(0, 2)}/${hex}`;
}

/** The hex id of a pack key, or null when the key is not a well-formed pack key. */
export function parsePackKey(key: string): string | null {
  const m = PACK_KEY.exec(key);
  return m && m[2].startsWith(m[1]) ? m[2] : null;
}

/** The storage key of an archive's metadata: `archives/<hex id>`. */
export function archiveKey(archiveId: Uint8Array): string {
  return ARCHIVES_PREFIX + toHex(archiveId);
}

/** The hex id of an archive key, or null when the key is not a well-formed archive key. */
export function parseArchiveKey(key: string): string | null {
  return ARCHIVE_KEY.exec(key)?.[1] ?? null;
}

/** The storage key of a repository lock: `locks/<hex id>`. */
export function lockKey(hexId: string): string {
  return LOCKS_PREFIX + hexId;
}

/**
 * The hex id of a repository lock key, or null when the key is not `locks/<64 hex digits>` (the
 * commit lock {@linkcode COMMIT_LOCK_KEY} included).
 */
export function parseLockKey(key: string): string | null {
  if (!key.startsWith(LOCKS_PREFIX)) return null;
  const id = key.slice(LOCKS_PREFIX.length);
  return isHexId(id) ? id : null;
}
