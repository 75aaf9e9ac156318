/**
 * What statx(2) reports of a file, as lib/fs_native.ts reads it: {@linkcode StatxResult} builds
 * its bigints only when they are read, and two of them compare without any
 * ({@linkcode sameFileStat}).
 *
 * @module
 */

/** Nanoseconds per second. */
export const NS_PER_S = 1_000_000_000n;
/** statx's mask bit for the birth time. */
export const STATX_BTIME = 0x800;

/** What lib/fs_native.ts's `NativeFs.lstat` reports (from statx, AT_SYMLINK_NOFOLLOW). */
export interface NativeStat {
  /** File type and permission bits (st_mode). */
  mode: number;
  /** Owner user id. */
  uid: number;
  /** Owner group id. */
  gid: number;
  /** Size in bytes. */
  size: number;
  /** Number of hard links. */
  nlink: number;
  /** Inode number; a bigint because some file systems (overlayfs xino) use all 64 bits. */
  ino: bigint;
  /** Device holding the file, as makedev(major, minor) like Deno.FileInfo.dev. */
  dev: number;
  /** Device number of a block or character device, else 0. */
  rdev: number;
  /** Major number of a block or character device, else 0. */
  rdevMajor: number;
  /** Minor number of a block or character device, else 0. */
  rdevMinor: number;
  /** Last access, nanoseconds since the epoch. */
  atimeNs: bigint;
  /** Last modification, nanoseconds since the epoch. */
  mtimeNs: bigint;
  /** Last status change, nanoseconds since the epoch. */
  ctimeNs: bigint;
  /** Creation time, or null when the file system does not record it. */
  birthtimeNs: bigint | null;
}

/**
 * A statx result (offsets of struct statx in <linux/stat.h>; timestamps are {i64 sec, u32 nsec,
 * i32 pad}). The numbers are read at once; the 64-bit times and the inode become bigints only
 * when asked, once each: a backup stats every file twice, and building all of them made ~1 KB
 * of garbage per stat (a sampled heap profile of 400,000 files).
 */
export class StatxResult implements NativeStat {
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly size: number;
  readonly nlink: number;
  readonly dev: number;
  readonly rdev: number;
  readonly rdevMajor: number;
  readonly rdevMinor: number;
  // the inode's 32-bit halves; each time's seconds (a double: exact below 2^53 s, else
  // #exact holds the bigint) and nanoseconds
  readonly #inoLo: number;
  readonly #inoHi: number;
  readonly #aSec: number;
  readonly #aNsec: number;
  readonly #mSec: number;
  readonly #mNsec: number;
  readonly #cSec: number;
  readonly #cNsec: number;
  readonly #bSec: number | null;
  readonly #bNsec: number;
  #ino?: bigint;
  #atime?: bigint;
  #mtime?: bigint;
  #ctime?: bigint;
  #birthtime?: bigint;
  /** The times' bigints, built at once when a time's seconds are beyond 2^53 (never, really). */
  readonly #exact: boolean;

  /** Reads the struct statx in `v` (copied: the buffer is reused). */
  constructor(v: DataView) {
    this.mode = v.getUint16(0x1c, true);
    this.uid = v.getUint32(0x14, true);
    this.gid = v.getUint32(0x18, true);
    // below 2^53 on every file system Linux has (their limit is at most 2^63 - 1)
    this.size = v.getUint32(0x28, true) + v.getUint32(0x2c, true) * 2 ** 32;
    this.nlink = v.getUint32(0x10, true);
    this.rdevMajor = v.getUint32(0x80, true);
    this.rdevMinor = v.getUint32(0x84, true);
    this.dev = makedev(v.getUint32(0x88, true), v.getUint32(0x8c, true));
    this.rdev = makedev(this.rdevMajor, this.rdevMinor);
    this.#inoLo = v.getUint32(0x20, true);
    this.#inoHi = v.getUint32(0x24, true);
    this.#aSec = statxSeconds(v, 0x40);
    this.#aNsec = v.getUint32(0x48, true);
    this.#mSec = statxSeconds(v, 0x70);
    this.#mNsec = v.getUint32(0x78, true);
    this.#cSec = statxSeconds(v, 0x60);
    this.#cNsec = v.getUint32(0x68, true);
    const birth = (v.getUint32(0, true) & STATX_BTIME) !== 0;
    this.#bSec = birth ? statxSeconds(v, 0x50) : null;
    this.#bNsec = birth ? v.getUint32(0x58, true) : 0;
    this.#exact = !Number.isSafeInteger(this.#aSec) || !Number.isSafeInteger(this.#mSec) ||
      !Number.isSafeInteger(this.#cSec) || !Number.isSafeInteger(this.#bSec ?? 0);
    if (this.#exact) {
      this.#atime = statxTime(v, 0x40);
      this.#mtime = statxTime(v, 0x70);
      this.#ctime = statxTime(v, 0x60);
      if (birth) this.#birthtime = statxTime(v, 0x50);
    }
  }

  get ino(): bigint {
    return this.#ino ??= (BigInt(this.#inoHi) << 32n) | BigInt(this.#inoLo);
  }
  get atimeNs(): bigint {
    return this.#atime ??= BigInt(this.#aSec) * NS_PER_S + BigInt(this.#aNsec);
  }
  get mtimeNs(): bigint {
    return this.#mtime ??= BigInt(this.#mSec) * NS_PER_S + BigInt(this.#mNsec);
  }
  get ctimeNs(): bigint {
    return this.#ctime ??= BigInt(this.#cSec) * NS_PER_S + BigInt(this.#cNsec);
  }
  get birthtimeNs(): bigint | null {
    if (this.#bSec === null) return null;
    return this.#birthtime ??= BigInt(this.#bSec) * NS_PER_S + BigInt(this.#bNsec);
  }

  /** Whether `o` has the same size, device, inode, modification and change times. */
  sameAs(o: StatxResult): boolean {
    if (this.#exact || o.#exact) {
      return this.size === o.size && this.dev === o.dev && this.ino === o.ino &&
        this.mtimeNs === o.mtimeNs && this.ctimeNs === o.ctimeNs;
    }
    return this.size === o.size && this.dev === o.dev && this.#inoLo === o.#inoLo &&
      this.#inoHi === o.#inoHi && this.#mSec === o.#mSec && this.#mNsec === o.#mNsec &&
      this.#cSec === o.#cSec && this.#cNsec === o.#cNsec;
  }
}

/** A statx timestamp's seconds as a double (exact below 2^53). */
function statxSeconds(v: DataView, at: number): number {
  return v.getInt32(at + 4, true) * 2 ** 32 + v.getUint32(at, true);
}

/** A statx timestamp in nanoseconds, exactly. */
function statxTime(v: DataView, at: number): bigint {
  return v.getBigInt64(at, true) * NS_PER_S + BigInt(v.getUint32(at + 8, true));
}

/**
 * Whether two stats agree in size, device, inode, modification and change times: whether a file
 * read between them stayed the same. Two statx results compare without building bigints.
 */
export function sameFileStat(
  a: Pick<NativeStat, "size" | "mtimeNs" | "ctimeNs" | "ino" | "dev">,
  b: Pick<NativeStat, "size" | "mtimeNs" | "ctimeNs" | "ino" | "dev">,
): boolean {
  if (a instanceof StatxResult && b instanceof StatxResult) return a.sameAs(b);
  return a.size === b.size && a.dev === b.dev && a.ino === b.ino && a.mtimeNs === b.mtimeNs &&
    a.ctimeNs === b.ctimeNs;
}

/** glibc's makedev: the st_dev encoding that stat(2) and Deno.FileInfo report. */
export function makedev(major: number, minor: number): number {
  // a major below 2^12 leaves the top 32 bits zero: exact in a double, without bigints (two
  // per stat of every file)
  if (major >= 0 && major < 0x1000 && minor >= 0 && minor <= 0xffffffff) {
    return (minor - (minor & 0xff)) * 4096 + major * 256 + (minor & 0xff);
  }
  const m = BigInt(major);
  const n = BigInt(minor);
  return Number(
    ((m & 0xfffff000n) << 32n) | ((m & 0xfffn) << 8n) | ((n & 0xffffff00n) << 12n) | (n & 0xffn),
  );
}
