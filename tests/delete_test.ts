/** `vger delete`: archives leave the manifest, others stay restorable, mistakes change nothing. */

import { deepStrictEqual, equal, ok } from "node:assert/strict";
import { initRepo, runVger, runVgerOk, withTempDir } from "./_helpers.ts";

async function archiveNames(repo: string): Promise<string[]> {
  const r = await runVgerOk(["-R", repo, "list", "--json"]);
  return JSON.parse(r.stdout).archives.map((a: { name: string }) => a.name);
}

Deno.test("delete removes the named archives and keeps the others restorable", async () => {
  await withTempDir(async (dir) => {
    const src = `${dir}/src`;
    await Deno.mkdir(src);
    await Deno.writeTextFile(`${src}/a.txt`, "first\n");
    const repo = await initRepo(`${dir}/repo`);
    for (const name of ["one", "two", "three"]) {
      await runVgerOk(["-R", repo, "backup", "--archive", name, src]);
    }
    const dry = await runVgerOk(
      ["-R", repo, "delete", "--archive", "one", "--archive", "two", "--dry-run"],
    );
    ok(dry.stdout.includes("Would delete archive one"), dry.stdout);
    deepStrictEqual(await archiveNames(repo), ["one", "two", "three"]);

    const r = await runVgerOk([
      "-R",
      repo,
      "delete",
      "--archive",
      "one",
      "--archive",
      "two",
      "--json",
    ]);
    deepStrictEqual(JSON.parse(r.stdout).archives.map((a: { name: string }) => a.name), [
      "one",
      "two",
    ]);
    deepStrictEqual(await archiveNames(repo), ["three"]);
    // the archive objects are gone too; the remaining one restores
    equal([...Deno.readDirSync(`${repo}/archives`)].length, 1);
    await runVgerOk(["-R", repo, "extract", "--archive", "three", "--dest", `${dir}/out`]);
    equal(await Deno.readTextFile(`${dir}/out${src}/a.txt`), "first\n");
  });
});

Deno.test("delete of a name that does not exist fails, names it and deletes nothing", async () => {
  await withTempDir(async (dir) => {
    const src = `${dir}/src`;
    await Deno.mkdir(src);
    const repo = await initRepo(`${dir}/repo`);
    await runVgerOk(["-R", repo, "backup", "--archive", "keep", src]);
    const r = await runVger(["-R", repo, "delete", "--archive", "keep", "--archive", "nope"]);
    equal(r.code, 1);
    ok(r.stderr.includes('"nope" not found'), r.stderr);
    deepStrictEqual(await archiveNames(repo), ["keep"]);
    const usage = await runVger(["-R", repo, "delete"]);
    equal(usage.code, 2, usage.stderr);
  });
});
