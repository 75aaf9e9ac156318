/**
 * `deno run ... server.ts --config FILE [COMMAND ARGS...]`: without a command, vger-server listens
 * on the file's `listen` until SIGTERM or SIGINT (then drains); with one, it runs that operator
 * command of {@linkcode SERVER_COMMANDS} on the data directory and exits.
 *
 * @module
 */

import { errorMessage, missingPermission, missingPermissionMessage } from "./errors.ts";
import {
  loadServerConfig,
  parseListen,
  type ServerConfig,
  serverEnvironment,
} from "./server_config.ts";
import type { Backend } from "../backends/backend.ts";
import { createServerOn } from "./server_instance.ts";
import { runStructureCheck } from "./server_check.ts";
import { heldCommand, undeleteCommand } from "./server_held_commands.ts";

/**
 * An operator command: runs on `storage`, the backend of `config`'s data directory, with its
 * arguments; resolves to the exit code.
 */
export type ServerCommand = (
  config: ServerConfig,
  storage: Backend,
  args: string[],
) => Promise<number>;

/** The operator commands, by name (`vger-server --config FILE NAME ARGS...`). */
export const SERVER_COMMANDS: Record<string, ServerCommand> = {
  check: (config, storage, args) =>
    runStructureCheck(storage, args, { lockTtlMs: config.lockTtlSeconds * 1000 }),
  held: heldCommand,
  undelete: undeleteCommand,
};

const USAGE = "Usage: server.ts --config FILE [COMMAND ARGS...]";

/** How long a stopping server lets the requests in flight run before it closes anyway. */
const DRAIN_MS = 30_000;

/** HOST:PORT of a listener, for the "listening on" line. */
export function showAddr(addr: Deno.Addr): string {
  return "hostname" in addr ? `${addr.hostname}:${addr.port}` : JSON.stringify(addr);
}

/**
 * Runs `args` (`--config FILE [COMMAND ARGS...]`) on the storage `openStorage` gives (server.ts
 * passes the local backend of `data_dir`); resolves to the exit code. Without `--config` it does
 * nothing (under deno serve, whose listener is the only one).
 */
export async function serverMain(
  args: string[],
  openStorage: (config: ServerConfig) => Backend,
): Promise<number> {
  if (!args.includes("--config")) return 0;
  const [flag, file, command, ...rest] = args;
  if (flag !== "--config" || file === undefined) {
    console.error(USAGE);
    return 2;
  }
  const run = command === undefined ? undefined : SERVER_COMMANDS[command];
  if (command !== undefined && run === undefined) {
    const known = Object.keys(SERVER_COMMANDS).join(", ") || "none";
    console.error(`vger-server: unknown command "${command}" (commands: ${known}). ${USAGE}`);
    return 2;
  }
  let config: ServerConfig;
  try {
    config = await loadServerConfig(file, serverEnvironment());
  } catch (err) {
    console.error(`vger-server: ${errorMessage(err)}`);
    return 2;
  }
  const storage = openStorage(config);
  if (run !== undefined) {
    try {
      return await run(config, storage, rest);
    } catch (err) {
      return failed(err);
    } finally {
      await storage.close();
    }
  }
  return await listen(config, storage);
}

/** Reports a failure in one line; exit 2 when a permission is missing (the flags must change). */
function failed(err: unknown): number {
  const missing = missingPermission(err);
  console.error(`vger-server: ${missing ? missingPermissionMessage(missing) : errorMessage(err)}`);
  return missing ? 2 : 1;
}

/** Listens on `config.listen` until SIGTERM or SIGINT; then drains and closes. */
async function listen(config: ServerConfig, storage: Backend): Promise<number> {
  const server = createServerOn(storage, config);
  // one `deno run` server per data directory: before it listens, nothing else writes there
  try {
    const removed = await server.removeLeftovers();
    if (removed > 0) console.error(`vger-server removed ${removed} unfinished upload(s)`);
  } catch (err) {
    return failed(err);
  }
  const { hostname, port } = parseListen(config.listen);
  let http: Deno.HttpServer;
  try {
    http = Deno.serve({
      hostname,
      port,
      onListen: (addr) => console.error(`vger-server listening on ${showAddr(addr)}`),
    }, (request, info) => server.fetch(request, info));
  } catch (err) {
    await server.close();
    return failed(err); // a missing --allow-net, the address in use
  }
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
