/**
 * `vger-server`: the REST backend server (a later issue). For now it answers the health check
 * only, so that `deno serve server.ts` starts.
 *
 * @module
 */

import { Hono } from "hono";

/** The server's Hono app. */
export const app: Hono = new Hono();
const started = Date.now();
app.get("/health", (c) => c.json({ status: "ok", uptime_seconds: (Date.now() - started) / 1000 }));

export default { fetch: app.fetch } satisfies Deno.ServeDefaultExport;
