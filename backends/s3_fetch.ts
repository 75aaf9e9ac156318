/**
 * The S3 backend's reads over `fetch` (backends/s3.ts signs them with backends/s3_sign.ts): the
 * request with its idle timeout, the answer's body read into one buffer, and the errors of an
 * answer or of the network in the shape of the SDK's, so that backends/s3_errors.ts words them
 * as it words the SDK's.
 *
 * @module
 */

import { status } from "./s3_errors.ts";

import { type SigningCredentials, type SigV4Signer, uriEncodePath } from "./s3_sign.ts";

/**
 * A GET of the object at `path` under the bucket's URL `base` (of `range` when given), signed
 * (`UNSIGNED-PAYLOAD`) and sent through {@linkcode fetchSigned}.
 */
export function signedGet(request: {
  base: URL;
  path: string;
  range: string | undefined;
  signer: SigV4Signer;
  credentials: SigningCredentials;
  timeoutMs: number;
}): Promise<FetchedRead> {
  const { base, range } = request;
  const url = new URL(base.href);
  url.pathname = base.pathname.replace(/\/$/, "") + uriEncodePath("/" + request.path);
  const headers = request.signer.sign({
    method: "GET",
    url,
    headers: {
      "x-amz-content-sha256": "UNSIGNED-PAYLOAD",
      ...(range === undefined ? {} : { range }),
    },
    payloadHash: "UNSIGNED-PAYLOAD",
    credentials: request.credentials,
  });
  return fetchSigned(url, headers, request.timeoutMs);
}

/** What {@linkcode sdkRead} takes of the SDK's GetObject output. */
export interface SdkGetOutput {
  /** The body's length. */
  ContentLength?: number;
  /** `bytes a-b/total` of a range. */
  ContentRange?: string;
  /** The body (the SDK's stream). */
  Body?: unknown;
}

/**
 * A GET through the SDK (`send`), its answer as a {@linkcode FetchedRead}: an S3 error answer
 * as its `error`; the SDK's own timeouts apply. Throws what has no HTTP status (the network's
 * failures).
 */
export async function sdkRead(send: () => Promise<SdkGetOutput>): Promise<FetchedRead> {
  let out: SdkGetOutput;
  try {
    out = await send();
  } catch (err) {
    if (status(err) === undefined) throw err;
    return {
      response: new Response(null, { status: 500 }),
      error: err,
      touch() {},
      async done() {},
    };
  }
  const headers = new Headers();
  if (out.ContentLength !== undefined) headers.set("content-length", `${out.ContentLength}`);
  if (out.ContentRange !== undefined) headers.set("content-range", out.ContentRange);
  const body = out.Body as { transformToWebStream(): ReadableStream<Uint8Array> } | undefined;
  const response = new Response(body?.transformToWebStream() ?? null, {
    status: out.ContentRange === undefined ? 200 : 206,
    headers,
  });
  return {
    response,
    touch() {},
    done: async () => {
      if (response.body !== null && !response.bodyUsed) {
        await response.body.cancel().catch(() => {});
      }
      await discard(out.Body);
    },
  };
}

/**
 * A signed GET through `fetch`: its answer, with the error of a non-success answer. Redirects
 * are not followed (a 301 says the region is wrong). Fails with a TimeoutError when the server
 * stays silent `timeoutMs` milliseconds, before the answer or within its body; network
 * failures carry the Node error code their words name.
 */
export async function fetchSigned(
  url: URL,
  headers: Record<string, string>,
  timeoutMs: number,
): Promise<FetchedRead> {
  const watch = new IdleWatch(timeoutMs);
  let response: Response;
  try {
    response = await fetch(url, { headers, redirect: "manual", signal: watch.signal });
  } catch (err) {
    watch.stop();
    throw fetchError(err);
  }
  watch.touch();
  const read: FetchedRead = {
    response,
    touch: () => watch.touch(),
    done: async () => {
      watch.stop();
      if (response.body !== null && !response.bodyUsed) {
        await response.body.cancel().catch(() => {});
      }
    },
  };
  if (!response.ok) {
    try {
      read.error = await answerError(response);
    } catch (err) {
      await read.done();
      throw fetchError(err);
    }
  }
  return read;
}

/**
 * The body of a read: `size` bytes when the answer says so, read straight into one buffer of
 * that size (a BYOB reader: no copy, and 0.3-0.4 s less CPU per GB than pieces copied
 * together); at most `max + 1` bytes otherwise (the caller tells what too many means).
 */
export async function readBody(
  read: FetchedRead,
  limits: { size: number | undefined; max: number },
): Promise<Uint8Array> {
  const body = read.response.body;
  if (body === null) return new Uint8Array(0);
  const { size, max } = limits;
  if (size !== undefined && size <= max) {
    const reader = byobReader(body);
    if (reader !== undefined) {
      try {
        return await readInto(reader, size, () => read.touch());
      } catch (err) {
        throw fetchError(err);
      } finally {
        await reader.cancel().catch(() => {});
      }
    }
  }
  const reader = body.getReader();
  try {
    const pieces: Uint8Array[] = [];
    let total = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      read.touch();
      pieces.push(value);
      total += value.length;
      if (total > max) break;
    }
    return concat(pieces, Math.min(total, max + 1));
  } catch (err) {
    throw fetchError(err);
  } finally {
    await reader.cancel().catch(() => {});
  }
}

/** A GET's answer (`S3Backend.#read`). */
export interface FetchedRead {
  /** The answer (its body not yet read). */
  response: Response;
  /** The answer's error in the SDK's shape, when it is not a success. */
  error?: unknown;
  /** Notes that bytes of the body arrived. */
  touch(): void;
  /** Stops the timer and frees the connection of an unread body. */
  done(): Promise<void>;
}

/**
 * The ports `fetch` refuses to ask (the fetch standard's "bad ports"); reads of an endpoint on
 * one of them go through the SDK.
 */
const BAD_PORTS = new Set(
  (
    "1 7 9 11 13 15 17 19 20 21 22 23 25 37 42 43 53 69 77 79 87 95 101 102 103 104 109 110 111 " +
    "113 115 117 119 123 135 137 139 143 161 179 389 427 465 512 513 514 515 526 530 531 532 540 " +
    "548 554 556 563 587 601 636 989 990 993 995 1719 1720 1723 2049 3659 4045 4190 5060 5061 " +
    "6000 6566 6665 6666 6667 6668 6669 6679 6697 10080"
  ).split(" ").map(Number),
);

/** Whether `fetch` refuses to ask `url`'s port (one of the fetch standard's "bad ports"). */
export function isBadPort(url: URL): boolean {
  return url.port !== "" && BAD_PORTS.has(Number(url.port));
}

/**
 * Aborts a request that stays silent `ms` milliseconds (no answer, no byte of the body) with a
 * TimeoutError, as the SDK's request handler does; a body that keeps flowing is never cut.
 */
class IdleWatch {
  readonly #controller = new AbortController();
  readonly #ms: number;
  #last = Date.now();
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(ms: number) {
    this.#ms = ms;
    this.#arm(ms);
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** Notes that bytes arrived. */
  touch(): void {
    this.#last = Date.now();
  }

  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #arm(delay: number): void {
    this.#timer = setTimeout(() => {
      const idle = Date.now() - this.#last;
      if (idle < this.#ms) return this.#arm(this.#ms - idle);
      this.#timer = undefined;
      const err = new Error(`No answer in ${this.#ms} ms`);
      err.name = "TimeoutError";
      this.#controller.abort(err);
    }, delay);
  }
}

/** The Content-Length of an answer, when it gives a sane one. */
export function contentLength(response: Response): number | undefined {
  const value = response.headers.get("content-length");
  if (value === null || !/^\d{1,15}$/.test(value)) return undefined;
  return Number(value);
}

/** A BYOB reader of `body`, if it is a byte stream. */
function byobReader(body: ReadableStream<Uint8Array>): ReadableStreamBYOBReader | undefined {
  try {
    return body.getReader({ mode: "byob" });
  } catch {
    return undefined;
  }
}

/**
 * Reads a body announced as `size` bytes into a buffer of its own: those bytes, fewer when the
 * body ends early, `size + 1` when it runs on (then the rest is left unread).
 */
async function readInto(
  reader: ReadableStreamBYOBReader,
  size: number,
  onBytes: () => void,
): Promise<Uint8Array> {
  let buffer = new ArrayBuffer(size);
  let at = 0;
  while (at < size) {
    const { done, value } = await reader.read(new Uint8Array(buffer, at));
    // the buffer comes back (transferred) in `value`, also at the end
    if (value !== undefined) buffer = value.buffer as ArrayBuffer;
    if (done || value === undefined) return new Uint8Array(buffer, 0, at);
    at += value.length;
    onBytes();
  }
  const out = new Uint8Array(buffer);
  if (size === 0) return out;
  // the end must come now: one byte more means the body is longer than announced
  const { done, value } = await reader.read(new Uint8Array(1));
  if (done || value === undefined || value.length === 0) return out;
  const longer = new Uint8Array(size + 1);
  longer.set(out);
  longer[size] = value[0];
  return longer;
}

/** The first `length` bytes of `pieces`, joined. */
function concat(pieces: Uint8Array[], length: number): Uint8Array {
  if (pieces.length === 1 && pieces[0].length === length) return pieces[0];
  const out = new Uint8Array(length);
  let at = 0;
  for (const piece of pieces) {
    if (at === length) break;
    const n = Math.min(piece.length, length - at);
    out.set(n === piece.length ? piece : piece.subarray(0, n), at);
    at += n;
  }
  return out;
}

/** The most of an error answer's body that is read for its S3 error code. */
const ERROR_BODY_BYTES = 64 * 1024;

/**
 * The error of an S3 answer that is not a success, shaped as the SDK shapes it (`name` and
 * `Code` from the XML `<Code>`, `Region`, `$metadata.httpStatusCode`, `$response.headers`), so
 * that {@linkcode s3Error} says the same as for the SDK's requests. The server's `<Message>` is
 * left out: it may repeat the access key id.
 */
export async function answerError(response: Response): Promise<Error> {
  let text = "";
  if (response.body !== null) {
    const reader = response.body.getReader();
    const pieces: Uint8Array[] = [];
    let total = 0;
    try {
      while (total < ERROR_BODY_BYTES) {
        const { done, value } = await reader.read();
        if (done) break;
        pieces.push(value);
        total += value.length;
      }
      text = new TextDecoder().decode(concat(pieces, Math.min(total, ERROR_BODY_BYTES)));
    } catch {
      // the status and headers still tell
    } finally {
      await reader.cancel().catch(() => {});
    }
  }
  const code = xmlField(text, "Code");
  const region = xmlField(text, "Region");
  const headers: Record<string, string> = {};
  response.headers.forEach((value, name) => headers[name] = value);
  const err = new Error(
    `S3 answered HTTP ${response.status}${code === undefined ? "" : " " + code}`,
  );
  err.name = code ?? "Unknown";
  return Object.assign(err, {
    ...(code === undefined ? {} : { Code: code }),
    ...(region === undefined ? {} : { Region: region }),
    $fault: response.status >= 500 ? "server" : "client",
    $metadata: { httpStatusCode: response.status },
    $response: { statusCode: response.status, headers },
  });
}

/** The text of the first `<name>` element of an XML document, if any. */
function xmlField(xml: string, name: string): string | undefined {
  const m = xml.match(new RegExp(`<${name}>([^<]{1,256})</${name}>`));
  return m?.[1].trim() || undefined;
}

/** How Deno's fetch words its network failures, as the codes backends/s3_errors.ts reads. */
const FETCH_FAILURES: [RegExp, string][] = [
  [/connection refused/i, "ECONNREFUSED"],
  [/temporary failure in name resolution/i, "EAI_AGAIN"],
  [/dns error|failed to lookup address|name or service not known/i, "ENOTFOUND"],
  [/network is unreachable/i, "ENETUNREACH"],
  [/no route to host|host is unreachable/i, "EHOSTUNREACH"],
  [/timed out/i, "ETIMEDOUT"],
  [
    /connection reset|broken pipe|connection closed|reading a body|incomplete message|unexpected eof/i,
    "ECONNRESET",
  ],
];

/**
 * A failure of `fetch` or of reading its body with the network error code its words name (in
 * `code`, as Node reports it), so that {@linkcode s3Error} classifies it; others with the words
 * of their causes (fetch's own message is a bare "fetch failed").
 */
function fetchError(err: unknown): unknown {
  if (!(err instanceof Error) || err.name === "TimeoutError") return err;
  const words: string[] = [];
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 5; depth++) {
    words.push(e.message);
    e = e.cause;
  }
  const text = words.join(": ");
  for (const [pattern, code] of FETCH_FAILURES) {
    if (pattern.test(text)) return Object.assign(new Error(text, { cause: err }), { code });
  }
  // a plain Error: s3Error then gives its words, not "S3 error (TypeError)"
  return new Error(text, { cause: err });
}

/** Drops a response body unread, so its connection is freed. */
export async function discard(body: unknown): Promise<void> {
  try {
    const b = body as {
      destroy?: () => void;
      cancel?: () => Promise<void>;
      transformToWebStream?: () => ReadableStream;
    } | undefined;
    if (typeof b?.destroy === "function") b.destroy();
    else if (typeof b?.cancel === "function") await b.cancel();
    else if (typeof b?.transformToWebStream === "function") await b.transformToWebStream().cancel();
  } catch {
    // nothing to free
  }
}

/** The total of `bytes a-b/total`, if given. */
export function totalFromContentRange(range: string | undefined): number | undefined {
  const m = range?.match(/\/(\d+)\s*$/);
  return m ? Number(m[1]) : undefined;
}
