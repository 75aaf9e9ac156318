/**
 * vger-server's roles and held deletes, with the real `vger` CLI in subprocesses against a real
 * server process on 127.0.0.1 (tests/_server.ts): every command under every role, allowed or
 * refused in one line naming the role needed, with nothing written by a refusal; a token that
 * does not see a repository learns nothing of it; and a compromised full-access client on a
 * server with held deletes deletes every archive and compacts, the operator runs `undelete
 * --all`, the user rolls back to the manifest and index of before the attack (`vger rollback`),
 * and every archive restores byte for byte.
 *
 * @module
 */

import { deepStrictEqual, equal, match, ok } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import {
  archiveNames,
  assertCheckClean,
  assertOneLine,
  assertRestores,
  FAST_KDF_ARGS,
  PASSPHRASE,
  pseudoRandomBytes,
  type RunResult,
  type TreeSnapshot,
  treeSnapshot,
  withTempDir,
} from "./_helpers.ts";
import { startServer, type TestServer } from "./_server.ts";
import {
  fileSizes,
  listedKeys,
  type RestRepo,
  restRepo as restRepoOn,
  run,
  storedSizes,
  vger,
  vgerOn,
} from "./_rest.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));

const READ_ONLY = "read-only-token-0123456789";
const APPEND_ONLY = "append-only-token-0123456789";
const FULL = "full-token-0123456789";
const ELSEWHERE = "elsewhere-token-0123456789";

const TOKENS = `
[[tokens]]
token = "${READ_ONLY}"
repos = ["team-*"]
role = "read-only"

[[tokens]]
token = "${APPEND_ONLY}"
repos = ["team-*"]
role = "append-only"

[[tokens]]
token = "${FULL}"
repos = ["team-a", "victim"]
role = "full"

[[tokens]]
token = "${ELSEWHERE}"
repos = ["elsewhere"]
role = "full"
`;

/** Every token of the server: none may show in any run's output. */
const SECRETS = [READ_ONLY, APPEND_ONLY, FULL, ELSEWHERE];

/** A configuration (`DIR/LABEL.yaml`) with one `rest` entry for `name` with `token`. */
function restRepo(
  dir: string,
  server: TestServer,
  name: string,
  token: string,
  label: string,
): Promise<RestRepo> {
  return restRepoOn(dir, server, name, {
    token,
    label,
    topLevel: ["retention:", "  keep_last: 1"],
    secrets: SECRETS,
  });
}

async function makeTree(root: string, seed: number): Promise<void> {
  await Deno.mkdir(`${root}/sub`, { recursive: true });
  await Deno.writeTextFile(`${root}/a.txt`, `alpha ${seed}\n`.repeat(200));
  await Deno.writeFile(`${root}/sub/mid.bin`, pseudoRandomBytes(300 << 10, seed));
  await Deno.writeFile(`${root}/big.bin`, pseudoRandomBytes(2 << 20, seed + 1));
}

/** Runs an operator command of the server (`server.ts --config FILE ARGS...`). */
async function operator(server: TestServer, args: string[]): Promise<RunResult> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${ROOT}server.ts`, "--config", server.configFile, ...args],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(60_000),
  }).output();
  const d = new TextDecoder();
  return {
    code: out.code,
    stdout: d.decode(out.stdout),
    stderr: d.decode(out.stderr),
    timedOut: false,
  };
}

Deno.test("every command under every role over REST: allowed, or refused up front in one line naming the role needed, writing nothing", async () => {
  const server = await startServer("run", { toml: TOKENS });
  try {
    await withTempDir(async (dir) => {
      const full = await restRepo(dir, server, "team-a", FULL, "full");
      const appendOnly = await restRepo(dir, server, "team-a", APPEND_ONLY, "append-only");
      const readOnly = await restRepo(dir, server, "team-a", READ_ONLY, "read-only");
      const src = `${dir}/src`;
      await makeTree(src, 1);
      await run(full, ["init", ...FAST_KDF_ARGS]);
      await run(full, ["backup", "--archive", "one", src]);
      const v1 = await treeSnapshot(src);
      const exported = `${dir}/key.export`;

      // read-only: list, extract, check (a shared lock of its own, released), key export
      await run(readOnly, ["list"]);
      match((await run(readOnly, ["list", "--archive", "one"])).stdout, /big\.bin/);
      await assertRestores(vgerOn(readOnly), "one", src, v1, "read-only extract");
      await assertCheckClean(vgerOn(readOnly), "read-only check");
      await run(readOnly, ["key", "export", "--dest", exported]);
      deepStrictEqual(await listedKeys(server, "team-a", "locks/"), [], "a read-only lock stayed");

      const ro = "needs role append-only or full; this token is read-only$";
      const roFull = "needs role full; this token is read-only$";
      const before = await storedSizes(server.dataDir, "team-a");
      const refusedReadOnly: [string[], string][] = [
        [
          ["backup", "--archive", "two", src],
          `^vger: Cannot back up: repository "${readOnly.url}" ${ro}`,
        ],
        [["break-lock"], `Cannot break locks: .*${ro}`],
        [["delete", "--archive", "one"], `Cannot delete archives: .*${roFull}`],
        [["prune"], `Cannot prune archives: .*${roFull}`],
        [["compact"], `Cannot compact: .*${roFull}`],
        [["compact", "--dry-run"], `Cannot compact --dry-run: .*${ro}`],
        [["check", "--repair", "--yes"], `Cannot repair it \\(check --repair\\): .*${roFull}`],
        [["key", "change-passphrase"], `Cannot change the passphrase: .*${roFull}`],
        [["key", "import", "--force", exported], `Cannot import a key: .*${roFull}`],
      ];
      for (const [args, line] of refusedReadOnly) {
        assertOneLine(await vger(readOnly, args), new RegExp(line), `read-only ${args[0]}`, {
          secrets: SECRETS,
        });
      }
      // a new repository: the server refuses its creation, naming the role
      const roNew = await restRepo(dir, server, "team-b", READ_ONLY, "read-only-b");
      assertOneLine(
        await vger(roNew, ["init", ...FAST_KDF_ARGS]),
        new RegExp(`"team-b": creating a repository: ${ro}`),
        "read-only init",
        { secrets: SECRETS },
      );
      deepStrictEqual(
        await storedSizes(server.dataDir, "team-a"),
        before,
        "a refusal wrote something",
      );
      deepStrictEqual(await listedKeys(server, "team-a", "locks/"), []);

      // append-only: reads, backup, break-lock, init of a repository it sees; nothing that deletes
      await Deno.writeTextFile(`${src}/a.txt`, "version two\n");
      await run(appendOnly, ["backup", "--archive", "two", src]);
      const v2 = await treeSnapshot(src);
      await assertRestores(vgerOn(appendOnly), "two", src, v2, "append-only extract");
      await assertCheckClean(vgerOn(appendOnly), "append-only check");
      await run(appendOnly, ["break-lock"]);
      await run(appendOnly, ["compact", "--dry-run"]);
      deepStrictEqual(await archiveNames(vgerOn(appendOnly)), ["one", "two"]);
      await run(appendOnly, ["key", "export", "--dest", `${dir}/append-only.export`]);
      const aoNew = await restRepo(dir, server, "team-b", APPEND_ONLY, "append-only-b");
      await run(aoNew, ["init", ...FAST_KDF_ARGS]);
      const ao = "needs role full; this token is append-only$";
      const afterBackup = await storedSizes(server.dataDir, "team-a");
      for (
        const args of [
          ["delete", "--archive", "one"],
          ["prune"],
          ["compact"],
          ["check", "--repair", "--yes"],
          ["key", "change-passphrase"],
          ["key", "import", "--force", exported],
        ]
      ) {
        assertOneLine(
          await vger(appendOnly, args),
          new RegExp(`^vger: Cannot .*: repository "${appendOnly.url}" ${ao}`),
          `append-only ${args[0]}`,
          { secrets: SECRETS },
        );
      }
      deepStrictEqual(await storedSizes(server.dataDir, "team-a"), afterBackup);

      // full: everything
      await run(full, ["backup", "--archive", "three", src]);
      await run(full, ["delete", "--archive", "one"]);
      await run(full, ["prune"]);
      deepStrictEqual(await archiveNames(vgerOn(full)), ["three"]);
      await run(full, ["compact", "--threshold", "0"]);
      await run(full, ["check", "--repair", "--yes"]);
      await run(full, ["key", "import", "--force", exported]);
      await run(full, ["key", "change-passphrase"], {
        env: { VGER_NEW_PASSPHRASE: "a new passphrase" },
      });
      const moved = await vger(full, ["list"]);
      equal(moved.code, 1, "the old passphrase still opens the repository");
      await run(full, ["key", "change-passphrase"], {
        env: { VGER_PASSPHRASE: "a new passphrase", VGER_NEW_PASSPHRASE: PASSPHRASE },
      });
      await run(full, ["break-lock"]);
      await assertRestores(vgerOn(full), "three", src, v2, "full extract");
      await assertCheckClean(vgerOn(full), "after the full-access commands");
      deepStrictEqual(await listedKeys(server, "team-a", "locks/"), []);
    });
  } finally {
    await server.stop();
  }
});

Deno.test("a token sees only its repositories: others are unknown to it (404, not 403), and GET / lists only its own; a token_command runs once at start", async () => {
  const tokenFile = await Deno.makeTempFile();
  await Deno.writeTextFile(tokenFile, `${ELSEWHERE}\n`);
  // the elsewhere token from a command, under deno serve
  const server = await startServer("serve", {
    toml: TOKENS.replace(`token = "${ELSEWHERE}"`, `token_command = "cat ${tokenFile}"`),
    allowRun: true,
  });
  try {
    const as = (token: string, path: string, init: RequestInit = {}) =>
      server.fetch(path, {
        ...init,
        headers: { ...init.headers as Record<string, string>, authorization: `Bearer ${token}` },
      });
    equal(
      (await as(FULL, "/team-a/config", {
        method: "PUT",
        body: "c",
        headers: { "If-None-Match": "*" },
      })).status,
      201,
    );
    equal(
      (await as(ELSEWHERE, "/elsewhere/config", {
        method: "PUT",
        body: "c",
        headers: { "If-None-Match": "*" },
      })).status,
      201,
    );
    const names = async (token: string) =>
      ((await (await as(token, "/")).json()) as { repositories: { name: string }[] })
        .repositories.map((r) => r.name);
    deepStrictEqual(await names(READ_ONLY), ["team-a"]);
    deepStrictEqual(await names(ELSEWHERE), ["elsewhere"]);
    deepStrictEqual(await names(server.token), ["elsewhere", "team-a"]);

    // another token's repository answers exactly as one that does not exist (for any token)
    for (
      const [method, path, headers] of [
        ["GET", "/team-a", {}],
        ["GET", "/team-a/config", {}],
        ["HEAD", "/team-a/config", {}],
        ["GET", "/team-a/?prefix=", {}],
        ["DELETE", "/team-a/config", {}],
        ["PUT", "/team-a/config", { "If-None-Match": "*" }],
      ] as [string, string, Record<string, string>][]
    ) {
      const seen = await as(ELSEWHERE, path, {
        method,
        headers,
        body: method === "PUT" ? "x" : undefined,
      });
      equal(seen.status, 404, `${method} ${path}`);
      equal(seen.headers.get("x-vger-role"), null, "the role is not told");
      if (method === "PUT") {
        // not 412 (exists): the create of its config learns nothing either
        equal(await seen.text(), '{"error":"Unknown repository \\"team-a\\""}');
        continue;
      }
      // the server token, which sees every name, on a repository that does not exist
      const unknown = await as(server.token, path.replace("team-a", "team-zzz"), {
        method,
        headers,
      });
      equal(unknown.status, 404);
      if (method !== "HEAD") {
        deepStrictEqual(
          (await seen.text()).replace("team-a", "X"),
          (await unknown.text()).replace("team-zzz", "X"),
        );
      } else {
        await seen.body?.cancel();
        await unknown.body?.cancel();
      }
    }
    const c = await as(FULL, "/team-a/config", { method: "GET" });
    equal(await c.text(), "c", "untouched");

    // the role on every answer, and in the repository info
    const info = await as(READ_ONLY, "/team-a");
    deepStrictEqual(
      [info.headers.get("x-vger-role"), info.headers.get("x-vger-append-only")],
      ["read-only", "true"],
    );
    const body = await info.json() as { role: string; append_only: boolean };
    deepStrictEqual([body.role, body.append_only], ["read-only", true]);
    const refused = await as(APPEND_ONLY, "/team-a/config", { method: "DELETE" });
    equal(refused.status, 403);
    equal(refused.headers.get("x-vger-role"), "append-only");
    deepStrictEqual(await refused.json(), {
      error:
        'Repository "team-a": "config" cannot be deleted: needs role full; this token is append-only',
    });
    const full = await as(FULL, "/team-a/config", { method: "HEAD" });
    deepStrictEqual(
      [full.headers.get("x-vger-role"), full.headers.get("x-vger-append-only")],
      ["full", "false"],
    );
    // no token of any role shows in the request log
    for (const t of [READ_ONLY, APPEND_ONLY, FULL, ELSEWHERE]) {
      ok(!server.stdout().includes(t) && !server.stderr().includes(t));
    }
  } finally {
    await server.stop();
    await Deno.remove(tokenFile);
  }
});

Deno.test("a compromised full-access client on a server with held deletes deletes every archive and compacts; the operator's undelete --all and the manifest and index of before the attack bring every archive back byte for byte", async () => {
  const server = await startServer("run", { toml: "delete_hold_days = 7\n" + TOKENS });
  try {
    await withTempDir(async (dir) => {
      const name = "victim";
      const repo = await restRepo(dir, server, name, FULL, "victim");
      const src = `${dir}/src`;
      await makeTree(src, 7);
      await run(repo, ["init", ...FAST_KDF_ARGS]);
      const trees = new Map<string, TreeSnapshot>();
      for (const [i, archive] of ["one", "two", "three"].entries()) {
        await Deno.writeFile(`${src}/sub/mid.bin`, pseudoRandomBytes(300 << 10, 100 + i));
        await run(repo, ["backup", "--archive", archive, src]);
        trees.set(archive, await treeSnapshot(src));
      }
      const filesBefore = await storedSizes(server.dataDir, name);
      // held deletes keep versions of the manifest and index too: the newest is the last backup's
      const [before] = (JSON.parse((await run(repo, ["versions", "--json"])).stdout) as {
        versions: { id: string }[];
      }).versions;

      // the attack, from another machine (a cache of its own) with the stolen full token: every
      // archive deleted, then compact frees every pack
      const attacker = { env: { VGER_CACHE_DIR: `${dir}/attacker-cache` } };
      await run(
        repo,
        ["delete", "--archive", "one", "--archive", "two", "--archive", "three"],
        attacker,
      );
      await run(repo, ["compact", "--threshold", "0"], attacker);
      deepStrictEqual(await archiveNames(vgerOn(repo, attacker.env)), []);
      const left = await storedSizes(server.dataDir, name);
      equal([...left.keys()].filter((k) => k.startsWith("packs/")).length, 0, "packs remain");

      // what is held: every pack and archive object, counted in used_bytes
      const held = await operator(server, ["held", name, "--json"]);
      equal(held.code, 0, held.stderr);
      const list = JSON.parse(held.stdout) as {
        held: { key: string; size: number; deleted_at: string; purge_after: string }[];
      };
      for (const [key, size] of filesBefore) {
        if (key.startsWith("packs/") || key.startsWith("archives/")) {
          ok(list.held.some((h) => h.key === key && h.size === size), `${key} is not held`);
        }
      }
      const h = list.held[0];
      equal(Date.parse(h.purge_after) - Date.parse(h.deleted_at), 7 * 86_400_000);
      const info = await (await server.fetch(`/${name}`)).json() as { used_bytes: number };
      const heldTotal = list.held.reduce((n, x) => n + x.size, 0);
      const leftTotal = [...left.values()].reduce((n, x) => n + x, 0);
      let keptTotal = 0; // the kept versions of manifest and index count too
      for (
        const size of (await fileSizes(`${server.dataDir}/.vger-server/versions/${name}`)).values()
      ) {
        keptTotal += size;
      }
      ok(keptTotal > 0, "no versions kept");
      equal(
        info.used_bytes,
        heldTotal + leftTotal + keptTotal,
        "held bytes count towards the quota",
      );
      const text = await operator(server, ["held", name]);
      match(text.stdout, /^packs\/\S+ {2}\d+ bytes {2}deleted \S+ {2}purge after \S+$/m);

      // the operator puts everything back; manifest and index exist, so theirs stay held
      const undeleted = await operator(server, ["undelete", name, "--all"]);
      equal(undeleted.code, 1, undeleted.stdout + undeleted.stderr);
      deepStrictEqual(
        undeleted.stderr.trim().split("\n").sort(),
        ["index", "manifest"].map((k) =>
          `Cannot undelete "${k}" of repository "${name}": it exists again; remove it first to put this one back`
        ),
      );
      match(undeleted.stdout, /restored archives\//);

      // the user rolls back to the manifest and index of before the attack (re-sealed: the same
      // sizes, other bytes)
      const rolled = JSON.parse((await run(repo, ["rollback", before.id, "--json"])).stdout) as {
        missing_packs: number;
        missing_archives: number;
        archives: number;
      };
      deepStrictEqual([rolled.missing_packs, rolled.missing_archives, rolled.archives], [0, 0, 3]);
      deepStrictEqual(
        await storedSizes(server.dataDir, name),
        filesBefore,
        "not everything came back",
      );
      deepStrictEqual(await archiveNames(vgerOn(repo)), ["one", "two", "three"]);
      await assertCheckClean(vgerOn(repo), "after undelete");
      for (const [archive, tree] of trees) {
        await assertRestores(vgerOn(repo), archive, src, tree, `after undelete, ${archive}`);
      }
      // nothing but the attacker's manifests and indexes is held any more
      const still = JSON.parse((await operator(server, ["held", name, "--json"])).stdout) as {
        held: { key: string }[];
      };
      deepStrictEqual([...new Set(still.held.map((x) => x.key))].sort(), ["index", "manifest"]);
    });
  } finally {
    await server.stop();
  }
});
