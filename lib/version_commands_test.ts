import { deepStrictEqual, equal, match, rejects } from "node:assert/strict";
import "./platform_deno.ts";
import { MemoryBackend } from "../backends/memory.ts";
import { RestBackend } from "../backends/rest.ts";
import { commit, FAST, type Fixture, PASS } from "./_test_repos.ts";
import { openVersion } from "./repo_versions.ts";
import { initRepository, Repository, saveManifest } from "./repository.ts";
import { createApp } from "./server_app.ts";
import { ServerStore } from "./server_store.ts";
import { rollbackCommand, versionsCommand } from "./version_commands.ts";

const TOKEN = "version-commands-test-token";

/** A real vger-server app over memory, listening on a free loopback port, and a client of it. */
async function withServer(
  fn: (backend: RestBackend) => Promise<void>,
  appendOnly = true,
): Promise<void> {
  const store = new ServerStore(new MemoryBackend(), {
    appendOnly,
    maxObjectBytes: 1 << 24,
    quotaBytes: 0,
    versionKeepDays: 30,
  });
  const app = createApp(store, {
    token: TOKEN,
    bodyTimeoutSeconds: 5,
    appendOnly,
    lockTtlSeconds: 3600,
    logFormat: "json",
    log: () => {},
  });
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, app.fetch);
  const backend = new RestBackend({
    url: `http://127.0.0.1:${server.addr.port}/r`,
    token: () => Promise.resolve(TOKEN),
    timeoutMs: 10_000,
  });
  try {
    await fn(backend);
  } finally {
    await backend.close();
    await server.shutdown();
  }
}

Deno.test("rollback writes the old manifest with a counter above every newer version's, skipping garbage", async () => {
  await withServer(async (backend) => {
    await initRepository(backend, { encryption: "aes256gcm", passphrase: PASS, kdf: FAST });
    const repo = await Repository.open(backend, { passphrase: PASS });
    // three more commits of the manifest: counters 2, 3, 4
    for (let i = 0; i < 3; i++) await saveManifest(repo, await repo.readManifest());
    const versions = await versionsCommand(backend);
    equal(versions.length, 4);
    // garbage on top, a version too
    await backend.put("manifest", new TextEncoder().encode("garbage"));
    const all = await versionsCommand(backend);
    equal(all.length, 5);
    deepStrictEqual(all.slice(1).map((v) => v.id), versions.map((v) => v.id));
    const oldest = versions.at(-1)!;
    const opened = await openVersion(repo, oldest.id);
    equal(opened.manifest.counter, 1);
    equal(opened.newestCounter, 4, "the newest counter that opens");
    const r = await rollbackCommand(backend, oldest.id, { passphrase: PASS });
    deepStrictEqual([r.counter, r.archives, r.indexRestored, r.missingPacks], [5, 0, true, 0]);
    equal((await repo.readManifest()).counter, 5);
    await rejects(
      rollbackCommand(backend, "000000000000001-00000000", { passphrase: PASS }),
      /No version "000000000000001-00000000" in repository/,
    );
  });
});

Deno.test("versions and rollback refuse a backend that keeps no versions, in one line", async () => {
  const backend = new MemoryBackend("memory:plain");
  await rejects(versionsCommand(backend), (err: Error) => {
    match(
      err.message,
      /^Repository "memory:plain" keeps no versions: versions and rollback need a vger-server/,
    );
    equal(err.message.includes("\n"), false);
    return true;
  });
  await rejects(rollbackCommand(backend, "x", {}), /keeps no versions/);
});

Deno.test("rollback refuses a version whose packs or archive objects are gone, unless forced", async () => {
  await withServer(async (backend) => {
    await initRepository(backend, { encryption: "aes256gcm", passphrase: PASS, kdf: FAST });
    const repo = await Repository.open(backend, { passphrase: PASS });
    const f = { backend, repo, data: { c1: new Uint8Array(5000).fill(7) }, ids: {} };
    await commit(f as unknown as Fixture, "a", { x: ["c1"] });
    const [newest] = await versionsCommand(backend);
    // a full-access client deletes what the version names
    for (const prefix of ["packs/", "archives/"]) {
      for await (const { key } of backend.list(prefix)) await backend.delete(key);
    }
    await rejects(
      rollbackCommand(backend, newest.id, { passphrase: PASS }),
      new RegExp(
        `Cannot roll back ".*/r" to version ${newest.id}: 2 packs of its index and 1 archive ` +
          "objects of its manifest are gone",
      ),
    );
    const r = await rollbackCommand(backend, newest.id, { passphrase: PASS, force: true });
    deepStrictEqual([r.missingPacks, r.missingArchives, r.archives], [2, 1, 1]);
  }, false);
});
