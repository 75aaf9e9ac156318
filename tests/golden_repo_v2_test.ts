/**
 * The second golden repository `tests/testdata/repo-v2` (written once by
 * tests/make_golden_repo_v2.ts) pins the item types of issue 13: FIFOs, devices, hardlink groups,
 * ACLs and xattrs of every namespace, and the archive's command line. This version, and every
 * later one, must list it and restore it as `repo-v2.expected.json` says. The tests work on a
 * temporary copy; the committed repository is never opened for writing.
 */

import assert from "node:assert/strict";
import { LocalBackend } from "../backends/local.ts";
import { Repository } from "../lib/repository.ts";
import {
  describeV2,
  GOLDEN_V2_EXPECTED,
  GOLDEN_V2_REPO,
  type GoldenV2Expected,
} from "./make_golden_repo_v2.ts";
import { CLI_PATH } from "./_helpers.ts";

const expected: GoldenV2Expected = JSON.parse(await Deno.readTextFile(GOLDEN_V2_EXPECTED));

async function vger(work: string, args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI_PATH, ...args],
    cwd: work,
    env: { VGER_PASSPHRASE: expected.passphrase, XDG_CONFIG_HOME: work },
    stdin: "null",
    signal: AbortSignal.timeout(120_000),
  }).output();
  const d = new TextDecoder();
  return { code: out.code, stdout: d.decode(out.stdout), stderr: d.decode(out.stderr) };
}

function copyFiles(from: string, to: string): void {
  Deno.mkdirSync(to, { recursive: true });
  for (const e of Deno.readDirSync(from)) {
    if (e.isDirectory) copyFiles(`${from}/${e.name}`, `${to}/${e.name}`);
    else if (e.isFile) Deno.copyFileSync(`${from}/${e.name}`, `${to}/${e.name}`);
  }
}

async function withCopy(fn: (work: string, repo: string) => Promise<void>): Promise<void> {
  const work = await Deno.makeTempDir({ prefix: "vger-golden-v2-test-" });
  try {
    copyFiles(GOLDEN_V2_REPO, `${work}/repo`);
    await fn(work, `${work}/repo`);
  } finally {
    await Deno.remove(work, { recursive: true });
  }
}

Deno.test("golden repository v2: list --archive --json reports every item, type, device and hardlink as recorded", async () => {
  await withCopy(async (work, repo) => {
    const r = await vger(work, ["-R", repo, "--json", "list", "--archive", expected.archive]);
    assert.equal(r.code, 0, r.stderr);
    const items = (JSON.parse(r.stdout).items as Record<string, unknown>[]).map((i) => {
      const { user: _u, group: _g, ...rest } = i;
      return rest;
    });
    assert.deepEqual(items, expected.items);
    const types = new Set(items.map((i) => i.type));
    for (const t of ["dir", "file", "symlink", "fifo", "chardev", "blockdev"]) {
      assert.ok(types.has(t), t);
    }
    assert.ok(items.filter((i) => i.hardlink !== undefined).length >= 7);
  });
});

Deno.test("golden repository v2: the archive metadata holds its command line and sources", async () => {
  await withCopy(async (_work, repo) => {
    const backend = new LocalBackend(repo);
    try {
      const r = await Repository.open(backend, { passphrase: expected.passphrase });
      const meta = await r.readArchive(await r.findArchive(expected.archive));
      assert.deepEqual(meta.commandLine, expected.command_line);
      assert.deepEqual(meta.sources, expected.sources);
    } finally {
      await backend.close();
    }
  });
});

Deno.test("golden repository v2: extract restores types, devices, hardlinks, ACLs, xattrs and ns mtimes", async () => {
  const root = Deno.uid() === 0;
  await withCopy(async (work, repo) => {
    const dest = `${work}/out`;
    const r = await vger(work, [
      "-R",
      repo,
      "extract",
      "--archive",
      expected.archive,
      "--dest",
      dest,
    ]);
    // as another user: devices, owners, trusted and security xattrs are skipped (exit 3)
    assert.equal(r.code, root ? 0 : 3, r.stderr);
    const got = describeV2(`${dest}/${expected.sources[0].slice(1)}`);
    if (root) {
      assert.deepEqual(got, expected.restored);
      return;
    }
    for (const [p, e] of Object.entries(expected.restored)) {
      if (e.type === "char" || e.type === "block") continue;
      assert.deepEqual(
        [got[p].type, got[p].mode, got[p].mtime_ns, got[p].text, got[p].inode],
        [e.type, e.mode, e.mtime_ns, e.text, e.inode],
        p,
      );
    }
  });
});
