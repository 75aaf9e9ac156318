import { deepStrictEqual, equal, ok, rejects } from "node:assert/strict";
import {
  CHUNKER_KEYS,
  COMPRESSION_KEYS,
  DEFAULT_ARCHIVE_NAME_FORMAT,
  ENCRYPTION_KEYS,
  parseConfig,
  REPOSITORY_KEYS,
  RETENTION_KEYS,
  TOP_LEVEL_KEYS,
} from "./config.ts";
import { DEFAULT_CHUNKER_PARAMS } from "./chunker.ts";
import { UsageError } from "./errors.ts";
import { starterConfig, writeStarterConfig } from "./cli_starter_config.ts";

/** A commented-out setting: `# key: ...`, `# - key: ...` or a list item `# - "..."`. */
const SETTING = /^(\s*)# (\s*(?:- )?[a-z0-9_]+:(?:\s|$)|\s*- ")/;

/** Removes one level of `# ` from the setting lines of `lines` (prose stays commented). */
function uncomment(lines: string[]): string[] {
  return lines.map((l) => (SETTING.test(l) ? l.replace(/^(\s*)# /, "$1") : l));
}

/** The lines of the commented block that starts with the comment line containing `heading`. */
function block(lines: string[], heading: string): [number, number] {
  const start = lines.findIndex((l) => l.includes(heading));
  ok(start >= 0, `no block "${heading}"`);
  let end = start + 1;
  while (end < lines.length && lines[end].trim() !== "") end++;
  return [start, end];
}

function uncommentBlock(text: string, heading: string): string {
  const lines = text.split("\n");
  const [start, end] = block(lines, heading);
  return [...lines.slice(0, start), ...uncomment(lines.slice(start, end)), ...lines.slice(end)]
    .join("\n");
}

Deno.test("the starter configuration parses, with its live values", () => {
  const c = parseConfig(starterConfig(), "vger.yaml");
  equal(c.repositories.length, 1);
  const [repo] = c.repositories;
  deepStrictEqual([repo.path, repo.label, repo.backend], ["/backup/repo", "main", "local"]);
  deepStrictEqual(c.encryption, { mode: "aes256gcm" });
  deepStrictEqual(c.sourceDirectories, ["/home/user/documents"]);
  ok(c.excludePatterns.length >= 2);
  deepStrictEqual(c.retention, { keepDaily: 7, keepWeekly: 4, keepMonthly: 6 });
  // Commented-out settings keep their defaults.
  deepStrictEqual(c.chunker, { ...DEFAULT_CHUNKER_PARAMS });
  equal(c.archiveNameFormat, DEFAULT_ARCHIVE_NAME_FORMAT);
});

Deno.test("every key parseConfig accepts is documented in the starter configuration", () => {
  const text = starterConfig();
  const keys = new Set([
    ...TOP_LEVEL_KEYS,
    ...REPOSITORY_KEYS,
    ...ENCRYPTION_KEYS,
    ...COMPRESSION_KEYS,
    ...CHUNKER_KEYS,
    ...RETENTION_KEYS,
  ]);
  const missing = [...keys].filter((key) =>
    !new RegExp(`^\\s*(?:#\\s*)*(?:- )?${key}:`, "m").test(text)
  );
  deepStrictEqual(missing, []);
});

Deno.test("every key of the starter configuration has a one-line explanation", () => {
  const lines = starterConfig().split("\n");
  const prose = (l: string | undefined) =>
    l !== undefined && /^\s*#/.test(l) && !SETTING.test(l) && !/^\s*#\s*#/.test(l);
  const unexplained = [...new Set([...TOP_LEVEL_KEYS, ...REPOSITORY_KEYS, ...ENCRYPTION_KEYS])]
    .concat(COMPRESSION_KEYS, CHUNKER_KEYS, RETENTION_KEYS)
    .filter((key) =>
      !lines.some((l, i) =>
        new RegExp(`^\\s*(?:#\\s*)*(?:- )?${key}:`).test(l) &&
        (/\S\s+# \S/.test(l.replace(/^\s*(#\s*)*/, "")) || prose(lines[i - 1]))
      )
    );
  deepStrictEqual(unexplained, []);
});

Deno.test("uncommenting the S3 examples gives valid AWS, Ceph, MinIO and B2 repositories", () => {
  const c = parseConfig(uncommentBlock(starterConfig(), "A repository on S3"), "vger.yaml");
  equal(c.repositories.length, 5);
  const [aws, ceph, minio, b2] = c.repositories.slice(1);
  ok([aws, ceph, minio, b2].every((r) => r.backend === "s3"));
  equal(aws.label, "offsite");
  equal(aws.connections, 8);
  deepStrictEqual(aws.s3, {
    bucket: "my-backups",
    prefix: "vger/main",
    region: "eu-west-1",
    accessKeyId: "my-key-id",
    secretAccessKey: "my-secret-key",
  });
  equal(aws.compression.algorithm, "zstd");
  deepStrictEqual(ceph.s3, {
    bucket: "backups",
    prefix: "vger/main",
    endpoint: "http://rgw.example.com:7480",
  });
  deepStrictEqual(minio.s3, {
    bucket: "backups",
    prefix: "vger",
    endpoint: "http://localhost:9000",
  });
  deepStrictEqual(b2.s3, {
    bucket: "my-b2-bucket",
    prefix: "vger",
    endpoint: "https://s3.us-west-004.backblazeb2.com",
    region: "us-west-004",
  });
});

Deno.test("uncommenting the REST example gives a valid REST repository", () => {
  const c = parseConfig(uncommentBlock(starterConfig(), "on a vger-server"), "vger.yaml");
  equal(c.repositories.length, 2);
  const rest = c.repositories[1];
  equal(rest.backend, "rest");
  deepStrictEqual(rest.rest, { token: "some-secret-token" });
  // The alternative is commented twice; uncommenting it instead of rest_token works too.
  const lines = uncommentBlock(starterConfig(), "on a vger-server").split("\n")
    .filter((l) => !/^\s*rest_token:/.test(l))
    .map((l) =>
      l.includes("rest_token_command:") ? l.replace(/^(\s*)# /, "$1").replace(/^(\s*)# /, "$1") : l
    );
  const alt = parseConfig(lines.join("\n"), "vger.yaml").repositories[1];
  deepStrictEqual(alt.rest, { tokenCommand: "pass show vger-token" });
});

Deno.test("uncommenting every optional setting at once gives a valid configuration", () => {
  const text = uncomment(starterConfig().split("\n")).join("\n");
  const c = parseConfig(text, "vger.yaml");
  deepStrictEqual(c.repositories.map((r) => r.backend), [
    "local",
    "s3",
    "s3",
    "s3",
    "s3",
    "rest",
  ]);
  const [main] = c.repositories;
  deepStrictEqual(main.encryption, { mode: "aes256gcm", passcommand: "pass show vger-main" });
  deepStrictEqual(main.sourceDirectories, ["/srv"]);
  equal(main.compression.zstdLevel, 9);
  equal(main.retention.keepDaily, 30);
  equal(main.minPackSize !== undefined && main.maxPackSize !== undefined, true);
  ok(c.encryption.passphrase !== undefined && c.encryption.passcommand !== undefined);
  deepStrictEqual(c.chunker, { ...DEFAULT_CHUNKER_PARAMS });
  equal(c.retention.keepWithin, "2d");
  equal(c.archiveNameFormat, DEFAULT_ARCHIVE_NAME_FORMAT);
});

Deno.test("writeStarterConfig creates parent directories, mode 0600, and never overwrites", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const dest = `${dir}/a/b/vger.yaml`;
    await writeStarterConfig(dest);
    equal(await Deno.readTextFile(dest), starterConfig());
    if (Deno.build.os !== "windows") equal((await Deno.stat(dest)).mode! & 0o777, 0o600);

    await Deno.writeTextFile(dest, "mine\n");
    await rejects(writeStarterConfig(dest), (err: unknown) => {
      ok(err instanceof UsageError);
      ok(err.message.includes(dest) && err.message.includes("exists"), err.message);
      return true;
    });
    equal(await Deno.readTextFile(dest), "mine\n");

    // Racing writers: exactly one wins, the file is whole.
    const race = `${dir}/race.yaml`;
    const results = await Promise.allSettled(
      Array.from({ length: 8 }, () => writeStarterConfig(race)),
    );
    equal(results.filter((r) => r.status === "fulfilled").length, 1);
    equal(await Deno.readTextFile(race), starterConfig());
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
