/**
 * What vger-server reads from a request before it touches storage: the target (repository and key,
 * decoded exactly once and checked so that nothing outside a repository is ever named), the
 * `Range` header, the listing query, and the body as a {@linkcode StreamBody} that is never held
 * whole, whose length must match `Content-Length` and that fails when the client stalls.
 * Each refusal is an {@linkcode HttpError} carrying its status code.
 *
 * @example
 * ```ts
 * import { parseTarget } from "./server_request.ts";
 *
 * console.log(parseTarget("http://h/laptop/packs/ab/ab01")); // { kind: "object", repo: "laptop", key: "packs/ab/ab01" }
 * ```
 *
 * @module
 */

import { isValidKey, type StreamBody } from "../backends/backend.ts";
import { VgerError } from "./errors.ts";
import { escapeControl } from "./printable.ts";

/** A refusal or failure with the HTTP status code it is answered with. */
export class HttpError extends VgerError {
  /** The response's status code. */
  readonly status: number;
  /** Creates an error answered with `status`; `message` is the response's one line. */
  constructor(status: number, message: string, options?: ErrorOptions) {
    super(`http_${status}`, message, options);
    this.status = status;
  }
}

/** The HttpError in `err` or its chain of causes (a backend wraps what a body throws), if any. */
export function findHttpError(err: unknown): HttpError | undefined {
  for (let e = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    if (e instanceof HttpError) return e;
  }
  return undefined;
}

/** What a request's path names. */
export type Target =
  | { kind: "root" }
  | { kind: "health" }
  | { kind: "repo"; repo: string }
  | { kind: "list"; repo: string }
  | { kind: "object"; repo: string; key: string };

/** Names a repository may not have: they are the server's own paths. */
const RESERVED_NAMES = ["health", "ui"];
const REPO_NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$/;
/** The longest name of one key segment (a file name on most file systems). */
const MAX_SEGMENT_BYTES = 255;
/** Segments a key may not have: the local backend's temporary files. */
const RESERVED_SEGMENT = /^\.tmp-/;

/** Whether `name` is a valid repository name (docs/SERVER.md, "Conventions"). */
export function isValidRepoName(name: string): boolean {
  return REPO_NAME.test(name) && !RESERVED_NAMES.includes(name);
}

/**
 * The target of a request from its URL as sent (not normalised: `..` and `%2e%2e` stay as they
 * are and are refused). The repository name and the key are percent-decoded exactly once.
 * Throws HttpError 400 for a name or key that breaks the rules.
 */
export function parseTarget(url: string): Target {
  const path = rawPath(url);
  if (path === "/") return { kind: "root" };
  if (path === "/health") return { kind: "health" };
  const body = path.slice(1);
  const cut = body.indexOf("/");
  const repo = decode(cut < 0 ? body : body.slice(0, cut), "repository name");
  if (!isValidRepoName(repo)) {
    throw new HttpError(
      400,
      `Invalid repository name "${show(repo)}": 1 to 64 of A-Z a-z 0-9 . _ -, not starting ` +
        `with ".", not "health" or "ui"`,
    );
  }
  if (cut < 0) return { kind: "repo", repo };
  const rest = body.slice(cut + 1);
  if (rest === "") return { kind: "list", repo };
  const key = decode(rest, `key of repository "${repo}"`);
  checkKey(repo, key);
  return { kind: "object", repo, key };
}

/** Throws HttpError 400 unless `key` is a key the server stores (also for listing prefixes). */
export function checkKey(repo: string, key: string): void {
  const encoder = new TextEncoder();
  if (
    !isValidKey(key) ||
    key.split("/").some((s) =>
      RESERVED_SEGMENT.test(s) || encoder.encode(s).length > MAX_SEGMENT_BYTES
    )
  ) {
    throw new HttpError(400, `Invalid key "${show(key)}" in repository "${repo}"`);
  }
}

/** The query of a URL as sent. */
export function rawQuery(url: string): URLSearchParams {
  const at = url.indexOf("?");
  return new URLSearchParams(at < 0 ? "" : url.slice(at + 1));
}

/** The path of a URL as sent: from the first `/` after the authority, up to `?` or `#`. */
function rawPath(url: string): string {
  const scheme = url.indexOf("://");
  const start = scheme < 0 ? 0 : url.indexOf("/", scheme + 3);
  if (start < 0) return "/";
  const end = url.slice(start).search(/[?#]/);
  return end < 0 ? url.slice(start) : url.slice(start, start + end);
}

function decode(text: string, what: string): string {
  try {
    return decodeURIComponent(text);
  } catch (err) {
    throw new HttpError(400, `Invalid ${what} "${show(text)}": bad percent-encoding`, {
      cause: err,
    });
  }
}

/** Text from a client, shortened and with control characters escaped, for a message. */
export function show(text: string): string {
  const short = text.length > 200 ? `${text.slice(0, 200)}...` : text;
  return escapeControl(short);
}

/** The listing query of docs/SERVER.md: `prefix`, `after`, `limit` (at most 10,000). */
export interface ListQuery {
  /** Keys start with this ("" for all). */
  prefix: string;
  /** Keys come after this one ("" from the start). */
  after: string;
  /** At most this many objects. */
  limit: number;
}

/** The most objects one listing page holds. */
export const MAX_LIST_LIMIT = 10_000;

/** The listing query of a URL; throws HttpError 400 for an unknown or bad parameter. */
export function parseListQuery(repo: string, url: string): ListQuery {
  const query = rawQuery(url);
  for (const name of query.keys()) {
    if (!["prefix", "after", "limit"].includes(name)) {
      throw new HttpError(400, `Unknown listing parameter "${show(name)}" (repository "${repo}")`);
    }
  }
  const prefix = query.get("prefix") ?? "";
  if (prefix !== "" && !isValidKey(prefix + "x")) {
    throw new HttpError(400, `Invalid listing prefix "${show(prefix)}" in repository "${repo}"`);
  }
  const limitText = query.get("limit");
  let limit = MAX_LIST_LIMIT;
  if (limitText !== null) {
    limit = /^\d{1,6}$/.test(limitText) ? Number(limitText) : NaN;
    if (!(limit >= 1 && limit <= MAX_LIST_LIMIT)) {
      throw new HttpError(
        400,
        `Invalid listing limit "${show(limitText)}" (repository "${repo}"): 1 to ${MAX_LIST_LIMIT}`,
      );
    }
  }
  return { prefix, after: query.get("after") ?? "", limit };
}

/**
 * The byte range a `Range` header asks of an object of `size` bytes: null for the whole object
 * (no header). Only one range `bytes=A-B` or `bytes=A-` is taken (400 otherwise); `A` at or past
 * the end is 416; `B` past the end is clipped.
 */
export function parseRange(
  header: string | null,
  size: number,
  where: string,
): { offset: number; length: number } | null {
  if (header === null) return null;
  const m = /^bytes=(\d{1,16})-(\d{0,16})$/.exec(header.trim());
  if (!m) {
    throw new HttpError(400, `Invalid Range "${show(header)}" for ${where}: one range bytes=A-B`);
  }
  const first = Number(m[1]);
  const last = m[2] === "" ? Infinity : Number(m[2]);
  if (last < first) throw new HttpError(400, `Invalid Range "${show(header)}" for ${where}: B < A`);
  if (first >= size) {
    throw new HttpError(
      416,
      `Range "${show(header)}" starts past the end of ${where} (${size} bytes)`,
    );
  }
  return { offset: first, length: Math.min(last, size - 1) - first + 1 };
}

/** Options of {@linkcode requestBody}. */
export interface RequestBodyOptions {
  /** The `Content-Length` the client announced: exactly this many bytes must come. */
  size: number;
  /** How long a read may wait for the next bytes before the request fails with 408. */
  timeoutMs: number;
  /** Names the object in messages (`repository "r", key "k"`). */
  where: string;
  /** Sees each piece in order (a hash); then `finish` may refuse the whole body (throws). */
  check?: { update(piece: Uint8Array): void; finish(): void };
}

/**
 * A request's body as a {@linkcode StreamBody} to hand a backend's put: read once, piece by piece
 * as the backend writes, never held whole. It throws HttpError (which the backend's error keeps as
 * its cause) when the client stalls for `timeoutMs` (408), sends fewer or more bytes than `size`
 * or breaks off (400), or `check.finish` refuses the bytes; the backend then stores nothing.
 */
export function requestBody(
  body: ReadableStream<Uint8Array> | null,
  options: RequestBodyOptions,
): StreamBody {
  let used = false;
  return {
    size: options.size,
    async *pieces() {
      if (used) throw new HttpError(500, `The body of ${options.where} was read twice`);
      used = true;
      let got = 0;
      if (body === null) {
        if (options.size !== 0) {
          throw new HttpError(
            400,
            `The body of ${options.where} is empty, not ${options.size} bytes`,
          );
        }
        options.check?.finish();
        return;
      }
      const reader = body.getReader();
      try {
        for (;;) {
          const { done, value } = await readWithin(reader, options);
          if (done) break;
          got += value.length;
          if (got > options.size) {
            throw new HttpError(
              400,
              `The body of ${options.where} is longer than its Content-Length ${options.size}`,
            );
          }
          options.check?.update(value);
          yield value;
        }
        if (got < options.size) {
          throw new HttpError(
            400,
            `The body of ${options.where} ended after ${got} of its ${options.size} bytes`,
          );
        }
        options.check?.finish();
      } catch (err) {
        await reader.cancel().catch(() => {});
        throw err;
      } finally {
        reader.releaseLock();
      }
    },
  };
}

/** One read of the body, failing with 408 when nothing comes for `timeoutMs`. */
async function readWithin(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  options: RequestBodyOptions,
): Promise<ReadableStreamReadResult<Uint8Array>> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const stalled = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(
        new HttpError(
          408,
          `The body of ${options.where} stalled: no byte for ${options.timeoutMs / 1000} s`,
        ),
      );
    }, options.timeoutMs);
  });
  try {
    return await Promise.race([reader.read(), stalled]);
  } catch (err) {
    if (err instanceof HttpError) throw err;
    throw new HttpError(400, `The body of ${options.where} broke off: ${(err as Error).message}`, {
      cause: err,
    });
  } finally {
    clearTimeout(timer);
  }
}
