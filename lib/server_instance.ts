/**
 * A vger-server instance: the Hono app of lib/server_app.ts over the local backend of `data_dir`,
 * the lock sweep in the background, and the drain that lets requests in flight finish when it
 * stops. server.ts's `createServer` builds one over the local backend; lib/server_cli.ts runs one.
 *
 * @module
 */

import type { Backend } from "../backends/backend.ts";
import { errorMessage } from "./errors.ts";
import { createApp, type ServeInfo } from "./server_app.ts";
import type { ServerConfig } from "./server_config.ts";
import { sweepIntervalMs } from "./server_locks.ts";
import { formatEvent } from "./server_log.ts";
import { ServerStore } from "./server_store.ts";

/** How often the version retention runs (docs/SERVER.md, "Versions"). */
const VERSION_SWEEP_MS = 600_000;

/** A server built by {@linkcode createServerOn}: its request handler and its shutdown. */
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

/** Options of {@linkcode createServerOn}. */
export interface CreateServerOptions {
  /** Receives each request log line; stdout when absent. */
  log?: (line: string) => void;
  /** How often the lock sweep runs; from the TTL when absent (a tenth, 1 s to 60 s). */
  sweepIntervalMs?: number;
}

/**
 * A server over `backend`, the local backend of `config.dataDir` (server.ts's `createServer`
 * opens it: lib/ names no concrete backend). Nothing is touched until the first request.
 */
export function createServerOn(
  backend: Backend,
  config: ServerConfig,
  options: CreateServerOptions = {},
): VgerServer {
  const store = new ServerStore(backend, config);
  const log = options.log ?? ((line) => console.log(line));
  const app = createApp(store, {
    token: config.token,
    tokens: config.tokens,
    bodyTimeoutSeconds: config.bodyTimeoutSeconds,
    appendOnly: config.appendOnly,
    lockTtlSeconds: config.lockTtlSeconds,
    logFormat: config.logFormat,
    log,
    diskFree: async () => (await backend.freeBytes?.()) ?? null,
  });
  // the lock sweep: in the background, never keeping the process alive on its own
  let sweeping: Promise<unknown> = Promise.resolve();
  // the version retention runs with the first sweep, then at most every VERSION_SWEEP_MS
  let versionsSwept = -Infinity;
  // held deletes are kept for days: purging them once an hour is enough (a listing of all)
  let purgedAt = -Infinity;
  const purge = async () => {
    if (Date.now() - purgedAt < PURGE_INTERVAL_MS) return [];
    purgedAt = Date.now();
    return await store.purgeHeld();
  };
  const sweep = setInterval(() => {
    const sweepVersions = Date.now() - versionsSwept >= VERSION_SWEEP_MS;
    if (sweepVersions) versionsSwept = Date.now();
    sweeping = store.sweepLocks(config.lockTtlSeconds * 1000).then(
      async (removed) => {
        for (const key of removed) log(formatEvent(config.logFormat, "lock_expired", key));
        if (!sweepVersions) return;
        try {
          for (const key of await store.sweepVersions()) {
            log(formatEvent(config.logFormat, "version_expired", key));
          }
        } catch (err) {
          log(formatEvent(config.logFormat, "version_sweep_failed", errorMessage(err)));
        }
      },
      (err) => log(formatEvent(config.logFormat, "sweep_failed", errorMessage(err))),
    ).then(purge).then(
      (purged) => {
        for (const h of purged) {
          log(formatEvent(config.logFormat, "held_purged", `${h.repo}/${h.key}`));
        }
      },
      (err) => log(formatEvent(config.logFormat, "purge_failed", errorMessage(err))),
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

/** How often held deletes are purged (docs/SERVER.md, "Held deletes"). */
const PURGE_INTERVAL_MS = 3_600_000;

/** The answer to a request that arrives while the server shuts down. */
function shuttingDown(): Response {
  return Response.json({ error: "vger-server is shutting down; try again" }, {
    status: 503,
    headers: { "Retry-After": "1", "Connection": "close" },
  });
}
