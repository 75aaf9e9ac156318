/**
 * A test-only entry point: vger-server with a lock TTL far below what the configuration accepts
 * (`VGER_TEST_LOCK_TTL_SECONDS`, seconds) and a quick sweep, so that a test sees an unrefreshed
 * lock expire. The configuration file is read and validated as in production; only this entry
 * point, which production never runs, replaces the TTL after validation.
 *
 * @module
 */

import { createServer } from "../server.ts";
import { loadServerConfig, parseListen } from "../lib/server_config.ts";

const config = await loadServerConfig(Deno.env.get("VGER_SERVER_CONFIG"), Deno.env.toObject());
const ttl = Number(Deno.env.get("VGER_TEST_LOCK_TTL_SECONDS"));
if (!(ttl > 0)) throw new Error("VGER_TEST_LOCK_TTL_SECONDS must be set");
const server = createServer({ ...config, lockTtlSeconds: ttl }, { sweepIntervalMs: 200 });
const http = Deno.serve({
  ...parseListen(config.listen),
  onListen: (addr) => console.error(`vger-server listening on ${addr.hostname}:${addr.port}`),
}, (request, info) => server.fetch(request, info));
Deno.addSignalListener("SIGTERM", () => http.shutdown());
await http.finished;
await server.close();
