import { deepStrictEqual, equal, ok, throws } from "node:assert/strict";
import { DEFAULT_CHUNKER_PARAMS } from "./chunker.ts";
import { DEFAULT_ARCHIVE_NAME_FORMAT, formatArchiveName, parseConfig } from "./config.ts";
import { editDistance } from "./suggest.ts";
import { UsageError } from "./errors.ts";

const FILE = "/etc/vger/config.yaml";

/** Asserts a UsageError that names the file and the key path, and matches `reason`. */
function assertUsage(text: string, keyPath: string, reason: RegExp): void {
  throws(() => parseConfig(text, FILE), (err: unknown) => {
    ok(err instanceof UsageError, `expected UsageError, got ${err}`);
    ok(err.message.startsWith(`Invalid configuration ${FILE}`), err.message);
    ok(err.message.includes(`: ${keyPath}: `), `no key path "${keyPath}" in: ${err.message}`);
    ok(reason.test(err.message), err.message);
    return true;
  }, text);
}

Deno.test("a minimal config gets every default", () => {
  const c = parseConfig("repositories:\n  - path: /backup/repo\n", FILE);
  deepStrictEqual(c, {
    file: FILE,
    repositories: [{
      path: "/backup/repo",
      label: undefined,
      backend: "local",
      minPackSize: undefined,
      maxPackSize: undefined,
      encryption: { mode: "aes256gcm", passphrase: undefined, passcommand: undefined },
      compression: { algorithm: "lz4", zstdLevel: 3 },
      sourceDirectories: [],
      retention: {},
    }],
    sourceDirectories: [],
    excludePatterns: [],
    chunker: { ...DEFAULT_CHUNKER_PARAMS },
    archiveNameFormat: DEFAULT_ARCHIVE_NAME_FORMAT,
  });
});

Deno.test("a full config is read, and per-repository settings override the top level", () => {
  const text = `
repositories:
  - path: /a
    label: local
    min_pack_size: 1048576
    max_pack_size: 2097152
  - path: s3://bucket/prefix
    backend: s3
    encryption:
      passphrase: other
    compression:
      zstd_level: 9
    source_directories: [/srv]
encryption:
  mode: aes256gcm
  passcommand: pass show vger
compression:
  algorithm: zstd
  zstd_level: 5
source_directories:
  - /home
  - /etc
exclude_patterns: ["**/*.tmp", "home/*/.cache"]
chunker:
  min_size: 65536
  avg_size: 262144
  max_size: 1048576
archive_name_format: "{hostname}-{user}-{now:%Y%m%d}"
`;
  const c = parseConfig(text, FILE);
  equal(c.repositories.length, 2);
  const [a, b] = c.repositories;
  deepStrictEqual([a.label, a.minPackSize, a.maxPackSize, a.backend], [
    "local",
    1 << 20,
    2 << 20,
    "local",
  ]);
  deepStrictEqual(a.encryption, {
    mode: "aes256gcm",
    passphrase: undefined,
    passcommand: "pass show vger",
  });
  deepStrictEqual(a.compression, { algorithm: "zstd", zstdLevel: 5 });
  deepStrictEqual(a.sourceDirectories, ["/home", "/etc"]);
  equal(b.backend, "s3");
  // A repository's own encryption block replaces the secrets, keeps the mode.
  deepStrictEqual(b.encryption, { mode: "aes256gcm", passphrase: "other", passcommand: undefined });
  deepStrictEqual(b.compression, { algorithm: "zstd", zstdLevel: 9 });
  deepStrictEqual(b.sourceDirectories, ["/srv"]);
  deepStrictEqual(c.excludePatterns, ["**/*.tmp", "home/*/.cache"]);
  deepStrictEqual(c.chunker, { minSize: 65536, avgSize: 262144, maxSize: 1048576 });
  equal(c.archiveNameFormat, "{hostname}-{user}-{now:%Y%m%d}");
});

Deno.test("unknown keys are named with their path and a did-you-mean suggestion", () => {
  assertUsage(
    "repositorys:\n  - path: /a\n",
    "repositorys",
    /unknown key \(did you mean "repositories"\?\)/,
  );
  assertUsage(
    "repositories:\n  - path: /a\n    compresion: {algorithm: lz4}\n",
    "repositories[0].compresion",
    /unknown key \(did you mean "compression"\?\)/,
  );
  assertUsage(
    "repositories: [{path: /a}]\nchunker: {avg_sise: 4096}\n",
    "chunker.avg_sise",
    /did you mean "avg_size"/,
  );
  assertUsage(
    "repositories: [{path: /a}]\nencryption: {mdoe: none}\n",
    "encryption.mdoe",
    /did you mean "mode"/,
  );
  // Nothing close: no suggestion.
  throws(() => parseConfig("repositories: [{path: /a}]\nzzzzzzzz: 1\n", FILE), (err: unknown) => {
    ok(err instanceof UsageError);
    ok(err.message.endsWith("zzzzzzzz: unknown key"), err.message);
    return true;
  });
});

Deno.test("values of the wrong type are named with their key path", () => {
  const repo = "repositories: [{path: /a}]\n";
  assertUsage(
    repo + "source_directories: /home\n",
    "source_directories",
    /expected a list of strings/,
  );
  assertUsage(
    repo + "exclude_patterns: [1, 2]\n",
    "exclude_patterns",
    /expected a list of strings/,
  );
  assertUsage(repo + "chunker: {min_size: -5}\n", "chunker.min_size", /expected a whole number/);
  assertUsage(repo + "chunker: {max_size: 1.5}\n", "chunker.max_size", /expected a whole number/);
  assertUsage(repo + "chunker: [1]\n", "chunker", /expected a mapping/);
  assertUsage(repo + "archive_name_format: 5\n", "archive_name_format", /expected a string/);
  assertUsage(
    repo + "encryption: {mode: rot13}\n",
    "encryption.mode",
    /"rot13" is not "aes256gcm" or "none"/,
  );
  assertUsage(
    repo + "encryption: {passphrase: 1234}\n",
    "encryption.passphrase",
    /expected a string/,
  );
  assertUsage(repo + "compression: {algorithm: gzip}\n", "compression.algorithm", /"gzip" is not/);
  assertUsage(repo + "compression: {zstd_level: 30}\n", "compression.zstd_level", /use 1 to 22/);
  assertUsage(
    "repositories: [{path: /a, backend: ftp}]\n",
    "repositories[0].backend",
    /"ftp" is not "local", "s3" or "rest"/,
  );
  assertUsage(
    "repositories: [{path: /a}, {path: /b, min_pack_size: big}]\n",
    "repositories[1].min_pack_size",
    /expected a whole number/,
  );
  assertUsage("repositories: [{path: 5}]\n", "repositories[0].path", /expected a string/);
  assertUsage("repositories: [/a]\n", "repositories[0]", /expected a mapping/);
});

Deno.test("missing repositories or a missing path are usage errors", () => {
  assertUsage("source_directories: [/home]\n", "repositories", /expected a list with at least one/);
  assertUsage("repositories: []\n", "repositories", /at least one repository/);
  assertUsage("repositories: /a\n", "repositories", /at least one repository/);
  assertUsage("", "repositories", /at least one repository/);
  assertUsage("repositories:\n  - label: x\n", "repositories[0].path", /missing/);
});

Deno.test("YAML syntax errors give a UsageError with the file and line number", () => {
  const cases: [string, number][] = [
    ["a: b: c\n", 1],
    ["repositories:\n  - path: /a\n bad: indent\n", 3],
    ["repositories:\n  - path: /a\nexclude_patterns: [a, b]]\n", 3],
    ["repositories:\n  - path: /a\nexclude_patterns: []\nexclude_patterns: []\n", 4],
  ];
  for (const [text, line] of cases) {
    throws(() => parseConfig(text, FILE), (err: unknown) => {
      ok(err instanceof UsageError, `expected UsageError, got ${err}`);
      ok(err.message.startsWith(`Invalid configuration ${FILE} line ${line}: `), err.message);
      return true;
    }, text);
  }
});

Deno.test("formatArchiveName expands {hostname}, {user} and {now:...}", () => {
  const now = new Date(2024, 0, 2, 3, 4, 5, 678); // local time
  const ctx = { hostname: "box", user: "alice", now };
  equal(formatArchiveName("{hostname}-{now:%Y-%m-%dT%H:%M:%S}", ctx), "box-2024-01-02T03:04:05");
  equal(formatArchiveName(DEFAULT_ARCHIVE_NAME_FORMAT, ctx), "box-2024-01-02T03:04:05");
  equal(formatArchiveName("{user}@{hostname}", ctx), "alice@box");
  equal(formatArchiveName("{now}", ctx), "2024-01-02T03:04:05");
  equal(formatArchiveName("{now:%y%j %f %%}", ctx), "24002 678000 %");
  equal(formatArchiveName("{now:%Y}-{now:%Y}", ctx), "2024-2024");
  // Unknown placeholders and unknown directives are left alone.
  equal(formatArchiveName("{other}-{now:%Q}", ctx), "{other}-%Q");
  const off = -now.getTimezoneOffset();
  const zone = `${off >= 0 ? "+" : "-"}${String(Math.floor(Math.abs(off) / 60)).padStart(2, "0")}${
    String(Math.abs(off) % 60).padStart(2, "0")
  }`;
  equal(formatArchiveName("{now:%z}", ctx), zone);
});

Deno.test("editDistance counts insertions, deletions and substitutions", () => {
  equal(editDistance("", ""), 0);
  equal(editDistance("abc", "abc"), 0);
  equal(editDistance("repositories", "repositorys"), 2);
  equal(editDistance("mode", "mdoe"), 2);
  equal(editDistance("kitten", "sitting"), 3);
  equal(editDistance("", "abc"), 3);
});

Deno.test("retention is read at the top level and a repository's own block overrides it", () => {
  const c = parseConfig(
    `repositories:
  - path: /a
  - path: /b
    retention:
      keep_daily: 30
retention:
  keep_last: 3
  keep_within: 2d
`,
    FILE,
  );
  deepStrictEqual(c.repositories[0].retention, { keepLast: 3, keepWithin: "2d" });
  deepStrictEqual(c.repositories[1].retention, { keepDaily: 30 });
  throws(
    () => parseConfig("repositories:\n  - path: /a\nretention:\n  keep_dayly: 3\n", FILE),
    (e: Error) =>
      e instanceof UsageError && e.message.startsWith(`Invalid configuration ${FILE}: `) &&
      e.message.includes("keep_dayly") && e.message.includes("keep_daily"),
  );
});
