import { deepStrictEqual, equal, notEqual, ok } from "node:assert/strict";
import { copyIds, IdSlab } from "./ids.ts";

Deno.test("IdSlab hands out distinct 32-byte views, a new slab when one is full", () => {
  const slab = new IdSlab();
  const ids = Array.from({ length: 600 }, (_, i) => slab.next().fill(i & 0xff));
  ok(ids.every((id) => id.length === 32));
  // none overlaps another: each still holds what was written into it
  ids.forEach((id, i) => ok(id.every((b) => b === (i & 0xff)), `id ${i} overwritten`));
  equal(ids[0].buffer, ids[1].buffer);
  notEqual(ids[0].buffer, ids[599].buffer); // 600 ids do not fit one 16 KiB slab
});

Deno.test("copyIds copies ids into one buffer of their own", () => {
  const slab = new IdSlab();
  const ids = [slab.next().fill(1), slab.next().fill(2), slab.next().fill(3)];
  const copies = copyIds(ids);
  deepStrictEqual(copies, ids);
  equal(copies[0].buffer.byteLength, 3 * 32, "the copies keep nothing else alive");
  ids[1].fill(9);
  ok(copies[1].every((b) => b === 2), "a copy changed with its source");
  deepStrictEqual(copyIds([]), []);
});
