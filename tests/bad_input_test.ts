/**
 * Bad input through the real CLI gets one clear line naming the thing, never a stack trace and
 * never a secret: option values, empty passphrases, huge configurations, archive names, names
 * with control characters, extract destinations and read-only repositories.
 */

import { deepStrictEqual, equal, ok } from "node:assert/strict";
import {
  initRepo,
  makeUnprivilegedUser,
  NOBODY_ID,
  restoredPath,
  type RunOptions,
  type RunResult,
  runVger,
  runVgerOk,
  type UnprivilegedUser,
  withTempDir,
} from "./_helpers.ts";

const isRoot = Deno.uid() === 0;

function asUser(user: UnprivilegedUser | undefined): RunOptions {
  return user ? { user } : {};
}

/** Asserts the run failed with `code` and exactly one stderr line matching `line`. */
function assertOneLine(r: RunResult, code: number, line: RegExp | string): void {
  equal(r.code, code, `exit code ${r.code}, stderr: ${r.stderr}`);
  const lines = r.stderr.split("\n").filter((l) => l !== "");
  equal(lines.length, 1, `not one line: ${r.stderr}`);
  ok(!/\n\s+at /.test(r.stderr) && !r.stderr.includes("Unexpected error"), r.stderr);
  if (typeof line === "string") equal(lines[0], line);
  else ok(line.test(lines[0]), `${line} does not match: ${lines[0]}`);
}

Deno.test("--lock-wait -1 or abc: one line saying seconds >= 0 are expected, exit 2", async () => {
  await withTempDir(async (dir) => {
    const repo = await initRepo(`${dir}/repo`);
    for (const bad of ["-1", "abc"]) {
      const r = await runVger(["-R", repo, "backup", "--lock-wait", bad, "-a", "x", dir]);
      assertOneLine(r, 2, `vger: --lock-wait: expected seconds >= 0, got ${bad}`);
    }
    await Deno.mkdir(`${dir}/src`);
    const ok2 = await runVger([
      "-R",
      repo,
      "backup",
      "--lock-wait",
      "1.5",
      "-a",
      "x",
      `${dir}/src`,
    ]);
    equal(ok2.code, 0, ok2.stderr);
  });
});

Deno.test("an empty VGER_PASSPHRASE is one line 'empty passphrase', for init and for an existing repository, exit 2", async () => {
  await withTempDir(async (dir) => {
    const r = await runVger(["-R", `${dir}/new`, "init"], { env: { VGER_PASSPHRASE: "" } });
    assertOneLine(
      r,
      2,
      `vger: Empty passphrase for repository "${dir}/new" (from VGER_PASSPHRASE)`,
    );
    let created = true;
    try {
      await Deno.lstat(`${dir}/new`);
    } catch {
      created = false;
    }
    ok(!created, "init created a repository with an empty passphrase");
    const repo = await initRepo(`${dir}/repo`);
    const l = await runVger(["-R", repo, "list"], { env: { VGER_PASSPHRASE: "" } });
    assertOneLine(l, 2, `vger: Empty passphrase for repository "${repo}" (from VGER_PASSPHRASE)`);
  });
});

Deno.test("--config /dev/zero or a configuration past 1 MiB is refused with one line, exit 2", async () => {
  await withTempDir(async (dir) => {
    const big = `${dir}/big.yaml`;
    await Deno.writeTextFile(big, `repositories:\n  - path: ${dir}/r\n# ${"x".repeat(2 << 20)}\n`);
    for (const file of ["/dev/zero", big]) {
      const r = await runVger(["--config", file, "list"], { timeoutMs: 60_000 });
      ok(!r.timedOut, `vger read ${file} without end`);
      assertOneLine(
        r,
        2,
        `vger: Cannot read configuration ${file}: larger than 1048576 bytes ` +
          "(the limit for a configuration)",
      );
    }
  });
});

Deno.test("a passphrase given as a YAML number is refused without printing it, exit 2", async () => {
  await withTempDir(async (dir) => {
    const file = `${dir}/vger.yaml`;
    await Deno.writeTextFile(
      file,
      `repositories:\n  - path: ${dir}/repo\nencryption:\n  passphrase: 73519846\n`,
    );
    const r = await runVger(["--config", file, "list"]);
    assertOneLine(r, 2, /encryption\.passphrase: expected a string/);
    ok(!r.stderr.includes("73519846") && !r.stdout.includes("73519846"), r.stderr);
  });
});

/** Relative path -> size of every file under `root`. */
async function filesUnder(root: string, rel = ""): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for await (const e of Deno.readDir(rel ? `${root}/${rel}` : root)) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory) Object.assign(out, await filesUnder(root, r));
    else out[r] = (await Deno.lstat(`${root}/${r}`)).size;
  }
  return out;
}

Deno.test("archive names: empty, with '/', '.', '..', control characters or past 255 bytes exit 2 before anything is written", async () => {
  await withTempDir(async (dir) => {
    const src = `${dir}/src`;
    await Deno.mkdir(src);
    await Deno.writeTextFile(`${src}/a.txt`, "data\n");
    const repo = await initRepo(`${dir}/repo`);
    const before = await filesUnder(repo);
    const bad: [string, RegExp][] = [
      ["", /^vger: Invalid archive name "": it is empty$/],
      ["a/b", /^vger: Invalid archive name "a\/b": it contains "\/"$/],
      ["../../etc", /^vger: Invalid archive name "\.\.\/\.\.\/etc": it contains "\/"$/],
      [".", /: "\." and "\.\." are not archive names$/],
      ["..", /: "\." and "\.\." are not archive names$/],
      ["two\nlines", /^vger: Invalid archive name "two\\nlines": it contains control characters$/],
      ["bell\x07\x1b[2J", /"bell\\x07\\x1b\[2J": it contains control characters$/],
      ["é".repeat(128), /: 256 bytes long, at most 255 are allowed$/],
      ["x".repeat(100_000), /: 100000 bytes long, at most 255 are allowed$/],
    ];
    for (const [name, line] of bad) {
      const r = await runVger(["-R", repo, "backup", "--archive", name, src]);
      assertOneLine(r, 2, line);
      ok(!r.stderr.includes("\x1b") && !r.stderr.includes("\x07"), r.stderr);
    }
    equal(JSON.stringify(await filesUnder(repo)), JSON.stringify(before), "the repository changed");
    const good = "host — 2026-12-04 10:00 ✓" + "x".repeat(255 - 29);
    equal(new TextEncoder().encode(good).length, 255);
    const r = await runVger(["-R", repo, "backup", "--archive", good, src]);
    equal(r.code, 0, r.stderr);
  });
});

Deno.test("names with control characters are escaped in list, warnings and errors; --json keeps them exact", async () => {
  await withTempDir(async (dir) => {
    const src = `${dir}/src`;
    await Deno.mkdir(src);
    const evil = "evil\x1b[2J\x1b]0;pwned\x07\nname\u202e.txt";
    await Deno.writeTextFile(`${src}/${evil}`, "data\n");
    // a socket: backup skips it with a warning that names it
    const socket = Deno.listen({ transport: "unix", path: `${src}/sock\x1b[31m` });
    const repo = await initRepo(`${dir}/repo`);
    const b = await runVger(["-R", repo, "backup", "--archive", "one", src]);
    socket.close();
    equal(b.code, 3, b.stderr);
    const escapedSocket = `${src}/sock\\x1b[31m`;
    ok(b.stderr.includes(`warning: Skipped "${escapedSocket}"`), b.stderr);
    ok(!b.stderr.includes("\x1b"), `raw escape in the warning: ${JSON.stringify(b.stderr)}`);

    const l = await runVger(["-R", repo, "list", "--archive", "one"]);
    equal(l.code, 0, l.stderr);
    ok(
      // deno-lint-ignore no-control-regex
      !/[\x00-\x09\x0b-\x1f\x7f\u202e]/.test(l.stdout),
      `raw control: ${JSON.stringify(l.stdout)}`,
    );
    ok(
      l.stdout.includes("evil\\x1b[2J\\x1b]0;pwned\\x07\\nname\\u{202e}.txt"),
      JSON.stringify(l.stdout),
    );
    const j = await runVger(["-R", repo, "list", "--archive", "one", "--json"]);
    const paths = (JSON.parse(j.stdout) as { items: { path: string }[] }).items.map((i) => i.path);
    ok(paths.includes(`${src.slice(1)}/${evil}`), JSON.stringify(paths));

    const e = await runVger([
      "-R",
      repo,
      "extract",
      "--archive",
      "no\x1b[2Jsuch",
      "--dest",
      `${dir}/o`,
    ]);
    equal(e.code, 1, e.stderr);
    ok(e.stderr.includes("no\\x1b[2Jsuch") && !e.stderr.includes("\x1b"), e.stderr);
  });
});

Deno.test("extract --dest under a regular file, on a file or unwritable: one line naming the path, exit 2", async () => {
  // root writes everywhere: the unwritable case runs as nobody through setpriv
  const user = isRoot ? await makeUnprivilegedUser(NOBODY_ID, NOBODY_ID) : undefined;
  try {
    await withTempDir(async (dir) => {
      await Deno.chmod(dir, 0o755);
      const src = `${dir}/src`;
      await Deno.mkdir(src);
      await Deno.writeTextFile(`${src}/a.txt`, "data\n");
      const repo = await initRepo(`${dir}/repo`);
      await runVgerOk(["-R", repo, "backup", "--archive", "one", src]);
      await Deno.writeTextFile(`${dir}/file`, "a file\n");
      const extract = (dest: string, options: RunOptions = {}) =>
        runVger(["-R", repo, "extract", "--archive", "one", "--dest", dest], options);
      assertOneLine(
        await extract(`${dir}/file/sub`),
        2,
        `vger: Cannot extract to "${dir}/file/sub": a parent of it is not a directory`,
      );
      assertOneLine(
        await extract(`${dir}/file`),
        2,
        `vger: Cannot extract to "${dir}/file": it exists and is not a directory`,
      );
      // readable for the other user, writable by nobody but root
      const chmod = await new Deno.Command("chmod", { args: ["-R", "a+rX,go-w", dir] }).output();
      equal(chmod.code, 0);
      await Deno.mkdir(`${dir}/ro`, { mode: 0o555 });
      await Deno.chmod(`${dir}/ro`, 0o555);
      if (user) {
        // the repository must be the user's to lock it; the destination stays root's
        const chown = await new Deno.Command("chown", {
          args: ["-R", `${user.uid}:${user.gid}`, repo],
        }).output();
        equal(chown.code, 0);
      }
      for (const dest of [`${dir}/ro`, `${dir}/ro/out`]) {
        assertOneLine(
          await extract(dest, asUser(user)),
          2,
          `vger: Cannot extract to "${dest}": permission denied`,
        );
      }
    });
  } finally {
    await user?.cleanup();
  }
});

Deno.test("a read-only repository: list, extract and check work with --no-lock; without it one clear line; writing commands refuse --no-lock", async () => {
  const user = isRoot ? await makeUnprivilegedUser(NOBODY_ID, NOBODY_ID) : undefined;
  try {
    await withTempDir(async (dir) => {
      await Deno.chmod(dir, 0o755);
      const src = `${dir}/src`;
      await Deno.mkdir(`${src}/sub`, { recursive: true });
      await Deno.writeTextFile(`${src}/a.txt`, "data\n");
      await Deno.writeTextFile(`${src}/sub/b.txt`, "more data\n");
      const repo = await initRepo(`${dir}/repo`);
      await runVgerOk(["-R", repo, "backup", "--archive", "one", src]);
      // another user's repository: readable, not writable (as a read-only mount or snapshot)
      const chmod = await new Deno.Command("chmod", { args: ["-R", "a+rX,a-w", repo] }).output();
      equal(chmod.code, 0);
      const before = await filesUnder(repo);
      const as = asUser(user);
      const dest = user ? `${user.home}/out` : `${dir}/out`;
      const readOnly =
        `vger: Cannot lock repository "${repo}": read-only (permission denied; use --no-lock for list, extract and check)`;
      try {
        const list = await runVger(["-R", repo, "list"], as);
        equal(list.code, 0, list.stderr);
        ok(list.stdout.startsWith("one "), list.stdout);
        const items = await runVger(["-R", repo, "--no-lock", "list", "--archive", "one"], as);
        equal(items.code, 0, items.stderr);
        ok(items.stdout.includes("sub/b.txt"), items.stdout);

        assertOneLine(
          await runVger(["-R", repo, "extract", "--archive", "one", "--dest", dest], as),
          1,
          readOnly,
        );
        assertOneLine(await runVger(["-R", repo, "check"], as), 1, readOnly);

        const x = await runVger(
          ["-R", repo, "extract", "--no-lock", "--archive", "one", "--dest", dest],
          as,
        );
        equal(x.code, 0, x.stderr);
        const out = restoredPath(dest, src);
        equal(await Deno.readTextFile(`${out}/a.txt`), "data\n");
        equal(await Deno.readTextFile(`${out}/sub/b.txt`), "more data\n");
        const c = await runVger(["-R", repo, "check", "--no-lock", "--verify-data"], as);
        equal(c.code, 0, c.stdout + c.stderr);

        for (
          const args of [
            ["backup", "--no-lock", "--archive", "two", src],
            ["check", "--repair", "--no-lock"],
            ["--no-lock", "prune"],
          ]
        ) {
          const r = await runVger(["-R", repo, ...args], as);
          assertOneLine(
            r,
            2,
            `vger: --no-lock is only for list, extract and check without --repair, not ${
              args.find((a) => !a.startsWith("-"))
            }`,
          );
        }
        deepStrictEqual(await filesUnder(repo), before, "the read-only repository changed");
      } finally {
        await new Deno.Command("chmod", { args: ["-R", "u+w", repo] }).output();
      }
    });
  } finally {
    await user?.cleanup();
  }
});
