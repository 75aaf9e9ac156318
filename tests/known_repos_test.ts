// The storage cannot downgrade, replace or roll back a repository (issue 8, section 1): the
// client checks the configured mode and remembers each repository it used (lib/known_repos.ts).
import { deepStrictEqual, equal, notEqual, ok } from "node:assert/strict";
import { join } from "node:path";
import { FAST_KDF_ARGS, initRepo, runVger, runVgerOk, withTempDir } from "./_helpers.ts";
import { knownRepoFile } from "../lib/known_repos.ts";

/** Every file below `dir` (relative paths, sorted); none when it does not exist. */
async function filesBelow(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string, rel: string) => {
    for await (const e of Deno.readDir(d)) {
      if (e.isDirectory) await walk(join(d, e.name), `${rel}${e.name}/`);
      else out.push(`${rel}${e.name}`);
    }
  };
  try {
    await walk(dir, "");
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  return out.sort();
}

/** A source tree with a file whose bytes are easy to find in plaintext packs. */
async function makeSource(dir: string, text = "secret plaintext marker "): Promise<string> {
  const src = join(dir, "src");
  await Deno.mkdir(src, { recursive: true });
  await Deno.writeTextFile(join(src, "a.txt"), text.repeat(200));
  return src;
}

async function writeConfig(dir: string, repo: string, mode?: string): Promise<string> {
  const file = join(dir, `vger-${mode ?? "nomode"}.yaml`);
  const enc = mode ? `encryption:\n  mode: ${mode}\n` : "";
  await Deno.writeTextFile(file, `repositories:\n  - path: ${JSON.stringify(repo)}\n${enc}`);
  return file;
}

const cacheEnv = (dir: string) => ({ env: { VGER_CACHE_DIR: dir } });

/** Archive names of `vger list --json`. */
async function archiveNames(repo: string, options = {}, extra: string[] = []): Promise<string[]> {
  const r = await runVgerOk(["-R", repo, "list", "--json", ...extra], options);
  return (JSON.parse(r.stdout).archives as { name: string }[]).map((a) => a.name);
}

/** The objects of an unencrypted repository copied over an encrypted one (the attack). */
async function downgrade(encrypted: string, plain: string): Promise<void> {
  for (const k of ["config", "keys/repokey", "manifest", "index"]) {
    await Deno.copyFile(join(plain, k), join(encrypted, k));
  }
}

Deno.test("a repository downgraded to encryption none by the storage is refused before anything is written", async () => {
  await withTempDir(async (dir) => {
    const src = await makeSource(dir);
    const repo = await initRepo(join(dir, "repo"));
    await runVgerOk(["-R", repo, "backup", "-a", "one", src]);
    const plain = join(dir, "plain");
    // made by someone else: this client's memory does not know it
    await runVgerOk(["-R", plain, "init", "--encryption", "none"], cacheEnv(join(dir, "other")));
    await downgrade(repo, plain);
    const packs = await filesBelow(join(repo, "packs"));
    const cases: [string, string[], Record<string, unknown>, RegExp][] = [
      [
        "no mode named, remembered aes256gcm",
        ["-R", repo],
        {},
        /^vger: Repository ".*" uses encryption "none" but used "aes256gcm" when this client last saw it .*; refusing to use it \(if the change is deliberate, run with --trust-repository\)\n$/,
      ],
      [
        "the configuration says aes256gcm",
        ["-c", await writeConfig(dir, repo, "aes256gcm")],
        {},
        /^vger: Repository ".*" uses encryption "none" but the configuration says "aes256gcm"; refusing to use it \(if the change is deliberate, set encryption\.mode to "none" for it\)\n$/,
      ],
      [
        "a client that never saw it, no mode named",
        ["-R", repo],
        cacheEnv(join(dir, "fresh")),
        /uses encryption "none", not "aes256gcm", and this client has not used it before; .*--trust-repository/,
      ],
    ];
    for (const [what, select, options, message] of cases) {
      const r = await runVger([...select, "backup", "-a", "two", src], options);
      equal(r.code, 1, `${what}: ${r.stderr}`);
      ok(message.test(r.stderr), `${what}: ${r.stderr}`);
      deepStrictEqual(await filesBelow(join(repo, "packs")), packs, `${what}: no pack written`);
    }
    // nothing of the source reached the storage in plaintext
    for (const f of await filesBelow(repo)) {
      const text = new TextDecoder().decode(await Deno.readFile(join(repo, f)));
      ok(!text.includes("secret plaintext marker"), f);
    }
  });
});

Deno.test("an unencrypted repository this client has not seen is refused unless the configuration says none", async () => {
  await withTempDir(async (dir) => {
    const src = await makeSource(dir);
    const repo = join(dir, "plain");
    await runVgerOk(["-R", repo, "init", "--encryption", "none"], cacheEnv(join(dir, "maker")));
    // the client that made it goes on using it with -R alone
    await runVgerOk(["-R", repo, "backup", "-a", "one", src], cacheEnv(join(dir, "maker")));
    const fresh = cacheEnv(join(dir, "fresh"));
    const r = await runVger(["-R", repo, "list"], fresh);
    equal(r.code, 1, r.stderr);
    ok(
      /set encryption\.mode to "none" for it in the configuration, or run with --trust-repository/
        .test(r.stderr),
      r.stderr,
    );
    const none = await writeConfig(dir, repo, "none");
    await runVgerOk(["-c", none, "backup", "-a", "two", src], fresh);
    deepStrictEqual(await archiveNames(repo, fresh), ["one", "two"], "remembered since");
    // another fresh client accepts it with the flag, and remembers it
    const third = cacheEnv(join(dir, "third"));
    deepStrictEqual(await archiveNames(repo, third, ["--trust-repository"]), ["one", "two"]);
    deepStrictEqual(await archiveNames(repo, third), ["one", "two"]);
  });
});

Deno.test("a manifest older than the newest seen (a rollback) is refused naming the flag, which accepts it", async () => {
  await withTempDir(async (dir) => {
    const src = await makeSource(dir);
    const repo = await initRepo(join(dir, "repo"));
    await runVgerOk(["-R", repo, "backup", "-a", "one", src]);
    const old = await Deno.readFile(join(repo, "manifest"));
    await runVgerOk(["-R", repo, "backup", "-a", "two", src]);
    await runVgerOk(["-R", repo, "backup", "-a", "three", src]);
    await Deno.writeFile(join(repo, "manifest"), old);
    const packs = await filesBelow(join(repo, "packs"));
    for (const args of [["list"], ["backup", "-a", "four", src], ["check"]]) {
      const r = await runVger(["-R", repo, ...args]);
      equal(r.code, 1, r.stderr);
      ok(
        /serves manifest number 2, older than number 4 that this client saw: an old copy would hide the archives made since; refusing to use it \(if it was restored from an old copy deliberately, run with --trust-repository\)/
          .test(r.stderr),
        r.stderr,
      );
    }
    deepStrictEqual(await filesBelow(join(repo, "packs")), packs);
    deepStrictEqual(await archiveNames(repo, {}, ["--trust-repository"]), ["one"]);
    deepStrictEqual(await archiveNames(repo), ["one"]);
    await runVgerOk(["-R", repo, "backup", "-a", "four", src]);
    deepStrictEqual(await archiveNames(repo), ["one", "four"]);
  });
});

Deno.test("another repository put at a known location is refused; the flag accepts it", async () => {
  await withTempDir(async (dir) => {
    const src = await makeSource(dir);
    const repo = await initRepo(join(dir, "repo"));
    await runVgerOk(["-R", repo, "backup", "-a", "one", src]);
    await Deno.remove(repo, { recursive: true });
    // created by another client (same passphrase), so this client's record is of the old one
    await initRepo(repo, cacheEnv(join(dir, "other")));
    const r = await runVger(["-R", repo, "list"]);
    equal(r.code, 1, r.stderr);
    ok(
      /is another repository than this client knew there: its id is [0-9a-f]{16}\.\.\., was [0-9a-f]{16}\.\.\.; refusing to use it \(if the change is deliberate, run with --trust-repository\)/
        .test(r.stderr),
      r.stderr,
    );
    deepStrictEqual(await archiveNames(repo, {}, ["--trust-repository"]), []);
    deepStrictEqual(await archiveNames(repo), []);
  });
});

Deno.test("two clients backing up alternately and at once into one repository never trip the check", async () => {
  await withTempDir(async (dir) => {
    const src = await makeSource(dir);
    const a = cacheEnv(join(dir, "a"));
    const b = cacheEnv(join(dir, "b"));
    const repo = join(dir, "repo");
    await runVgerOk(["-R", repo, "init", ...FAST_KDF_ARGS], a);
    for (let i = 0; i < 4; i++) {
      await runVgerOk(["-R", repo, "backup", "-a", `n${i}`, src], i % 2 ? a : b);
    }
    await runVgerOk(["-R", repo, "delete", "-a", "n0"], b);
    // at once, each client with its own memory and both with the same one
    await Promise.all([
      runVgerOk(["-R", repo, "backup", "-a", "x1", "--lock-wait", "60", src], a),
      runVgerOk(["-R", repo, "backup", "-a", "x2", "--lock-wait", "60", src], b),
      runVgerOk(["-R", repo, "backup", "-a", "x3", "--lock-wait", "60", src], b),
    ]);
    const names = ["n1", "n2", "n3", "x1", "x2", "x3"];
    deepStrictEqual((await archiveNames(repo, a)).sort(), names);
    deepStrictEqual((await archiveNames(repo, b)).sort(), names);
  });
});

Deno.test("init and key change-passphrase keep the memory current; its file is 0600", async () => {
  await withTempDir(async (dir) => {
    const cache = join(dir, "cache");
    const env = cacheEnv(cache);
    const repo = join(dir, "repo");
    await runVgerOk(["-R", repo, "init", ...FAST_KDF_ARGS], env);
    const file = await knownRepoFile(cache, repo);
    equal((await Deno.stat(file)).mode! & 0o777, 0o600);
    const config = JSON.parse(await Deno.readTextFile(join(repo, "config")));
    const record = JSON.parse(await Deno.readTextFile(file));
    deepStrictEqual(
      [record.location, record.id, record.encryption, record.manifest_counter],
      [repo, config.id, "aes256gcm", 1],
    );
    ok(/^[0-9a-f]{32}$/.test(record.key));
    const src = await makeSource(dir);
    await runVgerOk(["-R", repo, "backup", "-a", "one", src], env);
    equal(JSON.parse(await Deno.readTextFile(file)).manifest_counter, 2);
    await runVgerOk(["-R", repo, "key", "change-passphrase"], {
      env: { VGER_CACHE_DIR: cache, VGER_NEW_PASSPHRASE: "another one" },
    });
    const after = JSON.parse(await Deno.readTextFile(file));
    deepStrictEqual([after.id, after.key, after.manifest_counter], [record.id, record.key, 2]);
    equal((await Deno.stat(file)).mode! & 0o777, 0o600);
    deepStrictEqual(
      await archiveNames(repo, { env: { ...env.env, VGER_PASSPHRASE: "another one" } }),
      ["one"],
    );
    // init of a new repository at the same location replaces the record
    await Deno.remove(repo, { recursive: true });
    await runVgerOk(["-R", repo, "init", "--encryption", "none"], env);
    const fresh = JSON.parse(await Deno.readTextFile(file));
    notEqual(fresh.id, record.id);
    deepStrictEqual([fresh.encryption, fresh.manifest_counter], ["none", 1]);
    deepStrictEqual(await archiveNames(repo, env), []);
  });
});
