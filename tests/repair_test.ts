/**
 * `check --repair` keeps what can be kept and the next backup heals the rest (issue 8, part 2):
 * a damaged data pack costs file contents, never an archive's list; repair salvages every blob
 * that still verifies into a new pack and drops the rest from the index; a backup of the same
 * source (files cache and all) stores the lost chunks again, so the oldest archive is whole.
 */

import { deepStrictEqual, equal, ok } from "node:assert/strict";
import {
  initRepo,
  pseudoRandomBytes,
  runVger,
  runVgerOk,
  sha256File,
  storedPath,
  withTempDir,
} from "./_helpers.ts";

interface RepairJson {
  index_written: boolean;
  broken_archives: { name: string }[];
  removed_archives: string[];
  salvaged_packs: { key: string; reason: string; kept: number; lost: number; removed: boolean }[];
  damaged_files: { archive: string; path: string; missing_chunks: number }[];
  damaged_files_truncated: boolean;
}

interface CheckJson {
  problems: { kind: string; severity: string; message: string }[];
}

/** The packs of a repository, largest first: [storage key, size]. */
async function packsBySize(repo: string): Promise<[string, number][]> {
  const out: [string, number][] = [];
  for await (const d of Deno.readDir(`${repo}/packs`)) {
    if (!d.isDirectory) continue;
    for await (const f of Deno.readDir(`${repo}/packs/${d.name}`)) {
      const key = `packs/${d.name}/${f.name}`;
      out.push([key, (await Deno.stat(`${repo}/${key}`)).size]);
    }
  }
  return out.sort((a, b) => b[1] - a[1]);
}

/** Every file of a repository and the SHA-256 of its bytes (a dry run must change none). */
async function repoState(repo: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (dir: string): Promise<void> => {
    for await (const d of Deno.readDir(`${repo}/${dir}`)) {
      const rel = dir ? `${dir}/${d.name}` : d.name;
      if (d.isDirectory) await walk(rel);
      else if (!rel.startsWith("locks/")) out[rel] = await sha256File(`${repo}/${rel}`);
    }
  };
  await walk("");
  return out;
}

/** Source files for the first archive: ~10 MiB in files of a few chunks each. */
const FILES: Record<string, number> = {
  "a.bin": 2_600_000,
  "b.bin": 1_900_000,
  "c.bin": 3_100_000,
  "d.bin": 1_200_000,
  "e.bin": 2_200_000,
  "small.txt": 5_000,
};

/**
 * Two archives of one source ("one", then "two" with one more file), the largest pack damaged,
 * `check --verify-data --repair --yes`, a backup of the same source, then the checks of the
 * issue. Returns what repair reported.
 */
async function damageRepairHeal(
  damage: (file: string, size: number) => Promise<void>,
  options: { dryRunFirst: boolean; verifyData: boolean },
): Promise<RepairJson> {
  return await withTempDir(async (dir) => {
    const repo = await initRepo(`${dir}/repo`);
    const src = `${dir}/src`;
    await Deno.mkdir(src);
    let seed = 1;
    for (const [name, size] of Object.entries(FILES)) {
      await Deno.writeFile(`${src}/${name}`, pseudoRandomBytes(size, seed++));
    }
    // the files cache records only files whose ctime is 2 s older than the backup
    await new Promise((resolve) => setTimeout(resolve, 2100));
    const original: Record<string, string> = {};
    for (const name of Object.keys(FILES)) original[name] = await sha256File(`${src}/${name}`);
    await runVgerOk(["-R", repo, "backup", "--archive", "one", src]);
    await Deno.writeFile(`${src}/later.bin`, pseudoRandomBytes(700_000, 99));
    const two = await runVgerOk(["-R", repo, "backup", "--archive", "two", src, "--json"]);
    equal(JSON.parse(two.stdout).unchanged_files, Object.keys(FILES).length, "the cache is used");

    const [[victim, size]] = await packsBySize(repo);
    await damage(`${repo}/${victim}`, size);
    const before = await runVger(["-R", repo, "check", "--verify-data", "--json"]);
    equal(before.code, 1, `the damage is found: ${before.stdout}`);

    const repairArgs = [
      "-R",
      repo,
      "check",
      ...(options.verifyData ? ["--verify-data"] : []),
      "--repair",
      "--yes",
      "--json",
    ];
    let dry: RepairJson | null = null;
    if (options.dryRunFirst) {
      const state = await repoState(repo);
      const r = await runVgerOk([...repairArgs, "--dry-run"]);
      dry = JSON.parse(r.stdout) as RepairJson;
      deepStrictEqual(await repoState(repo), state, "a dry run writes nothing");
      equal(dry.index_written, false);
      const text = await runVgerOk([
        "-R",
        repo,
        "check",
        "--verify-data",
        "--repair",
        "--dry-run",
        "--progress",
      ]);
      ok(/damaged pack .* would copy/.test(text.stdout), text.stdout);
      ok(/damaged file one:\/.*chunks lost/.test(text.stdout), text.stdout);
      ok(/verify: .*packs/.test(text.stderr), `progress of reading the packs: ${text.stderr}`);
    }

    const r = await runVgerOk(repairArgs);
    const repair = JSON.parse(r.stdout) as RepairJson;
    equal(repair.index_written, true, r.stdout);
    deepStrictEqual(repair.broken_archives, [], "every archive's file list reads");
    deepStrictEqual(repair.removed_archives, [], "no archive is removed");
    equal(repair.salvaged_packs.length, 1, r.stdout);
    const salvaged = repair.salvaged_packs[0];
    equal(salvaged.key, victim);
    ok(salvaged.lost > 0, r.stdout);
    equal(salvaged.removed, true, "the damaged pack is deleted once the index is written");
    equal(await Deno.stat(`${repo}/${victim}`).then(() => true, () => false), false);
    // files with lost chunks are reported, in both archives, by their stored paths
    ok(repair.damaged_files.length > 0, r.stdout);
    const damagedOne = repair.damaged_files.filter((f) => f.archive === "one").map((f) => f.path);
    ok(damagedOne.length > 0 && damagedOne.length < Object.keys(FILES).length, r.stdout);
    for (const p of damagedOne) ok(p.startsWith(storedPath(src) + "/"), p);
    deepStrictEqual(
      repair.damaged_files.filter((f) => f.archive === "two").map((f) => f.path),
      damagedOne,
      "two shares the damaged chunks of one",
    );
    if (dry) {
      deepStrictEqual(dry.damaged_files, repair.damaged_files, "the dry run reports the same");
      deepStrictEqual(
        dry.salvaged_packs.map((p) => ({ ...p, removed: true })),
        repair.salvaged_packs,
      );
    }

    const list = await runVgerOk(["-R", repo, "list", "--json"]);
    deepStrictEqual(
      JSON.parse(list.stdout).archives.map((a: { name: string }) => a.name),
      ["one", "two"],
    );
    // until the next backup, the lost chunks are missing (and only those files fail)
    const between = await runVger(["-R", repo, "check", "--verify-data", "--json"]);
    equal(between.code, 1, between.stdout);
    deepStrictEqual(
      [...new Set((JSON.parse(between.stdout) as CheckJson).problems.map((p) => p.kind))],
      ["missing-chunk"],
      between.stdout,
    );

    // the files are unchanged (the files cache knows them): those with lost chunks, and only
    // those, are read again, and their chunks stored again
    const three = await runVgerOk(["-R", repo, "backup", "--archive", "three", src, "--json"]);
    const threeJson = JSON.parse(three.stdout);
    const whole = Object.keys(FILES).length - damagedOne.length;
    // later.bin, new in "two" and written just before it, may or may not be cached
    ok(
      [whole, whole + 1].includes(threeJson.unchanged_files),
      `${threeJson.unchanged_files} unchanged files, ${damagedOne.length} damaged`,
    );
    ok(threeJson.deduplicated_size > 0, "the lost chunks are stored again");
    const after = await runVger(["-R", repo, "check", "--verify-data", "--json"]);
    equal(after.code, 0, after.stdout);
    deepStrictEqual(
      (JSON.parse(after.stdout) as CheckJson).problems.filter((p) => p.severity === "error"),
      [],
    );
    const dest = `${dir}/restore`;
    await runVgerOk(["-R", repo, "extract", "--archive", "one", "--dest", dest]);
    for (const [name, hash] of Object.entries(original)) {
      equal(await sha256File(`${dest}/${storedPath(src)}/${name}`), hash, name);
    }
    equal(await Deno.stat(`${dest}/${storedPath(src)}/later.bin`).then(() => 1, () => 0), 0);
    return repair;
  });
}

Deno.test(
  "a flipped byte in the largest pack: verify-data repair drops the corrupt chunk, keeps both " +
    "archives, and the next backup makes the oldest archive whole",
  async () => {
    const repair = await damageRepairHeal(async (file, size) => {
      const b = await Deno.readFile(file);
      b[Math.floor(size / 2)] ^= 0x01;
      await Deno.writeFile(file, b);
    }, { dryRunFirst: true, verifyData: true });
    ok(repair.salvaged_packs[0].kept > 0, "the other blobs of the pack are salvaged");
    equal(repair.salvaged_packs[0].lost, 1);
  },
);

for (const verifyData of [false, true]) {
  Deno.test(
    `a pack truncated to half: check${verifyData ? " --verify-data" : ""} --repair salvages ` +
      "the first half by the old index, keeps both archives, and the next backup makes the " +
      "oldest archive whole",
    async () => {
      const repair = await damageRepairHeal(async (file, size) => {
        await Deno.truncate(file, Math.floor(size / 2));
      }, { dryRunFirst: false, verifyData });
      ok(repair.salvaged_packs[0].kept > 0, "the blobs of the first half are salvaged");
      ok(
        /header|truncated|fit/.test(repair.salvaged_packs[0].reason),
        repair.salvaged_packs[0].reason,
      );
    },
  );
}
