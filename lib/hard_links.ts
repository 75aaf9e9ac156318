/**
 * Backup's hard links: an inode with more than one link is stored under its first name; its
 * later names carry that name (`hardlink`) and its chunks, and are not read again. Memory is
 * bounded by the hard-linked inodes in flight: a group goes once all its links were met.
 *
 * @module
 */

import type { Item } from "./archive.ts";
import { copyIds } from "./ids.ts";

/** What the first name of a hard-linked inode left for its later names. */
interface LinkGroup {
  /** The path (as stored) of its first name. */
  first: string;
  /** Links still to come. */
  left: number;
  /** Symlink target, device numbers, chunk ids and size of the first name. */
  target?: string;
  major?: number;
  minor?: number;
  chunks?: Uint8Array[];
  size: number;
}

/** The hard-linked inodes met so far in one backup, by `dev:ino`. */
export class HardLinks {
  readonly #groups = new Map<string, LinkGroup>();

  /** An entry's group key (device and inode), or undefined: one link, or a directory. */
  static keyOf(
    st: { nlink: number; dev: number; ino: bigint },
    kind: Item["type"],
  ): string | undefined {
    return st.nlink > 1 && kind !== "dir" ? `${st.dev}:${st.ino}` : undefined;
  }

  /**
   * For a later name of a group met before: fills in `item` from its first name and returns
   * true. Otherwise marks `item` as its group's first name and returns false.
   */
  later(key: string, item: Item): boolean {
    const group = this.#groups.get(key);
    if (!group) {
      item.hardlink = item.path;
      return false;
    }
    if (--group.left <= 0) this.#groups.delete(key);
    item.hardlink = group.first;
    item.target = group.target;
    item.major = group.major;
    item.minor = group.minor;
    if (group.chunks) [item.chunks, item.size] = [group.chunks, group.size];
    return true;
  }

  /**
   * Remembers a group's first name once read (so a name that could not be read is no group's
   * first), with `nlink - 1` names to come. Its chunk ids may still be coming (the array is
   * filled in place, and its later names' items go out after it): {@linkcode HardLinks.settled}
   * once they are all there.
   */
  remember(key: string, item: Item, nlink: number): void {
    const { path, target, major, minor, chunks, size } = item;
    this.#groups.set(key, { first: path, left: nlink - 1, target, major, minor, chunks, size });
  }

  /** The first name's chunk ids are all there: the group keeps a copy of its own. */
  settled(key: string): void {
    const group = this.#groups.get(key);
    // kept until the last name: its own copy, not views that keep id slabs alive (lib/ids.ts)
    if (group?.chunks) group.chunks = copyIds(group.chunks);
  }
}
