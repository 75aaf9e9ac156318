/**
 * The REST backend against a real vger-server on 127.0.0.1 (tests/_server.ts starts it):
 * uploads and downloads of 8 MiB objects in MiB/s and 1 KB uploads per second, at 1 to 16
 * connections; then a backup and a restore of a random tree through the CLI, over REST beside the
 * local backend. `REST_BENCH_MB` sets the tree's size (default 256).
 *
 * `--load` measures the server under load instead: N clients back up at once to M repositories
 * (client i to repository i mod M; `REST_BENCH_CLIENTS`, default 8, `REST_BENCH_REPOS`, default
 * 4), each a tree of its own of `REST_BENCH_LOAD_MB` MiB (default 16) of random data, and it reports
 * requests per second (from the server's request log) and MiB/s overall.
 *
 * ```
 * deno run -A bench/rest_bench.ts
 * deno run -A bench/rest_bench.ts --load
 * ```
 *
 * @module
 */

import { RestBackend } from "../backends/rest.ts";
import { FAST_KDF_ARGS, pseudoRandomBytes, runVgerOk } from "../tests/_helpers.ts";
import { requestLog, startServer, type TestServer } from "../tests/_server.ts";

const TREE_MB = Number(Deno.env.get("REST_BENCH_MB") ?? 256);
const OBJECTS = 48;

async function objects(url: string, token: string): Promise<void> {
  const body = pseudoRandomBytes(8 << 20, 1);
  for (const connections of [1, 2, 4, 8, 16]) {
    const backend = new RestBackend({
      url: `${url}/objects${connections}`,
      token: () => Promise.resolve(token),
      connections,
    });
    await backend.create("config", new Uint8Array(8));
    const timed = async (fn: (i: number) => Promise<unknown>): Promise<number> => {
      const start = performance.now();
      let next = 0;
      await Promise.all(Array.from({ length: connections }, async () => {
        while (next < OBJECTS) await fn(next++);
      }));
      return (performance.now() - start) / 1000;
    };
    const put = await timed((i) => backend.put(`c/big${i}`, body));
    const get = await timed((i) => backend.get(`c/big${i}`));
    const small = await timed((i) => backend.put(`c/small${i}`, new Uint8Array(1000)));
    console.log(
      `connections ${String(connections).padStart(2)}: put ${
        (OBJECTS * 8 / put).toFixed(0)
      } MiB/s, ` +
        `get ${(OBJECTS * 8 / get).toFixed(0)} MiB/s, 1 KB puts ${(OBJECTS / small).toFixed(0)}/s`,
    );
    await backend.close();
  }
}

async function cli(dir: string, url: string, token: string): Promise<void> {
  const src = `${dir}/src`;
  await Deno.mkdir(src);
  for (let i = 0; i < TREE_MB / 32; i++) {
    await Deno.writeFile(`${src}/f${i}`, pseudoRandomBytes(32 << 20, i + 1));
  }
  await Deno.writeTextFile(
    `${dir}/rest.yaml`,
    `repositories:\n  - path: ${url}/cli\n    backend: rest\n    rest_token: ${token}\n`,
  );
  await Deno.writeTextFile(`${dir}/local.yaml`, `repositories:\n  - path: ${dir}/local\n`);
  for (const kind of ["local", "rest"]) {
    const config = ["--config", `${dir}/${kind}.yaml`];
    await runVgerOk([...config, "init", ...FAST_KDF_ARGS]);
    let start = performance.now();
    await runVgerOk([...config, "backup", "--archive", "a", src]);
    const backup = (performance.now() - start) / 1000;
    start = performance.now();
    await runVgerOk([...config, "extract", "--archive", "a", "--dest", `${dir}/out-${kind}`]);
    const restore = (performance.now() - start) / 1000;
    console.log(
      `${kind.padEnd(5)}: backup of ${TREE_MB} MiB ${backup.toFixed(1)} s ` +
        `(${(TREE_MB / backup).toFixed(0)} MiB/s), restore ${restore.toFixed(1)} s ` +
        `(${(TREE_MB / restore).toFixed(0)} MiB/s)`,
    );
  }
}

/** N clients backing up at once to M repositories: requests per second and MiB/s overall. */
async function load(dir: string, server: TestServer): Promise<void> {
  const clients = Number(Deno.env.get("REST_BENCH_CLIENTS") ?? 8);
  const repos = Number(Deno.env.get("REST_BENCH_REPOS") ?? 4);
  const mib = Number(Deno.env.get("REST_BENCH_LOAD_MB") ?? 16);
  const configs: string[] = [];
  for (let r = 0; r < repos; r++) {
    const config = `${dir}/load${r}.yaml`;
    await Deno.writeTextFile(
      config,
      `repositories:\n  - path: ${server.url}/load${r}\n    backend: rest\n` +
        `    rest_token: ${server.token}\n`,
    );
    await runVgerOk(["--config", config, "init", ...FAST_KDF_ARGS]);
    configs.push(config);
  }
  const sources: string[] = [];
  for (let i = 0; i < clients; i++) {
    const src = `${dir}/load-src${i}`;
    await Deno.mkdir(src);
    for (let left = mib, f = 0; left > 0; left -= 8, f++) {
      await Deno.writeFile(
        `${src}/f${f}`,
        pseudoRandomBytes(Math.min(8, left) << 20, 1000 * (i + 1) + f),
      );
    }
    await Deno.mkdir(`${dir}/load-cache${i}`);
    sources.push(src);
  }
  const logged = requestLog(server).length;
  const start = performance.now();
  await Promise.all(
    sources.map((src, i) =>
      runVgerOk(["--config", configs[i % repos], "backup", "--archive", `c${i}`, src], {
        env: { VGER_CACHE_DIR: `${dir}/load-cache${i}` },
      })
    ),
  );
  const seconds = (performance.now() - start) / 1000;
  const requests = requestLog(server).slice(logged);
  const byMethod = new Map<string, number>();
  for (const q of requests) byMethod.set(q.method, (byMethod.get(q.method) ?? 0) + 1);
  const statuses = new Map<number, number>();
  for (const q of requests) statuses.set(q.status, (statuses.get(q.status) ?? 0) + 1);
  const uploaded = requests.reduce((n, q) => n + q.bytes_in, 0) / (1 << 20);
  console.log(
    `load: ${clients} clients x ${repos} repositories, ${clients * mib} MiB backed up at once in ` +
      `${seconds.toFixed(1)} s: ${(clients * mib / seconds).toFixed(0)} MiB/s overall, ` +
      `${(requests.length / seconds).toFixed(0)} requests/s (${requests.length} requests: ` +
      `${[...byMethod].map(([m, n]) => `${m} ${n}`).join(", ")}; status ` +
      `${[...statuses].sort().map(([s, n]) => `${s} ${n}`).join(", ")}; ` +
      `${uploaded.toFixed(0)} MiB uploaded)`,
  );
}

const dir = await Deno.makeTempDir({ prefix: "vger-rest-bench-" });
const loadMode = Deno.args.includes("--load");
const server = await startServer("run", loadMode ? { toml: 'log_format = "json"\n' } : {});
try {
  if (loadMode) await load(dir, server);
  else {
    await objects(server.url, server.token);
    await cli(dir, server.url, server.token);
  }
} finally {
  await server.stop();
  await Deno.remove(dir, { recursive: true });
}
