/**
 * Bounds what msgpack from untrusted storage may cost before the decoder runs: the claimed sizes
 * of arrays and maps against the bytes left, the nesting depth, the length of each array or map
 * and the number of values. The decoder keeps one state object per open container and allocates a
 * claimed array up front, so without these 20 MiB of nested arrays cost gigabytes.
 *
 * @module
 */

import { IntegrityError } from "./errors.ts";

/** What a format's msgpack may hold; the owner of each format names its own. */
export interface MsgpackLimits {
  /** Deepest nesting of arrays and maps: 1 for a map of scalars, 2 for a map holding an array. */
  maxDepth: number;
  /** Most elements of one array or entries of one map (default: as many as the bytes allow). */
  maxLength?: number;
  /** Most values in all, map keys and containers included (default: as the bytes allow). */
  maxValues?: number;
  /** Most arrays and maps in all, the costliest values to build (default: as maxValues). */
  maxContainers?: number;
}

/**
 * Throws IntegrityError "`what` is corrupt: ..." when the msgpack values in `bytes` break
 * `limits` or declare more array or map elements than bytes remain (each element takes at least
 * one byte; the decoder would allocate 8 bytes per claimed element, so 5 bytes of input could
 * otherwise cost 256 MiB). Run it before decoding. Linear; allocates at most `maxDepth` numbers.
 *
 * @example
 * ```ts
 * import { checkMsgpack } from "./msgpack_guard.ts";
 *
 * checkMsgpack(Uint8Array.of(0x91, 0x01), { maxDepth: 1 }, "Example"); // [1]: fine
 * try {
 *   checkMsgpack(Uint8Array.of(0x91, 0x91, 0x01), { maxDepth: 1 }, "Example"); // [[1]]
 * } catch (err) {
 *   console.log((err as Error).message); // Example is corrupt: msgpack nested deeper than 1 level
 * }
 * ```
 */
export function checkMsgpack(bytes: Uint8Array, limits: MsgpackLimits, what: string): void {
  const { maxDepth } = limits;
  const maxLength = limits.maxLength ?? Infinity;
  const maxValues = limits.maxValues ?? Infinity;
  const maxContainers = limits.maxContainers ?? Infinity;
  let containers = 0;
  const bad = (why: string) => new IntegrityError(`${what} is corrupt: msgpack ${why}`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const end = bytes.length;
  let pos = 0;
  /** Elements that the open arrays and maps still expect. */
  let pending = 0;
  /** Reads a big-endian length field of `size` bytes, or -1 when the input ends first. */
  const field = (size: 1 | 2 | 4): number => {
    if (pos + size > end) return -1;
    const v = size === 1 ? dv.getUint8(pos) : size === 2 ? dv.getUint16(pos) : dv.getUint32(pos);
    pos += size;
    return v;
  };
  const FIXED: Record<number, number> = {
    0xca: 4,
    0xcb: 8,
    0xcc: 1,
    0xcd: 2,
    0xce: 4,
    0xcf: 8,
    0xd0: 1,
    0xd1: 2,
    0xd2: 4,
    0xd3: 8,
    0xd4: 2,
    0xd5: 3,
    0xd6: 5,
    0xd7: 9,
    0xd8: 17,
  };
  const SIZED: Record<number, [1 | 2 | 4, number, "skip" | "array" | "map"]> = {
    0xc4: [1, 0, "skip"],
    0xc5: [2, 0, "skip"],
    0xc6: [4, 0, "skip"], // bin
    0xc7: [1, 1, "skip"],
    0xc8: [2, 1, "skip"],
    0xc9: [4, 1, "skip"], // ext (+ type byte)
    0xd9: [1, 0, "skip"],
    0xda: [2, 0, "skip"],
    0xdb: [4, 0, "skip"], // str
    0xdc: [2, 0, "array"],
    0xdd: [4, 0, "array"],
    0xde: [2, 0, "map"],
    0xdf: [4, 0, "map"],
  };
  /** Elements each open array or map still expects, outermost first. */
  const open: number[] = [];
  let values = 0;
  while (pos < end) {
    if (open.length > 0) {
      open[open.length - 1]--;
      pending--;
    }
    if (++values > maxValues) throw bad(`holds more than ${maxValues} values`);
    const b = bytes[pos++];
    let count = -1;
    let length = 0;
    if (b >= 0x80 && b <= 0x8f) count = 2 * (length = b & 0x0f);
    else if (b >= 0x90 && b <= 0x9f) count = length = b & 0x0f;
    else if (b >= 0xa0 && b <= 0xbf) pos += b & 0x1f;
    else if (FIXED[b] !== undefined) pos += FIXED[b];
    else if (SIZED[b] !== undefined) {
      const [size, extra, kind] = SIZED[b];
      const n = field(size);
      if (n < 0) return; // truncated: the decoder says so
      if (kind === "skip") pos += n + extra;
      else count = kind === "map" ? 2 * (length = n) : (length = n);
    }
    if (count >= 0) {
      if (++containers > maxContainers) {
        throw bad(`holds more than ${maxContainers} arrays and maps`);
      }
      if (open.length >= maxDepth) {
        throw bad(`nested deeper than ${maxDepth} level${maxDepth === 1 ? "" : "s"}`);
      }
      if (length > maxLength) {
        const kind = b <= 0x8f || b >= 0xde ? "map" : "array";
        throw bad(`${kind} of ${length} elements, the limit is ${maxLength}`);
      }
      pending += count;
      if (pending > end - pos) {
        throw bad(`claims ${pending} more elements than the ${end - pos} bytes left`);
      }
      open.push(count);
    }
    while (open.length > 0 && open[open.length - 1] === 0) open.pop();
  }
}
