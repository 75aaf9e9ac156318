/**
 * What vger-server lets a client do to a key in append-only mode (docs/SERVER.md, "Append-only"):
 * the class of each key, and the one rule table. Pure: no I/O.
 *
 * @example
 * ```ts
 * import { appendOnlyAllows, keyClass } from "./server_policy.ts";
 *
 * console.log(keyClass("index"), appendOnlyAllows(keyClass("index"), "replace")); // versioned true
 * console.log(appendOnlyAllows(keyClass("keys/repokey"), "delete")); // false
 * ```
 *
 * @module
 */

import {
  ARCHIVES_PREFIX,
  CONFIG_KEY,
  INDEX_KEY,
  LOCKS_PREFIX,
  MANIFEST_KEY,
  parsePackKey,
} from "./storage_keys.ts";

/** The classes of keys the rules tell apart. */
export type KeyClass = "config" | "keys" | "archives" | "pack" | "versioned" | "locks" | "other";

/** What a request does to a key. */
export type KeyOperation = "create" | "replace" | "delete";

/** The class of a repository key. */
export function keyClass(key: string): KeyClass {
  if (key === CONFIG_KEY) return "config";
  if (key === MANIFEST_KEY || key === INDEX_KEY) return "versioned";
  if (key.startsWith("keys/")) return "keys";
  if (key.startsWith(ARCHIVES_PREFIX)) return "archives";
  if (key.startsWith(LOCKS_PREFIX)) return "locks";
  if (parsePackKey(key) !== null) return "pack";
  return "other";
}

/**
 * Whether append-only mode allows `op` on a key of class `cls`. A pack's replace is allowed
 * only with the same bytes (its name is their SHA-256), which the caller checks; a versioned
 * key's replace keeps the replaced version, which the caller does.
 */
export function appendOnlyAllows(cls: KeyClass, op: KeyOperation): boolean {
  if (op === "create" || cls === "locks") return true;
  if (op === "delete") return false;
  return cls === "pack" || cls === "versioned";
}
