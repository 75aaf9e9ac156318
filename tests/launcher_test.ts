/**
 * The least-privilege launcher (launch.ts, lib/cli_launch.ts) with real runs: under it a backup,
 * an extract and a check succeed with only the permissions it derived; and the CLI run with those
 * permissions cannot read outside the sources, write outside the repository or `--dest`, or reach
 * another host (exit 2, the message naming the permission, nothing written).
 *
 * @module
 */

import { deepStrictEqual, equal, match, ok } from "node:assert/strict";
import {
  archiveNames,
  exists,
  FAST_KDF_ARGS,
  LAUNCH_PATH,
  type RunOptions,
  runVger,
  SERVER_PATH,
  type TreeSnapshot,
  treeSnapshot,
  withTempDir,
} from "./_helpers.ts";
import { restRepo } from "./_rest.ts";
import { ignoreS3, makeBucket, requireS3Server } from "./_s3.ts";
import { withServer } from "./_server.ts";
import { permissionFlags, serverPermissionsFor } from "../lib/cli_launch.ts";
import type { ServerConfig } from "../lib/server_config.ts";

/** Runs `launch.ts --mode MODE ARGS` with the launcher's own permission set. */
function launch(mode: "strict" | "fast", args: string[], options: RunOptions = {}) {
  return runVger(["--mode", mode, ...args], {
    ...options,
    program: LAUNCH_PATH,
    denoFlags: ["-P=launcher"],
  });
}

/** The flags launch.ts derives for `ARGS`. */
async function flagsFor(mode: "strict" | "fast", args: string[], options: RunOptions = {}) {
  const r = await launch(mode, ["--print-permissions", ...args], options);
  equal(r.code, 0, r.stderr);
  return r.stdout.trim().split(" ");
}

/** Runs cli.ts with exactly `flags` (no prompt: a missing permission fails). */
function scoped(flags: string[], args: string[], options: RunOptions = {}) {
  return runVger(args, { ...options, denoFlags: ["--no-prompt", ...flags] });
}

/**
 * A snapshot with times cut to the millisecond: strict mode's documented loss (Deno's lstat), in
 * the archives it makes and the files it restores.
 */
function toMs(t: TreeSnapshot): TreeSnapshot {
  for (const e of Object.values(t)) e.mtimeNs -= e.mtimeNs % 1_000_000n;
  return t;
}

const vgerLines = (stderr: string) => stderr.split("\n").filter((l) => l.startsWith("vger"));

async function makeSource(dir: string): Promise<string> {
  const src = `${dir}/src`;
  await Deno.mkdir(`${src}/sub`, { recursive: true });
  await Deno.writeTextFile(`${src}/a.txt`, "alpha\n".repeat(1000));
  await Deno.writeTextFile(`${src}/sub/b.txt`, "beta\n");
  await Deno.symlink("a.txt", `${src}/link`);
  return src;
}

Deno.test("fast mode: init, backup, extract and check run under the launcher's derived permissions, and restore every byte", async () => {
  await withTempDir(async (dir) => {
    const src = await makeSource(dir);
    const repo = `${dir}/repo`;
    const env = { VGER_CACHE_DIR: `${dir}/cache` };
    for (
      const args of [
        ["-R", repo, "init", ...FAST_KDF_ARGS],
        ["-R", repo, "backup", "--archive", "one", src],
        ["-R", repo, "extract", "--archive", "one", "--dest", `${dir}/out`],
        ["-R", repo, "check", "--verify-data"],
      ]
    ) {
      const r = await launch("fast", args, { env });
      equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
    }
    deepStrictEqual(await treeSnapshot(`${dir}/out${src}`), await treeSnapshot(src));
    const flags = await flagsFor("fast", ["-R", repo, "list"], { env });
    ok(flags.some((f) => f.startsWith("--allow-ffi=")), flags.join(" "));
    ok(!flags.some((f) => /^--allow-(net|run)/.test(f)), flags.join(" "));
  });
});

Deno.test("strict mode: no FFI, run or net; a backup and an extract work, and fast and strict read each other's lz4", async () => {
  await withTempDir(async (dir) => {
    const src = `${dir}/src`;
    await Deno.mkdir(`${src}/sub`, { recursive: true });
    // compressible, so that lz4 (napi in fast mode, WASM in strict) does the work
    await Deno.writeTextFile(`${src}/a.txt`, "the quick brown fox\n".repeat(50_000));
    await Deno.writeTextFile(`${src}/sub/b.txt`, "beta\n");
    const env = { VGER_CACHE_DIR: `${dir}/cache` };
    const repo = `${dir}/repo`;
    const flags = await flagsFor("strict", ["-R", repo, "backup", src], { env });
    ok(!flags.some((f) => /^--allow-(ffi|run|net)/.test(f)), flags.join(" "));
    const step = async (mode: "strict" | "fast", args: string[]) => {
      const r = await launch(mode, args, { env });
      equal(r.code, 0, `${mode} ${args.join(" ")}: ${r.stderr}`);
      deepStrictEqual(vgerLines(r.stderr), [], `${mode} ${args.join(" ")}`);
    };
    await step("strict", ["-R", repo, "init", ...FAST_KDF_ARGS]);
    await step("strict", ["-R", repo, "backup", "--archive", "strict", src]);
    await step("fast", ["-R", repo, "extract", "--archive", "strict", "--dest", `${dir}/f-out`]);
    deepStrictEqual(toMs(await treeSnapshot(`${dir}/f-out${src}`)), toMs(await treeSnapshot(src)));
    // new chunks, compressed by lz4-napi, read back by the WASM lz4
    await Deno.writeTextFile(`${src}/c.txt`, "jumps over the lazy dog\n".repeat(40_000));
    await step("fast", ["-R", repo, "backup", "--archive", "fast", src]);
    await step("strict", ["-R", repo, "extract", "--archive", "fast", "--dest", `${dir}/s-out`]);
    await step("strict", ["-R", repo, "check", "--verify-data"]);
    deepStrictEqual(toMs(await treeSnapshot(`${dir}/s-out${src}`)), toMs(await treeSnapshot(src)));
  });
});

Deno.test("the derived permissions confine the CLI: a source, a destination or a repository outside them fails with exit 2 naming the flag, and nothing is written", async () => {
  await withTempDir(async (dir) => {
    const src = await makeSource(dir);
    const outside = `${dir}/outside`;
    await Deno.mkdir(outside);
    await Deno.writeTextFile(`${outside}/secret`, "not for this backup\n");
    const repo = `${dir}/repo`;
    const env = { VGER_CACHE_DIR: `${dir}/cache` };
    equal((await launch("fast", ["-R", repo, "init", ...FAST_KDF_ARGS], { env })).code, 0);
    const backup = await flagsFor("fast", ["-R", repo, "backup", src], { env });

    // a second source the launcher did not grant: refused before anything is written
    const objects = async () => {
      const out: string[] = [];
      const walk = async (d: string) => {
        for await (const e of Deno.readDir(d)) {
          if (e.isDirectory) await walk(`${d}/${e.name}`);
          else out.push(`${d}/${e.name}`);
        }
      };
      await walk(repo);
      return out.sort();
    };
    const before = await objects();
    const r = await scoped(backup, ["-R", repo, "backup", "--archive", "two", src, outside], {
      env,
    });
    deepStrictEqual(await objects(), before);
    equal(r.code, 2, r.stderr);
    deepStrictEqual(vgerLines(r.stderr), [
      `vger: Missing Deno permission: Requires read access to "${outside}"; run with --allow-read (or -A)`,
    ]);
    // a part of a source this run may not read: exit 2, not a skipped directory
    const denied = await scoped([...backup, `--deny-read=${src}/sub`], [
      "-R",
      repo,
      "backup",
      "--archive",
      "three",
      src,
    ], { env });
    equal(denied.code, 2, denied.stderr);
    match(vgerLines(denied.stderr).at(-1)!, new RegExp(`Requires read access to "${src}/sub`));
    // the granted run works, and the failed ones committed nothing
    equal((await scoped(backup, ["-R", repo, "backup", "--archive", "one", src], { env })).code, 0);
    deepStrictEqual(
      await archiveNames((args) => launch("fast", ["-R", repo, ...args], { env })),
      ["one"],
    );

    // an extract to another destination than the one granted
    const extract = await flagsFor("fast", [
      "-R",
      repo,
      "extract",
      "--archive",
      "one",
      "--dest",
      `${dir}/out`,
    ], { env });
    const e = await scoped(extract, [
      "-R",
      repo,
      "extract",
      "--archive",
      "one",
      "--dest",
      `${dir}/elsewhere`,
    ], { env });
    equal(e.code, 2, e.stderr);
    match(
      vgerLines(e.stderr)[0],
      /Requires (read|write) access to ".*elsewhere.*"; run with --allow-(read|write)/,
    );
    ok(!(await exists(`${dir}/elsewhere`)));

    // a repository the grant does not cover
    const other = await scoped(backup, ["-R", `${dir}/other-repo`, "init", ...FAST_KDF_ARGS], {
      env,
    });
    equal(other.code, 2, other.stderr);
    match(vgerLines(other.stderr)[0], /other-repo.*--allow-(read|write)/);
    ok(!(await exists(`${dir}/other-repo`)));
  });
});

Deno.test("a REST repository's permissions reach its server and no other host", async () => {
  await withServer("run", {}, async (server) => {
    await withServer("run", {}, async (otherServer) => {
      await withTempDir(async (dir) => {
        const src = await makeSource(dir);
        const repo = await restRepo(dir, server, "r1");
        const other = await restRepo(dir, otherServer, "r2", { label: "other" });
        const env = { ...repo.env, VGER_CACHE_DIR: `${dir}/cache` };
        const run = (args: string[]) => launch("fast", ["--config", repo.config, ...args], { env });
        const init = await run(["init", ...FAST_KDF_ARGS]);
        equal(init.code, 0, init.stderr);
        equal((await run(["backup", "--archive", "one", src])).code, 0);
        const flags = await flagsFor("fast", ["--config", repo.config, "list"], { env });
        deepStrictEqual(flags.filter((f) => f.startsWith("--allow-net=")), [
          `--allow-net=127.0.0.1:${server.port}`,
        ]);
        deepStrictEqual(flags.filter((f) => f.startsWith("--allow-run=")), ["--allow-run=cat"]);
        // the same permissions against the other server
        const r = await scoped(flags, ["-R", other.url, "list"], { env });
        equal(r.code, 2, r.stderr);
        match(
          vgerLines(r.stderr)[0],
          new RegExp(`Requires net access to "127\\.0\\.0\\.1:${otherServer.port}".*--allow-net`),
        );
      });
    });
  });
});

Deno.test("the cli permission set of deno.json (no FFI, run or net, nothing global) backs up and restores a tree under /tmp, symlinks aside with one warning, and nothing outside it", async () => {
  await withTempDir(async (dir) => {
    ok(dir.startsWith("/tmp/"), dir);
    const src = await makeSource(dir);
    const repo = `${dir}/repo`;
    const options: RunOptions = { env: { VGER_CACHE_DIR: `${dir}/cache` }, denoFlags: ["-P=cli"] };
    for (
      const args of [
        ["-R", repo, "init", ...FAST_KDF_ARGS],
        ["-R", repo, "backup", "--archive", "one", src],
      ]
    ) {
      const r = await runVger(args, options);
      equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
    }
    // Deno makes symlinks only with unscoped read and write: the documented loss, one warning
    const e = await runVger(
      ["-R", repo, "extract", "--archive", "one", "--dest", `${dir}/out`],
      options,
    );
    equal(e.code, 3, e.stderr);
    deepStrictEqual(vgerLines(e.stderr), [
      `vger: warning: Skipped 1 ("${src.slice(1)}/link") symlinks: Deno makes symlinks only with ` +
      "unscoped --allow-read and --allow-write (or run with --allow-ffi)",
    ]);
    const want = toMs(await treeSnapshot(src));
    delete want["link"];
    deepStrictEqual(toMs(await treeSnapshot(`${dir}/out${src}`)), want);
    const r = await runVger(["-R", repo, "backup", "--archive", "two", "/etc/hostname"], options);
    equal(r.code, 2, r.stderr);
    match(vgerLines(r.stderr)[0], /Requires read access to "\/etc\/hostname".*--allow-read/);
  });
});

Deno.test({
  name:
    "an S3 repository under the launcher: credentials from AWS_* variables, the endpoint the only host, in strict and fast mode",
  ignore: ignoreS3,
  fn: async () => {
    const server = requireS3Server();
    const { bucket, drop } = await makeBucket();
    try {
      await withTempDir(async (dir) => {
        const src = await makeSource(dir);
        await Deno.remove(`${src}/link`); // strict mode cannot make symlinks (see README)
        const config = `${dir}/vger.yaml`;
        await Deno.writeTextFile(
          config,
          `repositories:\n  - path: s3://${bucket}/repo\n    backend: s3\n` +
            `    s3_endpoint: ${server.endpoint}\n    s3_region: ${server.region}\n`,
        );
        const env = {
          VGER_CACHE_DIR: `${dir}/cache`,
          AWS_ACCESS_KEY_ID: server.accessKeyId,
          AWS_SECRET_ACCESS_KEY: server.secretAccessKey,
          HOME: dir,
        };
        const flags = await flagsFor("strict", ["--config", config, "list"], { env });
        const host = new URL(server.endpoint).host;
        deepStrictEqual(flags.filter((f) => f.startsWith("--allow-net=")), [
          `--allow-net=${host}`,
        ]);
        for (
          const [mode, args] of [
            ["strict", ["init", ...FAST_KDF_ARGS]],
            ["strict", ["backup", "--archive", "one", src]],
            ["fast", ["extract", "--archive", "one", "--dest", `${dir}/out`]],
            ["strict", ["check", "--verify-data"]],
          ] as const
        ) {
          const r = await launch(mode, ["--config", config, ...args], { env });
          equal(r.code, 0, `${mode} ${args.join(" ")}: ${r.stderr}`);
        }
        deepStrictEqual(
          toMs(await treeSnapshot(`${dir}/out${src}`)),
          toMs(await treeSnapshot(src)),
        );
      });
    } finally {
      await drop();
    }
  },
});

Deno.test("vger-server under the launcher reads and writes only its data_dir, listens only on its address, and serves a whole backup cycle", async () => {
  await withServer("run", { launched: true }, async (server) => {
    const flags = await flagsFor("strict", ["--server", "--config", server.configFile]);
    deepStrictEqual(flags.filter((f) => /^--allow-(read|write|net|run|ffi)=/.test(f)), [
      `--allow-read=${server.dataDir},${server.configFile}`,
      `--allow-write=${server.dataDir}`,
      "--allow-net=127.0.0.1",
    ]);
    await withTempDir(async (dir) => {
      const src = await makeSource(dir);
      const repo = await restRepo(dir, server, "r1");
      const env = { ...repo.env, VGER_CACHE_DIR: `${dir}/cache` };
      for (
        const args of [
          ["init", ...FAST_KDF_ARGS],
          ["backup", "--archive", "one", src],
          ["check", "--verify-data"],
          ["extract", "--archive", "one", "--dest", `${dir}/out`],
          ["delete", "--archive", "one"],
          ["compact"],
        ]
      ) {
        const r = await launch("fast", ["--config", repo.config, ...args], { env });
        equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
      }
      deepStrictEqual(await treeSnapshot(`${dir}/out${src}`), await treeSnapshot(src));
      ok(!/NotCapable|Requires \w+ access/.test(server.stderr()), server.stderr());
      const health = await (await fetch(`${server.url}/health`)).json();
      equal(typeof health.disk_free_bytes, "number", JSON.stringify(health));
    });
  });
});

Deno.test("deno.json's server set is what the launcher derives for /etc/vger-server.toml, /var/lib/vger and 127.0.0.1:8484; a server granted less stops with exit 2 naming the flag", async () => {
  const denoJson = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));
  const derived = serverPermissionsFor({
    configFile: "/etc/vger-server.toml",
    config: { dataDir: "/var/lib/vger", listen: "127.0.0.1:8484" } as ServerConfig,
  });
  deepStrictEqual(denoJson.permissions.server, {
    read: derived.read,
    write: derived.write,
    net: derived.net,
    env: derived.env,
    sys: derived.sys,
  });
  await withTempDir(async (dir) => {
    const configFile = `${dir}/vger-server.toml`;
    const dataDir = `${dir}/data`;
    await Deno.mkdir(dataDir);
    await Deno.writeTextFile(
      configFile,
      `[server]\nlisten = "127.0.0.1:0"\ndata_dir = "${dataDir}"\ntoken = "a-long-secret-token-x"\n`,
    );
    const config = { dataDir, listen: "127.0.0.1:0" } as ServerConfig;
    const granted = serverPermissionsFor({ configFile, config });
    const cases: [string, string[], RegExp][] = [
      ["-P=server", ["-P=server"], /Requires read access to ".*vger-server.toml".*--allow-read/],
      [
        "without its data_dir",
        permissionFlags({ ...granted, read: [configFile], write: [] }),
        /^vger-server: Missing Deno permission: Requires read access to ".*data"; run with --allow-read/m,
      ],
      [
        "without its address",
        permissionFlags({ ...granted, net: ["127.0.0.2"] }),
        /^vger-server: Missing Deno permission: Requires net access to "127.0.0.1:0"; run with --allow-net/m,
      ],
    ];
    for (const [what, flags, message] of cases) {
      const r = await runVger(["--config", configFile], {
        program: SERVER_PATH,
        denoFlags: ["--no-prompt", ...flags],
      });
      equal(r.code, 2, `${what}: ${r.stderr}`);
      match(r.stderr, message, what);
    }
    deepStrictEqual([...Deno.readDirSync(dataDir)], []);
  });
});

Deno.test("a REST server that redirects elsewhere does not take the client to another host", async () => {
  let otherHits = 0;
  const other = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, () => {
    otherHits++;
    return new Response("{}");
  });
  const redirecting = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (req) =>
      Response.redirect(
        `http://127.0.0.1:${other.addr.port}${new URL(req.url).pathname}`,
        307,
      ),
  );
  try {
    await withTempDir(async (dir) => {
      const url = `http://127.0.0.1:${redirecting.addr.port}/r1`;
      const env = { VGER_CACHE_DIR: `${dir}/cache` };
      const flags = await flagsFor("strict", ["-R", url, "list"], { env });
      deepStrictEqual(flags.filter((f) => f.startsWith("--allow-net=")), [
        `--allow-net=127.0.0.1:${redirecting.addr.port}`,
      ]);
      const r = await scoped(flags, ["-R", url, "list"], { env });
      equal(r.code, 1, r.stderr);
      match(vgerLines(r.stderr)[0], /HTTP 307/);
      equal(otherHits, 0);
    });
  } finally {
    await other.shutdown();
    await redirecting.shutdown();
  }
});

Deno.test("a repository or configuration under /dev (Deno opens it only with -A): the launcher says so in one line, exit 2, and writes nothing", async () => {
  await withTempDir(async (dir) => {
    const env = { VGER_CACHE_DIR: `${dir}/cache` };
    const repo = `/dev/shm/vger-launcher-test-${crypto.randomUUID()}`;
    const init = await launch("fast", ["-R", repo, "init", ...FAST_KDF_ARGS], { env });
    equal(init.code, 2, init.stderr);
    deepStrictEqual(vgerLines(init.stderr), [
      `vger launcher: "${repo}" is under /dev, which Deno opens only to a run with every ` +
      "permission: keep the configuration, repository and sources elsewhere, or run vger with " +
      "`deno run -A cli.ts`",
    ]);
    let made = true;
    try {
      await Deno.lstat(repo);
    } catch {
      made = false;
    }
    equal(made, false, "nothing created under /dev");
    // the launcher's own read of a configuration there
    const config = `/dev/shm/vger-launcher-test-${crypto.randomUUID()}.yaml`;
    const list = await launch("fast", ["--config", config, "list"], { env });
    equal(list.code, 2, list.stderr);
    match(vgerLines(list.stderr).join("\n"), /^vger launcher: ".*\.yaml" is under \/dev, /);
  });
});
