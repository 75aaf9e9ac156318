import { deepStrictEqual, equal, throws } from "node:assert/strict";
import { UsageError } from "./errors.ts";
import {
  loadServerConfig,
  parseListen,
  parseServerConfig,
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
  equal(refused(BASE + "[tokens]\n"), `Invalid configuration ${FILE} line 4: tokens: unknown key`);
  equal(refused(BASE + 'x = "a\n').startsWith(`Invalid configuration ${FILE} line 4: `), true);
  equal(
    refused('[server]\ntoken = "t"\n'),
    `Invalid configuration ${FILE}: server.data_dir is required (or VGER_SERVER_DATA_DIR)`,
  );
  equal(
    refused('[server]\ndata_dir = "/d"\n'),
    `Invalid configuration ${FILE}: server.token is required (or VGER_SERVER_TOKEN)`,
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
  equal(Object.keys(SERVER_ENV_VARIABLES).length, 11);
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
    `Invalid configuration ${FILE} line 4: server.version_keep_days: must be a number of days, 0 (keep in append-only mode, forever) to 36500 (got -1)`,
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
