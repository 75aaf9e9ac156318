/**
 * Refuses msgpack that claims more array or map elements than it has bytes left to hold them.
 *
 * @module
 */

/**
 * Throws RangeError when the msgpack values in `bytes` declare more array or map elements than
 * bytes remain (each element takes at least one byte). Run it before decoding: the decoder
 * allocates a claimed array up front (8 bytes per element below 32 Mi elements), so 5 bytes of
 * input could otherwise cost 256 MiB, and nested claims multiply that. Linear, allocates nothing.
 */
export function checkMsgpackClaims(bytes: Uint8Array): void {
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
  while (pos < end) {
    if (pending > 0) pending--;
    const b = bytes[pos++];
    let count = 0;
    if (b >= 0x80 && b <= 0x8f) count = 2 * (b & 0x0f);
    else if (b >= 0x90 && b <= 0x9f) count = b & 0x0f;
    else if (b >= 0xa0 && b <= 0xbf) pos += b & 0x1f;
    else if (FIXED[b] !== undefined) pos += FIXED[b];
    else if (SIZED[b] !== undefined) {
      const [size, extra, kind] = SIZED[b];
      const n = field(size);
      if (n < 0) return; // truncated: the decoder says so
      if (kind === "skip") pos += n + extra;
      else count = kind === "map" ? 2 * n : n;
    }
    pending += count;
    if (pending > end - pos) {
      throw new RangeError(`claims ${pending} more elements than the ${end - pos} bytes left`);
    }
  }
}
