import { deepStrictEqual, equal, match, ok, throws } from "node:assert/strict";
import { parseCommandLine } from "./cli_command_line.ts";
import {
  deviceAccessProblem,
  type LaunchInput,
  permissionFlags,
  type PermissionSet,
  permissionsFor,
  S3_ENV,
  scopedRunProblem,
  serverPermissionsFor,
  VGER_ENV,
} from "./cli_launch.ts";
import { parseServerConfig, SERVER_ENV_VARIABLES } from "./server_config.ts";
import { parseConfig } from "./config.ts";
import { selectRepositories } from "./config_select.ts";

const FILE = "/etc/vger/config.yaml";
const ENV: Record<string, string> = { HOME: "/home/alice" };

/** The permissions of `vger ARGV` with the configuration `yaml` (or none), in /work. */
function perms(
  argv: string[],
  yaml?: string,
  more: Partial<LaunchInput> = {},
): PermissionSet {
  const line = parseCommandLine(argv);
  const config = yaml === undefined ? null : parseConfig(yaml, FILE);
  const repo = argv.includes("-R") ? argv[argv.indexOf("-R") + 1] : undefined;
  return permissionsFor({
    line,
    config,
    repos: selectRepositories(config, repo),
    env: (name) => ENV[name],
    cwd: "/work",
    cacheDir: "/home/alice/.cache/vger",
    stagingRoot: "/tmp/vger-staging-1000",
    codeDirs: ["/opt/vger/lib", "/opt/vger/node_modules"],
    mode: "strict",
    ...more,
  });
}

Deno.test("a local backup reads its sources, the repository, the cache and owner names, and writes only the repository, the cache and the staging directory", () => {
  const p = perms(["-R", "repo", "backup", "/home/alice/docs", "notes"]);
  deepStrictEqual(p.read, [
    "/etc/group",
    "/etc/passwd",
    "/home/alice/.cache/vger",
    "/home/alice/docs",
    "/opt/vger/lib",
    "/opt/vger/node_modules",
    "/tmp/vger-staging-1000",
    "/work/notes",
    "/work/repo",
  ]);
  deepStrictEqual(p.write, ["/home/alice/.cache/vger", "/tmp/vger-staging-1000", "/work/repo"]);
  deepStrictEqual([p.net, p.run, p.ffi], [[], [], []]);
  deepStrictEqual(p.env, [...VGER_ENV].sort());
  deepStrictEqual(p.sys, ["cpus", "gid", "hostname", "uid"]);
});

Deno.test("backup without arguments reads the configuration's sources; the configuration file itself is read", () => {
  const p = perms(
    ["backup"],
    "source_directories:\n  - /srv/www\nrepositories:\n  - path: /mnt/r\n",
  );
  ok(p.read.includes("/srv/www") && p.read.includes(FILE) && p.read.includes("/mnt/r"));
  ok(p.write.includes("/mnt/r"));
});

Deno.test("list writes nothing in the repository; extract and check write only its locks and --dest; --no-lock not even those", () => {
  deepStrictEqual(perms(["-R", "/r", "list"]).write, ["/home/alice/.cache/vger"]);
  const extract = perms(["-R", "/r", "extract", "--archive", "a", "--dest", "out"]);
  deepStrictEqual(extract.write, ["/home/alice/.cache/vger", "/r/locks", "/work/out"]);
  ok(extract.read.includes("/work/out") && !extract.read.includes("/tmp/vger-staging-1000"));
  deepStrictEqual(perms(["-R", "/r", "check", "--verify-data"]).write, [
    "/home/alice/.cache/vger",
    "/r/locks",
  ]);
  deepStrictEqual(perms(["-R", "/r", "extract", "-a", "a", "--dest", "/o", "--no-lock"]).write, [
    "/home/alice/.cache/vger",
    "/o",
  ]);
  ok(perms(["-R", "/r", "check", "--repair"]).write.includes("/r"));
});

Deno.test("init reads the repository's parent (it fsyncs it); key export writes its file, import reads it", () => {
  ok(perms(["-R", "/mnt/backups/r", "init"]).read.includes("/mnt/backups"));
  ok(perms(["-R", "/r", "key", "export", "--dest", "/safe/key"]).write.includes("/safe/key"));
  ok(perms(["-R", "/r", "key", "import", "k.json"]).read.includes("/work/k.json"));
});

Deno.test("S3 reaches only its endpoint (or the bucket's AWS hosts) and reads the AWS variables and shared files", () => {
  const yaml = "repositories:\n  - path: s3://bucket/prefix\n    backend: s3\n" +
    "    s3_endpoint: http://127.0.0.1:7480\n";
  const p = perms(["list"], yaml);
  deepStrictEqual(p.net, ["127.0.0.1:7480"]);
  ok(S3_ENV.every((name) => p.env.includes(name)));
  ok(p.read.includes("/home/alice/.aws/credentials") && p.read.includes("/home/alice/.aws/config"));
  const aws = perms(
    ["list"],
    "repositories:\n  - path: s3://b/p\n    backend: s3\n    s3_region: eu-west-1\n",
  );
  deepStrictEqual(aws.net, ["b.s3.eu-west-1.amazonaws.com:443", "s3.eu-west-1.amazonaws.com:443"]);
});

Deno.test("REST reaches only its server; the passcommand's and token command's programs are the only ones run", () => {
  const yaml = "encryption:\n  passcommand: pass show vger\nrepositories:\n" +
    "  - path: https://backup.example.org/repo\n    backend: rest\n" +
    "    rest_token_command: /usr/bin/secret-tool lookup vger token\n";
  const p = perms(["list"], yaml);
  deepStrictEqual(p.net, ["backup.example.org:443"]);
  deepStrictEqual(p.run, ["/usr/bin/secret-tool", "pass"]);
  deepStrictEqual(p.write, ["/home/alice/.cache/vger"]);
});

Deno.test("fast mode adds FFI for the native libraries, lz4-napi's variables and /usr/bin/ldd; strict has none", () => {
  const libs = ["libc.so.6", "libcrypto.so.3", "/opt/vger/node_modules"];
  const fast = perms(["-R", "/r", "list"], undefined, { mode: "fast", nativeLibraries: libs });
  deepStrictEqual(fast.ffi, [...libs].sort());
  ok(fast.read.includes("/usr/bin/ldd") && fast.env.includes("NAPI_RS_FORCE_WASI"));
  const strict = perms(["-R", "/r", "list"], undefined, { nativeLibraries: libs });
  deepStrictEqual(strict.ffi, []);
  ok(!strict.read.includes("/usr/bin/ldd"));
});

Deno.test("permission flags: one --allow-KIND per granted kind; a path with a comma cannot be granted", () => {
  const p = perms(["-R", "/r", "list"]);
  const flags = permissionFlags(p);
  equal(flags.filter((f) => f.startsWith("--allow-read=")).length, 1);
  ok(!flags.some((f) => /^--allow-(net|run|ffi)/.test(f)));
  ok(flags.every((f) => /^--allow-\w+=\S+$/.test(f)));
  throws(
    () => permissionFlags({ ...p, read: ["/a,b"] }),
    /Cannot grant --allow-read to "\/a,b"/,
  );
});

Deno.test("vger-server: its configuration and data_dir, its address (any port for port 0, IPv6 bracketed), its variables, its token commands", () => {
  const config = parseServerConfig(
    '[server]\nlisten = "[::1]:8484"\ndata_dir = "/srv/vger"\n\n[[tokens]]\n' +
      'token_command = "/usr/bin/pass show laptop"\nrepos = ["laptop"]\nrole = "append-only"\n',
    { file: "/etc/vger/server.toml" },
  );
  const p = serverPermissionsFor({ configFile: "/etc/vger/server.toml", config });
  deepStrictEqual(p.read, ["/etc/vger/server.toml", "/srv/vger"]);
  deepStrictEqual([p.write, p.net, p.run, p.ffi], [["/srv/vger"], ["[::1]:8484"], [
    "/usr/bin/pass",
  ], []]);
  ok(p.env.includes("VGER_SERVER_DATA_DIR") && p.env.includes("VGER_SERVER_CONFIG"));
  const any = parseServerConfig(
    '[server]\nlisten = "127.0.0.1:0"\ndata_dir = "/d"\ntoken = "t0123456789abcdef"\n',
  );
  deepStrictEqual(serverPermissionsFor({ configFile: "/c", config: any }).net, ["127.0.0.1"]);
});

Deno.test("every environment variable production code reads is one the launcher grants, and none reads the whole environment", async () => {
  const root = new URL("../", import.meta.url);
  const files = ["cli.ts", "server.ts", "mod.ts"];
  for (const dir of ["lib", "backends"]) {
    for await (const e of Deno.readDir(new URL(dir, root))) {
      if (e.name.endsWith(".ts") && !e.name.endsWith("_test.ts") && !e.name.startsWith("_")) {
        files.push(`${dir}/${e.name}`);
      }
    }
  }
  const granted = new Set([
    ...VGER_ENV,
    ...S3_ENV,
    "VGER_SERVER_CONFIG",
    ...Object.values(SERVER_ENV_VARIABLES),
  ]);
  const bad: string[] = [];
  let reads = 0;
  for (const file of files) {
    if (file === "lib/cli_launch.ts") continue; // the launcher's own arithmetic
    const text = await Deno.readTextFile(new URL(file, root));
    for (const m of text.matchAll(/(?:Deno\.env\.get|\benv)\(\s*"([A-Za-z_][A-Za-z0-9_]*)"/g)) {
      reads++;
      if (!granted.has(m[1])) bad.push(`${file} reads ${m[1]}`);
    }
    if (/Deno\.env\.toObject\(|process\.env\b/.test(text)) {
      bad.push(`${file} reads the whole environment`);
    }
  }
  ok(reads > 10, `only ${reads} reads found`);
  deepStrictEqual(bad, []);
});

Deno.test("paths under /dev are named as a scoped run's problem, the most specific first; others are not", () => {
  equal(deviceAccessProblem("/devices/x"), null);
  equal(deviceAccessProblem("/srv/dev/shm"), null);
  match(deviceAccessProblem("/dev")!, /^"\/dev" is under \/dev, /);
  const set = {
    read: ["/etc/passwd", "/dev/shm"],
    write: ["/dev/shm/repo"],
    net: [],
    env: [],
    run: [],
    sys: [],
    ffi: [],
  };
  match(
    scopedRunProblem(set)!,
    /^"\/dev\/shm\/repo" is under \/dev, which Deno opens only to a run with every permission/,
  );
  equal(scopedRunProblem({ ...set, read: ["/etc/passwd"], write: ["/srv/repo"] }), null);
});
