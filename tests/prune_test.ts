/** `vger prune` through the real CLI: the retention policy of the config decides what goes. */

import { deepStrictEqual, equal, ok } from "node:assert/strict";
import { initRepo, runVgerOk, withTempDir } from "./_helpers.ts";

async function names(config: string): Promise<string[]> {
  const r = await runVgerOk(["--config", config, "list", "--json"]);
  return JSON.parse(r.stdout).archives.map((a: { name: string }) => a.name);
}

Deno.test("prune keeps what keep_last keeps, --dry-run and --list change nothing", async () => {
  await withTempDir(async (dir) => {
    const src = `${dir}/src`;
    await Deno.mkdir(src);
    await Deno.writeTextFile(`${src}/f`, "data\n");
    const repo = await initRepo(`${dir}/repo`);
    const config = `${dir}/vger.yaml`;
    await Deno.writeTextFile(
      config,
      `repositories:\n  - path: "${repo}"\nsource_directories: ["${src}"]\n` +
        `retention:\n  keep_last: 2\n`,
    );
    for (const n of ["a1", "a2", "a3", "a4"]) {
      await runVgerOk(["--config", config, "backup", "--archive", n]);
    }
    const dry = await runVgerOk(["--config", config, "prune", "--dry-run", "--json"]);
    const plan = JSON.parse(dry.stdout);
    deepStrictEqual(
      plan.archives.map((a: { name: string; keep: boolean }) => [a.name, a.keep]),
      [["a4", true], ["a3", true], ["a2", false], ["a1", false]],
    );
    deepStrictEqual(plan.archives[0].reasons, ["last"]);
    deepStrictEqual(await names(config), ["a1", "a2", "a3", "a4"]);

    const listed = await runVgerOk(["--config", config, "prune", "--list"]);
    ok(/keep\s+a4 .*\(last\)/.test(listed.stdout), listed.stdout);
    ok(/prune\s+a1 /.test(listed.stdout), listed.stdout);
    deepStrictEqual(await names(config), ["a3", "a4"]);
    await runVgerOk(["--config", config, "extract", "--archive", "a3", "--dest", `${dir}/out`]);
    equal(await Deno.readTextFile(`${dir}/out${src}/f`), "data\n");
  });
});

Deno.test("prune with an empty policy prunes nothing and says so", async () => {
  await withTempDir(async (dir) => {
    const src = `${dir}/src`;
    await Deno.mkdir(src);
    const repo = await initRepo(`${dir}/repo`);
    const config = `${dir}/vger.yaml`;
    await Deno.writeTextFile(config, `repositories:\n  - path: "${repo}"\n`);
    await runVgerOk(["--config", config, "backup", "--archive", "only", src]);
    const r = await runVgerOk(["--config", config, "prune"]);
    ok(r.stderr.includes("retention policy") && r.stderr.includes("empty"), r.stderr);
    deepStrictEqual(await names(config), ["only"]);
  });
});
