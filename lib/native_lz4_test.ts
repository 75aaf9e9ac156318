import { deepStrictEqual, equal, ok, throws } from "node:assert/strict";
import * as lz4napi from "lz4-napi";
import * as lz4wasm from "lz4-wasm-nodejs";
import { nativeLz4 } from "./native_lz4.ts";
import { wholeBufferLz4 } from "./platform_deno.ts";
import type { Lz4Codec } from "./platform.ts";
import { fuzzCases, mutate, randomBytes, rng } from "./_fuzz.ts";

/** `n` seeded bytes: random, or text of five letters (which compresses). */
function sample(n: number, seed: number, text: boolean): Uint8Array {
  const bytes = randomBytes(rng(seed), n);
  return text ? bytes.map((b) => 97 + (b % 5)) : bytes;
}

function liblz4(): Lz4Codec {
  const codec = nativeLz4();
  ok(codec, "liblz4 is not loaded although the tests run with --allow-ffi on Linux");
  return codec;
}

/** `u32le size || block` of `data` by `codec`, in an output of lz4's bound. */
function compressWith(codec: Lz4Codec, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + data.length + Math.ceil(data.length / 255) + 16);
  const n = codec.compressInto(data, out);
  ok(n > 4, `${data.length} bytes did not compress into ${out.length}`);
  return out.subarray(0, n);
}

function decompressWith(codec: Lz4Codec, framed: Uint8Array, size: number): Uint8Array {
  const out = new Uint8Array(size);
  codec.uncompressInto(framed, out);
  return out;
}

const SIZES = [1, 15, 64, 1000, 65_536, 1_000_003, 3 << 20];

Deno.test("liblz4, lz4-napi and lz4-wasm-nodejs read each other's blocks", () => {
  const napi = wholeBufferLz4(lz4napi.compressSync as never, lz4napi.uncompressSync as never);
  const wasm = wholeBufferLz4(lz4wasm.compress, lz4wasm.decompress);
  const codecs = [liblz4(), napi, wasm];
  for (const n of SIZES) {
    for (const text of [true, false]) {
      const data = sample(n, n + 1, text);
      for (const writer of codecs) {
        const framed = compressWith(writer, data);
        for (const reader of codecs) deepStrictEqual(decompressWith(reader, framed, n), data);
      }
    }
  }
});

Deno.test("liblz4 compresses into the output it is given and says 0 when it does not fit", () => {
  const codec = liblz4();
  const text = new TextEncoder().encode("the quick brown fox ".repeat(5000));
  const out = new Uint8Array(200_000).fill(7);
  const n = codec.compressInto(text, out.subarray(1000, 60_000));
  ok(n > 4 && n < 60_000 - 1000, `compressed to ${n}`);
  ok(out.subarray(0, 1000).every((b) => b === 7), "wrote before its output");
  ok(out.subarray(1000 + n).every((b) => b === 7), "wrote past what it says it wrote");
  deepStrictEqual(decompressWith(codec, out.subarray(1000, 1000 + n), text.length), text);
  // random bytes do not shrink: they do not fit in fewer bytes than they are
  const noise = sample(100_000, 5, false);
  const small = new Uint8Array(noise.length - 1).fill(9);
  equal(codec.compressInto(noise, small), 0);
  equal(codec.compressInto(new Uint8Array(0), small), 0);
  equal(codec.compressInto(text, new Uint8Array(4)), 0);
});

Deno.test("liblz4 rejects malformed blocks and sizes other than the output's, never writing past it", () => {
  const codec = liblz4();
  const data = sample(50_000, 11, true);
  const framed = compressWith(codec, data);
  throws(() => decompressWith(codec, framed, data.length - 1), /lz4 size 50000, expected 49999/);
  throws(() => decompressWith(codec, framed.subarray(0, 3), data.length), /short lz4 block/);
  throws(() => decompressWith(codec, framed.subarray(0, framed.length - 5), data.length));
  // an empty output: the size must say 0 and the block be the empty one
  decompressWith(codec, new Uint8Array([0, 0, 0, 0, 0]), 0);
  throws(() => decompressWith(codec, new Uint8Array([0, 0, 0, 0, 0x10, 1]), 0));
  // mutated blocks: an error or the declared size, and nothing past the output
  const next = rng(7);
  const room = new Uint8Array(data.length + 64);
  for (let i = 0; i < Math.min(fuzzCases(), 2000); i++) {
    const input = mutate(framed, next, { kind: i, specials: [0x00, 0xff, 0x0f, 0xf0] });
    input.set(framed.subarray(0, 4)); // keep the size: the block is what is mutated
    room.fill(0xaa, data.length);
    try {
      codec.uncompressInto(input, room.subarray(0, data.length));
    } catch (err) {
      ok(err instanceof Error, `case ${i}: threw ${err}`);
    }
    ok(room.subarray(data.length).every((b) => b === 0xaa), `case ${i} wrote past its output`);
  }
});
