/**
 * Pins how many backend requests of each kind the CLI's read paths and an unchanged re-backup
 * make on a small repository (local backend, counted by tests/counting_backend.ts). On S3 each
 * request is a round trip and costs money, so restructuring must not add any: a count that grows
 * fails here. A count that shrinks is welcome: lower the number here in the same change.
 */

import { deepStrictEqual, equal } from "node:assert/strict";
import { FAST_KDF_ARGS, pseudoRandomBytes, runVger, withTempDir } from "./_helpers.ts";
import { COUNTING_CLI, type RequestCounts } from "./counting_backend.ts";

/** Runs `vger ARGS` with every request counted; fails unless it exits 0. */
async function counted(dir: string, args: string[]): Promise<RequestCounts> {
  const file = `${dir}/counts.json`;
  const r = await runVger(args, { program: COUNTING_CLI, env: { VGER_TEST_COUNTS_FILE: file } });
  equal(r.code, 0, `vger ${args.join(" ")}: ${r.stderr}${r.stdout}`);
  const counts = JSON.parse(await Deno.readTextFile(file)) as RequestCounts;
  await Deno.remove(file);
  return counts;
}

/** Counts with every kind present, for readable failures. */
function requests(counts: Partial<RequestCounts>): RequestCounts {
  return { get: 0, getRange: 0, size: 0, list: 0, put: 0, create: 0, delete: 0, ...counts };
}

Deno.test("list, an unchanged re-backup, list --archive, extract and check make no more backend requests than today", async () => {
  await withTempDir(async (dir) => {
    const src = `${dir}/src`;
    const repo = `${dir}/repo`;
    await Deno.mkdir(`${src}/sub`, { recursive: true });
    await Deno.writeFile(`${src}/big`, pseudoRandomBytes(600_000, 7));
    await Deno.writeTextFile(`${src}/small.txt`, "hello\n");
    await Deno.writeFile(`${src}/sub/mid`, pseudoRandomBytes(70_000, 8));
    await Deno.symlink("../small.txt", `${src}/sub/link`);
    const R = ["-R", repo];
    for (
      const args of [
        [...R, "init", ...FAST_KDF_ARGS],
        [...R, "backup", "--archive", "first", src],
      ]
    ) {
      const r = await runVger(args);
      equal(r.code, 0, `vger ${args.join(" ")}: ${r.stderr}`);
    }

    const got: Record<string, RequestCounts> = {};
    got["list"] = await counted(dir, [...R, "list"]);
    got["backup (unchanged)"] = await counted(dir, [...R, "backup", "--archive", "second", src]);
    got["list --archive"] = await counted(dir, [...R, "list", "--archive", "second"]);
    got["extract"] = await counted(dir, [
      ...R,
      "extract",
      "--archive",
      "second",
      "--dest",
      `${dir}/out`,
    ]);
    got["check"] = await counted(dir, [...R, "check"]);

    // today's numbers: a command whose count grows fails; when one drops, lower it here
    deepStrictEqual(got, {
      // config, key file, manifest: the manifest the open checked is the one listed
      "list": requests({ get: 3 }),
      "backup (unchanged)": requests({ get: 7, list: 2, put: 2, create: 2, delete: 2 }),
      "list --archive": requests({ get: 6, getRange: 1 }),
      "extract": requests({ get: 6, getRange: 3, list: 1, create: 1, delete: 1 }),
      "check": requests({ get: 8, getRange: 5, list: 4, create: 1, delete: 1 }),
    });
  });
});
