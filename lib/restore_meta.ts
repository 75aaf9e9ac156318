/**
 * An item's metadata set on a restored path: owner (when restoring owners), mode, extended
 * attributes, then times (last, since the others change ctime and mtime). Used by the restorer
 * for every kind of item; each failure is one warning naming the path, never an error.
 *
 * @module
 */

import type { Item } from "./archive.ts";
import { errorMessage } from "./errors.ts";
import { describeFsError } from "./fs_meta.ts";
import type { NativeFs } from "./fs_native.ts";

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
}

/** Sets owner, mode, xattrs and times of `path` from `item`; warns for what it cannot set. */
export function applyItemMeta(path: string, item: Item, options: ApplyMetaOptions): void {
  const { native: n, owners, warn } = options;
  const shown = options.shown ?? path;
  const link = item.type === "symlink";
  try {
    if (owners) {
      if (n) n.lchown(path, item.uid, item.gid);
      else if (!link) Deno.chownSync(path, item.uid, item.gid);
    }
    if (!link) Deno.chmodSync(path, item.mode);
  } catch (err) {
    warn(`Cannot set owner or mode of "${shown}": ${describeFsError(err)}`);
  }
  if (item.xattrs && n) {
    // Linux refuses user.* on symlinks, FIFOs and devices
    const noUser = item.type !== "file" && item.type !== "dir";
    for (const [name, value] of Object.entries(item.xattrs)) {
      if (noUser && name.startsWith("user.")) continue;
      try {
        n.setXattr(path, name, value);
      } catch (err) {
        warn(`Cannot set extended attribute "${name}" of "${shown}": ${errorMessage(err)}`);
      }
    }
  } else if (item.xattrs && Object.keys(item.xattrs).length > 0) {
    warn(`Extended attributes of "${shown}" not restored: run with --allow-ffi`);
  }
  try {
    if (n) n.setTimes(path, item.mtimeNs, item.mtimeNs);
    else if (!link) {
      const t = new Date(Number(item.mtimeNs / 1_000_000n));
      Deno.utimeSync(path, t, t);
    }
  } catch (err) {
    warn(`Cannot set the times of "${shown}": ${describeFsError(err)}`);
  }
}
