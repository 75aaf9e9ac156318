/**
 * `deno task bench:s3`: vger on the local backend, vger on S3 and restic on S3, timed in one run
 * on one corpus. Each tool gets a fresh repository (a bucket of its own on S3, removed when its
 * steps are done) and runs: init, backup (first), backup (unchanged), restore (checked with
 * `diff -r` against the corpus, untimed) and a check that reads and verifies all data
 * (`check --verify-data`, `restic check --read-data`). Every step runs under /usr/bin/time (wall
 * time, peak RSS); MB/s is corpus bytes per second for backups and restore, stored bytes per
 * second for the check. The S3 server is Ceph's RADOS Gateway from tests/s3_server.sh, started
 * here and stopped at the end unless `VGER_TEST_S3_ENDPOINT` names a running one.
 *
 * With `BENCH_CONNECTIONS` (e.g. "2 4 8 16") it measures vger on S3 alone instead, once per
 * value of the `connections` key: backup, restore and check, to choose the default.
 *
 * Environment (all optional):
 * - BENCH_CORPUS: the directory backed up (default ~/vger-bench-data/A, made by
 *   ../shared/bench/make-corpus.sh; a smaller one, e.g. its `small/`, for quick iterations)
 * - BENCH_TOOLS: which of vger-local, vger-s3 and restic-s3 to run, in order (default all three)
 * - BENCH_CONNECTIONS: the sweep above; BENCH_REPS: how many times the sweep runs (default 1)
 * - BENCH_WORK: scratch for local repositories, caches and restores (default
 *   /dev/shm/vger-s3-bench, else the temp dir); BENCH_RESULTS: where s3_peers.md and .csv go
 *   (default bench/results)
 * - BENCH_S3_PORT: the port of the server started here (default 7480)
 * - BENCH_VERIFY=0: skip the `diff -r` of each restore
 * - VGER_CMD: how to run vger (default `deno run -A cli.ts` of this checkout)
 *
 * @module
 */

import {
  AbortMultipartUploadCommand,
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  S3Client,
} from "@aws-sdk/client-s3";

const root = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const env = (name: string): string | undefined => Deno.env.get(name) || undefined;
const home = env("HOME") ?? "/root";
const corpus = await Deno.realPath(env("BENCH_CORPUS") ?? `${home}/vger-bench-data/A`);
const tools = (env("BENCH_TOOLS") ?? "vger-local vger-s3 restic-s3").split(/[\s,]+/);
const sweep = env("BENCH_CONNECTIONS")?.split(/[\s,]+/).map(Number);
const reps = Number(env("BENCH_REPS") ?? 1);
const work = env("BENCH_WORK") ??
  (await isDir("/dev/shm") ? "/dev/shm/vger-s3-bench" : `${env("TMPDIR") ?? "/tmp"}/vger-s3-bench`);
const results = env("BENCH_RESULTS") ?? `${root}/bench/results`;
const verify = env("BENCH_VERIFY") !== "0";
const vgerCmd = env("VGER_CMD")?.split(" ") ?? [Deno.execPath(), "run", "-A", `${root}/cli.ts`];
const passphrase = "bench-passphrase-not-a-secret";

for (const t of tools) {
  if (!["vger-local", "vger-s3", "restic-s3"].includes(t)) {
    throw new Error(
      `Unknown tool "${t}" in BENCH_TOOLS: the tools are vger-local, vger-s3, restic-s3`,
    );
  }
}
if (sweep?.some((n) => !Number.isInteger(n) || n < 1)) {
  throw new Error(
    `BENCH_CONNECTIONS must list positive integers, got "${env("BENCH_CONNECTIONS")}"`,
  );
}

async function isDir(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch {
    return false;
  }
}

function log(message: string): void {
  console.error(`[${new Date().toISOString().slice(11, 19)}] ${message}`);
}

/** Bytes and files of regular files under `dir`. */
async function treeBytes(dir: string): Promise<{ bytes: number; files: number }> {
  let bytes = 0;
  let files = 0;
  for await (const e of Deno.readDir(dir)) {
    const path = `${dir}/${e.name}`;
    if (e.isDirectory) {
      const sub = await treeBytes(path);
      bytes += sub.bytes;
      files += sub.files;
    } else if (e.isFile) {
      bytes += (await Deno.lstat(path)).size;
      files++;
    }
  }
  return { bytes, files };
}

/** Runs a command to completion; throws with its output unless it exits 0. */
async function sh(cmd: string[], options: { env?: Record<string, string> } = {}): Promise<string> {
  const out = await new Deno.Command(cmd[0], { args: cmd.slice(1), env: options.env }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  if (!out.success) throw new Error(`${cmd.join(" ")} failed (${out.code}):\n${text}`);
  return text;
}

/** Reads the whole corpus once, so every tool starts with a warm page cache. */
async function warmCache(): Promise<void> {
  await sh(["bash", "-c", `tar -C "$1" -cf - . | cat > /dev/null`, "_", corpus]);
}

// ---- the S3 server and buckets ------------------------------------------------------------

interface Server {
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** Stops the server if this run started it. */
  stop(): Promise<void>;
  /**
   * Frees what removed buckets held, if this run started the server: Ceph's gateway deletes the
   * data of large objects in its garbage collection, two hours later by default, and its OSD
   * keeps data in memory (4 GiB at most), so a run that stores several repositories fills it.
   */
  collectGarbage(): Promise<void>;
}

async function startServer(): Promise<Server> {
  const given = env("VGER_TEST_S3_ENDPOINT");
  if (given) {
    return {
      endpoint: given,
      region: env("VGER_TEST_S3_REGION") ?? "us-east-1",
      accessKeyId: env("VGER_TEST_S3_ACCESS_KEY_ID") ?? "",
      secretAccessKey: env("VGER_TEST_S3_SECRET_ACCESS_KEY") ?? "",
      stop: () => Promise.resolve(),
      collectGarbage: () => Promise.resolve(),
    };
  }
  const dir = `${work}/s3-server`;
  const script = `${root}/tests/s3_server.sh`;
  const port = env("BENCH_S3_PORT") ?? "7480";
  log(`starting the S3 server on port ${port} (${dir})`);
  await sh(["bash", script, "start", dir, port]);
  const vars = Object.fromEntries(
    (await sh(["bash", script, "env", dir])).replace(/^export /, "").trim().split(/\s+/)
      .map((kv) => kv.split("=", 2)),
  );
  return {
    endpoint: vars.VGER_TEST_S3_ENDPOINT,
    region: vars.VGER_TEST_S3_REGION,
    accessKeyId: vars.VGER_TEST_S3_ACCESS_KEY_ID,
    secretAccessKey: vars.VGER_TEST_S3_SECRET_ACCESS_KEY,
    stop: async () => {
      await sh(["bash", script, "stop", dir]);
      log("S3 server stopped");
    },
    collectGarbage: async () => {
      await sh(["radosgw-admin", "gc", "process", "--include-all"], {
        env: { CEPH_CONF: `${dir}/ceph.conf` },
      });
    },
  };
}

function client(s: Server): S3Client {
  return new S3Client({
    endpoint: s.endpoint,
    region: s.region,
    forcePathStyle: true,
    credentials: { accessKeyId: s.accessKeyId, secretAccessKey: s.secretAccessKey },
  });
}

async function createBucket(s3: S3Client, bucket: string): Promise<void> {
  await s3.send(new CreateBucketCommand({ Bucket: bucket }));
}

async function bucketBytes(s3: S3Client, bucket: string): Promise<number> {
  let bytes = 0;
  let token: string | undefined;
  do {
    const page = await s3.send(
      new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }),
    );
    for (const o of page.Contents ?? []) bytes += o.Size ?? 0;
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return bytes;
}

/** Removes a bucket with everything in it (the server keeps its data in memory). */
async function dropBucket(s3: S3Client, bucket: string): Promise<void> {
  const uploads = await s3.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
  for (const u of uploads.Uploads ?? []) {
    await s3.send(
      new AbortMultipartUploadCommand({ Bucket: bucket, Key: u.Key, UploadId: u.UploadId }),
    );
  }
  for (;;) {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket }));
    const keys = (page.Contents ?? []).map((o) => o.Key!);
    if (keys.length === 0) break;
    for (let i = 0; i < keys.length; i += 16) {
      await Promise.all(
        keys.slice(i, i + 16).map((Key) =>
          s3.send(new DeleteObjectCommand({ Bucket: bucket, Key }))
        ),
      );
    }
  }
  await s3.send(new DeleteBucketCommand({ Bucket: bucket }));
}

// ---- tools ----------------------------------------------------------------------------------

/** One tool's repository and how to run each step on it. */
interface Tool {
  name: string;
  env: Record<string, string>;
  init: string[];
  backup(archive: string): string[];
  restore(archive: string, dest: string): string[];
  check: string[];
  /** Bytes stored in the repository. */
  stored(): Promise<number>;
  /** Removes the repository. */
  drop(): Promise<void>;
}

function vgerTool(
  name: string,
  dir: string,
  repo: { s3?: { server: Server; s3: S3Client; bucket: string }; connections?: number },
): Tool {
  const config = `${dir}/vger.yaml`;
  const s3 = repo.s3;
  const entry = s3
    ? [
      `  - path: "s3://${s3.bucket}/repo"`,
      `    backend: "s3"`,
      `    s3_endpoint: "${s3.server.endpoint}"`,
      `    s3_region: "${s3.server.region}"`,
    ]
    : [`  - path: "${dir}/repo"`];
  if (repo.connections !== undefined) entry.push(`    connections: ${repo.connections}`);
  Deno.writeTextFileSync(
    config,
    [
      "repositories:",
      ...entry,
      `    label: "bench"`,
      "encryption:",
      `  mode: "aes256gcm"`,
      "source_directories:",
      `  - "${corpus}"`,
      "compression:",
      `  algorithm: "lz4"`,
      "",
    ].join("\n"),
  );
  const vger = (...args: string[]) => [...vgerCmd, "--config", config, ...args];
  return {
    name,
    env: {
      VGER_PASSPHRASE: passphrase,
      XDG_CACHE_HOME: `${dir}/cache`,
      NO_COLOR: "1",
      ...(s3
        ? {
          AWS_ACCESS_KEY_ID: s3.server.accessKeyId,
          AWS_SECRET_ACCESS_KEY: s3.server.secretAccessKey,
        }
        : {}),
    },
    init: vger("init"),
    backup: (archive) => vger("backup", "--archive", archive),
    restore: (archive, dest) => vger("extract", "--archive", archive, "--dest", dest),
    check: vger("check", "--verify-data"),
    stored: async () =>
      s3 ? await bucketBytes(s3.s3, s3.bucket) : (await treeBytes(`${dir}/repo`)).bytes,
    drop: async () => {
      if (s3) await dropBucket(s3.s3, s3.bucket);
      else await Deno.remove(`${dir}/repo`, { recursive: true });
    },
  };
}

function resticTool(dir: string, server: Server, s3: S3Client, bucket: string): Tool {
  const host = server.endpoint.replace(/\/$/, "");
  return {
    name: "restic-s3",
    env: {
      RESTIC_REPOSITORY: `s3:${host}/${bucket}`,
      RESTIC_PASSWORD: passphrase,
      RESTIC_CACHE_DIR: `${dir}/cache`,
      AWS_ACCESS_KEY_ID: server.accessKeyId,
      AWS_SECRET_ACCESS_KEY: server.secretAccessKey,
      AWS_DEFAULT_REGION: server.region,
    },
    init: ["restic", "init", "--repository-version", "2"],
    backup: (archive) => [
      "restic",
      "backup",
      "--compression",
      "auto",
      "--host",
      "bench",
      "--tag",
      archive,
      corpus,
    ],
    restore: (archive, dest) => [
      "restic",
      "restore",
      "latest",
      "--tag",
      archive,
      "--target",
      dest,
    ],
    check: ["restic", "check", "--read-data"],
    stored: () => bucketBytes(s3, bucket),
    drop: () => dropBucket(s3, bucket),
  };
}

// ---- measuring ------------------------------------------------------------------------------

interface Row {
  tool: string;
  step: string;
  seconds: number;
  cpu: number;
  rssMiB: number;
  bytes: number;
}

/** Runs one timed step under /usr/bin/time; its output goes to `logFile`. */
async function measure(
  tool: Tool,
  step: string,
  cmd: string[],
  bytes: number,
  logFile: string,
): Promise<Row> {
  await sh(["sync"]);
  const timeFile = await Deno.makeTempFile();
  const out = await new Deno.Command("/usr/bin/time", {
    args: ["-f", "%e %U %S %M", "-o", timeFile, ...cmd],
    env: tool.env,
    cwd: work,
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  await Deno.writeTextFile(logFile, `=== ${tool.name} ${step}: ${cmd.join(" ")}\n${text}\n`, {
    append: true,
  });
  const [wall, user, sys, rssKb] = (await Deno.readTextFile(timeFile)).trim().split("\n").at(-1)!
    .split(" ").map(Number);
  await Deno.remove(timeFile);
  // vger exits 3 when it skipped files with warnings; the restore's diff catches a real loss
  if (!out.success && !(out.code === 3 && tool.name.startsWith("vger"))) {
    throw new Error(`${tool.name} ${step} failed (exit ${out.code}); see ${logFile}:\n${text}`);
  }
  const row = {
    tool: tool.name,
    step,
    seconds: wall,
    cpu: user + sys,
    rssMiB: rssKb / 1024,
    bytes,
  };
  log(
    `  ${tool.name} ${step}: ${wall.toFixed(2)} s, ${(bytes / 1e6 / wall).toFixed(0)} MB/s, ` +
      `cpu ${row.cpu.toFixed(1)} s, peak RSS ${row.rssMiB.toFixed(0)} MiB`,
  );
  return row;
}

/** Where a restore put the corpus: both tools restore absolute paths under the target. */
async function restoredRoot(dest: string): Promise<string> {
  const root = `${dest}${corpus}`;
  if (!(await isDir(root))) throw new Error(`The restore left no ${root}`);
  return root;
}

interface Steps {
  backup2?: boolean;
  check?: boolean;
}

/** Init, backups, restore (+ diff) and check of one tool; the repository is removed after. */
async function runTool(
  server: Server | undefined,
  tool: Tool,
  dir: string,
  corpusBytes: number,
  logFile: string,
  steps: Steps = { backup2: true, check: true },
): Promise<Row[]> {
  log(`== ${tool.name}`);
  const rows: Row[] = [];
  await warmCache();
  try {
    await measure(tool, "init", tool.init, 0, logFile);
    rows.push(await measure(tool, "backup1", tool.backup("b1"), corpusBytes, logFile));
    if (steps.backup2) {
      rows.push(await measure(tool, "backup2", tool.backup("b2"), corpusBytes, logFile));
    }
    const archive = steps.backup2 ? "b2" : "b1";
    const dest = `${dir}/restore`;
    await Deno.mkdir(dest, { recursive: true });
    rows.push(await measure(tool, "restore", tool.restore(archive, dest), corpusBytes, logFile));
    if (verify) {
      const restored = await restoredRoot(dest);
      const diff = await new Deno.Command("diff", {
        args: ["-r", "--no-dereference", corpus, restored],
      }).output();
      if (!diff.success) {
        throw new Error(
          `${tool.name}: the restored tree differs from the corpus:\n` +
            new TextDecoder().decode(diff.stdout).slice(0, 2000),
        );
      }
      log(`  ${tool.name} restore: identical to the corpus (diff -r)`);
    }
    await Deno.remove(dest, { recursive: true });
    if (steps.check) {
      const stored = await tool.stored();
      rows.push(await measure(tool, "check", tool.check, stored, logFile));
    }
  } finally {
    await tool.drop().catch((err) => log(`  cannot remove ${tool.name}'s repository: ${err}`));
    await server?.collectGarbage();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
  return rows;
}

// ---- the report -----------------------------------------------------------------------------

const STEPS = ["backup1", "backup2", "restore", "check"];
const STEP_NAMES: Record<string, string> = {
  backup1: "backup (first)",
  backup2: "backup (unchanged)",
  restore: "restore",
  check: "check --verify-data",
};

function cell(r: Row | undefined): string {
  return r ? `${r.seconds.toFixed(2)} (${(r.bytes / 1e6 / r.seconds).toFixed(0)})` : "";
}

function report(rows: Row[], heading: string, names: string[]): string {
  const find = (tool: string, step: string) => rows.find((r) => r.tool === tool && r.step === step);
  const lines = [heading, ""];
  lines.push(
    `| tool | ${STEPS.map((s) => `${STEP_NAMES[s]} s (MB/s)`).join(" | ")} | peak RSS MiB ` +
      `(${
        STEPS.map((s) => s.replace("backup", "b").replace("restore", "r").replace("check", "c"))
          .join("/")
      }) |`,
  );
  lines.push(`| --- | ${STEPS.map(() => "---:").join(" | ")} | ---: |`);
  for (const t of names) {
    const cells = STEPS.map((s) => cell(find(t, s)));
    const rss = STEPS.map((s) => find(t, s)?.rssMiB.toFixed(0) ?? "-").join(" / ");
    lines.push(`| ${t} | ${cells.join(" | ")} | ${rss} |`);
  }
  if (names.includes("restic-s3")) {
    const vgers = names.filter((t) => t.startsWith("vger"));
    lines.push("", `| step | ${vgers.map((t) => `${t} / restic-s3`).join(" | ")} |`);
    lines.push(`| --- | ${vgers.map(() => "---:").join(" | ")} |`);
    for (const s of STEPS) {
      const peer = find("restic-s3", s);
      const ratios = vgers.map((t) => {
        const v = find(t, s);
        return v && peer ? (v.seconds / peer.seconds).toFixed(2) : "";
      });
      lines.push(`| ${STEP_NAMES[s]} | ${ratios.join(" | ")} |`);
    }
  }
  return lines.join("\n");
}

function sweepReport(rows: Row[]): string {
  const steps = ["backup1", "restore", "check"];
  const lines = [
    `| connections | ${
      steps.map((s) => `${STEP_NAMES[s]} s (MB/s)`).join(" | ")
    } | peak RSS MiB (b1/r/c) |`,
    `| ---: | ${steps.map(() => "---:").join(" | ")} | ---: |`,
  ];
  const names = [...new Set(rows.map((r) => r.tool))];
  for (const t of names) {
    const of = rows.filter((r) => r.tool === t);
    const cells = steps.map((s) => {
      const runs = of.filter((r) => r.step === s).map((r) => r.seconds);
      if (runs.length === 0) return "";
      const best = Math.min(...runs);
      const bytes = of.find((r) => r.step === s)!.bytes;
      const all = runs.length > 1 ? ` [${runs.map((x) => x.toFixed(1)).join(", ")}]` : "";
      return `${best.toFixed(2)} (${(bytes / 1e6 / best).toFixed(0)})${all}`;
    });
    const rss = steps.map((s) =>
      Math.max(...of.filter((r) => r.step === s).map((r) => r.rssMiB)).toFixed(0)
    ).join(" / ");
    lines.push(`| ${t.replace("vger-s3 c", "")} | ${cells.join(" | ")} | ${rss} |`);
  }
  return lines.join("\n");
}

// ---- main -----------------------------------------------------------------------------------

await Deno.mkdir(work, { recursive: true });
await Deno.mkdir(results, { recursive: true });
const logFile = `${results}/s3_peers.log`;
await Deno.writeTextFile(logFile, "");
const { bytes: corpusBytes, files: corpusFiles } = await treeBytes(corpus);
const needS3 = sweep !== undefined || tools.some((t) => t.endsWith("-s3"));
const server = needS3 ? await startServer() : undefined;
const s3 = server ? client(server) : undefined;
const started = new Date();
const rows: Row[] = [];
let stopping = false;
const onSignal = () => {
  if (stopping) return;
  stopping = true;
  server?.stop().finally(() => Deno.exit(130));
};
Deno.addSignalListener("SIGINT", onSignal);
Deno.addSignalListener("SIGTERM", onSignal);
try {
  let n = 0;
  const bucket = () => `vger-bench-${Date.now().toString(36)}-${n++}`;
  if (sweep) {
    for (let rep = 0; rep < reps; rep++) {
      for (const c of rep % 2 === 0 ? sweep : [...sweep].reverse()) {
        const b = bucket();
        await createBucket(s3!, b);
        const dir = `${work}/vger-s3-c${c}`;
        await Deno.mkdir(dir, { recursive: true });
        const tool = vgerTool(`vger-s3 c${c}`, dir, {
          s3: { server: server!, s3: s3!, bucket: b },
          connections: c,
        });
        rows.push(...await runTool(server, tool, dir, corpusBytes, logFile, { check: true }));
      }
    }
  } else {
    for (const t of tools) {
      const dir = `${work}/${t}`;
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      await Deno.mkdir(dir, { recursive: true });
      let tool: Tool;
      if (t === "vger-local") tool = vgerTool(t, dir, {});
      else {
        const b = bucket();
        await createBucket(s3!, b);
        tool = t === "vger-s3"
          ? vgerTool(t, dir, { s3: { server: server!, s3: s3!, bucket: b } })
          : resticTool(dir, server!, s3!, b);
      }
      rows.push(...await runTool(server, tool, dir, corpusBytes, logFile));
    }
  }
} finally {
  s3?.destroy();
  await server?.stop();
}

const vgerVersion = (await sh([...vgerCmd, "--version"])).trim();
const resticVersion = tools.includes("restic-s3") && !sweep
  ? (await sh(["restic", "version"])).split(" ").slice(0, 2).join(" ")
  : "";
const commit = (await sh(["git", "-C", root, "rev-parse", "--short", "HEAD"]).catch(() => "?"))
  .trim();
const heading = [
  `Run of ${started.toISOString().slice(0, 16).replace("T", " ")} UTC, commit ${commit}, ` +
  `${vgerVersion}${resticVersion ? `, ${resticVersion}` : ""}; corpus ${corpus}: ` +
  `${corpusFiles} files, ${(corpusBytes / 1e6).toFixed(0)} MB; scratch ${work}.`,
].join("\n");
const md = sweep ? `${heading}\n\n${sweepReport(rows)}\n` : `${report(rows, heading, tools)}\n`;
const csv = ["tool,step,seconds,cpu_s,peak_rss_mib,bytes"].concat(
  rows.map((r) =>
    `${r.tool},${r.step},${r.seconds},${r.cpu.toFixed(2)},${r.rssMiB.toFixed(0)},${r.bytes}`
  ),
).join("\n");
const base = sweep ? "s3_connections" : "s3_peers";
await Deno.writeTextFile(`${results}/${base}.md`, md);
await Deno.writeTextFile(`${results}/${base}.csv`, csv + "\n");
console.log(md);
log(`results in ${results}/${base}.md and .csv, step output in ${logFile}`);
Deno.exit(0); // the signal listeners would keep the process alive
