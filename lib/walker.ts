/**
 * The walk of the backup sources: one set of rules for what backup stores and for what the
 * progress pre-scan counts (lib/archiver.ts and lib/scanner.ts both walk with it).
 *
 * The rules, in order, for each path: lstat it (a path that cannot be read is skipped with a
 * warning); `isExcluded` on the path without its leading "/"; sockets (and any other type but
 * files, directories, symlinks, FIFOs and devices) skipped with a warning; FIFOs and devices
 * yielded from their lstat alone, never opened; directories in `excludeDirs` (matched by device and inode: the
 * repository itself) skipped; symlinks never followed; a directory that cannot be listed is
 * skipped with all below it, with a warning. Entries come pre-order, names sorted by UTF-16 code
 * units, each directory before what it holds.
 *
 * The walk is synchronous and only lstats and lists directories; the caller decides when to
 * yield the event loop between entries (backup reads files between them, the scan counts). So
 * that it can do so between any two lstats, a path looked at and skipped yields `undefined`.
 *
 * @example Count the regular files below a directory
 * ```ts ignore
 * import { walkSources } from "./walker.ts";
 *
 * let files = 0;
 * for (const entry of walkSources(["/home/me"])) if (entry?.kind === "file") files++;
 * ```
 *
 * @module
 */

import { resolve } from "node:path";
import {
  describeFsError,
  type EntryKind,
  entryKind,
  type EntryStat,
  listDirectory,
  lstatEntry,
  throwIfNotPermitted,
} from "./fs_meta.ts";

/** Options of {@linkcode walkSources}. */
export interface WalkOptions {
  /** Decides whether a path (absolute, without leading "/") is excluded. */
  isExcluded?: (path: string, isDir: boolean) => boolean;
  /** Directories never walked into (the repository itself), as paths. */
  excludeDirs?: string[];
  /** Called for each entry skipped because it could not be read or is a socket. */
  onWarning?: (message: string) => void;
}

/** An entry the walk found: a regular file, a directory, a symlink, a FIFO or a device. */
export interface WalkEntry {
  /** Absolute path. */
  path: string;
  /** The path without its leading "/", as archives store it and patterns match it. */
  rel: string;
  /** Its kind; sockets are never yielded. */
  kind: Exclude<EntryKind, "socket" | "special">;
  /** Its lstat. */
  st: EntryStat;
}

/**
 * Walks `sources` in order (a source given twice is walked twice) and yields what backup
 * stores, or `undefined` for a path it skipped. A directory's names are listed before it is
 * yielded, so an unreadable directory is never yielded.
 */
export function* walkSources(
  sources: string[],
  options: WalkOptions = {},
): Generator<WalkEntry | undefined, void, undefined> {
  const { isExcluded, onWarning } = options;
  const excluded = excludedDirs(options.excludeDirs ?? []);
  // depth first: the directories being listed, innermost last, each with its sorted names and
  // the next one to look at (a name per entry waiting, not a path)
  const roots = sources.map((s) => resolve(s));
  let nextRoot = 0;
  const open: { base: string; names: string[]; next: number }[] = [];
  for (;;) {
    const dir = open.at(-1);
    let path: string;
    if (dir !== undefined) {
      if (dir.next === dir.names.length) {
        open.pop();
        continue;
      }
      path = `${dir.base}/${dir.names[dir.next++]}`;
    } else if (nextRoot < roots.length) path = roots[nextRoot++];
    else return;
    let st: EntryStat;
    try {
      st = lstatEntry(path);
    } catch (err) {
      throwIfNotPermitted(err);
      onWarning?.(`Skipped "${path}": ${describeFsError(err)}`);
      yield undefined;
      continue;
    }
    const kind = entryKind(st.mode);
    const rel = path.replace(/^\/+/, "");
    if (isExcluded?.(rel, kind === "dir")) {
      yield undefined;
      continue;
    }
    if (kind === "socket") {
      // as restic: the program that listens on a socket makes it anew
      onWarning?.(`Skipped "${path}": a socket (sockets are not backed up)`);
      yield undefined;
      continue;
    }
    if (kind === "special") {
      onWarning?.(`Skipped "${path}": not a file type vger backs up`);
      yield undefined;
      continue;
    }
    if (kind !== "dir") {
      yield { path, rel, kind, st };
      continue;
    }
    if (excluded.has(`${st.dev}:${st.ino}`)) {
      yield undefined;
      continue;
    }
    let names: string[];
    try {
      names = listDirectory(path);
    } catch (err) {
      throwIfNotPermitted(err);
      onWarning?.(`Skipped directory "${path}": ${describeFsError(err)}`);
      yield undefined;
      continue;
    }
    yield { path, rel, kind, st };
    names.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    open.push({ base: path === "/" ? "" : path, names, next: 0 });
  }
}

/**
 * The order in which {@linkcode walkSources} yields the paths below one source: negative when
 * `a` comes before `b`. Component by component, each compared by UTF-16 code units, a directory
 * before what it holds (so "a", "a/b", "a-c": "/" ends a name, it does not sort as a character).
 */
export function compareWalkOrder(a: string, b: string): number {
  if (a === b) return 0; // the usual case, for the files cache: a native comparison
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    if (x === 0x2f) return -1; // a's name ends here: a prefix of b's name, or its directory
    if (y === 0x2f) return 1;
    return x - y;
  }
  return a.length - b.length;
}

/** The device and inode of each directory that exists, as `dev:ino`. */
function excludedDirs(dirs: string[]): Set<string> {
  const out = new Set<string>();
  for (const d of dirs) {
    try {
      const s = lstatEntry(d);
      out.add(`${s.dev}:${s.ino}`);
    } catch {
      // a directory that does not exist cannot be inside a source
    }
  }
  return out;
}
