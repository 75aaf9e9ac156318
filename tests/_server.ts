/**
 * vger-server as a real process on 127.0.0.1 for the whole-process tests: started under
 * `deno serve` or `deno run ... server.ts --config`, on a free port (port 0, read back from its
 * "listening on" line), with a fresh data directory; and a raw TCP client for requests that
 * `fetch` cannot send (wrong Content-Length, huge headers, stalled bodies).
 *
 * @module
 */

import { fileURLToPath } from "node:url";

/** How a test starts the server. */
export type ServerMode = "serve" | "run";

/** A running server. */
export interface TestServer {
  /** `http://127.0.0.1:PORT`. */
  url: string;
  /** Its port. */
  port: number;
  /** Its process id. */
  pid: number;
  /** The token its clients must send. */
  token: string;
  /** Its data directory. */
  dataDir: string;
  /** The configuration file. */
  configFile: string;
  /** What it logged on stdout so far (request logs). */
  stdout(): string;
  /** What it wrote on stderr so far. */
  stderr(): string;
  /** `fetch` with the token (unless `headers` sets Authorization). */
  fetch(path: string, init?: RequestInit): Promise<Response>;
  /** Stops it (SIGTERM, then SIGKILL after 5 s) and removes the data directory. */
  stop(): Promise<void>;
}

/** Options of {@linkcode startServer}. */
export interface StartOptions {
  /** Extra lines of the `[server]` table (`append_only = true`). */
  toml?: string;
  /** Extra environment. */
  env?: Record<string, string>;
  /** `deno serve --parallel` (serve mode only). */
  parallel?: boolean;
  /** The entry module, instead of server.ts (a test-only entry point). */
  entry?: string;
  /** A data directory to use (and not remove), instead of a fresh one. */
  dataDir?: string;
  /** Also `--allow-run` (for a `token_command`). */
  allowRun?: boolean;
  /** Run through launch.ts `--server` (run mode): only the permissions it derives. */
  launched?: boolean;
}

/** The token of every test server. */
export const TEST_TOKEN = "test-token-0123456789abcdef";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const PERMISSIONS = ["--allow-read", "--allow-write", "--allow-env", "--allow-sys"];

/** Starts a server and waits (at most 30 s) until it listens. */
export async function startServer(
  mode: ServerMode,
  options: StartOptions = {},
): Promise<TestServer> {
  const dir = await Deno.makeTempDir({ prefix: "vger-server-test-" });
  const dataDir = options.dataDir ?? `${dir}/data`;
  const configFile = `${dir}/vger-server.toml`;
  await Deno.writeTextFile(
    configFile,
    `[server]\nlisten = "127.0.0.1:0"\ndata_dir = "${dataDir}"\ntoken = "${TEST_TOKEN}"\n` +
      (options.toml ?? ""),
  );
  const entry = options.entry ?? `${ROOT}server.ts`;
  const permissions = options.allowRun ? [...PERMISSIONS, "--allow-run"] : PERMISSIONS;
  const args = mode === "serve"
    ? [
      "serve",
      ...permissions,
      "--host",
      "127.0.0.1",
      "--port",
      "0",
      ...(options.parallel ? ["--parallel"] : []),
      entry,
    ]
    : options.launched
    ? ["run", "-P=launcher", `${ROOT}launch.ts`, "--server", "--config", configFile]
    : ["run", "--allow-net=127.0.0.1", ...permissions, entry, "--config", configFile];
  const child = new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT,
    env: { ...options.env, VGER_SERVER_CONFIG: configFile, NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let out = "";
  let err = "";
  const decoder = () => new TextDecoderStream();
  const pumpOut = child.stdout.pipeThrough(decoder()).pipeTo(
    new WritableStream({ write: (t) => void (out += t) }),
  ).catch(() => {});
  const pumpErr = child.stderr.pipeThrough(decoder()).pipeTo(
    new WritableStream({ write: (t) => void (err += t) }),
  ).catch(() => {});
  const status = child.status;
  let exited = false;
  status.then(() => (exited = true));
  const deadline = Date.now() + 30_000;
  let port = 0;
  while (port === 0) {
    const m = /listening on 127\.0\.0\.1:(\d+)/.exec(err);
    if (m) port = Number(m[1]);
    else if (exited || Date.now() > deadline) {
      if (!exited) child.kill("SIGKILL");
      await status;
      await Promise.all([pumpOut, pumpErr]);
      await Deno.remove(dir, { recursive: true });
      throw new Error(`vger-server did not start (${mode}):\n${err}`);
    } else await new Promise((r) => setTimeout(r, 20));
  }
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    port,
    pid: child.pid,
    token: TEST_TOKEN,
    dataDir,
    configFile,
    stdout: () => out,
    stderr: () => err,
    fetch: (path, init = {}) => {
      const headers = new Headers(init.headers);
      if (!headers.has("authorization")) headers.set("authorization", `Bearer ${TEST_TOKEN}`);
      return fetch(url + path, { ...init, headers });
    },
    async stop() {
      if (!exited) {
        child.kill("SIGTERM");
        const timer = setTimeout(() => {
          if (!exited) child.kill("SIGKILL");
        }, 5000);
        await status;
        clearTimeout(timer);
      }
      await Promise.all([pumpOut, pumpErr]);
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** Options of {@linkcode rawRequest}. */
export interface RawOptions {
  /** Bytes sent after the head, before waiting (a body, or part of one). */
  body?: Uint8Array;
  /** Half-close the connection after sending (the client is done). */
  closeWrite?: boolean;
  /** How long to wait for the answer. */
  timeoutMs?: number;
}

/**
 * Sends `head` (request line and headers, CRLF-terminated, with the blank line) and `body` over
 * one TCP connection and resolves to what came back until the server closed the connection or
 * answered a first response (status line and headers), within `timeoutMs` (default 10 s).
 */
export async function rawRequest(
  port: number,
  head: string,
  options: RawOptions = {},
): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await writeAll(conn, new TextEncoder().encode(head));
    if (options.body) await writeAll(conn, options.body).catch(() => {});
    if (options.closeWrite) await conn.closeWrite().catch(() => {});
    let text = "";
    const deadline = Date.now() + (options.timeoutMs ?? 10_000);
    const buf = new Uint8Array(65536);
    while (Date.now() < deadline) {
      const left = deadline - Date.now();
      let timer: ReturnType<typeof setTimeout> | undefined;
      const n = await Promise.race([
        conn.read(buf).catch(() => null),
        new Promise<"timeout">((r) => (timer = setTimeout(() => r("timeout"), left))),
      ]);
      clearTimeout(timer);
      if (n === "timeout" || n === null) break;
      text += new TextDecoder().decode(buf.subarray(0, n));
      const end = text.indexOf("\r\n\r\n");
      if (end >= 0) {
        const length = /\r\ncontent-length: *(\d+)/i.exec(text.slice(0, end));
        if (!length || text.length >= end + 4 + Number(length[1])) break;
      }
    }
    return text;
  } finally {
    try {
      conn.close();
    } catch {
      // already closed
    }
  }
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let at = 0; at < bytes.length;) at += await conn.write(bytes.subarray(at));
}

/** The status code of a raw response, or 0 when there was none. */
export function statusOf(response: string): number {
  const m = /^HTTP\/1\.1 (\d{3})/.exec(response);
  return m ? Number(m[1]) : 0;
}

/** The peak resident memory of a process in bytes (Linux: VmHWM), or null where not told. */
export async function peakRss(pid: number): Promise<number | null> {
  try {
    const status = await Deno.readTextFile(`/proc/${pid}/status`);
    const m = /^VmHWM:\s+(\d+) kB/m.exec(status);
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/** Runs `fn` with a server started in `mode` with `options`, stopped afterwards whatever happens. */
export async function withServer(
  mode: ServerMode,
  options: StartOptions,
  fn: (server: TestServer) => Promise<void>,
): Promise<void> {
  const server = await startServer(mode, options);
  try {
    await fn(server);
  } finally {
    await server.stop();
  }
}

/** A line of the request log in JSON (`log_format = "json"`; lib/server_log.ts writes it). */
export interface LoggedRequest {
  /** When the request came (RFC 3339). */
  time: string;
  /** HTTP method. */
  method: string;
  /** Path and query. */
  path: string;
  /** Status answered. */
  status: number;
  /** The body's announced length (`Content-Length`), 0 without one. */
  bytes_in: number;
  /** How long it took to answer, in milliseconds. */
  duration_ms: number;
  /** The error line of a failed request, if any. */
  error?: string;
}

/** The request lines of a server's JSON log on stdout (`log_format = "json"`; events left out). */
export function requestLog(server: { stdout(): string }): LoggedRequest[] {
  return server.stdout().split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l))
    .filter((entry) => "method" in entry);
}

/** A server process a test can SIGKILL (see {@linkcode killableServer}). */
export interface KillableServer {
  /** SIGKILLs it and waits until it is gone. */
  kill(): Promise<void>;
  /** What it logged on stdout so far (request logs). */
  stdout(): string;
}

/**
 * vger-server under `deno run ... --config FILE` on the port and data directory that file names
 * (a test restarts it on the same ones), which the test can SIGKILL ({@linkcode startServer}'s
 * `stop` is SIGTERM); resolves once it listens (30 s at most).
 */
export async function killableServer(configFile: string): Promise<KillableServer> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net=127.0.0.1",
      ...PERMISSIONS,
      `${ROOT}server.ts`,
      "--config",
      configFile,
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  let out = "";
  let err = "";
  const pumps = [
    child.stdout.pipeThrough(new TextDecoderStream()).pipeTo(
      new WritableStream({ write: (t) => void (out += t) }),
    ),
    child.stderr.pipeThrough(new TextDecoderStream()).pipeTo(
      new WritableStream({ write: (t) => void (err += t) }),
    ),
  ];
  const kill = async () => {
    try {
      child.kill("SIGKILL");
    } catch { /* exited */ }
    await child.status;
    await Promise.all(pumps).catch(() => {});
  };
  const deadline = Date.now() + 30_000;
  while (!/listening on/.test(err)) {
    if (Date.now() > deadline) {
      await kill();
      throw new Error(`vger-server did not start: ${err}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return { kill, stdout: () => out };
}

/**
 * Writes `DIR/vger-server.toml` for {@linkcode killableServer}: a free port on 127.0.0.1 (fixed
 * from then on, so that a restarted server is found again), data in `DIR/data`, `token`, and
 * `toml`'s extra lines of `[server]`. Returns the file and the server's URL.
 */
export async function fixedPortConfig(
  dir: string,
  token: string,
  toml = "",
): Promise<{ configFile: string; url: string }> {
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (probe.addr as Deno.NetAddr).port;
  probe.close();
  const configFile = `${dir}/vger-server.toml`;
  await Deno.writeTextFile(
    configFile,
    `[server]\nlisten = "127.0.0.1:${port}"\ndata_dir = "${dir}/data"\ntoken = "${token}"\n` + toml,
  );
  return { configFile, url: `http://127.0.0.1:${port}` };
}
