/**
 * The operator commands of held deletes (docs/SERVER.md, "Held deletes"), entries of
 * lib/server_cli.ts's `SERVER_COMMANDS`:
 *
 * - `held REPO [--json]`: what is held of repository REPO (key, size, deleted at, purge after);
 * - `undelete REPO KEY... | --all`: puts the newest held copy of each key back, never over a key
 *   that exists again (refused in one line each; exit code 1).
 *
 * They run on the data directory's storage while the server may be running.
 *
 * @module
 */

import type { Backend } from "../backends/backend.ts";
import type { ServerConfig } from "./server_config.ts";
import { type HeldObject, listHeld, undelete } from "./server_held.ts";
import { isValidRepoName } from "./server_request.ts";
import { REPOS_PREFIX } from "./server_store.ts";

/** Where an operator command writes (stdout and stderr, or a test's buffers). */
export interface OperatorIo {
  /** One line of output. */
  out(line: string): void;
  /** One line of error. */
  err(line: string): void;
}

const consoleIo: OperatorIo = {
  out: (line) => console.log(line),
  err: (line) => console.error(line),
};

/** `held REPO [--json]`: lists what is held of REPO; resolves to the exit code. */
export async function heldCommand(
  config: ServerConfig,
  storage: Backend,
  args: string[],
  io: OperatorIo = consoleIo,
): Promise<number> {
  const json = args.includes("--json");
  const rest = args.filter((a) => a !== "--json");
  if (rest.length !== 1 || rest[0].startsWith("-") || !isValidRepoName(rest[0])) {
    io.err("Usage: server.ts --config FILE held REPO [--json]");
    return 2;
  }
  const repo = rest[0];
  const held = await listHeld(storage, repo, config.deleteHoldDays ?? 0);
  if (json) {
    io.out(JSON.stringify({ repository: repo, held: held.map(heldJson) }));
    return 0;
  }
  if (held.length === 0) {
    io.out(`Nothing is held of repository "${repo}"`);
    return 0;
  }
  for (const h of held) {
    const purge = (config.deleteHoldDays ?? 0) > 0 ? h.purgeAfter.toISOString() : "never (off)";
    io.out(`${h.key}  ${h.size} bytes  deleted ${h.deletedAt.toISOString()}  purge after ${purge}`);
  }
  const bytes = held.reduce((n, h) => n + h.size, 0);
  io.out(`${held.length} object(s), ${bytes} bytes held of repository "${repo}"`);
  return 0;
}

/** `undelete REPO KEY... | --all`: puts held objects back; resolves to the exit code. */
export async function undeleteCommand(
  _config: ServerConfig,
  storage: Backend,
  args: string[],
  io: OperatorIo = consoleIo,
): Promise<number> {
  const all = args.includes("--all");
  const [repo, ...keys] = args.filter((a) => a !== "--all");
  if (
    repo === undefined || !isValidRepoName(repo) || all === (keys.length > 0) ||
    keys.some((k) => k.startsWith("-"))
  ) {
    io.err("Usage: server.ts --config FILE undelete REPO KEY... | --all");
    return 2;
  }
  // a repository whose config comes back is listed again
  const result = await undelete(storage, repo, all ? null : keys, {
    marker: REPOS_PREFIX + repo,
  });
  for (const h of result.restored) io.out(`restored ${h.key} (${h.size} bytes)`);
  for (const { held, why } of result.refused) {
    io.err(`Cannot undelete "${held.key}" of repository "${repo}": ${why}`);
  }
  io.out(
    `${result.restored.length} object(s) restored, ${result.refused.length} left held, ` +
      `repository "${repo}"`,
  );
  return result.refused.length > 0 ? 1 : 0;
}

function heldJson(h: HeldObject) {
  return {
    key: h.key,
    size: h.size,
    deleted_at: h.deletedAt.toISOString(),
    purge_after: h.purgeAfter.toISOString(),
  };
}
