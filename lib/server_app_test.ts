import { deepStrictEqual, equal, ok } from "node:assert/strict";
import { MemoryBackend } from "../backends/memory.ts";
import { createApp } from "./server_app.ts";
import { ServerStore } from "./server_store.ts";

const TOKEN = "app-test-token";

function app() {
  const lines: string[] = [];
  const store = new ServerStore(new MemoryBackend(), {
    appendOnly: false,
    maxObjectBytes: 1 << 20,
    quotaBytes: 0,
  });
  const a = createApp(store, {
    token: TOKEN,
    bodyTimeoutSeconds: 5,
    appendOnly: false,
    lockTtlSeconds: 3600,
    logFormat: "json",
    log: (line) => lines.push(line),
  });
  const call = (
    method: string,
    path: string,
    init: { body?: string; headers?: Record<string, string> } = {},
  ) =>
    a.fetch(
      new Request(`http://h${path}`, {
        method,
        body: init.body,
        headers: {
          Authorization: `Bearer ${TOKEN}`,
          // an in-process Request has no Content-Length; fetch would send one
          ...(init.body === undefined ? {} : { "Content-Length": String(init.body.length) }),
          ...init.headers,
        },
      }),
    );
  return { call, lines, fetch: a.fetch };
}

Deno.test("app: /health needs no token, everything else does; errors are JSON one-liners", async () => {
  const { call, fetch, lines } = app();
  const health = await fetch(new Request("http://h/health"));
  equal(health.status, 200);
  equal((await health.json()).status, "ok");
  const anonymous = await fetch(new Request("http://h/r/config"));
  equal(anonymous.status, 401);
  equal(anonymous.headers.get("www-authenticate"), "Bearer");
  deepStrictEqual(await anonymous.json(), { error: "Missing or wrong token" });
  const lower = await fetch(
    new Request("http://h/", { headers: { Authorization: `bearer ${TOKEN}` } }),
  );
  equal(lower.status, 200); // the scheme is case-insensitive
  await lower.body?.cancel();
  const bad = await call("GET", "/r/a%2f..%2fb"); // (a Request normalises %2e%2e away)
  equal(bad.status, 400);
  equal(bad.headers.get("content-type"), "application/json");
  const created = await call("PUT", "/r/config", { body: "c", headers: { "If-None-Match": "*" } });
  equal(created.status, 201);
  equal(created.headers.get("x-vger-append-only"), "false");
  const weird = await call("PUT", "/r/x", { body: "c", headers: { "If-None-Match": '"etag"' } });
  equal(weird.status, 400);
  await weird.body?.cancel();
  const post = await call("POST", "/r/config", { body: "c" });
  equal(post.status, 405);
  await post.body?.cancel();
  const info = await (await call("GET", "/r")).json();
  deepStrictEqual(
    [info.name, info.objects, info.quota_bytes, info.lock_ttl_seconds, info.last_backup_at],
    ["r", 1, 0, 3600, null],
  );
  // a log line per request, JSON, never the token
  equal(lines.length, 8);
  ok(lines.every((l) => JSON.parse(l).status > 0 && !l.includes(TOKEN)));
});

Deno.test("app: ?versions lists and serves kept versions, ?check answers the structure check; both need a known repository", async () => {
  const { call } = app();
  equal((await call("GET", "/r?versions")).status, 404);
  equal((await call("GET", "/r?check")).status, 404);
  equal(
    (await call("PUT", "/r/config", { body: "c", headers: { "If-None-Match": "*" } })).status,
    201,
  );
  // full mode without a retention keeps none
  equal((await call("PUT", "/r/manifest", { body: "m1" })).status, 201);
  deepStrictEqual(await (await call("GET", "/r?versions")).json(), { versions: [] });
  for (
    const bad of [
      "/r?versions&id=x&key=manifest",
      "/r?versions&id=000000000000001-00000000",
      "/r?versions&key=index",
    ]
  ) {
    equal((await call("GET", bad)).status, 400, bad);
  }
  equal((await call("GET", "/r?versions&id=000000000000001-00000000&key=manifest")).status, 404);
  const res = await call("GET", "/r?check");
  equal(res.status, 200);
  const text = await res.text();
  const report = JSON.parse(text);
  deepStrictEqual(
    report.problems.map((p: { kind: string }) => p.kind),
    ["corrupt-config", "corrupt-key-file", "corrupt-manifest", "corrupt-index"],
  );
  equal(report.repository, "r");
  equal(report.verify_data, false);
});
