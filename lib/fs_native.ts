/**
 * File-system calls Deno lacks, made on glibc through `Deno.dlopen`: extended attributes,
 * nanosecond timestamps that do not follow symlinks, and `lchown`. Needs `--allow-ffi`; without
 * it (or off Linux) {@linkcode nativeFs} returns null and callers skip what it would do.
 *
 * Calls are synchronous and non-blocking, so they run on the calling thread and `errno` can be
 * read right after each one. Each Worker loads its own copy.
 *
 * @example Copy the extended attributes of one file to another
 * ```ts ignore
 * import { nativeFs } from "./fs_native.ts";
 *
 * const fs = nativeFs();
 * if (fs) {
 *   for (const name of fs.listXattrs("a.txt")) {
 *     const value = fs.getXattr("a.txt", name);
 *     if (value) fs.setXattr("b.txt", name, value);
 *   }
 * }
 * ```
 *
 * @module
 */

import { BackendError } from "./errors.ts";
import { LIBC, openLibrary } from "./native_library.ts";
import { makedev, type NativeStat, NS_PER_S, STATX_BTIME, StatxResult } from "./statx.ts";

export { makedev, type NativeStat, sameFileStat } from "./statx.ts";

/** The libc calls vger needs that Deno does not offer. */
export interface NativeFs {
  /** Names of the extended attributes of path, not following symlinks (llistxattr). [] when none or unsupported (ENOTSUP). */
  listXattrs(path: string): string[];
  /** Value (lgetxattr), or null when the attribute vanished (ENODATA). */
  getXattr(path: string, name: string): Uint8Array | null;
  /** lsetxattr (flags 0). Values longer than {@linkcode XATTR_SIZE_MAX} fail with E2BIG. */
  setXattr(path: string, name: string, value: Uint8Array): void;
  /** utimensat(AT_FDCWD, path, [atime, mtime], AT_SYMLINK_NOFOLLOW) with nanosecond times since the epoch. */
  setTimes(path: string, atimeNs: bigint, mtimeNs: bigint): void;
  /** lchown; -1 leaves the uid or gid unchanged. */
  lchown(path: string, uid: number, gid: number): void;
  /** statx without following symlinks: unlike Deno.lstat (milliseconds), times keep nanoseconds. */
  lstat(path: string): NativeStat;
  /**
   * mknod: creates a FIFO (`mode` with S_IFIFO), or a character or block device (S_IFCHR,
   * S_IFBLK; root only) numbered `major`, `minor`, never opening it. The umask applies to `mode`.
   */
  mknod(path: string, mode: number, major: number, minor: number): void;
  /**
   * symlink(target, path). Deno's own refuses under path-scoped `--allow-write` (a link's target
   * is resolved only when followed); native code is outside Deno's permissions anyway.
   */
  symlink(target: string, path: string): void;
  /**
   * Creates `path` for writing: a new file (O_CREAT | O_EXCL, not following a symlink) with
   * permission bits `mode` less the umask. Its metadata is then set through the descriptor, with
   * no path lookup: what restore does for every file.
   */
  createFile(path: string, mode: number): NativeFile;
  /** rename(2): `from` takes the name `to`, replacing what `to` named. */
  rename(from: string, to: string): void;
  /**
   * Opens `path` for reading, not following a symlink and not blocking on a FIFO (the entry was
   * a regular file when listed; what replaced it is found by {@linkcode NativeReader.stat}).
   * Backup reads every file through it: four calls without Deno's resource table.
   */
  openRead(path: string): NativeReader;
  /**
   * The names in directory `path` (not `.` and `..`), in the order the file system gives them:
   * getdents64 into one buffer, a few calls per directory where Deno's iterator makes an object
   * per entry. Throws a NativeError when the C library lacks getdents64 (glibc before 2.30).
   */
  listDir(path: string): string[];
}

/** A file {@linkcode NativeFs.openRead} opened; its errors are NativeErrors naming the call. */
export interface NativeReader {
  /** read(2) into `into`: the bytes read, 0 at the end of the file. */
  read(into: Uint8Array): number;
  /**
   * {@linkcode NativeReader.read} on a thread of Deno's blocking pool, leaving the calling thread
   * free meanwhile; `into` must not be used or moved until the promise settles.
   */
  readAsync(into: Uint8Array): Promise<number>;
  /** statx of the open file (as {@linkcode NativeFs.lstat}, through the descriptor). */
  stat(): NativeStat;
  /** close(2); the descriptor is released even when it fails. */
  close(): void;
}

/** A file {@linkcode NativeFs.createFile} made, open for writing; its errors name the call. */
export interface NativeFile {
  /** Writes all of `data` at `offset` (pwrite). */
  writeAt(data: Uint8Array, offset: number): void;
  /**
   * {@linkcode NativeFile.writeAt} on a thread of Deno's blocking pool: the copy into the page
   * cache leaves the calling thread free meanwhile. Worth it for large writes only (a call costs
   * tens of microseconds more); `data` must not change until the promise settles.
   */
  writeAtAsync(data: Uint8Array, offset: number): Promise<void>;
  /** ftruncate: the file's size becomes `size`. */
  truncate(size: number): void;
  /** fchown; -1 leaves the uid or gid unchanged. */
  chown(uid: number, gid: number): void;
  /** fchmod. */
  chmod(mode: number): void;
  /** fsetxattr (flags 0). */
  setXattr(name: string, value: Uint8Array): void;
  /** futimens with nanosecond times since the epoch. */
  setTimes(atimeNs: bigint, mtimeNs: bigint): void;
  /** close(2); the descriptor is released even when it fails. */
  close(): void;
}

/** A failed libc call; `errno` tells why (compare with {@linkcode ERRNO}). */
/** A failed libc call; `errno` tells why (compare with {@linkcode ERRNO}). */
export class NativeError extends BackendError {
  /** The C errno of the failed call. */
  readonly errno: number;
  /** Creates an error for a failed call. */
  constructor(message: string, errno: number, options?: ErrorOptions) {
    super(message, options);
    this.errno = errno;
  }
}

/** Linux x86_64 errno values callers may want to tell apart. */
export const ERRNO = {
  EPERM: 1,
  ENOENT: 2,
  EEXIST: 17,
  EACCES: 13,
  EINVAL: 22,
  E2BIG: 7,
  ENOSPC: 28,
  ERANGE: 34,
  ENODATA: 61,
  ENOTSUP: 95,
} as const;

/** Largest extended attribute value Linux stores (64 KiB); also the largest name list. */
export const XATTR_SIZE_MAX = 65536;

const AT_FDCWD = -100;
const O_RDONLY = 0;
const O_WRONLY = 0o1;
const O_NONBLOCK = 0o4000;
const O_DIRECTORY = 0o200000;
const AT_EMPTY_PATH = 0x1000;
const O_CREAT = 0o100;
const O_EXCL = 0o200;
const O_NOFOLLOW = 0o400000;
const O_CLOEXEC = 0o2000000;
const EINTR = 4;
const AT_SYMLINK_NOFOLLOW = 0x100;
const STATX_BASIC_STATS = 0x7ff;
const STATX_SIZE = 256; // sizeof(struct statx)
// A value or name list that keeps changing size between the sizing call and the read.
const MAX_RETRIES = 8;

const SYMBOLS = {
  llistxattr: { parameters: ["buffer", "buffer", "usize"], result: "isize" },
  lgetxattr: { parameters: ["buffer", "buffer", "buffer", "usize"], result: "isize" },
  lsetxattr: { parameters: ["buffer", "buffer", "buffer", "usize", "i32"], result: "i32" },
  utimensat: { parameters: ["i32", "buffer", "buffer", "i32"], result: "i32" },
  lchown: { parameters: ["buffer", "u32", "u32"], result: "i32" },
  statx: { parameters: ["i32", "buffer", "i32", "u32", "buffer"], result: "i32" },
  // glibc 2.33 and later export mknod; older ones only __xmknod: then FIFOs and devices are not
  // restored, and the rest of the native calls still work
  mknod: { parameters: ["buffer", "u32", "u64"], result: "i32", optional: true },
  // open is variadic; its third argument (mode) is an int in a register on x86_64 and aarch64
  open: { parameters: ["buffer", "i32", "u32"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  // glibc 2.30 and later; older ones: directories are listed by Deno (lib/fs_meta.ts)
  getdents64: { parameters: ["i32", "buffer", "usize"], result: "isize", optional: true },
  read_nb: {
    name: "read",
    parameters: ["i32", "buffer", "usize"],
    result: "isize",
    nonblocking: true,
  },
  pwrite: { parameters: ["i32", "buffer", "usize", "i64"], result: "isize" },
  // the same call on Deno's blocking pool (its errno is that thread's: see writeAtAsync)
  pwrite_nb: {
    name: "pwrite",
    parameters: ["i32", "buffer", "usize", "i64"],
    result: "isize",
    nonblocking: true,
  },
  ftruncate: { parameters: ["i32", "i64"], result: "i32" },
  fchown: { parameters: ["i32", "u32", "u32"], result: "i32" },
  fchmod: { parameters: ["i32", "u32"], result: "i32" },
  fsetxattr: { parameters: ["i32", "buffer", "buffer", "usize", "i32"], result: "i32" },
  futimens: { parameters: ["i32", "buffer"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  rename: { parameters: ["buffer", "buffer"], result: "i32" },
  symlink: { parameters: ["buffer", "buffer"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
  strerror: { parameters: ["i32"], result: "pointer" },
} as const;

type Libc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

// Lazily-initialised cache: undefined = not tried yet, null = unavailable.
let cached: NativeFs | null | undefined;

/** libc functions, or null when FFI is unavailable (no --allow-ffi permission -> Deno.errors.NotCapable, or not Linux). Loaded once, lazily. */
export function nativeFs(): NativeFs | null {
  if (cached === undefined) cached = load();
  return cached;
}

function load(): NativeFs | null {
  // no FFI, or no glibc (musl names its libc differently): run without native calls
  const lib = openLibrary(LIBC, SYMBOLS);
  return lib ? new Libc6(lib.symbols) : null;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * `s` as a NUL-terminated C string: in `into` when it fits (no allocation: restore encodes three
 * paths per file), else in a new buffer. The result is valid until `into` is used again.
 */
function cString(s: string, what: string, into?: Uint8Array<ArrayBuffer>): Uint8Array<ArrayBuffer> {
  if (s.includes("\0")) {
    throw new NativeError(
      `Invalid ${what} ${JSON.stringify(s)}: contains a NUL byte`,
      ERRNO.EINVAL,
    );
  }
  if (into) {
    const { read, written } = encoder.encodeInto(s, into);
    if (read === s.length && written < into.length) {
      into[written] = 0;
      return into;
    }
  }
  return encoder.encode(s + "\0");
}

class Libc6 implements NativeFs {
  #c: Libc;
  // The calling thread's errno; its address never changes for the thread.
  #errno: Deno.UnsafePointerView;
  // Reused for every statx; calls are synchronous, so one buffer per thread is enough.
  #statx = new Uint8Array(STATX_SIZE);
  #statxView = new DataView(this.#statx.buffer);
  // Reused for the paths of lstat, listXattrs, openRead, createFile and rename (calls are
  // synchronous, as above): backup and restore make these calls for every file.
  #pathA = new Uint8Array(8192);
  #pathB = new Uint8Array(8192);
  // Reused by listDir: a directory of a few hundred entries in one getdents64 call.
  #dirents = new Uint8Array(64 << 10);
  #direntsView = new DataView(this.#dirents.buffer);

  constructor(c: Libc) {
    this.#c = c;
    this.#errno = new Deno.UnsafePointerView(c.__errno_location()!);
  }

  listXattrs(path: string): string[] {
    const p = cString(path, "path", this.#pathA);
    const fail = (errno: number): string[] => {
      if (errno === ERRNO.ENOTSUP) return [];
      throw this.#error(`Cannot list extended attributes of ${JSON.stringify(path)}`, errno);
    };
    for (let attempt = 0; attempt < MAX_RETRIES; attempt++) {
      const size = Number(this.#c.llistxattr(p, null, 0n));
      if (size < 0) return fail(this.#errno.getInt32());
      if (size === 0) return [];
      const buf = new Uint8Array(size);
      const n = Number(this.#c.llistxattr(p, buf, BigInt(size)));
      if (n < 0) {
        const errno = this.#errno.getInt32();
        if (errno === ERRNO.ERANGE) continue; // attributes added since the sizing call
        return fail(errno);
      }
      const names: string[] = [];
      let start = 0;
      for (let i = 0; i < n; i++) {
        if (buf[i] !== 0) continue;
        if (i > start) names.push(decoder.decode(buf.subarray(start, i)));
        start = i + 1;
      }
      return names;
    }
    return fail(ERRNO.ERANGE);
  }

  getXattr(path: string, name: string): Uint8Array | null {
    const p = cString(path, "path");
    const a = cString(name, "attribute name");
    const fail = (errno: number): null => {
      if (errno === ERRNO.ENODATA) return null;
      throw this.#error(
        `Cannot read extended attribute ${JSON.stringify(name)} of ${JSON.stringify(path)}`,
        errno,
      );
    };
    for (let attempt = 0; attempt < MAX_RETRIES; attempt++) {
      const size = Number(this.#c.lgetxattr(p, a, null, 0n));
      if (size < 0) return fail(this.#errno.getInt32());
      if (size === 0) return new Uint8Array(0);
      const buf = new Uint8Array(size);
      const n = Number(this.#c.lgetxattr(p, a, buf, BigInt(buf.length)));
      if (n < 0) {
        const errno = this.#errno.getInt32();
        if (errno === ERRNO.ERANGE) continue; // value grew since the sizing call
        return fail(errno);
      }
      return n === buf.length ? buf : buf.slice(0, n);
    }
    return fail(ERRNO.ERANGE);
  }

  setXattr(path: string, name: string, value: Uint8Array): void {
    const what = `Cannot set extended attribute ${JSON.stringify(name)} on ${JSON.stringify(path)}`;
    // Checked here so the message says why rather than the kernel's bare E2BIG.
    if (value.length > XATTR_SIZE_MAX) {
      throw new NativeError(
        `${what}: value of ${value.length} bytes exceeds the ${XATTR_SIZE_MAX}-byte limit`,
        ERRNO.E2BIG,
      );
    }
    const p = cString(path, "path");
    const a = cString(name, "attribute name");
    const r = this.#c.lsetxattr(p, a, value as Uint8Array<ArrayBuffer>, BigInt(value.length), 0);
    if (r !== 0) throw this.#error(what, this.#errno.getInt32());
  }

  setTimes(path: string, atimeNs: bigint, mtimeNs: bigint): void {
    const what = `Cannot set times of ${JSON.stringify(path)}`;
    const p = cString(path, "path");
    const r = this.#c.utimensat(
      AT_FDCWD,
      p,
      timespecs(what, atimeNs, mtimeNs),
      AT_SYMLINK_NOFOLLOW,
    );
    if (r !== 0) throw this.#error(what, this.#errno.getInt32());
  }

  lchown(path: string, uid: number, gid: number): void {
    const what = `Cannot change owner of ${JSON.stringify(path)} to ${uid}:${gid}`;
    const r = this.#c.lchown(cString(path, "path"), ownerId(what, uid), ownerId(what, gid));
    if (r !== 0) throw this.#error(what, this.#errno.getInt32());
  }

  lstat(path: string): NativeStat {
    return this.statAt(AT_FDCWD, cString(path, "path", this.#pathA), AT_SYMLINK_NOFOLLOW, path);
  }

  /** statx(dirfd, path, flags) into a NativeStat; `name` names the file in errors. */
  statAt(dirfd: number, path: Uint8Array<ArrayBuffer>, flags: number, name: string): NativeStat {
    const mask = STATX_BASIC_STATS | STATX_BTIME;
    const r = this.#c.statx(dirfd, path, flags, mask, this.#statx);
    if (r !== 0) throw this.#error(`Cannot stat ${JSON.stringify(name)}`, this.#errno.getInt32());
    return new StatxResult(this.#statxView);
  }

  mknod(path: string, mode: number, major: number, minor: number): void {
    const what = `Cannot create ${JSON.stringify(path)}`;
    const ok = (n: number) => Number.isInteger(n) && n >= 0 && n <= 0xffffffff;
    if (!ok(mode) || !ok(major) || !ok(minor)) {
      throw new NativeError(`${what}: mode or device numbers out of range`, ERRNO.EINVAL);
    }
    if (this.#c.mknod === null) {
      throw new NativeError(`${what}: this C library has no mknod`, ERRNO.ENOTSUP);
    }
    const r = this.#c.mknod(cString(path, "path"), mode, BigInt(makedev(major, minor)));
    if (r !== 0) throw this.#error(what, this.#errno.getInt32());
  }

  symlink(target: string, path: string): void {
    const r = this.#c.symlink(cString(target, "symlink target"), cString(path, "path"));
    if (r !== 0) throw this.#error(`Cannot create ${JSON.stringify(path)}`, this.#errno.getInt32());
  }

  createFile(path: string, mode: number): NativeFile {
    const flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
    const fd = this.#c.open(cString(path, "path", this.#pathA), flags, mode & 0o7777);
    if (fd < 0) throw this.#error(`Cannot create ${JSON.stringify(path)}`, this.#errno.getInt32());
    return new LibcFile(this.#c, fd, this.#errno, (what, errno) => this.#error(what, errno));
  }

  openRead(path: string): NativeReader {
    const flags = O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC;
    const fd = this.#c.open(cString(path, "path", this.#pathA), flags, 0);
    if (fd < 0) throw this.#error(`Cannot open ${JSON.stringify(path)}`, this.#errno.getInt32());
    return new LibcReader(this.#c, fd, path, this);
  }

  listDir(path: string): string[] {
    const what = `Cannot list ${JSON.stringify(path)}`;
    if (this.#c.getdents64 === null) {
      throw new NativeError(`${what}: this C library has no getdents64`, ERRNO.ENOTSUP);
    }
    const flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
    const fd = this.#c.open(cString(path, "path", this.#pathA), flags, 0);
    if (fd < 0) throw this.#error(what, this.#errno.getInt32());
    const names: string[] = [];
    try {
      const buf = this.#dirents;
      const view = this.#direntsView;
      for (;;) {
        const n = Number(this.#c.getdents64(fd, buf, BigInt(buf.length)));
        if (n < 0) {
          const errno = this.#errno.getInt32();
          if (errno === EINTR) continue;
          throw this.#error(what, errno);
        }
        if (n === 0) return names;
        // struct linux_dirent64: u64 ino, s64 off, u16 reclen, u8 type, then the name and a NUL
        for (let at = 0; at < n;) {
          const reclen = view.getUint16(at + 16, true);
          let end = at + 19;
          while (buf[end] !== 0) end++;
          const name = buf.subarray(at + 19, end);
          const dots = name.length <= 2 && name[0] === 0x2e &&
            (name.length === 1 || name[1] === 0x2e);
          if (!dots) names.push(decoder.decode(name));
          at += reclen;
        }
      }
    } finally {
      this.#c.close(fd);
    }
  }

  /** The NativeError of a failed call: `what` and errno's text. */
  error(what: string, errno: number): NativeError {
    return this.#error(what, errno);
  }

  /** The calling thread's errno. */
  errno(): number {
    return this.#errno.getInt32();
  }

  rename(from: string, to: string): void {
    const r = this.#c.rename(cString(from, "path", this.#pathA), cString(to, "path", this.#pathB));
    if (r !== 0) {
      throw this.#error(
        `Cannot rename ${JSON.stringify(from)} to ${JSON.stringify(to)}`,
        this.#errno.getInt32(),
      );
    }
  }

  #error(what: string, errno: number): NativeError {
    const ptr = this.#c.strerror(errno);
    const text = ptr ? Deno.UnsafePointerView.getCString(ptr) : `error ${errno}`;
    const lower = text.charAt(0).toLowerCase() + text.slice(1);
    return new NativeError(`${what}: ${lower} (errno ${errno})`, errno);
  }
}

/** A descriptor {@linkcode Libc6.createFile} opened; each failure names its call. */
class LibcFile implements NativeFile {
  readonly #c: Libc;
  readonly #fail: (what: string, errno: number) => NativeError;
  readonly #errnoView: Deno.UnsafePointerView;
  #fd: number;

  constructor(
    c: Libc,
    fd: number,
    errno: Deno.UnsafePointerView,
    fail: (what: string, errno: number) => NativeError,
  ) {
    this.#c = c;
    this.#fd = fd;
    this.#errnoView = errno;
    this.#fail = fail;
  }

  #errno(): number {
    return this.#errnoView.getInt32();
  }

  #check(r: number | bigint, what: string): void {
    if (r !== 0) throw this.#fail(what, this.#errno());
  }

  writeAt(data: Uint8Array, offset: number): void {
    for (let done = 0; done < data.length;) {
      const rest = data.subarray(done) as Uint8Array<ArrayBuffer>;
      const n = Number(this.#c.pwrite(this.#fd, rest, BigInt(rest.length), BigInt(offset + done)));
      if (n < 0) {
        const errno = this.#errno();
        if (errno === EINTR) continue;
        throw this.#fail("Cannot write", errno);
      }
      done += n;
    }
  }

  async writeAtAsync(data: Uint8Array, offset: number): Promise<void> {
    for (let done = 0; done < data.length;) {
      const rest = data.subarray(done) as Uint8Array<ArrayBuffer>;
      const at = BigInt(offset + done);
      const n = Number(await this.#c.pwrite_nb(this.#fd, rest, BigInt(rest.length), at));
      if (n < 0) {
        // errno stayed on the pool's thread: retry here, where it can be read
        this.writeAt(rest, offset + done);
        return;
      }
      done += n;
    }
  }

  truncate(size: number): void {
    this.#check(this.#c.ftruncate(this.#fd, BigInt(size)), "Cannot set the size");
  }

  chown(uid: number, gid: number): void {
    const what = `Cannot change owner to ${uid}:${gid}`;
    this.#check(this.#c.fchown(this.#fd, ownerId(what, uid), ownerId(what, gid)), what);
  }

  chmod(mode: number): void {
    this.#check(this.#c.fchmod(this.#fd, mode & 0o7777), "Cannot change mode");
  }

  setXattr(name: string, value: Uint8Array): void {
    const what = `Cannot set extended attribute ${JSON.stringify(name)}`;
    if (value.length > XATTR_SIZE_MAX) {
      throw new NativeError(
        `${what}: value of ${value.length} bytes exceeds the ${XATTR_SIZE_MAX}-byte limit`,
        ERRNO.E2BIG,
      );
    }
    const a = cString(name, "attribute name");
    const v = value as Uint8Array<ArrayBuffer>;
    this.#check(this.#c.fsetxattr(this.#fd, a, v, BigInt(value.length), 0), what);
  }

  setTimes(atimeNs: bigint, mtimeNs: bigint): void {
    const what = "Cannot set times";
    this.#check(this.#c.futimens(this.#fd, timespecs(what, atimeNs, mtimeNs)), what);
  }

  close(): void {
    const fd = this.#fd;
    if (fd < 0) return;
    this.#fd = -1;
    // Linux releases the descriptor even when close fails: never retry it
    this.#check(this.#c.close(fd), "Cannot close");
  }
}

/** The empty path of statx on a descriptor (AT_EMPTY_PATH). */
const EMPTY_PATH = new Uint8Array(1);

/** A descriptor {@linkcode Libc6.openRead} opened. */
class LibcReader implements NativeReader {
  readonly #c: Libc;
  readonly #libc: Libc6;
  readonly #path: string;
  #fd: number;

  constructor(c: Libc, fd: number, path: string, libc: Libc6) {
    this.#c = c;
    this.#fd = fd;
    this.#path = path;
    this.#libc = libc;
  }

  read(into: Uint8Array): number {
    for (;;) {
      const n = Number(
        this.#c.read(this.#fd, into as Uint8Array<ArrayBuffer>, BigInt(into.length)),
      );
      if (n >= 0) return n;
      const errno = this.#libc.errno();
      if (errno !== EINTR) {
        throw this.#libc.error(`Cannot read ${JSON.stringify(this.#path)}`, errno);
      }
    }
  }

  async readAsync(into: Uint8Array): Promise<number> {
    const n = Number(
      await this.#c.read_nb(this.#fd, into as Uint8Array<ArrayBuffer>, BigInt(into.length)),
    );
    // errno stayed on the pool's thread: a failed read is made again here, where it can be read
    return n >= 0 ? n : this.read(into);
  }

  stat(): NativeStat {
    return this.#libc.statAt(this.#fd, EMPTY_PATH, AT_EMPTY_PATH, this.#path);
  }

  close(): void {
    const fd = this.#fd;
    if (fd < 0) return;
    this.#fd = -1;
    // Linux releases the descriptor even when close fails: never retry it
    if (this.#c.close(fd) !== 0) {
      throw this.#libc.error(`Cannot close ${JSON.stringify(this.#path)}`, this.#libc.errno());
    }
  }
}

/** An id for lchown or fchown: -1 is (uid_t)-1, "leave unchanged". */
function ownerId(what: string, n: number): number {
  if (n === -1) return 0xffffffff;
  if (Number.isInteger(n) && n >= 0 && n < 0xffffffff) return n;
  throw new NativeError(`${what}: not a valid id`, ERRNO.EINVAL);
}

/** struct timespec[2] of utimensat and futimens, reused: calls are synchronous (one per thread). */
const TIMES = new BigInt64Array(4);

/** `TIMES` for the two times, each {i64 tv_sec, i64 tv_nsec}; valid until the next call. */
function timespecs(what: string, atimeNs: bigint, mtimeNs: bigint): BigInt64Array<ArrayBuffer> {
  setTimespec(0, atimeNs);
  if (mtimeNs === atimeNs) {
    TIMES[2] = TIMES[0];
    TIMES[3] = TIMES[1];
  } else setTimespec(2, mtimeNs);
  if (TIMES[0] * NS_PER_S + TIMES[1] !== atimeNs || TIMES[2] * NS_PER_S + TIMES[3] !== mtimeNs) {
    throw new NativeError(`${what}: time out of range`, ERRNO.EINVAL);
  }
  return TIMES;
}

/** Splits nanoseconds since the epoch into TIMES[at] = tv_sec, TIMES[at + 1] = tv_nsec (0..1e9). */
function setTimespec(at: number, ns: bigint): void {
  let sec = ns / NS_PER_S;
  let nsec = ns - sec * NS_PER_S;
  if (nsec < 0n) { // bigint division truncates toward zero; times before 1970 need floor
    sec -= 1n;
    nsec += NS_PER_S;
  }
  TIMES[at] = sec;
  TIMES[at + 1] = nsec;
}
