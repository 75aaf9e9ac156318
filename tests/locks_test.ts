/** Repository locks through the real CLI: conflicts, --lock-wait, stale locks and break-lock. */

import { deepStrictEqual, equal, ok } from "node:assert/strict";
import { initRepo, runVger, runVgerOk, withTempDir } from "./_helpers.ts";

const OTHER_LOCK = "a".repeat(64);

async function writeLock(repo: string, info: object): Promise<void> {
  await Deno.mkdir(`${repo}/locks`, { recursive: true });
  await Deno.writeTextFile(`${repo}/locks/${OTHER_LOCK}`, JSON.stringify(info));
}

Deno.test("a live exclusive lock of another host blocks backup with a clear message until broken", async () => {
  await withTempDir(async (dir) => {
    const src = `${dir}/src`;
    await Deno.mkdir(src);
    await Deno.writeTextFile(`${src}/f`, "x");
    const repo = await initRepo(`${dir}/repo`);
    const time = new Date().toISOString();
    await writeLock(repo, {
      host: "elsewhere",
      pid: 4242,
      time,
      exclusive: true,
      command: "prune",
    });

    const r = await runVger(["-R", repo, "backup", "--archive", "one", src]);
    equal(r.code, 1, r.stderr);
    ok(r.stderr.includes(`is locked by elsewhere/4242 since ${time}`), r.stderr);

    const started = performance.now();
    const waited = await runVger([
      "-R",
      repo,
      "backup",
      "--lock-wait",
      "1",
      "--archive",
      "one",
      src,
    ]);
    equal(waited.code, 1, waited.stderr);
    ok(performance.now() - started >= 1000, "--lock-wait 1 should wait a second");

    // break-lock without --all keeps a live lock; with --all it goes
    const kept = await runVgerOk(["-R", repo, "break-lock"]);
    ok(kept.stdout.includes("No stale locks"), kept.stdout);
    const broke = await runVgerOk(["-R", repo, "break-lock", "--all"]);
    ok(broke.stdout.includes("elsewhere/4242"), broke.stdout);
    await runVgerOk(["-R", repo, "backup", "--archive", "one", src]);
    deepStrictEqual([...Deno.readDirSync(`${repo}/locks`)].map((e) => e.name), []);
  });
});

Deno.test("a stale lock (old, or of a dead process on this host) does not block and break-lock removes it", async () => {
  await withTempDir(async (dir) => {
    const src = `${dir}/src`;
    await Deno.mkdir(src);
    const repo = await initRepo(`${dir}/repo`);
    await writeLock(repo, {
      host: "elsewhere",
      pid: 1,
      time: "2020-01-01T00:00:00.000Z",
      exclusive: true,
      command: "compact",
    });
    await runVgerOk(["-R", repo, "backup", "--archive", "one", src]);
    // check passes and names it as a warning
    const check = await runVgerOk(["-R", repo, "check", "--json"]);
    const report = JSON.parse(check.stdout);
    equal(report.errors, 0);
    const stale = report.problems.filter((p: { kind: string }) => p.kind === "stale-lock");
    equal(stale.length, 1, check.stdout);
    ok(/compact on elsewhere \(pid 1\).*vger break-lock/.test(stale[0].message), stale[0].message);
    const broke = await runVgerOk(["-R", repo, "break-lock", "--json"]);
    deepStrictEqual(JSON.parse(broke.stdout).removed.map((l: { host: string }) => l.host), [
      "elsewhere",
    ]);
    const clean = JSON.parse((await runVgerOk(["-R", repo, "check", "--json"])).stdout);
    equal(clean.problems.length, 0, "no stale lock after break-lock");
  });
});

Deno.test("compact refuses to run while a backup's shared lock is held", async () => {
  await withTempDir(async (dir) => {
    const repo = await initRepo(`${dir}/repo`);
    await writeLock(repo, {
      host: "elsewhere",
      pid: 99,
      time: new Date().toISOString(),
      exclusive: false,
      command: "backup",
    });
    const r = await runVger(["-R", repo, "compact"]);
    equal(r.code, 1, r.stderr);
    ok(r.stderr.includes("locked by elsewhere/99") && r.stderr.includes("backup"), r.stderr);
    // a second shared user is fine: a backup runs beside the other backup's lock
    await Deno.mkdir(`${dir}/src`);
    await runVgerOk(["-R", repo, "backup", "--archive", "beside", `${dir}/src`]);
  });
});
