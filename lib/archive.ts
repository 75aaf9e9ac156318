/**
 * Archives: the item stream (one msgpack map per file, directory or symlink) and the archive
 * metadata object.
 *
 * Item (msgpack map, short keys):
 *   p path (string, absolute without the leading "/"), t type ("f" file, "d" dir, "l" symlink,
 *   "p" FIFO, "c" character device, "b" block device), m mode (permission bits incl.
 *   setuid/setgid/sticky), u uid, g gid, un user name, gn group name, mt mtime in ns (int64),
 *   s size, c chunk ids (array of bin(32), files), l link target (symlinks), x xattrs (map name ->
 *   bin), h hardlink group (the path of the group's first name; every name carries it), ma/mi
 *   device major/minor (devices), optional.
 * A type this version does not know is refused with an UnsupportedError naming the archive.
 * The stream is cut into blobs at item boundaries (each blob holds whole items): after an item
 * once the blob holds >= 32 KiB and the item's CRC-32 has its low 6 bits zero, or once it holds
 * >= 1 MiB. The cut depends only on content, so unchanged parts of a tree give identical blobs
 * that deduplicate. Blobs are sealed as type items and stored in packs like chunks.
 *
 * Archive metadata (`archives/<hex id>`, sealed type archive, identity = the id bytes):
 *   { v: 1, name, hostname, username, time, time_end (ISO 8601), sources: [string],
 *     items: [bin(32) item-blob ids in order], stats: {files, original, compressed, deduplicated},
 *     command_line?: [string] }
 * The archive id is the HMAC chunk id of that plaintext.
 *
 * @module
 */

import { decode, Decoder, Encoder } from "@msgpack/msgpack";
import { checkMsgpack, type MsgpackLimits } from "./msgpack_guard.ts";
import { IntegrityError, QuotaError, UnsupportedError, UsageError } from "./errors.ts";
import type { ArchiveStats } from "./manifest.ts";
import { crc32 } from "./pack.ts";
import { escapeControl, hasControl } from "./printable.ts";

/** The longest archive name, in bytes of UTF-8. */
export const MAX_ARCHIVE_NAME_BYTES = 255;

/**
 * Checks a new archive's name: 1 to 255 bytes of printable UTF-8 without "/", not "." or "..",
 * no control characters. Throws a UsageError naming the name (escaped) and the rule.
 *
 * @example
 * ```ts
 * import { throws } from "node:assert/strict";
 * import { validateArchiveName } from "./archive.ts";
 *
 * validateArchiveName("host-2026-12-04T10:00:00");
 * throws(() => validateArchiveName("../../etc"));
 * ```
 */
export function validateArchiveName(name: string): void {
  const why = archiveNameProblem(name);
  if (why === undefined) return;
  const shown = name.length > 64 ? `${name.slice(0, 64)}...` : name;
  throw new UsageError(`Invalid archive name "${escapeControl(shown)}": ${why}`);
}

function archiveNameProblem(name: string): string | undefined {
  if (name === "") return "it is empty";
  const bytes = new TextEncoder().encode(name).length;
  if (bytes > MAX_ARCHIVE_NAME_BYTES) {
    return `${bytes} bytes long, at most ${MAX_ARCHIVE_NAME_BYTES} are allowed`;
  }
  if (name === "." || name === "..") return `"." and ".." are not archive names`;
  if (name.includes("/")) return `it contains "/"`;
  if (hasControl(name)) return "it contains control characters";
  if (!name.isWellFormed()) return "it is not valid UTF-8";
  return undefined;
}

/** Kinds of entries an archive holds (sockets are never stored). */
export type ItemType = "file" | "dir" | "symlink" | "fifo" | "chardev" | "blockdev";

/** One entry of an archive. */
export interface Item {
  /** Absolute path without the leading "/". */
  path: string;
  /** Entry kind. */
  type: ItemType;
  /** Permission bits (incl. setuid, setgid, sticky). */
  mode: number;
  /** Owner uid. */
  uid: number;
  /** Owner gid. */
  gid: number;
  /** Owner user name, when known. */
  user?: string;
  /** Owner group name, when known. */
  group?: string;
  /** Modification time in nanoseconds since the epoch. */
  mtimeNs: bigint;
  /** Size in bytes (files). */
  size: number;
  /** Chunk ids of the contents, in order (files). */
  chunks?: Uint8Array[];
  /** Link target (symlinks). */
  target?: string;
  /** Extended attributes. */
  xattrs?: Record<string, Uint8Array>;
  /**
   * Hardlink group: the path of the group's first name in the archive, on every name of the
   * group (the first one too). Names with the same value are one inode.
   */
  hardlink?: string;
  /** Device major number (character and block devices). */
  major?: number;
  /** Device minor number (character and block devices). */
  minor?: number;
}

const TYPE_CODE: Record<ItemType, string> = {
  file: "f",
  dir: "d",
  symlink: "l",
  fifo: "p",
  chardev: "c",
  blockdev: "b",
};
const CODE_TYPE: Record<string, ItemType> = {
  f: "file",
  d: "dir",
  l: "symlink",
  p: "fifo",
  c: "chardev",
  b: "blockdev",
};

/** Whether an item type is a device (it then has `major` and `minor`). */
export function isDevice(type: ItemType): boolean {
  return type === "chardev" || type === "blockdev";
}

/** The msgpack map of one item (short keys; see docs/FORMAT.md). */
function itemRecord(item: Item): Record<string, unknown> {
  const o: Record<string, unknown> = {
    p: item.path,
    t: TYPE_CODE[item.type],
    m: item.mode,
    u: item.uid,
    g: item.gid,
    mt: item.mtimeNs,
    s: item.size,
  };
  if (item.user !== undefined) o.un = item.user;
  if (item.group !== undefined) o.gn = item.group;
  if (item.chunks !== undefined) o.c = item.chunks;
  if (item.target !== undefined) o.l = item.target;
  if (item.xattrs !== undefined && Object.keys(item.xattrs).length > 0) o.x = item.xattrs;
  if (item.hardlink !== undefined) o.h = item.hardlink;
  if (item.major !== undefined) o.ma = item.major;
  if (item.minor !== undefined) o.mi = item.minor;
  return o;
}

/** Encodes one item. */
export function encodeItem(encoder: Encoder, item: Item): Uint8Array {
  return encoder.encode(itemRecord(item));
}

/** A msgpack encoder set up for items (int64 for times). */
export function newItemEncoder(): Encoder {
  return new Encoder({ useBigInt64: true });
}

const isUint = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
const toNum = (v: unknown): unknown => (typeof v === "bigint" ? Number(v) : v);

/** An item's path for a one-line message: control characters escaped, at most 200 chars. */
function shownPath(p: string): string {
  return escapeControl(p.length > 200 ? `${p.slice(0, 200)}...` : p);
}

/** UTF-8 of item strings: msgpack hands their bytes (`rawStrings`), decoded here. */
const utf8 = new TextDecoder();

/**
 * The last text decoded for one field, reused while the bytes repeat (a user or group name is
 * the same on most items of a blob).
 */
class RepeatedText {
  #bytes: Uint8Array = new Uint8Array(0);
  #text = "";

  decode(bytes: Uint8Array): string {
    const last = this.#bytes;
    if (bytes.length === last.length) {
      let i = 0;
      while (i < bytes.length && bytes[i] === last[i]) i++;
      if (i === bytes.length) return this.#text;
    }
    this.#bytes = bytes;
    return this.#text = utf8.decode(bytes);
  }
}

/**
 * Items from their msgpack maps, strings taken as bytes. msgpack's own string decoding built an
 * array of code units per string: two thirds of what a check of 400,000 one-chunk files
 * allocated (a sampled heap profile), garbage that grew the heap by ~100 MiB.
 */
class ItemReader {
  readonly #user = new RepeatedText();
  readonly #group = new RepeatedText();

  constructor(readonly what: string, readonly archive: string | undefined) {}

  toItem(o: unknown): Item {
    const bad = (why: string) => new IntegrityError(`${this.what} is corrupt: ${why}`);
    if (typeof o !== "object" || o === null || Array.isArray(o)) throw bad("item is not a map");
    const r = o as Record<string, unknown>;
    const m = toNum(r.m), u = toNum(r.u), g = toNum(r.g), s = toNum(r.s);
    const path = text(r.p);
    if (path === undefined || path.length === 0) throw bad("item without a path");
    const code = text(r.t);
    if (code === undefined || code.length === 0) throw bad(`item "${path}" has no type`);
    const type = Object.hasOwn(CODE_TYPE, code) ? CODE_TYPE[code] : undefined;
    if (!type) {
      // a newer vger's item type: not damage (check and repair must not drop the archive)
      const t = escapeControl(code.length > 16 ? `${code.slice(0, 16)}...` : code);
      const where = this.archive !== undefined
        ? `Archive "${escapeControl(this.archive)}"`
        : this.what;
      throw new UnsupportedError(
        `${where} holds item "${
          shownPath(path)
        }" of type "${t}", which this version of vger does not know (written by a newer vger?)`,
      );
    }
    if (!isUint(m) || !isUint(u) || !isUint(g) || !isUint(s)) {
      throw bad(`item "${path}" has bad numbers`);
    }
    const mt = typeof r.mt === "bigint"
      ? r.mt
      : Number.isSafeInteger(r.mt)
      ? BigInt(r.mt as number)
      : null;
    if (mt === null) throw bad(`item "${path}" has a bad mtime`);
    const item: Item = { path, type, mode: m, uid: u, gid: g, mtimeNs: mt, size: s };
    if (r.un !== undefined) {
      if (!(r.un instanceof Uint8Array)) throw bad(`item "${path}" has a bad user`);
      item.user = this.#user.decode(r.un);
    }
    if (r.gn !== undefined) {
      if (!(r.gn instanceof Uint8Array)) throw bad(`item "${path}" has a bad group`);
      item.group = this.#group.decode(r.gn);
    }
    if (r.c !== undefined) {
      if (!Array.isArray(r.c) || !r.c.every((c) => c instanceof Uint8Array && c.length === 32)) {
        throw bad(`item "${path}" has a bad chunk list`);
      }
      item.chunks = r.c;
    }
    if (type === "file" && item.chunks === undefined) throw bad(`file "${path}" has no chunk list`);
    if (r.l !== undefined) {
      const target = text(r.l);
      if (target === undefined) throw bad(`item "${path}" has a bad link target`);
      item.target = target;
    }
    if (type === "symlink" && item.target === undefined) {
      throw bad(`symlink "${path}" has no target`);
    }
    if (r.x !== undefined) {
      const x = r.x as Record<string, unknown>;
      if (
        typeof x !== "object" || x === null || x instanceof Uint8Array ||
        !Object.values(x).every((v) => v instanceof Uint8Array)
      ) throw bad(`item "${path}" has bad xattrs`);
      item.xattrs = x as Record<string, Uint8Array>;
    }
    if (r.h !== undefined) {
      const group = text(r.h);
      if (group === undefined || group.length === 0 || type === "dir") {
        throw bad(`item "${path}" has a bad hardlink group`);
      }
      item.hardlink = group;
    }
    const ma = toNum(r.ma), mi = toNum(r.mi);
    if (isDevice(type)) {
      if (!isUint(ma) || !isUint(mi) || ma > 0xffffffff || mi > 0xffffffff) {
        throw bad(`device "${path}" has bad device numbers`);
      }
      item.major = ma;
      item.minor = mi;
    } else if (ma !== undefined || mi !== undefined) {
      throw bad(`item "${path}" has device numbers but is no device`);
    }
    return item;
  }
}

/** A string field's text (its bytes, with `rawStrings`), or undefined when it is no string. */
function text(v: unknown): string | undefined {
  return v instanceof Uint8Array ? utf8.decode(v) : undefined;
}

/**
 * Items nest two levels (the item map holds the chunk list and the xattr map); one more is
 * slack, for an odd value to be rejected by its field's check, naming the item.
 */
const ITEMS_MSGPACK = (blob: Uint8Array): MsgpackLimits => ({
  maxDepth: 3,
  // A 256 MiB blob holds at most 8 Mi chunk ids; an item takes at least 18 bytes for each of
  // its (at most 3) arrays and maps (an empty file: 36 bytes, its map and chunk list).
  maxLength: 1 << 23,
  maxContainers: 3 + Math.floor(blob.length / 8),
});

/** Options of {@linkcode decodeItems}. */
export interface DecodeItemsOptions {
  /** The archive the blob belongs to, named by the error for an item type this vger lacks. */
  archive?: string;
}

/**
 * Decodes every item of one item-stream blob; `what` names the blob in errors. Malformed bytes
 * are an IntegrityError; an item type this version does not know, an UnsupportedError naming
 * `options.archive`.
 */
export function decodeItems(
  blob: Uint8Array,
  what: string,
  options: DecodeItemsOptions = {},
): Item[] {
  // strings as bytes (rawStrings; map keys stay strings, cached): ItemReader decodes them
  const decoder = new Decoder({
    useBigInt64: true,
    rawStrings: true,
    maxStrLength: 1 << 20,
    maxBinLength: 1 << 20,
  });
  const reader = new ItemReader(what, options.archive);
  const items: Item[] = [];
  try {
    checkMsgpack(blob, ITEMS_MSGPACK(blob), what);
    for (const o of decoder.decodeMulti(blob)) items.push(reader.toItem(o));
  } catch (cause) {
    if (cause instanceof IntegrityError || cause instanceof UnsupportedError) throw cause;
    throw new IntegrityError(`${what} is corrupt: bad msgpack`, { cause });
  }
  return items;
}

/**
 * Cuts the item stream into blobs at content-defined item boundaries. Items are encoded into one
 * growing buffer, not an array each (an ArrayBuffer per item cost V8 more than the item: a backup
 * of 400,000 tiny files made one per file).
 */
export class ItemStreamBuffer {
  readonly #encoder = newItemEncoder();
  #buf = new Uint8Array(64 << 10);
  #size = 0;

  /** Encodes an item into the stream; returns a finished blob when the cut rule says so. */
  addItem(item: Item): Uint8Array | null {
    // a view of the encoder's buffer, copied by add before the next encode
    return this.add(this.#encoder.encodeSharedRef(itemRecord(item)));
  }

  /** Adds an encoded item (copied); returns a finished blob when the cut rule says so. */
  add(encoded: Uint8Array): Uint8Array | null {
    if (this.#size + encoded.length > this.#buf.length) {
      const grown = new Uint8Array(Math.max(this.#buf.length * 2, this.#size + encoded.length));
      grown.set(this.#buf.subarray(0, this.#size));
      this.#buf = grown;
    }
    this.#buf.set(encoded, this.#size);
    this.#size += encoded.length;
    if (this.#size >= 1 << 20 || (this.#size >= 32 << 10 && (crc32(encoded) & 63) === 0)) {
      return this.flush();
    }
    return null;
  }

  /** The remaining items as a blob, or null when empty. */
  flush(): Uint8Array | null {
    if (this.#size === 0) return null;
    const out = this.#buf.slice(0, this.#size);
    this.#size = 0;
    return out;
  }
}

/** Archive metadata. */
export interface ArchiveMeta {
  /** Archive name. */
  name: string;
  /** Host that made it. */
  hostname: string;
  /** User that made it. */
  username: string;
  /** Start time (ISO 8601). */
  time: string;
  /** End time (ISO 8601). */
  timeEnd: string;
  /** Source paths as given. */
  sources: string[];
  /** Item-stream blob ids, in order. */
  items: Uint8Array[];
  /** Sizes. */
  stats: ArchiveStats;
  /** The command line that made it (vger's arguments), when recorded. */
  commandLine?: string[];
}

/**
 * The most bytes of archive metadata a reader accepts: room for about 1.9 million item-stream
 * blob ids, so at least 60 GiB of item stream (hundreds of millions of files).
 */
export const MAX_ARCHIVE_META_BYTES: number = 64 << 20;
/** Archive metadata's shape: a map holding the sources and items arrays and the stats map. */
const ARCHIVE_META_MSGPACK: MsgpackLimits = {
  maxDepth: 3, // one level of slack, as for items
  maxLength: MAX_ARCHIVE_META_BYTES / 32,
  maxValues: 64 + 2 * (MAX_ARCHIVE_META_BYTES / 32),
};

/** Encodes archive metadata; throws QuotaError when readers would refuse it as too large. */
export function encodeArchiveMeta(a: ArchiveMeta): Uint8Array {
  const o: Record<string, unknown> = {
    v: 1,
    name: a.name,
    hostname: a.hostname,
    username: a.username,
    time: a.time,
    time_end: a.timeEnd,
    sources: a.sources,
    items: a.items,
    stats: a.stats,
  };
  if (a.commandLine !== undefined) o.command_line = a.commandLine;
  const bytes = new Encoder().encode(o);
  if (bytes.length > MAX_ARCHIVE_META_BYTES) {
    throw new QuotaError(
      `Cannot write archive "${a.name}": its metadata takes ${bytes.length} bytes, the limit is ${MAX_ARCHIVE_META_BYTES}`,
    );
  }
  return bytes;
}

/** Parses archive metadata; throws IntegrityError naming the archive on malformation. */
export function decodeArchiveMeta(bytes: Uint8Array, what: string): ArchiveMeta {
  const bad = (why: string, cause?: unknown) =>
    new IntegrityError(`${what} is corrupt: ${why}`, { cause });
  let o: Record<string, unknown>;
  if (bytes.length > MAX_ARCHIVE_META_BYTES) {
    throw bad(`${bytes.length} bytes, the limit is ${MAX_ARCHIVE_META_BYTES}`);
  }
  checkMsgpack(bytes, ARCHIVE_META_MSGPACK, what);
  try {
    o = decode(bytes) as Record<string, unknown>;
  } catch (cause) {
    throw bad("not msgpack", cause);
  }
  if (
    typeof o !== "object" || o === null || o.v !== 1 || typeof o.name !== "string" ||
    typeof o.hostname !== "string" || typeof o.username !== "string" ||
    typeof o.time !== "string" || typeof o.time_end !== "string" || !Array.isArray(o.sources) ||
    !Array.isArray(o.items) || typeof o.stats !== "object" || o.stats === null
  ) throw bad("unexpected structure");
  if (!o.items.every((i) => i instanceof Uint8Array && i.length === 32)) throw bad("bad item ids");
  if (!o.sources.every((x) => typeof x === "string")) throw bad("bad sources");
  const cl = o.command_line;
  if (cl !== undefined && (!Array.isArray(cl) || !cl.every((x) => typeof x === "string"))) {
    throw bad("bad command line");
  }
  const s = o.stats as Record<string, unknown>;
  const stat = (v: unknown): number => {
    const n = toNum(v);
    if (!isUint(n)) throw bad("bad stats");
    return n;
  };
  const meta: ArchiveMeta = {
    name: o.name,
    hostname: o.hostname,
    username: o.username,
    time: o.time,
    timeEnd: o.time_end,
    sources: o.sources as string[],
    items: o.items,
    stats: {
      files: stat(s.files),
      original: stat(s.original),
      compressed: stat(s.compressed),
      deduplicated: stat(s.deduplicated),
    },
  };
  if (cl !== undefined) meta.commandLine = cl as string[];
  return meta;
}
