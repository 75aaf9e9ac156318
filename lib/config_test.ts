import { deepStrictEqual, equal, ok, throws } from "node:assert/strict";
import { DEFAULT_CHUNKER_PARAMS, validateChunkerParams } from "./chunker.ts";
import {
  CHUNKER_KEYS,
  COMPRESSION_KEYS,
  DEFAULT_ARCHIVE_NAME_FORMAT,
  ENCRYPTION_KEYS,
  parseConfig,
  REPOSITORY_KEYS,
  RETENTION_KEYS,
  TOP_LEVEL_KEYS,
  type VgerConfig,
} from "./config.ts";
import { selectRepositories } from "./config_select.ts";
import { openBackend } from "../backends/mod.ts";
import { UsageError } from "./errors.ts";
import { resolvePassphrase } from "./secrets.ts";
import { validatePackSizes } from "./repository.ts";
import { repositoryIdentity } from "./repository_identity.ts";

const FILE = "/etc/vger/config.yaml";
const REPO = ["repositories:", "  - path: /a"];

/** Asserts the one-line error `Invalid configuration FILE line N: KEYPATH: ...` matching `reason`. */
function assertConfigError(
  text: string,
  want: { line: number; path: string; reason: RegExp },
): void {
  throws(() => parseConfig(text, FILE), (err: unknown) => {
    ok(err instanceof UsageError, `expected UsageError, got ${err}`);
    const prefix = `Invalid configuration ${FILE} line ${want.line}: ${want.path}${
      want.path ? ": " : ""
    }`;
    ok(err.message.startsWith(prefix), `expected "${prefix}..." got: ${err.message}`);
    ok(want.reason.test(err.message), `${want.reason} does not match: ${err.message}`);
    ok(!err.message.includes("\n"), `not one line: ${err.message}`);
    return true;
  }, text);
}

const parse = (lines: string[]): VgerConfig => parseConfig(lines.join("\n") + "\n", FILE);

interface KeyCase {
  /** The key as `section.key`, `repositories[].key` or a top-level key. */
  key: string;
  good: string[];
  check: (c: VgerConfig) => void;
  bad: { lines: string[]; line: number; path: string; reason: RegExp }[];
}

const S3 = ["  - path: vger/x", "    backend: s3", "    s3_bucket: my-bucket"];
const REST = ["  - path: https://backup.example.com/r", "    backend: rest"];

const KEY_CASES: KeyCase[] = [
  {
    key: "repositories",
    good: [...REPO, "  - path: /b", "    label: b"],
    check: (c) => deepStrictEqual(c.repositories.map((r) => r.path), ["/a", "/b"]),
    bad: [
      { lines: ["repositories: /a"], line: 1, path: "repositories", reason: /expected a list/ },
      { lines: ["repositories: []"], line: 1, path: "repositories", reason: /an empty list/ },
      {
        lines: ["source_directories: [/h]"],
        line: 1,
        path: "repositories",
        reason: /missing \(required\)/,
      },
      {
        lines: ["repositories:", "  - /a"],
        line: 2,
        path: "repositories[0]",
        reason: /expected a mapping such as \{path: \/backup\/repo\}, got the string "\/a"/,
      },
    ],
  },
  {
    key: "encryption",
    good: [...REPO, "encryption:"],
    check: (c) => deepStrictEqual(c.encryption, { mode: "aes256gcm" }),
    bad: [{
      lines: [...REPO, "encryption: aes256gcm"],
      line: 3,
      path: "encryption",
      reason: /expected a mapping, got the string "aes256gcm"/,
    }],
  },
  {
    key: "encryption.mode",
    good: [...REPO, "encryption:", "  mode: none"],
    check: (c) => {
      equal(c.encryption.mode, "none");
      equal(c.repositories[0].encryption.mode, "none");
    },
    bad: [{
      lines: [...REPO, "encryption:", "  mode: rot13"],
      line: 4,
      path: "encryption.mode",
      reason: /"rot13" is not "aes256gcm" or "none"/,
    }],
  },
  {
    key: "encryption.passphrase",
    good: [...REPO, "encryption:", "  passphrase: s3cret"],
    check: (c) => {
      equal(c.encryption.passphrase, "s3cret");
      equal(c.repositories[0].encryption.passphrase, undefined); // kept apart for precedence
    },
    bad: [
      {
        lines: [...REPO, "encryption:", "  passphrase: 1234"],
        line: 4,
        path: "encryption.passphrase",
        reason: /expected a string \(put it in quotes\), got a number; the value is not shown$/,
      },
      {
        lines: [...REPO, "encryption:", '  passphrase: ""'],
        line: 4,
        path: "encryption.passphrase",
        reason: /must not be empty/,
      },
    ],
  },
  {
    key: "encryption.passcommand",
    good: [...REPO, "encryption:", "  passcommand: pass show 'my vger'"],
    check: (c) => {
      equal(c.encryption.passcommand, "pass show 'my vger'");
      equal(c.repositories[0].encryption.passcommand, undefined);
    },
    bad: [
      {
        lines: [...REPO, "encryption:", '  passcommand: "  "'],
        line: 4,
        path: "encryption.passcommand",
        reason: /must not be empty/,
      },
      {
        lines: [...REPO, "encryption:", "  passcommand: pass show 'vger"],
        line: 4,
        path: "encryption.passcommand",
        reason: /unterminated single quote/,
      },
    ],
  },
  {
    key: "source_directories",
    good: [...REPO, "source_directories:", "  - /home", "  - /etc"],
    check: (c) => {
      deepStrictEqual(c.sourceDirectories, ["/home", "/etc"]);
      deepStrictEqual(c.repositories[0].sourceDirectories, ["/home", "/etc"]);
    },
    bad: [
      {
        lines: [...REPO, "source_directories: /home"],
        line: 3,
        path: "source_directories",
        reason: /expected a list of strings, got the string "\/home"/,
      },
      {
        lines: [...REPO, "source_directories:", "  - /home", "  - 5"],
        line: 5,
        path: "source_directories[1]",
        reason: /expected a string, got 5/,
      },
    ],
  },
  {
    key: "exclude_patterns",
    good: [...REPO, "exclude_patterns:", '  - "**/*.tmp"', '  - "home/*/.cache"'],
    check: (c) => deepStrictEqual(c.excludePatterns, ["**/*.tmp", "home/*/.cache"]),
    bad: [
      {
        lines: [...REPO, "exclude_patterns: [1, 2]"],
        line: 3,
        path: "exclude_patterns[0]",
        reason: /expected a string, got 1/,
      },
      {
        lines: [...REPO, "exclude_patterns:", "  - ok", "  - '[z-a]'"],
        line: 5,
        path: "exclude_patterns[1]",
        reason: /Invalid exclude pattern "\[z-a\]": the range "z-a" is reversed/,
      },
    ],
  },
  {
    key: "chunker",
    good: [...REPO, "chunker:"],
    check: (c) => deepStrictEqual(c.chunker, { ...DEFAULT_CHUNKER_PARAMS }),
    bad: [{ lines: [...REPO, "chunker: [1]"], line: 3, path: "chunker", reason: /a mapping/ }],
  },
  {
    key: "chunker.min_size",
    good: [...REPO, "chunker:", "  min_size: 65536"],
    check: (c) => equal(c.chunker.minSize, 65536),
    bad: [
      {
        lines: [...REPO, "chunker:", "  min_size: 32"],
        line: 4,
        path: "chunker.min_size",
        reason: /32 is out of range: use 64 to 268435456/,
      },
      {
        lines: [...REPO, "chunker:", "  min_size: 4194304"],
        line: 4,
        path: "chunker.min_size",
        reason: /min_size 4194304 is larger than avg_size 2097152 \(the default\)/,
      },
    ],
  },
  {
    key: "chunker.avg_size",
    good: [...REPO, "chunker:", "  avg_size: 1048576"],
    check: (c) => equal(c.chunker.avgSize, 1048576),
    bad: [{
      lines: [...REPO, "chunker:", "  min_size: 65536", "  avg_size: 3000000"],
      line: 5,
      path: "chunker.avg_size",
      reason: /3000000 is not a power of two/,
    }],
  },
  {
    key: "chunker.max_size",
    good: [...REPO, "chunker:", "  max_size: 16777216"],
    check: (c) => equal(c.chunker.maxSize, 16777216),
    bad: [
      {
        lines: [...REPO, "chunker:", "  max_size: 1048576"],
        line: 4,
        path: "chunker.max_size",
        reason: /avg_size 2097152 \(the default\) is larger than max_size 1048576/,
      },
      {
        lines: [...REPO, "chunker: {max_size: 1.5}"],
        line: 3,
        path: "chunker.max_size",
        reason: /expected a whole number of bytes, got 1.5/,
      },
    ],
  },
  {
    key: "compression",
    good: [...REPO, "compression:"],
    check: (c) => deepStrictEqual(c.compression, { algorithm: "lz4", zstdLevel: 3 }),
    bad: [{
      lines: [...REPO, "compression: zstd"],
      line: 3,
      path: "compression",
      reason: /a mapping/,
    }],
  },
  {
    key: "compression.algorithm",
    good: [...REPO, "compression:", "  algorithm: zstd"],
    check: (c) =>
      deepStrictEqual(c.repositories[0].compression, { algorithm: "zstd", zstdLevel: 3 }),
    bad: [{
      lines: [...REPO, "compression:", "  algorithm: gzip"],
      line: 4,
      path: "compression.algorithm",
      reason: /"gzip" is not "lz4", "zstd" or "none"/,
    }],
  },
  {
    key: "compression.zstd_level",
    good: [...REPO, "compression:", "  zstd_level: 19"],
    check: (c) => deepStrictEqual(c.compression, { algorithm: "lz4", zstdLevel: 19 }),
    bad: [
      {
        lines: [...REPO, "compression:", "  zstd_level: 30"],
        line: 4,
        path: "compression.zstd_level",
        reason: /30 is out of range: use 1 to 22/,
      },
      {
        lines: [...REPO, "compression:", "  zstd_level: high"],
        line: 4,
        path: "compression.zstd_level",
        reason: /expected a whole number, got the string "high"/,
      },
    ],
  },
  {
    key: "retention",
    good: [...REPO, "retention:"],
    check: (c) => deepStrictEqual(c.retention, {}),
    bad: [{
      lines: [...REPO, "retention: [keep_daily]"],
      line: 3,
      path: "retention",
      reason: /expected a mapping of keep_\* rules, got a list/,
    }],
  },
  ...(["last", "hourly", "daily", "weekly", "monthly", "yearly"] as const).map((rule) => ({
    key: `retention.keep_${rule}`,
    good: [...REPO, "retention:", `  keep_${rule}: 5`],
    check: (c: VgerConfig) => {
      const field = `keep${rule[0].toUpperCase()}${rule.slice(1)}`;
      deepStrictEqual(c.retention, { [field]: 5 });
      deepStrictEqual(c.repositories[0].retention, { [field]: 5 });
    },
    bad: [{
      lines: [...REPO, "retention:", "  keep_within: 1d", `  keep_${rule}: -1`],
      line: 5,
      path: `retention.keep_${rule}`,
      reason: /expected a whole number of archives \(0 or more\), got -1/,
    }],
  })),
  {
    key: "retention.keep_within",
    good: [...REPO, "retention:", "  keep_within: 1y2m3d"],
    check: (c) => deepStrictEqual(c.retention, { keepWithin: "1y2m3d" }),
    bad: [{
      lines: [...REPO, "retention:", "  keep_within: 2x"],
      line: 4,
      path: "retention.keep_within",
      reason: /"2x" is not a duration like 2d, 3m or 1y/,
    }],
  },
  {
    key: "archive_name_format",
    good: [...REPO, 'archive_name_format: "{user}@{hostname}-{now:%A %e %B}"'],
    check: (c) => equal(c.archiveNameFormat, "{user}@{hostname}-{now:%A %e %B}"),
    bad: [
      {
        lines: [...REPO, "archive_name_format: 5"],
        line: 3,
        path: "archive_name_format",
        reason: /expected a string, got 5/,
      },
      {
        lines: [...REPO, 'archive_name_format: "{hostnme}-{now}"'],
        line: 3,
        path: "archive_name_format",
        reason: /unknown placeholder \{hostnme\} \(did you mean \{hostname\}\?\)/,
      },
      {
        lines: [...REPO, 'archive_name_format: "{now:%Y-%Q}"'],
        line: 3,
        path: "archive_name_format",
        reason: /unknown strftime field %Q/,
      },
    ],
  },
  {
    key: "repositories[].path",
    good: ["repositories:", "  - path: /backup/repo"],
    check: (c) => equal(c.repositories[0].path, "/backup/repo"),
    bad: [
      {
        lines: ["repositories:", "  - label: x"],
        line: 2,
        path: "repositories[0].path",
        reason: /missing \(required\)/,
      },
      {
        lines: ["repositories:", "  - label: x", "    path: 5"],
        line: 3,
        path: "repositories[0].path",
        reason: /expected a string, got 5/,
      },
      {
        lines: ["repositories:", "  - path: s3://bucket/x"],
        line: 2,
        path: "repositories[0].path",
        reason: /is a URL: set backend to "s3" or "rest"/,
      },
      {
        lines: [...REPO, "  - path: /a/"],
        line: 3,
        path: "repositories[1].path",
        reason: /path "\/a\/" is also used by repositories\[0\]/,
      },
    ],
  },
  {
    key: "repositories[].label",
    good: [...REPO, "    label: main"],
    check: (c) => equal(c.repositories[0].label, "main"),
    bad: [
      {
        lines: [...REPO, "    label: x", "  - path: /b", "    label: x"],
        line: 5,
        path: "repositories[1].label",
        reason: /label "x" is also used by repositories\[0\]/,
      },
      {
        lines: [...REPO, "    label: a/b"],
        line: 3,
        path: "repositories[0].label",
        reason: /contains "\/" or ":"/,
      },
    ],
  },
  {
    key: "repositories[].backend",
    good: ["repositories:", ...REST],
    check: (c) => {
      equal(c.repositories[0].backend, "rest");
      deepStrictEqual(c.repositories[0].rest, {});
    },
    bad: [
      {
        lines: [...REPO, "    backend: ftp"],
        line: 3,
        path: "repositories[0].backend",
        reason: /"ftp" is not "local", "s3" or "rest"/,
      },
      {
        lines: [...REPO, "    backend: S3"],
        line: 3,
        path: "repositories[0].backend",
        reason: /did you mean "s3"/,
      },
      {
        lines: ["repositories:", "  - path: /srv/repo", "    backend: rest"],
        line: 2,
        path: "repositories[0].path",
        reason: /"\/srv\/repo" is not an http:\/\/ or https:\/\/ URL \(backend: rest\)/,
      },
    ],
  },
  {
    key: "repositories[].min_pack_size",
    good: [...REPO, "    min_pack_size: 1048576"],
    check: (c) => {
      equal(c.repositories[0].minPackSize, 1048576);
      equal(c.repositories[0].maxPackSize, undefined);
    },
    bad: [
      {
        lines: [...REPO, "    min_pack_size: 1000"],
        line: 3,
        path: "repositories[0].min_pack_size",
        reason: /1000 is out of range: use 1048576 to 4294967295/,
      },
      {
        lines: [...REPO, "    min_pack_size: 1073741824"],
        line: 3,
        path: "repositories[0].min_pack_size",
        reason: /larger than max_pack_size 536870912 \(the default\)/,
      },
      {
        lines: [...REPO, "    min_pack_size: big"],
        line: 3,
        path: "repositories[0].min_pack_size",
        reason: /expected a whole number of bytes, got the string "big"/,
      },
    ],
  },
  {
    key: "repositories[].max_pack_size",
    good: [...REPO, "    max_pack_size: 1073741824"],
    check: (c) => equal(c.repositories[0].maxPackSize, 1073741824),
    bad: [
      {
        lines: [...REPO, "    max_pack_size: 4294967296"],
        line: 3,
        path: "repositories[0].max_pack_size",
        reason: /out of range/,
      },
      {
        lines: [...REPO, "    min_pack_size: 4194304", "    max_pack_size: 2097152"],
        line: 4,
        path: "repositories[0].max_pack_size",
        reason: /min_pack_size 4194304 is larger than max_pack_size 2097152/,
      },
    ],
  },
  {
    key: "repositories[].connections",
    good: ["repositories:", ...S3, "    connections: 16"],
    check: (c) => equal(c.repositories[0].connections, 16),
    bad: [
      {
        lines: [...REPO, "    connections: 0"],
        line: 3,
        path: "repositories[0].connections",
        reason: /: 0 is out of range: use 1 to 256$/,
      },
      {
        lines: [...REPO, "    connections: 2.5"],
        line: 3,
        path: "repositories[0].connections",
        reason: /: expected a whole number of parallel requests, got/,
      },
    ],
  },
  {
    key: "repositories[].s3_bucket",
    good: ["repositories:", ...S3],
    check: (c) => {
      equal(c.repositories[0].backend, "s3");
      deepStrictEqual(c.repositories[0].s3, { bucket: "my-bucket", prefix: "vger/x" });
      equal(c.repositories[0].rest, undefined);
    },
    bad: [
      {
        lines: ["repositories:", "  - path: vger/x", "    backend: s3"],
        line: 2,
        path: "repositories[0].path",
        reason: /: "vger\/x" names no bucket: write s3:\/\/BUCKET\/vger\/x or add s3_bucket$/,
      },
      {
        lines: ["repositories:", "  - path: s3://a/x", "    backend: s3", "    s3_bucket: b"],
        line: 4,
        path: "repositories[0].s3_bucket",
        reason:
          /: "b" is not the bucket "a" of path "s3:\/\/a\/x" \(give one, or the same in both\)$/,
      },
      {
        lines: [...REPO, "    s3_bucket: b"],
        line: 3,
        path: "repositories[0].s3_bucket",
        reason: /only for backend: s3 \(this repository's backend is "local"\)/,
      },
      {
        lines: ["repositories:", "  - path: vger/x", "    backend: s3", "    s3_bucket: a/b"],
        line: 4,
        path: "repositories[0].s3_bucket",
        reason: /is not a bucket name/,
      },
    ],
  },
  {
    key: "repositories[].s3_region",
    good: ["repositories:", ...S3, "    s3_region: eu-west-1"],
    check: (c) => equal(c.repositories[0].s3?.region, "eu-west-1"),
    bad: [
      {
        lines: ["repositories:", ...S3, "    s3_region: 5"],
        line: 5,
        path: "repositories[0].s3_region",
        reason: /expected a string/,
      },
      {
        lines: ["repositories:", ...REST, "    s3_region: eu-west-1"],
        line: 4,
        path: "repositories[0].s3_region",
        reason: /only for backend: s3/,
      },
    ],
  },
  {
    key: "repositories[].s3_endpoint",
    good: ["repositories:", ...S3, "    s3_endpoint: http://localhost:9000"],
    check: (c) => equal(c.repositories[0].s3?.endpoint, "http://localhost:9000"),
    bad: [{
      lines: ["repositories:", ...S3, "    s3_endpoint: localhost:9000"],
      line: 5,
      path: "repositories[0].s3_endpoint",
      reason: /"localhost:9000" is not an http:\/\/ or https:\/\/ URL/,
    }],
  },
  {
    key: "repositories[].s3_access_key_id",
    good: ["repositories:", ...S3, "    s3_access_key_id: id", "    s3_secret_access_key: sec"],
    check: (c) =>
      deepStrictEqual(c.repositories[0].s3, {
        bucket: "my-bucket",
        prefix: "vger/x",
        accessKeyId: "id",
        secretAccessKey: "sec",
      }),
    bad: [{
      lines: ["repositories:", ...S3, "    s3_access_key_id: id"],
      line: 5,
      path: "repositories[0].s3_access_key_id",
      reason: /needs s3_secret_access_key too \(give both or neither\)/,
    }],
  },
  {
    key: "repositories[].s3_secret_access_key",
    good: ["repositories:", ...S3, "    s3_secret_access_key: sec", "    s3_access_key_id: id"],
    check: (c) => equal(c.repositories[0].s3?.secretAccessKey, "sec"),
    bad: [{
      lines: ["repositories:", ...S3, "    s3_secret_access_key: sec"],
      line: 5,
      path: "repositories[0].s3_secret_access_key",
      reason: /needs s3_access_key_id too/,
    }, {
      // a secret of the wrong type is named by its type only
      lines: [
        "repositories:",
        ...S3,
        "    s3_access_key_id: id",
        "    s3_secret_access_key: 98765",
      ],
      line: 6,
      path: "repositories[0].s3_secret_access_key",
      reason: /expected a string \(put it in quotes\), got a number; the value is not shown$/,
    }],
  },
  {
    key: "repositories[].rest_token",
    good: ["repositories:", ...REST, "    rest_token: tok"],
    check: (c) => deepStrictEqual(c.repositories[0].rest, { token: "tok" }),
    bad: [
      {
        lines: ["repositories:", ...S3, "    rest_token: tok"],
        line: 5,
        path: "repositories[0].rest_token",
        reason: /only for backend: rest \(this repository's backend is "s3"\)/,
      },
      {
        lines: ["repositories:", ...REST, "    rest_token: [a]"],
        line: 4,
        path: "repositories[0].rest_token",
        reason: /expected a string \(put it in quotes\), got a list; the value is not shown$/,
      },
      {
        lines: ["repositories:", ...REST, "    rest_token: 4242"],
        line: 4,
        path: "repositories[0].rest_token",
        reason: /expected a string \(put it in quotes\), got a number; the value is not shown$/,
      },
    ],
  },
  {
    key: "repositories[].rest_token_command",
    good: ["repositories:", ...REST, '    rest_token_command: pass show "vger token"'],
    check: (c) =>
      deepStrictEqual(c.repositories[0].rest, { tokenCommand: 'pass show "vger token"' }),
    bad: [
      {
        lines: ["repositories:", ...REST, "    rest_token: t", "    rest_token_command: pass x"],
        line: 5,
        path: "repositories[0].rest_token_command",
        reason: /give rest_token or rest_token_command, not both/,
      },
      {
        lines: [...REPO, "    rest_token_command: pass x"],
        line: 3,
        path: "repositories[0].rest_token_command",
        reason: /only for backend: rest/,
      },
      {
        lines: ["repositories:", ...REST, `    rest_token_command: 'cat "/tok'`],
        line: 4,
        path: "repositories[0].rest_token_command",
        reason: /unterminated double quote/,
      },
    ],
  },
  {
    key: "repositories[].encryption",
    good: [...REPO, "    encryption:", "      passcommand: pass show a"],
    check: (c) =>
      deepStrictEqual(c.repositories[0].encryption, {
        mode: "aes256gcm",
        passcommand: "pass show a",
      }),
    bad: [{
      lines: [...REPO, "    encryption:", "      mdoe: none"],
      line: 4,
      path: "repositories[0].encryption.mdoe",
      reason: /unknown key \(did you mean "mode"\?\)/,
    }],
  },
  {
    key: "repositories[].compression",
    good: [...REPO, "    compression:", "      algorithm: none"],
    check: (c) =>
      deepStrictEqual(c.repositories[0].compression, { algorithm: "none", zstdLevel: 3 }),
    bad: [{
      lines: [...REPO, "    compression: [lz4]"],
      line: 3,
      path: "repositories[0].compression",
      reason: /expected a mapping, got a list/,
    }],
  },
  {
    key: "repositories[].retention",
    good: [...REPO, "    retention:", "      keep_daily: 30"],
    check: (c) => deepStrictEqual(c.repositories[0].retention, { keepDaily: 30 }),
    bad: [{
      lines: [...REPO, "    retention:", "      keep_dayly: 3"],
      line: 4,
      path: "repositories[0].retention.keep_dayly",
      reason: /unknown key \(did you mean "keep_daily"\?\)/,
    }],
  },
  {
    key: "repositories[].source_directories",
    good: [...REPO, "    source_directories: [/srv]"],
    check: (c) => deepStrictEqual(c.repositories[0].sourceDirectories, ["/srv"]),
    bad: [{
      lines: [...REPO, "    source_directories:", "      - /srv", "      - {a: b}"],
      line: 5,
      path: "repositories[0].source_directories[1]",
      reason: /expected a string, got a mapping/,
    }],
  },
];

for (const c of KEY_CASES) {
  Deno.test(`config key ${c.key}: a good value is read, bad ones name file, line and key path`, () => {
    c.check(parse(c.good));
    for (const bad of c.bad) assertConfigError(bad.lines.join("\n") + "\n", bad);
  });
}

Deno.test("every key parseConfig accepts has a case in the per-key tests", () => {
  const want = [
    ...TOP_LEVEL_KEYS,
    ...ENCRYPTION_KEYS.map((k) => `encryption.${k}`),
    ...COMPRESSION_KEYS.map((k) => `compression.${k}`),
    ...CHUNKER_KEYS.map((k) => `chunker.${k}`),
    ...RETENTION_KEYS.map((k) => `retention.${k}`),
    ...REPOSITORY_KEYS.map((k) => `repositories[].${k}`),
  ];
  const have = new Set(KEY_CASES.map((c) => c.key));
  deepStrictEqual(want.filter((k) => !have.has(k)), []);
});

Deno.test("a minimal config gets every default", () => {
  const c = parseConfig("repositories:\n  - path: /backup/repo\n", FILE);
  deepStrictEqual(c, {
    file: FILE,
    repositories: [{
      path: "/backup/repo",
      backend: "local",
      encryption: { mode: "aes256gcm" },
      compression: { algorithm: "lz4", zstdLevel: 3 },
      retention: {},
      sourceDirectories: [],
    }],
    encryption: { mode: "aes256gcm" },
    compression: { algorithm: "lz4", zstdLevel: 3 },
    retention: {},
    sourceDirectories: [],
    excludePatterns: [],
    chunker: { ...DEFAULT_CHUNKER_PARAMS },
    archiveNameFormat: DEFAULT_ARCHIVE_NAME_FORMAT,
  });
});

Deno.test("an entry overrides compression and retention key by key, sources as a whole", () => {
  const c = parse([
    "repositories:",
    "  - path: /plain",
    "  - path: /level",
    "    compression: {zstd_level: 9}",
    "  - path: /alg",
    "    compression: {algorithm: lz4}",
    "    retention: {keep_daily: 30, keep_weekly: 0}",
    "    source_directories: [/srv]",
    "compression: {algorithm: zstd, zstd_level: 5}",
    "retention: {keep_daily: 7, keep_weekly: 4, keep_within: 2d}",
    "source_directories: [/home, /etc]",
  ]);
  const [plain, level, alg] = c.repositories;
  deepStrictEqual(plain.compression, { algorithm: "zstd", zstdLevel: 5 });
  deepStrictEqual(level.compression, { algorithm: "zstd", zstdLevel: 9 });
  deepStrictEqual(alg.compression, { algorithm: "lz4", zstdLevel: 5 });
  deepStrictEqual(plain.retention, { keepDaily: 7, keepWeekly: 4, keepWithin: "2d" });
  deepStrictEqual(alg.retention, { keepDaily: 30, keepWeekly: 0, keepWithin: "2d" });
  deepStrictEqual(plain.sourceDirectories, ["/home", "/etc"]);
  deepStrictEqual(alg.sourceDirectories, ["/srv"]);
  // The top level itself is untouched by the overrides.
  deepStrictEqual(c.compression, { algorithm: "zstd", zstdLevel: 5 });
  deepStrictEqual(c.retention, { keepDaily: 7, keepWeekly: 4, keepWithin: "2d" });
});

Deno.test("an entry's encryption sets only the mode, or only its own secrets", () => {
  const c = parse([
    "repositories:",
    "  - path: /inherit",
    "  - path: /mode",
    "    encryption: {mode: none}",
    "  - path: /own",
    "    encryption:",
    "      passcommand: pass show own",
    "      passphrase: own-secret",
    "encryption:",
    "  mode: aes256gcm",
    "  passphrase: top-secret",
    "  passcommand: pass show top",
  ]);
  const [inherit, mode, own] = c.repositories;
  deepStrictEqual(c.repositories.map((r) => r.modeNamed), [true, true, true]);
  deepStrictEqual(inherit.encryption, { mode: "aes256gcm" });
  deepStrictEqual(mode.encryption, { mode: "none" });
  deepStrictEqual(own.encryption, {
    mode: "aes256gcm",
    passcommand: "pass show own",
    passphrase: "own-secret",
  });
  deepStrictEqual(c.encryption, {
    mode: "aes256gcm",
    passphrase: "top-secret",
    passcommand: "pass show top",
  });
  const top = parse([...REPO, "encryption: {mode: none}"]);
  deepStrictEqual(top.repositories[0].encryption, { mode: "none" });
});

Deno.test("passphrase precedence works on the parsed sources: entry, VGER_PASSPHRASE, top level", async () => {
  const layers = [
    { entry: "      passcommand: pass show own" },
    { entry: "      passphrase: own" },
    { env: "from-env" },
    { top: "  passcommand: pass show top" },
    { top: "  passphrase: top" },
  ];
  const expected = ["ran pass show own", "own", "from-env", "ran pass show top", "top", "prompt"];
  const io = {
    run: (command: string) => Promise.resolve(`ran ${command}`),
    prompt: () => Promise.resolve("prompt"),
  };
  // Drop the most specific source one by one: the next one must win each time.
  for (let first = 0; first <= layers.length; first++) {
    const present = layers.slice(first);
    const entry = present.flatMap((l) => (l.entry ? [l.entry] : []));
    const top = present.flatMap((l) => (l.top ? [l.top] : []));
    const env = present.find((l) => l.env)?.env;
    const c = parse([
      "repositories:",
      "  - path: /a",
      "    label: a",
      ...(entry.length ? ["    encryption:", ...entry] : []),
      ...(top.length ? ["encryption:", ...top] : []),
    ]);
    const repo = c.repositories[0];
    const got = await resolvePassphrase(
      { repository: repo.label!, own: repo.encryption, top: c.encryption, env },
      io,
    );
    equal(got, expected[first], `without the first ${first} sources`);
  }
  // Another entry never sees this entry's secrets.
  const c = parse([
    "repositories:",
    "  - path: /a",
    "    encryption: {passphrase: only-a}",
    "  - path: /b",
  ]);
  equal(c.repositories[1].encryption.passphrase, undefined);
});

Deno.test("an entry's rest_token and rest_token_command stay its own", () => {
  const c = parse([
    "repositories:",
    ...REST,
    "    rest_token_command: pass show tok",
    "  - path: https://h/b",
    "    backend: rest",
    "    rest_token: tok",
    "  - path: https://h/c",
    "    backend: rest",
  ]);
  deepStrictEqual(c.repositories.map((r) => r.rest), [
    { tokenCommand: "pass show tok" },
    { token: "tok" },
    {},
  ]);
});

Deno.test("error lines point at the offending key or value, however deep", () => {
  const text = [
    "# comment",
    "repositories:",
    "  - path: /a",
    "    label: a",
    "",
    "  - path: /b",
    "    label: b",
    "    compression:",
    "      algorithm: zstd",
    "      zstd_level: 99",
  ];
  assertConfigError(text.join("\n"), {
    line: 10,
    path: "repositories[1].compression.zstd_level",
    reason: /99 is out of range/,
  });
  const flow = ["repositories: [{path: /a}, {path: /b, retention: {keep_daily: x}}]"];
  assertConfigError(flow.join("\n"), {
    line: 1,
    path: "repositories[1].retention.keep_daily",
    reason: /expected a whole number/,
  });
  // An aliased mapping: its keys are reported where they are written, at the anchor.
  const alias = [
    "repositories:",
    "  - path: /a",
    "    compression: &c {algorithm: lz4}",
    "  - path: /b",
    "    compression: *c",
    "    retention: *c",
  ];
  assertConfigError(alias.join("\n"), {
    line: 3,
    path: "repositories[1].retention.algorithm",
    reason: /unknown key/,
  });
  // Unknown keys at every depth, with a suggestion when one is close.
  assertConfigError("repositorys:\n  - path: /a\n", {
    line: 1,
    path: "repositorys",
    reason: /unknown key \(did you mean "repositories"\?\)/,
  });
  assertConfigError([...REPO, "    compresion: {algorithm: lz4}"].join("\n"), {
    line: 3,
    path: "repositories[0].compresion",
    reason: /did you mean "compression"/,
  });
  assertConfigError([...REPO, "chunker:", "", "  avg_sise: 4096"].join("\n"), {
    line: 5,
    path: "chunker.avg_sise",
    reason: /did you mean "avg_size"/,
  });
  throws(() => parse([...REPO, "zzzzzzzz: 1"]), (err: Error) => {
    ok(err.message.endsWith("line 3: zzzzzzzz: unknown key"), err.message);
    return true;
  });
  assertConfigError("- path: /a\n", {
    line: 1,
    path: "",
    reason: /expected a mapping of settings/,
  });
});

Deno.test("YAML syntax errors name the file and the parser's line", () => {
  const cases: [string, number][] = [
    ["a: b: c\n", 1],
    ["repositories:\n  - path: /a\n bad: indent\n", 3],
    ["repositories:\n  - path: /a\nexclude_patterns: [a, b]]\n", 3],
    ["repositories:\n  - path: /a\nexclude_patterns: []\nexclude_patterns: []\n", 4],
    ["repositories:\n  - path: /a\n---\nother: 1\n", 3],
  ];
  for (const [text, line] of cases) {
    throws(() => parseConfig(text, FILE), (err: unknown) => {
      ok(err instanceof UsageError, `expected UsageError, got ${err}`);
      ok(err.message.startsWith(`Invalid configuration ${FILE} line ${line}: `), err.message);
      ok(!err.message.includes("\n") && !/at line \d+, column/.test(err.message), err.message);
      return true;
    }, text);
  }
});

Deno.test("pack size bounds agree with validatePackSizes of lib/repository.ts", () => {
  const MiB = 1 << 20;
  const values = [0, MiB - 1, MiB, 32 * MiB, 512 * MiB, 2 ** 32 - 1, 2 ** 32];
  for (const min of values) {
    for (const max of values) {
      let repoOk = true;
      try {
        validatePackSizes(min, max);
      } catch {
        repoOk = false;
      }
      let configOk = true;
      try {
        parse([...REPO, `    min_pack_size: ${min}`, `    max_pack_size: ${max}`]);
      } catch (err) {
        ok(err instanceof UsageError);
        configOk = false;
      }
      equal(configOk, repoOk, `min ${min} max ${max}`);
    }
  }
});

Deno.test("chunker bounds agree with validateChunkerParams of lib/chunker.ts", () => {
  const sizes = [32, 64, 4096, 65536, 100000, 1 << 20, 256 << 20, (256 << 20) + 1];
  for (const minSize of sizes) {
    for (const avgSize of sizes) {
      for (const maxSize of sizes) {
        let chunkerOk = true;
        try {
          validateChunkerParams({ minSize, avgSize, maxSize });
        } catch {
          chunkerOk = false;
        }
        let configOk = true;
        try {
          parse([
            ...REPO,
            `chunker: {min_size: ${minSize}, avg_size: ${avgSize}, max_size: ${maxSize}}`,
          ]);
        } catch (err) {
          ok(err instanceof UsageError);
          configOk = false;
        }
        equal(configOk, chunkerOk, `${minSize} ${avgSize} ${maxSize}`);
      }
    }
  }
});

function config(lines: string[]): VgerConfig {
  return parse(lines);
}

Deno.test("selectRepositories: all in order, or the one whose label or path matches", () => {
  const c = config([
    "repositories:",
    "  - path: /backups/local",
    "    label: local",
    "  - path: /backups/other",
    "  - path: https://h/r",
    "    backend: rest",
    "    label: remote",
  ]);
  deepStrictEqual(selectRepositories(c).map((r) => r.path), [
    "/backups/local",
    "/backups/other",
    "https://h/r",
  ]);
  equal(selectRepositories(c, "remote")[0], c.repositories[2]);
  equal(selectRepositories(c, "/backups/other")[0], c.repositories[1]);
  equal(selectRepositories(c, "https://h/r")[0], c.repositories[2]);
});

Deno.test("selectRepositories: an S3 URL or a local path selects its entry however either is spelled", () => {
  const c = config([
    "repositories:",
    "  - path: /backups/local/",
    "  - path: vger/main",
    "    backend: s3",
    "    s3_bucket: bkt",
    "  - path: s3://bkt/",
    "    backend: s3",
    "    s3_endpoint: http://127.0.0.1:7480",
  ]);
  for (const selector of ["s3://bkt/vger/main", "s3://bkt/vger/main/", "S3://bkt//vger/main"]) {
    deepStrictEqual(selectRepositories(c, selector), [c.repositories[1]], selector);
  }
  deepStrictEqual(selectRepositories(c, "s3://bkt"), [c.repositories[2]]);
  deepStrictEqual(selectRepositories(c, "/backups/local"), [c.repositories[0]]);
  deepStrictEqual(selectRepositories(c, "/backups/local//"), [c.repositories[0]]);
  // another prefix or bucket is not in the file: S3 needs an entry
  throws(() => selectRepositories(c, "s3://bkt/vger"), /needs an entry in/);
  throws(() => selectRepositories(c, "s3://other/vger/main"), /needs an entry in/);
});

Deno.test("selectRepositories: an unknown label is a usage error naming file, label and a suggestion", () => {
  const c = config([
    "repositories:",
    "  - path: /backups/local",
    "    label: local",
    "  - path: /backups/nas",
    "    label: nas",
  ]);
  throws(() => selectRepositories(c, "locl"), (err: unknown) => {
    ok(err instanceof UsageError);
    equal(
      err.message,
      `Unknown repository label "locl" in ${FILE} (did you mean "local"?); ` +
        "for a directory of that name use --repo ./locl",
    );
    return true;
  });
  throws(() => selectRepositories(c, "zzzzzz"), /labels: local, nas/);
  const unlabeled = config(REPO);
  throws(() => selectRepositories(unlabeled, "main"), /no repository has a label/);
});

Deno.test("selectRepositories: an unmatched path is an ad-hoc repository with the top-level defaults", () => {
  const c = config([
    ...REPO,
    "encryption: {mode: none, passphrase: top}",
    "compression: {algorithm: zstd, zstd_level: 7}",
    "retention: {keep_last: 2}",
    "source_directories: [/home]",
  ]);
  deepStrictEqual(selectRepositories(c, "./elsewhere"), [{
    path: "./elsewhere",
    backend: "local",
    encryption: { mode: "none" },
    modeNamed: true,
    compression: { algorithm: "zstd", zstdLevel: 7 },
    retention: { keepLast: 2 },
    sourceDirectories: ["/home"],
  }]);
  equal(selectRepositories(c, "/tmp/x")[0].backend, "local");
  equal(selectRepositories(c, "C:\\backup")[0].backend, "local");
  const rest = selectRepositories(c, "https://host/repo")[0];
  deepStrictEqual([rest.backend, rest.rest], ["rest", {}]);
  throws(
    () => selectRepositories(c, "s3://bucket/x"),
    /needs an entry in \/etc\/vger\/config\.yaml/,
  );
});

Deno.test("selectRepositories without a configuration: a selector is ad hoc, none is a usage error", () => {
  deepStrictEqual(selectRepositories(null, "repo"), [{
    path: "repo",
    backend: "local",
    encryption: { mode: "aes256gcm" },
    compression: { algorithm: "lz4", zstdLevel: 3 },
    retention: {},
    sourceDirectories: [],
  }]);
  throws(() => selectRepositories(null), (err: unknown) => {
    ok(err instanceof UsageError);
    equal(
      err.message,
      "No configuration file found and no repository given: use --repo PATH or create one " +
        "with vger config",
    );
    return true;
  });
});

Deno.test("modeNamed says whether the configuration names encryption.mode, at the top or in an entry", () => {
  const none = parseConfig("repositories:\n  - path: /a\n", FILE);
  equal(none.modeNamed, undefined);
  equal(none.repositories[0].modeNamed, undefined);
  equal(selectRepositories(none, "/elsewhere")[0].modeNamed, undefined);
  equal(selectRepositories(null, "/elsewhere")[0].modeNamed, undefined);
  const entry = parseConfig(
    "repositories:\n  - path: /a\n    encryption: {mode: none}\n  - path: /b\n",
    FILE,
  );
  deepStrictEqual(entry.repositories.map((r) => r.modeNamed), [true, undefined]);
  equal(entry.modeNamed, undefined);
  const top = parseConfig("repositories:\n  - path: /a\nencryption: {mode: aes256gcm}\n", FILE);
  deepStrictEqual([top.modeNamed, top.repositories[0].modeNamed], [true, true]);
  equal(selectRepositories(top, "/elsewhere")[0].modeNamed, true);
});

Deno.test("a passphrase of the wrong YAML type is an error that names the type, never the value", () => {
  for (const value of ["873465321", "true", "12.5e3", "[secret1]", "{ a: secret2 }"]) {
    const text = [...REPO, "encryption:", `  passphrase: ${value}`].join("\n");
    throws(() => parseConfig(text, FILE), (err: unknown) => {
      ok(err instanceof UsageError, `expected UsageError, got ${err}`);
      ok(err.message.includes("encryption.passphrase: expected a string"), err.message);
      for (const secret of ["873465321", "12500", "12.5", "secret1", "secret2", "true"]) {
        ok(!err.message.includes(secret), `the message shows the value: ${err.message}`);
      }
      return true;
    }, value);
  }
});

Deno.test("an s3 path is s3://BUCKET[/PREFIX] or a bare prefix, and the prefix is normalised", () => {
  const s3Of = (entry: string[]) =>
    parse([
      "repositories:",
      ...entry.map((l) => "    " + l).map((l, i) => i ? l : "  - " + l.trim()),
    ])
      .repositories[0].s3;
  deepStrictEqual(s3Of(["path: s3://b/vger/main", "backend: s3"]), {
    bucket: "b",
    prefix: "vger/main",
  });
  deepStrictEqual(s3Of(["path: s3://b", "backend: s3"]), { bucket: "b", prefix: "" });
  deepStrictEqual(s3Of(["path: s3://b/", "backend: s3"]), { bucket: "b", prefix: "" });
  deepStrictEqual(s3Of(["path: s3://b//x/y//", "backend: s3"]), { bucket: "b", prefix: "x/y" });
  deepStrictEqual(s3Of(["path: /x/", "backend: s3", "s3_bucket: b"]), { bucket: "b", prefix: "x" });
  deepStrictEqual(s3Of(["path: /", "backend: s3", "s3_bucket: b"]), { bucket: "b", prefix: "" });
  // The specification's example: a URL bucket and s3_bucket side by side, naming the same bucket.
  deepStrictEqual(
    s3Of(["path: s3://my-backups/vger", "backend: s3", "s3_bucket: my-backups"]),
    { bucket: "my-backups", prefix: "vger" },
  );
});

Deno.test("a bad s3 path is a config error at its line", () => {
  const entry = (path: string, ...more: string[]) =>
    ["repositories:", "  - path: /a", `  - path: "${path}"`, "    backend: s3", ...more].join(
      "\n",
    ) + "\n";
  const at = { line: 3, path: "repositories[1].path" };
  assertConfigError(entry("s3:///x"), { ...at, reason: /: "s3:\/\/\/x" names no bucket$/ });
  assertConfigError(entry("gs://b/x"), {
    ...at,
    reason: /: "gs:\/\/b\/x" is not an s3:\/\/ URL or a key prefix \(backend: s3\)$/,
  });
  assertConfigError(entry("s3://b/x/../y"), {
    ...at,
    reason:
      /: "s3:\/\/b\/x\/..\/y" has an invalid key prefix "x\/..\/y" \(an empty, "." or ".." segment\)$/,
  });
  assertConfigError(entry("x//y", "    s3_bucket: b"), {
    ...at,
    reason: /: "x\/\/y" has an invalid key prefix "x\/\/y"/,
  });
  assertConfigError(entry("./x", "    s3_bucket: b"), {
    ...at,
    reason: /invalid key prefix "\.\/x"/,
  });
  assertConfigError(entry("s3://my bucket/x"), {
    ...at,
    reason: /: "my bucket" is not a bucket name$/,
  });
  assertConfigError(entry("/x"), {
    ...at,
    reason: /: "\/x" names no bucket: write s3:\/\/BUCKET\/x or add s3_bucket$/,
  });
});

Deno.test("two s3 entries are the same repository only when endpoint, bucket and prefix match", () => {
  const two = (a: string[], b: string[]) => ["repositories:", ...a, ...b].join("\n") + "\n";
  const e = (path: string, ...more: string[]) => [
    `  - path: "${path}"`,
    "    backend: s3",
    ...more.map((l) => "    " + l),
  ];
  // The same bucket and prefix, written three ways: an error at the second entry's path line.
  for (
    const second of [
      e("/vger/", "s3_bucket: b"),
      e("s3://b/vger", "s3_bucket: b"),
      e("s3://b//vger/"),
    ]
  ) {
    assertConfigError(two(e("s3://b/vger"), second), {
      line: 4,
      path: "repositories[1].path",
      reason: /: bucket "b" prefix "vger" is also used by repositories\[0\]$/,
    });
  }
  assertConfigError(
    two(
      e("s3://b/vger", "s3_endpoint: http://h:9000"),
      e("vger", "s3_bucket: b", "s3_endpoint: http://key:secret@h:9000/"),
    ),
    {
      line: 5,
      path: "repositories[1].path",
      reason: /: bucket "b" prefix "vger" at http:\/\/h:9000 is also used by repositories\[0\]$/,
    },
  );
  // Another endpoint, bucket or prefix is another repository; so is a local path of the same text.
  const ok2 = (a: string[], b: string[]) =>
    equal(parse([...two(a, b).split("\n")]).repositories.length, 2);
  ok2(e("s3://b/vger"), e("s3://b/vger", "s3_endpoint: http://h:9000"));
  ok2(e("s3://b/vger"), e("s3://c/vger"));
  ok2(e("s3://b/vger"), e("s3://b/vger2"));
  ok2(e("s3://b/vger"), e("s3://b"));
  ok2(e("vger", "s3_bucket: b"), ["  - path: vger"]);
  const [a, b] = parse(["repositories:", ...e("s3://b/vger/"), "  - path: /vger/"]).repositories;
  equal(repositoryIdentity(a), "s3://b/vger");
  equal(repositoryIdentity(b), "local /vger");
});

Deno.test("repositoryIdentity names an s3 endpoint as the backend's location does", () => {
  const [a] = parse([
    "repositories:",
    "  - path: s3://b/x",
    "    backend: s3",
    "    s3_endpoint: HTTP://U:P@Host:9000/",
  ]).repositories;
  equal(repositoryIdentity(a), "s3://b/x at http://host:9000");
});

Deno.test("an s3 entry's identity is its backend's location, which keys the known-repos record", async () => {
  const entries = [
    ["  - path: s3://b", "    backend: s3"],
    ["  - path: s3://b//x/y/", "    backend: s3", "    s3_endpoint: http://k:s@h:7480/"],
    ["  - path: /x/", "    backend: s3", "    s3_bucket: b", "    s3_region: eu-west-1"],
  ];
  for (const entry of entries) {
    const [repo] = parse(["repositories:", ...entry]).repositories;
    const backend = await openBackend(repo);
    equal(repositoryIdentity(repo), backend.location, entry.join("\n"));
    await backend.close();
  }
});
