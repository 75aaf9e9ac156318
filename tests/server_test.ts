/**
 * vger-server as a real process on 127.0.0.1, under `deno serve` and under `deno run ... --config`,
 * driven with plain `fetch` (and raw TCP for what fetch cannot send): the object and repository
 * routes of docs/SERVER.md, authentication on every route, and bad requests, each a clean 4xx
 * while the server keeps serving the others.
 */

import { deepStrictEqual, equal, match, ok } from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  peakRss,
  rawRequest,
  type ServerMode,
  startServer,
  statusOf,
  type TestServer,
} from "./_server.ts";

const MODES: ServerMode[] = ["serve", "run"];

function bytes(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

async function put(
  server: TestServer,
  path: string,
  body: Uint8Array | string,
  create = false,
): Promise<Response> {
  const res = await server.fetch(path, {
    method: "PUT",
    body: (typeof body === "string" ? bytes(body) : body) as BodyInit,
    headers: create ? { "If-None-Match": "*" } : {},
  });
  await res.body?.cancel();
  return res;
}

async function text(res: Response): Promise<string> {
  return await res.text();
}

for (const mode of MODES) {
  Deno.test(`server (${mode}): objects are stored, read, ranged, listed, replaced and deleted`, async () => {
    const server = await startServer(mode);
    try {
      const health = await fetch(`${server.url}/health`);
      equal(health.status, 200);
      const h = await health.json();
      equal(h.status, "ok");
      equal(h.repositories, 0);
      ok(typeof h.disk_free_bytes === "number" && h.disk_free_bytes > 0, JSON.stringify(h));

      // an unknown repository: 404 for everything but the create of its config
      equal((await put(server, "/laptop/index", "x")).status, 404);
      const unknown = await server.fetch("/laptop/config");
      equal(unknown.status, 404);
      deepStrictEqual(await unknown.json(), { error: 'Unknown repository "laptop"' });
      equal((await put(server, "/laptop/config", "cfg")).status, 404);
      const created = await put(server, "/laptop/config", "cfg", true);
      equal(created.status, 201);
      equal(created.headers.get("x-vger-append-only"), "false");
      equal((await put(server, "/laptop/config", "other", true)).status, 412);
      equal(await text(await server.fetch("/laptop/config")), "cfg");

      // objects: new 201, replaced 200, HEAD, ranges
      const pack = crypto.getRandomValues(new Uint8Array(50_000));
      equal((await put(server, "/laptop/data/one", pack)).status, 201);
      equal((await put(server, "/laptop/index", "v1")).status, 201);
      equal((await put(server, "/laptop/index", "v2")).status, 200);
      equal(await text(await server.fetch("/laptop/index")), "v2");
      const head = await server.fetch("/laptop/data/one", { method: "HEAD" });
      equal(head.status, 200);
      equal(head.headers.get("content-length"), "50000");
      const whole = new Uint8Array(await (await server.fetch("/laptop/data/one")).arrayBuffer());
      deepStrictEqual(whole, pack);
      const ranged = await server.fetch("/laptop/data/one", {
        headers: { Range: "bytes=100-199" },
      });
      equal(ranged.status, 206);
      equal(ranged.headers.get("content-range"), "bytes 100-199/50000");
      deepStrictEqual(new Uint8Array(await ranged.arrayBuffer()), pack.subarray(100, 200));
      const clipped = await server.fetch("/laptop/data/one", {
        headers: { Range: "bytes=49990-60000" },
      });
      equal(clipped.status, 206);
      deepStrictEqual(new Uint8Array(await clipped.arrayBuffer()), pack.subarray(49990));
      const past = await server.fetch("/laptop/data/one", { headers: { Range: "bytes=50000-" } });
      equal(past.status, 416);
      await past.body?.cancel();
      const badRange = await server.fetch("/laptop/data/one", { headers: { Range: "bytes=5-1" } });
      equal(badRange.status, 400);
      await badRange.body?.cancel();
      const absent = await server.fetch("/laptop/data/absent");
      equal(absent.status, 404);
      deepStrictEqual(await absent.json(), {
        error: 'No object "data/absent" in repository "laptop"',
      });

      // listing: byte order, prefix, pages
      for (const k of ["locks/b", "locks/a", "locks/c", "keys/repokey"]) {
        equal((await put(server, `/laptop/${k}`, k)).status, 201);
      }
      const all = await (await server.fetch("/laptop/")).json();
      deepStrictEqual(all.objects.map((o: { key: string }) => o.key), [
        "config",
        "data/one",
        "index",
        "keys/repokey",
        "locks/a",
        "locks/b",
        "locks/c",
      ]);
      equal(all.next, null);
      const page1 = await (await server.fetch("/laptop/?prefix=locks/&limit=2")).json();
      deepStrictEqual(page1, {
        objects: [{ key: "locks/a", size: 7 }, { key: "locks/b", size: 7 }],
        next: "locks/b",
      });
      const page2 = await (await server.fetch("/laptop/?prefix=locks/&limit=2&after=locks/b"))
        .json();
      deepStrictEqual(page2, { objects: [{ key: "locks/c", size: 7 }], next: null });
      const badQuery = await server.fetch("/laptop/?limit=0");
      equal(badQuery.status, 400);
      await badQuery.body?.cancel();

      // delete: 204, also when absent
      equal((await server.fetch("/laptop/locks/a", { method: "DELETE" })).status, 204);
      equal((await server.fetch("/laptop/locks/a", { method: "DELETE" })).status, 204);
      equal((await server.fetch("/laptop/locks/a")).status, 404);

      // repository info and the list of repositories
      equal((await put(server, "/desktop/config", "c2", true)).status, 201);
      const info = await (await server.fetch("/laptop")).json();
      equal(info.name, "laptop");
      equal(info.objects, 6);
      equal(info.used_bytes, 3 + 50_000 + 2 + 12 + 7 + 7);
      const repos = await (await server.fetch("/")).json();
      deepStrictEqual(repos.repositories.map((r: { name: string }) => r.name), [
        "desktop",
        "laptop",
      ]);
      equal((await (await fetch(`${server.url}/health`)).json()).repositories, 2);

      // request logs: one line per request, never the token
      ok(server.stdout().includes("PUT /laptop/data/one 201"), server.stdout());
      ok(!server.stdout().includes(server.token));
      ok(!server.stderr().includes(server.token));
    } finally {
      await server.stop();
    }
  });
}

Deno.test("server (run): a 256 MiB stream body is stored and read back in pieces, byte for byte, never held whole", async () => {
  const server = await startServer("run");
  try {
    equal((await put(server, "/big/config", "c", true)).status, 201);
    const before = await peakRss(server.pid);
    const size = 256 << 20;
    const piece = crypto.getRandomValues(new Uint8Array(65536));
    const sent = createHash("sha256");
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let at = 0; at < size; at += piece.length) {
          controller.enqueue(piece);
          sent.update(piece);
        }
        controller.close();
      },
    });
    // fetch sends a stream body chunked (no Content-Length): X-Vger-Length announces the size
    const res = await server.fetch("/big/packs/00/big", {
      method: "PUT",
      body,
      headers: { "X-Vger-Length": String(size) },
    });
    equal(res.status, 201);
    const got = await server.fetch("/big/packs/00/big");
    equal(got.headers.get("content-length"), String(size));
    const hash = createHash("sha256");
    for await (const chunk of got.body!) hash.update(chunk);
    equal(hash.digest("hex"), sent.digest("hex"));
    // the server's peak memory grew by far less than the object (where Linux tells): the
    // growth is garbage of the pieces in flight, ~80 MiB whether 64 or 256 MiB pass through
    const after = await peakRss(server.pid);
    if (before !== null && after !== null) {
      ok(after - before < size / 2, `peak RSS grew ${(after - before) >> 20} MiB`);
    }
  } finally {
    await server.stop();
  }
});

Deno.test("server (serve): 401 on every route without the token or with a wrong one", async () => {
  const server = await startServer("serve");
  try {
    equal((await put(server, "/laptop/config", "c", true)).status, 201);
    const routes: [string, string][] = [
      ["GET", "/"],
      ["GET", "/laptop"],
      ["GET", "/laptop/"],
      ["GET", "/laptop/config"],
      ["HEAD", "/laptop/config"],
      ["PUT", "/laptop/config"],
      ["PUT", "/unknown/config"],
      ["DELETE", "/laptop/config"],
      ["GET", "/unknown/x"],
      ["GET", "/../etc/passwd"],
      ["POST", "/laptop/config"],
    ];
    for (const auth of [undefined, "Bearer wrong-token", `Bearer ${server.token}x`, server.token]) {
      for (const [method, path] of routes) {
        const res = await fetch(server.url + path, {
          method,
          headers: auth === undefined ? {} : { Authorization: auth },
          body: method === "PUT" ? "x" : undefined,
        });
        equal(res.status, 401, `${method} ${path} with ${auth}`);
        equal(res.headers.get("www-authenticate"), "Bearer");
        equal(res.headers.get("x-vger-append-only"), null);
        if (method !== "HEAD") {
          deepStrictEqual(await res.json(), { error: "Missing or wrong token" });
        }
      }
    }
    equal(await text(await server.fetch("/laptop/config")), "c");
  } finally {
    await server.stop();
  }
});

Deno.test("server (run): exactly one of 16 concurrent creates of a key wins, the others get 412", async () => {
  const server = await startServer("run");
  try {
    equal((await put(server, "/r/config", "c", true)).status, 201);
    const results = await Promise.all(
      Array.from({ length: 16 }, (_, i) => put(server, "/r/locks/commit", `holder ${i}`, true)),
    );
    const statuses = results.map((r) => r.status).sort();
    deepStrictEqual(statuses, [201, ...Array(15).fill(412)]);
    const winner = results.findIndex((r) => r.status === 201);
    equal(await text(await server.fetch("/r/locks/commit")), `holder ${winner}`);
    // concurrent creates of a repository: one config
    const repos = await Promise.all(
      Array.from({ length: 8 }, (_, i) => put(server, "/fresh/config", `c${i}`, true)),
    );
    deepStrictEqual(repos.map((r) => r.status).sort(), [201, ...Array(7).fill(412)]);
  } finally {
    await server.stop();
  }
});

for (const mode of MODES) {
  Deno.test(`server (${mode}): bad requests are each a clean 4xx, nothing is stored, and the server keeps serving`, async () => {
    const server = await startServer(mode, {
      toml: "body_timeout_seconds = 1\nmax_object_bytes = 1073741824\n",
    });
    const auth = `Authorization: Bearer ${server.token}\r\n`;
    const alive = async () => {
      const res = await server.fetch("/r/config");
      equal(res.status, 200);
      equal(await res.text(), "c");
    };
    try {
      equal((await put(server, "/r/config", "c", true)).status, 201);

      // path traversal in repository names and keys, plain and percent-encoded
      const traversals = [
        "/../x",
        "/r/../../etc/passwd",
        "/r/%2e%2e/%2e%2e/etc",
        "/%2e%2e/config",
        "/r/a/%2e%2e/%2e%2e/b",
        "/r/..%2f..%2fconfig",
        "/r%2f..%2fx/config",
        "/.vger-server/repos/r",
        "/r/a//b",
        "/r/%00",
        "/r/.tmp-1234",
        "/r/%zz",
        `/r/${"a".repeat(300)}`,
        "/health/x",
        "/ui/config",
      ];
      for (const path of traversals) {
        for (const method of ["GET", "PUT", "DELETE"]) {
          const body = method === "PUT" ? "evil" : "";
          const head =
            `${method} ${path} HTTP/1.1\r\nHost: x\r\n${auth}Content-Length: ${body.length}\r\n` +
            `Connection: close\r\n\r\n${body}`;
          const response = await rawRequest(server.port, head);
          equal(statusOf(response), 400, `${method} ${path}: ${response}`);
          ok(response.includes('{"error":'), response);
        }
      }
      await alive();

      // a body shorter than its Content-Length, the client then done: 400, nothing stored
      const short = await rawRequest(
        server.port,
        `PUT /r/data/short HTTP/1.1\r\nHost: x\r\n${auth}Content-Length: 100\r\n\r\n`,
        { body: new Uint8Array(50), closeWrite: true },
      );
      equal(statusOf(short), 400, short);
      equal((await server.fetch("/r/data/short")).status, 404);

      // a body longer than its Content-Length: the extra bytes are a malformed next request (400);
      // the object is the announced bytes, and a pack so cut does not hash to its name (400)
      const long = await rawRequest(
        server.port,
        `PUT /r/data/long HTTP/1.1\r\nHost: x\r\n${auth}Content-Length: 5\r\n\r\n`,
        { body: bytes("hellogarbage garbage\r\n\r\n"), timeoutMs: 3000 },
      );
      equal(statusOf(long), 201, long);
      equal(await (await server.fetch("/r/data/long")).text(), "hello");

      // a stalled body: 408 after body_timeout_seconds, nothing stored
      const started = Date.now();
      const stalled = await rawRequest(
        server.port,
        `PUT /r/data/stalled HTTP/1.1\r\nHost: x\r\n${auth}Content-Length: 1000\r\n\r\n`,
        { body: new Uint8Array(10), timeoutMs: 10_000 },
      );
      equal(statusOf(stalled), 408, stalled);
      ok(Date.now() - started < 8000);
      equal((await server.fetch("/r/data/stalled")).status, 404);

      // a 10 GB claim: 413 at once, nothing read or stored
      const huge = await rawRequest(
        server.port,
        `PUT /r/data/huge HTTP/1.1\r\nHost: x\r\n${auth}Content-Length: 10000000000\r\n\r\n`,
        { body: new Uint8Array(1000), timeoutMs: 5000 },
      );
      equal(statusOf(huge), 413, huge);
      ok(huge.includes("too large"), huge);
      equal((await server.fetch("/r/data/huge")).status, 404);

      // bad Content-Length values and chunked uploads
      for (const header of ["Content-Length: -1", "Content-Length: 1e3", "Content-Length: abc"]) {
        const res = await rawRequest(
          server.port,
          `PUT /r/data/x HTTP/1.1\r\nHost: x\r\n${auth}${header}\r\nConnection: close\r\n\r\n`,
          { closeWrite: true },
        );
        ok(statusOf(res) === 400, `${header}: ${res}`);
      }
      const chunked = await rawRequest(
        server.port,
        `PUT /r/data/chunked HTTP/1.1\r\nHost: x\r\n${auth}Transfer-Encoding: chunked\r\n\r\n` +
          `5\r\nhello\r\n0\r\n\r\n`,
      );
      equal(statusOf(chunked), 411, chunked);
      const chunkedPut = (length: string, body: string) =>
        rawRequest(
          server.port,
          `PUT /r/data/chunked HTTP/1.1\r\nHost: x\r\n${auth}Transfer-Encoding: chunked\r\n` +
            `X-Vger-Length: ${length}\r\nConnection: close\r\n\r\n` +
            `${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`,
        );
      equal(statusOf(await chunkedPut("6", "hello")), 400); // shorter than announced
      equal(statusOf(await chunkedPut("4", "hello")), 400); // longer than announced
      equal(statusOf(await chunkedPut("x", "hello")), 400);
      equal((await server.fetch("/r/data/chunked")).status, 404);
      const both = await rawRequest(
        server.port,
        `PUT /r/data/both HTTP/1.1\r\nHost: x\r\n${auth}Content-Length: 5\r\nX-Vger-Length: 6\r\n` +
          `Connection: close\r\n\r\nhello`,
      );
      equal(statusOf(both), 400, both);
      equal(statusOf(await chunkedPut("5", "hello")), 201);
      equal(await (await server.fetch("/r/data/chunked")).text(), "hello");

      // huge headers: refused by the HTTP layer (Deno's says 400, others 431)
      const big = await rawRequest(
        server.port,
        `GET /r/config HTTP/1.1\r\nHost: x\r\n${auth}X-Big: ${"a".repeat(1 << 20)}\r\n\r\n`,
        { timeoutMs: 5000 },
      );
      ok([400, 431].includes(statusOf(big)), big.slice(0, 200));
      const many = await rawRequest(
        server.port,
        `GET /r/config HTTP/1.1\r\nHost: x\r\n${auth}${"X-H: v\r\n".repeat(5000)}\r\n`,
        { timeoutMs: 5000 },
      );
      ok([400, 431].includes(statusOf(many)), many.slice(0, 200));

      // malformed requests and methods
      equal(statusOf(await rawRequest(server.port, "GARBAGE\r\n\r\n")), 400);
      const post = await server.fetch("/r/config", { method: "POST", body: "x" });
      equal(post.status, 405);
      await post.body?.cancel();

      await alive();
      // nothing of the refused uploads is left in the data directory
      const names: string[] = [];
      const walk = async (dir: string) => {
        for await (const e of Deno.readDir(dir)) {
          if (e.isDirectory) await walk(`${dir}/${e.name}`);
          else names.push(`${dir}/${e.name}`.slice(server.dataDir.length + 1));
        }
      };
      await walk(server.dataDir);
      deepStrictEqual(names.filter((n) => !n.startsWith(".vger-server/")).sort(), [
        "r/config",
        "r/data/chunked",
        "r/data/long",
      ]);
    } finally {
      await server.stop();
    }
  });
}

Deno.test("server: a bad configuration is one line and exit code 2, under deno serve and deno run", async () => {
  const dir = await Deno.makeTempDir({ prefix: "vger-server-badconf-" });
  try {
    const file = `${dir}/vger-server.toml`;
    await Deno.writeTextFile(
      file,
      `[server]\ndata_dir = "${dir}/data"\ntoken = "${"t".repeat(20)}"\nquota_bytes = "lots"\n`,
    );
    const root = new URL("../", import.meta.url).pathname;
    const perms = ["--allow-read", "--allow-write", "--allow-env", "--allow-sys"];
    const runs = [
      ["serve", ...perms, "--host", "127.0.0.1", "--port", "0", `${root}server.ts`],
      ["run", "--allow-net=127.0.0.1", ...perms, `${root}server.ts`, "--config", file],
    ];
    for (const args of runs) {
      const out = await new Deno.Command(Deno.execPath(), {
        args,
        cwd: root,
        env: { VGER_SERVER_CONFIG: file, NO_COLOR: "1" },
        stdin: "null",
        signal: AbortSignal.timeout(30_000),
      }).output();
      equal(out.code, 2, args[0]);
      const lines = new TextDecoder().decode(out.stderr).split("\n")
        .filter((l) => l.startsWith("vger-server:"));
      deepStrictEqual(lines, [
        `vger-server: Invalid configuration ${file} line 4: server.quota_bytes: must be a whole ` +
        `number of bytes, 0 or more (got "lots")`,
      ]);
    }
    // and without --config, deno run starts no listener: it just ends
    const bare = await new Deno.Command(Deno.execPath(), {
      args: ["run", ...perms, `${root}server.ts`],
      cwd: root,
      stdin: "null",
      signal: AbortSignal.timeout(30_000),
    }).output();
    equal(bare.code, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("server (run): killed in the middle of an upload, it leaves no object, and the next one works", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "vger-server-kill-" });
  try {
    let server = await startServer("run", { dataDir });
    equal((await put(server, "/r/config", "c", true)).status, 201);
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    await conn.write(bytes(
      `PUT /r/data/cut HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${server.token}\r\n` +
        `Content-Length: 1000000\r\n\r\n`,
    ));
    await conn.write(new Uint8Array(300_000));
    await new Promise((r) => setTimeout(r, 300));
    Deno.kill(server.pid, "SIGKILL");
    await server.stop();
    conn.close();
    const temps = async () => {
      let n = 0;
      for await (const e of Deno.readDir(`${dataDir}/r/data`)) if (e.name.startsWith(".tmp-")) n++;
      return n;
    };
    equal(await temps(), 1); // the killed upload's temp file
    server = await startServer("run", { dataDir });
    try {
      equal(await temps(), 0); // removed before the restarted server listened
      ok(server.stderr().includes("removed 1 unfinished upload"), server.stderr());
      equal((await server.fetch("/r/data/cut")).status, 404);
      const listing = await (await server.fetch("/r/")).json();
      deepStrictEqual(listing.objects.map((o: { key: string }) => o.key), ["config"]);
      equal((await put(server, "/r/data/cut", "whole")).status, 201);
      equal(await (await server.fetch("/r/data/cut")).text(), "whole");
    } finally {
      await server.stop();
    }
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("server (run): SIGTERM lets an upload in flight finish, answers new requests 503, then exits", async () => {
  const server = await startServer("run");
  try {
    equal((await put(server, "/r/config", "c", true)).status, 201);
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    try {
      await conn.write(bytes(
        `PUT /r/data/slow HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${server.token}\r\n` +
          `Content-Length: 600000\r\nConnection: close\r\n\r\n`,
      ));
      await conn.write(new Uint8Array(300_000).fill(7));
      await new Promise((r) => setTimeout(r, 300));
      Deno.kill(server.pid, "SIGTERM");
      await new Promise((r) => setTimeout(r, 300));
      // a new request while the upload is in flight: refused for now, to be sent again
      const late = await server.fetch("/r/config");
      equal(late.status, 503);
      equal(late.headers.get("retry-after"), "1");
      await late.body?.cancel();
      await conn.write(new Uint8Array(300_000).fill(7));
      const answer = new Uint8Array(4096);
      const n = await conn.read(answer);
      ok(n !== null, "no answer to the upload in flight");
      match(new TextDecoder().decode(answer.subarray(0, n)), /^HTTP\/1\.1 201 /);
    } finally {
      conn.close();
    }
    // the server exits once the upload is done; what it stored is whole
    const until = Date.now() + 10_000;
    for (;;) {
      try {
        const res = await fetch(`${server.url}/health`);
        await res.body?.cancel();
      } catch {
        break; // gone
      }
      ok(Date.now() < until, "the server did not exit within 10 s of SIGTERM");
      await new Promise((r) => setTimeout(r, 100));
    }
    const stored = await Deno.readFile(`${server.dataDir}/r/data/slow`);
    equal(stored.length, 600_000);
    ok(stored.every((b) => b === 7));
  } finally {
    await server.stop();
  }
});
