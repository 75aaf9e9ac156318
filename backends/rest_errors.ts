/**
 * The REST backend's errors in words: vger-server's status codes (docs/SERVER.md) and the
 * network's failures mapped to vger's errors, with the transient ones (5xx, 408, 429, dropped
 * connections, timeouts) marked for the retry decorator. The server's own error text is untrusted:
 * it is cut to {@linkcode MAX_REASON_CHARS} characters and its control characters are escaped.
 * Split from backends/rest.ts, which maps every failed request through {@linkcode restError}.
 *
 * @module
 */

import {
  BackendError,
  ForbiddenError,
  NotFoundError,
  QuotaError,
  TransientError,
  VgerError,
} from "../lib/errors.ts";

/** What a request was doing, for error messages. */
export interface RestOperation {
  /** A verb phrase: "read", "write", "list", "delete", "create". */
  what: string;
  /** The object key, when there is one (a listing names its prefix followed by `*`). */
  key?: string;
}

/** The most characters of the server's error text repeated in a message. */
export const MAX_REASON_CHARS = 200;

/** The most bytes of an error response's body read (the rest is dropped unread). */
export const MAX_ERROR_BODY_BYTES = 4096;

/** The beginning of an error message: what was being done, and where. */
export function doing(op: RestOperation, location: string): string {
  return op.key === undefined
    ? `Cannot ${op.what} ${location}`
    : `Cannot ${op.what} "${op.key}" in ${location}`;
}

/**
 * The vger error of an HTTP answer that is not the success the request wanted: `status` and
 * the first bytes of the body (`{"error": "..."}` from vger-server, anything from a proxy).
 * 404 is the unknown repository's here: the callers for which it means an absent object handle
 * it before.
 */
export function restError(
  status: number,
  body: Uint8Array,
  op: RestOperation,
  location: string,
): VgerError {
  const head = doing(op, location);
  const reason = serverReason(body);
  const says = reason === undefined ? "" : `: ${reason}`;
  switch (status) {
    case 400:
      return new BackendError(`${head}: the server calls the request malformed (HTTP 400${says})`);
    case 401:
      return new BackendError(
        `${head}: wrong or missing token (HTTP 401; set rest_token or rest_token_command)`,
      );
    case 403:
      return new ForbiddenError(
        `${head}: refused by the server${reason === undefined ? " (HTTP 403)" : `: ${reason}`}`,
      );
    case 404:
      return new NotFoundError(`No repository at ${location}: run vger init`);
    case 408:
      return new TransientError(`${head}: the server timed out waiting for the body (HTTP 408)`);
    case 413:
      return new QuotaError(`${head}: over the repository's quota (HTTP 413${says})`);
    case 429:
      return new TransientError(`${head}: the server is busy (HTTP 429${says})`);
  }
  if (status >= 500 && status <= 599) {
    return new TransientError(`${head}: the server failed (HTTP ${status}${says})`);
  }
  return new BackendError(`${head}: unexpected answer from the server (HTTP ${status}${says})`);
}

/**
 * The `error` text of a JSON error body, cut and escaped, or undefined when the body has none
 * (a proxy's HTML page is not repeated).
 */
export function serverReason(body: Uint8Array): string | undefined {
  let text: unknown;
  try {
    text = (JSON.parse(new TextDecoder().decode(body)) as { error?: unknown })?.error;
  } catch {
    return undefined;
  }
  if (typeof text !== "string" || text.trim() === "") return undefined;
  return escapeReason(text);
}

// deno-lint-ignore no-control-regex
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/;

/**
 * Untrusted text made safe for one line of a terminal or a log: at most
 * {@linkcode MAX_REASON_CHARS} characters (then "..."), control and invisible formatting
 * characters (C0, DEL, C1, bidirectional overrides, line separators) as `\u` escapes.
 */
export function escapeReason(text: string): string {
  const chars = Array.from(text.trim());
  const cut = chars.length > MAX_REASON_CHARS;
  const shown = (cut ? chars.slice(0, MAX_REASON_CHARS) : chars).map((c) =>
    UNSAFE.test(c) ? `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}` : c
  ).join("");
  return cut ? shown + "..." : shown;
}

const NETWORK_WORDS: Record<string, string> = {
  ECONNREFUSED: "connection refused",
  ENOTFOUND: "host not found",
  EAI_AGAIN: "host name lookup failed",
  ECONNRESET: "connection reset",
  EPIPE: "connection closed while sending",
  ETIMEDOUT: "timed out",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
  ECONNABORTED: "connection aborted",
  ERR_STREAM_PREMATURE_CLOSE: "connection closed early",
  ERR_STREAM_DESTROYED: "connection closed while sending",
  UND_ERR_SOCKET: "connection dropped",
  CERT_HAS_EXPIRED: "the server's TLS certificate has expired",
  DEPTH_ZERO_SELF_SIGNED_CERT: "the server's TLS certificate is self-signed",
  SELF_SIGNED_CERT_IN_CHAIN: "the server's TLS certificate is not trusted",
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: "the server's TLS certificate is not trusted",
  ERR_TLS_CERT_ALTNAME_INVALID: "the server's TLS certificate is for another host",
};

/** Network failures that a new request may not meet (a dropped connection, a timeout). */
const TRANSIENT_NETWORK = new Set([
  "ECONNRESET",
  "EPIPE",
  "ETIMEDOUT",
  "ECONNABORTED",
  "ERR_STREAM_PREMATURE_CLOSE",
  // a body written to a socket that the server's end closed (a server killed mid-upload)
  "ERR_STREAM_DESTROYED",
  "UND_ERR_SOCKET",
]);

/**
 * The vger error of a request that got no answer: the network's failure, naming the URL.
 * A refused connection is transient only once the server has answered this client before
 * (`reached`): a server restarting then, a wrong URL or a server that is down otherwise, which
 * is better said at once than after a minute of retries.
 */
export function networkError(
  err: unknown,
  op: RestOperation,
  location: string,
  reached: boolean,
): VgerError {
  if (err instanceof VgerError) return err;
  const head = `${doing(op, location)}: cannot reach the server`;
  // a host this run may not reach: no retry can help (cli.ts names the flag from the cause)
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    if (e instanceof Deno.errors.NotCapable) return new BackendError(head, { cause: e });
  }
  const code = networkCode(err);
  if (code !== undefined) {
    const why = NETWORK_WORDS[code] ?? code;
    const transient = TRANSIENT_NETWORK.has(code) || (code === "ECONNREFUSED" && reached);
    const Class = transient ? TransientError : BackendError;
    return new Class(`${head} (${why})`, { cause: err });
  }
  const message = err instanceof Error ? escapeReason(err.message) : "";
  // an unknown failure of a request under way (node:http's "socket hang up", "aborted") is a
  // dropped connection
  return new TransientError(`${head} (${message || "connection dropped"})`, { cause: err });
}

/** The network error code somewhere in the cause chain (Node's `code`). */
function networkCode(err: unknown): string | undefined {
  for (let e = err, depth = 0; e && typeof e === "object" && depth < 5; depth++) {
    const o = e as { code?: unknown; cause?: unknown; errors?: unknown };
    if (typeof o.code === "string" && /^[A-Z][A-Z0-9_]{1,40}$/.test(o.code)) return o.code;
    if (Array.isArray(o.errors) && o.errors.length > 0) {
      const inner = networkCode(o.errors[0]);
      if (inner !== undefined) return inner;
    }
    e = o.cause;
  }
  return undefined;
}
