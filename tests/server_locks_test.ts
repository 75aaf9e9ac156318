/**
 * vger-server's lock expiry and backup freshness as a real process: a lock nobody rewrites is
 * swept after the TTL (made short by the test-only entry point tests/_server_short_ttl.ts, since
 * the configuration refuses a TTL under 1,200 s), one that is refreshed stays, whatever time the
 * client writes into it; `last_backup_at` follows a manifest write after a new archive only, and
 * survives a restart.
 */

import { equal, ok } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { startServer, type TestServer } from "./_server.ts";

const SHORT_TTL_ENTRY = fileURLToPath(new URL("./_server_short_ttl.ts", import.meta.url));

async function put(server: TestServer, key: string, body: string, create = false): Promise<number> {
  const res = await server.fetch(`/r/${key}`, {
    method: "PUT",
    body,
    headers: create ? { "If-None-Match": "*" } : {},
  });
  await res.body?.cancel();
  return res.status;
}

async function status(server: TestServer, key: string): Promise<number> {
  const res = await server.fetch(`/r/${key}`, { method: "HEAD" });
  return res.status;
}

Deno.test("locks: an unrefreshed lock is swept after the TTL, a refreshed one stays (append-only too)", async () => {
  const server = await startServer("run", {
    entry: SHORT_TTL_ENTRY,
    env: { VGER_TEST_LOCK_TTL_SECONDS: "1.5" },
    toml: "append_only = true\n",
  });
  try {
    equal(await put(server, "config", "c", true), 201);
    const dead = `locks/${"d".repeat(64)}`;
    const alive = `locks/${"a".repeat(64)}`;
    // a client's own idea of time does not count: this one claims to be written in 2999
    const forged =
      `{"host":"h","pid":1,"time":"2999-01-01T00:00:00.000Z","exclusive":true,"command":"x"}`;
    equal(await put(server, dead, forged, true), 201);
    equal(await put(server, "locks/commit", "{}", true), 201);
    equal(await put(server, alive, "{}", true), 201);
    const info = await (await server.fetch("/r")).json();
    equal(info.lock_ttl_seconds, 1.5);
    // refresh one every 400 ms for 3.5 s (bounded), then look
    const until = Date.now() + 3500;
    while (Date.now() < until) {
      equal(await put(server, alive, "{}"), 200);
      await new Promise((r) => setTimeout(r, 400));
    }
    equal(await status(server, dead), 404);
    equal(await status(server, "locks/commit"), 404);
    equal(await status(server, alive), 200);
    equal(await status(server, "config"), 200); // only locks are swept
    ok(server.stdout().includes(`lock_expired r/${dead}`), server.stdout());
  } finally {
    await server.stop();
  }
});

Deno.test("freshness: last_backup_at is set by a manifest write after a new archive, kept across a restart", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "vger-server-fresh-" });
  try {
    let server = await startServer("serve", { dataDir });
    try {
      equal(await put(server, "config", "c", true), 201);
      equal(await put(server, "manifest", "m0"), 201);
      equal((await (await server.fetch("/r")).json()).last_backup_at, null);
      equal(await put(server, `archives/${"1".repeat(64)}`, "a", true), 201);
      equal((await (await server.fetch("/r")).json()).last_backup_at, null);
      const before = Date.now();
      equal(await put(server, "manifest", "m1"), 200);
      const first = (await (await server.fetch("/r")).json()).last_backup_at;
      ok(Date.parse(first) >= before - 1000 && Date.parse(first) <= Date.now() + 1000, first);
      // a manifest write without a new archive (delete, prune, compact) leaves it
      await new Promise((r) => setTimeout(r, 20));
      equal(await put(server, "manifest", "m2"), 200);
      equal((await (await server.fetch("/r")).json()).last_backup_at, first);
      const listed = await (await server.fetch("/")).json();
      equal(listed.repositories[0].last_backup_at, first);
    } finally {
      await server.stop();
    }
    server = await startServer("run", { dataDir });
    try {
      const again = await (await server.fetch("/r")).json();
      ok(again.last_backup_at !== null);
      equal(again.objects, 3);
    } finally {
      await server.stop();
    }
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});
