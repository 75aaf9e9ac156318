/**
 * The golden repository `tests/testdata/repo-v1` (written once by tests/make_golden_repo.ts)
 * pins the on-disk format: this version, and every later one, must list and extract it exactly
 * as `repo-v1.expected.json` describes. The tests work on a temporary copy; the committed
 * repository is never opened for writing.
 */

import assert from "node:assert/strict";
import { nativeFs } from "../lib/fs_native.ts";
import {
  describeEntries,
  GOLDEN_EXPECTED,
  GOLDEN_REPO,
  type GoldenEntry,
  type GoldenExpected,
} from "./make_golden_repo.ts";

const CLI = new URL("../cli.ts", import.meta.url).pathname;
const expected: GoldenExpected = JSON.parse(await Deno.readTextFile(GOLDEN_EXPECTED));

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the real CLI in a subprocess, away from any configuration file. */
async function vger(work: string, args: string[]): Promise<Run> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, ...args],
    cwd: work,
    env: { VGER_PASSPHRASE: expected.passphrase, XDG_CONFIG_HOME: work },
    stdin: "null",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

function copyFiles(from: string, to: string): void {
  Deno.mkdirSync(to, { recursive: true });
  for (const e of Deno.readDirSync(from)) {
    if (e.isDirectory) copyFiles(`${from}/${e.name}`, `${to}/${e.name}`);
    else if (e.isFile) Deno.copyFileSync(`${from}/${e.name}`, `${to}/${e.name}`);
  }
}

/** A temp dir holding a copy of the golden repository at `<dir>/repo`; removed after fn. */
async function withGoldenCopy(fn: (work: string, repo: string) => Promise<void>): Promise<void> {
  const work = await Deno.makeTempDir({ prefix: "vger-golden-test-" });
  try {
    copyFiles(GOLDEN_REPO, `${work}/repo`);
    await fn(work, `${work}/repo`);
  } finally {
    await Deno.remove(work, { recursive: true });
  }
}

/** What `list --archive --json` reports of an entry, from the expected description. */
function listed(e: GoldenEntry): Record<string, unknown> {
  return {
    path: e.path,
    type: e.type,
    mode: e.mode,
    uid: e.uid,
    gid: e.gid,
    size: e.size,
    mtime_ns: e.mtime_ns,
    target: e.target,
  };
}

Deno.test("golden repository v1 has the archives and format version the description names", async () => {
  assert.equal(expected.archives.length, 2);
  await withGoldenCopy(async (work, repo) => {
    const config = JSON.parse(await Deno.readTextFile(`${repo}/config`));
    assert.equal(config.vger_repository, expected.format_version);
    assert.deepEqual(config.chunker, expected.chunker);
    const r = await vger(work, ["-R", repo, "--json", "list"]);
    assert.equal(r.code, 0, r.stderr);
    const archives = JSON.parse(r.stdout).archives as { name: string; files: number }[];
    assert.deepEqual(
      archives.map((a) => [a.name, a.files]),
      expected.archives.map((a) => [a.name, a.items.length]),
    );
  });
});

Deno.test("golden repository v1: list --archive --json reports every entry as recorded", async () => {
  await withGoldenCopy(async (work, repo) => {
    for (const archive of expected.archives) {
      const r = await vger(work, ["-R", repo, "--json", "list", "--archive", archive.name]);
      assert.equal(r.code, 0, r.stderr);
      const items = (JSON.parse(r.stdout).items as Record<string, unknown>[]).map((i) => {
        const { user: _u, group: _g, ...rest } = i;
        return rest;
      });
      assert.deepEqual(items, archive.items.map(listed), `archive ${archive.name}`);
    }
  });
});

Deno.test("golden repository v1: extract restores contents, modes, symlinks, xattrs and ns mtimes", async () => {
  const fs = nativeFs();
  assert.ok(fs, "this test needs --allow-ffi on Linux");
  const root = Deno.uid() === 0;
  await withGoldenCopy(async (work, repo) => {
    for (const archive of expected.archives) {
      const dest = `${work}/out-${archive.name}`;
      const r = await vger(work, [
        "-R",
        repo,
        "extract",
        "--archive",
        archive.name,
        "--dest",
        dest,
      ]);
      assert.equal(r.code, 0, r.stderr);
      const storedRoot = archive.items[0].path;
      const restored = await describeEntries(`${dest}/${storedRoot}`, storedRoot);
      // Owners are restored only by root; otherwise the restored files are ours.
      const owners = (e: GoldenEntry) => (root ? e : { ...e, uid: 0, gid: 0 });
      assert.deepEqual(restored.map(owners), archive.items.map(owners), `archive ${archive.name}`);
      // Nothing else was written next to the archived tree.
      assert.deepEqual([...Deno.readDirSync(dest)].map((e) => e.name), [storedRoot.split("/")[0]]);
    }
  });
});

Deno.test("golden repository v1 accepts a new backup from this version and still reads the old archives", async () => {
  await withGoldenCopy(async (work, repo) => {
    const src = `${work}/src`;
    Deno.mkdirSync(src);
    Deno.writeTextFileSync(`${src}/new.txt`, "written by the current version\n".repeat(100));
    let r = await vger(work, ["-R", repo, "backup", "--archive", "golden-3", src]);
    assert.equal(r.code, 0, r.stderr);
    r = await vger(work, ["-R", repo, "--json", "list"]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(
      JSON.parse(r.stdout).archives.map((a: { name: string }) => a.name),
      ["golden-1", "golden-2", "golden-3"],
    );
    const first = expected.archives[0];
    const dest = `${work}/out`;
    r = await vger(work, ["-R", repo, "extract", "--archive", first.name, "--dest", dest]);
    assert.equal(r.code, 0, r.stderr);
    const storedRoot = first.items[0].path;
    const restored = await describeEntries(`${dest}/${storedRoot}`, storedRoot);
    assert.deepEqual(
      restored.map((e) => [e.path, e.sha256]),
      first.items.map((e) => [e.path, e.sha256]),
    );
    r = await vger(work, [
      "-R",
      repo,
      "extract",
      "--archive",
      "golden-3",
      "--dest",
      `${work}/out3`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      Deno.readTextFileSync(`${work}/out3${src}/new.txt`),
      Deno.readTextFileSync(`${src}/new.txt`),
    );
  });
});
