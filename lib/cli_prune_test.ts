import { deepStrictEqual, equal } from "node:assert/strict";
import type { PruneResult } from "./commands.ts";
import {
  deleteJson,
  deleteLines,
  pruneDecisionLines,
  pruneJson,
  pruneSummary,
} from "./cli_prune.ts";
import { entry, REPO, text } from "./_test_cli.ts";

const PRUNE: PruneResult = {
  decisions: [
    { archive: entry("new", "2024-05-02T00:00:00.000Z"), keep: true, reasons: ["last", "daily"] },
    { archive: entry("old", "2024-05-01T00:00:00.000Z"), keep: false, reasons: [] },
  ],
  deleted: [],
};

Deno.test("prune JSON lists every decision with its reasons, the policy in words and the deleted names", () => {
  const done = { ...PRUNE, deleted: [PRUNE.decisions[1].archive] };
  equal(
    text(pruneJson(REPO, done, { dryRun: false, policy: { keepLast: 1, keepDaily: 7 } })),
    `{"repository":"/mnt/repo","dry_run":false,"policy":"keep 1 last, 7 daily archives",` +
      `"archives":[{"name":"new","time":"2024-05-02T00:00:00.000Z","keep":true,` +
      `"reasons":["last","daily"]},{"name":"old","time":"2024-05-01T00:00:00.000Z",` +
      `"keep":false,"reasons":[]}],"deleted":["old"]}`,
  );
});

Deno.test("prune lines say would prune on a dry run and prune otherwise, and the summary counts", () => {
  const policy = { keepLast: 1 };
  deepStrictEqual(pruneDecisionLines(PRUNE.decisions, { dryRun: true }), [
    "keep        new                              2024-05-02T00:00:00.000Z  (last, daily)",
    "would prune old                              2024-05-01T00:00:00.000Z",
  ]);
  deepStrictEqual(pruneDecisionLines(PRUNE.decisions, { dryRun: false }), [
    "keep        new                              2024-05-02T00:00:00.000Z  (last, daily)",
    "prune       old                              2024-05-01T00:00:00.000Z",
  ]);
  equal(
    pruneSummary(PRUNE, { dryRun: true, policy }),
    "Would prune 1 of 2 archives (keep 1 last archives)",
  );
  equal(
    pruneSummary(PRUNE, { dryRun: false, policy: {} }),
    "Pruned 1 of 2 archives (keep all archives (empty policy))",
  );
});

Deno.test("delete renders the archives with hex ids, and lines that say Would delete on a dry run", () => {
  const a = entry("docs", "2024-05-01T10:00:00.000Z", 2);
  equal(
    text(deleteJson(REPO, [a], { dryRun: true })),
    `{"repository":"/mnt/repo","dry_run":true,"archives":[{"name":"docs",` +
      `"id":"${"02".repeat(32)}","time":"2024-05-01T10:00:00.000Z"}]}`,
  );
  deepStrictEqual(deleteLines([a], { dryRun: true }), [
    "Would delete archive docs (2024-05-01T10:00:00.000Z)",
  ]);
  deepStrictEqual(deleteLines([a], { dryRun: false }), [
    "Deleted archive docs (2024-05-01T10:00:00.000Z)",
  ]);
  deepStrictEqual(deleteLines([], { dryRun: false }), []);
});
