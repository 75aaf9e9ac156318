/**
 * vger-server's append-only mode as a real process: docs/SERVER.md's table, key by key, for a
 * client holding the token (whatever it sends), the pack re-PUT rule, and the kept versions of
 * `manifest` and `index` under data_dir/.vger-server/.
 */

import { deepStrictEqual, equal, ok } from "node:assert/strict";
import { createHash } from "node:crypto";
import { startServer, type TestServer } from "./_server.ts";

async function send(
  server: TestServer,
  method: string,
  path: string,
  body?: Uint8Array | string,
  create = false,
): Promise<number> {
  const res = await server.fetch(path, {
    method,
    body: body === undefined
      ? undefined
      : (typeof body === "string" ? new TextEncoder().encode(body) : body) as BodyInit,
    headers: create ? { "If-None-Match": "*" } : {},
  });
  await res.body?.cancel();
  return res.status;
}

function pack(seed: string): { key: string; bytes: Uint8Array } {
  const bytes = new TextEncoder().encode(`pack ${seed} `.repeat(1000));
  const id = createHash("sha256").update(bytes).digest("hex");
  return { key: `packs/${id.slice(0, 2)}/${id}`, bytes };
}

async function read(server: TestServer, path: string): Promise<string> {
  return await (await server.fetch(path)).text();
}

Deno.test("append-only: every way to destroy history is refused with 403, adding still works", async () => {
  const server = await startServer("serve", { toml: "append_only = true\n" });
  try {
    const r = "/repo";
    equal(await send(server, "PUT", `${r}/config`, "config", true), 201);
    const res = await server.fetch(`${r}/config`);
    equal(res.headers.get("x-vger-append-only"), "true");
    await res.body?.cancel();
    equal((await (await server.fetch(r)).json()).append_only, true);
    const archive = `archives/${"a".repeat(64)}`;
    const p = pack("one");
    // creates: every class
    for (
      const [key, body] of [
        ["keys/repokey", "key"],
        [archive, "arch"],
        [p.key, p.bytes],
        ["manifest", "m0"],
        ["index", "i0"],
        ["locks/commit", "l"],
        ["other/x", "o"],
      ] as const
    ) {
      equal(await send(server, "PUT", `${r}/${key}`, body), 201, key);
    }
    // replaces and deletes of what makes history: 403, bytes unchanged
    for (const key of ["config", "keys/repokey", archive, "other/x"]) {
      equal(await send(server, "PUT", `${r}/${key}`, "evil"), 403, `replace ${key}`);
      equal(await send(server, "DELETE", `${r}/${key}`), 403, `delete ${key}`);
    }
    equal(await read(server, `${r}/keys/repokey`), "key");
    equal(await read(server, `${r}/${archive}`), "arch");
    const refusal = await server.fetch(`${r}/keys/repokey`, { method: "DELETE" });
    deepStrictEqual(await refusal.json(), {
      error: 'Repository "repo" is append-only: "keys/repokey" cannot be deleted',
    });
    // a pack: the same bytes again are fine (a retried upload), other bytes are 403, delete 403
    equal(await send(server, "PUT", `${r}/${p.key}`, p.bytes), 200);
    const other = pack("two").bytes;
    equal(await send(server, "PUT", `${r}/${p.key}`, other), 403);
    equal(await send(server, "DELETE", `${r}/${p.key}`), 403);
    deepStrictEqual(
      new Uint8Array(await (await server.fetch(`${r}/${p.key}`)).arrayBuffer()),
      p.bytes,
    );
    // the same new pack uploaded 8 times at once (retries racing): one 201, the others 200
    const raced = pack("raced");
    const results = await Promise.all(
      Array.from({ length: 8 }, () => send(server, "PUT", `${r}/${raced.key}`, raced.bytes)),
    );
    deepStrictEqual(results.sort(), [200, 200, 200, 200, 200, 200, 200, 201]);
    // a new pack whose bytes do not hash to its name: 400, nothing stored
    const wrong = pack("three").key;
    equal(await send(server, "PUT", `${r}/${wrong}`, other), 400);
    equal(await send(server, "GET", `${r}/${wrong}`), 404);
    // manifest and index: replaced, every version kept; never deleted
    equal(await send(server, "PUT", `${r}/manifest`, "m1"), 200);
    equal(await send(server, "PUT", `${r}/manifest`, ""), 200); // "replaced by an empty one"
    equal(await send(server, "PUT", `${r}/index`, "i1"), 200);
    equal(await send(server, "DELETE", `${r}/manifest`), 403);
    equal(await send(server, "DELETE", `${r}/index`), 403);
    equal(await read(server, `${r}/manifest`), "");
    const kept = async (key: string) => {
      const dir = `${server.dataDir}/.vger-server/versions/repo/${key}`;
      const names = (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();
      return await Promise.all(names.map((n) => Deno.readTextFile(`${dir}/${n}`)));
    };
    deepStrictEqual(await kept("manifest"), ["m0", "m1", ""]);
    deepStrictEqual(await kept("index"), ["i0", "i1"]);
    // kept versions are outside every repository: no listing shows them, no path reaches them
    const listing = await (await server.fetch(`${r}/`)).json();
    ok(listing.objects.every((o: { key: string }) => !o.key.includes("vger-server")));
    equal(await send(server, "GET", "/.vger-server/versions/repo/manifest"), 400);
    // locks: created, refreshed and released
    equal(await send(server, "PUT", `${r}/locks/${"b".repeat(64)}`, "lock"), 201);
    equal(await send(server, "PUT", `${r}/locks/${"b".repeat(64)}`, "lock2"), 200);
    equal(await send(server, "DELETE", `${r}/locks/${"b".repeat(64)}`), 204);
    equal(await send(server, "DELETE", `${r}/locks/commit`), 204);
    // a create of an existing key is 412 as always, not a way around the rules
    equal(await send(server, "PUT", `${r}/keys/repokey`, "evil", true), 412);
    equal(await read(server, `${r}/keys/repokey`), "key");
    // a new repository can still be made
    equal(await send(server, "PUT", "/second/config", "c", true), 201);
  } finally {
    await server.stop();
  }
});

Deno.test("without append-only: packs must still hash to their name; replaces and deletes work", async () => {
  const server = await startServer("run");
  try {
    equal(await send(server, "PUT", "/r/config", "c", true), 201);
    const p = pack("x");
    equal(await send(server, "PUT", `/r/${p.key}`, pack("y").bytes), 400);
    equal(await send(server, "PUT", `/r/${p.key}`, p.bytes, true), 201);
    equal(await send(server, "PUT", "/r/keys/repokey", "k1"), 201);
    equal(await send(server, "PUT", "/r/keys/repokey", "k2"), 200);
    equal(await send(server, "PUT", "/r/manifest", "m1"), 201);
    equal(await send(server, "PUT", "/r/manifest", "m2"), 200);
    equal(await send(server, "DELETE", `/r/${p.key}`), 204);
    equal(await send(server, "DELETE", "/r/config"), 204);
    // no versions are kept outside append-only mode
    let versions = true;
    await Deno.stat(`${server.dataDir}/.vger-server/versions`).catch(() => (versions = false));
    equal(versions, false);
  } finally {
    await server.stop();
  }
});
