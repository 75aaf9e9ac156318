/**
 * The REST backend's side of the wire, against a loopback TCP server that replays exact raw
 * HTTP answers (a lying Content-Length, a dropped connection, a server's hostile error text),
 * which a real vger-server never sends: what the client sends (token, Content-Length of a
 * streamed body, conditional creates, ranges), how each status becomes an error in words, and
 * how every read is capped. tests/backend_rest_test.ts runs the conformance suite against a real
 * vger-server.
 */

import { deepStrictEqual, equal, ok, rejects } from "node:assert/strict";
import {
  BackendError,
  ForbiddenError,
  IntegrityError,
  NotFoundError,
  QuotaError,
  TransientError,
  UsageError,
} from "../lib/errors.ts";
import { ComposeRefusedError, type StreamBody } from "./backend.ts";
import { MAX_REASON_CHARS, networkError } from "./rest_errors.ts";
import { RestBackend } from "./rest.ts";
import { RetryBackend } from "./retry.ts";

/** One request as the replay server read it. */
interface Seen {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: Uint8Array;
}

/** An answer: raw bytes to send (then the connection closes), or a function that takes over. */
type Reply = string | Uint8Array | ((conn: Deno.Conn) => Promise<void>);

const enc = new TextEncoder();
const TOKEN = "s3cr3t-t0ken";

/** A raw answer with Content-Length and `Connection: close`. */
function answer(status: number, body: string | Uint8Array = "", headers = ""): Uint8Array {
  const b = typeof body === "string" ? enc.encode(body) : body;
  const head = enc.encode(
    `HTTP/1.1 ${status} X\r\ncontent-length: ${b.length}\r\nconnection: close\r\n${headers}\r\n`,
  );
  const out = new Uint8Array(head.length + b.length);
  out.set(head);
  out.set(b, head.length);
  return out;
}

const json = (status: number, value: unknown, headers = "") =>
  answer(status, JSON.stringify(value), `content-type: application/json\r\n${headers}`);

/**
 * Reads one request (head, and unless `headOnly` its Content-Length body, after a `100 Continue`
 * when asked) from `conn`; null at end of stream.
 */
async function readRequest(conn: Deno.Conn, headOnly = false): Promise<Seen | null> {
  let buf = new Uint8Array(0);
  const chunk = new Uint8Array(1 << 16);
  const more = async () => {
    const n = await conn.read(chunk);
    if (n === null) return false;
    const next = new Uint8Array(buf.length + n);
    next.set(buf);
    next.set(chunk.subarray(0, n), buf.length);
    buf = next;
    return true;
  };
  let end = -1;
  while ((end = new TextDecoder().decode(buf).indexOf("\r\n\r\n")) < 0) {
    if (!(await more())) return null;
  }
  const [line, ...rest] = new TextDecoder().decode(buf.subarray(0, end)).split("\r\n");
  const [method, path] = line.split(" ");
  const headers: Record<string, string> = {};
  for (const h of rest) {
    const i = h.indexOf(":");
    headers[h.slice(0, i).toLowerCase()] = h.slice(i + 1).trim();
  }
  if (headOnly) return { method, path, headers, body: new Uint8Array(0) };
  if (headers.expect?.toLowerCase() === "100-continue") {
    await conn.write(enc.encode("HTTP/1.1 100 Continue\r\n\r\n"));
  }
  const length = Number(headers["content-length"] ?? 0);
  while (buf.length < end + 4 + length) {
    if (!(await more())) break;
  }
  return { method, path, headers, body: buf.slice(end + 4, end + 4 + length) };
}

/**
 * Runs `fn` with the URL of a repository `r` on a loopback server answering each request with
 * `reply(request)`, and the requests seen. Every connection is closed at the end.
 */
async function withReplay(
  reply: (req: Seen, n: number) => Reply | Promise<Reply>,
  fn: (url: string, seen: Seen[]) => Promise<void>,
  options: { headOnly?: boolean } = {},
): Promise<void> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const url = `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}/r`;
  const seen: Seen[] = [];
  const conns = new Set<Deno.Conn>();
  const serving = (async () => {
    for await (const conn of listener) {
      conns.add(conn);
      (async () => {
        try {
          const req = await readRequest(conn, options.headOnly);
          if (req === null) return;
          seen.push(req);
          const r = await reply(req, seen.length);
          if (typeof r === "function") await r(conn);
          else await conn.write(typeof r === "string" ? enc.encode(r) : r);
        } catch {
          // the client went away
        } finally {
          conns.delete(conn);
          try {
            conn.close();
          } catch { /* closed */ }
        }
      })();
    }
  })();
  try {
    await fn(url, seen);
  } finally {
    listener.close();
    for (const c of conns) {
      try {
        c.close();
      } catch { /* closed */ }
    }
    await serving.catch(() => {});
  }
}

function backendAt(url: string, options: { timeoutMs?: number; token?: string } = {}) {
  const token = options.token ?? TOKEN;
  return new RestBackend({
    url,
    token: () => Promise.resolve(token),
    timeoutMs: options.timeoutMs ?? 5000,
  });
}

/** A staged body of `size` bytes in pieces of `piece`, read again on each call. */
function streamBody(size: number, piece: number): StreamBody {
  return {
    size,
    async *pieces() {
      for (let at = 0; at < size; at += piece) {
        const n = Math.min(piece, size - at);
        yield Uint8Array.from({ length: n }, (_, i) => (at + i) % 251);
      }
    },
  };
}

Deno.test("the REST backend sends its token, a Content-Length with every body (a streamed one too, never chunked), If-None-Match for create and one Range", async () => {
  const stored = new Map<string, Uint8Array>();
  await withReplay((req) => {
    if (req.method === "PUT") {
      const exists = stored.has(req.path);
      if (req.headers["if-none-match"] === "*" && exists) return json(412, { error: "exists" });
      stored.set(req.path, req.body);
      return answer(exists ? 200 : 201);
    }
    const data = stored.get(req.path);
    if (data === undefined) return json(404, { error: "no such object" });
    const range = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? "");
    if (range) {
      const [a, b] = [Number(range[1]), Number(range[2])];
      return answer(206, data.slice(a, b + 1), `content-range: bytes ${a}-${b}/${data.length}\r\n`);
    }
    return answer(200, data);
  }, async (url, seen) => {
    const backend = backendAt(url);
    try {
      const size = 3 * (1 << 20) + 5; // over the 100-continue threshold, in uneven pieces
      await backend.put("packs/ab/ab01", streamBody(size, 1 << 20));
      const put = seen.at(-1)!;
      equal(put.method, "PUT");
      equal(put.path, "/r/packs/ab/ab01");
      equal(put.headers["content-length"], String(size));
      equal(put.headers["transfer-encoding"], undefined);
      equal(put.headers.authorization, `Bearer ${TOKEN}`);
      equal(put.headers.expect, "100-continue");
      equal(put.body.length, size);
      ok(put.body.every((b, i) => b === i % 251));

      await backend.put("index", [enc.encode("ab"), enc.encode("cd")]);
      equal(seen.at(-1)!.headers["content-length"], "4");
      equal(new TextDecoder().decode(seen.at(-1)!.body), "abcd");

      equal(await backend.create("locks/x", enc.encode("1")), true);
      equal(await backend.create("locks/x", enc.encode("2")), false);
      equal(seen.at(-1)!.headers["if-none-match"], "*");

      deepStrictEqual(
        await backend.getRange("packs/ab/ab01", 1000, 3),
        Uint8Array.of(
          1000 % 251,
          1001 % 251,
          1002 % 251,
        ),
      );
      equal(seen.at(-1)!.headers.range, "bytes=1000-1002");
      deepStrictEqual(await backend.get("index"), enc.encode("abcd"));
      equal(await backend.get("absent"), null);
    } finally {
      await backend.close();
    }
  });
});

Deno.test("the REST backend turns each status into an error in words, naming the URL and key and never the token", async () => {
  const cases: [number, string, (e: unknown) => boolean, RegExp][] = [
    [401, '{"error":"bad token"}', (e) => e instanceof BackendError, /wrong or missing token/],
    [
      403,
      '{"error":"repository \\"r\\" is append-only: packs are never replaced"}',
      (e) => e instanceof ForbiddenError,
      /refused by the server: repository "r" is append-only: packs are never replaced$/,
    ],
    [
      404,
      '{"error":"unknown repository"}',
      (e) => e instanceof NotFoundError,
      /^No repository at http:\/\/127\.0\.0\.1:\d+\/r: run vger init$/,
    ],
    [
      413,
      '{"error":"quota 1000 bytes"}',
      (e) => e instanceof QuotaError,
      /over the repository's quota \(HTTP 413: quota 1000 bytes\)/,
    ],
    [
      400,
      '{"error":"bad key"}',
      (e) => e instanceof BackendError && !(e instanceof TransientError),
      /malformed \(HTTP 400: bad key\)/,
    ],
    [408, "", (e) => e instanceof TransientError, /timed out waiting for the body \(HTTP 408\)/],
    [429, "", (e) => e instanceof TransientError, /busy \(HTTP 429\)/],
    [
      500,
      '{"error":"disk full"}',
      (e) => e instanceof TransientError,
      /the server failed \(HTTP 500: disk full\)/,
    ],
    [
      503,
      "<html>down</html>",
      (e) => e instanceof TransientError,
      /the server failed \(HTTP 503\)$/,
    ],
    [
      418,
      "",
      (e) => e instanceof BackendError && !(e instanceof TransientError),
      /unexpected answer from the server \(HTTP 418\)/,
    ],
  ];
  for (const [status, body, kind, message] of cases) {
    await withReplay(() => answer(status, body), async (url) => {
      const backend = backendAt(url);
      try {
        await rejects(backend.put("keys/repokey", enc.encode("k")), (e: unknown) => {
          ok(kind(e), `${status}: ${e}`);
          const m = (e as Error).message;
          ok(message.test(m), `${status}: ${m}`);
          ok(!m.includes(TOKEN), `${status}: no token`);
          if (status !== 404) ok(m.startsWith(`Cannot write "keys/repokey" in ${url}: `), m);
          return true;
        });
      } finally {
        await backend.close();
      }
    });
  }
});

Deno.test("the server's error text is cut and its control characters escaped", async () => {
  const hostile = "\u001b[31mred\u001b[0m\nsecond line\u202e" + "x".repeat(1000);
  await withReplay(() => json(403, { error: hostile }), async (url) => {
    const backend = backendAt(url);
    try {
      await rejects(backend.delete("packs/ab/ab01"), (e: unknown) => {
        ok(e instanceof ForbiddenError);
        const m = e.message;
        // deno-lint-ignore no-control-regex
        ok(!/[\u0000-\u001f\u202e]/.test(m), m);
        ok(m.includes("\\u001b[31mred\\u001b[0m\\u000asecond line\\u202e"), m);
        ok(m.endsWith("x..."), m);
        const reason = m.slice(m.indexOf("refused by the server: ") + 23);
        ok(reason.length < MAX_REASON_CHARS + 40, `${reason.length}`);
        return true;
      });
    } finally {
      await backend.close();
    }
  });
});

Deno.test("get refuses an object over maxBytes by its Content-Length before reading it, and by counting when none is given", async () => {
  await withReplay((req) => async (conn) => {
    if (req.path.endsWith("/claims")) {
      // claims 10 GB, sends a few bytes and then nothing: the client must not wait for them
      await conn.write(enc.encode("HTTP/1.1 200 OK\r\ncontent-length: 10000000000\r\n\r\nabc"));
      await new Promise((r) => setTimeout(r, 3000));
    } else {
      // no length: the body runs until the connection closes
      await conn.write(enc.encode("HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n"));
      for (let i = 0; i < 64; i++) await conn.write(new Uint8Array(16 * 1024));
    }
  }, async (url) => {
    const backend = backendAt(url);
    try {
      const start = Date.now();
      await rejects(
        backend.get("claims", { maxBytes: 1000 }),
        (e: unknown) =>
          e instanceof IntegrityError &&
          e.message === 'Object "claims" is too large: 10000000000 bytes, the limit is 1000',
      );
      ok(Date.now() - start < 2000, "refused at once");
      await rejects(
        backend.get("streams", { maxBytes: 100_000 }),
        (e: unknown) =>
          e instanceof IntegrityError &&
          e.message ===
            'Object "streams" is too large: more than 100000 bytes, the limit is 100000',
      );
    } finally {
      await backend.close();
    }
  });
});

Deno.test("getRange takes exactly the bytes asked for: a short, shifted or ignored range is refused", async () => {
  const data = Uint8Array.from({ length: 100 }, (_, i) => i);
  await withReplay((req) => {
    const name = req.path.split("/").at(-1);
    if (name === "short") {
      return answer(206, data.slice(90, 100), "content-range: bytes 90-99/100\r\n");
    }
    if (name === "shifted") {
      return answer(206, data.slice(0, 20), "content-range: bytes 0-19/100\r\n");
    }
    if (name === "ignored") return answer(200, data);
    if (name === "past") return answer(416, "");
    return json(404, { error: "no such object" });
  }, async (url) => {
    const backend = backendAt(url);
    try {
      await rejects(
        backend.getRange("short", 90, 20),
        (e: unknown) =>
          e instanceof IntegrityError &&
          /"short" is truncated: wanted bytes 90\.\.110, size is 100/.test(e.message),
      );
      await rejects(
        backend.getRange("shifted", 50, 20),
        (e: unknown) => e instanceof IntegrityError && /bytes it was not asked for/.test(e.message),
      );
      await rejects(
        backend.getRange("ignored", 10, 5),
        (e: unknown) =>
          e instanceof IntegrityError &&
          /more of object "ignored" .* than the 5 bytes asked for/.test(e.message),
      );
    } finally {
      await backend.close();
    }
  });
});

Deno.test("list follows the pages and refuses a malformed one", async () => {
  const pages: Record<string, unknown> = {
    "": {
      objects: [{ key: "packs/00/a", size: 1 }, { key: "packs/00/b", size: 2 }],
      next: "packs/00/b",
    },
    "packs/00/b": { objects: [{ key: "packs/01/c", size: 3 }], next: null },
  };
  await withReplay((req) => {
    const q = new URL(req.path, "http://x").searchParams;
    if (q.get("prefix") === "bad/") {
      return json(200, {
        objects: [{ key: "bad/b", size: 1 }, { key: "bad/a", size: 1 }],
        next: null,
      });
    }
    if (q.get("prefix") === "loop/") return json(200, { objects: [], next: "" });
    if (q.get("prefix") === "outside/") {
      return json(200, { objects: [{ key: "packs/x", size: 1 }], next: null });
    }
    equal(q.get("limit"), "1000");
    return json(200, pages[q.get("after") ?? ""]);
  }, async (url, seen) => {
    const backend = backendAt(url);
    try {
      deepStrictEqual(await Array.fromAsync(backend.list("packs/")), [
        { key: "packs/00/a", size: 1 },
        { key: "packs/00/b", size: 2 },
        { key: "packs/01/c", size: 3 },
      ]);
      ok(seen[0].path.startsWith("/r/?prefix=packs%2F&after=&limit="), seen[0].path);
      for (
        const [prefix, why] of [["bad/", /out of order/], ["loop/", /does not move on/], [
          "outside/",
          /outside the prefix/,
        ]] as const
      ) {
        await rejects(
          Array.fromAsync(backend.list(prefix)),
          (e: unknown) =>
            e instanceof IntegrityError && why.test(e.message) &&
            e.message.includes(`"${prefix}*"`),
          prefix,
        );
      }
    } finally {
      await backend.close();
    }
  });
});

Deno.test("network failures name the URL: a refused connection at once, a dropped one and a silent server as transient, retried by the decorator", async () => {
  // a port nobody listens on
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (probe.addr as Deno.NetAddr).port;
  probe.close();
  const refused = backendAt(`http://127.0.0.1:${port}/r`);
  await rejects(
    refused.get("config"),
    (e: unknown) =>
      e instanceof BackendError && !(e instanceof TransientError) &&
      e.message ===
        `Cannot read "config" in http://127.0.0.1:${port}/r: cannot reach the server (connection refused)`,
  );
  await refused.close();

  await withReplay((req) => async (conn) => {
    if (req.path.endsWith("/dropped")) {
      await conn.write(enc.encode("HTTP/1.1 200 OK\r\ncontent-length: 1000\r\n\r\nonly some"));
    } else {
      await new Promise((r) => setTimeout(r, 2000)); // silent
    }
  }, async (url) => {
    const backend = backendAt(url, { timeoutMs: 300 });
    try {
      await rejects(
        backend.get("dropped"),
        (e: unknown) =>
          e instanceof TransientError && e.message.startsWith(`Cannot read "dropped" in ${url}: `),
      );
      await rejects(backend.get("silent"), (e: unknown) =>
        e instanceof TransientError &&
        e.message === `Cannot read "silent" in ${url}: cannot reach the server (timed out)`);
    } finally {
      await backend.close();
    }
  });

  await withReplay(
    (_req, n) => n <= 2 ? answer(503, "") : answer(200, "fine"),
    async (url, seen) => {
      const backend = new RetryBackend(backendAt(url), { baseDelayMs: 1 });
      try {
        deepStrictEqual(await backend.get("config"), enc.encode("fine"));
        equal(seen.length, 3);
      } finally {
        await backend.close();
      }
    },
  );
});

Deno.test("the REST backend learns append-only mode and role from any answer's headers, else from the repository info", async () => {
  await withReplay((req) => {
    if (req.path === "/r") return json(200, { name: "r", append_only: true });
    if (req.path === "/ro") return json(200, { name: "ro", append_only: true, role: "read-only" });
    if (req.path === "/bad") return json(200, { name: "bad", append_only: true, role: "root\n" });
    if (req.path === "/ro/config") {
      return answer(200, "x", "x-vger-append-only: true\r\nx-vger-role: read-only\r\n");
    }
    return answer(200, "x", "x-vger-append-only: false\r\n");
  }, async (url, seen) => {
    const ro = backendAt(url.replace(/\/r$/, "/ro"));
    const bad = backendAt(url.replace(/\/r$/, "/bad"));
    try {
      deepStrictEqual(await ro.policy(), { appendOnly: true, role: "read-only" });
      await rejects(bad.policy(), /names an unknown role "root\?"$/);
    } finally {
      await ro.close();
      await bad.close();
    }
    const roTold = backendAt(url.replace(/\/r$/, "/ro"));
    try {
      await roTold.get("config");
      const count = seen.length;
      deepStrictEqual(await roTold.policy(), { appendOnly: true, role: "read-only" });
      equal(seen.length, count, "no request: the headers told");
    } finally {
      await roTold.close();
    }
    const asked = backendAt(url);
    try {
      // a server that names no role grants full
      deepStrictEqual(await asked.policy(), { appendOnly: true, role: "full" });
      equal(seen.at(-1)!.path, "/r");
      equal(seen.at(-1)!.headers.authorization, `Bearer ${TOKEN}`);
    } finally {
      await asked.close();
    }
    const told = backendAt(url);
    try {
      await told.get("config");
      const count = seen.length;
      deepStrictEqual(await told.policy(), { appendOnly: false, role: "full" });
      equal(seen.length, count, "no request: the header told");
    } finally {
      await told.close();
    }
  });
});

Deno.test("a token a header cannot carry is refused without being repeated", async () => {
  await withReplay(() => answer(200, ""), async (url, seen) => {
    for (const token of ["two words", "line\nbreak", ""]) {
      const backend = backendAt(url, { token });
      try {
        await rejects(
          backend.size("config"),
          (e: unknown) =>
            e instanceof UsageError && /cannot carry/.test(e.message) &&
            (token === "" || !e.message.includes(token)),
        );
      } finally {
        await backend.close();
      }
    }
    equal(seen.length, 0);
  });
});

Deno.test("a refusal that comes before the body is read is reported as the refusal, not as a dropped connection", async () => {
  await withReplay(() => json(413, { error: "quota of 1000 bytes" }), async (url, seen) => {
    const backend = backendAt(url);
    try {
      for (const size of [3 << 20, 900 << 10]) {
        // 3 MiB waits for 100 Continue and is never sent; 900 KiB goes at once, and meets the
        // answer (and a closed connection) half way
        const started = Date.now();
        await rejects(backend.put("packs/ab/ab01", streamBody(size, 64 << 10)), (e: unknown) => {
          ok(e instanceof QuotaError, `${size}: ${e}`);
          ok(/over the repository's quota \(HTTP 413: quota of 1000 bytes\)/.test(e.message));
          return true;
        });
        ok(Date.now() - started < 900, `${size}: refused without waiting for a 100 Continue`);
      }
      equal(seen[0].headers.expect, "100-continue");
      equal(seen[1].headers.expect, undefined);
    } finally {
      await backend.close();
    }
  }, { headOnly: true });
});

Deno.test("a refused connection is transient once the server has answered before (a restart)", async () => {
  let backend: RestBackend | undefined;
  await withReplay(() => answer(200, "x"), async (url) => {
    backend = backendAt(url);
    deepStrictEqual(await backend.get("config"), enc.encode("x"));
  });
  try {
    await rejects(
      backend!.get("config"),
      (e: unknown) => e instanceof TransientError && /connection refused/.test(e.message),
    );
  } finally {
    await backend!.close();
  }
});

Deno.test("a success answered before the whole body was sent is not taken for a write", async () => {
  await withReplay(() => answer(201), async (url) => {
    const backend = backendAt(url);
    try {
      await rejects(
        backend.put("packs/ab/ab01", streamBody(3 << 20, 64 << 10)),
        (e: unknown) =>
          e instanceof BackendError && /answered before the whole body was sent/.test(e.message),
      );
    } finally {
      await backend.close();
    }
  }, { headOnly: true });
});

Deno.test("the versions listing, a version's bytes and the server's check report are checked: malformed ones refused, hostile text escaped", async () => {
  const good = {
    id: "001796404800000-3fa2c91e",
    time: "2026-12-04T17:00:00.000Z",
    manifest_bytes: 10,
    index_id: null,
    index_bytes: null,
  };
  const listings: unknown[] = [
    { versions: [good] },
    { versions: "no" },
    { versions: [{ ...good, id: "../x" }] },
    { versions: [{ ...good, time: "yesterday" }] },
    { versions: [{ ...good, manifest_bytes: -1 }] },
  ];
  const reports: unknown[] = [
    {
      problems: [{ kind: "corrupt-pack", severity: "error", message: "bad\u001b[2Jpack" }],
      stats: { packs: 1, bytes_read: 9 },
    },
    {
      problems: [{ kind: "Corrupt Pack!", severity: "error", message: "m" }],
      stats: { packs: 1, bytes_read: 9 },
    },
    {
      problems: [{ kind: "corrupt-pack", severity: "fatal", message: "m" }],
      stats: { packs: 1, bytes_read: 9 },
    },
    { problems: [], stats: { packs: "many", bytes_read: 9 } },
    { error: "disk on fire" },
  ];
  await withReplay((req, n) => {
    if (req.path.startsWith("/r?versions&id=")) return answer(200, "x".repeat(100));
    if (req.path === "/r?versions") return json(200, listings[(n - 1) % listings.length]);
    return json(200, reports[(n - 1 - listings.length) % reports.length]);
  }, async (url, seen) => {
    const backend = backendAt(url);
    try {
      deepStrictEqual(await backend.listVersions(), [{
        id: good.id,
        time: good.time,
        manifestBytes: 10,
        indexBytes: null,
      }]);
      for (let i = 1; i < listings.length; i++) {
        await rejects(backend.listVersions(), /versions listing of .* is malformed/);
      }
      const report = await backend.checkStructure();
      equal(report.problems[0].message, "bad\\u001b[2Jpack");
      for (let i = 1; i < reports.length - 1; i++) {
        await rejects(backend.checkStructure(), /check report of .* is malformed/);
      }
      await rejects(backend.checkStructure(), /the server's check failed: disk on fire/);
      equal(seen.at(-1)!.path, "/r?check");
      // a version is read capped, and an id is never sent unchecked
      await rejects(backend.getVersion(good.id, "manifest", { maxBytes: 10 }), /too large/);
      equal((await backend.getVersion(good.id, "index"))!.length, 100);
      equal(seen.at(-1)!.path, `/r?versions&id=${good.id}&key=index`);
      await rejects(backend.getVersion("../../etc", "index"), /Invalid version id/);
    } finally {
      await backend.close();
    }
  });
});

Deno.test("compose sends the plan as JSON with its Content-Length, and trusts no answer: a pack not named by its SHA-256 or of another size is refused, a 422 becomes the refused records, escaped", async () => {
  const sha = "ab".repeat(32);
  const plan = {
    prefix: enc.encode("VGERPACK\x01"),
    ranges: [
      { key: "packs/cd/" + "cd".repeat(32), offset: 9, length: 100, type: 1 },
      { key: "packs/cd/" + "cd".repeat(32), offset: 109, length: 50, type: 2 },
    ],
    suffix: new Uint8Array([6, 1, 2, 3, 0, 0, 0, 0]),
    name: (h: string) => `packs/${h.slice(0, 2)}/${h}`,
  };
  const size = 9 + 150 + 8;
  const answers: Uint8Array[] = [
    json(201, { key: `packs/ab/${sha}`, sha256: sha, size }),
    json(201, { key: `packs/ab/${"ef".repeat(32)}`, sha256: sha, size }),
    json(201, { key: `packs/ab/${sha}`, sha256: sha, size: size + 1 }),
    json(201, { key: "../x", sha256: "../x", size }),
    json(422, { error: "refused", refused: [[1, "CRC-32 mismatch\u001b[2J"], [7, "out of plan"]] }),
    json(422, { error: "no list" }),
  ];
  await withReplay((_req, n) => answers[n - 1], async (url, seen) => {
    const backend = backendAt(url);
    try {
      const r = await backend.compose(plan);
      deepStrictEqual(r, {
        key: `packs/ab/${sha}`,
        sha256: sha,
        size,
        sentBytes: seen[0].body.length,
      });
      equal(seen[0].method, "POST");
      equal(seen[0].path, "/r?compose");
      equal(seen[0].headers["content-length"], String(seen[0].body.length));
      deepStrictEqual(JSON.parse(new TextDecoder().decode(seen[0].body)), {
        prefix: "VkdFUlBBQ0sB",
        sources: ["packs/cd/" + "cd".repeat(32)],
        records: [[0, 9, 100, 1], [0, 109, 50, 2]],
        suffix: "BgECAwAAAAA=",
      });
      for (const what of ["another name", "another size", "no hash"]) {
        await rejects(
          backend.compose(plan),
          (e: unknown) =>
            e instanceof IntegrityError &&
            /does not name the pack by its SHA-256/.test((e as Error).message),
          what,
        );
      }
      await rejects(backend.compose(plan), (e: unknown) => {
        ok(e instanceof ComposeRefusedError, String(e));
        deepStrictEqual(e.refused, [{ range: 1, reason: "CRC-32 mismatch\\u001b[2J" }]);
        ok(e.message.includes(url) && !e.message.includes(TOKEN), e.message);
        return true;
      });
      await rejects(
        backend.compose(plan),
        (e: unknown) =>
          !(e instanceof ComposeRefusedError) && /HTTP 422/.test((e as Error).message),
      );
    } finally {
      await backend.close();
    }
  });
});

Deno.test("a body written to a connection the server's end destroyed (ERR_STREAM_DESTROYED, a server killed mid-upload) is transient, in words", () => {
  const cause = Object.assign(new Error("Cannot call write after a stream was destroyed"), {
    code: "ERR_STREAM_DESTROYED",
  });
  const op = { what: "write", key: "packs/00/00" };
  for (const reached of [false, true]) {
    const e = networkError(cause, op, "http://127.0.0.1:1/laptop", reached);
    ok(e instanceof TransientError, `reached ${reached}: ${e.constructor.name}`);
    equal(
      e.message,
      'Cannot write "packs/00/00" in http://127.0.0.1:1/laptop: cannot reach the server ' +
        "(connection closed while sending)",
    );
    equal(e.cause, cause);
  }
});

Deno.test("a host this run may not reach (Deno's NotCapable) is not transient: no retry, the permission error kept as the cause", () => {
  const denied = new Deno.errors.NotCapable('Requires net access to "10.0.0.1:80"');
  const op = { what: "read", key: "config" };
  for (const cause of [denied, new Error("request failed", { cause: denied })]) {
    const e = networkError(cause, op, "http://10.0.0.1/laptop", true);
    ok(!(e instanceof TransientError), e.constructor.name);
    let found: unknown = e;
    while (found instanceof Error && !(found instanceof Deno.errors.NotCapable)) {
      found = found.cause;
    }
    equal(found, denied);
  }
});
