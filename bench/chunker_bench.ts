/**
 * Throughput of the content-defined chunker: `deno bench bench/chunker_bench.ts`.
 * MB/s = 268.435456 / (seconds per iteration).
 *
 * @module
 */

import { Chunker, chunkLengths, DEFAULT_CHUNKER_PARAMS, deriveGearTable } from "../lib/chunker.ts";

const SIZE = 256 * 1024 * 1024;

/** Random bytes; getRandomValues fills at most 65536 bytes per call. */
function randomBytes(size: number): Uint8Array {
  const out = new Uint8Array(size);
  for (let off = 0; off < size; off += 65536) {
    crypto.getRandomValues(out.subarray(off, Math.min(off + 65536, size)));
  }
  return out;
}

const data = randomBytes(SIZE);
const gear = await deriveGearTable(crypto.getRandomValues(new Uint8Array(32)));
const chunker = new Chunker(DEFAULT_CHUNKER_PARAMS, gear);

Deno.bench({
  name: "chunkLengths, 256 MiB random data, default params",
  fn() {
    const lengths = chunkLengths(chunker, data);
    if (lengths.length === 0) throw new Error("No chunks");
  },
});
