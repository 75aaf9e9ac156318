/**
 * Bad input through the real CLI gets one clear line naming the thing, never a stack trace and
 * never a secret: option values, empty passphrases, huge configurations, archive names, names
 * with control characters, extract destinations and read-only repositories.
 */

import { equal, ok } from "node:assert/strict";
import { initRepo, type RunResult, runVger, withTempDir } from "./_helpers.ts";

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
