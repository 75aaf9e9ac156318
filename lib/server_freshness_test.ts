import { equal } from "node:assert/strict";
import { MemoryBackend } from "../backends/memory.ts";
import { Freshness } from "./server_freshness.ts";

Deno.test("freshness: a manifest write after a new archive sets last_backup_at; one without leaves it", async () => {
  const f = new Freshness(new MemoryBackend());
  equal(await f.lastBackupAt("r"), null);
  await f.manifestWritten("r", new Date("2026-01-01T00:00:00Z"));
  equal(await f.lastBackupAt("r"), null);
  await f.archiveCreated("r");
  await f.manifestWritten("r", new Date("2026-01-02T00:00:00Z"));
  equal(await f.lastBackupAt("r"), "2026-01-02T00:00:00.000Z");
  await f.manifestWritten("r", new Date("2026-01-03T00:00:00Z")); // a prune
  equal(await f.lastBackupAt("r"), "2026-01-02T00:00:00.000Z");
  equal(await f.lastBackupAt("other"), null);
});
