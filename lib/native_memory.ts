/**
 * Memory asked of the kernel for speed: large buffers backed by transparent huge pages (2 MiB)
 * where the system gives them on request (`madvise` mode, the usual default). A page fault costs
 * 5-10 us on a 2-core VM: a 12 MiB read block took 3,000 of them on first use, Argon2id's 64 MiB
 * 16,000 (half the key derivation). With huge pages each is a handful, and the buffers are
 * filled whole anyway, so they hold no more memory. Advice only: without it (no FFI, another C
 * library, huge pages off) the memory is the same, only slower to fault in.
 *
 * @module
 */

import { LIBC, openLibrary } from "./native_library.ts";

const SYMBOLS = {
  madvise: { parameters: ["buffer", "usize", "i32"], result: "i32" },
  // memmove(dst, src, 0) returns dst: a buffer's address, where Deno.UnsafePointer needs FFI
  // granted without a path (the launcher grants it by library)
  addressOf: { name: "memmove", parameters: ["buffer", "buffer", "usize"], result: "usize" },
  mmap: { parameters: ["pointer", "usize", "i32", "i32", "i32", "i64"], result: "pointer" },
  munmap: { parameters: ["pointer", "usize"], result: "i32" },
  madvise_at: { name: "madvise", parameters: ["pointer", "usize", "i32"], result: "i32" },
} as const;

type Libc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

const HUGE_PAGE = 2 << 20;
const MADV_HUGEPAGE = 14;
const PROT_READ_WRITE = 0x3;
const MAP_PRIVATE_ANONYMOUS = 0x22;
const MAP_FAILED = 0xffffffffffffffffn;

let libc: Libc | null | undefined;

function memoryCalls(): Libc | null {
  if (libc === undefined) libc = openLibrary(LIBC, SYMBOLS)?.symbols ?? null;
  return libc;
}

/**
 * A zeroed buffer of `bytes` whose whole 2 MiB pages are asked to be huge pages: for buffers of
 * several MiB that are filled and reused (a backup's read blocks).
 */
export function hugePageBuffer(bytes: number): Uint8Array<ArrayBuffer> {
  const buffer = new Uint8Array(bytes);
  const c = bytes >= 2 * HUGE_PAGE ? memoryCalls() : null;
  if (c === null) return buffer;
  // a fresh allocation this large is mapped and not yet touched: advised now, its pages fault in
  // as huge ones
  const address = Number(BigInt(c.addressOf(buffer, buffer, 0n)) % BigInt(HUGE_PAGE));
  const skip = (HUGE_PAGE - address) % HUGE_PAGE;
  const whole = Math.floor((bytes - skip) / HUGE_PAGE) * HUGE_PAGE;
  if (whole > 0) c.madvise(buffer.subarray(skip), BigInt(whole), MADV_HUGEPAGE);
  return buffer;
}

/** Memory mapped outside the JavaScript heap, for a C library to use (see {@linkcode mapHuge}). */
export interface Mapping {
  /** Its first byte, on a huge-page boundary. */
  address: bigint;
  /** Unmaps it; once. */
  unmap(): void;
}

/**
 * `bytes` of zeroed memory mapped on a huge-page boundary with huge pages asked for, or null
 * when the mapping fails or there is no libc. Needs FFI granted without a path (raw pointers).
 */
export function mapHuge(bytes: number | bigint): Mapping | null {
  const c = memoryCalls();
  if (c === null) return null;
  // 2 MiB longer than asked, so that the part handed out can start on a huge-page boundary
  const length = BigInt(bytes) + BigInt(HUGE_PAGE);
  const base = c.mmap(null, length, PROT_READ_WRITE, MAP_PRIVATE_ANONYMOUS, -1, 0n);
  const at = BigInt(Deno.UnsafePointer.value(base));
  if (base === null || at === MAP_FAILED) return null;
  const huge = BigInt(HUGE_PAGE);
  const address = (at + huge - 1n) & ~(huge - 1n);
  c.madvise_at(Deno.UnsafePointer.create(address), BigInt(bytes), MADV_HUGEPAGE);
  let mapped = true;
  return {
    address,
    unmap: () => {
      if (!mapped) return;
      mapped = false;
      c.munmap(base, length);
    },
  };
}
