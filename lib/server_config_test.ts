import { deepStrictEqual, equal, throws } from "node:assert/strict";
import { UsageError } from "./errors.ts";
import {
  loadServerConfig,
  parseListen,
  parseServerConfig,
  resolveServerTokens,
  SERVER_ENV_VARIABLES,
} from "./server_config.ts";

const BASE = '[server]\ndata_dir = "/srv/vger"\ntoken = "tok-123"\n';
const FILE = "/etc/vger-server.toml";

function refused(text: string, env: Record<string, string> = {}): string {
  try {
    parseServerConfig(text, { file: FILE, env });
  } catch (err) {
    if (err instanceof UsageError) return err.message;
    throw err;
  }
  throw new Error("accepted");
}

Deno.test("server config: the specification's example with defaults", () => {
  const config = parseServerConfig(
    '[server]\nlisten = "127.0.0.1:8484"\ndata_dir = "/var/lib/vger"\ntoken = "some-secret-token"\n' +
      'append_only = false\nlog_format = "pretty"\n# quota_bytes = 5368709120\n',
    { file: FILE, env: {} },
  );
  deepStrictEqual(config, {
    source: FILE,
    listen: "127.0.0.1:8484",
    dataDir: "/var/lib/vger",
    token: "some-secret-token",
    appendOnly: false,
    logFormat: "pretty",
    quotaBytes: 0,
    lockTtlSeconds: 3600,
    bodyTimeoutSeconds: 60,
    maxObjectBytes: 2 ** 32,
    versionKeepDays: 0,
    versionKeepMin: 10,
    tokens: [],
    deleteHoldDays: 0,
  });
});

Deno.test("server config: errors name the file, the line, the key and why", () => {
  equal(
    refused(BASE + "quota_bytes = -1\n"),
    `Invalid configuration ${FILE} line 4: server.quota_bytes: must be a whole number of bytes, 0 or more (got -1)`,
  );
  equal(
    refused(BASE + "append_onyl = true\n"),
    `Invalid configuration ${FILE} line 4: server.append_onyl: unknown key (did you mean "append_only"?)`,
  );
  equal(
    refused(BASE + 'log_format = "xml"\n'),
    `Invalid configuration ${FILE} line 4: server.log_format: must be "pretty" or "json" (got "xml")`,
  );
  equal(
    refused(BASE + "lock_ttl_seconds = 60\n"),
    `Invalid configuration ${FILE} line 4: server.lock_ttl_seconds: must be at least 1200, two of the clients' 10-minute lock refresh periods (got 60)`,
  );
  equal(
    refused(BASE + 'listen = "8484"\n'),
    `Invalid configuration ${FILE} line 4: server.listen: must be "host:port", such as "127.0.0.1:8484" (got "8484")`,
  );
  equal(
    refused(BASE + "[tokens]\n"),
    `Invalid configuration ${FILE} line 4: tokens: must be an array of tables ([[tokens]])`,
  );
  equal(refused(BASE + "[other]\n"), `Invalid configuration ${FILE} line 4: other: unknown key`);
  equal(refused(BASE + 'x = "a\n').startsWith(`Invalid configuration ${FILE} line 4: `), true);
  equal(
    refused('[server]\ntoken = "t"\n'),
    `Invalid configuration ${FILE}: server.data_dir is required (or VGER_SERVER_DATA_DIR)`,
  );
  equal(
    refused('[server]\ndata_dir = "/d"\n'),
    `Invalid configuration ${FILE}: server.token is required (or VGER_SERVER_TOKEN, or a [[tokens]] entry)`,
  );
  equal(refused(BASE + "max_object_bytes = 0\n").includes("line 4: server.max_object_bytes"), true);
  equal(
    refused(BASE + "body_timeout_seconds = 0\n").includes("line 4: server.body_timeout_seconds"),
    true,
  );
});

Deno.test("server config: VGER_SERVER_* variables override the file, with errors naming them", () => {
  const config = parseServerConfig(BASE, {
    file: FILE,
    env: {
      VGER_SERVER_APPEND_ONLY: "true",
      VGER_SERVER_QUOTA_BYTES: "1000",
      VGER_SERVER_TOKEN: "from-env",
      VGER_SERVER_LISTEN: "[::1]:9000",
      VGER_SERVER_LOG_FORMAT: "json",
    },
  });
  deepStrictEqual(
    [config.appendOnly, config.quotaBytes, config.token, config.listen, config.logFormat],
    [true, 1000, "from-env", "[::1]:9000", "json"],
  );
  deepStrictEqual(parseListen(config.listen), { hostname: "::1", port: 9000 });
  equal(
    refused(BASE, { VGER_SERVER_APPEND_ONLY: "yes" }),
    'Invalid environment variable VGER_SERVER_APPEND_ONLY: must be true or false (got "yes")',
  );
  equal(
    refused(BASE, { VGER_SERVER_LOCK_TTL_SECONDS: "5" }),
    "Invalid environment variable VGER_SERVER_LOCK_TTL_SECONDS: must be at least 1200, two of the clients' 10-minute lock refresh periods (got 5)",
  );
  // no file at all: the environment alone
  const envOnly = parseServerConfig("", {
    env: { VGER_SERVER_DATA_DIR: "/d", VGER_SERVER_TOKEN: "t" },
  });
  deepStrictEqual([envOnly.dataDir, envOnly.token, envOnly.source], ["/d", "t", "the environment"]);
  equal(Object.keys(SERVER_ENV_VARIABLES).length, 12);
});

Deno.test("server config: version retention in days and a count, from the file or the environment", () => {
  const config = parseServerConfig(BASE + "version_keep_days = 30\nversion_keep_min = 3\n", {
    env: {},
  });
  deepStrictEqual([config.versionKeepDays, config.versionKeepMin], [30, 3]);
  const env = parseServerConfig(BASE, { env: { VGER_SERVER_VERSION_KEEP_DAYS: "0.5" } });
  deepStrictEqual([env.versionKeepDays, env.versionKeepMin], [0.5, 10]);
  equal(
    refused(BASE + "version_keep_days = -1\n"),
    `Invalid configuration ${FILE} line 4: server.version_keep_days: must be a number of days, 0 (as delete_hold_days) to 36500 (got -1)`,
  );
  equal(
    refused(BASE + "version_keep_min = 1.5\n"),
    `Invalid configuration ${FILE} line 4: server.version_keep_min: must be a whole number of versions, 0 or more (got 1.5)`,
  );
});

Deno.test("server config: a relative data_dir is relative to the file; a missing file is one line", async () => {
  const config = parseServerConfig('[server]\ndata_dir = "data"\ntoken = "t"\n', {
    file: "/etc/vger/server.toml",
    env: {},
  });
  equal(config.dataDir, "/etc/vger/data");
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/s.toml`, BASE);
    equal((await loadServerConfig(`${dir}/s.toml`, {})).dataDir, "/srv/vger");
    let message = "";
    await loadServerConfig(`${dir}/absent.toml`, {}).catch((e) => (message = e.message));
    equal(message, `Cannot read configuration ${dir}/absent.toml: no such file`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  throws(() => parseServerConfig('[server]\ndata_dir = "/d"\ntoken = "a b"\n', {}), /spaces/);
});

Deno.test("server config: [[tokens]] entries with their repositories and roles; errors name tokens[i] and the line", async () => {
  const text = BASE +
    '[[tokens]]\ntoken = "laptop-token"\nrepos = ["laptop", "nas-*"]\nrole = "append-only"\n' +
    '[[tokens]]\ntoken_command = "cat /x"\nrepos = ["*"]\nrole = "read-only"\n';
  const config = parseServerConfig(text, { file: FILE, env: {} });
  deepStrictEqual(config.tokens, [
    { name: "tokens[0]", token: "laptop-token", repos: ["laptop", "nas-*"], role: "append-only" },
    { name: "tokens[1]", tokenCommand: "cat /x", repos: ["*"], role: "read-only" },
  ]);
  const ran: string[] = [];
  const resolved = await resolveServerTokens(config, (command, what) => {
    ran.push(`${command} | ${what}`);
    return Promise.resolve("auditor-token");
  });
  deepStrictEqual(ran, ['cat /x | token_command "cat /x" of tokens[1]']);
  equal(resolved.tokens?.[1].token, "auditor-token");
  // a command printing a token already in use: refused, without the token
  let message = "";
  await resolveServerTokens(config, () => Promise.resolve("tok-123")).catch((e) =>
    message = e.message
  );
  equal(
    message,
    `Invalid configuration ${FILE}: tokens[1].token_command: is the same token as server.token (tokens must differ)`,
  );

  // only [[tokens]]: no [server] token needed
  const only = parseServerConfig(
    '[server]\ndata_dir = "/d"\n[[tokens]]\ntoken = "a-token"\nrepos = ["r"]\nrole = "full"\n',
    { file: FILE, env: {} },
  );
  equal(only.token, undefined);

  const entry = (body: string) => `${BASE}[[tokens]]\n${body}`;
  equal(
    refused(entry('token = "tok-123"\nrepos = ["a"]\nrole = "full"\n')),
    `Invalid configuration ${FILE} line 5: tokens[0].token: is the same token as server.token (tokens must differ)`,
  );
  equal(
    refused(
      entry(
        'token = "x1"\nrepos = ["a"]\nrole = "full"\n[[tokens]]\ntoken = "x1"\nrepos = ["b"]\n' +
          'role = "read-only"\n',
      ),
    ),
    `Invalid configuration ${FILE} line 9: tokens[1].token: is the same token as tokens[0] (tokens must differ)`,
  );
  equal(
    refused(entry('token = "x1"\nrepos = []\nrole = "full"\n')),
    `Invalid configuration ${FILE} line 6: tokens[0].repos: must be a non-empty list of repository names and * globs (got [])`,
  );
  equal(
    refused(entry('token = "x1"\nrepos = ["../etc"]\nrole = "full"\n')),
    `Invalid configuration ${FILE} line 6: tokens[0].repos: "../etc" is not a repository name or glob: 1 to 64 of A-Z a-z 0-9 . _ - *, not starting with "."`,
  );
  equal(
    refused(entry('token = "x1"\nrepos = ["a"]\nrole = "admin"\n')),
    `Invalid configuration ${FILE} line 7: tokens[0].role: must be "full", "append-only" or "read-only" (got "admin")`,
  );
  equal(
    refused(entry('token = "x1"\nrepos = ["a"]\n')),
    `Invalid configuration ${FILE} line 4: tokens[0]: needs role (read-only, append-only, full)`,
  );
  equal(
    refused(entry('repos = ["a"]\nrole = "full"\n')),
    `Invalid configuration ${FILE} line 4: tokens[0]: needs exactly one of token and token_command`,
  );
  equal(
    refused(entry('token = "x1"\ntoken_command = "c"\nrepos = ["a"]\nrole = "full"\n')),
    `Invalid configuration ${FILE} line 4: tokens[0]: needs exactly one of token and token_command`,
  );
  equal(
    refused(entry('token = "x1"\nrepo = ["a"]\nrole = "full"\n')),
    `Invalid configuration ${FILE} line 6: tokens[0].repo: unknown key (did you mean "repos"?)`,
  );
  equal(
    refused(entry('token = "a b"\nrepos = ["a"]\nrole = "full"\n')),
    `Invalid configuration ${FILE} line 5: tokens[0].token: must not contain spaces or control characters`,
  );
  equal(
    refused(BASE + "delete_hold_days = -2\n"),
    `Invalid configuration ${FILE} line 4: server.delete_hold_days: must be a whole number of days, 0 to 3650 (got -2)`,
  );
  equal(parseServerConfig(BASE + "delete_hold_days = 30\n", { env: {} }).deleteHoldDays, 30);
  equal(
    parseServerConfig(BASE, { env: { VGER_SERVER_DELETE_HOLD_DAYS: "7" } }).deleteHoldDays,
    7,
  );
});
