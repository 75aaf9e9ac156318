import { deepStrictEqual, equal } from "node:assert/strict";
import type { LockEntry } from "./repo_lock.ts";
import { breakLockJson, breakLockLines } from "./cli_break_lock.ts";
import { REPO, text } from "./_test_cli.ts";

Deno.test("break-lock renders each removed lock with its content, or says there was none", () => {
  const locks: LockEntry[] = [
    {
      key: "locks/01",
      info: {
        host: "h",
        pid: 42,
        time: "2024-05-01T10:00:00.000Z",
        exclusive: true,
        command: "prune",
      },
      stale: true,
    },
    { key: "locks/02", info: null, stale: true },
  ];
  equal(
    text(breakLockJson(REPO, locks)),
    `{"repository":"/mnt/repo","removed":[{"key":"locks/01","host":"h","pid":42,` +
      `"time":"2024-05-01T10:00:00.000Z","exclusive":true,"command":"prune"},` +
      `{"key":"locks/02"}]}`,
  );
  deepStrictEqual(breakLockLines(REPO, locks, { all: false }), [
    "Removed lock locks/01: h/42 since 2024-05-01T10:00:00.000Z (prune)",
    "Removed lock locks/02: unreadable",
  ]);
  deepStrictEqual(breakLockLines(REPO, [], { all: false }), ["No stale locks in /mnt/repo"]);
  deepStrictEqual(breakLockLines(REPO, [], { all: true }), ["No locks in /mnt/repo"]);
});
