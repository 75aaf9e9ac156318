/**
 * The launcher's arithmetic: the Deno permissions one `vger` invocation needs, derived from the
 * configuration and the command's own arguments, so that launch.ts can run cli.ts with exactly
 * them (issue 15, README "Least privilege"). Pure: the caller reads the environment and the
 * configuration; nothing here touches the system.
 *
 * What each grant is for:
 * - read: the configuration file; the local repository (and, for init, its parent, which it
 *   fsyncs); the sources (backup); `--dest` (extract, `key export`) or the key file (`key
 *   import`); the cache directory (files cache, known repositories); the staging directory of
 *   large packs (commands that write packs); `/etc/passwd` and `/etc/group` (owner names);
 *   `/proc/self/status` (extract: the umask); vger's own `lib/` and npm packages when it runs from
 *   files (the codec workers are loaded by URL, the WASM lz4 reads its .wasm file); in fast mode
 *   `/usr/bin/ldd` (lz4-napi tells glibc from musl by it).
 * - write: the local repository (commands that change it; only its `locks/` for extract and
 *   check, which take a shared lock), the cache, the staging directory,
 *   `--dest`.
 * - net: the S3 endpoint's host (or AWS's hosts for the bucket) or the REST server's host.
 * - env: exactly the variables vger reads ({@linkcode VGER_ENV}, and {@linkcode S3_ENV} for S3).
 * - run: the passcommand's and the REST token command's programs, nothing else.
 * - sys: the CPU count (codec workers), the host name (archive names, locks), uid and gid.
 * - ffi: none in strict mode; in fast mode libc, OpenSSL's libcrypto, liblz4, libargon2 and
 *   lz4-napi's module.
 *
 * @module
 */

import { bool, type CommandLine, str } from "./cli_command_line.ts";
import type { RepositoryConfig, VgerConfig } from "./config.ts";
import { parseListen, SERVER_ENV_VARIABLES, type ServerConfig } from "./server_config.ts";
import { splitCommandLine } from "./secrets.ts";

/** strict: no FFI (Web Crypto, WASM lz4, Deno's own fs calls); fast: FFI for native code. */
export type LaunchMode = "strict" | "fast";

/** The environment variables vger itself reads, on any backend. */
export const VGER_ENV: readonly string[] = [
  "VGER_PASSPHRASE",
  "VGER_NEW_PASSPHRASE",
  "VGER_CONFIG",
  "VGER_CACHE_DIR",
  "XDG_CACHE_HOME",
  "XDG_CONFIG_HOME",
  "HOME",
  "USER",
  "NO_COLOR",
  // node:os tmpdir(), for the staging directory
  "TMPDIR",
  "TMP",
  "TEMP",
  // the yaml package's debug switches, read on every parse of the configuration
  "LOG_STREAM",
  "LOG_TOKENS",
];

/**
 * What the S3 backend and the AWS SDK read: its credential chain (environment and shared files)
 * and the settings it looks up on every client (found in the SDK's code and by running it).
 * Reading them grants nothing else: the hosts it may reach are in `net`.
 */
export const S3_ENV: readonly string[] = [
  "AWS_ACCESS_KEY_ID",
  "AWS_ACCOUNT_ID",
  "AWS_ACCOUNT_ID_ENDPOINT_MODE",
  "AWS_AUTH_SCHEME_PREFERENCE",
  "AWS_CONFIG_FILE",
  "AWS_CONTAINER_AUTHORIZATION_TOKEN",
  "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
  "AWS_CONTAINER_CREDENTIALS_FULL_URI",
  "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
  "AWS_CREDENTIAL_EXPIRATION",
  "AWS_CREDENTIAL_SCOPE",
  "AWS_DEFAULTS_MODE",
  "AWS_DEFAULT_REGION",
  "AWS_DISABLE_CLOCK_SKEW_CORRECTION",
  "AWS_EC2_METADATA_DISABLED",
  "AWS_EC2_METADATA_SERVICE_ENDPOINT",
  "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE",
  "AWS_EC2_METADATA_V1_DISABLED",
  "AWS_ENDPOINT_URL",
  "AWS_ENDPOINT_URL_S3",
  "AWS_EXECUTION_ENV",
  "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
  "AWS_LAMBDA_BENCHMARK_MODE",
  "AWS_LAMBDA_FUNCTION_NAME",
  "AWS_LAMBDA_MAX_CONCURRENCY",
  "AWS_LAMBDA_NODEJS_NO_GLOBAL_AWSLAMBDA",
  "AWS_MAX_ATTEMPTS",
  "AWS_PROFILE",
  "AWS_REGION",
  "AWS_REQUEST_CHECKSUM_CALCULATION",
  "AWS_RESPONSE_CHECKSUM_VALIDATION",
  "AWS_RETRY_MODE",
  "AWS_ROLE_ARN",
  "AWS_ROLE_SESSION_NAME",
  "AWS_S3_DISABLE_EXPRESS_SESSION_AUTH",
  "AWS_S3_DISABLE_MULTIREGION_ACCESS_POINTS",
  "AWS_S3_USE_ARN_REGION",
  "AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED",
  "AWS_SDK_UA_APP_ID",
  "AWS_SECRET_ACCESS_KEY",
  "AWS_SESSION_TOKEN",
  "AWS_SHARED_CREDENTIALS_FILE",
  "AWS_SIGV4A_SIGNING_REGION_SET",
  "AWS_USE_DUALSTACK_ENDPOINT",
  "AWS_USE_FIPS_ENDPOINT",
  "AWS_WEB_IDENTITY_TOKEN_FILE",
  "HOMEDRIVE",
  "HOMEPATH",
  "USERPROFILE",
  "_X_AMZN_TRACE_ID",
];

/** What lz4-napi's loader reads (fast mode). */
const LZ4_NAPI_ENV = [
  "NAPI_RS_NATIVE_LIBRARY_PATH",
  "NAPI_RS_FORCE_WASI",
  "NAPI_RS_ENFORCE_VERSION_CHECK",
];

/** One invocation, as the launcher sees it before running it. */
export interface LaunchInput {
  /** The parsed command line (lib/cli_command_line.ts). */
  line: CommandLine;
  /** The configuration file read, or null. */
  config: VgerConfig | null;
  /** The repositories the invocation works on (`selectRepositories`). */
  repos: RepositoryConfig[];
  /** The environment. */
  env: (name: string) => string | undefined;
  /** The working directory (relative paths in arguments are taken from it). */
  cwd: string;
  /** The files cache and known-repositories directory (`filesCacheDir`), if any. */
  cacheDir: string | null;
  /** The staging directory's root (lib/staging.ts `stagingRoot`). */
  stagingRoot: string;
  /**
   * vger's code read as files at run time: `lib/` (the codec workers are loaded by URL) and the
   * npm packages (lz4-wasm-nodejs reads its .wasm file); none when it runs from a remote URL.
   */
  codeDirs: readonly string[];
  /** strict or fast. */
  mode: LaunchMode;
  /** fast mode: the native libraries to grant (libc, libcrypto, lz4-napi's module dir). */
  nativeLibraries?: readonly string[];
}

/** The permissions of one invocation, each list sorted and without duplicates. */
export interface PermissionSet {
  read: string[];
  write: string[];
  net: string[];
  env: string[];
  run: string[];
  sys: string[];
  ffi: string[];
}

/**
 * Why a scoped run cannot use `path`, when it is under /dev (a tmpfs at /dev/shm, say): Deno opens
 * anything there only to a run with every permission, so the command would stop at its first
 * access with Deno's own "run again with --allow-all". Null for any other path.
 */
export function deviceAccessProblem(path: string): string | null {
  if (!underDev(path)) return null;
  return `"${path}" is under /dev, which Deno opens only to a run with every permission: keep ` +
    "the configuration, repository and sources elsewhere, or run vger with `deno run -A cli.ts`";
}

/**
 * A path of `set` a scoped run cannot use (see {@linkcode deviceAccessProblem}): the longest, so
 * that a repository is named rather than the directory it is created in.
 */
export function scopedRunProblem(set: PermissionSet): string | null {
  const paths = [...set.read, ...set.write].filter(underDev);
  if (paths.length === 0) return null;
  return deviceAccessProblem(paths.reduce((a, b) => (b.length > a.length ? b : a)));
}

function underDev(path: string): boolean {
  return path === "/dev" || path.startsWith("/dev/");
}

/** Commands that write packs (and so may stage large ones). */
const PACK_WRITERS = new Set(["backup", "compact"]);
/** Commands that change nothing in the repository. */
const READ_ONLY = new Set(["list", "extract"]);

/** The permissions {@linkcode LaunchInput} needs. */
export function permissionsFor(input: LaunchInput): PermissionSet {
  const { line, config, repos, env, cwd } = input;
  const command = line.command?.name ?? "";
  const { flags, args } = line;
  const abs = (p: string) => absolute(p, cwd);
  const read = new Set<string>();
  const write = new Set<string>();
  const net = new Set<string>();
  const run = new Set<string>();
  const envs = new Set(VGER_ENV);
  const sys = new Set(["cpus", "hostname", "uid", "gid"]);
  const ffi = new Set<string>();

  if (config) read.add(abs(config.file));
  for (const dir of input.codeDirs) read.add(dir);
  if (input.cacheDir) {
    read.add(abs(input.cacheDir));
    write.add(abs(input.cacheDir));
  }
  read.add("/etc/passwd");
  read.add("/etc/group");
  // the umask (a new file's mode), which Deno.umask reads only with all of --allow-sys
  if (command === "extract") read.add("/proc/self/status");

  const repairing = command === "check" && bool(flags, "repair");
  const changes = !READ_ONLY.has(command) && !(command === "check" && !repairing);
  if (PACK_WRITERS.has(command) || repairing) {
    read.add(input.stagingRoot);
    write.add(input.stagingRoot);
  }
  for (const repo of repos) {
    for (const program of programsOf(repo, config)) run.add(program);
    if (repo.backend === "local") {
      read.add(abs(repo.path));
      if (changes) write.add(abs(repo.path));
      // extract and check take a shared lock: a file in locks/, and nothing else is written
      else if (command !== "list" && !bool(flags, "no-lock")) write.add(`${abs(repo.path)}/locks`);
      // init fsyncs the parent that gained the repository's directory
      if (command === "init") read.add(parentOf(abs(repo.path)));
    } else if (repo.backend === "s3") {
      for (const host of s3Hosts(repo, env)) net.add(host);
      for (const name of S3_ENV) envs.add(name);
      sys.add("osRelease"); // the SDK's user agent names the OS release
      const home = env("HOME");
      const credentials = env("AWS_SHARED_CREDENTIALS_FILE") ??
        (home ? `${home}/.aws/credentials` : undefined);
      const awsConfig = env("AWS_CONFIG_FILE") ?? (home ? `${home}/.aws/config` : undefined);
      for (const f of [credentials, awsConfig]) if (f) read.add(abs(f));
    } else if (repo.backend === "rest") {
      net.add(hostOf(repo.path));
    }
  }

  if (command === "backup") {
    const sources = args.length > 0
      ? args
      : repos.flatMap((r) => r.sourceDirectories).concat(config?.sourceDirectories ?? []);
    for (const s of sources) read.add(abs(s));
  }
  if (
    command === "extract" || command === "config" || (command === "key" && args[0] === "export")
  ) {
    const dest = str(flags, "dest") ?? (command === "config" ? "./vger.yaml" : undefined);
    if (dest !== undefined) {
      read.add(abs(dest));
      write.add(abs(dest));
    }
  }
  if (command === "key" && args[0] === "import" && args[1] !== undefined) read.add(abs(args[1]));

  if (input.mode === "fast") {
    for (const name of LZ4_NAPI_ENV) envs.add(name);
    read.add("/usr/bin/ldd");
    for (const lib of input.nativeLibraries ?? []) ffi.add(lib);
  }
  const sorted = (s: Set<string>) => [...s].sort();
  return {
    read: sorted(read),
    write: sorted(write),
    net: sorted(net),
    env: sorted(envs),
    run: sorted(run),
    sys: sorted(sys),
    ffi: sorted(ffi),
  };
}

/** What the launcher knows of a vger-server run. */
export interface ServerLaunchInput {
  /** The configuration file (`--config`), absolute. */
  configFile: string;
  /** The configuration as parsed (token commands not run). */
  config: ServerConfig;
}

/**
 * The permissions of vger-server: read its configuration, read and write its `data_dir` and
 * nothing else, listen on its address only, read its `VGER_SERVER_*` variables, run only its
 * token commands' programs.
 */
export function serverPermissionsFor(input: ServerLaunchInput): PermissionSet {
  const { config } = input;
  const { hostname, port } = parseListen(config.listen);
  const host = hostname.includes(":") ? `[${hostname}]` : hostname;
  const programs = (config.tokens ?? []).flatMap((t) =>
    t.tokenCommand === undefined ? [] : [splitCommandLine(t.tokenCommand)[0]]
  ).filter((p) => p !== undefined);
  const sorted = (values: Iterable<string>) => [...new Set(values)].sort();
  return {
    read: sorted([input.configFile, config.dataDir]),
    write: sorted([config.dataDir]),
    // port 0 asks the system for one: any port of that address then
    net: [port === 0 ? host : `${host}:${port}`],
    env: sorted(["VGER_SERVER_CONFIG", ...Object.values(SERVER_ENV_VARIABLES)]),
    run: sorted(programs),
    // statfs: the free disk space of /health
    sys: ["hostname", "statfs"],
    ffi: [],
  };
}

/** The `deno run` flags of a {@linkcode PermissionSet}: `--allow-KIND=a,b` per non-empty list. */
export function permissionFlags(set: PermissionSet): string[] {
  const out: string[] = [];
  for (const kind of ["read", "write", "net", "env", "run", "sys", "ffi"] as const) {
    const values = set[kind];
    if (values.length === 0) continue;
    for (const v of values) {
      // Deno splits flag values at commas: a path with one cannot be granted alone
      if (v.includes(",")) {
        throw new Error(`Cannot grant --allow-${kind} to "${v}": Deno's flags cannot hold a comma`);
      }
    }
    out.push(`--allow-${kind}=${values.join(",")}`);
  }
  return out;
}

/** The programs a repository's secrets run: passcommand and rest_token_command, first words. */
function programsOf(repo: RepositoryConfig, config: VgerConfig | null): string[] {
  const commands = [
    repo.encryption.passcommand ?? (repo.encryption.passphrase ? undefined : config?.encryption
      .passcommand),
    repo.rest?.tokenCommand,
  ];
  return commands.filter((c): c is string => c !== undefined).map((c) => splitCommandLine(c)[0])
    .filter((p) => p !== undefined);
}

/** The hosts (`host:port`) an S3 repository talks to. */
function s3Hosts(repo: RepositoryConfig, env: (name: string) => string | undefined): string[] {
  const s3 = repo.s3!;
  if (s3.endpoint) return [hostOf(s3.endpoint)];
  const region = s3.region ?? env("AWS_REGION") ?? env("AWS_DEFAULT_REGION") ?? "us-east-1";
  // virtual-hosted style, and the regional host for requests that name no bucket
  return [`${s3.bucket}.s3.${region}.amazonaws.com:443`, `s3.${region}.amazonaws.com:443`];
}

/** `host:port` of an http(s) URL, the port made explicit. */
function hostOf(url: string): string {
  const u = new URL(url);
  const port = u.port || (u.protocol === "https:" ? "443" : "80");
  return `${u.hostname}:${port}`;
}

/** The parent directory of an absolute path (`/` for `/`). */
function parentOf(path: string): string {
  return path.slice(0, path.lastIndexOf("/")) || "/";
}

/** `path` made absolute against `cwd`, without `.` and `..` segments. */
function absolute(path: string, cwd: string): string {
  const parts: string[] = [];
  for (const seg of (path.startsWith("/") ? path : `${cwd}/${path}`).split("/")) {
    if (seg === "" || seg === ".") continue;
    if (seg === "..") parts.pop();
    else parts.push(seg);
  }
  return "/" + parts.join("/");
}
