/**
 * Tunes glibc's malloc for vger's pattern: many buffers of a few MiB that live for milliseconds.
 * By default glibc serves such sizes with fresh mmaps (once past its dynamic threshold) and
 * gives freed heap tops back to the OS, so every new chunk buffer page-faults again; on a VM
 * page faults are expensive (measured here: restore spent ~14% of its main thread in them).
 * Raising the mmap threshold to 32 MiB and the trim threshold to 256 MiB keeps that memory in
 * the process for reuse; peak RSS is still bounded by the pipelines' byte budgets.
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
    const ok = lib.symbols.mallopt(M_MMAP_THRESHOLD, 32 << 20) === 1 &&
      lib.symbols.mallopt(M_TRIM_THRESHOLD, 256 << 20) === 1;
    lib.close();
    return ok;
  } catch {
    return false;
  }
}
