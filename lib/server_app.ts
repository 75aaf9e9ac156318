/**
 * vger-server's HTTP layer (Hono): the request log, bearer-token authentication (constant time),
 * the routes of docs/SERVER.md turned into calls of {@linkcode ServerStore}, and errors as
 * `{"error": "..."}` with their status codes. It does no storage of its own.
 *
 * @example
 * ```ts
 * import { MemoryBackend } from "../backends/memory.ts";
 * import { createApp } from "./server_app.ts";
 * import { ServerStore } from "./server_store.ts";
 *
 * const store = new ServerStore(new MemoryBackend(), { appendOnly: false, maxObjectBytes: 1 << 20, quotaBytes: 0 });
 * const app = createApp(store, { token: "t0ken", bodyTimeoutSeconds: 5, appendOnly: false, lockTtlSeconds: 3600,
 *   logFormat: "json", log: () => {} });
 * const res = await app.fetch(new Request("http://h/health"));
 * console.log(res.status); // 200
 * ```
 *
 * @module
 */

import { Hono } from "hono";
import { errorMessage } from "./errors.ts";
import { formatEvent, formatRequestLog, maskSecret } from "./server_log.ts";
import {
  HttpError,
  parseListQuery,
  parseRange,
  parseTarget,
  rawQuery,
  requestBody,
  type Target,
} from "./server_request.ts";
import type { ServerStore } from "./server_store.ts";
import { structureCheckJson } from "./server_check.ts";
import { ComposeRefused, MAX_COMPOSE_PLAN_BYTES, parseComposePlan } from "./server_compose.ts";
import { type Access, type TokenGrant, TokenTable } from "./server_roles.ts";

/** The version `/health` reports (deno.json's). */
export const SERVER_VERSION = "0.1.0";

/** What the HTTP layer needs besides the store. */
export interface AppOptions {
  /** The `[server]` token: role full on every repository. */
  token?: string;
  /** The `[[tokens]]` entries, their commands run (docs/SERVER.md, "Tokens and roles"). */
  tokens?: readonly TokenGrant[];
  /** How long a request body may stall before 408. */
  bodyTimeoutSeconds: number;
  /** The server's mode (every token's): `X-Vger-Append-Only` is true for every token then. */
  appendOnly: boolean;
  /** The lock TTL the repository info reports. */
  lockTtlSeconds: number;
  /** The request log's format. */
  logFormat: "pretty" | "json";
  /** Receives each log line (stdout in production). */
  log: (line: string) => void;
  /** The free space of the data directory, for `/health`; null where it cannot be told. */
  diskFree?: () => Promise<number | null>;
}

/** What Deno.serve passes a handler besides the request. */
export type ServeInfo = { remoteAddr?: Deno.Addr } | undefined;

type Env = { Bindings: ServeInfo };

/** The Hono app of a server over `store`. */
export function createApp(store: ServerStore, options: AppOptions): Hono<Env> {
  const app = new Hono<Env>();
  const started = performance.now();
  const table = new TokenTable(options.token, options.tokens ?? []);
  const mask = (line: string) => table.tokens.reduce((l, t) => maskSecret(l, t), line);

  app.use("*", async (c, next) => {
    const time = new Date();
    const t0 = performance.now();
    let error: string | undefined;
    try {
      await next();
    } finally {
      error = c.get("error" as never) as string | undefined;
      const url = c.req.raw.url;
      const slash = url.indexOf("/", url.indexOf("://") + 3);
      const remote = c.env?.remoteAddr;
      const line = formatRequestLog({
        time,
        remote: remote && "hostname" in remote ? remote.hostname : "-",
        method: c.req.method,
        path: slash < 0 ? "/" : url.slice(slash),
        status: c.res.status,
        bytesIn: Number(c.req.header("content-length") ?? 0) || 0,
        durationMs: performance.now() - t0,
        error,
      }, options.logFormat);
      options.log(mask(line));
    }
  });

  app.onError((err, c) => {
    const http = err instanceof HttpError
      ? err
      : new HttpError(500, `The server failed: ${errorMessage(err)}`, { cause: err });
    const message = mask(http.message);
    c.set("error" as never, message as never);
    const headers: Record<string, string> = {};
    if (http.status === 401) headers["WWW-Authenticate"] = "Bearer";
    if (http.status === 408) headers["Connection"] = "close";
    const body = http instanceof ComposeRefused ? http.body(message) : { error: message };
    return c.json(body, http.status as 400, headers);
  });

  app.all("*", async (c) => {
    const req = c.req.raw;
    // /health first: it needs no token, and nothing else is answered before the token is checked
    if (rawIsHealth(req.url)) {
      if (req.method !== "GET" && req.method !== "HEAD") throw notAllowed("/health");
      const repositories = (await store.repositories()).length;
      return c.json({
        status: "ok",
        version: SERVER_VERSION,
        uptime_seconds: Math.round(performance.now() - started) / 1000,
        disk_free_bytes: (await options.diskFree?.()) ?? null,
        repositories,
      });
    }
    const access = table.lookup(req.headers.get("authorization"));
    if (access === null) throw new HttpError(401, "Missing or wrong token");
    const target: Target = parseTarget(req.url);
    if (target.kind === "health") throw notAllowed("/health");
    if (target.kind !== "root") {
      // another token's repository is unknown to this one: its name does not leak
      if (!access.sees(target.repo)) {
        throw new HttpError(404, `Unknown repository "${target.repo}"`);
      }
      for (const [name, value] of Object.entries(modeHeaders(access, options))) {
        c.header(name, value);
      }
    }
    return await route(c.req.raw, target, store, options, access, mask);
  });
  return app;
}

/** Answers one authenticated request. */
async function route(
  req: Request,
  target: Target,
  store: ServerStore,
  options: AppOptions,
  access: Access,
  mask: (line: string) => string,
): Promise<Response> {
  const method = req.method;
  const json = (body: unknown, status = 200) =>
    new Response(JSON.stringify(body), {
      status,
      headers: {
        "Content-Type": "application/json",
        ...(target.kind === "root" ? {} : modeHeaders(access, options)),
      },
    });
  switch (target.kind) {
    case "root": {
      if (method !== "GET") throw notAllowed("/");
      const names = (await store.repositories()).filter((name) => access.sees(name));
      const repositories = [];
      for (const name of names) {
        const stats = await store.stats(name);
        repositories.push({
          name,
          used_bytes: stats.usedBytes,
          last_backup_at: await store.lastBackupAt(name),
        });
      }
      return json({ repositories });
    }
    case "repo": {
      if (method === "POST" && rawQuery(req.url).has("compose")) {
        return json(await composeRoute(req, target.repo, store, options, access), 201);
      }
      if (method !== "GET") throw notAllowed(`/${target.repo}`);
      const query = rawQuery(req.url);
      if (query.has("versions")) return await versionsRoute(target.repo, query, store, json);
      if (query.has("check")) return await checkRoute(target.repo, store, options, mask);
      const stats = await store.stats(target.repo);
      return json({
        name: target.repo,
        append_only: options.appendOnly || access.role !== "full",
        role: access.role,
        quota_bytes: store.quotaBytes,
        used_bytes: stats.usedBytes,
        objects: stats.objects,
        packs: stats.packs,
        last_backup_at: await store.lastBackupAt(target.repo),
        lock_ttl_seconds: options.lockTtlSeconds,
      });
    }
    case "list": {
      if (method !== "GET") throw notAllowed(`/${target.repo}/`);
      const page = await store.list(target.repo, parseListQuery(target.repo, req.url));
      return json(page);
    }
    case "object":
      return await objectRoute(req, target, store, options, access);
    default:
      throw notAllowed("this path");
  }
}

/**
 * `GET /<repo>?versions`: the repository's versions, newest first; with `&id=ID&key=manifest`
 * or `&key=index`, the bytes of that version's manifest or index.
 */
async function versionsRoute(
  repo: string,
  query: URLSearchParams,
  store: ServerStore,
  json: (body: unknown) => Response,
): Promise<Response> {
  const id = query.get("id");
  const key = query.get("key");
  if (id === null && key === null) {
    const versions = await store.versions(repo);
    return json({
      versions: versions.map((v) => ({
        id: v.id,
        time: v.time.toISOString(),
        manifest_bytes: v.manifestBytes,
        index_id: v.indexId,
        index_bytes: v.indexBytes,
      })),
    });
  }
  if (id === null || (key !== "manifest" && key !== "index")) {
    throw new HttpError(
      400,
      `Invalid versions query of repository "${repo}": give id and key (manifest or index)`,
    );
  }
  const got = await store.version(repo, id, key);
  return new Response(got.stream, {
    status: 200,
    headers: {
      "Content-Length": String(got.length),
      "Content-Type": "application/octet-stream",
    },
  });
}

/** How often a structure check in progress sends a space, so that no client times out. */
const CHECK_KEEPALIVE_MS = 10_000;

/**
 * `GET /<repo>?check`: the key-less structure check, as `vger check --json`'s object. The check
 * reads every pack, which takes long on a large repository: the answer starts at once and sends
 * a space every {@linkcode CHECK_KEEPALIVE_MS} (JSON allows leading white space) until the report.
 */
async function checkRoute(
  repo: string,
  store: ServerStore,
  options: AppOptions,
  mask: (line: string) => string,
): Promise<Response> {
  await store.requireRepo(repo);
  const encoder = new TextEncoder();
  let timer: ReturnType<typeof setInterval> | undefined;
  const body = new ReadableStream<Uint8Array>({
    start: (controller) => {
      const send = (text: string) => {
        try {
          controller.enqueue(encoder.encode(text));
        } catch {
          // the client went away
        }
      };
      timer = setInterval(() => send(" "), CHECK_KEEPALIVE_MS);
      store.checkStructure(repo, options.lockTtlSeconds * 1000).then(
        (result) => send(JSON.stringify(structureCheckJson(repo, result))),
        (err) => {
          // the status (200) is sent: the failure goes in the body, and in the log
          const message = mask(errorMessage(err));
          options.log(mask(formatEvent(options.logFormat, "check_failed", message)));
          send(JSON.stringify({ error: message }));
        },
      ).finally(() => {
        clearInterval(timer);
        try {
          controller.close();
        } catch {
          // cancelled
        }
      });
    },
    cancel: () => clearInterval(timer),
  });
  return new Response(body, {
    status: 200,
    headers: {
      "Content-Type": "application/json",
      "X-Vger-Append-Only": String(options.appendOnly),
    },
  });
}

/** GET, HEAD, PUT and DELETE of one object. */
async function objectRoute(
  req: Request,
  target: { repo: string; key: string },
  store: ServerStore,
  options: AppOptions,
  access: Access,
): Promise<Response> {
  const { repo, key } = target;
  const where = `"${key}" of repository "${repo}"`;
  const headers: Record<string, string> = modeHeaders(access, options);
  switch (req.method) {
    case "GET": {
      const rangeHeader = req.headers.get("range");
      const got = await store.get(repo, key, (size) => parseRange(rangeHeader, size, where));
      headers["Content-Length"] = String(got.length);
      headers["Content-Type"] = "application/octet-stream";
      headers["Accept-Ranges"] = "bytes";
      if (rangeHeader === null) return new Response(got.stream, { status: 200, headers });
      headers["Content-Range"] = `bytes ${got.offset}-${got.offset + got.length - 1}/${got.size}`;
      return new Response(got.stream, { status: 206, headers });
    }
    case "HEAD": {
      const size = await store.size(repo, key);
      headers["Content-Length"] = String(size);
      return new Response(null, { status: 200, headers });
    }
    case "PUT": {
      const size = announcedSize(req.headers, where);
      const inm = req.headers.get("if-none-match");
      if (inm !== null && inm.trim() !== "*") {
        throw new HttpError(400, `Unsupported If-None-Match "${inm}" on ${where}: only *`);
      }
      const body = requestBody(req.body, {
        size,
        timeoutMs: options.bodyTimeoutSeconds * 1000,
        where,
      });
      const status = await store.put(repo, key, body, { create: inm !== null, access });
      return new Response(null, { status, headers });
    }
    case "DELETE": {
      await store.delete(repo, key, { access });
      return new Response(null, { status: 204, headers });
    }
    default:
      throw notAllowed(`/${repo}/${key}`);
  }
}

/** `POST /<repo>?compose`: the plan read (at most its cap), checked, and the pack composed. */
async function composeRoute(
  req: Request,
  repo: string,
  store: ServerStore,
  options: AppOptions,
  access: Access,
): Promise<{ key: string; sha256: string; size: number }> {
  await store.requireComposeAllowed(repo, access);
  const where = `the compose plan of repository "${repo}"`;
  const size = announcedSize(req.headers, where);
  if (size > MAX_COMPOSE_PLAN_BYTES) {
    throw new HttpError(
      413,
      `The compose plan of repository "${repo}" is too large: ${size} bytes, the limit is ${MAX_COMPOSE_PLAN_BYTES}`,
    );
  }
  const body = requestBody(req.body, { size, timeoutMs: options.bodyTimeoutSeconds * 1000, where });
  const bytes = new Uint8Array(size);
  let at = 0;
  for await (const piece of body.pieces()) {
    if (at + piece.length > size) throw new HttpError(400, `${where} is longer than announced`);
    bytes.set(piece, at);
    at += piece.length;
  }
  const done = await store.compose(repo, parseComposePlan(repo, bytes), { access });
  return { key: done.key, sha256: done.sha256, size: done.size };
}

/**
 * The size a PUT announces: `Content-Length`, or `X-Vger-Length` for a streamed (chunked) body,
 * which `fetch` sends without a Content-Length. Neither is 411; two that differ, or a malformed
 * one, 400.
 */
function announcedSize(headers: Headers, where: string): number {
  const parse = (name: string, text: string) => {
    if (!/^\d{1,16}$/.test(text) || !Number.isSafeInteger(Number(text))) {
      throw new HttpError(400, `Invalid ${name} "${text}" of ${where}`);
    }
    return Number(text);
  };
  const contentLength = headers.get("content-length");
  const vgerLength = headers.get("x-vger-length");
  if (vgerLength !== null) {
    const size = parse("X-Vger-Length", vgerLength);
    if (contentLength !== null && parse("Content-Length", contentLength) !== size) {
      throw new HttpError(400, `Content-Length and X-Vger-Length of ${where} differ`);
    }
    return size;
  }
  if (headers.get("transfer-encoding") !== null || contentLength === null) {
    throw new HttpError(
      411,
      `PUT of ${where} without Content-Length (a chunked body needs X-Vger-Length)`,
    );
  }
  return parse("Content-Length", contentLength);
}

function notAllowed(path: string): HttpError {
  return new HttpError(405, `Method not allowed on ${path}`);
}

/** Whether the URL's path, as sent, is exactly `/health`. */
function rawIsHealth(url: string): boolean {
  const slash = url.indexOf("/", url.indexOf("://") + 3);
  if (slash < 0) return false;
  const path = url.slice(slash).replace(/[?#].*$/s, "");
  return path === "/health";
}

/**
 * What every answer on a repository tells the client of its token there: `X-Vger-Role`, and
 * `X-Vger-Append-Only`, true when deletes and overwrites are refused (the server's mode, or a
 * role below full), for clients that know no roles.
 */
function modeHeaders(access: Access, options: AppOptions): Record<string, string> {
  return {
    "X-Vger-Append-Only": String(options.appendOnly || access.role !== "full"),
    "X-Vger-Role": access.role,
  };
}
