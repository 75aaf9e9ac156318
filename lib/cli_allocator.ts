/**
 * Tunes glibc's malloc for vger's pattern: many buffers of a few MiB that live for milliseconds.
 * By default glibc serves such sizes with fresh mmaps (once past its dynamic threshold) and
 * gives freed heap tops back to the OS, so every new chunk buffer page-faults again; on a VM
 * page faults are expensive (measured here: restore spent ~14% of its main thread in them).
 * Fixing the mmap threshold at 16 MiB keeps the chunk-sized buffers (up to the 8 MiB largest
 * chunk) in the heap for reuse and gives the larger ones (read blocks, packs, the index and the
 * files cache as they grow) back when freed. Measured against 32 MiB and 256 MiB: an unchanged
 * re-backup of 400,000 files peaked at 191 MiB instead of 250, the shared corpus's first backup
 * and restore ~40 MiB lower. The trim threshold is 32 MiB: at 16, the heap's top was given back
 * and faulted in again as restore and check read packs in ranges of a few MiB (perf record -e
 * page-faults: half their faults); five alternating runs each on the corpus, restore 3.67-5.56
 * -> 3.58-4.26 s and 86k-134k -> 65k-85k minor faults, check and backup a little faster, peak
 * RSS within the runs' spread (restore +10 MiB on average).
 *
 * Needs --allow-ffi; without it (or off glibc) it does nothing.
 *
 * @module
 */

import { LIBC, openLibrary } from "./native_library.ts";

const M_TRIM_THRESHOLD = -1;
const M_MMAP_THRESHOLD = -3;

/** Applies the settings once per process; returns whether they were applied. */
export function tuneAllocator(): boolean {
  if (Deno.build.os !== "linux") return false;
  try {
    const lib = openLibrary(LIBC, {
      mallopt: { parameters: ["i32", "i32"], result: "i32" },
    });
    if (!lib) return false;
    const ok = lib.symbols.mallopt(M_MMAP_THRESHOLD, 16 << 20) === 1 &&
      lib.symbols.mallopt(M_TRIM_THRESHOLD, 32 << 20) === 1;
    lib.close();
    return ok;
  } catch {
    return false;
  }
}
