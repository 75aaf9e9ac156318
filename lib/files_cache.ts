/**
 * The files cache: what the last backup of a repository knew about each regular file (size,
 * mtime, ctime, inode, chunk ids), kept on the client, so that a file whose stat is unchanged is
 * not read and chunked again (restic and borg do the same).
 *
 * Safety rules, because a wrong hit would store the wrong contents:
 * - a hit needs size, mtime, ctime and inode all equal; ctime cannot be set back by user tools;
 * - a file whose mtime or ctime is within {@linkcode RACY_NS} of the backup's start is not
 *   recorded: it may change again within the file system's timestamp granularity unnoticed
 *   (git's "racy clean" rule);
 * - the caller uses a hit only when every chunk id is still in the repository's index;
 * - the file carries a SHA-256 of its payload: a damaged cache is ignored, never trusted.
 *
 * Layout: `<cache dir>/<repository id>/files`, mode 0600 (it holds paths and chunk ids):
 * `"VGERFC1\n"` || SHA-256(payload) || payload, where payload is msgpack of
 * `[[path, size, mtime_ns, ctime_ns, ino, ids (32 bytes each, concatenated)], ...]`.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { join } from "node:path";
import { decode, Encoder } from "@msgpack/msgpack";
import { checkMsgpack } from "./msgpack_guard.ts";
import { errorMessage } from "./errors.ts";
import { ID_LENGTH } from "./ids.ts";

/** Stat fields that decide whether a file is unchanged. */
export interface FileStamp {
  /** Size in bytes. */
  size: number;
  /** Modification time, ns. */
  mtimeNs: bigint;
  /** Status change time, ns. */
  ctimeNs: bigint;
  /** Inode. */
  ino: bigint;
}

/** Files changed this close to the backup's start are not recorded (2 s: FAT's granularity). */
export const RACY_NS = 2_000_000_000n;

const MAGIC = new TextEncoder().encode("VGERFC1\n");

type Row = [string, number, bigint, bigint, bigint, Uint8Array];

/** The cache of one repository, loaded from and saved to one file. */
export class FilesCache {
  readonly #path: string;
  readonly #old: Map<string, Row>;
  readonly #next = new Map<string, Row>();
  readonly #startNs: bigint;

  private constructor(path: string, old: Map<string, Row>, startNs: bigint) {
    this.#path = path;
    this.#old = old;
    this.#startNs = startNs;
  }

  /**
   * Loads the cache file at `path` (missing or damaged: an empty cache; `onWarning` hears of
   * damage). `startNs` is the backup's start, for the racy rule.
   */
  static async load(
    path: string,
    options: { startNs?: bigint; onWarning?: (message: string) => void } = {},
  ): Promise<FilesCache> {
    const startNs = options.startNs ?? BigInt(Date.now()) * 1_000_000n;
    let bytes: Uint8Array;
    try {
      bytes = await Deno.readFile(path);
    } catch {
      return new FilesCache(path, new Map(), startNs);
    }
    const rows = parse(bytes);
    if (rows === null) {
      options.onWarning?.(`The files cache ${path} is damaged: every file is read again`);
      return new FilesCache(path, new Map(), startNs);
    }
    return new FilesCache(path, new Map(rows.map((r) => [r[0], r])), startNs);
  }

  /** Entries loaded. */
  get size(): number {
    return this.#old.size;
  }

  /** The chunk ids the last backup stored for `path`, if its stamp is unchanged. */
  lookup(path: string, stamp: FileStamp): Uint8Array[] | null {
    const row = this.#old.get(path);
    if (
      !row || row[1] !== stamp.size || row[2] !== stamp.mtimeNs || row[3] !== stamp.ctimeNs ||
      row[4] !== stamp.ino
    ) return null;
    const ids: Uint8Array[] = [];
    for (let o = 0; o < row[5].length; o += ID_LENGTH) ids.push(row[5].slice(o, o + ID_LENGTH));
    return ids;
  }

  /** Remembers a file backed up now (skipped when it changed too recently to trust its stamp). */
  record(path: string, stamp: FileStamp, ids: readonly Uint8Array[]): void {
    const recent = this.#startNs - RACY_NS;
    if (stamp.mtimeNs >= recent || stamp.ctimeNs >= recent) return;
    const concat = new Uint8Array(ids.length * ID_LENGTH);
    ids.forEach((id, i) => concat.set(id, i * ID_LENGTH));
    this.#next.set(path, [path, stamp.size, stamp.mtimeNs, stamp.ctimeNs, stamp.ino, concat]);
  }

  /**
   * Writes the files recorded in this run (files not seen again are dropped), atomically. A
   * failure is reported, not thrown: the backup itself is committed already.
   */
  async save(options: { onWarning?: (message: string) => void } = {}): Promise<void> {
    const payload = new Encoder({ useBigInt64: true }).encode([...this.#next.values()]);
    const digest = createHash("sha256").update(payload).digest();
    const out = new Uint8Array(MAGIC.length + 32 + payload.length);
    out.set(MAGIC);
    out.set(digest, MAGIC.length);
    out.set(payload, MAGIC.length + 32);
    const dir = this.#path.slice(0, this.#path.lastIndexOf("/"));
    const temp = `${this.#path}.tmp-${crypto.randomUUID().slice(0, 8)}`;
    try {
      await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
      await Deno.writeFile(temp, out, { mode: 0o600 });
      await Deno.rename(temp, this.#path);
    } catch (err) {
      await Deno.remove(temp).catch(() => {});
      options.onWarning?.(`The files cache ${this.#path} was not saved: ${errorMessage(err)}`);
    }
  }
}

/** Rows of a cache file, or null when it is not one or is damaged. */
function parse(bytes: Uint8Array): Row[] | null {
  if (bytes.length < MAGIC.length + 32) return null;
  for (let i = 0; i < MAGIC.length; i++) if (bytes[i] !== MAGIC[i]) return null;
  const digest = bytes.subarray(MAGIC.length, MAGIC.length + 32);
  const payload = bytes.subarray(MAGIC.length + 32);
  const actual = createHash("sha256").update(payload).digest();
  for (let i = 0; i < 32; i++) if (actual[i] !== digest[i]) return null;
  try {
    checkMsgpack(payload, { maxDepth: 2 }, "Files cache");
    const rows = decode(payload, { useBigInt64: true });
    if (!Array.isArray(rows)) return null;
    for (const r of rows) {
      if (
        !Array.isArray(r) || r.length !== 6 || typeof r[0] !== "string" ||
        typeof r[1] !== "number" || typeof r[2] !== "bigint" || typeof r[3] !== "bigint" ||
        typeof r[4] !== "bigint" || !(r[5] instanceof Uint8Array) || r[5].length % ID_LENGTH !== 0
      ) return null;
    }
    return rows as Row[];
  } catch {
    return null;
  }
}

/**
 * The directory of vger's files caches: `$VGER_CACHE_DIR`, else `$XDG_CACHE_HOME/vger`, else
 * `~/.cache/vger`; null when none is known. Each repository's cache is
 * `<dir>/<repository id>/files`.
 */
export function filesCacheDir(env: (name: string) => string | undefined): string | null {
  const own = env("VGER_CACHE_DIR");
  if (own) return own;
  const base = env("XDG_CACHE_HOME") ||
    (env("HOME") ? join(env("HOME")!, ".cache") : undefined);
  return base ? join(base, "vger") : null;
}
