/**
 * File metadata as backup and restore need it: lstat with nanosecond times (libc statx through
 * lib/fs_native.ts when FFI is allowed, Deno.lstat's milliseconds otherwise).
 *
 * @module
 */

import { errorMessage } from "./errors.ts";
import { nativeFs } from "./fs_native.ts";

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
  /** Inode, for the repository self-exclusion. */
  ino: bigint;
}

/** Type bits of st_mode. */
export const S_IFMT = 0o170000;
/** Regular file. */
export const S_IFREG = 0o100000;
/** Directory. */
export const S_IFDIR = 0o040000;
/** Symbolic link. */
export const S_IFLNK = 0o120000;

/** lstat without following symlinks, with the best time precision available. */
export function lstatEntry(path: string): EntryStat {
  const native = nativeFs();
  if (native) {
    const s = native.lstat(path);
    return {
      mode: s.mode,
      uid: s.uid,
      gid: s.gid,
      size: s.size,
      mtimeNs: s.mtimeNs,
      ctimeNs: s.ctimeNs,
      dev: s.dev,
      ino: s.ino,
    };
  }
  const s = Deno.lstatSync(path);
  return {
    mode: s.mode ?? 0,
    uid: s.uid ?? 0,
    gid: s.gid ?? 0,
    size: s.size,
    mtimeNs: BigInt(s.mtime?.getTime() ?? 0) * 1_000_000n,
    ctimeNs: BigInt(s.ctime?.getTime() ?? 0) * 1_000_000n,
    dev: s.dev ?? 0,
    ino: BigInt(s.ino ?? 0),
  };
}

/** The kind of an entry from its mode. */
export function entryKind(mode: number): "file" | "dir" | "symlink" | "special" {
  switch (mode & S_IFMT) {
    case S_IFREG:
      return "file";
    case S_IFDIR:
      return "dir";
    case S_IFLNK:
      return "symlink";
    default:
      return "special";
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
