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
 *   bodyTimeoutSeconds: 60, maxObjectBytes: 2 ** 32, versionKeepDays: 0, versionKeepMin: 10,
 * }, { log: () => {} });
 * const res = await server.fetch(new Request("http://h/health"));
 * console.log(res.status); // 200
 * await server.close();
 * await Deno.remove(dataDir, { recursive: true });
 * ```
 *
 * @module
 */

import type { Backend } from "./backends/backend.ts";
import { openLocalBackend } from "./backends/mod.ts";
import { errorMessage } from "./lib/errors.ts";
import { loadServerConfig, type ServerConfig, serverEnvironment } from "./lib/server_config.ts";
import { serverMain, showAddr } from "./lib/server_cli.ts";
import {
  createServerOn,
  type CreateServerOptions,
  type VgerServer,
} from "./lib/server_instance.ts";

export type { ServerConfig } from "./lib/server_config.ts";
export type { Role, TokenGrant } from "./lib/server_roles.ts";
export type { ServeInfo } from "./lib/server_app.ts";
export type { CreateServerOptions, VgerServer } from "./lib/server_instance.ts";

/** The storage of a server: the local backend over `data_dir`. */
function dataDirStorage(config: ServerConfig): Backend {
  return openLocalBackend(config.dataDir);
}

/** A server over `config.dataDir` (nothing is touched until the first request). */
export function createServer(config: ServerConfig, options: CreateServerOptions = {}): VgerServer {
  return createServerOn(dataDirStorage(config), config, options);
}

/** The server of `deno serve`, built once from `VGER_SERVER_CONFIG` and the environment. */
let served: Promise<VgerServer> | undefined;

function servedServer(): Promise<VgerServer> {
  served ??= loadServerConfig(Deno.env.get("VGER_SERVER_CONFIG"), serverEnvironment())
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

if (import.meta.main) {
  const code = await serverMain(Deno.args, dataDirStorage);
  if (code !== 0) Deno.exit(code);
}
