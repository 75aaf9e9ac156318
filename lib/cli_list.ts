/**
 * `vger list` on the command line: archives, or the items of one archive (streamed line by line),
 * as `--json` and as text.
 *
 * @module
 */

import type { ArchiveMeta, Item } from "./archive.ts";
import { listArchivesCommand, listItemsCommand } from "./commands.ts";
import { bool, oneArchive } from "./cli_command_line.ts";
import { formatBytes } from "./cli_progress.ts";
import { printJson, printLines, type Run } from "./cli_run.ts";
import { toHex } from "./ids.ts";
import type { ManifestEntry } from "./manifest.ts";
import { escapeControl } from "./printable.ts";

/** One archive in `vger list --json`. */
export interface ArchiveJson {
  /** Archive name. */
  name: string;
  /** Archive id (hex). */
  id: string;
  /** When the backup started (ISO 8601). */
  time: string;
  /** Host that made it. */
  hostname: string;
  /** User that made it. */
  username: string;
  /** Items in it. */
  files: number;
  /** Bytes of file contents. */
  original_size: number;
  /** Bytes after compression. */
  compressed_size: number;
  /** Bytes it added to the repository. */
  deduplicated_size: number;
}

/** `vger list --json` without an archive. */
export interface ArchivesJson {
  /** Repository path. */
  repository: string;
  /** The manifest's archives, in its order. */
  archives: ArchiveJson[];
}

/** The `--json` object of `vger list` without an archive. */
export function archivesJson(repository: string, archives: readonly ManifestEntry[]): ArchivesJson {
  return {
    repository,
    archives: archives.map((a) => ({
      name: a.name,
      id: toHex(a.id),
      time: a.time,
      hostname: a.hostname,
      username: a.username,
      files: a.stats.files,
      original_size: a.stats.original,
      compressed_size: a.stats.compressed,
      deduplicated_size: a.stats.deduplicated,
    })),
  };
}

/** One line of `vger list`: name (padded to 32), time, host, files and original size. */
export function archiveLine(archive: ManifestEntry): string {
  const a = archive;
  return `${a.name.padEnd(32)} ${a.time}  ${a.hostname}  ${a.stats.files} files  ${
    formatBytes(a.stats.original)
  }`;
}

/** One item in `vger list --archive NAME --json`. */
export interface ItemJson {
  /** Stored path, without the leading "/". */
  path: string;
  /** file, dir or symlink. */
  type: string;
  /** Permission bits. */
  mode: number;
  /** Owner uid. */
  uid: number;
  /** Owner gid. */
  gid: number;
  /** Owner user name, or null when unknown. */
  user: string | null;
  /** Owner group name, or null when unknown. */
  group: string | null;
  /** Size in bytes. */
  size: number;
  /** Modification time in nanoseconds since the epoch, as a decimal string (exceeds 2^53). */
  mtime_ns: string;
  /** Link target, or null when not a symlink. */
  target: string | null;
  /** Hardlink group: the path of the group's first name (only on hard-linked names). */
  hardlink?: string;
  /** Device major number (only on devices). */
  major?: number;
  /** Device minor number (only on devices). */
  minor?: number;
}

/** `vger list --archive NAME --json`. */
export interface ItemsJson {
  /** Repository path. */
  repository: string;
  /** Archive name. */
  archive: string;
  /** The source paths the backup was given. */
  sources: string[];
  /** vger's arguments for the backup that made it; null in archives that did not record it. */
  command_line: string[] | null;
  /** The selected items, in archive order. */
  items: ItemJson[];
}

/** One item of `vger list --archive NAME --json`. */
export function itemJson(item: Item): ItemJson {
  const row: ItemJson = {
    path: item.path,
    type: item.type,
    mode: item.mode,
    uid: item.uid,
    gid: item.gid,
    user: item.user ?? null,
    group: item.group ?? null,
    size: item.size,
    mtime_ns: item.mtimeNs.toString(),
    target: item.target ?? null,
  };
  // keys only where they apply: an archive without these types lists as it always did
  if (item.hardlink !== undefined) row.hardlink = item.hardlink;
  if (item.major !== undefined) row.major = item.major;
  if (item.minor !== undefined) row.minor = item.minor;
  return row;
}

/** The `--json` object of `vger list --archive NAME`, from rows made by {@linkcode itemJson}. */
export function itemsJson(
  repository: string,
  items: ItemJson[],
  options: { archive: string; meta: Pick<ArchiveMeta, "sources" | "commandLine"> },
): ItemsJson {
  const { sources, commandLine } = options.meta;
  return {
    repository,
    archive: options.archive,
    sources,
    command_line: commandLine ?? null,
    items,
  };
}

/** The JSON text of an {@linkcode ItemsJson} without items, open for them: up to `"items":[`. */
export function jsonHead(doc: ItemsJson): string {
  const text = JSON.stringify({ ...doc, items: [] });
  return text.slice(0, -"]}".length);
}

/** Text written through `write` in pieces of at least 64 KiB (the last one at flush). */
class BufferedOut {
  #parts: string[] = [];
  #length = 0;
  readonly #write: (text: string) => void;
  constructor(write: (text: string) => void) {
    this.#write = write;
  }
  write(text: string): void {
    this.#parts.push(text);
    this.#length += text.length;
    if (this.#length >= 1 << 16) this.flush();
  }
  flush(): void {
    if (this.#length === 0) return;
    this.#write(this.#parts.join(""));
    this.#parts = [];
    this.#length = 0;
  }
}

/** `ls -l`'s type letters. */
const LS_TYPE: Record<Item["type"], string> = {
  file: "-",
  dir: "d",
  symlink: "l",
  fifo: "p",
  chardev: "c",
  blockdev: "b",
};

/** An item's type and permission bits as `ls -l` shows them, e.g. `drwxr-x---`. */
export function modeString(item: Pick<Item, "type" | "mode">): string {
  const t = LS_TYPE[item.type];
  const rwx = "rwxrwxrwx";
  let s = "";
  for (let i = 0; i < 9; i++) s += item.mode & (1 << (8 - i)) ? rwx[i] : "-";
  return t + s;
}

/** The time column of `vger list --archive NAME`: UTC to the second, `2024-05-01 10:00:00`. */
export function itemTime(mtimeNs: bigint): string {
  return new Date(Number(mtimeNs / 1_000_000n)).toISOString().slice(0, 19).replace("T", " ");
}

/**
 * One line of `vger list --archive NAME`: mode, owner, size (devices: `major, minor`, as
 * `ls -l`), time, path, and the symlink's target (`-> target`) or, for a hardlink's later names,
 * the group's first name (`link to first`, as `tar -tv`).
 */
export function itemLine(item: Item): string {
  const owner = `${item.user ?? item.uid} ${item.group ?? item.gid}`;
  const size = item.major !== undefined ? `${item.major}, ${item.minor}` : String(item.size);
  const link = item.target !== undefined
    ? ` -> ${item.target}`
    : item.hardlink !== undefined && item.hardlink !== item.path
    ? ` link to ${item.hardlink}`
    : "";
  return `${modeString(item)} ${owner.padEnd(17)} ${size.padStart(12)} ${
    itemTime(item.mtimeNs)
  } ${item.path}${link}`;
}

/** `vger list [--archive NAME [PATTERNS]]`. */
export async function runList(run: Run): Promise<number> {
  const { args, flags, repo, io } = run;
  const backend = await run.backend();
  const archive = oneArchive(flags, "list");
  if (!archive) {
    const archives = await listArchivesCommand(backend, {
      ...run.trusting,
      passphrase: run.passphrase,
    });
    if (bool(flags, "json")) {
      printJson(io, archivesJson(repo.path, archives));
    } else printLines(io.out, archives.map(archiveLine));
    return 0;
  }
  let meta: ArchiveMeta | undefined;
  const items = listItemsCommand(backend, {
    ...run.trusting,
    onIndexRebuilt: run.warn,
    onArchive: (m) => meta = m,
    passphrase: run.passphrase,
    archive,
    patterns: args,
  });
  // streamed in 64 KiB writes, so a listing of millions of items holds none of them in memory
  // (and `vger list ... | head` stops it early)
  const out = new BufferedOut(io.out);
  try {
    if (bool(flags, "json")) {
      // one JSON document: the head once the archive's metadata is known, then each item
      let count = 0;
      const head = () => jsonHead(itemsJson(repo.path, [], { archive, meta: meta! }));
      for await (const i of items) {
        out.write((count++ ? "," : head()) + JSON.stringify(itemJson(i)));
      }
      out.write((count ? "" : head()) + "]}\n");
    } else {
      for await (const i of items) out.write(escapeControl(itemLine(i)) + "\n");
    }
  } finally {
    out.flush();
  }
  return 0;
}
