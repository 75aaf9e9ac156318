import { deepStrictEqual, equal } from "node:assert/strict";
import type { Item } from "./archive.ts";
import type { BackupResult } from "./archiver.ts";
import { DEFAULT_CHUNKER_PARAMS } from "./chunker.ts";
import type { CheckResult, Problem, RepairResult } from "./check_report.ts";
import type { PruneResult } from "./commands.ts";
import type { CompactionPlan, CompactionResult } from "./compactor.ts";
import type { ManifestEntry } from "./manifest.ts";
import type { RepoConfig } from "./repo_config.ts";
import type { LockEntry } from "./repo_lock.ts";
import {
  archiveLine,
  archivesJson,
  backupJson,
  backupSummary,
  breakLockJson,
  breakLockLines,
  checkJson,
  checkSummary,
  compactJson,
  compactSummary,
  compactWarnings,
  configJson,
  configSummary,
  deleteJson,
  deleteLines,
  extractJson,
  extractSummary,
  initJson,
  initSummary,
  itemJson,
  itemLine,
  itemsJson,
  itemTime,
  keyChangePassphraseJson,
  keyChangePassphraseSummary,
  keyExportJson,
  keyExportSummary,
  keyImportJson,
  keyImportSummary,
  modeString,
  problemLine,
  pruneDecisionLines,
  pruneJson,
  pruneSummary,
  repairJson,
  repairLines,
} from "./cli_report.ts";

const REPO = "/mnt/repo";

/** JSON text, so that field names and their order are compared, not just the values. */
const text = (value: unknown): string => JSON.stringify(value);

function entry(name: string, time: string, idByte = 0xab): ManifestEntry {
  return {
    name,
    id: new Uint8Array(32).fill(idByte),
    time,
    hostname: "host1",
    username: "alice",
    stats: { files: 12, original: 3 * 1024 * 1024, compressed: 1536, deduplicated: 100 },
  };
}

function item(overrides: Partial<Item>): Item {
  return {
    path: "home/alice/notes.txt",
    type: "file",
    mode: 0o644,
    uid: 1000,
    gid: 100,
    mtimeNs: 1_714_557_600_123_456_789n,
    size: 4096,
    ...overrides,
  };
}

function problem(overrides: Partial<Problem>): Problem {
  return {
    kind: "missing-chunk",
    severity: "error",
    message: "chunk 00ff is missing",
    affects: { archives: [], paths: [], pathsTruncated: false },
    ...overrides,
  };
}

Deno.test("config and init render the written file, the repository id and encryption", () => {
  equal(text(configJson("vger.yaml")), `{"written":"vger.yaml"}`);
  equal(
    configSummary("vger.yaml"),
    "Wrote vger.yaml: set the repository path and source_directories, then run vger init",
  );
  const config: RepoConfig = {
    version: 1,
    id: "ff".repeat(32),
    encryption: "aes256gcm",
    chunker: DEFAULT_CHUNKER_PARAMS,
    minPackSize: 1,
    maxPackSize: 2,
  };
  equal(
    text(initJson(REPO, config)),
    `{"repository":"/mnt/repo","id":"${"ff".repeat(32)}","encryption":"aes256gcm"}`,
  );
  equal(initSummary(REPO, config), "Created repository /mnt/repo (aes256gcm)");
});

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

Deno.test("list renders archives as JSON rows and as lines with the name padded to 32", () => {
  const a = entry("docs-2024-05-01", "2024-05-01T10:00:00.000Z");
  equal(
    text(archivesJson(REPO, [a])),
    `{"repository":"/mnt/repo","archives":[{"name":"docs-2024-05-01","id":"${"ab".repeat(32)}",` +
      `"time":"2024-05-01T10:00:00.000Z","hostname":"host1","username":"alice","files":12,` +
      `"original_size":3145728,"compressed_size":1536,"deduplicated_size":100}]}`,
  );
  equal(
    archiveLine(a),
    "docs-2024-05-01                  2024-05-01T10:00:00.000Z  host1  12 files  3.00 MiB",
  );
  equal(text(archivesJson(REPO, [])), `{"repository":"/mnt/repo","archives":[]}`);
});

Deno.test("item JSON gives mtime_ns as an exact decimal string and null for unknown names and targets", () => {
  const row = itemJson(item({}));
  equal(
    text(row),
    `{"path":"home/alice/notes.txt","type":"file","mode":420,"uid":1000,"gid":100,"user":null,` +
      `"group":null,"size":4096,"mtime_ns":"1714557600123456789","target":null}`,
  );
  // beyond 2^53: a JSON number would lose the nanoseconds
  equal(row.mtime_ns, (1_714_557_600_123_456_789n).toString());
  const link = itemJson(item({ type: "symlink", user: "alice", group: "users", target: "../x" }));
  deepStrictEqual([link.user, link.group, link.target], ["alice", "users", "../x"]);
  equal(
    text(itemsJson(REPO, [row], { archive: "docs" })),
    `{"repository":"/mnt/repo","archive":"docs","items":[${text(row)}]}`,
  );
});

Deno.test("modeString shows the type and the nine permission bits as ls -l does", () => {
  equal(modeString({ type: "dir", mode: 0o750 }), "drwxr-x---");
  equal(modeString({ type: "symlink", mode: 0o777 }), "lrwxrwxrwx");
  equal(modeString({ type: "file", mode: 0o644 }), "-rw-r--r--");
  // setuid, setgid and sticky are not among the nine columns
  equal(modeString({ type: "file", mode: 0o7000 }), "----------");
});

Deno.test("the item time column is UTC to the second, and item lines pad owner to 17 and size to 12", () => {
  equal(itemTime(1_714_557_600_999_999_999n), "2024-05-01 10:00:00");
  equal(itemTime(0n), "1970-01-01 00:00:00");
  equal(
    itemLine(item({})),
    "-rw-r--r-- 1000 100                  4096 2024-05-01 10:00:00 home/alice/notes.txt",
  );
  equal(
    itemLine(item({ type: "symlink", mode: 0o777, user: "alice", group: "users", size: 4 })),
    "lrwxrwxrwx alice users                  4 2024-05-01 10:00:00 home/alice/notes.txt",
  );
  equal(
    itemLine(item({ type: "symlink", mode: 0o777, target: "../x", size: 4 })),
    "lrwxrwxrwx 1000 100                     4 2024-05-01 10:00:00 home/alice/notes.txt -> ../x",
  );
});

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
    ...done,
  } satisfies CompactionResult;
}

Deno.test("compact JSON lists pack ids by fate, bytes to free and freed, and corrupt blobs", () => {
  const corrupt = [{ id: "b1", pack: "r1", reason: "hash mismatch" }];
  equal(
    text(compactJson(REPO, compaction({}, { bytesFreed: 999, corrupt }), { dryRun: false })),
    `{"repository":"/mnt/repo","dry_run":false,"threshold_percent":10,"packs":5,` +
      `"delete_packs":["d1"],"rewrite_packs":["r1","r2"],"unreferenced_packs":["u1"],` +
      `"bytes_to_free":3145728,"bytes_freed":999,` +
      `"corrupt":[{"id":"b1","pack":"r1","reason":"hash mismatch"}]}`,
  );
});

Deno.test("compact text is a plan on a dry run, Nothing to do when idle, and Compacted with freed bytes", () => {
  const plan = "2 packs to delete, 2 to rewrite (3 blobs, 2.00 KiB to copy), 3.00 MiB to free";
  equal(compactSummary(compaction({}), { dryRun: true }), `Plan: ${plan}`);
  equal(
    compactSummary(compaction({}, { bytesFreed: 1024 }), { dryRun: false }),
    `Compacted: ${plan}; freed 1.00 KiB`,
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

Deno.test("key subcommands render what changed, with the repository first in JSON", () => {
  equal(
    text(
      keyChangePassphraseJson(REPO, { kdf: { memoryKiB: 1024, iterations: 1, parallelism: 1 } }),
    ),
    `{"repository":"/mnt/repo","changed":true,` +
      `"kdf":{"memory_kib":1024,"iterations":1,"parallelism":1}}`,
  );
  equal(
    keyChangePassphraseSummary(REPO),
    "Changed the passphrase of /mnt/repo; earlier key exports still open it with the old one",
  );
  equal(text(keyExportJson(REPO, "key.bin")), `{"repository":"/mnt/repo","written":"key.bin"}`);
  equal(
    keyExportSummary(REPO, "key.bin"),
    "Wrote the key of /mnt/repo to key.bin; keep it and the passphrase, apart",
  );
  equal(
    text(keyImportJson(REPO, { previous: "damaged" }, { file: "key.bin" })),
    `{"repository":"/mnt/repo","imported":"key.bin","previous":"damaged"}`,
  );
  equal(
    keyImportSummary(REPO, { previous: "damaged" }, { file: "key.bin" }),
    "Imported key.bin as the key of /mnt/repo (the old one was damaged)",
  );
  equal(
    keyImportSummary(REPO, { previous: "identical" }, { file: "key.bin" }),
    "The key file of /mnt/repo already is key.bin: nothing changed",
  );
});
