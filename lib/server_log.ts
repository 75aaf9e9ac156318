/**
 * vger-server's request log: one line per request, as text (`pretty`) or JSON (`json`), with no
 * header of the request (so never its token) and control characters escaped.
 *
 * @example
 * ```ts
 * import { formatRequestLog } from "./server_log.ts";
 *
 * console.log(formatRequestLog({
 *   time: new Date(0), remote: "127.0.0.1", method: "GET", path: "/health", status: 200,
 *   bytesIn: 0, durationMs: 1.5,
 * }, "pretty"));
 * // 1970-01-01T00:00:00.000Z 127.0.0.1 GET /health 200 in=0 1.5ms
 * ```
 *
 * @module
 */

import { escapeControl } from "./printable.ts";

/** What is logged of one request. */
export interface RequestLog {
  /** When the request came. */
  time: Date;
  /** The client's address. */
  remote: string;
  /** The HTTP method. */
  method: string;
  /** The path and query as sent. */
  path: string;
  /** The response's status code. */
  status: number;
  /** The body's announced length (`Content-Length`), 0 without one. */
  bytesIn: number;
  /** How long it took to answer, in milliseconds. */
  durationMs: number;
  /** The error line of a failed request, if any. */
  error?: string;
}

/** One log line (no newline) in the chosen format. */
export function formatRequestLog(entry: RequestLog, format: "pretty" | "json"): string {
  const ms = Math.round(entry.durationMs * 10) / 10;
  if (format === "json") {
    return JSON.stringify({
      time: entry.time.toISOString(),
      remote: entry.remote,
      method: entry.method,
      path: entry.path,
      status: entry.status,
      bytes_in: entry.bytesIn,
      duration_ms: ms,
      ...(entry.error === undefined ? {} : { error: entry.error }),
    });
  }
  const error = entry.error === undefined ? "" : ` error=${JSON.stringify(entry.error)}`;
  return escapeControl(
    `${entry.time.toISOString()} ${entry.remote} ${entry.method} ${entry.path} ${entry.status} ` +
      `in=${entry.bytesIn} ${ms}ms${error}`,
  );
}

/**
 * A log line with every occurrence of `secret` masked, for a client that put its token where
 * a header does not hide it (the path).
 */
export function maskSecret(line: string, secret: string): string {
  return secret === "" ? line : line.replaceAll(secret, "***");
}

/** A log line of a server event (`lock_expired`, with the lock's `repo/locks/...` key). */
export function formatEvent(format: "pretty" | "json", event: string, detail: string): string {
  const time = new Date().toISOString();
  if (format === "json") return JSON.stringify({ time, event, detail });
  return escapeControl(`${time} ${event} ${detail}`);
}
