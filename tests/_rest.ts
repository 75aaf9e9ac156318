/**
 * Helpers of the REST tests in tests/: a repository on a test server (tests/_server.ts) and the
 * configuration file that names it, runs of the real `vger` CLI on it that never show a token,
 * and what the server holds for it (bytes and files on its disk, keys as it lists them).
 *
 * Private to tests/ (the leading underscore); backend-neutral assertions (one-line errors,
 * restores, a clean check) are in tests/_helpers.ts and take {@linkcode vgerOn} of a repository.
 *
 * @example Back up to a repository on a test server and check that it restores
 * ```ts ignore
 * import { assertCheckClean, assertRestores, FAST_KDF_ARGS, treeSnapshot } from "./_helpers.ts";
 * import { restRepo, run, vgerOn } from "./_rest.ts";
 *
 * const repo = await restRepo(dir, server, "laptop");
 * await run(repo, ["init", ...FAST_KDF_ARGS]);
 * await run(repo, ["backup", "--archive", "one", src]);
 * await assertRestores(vgerOn(repo), "one", src, await treeSnapshot(src), "extract");
 * await assertCheckClean(vgerOn(repo), "check");
 * ```
 *
 * @module
 */

import { equal } from "node:assert/strict";
import { assertNoSecret, type RunResult, runVger, sha256File, type Vger } from "./_helpers.ts";

/** A repository on a test server, and the configuration file that names it. */
export interface RestRepo {
  /** `http://127.0.0.1:PORT/NAME`. */
  url: string;
  /** The configuration file (`--config`). */
  config: string;
  /** The token its configuration's `rest_token_command` prints. */
  token: string;
  /** What no run on it may show (its token unless told). */
  secrets: readonly string[];
  /** Environment of every run on it (a cache directory of its own...). */
  env: Record<string, string>;
}

/** Options of {@linkcode restRepo}. */
export interface RestRepoOptions {
  /** The token (default: the server's). */
  token?: string;
  /** Names the configuration and token files in `dir` (default: the repository's name). */
  label?: string;
  /** More YAML lines at the top level (`retention:`...). */
  topLevel?: string[];
  /** A files cache of its own, `DIR/LABEL-cache` (a second client, an attacker's machine). */
  ownCache?: boolean;
  /** What no run may show (default: the token). */
  secrets?: readonly string[];
}

/**
 * Writes a configuration with one `rest` entry for repository `name` on `server` (its token from
 * a `rest_token_command`; small packs, so that a few MiB make several and compact has packs to
 * free) into `dir`.
 */
export async function restRepo(
  dir: string,
  server: { url: string; token: string },
  name: string,
  options: RestRepoOptions = {},
): Promise<RestRepo> {
  const token = options.token ?? server.token;
  const label = options.label ?? name;
  const tokenFile = `${dir}/${label}.token`;
  await Deno.writeTextFile(tokenFile, token + "\n");
  const config = `${dir}/${label}.yaml`;
  const url = `${server.url}/${name}`;
  await Deno.writeTextFile(
    config,
    [
      "repositories:",
      `  - path: ${url}`,
      "    backend: rest",
      `    rest_token_command: "cat ${tokenFile}"`,
      "    min_pack_size: 1048576",
      "    max_pack_size: 4194304",
      ...options.topLevel ?? [],
      "",
    ].join("\n"),
  );
  const env: Record<string, string> = {};
  if (options.ownCache) {
    env.VGER_CACHE_DIR = `${dir}/${label}-cache`;
    await Deno.mkdir(env.VGER_CACHE_DIR);
  }
  return { url, config, token, secrets: options.secrets ?? [token], env };
}

/** Runs `vger --config CONFIG ARGS` on `repo` (2 minutes at most), whatever its exit code. */
export function vger(
  repo: RestRepo,
  args: readonly string[],
  env: Record<string, string> = {},
): Promise<RunResult> {
  return runVger(["--config", repo.config, ...args], {
    env: { ...repo.env, ...env },
    timeoutMs: 120_000,
  });
}

/** Options of {@linkcode run}. */
export interface RunOnOptions {
  /** The exit code expected (default 0). */
  code?: number;
  /** More environment for this run. */
  env?: Record<string, string>;
}

/** Runs `vger ARGS` on `repo`, asserting its exit code (0 unless told) and that no secret shows. */
export async function run(
  repo: RestRepo,
  args: readonly string[],
  options: RunOnOptions = {},
): Promise<RunResult> {
  const r = await vger(repo, args, options.env);
  equal(r.code, options.code ?? 0, `vger ${args.join(" ")}: ${r.stderr}${r.stdout}`);
  assertNoSecret(r, repo.secrets, `vger ${args.join(" ")}`);
  return r;
}

/** {@linkcode run} bound to `repo`, for tests/_helpers.ts's assertions. */
export function vgerOn(repo: RestRepo, env?: Record<string, string>): Vger {
  return (args) => run(repo, args, { env });
}

/** Every file under `root` (relative path -> size in bytes); none when `root` does not exist. */
export async function fileSizes(root: string): Promise<Map<string, number>> {
  const files = new Map<string, number>();
  const walk = async (dir: string) => {
    for await (const e of Deno.readDir(dir)) {
      const path = `${dir}/${e.name}`;
      if (e.isDirectory) await walk(path);
      else if (e.isFile) files.set(path.slice(root.length + 1), (await Deno.stat(path)).size);
    }
  };
  try {
    await walk(root);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  return files;
}

/** Bytes the server holds for repository `name` (its directory under `dataDir`, locks too). */
export async function storedBytes(dataDir: string, name: string): Promise<number> {
  let total = 0;
  for (const size of (await fileSizes(`${dataDir}/${name}`)).values()) total += size;
  return total;
}

/** Every file the server holds for repository `name`, key -> size, locks left out. */
export async function storedSizes(dataDir: string, name: string): Promise<Map<string, number>> {
  const files = await fileSizes(`${dataDir}/${name}`);
  for (const key of files.keys()) if (key.startsWith("locks/")) files.delete(key);
  return files;
}

/** Every file the server holds for repository `name`, key -> SHA-256, locks left out. */
export async function storedHashes(dataDir: string, name: string): Promise<Map<string, string>> {
  const hashes = new Map<string, string>();
  for (const key of (await storedSizes(dataDir, name)).keys()) {
    hashes.set(key, await sha256File(`${dataDir}/${name}/${key}`));
  }
  return hashes;
}

/** The keys of repository `name` as the server lists them to a client (every page). */
export async function listedKeys(
  server: { fetch(path: string, init?: RequestInit): Promise<Response> },
  name: string,
  prefix = "",
): Promise<string[]> {
  const keys: string[] = [];
  let after = "";
  for (let page = 0; page < 100; page++) {
    const query = new URLSearchParams({ prefix, after });
    const res = await server.fetch(`/${name}/?${query}`);
    equal(res.status, 200);
    const body = await res.json() as { objects: { key: string }[]; next: string | null };
    keys.push(...body.objects.map((o) => o.key));
    if (body.next === null) return keys;
    after = body.next;
  }
  throw new Error("more than 100 pages");
}
