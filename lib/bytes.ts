/**
 * Explicit release of large buffers. In this runtime a dead ArrayBuffer is only freed when the
 * garbage collector runs, so a pipeline that makes a fresh 2 MiB buffer per chunk keeps asking
 * the OS for fresh pages (measured: 25x slower alloc+copy, and RSS growing past 1 GiB).
 * Detaching a buffer we solely own (`ArrayBuffer.prototype.transfer(0)`) frees it at once and
 * the allocator reuses the memory.
 *
 * @module
 */

/** releaseBacking/releaseOwned leave smaller buffers alone: a shared pool is never this big. */
const MIN_RELEASE = 64 << 10;

/**
 * Frees the memory of a buffer that nothing else references. Only whole-buffer views are
 * released (any size: many small files make many small buffers, and the collector does not see
 * their memory); views into a larger buffer are left to the garbage collector.
 */
export function release(b: Uint8Array | null | undefined): void {
  if (!b) return;
  const buf = b.buffer;
  if (
    !(buf instanceof ArrayBuffer) || buf.detached || b.byteOffset !== 0 ||
    b.byteLength !== buf.byteLength
  ) return;
  try {
    buf.transfer(0);
  } catch {
    // not detachable (e.g. wasm memory): the GC frees it
  }
}

/**
 * Frees the whole backing buffer of a result that a library handed us (node:zlib returns views
 * of an oversized buffer of its own). Only for buffers of at least 64 KiB that start at offset 0,
 * which no shared pool hands out.
 */
export function releaseBacking(b: Uint8Array | null | undefined): void {
  if (!b || b.byteOffset !== 0) return;
  const buf = b.buffer;
  if (!(buf instanceof ArrayBuffer) || buf.detached || buf.byteLength < MIN_RELEASE) return;
  try {
    buf.transfer(0);
  } catch {
    // not detachable: the GC frees it
  }
}

/**
 * Frees a result a library handed us, once copied: its buffer when the view covers it (any size),
 * else the oversized buffer behind it ({@linkcode releaseBacking}'s rule).
 */
export function releaseResult(b: Uint8Array): void {
  if (ownsBuffer(b)) release(b);
  else releaseBacking(b);
}

/**
 * Frees the backing buffer of a view at any offset. Only for buffers that belong to this view
 * alone (e.g. a decoded chunk handed over by a codec worker).
 */
export function releaseOwned(b: Uint8Array | null | undefined): void {
  if (!b) return;
  const buf = b.buffer;
  if (!(buf instanceof ArrayBuffer) || buf.detached || buf.byteLength < MIN_RELEASE) return;
  try {
    buf.transfer(0);
  } catch {
    // not detachable: the GC frees it
  }
}

/** Whether a view covers its whole (transferable) buffer. */
export function ownsBuffer(b: Uint8Array): boolean {
  return b.buffer instanceof ArrayBuffer && b.byteOffset === 0 &&
    b.byteLength === b.buffer.byteLength;
}

/**
 * The distinct ArrayBuffers under `views`, to transfer: each goes whole, so only for views
 * whose buffers their owner hands over entirely.
 */
export function transferable(views: readonly Uint8Array[]): ArrayBuffer[] {
  const buffers = new Set<ArrayBuffer>();
  for (const v of views) if (v.buffer instanceof ArrayBuffer) buffers.add(v.buffer);
  return [...buffers];
}

/** Whether every byte is zero. */
export function isAllZero(b: Uint8Array): boolean {
  let i = 0;
  if (b.byteOffset % 4 === 0) {
    const w = new Int32Array(b.buffer, b.byteOffset, b.length >>> 2);
    for (let j = 0; j < w.length; j++) if (w[j] !== 0) return false;
    i = w.length * 4;
  }
  for (; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}
