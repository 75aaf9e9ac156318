import { equal } from "node:assert/strict";
import type { BackupResult } from "./archiver.ts";
import { backupJson, backupSummary, extractJson, extractSummary } from "./cli_backup.ts";
import { entry, REPO, text } from "./_test_cli.ts";

Deno.test("backup JSON has snake_case sizes, hex id and warnings; the summary formats bytes and seconds", () => {
  const result: BackupResult = {
    archive: entry("docs", "2024-05-01T10:00:00.000Z", 1),
    stats: { files: 3, original: 2048, compressed: 1024, deduplicated: 512 },
    warnings: ["skipped /x: permission denied"],
    seconds: 2.04,
    unchangedFiles: 2,
  };
  equal(
    text(backupJson(REPO, result)),
    `{"repository":"/mnt/repo","archive":"docs","id":"${"01".repeat(32)}","files":3,` +
      `"original_size":2048,"compressed_size":1024,"deduplicated_size":512,` +
      `"duration_seconds":2.04,"unchanged_files":2,"warnings":["skipped /x: permission denied"]}`,
  );
  equal(
    backupSummary(result),
    "Archive docs: 3 files, original 2.00 KiB, compressed 1.00 KiB, deduplicated 512 B, 2.0 s",
  );
});

Deno.test("extract renders the archive, counts and warnings, and a summary naming the destination", () => {
  const result = { files: 7, bytes: 1536, warnings: [] };
  equal(
    text(extractJson(REPO, result, { archive: "docs" })),
    `{"repository":"/mnt/repo","archive":"docs","files":7,"bytes":1536,"warnings":[]}`,
  );
  equal(extractSummary(result, { dest: "/tmp/out" }), "Restored 7 items, 1.50 KiB to /tmp/out");
});
