/**
 * A backend on vger-server (docs/SERVER.md): one repository at `https://host/<repo>` (or
 * `http://`, or under a path prefix of a reverse proxy), spoken to over HTTP/1.1 with a bearer
 * token, through backends/rest_http.ts (node:http, a `Content-Length` on every body, a staged
 * pack streamed).
 *
 * Every read is capped: `get` with `maxBytes` refuses an object whose `Content-Length` is larger
 * before reading it and counts the bytes as they arrive; `getRange` accepts exactly the bytes
 * asked for; a listing page, the repository info and error bodies have fixed caps. Errors are
 * in words (backends/rest_errors.ts); the transient ones (5xx, 408, 429, dropped connections,
 * timeouts) are for backends/retry.ts's decorator, which `openBackend` wraps around this.
 *
 * @example
 * ```ts ignore
 * import { RestBackend } from "./rest.ts";
 *
 * const backend = new RestBackend({
 *   url: "https://backup.example.com/laptop",
 *   token: () => Promise.resolve("secret"),
 * });
 * console.log(await backend.size("config"));
 * await backend.close();
 * ```
 *
 * @module
 */

import {
  BackendError,
  IntegrityError,
  NotFoundError,
  UsageError,
  VgerError,
} from "../lib/errors.ts";
import {
  type Backend,
  type BackendCapabilities,
  checkMaxBytes,
  composedSize,
  type ComposePlan,
  ComposeRefusedError,
  type ComposeResult,
  type GetOptions,
  isValidKey,
  type ObjectInfo,
  objectTooLarge,
  type PutBody,
  rangeWithoutRead,
  type StoragePolicy,
  type StorageRole,
  type StoredVersion,
  type StructureProblem,
  type StructureReport,
  truncated,
} from "./backend.ts";
import { Buffer } from "node:buffer";
import {
  doing,
  escapeReason,
  MAX_ERROR_BODY_BYTES,
  restError,
  type RestOperation,
} from "./rest_errors.ts";
import { type Answer, contentLength, header, parseContentRange, RestHttp } from "./rest_http.ts";

/**
 * Requests worth running at once. The server fsyncs every object it stores, so small writes
 * (locks, index, manifest, small packs) wait on its disk more than on the network, and more of
 * them in flight pay. Measured on loopback against vger-server (`deno run`, 2 busy cores),
 * 48 puts then gets of 8 MiB, and 1 KB puts, at 1/2/4/8/16 connections: puts 281/459/487/334/399
 * MiB/s (noisy), gets 427/546/610/642/673 MiB/s, 1 KB puts 201/577/761/1117/1314 per second.
 * 8 keeps most of the small-write gain without a second's worth of large uploads queued on a slow
 * link, as for S3 (backends/s3.ts); `connections` overrides it.
 */
export const DEFAULT_REST_CONNECTIONS = 8;

/**
 * Milliseconds a connection may take to open, or a request may go without a byte either way,
 * before it fails as transient (2 minutes, as S3's; the retry decorator's 5 minutes cover two).
 */
export const DEFAULT_REST_TIMEOUT_MS = 120_000;

/** Objects asked for per listing page (the server's maximum is 10,000). */
export const LIST_PAGE_SIZE = 1000;

/**
 * The most bytes of one listing page: a key of at most 1,024 characters, each at most 6 when
 * JSON-escaped, its size and the punctuation, per object, and room for the rest.
 */
export const MAX_LIST_PAGE_BYTES: number = LIST_PAGE_SIZE * (1024 * 6 + 64) + 64 * 1024;

/** The most bytes of the answer to a compose (a key, a hash and a size). */
const MAX_COMPOSE_ANSWER_BYTES = 4096;

/** The most bytes of the repository info (`GET /<repo>`). */
const MAX_INFO_BYTES = 64 * 1024;

/** The most bytes of the versions listing (`GET /<repo>?versions`): 100,000 versions. */
const MAX_VERSIONS_BYTES = 16 << 20;
/** The most versions a listing may hold. */
const MAX_VERSIONS = 100_000;
/** The most bytes of a structure check's report (`GET /<repo>?check`). */
const MAX_CHECK_BYTES = 32 << 20;
/** The most findings a structure check's report may hold. */
const MAX_CHECK_PROBLEMS = 100_000;
/** A version id as the server spells it. */
const VERSION_ID = /^\d{15}-[0-9a-f]{8}$/;

/** Repository names vger-server accepts (docs/SERVER.md, "Conventions"). */
const REPO_NAME = /^(?!\.)[A-Za-z0-9._-]{1,64}$/;

/** Where a {@linkcode RestBackend} is and how it signs in. */
export interface RestBackendOptions {
  /** The repository's URL, `http(s)://host[:port][/prefix]/<repo>`. */
  url: string;
  /**
   * The bearer token, asked for on the first request (lib/secrets.ts's `resolveToken` runs
   * `rest_token_command` then); undefined: no `Authorization` header.
   */
  token?: () => Promise<string | undefined>;
  /** Requests worth running at once; {@linkcode DEFAULT_REST_CONNECTIONS} when absent. */
  connections?: number;
  /** Idle timeout in milliseconds; {@linkcode DEFAULT_REST_TIMEOUT_MS} when absent. */
  timeoutMs?: number;
}

/** A {@linkcode Backend} over one repository of a vger-server. */
export class RestBackend implements Backend {
  /** The repository's URL, without credentials, query or trailing `/`. */
  readonly location: string;
  /** What this backend can do. */
  readonly capabilities: BackendCapabilities;
  readonly #base: string;
  readonly #http: RestHttp;
  /** The mode the server's last answer declared (`X-Vger-Append-Only`), if any. */
  #appendOnly: boolean | undefined;
  /** The role the server's last answer declared (`X-Vger-Role`), if any. */
  #role: StorageRole | undefined;

  /** A backend for the repository at `options.url`; nothing is contacted until the first call. */
  constructor(options: RestBackendOptions) {
    const url = parseRepositoryUrl(options.url);
    this.#base = url.pathname;
    this.location = url.origin + url.pathname;
    const connections = options.connections ?? DEFAULT_REST_CONNECTIONS;
    this.#http = new RestHttp({
      url,
      location: this.location,
      connections,
      timeoutMs: options.timeoutMs ?? DEFAULT_REST_TIMEOUT_MS,
      token: options.token,
      onAnswer: (headers) => {
        const mode = header(headers, "x-vger-append-only");
        if (mode === "true") this.#appendOnly = true;
        else if (mode === "false") this.#appendOnly = false;
        const role = header(headers, "x-vger-role");
        if (isRole(role)) this.#role = role;
      },
    });
    // the server's create is atomic (no probe needed), and a new repository takes writes only
    // once its config is created
    // and it checks every record of a compose (docs/SERVER.md, "Compose a pack")
    this.capabilities = { connections, configFirst: true, composeChecksRecords: true };
  }

  /** The whole object, or null when absent; see {@linkcode Backend.get}. */
  async get(key: string, options: GetOptions = {}): Promise<Uint8Array | null> {
    checkKey(key);
    const max = checkMaxBytes(options.maxBytes);
    const op = { what: "read", key };
    const a = await this.#http.send({
      method: "GET",
      path: this.#objectPath(key),
      op,
      limit: max,
      tooLarge: (size) => objectTooLarge(key, max, size),
    });
    if (a.status === 404) return null;
    if (a.status !== 200) throw this.#error(a, op);
    return a.body;
  }

  /** Exactly `length` bytes from `offset`; see {@linkcode Backend.getRange}. */
  async getRange(key: string, offset: number, length: number): Promise<Uint8Array> {
    checkKey(key);
    const answered = await rangeWithoutRead(
      key,
      offset,
      length,
      () => this.size(key),
      () => this.#notFound(key),
    );
    if (answered !== null) return answered;
    const op = { what: "read", key };
    const last = offset + length - 1;
    const a = await this.#http.send({
      method: "GET",
      path: this.#objectPath(key),
      op,
      headers: { range: `bytes=${offset}-${last}` },
      limit: length,
      // more bytes than asked: a server that ignored the range (never read it all)
      tooLarge: (size) =>
        size !== undefined && offset + length > size
          ? truncated(key, offset, length, size)
          : new IntegrityError(
            `The server sent more of object "${key}" in ${this.location} than the ${length} bytes asked for`,
          ),
    });
    if (a.status === 404) throw this.#notFound(key);
    if (a.status === 416) {
      const size = await this.size(key);
      if (size === null) throw this.#notFound(key);
      throw truncated(key, offset, length, size);
    }
    if (a.status === 200) {
      // a whole object no longer than the range: the range was ignored, and the object is short
      // unless it holds exactly the bytes from 0
      if (offset === 0 && a.body.length === length) return a.body;
      throw truncated(key, offset, length, a.body.length);
    }
    if (a.status !== 206) throw this.#error(a, op);
    const range = parseContentRange(header(a.headers, "content-range"));
    if (range === undefined || range.start !== offset) {
      throw new IntegrityError(
        `The server answered a range of object "${key}" in ${this.location} with bytes it was not asked for`,
      );
    }
    if (a.body.length !== length || range.end !== last) {
      throw truncated(key, offset, length, range.total ?? offset + a.body.length);
    }
    return a.body;
  }

  /** The object's size (a HEAD request), or null when it does not exist. */
  async size(key: string): Promise<number | null> {
    checkKey(key);
    const op = { what: "read the size of", key };
    const a = await this.#http.send({
      method: "HEAD",
      path: this.#objectPath(key),
      op,
      limit: 0,
      tooLarge: () => new IntegrityError(`The server answered a HEAD of "${key}" with a body`),
    });
    if (a.status === 404) return null;
    if (a.status !== 200) throw this.#error(a, op);
    const size = contentLength(a.headers);
    if (size === undefined || Number.isNaN(size)) {
      throw new IntegrityError(
        `The server gave no valid size of object "${key}" in ${this.location}`,
      );
    }
    return size;
  }

  /** Every object whose key starts with `prefix`, page by page, in the server's key order. */
  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    if (prefix !== "" && !isValidKey(prefix + "x")) {
      throw new BackendError(`Invalid object key prefix "${prefix}"`);
    }
    const op = { what: "list", key: prefix === "" ? undefined : prefix + "*" };
    let after = "";
    for (;;) {
      const query = `?prefix=${encodeURIComponent(prefix)}&after=${
        encodeURIComponent(after)
      }&limit=${LIST_PAGE_SIZE}`;
      const a = await this.#http.send({
        method: "GET",
        path: this.#base + "/" + query,
        op,
        limit: MAX_LIST_PAGE_BYTES,
        tooLarge: () => this.#badListing(prefix, `a page is over ${MAX_LIST_PAGE_BYTES} bytes`),
      });
      if (a.status !== 200) throw this.#error(a, op);
      const page = this.#parsePage(a.body, prefix, after);
      yield* page.objects;
      if (page.next === null) return;
      after = page.next;
    }
  }

  /** Stores an object, replacing any old one (a streamed PUT with its `Content-Length`). */
  async put(key: string, body: PutBody): Promise<void> {
    checkKey(key);
    const op = { what: "write", key };
    const a = await this.#upload(key, body, op, false);
    if (a.status !== 200 && a.status !== 201) throw this.#error(a, op);
  }

  /** Stores an object only if the key is absent (`If-None-Match: *`); returns whether it did. */
  async create(key: string, body: PutBody): Promise<boolean> {
    checkKey(key);
    const op = { what: "create", key };
    const a = await this.#upload(key, body, op, true);
    if (a.status === 412) return false;
    if (a.status !== 200 && a.status !== 201) throw this.#error(a, op);
    return true;
  }

  /** Removes an object; removing an absent object is not an error. */
  async delete(key: string): Promise<void> {
    checkKey(key);
    const op = { what: "delete", key };
    const a = await this.#http.send({
      method: "DELETE",
      path: this.#objectPath(key),
      op,
      limit: MAX_ERROR_BODY_BYTES,
      tooLarge: () => new IntegrityError(`The server answered the delete of "${key}" at length`),
    });
    if (a.status === 200 || a.status === 204 || a.status === 404) return;
    throw this.#error(a, op);
  }

  /**
   * Has the server compose a pack (`POST /<repo>?compose`, docs/SERVER.md): the plan goes as
   * JSON (every range a pack record with its `type`), the server checks each record and stores
   * the pack under the name of its SHA-256. The answer is checked: its key must be
   * `plan.name(sha256)` and its size the plan's. Records the server refuses are a
   * {@linkcode ComposeRefusedError} naming them (nothing was stored).
   */
  async compose(plan: ComposePlan): Promise<ComposeResult> {
    const size = composedSize(plan);
    const sources: string[] = [];
    const numbers = new Map<string, number>();
    const records = plan.ranges.map((r) => {
      if (r.type === undefined) {
        throw new BackendError(`Cannot compose in ${this.location}: "${r.key}" has no record type`);
      }
      let n = numbers.get(r.key);
      if (n === undefined) numbers.set(r.key, n = sources.push(r.key) - 1);
      return [n, r.offset, r.length, r.type];
    });
    const body = encoder.encode(JSON.stringify({
      prefix: Buffer.from(plan.prefix).toString("base64"),
      sources,
      records,
      suffix: Buffer.from(plan.suffix).toString("base64"),
    }));
    const op = { what: "compose a pack in" };
    const a = await this.#http.send({
      method: "POST",
      path: this.#base + "?compose",
      op,
      body,
      limit: MAX_COMPOSE_ANSWER_BYTES,
      tooLarge: () =>
        new IntegrityError(`The server answered a compose in ${this.location} at length`),
    });
    if (a.status === 422) throw this.#refused(a.body, plan, op);
    if (a.status !== 201) throw this.#error(a, op);
    let answer: { key?: unknown; sha256?: unknown; size?: unknown } | null = null;
    try {
      answer = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(a.body));
    } catch {
      // answered below
    }
    const sha256 = answer?.sha256;
    if (
      typeof sha256 !== "string" || !/^[0-9a-f]{64}$/.test(sha256) ||
      answer?.key !== plan.name(sha256) || answer?.size !== size
    ) {
      throw new IntegrityError(
        `${doing(op, this.location)}: the server's answer does not name the pack by its ` +
          `SHA-256 with the ${size} bytes planned`,
      );
    }
    return { key: answer.key, sha256, size, sentBytes: body.length };
  }

  /** The error of a compose the server refused (422): the records it names, checked. */
  #refused(body: Uint8Array, plan: ComposePlan, op: RestOperation): VgerError {
    let refused: { range: number; reason: string }[] = [];
    try {
      const list = JSON.parse(new TextDecoder().decode(body))?.refused;
      refused = (Array.isArray(list) ? list : []).filter((r: unknown) =>
        Array.isArray(r) && Number.isSafeInteger(r[0]) && r[0] >= 0 &&
        r[0] < plan.ranges.length && typeof r[1] === "string"
      ).map((r: [number, string]) => ({ range: r[0], reason: escapeReason(r[1]) }));
    } catch {
      // no list: a proxy's answer, or a cut one
    }
    if (refused.length === 0) return this.#error({ status: 422, headers: {}, body }, op);
    const first = refused[0];
    return new ComposeRefusedError(
      `${
        doing(op, this.location)
      }: the server refused records of the plan (record ${first.range}: ${first.reason})`,
      refused,
    );
  }

  /**
   * The server's policy for this token and repository: the mode and role its last answer
   * declared (`X-Vger-Append-Only`, `X-Vger-Role`), else the repository info's (`GET /<repo>`).
   * A server that names no role grants full (append-only mode aside).
   */
  async policy(): Promise<StoragePolicy> {
    if (this.#appendOnly !== undefined) {
      return { appendOnly: this.#appendOnly, role: this.#role ?? "full" };
    }
    const op = { what: "read the settings of" };
    const a = await this.#http.send({
      method: "GET",
      path: this.#base,
      op,
      limit: MAX_INFO_BYTES,
      tooLarge: () =>
        new IntegrityError(
          `The repository info of ${this.location} is over ${MAX_INFO_BYTES} bytes`,
        ),
    });
    if (a.status !== 200) throw this.#error(a, op);
    let info: unknown;
    try {
      info = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(a.body));
    } catch (err) {
      throw new IntegrityError(`The repository info of ${this.location} is not JSON`, {
        cause: err,
      });
    }
    const mode = (info as { append_only?: unknown } | null)?.append_only;
    if (typeof mode !== "boolean") {
      throw new IntegrityError(
        `The repository info of ${this.location} does not say whether it is append-only`,
      );
    }
    const role = (info as { role?: unknown }).role;
    if (role !== undefined && !isRole(role)) {
      throw new IntegrityError(
        `The repository info of ${this.location} names an unknown role "${
          String(role).slice(0, 40).replace(/[^\x20-\x7e]/g, "?")
        }"`,
      );
    }
    this.#appendOnly ??= mode;
    this.#role ??= role;
    return { appendOnly: this.#appendOnly, role: this.#role ?? "full" };
  }

  /** The server's kept versions of `manifest` and `index`, newest first (`GET /<repo>?versions`). */
  async listVersions(): Promise<StoredVersion[]> {
    const body = await this.#getJson("?versions", "list the versions of", MAX_VERSIONS_BYTES);
    const bad = (why: string) =>
      new IntegrityError(`The versions listing of ${this.location} is malformed: ${why}`);
    const list = (body as { versions?: unknown } | null)?.versions;
    if (!Array.isArray(list) || list.length > MAX_VERSIONS) throw bad("no versions array");
    const out: StoredVersion[] = [];
    for (const v of list as unknown[]) {
      const { id, time, manifest_bytes, index_bytes } = (v ?? {}) as Record<string, unknown>;
      if (typeof id !== "string" || !VERSION_ID.test(id)) throw bad("an invalid id");
      if (typeof time !== "string" || Number.isNaN(Date.parse(time)) || time.length > 40) {
        throw bad(`an invalid time of version ${id}`);
      }
      if (!isCount(manifest_bytes) || !(index_bytes === null || isCount(index_bytes))) {
        throw bad(`an invalid size of version ${id}`);
      }
      out.push({
        id,
        time: new Date(time).toISOString(),
        manifestBytes: manifest_bytes,
        indexBytes: index_bytes,
      });
    }
    return out;
  }

  /** The kept `manifest` or `index` of version `id`, or null when the server has none. */
  async getVersion(
    id: string,
    key: "manifest" | "index",
    options: GetOptions = {},
  ): Promise<Uint8Array | null> {
    if (!VERSION_ID.test(id)) throw new UsageError(`Invalid version id "${escapeReason(id)}"`);
    const max = checkMaxBytes(options.maxBytes);
    const what = `${key} of version ${id}`;
    const op = { what: "read", key: what };
    const a = await this.#http.send({
      method: "GET",
      path: `${this.#base}?versions&id=${id}&key=${key}`,
      op,
      limit: max,
      tooLarge: (size) => objectTooLarge(what, max, size),
    });
    if (a.status === 404) return null;
    if (a.status !== 200) throw this.#error(a, op);
    return a.body;
  }

  /** The server's key-less check of this repository's structure (`GET /<repo>?check`). */
  async checkStructure(): Promise<StructureReport> {
    const body = await this.#getJson("?check", "check", MAX_CHECK_BYTES);
    const bad = (why: string) =>
      new IntegrityError(`The server's check report of ${this.location} is malformed: ${why}`);
    const r = (body ?? {}) as { problems?: unknown; stats?: unknown; error?: unknown };
    if (typeof r.error === "string") {
      throw new BackendError(
        `Cannot check ${this.location}: the server's check failed: ${escapeReason(r.error)}`,
      );
    }
    if (!Array.isArray(r.problems) || r.problems.length > MAX_CHECK_PROBLEMS) {
      throw bad("no problems array");
    }
    const stats = (r.stats ?? {}) as { packs?: unknown; bytes_read?: unknown };
    if (!isCount(stats.packs) || !isCount(stats.bytes_read)) throw bad("invalid counts");
    const problems: StructureProblem[] = [];
    for (const p of r.problems as unknown[]) {
      const { kind, severity, message } = (p ?? {}) as Record<string, unknown>;
      if (typeof kind !== "string" || !/^[a-z-]{1,40}$/.test(kind)) throw bad("an invalid kind");
      if (severity !== "error" && severity !== "warning") throw bad("an invalid severity");
      if (typeof message !== "string") throw bad("a finding without a message");
      problems.push({ kind, severity, message: escapeReason(message) });
    }
    return { problems, packs: stats.packs, bytesRead: stats.bytes_read };
  }

  /** The JSON of `GET /<repo><query>`, at most `limit` bytes. */
  async #getJson(query: string, what: string, limit: number): Promise<unknown> {
    const op = { what };
    const a = await this.#http.send({
      method: "GET",
      path: this.#base + query,
      op,
      limit,
      tooLarge: () =>
        new IntegrityError(
          `The server's answer to ${what} ${this.location} is over ${limit} bytes`,
        ),
    });
    if (a.status !== 200) throw this.#error(a, op);
    try {
      return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(a.body));
    } catch (err) {
      throw new IntegrityError(`The server's answer to ${what} ${this.location} is not JSON`, {
        cause: err,
      });
    }
  }

  /** Releases the connections kept open. */
  close(): Promise<void> {
    this.#http.close();
    return Promise.resolve();
  }

  #objectPath(key: string): string {
    return this.#base + "/" + key.split("/").map(encodeURIComponent).join("/");
  }

  #notFound(key: string): NotFoundError {
    return new NotFoundError(`Object "${key}" not found in ${this.location}`);
  }

  #error(a: Answer, op: RestOperation): VgerError {
    return restError(a.status, a.body, op, this.location);
  }

  #badListing(prefix: string, why: string): IntegrityError {
    const what = prefix === "" ? "" : ` of "${prefix}*"`;
    return new IntegrityError(
      `The server's listing${what} in ${this.location} is malformed: ${why}`,
    );
  }

  /** One listing page, checked: keys valid, under the prefix, after `after`, in order. */
  #parsePage(
    body: Uint8Array,
    prefix: string,
    after: string,
  ): { objects: ObjectInfo[]; next: string | null } {
    let page: unknown;
    try {
      page = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body));
    } catch {
      throw this.#badListing(prefix, "not JSON");
    }
    const p = page as { objects?: unknown; next?: unknown } | null;
    if (!p || !Array.isArray(p.objects) || !(p.next === null || typeof p.next === "string")) {
      throw this.#badListing(prefix, "no objects and next");
    }
    if (p.objects.length > LIST_PAGE_SIZE) {
      throw this.#badListing(prefix, `more than ${LIST_PAGE_SIZE} objects in a page`);
    }
    const objects: ObjectInfo[] = [];
    let last = after;
    for (const o of p.objects as unknown[]) {
      const { key, size } = (o ?? {}) as { key?: unknown; size?: unknown };
      if (typeof key !== "string" || !isValidKey(key) || !key.startsWith(prefix)) {
        throw this.#badListing(prefix, "a key that is invalid or outside the prefix");
      }
      if (typeof size !== "number" || !Number.isSafeInteger(size) || size < 0) {
        throw this.#badListing(prefix, `an invalid size of "${key}"`);
      }
      if (compareBytes(key, last) <= 0) {
        throw this.#badListing(prefix, "keys out of order or repeated");
      }
      last = key;
      objects.push({ key, size });
    }
    if (p.next !== null && (compareBytes(p.next, after) <= 0 || objects.length === 0)) {
      // a next page that does not move on would never end
      throw this.#badListing(prefix, "a next page that does not move on");
    }
    return { objects, next: p.next };
  }

  /** A PUT of `body` (conditional when `ifAbsent`); 404 there is the unknown repository's. */
  #upload(key: string, body: PutBody, op: RestOperation, ifAbsent: boolean): Promise<Answer> {
    return this.#http.send({
      method: "PUT",
      path: this.#objectPath(key),
      op,
      body,
      headers: ifAbsent ? { "if-none-match": "*" } : {},
      limit: MAX_ERROR_BODY_BYTES,
      tooLarge: () => new IntegrityError(`The server answered the write of "${key}" at length`),
    });
  }
}
/**
 * The repository URL checked: http or https, a repository name as its last path segment, no
 * credentials (the token goes in rest_token), no query or fragment.
 */
export function parseRepositoryUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch (err) {
    throw new UsageError(`Repository "${text}" is not a URL`, { cause: err });
  }
  const shown = `${url.protocol}//${url.host}${url.pathname}`;
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new UsageError(`Repository "${shown}" is not an http:// or https:// URL`);
  }
  if (url.username !== "" || url.password !== "") {
    throw new UsageError(
      `Repository "${shown}" has a user name or password in its URL: put the token in rest_token`,
    );
  }
  if (url.search !== "" || url.hash !== "") {
    throw new UsageError(`Repository "${shown}" has a query or fragment: give the repository URL`);
  }
  url.pathname = url.pathname.replace(/\/+$/, "");
  const segments = url.pathname.split("/").slice(1);
  const name = segments.at(-1) ?? "";
  if (!REPO_NAME.test(name) || name === "health" || name === "ui") {
    throw new UsageError(
      `Repository "${shown}" names no repository: end the URL with its name ` +
        "(letters, digits, '.', '_' and '-', not starting with '.', not health or ui)",
    );
  }
  return url;
}

/** Byte order of the UTF-8 of two strings (the server's listing order). */
function compareBytes(a: string, b: string): number {
  const x = encoder.encode(a);
  const y = encoder.encode(b);
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) if (x[i] !== y[i]) return x[i] - y[i];
  return x.length - y.length;
}

const encoder = new TextEncoder();

function isCount(n: unknown): n is number {
  return typeof n === "number" && Number.isSafeInteger(n) && n >= 0;
}

function checkKey(key: string): void {
  if (!isValidKey(key)) throw new BackendError(`Invalid object key "${key}"`);
}

/** Whether `value` is a role vger-server names. */
function isRole(value: unknown): value is StorageRole {
  return value === "read-only" || value === "append-only" || value === "full";
}
