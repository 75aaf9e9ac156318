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
 * - the file ends with a SHA-256 of all before it, and every row is bounds-checked: a damaged,
 *   truncated or reordered cache is ignored, never trusted;
 * - a path that is not well-formed UTF-16 (a lone surrogate: two such paths could encode to the
 *   same UTF-8) is neither recorded nor looked up.
 *
 * Memory stays small and flat: the old cache is the file's bytes as read (one buffer) plus an
 * open-addressing table of row offsets (4-8 bytes a file); the new cache is streamed to a
 * temporary file through a 1 MiB buffer while the backup runs, and renamed over the old one by
 * {@linkcode FilesCache.save}.
 *
 * Layout: `<cache dir>/<repository id>/files`, mode 0600 (it holds paths and chunk ids):
 * `"VGERFC2\n"` || rows || row count (u32) || SHA-256 of everything before it. A row, in walk
 * order, integers little-endian: path length (u32) || path (UTF-8) || size (f64) || mtime_ns (i64)
 * || ctime_ns (i64) || inode (u64) || id count (u32) || ids (32 bytes each). The cache of an
 * earlier version (the msgpack `VGERFC1`) is not read, without a warning: every file is read again
 * once.
 *
 * @module
 */

import { createHash, type Hash } from "node:crypto";
import { basename, dirname, join } from "node:path";
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

const MAGIC = new TextEncoder().encode("VGERFC2\n");
/** Row count and SHA-256 at the end of the file. */
const TRAILER = 4 + 32;
/** Bytes of a row besides its path and ids. */
const ROW_FIXED = 4 + 8 + 8 + 8 + 8 + 4;
/** Row offsets are u32: a larger file is not read (a cache of some 30 million files). */
const MAX_FILE = 0xffff_ffff;
/** The new cache is written in pieces of this size. */
const WRITE_BUFFER = 1 << 20;

const encoder = new TextEncoder();

/** The cache of one repository, loaded from and saved to one file. */
export class FilesCache {
  readonly #path: string;
  readonly #startNs: bigint;
  /** The old cache: the file as read, its rows located through #table. */
  readonly #old: Uint8Array;
  readonly #oldView: DataView;
  /** Open addressing: row offset in #old (never 0: rows follow the magic), 0 for an empty slot. */
  readonly #table: Uint32Array;
  readonly #size: number;
  /** A path's UTF-8, reused for each lookup. */
  #scratch = new Uint8Array(1024);
  /** The new cache being written: its temporary file, buffer, running hash and row count. */
  #temp: string | null = null;
  #file: Deno.FsFile | null = null;
  #buf = new Uint8Array(WRITE_BUFFER);
  #bufView = new DataView(this.#buf.buffer);
  #used = 0;
  #hash: Hash = createHash("sha256");
  #rows = 0;
  /** Why the new cache cannot be saved (set once; later records are dropped). */
  #failure: unknown = null;

  private constructor(path: string, startNs: bigint, old?: { bytes: Uint8Array; count: number }) {
    this.#path = path;
    this.#startNs = startNs;
    this.#old = old?.bytes ?? new Uint8Array(0);
    this.#oldView = new DataView(this.#old.buffer, this.#old.byteOffset, this.#old.byteLength);
    let slots = 16;
    while (slots < (old?.count ?? 0) * 2) slots *= 2;
    this.#table = new Uint32Array(old ? slots : 1);
    this.#size = old ? this.#fillTable(old.count) : 0;
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
    await removeDeadTemps(path);
    let bytes: Uint8Array;
    try {
      if ((await Deno.stat(path)).size > MAX_FILE) throw new RangeError("too large");
      bytes = await Deno.readFile(path);
    } catch (err) {
      if (err instanceof RangeError) {
        options.onWarning?.(`The files cache ${path} is too large: every file is read again`);
      }
      return new FilesCache(path, startNs);
    }
    const count = checkFile(bytes);
    if (count === "other version") return new FilesCache(path, startNs); // read again, silently
    if (count === null) {
      options.onWarning?.(`The files cache ${path} is damaged: every file is read again`);
      return new FilesCache(path, startNs);
    }
    return new FilesCache(path, startNs, { bytes, count });
  }

  /** Entries loaded (distinct paths). */
  get size(): number {
    return this.#size;
  }

  /** Puts every row of the checked file in the table (a later row of a path wins); the count. */
  #fillTable(count: number): number {
    const view = this.#oldView;
    let distinct = 0;
    let o = MAGIC.length;
    for (let i = 0; i < count; i++) {
      const len = view.getUint32(o, true);
      const slot = this.#find(this.#old.subarray(o + 4, o + 4 + len));
      if (this.#table[slot] === 0) distinct++;
      this.#table[slot] = o;
      o += ROW_FIXED + len + ID_LENGTH * view.getUint32(o + 4 + len + 32, true);
    }
    return distinct;
  }

  /** The slot of the row of `path` (UTF-8), or the empty slot where it would go. */
  #find(path: Uint8Array): number {
    const table = this.#table;
    const mask = table.length - 1;
    const old = this.#old;
    let slot = fnv1a(path) & mask;
    for (;;) {
      const o = table[slot];
      if (o === 0) return slot;
      if (this.#oldView.getUint32(o, true) === path.length) {
        let same = true;
        for (let i = 0; i < path.length; i++) {
          if (old[o + 4 + i] !== path[i]) {
            same = false;
            break;
          }
        }
        if (same) return slot;
      }
      slot = (slot + 1) & mask;
    }
  }

  /** `path` as UTF-8 (a view of the scratch buffer), or null when it is not well-formed. */
  #utf8(path: string): Uint8Array | null {
    if (!path.isWellFormed()) return null;
    if (this.#scratch.length < path.length * 3) this.#scratch = new Uint8Array(path.length * 3);
    return this.#scratch.subarray(0, encoder.encodeInto(path, this.#scratch).written);
  }

  /** The chunk ids the last backup stored for `path`, if its stamp is unchanged. */
  lookup(path: string, stamp: FileStamp): Uint8Array[] | null {
    if (this.#size === 0) return null;
    const bytes = this.#utf8(path);
    if (bytes === null) return null;
    const o = this.#table[this.#find(bytes)];
    if (o === 0) return null;
    const view = this.#oldView;
    const s = o + 4 + bytes.length;
    if (
      view.getFloat64(s, true) !== stamp.size || view.getBigInt64(s + 8, true) !== stamp.mtimeNs ||
      view.getBigInt64(s + 16, true) !== stamp.ctimeNs ||
      view.getBigUint64(s + 24, true) !== stamp.ino
    ) return null;
    const n = view.getUint32(s + 32, true);
    const ids: Uint8Array[] = [];
    for (let i = 0, at = s + 36; i < n; i++, at += ID_LENGTH) {
      ids.push(this.#old.slice(at, at + ID_LENGTH));
    }
    return ids;
  }

  /** Remembers a file backed up now (skipped when it changed too recently to trust its stamp). */
  record(path: string, stamp: FileStamp, ids: readonly Uint8Array[]): void {
    const recent = this.#startNs - RACY_NS;
    if (stamp.mtimeNs >= recent || stamp.ctimeNs >= recent || this.#failure !== null) return;
    // a stamp the row cannot hold exactly is not recorded (its lookup would then miss)
    if (
      BigInt.asIntN(64, stamp.mtimeNs) !== stamp.mtimeNs ||
      BigInt.asIntN(64, stamp.ctimeNs) !== stamp.ctimeNs ||
      BigInt.asUintN(64, stamp.ino) !== stamp.ino || !Number.isSafeInteger(stamp.size)
    ) return;
    const bytes = this.#utf8(path);
    if (bytes === null) return;
    const rowLength = ROW_FIXED + bytes.length + ids.length * ID_LENGTH;
    try {
      if (this.#buf.length - this.#used < rowLength) this.#flush();
      if (this.#buf.length < rowLength) {
        this.#buf = new Uint8Array(rowLength); // one file of many chunks: a buffer of its size
        this.#bufView = new DataView(this.#buf.buffer);
      }
    } catch (err) {
      this.#fail(err);
      return;
    }
    const buf = this.#buf;
    const view = this.#bufView;
    let o = this.#used;
    view.setUint32(o, bytes.length, true);
    buf.set(bytes, o + 4);
    o += 4 + bytes.length;
    view.setFloat64(o, stamp.size, true);
    view.setBigInt64(o + 8, stamp.mtimeNs, true);
    view.setBigInt64(o + 16, stamp.ctimeNs, true);
    view.setBigUint64(o + 24, stamp.ino, true);
    view.setUint32(o + 32, ids.length, true);
    o += 36;
    for (const id of ids) {
      buf.set(id, o);
      o += ID_LENGTH;
    }
    this.#used = o;
    this.#rows++;
  }

  /** Writes the buffer to the temporary file (created with the first flush) and hashes it. */
  #flush(): void {
    if (this.#file === null) {
      const dir = dirname(this.#path);
      Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
      this.#temp = `${this.#path}${tempInfix()}${crypto.randomUUID().slice(0, 8)}`;
      this.#file = Deno.openSync(this.#temp, { write: true, createNew: true, mode: 0o600 });
      writeAll(this.#file, MAGIC);
      this.#hash.update(MAGIC);
    }
    const part = this.#buf.subarray(0, this.#used);
    writeAll(this.#file, part);
    this.#hash.update(part);
    this.#used = 0;
    if (this.#buf.length > WRITE_BUFFER) {
      this.#buf = new Uint8Array(WRITE_BUFFER);
      this.#bufView = new DataView(this.#buf.buffer);
    }
  }

  #fail(err: unknown): void {
    this.#failure = err;
    this.discard();
  }

  /**
   * Writes the files recorded in this run (files not seen again are dropped), atomically. A
   * failure is reported, not thrown: the backup itself is committed already.
   */
  // deno-lint-ignore require-await
  async save(options: { onWarning?: (message: string) => void } = {}): Promise<void> {
    try {
      if (this.#failure !== null) throw this.#failure;
      this.#flush();
      const trailer = new Uint8Array(4);
      new DataView(trailer.buffer).setUint32(0, this.#rows, true);
      this.#hash.update(trailer);
      writeAll(this.#file!, trailer);
      writeAll(this.#file!, new Uint8Array(this.#hash.digest()));
      this.#file!.close();
      this.#file = null;
      Deno.renameSync(this.#temp!, this.#path);
      this.#temp = null;
    } catch (err) {
      this.discard();
      options.onWarning?.(`The files cache ${this.#path} was not saved: ${errorMessage(err)}`);
    }
  }

  /** Drops the new cache (the backup failed): its temporary file is removed. */
  discard(): void {
    try {
      this.#file?.close();
    } catch {
      // closed already
    }
    this.#file = null;
    if (this.#temp !== null) {
      try {
        Deno.removeSync(this.#temp);
      } catch {
        // gone already
      }
      this.#temp = null;
    }
    this.#failure ??= new Error("discarded");
  }
}

/** Writes all of `bytes` (a write may be short). */
function writeAll(file: Deno.FsFile, bytes: Uint8Array): void {
  for (let o = 0; o < bytes.length;) o += file.writeSync(bytes.subarray(o));
}

/** FNV-1a, 32 bits, of `bytes`. */
function fnv1a(bytes: Uint8Array): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i], 0x01000193);
  return h >>> 0;
}

/**
 * The row count of a cache file whose magic, SHA-256 and rows (every length within the file,
 * the last row ending at the trailer) check out, or null.
 */
function checkFile(bytes: Uint8Array): number | "other version" | null {
  // "VGERFC" and another version: a cache of an earlier vger
  const version = MAGIC.length - 2;
  for (let i = 0; i < version; i++) if (bytes[i] !== MAGIC[i]) return null;
  if (bytes[version] !== MAGIC[version] || bytes[version + 1] !== MAGIC[version + 1]) {
    return bytes.length > version + 1 ? "other version" : null;
  }
  if (bytes.length < MAGIC.length + TRAILER) return null;
  const end = bytes.length - 32;
  const actual = createHash("sha256").update(bytes.subarray(0, end)).digest();
  for (let i = 0; i < 32; i++) if (actual[i] !== bytes[end + i]) return null;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const rowsEnd = end - 4;
  const count = view.getUint32(rowsEnd, true);
  let o = MAGIC.length;
  for (let i = 0; i < count; i++) {
    if (o + ROW_FIXED > rowsEnd) return null;
    const len = view.getUint32(o, true);
    if (o + ROW_FIXED + len > rowsEnd) return null;
    const ids = view.getUint32(o + 4 + len + 32, true);
    o += ROW_FIXED + len + ids * ID_LENGTH;
    if (o > rowsEnd) return null;
  }
  return o === rowsEnd ? count : null;
}

/** What names this process's temporary cache files: `.tmp-<host>-<pid>-`. */
function tempInfix(): string {
  return `.tmp-${Deno.hostname()}-${Deno.pid}-`;
}

/**
 * Removes the temporary cache files that processes of this host left when killed (they hold a
 * whole cache each). Only on Linux, where /proc tells whether a process still runs.
 */
async function removeDeadTemps(path: string): Promise<void> {
  if (Deno.build.os !== "linux") return;
  const prefix = `${basename(path)}.tmp-${Deno.hostname()}-`;
  try {
    for await (const e of Deno.readDir(dirname(path))) {
      if (!e.name.startsWith(prefix)) continue;
      const pid = e.name.slice(prefix.length).split("-")[0];
      if (!/^\d+$/.test(pid) || Number(pid) === Deno.pid) continue;
      try {
        await Deno.stat(`/proc/${pid}`);
      } catch {
        await Deno.remove(join(dirname(path), e.name)).catch(() => {});
      }
    }
  } catch {
    // no cache directory yet
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
