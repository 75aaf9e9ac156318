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
 * Memory stays flat whatever the number of files: the rows are written in walk order and the
 * lookups come in walk order, so the old cache is merge-joined with the walk, read from the file
 * in 1 MiB pieces (after a first pass that checks its SHA-256 and the bounds of every row), and
 * the new cache is streamed to a temporary file through a 1 MiB buffer while the backup runs,
 * then renamed over the old one by {@linkcode FilesCache.save}.
 *
 * Layout: `<cache dir>/<repository id>/files`, mode 0600 (it holds paths and chunk ids):
 * `"VGERFC2\n"` || rows || row count (u32) || SHA-256 of everything before it. A row, in walk
 * order, integers little-endian: path length (u32) || path (UTF-8) || size (f64) || mtime_ns (i64)
 * || ctime_ns (i64) || inode (u64) || flags (u8: 1 = no extended attributes) || id count (u32) ||
 * ids (32 bytes each). The cache of an
 * earlier version (the msgpack `VGERFC1`) is not read, without a warning: every file is read again
 * once.
 *
 * @module
 */

import { createHash, type Hash } from "node:crypto";
import { basename, dirname, join } from "node:path";
import { errorMessage } from "./errors.ts";
import { ID_LENGTH, IdSlab } from "./ids.ts";
import { compareWalkOrder } from "./walker.ts";

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

/** What the cache knows of an unchanged file. */
export interface CacheHit {
  /** Its chunk ids. */
  ids: Uint8Array[];
  /**
   * It had no extended attributes when recorded: none were added since, as that would have
   * moved its ctime.
   */
  noXattrs: boolean;
}

/** Files changed this close to the backup's start are not recorded (2 s: FAT's granularity). */
export const RACY_NS = 2_000_000_000n;

const MAGIC = new TextEncoder().encode("VGERFC2\n");
/** Row count and SHA-256 at the end of the file. */
const TRAILER = 4 + 32;
/** Bytes of a row besides its path and ids. */
const ROW_FIXED = 4 + 8 + 8 + 8 + 8 + 1 + 4;
/** Row flag: the file had no extended attributes when it was recorded. */
const NO_XATTRS = 1;
/** The new cache is written, and the old one read, in pieces of this size. */
const WRITE_BUFFER = 1 << 20;
const READ_BUFFER = 1 << 20;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The cache of one repository, loaded from and saved to one file. */
export class FilesCache {
  readonly #path: string;
  /** Times from here on are too recent to trust (the racy-clean rule): the start - RACY_NS. */
  readonly #recentNs: bigint;
  /** The old cache, its rows read in walk order as the lookups come (null: none). */
  #old: RowReader | null;
  readonly #size: number;
  /** Whether the reader's current row was decoded into #oldPath and not passed yet. */
  #atRow = false;
  #oldPath = "";
  /** The current row's index, the sorted runs of rows, and the current row's run. */
  #rowIndex = -1;
  readonly #runs: Run[];
  #run = 0;
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

  private constructor(path: string, startNs: bigint, old?: { reader: RowReader } & Checked) {
    this.#path = path;
    this.#recentNs = startNs - RACY_NS;
    this.#old = old?.reader ?? null;
    this.#size = old?.count ?? 0;
    this.#runs = old?.runs ?? [];
  }

  /**
   * Opens the cache file at `path` (missing or damaged: an empty cache; `onWarning` hears of
   * damage): its SHA-256 and the bounds of every row are checked in a first pass over the open
   * file, which is then read again row by row as the lookups come. `startNs` is the backup's
   * start, for the racy rule.
   */
  // deno-lint-ignore require-await
  static async load(
    path: string,
    options: { startNs?: bigint; onWarning?: (message: string) => void } = {},
  ): Promise<FilesCache> {
    const startNs = options.startNs ?? BigInt(Date.now()) * 1_000_000n;
    removeDeadTemps(path);
    let file: Deno.FsFile;
    try {
      file = Deno.openSync(path, { read: true });
    } catch {
      return new FilesCache(path, startNs);
    }
    let checked: Checked | "other version" | null = null;
    try {
      checked = checkFile(file);
    } catch {
      // unreadable: as damaged
    }
    if (checked === null || checked === "other version") {
      file.close();
      if (checked === null) {
        options.onWarning?.(`The files cache ${path} is damaged: every file is read again`);
      }
      return new FilesCache(path, startNs);
    }
    const reader = new RowReader(file, file.statSync().size - TRAILER, checked.count);
    return new FilesCache(path, startNs, { reader, ...checked });
  }

  /** Rows in the old cache. */
  get size(): number {
    return this.#size;
  }

  /**
   * The chunk ids the last backup stored for `path` (and whether it had no extended
   * attributes), if its stamp is unchanged. Lookups come in walk order (lib/walker.ts), as the
   * rows were written: the rows are read forward, merged with the lookups. The rows of each
   * source form a sorted run (found by the first pass): a path outside the current run's range
   * moves on to the later run that holds it (sources in another order than last time); a path
   * that no run ahead holds misses, which only costs a read.
   */
  lookup(path: string, stamp: FileStamp): CacheHit | null {
    const old = this.#old;
    if (old === null || !path.isWellFormed()) return null;
    for (;;) {
      if (!this.#atRow && !this.#nextRow()) return null;
      const run = this.#runs[this.#run];
      if (
        this.#oldPath !== path && // the usual case, tried first: the next row is this file's
        (compareWalkOrder(path, run.first) < 0 || compareWalkOrder(path, run.last) > 0)
      ) {
        const later = this.#runs.findIndex((r, i) =>
          i > this.#run && compareWalkOrder(r.first, path) <= 0 &&
          compareWalkOrder(path, r.last) <= 0
        );
        if (later < 0) return null;
        while (this.#rowIndex < this.#runs[later].row) if (!this.#nextRow()) return null;
        continue;
      }
      const order = compareWalkOrder(this.#oldPath, path);
      if (order > 0) return null; // a file the last backup did not record
      if (order < 0) {
        this.#atRow = false; // a file not met again
        continue;
      }
      const hit = old.hitIf(stamp);
      if (hit) this.#atRow = false; // taken: a source given twice meets its second row next
      return hit;
    }
  }

  /** Moves to the next row of the old cache (false, and closed, after the last). */
  #nextRow(): boolean {
    let next = false;
    try {
      next = this.#old !== null && this.#old.next();
    } catch {
      // the file could not be read further: the rest of the files are read again
    }
    if (!next) {
      this.#closeOld();
      return false;
    }
    this.#rowIndex++;
    this.#oldPath = this.#old!.path();
    this.#atRow = true;
    while (this.#run + 1 < this.#runs.length && this.#runs[this.#run + 1].row <= this.#rowIndex) {
      this.#run++;
    }
    return true;
  }

  #closeOld(): void {
    this.#old?.close();
    this.#old = null;
  }

  /**
   * Remembers a file backed up now (skipped when it changed too recently to trust its stamp).
   * `noXattrs`: its extended attributes were listed and it had none.
   */
  record(
    path: string,
    stamp: FileStamp,
    ids: readonly Uint8Array[],
    options: { noXattrs?: boolean } = {},
  ): void {
    const recent = this.#recentNs;
    if (stamp.mtimeNs >= recent || stamp.ctimeNs >= recent || this.#failure !== null) return;
    if (!stampFits(stamp)) return; // a stamp the row cannot hold exactly is not recorded
    if (!path.isWellFormed()) return;
    // the path is encoded into the row in place (not a buffer per file): room for its longest
    // UTF-8 (3 bytes per UTF-16 unit), then the row's real length
    const rowLength = ROW_FIXED + path.length * 3 + ids.length * ID_LENGTH;
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
    const pathBytes = encoder.encodeInto(path, buf.subarray(o + 4)).written;
    view.setUint32(o, pathBytes, true);
    o += 4 + pathBytes;
    view.setFloat64(o, stamp.size, true);
    view.setBigInt64(o + 8, stamp.mtimeNs, true);
    view.setBigInt64(o + 16, stamp.ctimeNs, true);
    view.setBigUint64(o + 24, stamp.ino, true);
    view.setUint8(o + 32, options.noXattrs ? NO_XATTRS : 0);
    view.setUint32(o + 33, ids.length, true);
    o += 37;
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

  /** The new cache cannot be written: it is dropped (the old one is still read). */
  #fail(err: unknown): void {
    this.#failure = err;
    this.#dropNew();
  }

  /**
   * Writes the files recorded in this run (files not seen again are dropped), atomically. A
   * failure is reported, not thrown: the backup itself is committed already.
   */
  // deno-lint-ignore require-await
  async save(options: { onWarning?: (message: string) => void } = {}): Promise<void> {
    this.#closeOld();
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
    this.#closeOld();
    this.#dropNew();
    this.#failure ??= new Error("discarded");
  }

  #dropNew(): void {
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
  }
}

/** Writes all of `bytes` (a write may be short). */
function writeAll(file: Deno.FsFile, bytes: Uint8Array): void {
  for (let o = 0; o < bytes.length;) o += file.writeSync(bytes.subarray(o));
}

/** Whether a row holds `stamp` exactly (64-bit times and inode, a size that is an integer). */
function stampFits(stamp: FileStamp): boolean {
  return stamp.mtimeNs >= MIN_I64 && stamp.mtimeNs <= MAX_I64 && stamp.ctimeNs >= MIN_I64 &&
    stamp.ctimeNs <= MAX_I64 && stamp.ino >= 0n && stamp.ino <= MAX_U64 &&
    Number.isSafeInteger(stamp.size);
}

const MIN_I64 = -(1n << 63n);
const MAX_I64 = (1n << 63n) - 1n;
const MAX_U64 = (1n << 64n) - 1n;

/** Reads `bytes.length` bytes at `position`, or throws. */
function readFully(file: Deno.FsFile, bytes: Uint8Array, position: number): void {
  file.seekSync(position, Deno.SeekMode.Start);
  for (let o = 0; o < bytes.length;) {
    const n = file.readSync(bytes.subarray(o));
    if (n === null || n === 0) throw new Error("Short read");
    o += n;
  }
}

/**
 * The row count and runs of an open cache file whose magic, SHA-256 and rows (every length within the
 * file, the last row ending at the trailer) check out; "other version" for an earlier vger's
 * cache; else null. Reads the file once, in pieces.
 */
function checkFile(file: Deno.FsFile): Checked | "other version" | null {
  const size = file.statSync().size;
  const magic = new Uint8Array(MAGIC.length);
  if (size < MAGIC.length) return null;
  readFully(file, magic, 0);
  // "VGERFC" and another version: a cache of an earlier vger
  const version = MAGIC.length - 2;
  for (let i = 0; i < version; i++) if (magic[i] !== MAGIC[i]) return null;
  if (magic[version] !== MAGIC[version] || magic[version + 1] !== MAGIC[version + 1]) {
    return "other version";
  }
  if (size < MAGIC.length + TRAILER) return null;
  const trailer = new Uint8Array(TRAILER);
  readFully(file, trailer, size - TRAILER);
  const count = new DataView(trailer.buffer).getUint32(0, true);
  const hash = createHash("sha256").update(magic);
  file.seekSync(MAGIC.length, Deno.SeekMode.Start);
  const rows = new RowReader(file, size - TRAILER, count, (part) => hash.update(part));
  const runs: Run[] = [];
  for (let i = 0; i < count; i++) {
    if (!rows.next()) return null;
    const path = rows.path();
    const run = runs.at(-1);
    // a row not after the one before starts a run (another source, or a source again)
    if (run === undefined || (compareWalkOrder(run.last, path) >= 0 && runs.length < MAX_RUNS)) {
      runs.push({ row: i, first: path, last: path });
    } else run.last = path;
  }
  if (!rows.atEnd()) return null;
  const digest = hash.update(trailer.subarray(0, 4)).digest();
  for (let i = 0; i < 32; i++) if (digest[i] !== trailer[4 + i]) return null;
  file.seekSync(MAGIC.length, Deno.SeekMode.Start);
  return { count, runs };
}

/** A cache file that checked out: its row count and its sorted runs of rows. */
interface Checked {
  count: number;
  runs: Run[];
}

/** Rows in walk order, one source's: where they start, their first and last path. */
interface Run {
  row: number;
  first: string;
  last: string;
}

/** At most this many runs are told apart (beyond: later rows join the last run, and may miss). */
const MAX_RUNS = 1024;

/**
 * The rows of a cache file, read in pieces from its current position up to `limit` (the
 * trailer): `next()` makes the next row current when all of it lies within the limit.
 */
class RowReader {
  readonly #file: Deno.FsFile;
  /** File offset of the end of the buffered bytes. */
  #pos = MAGIC.length;
  readonly #limit: number;
  #rowsLeft: number;
  readonly #onRead?: (part: Uint8Array) => void;
  #buf = new Uint8Array(READ_BUFFER);
  #view = new DataView(this.#buf.buffer);
  #start = 0;
  #end = 0;
  /** The current row: where it starts in #buf, its path length and length. */
  #row = 0;
  #pathLength = 0;
  #rowLength = 0;
  /** A stamp spelled as in a row, for hitIf. */
  readonly #stamp = new Uint8Array(32);
  readonly #stampView = new DataView(this.#stamp.buffer);
  /** Where hits' ids are copied to. */
  readonly #ids = new IdSlab();

  constructor(
    file: Deno.FsFile,
    limit: number,
    rows: number,
    onRead?: (part: Uint8Array) => void,
  ) {
    this.#file = file;
    this.#limit = limit;
    this.#rowsLeft = rows;
    this.#onRead = onRead;
  }

  /** Whether every byte up to the limit was taken by the rows up to the current one. */
  atEnd(): boolean {
    return this.#pos === this.#limit && this.#start + this.#rowLength === this.#end;
  }

  /** Moves to the next row; false at the last row, or when a row would pass the limit. */
  next(): boolean {
    this.#start += this.#rowLength;
    this.#rowLength = 0;
    if (this.#rowsLeft === 0 || !this.#fill(ROW_FIXED)) return false;
    const len = this.#view.getUint32(this.#start, true);
    if (!this.#fill(ROW_FIXED + len)) return false;
    const ids = this.#view.getUint32(this.#start + 4 + len + 33, true);
    const length = ROW_FIXED + len + ids * ID_LENGTH;
    if (!this.#fill(length)) return false;
    this.#row = this.#start;
    this.#pathLength = len;
    this.#rowLength = length;
    this.#rowsLeft--;
    return true;
  }

  /** The current row's path. */
  path(): string {
    return decoder.decode(this.#buf.subarray(this.#row + 4, this.#row + 4 + this.#pathLength));
  }

  /** The current row's chunk ids (copies) and flags when its stamp is `stamp`, else null. */
  hitIf(stamp: FileStamp): CacheHit | null {
    // the stamp as the row spells it, compared byte for byte (no bigint read per field)
    const want = this.#stampView;
    want.setFloat64(0, stamp.size, true);
    want.setBigInt64(8, stamp.mtimeNs, true); // these wrap modulo 2^64: see stampFits below
    want.setBigInt64(16, stamp.ctimeNs, true);
    want.setBigUint64(24, stamp.ino, true);
    const buf = this.#buf;
    const s = this.#row + 4 + this.#pathLength;
    for (let i = 0; i < 32; i++) if (buf[s + i] !== this.#stamp[i]) return null;
    // a stamp the row cannot hold was not recorded: its wrapped form must not hit either
    if (!stampFits(stamp)) return null;
    const n = this.#view.getUint32(s + 33, true);
    const ids: Uint8Array[] = [];
    for (let i = 0, at = s + 37; i < n; i++, at += ID_LENGTH) {
      const id = this.#ids.next(); // copies, in shared slabs: not an ArrayBuffer each
      id.set(buf.subarray(at, at + ID_LENGTH));
      ids.push(id);
    }
    return { ids, noXattrs: (buf[s + 32] & NO_XATTRS) !== 0 };
  }

  /** Makes `n` bytes from #start buffered; false when the limit comes first. */
  #fill(n: number): boolean {
    if (this.#end - this.#start >= n) return true;
    if (n > this.#limit - this.#pos + this.#end - this.#start) return false;
    if (n > this.#buf.length) {
      const bigger = new Uint8Array(n);
      bigger.set(this.#buf.subarray(this.#start, this.#end));
      this.#buf = bigger;
      this.#view = new DataView(bigger.buffer);
    } else this.#buf.copyWithin(0, this.#start, this.#end);
    this.#end -= this.#start;
    this.#start = 0;
    while (this.#end < n) {
      const want = Math.min(this.#buf.length - this.#end, this.#limit - this.#pos);
      const got = this.#file.readSync(this.#buf.subarray(this.#end, this.#end + want));
      if (got === null || got === 0) return false;
      this.#onRead?.(this.#buf.subarray(this.#end, this.#end + got));
      this.#end += got;
      this.#pos += got;
    }
    return true;
  }

  close(): void {
    try {
      this.#file.close();
    } catch {
      // closed already
    }
  }
}

/** What names this process's temporary cache files: `.tmp-<host>-<pid>-`. */
function tempInfix(): string {
  return `.tmp-${Deno.hostname()}-${Deno.pid}-`;
}

/**
 * Removes the temporary cache files that processes of this host left when killed (they hold a
 * whole cache each). Only on Linux, where /proc tells whether a process still runs.
 */
function removeDeadTemps(path: string): void {
  if (Deno.build.os !== "linux") return;
  const prefix = `${basename(path)}.tmp-${Deno.hostname()}-`;
  try {
    for (const e of Deno.readDirSync(dirname(path))) {
      if (!e.name.startsWith(prefix)) continue;
      const pid = e.name.slice(prefix.length).split("-")[0];
      if (!/^\d+$/.test(pid) || Number(pid) === Deno.pid) continue;
      try {
        Deno.statSync(`/proc/${pid}`);
      } catch {
        try {
          Deno.removeSync(join(dirname(path), e.name));
        } catch {
          // removed by another process
        }
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
