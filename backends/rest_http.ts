/**
 * The REST backend's HTTP client: one request sent and its answer read, with the token, every
 * body's `Content-Length`, caps on what is read, an idle timeout, and network failures in words.
 *
 * Requests go through `node:http` / `node:https`, not `fetch`: vger-server requires a
 * `Content-Length` on every `PUT` (it reserves quota before reading), and Deno's `fetch` sends a
 * streamed body chunked whatever the headers say (measured with Deno 2.9.6), while `node:http`
 * streams a staged pack piece by piece under its declared length, without a second copy in
 * memory. Bodies of a MiB or more are sent after the server's `100 Continue`, so that a refusal
 * (token, quota) can come before the body. Split from backends/rest.ts, which speaks the API.
 *
 * @module
 */

import * as http from "node:http";
import * as https from "node:https";
import { BackendError, IntegrityError, TransientError, UsageError } from "../lib/errors.ts";
import { bodyPieces, bodySize, type PutBody } from "./backend.ts";
import { doing, MAX_ERROR_BODY_BYTES, networkError, type RestOperation } from "./rest_errors.ts";

/** Bodies of at least this many bytes wait for the server's `100 Continue`. */
const EXPECT_CONTINUE_BYTES = 1 << 20;

/** How long a body waits for `100 Continue` before it is sent anyway (as curl does). */
const CONTINUE_WAIT_MS = 1000;

/** An HTTP answer, its body read up to its cap. */
export interface Answer {
  /** The status code. */
  status: number;
  /** The headers, names in lower case. */
  headers: http.IncomingHttpHeaders;
  /** The body: a success's whole, an error's first {@linkcode MAX_ERROR_BODY_BYTES}. */
  body: Uint8Array;
}

/** One request. */
export interface RequestSpec {
  /** The method. */
  method: "GET" | "HEAD" | "PUT" | "POST" | "DELETE";
  /** Path and query, encoded, from `/`. */
  path: string;
  /** What the request does, for messages. */
  op: RestOperation;
  /** Headers besides the token, Content-Length and Expect. */
  headers?: Record<string, string>;
  /** The body of a PUT. */
  body?: PutBody;
  /** Most bytes accepted of a success answer's body. */
  limit: number;
  /** The error of a success answer with a larger body (its declared size when known). */
  tooLarge: (size?: number) => Error;
}

/** Options of {@linkcode RestHttp}. */
export interface RestHttpOptions {
  /** The server's URL (its origin is used; paths come with each request). */
  url: URL;
  /** The repository's URL, for messages. */
  location: string;
  /** Most connections kept open and used at once. */
  connections: number;
  /** Milliseconds a connection may take to open, or a request may stay silent. */
  timeoutMs: number;
  /** The bearer token, asked for on the first request. */
  token?: () => Promise<string | undefined>;
  /** Told the headers of every answer (the mode the server declares). */
  onAnswer?: (headers: http.IncomingHttpHeaders) => void;
}

/** Sends requests to one server over kept-alive connections. */
export class RestHttp {
  /** The repository's URL, for messages. */
  readonly location: string;
  readonly #url: URL;
  readonly #client: typeof http | typeof https;
  readonly #agent: http.Agent;
  readonly #timeoutMs: number;
  readonly #tokenSource: (() => Promise<string | undefined>) | undefined;
  readonly #onAnswer: (headers: http.IncomingHttpHeaders) => void;
  #token: Promise<string | undefined> | undefined;
  /** Whether the server has answered (a refused connection is transient then). */
  #reached = false;

  /** A client for `options.url`; nothing is contacted until the first request. */
  constructor(options: RestHttpOptions) {
    this.location = options.location;
    this.#url = options.url;
    const secure = options.url.protocol === "https:";
    this.#client = secure ? https : http;
    const agentOptions = {
      keepAlive: true,
      maxSockets: options.connections,
      maxFreeSockets: options.connections,
    };
    this.#agent = secure ? new https.Agent(agentOptions) : new http.Agent(agentOptions);
    this.#timeoutMs = options.timeoutMs;
    this.#tokenSource = options.token;
    this.#onAnswer = options.onAnswer ?? (() => {});
  }

  /** Closes the connections kept open. */
  close(): void {
    this.#agent.destroy();
  }

  #tokenValue(): Promise<string | undefined> {
    this.#token ??= (async () => {
      const token = await this.#tokenSource?.();
      if (token === undefined) return undefined;
      if (!/^[\x21-\x7e]+$/.test(token)) {
        throw new UsageError(
          `The token of repository ${this.location} is empty or has characters an HTTP header ` +
            "cannot carry (spaces, control or non-ASCII characters)",
        );
      }
      return token;
    })();
    return this.#token;
  }

  /**
   * Sends one request and reads its answer: a success's body up to `spec.limit` (a larger one
   * is refused by its Content-Length, or as soon as the bytes go past it), an error's first
   * {@linkcode MAX_ERROR_BODY_BYTES}. Network failures become vger errors naming the URL.
   */
  async send(spec: RequestSpec): Promise<Answer> {
    const token = await this.#tokenValue();
    const headers: Record<string, string> = { ...spec.headers };
    if (token !== undefined) headers.authorization = `Bearer ${token}`;
    const size = spec.body === undefined ? 0 : bodySize(spec.body);
    if (spec.method === "PUT" || spec.method === "POST") headers["content-length"] = String(size);
    const expect = size >= EXPECT_CONTINUE_BYTES;
    if (expect) headers.expect = "100-continue";
    const url = this.#url;
    return await new Promise<Answer>((resolve, reject) => {
      let settled = false;
      let answered = false;
      let sent = spec.body === undefined;
      let response: http.IncomingMessage | undefined;
      const fail = (err: unknown) => {
        if (settled) return;
        settled = true;
        // rejected first: destroying may emit errors of its own, which come too late
        reject(networkError(err, spec.op, this.location, this.#reached));
        req.destroy();
        response?.destroy();
      };
      const req = this.#client.request({
        host: url.hostname.replace(/^\[(.*)\]$/, "$1"),
        port: url.port === "" ? undefined : Number(url.port),
        method: spec.method,
        path: spec.path,
        agent: this.#agent,
        headers,
      });
      req.setTimeout(this.#timeoutMs, () => {
        fail(Object.assign(new Error("timed out"), { code: "ETIMEDOUT" }));
      });
      req.on("error", fail);
      req.on("response", (res: http.IncomingMessage) => {
        response = res;
        answered = true;
        this.#reached = true;
        this.#onAnswer(res.headers);
        const status = res.statusCode ?? 0;
        const ok = status >= 200 && status <= 299;
        const cap = ok ? spec.limit : MAX_ERROR_BODY_BYTES;
        const declared = spec.method === "HEAD" ? undefined : contentLength(res.headers);
        if (ok && declared !== undefined && Number.isNaN(declared)) {
          fail(
            new IntegrityError(
              `${doing(spec.op, this.location)}: the server's answer has an invalid Content-Length`,
            ),
          );
          return;
        }
        if (ok && declared !== undefined && declared > cap) {
          fail(spec.tooLarge(declared));
          return;
        }
        const chunks: Uint8Array[] = [];
        let got = 0;
        // a declared length is filled in place: one copy of a large body, not two
        const whole = ok && declared !== undefined ? new Uint8Array(declared) : undefined;
        const finish = (cut: boolean) => {
          if (settled) return;
          if (ok && !cut && declared !== undefined && got !== declared) {
            fail(
              new TransientError(
                `${
                  doing(spec.op, this.location)
                }: the answer was cut short (${got} of ${declared} bytes)`,
              ),
            );
            return;
          }
          if (ok && !sent) {
            // a success before the whole body went would be a write that never happened
            fail(
              new BackendError(
                `${
                  doing(spec.op, this.location)
                }: the server answered before the whole body was sent`,
              ),
            );
            return;
          }
          settled = true;
          // an answer before the whole body went (a refusal): the connection cannot be reused
          if (cut || !sent) req.destroy();
          resolve({ status, headers: res.headers, body: whole ?? concat(chunks, got) });
        };
        res.on("data", (chunk: Uint8Array) => {
          if (settled) return;
          if (got + chunk.length > cap) {
            if (ok) {
              fail(spec.tooLarge());
              return;
            }
            chunks.push(chunk.subarray(0, cap - got));
            got = cap;
            finish(true);
            return;
          }
          if (whole !== undefined) {
            if (got + chunk.length > whole.length) {
              fail(
                new IntegrityError(
                  `${doing(spec.op, this.location)}: the answer ran past its length`,
                ),
              );
              return;
            }
            whole.set(chunk, got);
          } else {
            chunks.push(chunk);
          }
          got += chunk.length;
        });
        res.on("end", () => finish(false));
        res.on("aborted", () => fail(Object.assign(new Error("aborted"), { code: "ECONNRESET" })));
        res.on("error", fail);
      });
      if (spec.body === undefined) {
        req.end();
        return;
      }
      const body = spec.body;
      let started = false;
      const start = () => {
        if (started || settled || answered) return;
        started = true;
        writeBody(req, body, size, () => settled || answered).then(
          (whole) => {
            sent = whole;
          },
          (err) => fail(err),
        );
      };
      if (expect) {
        const timer = setTimeout(start, CONTINUE_WAIT_MS);
        req.once("continue", () => {
          clearTimeout(timer);
          start();
        });
        req.once("close", () => clearTimeout(timer));
      } else {
        start();
      }
    });
  }
}

/**
 * Writes `body` to `req` piece by piece, each piece flushed before the next is asked for (a
 * StreamBody may reuse its buffer), then ends the request. Stops early when `stop` says so (the
 * server answered already); throws when the body's length differs from `size`. Resolves to
 * whether the whole body went.
 */
async function writeBody(
  req: http.ClientRequest,
  body: PutBody,
  size: number,
  stop: () => boolean,
): Promise<boolean> {
  if (body instanceof Uint8Array) {
    req.end(body);
    return true;
  }
  const closed = new Promise<never>((_, reject) => {
    req.once("close", () => reject(Object.assign(new Error("closed"), { code: "EPIPE" })));
  });
  closed.catch(() => {});
  let written = 0;
  for await (const piece of bodyPieces(body)) {
    if (stop()) return false;
    written += piece.length;
    if (written > size) throw new BackendError(`The body is longer than its size ${size}`);
    if (piece.length === 0) continue;
    await Promise.race([
      closed,
      new Promise<void>((resolve, reject) =>
        req.write(piece, (err) => err ? reject(err) : resolve())
      ),
    ]);
  }
  if (stop()) return false;
  if (written !== size) throw new BackendError(`The body is shorter than its size ${size}`);
  req.end();
  return true;
}

/** One header's value (the first, when repeated). */
export function header(headers: http.IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** The Content-Length: undefined when absent, NaN when not a decimal count. */
export function contentLength(headers: http.IncomingHttpHeaders): number | undefined {
  const v = header(headers, "content-length");
  if (v === undefined) return undefined;
  return /^\d{1,15}$/.test(v.trim()) ? Number(v.trim()) : NaN;
}

/** `bytes START-END/TOTAL` (TOTAL may be `*`), or undefined. */
export function parseContentRange(
  v: string | undefined,
): { start: number; end: number; total?: number } | undefined {
  const m = /^bytes (\d{1,15})-(\d{1,15})\/(\d{1,15}|\*)$/.exec(v?.trim() ?? "");
  if (!m) return undefined;
  return { start: Number(m[1]), end: Number(m[2]), total: m[3] === "*" ? undefined : Number(m[3]) };
}

/** The chunks in one fresh Uint8Array (not node's Buffers, which may share a pooled buffer). */
function concat(chunks: Uint8Array[], n: number): Uint8Array {
  const out = new Uint8Array(n);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}
