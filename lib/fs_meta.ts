/**
 * File metadata as backup and restore need it: lstat with nanosecond times (libc statx through
 * lib/fs_native.ts when FFI is allowed, Deno.lstat's milliseconds otherwise).
 *
 * @module
 */

import { errorMessage } from "./errors.ts";
import {
  ERRNO,
  NativeError,
  type NativeFs,
  nativeFs,
  type NativeReader,
  type NativeStat,
  sameFileStat,
} from "./fs_native.ts";

/** What backup records of an entry. */
export interface EntryStat {
  /** st_mode: type and permission bits. */
  mode: number;
  /** Owner uid. */
  uid: number;
  /** Owner gid. */
  gid: number;
  /** Size in bytes. */
  size: number;
  /** Modification time, ns since the epoch. */
  mtimeNs: bigint;
  /** Status change time, ns since the epoch (files cache). */
  ctimeNs: bigint;
  /** Device, for the repository self-exclusion. */
  dev: number;
  /** Inode, for the repository self-exclusion and hardlink groups. */
  ino: bigint;
  /** Number of hard links. */
  nlink: number;
  /** Major number of a character or block device, else 0. */
  rdevMajor: number;
  /** Minor number of a character or block device, else 0. */
  rdevMinor: number;
}

/** Type bits of st_mode. */
export const S_IFMT = 0o170000;
/** Regular file. */
export const S_IFREG = 0o100000;
/** Directory. */
export const S_IFDIR = 0o040000;
/** Symbolic link. */
export const S_IFLNK = 0o120000;
/** FIFO (named pipe). */
export const S_IFIFO = 0o010000;
/** Character device. */
export const S_IFCHR = 0o020000;
/** Block device. */
export const S_IFBLK = 0o060000;
/** Unix-domain socket. */
export const S_IFSOCK = 0o140000;

/** The kinds of entries on disk that {@linkcode entryKind} tells apart. */
export type EntryKind =
  | "file"
  | "dir"
  | "symlink"
  | "fifo"
  | "chardev"
  | "blockdev"
  | "socket"
  | "special";

/**
 * glibc's split of an `st_rdev` (as Deno.FileInfo.rdev reports it) into major and minor.
 *
 * @example
 * ```ts
 * import { deepStrictEqual } from "node:assert/strict";
 * import { splitRdev } from "./fs_meta.ts";
 *
 * deepStrictEqual(splitRdev(0x0801), [8, 1]); // /dev/sda1
 * ```
 */
export function splitRdev(rdev: number): [number, number] {
  const d = BigInt(rdev);
  const major = ((d >> 8n) & 0xfffn) | ((d >> 32n) & 0xfffff000n);
  const minor = (d & 0xffn) | ((d >> 12n) & 0xffffff00n);
  return [Number(major), Number(minor)];
}

/** lstat without following symlinks, with the best time precision available. */
export function lstatEntry(path: string): EntryStat {
  const native = nativeFs();
  return native ? fromNative(native.lstat(path)) : fromDeno(Deno.lstatSync(path));
}

/** Whether this process reads files and lists directories through libc (see libcReads). */
let readsThroughLibc: NativeFs | null | undefined;

/**
 * libc for reading files and listing directories, when FFI is allowed and this process may read
 * everything (`-A`, or `--allow-read` without paths): a path-scoped `--allow-read` (the launcher's)
 * is Deno's to enforce, so those reads go through Deno. A `--deny-read` under a global
 * `--allow-read` is not seen here (Deno tells no more), and FFI can read anything anyway.
 */
function libcReads(): NativeFs | null {
  if (readsThroughLibc === undefined) {
    const native = nativeFs();
    const all = Deno.permissions.querySync({ name: "read" }).state === "granted";
    readsThroughLibc = all ? native : null;
  }
  return readsThroughLibc;
}

/**
 * The names in directory `path`, in no particular order: through libc when this process may (a
 * tenth of Deno's per-entry cost, which was a tenth of a backup of 400,000 tiny files), else
 * with Deno.readDirSync.
 */
export function listDirectory(path: string): string[] {
  const native = libcReads();
  if (native) {
    try {
      return native.listDir(path);
    } catch (err) {
      // a C library without getdents64: Deno lists it
      if (!(err instanceof NativeError && err.errno === ERRNO.ENOTSUP)) throw err;
    }
  }
  return Array.from(Deno.readDirSync(path), (e) => e.name);
}

/**
 * The extended attributes of `path` (not following a symlink): undefined when it has none, null
 * when there is no `native` access to them or they could not be read (said to `warn`).
 */
export function readXattrs(
  native: NativeFs | null,
  path: string,
  warn: (message: string) => void,
): Record<string, Uint8Array> | undefined | null {
  if (!native) return null;
  let out: Record<string, Uint8Array> | undefined;
  try {
    for (const name of native.listXattrs(path)) {
      const v = native.getXattr(path, name);
      if (v !== null) (out ??= {})[name] = v;
    }
  } catch (err) {
    warn(`Extended attributes of "${path}" not saved: ${errorMessage(err)}`);
    return null;
  }
  return out;
}

/** A regular file of the backup's sources, open for reading (see {@linkcode openSourceFile}). */
export interface SourceFile {
  /**
   * Reads into `into`: the bytes read, 0 at the end of the file. A read ahead in flight must be
   * into `into`'s start: its bytes are the ones returned. A read done here is returned as it is,
   * a read ahead as its promise (a promise per small file's read added up, backing up 100,000s).
   */
  read(into: Uint8Array): number | Promise<number>;
  /**
   * Starts reading the file's next bytes into `into` on another thread (through libc; without
   * it, nothing), for the next {@linkcode SourceFile.read}, into the same place, to take. Until
   * then `into`'s buffer must not be written, moved or transferred.
   */
  readAhead(into: Uint8Array): void;
  /** Whether a read ahead is in flight. */
  readonly readingAhead: boolean;
  /** The file's metadata once read: through the descriptor with libc, else by path (lstat). */
  stat(): EntryStat;
  /** Closes it, at once, or once a read ahead in flight has ended (then a promise). */
  close(): Promise<void> | undefined;
}

/**
 * Opens a file to back it up: through libc when this process may (no symlink followed, no wait on
 * a FIFO that replaced the file, and a third of Deno's per-file cost, measured on 400,000 tiny
 * files), else with Deno.open.
 */
export function openSourceFile(path: string): SourceFile {
  const native = libcReads();
  if (native) return new NativeSourceFile(native.openRead(path));
  const file = Deno.openSync(path, { read: true });
  return {
    // synchronous: Deno's async reads cost ~10x more (a copy through a fresh buffer)
    read: (into) => file.readSync(into) ?? 0,
    readAhead: () => {},
    readingAhead: false,
    // by path, as the listing was (libc's nanoseconds when FFI is allowed, else Deno's)
    stat: () => lstatEntry(path),
    close: () => {
      file.close();
      return undefined;
    },
  };
}

/** A source file read through libc, the next part read ahead on Deno's blocking pool. */
class NativeSourceFile implements SourceFile {
  readonly #file: NativeReader;
  #ahead: { into: Uint8Array; bytes: Promise<number> } | null = null;

  constructor(file: NativeReader) {
    this.#file = file;
  }

  get readingAhead(): boolean {
    return this.#ahead !== null;
  }

  read(into: Uint8Array): number | Promise<number> {
    const ahead = this.#ahead;
    if (ahead === null) return this.#file.read(into);
    if (ahead.into.buffer !== into.buffer || ahead.into.byteOffset !== into.byteOffset) {
      throw new Error("A source file was read elsewhere than where its read ahead goes");
    }
    this.#ahead = null;
    return ahead.bytes;
  }

  readAhead(into: Uint8Array): void {
    if (this.#ahead !== null) throw new Error("A source file is read ahead twice");
    const bytes = this.#file.readAsync(into);
    bytes.catch(() => {}); // its failure is the next read's
    this.#ahead = { into, bytes };
  }

  stat(): EntryStat {
    return fromNative(this.#file.stat());
  }

  close(): Promise<void> | undefined {
    // a read in flight on the pool still uses the descriptor (and its buffer): closing waits
    const ahead = this.#ahead;
    this.#ahead = null;
    if (ahead === null) {
      this.#file.close();
      return undefined;
    }
    return ahead.bytes.catch(() => 0).then(() => this.#file.close());
  }
}

/** Whether a file's stat after reading it differs from the one before (it changed meanwhile). */
export function statChanged(before: EntryStat, after: EntryStat): boolean {
  return !sameFileStat(before, after);
}

/** A native stat is an EntryStat as it is: its bigints are built only if read (lib/fs_native.ts). */
function fromNative(s: NativeStat): EntryStat {
  return s;
}

function fromDeno(s: Deno.FileInfo): EntryStat {
  return {
    mode: s.mode ?? 0,
    uid: s.uid ?? 0,
    gid: s.gid ?? 0,
    size: s.size,
    mtimeNs: BigInt(s.mtime?.getTime() ?? 0) * 1_000_000n,
    ctimeNs: BigInt(s.ctime?.getTime() ?? 0) * 1_000_000n,
    dev: s.dev ?? 0,
    ino: BigInt(s.ino ?? 0),
    nlink: s.nlink ?? 1,
    ...rdevOf(s.rdev ?? 0),
  };
}

function rdevOf(rdev: number): { rdevMajor: number; rdevMinor: number } {
  const [rdevMajor, rdevMinor] = splitRdev(rdev);
  return { rdevMajor, rdevMinor };
}

/** The kind of an entry from its mode. */
export function entryKind(mode: number): EntryKind {
  switch (mode & S_IFMT) {
    case S_IFREG:
      return "file";
    case S_IFDIR:
      return "dir";
    case S_IFLNK:
      return "symlink";
    case S_IFIFO:
      return "fifo";
    case S_IFCHR:
      return "chardev";
    case S_IFBLK:
      return "blockdev";
    case S_IFSOCK:
      return "socket";
    default:
      return "special";
  }
}

/**
 * Rethrows `err` when it is a missing Deno permission (also as a cause): that is exit 2 naming
 * the flag (cli.ts), never a skipped file.
 */
export function throwIfNotPermitted(err: unknown): void {
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    if (e instanceof Deno.errors.NotCapable) throw err;
  }
}

/** Plain words for a file-system error. */
export function describeFsError(err: unknown): string {
  if (err instanceof Deno.errors.NotFound) return "no such file or directory";
  if (err instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (err instanceof Deno.errors.NotCapable) return `${errorMessage(err)}`;
  const errno = (err as { errno?: number }).errno;
  if (errno === 2) return "no such file or directory";
  if (errno === 13) return "permission denied";
  return errorMessage(err);
}

/**
 * A symlink at `path`: through libc when FFI is granted (Deno's own symlink needs unscoped read
 * and write permissions, which a scoped run does not have), else Deno's.
 */
export function makeSymlink(target: string, path: string): void {
  const native = nativeFs();
  if (native) native.symlink(target, path);
  else Deno.symlinkSync(target, path);
}
