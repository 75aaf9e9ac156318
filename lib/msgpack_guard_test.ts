import { ok, throws } from "node:assert/strict";
import { decode, encode } from "@msgpack/msgpack";
import { footprint, fuzzCases, hostileMsgpack, hostileMsgpackShapes, rng } from "./_fuzz.ts";
import { IntegrityError } from "./errors.ts";
import { checkMsgpack } from "./msgpack_guard.ts";

/** Checks that `fn` throws IntegrityError "Thing is corrupt: msgpack <why>". */
const corrupt = (why: RegExp) => (err: unknown) => {
  ok(err instanceof IntegrityError, String(err));
  ok(err.message.startsWith("Thing is corrupt: msgpack "), err.message);
  ok(why.test(err.message), err.message);
  return true;
};

/** `value` wrapped in `depth` arrays. */
const nest = (depth: number, value: unknown = 1): unknown =>
  depth === 0 ? value : [nest(depth - 1, value)];

Deno.test("checkMsgpack accepts values within the limits, which then decode", () => {
  const values = [
    null,
    "a string",
    { v: 1, archives: [{ name: "a", id: new Uint8Array(32), stats: { files: 2 } }] },
    Array.from({ length: 70_000 }, (_, i) => i), // array32
    Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`k${i}`, [i]])), // map16
  ];
  for (const v of values) {
    const bytes = encode(v);
    checkMsgpack(bytes, { maxDepth: 4, maxLength: 70_000 }, "Thing");
    decode(bytes);
  }
  checkMsgpack(encode(nest(7)), { maxDepth: 7 }, "Thing");
  checkMsgpack(encode([[], {}, [[]]]), { maxDepth: 3, maxValues: 5 }, "Thing");
});

Deno.test("checkMsgpack refuses nesting deeper than maxDepth, in arrays and maps", () => {
  throws(
    () => checkMsgpack(encode(nest(8)), { maxDepth: 7 }, "Thing"),
    corrupt(/deeper than 7 levels$/),
  );
  throws(
    () => checkMsgpack(encode({ a: { b: [] } }), { maxDepth: 2 }, "Thing"),
    corrupt(/deeper than 2/),
  );
  throws(() => checkMsgpack(encode([1]), { maxDepth: 0 }, "Thing"), corrupt(/deeper than 0/));
  // Depth is that of the open containers, not of the values seen so far.
  checkMsgpack(encode([[1], [2], [[]]]), { maxDepth: 3 }, "Thing");
  throws(
    () => checkMsgpack(encode([[1], [2], [[[]]]]), { maxDepth: 3 }, "Thing"),
    corrupt(/deeper/),
  );
});

Deno.test("checkMsgpack refuses an array or map longer than maxLength, naming its kind and length", () => {
  const limits = { maxDepth: 2, maxLength: 16 };
  throws(
    () => checkMsgpack(encode(new Array(17).fill(0)), limits, "Thing"),
    corrupt(/array of 17 elements, the limit is 16$/),
  );
  const map = Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, i]));
  throws(
    () => checkMsgpack(encode(map), limits, "Thing"),
    corrupt(/map of 17 elements, the limit is 16$/),
  );
  checkMsgpack(encode(new Array(16).fill(0)), limits, "Thing");
});

Deno.test("checkMsgpack refuses more values than maxValues and claims beyond the bytes left", () => {
  throws(
    () => checkMsgpack(encode([1, 2, 3]), { maxDepth: 1, maxValues: 3 }, "Thing"),
    corrupt(/more than 3 values/),
  );
  checkMsgpack(encode([1, 2]), { maxDepth: 1, maxValues: 3 }, "Thing");
  throws(
    () => checkMsgpack(Uint8Array.of(0xdd, 0xff, 0xff, 0xff, 0xff), { maxDepth: 1 }, "Thing"),
    corrupt(/claims 4294967295 more elements than the 0 bytes left/),
  );
});

Deno.test("checkMsgpack refuses 20 MiB hostile shapes at once, allocating nothing of their size", async () => {
  const shapes = hostileMsgpackShapes(20 << 20);
  // The decoder cost 3.1 GB for the first one: a state object per nesting level.
  const limits = { maxDepth: 5, maxLength: 100_000, maxValues: 3_200_064 };
  const fp = await footprint(() => {
    for (const input of shapes.slice(0, 6)) {
      throws(() => checkMsgpack(input, limits, "Thing"), corrupt(/./));
    }
  }, 1);
  ok(fp.ms < 2_000, `${fp.ms} ms`);
  ok(fp.grownBytes < 16 << 20, `grew ${fp.grownBytes} bytes`);
  // The stream of empty maps is within depth and length: only maxValues stops it.
  throws(() => checkMsgpack(shapes[6], limits, "Thing"), corrupt(/more than 3200064 values/));
});

Deno.test("checkMsgpack throws only IntegrityError on hostile shapes and stays linear (fuzz)", () => {
  const next = rng(77);
  const cases = fuzzCases(500);
  const start = performance.now();
  let accepted = 0;
  for (let i = 0; i < cases; i++) {
    const input = hostileMsgpack(next);
    try {
      checkMsgpack(input, { maxDepth: 1 + next() % 8, maxLength: next() % 70_000 }, "Thing");
    } catch (err) {
      ok(err instanceof IntegrityError, `input ${i}: ${err}`);
      continue;
    }
    accepted++;
    try {
      decode(input); // within the limits: cheap, whatever it holds
    } catch {
      // a stream of several values, or a truncated one
    }
  }
  ok(accepted > 0, "some shapes fit the limits drawn");
  ok(performance.now() - start < 60 * cases, "linear in the input");
});
