/**
 * The manifest: the list of archives, and the commit point of every backup. Stored sealed
 * (type manifest, identity "manifest") at the key `manifest`; its plaintext is msgpack:
 *   { v: 1, archives: [ { name, id: bin(32), time: ISO-8601 string, hostname, username,
 *                          stats: { files, original, compressed, deduplicated } } ],
 *     counter: uint }
 * `counter` grows by one with every write of the manifest (absent in older repositories: 0); a
 * client that remembers the newest counter it saw can tell an old copy served again.
 *
 * @module
 */

import { decode, encode } from "@msgpack/msgpack";
import { checkMsgpack, type MsgpackLimits } from "./msgpack_guard.ts";
import { IntegrityError, QuotaError } from "./errors.ts";

/** Sizes of one backup. */
export interface ArchiveStats {
  /** Number of items (files, directories, links). */
  files: number;
  /** Bytes of file contents read. */
  original: number;
  /** Bytes after compression of the chunks this archive references. */
  compressed: number;
  /** Bytes this archive added to the repository (new chunks, compressed and sealed). */
  deduplicated: number;
}

/** One archive as the manifest lists it. */
export interface ManifestEntry {
  /** Unique name. */
  name: string;
  /** Archive id (the key is `archives/<hex id>`). */
  id: Uint8Array;
  /** When the backup started (ISO 8601). */
  time: string;
  /** Host that made it. */
  hostname: string;
  /** User that made it. */
  username: string;
  /** Its sizes. */
  stats: ArchiveStats;
}

/** The list of archives. */
export interface Manifest {
  /** Archives, oldest first. */
  archives: ManifestEntry[];
  /** How many times the manifest was written (see lib/known_repos.ts); absent: 0. */
  counter?: number;
}

/** The most archives a manifest may list. */
export const MAX_ARCHIVES = 100_000;
/**
 * The most bytes one manifest entry takes: name, hostname and username of up to 255 bytes each,
 * the id, time and stats take under 250 more.
 */
export const MAX_MANIFEST_ENTRY_BYTES = 1024;
/** The most bytes of a manifest's plaintext a reader accepts (about 98 MiB). */
export const MAX_MANIFEST_BYTES: number = 64 + MAX_ARCHIVES * MAX_MANIFEST_ENTRY_BYTES;
/**
 * The manifest's shape: map > archives array > entry map > stats map, 21 values an entry. One
 * level of slack: an odd value where a stats count belongs still reads as 0.
 */
const MANIFEST_MSGPACK: MsgpackLimits = {
  maxDepth: 5,
  maxLength: MAX_ARCHIVES,
  maxValues: 64 + 32 * MAX_ARCHIVES,
};

/**
 * Encodes a manifest's plaintext; throws QuotaError when readers would refuse it (more than
 * {@linkcode MAX_ARCHIVES} archives or {@linkcode MAX_MANIFEST_BYTES} bytes), before any commit.
 */
export function encodeManifest(m: Manifest): Uint8Array {
  const n = m.archives.length;
  if (n > MAX_ARCHIVES) {
    throw new QuotaError(
      `Cannot list ${n} archives in the manifest: the limit is ${MAX_ARCHIVES} (delete or prune some)`,
    );
  }
  const bytes = encode({ v: 1, archives: m.archives, counter: m.counter ?? 0 });
  if (bytes.length > MAX_MANIFEST_BYTES) {
    throw new QuotaError(
      `Cannot write a manifest of ${bytes.length} bytes: the limit is ${MAX_MANIFEST_BYTES}`,
    );
  }
  return bytes;
}

/** A stored count: a non-negative integer (msgpack may give a bigint), else 0. */
const num = (v: unknown): number => {
  const n = typeof v === "bigint" ? Number(v) : v;
  return Number.isSafeInteger(n) && (n as number) >= 0 ? n as number : 0;
};

/** Parses a manifest's plaintext; throws IntegrityError on anything malformed. */
export function decodeManifest(bytes: Uint8Array): Manifest {
  const bad = (why: string, cause?: unknown) =>
    new IntegrityError(`Manifest is corrupt: ${why}`, { cause });
  let o: unknown;
  if (bytes.length > MAX_MANIFEST_BYTES) {
    throw bad(`${bytes.length} bytes, the limit is ${MAX_MANIFEST_BYTES}`);
  }
  checkMsgpack(bytes, MANIFEST_MSGPACK, "Manifest");
  try {
    o = decode(bytes);
  } catch (cause) {
    throw bad("not msgpack", cause);
  }
  const m = o as { v?: unknown; archives?: unknown; counter?: unknown };
  if (typeof o !== "object" || o === null || m.v !== 1 || !Array.isArray(m.archives)) {
    throw bad("unexpected structure");
  }
  const counter = m.counter === undefined
    ? 0
    : typeof m.counter === "bigint"
    ? Number(m.counter)
    : m.counter;
  if (!Number.isSafeInteger(counter) || (counter as number) < 0) {
    throw bad("the counter is not a non-negative integer");
  }
  const names = new Set<string>();
  const archives = m.archives.map((a: Record<string, unknown>, i: number) => {
    if (
      typeof a !== "object" || a === null || typeof a.name !== "string" ||
      !(a.id instanceof Uint8Array) || a.id.length !== 32 || typeof a.time !== "string" ||
      typeof a.hostname !== "string" || typeof a.username !== "string" ||
      typeof a.stats !== "object" || a.stats === null
    ) throw bad(`archive entry ${i} is malformed`);
    if (names.has(a.name)) throw bad(`archive name "${a.name}" appears twice`);
    names.add(a.name);
    const s = a.stats as Record<string, unknown>;
    return {
      name: a.name,
      id: a.id,
      time: a.time,
      hostname: a.hostname,
      username: a.username,
      stats: {
        files: num(s.files),
        original: num(s.original),
        compressed: num(s.compressed),
        deduplicated: num(s.deduplicated),
      },
    };
  });
  return { archives, counter: counter as number };
}
