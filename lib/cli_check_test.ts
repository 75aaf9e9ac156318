import { deepStrictEqual, equal } from "node:assert/strict";
import type { CheckResult, Problem, RepairResult } from "./check_report.ts";
import { checkJson, checkSummary, problemLine, repairJson, repairLines } from "./cli_check.ts";
import { REPO, text } from "./_test_cli.ts";

function problem(overrides: Partial<Problem>): Problem {
  return {
    kind: "missing-chunk",
    severity: "error",
    message: "chunk 00ff is missing",
    affects: { archives: [], paths: [], pathsTruncated: false },
    ...overrides,
  };
}

const SIX_PATHS = ["a", "b", "c", "d", "e", "f"];

Deno.test("a check problem line names the archives and at most 5 paths, then ... when there are more", () => {
  equal(problemLine(problem({})), "error: chunk 00ff is missing");
  equal(
    problemLine(problem({ affects: { archives: ["x", "y"], paths: [], pathsTruncated: false } })),
    `error: chunk 00ff is missing (affects "x", "y")`,
  );
  equal(
    problemLine(
      problem({ affects: { archives: ["x"], paths: SIX_PATHS, pathsTruncated: false } }),
    ),
    `error: chunk 00ff is missing (affects "x": a, b, c, d, e, ...)`,
  );
  equal(
    problemLine(
      problem({
        affects: { archives: ["x"], paths: SIX_PATHS.slice(0, 5), pathsTruncated: false },
      }),
    ),
    `error: chunk 00ff is missing (affects "x": a, b, c, d, e)`,
  );
  // the checker stopped collecting paths: say so even when 5 or fewer are listed
  equal(
    problemLine(problem({ affects: { archives: ["x"], paths: ["a"], pathsTruncated: true } })),
    `error: chunk 00ff is missing (affects "x": a, ...)`,
  );
  // paths without a known archive are not shown
  equal(
    problemLine(
      problem({
        severity: "warning",
        message: "pack 01 is unreferenced",
        affects: { archives: [], paths: ["a"], pathsTruncated: false },
      }),
    ),
    "warning: pack 01 is unreferenced",
  );
});

const CHECK: CheckResult = {
  problems: [
    problem({ affects: { archives: ["x"], paths: SIX_PATHS, pathsTruncated: true } }),
    problem({ kind: "unreferenced-pack", severity: "warning", message: "pack 01 is unreferenced" }),
  ],
  stats: { archives: 2, packs: 5, blobs: 40, bytesRead: 10 * 1024 * 1024 },
  indexRebuilt: false,
};

Deno.test("check JSON counts errors and warnings and gives affects and stats in snake_case", () => {
  equal(
    text(checkJson(REPO, CHECK, { verifyData: true })),
    `{"repository":"/mnt/repo","verify_data":true,"errors":1,"warnings":1,"problems":[` +
      `{"kind":"missing-chunk","severity":"error","message":"chunk 00ff is missing",` +
      `"affects":{"archives":["x"],"paths":["a","b","c","d","e","f"],"paths_truncated":true}},` +
      `{"kind":"unreferenced-pack","severity":"warning","message":"pack 01 is unreferenced",` +
      `"affects":{"archives":[],"paths":[],"paths_truncated":false}}],` +
      `"stats":{"archives":2,"packs":5,"blobs":40,"bytes_read":10485760}}`,
  );
});

Deno.test("the check summary counts what was looked at, and bytes read only with verify-data", () => {
  equal(
    checkSummary(CHECK, { verifyData: false }),
    "Checked 2 archives, 5 packs, 40 blobs: 1 errors, 1 warnings",
  );
  equal(
    checkSummary(CHECK, { verifyData: true }),
    "Checked 2 archives, 5 packs, 40 blobs, read 10.0 MiB: 1 errors, 1 warnings",
  );
  const clean = { ...CHECK, problems: [] };
  equal(
    checkSummary(clean, { verifyData: false }),
    "Checked 2 archives, 5 packs, 40 blobs: 0 errors, 0 warnings",
  );
});

function repair(overrides: Partial<RepairResult>): RepairResult {
  return {
    entries: 40,
    packs: 5,
    unreadablePacks: [],
    indexChanged: false,
    indexWritten: false,
    brokenArchives: [],
    removedArchives: [],
    salvagedPacks: [],
    damagedFiles: [],
    damagedFilesTruncated: false,
    ...overrides,
  };
}

Deno.test("check --repair JSON gives manifest_error null when the manifest was readable", () => {
  const r = repair({
    unreadablePacks: [{ key: "packs/ab/01", error: "bad magic" }],
    indexChanged: true,
    brokenArchives: [{ name: "x", id: "0a", reason: "chunk 00ff is missing" }],
    removedArchives: ["x"],
  });
  equal(
    text(repairJson(REPO, r, { dryRun: false })),
    `{"repository":"/mnt/repo","dry_run":false,"entries":40,"packs":5,` +
      `"unreadable_packs":[{"key":"packs/ab/01","error":"bad magic"}],"index_changed":true,` +
      `"index_written":false,"broken_archives":[{"name":"x","id":"0a",` +
      `"reason":"chunk 00ff is missing"}],"removed_archives":["x"],"salvaged_packs":[],` +
      `"damaged_files":[],"damaged_files_truncated":false,"manifest_error":null}`,
  );
  equal(
    repairJson(REPO, repair({ manifestError: "manifest is corrupt" }), { dryRun: true })
      .manifest_error,
    "manifest is corrupt",
  );
});

Deno.test("check --repair lines say what became of the index, unreadable packs and broken archives", () => {
  deepStrictEqual(repairLines(repair({})), ["Index: 40 blobs in 5 packs (unchanged)"]);
  deepStrictEqual(repairLines(repair({ indexChanged: true })), [
    "Index: 40 blobs in 5 packs (would be rewritten)",
  ]);
  deepStrictEqual(
    repairLines(
      repair({
        indexChanged: true,
        indexWritten: true,
        unreadablePacks: [{ key: "packs/ab/01", error: "bad magic" }],
        brokenArchives: [
          { name: "x", id: "0a", reason: "chunk 00ff is missing" },
          { name: "y", id: "0b", reason: "pack 02 is missing" },
        ],
        removedArchives: ["y"],
      }),
    ),
    [
      "Index: 40 blobs in 5 packs (rebuilt and written)",
      "unreadable pack packs/ab/01: bad magic",
      "archive x: chunk 00ff is missing",
      "archive y: pack 02 is missing (removed)",
    ],
  );
});

Deno.test("check --repair reports salvaged packs and damaged files, in lines and JSON", () => {
  const r = repair({
    indexChanged: true,
    indexWritten: true,
    salvagedPacks: [
      { key: "packs/ab/01", reason: "CRC-32 mismatch", kept: 7, lost: 1, removed: true },
    ],
    damagedFiles: [{ archive: "one", path: "home/a.bin", missingChunks: 1 }],
    damagedFilesTruncated: true,
  });
  deepStrictEqual(repairLines(r), [
    "Index: 40 blobs in 5 packs (rebuilt and written)",
    "damaged pack packs/ab/01: CRC-32 mismatch; copied 7 blobs that verify into new packs, " +
    "1 lost (removed)",
    "damaged file one:/home/a.bin: 1 chunks lost (a backup of the same file stores them again)",
    "(more damaged files not listed)",
  ]);
  const dry = repair({
    ...r,
    indexWritten: false,
    salvagedPacks: [{ ...r.salvagedPacks[0], removed: false }],
  });
  equal(
    repairLines(dry)[1],
    "damaged pack packs/ab/01: CRC-32 mismatch; would copy 7 blobs that verify into new packs, " +
      "1 lost",
  );
  const json = repairJson(REPO, r, { dryRun: false });
  deepStrictEqual(json.salvaged_packs, r.salvagedPacks);
  deepStrictEqual(json.damaged_files, [{ archive: "one", path: "home/a.bin", missing_chunks: 1 }]);
  equal(json.damaged_files_truncated, true);
});
