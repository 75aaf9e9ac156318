/**
 * Memory and speed of the chunk index at 1 TB / 2 MiB chunks: 500,000 random entries over
 * 300 packs. Run: `deno run -A --v8-flags=--expose-gc bench/index_memory.ts`.
 *
 * @module
 */

import { ChunkIndex } from "../lib/chunk_index.ts";

const ENTRIES = 500_000;
const PACKS = 300;

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) {
  console.error("Run with --v8-flags=--expose-gc so memory deltas are measured after gc");
  Deno.exit(2);
}

function fill(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(out.subarray(i, i + 65536));
  return out;
}

function settledMemory(): { heapUsed: number; external: number } {
  for (let i = 0; i < 3; i++) gc!();
  const { heapUsed, external } = Deno.memoryUsage();
  return { heapUsed, external };
}

// Inputs are made before the baseline so only the index is measured.
const idBytes = fill(ENTRIES * 32);
const ids = Array.from({ length: ENTRIES }, (_, i) => idBytes.subarray(i * 32, i * 32 + 32));
const packs = Array.from({ length: PACKS }, () => fill(32));
const fields = new Uint32Array(fill(ENTRIES * 4).buffer);

const before = settledMemory();
let index: ChunkIndex | undefined = new ChunkIndex();
let start = performance.now();
for (let i = 0; i < ENTRIES; i++) {
  const f = fields[i];
  index.set(ids[i], { pack: packs[i % PACKS], offset: f, length: f >>> 8, rawLength: f >>> 4 });
}
const insertMs = performance.now() - start;
const after = settledMemory();

start = performance.now();
let hits = 0;
for (let i = 0; i < ENTRIES; i++) if (index.has(ids[i])) hits++;
const hasMs = performance.now() - start;
start = performance.now();
// Checking against `fields` also keeps the inputs alive across both memory readings.
for (let i = 0; i < ENTRIES; i++) if (index.get(ids[i])?.offset === fields[i]) hits++;
const getMs = performance.now() - start;
const missing = fill(32);
start = performance.now();
for (let i = 0; i < ENTRIES; i++) {
  missing[0] = i;
  if (index.has(missing)) hits++;
}
const missMs = performance.now() - start;
if (hits !== 2 * ENTRIES) throw new Error(`lookups found ${hits} of ${2 * ENTRIES}`);

start = performance.now();
const encoded = index.encode();
const encodeMs = performance.now() - start;
start = performance.now();
const decoded = ChunkIndex.decode(encoded);
const decodeMs = performance.now() - start;
if (decoded.size !== ENTRIES) throw new Error("decode lost entries");

const mops = (ms: number) => (ENTRIES / ms / 1000).toFixed(2);
const memoryBytes = index.memoryBytes;
index = undefined;
console.log(`entries            ${ENTRIES} over ${PACKS} packs`);
console.log(`bytes/entry        ${(memoryBytes / ENTRIES).toFixed(1)} (memoryBytes)`);
const heap = (after.heapUsed - before.heapUsed) / ENTRIES;
const external = (after.external - before.external) / ENTRIES;
console.log(
  `bytes/entry        ${(heap + external).toFixed(1)} (heapUsed + external delta after gc: ` +
    `${heap.toFixed(1)} heap + ${external.toFixed(1)} external)`,
);
console.log(`insert             ${mops(insertMs)} M ops/s`);
console.log(`has (hit)          ${mops(hasMs)} M ops/s`);
console.log(`get (hit)          ${mops(getMs)} M ops/s`);
console.log(`has (miss)         ${mops(missMs)} M ops/s`);
console.log(`encode             ${encodeMs.toFixed(0)} ms, ${encoded.length} bytes`);
console.log(`decode             ${decodeMs.toFixed(0)} ms`);
