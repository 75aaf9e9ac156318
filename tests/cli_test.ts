/**
 * The command line as a user meets it, through the real `vger` in a subprocess on real files:
 * help and version, usage mistakes, progress (on a pipe, with --progress, --quiet, --json, and on
 * a real pseudo-terminal), the backup summary, the README's --json field table, the exit codes
 * (130 on Ctrl-C during a busy backup) and missing Deno permissions.
 *
 * Expectations are derived from their sources (lib/cli_command_line.ts's COMMANDS, deno.json's
 * version, the README's table), so a new option or field cannot go undocumented.
 */

import { deepStrictEqual, equal, match, ok } from "node:assert/strict";
import {
  assertDocumented,
  CLI_PATH,
  exists,
  FAST_KDF_ARGS,
  initRepo,
  PASSPHRASE,
  PROJECT_DIR,
  pseudoRandomBytes,
  readmeJsonTable,
  restoredPath,
  type RunResult,
  runVger,
  runVgerOk,
  spawnVger,
  treeSnapshot,
  withTempDir,
} from "./_helpers.ts";
import { COMMANDS, GLOBAL_OPTIONS, type OptionSpec } from "../lib/cli_command_line.ts";
import { formatBytes } from "../lib/cli_progress.ts";

// ---------------------------------------------------------------------------------------------
// Small helpers

/** A size as progress lines print it ("512 B", "8.00 MiB"). */
const SIZE = String.raw`[\d.]+ (?:B|KiB|MiB|GiB|TiB)`;
/** A non-terminal progress line of backup: files done (of a total once scanned), then bytes. */
const BACKUP_PROGRESS = new RegExp(String.raw`^\d+(?:/\d+)? files(?: \(\d+%\))?, ${SIZE}`);
/** The escape character that starts terminal control sequences. */
const ESC = "\x1b";
/** What a terminal progress line starts with: back to column 0, clear the line. */
const CLEAR = `\r${ESC}[K`;
/** The stderr of a progress-less, warning-less successful run. */
const NOTHING = "";

/** The lines of a text, without empty ones. */
function lines(text: string): string[] {
  return text.split("\n").filter((l) => l.trim() !== "");
}

/** Parses stdout as exactly one JSON document on one line. */
function oneJson(stdout: string): Record<string, unknown> {
  const docs = lines(stdout);
  equal(docs.length, 1, `expected one JSON line on stdout, got:\n${stdout}`);
  return JSON.parse(docs[0]) as Record<string, unknown>;
}

/** Every entry below `root` with its size and mtime: what "nothing was touched" compares. */
async function fileState(root: string, rel = ""): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for await (const e of Deno.readDir(`${root}${rel}`)) {
    const path = `${rel}/${e.name}`;
    const st = await Deno.lstat(`${root}${path}`);
    out[path] = `${st.size} ${st.mtime?.getTime()}`;
    if (e.isDirectory) Object.assign(out, await fileState(root, path));
  }
  return out;
}

/** The names in a directory, sorted ([] when it does not exist). */
async function namesIn(dir: string): Promise<string[]> {
  if (!(await exists(dir))) return [];
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) names.push(e.name);
  return names.sort();
}

/** Archive names of a repository, through `list --json`. */
async function archiveNames(repo: string): Promise<string[]> {
  const r = await runVgerOk(["-R", repo, "list", "--json"]);
  return (oneJson(r.stdout).archives as { name: string }[]).map((a) => a.name);
}

/** A source tree: a few small files, a pseudo-random file and (optionally) a sparse zero file. */
async function makeTree(
  root: string,
  options: { randomBytes: number; zeroBytes?: number },
): Promise<void> {
  await Deno.mkdir(`${root}/sub`, { recursive: true });
  await Deno.writeTextFile(`${root}/a.txt`, "alpha\n".repeat(100));
  await Deno.writeTextFile(`${root}/sub/b.txt`, "beta\n".repeat(100));
  await Deno.writeFile(`${root}/sub/random.bin`, pseudoRandomBytes(options.randomBytes, 7));
  if (options.zeroBytes) {
    using f = await Deno.open(`${root}/zeros.bin`, { write: true, create: true });
    await f.truncate(options.zeroBytes);
  }
}

/** The environment of a child run outside runVger: no VGER_* or user configuration leaks in. */
function plainEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(Deno.env.toObject())) {
    if (!k.startsWith("VGER_")) env[k] = v;
  }
  return {
    ...env,
    XDG_CONFIG_HOME: "/nonexistent/vger-test-config",
    NO_COLOR: "1",
    VGER_PASSPHRASE: PASSPHRASE,
    ...extra,
  };
}

/** A word quoted for sh. */
function shellQuote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Appends a stream's text to `sink.text` until it ends. */
async function drain(stream: ReadableStream<Uint8Array>, sink: { text: string }): Promise<void> {
  const decoder = new TextDecoder();
  for await (const chunk of stream) sink.text += decoder.decode(chunk, { stream: true });
}

/** Polls `done` every 20 ms; false when `timeoutMs` passed first. */
async function until(done: () => boolean, timeoutMs: number): Promise<boolean> {
  const end = performance.now() + timeoutMs;
  while (!done()) {
    if (performance.now() > end) return false;
    await delay(20);
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Help, version, usage mistakes

/** The help line of an option: its flag as a word, e.g. `--dry-run` but not `--dry-run-x`. */
function optionLine(help: string, option: OptionSpec): string | undefined {
  const flag = new RegExp(`^\\s+(-\\w, )?--${option.name}(\\s|$)`);
  return help.split("\n").find((l) => flag.test(l));
}

function assertOptionListed(help: string, option: OptionSpec, where: string): void {
  const line = optionLine(help, option);
  ok(line, `${where}: --${option.name} is not listed:\n${help}`);
  ok(option.help.trim() !== "", `${where}: --${option.name} has no help text`);
  ok(line.includes(option.help), `${where}: the line of --${option.name} lacks its help: ${line}`);
  if (option.short) {
    ok(
      line.includes(`-${option.short}, --${option.name}`),
      `${where}: no -${option.short}: ${line}`,
    );
  }
  if (option.value) {
    ok(line.includes(`--${option.name} ${option.value}`), `${where}: no ${option.value}: ${line}`);
  }
  if (option.default) {
    ok(
      line.includes(`[default: ${option.default}]`),
      `${where}: --${option.name} does not show its default ${option.default}: ${line}`,
    );
  }
}

/** Every option of a command given once (with a value where it takes one), plus --help. */
function everyOptionArgs(options: readonly OptionSpec[]): string[] {
  return options.filter((o) => o.name !== "version" && o.name !== "help")
    .flatMap((o) => o.type === "string" ? [`--${o.name}`, "x"] : [`--${o.name}`]);
}

Deno.test("vger --help lists every command and global option, vger COMMAND --help every option with its default, the parser takes each", async () => {
  const top = await runVger(["--help"]);
  equal(top.code, 0, top.stderr);
  equal(top.stderr, NOTHING);
  for (const c of COMMANDS) {
    ok(
      top.stdout.split("\n").some((l) =>
        l.trim().startsWith(`${c.name} `) && l.includes(c.summary)
      ),
      `vger --help does not list ${c.name} with its summary:\n${top.stdout}`,
    );
  }
  for (const o of GLOBAL_OPTIONS) assertOptionListed(top.stdout, o, "vger --help");

  // every option on the command line at once: the parser must accept what help lists
  const runs = await Promise.all(
    COMMANDS.map((c) =>
      runVger([c.name, ...everyOptionArgs([...GLOBAL_OPTIONS, ...c.options]), "--help"])
    ),
  );
  COMMANDS.forEach((c, i) => {
    const r = runs[i];
    const where = `vger ${c.name} --help`;
    equal(r.code, 0, `${where} exited with ${r.code}: ${r.stderr}`);
    equal(r.stderr, NOTHING, where);
    ok(r.stdout.startsWith(`Usage: vger ${c.name} `), `${where}:\n${r.stdout}`);
    if (c.args) ok(r.stdout.split("\n")[0].includes(c.args), `${where}: usage lacks ${c.args}`);
    for (const o of [...c.options, ...GLOBAL_OPTIONS]) assertOptionListed(r.stdout, o, where);
  });
});

Deno.test("vger alone prints the help and exits 2; --version and -V print deno.json's version", async () => {
  const { version } = JSON.parse(await Deno.readTextFile(`${PROJECT_DIR}/deno.json`));
  const [bare, help, long, short] = await Promise.all([
    runVger([]),
    runVger(["--help"]),
    runVger(["--version"]),
    runVger(["-V"]),
  ]);
  equal(bare.code, 2, bare.stderr);
  equal(bare.stdout, help.stdout, "vger alone prints the same help as vger --help");
  for (const r of [long, short]) {
    equal(r.code, 0, r.stderr);
    equal(r.stdout, `vger ${version}\n`);
    equal(r.stderr, NOTHING);
  }
  ok(help.stdout.startsWith(`vger ${version}`), help.stdout.split("\n")[0]);
});

Deno.test("an option the command does not take and an unknown command exit 2 with one line, before anything is touched", async () => {
  await withTempDir(async (dir) => {
    const repo = await initRepo(`${dir}/repo`);
    const src = `${dir}/src`;
    await makeTree(src, { randomBytes: 1000 });
    const before = await fileState(repo);
    const fresh = `${dir}/fresh`;
    const cases: { args: string[]; says: RegExp }[] = [
      { args: ["-R", repo, "backup", "--dest", "x", src], says: /backup does not take --dest/ },
      {
        args: ["-R", repo, "bakup", src],
        says: /Unknown command "bakup" \(did you mean "backup"\?\)/,
      },
      { args: ["-R", repo, "list", "--overwrite"], says: /list does not take --overwrite/ },
      {
        args: ["-R", fresh, "init", "--dest", "x", ...FAST_KDF_ARGS],
        says: /init does not take --dest/,
      },
      { args: ["-R", fresh, "iinit", ...FAST_KDF_ARGS], says: /did you mean "init"/ },
    ];
    for (const c of cases) {
      const r = await runVger(c.args);
      const what = `vger ${c.args.join(" ")}`;
      equal(r.code, 2, `${what}: exit ${r.code}\n${r.stderr}`);
      equal(r.stdout, NOTHING, what);
      equal(lines(r.stderr).length, 1, `${what}: not one line:\n${r.stderr}`);
      match(r.stderr, c.says);
      ok(!/\bat .*:\d+:\d+/.test(r.stderr), `${what}: a stack trace:\n${r.stderr}`);
    }
    deepStrictEqual(await fileState(repo), before, "the repository changed");
    ok(!(await exists(fresh)), "a refused init created the repository directory");
    deepStrictEqual(await archiveNames(repo), []);
  });
});

// ---------------------------------------------------------------------------------------------
// Progress, quiet, json

Deno.test("backup, extract, check --verify-data and compact: progress only with --progress off a terminal, --quiet silent, --json stdout pure", async (t) => {
  await withTempDir(async (dir) => {
    const src = `${dir}/src`;
    await makeTree(src, { randomBytes: 12 << 20 });
    const repo = await initRepo(`${dir}/repo`);
    const R = ["-R", repo];

    /**
     * The four runs of one command: --progress, plain, --quiet, --json --progress; at once when
     * `together` (read-only commands take shared locks).
     */
    const fourWays = async (
      args: (tag: string) => string[],
      expect: { progress: RegExp; summary: RegExp; together: boolean },
    ): Promise<void> => {
      const variants: [string, string[]][] = [
        ["progress", ["--progress"]],
        ["plain", []],
        ["quiet", ["--quiet"]],
        ["json", ["--json", "--progress"]],
      ];
      const run = ([tag, flags]: [string, string[]]) => runVgerOk([...R, ...args(tag), ...flags]);
      const [shown, plain, quiet, json] = expect.together
        ? await Promise.all(variants.map(run))
        : await variants.reduce<Promise<RunResult[]>>(
          async (done, v) => [...await done, await run(v)],
          Promise.resolve([]),
        );

      const progressLines = lines(shown.stderr);
      ok(progressLines.length >= 1, `--progress drew nothing:\n${shown.stderr}`);
      ok(
        progressLines.some((l) => expect.progress.test(l)),
        `no line like ${expect.progress}:\n${shown.stderr}`,
      );
      // off a terminal: whole lines for logs, no carriage returns or escape sequences
      ok(
        !shown.stderr.includes("\r") && !shown.stderr.includes(ESC),
        `terminal control codes on a pipe:\n${shown.stderr}`,
      );
      match(shown.stdout, expect.summary);
      ok(!progressLines.some((l) => shown.stdout.includes(l)), "progress on stdout");

      equal(plain.stderr, NOTHING, "progress without --progress on a pipe");
      match(plain.stdout, expect.summary);

      deepStrictEqual([quiet.stdout, quiet.stderr], [NOTHING, NOTHING], "--quiet printed");

      equal(json.stderr, NOTHING, "--json --progress drew progress");
      equal(oneJson(json.stdout).repository, repo);
    };

    await t.step("backup --progress: files and bytes done, with the scanned total", async () => {
      await fourWays((tag) => ["backup", "--archive", tag, src], {
        progress: BACKUP_PROGRESS,
        summary:
          /^Archive \S+: \d+ files, original .*, compressed .*, deduplicated .*, [\d.]+ s\n$/,
        together: false,
      });
    });
    await t.step(
      "extract --progress: files and bytes of the known total, with a percent",
      async () => {
        await fourWays(
          (tag) => ["extract", "--archive", "progress", "--dest", `${dir}/out-${tag}`],
          {
            progress: new RegExp(String.raw`^\d+/\d+ files, ${SIZE} of ${SIZE} \(\d+%\)`),
            summary: /^Restored \d+ items/,
            together: true,
          },
        );
        deepStrictEqual(
          await treeSnapshot(restoredPath(`${dir}/out-quiet`, src)),
          await treeSnapshot(src),
          "extract --quiet restored something else",
        );
      },
    );
    await t.step("check --verify-data --progress: packs verified of the total", async () => {
      await fourWays(() => ["check", "--verify-data"], {
        progress: new RegExp(String.raw`^verify: \d+/\d+ packs, ${SIZE} of ${SIZE}`),
        summary: /^Checked \d+ archives, \d+ packs, \d+ blobs, read .*: 0 errors, 0 warnings/,
        together: true,
      });
    });
    await t.step("compact --progress: the phase and its count", async () => {
      await fourWays(() => ["compact"], {
        progress: /^scan: \d+\/\d+ archives/,
        summary: /^(Nothing to do|Compacted): /,
        together: false,
      });
    });
  });
});

const hasScript = (await new Deno.Command("sh", { args: ["-c", "command -v script"] }).output())
  .success;
if (!hasScript) {
  console.warn(
    "cli_test.ts: `script` (util-linux/bsdutils) is missing: the terminal test is skipped",
  );
}

Deno.test({
  name:
    "on a real terminal progress is redrawn in place without --progress, cleared before the summary; --json draws none",
  ignore: !hasScript,
  fn: async () => {
    await withTempDir(async (dir) => {
      const src = `${dir}/src`;
      await makeTree(src, { randomBytes: 16 << 20, zeroBytes: 96 << 20 });
      const repo = await initRepo(`${dir}/repo`);
      /** Runs vger under `script`, which gives it a pseudo-terminal; returns what it drew. */
      const onTerminal = async (args: string[]): Promise<string> => {
        const command = [Deno.execPath(), "run", "-A", CLI_PATH, ...args].map(shellQuote).join(" ");
        const r = await new Deno.Command("script", {
          args: ["-qfec", command, "/dev/null"],
          cwd: dir,
          env: plainEnv(),
          clearEnv: true,
          stdin: "null",
          stdout: "piped",
          stderr: "piped",
        }).output();
        const text = new TextDecoder().decode(r.stdout);
        equal(r.code, 0, `vger ${args.join(" ")} on a terminal failed:\n${text}`);
        return text;
      };
      const redraws = (text: string, line: RegExp) =>
        text.split(CLEAR).slice(1).filter((s) => line.test(s)).length;

      const backup = await onTerminal(["-R", repo, "backup", "--archive", "one", src]);
      ok(
        redraws(backup, BACKUP_PROGRESS) >= 2,
        `backup did not redraw its progress line in place:\n${JSON.stringify(backup)}`,
      );
      // finish() clears the line, so the summary starts on a clean line
      ok(backup.includes(`${CLEAR}Archive one: `), JSON.stringify(backup));

      const extract = await onTerminal([
        "-R",
        repo,
        "extract",
        "--archive",
        "one",
        "--dest",
        `${dir}/out`,
      ]);
      ok(
        redraws(extract, /^\d+\/\d+ files, .*\(\d+%\)/) >= 1,
        `extract drew no progress:\n${JSON.stringify(extract)}`,
      );
      ok(extract.includes(`${CLEAR}Restored `), JSON.stringify(extract));

      const json = await onTerminal(["-R", repo, "backup", "--archive", "two", "--json", src]);
      ok(!json.includes(ESC), `--json on a terminal drew progress:\n${JSON.stringify(json)}`);
      equal(oneJson(json.replaceAll("\r", "")).archive, "two");
    });
  },
});

// ---------------------------------------------------------------------------------------------
// The backup summary, and Ctrl-C during a busy backup

Deno.test("backup's summary agrees with the archive; Ctrl-C while a backup deduplicates a large tree exits 130 at once, says the repository is consistent, leaves no lock", async (t) => {
  await withTempDir(async (dir) => {
    const src = `${dir}/src`;
    await makeTree(src, { randomBytes: 8 << 20, zeroBytes: 256 << 20 });
    const repo = await initRepo(`${dir}/repo`);
    const source = await treeSnapshot(src);

    await t.step(
      "the summary names files, original, compressed, deduplicated size and duration",
      async () => {
        const r = await runVgerOk(["-R", repo, "backup", "--archive", "one", src]);
        const m =
          /^Archive one: (\d+) files, original (.+), compressed (.+), deduplicated (.+), ([\d.]+) s\n$/
            .exec(r.stdout);
        ok(m, `unexpected summary: ${r.stdout}`);
        const listed = (oneJson((await runVgerOk(["-R", repo, "list", "--json"])).stdout)
          .archives as Record<string, number>[])[0];
        deepStrictEqual(m.slice(1, 5), [
          String(listed.files),
          formatBytes(listed.original_size),
          formatBytes(listed.compressed_size),
          formatBytes(listed.deduplicated_size),
        ]);
        equal(listed.files, Object.keys(source).length, "files counts every entry");
        ok(Number(m[5]) > 0, `duration ${m[5]}`);
      },
    );

    await t.step(
      "Ctrl-C during a deduplicating backup: exit 130 within 5 s, nothing left behind",
      async () => {
        // 16 GiB of zeros more, all of them chunks the repository holds: minutes of pure
        // deduplication without any upload, the loop that once starved timers and signals
        const more = `${dir}/more`;
        await Deno.mkdir(more);
        {
          using f = await Deno.open(`${more}/huge.bin`, { write: true, create: true });
          await f.truncate(16 * 2 ** 30);
        }
        const child = spawnVger([
          "-R",
          repo,
          "backup",
          "--progress",
          "--archive",
          "two",
          src,
          more,
        ]);
        const stdout = { text: "" };
        const stderr = { text: "" };
        const streams = Promise.all([drain(child.stdout, stdout), drain(child.stderr, stderr)]);
        let exited = false;
        const status = child.status.finally(() => exited = true);
        /** Kills the child unless it exited; waits for its end and the end of its output. */
        const reap = async (): Promise<number> => {
          if (!exited) {
            try {
              child.kill("SIGKILL");
            } catch {
              // it exited meanwhile
            }
          }
          const { code } = await status;
          await streams;
          return code;
        };
        try {
          const started = await until(
            () => lines(stderr.text).some((l) => BACKUP_PROGRESS.test(l)) || exited,
            30_000,
          );
          ok(started && !exited, `the backup never got busy:\n${stderr.text}`);
          await delay(2000);
          ok(!exited, `the backup ended before the signal:\n${stdout.text}${stderr.text}`);
          const signalled = performance.now();
          child.kill("SIGINT");
          const stopped = await until(() => exited, 5_000);
          const seconds = ((performance.now() - signalled) / 1000).toFixed(1);
          const code = await reap();
          ok(stopped, `still running ${seconds} s after SIGINT: the backup loop starves signals`);
          equal(code, 130, `exit code after SIGINT:\n${stderr.text}`);
          match(stderr.text, /interrupted.*the repository is consistent/);
          equal(stdout.text, NOTHING, "an interrupted backup printed a summary");
          // the progress drawn while it ran had a rate and an ETA (the concurrent scan's total)
          ok(
            lines(stderr.text).some((l) => new RegExp(`${SIZE}/s, ETA `).test(l)),
            `no progress line with a rate and an ETA:\n${stderr.text}`,
          );
        } finally {
          await reap();
        }
        deepStrictEqual(await namesIn(`${repo}/locks`), [], "a lock was left behind");
      },
    );

    await t.step("afterwards check passes and the earlier archive restores", async () => {
      deepStrictEqual(await archiveNames(repo), ["one"]);
      const check = await runVger(["-R", repo, "check"]);
      equal(check.code, 0, check.stdout + check.stderr);
      const out = `${dir}/out`;
      await runVgerOk(["-R", repo, "extract", "--archive", "one", "--dest", out]);
      deepStrictEqual(await treeSnapshot(restoredPath(out, src)), source);
    });
  });
});

// ---------------------------------------------------------------------------------------------
// --json fields, from the README's table

/** Every key at any depth of a JSON value. */
function allKeys(value: unknown, path = ""): string[] {
  if (Array.isArray(value)) return value.flatMap((v) => allKeys(v, `${path}[]`));
  if (value === null || typeof value !== "object") return [];
  return Object.entries(value).flatMap(([k, v]) => [`${path}.${k}`, ...allKeys(v, `${path}.${k}`)]);
}

Deno.test("every command's --json has the fields the README's table documents, and no others", async (t) => {
  const table = await readmeJsonTable();
  const expected = [
    "list",
    "list --archive",
    "backup",
    "extract",
    "delete",
    "prune",
    "check",
    "check --repair",
    "compact",
    "init",
    "break-lock",
    "key",
    "config",
  ];
  // versions and rollback need a vger-server: tests/rest_versions_test.ts checks their rows
  deepStrictEqual(
    [...table.keys()].sort(),
    [...expected, "versions", "rollback"].sort(),
    "the README's --json table",
  );
  await withTempDir(async (dir) => {
    const src = `${dir}/src`;
    await makeTree(src, { randomBytes: 256 << 10 });
    const repo = `${dir}/repo`;
    const config = `${dir}/vger.yaml`;
    await Deno.writeTextFile(
      config,
      `repositories:\n  - path: ${JSON.stringify(repo)}\nretention:\n  keep_last: 1\n`,
    );
    const json = async (args: string[], code = 0) =>
      oneJson((await runVgerOk([...args, "--json"], {}, code)).stdout);
    const outputs = new Map<string, Record<string, unknown>>();
    outputs.set("init", await json(["-R", repo, "init", ...FAST_KDF_ARGS]));
    for (const name of ["a1", "a2"]) {
      await Deno.writeTextFile(`${src}/changing.txt`, name);
      outputs.set("backup", await json(["-R", repo, "backup", "--archive", name, src]));
    }
    outputs.set("list", await json(["-R", repo, "list"]));
    outputs.set("list --archive", await json(["-R", repo, "list", "--archive", "a1"]));
    outputs.set(
      "extract",
      await json(["-R", repo, "extract", "--archive", "a1", "--dest", `${dir}/out`]),
    );
    await Deno.writeTextFile(`${src}/changing.txt`, "a3");
    await runVgerOk(["-R", repo, "backup", "--archive", "a3", src]);
    outputs.set("delete", await json(["-R", repo, "delete", "--archive", "a1"]));
    outputs.set("prune", await json(["-c", config, "prune"]));
    outputs.set("compact", await json(["-R", repo, "compact", "--threshold", "0"]));
    outputs.set("break-lock", await json(["-R", repo, "break-lock"]));
    outputs.set("key", await json(["-R", repo, "key", "export", "--dest", `${dir}/key.backup`]));
    outputs.set("config", await json(["config", "--dest", `${dir}/starter.yaml`]));
    const changed = await runVgerOk(
      ["-R", repo, "key", "change-passphrase", ...FAST_KDF_ARGS, "--json"],
      { env: { VGER_NEW_PASSPHRASE: PASSPHRASE } },
    );
    outputs.set("key change-passphrase", oneJson(changed.stdout));
    // a check that finds something, so the fields of problems[] show
    const packs = (await namesIn(`${repo}/packs`)).flatMap((d) =>
      [...Deno.readDirSync(`${repo}/packs/${d}`)].map((e) => `${repo}/packs/${d}/${e.name}`)
    );
    ok(packs.length > 0, "no pack files");
    await Deno.remove(packs[0]);
    outputs.set("check", await json(["-R", repo, "check"], 1));
    // not in the table's rows of their own, but the same JSON for the snake_case rule below
    const repair = await runVger(["-R", repo, "check", "--repair", "--dry-run", "--json"]);
    outputs.set("check --repair", oneJson(repair.stdout));

    for (const command of expected) {
      await t.step(`${command} --json`, () => {
        const out = outputs.get(command)!;
        assertDocumented(table.get(command)!, out, `${command} --json`);
        if (command === "list --archive") {
          for (const i of out.items as Record<string, unknown>[]) {
            equal(typeof i.mtime_ns, "string", "mtime_ns is documented as a string");
          }
        }
      });
    }
    await t.step("field names are snake_case at every depth, as the documented ones are", () => {
      const camel = [
        ...new Set(
          [...outputs].flatMap(([command, out]) =>
            allKeys(out).filter((k) => /[A-Z]/.test(k.slice(k.lastIndexOf(".") + 1))).map((k) =>
              `${command}: ${k}`
            )
          ),
        ),
      ];
      deepStrictEqual(camel, [], "camelCase keys in --json output");
    });
  });
});

// ---------------------------------------------------------------------------------------------
// Exit codes, permissions

Deno.test("exit codes: 0 ok, 1 a damaged repository, 2 usage or configuration, 3 a backup with a skipped socket", async () => {
  await withTempDir(async (dir) => {
    const src = `${dir}/src`;
    await makeTree(src, { randomBytes: 64 << 10 });
    const socket = `${src}/socket`;
    const listener = Deno.listen({ transport: "unix", path: socket });
    const repo = await initRepo(`${dir}/repo`);

    const warned = await runVger(["-R", repo, "backup", "--archive", "w", "--json", src]);
    listener.close();
    equal(warned.code, 3, warned.stderr);
    const summary = oneJson(warned.stdout);
    deepStrictEqual(summary.warnings, [
      `Skipped "${socket}": a socket (sockets are not backed up)`,
    ]);
    deepStrictEqual(await archiveNames(repo), ["w"], "the archive with warnings is committed");
    equal((await runVger(["-R", repo, "check"])).code, 0);

    const usage = await runVger(["-R", repo, "extract", "--archive", "w"]);
    equal(usage.code, 2, usage.stderr);
    deepStrictEqual(lines(usage.stderr), ["vger: extract needs --dest DIR"]);

    const bad = `${dir}/bad.yaml`;
    await Deno.writeTextFile(bad, `repositories:\n  - path: ${JSON.stringify(repo)}\n  - [\n`);
    const config = await runVger(["-c", bad, "list"]);
    equal(config.code, 2, config.stderr);
    equal(lines(config.stderr).length, 1, config.stderr);
    ok(config.stderr.includes(bad), config.stderr);

    for (const d of await namesIn(`${repo}/packs`)) {
      await Deno.remove(`${repo}/packs/${d}`, { recursive: true });
    }
    const damaged = await runVger(["-R", repo, "check"]);
    equal(damaged.code, 1, damaged.stdout + damaged.stderr);
    match(damaged.stdout, /^error: /m);
  });
});

Deno.test("missing Deno permissions: one line naming the flag to add, no stack trace, exit 2", async () => {
  await withTempDir(async (dir) => {
    const repo = await initRepo(`${dir}/repo`);
    await Deno.mkdir(`${dir}/src`);
    const cases = [
      { flags: ["--allow-read"], missing: "--allow-env", command: ["list"] },
      // without --allow-ffi a backup takes the portable paths (WASM lz4, Web Crypto): what it
      // lacks here is the write
      {
        flags: ["--allow-read", "--allow-env", "--allow-sys"],
        missing: "--allow-write",
        command: ["backup", `${dir}/src`],
      },
    ];
    for (const c of cases) {
      const r = await runVger(["-R", repo, ...c.command], { denoFlags: c.flags, cwd: dir });
      const stderr = r.stderr;
      const what = `deno run ${c.flags.join(" ")} cli.ts ${c.command[0]}`;
      equal(r.code, 2, `${what}: exit ${r.code}\n${stderr}`);
      equal(lines(stderr).length, 1, `${what}: not one line:\n${stderr}`);
      ok(stderr.includes(`run with ${c.missing}`), `${what} does not name ${c.missing}: ${stderr}`);
      ok(!/\bat .*:\d+:\d+/.test(stderr), `${what}: a stack trace:\n${stderr}`);
    }
  });
});

Deno.test("list runs without --allow-ffi: the key derived in a worker, no native codec loaded", async () => {
  await withTempDir(async (dir) => {
    const repo = await initRepo(`${dir}/repo`);
    const r = await runVger(["-R", repo, "list", "--json"], {
      denoFlags: ["--allow-read", "--allow-env"],
      cwd: dir,
    });
    equal(r.code, 0, r.stderr);
    deepStrictEqual(JSON.parse(r.stdout).archives, []);
  });
});

Deno.test("with several repositories an error names the repository it is about", async () => {
  await withTempDir(async (dir) => {
    const good = `${dir}/good`;
    const bad = `${dir}/bad`;
    await initRepo(good);
    await initRepo(bad);
    // a damaged manifest's own message names only the manifest
    const manifest = await Deno.readFile(`${bad}/manifest`);
    manifest[manifest.length - 1] ^= 1;
    await Deno.writeFile(`${bad}/manifest`, manifest);
    const config = `${dir}/vger.yaml`;
    await Deno.writeTextFile(
      config,
      `repositories:\n  - path: ${JSON.stringify(good)}\n  - path: ${JSON.stringify(bad)}\n`,
    );
    const r = await runVger(["-c", config, "list", "--json"]);
    equal(r.code, 1);
    equal(r.stdout.trim().split("\n").length, 1, "the good repository still lists");
    const lines = r.stderr.trim().split("\n");
    equal(lines.length, 1, r.stderr);
    ok(lines[0].includes("Manifest") && lines[0].includes(`"${bad}"`), lines[0]);
  });
});

Deno.test("output to a reader that went away (vger list | head) ends quietly with exit 0", async () => {
  await withTempDir(async (dir) => {
    const src = `${dir}/src`;
    await Deno.mkdir(src);
    for (let i = 0; i < 3000; i++) await Deno.writeTextFile(`${src}/file-${i}`, `${i}`);
    const repo = `${dir}/repo`;
    await initRepo(repo);
    await runVgerOk(["-R", repo, "backup", "--archive", "many", src]);
    const child = spawnVger(["-R", repo, "list", "--archive", "many"]);
    // read one chunk of the listing, then close the pipe like `head` does
    const reader = child.stdout.getReader();
    await reader.read();
    await reader.cancel();
    const [status, stderr] = await Promise.all([
      child.status,
      new Response(child.stderr).text(),
    ]);
    equal(stderr, "", "no error for a closed pipe");
    equal(status.code, 0);
  });
});
