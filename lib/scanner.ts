/**
 * A quick walk of the backup sources that counts what backup will store, so that progress can
 * show a percent and an ETA (restic scans the same way, concurrently with the backup).
 *
 * It walks with backup's walker (lib/walker.ts), so it counts exactly what backup stores: the same
 * exclusions, special files, repository directory, symlinks and unreadable directories, without
 * the warnings. It only lstats and lists directories: nothing is opened or read.
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

import { walkSources } from "./walker.ts";

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
  const { isExcluded, excludeDirs, signal } = options;
  signal?.throwIfAborted();
  const totals: ScanTotals = { files: 0, bytes: 0 };
  const entries = walkSources(sources, { isExcluded, excludeDirs });
  let sliceStart = performance.now();
  let n = 0;
  for (;;) {
    // checking the clock costs little next to an lstat, but not nothing
    if ((++n & 31) === 0 && performance.now() - sliceStart >= SLICE_MS) {
      await yieldToEventLoop();
      signal?.throwIfAborted();
      sliceStart = performance.now();
    }
    const next = entries.next();
    if (next.done) return totals;
    if (!next.value) continue; // skipped: backup stores nothing of it
    totals.files++;
    if (next.value.kind === "file") totals.bytes += next.value.st.size;
  }
}

/** Lets timers and I/O callbacks (the backup's) run before the next slice. */
function yieldToEventLoop(): Promise<void> {
  return new Promise((r) => setTimeout(r, 0));
}
