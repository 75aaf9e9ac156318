/**
 * The configuration of `vger-server`: the `[server]` table of a TOML file (`vger-server.toml`),
 * then `VGER_SERVER_*` environment variables over it (for containers). Every error is one line
 * naming the file, the line and the key, or the variable, and why:
 * `Invalid configuration /etc/vger-server.toml line 4: server.quota_bytes: must be a whole number
 * of bytes, 0 or more (got -1)`. Unknown keys are errors, with a "did you mean" suggestion.
 *
 * @example
 * ```ts
 * import { parseServerConfig } from "./server_config.ts";
 *
 * const config = parseServerConfig(
 *   '[server]\ndata_dir = "/var/lib/vger"\ntoken = "a-long-secret-token"\n',
 *   { file: "/etc/vger-server.toml", env: {} },
 * );
 * console.log(config.listen); // "127.0.0.1:8484"
 * ```
 *
 * @module
 */

import { dirname, resolve } from "node:path";
import { parse, TomlError } from "smol-toml";
import { errorMessage, UsageError } from "./errors.ts";
import { runSecretCommand } from "./secrets.ts";
import { isRepoPattern, type Role, ROLES, type TokenGrant } from "./server_roles.ts";
import { closest } from "./suggest.ts";

/** The validated settings of a server. */
export interface ServerConfig {
  /** Where the settings came from (a file path, or "the environment"), for messages. */
  readonly source: string;
  /** `host:port` to listen on (`deno run ... --config`; `deno serve` takes its own flags). */
  readonly listen: string;
  /** The absolute directory of the repositories and of the server's state. */
  readonly dataDir: string;
  /**
   * The `[server]` token: role full on every repository (never printed). Optional when
   * `[[tokens]]` gives at least one token.
   */
  readonly token?: string;
  /** The `[[tokens]]` entries: per-repository tokens with a role (docs/SERVER.md). */
  readonly tokens?: readonly TokenGrant[];
  /** Days a deleted object is held before it is purged; 0 (absent): deletes remove at once. */
  readonly deleteHoldDays?: number;
  /** Whether clients may only add: no delete, no overwrite of anything but manifest, index, locks. */
  readonly appendOnly: boolean;
  /** Request logs as text lines or JSON lines. */
  readonly logFormat: "pretty" | "json";
  /** The most bytes a repository may hold; 0 for no limit. */
  readonly quotaBytes: number;
  /** How long a lock nobody rewrites lives before the server removes it, in seconds. */
  readonly lockTtlSeconds: number;
  /** How long a request body may send nothing before the request fails with 408, in seconds. */
  readonly bodyTimeoutSeconds: number;
  /** The largest object a client may store, in bytes (larger is 413). */
  readonly maxObjectBytes: number;
  /**
   * Days every kept version of `manifest` and `index` is kept; 0: as `delete_hold_days`, and
   * with neither, versions are kept in append-only mode only, forever. Above 0, versions are kept
   * in every mode, and the sweep removes those older than this that are not among the newest
   * {@linkcode versionKeepMin}.
   */
  readonly versionKeepDays: number;
  /** With {@linkcode versionKeepDays}: the newest versions of each key kept whatever their age. */
  readonly versionKeepMin: number;
}

/**
 * The shortest lock TTL accepted: the client refreshes its locks every 10 minutes, so a TTL of
 * two refresh periods leaves a late refresh (a busy machine, a retried request) a whole period.
 */
export const MIN_LOCK_TTL_SECONDS = 1200;
/** The default address to listen on. */
export const DEFAULT_LISTEN = "127.0.0.1:8484";
/** The default largest object: 4 GiB, above the largest pack a client writes (4 GiB - 1). */
export const DEFAULT_MAX_OBJECT_BYTES = 2 ** 32;
/** The default number of newest versions of each key kept whatever their age. */
export const DEFAULT_VERSION_KEEP_MIN = 10;

/** One setting: its key in `[server]`, its environment variable, and how a value is read. */
interface Setting {
  key: string;
  env: string;
  kind: "string" | "boolean" | "count" | "seconds" | "days";
}

/** The most days `delete_hold_days` may be: ten years. */
export const MAX_DELETE_HOLD_DAYS = 3650;
/** The keys of a `[[tokens]]` entry. */
const TOKEN_KEYS = ["token", "token_command", "repos", "role"];

const SETTINGS: readonly Setting[] = [
  { key: "listen", env: "VGER_SERVER_LISTEN", kind: "string" },
  { key: "data_dir", env: "VGER_SERVER_DATA_DIR", kind: "string" },
  { key: "token", env: "VGER_SERVER_TOKEN", kind: "string" },
  { key: "append_only", env: "VGER_SERVER_APPEND_ONLY", kind: "boolean" },
  { key: "log_format", env: "VGER_SERVER_LOG_FORMAT", kind: "string" },
  { key: "quota_bytes", env: "VGER_SERVER_QUOTA_BYTES", kind: "count" },
  { key: "lock_ttl_seconds", env: "VGER_SERVER_LOCK_TTL_SECONDS", kind: "seconds" },
  { key: "body_timeout_seconds", env: "VGER_SERVER_BODY_TIMEOUT_SECONDS", kind: "seconds" },
  { key: "max_object_bytes", env: "VGER_SERVER_MAX_OBJECT_BYTES", kind: "count" },
  { key: "version_keep_days", env: "VGER_SERVER_VERSION_KEEP_DAYS", kind: "days" },
  { key: "version_keep_min", env: "VGER_SERVER_VERSION_KEEP_MIN", kind: "count" },
  { key: "delete_hold_days", env: "VGER_SERVER_DELETE_HOLD_DAYS", kind: "count" },
];

/** The environment variables that override settings, by key (for documentation and tests). */
export const SERVER_ENV_VARIABLES: Readonly<Record<string, string>> = Object.fromEntries(
  SETTINGS.map((s) => [s.key, s.env]),
);

/**
 * The server's variables from the process environment: only those it reads, so that it runs with
 * `--allow-env` scoped to them (lib/cli_launch.ts grants exactly these).
 */
export function serverEnvironment(): Record<string, string | undefined> {
  return Object.fromEntries(
    Object.values(SERVER_ENV_VARIABLES).map((name) => [name, Deno.env.get(name)]),
  );
}

/** Options of {@linkcode parseServerConfig}. */
export interface ParseServerConfigOptions {
  /** The file the text came from, for messages and to resolve a relative `data_dir`. */
  file?: string;
  /** The environment whose `VGER_SERVER_*` variables override the file. */
  env?: Readonly<Record<string, string | undefined>>;
}

/**
 * Parses and validates a server configuration (`text` may be empty when the environment gives
 * every setting). Throws a one-line UsageError naming the file, line and key, or the variable.
 */
export function parseServerConfig(
  text: string,
  options: ParseServerConfigOptions = {},
): ServerConfig {
  const file = options.file;
  const env = options.env ?? {};
  const where = file ?? "the environment";
  let doc: Record<string, unknown>;
  try {
    doc = parse(text);
  } catch (err) {
    const line = err instanceof TomlError ? err.line : 1;
    const why = (err as Error).message.split("\n")[0].replace(/^Invalid TOML document: /, "");
    throw new UsageError(`Invalid configuration ${where} line ${line}: ${why}`, { cause: err });
  }
  const lines = keyLines(text);
  const fail = (path: string, why: string): never => {
    const line = lines.get(path);
    throw new UsageError(
      `Invalid configuration ${where}${line === undefined ? "" : ` line ${line}`}: ${path}: ${why}`,
    );
  };
  for (const key of Object.keys(doc)) {
    if (key !== "server" && key !== "tokens") fail(key, unknownKey(key, ["server", "tokens"]));
  }
  const table = doc.server ?? {};
  if (typeof table !== "object" || table === null || Array.isArray(table)) {
    fail("server", "must be a table ([server])");
  }
  const server = table as Record<string, unknown>;
  const keys = SETTINGS.map((s) => s.key);
  for (const key of Object.keys(server)) {
    if (!keys.includes(key)) fail(`server.${key}`, unknownKey(key, keys));
  }
  const values = new Map<string, { value: unknown; fail: (why: string) => never }>();
  for (const s of SETTINGS) {
    const raw = env[s.env];
    if (raw !== undefined) {
      const envFail = (why: string): never => {
        throw new UsageError(`Invalid environment variable ${s.env}: ${why}`);
      };
      values.set(s.key, { value: fromEnv(s, raw, envFail), fail: envFail });
    } else if (s.key in server) {
      values.set(s.key, {
        value: server[s.key],
        fail: (why: string) => fail(`server.${s.key}`, why),
      });
    }
  }
  const get = <T>(key: string, check: (value: unknown, fail: (why: string) => never) => T) => {
    const found = values.get(key);
    return found === undefined ? undefined : check(found.value, found.fail);
  };

  const listen = get("listen", listenAddress) ?? DEFAULT_LISTEN;
  const dataDir = get("data_dir", nonEmptyString);
  if (dataDir === undefined) {
    throw new UsageError(
      `Invalid configuration ${where}: server.data_dir is required (or VGER_SERVER_DATA_DIR)`,
    );
  }
  const token = get("token", tokenValue);
  const tokens = parseTokens(doc.tokens, fail);
  if (token === undefined && tokens.length === 0) {
    throw new UsageError(
      `Invalid configuration ${where}: server.token is required (or VGER_SERVER_TOKEN, or a ` +
        "[[tokens]] entry)",
    );
  }
  checkDistinct(token, tokens, fail);
  const logFormat = get("log_format", (v, f) => {
    if (v !== "pretty" && v !== "json") f(`must be "pretty" or "json" (got ${show(v)})`);
    return v as "pretty" | "json";
  }) ?? "pretty";
  const lockTtlSeconds = get("lock_ttl_seconds", (v, f) => {
    const n = seconds(v, f);
    if (n < MIN_LOCK_TTL_SECONDS) {
      f(
        `must be at least ${MIN_LOCK_TTL_SECONDS}, two of the clients' 10-minute lock ` +
          `refresh periods (got ${n})`,
      );
    }
    return n;
  }) ?? 3600;
  const bodyTimeoutSeconds = get("body_timeout_seconds", seconds) ?? 60;
  const maxObjectBytes = get("max_object_bytes", (v, f) => {
    const n = count(v, f);
    if (n === 0) f("must be more than 0");
    return n;
  }) ?? DEFAULT_MAX_OBJECT_BYTES;
  const versionKeepDays = get("version_keep_days", (v, f) => {
    if (typeof v !== "number" || !Number.isFinite(v) || v < 0 || v > 36_500) {
      f(`must be a number of days, 0 (as delete_hold_days) to 36500 (got ${show(v)})`);
    }
    return v as number;
  }) ?? 0;
  const versionKeepMin = get("version_keep_min", (v, f) => {
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) {
      f(`must be a whole number of versions, 0 or more (got ${show(v)})`);
    }
    return v as number;
  }) ?? DEFAULT_VERSION_KEEP_MIN;
  return {
    source: where,
    listen,
    dataDir: resolveDir(dataDir, file),
    token,
    appendOnly: get("append_only", boolean) ?? false,
    logFormat,
    quotaBytes: get("quota_bytes", count) ?? 0,
    lockTtlSeconds,
    bodyTimeoutSeconds,
    maxObjectBytes,
    versionKeepDays,
    versionKeepMin,
    tokens,
    deleteHoldDays: get("delete_hold_days", (v, f) => {
      const n = typeof v === "number" && Number.isSafeInteger(v) ? v : -1;
      if (n < 0 || n > MAX_DELETE_HOLD_DAYS) {
        f(`must be a whole number of days, 0 to ${MAX_DELETE_HOLD_DAYS} (got ${show(v)})`);
      }
      return n;
    }) ?? 0,
  };
}

/** The `[[tokens]]` entries, validated; each failure names `tokens[i].key`. */
function parseTokens(
  value: unknown,
  fail: (path: string, why: string) => never,
): TokenGrant[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) return fail("tokens", "must be an array of tables ([[tokens]])");
  return value.map((entry, i): TokenGrant => {
    const name = `tokens[${i}]`;
    if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
      return fail(name, "must be a table ([[tokens]])");
    }
    const t = entry as Record<string, unknown>;
    const f = (key: string) => (why: string): never => fail(`${name}.${key}`, why);
    for (const key of Object.keys(t)) {
      if (!TOKEN_KEYS.includes(key)) fail(`${name}.${key}`, unknownKey(key, TOKEN_KEYS));
    }
    if (("token" in t) === ("token_command" in t)) {
      fail(name, "needs exactly one of token and token_command");
    }
    const token = "token" in t ? tokenValue(t.token, f("token")) : undefined;
    const tokenCommand = "token_command" in t
      ? nonEmptyString(t.token_command, f("token_command"))
      : undefined;
    if (!("repos" in t)) fail(name, "needs repos (repository names and * globs)");
    const repos = t.repos;
    if (!Array.isArray(repos) || repos.length === 0) {
      f("repos")(`must be a non-empty list of repository names and * globs (got ${show(repos)})`);
    }
    for (const p of repos as unknown[]) {
      if (typeof p !== "string" || !isRepoPattern(p)) {
        f("repos")(
          `${show(p)} is not a repository name or glob: 1 to 64 of A-Z a-z 0-9 . _ - *, not ` +
            `starting with "."`,
        );
      }
    }
    if (!("role" in t)) fail(name, `needs role (${ROLES.join(", ")})`);
    if (!ROLES.includes(t.role as Role)) {
      f("role")(`must be "full", "append-only" or "read-only" (got ${show(t.role)})`);
    }
    return {
      name,
      ...(token === undefined ? {} : { token }),
      ...(tokenCommand === undefined ? {} : { tokenCommand }),
      repos: repos as string[],
      role: t.role as Role,
    };
  });
}

/** A token's text: non-empty, no spaces or control characters. */
function tokenValue(value: unknown, fail: (why: string) => never): string {
  const t = nonEmptyString(value, fail);
  // deno-lint-ignore no-control-regex
  if (/[\s\x00-\x1f\x7f]/.test(t)) fail("must not contain spaces or control characters");
  return t;
}

/** Refuses two equal tokens (each names one client: a shared one could not tell them apart). */
function checkDistinct(
  serverToken: string | undefined,
  grants: readonly TokenGrant[],
  fail: (path: string, why: string) => never,
): void {
  const seen = new Map<string, string>();
  if (serverToken !== undefined) seen.set(serverToken, "server.token");
  for (const grant of grants) {
    if (grant.token === undefined) continue;
    const before = seen.get(grant.token);
    const path = `${grant.name}.${grant.tokenCommand === undefined ? "token" : "token_command"}`;
    if (before !== undefined) fail(path, `is the same token as ${before} (tokens must differ)`);
    seen.set(grant.token, grant.name);
  }
}

/**
 * `config` with the `token_command` of each `[[tokens]]` entry run (once) and its output as the
 * token; `run` is lib/secrets.ts's `runSecretCommand` unless a test passes its own. Refuses,
 * in one line naming the entry, a failing command, a token with spaces, and equal tokens.
 */
export async function resolveServerTokens(
  config: ServerConfig,
  run: (command: string, what: string) => Promise<string> = runSecretCommand,
): Promise<ServerConfig> {
  const grants = config.tokens ?? [];
  if (grants.every((g) => g.tokenCommand === undefined)) return config;
  const resolved: TokenGrant[] = [];
  for (const grant of grants) {
    if (grant.tokenCommand === undefined) {
      resolved.push(grant);
      continue;
    }
    const what = `token_command "${grant.tokenCommand}" of ${grant.name}`;
    let token: string;
    try {
      token = tokenValue(await run(grant.tokenCommand, what), (why) => {
        throw new UsageError(`The ${what} printed a token that ${why.replace(/^must/, "must")}`);
      });
    } catch (err) {
      throw new UsageError(
        `Invalid configuration ${config.source}: ${errorMessage(err)}`,
        { cause: err },
      );
    }
    resolved.push({ ...grant, token });
  }
  checkDistinct(config.token, resolved, (path, why) => {
    throw new UsageError(`Invalid configuration ${config.source}: ${path}: ${why}`);
  });
  return { ...config, tokens: resolved };
}

/**
 * Reads and validates the configuration file `file` (when given) with the environment's
 * `VGER_SERVER_*` overrides; a missing or unreadable file is a one-line UsageError.
 */
export async function loadServerConfig(
  file: string | undefined,
  env: Readonly<Record<string, string | undefined>>,
): Promise<ServerConfig> {
  if (file === undefined) return parseServerConfig("", { env });
  let text: string;
  try {
    const info = await Deno.stat(file);
    if (!info.isFile) throw new UsageError(`Cannot read configuration ${file}: not a file`);
    if (info.size > 1 << 20) {
      throw new UsageError(`Cannot read configuration ${file}: larger than 1 MiB`);
    }
    text = await Deno.readTextFile(file);
  } catch (err) {
    if (err instanceof UsageError) throw err;
    const why = err instanceof Deno.errors.NotFound
      ? "no such file"
      : (err as Error).message.replace(/\s*\(os error \d+\).*$/s, "");
    throw new UsageError(`Cannot read configuration ${file}: ${why}`, { cause: err });
  }
  return await resolveServerTokens(parseServerConfig(text, { file, env }));
}

/** The value of an environment variable as the TOML value it stands for. */
function fromEnv(s: Setting, raw: string, fail: (why: string) => never): unknown {
  if (s.kind === "string") return raw;
  if (s.kind === "boolean") {
    if (raw === "true" || raw === "1") return true;
    if (raw === "false" || raw === "0") return false;
    return fail(`must be true or false (got ${show(raw)})`);
  }
  if (!/^\d+(\.\d+)?$/.test(raw.trim())) {
    return fail(`must be a number (got ${show(raw)})`);
  }
  return Number(raw.trim());
}

/** The line of each `table.key` (and of each table) in TOML text, for messages. */
function keyLines(text: string): Map<string, number> {
  const lines = new Map<string, number>();
  let table = "";
  const arrays = new Map<string, number>();
  for (const [i, line] of text.split("\n").entries()) {
    // [[tokens]]: each entry its own table, tokens[0], tokens[1]...
    const entry = /^\s*\[\[\s*([A-Za-z0-9_.-]+)\s*\]\]/.exec(line);
    if (entry) {
      const n = arrays.get(entry[1]) ?? 0;
      arrays.set(entry[1], n + 1);
      table = `${entry[1]}[${n}]`;
      lines.set(table, i + 1);
      if (!lines.has(entry[1])) lines.set(entry[1], i + 1);
      continue;
    }
    const header = /^\s*\[\s*([A-Za-z0-9_.-]+)\s*\]/.exec(line);
    if (header) {
      table = header[1];
      if (!lines.has(table)) lines.set(table, i + 1);
      continue;
    }
    const key = /^\s*(?:"([^"]*)"|([A-Za-z0-9_-]+))\s*=/.exec(line);
    if (key) {
      const path = table === "" ? key[1] ?? key[2] : `${table}.${key[1] ?? key[2]}`;
      if (!lines.has(path)) lines.set(path, i + 1);
    }
  }
  return lines;
}

function unknownKey(key: string, known: readonly string[]): string {
  const near = closest(key, known);
  return `unknown key${near ? ` (did you mean "${near}"?)` : ""}`;
}

function show(value: unknown): string {
  if (typeof value === "string" || Array.isArray(value)) return JSON.stringify(value);
  return String(value);
}

function nonEmptyString(value: unknown, fail: (why: string) => never): string {
  if (typeof value !== "string" || value === "") {
    return fail(`must be a non-empty string (got ${show(value)})`);
  }
  return value;
}

function boolean(value: unknown, fail: (why: string) => never): boolean {
  if (typeof value !== "boolean") return fail(`must be true or false (got ${show(value)})`);
  return value;
}

/** A whole number of bytes, 0 or more (TOML integers are bigints past 2^53). */
function count(value: unknown, fail: (why: string) => never): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    return fail(`must be a whole number of bytes, 0 or more (got ${show(value)})`);
  }
  return value;
}

/** A positive number of seconds, at most a year. */
function seconds(value: unknown, fail: (why: string) => never): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0 || value > 31_536_000) {
    return fail(`must be a number of seconds above 0, at most a year (got ${show(value)})`);
  }
  return value;
}

/** `host:port` or `[v6]:port`, the port 0 to 65535. */
function listenAddress(value: unknown, fail: (why: string) => never): string {
  const text = nonEmptyString(value, fail);
  const m = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(text);
  if (!m || Number(m[2]) > 65535) {
    return fail(`must be "host:port", such as "127.0.0.1:8484" (got ${show(value)})`);
  }
  return text;
}

/** The address and port of a `listen` value, for Deno.serve. */
export function parseListen(listen: string): { hostname: string; port: number } {
  const cut = listen.lastIndexOf(":");
  return {
    hostname: listen.slice(0, cut).replace(/^\[|\]$/g, ""),
    port: Number(listen.slice(cut + 1)),
  };
}

/** `dir` made absolute: relative to the configuration file's directory, else to the cwd. */
function resolveDir(dir: string, file: string | undefined): string {
  return file === undefined ? resolve(dir) : resolve(dirname(resolve(file)), dir);
}
