import { deepStrictEqual, equal } from "node:assert/strict";
import type { CompactionPlan, CompactionResult } from "./compactor.ts";
import { compactJson, compactSummary, compactWarnings } from "./cli_compact.ts";
import { REPO, text } from "./_test_cli.ts";

function pack(id: string) {
  return { id, size: 100, blobs: 1, liveBlobs: 0, liveBytes: 0, unusedBytes: 100 };
}

function compaction(plan: Partial<CompactionPlan>, done: Partial<CompactionResult> = {}) {
  const full: CompactionPlan = {
    thresholdPercent: 10,
    archives: 2,
    packs: 5,
    storedBytes: 5000,
    deletePacks: [pack("d1")],
    rewritePacks: [pack("r1"), pack("r2")],
    unreferencedPacks: [pack("u1")],
    missingPacks: [],
    deadBlobs: 4,
    copyBlobs: 3,
    copyBytes: 2048,
    bytesToFree: 3 * 1024 * 1024,
    missingChunks: 0,
    nothingToDo: false,
    ...plan,
  };
  return {
    plan: full,
    deletedPacks: [],
    rewrittenPacks: [],
    newPacks: [],
    bytesFreed: 0,
    corrupt: [],
    serverSide: false,
    bytesUploaded: 0,
    bytesDownloaded: 0,
    ...done,
  } satisfies CompactionResult;
}

Deno.test("compact JSON lists pack ids by fate, bytes to free and freed, corrupt blobs, and what travelled", () => {
  const corrupt = [{ id: "b1", pack: "r1", reason: "hash mismatch" }];
  const done = {
    bytesFreed: 999,
    corrupt,
    serverSide: true,
    bytesUploaded: 12,
    bytesDownloaded: 34,
  };
  equal(
    text(compactJson(REPO, compaction({}, done), { dryRun: false })),
    `{"repository":"/mnt/repo","dry_run":false,"threshold_percent":10,"packs":5,` +
      `"delete_packs":["d1"],"rewrite_packs":["r1","r2"],"unreferenced_packs":["u1"],` +
      `"bytes_to_free":3145728,"bytes_freed":999,` +
      `"corrupt":[{"id":"b1","pack":"r1","reason":"hash mismatch"}],` +
      `"server_side":true,"bytes_uploaded":12,"bytes_downloaded":34}`,
  );
});

Deno.test("compact text is a plan on a dry run, Nothing to do when idle, and Compacted with freed bytes", () => {
  const plan = "2 packs to delete, 2 to rewrite (3 blobs, 2.00 KiB to copy), 3.00 MiB to free";
  equal(compactSummary(compaction({}), { dryRun: true }), `Plan: ${plan}`);
  equal(
    compactSummary(compaction({}, { bytesFreed: 1024, bytesUploaded: 2048 }), { dryRun: false }),
    `Compacted: ${plan}; freed 1.00 KiB (2.00 KiB up, 0 B down)`,
  );
  equal(
    compactSummary(compaction({}, { bytesFreed: 1024, serverSide: true }), { dryRun: false }),
    `Compacted on the server: ${plan}; freed 1.00 KiB (0 B up, 0 B down)`,
  );
  const idle = compaction({
    deletePacks: [],
    rewritePacks: [],
    unreferencedPacks: [],
    copyBlobs: 0,
    copyBytes: 0,
    bytesToFree: 0,
    nothingToDo: true,
  });
  const none = "0 packs to delete, 0 to rewrite (0 blobs, 0 B to copy), 0 B to free";
  equal(compactSummary(idle, { dryRun: false }), `Nothing to do: ${none}`);
  equal(compactSummary(idle, { dryRun: true }), `Nothing to do: ${none}`);
  deepStrictEqual(compactWarnings([{ id: "b1", pack: "p1", reason: "hash mismatch" }]), [
    "blob b1 in pack p1 is corrupt and was left in place: hash mismatch",
  ]);
});
