import { deepStrictEqual, equal } from "node:assert/strict";
import { rollbackJson, rollbackLine, versionsJson, versionsLines } from "./cli_versions.ts";

const V1 = {
  id: "001796404800000-3fa2c91e",
  time: "2026-12-04T17:00:00.000Z",
  manifestBytes: 120,
  indexBytes: 4000,
};
const V0 = { ...V1, id: "001796404700000-0000abcd", indexBytes: null };

Deno.test("versions --json: newest first, id, time, sizes in snake_case; text one line each", () => {
  deepStrictEqual(versionsJson("http://h/r", [V1, V0]), {
    repository: "http://h/r",
    versions: [
      { id: V1.id, time: V1.time, manifest_bytes: 120, index_bytes: 4000 },
      { id: V0.id, time: V0.time, manifest_bytes: 120, index_bytes: null },
    ],
  });
  deepStrictEqual(versionsLines("http://h/r", [V1, V0]), [
    `${V1.id}  ${V1.time}  manifest 120 B, index 4000 B`,
    `${V0.id}  ${V0.time}  manifest 120 B, no index kept`,
  ]);
  deepStrictEqual(versionsLines("http://h/r", []), ["No kept versions in http://h/r"]);
});

Deno.test("rollback --json and its line name the version, the archives and the counter written", () => {
  const r = {
    version: V1,
    archives: 3,
    counter: 17,
    indexRestored: true,
    missingPacks: 0,
    missingArchives: 0,
  };
  deepStrictEqual(rollbackJson("http://h/r", r), {
    repository: "http://h/r",
    rolled_back_to: { id: V1.id, time: V1.time, manifest_bytes: 120, index_bytes: 4000 },
    archives: 3,
    manifest_counter: 17,
    index_restored: true,
    missing_packs: 0,
    missing_archives: 0,
  });
  equal(
    rollbackLine("http://h/r", r),
    `Rolled http://h/r back to version ${V1.id} of ${V1.time}: its manifest (3 archives) and ` +
      "its index, written as manifest number 17",
  );
  equal(
    rollbackLine("http://h/r", { ...r, missingPacks: 2, missingArchives: 1 }).endsWith(
      "; 2 packs and 1 archive objects it names are gone (vger check tells what is lost)",
    ),
    true,
  );
});
