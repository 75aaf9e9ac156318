import { deepStrictEqual } from "node:assert/strict";
import { appendOnlyAllows, keyClass, type KeyOperation } from "./server_policy.ts";

const PACK = `packs/ab/ab${"0".repeat(62)}`;

Deno.test("append-only: the table of docs/SERVER.md, key by key", () => {
  const ops: KeyOperation[] = ["create", "replace", "delete"];
  const table = Object.fromEntries(
    [
      "config",
      "keys/repokey",
      `archives/${"1".repeat(64)}`,
      PACK,
      "manifest",
      "index",
      "locks/x",
      "locks/commit",
      "other/x",
      "packs/zz/short",
    ]
      .map((key) => [key, ops.map((op) => appendOnlyAllows(keyClass(key), op))]),
  );
  deepStrictEqual(table, {
    "config": [true, false, false],
    "keys/repokey": [true, false, false],
    [`archives/${"1".repeat(64)}`]: [true, false, false],
    [PACK]: [true, true, false],
    "manifest": [true, true, false],
    "index": [true, true, false],
    "locks/x": [true, true, true],
    "locks/commit": [true, true, true],
    "other/x": [true, false, false],
    "packs/zz/short": [true, false, false],
  });
});
