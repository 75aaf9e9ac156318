/**
 * The whole program over REST: the real `vger` CLI in subprocesses against a real vger-server
 * process on 127.0.0.1 (tests/_server.ts), under `deno run ... --config` and under `deno serve`.
 * The command cycle (init, backups, list, extract byte for byte, check --verify-data, delete,
 * prune, compact, check again); an append-only server, on which backups go on and every command
 * that would delete or overwrite refuses up front in one line; a quota a backup would exceed;
 * clients backing up at once, one SIGKILLed mid-upload; a server SIGKILLed and restarted under a
 * backup; and bad input (a wrong token, an
 * unknown repository, a server that is not there), each one line, never the token.
 *
 * @module
 */

import { deepStrictEqual, equal, match, ok } from "node:assert/strict";
import {
  archiveNames,
  assertCheckClean,
  assertOneLine,
  assertRestores,
  FAST_KDF_ARGS,
  jsonOf as json,
  pseudoRandomBytes,
  runVger,
  spawnVger,
  type TreeSnapshot,
  treeSnapshot,
  withTempDir,
} from "./_helpers.ts";
import {
  fixedPortConfig,
  killableServer,
  startServer,
  type TestServer,
  withServer,
} from "./_server.ts";
import { listedKeys, restRepo, run, storedBytes, storedHashes, vger, vgerOn } from "./_rest.ts";
import { fileURLToPath } from "node:url";

/** A source tree of a few MiB: text, a symlink, an empty file, random data over a pack. */
async function makeTree(root: string, seed: number): Promise<void> {
  await Deno.mkdir(`${root}/sub`, { recursive: true });
  await Deno.writeTextFile(`${root}/a.txt`, `alpha ${seed}\n`.repeat(200));
  await Deno.writeTextFile(`${root}/sub/empty`, "");
  await Deno.writeFile(`${root}/sub/mid.bin`, pseudoRandomBytes(512 << 10, seed));
  await Deno.writeFile(`${root}/big.bin`, pseudoRandomBytes(6 << 20, seed + 1));
  await Deno.symlink("a.txt", `${root}/link`);
}

Deno.test("the CLI cycle over REST (deno run --config): init, backups, list, extract byte for byte, check --verify-data, delete, prune, compact", async () => {
  await withServer("run", {}, async (server) => {
    await withTempDir(async (dir) => {
      const repo = await restRepo(dir, server, "laptop", {
        topLevel: ["retention:", "  keep_last: 1"],
      });
      const src = `${dir}/src`;
      await makeTree(src, 1);
      const v1 = await treeSnapshot(src);

      const init = await run(repo, ["init", ...FAST_KDF_ARGS]);
      match(init.stdout + init.stderr, new RegExp(`Created repository ${repo.url}`));
      await run(repo, ["backup", "--archive", "one", src]);

      // version 2: the big file gone, one file changed, one added
      await Deno.remove(`${src}/big.bin`);
      await Deno.writeTextFile(`${src}/a.txt`, "changed\n".repeat(100));
      await Deno.writeFile(`${src}/sub/new.bin`, pseudoRandomBytes(1 << 20, 9));
      const v2 = await treeSnapshot(src);
      const second = json<{ deduplicated_size: number }>(
        await run(repo, ["backup", "--archive", "two", "--json", src]),
      );
      ok(second.deduplicated_size < (1 << 20) + (64 << 10), JSON.stringify(second));

      const listed = json<{ repository: string; archives: { name: string }[] }>(
        await run(repo, ["list", "--json"]),
      );
      equal(listed.repository, repo.url);
      deepStrictEqual(listed.archives.map((a) => a.name), ["one", "two"]);
      await assertRestores(vgerOn(repo), "one", src, v1, "extract");
      await assertRestores(vgerOn(repo), "two", src, v2, "extract");
      await assertCheckClean(vgerOn(repo), "check");

      await run(repo, ["backup", "--archive", "three", src]);
      await run(repo, ["delete", "--archive", "two"]);
      deepStrictEqual(await archiveNames(vgerOn(repo)), ["one", "three"]);
      await run(repo, ["prune"]);
      deepStrictEqual(await archiveNames(vgerOn(repo)), ["three"]);

      // the big file's packs hold only dead chunks now: compact frees them on the server
      const before = await storedBytes(server.dataDir, "laptop");
      await run(repo, ["compact", "--threshold", "0"]);
      const after = await storedBytes(server.dataDir, "laptop");
      ok(
        before - after >= 5 << 20,
        `compact freed ${before - after} bytes (${before} -> ${after})`,
      );
      await assertRestores(vgerOn(repo), "three", src, v2, "after compact");
      await assertCheckClean(vgerOn(repo), "after compact");
    });
  });
});

Deno.test("over REST under deno serve: init, backup, extract byte for byte, check", async () => {
  await withServer("serve", {}, async (server) => {
    await withTempDir(async (dir) => {
      const repo = await restRepo(dir, server, "served");
      const src = `${dir}/src`;
      await makeTree(src, 2);
      const v1 = await treeSnapshot(src);
      await run(repo, ["init", ...FAST_KDF_ARGS]);
      await run(repo, ["backup", "--archive", "one", src]);
      await assertRestores(vgerOn(repo), "one", src, v1, "extract");
      await assertCheckClean(vgerOn(repo), "check");
    });
  });
});

Deno.test("on an append-only server backups go on, and delete, prune, compact, check --repair and key changes refuse up front in one line", async () => {
  await withServer("run", { toml: "append_only = true\n" }, async (server) => {
    await withTempDir(async (dir) => {
      const repo = await restRepo(dir, server, "kept", {
        topLevel: ["retention:", "  keep_last: 1"],
      });
      const src = `${dir}/src`;
      await makeTree(src, 3);
      await run(repo, ["init", ...FAST_KDF_ARGS]);
      for (const name of ["one", "two", "three"]) {
        await Deno.writeTextFile(`${src}/a.txt`, `version ${name}\n`);
        await run(repo, ["backup", "--archive", name, src]);
      }
      const v3 = await treeSnapshot(src);
      const exported = `${dir}/key.export`;
      await run(repo, ["key", "export", "--dest", exported]);
      const refused: string[][] = [
        ["delete", "--archive", "one"],
        ["prune"],
        ["compact"],
        ["check", "--repair"],
        ["key", "change-passphrase"],
        ["key", "import", "--force", exported],
      ];
      for (const args of refused) {
        assertOneLine(
          await vger(repo, args),
          new RegExp(`repository "${repo.url}" is append-only`),
          args.join(" "),
        );
      }
      deepStrictEqual(await archiveNames(vgerOn(repo)), ["one", "two", "three"]);
      // dry runs and reads still work
      await run(repo, ["delete", "--archive", "one", "--dry-run"]);
      await run(repo, ["prune", "--dry-run"]);
      await assertRestores(vgerOn(repo), "three", src, v3, "extract");
      await assertCheckClean(vgerOn(repo), "check");
    });
  });
});

Deno.test("over REST a wrong token, an unknown repository and an absent server are one line each, naming the URL, never the token", async () => {
  await withServer("run", {}, async (server) => {
    await withTempDir(async (dir) => {
      const good = await restRepo(dir, server, "laptop");
      await run(good, ["init", ...FAST_KDF_ARGS]);
      const wrong = await restRepo(dir, server, "laptop", { token: "wrong-token-456" });
      const r = await vger(wrong, ["list"]);
      assertOneLine(r, /wrong or missing token \(HTTP 401/, "wrong token");
      ok(!r.stderr.includes("wrong-token-456") && !r.stderr.includes(server.token));

      const unknown = await restRepo(dir, server, "nothing-here");
      assertOneLine(
        await vger(unknown, ["list"]),
        /config not found \(is it a vger repository\? run vger init\)/,
        "unknown repository",
      );
    });
  });
  await withTempDir(async (dir) => {
    const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (probe.addr as Deno.NetAddr).port;
    probe.close();
    const absent = { url: `http://127.0.0.1:${port}/laptop`, token: "t0ken-absent" } as const;
    const config = `${dir}/absent.yaml`;
    await Deno.writeTextFile(
      config,
      `repositories:\n  - path: ${absent.url}\n    backend: rest\n    rest_token: ${absent.token}\n`,
    );
    const r = await runVger(["--config", config, "list"]);
    assertOneLine(
      r,
      new RegExp(`"config" in ${absent.url}: cannot reach the server \\(connection refused\\)`),
      "absent server",
    );
    ok(!r.stderr.includes(absent.token));
  });
});

Deno.test("over REST a backup that would exceed the quota fails in one line, and the repository stays whole", async () => {
  await withServer("run", { toml: `quota_bytes = ${3 << 20}\n` }, async (server) => {
    await withTempDir(async (dir) => {
      const repo = await restRepo(dir, server, "small");
      const src = `${dir}/src`;
      await Deno.mkdir(src);
      await Deno.writeTextFile(`${src}/a.txt`, "fits\n".repeat(1000));
      await run(repo, ["init", ...FAST_KDF_ARGS]);
      await run(repo, ["backup", "--archive", "one", src]);
      const v1 = await treeSnapshot(src);
      await Deno.writeFile(`${src}/big.bin`, pseudoRandomBytes(6 << 20, 4));
      assertOneLine(
        await vger(repo, ["backup", "--archive", "two", src]),
        /over the repository's quota \(HTTP 413/,
        "backup over quota",
      );
      deepStrictEqual(await archiveNames(vgerOn(repo)), ["one"]);
      await Deno.remove(`${src}/big.bin`);
      await assertRestores(vgerOn(repo), "one", src, v1, "extract after the refused backup");
      await assertCheckClean(vgerOn(repo), "check after the refused backup");
      await run(repo, ["backup", "--archive", "three", src]);
      deepStrictEqual(await archiveNames(vgerOn(repo)), ["one", "three"]);
    });
  });
});

Deno.test("a backup goes on over a server killed (SIGKILL) and restarted half way: its requests are sent again, and the repository is whole", async () => {
  await withTempDir(async (dir) => {
    const token = "restart-token-0123456789";
    const { configFile, url } = await fixedPortConfig(dir, token);
    let server = await killableServer(configFile);
    try {
      const at = { url, token };
      const repo = await restRepo(dir, at, "laptop");
      const src = `${dir}/src`;
      await Deno.mkdir(src);
      for (let i = 0; i < 6; i++) {
        await Deno.writeFile(`${src}/f${i}.bin`, pseudoRandomBytes(4 << 20, 10 + i));
      }
      const v1 = await treeSnapshot(src);
      await run(repo, ["init", ...FAST_KDF_ARGS]);
      const backup = spawnVger(["--config", repo.config, "backup", "--archive", "one", src]);
      const output = backup.output();
      // once the first pack is stored, the server is killed; a second later it is back
      const deadline = Date.now() + 60_000;
      while (!/PUT \/laptop\/packs\//.test(server.stdout()) && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 10));
      }
      ok(/PUT \/laptop\/packs\//.test(server.stdout()), `no pack stored: ${server.stdout()}`);
      await server.kill();
      await new Promise((r) => setTimeout(r, 1000));
      server = await killableServer(configFile);
      const r = await output;
      const stderr = new TextDecoder().decode(r.stderr);
      equal(r.code, 0, `the backup failed: ${stderr}`);
      ok(
        /PUT \/laptop\/manifest/.test(server.stdout()),
        `the backup committed on the restarted server: ${server.stdout()}`,
      );
      deepStrictEqual(await archiveNames(vgerOn(repo)), ["one"]);
      await assertRestores(vgerOn(repo), "one", src, v1, "after the restart");
      await assertCheckClean(vgerOn(repo), "after the restart");
    } finally {
      await server.kill();
    }
  });
});

Deno.test("over REST several clients back up at once, to one repository and to another, and a client killed mid-upload leaves nothing the next backup trips on", async () => {
  await withServer("run", {}, async (server) => {
    await withTempDir(async (dir) => {
      const shared = await restRepo(dir, server, "shared");
      const other = await restRepo(dir, server, "other");
      await Promise.all([
        run(shared, ["init", ...FAST_KDF_ARGS]),
        run(other, ["init", ...FAST_KDF_ARGS]),
      ]);
      const trees: Record<string, TreeSnapshot> = {};
      for (let i = 0; i < 4; i++) {
        const src = `${dir}/src${i}`;
        await Deno.mkdir(src);
        await Deno.writeFile(`${src}/data.bin`, pseudoRandomBytes(3 << 20, 20 + i));
        await Deno.writeTextFile(`${src}/note.txt`, `client ${i}\n`);
        trees[src] = await treeSnapshot(src);
      }
      // three clients on "shared", one on "other", all at once
      await Promise.all([
        run(shared, ["backup", "--archive", "c0", `${dir}/src0`]),
        run(shared, ["backup", "--archive", "c1", `${dir}/src1`]),
        run(shared, ["backup", "--archive", "c2", `${dir}/src2`]),
        run(other, ["backup", "--archive", "c3", `${dir}/src3`]),
      ]);
      deepStrictEqual((await archiveNames(vgerOn(shared))).sort(), ["c0", "c1", "c2"]);
      deepStrictEqual(await archiveNames(vgerOn(other)), ["c3"]);
      for (let i = 0; i < 3; i++) {
        await assertRestores(
          vgerOn(shared),
          `c${i}`,
          `${dir}/src${i}`,
          trees[`${dir}/src${i}`],
          "shared",
        );
      }
      await assertRestores(vgerOn(other), "c3", `${dir}/src3`, trees[`${dir}/src3`], "other");
      await assertCheckClean(vgerOn(shared), "shared after concurrent backups");

      // a client SIGKILLed once its first pack is stored
      const src = `${dir}/killed`;
      await Deno.mkdir(src);
      for (let i = 0; i < 4; i++) {
        await Deno.writeFile(`${src}/f${i}.bin`, pseudoRandomBytes(4 << 20, 40 + i));
      }
      const before = server.stdout().length;
      const child = spawnVger(["--config", shared.config, "backup", "--archive", "k", src]);
      const output = child.output();
      const deadline = Date.now() + 60_000;
      const stored = () => /PUT \/shared\/packs\//.test(server.stdout().slice(before));
      while (!stored() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      ok(stored(), "the killed backup stored a pack first");
      child.kill("SIGKILL");
      equal((await output).code, 137);
      deepStrictEqual((await archiveNames(vgerOn(shared))).sort(), ["c0", "c1", "c2"]);
      const v = await treeSnapshot(src);
      await run(shared, ["backup", "--archive", "k", src]);
      await assertRestores(vgerOn(shared), "k", src, v, "after a killed client");
      await assertCheckClean(vgerOn(shared), "after a killed client");
    });
  });
});

/** Sends one request as the attacker (the append-only token) and returns its status. */
async function attack(
  server: TestServer,
  method: string,
  path: string,
  body?: string,
  headers: Record<string, string> = {},
): Promise<number> {
  const res = await server.fetch(path, { method, body, headers });
  await res.body?.cancel();
  return res.status;
}

Deno.test("a compromised client holding the append-only token cannot destroy history: deletes and overwrites are refused, a replaced manifest and index come back with vger rollback, a forged lock expires, and every archive restores", async () => {
  const server = await startServer("run", {
    entry: fileURLToPath(new URL("./_server_short_ttl.ts", import.meta.url)),
    env: { VGER_TEST_LOCK_TTL_SECONDS: "2" },
    toml: "append_only = true\n",
  });
  try {
    await withTempDir(async (dir) => {
      const name = "victim";
      const repo = await restRepo(dir, server, name);
      const src = `${dir}/src`;
      await makeTree(src, 5);
      await run(repo, ["init", ...FAST_KDF_ARGS]);
      const trees = new Map<string, TreeSnapshot>();
      for (const archive of ["one", "two"]) {
        await Deno.writeTextFile(`${src}/a.txt`, `version ${archive}\n`.repeat(300));
        await run(repo, ["backup", "--archive", archive, src]);
        trees.set(archive, await treeSnapshot(src));
      }

      // 1. stale-lock games: a forged exclusive lock blocks writers only until the server's TTL
      const forged = `locks/${"e".repeat(64)}`;
      const lock = JSON.stringify({
        host: "attacker",
        pid: 1,
        time: new Date(Date.now() + 3600_000).toISOString(),
        exclusive: true,
        command: "prune",
      });
      equal(await attack(server, "PUT", `/${name}/${forged}`, lock, { "If-None-Match": "*" }), 201);
      const blocked = await vger(repo, ["backup", "--archive", "blocked", src]);
      ok(blocked.code !== 0, `a backup went on under an exclusive lock: ${blocked.stdout}`);
      const until = Date.now() + 15_000;
      while ((await attack(server, "HEAD", `/${name}/${forged}`)) !== 404) {
        ok(Date.now() < until, "the forged lock was not swept within 15 s");
        await new Promise((r) => setTimeout(r, 200));
      }
      await Deno.writeTextFile(`${src}/a.txt`, "version three\n".repeat(300));
      await run(repo, ["backup", "--archive", "three", src]);
      trees.set("three", await treeSnapshot(src));

      // 2. every delete and every overwrite of history
      const before = await storedHashes(server.dataDir, name);
      const keys = await listedKeys(server, name);
      deepStrictEqual(
        [...keys].filter((k) => !k.startsWith("locks/")).sort(),
        [...before.keys()].sort(),
      );
      ok(keys.some((k) => k.startsWith("packs/")) && keys.includes("keys/repokey"), keys.join());
      for (const key of keys.filter((k) => !k.startsWith("locks/"))) {
        equal(await attack(server, "DELETE", `/${name}/${key}`), 403, `DELETE ${key}`);
        if (key === "manifest" || key === "index") continue;
        const status = await attack(server, "PUT", `/${name}/${key}`, "overwritten by an attacker");
        ok(
          status === 403 || (key.startsWith("packs/") && status === 400),
          `PUT ${key} with other bytes: ${status}`,
        );
      }
      // a pack under a new name that is not its hash is refused too
      equal(
        await attack(server, "PUT", `/${name}/packs/00/${"0".repeat(64)}`, "junk"),
        400,
      );
      deepStrictEqual(await storedHashes(server.dataDir, name), before, "history changed");

      // 3. what append-only allows: replacing the manifest (emptied) and the index (garbage)
      const manifestBefore = await Deno.readFile(`${server.dataDir}/${name}/manifest`);
      const indexBefore = await Deno.readFile(`${server.dataDir}/${name}/index`);
      equal(await attack(server, "PUT", `/${name}/manifest`, ""), 200);
      equal(await attack(server, "PUT", `/${name}/index`, "garbage"), 200);
      const broken = await vger(repo, ["list"]);
      equal(broken.code, 1, `list of an emptied manifest: ${broken.stdout}${broken.stderr}`);
      match(broken.stderr, /^vger: Manifest is corrupt/);

      // the user rolls back to the newest version before the attack: the manifest of the last
      // backup, with the index it was committed with
      const versions = json<{ versions: { id: string; manifest_bytes: number }[] }>(
        await run(repo, ["versions", "--json"]),
      ).versions;
      equal(versions[0].manifest_bytes, 0, "the emptied manifest is the newest version");
      const good = versions.find((v) => v.manifest_bytes === manifestBefore.length)!;
      await run(repo, ["rollback", good.id]);
      // sealed again (a fresh nonce): the same plaintext, so the same size
      equal((await Deno.readFile(`${server.dataDir}/${name}/index`)).length, indexBefore.length);

      // 4. nothing is lost: check is clean, every archive restores, backups go on, no lock stays
      await assertCheckClean(vgerOn(repo), "after the attack");
      deepStrictEqual(await archiveNames(vgerOn(repo)), ["one", "two", "three"]);
      for (const [archive, tree] of trees) {
        await assertRestores(vgerOn(repo), archive, src, tree, `after the attack, ${archive}`);
      }
      await run(repo, ["backup", "--archive", "four", src]);
      await run(repo, ["backup", "--archive", "five", src]);
      deepStrictEqual(await listedKeys(server, name, "locks/"), []);
    });
  } finally {
    await server.stop();
  }
});
