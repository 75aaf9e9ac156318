/**
 * A quick walk of the backup sources that counts what backup will store, so that progress can
 * show a percent and an ETA (restic scans the same way, concurrently with the backup).
 *
 * It applies the archiver's rules exactly (lib/archiver.ts `BackupRun.walk`): `isExcluded` on
 * the path without its leading "/" before anything else, special files skipped, directories in
 * `excludeDirs` (matched by device and inode) skipped, symlinks never followed, unreadable
 * directories skipped. It only lstats and lists directories: nothing is opened or read.
 *
 * It runs on the main thread beside the backup, so it works in slices of a few milliseconds and
 * yields the event loop between them.
 *
 * @example Count a tree while something else runs
 * ```ts ignore
 * import { scanSources } from "./scanner.ts";
 *
 * const abort = new AbortController();
 * const totals = scanSources(["/home/me"], { signal: abort.signal }).catch(() => undefined);
 * // ... run the backup, then:
 * abort.abort();
 * console.log(await totals); // { files: 1234, bytes: 56789 } when it finished in time
 * ```
 *
 * @module
 */

import { resolve } from "node:path";
import { entryKind, type EntryStat, lstatEntry } from "./fs_meta.ts";

/** Options of {@linkcode scanSources}. */
export interface ScanOptions {
  /** Decides whether a path (absolute, without leading "/") is excluded, as for backup. */
  isExcluded?: (path: string, isDir: boolean) => boolean;
  /** Directories never backed up (the repository itself), as for backup. */
  excludeDirs?: string[];
  /** Stops the scan: the promise rejects with the signal's reason. */
  signal?: AbortSignal;
}

/** What a backup of the sources will store, as far as lstat tells. */
export interface ScanTotals {
  /** Entries backup stores (files, directories, symlinks), as its progress counts `files`. */
  files: number;
  /** Sum of the sizes of the regular files. */
  bytes: number;
}

/** Work this long between two yields to the event loop. */
const SLICE_MS = 5;

/** Counts the entries and bytes a backup of `sources` will store, without reading any file. */
export async function scanSources(
  sources: string[],
  options: ScanOptions = {},
): Promise<ScanTotals> {
  const { isExcluded, signal } = options;
  signal?.throwIfAborted();
  const excluded = new Set<string>();
  for (const d of options.excludeDirs ?? []) {
    try {
      const s = lstatEntry(d);
      excluded.add(`${s.dev}:${s.ino}`);
    } catch {
      // a directory that does not exist cannot be inside a source
    }
  }
  const totals: ScanTotals = { files: 0, bytes: 0 };
  // depth first like the archiver; the order does not change the totals
  const stack = sources.map((s) => resolve(s)).reverse();
  let sliceStart = performance.now();
  let n = 0;
  while (stack.length > 0) {
    // checking the clock costs little next to an lstat, but not nothing
    if ((++n & 31) === 0 && performance.now() - sliceStart >= SLICE_MS) {
      await yieldToEventLoop();
      signal?.throwIfAborted();
      sliceStart = performance.now();
    }
    const path = stack.pop()!;
    let st: EntryStat;
    try {
      st = lstatEntry(path);
    } catch {
      continue; // backup warns and skips it
    }
    const kind = entryKind(st.mode);
    if (isExcluded?.(path.replace(/^\/+/, ""), kind === "dir")) continue;
    if (kind === "special") continue;
    if (kind === "file") {
      totals.files++;
      totals.bytes += st.size;
      continue;
    }
    if (kind === "symlink") {
      totals.files++;
      continue;
    }
    if (excluded.has(`${st.dev}:${st.ino}`)) continue;
    const names: string[] = [];
    try {
      for (const e of Deno.readDirSync(path)) names.push(e.name);
    } catch {
      continue; // unreadable: backup skips the directory and all below it
    }
    totals.files++;
    const base = path === "/" ? "" : path;
    for (let i = names.length - 1; i >= 0; i--) stack.push(`${base}/${names[i]}`);
  }
  return totals;
}

/** Lets timers and I/O callbacks (the backup's) run before the next slice. */
function yieldToEventLoop(): Promise<void> {
  return new Promise((r) => setTimeout(r, 0));
}
