/**
 * Restore's side of the disk: the destination made and proved writable, temp files created and
 * written (through libc when FFI is allowed: one descriptor, no path lookup per call), and an
 * item's metadata set on a restored path or open file: owner (when restoring owners), mode,
 * extended attributes, then times (last, since the others change ctime and mtime). Used by the
 * restorer for every kind of item; each metadata failure is one warning naming the path, never
 * an error.
 *
 * @module
 */

import type { Item } from "./archive.ts";
import { errorMessage, UsageError } from "./errors.ts";
import { describeFsError } from "./fs_meta.ts";
import { ERRNO, NativeError, type NativeFile, type NativeFs } from "./fs_native.ts";

/**
 * What a restore could not make or set for want of privilege or FFI, counted so that each kind
 * makes one summary warning rather than one per item: FIFOs and devices without FFI, devices as
 * another user than root, extended attributes the kernel refused (trusted.*, security.* as
 * another user than root: EPERM or EACCES) and those not set without FFI.
 */
export class RestoreSkips {
  #specialsNoFfi: string[] = [];
  #devicesNotRoot: string[] = [];
  #denied = new Map<string, number>();
  #deniedFirst = "";
  #noFfi = 0;
  #noFfiFirst = "";

  /** Counts a FIFO or device not made for want of FFI. */
  specialNoFfi(path: string): void {
    this.#specialsNoFfi.push(path);
  }

  /** Counts a device not made for want of root. */
  deviceNotRoot(path: string): void {
    this.#devicesNotRoot.push(path);
  }

  /** Counts an attribute `name` of `path` that the kernel refused to set. */
  denied(name: string, path: string): void {
    const ns = name.slice(0, name.indexOf(".") + 1) + "*";
    this.#denied.set(ns, (this.#denied.get(ns) ?? 0) + 1);
    this.#deniedFirst ||= path;
  }

  /** Counts a path whose attributes were not set for want of FFI. */
  noFfi(path: string): void {
    this.#noFfi++;
    this.#noFfiFirst ||= path;
  }

  /** The summary warnings (none when nothing was skipped). */
  warnings(): string[] {
    const out: string[] = [];
    const some = (paths: string[]) =>
      `${paths.length} (${paths.slice(0, 3).map((p) => `"${p}"`).join(", ")}${
        paths.length > 3 ? ", ..." : ""
      })`;
    if (this.#specialsNoFfi.length > 0) {
      out.push(
        `Skipped ${some(this.#specialsNoFfi)} FIFOs and devices: creating them needs --allow-ffi`,
      );
    }
    if (this.#devicesNotRoot.length > 0) {
      out.push(`Skipped ${some(this.#devicesNotRoot)} devices: creating devices needs root`);
    }
    if (this.#denied.size > 0) {
      const total = [...this.#denied.values()].reduce((a, b) => a + b, 0);
      const spaces = [...this.#denied.keys()].sort().join(", ");
      out.push(
        `Skipped ${total} extended attributes (${spaces}; first on "${this.#deniedFirst}"): setting them needs root`,
      );
    }
    if (this.#noFfi > 0) {
      out.push(
        `Extended attributes of ${this.#noFfi} items (first "${this.#noFfiFirst}") not restored: run with --allow-ffi`,
      );
    }
    return out;
  }
}

/** Options of {@linkcode applyItemMeta}. */
export interface ApplyMetaOptions {
  /** libc calls (lib/fs_native.ts), or null without FFI. */
  native: NativeFs | null;
  /** Whether to set the owner (root restores owners). */
  owners: boolean;
  /** Receives each warning. */
  warn: (message: string) => void;
  /** The name warnings give (the real name of a file still under its temp name). */
  shown?: string;
  /** Tallies what could not be set for want of privilege or FFI (else: one warning each). */
  skipped?: RestoreSkips;
  /** `path` open (a regular file restore created): set through its descriptor, no lookups. */
  file?: NativeFile;
  /** The owner and mode `path` is known to have: those equal to the item's are not set again. */
  known?: { uid: number; gid: number; mode: number };
}

/** Who creates files, and the umask: what a new file gets ({@linkcode createdMeta}). */
export interface Creator {
  /** The process's user id. */
  uid: number;
  /** The process's group id. */
  gid: number;
  /** The process's umask. */
  umask: number;
}

/**
 * This process as a {@linkcode Creator}; null where it has no user ids (Windows) or its umask
 * cannot be read (then every new file gets its owner and mode set).
 */
export function creator(): Creator | null {
  const uid = Deno.uid();
  const gid = Deno.gid();
  const umask = processUmask();
  return uid === null || gid === null || umask === null ? null : { uid, gid, umask };
}

/**
 * The umask: Deno's call needs all of `--allow-sys`, which a scoped run has not; Linux also shows
 * it in /proc/self/status, which the launcher grants.
 */
function processUmask(): number | null {
  try {
    return Deno.umask();
  } catch {
    // not permitted: /proc
  }
  try {
    const m = /^Umask:\s*([0-7]+)$/m.exec(Deno.readTextFileSync("/proc/self/status"));
    return m ? parseInt(m[1], 8) : null;
  } catch {
    return null;
  }
}

/**
 * The owner and mode of a file {@linkcode openTemp} just made through libc for `item`, in a
 * directory with no set-group-id bit and no default ACL: the creator's ids, the item's
 * permission bits less the umask.
 */
export function createdMeta(item: Item, c: Creator): { uid: number; gid: number; mode: number } {
  return { uid: c.uid, gid: c.gid, mode: item.mode & 0o777 & ~c.umask };
}

/** Sets owner, mode, xattrs and times of `path` from `item`; warns for what it cannot set. */
export function applyItemMeta(path: string, item: Item, options: ApplyMetaOptions): void {
  const { native: n, owners, warn, skipped, file, known } = options;
  const shown = options.shown ?? path;
  const link = item.type === "symlink";
  try {
    if (owners && !(known?.uid === item.uid && known.gid === item.gid)) {
      if (file) file.chown(item.uid, item.gid);
      else if (n) n.lchown(path, item.uid, item.gid);
      else if (!link) Deno.chownSync(path, item.uid, item.gid);
    }
    // after a chown, which clears set-id bits: a mode with them is never known
    if (known?.mode === (item.mode & 0o7777)) { /* already right */ }
    else if (file) file.chmod(item.mode);
    else if (!link) Deno.chmodSync(path, item.mode);
  } catch (err) {
    warn(`Cannot set owner or mode of "${shown}": ${describeFsError(err)}`);
  }
  if (item.xattrs && n) {
    // Linux refuses user.* on symlinks, FIFOs and devices
    const noUser = item.type !== "file" && item.type !== "dir";
    for (const [name, value] of Object.entries(item.xattrs)) {
      if (noUser && name.startsWith("user.")) continue;
      try {
        if (file) file.setXattr(name, value);
        else n.setXattr(path, name, value);
      } catch (err) {
        const errno = err instanceof NativeError ? err.errno : 0;
        if (skipped && (errno === ERRNO.EPERM || errno === ERRNO.EACCES)) {
          skipped.denied(name, shown);
        } else warn(`Cannot set extended attribute "${name}" of "${shown}": ${errorMessage(err)}`);
      }
    }
  } else if (item.xattrs && Object.keys(item.xattrs).length > 0) {
    if (skipped) skipped.noFfi(shown);
    else warn(`Extended attributes of "${shown}" not restored: run with --allow-ffi`);
  }
  try {
    if (file) file.setTimes(item.mtimeNs, item.mtimeNs);
    else if (n) n.setTimes(path, item.mtimeNs, item.mtimeNs);
    else if (!link) {
      const t = new Date(Number(item.mtimeNs / 1_000_000n));
      Deno.utimeSync(path, t, t);
    }
  } catch (err) {
    warn(`Cannot set the times of "${shown}": ${describeFsError(err)}`);
  }
}

/**
 * What a path is: its directory's real path, and the device, inode and type of its last
 * component (not followed); "" when it cannot be read. A freed inode number is soon reused,
 * so the type and the directory count too.
 */
export function inode(path: string): string {
  try {
    const st = Deno.lstatSync(path);
    const dir = Deno.realPathSync(path.slice(0, path.lastIndexOf("/")) || "/");
    return `${dir}|${st.dev}:${st.ino}:${st.mode! & 0o170000}`;
  } catch {
    return "";
  }
}

/** A temp file being written: through libc when FFI is allowed (`native`), else Deno's API. */
export interface TempFile {
  /** Writes all of `data` at `pos`. */
  writeAt(data: Uint8Array, pos: number): void;
  /** Writes all of `data` at `pos` from another thread, when FFI is allowed: for large writes. */
  writeAtAsync?: (data: Uint8Array, pos: number) => Promise<void>;
  /** Sets the size (after holes at the end). */
  truncate(size: number): void;
  /** Closes it. */
  close(): void;
  /** The libc file, to set metadata through ({@linkcode ApplyMetaOptions.file}). */
  native?: NativeFile;
}

/**
 * Creates `name` (never over an existing file) for writing: with permission bits `perm` less
 * the umask through libc, else 0600.
 */
export function openTemp(native: NativeFs | null, name: string, perm: number): TempFile {
  if (native) {
    const f = native.createFile(name, perm & 0o777);
    return {
      writeAt: (data, pos) => f.writeAt(data, pos),
      writeAtAsync: (data, pos) => f.writeAtAsync(data, pos),
      truncate: (size) => f.truncate(size),
      close: () => f.close(),
      native: f,
    };
  }
  const f = Deno.openSync(name, { write: true, createNew: true, mode: 0o600 });
  let at = 0;
  return {
    writeAt(data, pos) {
      if (pos !== at) f.seekSync(pos, Deno.SeekMode.Start);
      for (let o = 0; o < data.length;) o += f.writeSync(data.subarray(o));
      at = pos + data.length;
    },
    truncate: (size) => f.truncateSync(size),
    close: () => f.close(),
  };
}

/**
 * Creates the destination directory and proves it writable (a probe file, removed at once); a
 * destination that cannot be one is a UsageError naming it and the cause.
 */
export async function prepareDest(dest: string): Promise<void> {
  try {
    await Deno.mkdir(dest, { recursive: true });
    await Deno.remove(await Deno.makeTempFile({ dir: dest, prefix: ".vger-probe-" }));
  } catch (err) {
    if (err instanceof Deno.errors.NotCapable) throw err; // cli.ts names the missing flag
    const code = (err as { code?: string }).code;
    const why = err instanceof Deno.errors.AlreadyExists
      ? "it exists and is not a directory"
      : code === "ENOTDIR"
      ? "a parent of it is not a directory"
      : code === "EROFS"
      ? "read-only file system"
      : describeFsError(err).replace(/ \(os error \d+\).*$/, "");
    throw new UsageError(`Cannot extract to "${dest}": ${why}`, { cause: err });
  }
}

/** Whether a stored path is safe to join under a destination. */
export function isSafeRelativePath(p: string): boolean {
  if (p.length === 0 || p.startsWith("/") || p.includes("\0")) return false;
  return !UNSAFE_SEGMENT.test(p);
}

/** A segment that is empty, `.` or `..`. */
const UNSAFE_SEGMENT = /(?:^|\/)\.{0,2}(?:\/|$)/;
