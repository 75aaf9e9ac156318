/**
 * The whole program against a real S3 server, through the real `vger` CLI in subprocesses: the
 * command cycle (init, two backups, list, extract byte for byte, check --verify-data, delete,
 * prune, compact freeing space in the bucket, key export and import), a backup SIGKILLed at
 * its S3 write steps (half way through a multipart upload too), and bad input (wrong
 * credentials, a missing bucket, an unreachable endpoint, a wrong region, a prefix that holds no
 * vger repository), each one line with the right exit code and never a secret.
 *
 * The server comes from the environment (tests/_s3.ts says how); each test works in a bucket of
 * its own. A source tree of a few MiB holds one file larger than a multipart part (8 MiB), so
 * that a pack goes up in parts and extract reads it back in ranges.
 *
 * @module
 */

import { deepStrictEqual, equal, match, ok } from "node:assert/strict";
import {
  CopyObjectCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from "@aws-sdk/client-s3";
import {
  archiveNames,
  assertCheckClean,
  assertNoSecret,
  assertOneLine as assertOneLineOf,
  assertRestores,
  FAST_KDF_ARGS,
  jsonOf as json,
  pseudoRandomBytes,
  type RunOptions,
  type RunResult,
  runVger,
  treeSnapshot,
  type Vger,
  withTempDir,
} from "./_helpers.ts";
import { bucketUsage, ignoreS3 as ignore, makeBucket, requireS3Server } from "./_s3.ts";
import { KILL_SWITCH_CLI } from "./kill_switch.ts";
import { PART_SIZE } from "../backends/s3.ts";

/** Exit code of a process that SIGKILL ended (128 + 9). */
const KILLED = 137;

// ---------------------------------------------------------------------------------------------
// Helpers

/** Where an S3 repository is and how the CLI reaches it. */
interface S3Repo {
  bucket: string;
  prefix: string;
  /** The configuration file naming it. */
  config: string;
  /** Environment of every run on it (credentials, cache directory). */
  env: Record<string, string | undefined>;
}

/** What a configuration entry says beyond the location. */
interface EntryOptions {
  endpoint?: string;
  region?: string;
  /** Credentials as config keys; without them the runs take them from AWS_* variables. */
  accessKeyId?: string;
  secretAccessKey?: string;
  /** More YAML lines at the top level (retention...). */
  topLevel?: string[];
  /** More YAML lines of the entry (indented as its keys). */
  entry?: string[];
}

/**
 * Packs too large to be assembled in memory (over 64 MiB): they are staged and go up as
 * streams, so a pack larger than a part goes up in a multipart upload (a buffer goes in one PUT).
 */
const STAGED_PACKS: EntryOptions = {
  entry: ["min_pack_size: 134217728", "max_pack_size: 134217728"],
};

/** A configuration file with one S3 entry `s3://BUCKET/PREFIX`; returns its path. */
async function writeS3Config(
  file: string,
  bucket: string,
  prefix: string,
  options: EntryOptions = {},
): Promise<string> {
  const server = requireS3Server();
  const lines = [
    "repositories:",
    `  - path: s3://${bucket}${prefix === "" ? "" : "/" + prefix}`,
    "    backend: s3",
    `    s3_endpoint: ${options.endpoint ?? server.endpoint}`,
    `    s3_region: ${options.region ?? server.region}`,
  ];
  if (options.accessKeyId !== undefined) {
    lines.push(`    s3_access_key_id: ${JSON.stringify(options.accessKeyId)}`);
  }
  if (options.secretAccessKey !== undefined) {
    lines.push(`    s3_secret_access_key: ${JSON.stringify(options.secretAccessKey)}`);
  }
  lines.push(...(options.entry ?? []).map((line) => `    ${line}`));
  lines.push(...options.topLevel ?? [], "");
  await Deno.writeTextFile(file, lines.join("\n"));
  return file;
}

/** The test server's credentials as the AWS_* variables the SDK reads. */
function envCredentials(): Record<string, string | undefined> {
  const server = requireS3Server();
  return {
    AWS_ACCESS_KEY_ID: server.accessKeyId,
    AWS_SECRET_ACCESS_KEY: server.secretAccessKey,
    AWS_SESSION_TOKEN: undefined,
    AWS_PROFILE: undefined,
  };
}

/** No credential from the environment: only the configuration's keys count. */
const NO_ENV_CREDENTIALS: Record<string, undefined> = {
  AWS_ACCESS_KEY_ID: undefined,
  AWS_SECRET_ACCESS_KEY: undefined,
  AWS_SESSION_TOKEN: undefined,
  AWS_PROFILE: undefined,
};

function vger(repo: S3Repo, args: readonly string[], options: RunOptions = {}) {
  return runVger(["--config", repo.config, ...args], {
    ...options,
    env: { ...repo.env, ...options.env },
  });
}

/** {@linkcode vger} bound to `repo`, for tests/_helpers.ts's assertions. */
function on(repo: S3Repo): Vger {
  return (args) => vger(repo, args);
}

async function vgerOk(repo: S3Repo, args: readonly string[]): Promise<RunResult> {
  const r = await vger(repo, args);
  equal(r.code, 0, `vger ${args.join(" ")} on ${repo.bucket}/${repo.prefix}: ${r.stderr}`);
  return r;
}

/** Key -> size of every object under `prefix/`. */
async function objectsUnder(
  admin: S3Client,
  bucket: string,
  prefix: string,
): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  let token: string | undefined;
  do {
    const page = await admin.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: `${prefix}/`, ContinuationToken: token }),
    );
    for (const o of page.Contents ?? []) out[o.Key!] = o.Size ?? 0;
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return out;
}

/** Keys of the multipart uploads still open under `prefix/`. */
async function openUploads(admin: S3Client, bucket: string, prefix: string): Promise<string[]> {
  const out = await admin.send(
    new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: `${prefix}/` }),
  );
  return (out.Uploads ?? []).map((u) => u.Key!);
}

/** How many parts an object was uploaded in (the "-N" of a multipart ETag), 0 for one PUT. */
async function etagParts(admin: S3Client, bucket: string, key: string): Promise<number> {
  const head = await admin.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
  const m = head.ETag?.match(/-(\d+)"?$/);
  return m ? Number(m[1]) : 0;
}

/** Copies every object under `from/` to `to/` in the same bucket (server side). */
async function copyPrefix(admin: S3Client, bucket: string, from: string, to: string) {
  const keys = Object.keys(await objectsUnder(admin, bucket, from));
  await Promise.all(keys.map((key) =>
    admin.send(
      new CopyObjectCommand({
        Bucket: bucket,
        Key: `${to}/${key.slice(from.length + 1)}`,
        CopySource: `${bucket}/${key}`,
      }),
    )
  ));
}

async function getObject(admin: S3Client, bucket: string, key: string): Promise<Uint8Array> {
  const out = await admin.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  return await out.Body!.transformToByteArray();
}

async function putObject(admin: S3Client, bucket: string, key: string, body: Uint8Array) {
  await admin.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
}

/** A source tree of a few MiB: small files, a 512 KiB one and one of `bigBytes` (if any). */
async function makeTree(root: string, seed: number, bigBytes = 0): Promise<void> {
  await Deno.mkdir(`${root}/sub`, { recursive: true });
  await Deno.writeTextFile(`${root}/a.txt`, `alpha ${seed}\n`.repeat(200));
  await Deno.writeTextFile(`${root}/sub/b.txt`, "beta\n".repeat(300));
  await Deno.writeTextFile(`${root}/sub/empty`, "");
  await Deno.writeFile(`${root}/sub/mid.bin`, pseudoRandomBytes(512 << 10, seed));
  await Deno.symlink("a.txt", `${root}/link`);
  if (bigBytes > 0) await Deno.writeFile(`${root}/big.bin`, pseudoRandomBytes(bigBytes, seed + 1));
}

/**
 * Asserts a failed run: `code`, one stderr line matching `line`, no stack trace, no secret, and
 * not the SDK's bare text.
 */
function assertOneLine(
  r: RunResult,
  code: number,
  line: RegExp,
  secrets: readonly string[],
  what: string,
): void {
  assertOneLineOf(r, line, what, { code, secrets });
  ok(!/UnknownError|\$metadata/.test(r.stderr), `${what}: the SDK's bare text: ${r.stderr}`);
}

/** A regular expression matching `text` literally. */
function literal(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
}

// ---------------------------------------------------------------------------------------------
// The cycle

Deno.test(
  "the whole CLI cycle on S3: init, backup, list, extract byte for byte, check, delete, prune, compact frees space in the bucket, key export and import",
  {
    ignore,
  },
  async () => {
    const { bucket, admin, drop } = await makeBucket();
    try {
      await withTempDir(async (dir) => {
        const server = requireS3Server();
        const secrets = [server.accessKeyId, server.secretAccessKey];
        const outputs: RunResult[] = [];
        const prefix = "vger/main";
        const repo: S3Repo = {
          bucket,
          prefix,
          config: await writeS3Config(`${dir}/vger.yaml`, bucket, prefix, {
            topLevel: ["retention:", "  keep_last: 1"],
          }),
          env: envCredentials(),
        };
        const run = async (args: readonly string[], expected = 0) => {
          const r = await vger(repo, args);
          outputs.push(r);
          equal(r.code, expected, `vger ${args.join(" ")}: ${r.stderr}`);
          return r;
        };

        // version 1 holds a file larger than a part: its pack goes up in parts
        const src = `${dir}/src`;
        await makeTree(src, 1, PART_SIZE + (3 << 20));
        const v1 = await treeSnapshot(src);

        const init = await run(["init", ...FAST_KDF_ARGS]);
        match(
          init.stdout + init.stderr,
          new RegExp(`Created repository s3://${literal(bucket)}/vger/main`),
        );
        const stored = Object.keys(await objectsUnder(admin, bucket, prefix)).sort();
        for (const key of ["config", "index", "keys/repokey", "manifest"]) {
          ok(stored.includes(`${prefix}/${key}`), `init stored no ${key}: ${stored}`);
        }

        await run(["backup", "--archive", "one", src]);
        const packs = Object.entries(await objectsUnder(admin, bucket, `${prefix}/packs`));
        const big = packs.filter(([, size]) => size > PART_SIZE);
        equal(big.length, 1, `one pack larger than a part: ${JSON.stringify(packs)}`);
        ok(
          await etagParts(admin, bucket, big[0][0]) >= 2,
          "the large pack went up in a multipart upload",
        );
        deepStrictEqual(await openUploads(admin, bucket, prefix), [], "no upload left open");

        // version 2: the big file gone, one file changed, one added
        await Deno.remove(`${src}/big.bin`);
        await Deno.writeTextFile(`${src}/a.txt`, "changed\n".repeat(100));
        await Deno.writeFile(`${src}/sub/new.bin`, pseudoRandomBytes(1 << 20, 9));
        const v2 = await treeSnapshot(src);
        const second = json<{ deduplicated_size: number; original_size: number }>(
          await run(["backup", "--archive", "two", "--json", src]),
        );
        ok(
          second.deduplicated_size < (1 << 20) + (64 << 10),
          `the second backup stored only what changed: ${JSON.stringify(second)}`,
        );

        const [text, listedJson] = await Promise.all([run(["list"]), run(["list", "--json"])]);
        deepStrictEqual(
          text.stdout.split("\n").filter((l) => l !== "").map((l) => l.split(/\s+/)[0]),
          ["one", "two"],
        );
        const listed = json<{ repository: string; archives: { name: string; files: number }[] }>(
          listedJson,
        );
        equal(listed.repository, `s3://${bucket}/${prefix}`);
        deepStrictEqual(listed.archives.map((a) => a.name), ["one", "two"]);
        deepStrictEqual(
          listed.archives.map((a) => a.files),
          [v1, v2].map((s) => Object.keys(s).length),
        );

        // extract reads the large pack back in ranges
        await Promise.all([
          assertRestores(on(repo), "one", src, v1, "extract"),
          assertRestores(on(repo), "two", src, v2, "extract"),
        ]);

        const check = await run(["check", "--verify-data"]);
        match(check.stdout, /Checked 2 archives, .*: 0 errors, 0 warnings/);

        // delete, then prune to keep_last 1: only "three" is left
        await run(["backup", "--archive", "three", src]);
        await run(["delete", "--archive", "two"]);
        deepStrictEqual(await archiveNames(on(repo)), ["one", "three"]);
        await run(["prune"]);
        deepStrictEqual(await archiveNames(on(repo)), ["three"]);

        // the large pack now holds only dead chunks: compact removes it from the bucket
        const before = await bucketUsage(admin, bucket, `${prefix}/`);
        const compact = json<Record<string, unknown>>(
          await run(["compact", "--threshold", "0", "--json"]),
        );
        const after = await bucketUsage(admin, bucket, `${prefix}/`);
        ok(
          before.bytes - after.bytes >= PART_SIZE,
          `compact freed ${before.bytes - after.bytes} bytes in the bucket (${before.bytes} -> ` +
            `${after.bytes}): ${JSON.stringify(compact)}`,
        );
        ok(!(big[0][0] in await objectsUnder(admin, bucket, prefix)), "the large pack is gone");
        await assertRestores(on(repo), "three", src, v2, "after compact");
        await assertCheckClean(on(repo), "after compact");

        // key export; a damaged keys/repokey locks everyone out; key import lets them back in
        const exported = `${dir}/key.export`;
        await run(["key", "export", "--dest", exported]);
        const keyObject = `${prefix}/keys/repokey`;
        deepStrictEqual(
          await Deno.readFile(exported),
          await getObject(admin, bucket, keyObject),
          "the export is the key file",
        );
        const intact = await run(["key", "import", exported, "--json"]);
        equal(json<{ previous: string }>(intact).previous, "identical");
        const damaged = await getObject(admin, bucket, keyObject);
        damaged[20] ^= 0x10;
        await putObject(admin, bucket, keyObject, damaged);
        assertOneLine(
          await run(["list"], 1),
          1,
          /Key file keys\/repokey is corrupt: checksum mismatch/,
          secrets,
          "list with a damaged key file",
        );
        const repaired = await run(["key", "import", exported, "--json"]);
        equal(json<{ previous: string }>(repaired).previous, "damaged");
        deepStrictEqual(await getObject(admin, bucket, keyObject), await Deno.readFile(exported));
        await assertRestores(on(repo), "three", src, v2, "after key import");

        // and with the key object gone altogether
        await admin.send(new DeleteObjectCommand({ Bucket: bucket, Key: keyObject }));
        assertOneLine(
          await run(["list"], 1),
          1,
          /keys\/repokey not found/,
          secrets,
          "list without a key file",
        );
        const restored = await run(["key", "import", exported, "--json"]);
        equal(json<{ previous: string }>(restored).previous, "missing");
        deepStrictEqual(await archiveNames(on(repo)), ["three"]);
        await assertCheckClean(on(repo), "after the key import");

        for (const r of outputs) assertNoSecret(r, secrets, "the cycle");
      });
    } finally {
      await drop();
    }
  },
);

// ---------------------------------------------------------------------------------------------
// SIGKILL during a backup

/** Where a backup to S3 is killed (tests/kill_switch.ts's variables) and what it leaves. */
interface KillPoint {
  label: string;
  env: Record<string, string>;
  /** Whether the archive being written is committed (listed) after the kill. */
  committed: boolean;
  /** Whether a multipart upload is left open (compact aborts it). */
  openUpload?: boolean;
}

const KILL_POINTS: readonly KillPoint[] = [
  {
    label: "right after its lock was created",
    env: { VGER_TEST_KILL_AFTER_KEY: "locks/" },
    committed: false,
  },
  {
    // the first part is up, the second is being read: the upload is open, no object yet
    label: "half way through the multipart upload of a pack",
    env: { VGER_TEST_KILL_IN_BODY_AFTER: String(PART_SIZE) },
    committed: false,
    openUpload: true,
  },
  {
    label: "after the archive object, before the manifest",
    env: { VGER_TEST_KILL_AFTER_KEY: "archives/" },
    committed: false,
  },
  {
    // its locks (the commit lock too) stay behind
    label: "right after the manifest (the commit point)",
    env: { VGER_TEST_KILL_AFTER_KEY: "manifest" },
    committed: true,
  },
];

Deno.test(
  "a backup to S3 killed (SIGKILL) at a write step or half way through a multipart upload leaves every committed archive restorable, and the next backup, compact and check work",
  {
    ignore,
  },
  async () => {
    const { bucket, admin, drop } = await makeBucket();
    try {
      await withTempDir(async (dir) => {
        const src1 = `${dir}/src1`;
        await makeTree(src1, 1);
        const v1 = await treeSnapshot(src1);
        // version 2 adds a file larger than a part, so its pack goes up in parts
        const src2 = `${dir}/src2`;
        await makeTree(src2, 2, PART_SIZE + (2 << 20));
        const v2 = await treeSnapshot(src2);

        // the base repository: one archive of version 1; its cache directory holds the verdict
        // of the conditional-create probe, so that each copy's first write is its lock
        const base: S3Repo = {
          bucket,
          prefix: "base",
          config: await writeS3Config(`${dir}/base.yaml`, bucket, "base", STAGED_PACKS),
          env: { ...envCredentials(), VGER_CACHE_DIR: `${dir}/cache-base` },
        };
        await vgerOk(base, ["init", ...FAST_KDF_ARGS]);
        await vgerOk(base, ["backup", "--archive", "a1", src1]);

        const killAt = async (point: KillPoint, n: number): Promise<void> => {
          const what = `backup killed ${point.label}`;
          const prefix = `kill${n}`;
          await copyPrefix(admin, bucket, "base", prefix);
          const cache = `${dir}/cache-${n}`;
          const cp = await new Deno.Command("cp", { args: ["-a", `${dir}/cache-base`, cache] })
            .output();
          ok(cp.success, new TextDecoder().decode(cp.stderr));
          const repo: S3Repo = {
            bucket,
            prefix,
            config: await writeS3Config(`${dir}/${prefix}.yaml`, bucket, prefix, STAGED_PACKS),
            env: { ...envCredentials(), VGER_CACHE_DIR: cache },
          };
          const killed = await vger(repo, ["backup", "--archive", "a2", src2], {
            program: KILL_SWITCH_CLI,
            env: point.env,
          });
          equal(killed.code, KILLED, `${what}: it was not killed: ${killed.stderr}`);

          // the probe's verdict was remembered: the first write is the repository lock
          const locks = Object.keys(await objectsUnder(admin, bucket, `${prefix}/locks`));
          ok(
            locks.length >= 1 && locks.every((k) => !k.includes("/locks/probe-")),
            `${what}: locks left ${locks}`,
          );
          const uploads = await openUploads(admin, bucket, prefix);
          if (point.openUpload) {
            equal(uploads.length, 1, `${what}: open uploads ${uploads}`);
            const objects = await objectsUnder(admin, bucket, prefix);
            ok(!(uploads[0] in objects), `${what}: ${uploads[0]} is stored under its final key`);
            ok(
              Object.values(objects).every((size) => size <= PART_SIZE),
              `${what}: a part of the upload shows as an object: ${JSON.stringify(objects)}`,
            );
          } else {
            deepStrictEqual(uploads, [], what);
          }

          const report = await assertCheckClean(on(repo), `${what}, right after the kill`);
          for (const p of report.problems) {
            ok(
              ["unreferenced-pack", "unreferenced-archive", "stale-lock"].includes(p.kind),
              `${what}: unexpected warning ${p.kind}: ${p.message}`,
            );
          }
          deepStrictEqual(
            await archiveNames(on(repo)),
            point.committed ? ["a1", "a2"] : ["a1"],
            `${what}: the archives listed`,
          );
          await assertRestores(on(repo), "a1", src1, v1, what);
          if (point.committed) await assertRestores(on(repo), "a2", src2, v2, what);

          // the dead process's locks block no one; compact aborts the open upload
          await vgerOk(repo, ["backup", "--archive", "next", src2]);
          await vgerOk(repo, ["compact", "--threshold", "0"]);
          deepStrictEqual(await openUploads(admin, bucket, prefix), [], `${what}: after compact`);
          await assertRestores(on(repo), "next", src2, v2, `${what}, the next backup`);
          const after = await assertCheckClean(
            on(repo),
            `${what}, after the next backup and compact`,
          );
          for (const p of after.problems) {
            // compact leaves other processes' locks alone, stale or not: break-lock removes them
            equal(p.kind, "stale-lock", `${what}: after compact: ${p.message}`);
          }
        };
        await Promise.all(KILL_POINTS.map((p, k) => killAt(p, k)));
      });
    } finally {
      await drop();
    }
  },
);

// ---------------------------------------------------------------------------------------------
// Bad input: one line, the right exit code, no stack trace, no secret

/** A runnable config for an S3 entry with explicit endpoint and credentials. */
interface BadCase {
  what: string;
  config: string;
  env: Record<string, string | undefined>;
  line: RegExp;
}

/** Runs each command in each case (a case's commands at once) and asserts one line, exit 1. */
async function assertBadCases(
  cases: readonly BadCase[],
  commands: readonly (readonly string[])[],
  secrets: readonly string[],
): Promise<void> {
  for (const c of cases) {
    const runs = await Promise.all(
      commands.map((args) =>
        runVger(["--config", c.config, ...args], { env: c.env, timeoutMs: 60_000 })
      ),
    );
    runs.forEach((r, i) => assertOneLine(r, 1, c.line, secrets, `${c.what}: ${commands[i][0]}`));
  }
}

Deno.test(
  "wrong S3 credentials (a wrong secret, an unknown access key id; in the configuration or the environment): one line naming the cause, exit 1, no credential shown, nothing written",
  {
    ignore,
  },
  async () => {
    const { bucket, admin, drop } = await makeBucket();
    try {
      await withTempDir(async (dir) => {
        const server = requireS3Server();
        const repo: S3Repo = {
          bucket,
          prefix: "repo",
          config: await writeS3Config(`${dir}/good.yaml`, bucket, "repo"),
          env: envCredentials(),
        };
        await vgerOk(repo, ["init", ...FAST_KDF_ARGS]);
        const before = await objectsUnder(admin, bucket, "repo");
        await Deno.mkdir(`${dir}/src`);
        await Deno.writeTextFile(`${dir}/src/a.txt`, "a");

        const wrongSecret = `wrong${crypto.randomUUID().replaceAll("-", "")}`;
        const unknownId = `VGERUNKNOWN${crypto.randomUUID().slice(0, 8).toUpperCase()}`;
        const at = literal(`s3://${bucket}/repo at ${server.endpoint}`);
        const signature = new RegExp(
          `^vger: Cannot \\w+ .*${at}: ${literal(server.endpoint)} rejected the signature ` +
            literal("(check the secret access key)") + "$",
        );
        const unknown = new RegExp(
          `^vger: Cannot \\w+ .*${at}: ${literal(server.endpoint)} does not know the access key ` +
            literal("id (check the credentials)") + "$",
        );
        const cases: BadCase[] = [
          {
            what: "a wrong s3_secret_access_key",
            config: await writeS3Config(`${dir}/secret.yaml`, bucket, "repo", {
              accessKeyId: server.accessKeyId,
              secretAccessKey: wrongSecret,
            }),
            env: NO_ENV_CREDENTIALS,
            line: signature,
          },
          {
            what: "an unknown s3_access_key_id",
            config: await writeS3Config(`${dir}/id.yaml`, bucket, "repo", {
              accessKeyId: unknownId,
              secretAccessKey: server.secretAccessKey,
            }),
            env: NO_ENV_CREDENTIALS,
            line: unknown,
          },
          {
            what: "a wrong AWS_SECRET_ACCESS_KEY",
            config: repo.config,
            env: { ...envCredentials(), AWS_SECRET_ACCESS_KEY: wrongSecret },
            line: signature,
          },
          {
            what: "an unknown AWS_ACCESS_KEY_ID",
            config: repo.config,
            env: { ...envCredentials(), AWS_ACCESS_KEY_ID: unknownId },
            line: unknown,
          },
        ];
        await assertBadCases(
          cases,
          [["init", ...FAST_KDF_ARGS], ["list"], ["backup", "--archive", "x", `${dir}/src`], [
            "check",
          ]],
          [server.accessKeyId, server.secretAccessKey, wrongSecret, unknownId],
        );
        deepStrictEqual(await objectsUnder(admin, bucket, "repo"), before, "nothing was written");
      });
    } finally {
      await drop();
    }
  },
);

Deno.test(
  "a missing bucket: one line naming the bucket and the endpoint, exit 1, and init does not create it",
  {
    ignore,
  },
  async () => {
    // makeBucket's client, for a bucket that is then left missing
    const { admin, drop } = await makeBucket();
    try {
      await withTempDir(async (dir) => {
        const server = requireS3Server();
        const missing = `vger-missing-${crypto.randomUUID().slice(0, 13)}`;
        await Deno.mkdir(`${dir}/src`);
        const line = new RegExp(
          `^vger: Cannot \\w+ .*${literal(`s3://${missing}/repo at ${server.endpoint}`)}: ` +
            literal(`bucket "${missing}" does not exist on ${server.endpoint}`) + "$",
        );
        await assertBadCases(
          [{
            what: "a missing bucket",
            config: await writeS3Config(`${dir}/vger.yaml`, missing, "repo"),
            env: envCredentials(),
            line,
          }],
          [["init", ...FAST_KDF_ARGS], ["list"], ["backup", "--archive", "x", `${dir}/src`], [
            "check",
          ]],
          [server.accessKeyId, server.secretAccessKey],
        );
        let status = 0;
        try {
          await admin.send(new HeadBucketCommand({ Bucket: missing }));
          status = 200;
        } catch (err) {
          status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode ??
            -1;
        }
        equal(status, 404, `bucket ${missing} exists after the failed commands`);
      });
    } finally {
      await drop();
    }
  },
);

Deno.test("an unreachable S3 endpoint: one line naming it and the cause, exit 1, without retrying for minutes", async () => {
  await withTempDir(async (dir) => {
    // no server needed: nothing listens on port 1
    const endpoint = "http://127.0.0.1:1";
    const config = `${dir}/vger.yaml`;
    const secret = "unreachablesecret0123456789";
    await Deno.writeTextFile(
      config,
      [
        "repositories:",
        "  - path: s3://some-bucket/repo",
        "    backend: s3",
        `    s3_endpoint: ${endpoint}`,
        "    s3_region: us-east-1",
        "    s3_access_key_id: VGERUNREACHABLEID",
        `    s3_secret_access_key: ${secret}`,
        "",
      ].join("\n"),
    );
    await Deno.mkdir(`${dir}/src`);
    const started = performance.now();
    await assertBadCases(
      [{
        what: "an unreachable endpoint",
        config,
        env: NO_ENV_CREDENTIALS,
        line: new RegExp(
          `^vger: Cannot \\w+ .*${literal(`s3://some-bucket/repo at ${endpoint}`)}: ` +
            literal(`cannot reach ${endpoint} (connection refused)`) + "$",
        ),
      }],
      [["init", ...FAST_KDF_ARGS], ["list"], ["backup", "--archive", "x", `${dir}/src`]],
      ["VGERUNREACHABLEID", secret],
    );
    const seconds = (performance.now() - started) / 1000;
    ok(seconds < 30, `a refused connection took ${seconds} s to report`);
  });
});

Deno.test(
  "a bucket prefix that holds no vger repository (other objects, nothing, a foreign config): one line, exit 1, nothing written",
  {
    ignore,
  },
  async () => {
    const { bucket, admin, drop } = await makeBucket();
    try {
      await withTempDir(async (dir) => {
        const server = requireS3Server();
        const text = new TextEncoder();
        await putObject(admin, bucket, "photos/2024/a.jpg", text.encode("jpeg"));
        await putObject(admin, bucket, "photos/notes.txt", text.encode("notes"));
        await putObject(admin, bucket, "foreign/config", text.encode("[core]\nbare = true\n"));
        const before = await objectsUnder(admin, bucket, "");
        await Deno.mkdir(`${dir}/src`);
        await Deno.writeTextFile(`${dir}/src/a.txt`, "a");
        const notRepo = (prefix: string) =>
          new RegExp(
            `^vger: .*${literal(`s3://${bucket}/${prefix}`)}.*: config not found ` +
              literal("(is it a vger repository?") + ".*$",
          );
        const cases: BadCase[] = [];
        for (const prefix of ["photos", "nothing"]) {
          cases.push({
            what: `prefix ${prefix}`,
            config: await writeS3Config(`${dir}/${prefix}.yaml`, bucket, prefix),
            env: envCredentials(),
            line: notRepo(prefix),
          });
        }
        cases.push({
          what: "a config object that is not vger's",
          config: await writeS3Config(`${dir}/foreign.yaml`, bucket, "foreign"),
          env: envCredentials(),
          line: new RegExp(
            `^vger: Repository config is corrupt: .*${literal(`s3://${bucket}/foreign`)}`,
          ),
        });
        await assertBadCases(
          cases,
          [
            ["list"],
            ["backup", "--archive", "x", `${dir}/src`],
            ["check"],
            ["extract", "--archive", "x", "--dest", `${dir}/out`],
            ["compact"],
            ["key", "export", "--dest", `${dir}/key`],
          ],
          [server.accessKeyId, server.secretAccessKey],
        );
        deepStrictEqual(await objectsUnder(admin, bucket, ""), before, "nothing was written");
      });
    } finally {
      await drop();
    }
  },
);

/** An S3 error document as AWS sends it. */
function errorXml(code: string, extra: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>m</Message>` +
    `${extra}<RequestId>R</RequestId><HostId>H</HostId></Error>`;
}

Deno.test("a wrong region (AWS's 301 PermanentRedirect and 400 AuthorizationHeaderMalformed, replayed): one line naming the bucket's region, exit 1, no secret", async () => {
  // Ceph's gateway accepts requests signed for any region, so the test server cannot refuse
  // one: a loopback server answers every request as AWS does for a bucket in eu-west-1 asked
  // with us-east-1 (HEAD answers have no body, only the status and x-amz-bucket-region)
  const headers = { "x-amz-bucket-region": "eu-west-1", "content-type": "application/xml" };
  const answers: Record<string, (req: Request) => Response> = {
    "301 PermanentRedirect": (req) =>
      new Response(
        req.method === "HEAD" ? null : errorXml("PermanentRedirect", "<Bucket>backups</Bucket>"),
        { status: 301, headers },
      ),
    "400 AuthorizationHeaderMalformed": (req) =>
      new Response(
        req.method === "HEAD"
          ? null
          : errorXml("AuthorizationHeaderMalformed", "<Region>eu-west-1</Region>"),
        { status: 400, headers },
      ),
  };
  await withTempDir(async (dir) => {
    await Deno.mkdir(`${dir}/src`);
    const secret = "regionsecret0123456789";
    for (const [what, answer] of Object.entries(answers)) {
      const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, answer);
      try {
        const endpoint = `http://127.0.0.1:${server.addr.port}`;
        const config = `${dir}/vger.yaml`;
        await Deno.writeTextFile(
          config,
          [
            "repositories:",
            "  - path: s3://backups/host1",
            "    backend: s3",
            `    s3_endpoint: ${endpoint}`,
            "    s3_region: us-east-1",
            "    s3_access_key_id: VGERREGIONID",
            `    s3_secret_access_key: ${secret}`,
            "",
          ].join("\n"),
        );
        await assertBadCases(
          [{
            what,
            config,
            env: NO_ENV_CREDENTIALS,
            line: new RegExp(
              `^vger: Cannot \\w+ .*${literal(`s3://backups/host1 at ${endpoint}`)}: ` +
                literal(
                  'bucket "backups" is not in region "us-east-1": it is in "eu-west-1" ' +
                    "(set s3_region)",
                ) + "$",
            ),
          }],
          [["init", ...FAST_KDF_ARGS], ["list"], ["backup", "--archive", "x", `${dir}/src`], [
            "check",
          ]],
          ["VGERREGIONID", secret],
        );
      } finally {
        await server.shutdown();
      }
    }
  });
});
