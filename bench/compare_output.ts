/**
 * Compares the CLI output of two checkouts of vger, byte for byte: the same scripted sequence of
 * commands (help, config, init, two backups with a change between, list, extract, check, delete,
 * prune, compact, and a set of error cases) runs once per checkout, one after the other, in the
 * same fresh temp dir, with fixed inputs (contents, modes, times), a fixed passphrase and a copy
 * of one repository made by BEFORE (one key on both sides, so chunk ids and the sizes of item
 * streams match). The exit codes, stdout, stderr and the files a run writes (the starter
 * configuration, listings of extracted trees) are diffed after normalising only what must differ
 * between two runs: the temp dir, archive and pack ids, timestamps and durations.
 *
 * Usage: `deno run -A bench/compare_output.ts BEFORE_DIR AFTER_DIR [--transcript DIR]`
 * (each a checkout with cli.ts; `--transcript` writes each side's normalised transcript there).
 * Exit code 0 when every run is identical, 1 when one differs. See bench/README.md.
 */

import { join } from "node:path";

/** One scripted step: a CLI run, or a change to the inputs between runs. */
type Step =
  | {
    label: string;
    args: string[];
    env?: Record<string, string | undefined>;
    /** Files the run writes whose contents are compared too (relative to the temp dir). */
    files?: string[];
    /** A listing of this directory's tree (names, types, sizes, modes, contents' hashes). */
    tree?: string;
  }
  | { label: string; action: (dir: string, template: string) => Promise<void> };

/** What one CLI run did, normalised. */
interface Outcome {
  label: string;
  args: string;
  code: number;
  stdout: string;
  stderr: string;
  extra: string;
}

const PASSPHRASE = "correct horse battery staple";
const FAST_KDF = ["--kdf-memory", "1024", "--kdf-iterations", "1", "--kdf-parallelism", "1"];
const T0 = new Date("2020-01-02T03:04:05Z");
const T1 = new Date("2021-06-07T08:09:10Z");

/** Deterministic bytes (xorshift32): `text` gives compressible lines of words. */
function bytes(length: number, seed: number, text: boolean): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed | 1;
  const next = () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
  if (!text) {
    for (let i = 0; i < length; i++) out[i] = next() & 0xff;
    return out;
  }
  const words = "the quick brown fox jumps over lazy dogs while backups run quietly".split(" ");
  const enc = new TextEncoder();
  let o = 0;
  while (o < length) {
    const line = enc.encode(`${words[next() % words.length]} ${next() & 0xffff}\n`);
    out.set(line.subarray(0, length - o), o);
    o += line.length;
  }
  return out;
}

/** Sets fixed times on every entry of a tree (deepest first, so directories keep theirs). */
async function fixTimes(path: string, time: Date): Promise<void> {
  const info = await Deno.lstat(path);
  if (info.isSymlink) return;
  if (info.isDirectory) {
    for await (const e of Deno.readDir(path)) await fixTimes(join(path, e.name), time);
  }
  await Deno.utime(path, time, time);
}

/** The fixed source tree of the first backup (every file below the chunker's minimum size). */
async function makeSource(dir: string): Promise<void> {
  const src = `${dir}/src`;
  await Deno.mkdir(`${src}/docs/deep`, { recursive: true });
  await Deno.mkdir(`${src}/empty_dir`);
  await Deno.writeTextFile(`${src}/hello.txt`, "hello\n");
  await Deno.writeFile(`${src}/docs/notes.md`, bytes(20_000, 7, true));
  await Deno.writeFile(`${src}/docs/deep/random.bin`, bytes(300_000, 11, false));
  await Deno.writeFile(`${src}/docs/deep/copy.bin`, bytes(300_000, 11, false));
  await Deno.writeFile(`${src}/empty.txt`, new Uint8Array());
  await Deno.writeTextFile(`${src}/tab\there.txt`, "a name with a control character\n");
  await Deno.chmod(`${src}/hello.txt`, 0o640);
  await Deno.symlink("hello.txt", `${src}/link`);
  await fixTimes(src, T0);
  // Deno.utime follows symlinks: the link's own time with touch -h
  await new Deno.Command("touch", { args: ["-h", "-d", T0.toISOString(), `${src}/link`] }).output();
  changedAt.set(dir, Date.now());
}

/** The change between the two backups: one file grows, one is new, one is gone. */
async function changeSource(dir: string): Promise<void> {
  const src = `${dir}/src`;
  await Deno.writeTextFile(`${src}/hello.txt`, "hello again\n", { append: true });
  await Deno.writeFile(`${src}/docs/new.txt`, bytes(5_000, 13, true));
  await Deno.remove(`${src}/docs/notes.md`);
  await fixTimes(src, T1);
  changedAt.set(dir, Date.now());
}

/** When each run's source last changed (its ctimes). */
const changedAt = new Map<string, number>();

/**
 * Waits until the source changed more than the files cache's racy window (2 s) ago, so that
 * the next backup records every file in the files cache however fast the runs are.
 */
async function settle(dir: string): Promise<void> {
  const wait = (changedAt.get(dir) ?? 0) + 2_500 - Date.now();
  if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
}

/** Copies the shared repository into the run's temp dir. */
async function copyTemplate(dir: string, template: string): Promise<void> {
  const out = await new Deno.Command("cp", { args: ["-a", `${template}/repo`, `${dir}/repo`] })
    .output();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
}

/** Flips one byte in the middle of the largest pack (the one with the random file's blob). */
async function corruptLargestPack(dir: string): Promise<void> {
  let largest: { path: string; size: number } | undefined;
  const walk = async (path: string) => {
    for await (const e of Deno.readDir(path)) {
      const p = join(path, e.name);
      if (e.isDirectory) await walk(p);
      else if (e.isFile) {
        const { size } = await Deno.stat(p);
        if (!largest || size > largest.size) largest = { path: p, size };
      }
    }
  };
  await walk(`${dir}/repo/packs`);
  if (!largest) throw new Error("no pack to corrupt");
  const data = await Deno.readFile(largest.path);
  data[data.length >> 1] ^= 0x55;
  await Deno.chmod(largest.path, 0o600);
  await Deno.writeFile(largest.path, data);
}

const configFile = (dir: string) =>
  `repositories:
  - path: "${dir}/repo"
    label: "main"
source_directories:
  - "${dir}/src"
exclude_patterns:
  - "*.tmp"
retention:
  keep_last: 1
`;

/** The scripted sequence; `$T` in arguments is the run's temp dir. */
function steps(): Step[] {
  const c = ["-c", "$T/vger.yaml"];
  const run = (label: string, args: string[], more: Partial<Step> = {}): Step =>
    ({ label, args, ...more }) as Step;
  const write = (name: string, text: string) => (dir: string) =>
    Deno.writeTextFile(`${dir}/${name}`, text);
  return [
    run("help", ["--help"]),
    run("version", ["--version"]),
    run("check --help", ["check", "--help"]),
    run("no command", []),
    run("config", ["config", "--dest", "$T/starter.yaml"], { files: ["starter.yaml"] }),
    run("config again (exists)", ["config", "--dest", "$T/starter.yaml"]),
    {
      label: "write vger.yaml",
      action: (dir) => Deno.writeTextFile(`${dir}/vger.yaml`, configFile(dir)),
    },
    { label: "make source", action: makeSource },
    run("list before init", [...c, "list"]),
    run("init", ["-R", "$T/fresh", "init", ...FAST_KDF]),
    // both sides use copies of one repository: one key, so chunk ids, the chunker's gear table
    // and all that derives from them are the same on both sides
    { label: "copy the shared repository", action: copyTemplate },
    run("init again (exists)", [...c, "init", ...FAST_KDF]),
    { label: "let the source settle", action: settle },
    run("backup one", [...c, "backup", "-a", "one"]),
    run("backup one again (name taken)", [...c, "backup", "-a", "one"]),
    { label: "change source", action: changeSource },
    { label: "let the source settle", action: settle },
    run("backup two", [...c, "backup", "-a", "two"]),
    run("backup three --json (unchanged)", [...c, "backup", "--json", "-a", "three"]),
    run("backup -R path, missing source", ["-R", "$T/repo", "backup", "-a", "four", "$T/nope"]),
    run("list", [...c, "list"]),
    run("list --json", [...c, "list", "--json"]),
    run("list -a one", [...c, "list", "-a", "one"]),
    run("list -a two --json", [...c, "list", "-a", "two", "--json"]),
    run("list -a two pattern", [...c, "list", "-a", "two", "**/*.bin"]),
    run("list -a missing", [...c, "list", "-a", "missing"]),
    run("extract -a two", [...c, "extract", "-a", "two", "--dest", "$T/out"], { tree: "out" }),
    run("extract -a two again (files exist)", [...c, "extract", "-a", "two", "--dest", "$T/out"]),
    run("extract -a one pattern --json", [
      ...c,
      "extract",
      "--json",
      "-a",
      "one",
      "--dest",
      "$T/out1",
      "**/notes.md",
    ], { tree: "out1" }),
    run("extract without --dest", [...c, "extract", "-a", "two"]),
    run("check", [...c, "check"]),
    run("check --verify-data", [...c, "check", "--verify-data"]),
    run("check --json", [...c, "check", "--json"]),
    run("check --verify-data --json", [...c, "check", "--verify-data", "--json"]),
    run("delete -a one", [...c, "delete", "-a", "one"]),
    run("delete -a one again (missing)", [...c, "delete", "-a", "one"]),
    run("prune --dry-run --list", [...c, "prune", "--dry-run", "--list"]),
    run("prune --dry-run --list --json", [...c, "prune", "--dry-run", "--list", "--json"]),
    run("compact --dry-run", [...c, "compact", "--dry-run"]),
    run("compact --dry-run --threshold 1 --json", [
      ...c,
      "compact",
      "--dry-run",
      "--threshold",
      "1",
      "--json",
    ]),
    run("compact", [...c, "compact"]),
    run("compact --threshold 1 (rewrites)", [...c, "compact", "--threshold", "1"]),
    run("check --verify-data after compact", [...c, "check", "--verify-data"]),
    run("prune", [...c, "prune"]),
    run("compact after prune --json", [...c, "compact", "--json"]),
    run("list after prune", [...c, "list"]),
    run("break-lock", [...c, "break-lock"]),
    // errors
    run("wrong passphrase", [...c, "list"], { env: { VGER_PASSPHRASE: "wrong" } }),
    run("no passphrase", [...c, "list"], { env: { VGER_PASSPHRASE: undefined } }),
    run("missing repository", ["-R", "$T/missing", "list"]),
    run("unknown repository label", [...c, "-R", "nolabel", "list"]),
    run("unknown option", [...c, "list", "--bogus"]),
    run("unknown command", [...c, "frobnicate"]),
    run("bad option value", [...c, "compact", "--threshold", "abc"]),
    { label: "write bad yaml", action: write("bad.yaml", "repositories:\n  - path: [unclosed\n") },
    run("malformed YAML", ["-c", "$T/bad.yaml", "list"]),
    {
      label: "write unknown key",
      action: write("unknown.yaml", 'repositories:\n  - path: "/x"\n    lable: "a"\n'),
    },
    run("unknown key", ["-c", "$T/unknown.yaml", "list"]),
    {
      label: "write bad value",
      action: write(
        "badvalue.yaml",
        'repositories:\n  - path: "/x"\ncompression:\n  algorithm: "brotli"\n',
      ),
    },
    run("bad value", ["-c", "$T/badvalue.yaml", "list"]),
    run("missing config file", ["-c", "$T/none.yaml", "list"]),
    { label: "corrupt the largest pack", action: corruptLargestPack },
    run("corrupt pack: check", [...c, "check"]),
    run("corrupt pack: check --verify-data", [...c, "check", "--verify-data"]),
    run("corrupt pack: check --verify-data --json", [...c, "check", "--verify-data", "--json"]),
    run("corrupt pack: extract", [...c, "extract", "-a", "three", "--dest", "$T/out3"], {
      tree: "out3",
    }),
  ];
}

/** Replaces what must differ between two runs: temp dir, ids, times, durations. */
function normalise(text: string, dir: string, checkout: string): string {
  return text
    .replaceAll(dir, "$TMP")
    .replaceAll(dir.slice(1), "<tmp>") // archived paths are relative to /
    .replace(/\bpacks\/[0-9a-f]{2}\//g, "packs/<xx>/")
    .replaceAll(checkout, "$CHECKOUT")
    .replace(/\b[0-9a-f]{64}\b/g, "<id>")
    .replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)/g, "<time>")
    .replace(/\b\d+(\.\d+)? s\b/g, "<n> s")
    .replace(/("[a-z_]*(seconds|duration|elapsed)[a-z_]*":)[0-9.e+-]+/g, "$1<n>");
}

/** A listing of a tree: path, type, mode, size, and a hash of each file's bytes. */
async function treeListing(root: string): Promise<string> {
  const lines: string[] = [];
  const walk = async (path: string, rel: string) => {
    let entries: Deno.DirEntry[];
    try {
      entries = [];
      for await (const e of Deno.readDir(path)) entries.push(e);
    } catch (e) {
      lines.push(`${rel || "."}: ${(e as Error).name}`);
      return;
    }
    entries.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
    for (const e of entries) {
      const p = join(path, e.name);
      const r = rel ? `${rel}/${e.name}` : e.name;
      const info = await Deno.lstat(p);
      const mode = (info.mode ?? 0) & 0o7777;
      if (info.isSymlink) lines.push(`${r} -> ${await Deno.readLink(p)}`);
      else if (info.isDirectory) {
        lines.push(`${r}/ ${mode.toString(8)}`);
        await walk(p, r);
      } else {
        const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", await Deno.readFile(p)));
        const hex = [...hash.slice(0, 8)].map((b) => b.toString(16).padStart(2, "0")).join("");
        lines.push(`${r} ${mode.toString(8)} ${info.size} ${info.mtime?.toISOString()} ${hex}`);
      }
    }
  };
  await walk(root, "");
  return lines.join("\n");
}

/** The directory of deno's cache that this process uses. */
async function denoCacheDir(): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), { args: ["info", "--json"] }).output();
  return (JSON.parse(new TextDecoder().decode(out.stdout)) as { denoDir: string }).denoDir;
}

/**
 * Runs the whole sequence with one checkout's cli.ts in `dir` (created, then removed);
 * `template` holds the repository both sides start from.
 */
async function runAll(
  checkout: string,
  denoDir: string,
  template: string,
  dir: string,
): Promise<Outcome[]> {
  const cli = join(checkout, "cli.ts");
  // the first run of a fresh checkout may set up node_modules and say so on stderr
  await new Deno.Command(Deno.execPath(), { args: ["run", "-A", cli, "--version"] }).output();
  await Deno.mkdir(dir);
  const outcomes: Outcome[] = [];
  try {
    await Deno.mkdir(`${dir}/home`);
    for (const step of steps()) {
      if ("action" in step) {
        await step.action(dir, template);
        continue;
      }
      const args = step.args.map((a) => a.replaceAll("$T", dir));
      const env: Record<string, string> = {
        PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
        HOME: `${dir}/home`,
        USER: "vger",
        TZ: "UTC",
        LANG: "C",
        NO_COLOR: "1",
        XDG_CONFIG_HOME: `${dir}/home/.config`,
        VGER_CACHE_DIR: `${dir}/cache`,
        VGER_PASSPHRASE: PASSPHRASE,
      };
      // the parent's deno cache (HOME is the temp dir's, and deno would fill a new one)
      env.DENO_DIR = denoDir;
      for (const [k, v] of Object.entries(step.env ?? {})) {
        if (v === undefined) delete env[k];
        else env[k] = v;
      }
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", cli, ...args],
        cwd: dir,
        env,
        clearEnv: true,
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = (b: Uint8Array) => normalise(new TextDecoder().decode(b), dir, checkout);
      let extra = "";
      for (const f of step.files ?? []) {
        extra += `--- ${f}\n${await Deno.readTextFile(`${dir}/${f}`).catch((e) => e.name)}\n`;
      }
      if (step.tree) {
        extra += `--- tree ${step.tree}\n${await treeListing(`${dir}/${step.tree}`)}\n`;
      }
      outcomes.push({
        label: step.label,
        args: step.args.join(" "),
        code: out.code,
        stdout: text(out.stdout),
        stderr: text(out.stderr),
        extra: normalise(extra, dir, checkout),
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  return outcomes;
}

/** The lines of `a` (-) and `b` (+) that differ, with two lines of context (a plain LCS diff). */
function diffLines(a: string, b: string): string {
  const x = a.split("\n");
  const y = b.split("\n");
  const lcs = Array.from({ length: x.length + 1 }, () => new Uint32Array(y.length + 1));
  for (let i = x.length - 1; i >= 0; i--) {
    for (let j = y.length - 1; j >= 0; j--) {
      lcs[i][j] = x[i] === y[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }
  const out: string[] = [];
  let i = 0;
  let j = 0;
  while (i < x.length || j < y.length) {
    if (i < x.length && j < y.length && x[i] === y[j]) {
      out.push(`  ${x[i]}`);
      i++;
      j++;
    } else if (i < x.length && (j === y.length || lcs[i + 1][j] >= lcs[i][j + 1])) {
      out.push(`- ${x[i++]}`);
    } else out.push(`+ ${y[j++]}`);
  }
  // keep changed lines and two lines of context around them
  const keep = out.map((l, k) =>
    out.slice(Math.max(0, k - 2), k + 3).some((m) => !m.startsWith("  ")) ? l : null
  );
  return keep.map((l, k) => l ?? (keep[k - 1] !== null ? "  ..." : null)).filter((l) => l !== null)
    .join("\n");
}

function transcript(outcomes: Outcome[]): string {
  return outcomes.map((o) =>
    `=== ${o.label}\n$ vger ${o.args}\nexit ${o.code}\n--- stdout\n${o.stdout}\n--- stderr\n${o.stderr}\n${o.extra}`
  ).join("\n");
}

if (import.meta.main) {
  const args = [...Deno.args];
  const t = args.indexOf("--transcript");
  const transcriptDir = t >= 0 ? args.splice(t, 2)[1] : undefined;
  if (args.length !== 2) {
    console.error(
      "Usage: deno run -A bench/compare_output.ts BEFORE_DIR AFTER_DIR [--transcript DIR]",
    );
    Deno.exit(2);
  }
  const [beforeDir, afterDir] = await Promise.all(args.map((d) => Deno.realPath(d)));
  const denoDir = await denoCacheDir();
  const work = await Deno.realPath(await Deno.makeTempDir({ prefix: "vger-compare-" }));
  // the repository both sides start from, made by the "before" checkout
  const template = `${work}/template`;
  let before: Outcome[], after: Outcome[];
  try {
    const init = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", `${beforeDir}/cli.ts`, "-R", `${template}/repo`, "init", ...FAST_KDF],
      env: {
        PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
        HOME: template,
        DENO_DIR: denoDir,
        VGER_PASSPHRASE: PASSPHRASE,
        VGER_CACHE_DIR: `${template}/cache`,
      },
      clearEnv: true,
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).output();
    if (!init.success) throw new Error(new TextDecoder().decode(init.stderr));
    // one side after the other in the same directory: archived paths are the same, and so are
    // the sizes of the item streams that hold them
    before = await runAll(beforeDir, denoDir, template, `${work}/run`);
    after = await runAll(afterDir, denoDir, template, `${work}/run`);
  } finally {
    await Deno.remove(work, { recursive: true });
  }
  if (transcriptDir) {
    await Deno.mkdir(transcriptDir, { recursive: true });
    await Deno.writeTextFile(`${transcriptDir}/before.txt`, transcript(before));
    await Deno.writeTextFile(`${transcriptDir}/after.txt`, transcript(after));
  }
  let differ = 0;
  for (let k = 0; k < before.length; k++) {
    const [b, a] = [before[k], after[k]];
    const parts: string[] = [];
    if (b.code !== a.code) parts.push(`exit code: ${b.code} before, ${a.code} after`);
    for (const key of ["stdout", "stderr", "extra"] as const) {
      if (b[key] !== a[key]) parts.push(`${key}:\n${diffLines(b[key], a[key])}`);
    }
    if (parts.length === 0) continue;
    differ++;
    console.log(`=== ${b.label}: vger ${b.args}\n${parts.join("\n")}\n`);
  }
  console.log(
    differ === 0
      ? `All ${before.length} runs identical (exit code, stdout, stderr, files written).`
      : `${differ} of ${before.length} runs differ (- before, + after).`,
  );
  Deno.exit(differ === 0 ? 0 : 1);
}
