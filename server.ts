/**
 * `vger-server`: stores many vger repositories for their clients over HTTP (docs/SERVER.md), with
 * append-only mode, quotas, lock expiry and backup freshness, and never an encryption key.
 *
 * Two ways to run it (docs/SERVER.md, "Running the server"):
 *
 * - `VGER_SERVER_CONFIG=vger-server.toml deno serve --allow-read --allow-write --allow-env
 *   --allow-sys server.ts` (host, port and `--parallel` from deno serve's own flags);
 * - `deno run --allow-net --allow-read --allow-write --allow-env --allow-sys server.ts --config
 *   vger-server.toml`, which listens on the file's `listen`.
 *
 * Importing this module starts nothing: {@linkcode createServer} builds a server from a
 * configuration, and the default export (for `deno serve`) loads its configuration on start.
 *
 * @example
 * ```ts
 * import { createServer } from "./server.ts";
 *
 * const dataDir = await Deno.makeTempDir();
 * const server = createServer({
 *   source: "example", listen: "127.0.0.1:0", dataDir, token: "a-long-secret-token",
 *   appendOnly: false, logFormat: "json", quotaBytes: 0, lockTtlSeconds: 3600,
 *   bodyTimeoutSeconds: 60, maxObjectBytes: 2 ** 32,
 * }, { log: () => {} });
 * const res = await server.fetch(new Request("http://h/health"));
 * console.log(res.status); // 200
 * await server.close();
 * await Deno.remove(dataDir, { recursive: true });
 * ```
 *
 * @module
 */

import { openBackend } from "./backends/mod.ts";
import { errorMessage } from "./lib/errors.ts";
import { createApp, type ServeInfo } from "./lib/server_app.ts";
import { loadServerConfig, parseListen, type ServerConfig } from "./lib/server_config.ts";
import { sweepIntervalMs } from "./lib/server_locks.ts";
import { formatEvent } from "./lib/server_log.ts";
import { ServerStore } from "./lib/server_store.ts";

export type { ServerConfig } from "./lib/server_config.ts";
export type { ServeInfo } from "./lib/server_app.ts";

/** A server built by {@linkcode createServer}: its request handler and its shutdown. */
export interface VgerServer {
  /** Answers one request (the handler for Deno.serve or deno serve). */
  fetch(request: Request, info?: ServeInfo): Promise<Response>;
  /** Stops background work and releases storage handles. */
  close(): Promise<void>;
  /**
   * Starts shutting down: from now on every new request is answered 503 (clients retry it, on
   * this server's successor), while the requests in flight run to their end; resolves when none
   * is left, or after `timeoutMs`.
   */
  drain(timeoutMs: number): Promise<void>;
  /**
   * Removes the temporary files of uploads a killed server left in the data directory; call it
   * only before listening, while nothing else writes there. Resolves to how many.
   */
  removeLeftovers(): Promise<number>;
}

/** Options of {@linkcode createServer}. */
export interface CreateServerOptions {
  /** Receives each request log line; stdout when absent. */
  log?: (line: string) => void;
  /** How often the lock sweep runs; from the TTL when absent (a tenth, 1 s to 60 s). */
  sweepIntervalMs?: number;
}

/** A server over `config.dataDir` (nothing is touched until the first request). */
export function createServer(config: ServerConfig, options: CreateServerOptions = {}): VgerServer {
  const backend = openBackend({ backend: "local", path: config.dataDir });
  const store = new ServerStore(backend, config);
  const log = options.log ?? ((line) => console.log(line));
  const app = createApp(store, {
    token: config.token,
    bodyTimeoutSeconds: config.bodyTimeoutSeconds,
    appendOnly: config.appendOnly,
    lockTtlSeconds: config.lockTtlSeconds,
    logFormat: config.logFormat,
    log,
    diskFree: async () => (await backend.freeBytes?.()) ?? null,
  });
  // the lock sweep: in the background, never keeping the process alive on its own
  let sweeping: Promise<unknown> = Promise.resolve();
  const sweep = setInterval(() => {
    sweeping = store.sweepLocks(config.lockTtlSeconds * 1000).then(
      (removed) => {
        for (const key of removed) log(formatEvent(config.logFormat, "lock_expired", key));
      },
      (err) => log(formatEvent(config.logFormat, "sweep_failed", errorMessage(err))),
    );
  }, options.sweepIntervalMs ?? sweepIntervalMs(config.lockTtlSeconds));
  Deno.unrefTimer(sweep);
  let inFlight = 0;
  let draining = false;
  let idle: (() => void) | undefined;
  return {
    fetch: async (request, info) => {
      if (draining) return shuttingDown();
      inFlight++;
      try {
        return await app.fetch(request, info);
      } finally {
        if (--inFlight === 0) idle?.();
      }
    },
    drain: async (timeoutMs) => {
      draining = true;
      if (inFlight === 0) return;
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        new Promise<void>((resolve) => (idle = resolve)),
        new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs))),
      ]);
      clearTimeout(timer);
    },
    removeLeftovers: () => store.removeLeftovers(),
    close: async () => {
      clearInterval(sweep);
      await sweeping;
      await backend.close();
    },
  };
}

/** The answer to a request that arrives while the server shuts down. */
function shuttingDown(): Response {
  return Response.json({ error: "vger-server is shutting down; try again" }, {
    status: 503,
    headers: { "Retry-After": "1", "Connection": "close" },
  });
}

/** How long a stopping server lets the requests in flight run before it closes anyway. */
const DRAIN_MS = 30_000;

function showAddr(addr: Deno.Addr): string {
  return "hostname" in addr ? `${addr.hostname}:${addr.port}` : JSON.stringify(addr);
}

/** The server of `deno serve`, built once from `VGER_SERVER_CONFIG` and the environment. */
let served: Promise<VgerServer> | undefined;

function servedServer(): Promise<VgerServer> {
  served ??= loadServerConfig(Deno.env.get("VGER_SERVER_CONFIG"), Deno.env.toObject())
    .then((config) => createServer(config));
  return served;
}

/** For `deno serve server.ts`: the configuration is read when it starts listening. */
export default {
  fetch: async (request: Request, info: Deno.ServeHandlerInfo): Promise<Response> =>
    await (await servedServer()).fetch(request, info),
  onListen: (addr: Deno.Addr): void => {
    console.error(`vger-server listening on ${showAddr(addr)}`);
    servedServer().catch((err) => {
      console.error(`vger-server: ${errorMessage(err)}`);
      Deno.exit(2);
    });
  },
} satisfies Deno.ServeDefaultExport;

/** `deno run ... server.ts --config FILE`: listens on the file's `listen`. */
async function main(args: string[]): Promise<number> {
  const at = args.indexOf("--config");
  if (at < 0) return 0; // under deno serve (or without --config): deno serve's listener only
  const file = args[at + 1];
  if (file === undefined || args.length !== 2 || at !== 0) {
    console.error("Usage: server.ts --config FILE");
    return 2;
  }
  let config: ServerConfig;
  try {
    config = await loadServerConfig(file, Deno.env.toObject());
  } catch (err) {
    console.error(`vger-server: ${errorMessage(err)}`);
    return 2;
  }
  const server = createServer(config);
  // one `deno run` server per data directory: before it listens, nothing else writes there
  try {
    const removed = await server.removeLeftovers();
    if (removed > 0) console.error(`vger-server removed ${removed} unfinished upload(s)`);
  } catch (err) {
    console.error(`vger-server: ${errorMessage(err)}`);
    return 1;
  }
  const { hostname, port } = parseListen(config.listen);
  const http = Deno.serve({
    hostname,
    port,
    onListen: (addr) => console.error(`vger-server listening on ${showAddr(addr)}`),
  }, (request, info) => server.fetch(request, info));
  // Deno's own shutdown cuts request bodies still arriving (the upload then fails with 400):
  // let the requests in flight finish first
  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= server.drain(DRAIN_MS).then(() => http.shutdown());
  };
  Deno.addSignalListener("SIGTERM", stop);
  Deno.addSignalListener("SIGINT", stop);
  await http.finished;
  await server.close();
  return 0;
}

if (import.meta.main) {
  const code = await main(Deno.args);
  if (code !== 0) Deno.exit(code);
}
