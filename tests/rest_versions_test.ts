/**
 * `vger versions` and `vger rollback` through the real CLI against a real vger-server process
 * on 127.0.0.1 (tests/_server.ts): a manifest replaced by garbage is rolled back and the
 * repository is whole again, a second client's rollback protection accepts the rolled-back
 * manifest, `--json`'s shape; a backend without versions fails in one line.
 *
 * @module
 */

import { deepStrictEqual, equal, match, ok } from "node:assert/strict";
import {
  archiveNames,
  assertCheckClean,
  assertDocumented,
  assertRestores,
  FAST_KDF_ARGS,
  initRepo,
  jsonOf as json,
  pseudoRandomBytes,
  readmeJsonTable,
  runVger,
  type TreeSnapshot,
  treeSnapshot,
  withTempDir,
} from "./_helpers.ts";
import { startServer, type TestServer } from "./_server.ts";
import { type RestRepo, restRepo, run, vger, vgerOn } from "./_rest.ts";

/** One client (`who`) of repository `name`: its configuration file and a files cache of its own. */
function client(
  dir: string,
  server: TestServer,
  name: string,
  who: string,
  token = server.token,
): Promise<RestRepo> {
  return restRepo(dir, server, name, {
    token,
    label: who,
    ownCache: true,
    secrets: ["test-token"],
  });
}

interface VersionsJson {
  repository: string;
  versions: { id: string; time: string; manifest_bytes: number; index_bytes: number | null }[];
}

/** Check is clean, the archives are `trees`' and each restores byte for byte. */
async function assertWhole(
  c: RestRepo,
  src: string,
  trees: Map<string, TreeSnapshot>,
  what: string,
): Promise<void> {
  await assertCheckClean(vgerOn(c), what);
  deepStrictEqual(await archiveNames(vgerOn(c)), [...trees.keys()], what);
  for (const [archive, tree] of trees) {
    await assertRestores(vgerOn(c), archive, src, tree, `${what}: ${archive}`);
  }
}

Deno.test("a manifest replaced by garbage is rolled back with vger rollback: whole again, and a second client's rollback protection accepts it", async () => {
  // a full-access server with a retention: versions are kept in every mode then
  const server = await startServer("run", { toml: "version_keep_days = 30\n" });
  try {
    await withTempDir(async (dir) => {
      const name = "laptop";
      const a = await client(dir, server, name, "a");
      const b = await client(dir, server, name, "b");
      const src = `${dir}/src`;
      await Deno.mkdir(src);
      await Deno.writeFile(`${src}/data.bin`, pseudoRandomBytes(2 << 20, 7));
      await run(a, ["init", ...FAST_KDF_ARGS]);
      const trees = new Map<string, TreeSnapshot>();
      for (const archive of ["one", "two"]) {
        await Deno.writeTextFile(`${src}/a.txt`, `version ${archive}\n`.repeat(300));
        await run(a, ["backup", "--archive", archive, src]);
        trees.set(archive, await treeSnapshot(src));
      }
      // the second client sees the newest manifest (and remembers its counter)
      await run(b, ["list"]);

      const before = json<VersionsJson>(await run(a, ["versions", "--json"]));
      equal(before.repository, `${server.url}/${name}`);
      // init's manifest, then one per backup
      equal(before.versions.length, 3, JSON.stringify(before));
      for (const v of before.versions) {
        match(v.id, /^\d{15}-[0-9a-f]{8}$/);
        match(v.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
        equal(new Date(v.time).toISOString(), v.time);
        ok(v.manifest_bytes > 0 && v.index_bytes !== null && v.index_bytes > 0);
      }
      const ids = before.versions.map((v) => v.id);
      deepStrictEqual(ids, [...ids].sort().reverse(), "not newest first");

      // an attacker with the token replaces the manifest (and the index) with garbage
      for (const key of ["manifest", "index"]) {
        const res = await server.fetch(`/${name}/${key}`, {
          method: "PUT",
          body: new TextEncoder().encode(`garbage ${key} `.repeat(20)),
        });
        equal(res.status, 200);
        await res.body?.cancel();
      }
      const broken = await run(a, ["list"], { code: 1 });
      match(broken.stderr, /Manifest/);

      const table = await readmeJsonTable();
      const versionsOut = json<VersionsJson>(await run(a, ["versions", "--json"]));
      assertDocumented(
        table.get("versions")!,
        versionsOut as unknown as Record<string, unknown>,
        "versions --json",
      );
      const after = versionsOut;
      equal(after.versions.length, 4);
      equal(after.versions[1].id, before.versions[0].id, "the garbage is not the newest");
      const text = await run(a, ["versions"]);
      equal(text.stdout.trim().split("\n").length, 4);
      ok(text.stdout.startsWith(after.versions[0].id), text.stdout);

      const rolled = json<{
        rolled_back_to: { id: string };
        archives: number;
        index_restored: boolean;
        manifest_counter: number;
      }>(await run(a, ["rollback", before.versions[0].id, "--json"]));
      assertDocumented(
        table.get("rollback")!,
        rolled as unknown as Record<string, unknown>,
        "rollback --json",
      );
      equal(rolled.rolled_back_to.id, before.versions[0].id);
      equal(rolled.archives, 2);
      equal(rolled.index_restored, true);

      // whole again, for both clients: the second one remembered the manifest before the attack
      await assertWhole(a, src, trees, "after the rollback");
      const listed = json<{ archives: { name: string }[] }>(await run(b, ["list", "--json"]));
      deepStrictEqual(listed.archives.map((x) => x.name), ["one", "two"]);
      // further back, to the version with "one" only: its counter was lower than the one the
      // second client saw since, and the rollback wrote it above
      await run(a, ["rollback", before.versions[1].id]);
      const older = json<{ archives: { name: string }[] }>(await run(b, ["list", "--json"]));
      deepStrictEqual(older.archives.map((x) => x.name), ["one"]);
      await run(b, ["rollback", before.versions[0].id]);
      // the rollback is a version of its own, and backups go on
      equal(json<VersionsJson>(await run(a, ["versions", "--json"])).versions.length, 7);
      await Deno.writeTextFile(`${src}/a.txt`, "version three\n".repeat(300));
      await run(b, ["backup", "--archive", "three", src]);
      trees.set("three", await treeSnapshot(src));
      await assertWhole(a, src, trees, "after a backup");

      // an unknown version is one line
      const unknown = await run(a, ["rollback", "000000000000000-00000000"], { code: 1 });
      match(unknown.stderr, /^vger: No version "000000000000000-00000000" in repository/);
    });
  } finally {
    await server.stop();
  }
});

Deno.test("versions and rollback on a backend without versions fail in one line: they need a vger-server", async () => {
  await withTempDir(async (dir) => {
    const repo = await initRepo(`${dir}/repo`);
    for (const args of [["versions"], ["rollback", "000000000000001-0123abcd"]]) {
      const r = await runVger(["-R", repo, ...args]);
      equal(r.code, 2, r.stderr);
      const lines = r.stderr.trim().split("\n");
      equal(lines.length, 1, r.stderr);
      match(lines[0], /keeps no versions: versions and rollback need a vger-server/);
    }
  });
});

Deno.test("on an append-only server, which refuses deletes and overwrites, vger rollback undoes a garbage manifest", async () => {
  const server = await startServer("serve", { toml: "append_only = true\n" });
  try {
    await withTempDir(async (dir) => {
      const a = await client(dir, server, "nas", "a");
      const src = `${dir}/src`;
      await Deno.mkdir(src);
      await Deno.writeTextFile(`${src}/a.txt`, "append only\n".repeat(500));
      await run(a, ["init", ...FAST_KDF_ARGS]);
      await run(a, ["backup", "--archive", "one", src]);
      const trees = new Map([["one", await treeSnapshot(src)]]);
      const good = json<VersionsJson>(await run(a, ["versions", "--json"])).versions[0];
      const res = await server.fetch("/nas/manifest", {
        method: "PUT",
        body: new TextEncoder().encode("garbage"),
      });
      equal(res.status, 200);
      await res.body?.cancel();
      await run(a, ["list"], { code: 1 });
      const r = await run(a, ["rollback", good.id]);
      match(r.stdout, new RegExp(`^Rolled .*/nas back to version ${good.id} of ${good.time}`));
      await assertWhole(a, src, trees, "after the rollback on an append-only server");
    });
  } finally {
    await server.stop();
  }
});

Deno.test("a read-only token lists the versions and checks, and is refused a rollback up front naming the role needed", async () => {
  const reader = "reader-token-0123456789abcdef";
  const server = await startServer("run", {
    toml: `version_keep_days = 30\n\n[[tokens]]\ntoken = "${reader}"\nrepos = ["*"]\n` +
      'role = "read-only"\n',
  });
  try {
    await withTempDir(async (dir) => {
      const owner = await client(dir, server, "shared", "owner");
      const guest = await client(dir, server, "shared", "guest", reader);
      const src = `${dir}/src`;
      await Deno.mkdir(src);
      await Deno.writeTextFile(`${src}/a.txt`, "read only\n".repeat(500));
      await run(owner, ["init", ...FAST_KDF_ARGS]);
      await run(owner, ["backup", "--archive", "one", src]);
      const mine = json<VersionsJson>(await run(owner, ["versions", "--json"])).versions;
      const theirs = json<VersionsJson>(await run(guest, ["versions", "--json"])).versions;
      deepStrictEqual(theirs, mine);
      const check = json<{ errors: number }>(await run(guest, ["check", "--json"]));
      equal(check.errors, 0);
      const refused = await vger(guest, ["rollback", mine[0].id]);
      equal(refused.code, 1, refused.stderr);
      match(
        refused.stderr.trim(),
        /^vger: Cannot roll back: repository ".*\/shared" needs role append-only or full; this token is read-only$/,
      );
      ok(!refused.stderr.includes(reader));
    });
  } finally {
    await server.stop();
  }
});
