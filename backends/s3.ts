/**
 * A backend on S3 or an S3-compatible service (Ceph RGW, MinIO, Garage...), through
 * `@aws-sdk/client-s3`. The SDK is loaded on the backend's first request, so commands on local
 * repositories never load it. Reads (`get`, `getRange`, the bulk of restore and check) skip the
 * SDK's middleware: GET requests signed here (backends/s3_sign.ts), sent with `fetch`
 * (backends/s3_fetch.ts), at half the CPU per byte, their errors in the SDK's shape.
 *
 * Objects live under an optional prefix of one bucket. A buffer, and any body of up to
 * {@linkcode PART_SIZE}, goes up in one PUT with its Content-Length; larger bodies (staged packs,
 * lists of parts) in a multipart upload of {@linkcode PART_SIZE} parts, aborted when anything fails, so an interrupted upload never
 * leaves an object under its final key. `create` is one PUT with `If-None-Match: *`, whatever
 * the size. Credentials come from the options, the environment (`AWS_ACCESS_KEY_ID`,
 * `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`) or the shared files (`~/.aws/credentials`,
 * `~/.aws/config`, `AWS_PROFILE`); no other provider (instance metadata and the like) is asked,
 * and no credential appears in any message.
 *
 * @example
 * ```ts ignore
 * import { S3Backend } from "./s3.ts";
 *
 * const backend = new S3Backend({ bucket: "backups", prefix: "host1", region: "eu-west-1" });
 * await backend.put("config", new TextEncoder().encode("hello"));
 * await backend.close();
 * ```
 *
 * @module
 */

import type * as Sdk from "@aws-sdk/client-s3";
import type * as Ini from "@aws-sdk/credential-provider-ini";
import {
  AlreadyExistsError,
  BackendError,
  IntegrityError,
  NotFoundError,
  VgerError,
} from "../lib/errors.ts";
import {
  type Backend,
  type BackendCapabilities,
  bodyPieces,
  bodySize,
  checkMaxBytes,
  type GetOptions,
  isValidKey,
  type ObjectInfo,
  objectTooLarge,
  probeConditionalCreate,
  type PutBody,
  rangeWithoutRead,
  truncated,
} from "./backend.ts";
import {
  errorName,
  hasErrorCode,
  isHeadNotFound,
  type Operation,
  s3Error,
  status,
} from "./s3_errors.ts";
import {
  contentLength,
  discard,
  type FetchedRead,
  isBadPort,
  readBody,
  sdkRead,
  signedGet,
  totalFromContentRange,
} from "./s3_fetch.ts";
import { SigV4Signer } from "./s3_sign.ts";

/** The size of a multipart upload's parts (S3 requires at least 5 MiB for all but the last). */
export const PART_SIZE = 8 * 1024 * 1024;

/**
 * Requests worth running at once: 8. Measured with `BENCH_CONNECTIONS="2 4 8 16" deno task
 * bench:s3` (bench/README.md): whole backups, restores and checks of a 1.69 GB corpus to Ceph
 * RGW (memstore) on loopback, 2 busy cores, two runs each, seconds: backup 19.2/23.5 (2),
 * 16.4/21.1 (4), 18.5/19.8 (8), 17.6/20.1 (16); restore 11.6/15.4, 11.8/16.0, 14.7/14.8,
 * 14.4/13.9; check 13.3/16.6, 15.6/17.1, 16.4/16.8, 16.5/15.6. On loopback the count is within
 * this VM's noise from 2 up: what bounds these runs is CPU, not round trips. With the packer's
 * byte budget (lib/packer.ts's UPLOAD_BYTES) and check's read-ahead budget, more connections no
 * longer cost memory (backup peak RSS 477 MiB at 2, 530 at 8, 552 at 16; it was 793 at 8 and
 * 1,165 at 16 before the budget), so the default is chosen for storage with latency, where each
 * connection waits a round trip per request: 8 keeps a remote bucket busy where 2 or 4 would
 * leave it idle (restic defaults to 5). A first measure of raw requests, 48 puts then gets of
 * 8 MiB buffers, MiB/s: 1 connection 153/422, 2: 213/431, 4: 226/383, 8: 257/548, 16: 230/396.
 */
export const DEFAULT_S3_CONNECTIONS = 8;

/** Where an {@linkcode S3Backend} stores its objects and how it signs in. */
export interface S3BackendOptions {
  /** The bucket. */
  bucket: string;
  /** Key prefix inside the bucket, without leading or trailing `/`; empty = the bucket root. */
  prefix?: string;
  /** Region; defaults to `AWS_REGION`, `AWS_DEFAULT_REGION`, then `us-east-1`. */
  region?: string;
  /** Endpoint URL of an S3-compatible service; path-style addressing is used with it. */
  endpoint?: string;
  /** Access key id (with the secret); otherwise the environment or the shared files. */
  accessKeyId?: string;
  /** Secret access key (with the id). */
  secretAccessKey?: string;
  /** Requests worth running at once; {@linkcode DEFAULT_S3_CONNECTIONS} when absent. */
  connections?: number;
  /**
   * How long a connection may take to open, and a request may go without a byte either way,
   * before it fails, in milliseconds; {@linkcode DEFAULT_S3_TIMEOUT_MS} when absent.
   */
  timeoutMs?: number;
}

/** Milliseconds a connection may take to open or a request may stay silent (2 minutes). */
export const DEFAULT_S3_TIMEOUT_MS = 120_000;

type SdkModule = typeof Sdk;

// The SDK's specifiers are values, not literals, so that Deno resolves the packages when an S3
// repository is opened, not when the program starts (a literal `import("...")` makes it read
// the registry metadata of the package, 2 MB of JSON, on every start of vger). They are full
// `npm:` specifiers, as deno.json's imports map spells them, so that they resolve without the
// map too (in the published package).
const SDK = "npm:@aws-sdk/client-s3@3";
const INI = "npm:@aws-sdk/credential-provider-ini@3";

/** What the SDK signs with. */
interface Credentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

interface Client {
  sdk: SdkModule;
  s3: Sdk.S3Client;
  /** The bucket's URL, as the SDK addresses it (path-style with an endpoint). */
  base: URL;
  /** Signs the reads that go through `fetch`. */
  signer: SigV4Signer;
}

/** A {@linkcode Backend} over one bucket (and prefix) of S3 or an S3-compatible service. */
export class S3Backend implements Backend {
  /** `s3://BUCKET/PREFIX`, after the endpoint when one is given (never a credential). */
  readonly location: string;
  /** What this backend can do. */
  readonly capabilities: BackendCapabilities;
  readonly #options: S3BackendOptions;
  readonly #bucket: string;
  readonly #prefix: string;
  readonly #endpoint: string | undefined;
  readonly #region: string;
  #client: Promise<Client> | undefined;

  /** A backend over `options.bucket`; nothing is loaded or contacted until the first call. */
  constructor(options: S3BackendOptions) {
    this.#options = options;
    this.#bucket = options.bucket;
    this.#prefix = normalizePrefix(options.prefix ?? "");
    this.#endpoint = options.endpoint === undefined ? undefined : safeEndpoint(options.endpoint);
    this.#region = options.region ?? envRegion() ?? "us-east-1";
    const path = `s3://${this.#bucket}${this.#prefix === "" ? "" : "/" + this.#prefix}`;
    this.location = this.#endpoint === undefined ? path : `${path} at ${this.#endpoint}`;
    this.capabilities = {
      connections: options.connections ?? DEFAULT_S3_CONNECTIONS,
      // the verdict is the server's (and its bucket's), whatever the prefix
      createProbeScope: this.#endpoint === undefined
        ? `s3://${this.#bucket} in ${this.#region}`
        : `s3://${this.#bucket} at ${this.#endpoint}`,
    };
  }

  /** The whole object, or null when absent; see {@linkcode Backend.get}. */
  async get(key: string, options: GetOptions = {}): Promise<Uint8Array | null> {
    checkKey(key);
    const max = checkMaxBytes(options.maxBytes);
    const op = { what: "read", key };
    const read = await this.#read(key, undefined, op);
    try {
      if (read.error !== undefined) {
        if (errorName(read.error) === "NoSuchKey") return null;
        throw this.#error(read.error, op);
      }
      const size = contentLength(read.response);
      if (size !== undefined && size > max) throw objectTooLarge(key, max, size);
      const data = await this.#body(read, size, max, op);
      if (data.length > max) throw objectTooLarge(key, max);
      if (size !== undefined && data.length !== size) {
        throw new IntegrityError(
          `Object "${key}" was cut short: got ${data.length} of its ${size} bytes`,
        );
      }
      return data;
    } finally {
      await read.done();
    }
  }

  /** Exactly `length` bytes from `offset`; see {@linkcode Backend.getRange}. */
  async getRange(key: string, offset: number, length: number): Promise<Uint8Array> {
    checkKey(key);
    const answered = await rangeWithoutRead(
      key,
      offset,
      length,
      () => this.size(key),
      () => new NotFoundError(`Object "${key}" not found`),
    );
    if (answered !== null) return answered;
    const op = { what: "read", key };
    const read = await this.#read(key, `bytes=${offset}-${offset + length - 1}`, op);
    try {
      const response = read.response;
      const err = read.error;
      if (err !== undefined) {
        if (errorName(err) === "NoSuchKey") {
          throw new NotFoundError(`Object "${key}" not found`, { cause: err });
        }
        if (status(err) === 416) {
          const size = await this.size(key);
          if (size === null) throw new NotFoundError(`Object "${key}" not found`, { cause: err });
          throw truncated(key, offset, length, size);
        }
        throw this.#error(err, op);
      }
      const range = response.headers.get("content-range") ?? undefined;
      if (response.status !== 206 || range === undefined) {
        // a server that ignores Range sends the whole object: never read it all
        const size = contentLength(response);
        if (size !== undefined && offset + length > size) {
          throw truncated(key, offset, length, size);
        }
        throw new BackendError(
          `The S3 server ignored the range of object "${key}" (${this.location})`,
        );
      }
      const total = totalFromContentRange(range);
      const data = await this.#body(read, contentLength(response), length, op);
      if (data.length !== length) {
        throw truncated(key, offset, length, total ?? offset + data.length);
      }
      return data;
    } finally {
      await read.done();
    }
  }

  /** The object's size, or null when it does not exist. */
  async size(key: string): Promise<number | null> {
    checkKey(key);
    const { sdk, s3 } = await this.#connect();
    try {
      const out = await s3.send(
        new sdk.HeadObjectCommand({ Bucket: this.#bucket, Key: this.#key(key) }),
      );
      return out.ContentLength ?? 0;
    } catch (err) {
      if (isHeadNotFound(err)) return null;
      throw this.#error(await this.#explainHead(err, key), { what: "read", key });
    }
  }

  /**
   * The answer to a HEAD request has no body, so its error has no S3 error code: a 403 may be
   * a wrong secret, an unknown access key id or a missing permission. For such a client error
   * this asks again with a one-byte GET, whose error names the code, and returns that error
   * (else the HEAD's own).
   */
  async #explainHead(err: unknown, key: string): Promise<unknown> {
    const code = status(err);
    if (code === undefined || code < 400 || code >= 500 || hasErrorCode(err)) return err;
    const { sdk, s3 } = await this.#connect();
    try {
      const out = await s3.send(
        new sdk.GetObjectCommand({ Bucket: this.#bucket, Key: this.#key(key), Range: "bytes=0-0" }),
      );
      await discard(out.Body);
    } catch (second) {
      if (hasErrorCode(second) && status(second) !== 416) return second;
    }
    return err;
  }

  /** Every object whose key starts with `prefix`, page by page (ListObjectsV2). */
  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    if (prefix !== "" && !isValidKey(prefix + "x")) {
      throw new BackendError(`Invalid object key prefix "${prefix}"`);
    }
    const { sdk, s3 } = await this.#connect();
    const base = this.#prefix === "" ? "" : this.#prefix + "/";
    let token: string | undefined;
    do {
      let out: Sdk.ListObjectsV2CommandOutput;
      try {
        out = await s3.send(
          new sdk.ListObjectsV2Command({
            Bucket: this.#bucket,
            Prefix: base + prefix,
            ContinuationToken: token,
          }),
        );
      } catch (err) {
        throw this.#error(err, { what: "list", key: prefix === "" ? undefined : prefix + "*" });
      }
      for (const object of out.Contents ?? []) {
        if (object.Key === undefined || !object.Key.startsWith(base)) continue;
        yield { key: object.Key.slice(base.length), size: object.Size ?? 0 };
      }
      token = out.IsTruncated ? out.NextContinuationToken : undefined;
    } while (token !== undefined);
  }

  /** Stores an object, replacing any old one; large bodies go up in parts. */
  async put(key: string, body: PutBody): Promise<void> {
    checkKey(key);
    await this.#upload(key, body, false);
  }

  /** Stores an object only if the key is absent (`If-None-Match: *`); returns whether it did. */
  async create(key: string, body: PutBody): Promise<boolean> {
    checkKey(key);
    try {
      await this.#upload(key, body, true);
      return true;
    } catch (err) {
      if (err instanceof AlreadyExistsError) return false;
      throw err;
    }
  }

  /**
   * Whether the server honours `If-None-Match: *` (a refused second create is its 412); see
   * {@linkcode probeConditionalCreate}.
   */
  probeCreate(): Promise<boolean> {
    return probeConditionalCreate(this);
  }

  /** Removes an object; removing an absent object is not an error. */
  async delete(key: string): Promise<void> {
    checkKey(key);
    const { sdk, s3 } = await this.#connect();
    try {
      await s3.send(new sdk.DeleteObjectCommand({ Bucket: this.#bucket, Key: this.#key(key) }));
    } catch (err) {
      if (errorName(err) === "NoSuchKey") return;
      throw this.#error(err, { what: "delete", key });
    }
  }

  /** Aborts the multipart uploads under the prefix that interrupted puts left; returns how many. */
  async removeLeftovers(): Promise<number> {
    const { sdk, s3 } = await this.#connect();
    const base = this.#prefix === "" ? "" : this.#prefix + "/";
    let removed = 0;
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    for (;;) {
      let out: Sdk.ListMultipartUploadsCommandOutput;
      try {
        out = await s3.send(
          new sdk.ListMultipartUploadsCommand({
            Bucket: this.#bucket,
            Prefix: base,
            KeyMarker: keyMarker,
            UploadIdMarker: uploadIdMarker,
          }),
        );
      } catch (err) {
        throw this.#error(err, { what: "list the uploads of" });
      }
      for (const upload of out.Uploads ?? []) {
        if (upload.Key === undefined || upload.UploadId === undefined) continue;
        try {
          await s3.send(
            new sdk.AbortMultipartUploadCommand({
              Bucket: this.#bucket,
              Key: upload.Key,
              UploadId: upload.UploadId,
            }),
          );
          removed++;
        } catch (err) {
          if (errorName(err) !== "NoSuchUpload") {
            throw this.#error(err, {
              what: "abort an upload of",
              key: upload.Key.slice(base.length),
            });
          }
        }
      }
      if (!out.IsTruncated) return removed;
      keyMarker = out.NextKeyMarker;
      uploadIdMarker = out.NextUploadIdMarker;
    }
  }

  /** Releases the client's connections. */
  async close(): Promise<void> {
    const client = this.#client;
    this.#client = undefined;
    if (client === undefined) return;
    try {
      (await client).s3.destroy();
    } catch {
      // a client that failed to load holds nothing
    }
  }

  #key(key: string): string {
    return this.#prefix === "" ? key : `${this.#prefix}/${key}`;
  }

  #error(err: unknown, op: Operation): VgerError {
    return s3Error(err, op, {
      bucket: this.#bucket,
      region: this.#region,
      location: this.location,
      endpoint: this.#endpoint,
    });
  }

  /** The body of a read (see {@linkcode readBody}), its failures in words. */
  #body(
    read: FetchedRead,
    size: number | undefined,
    max: number,
    op: Operation,
  ): Promise<Uint8Array> {
    return readBody(read, { size, max }).catch((err) => Promise.reject(this.#error(err, op)));
  }

  #connect(): Promise<Client> {
    this.#client ??= this.#load();
    return this.#client;
  }

  async #load(): Promise<Client> {
    const sdk: SdkModule = await import(SDK);
    const o = this.#options;
    const s3 = new sdk.S3Client({
      region: this.#region,
      endpoint: o.endpoint,
      forcePathStyle: o.endpoint !== undefined,
      credentials: o.accessKeyId !== undefined && o.secretAccessKey !== undefined
        ? { accessKeyId: o.accessKeyId, secretAccessKey: o.secretAccessKey }
        : credentialsFromEnvOrFiles,
      // Retries belong to vger's retry decorator (issue 10): one attempt here.
      maxAttempts: 1,
      // Without these a server that accepts and never answers hangs vger forever. The request
      // timeout is the socket's idle time, so long transfers that progress are not cut.
      requestHandler: {
        connectionTimeout: o.timeoutMs ?? DEFAULT_S3_TIMEOUT_MS,
        requestTimeout: o.timeoutMs ?? DEFAULT_S3_TIMEOUT_MS,
        throwOnRequestTimeout: true,
      },
      // The SDK's own warnings and errors would go to the console; vger reports its errors.
      logger: SILENT,
    });
    // the bucket's URL as the SDK's own rules address it: virtual-host on AWS when the bucket
    // name allows it, path-style with an endpoint
    const base = s3.config.endpointProvider({
      Bucket: this.#bucket,
      Region: this.#region,
      ForcePathStyle: o.endpoint !== undefined,
      ...(o.endpoint === undefined ? {} : { Endpoint: o.endpoint }),
      UseFIPS: false,
      UseDualStack: false,
      Accelerate: false,
    }).url;
    return { sdk, s3, base, signer: new SigV4Signer({ region: this.#region, service: "s3" }) };
  }

  /**
   * A GET of the object (of `range` when given): its answer, or its error in the SDK's shape
   * when the answer is not a success; call `done` once finished with it. Through `fetch` (see
   * {@linkcode signedGet}), except to a port that `fetch` refuses to ask (the fetch standard's
   * "bad ports", 6000 or 10080 say): through the SDK.
   */
  async #read(key: string, range: string | undefined, op: Operation): Promise<FetchedRead> {
    const { sdk, s3, base, signer } = await this.#connect();
    const path = this.#key(key);
    try {
      if (isBadPort(base)) {
        return await sdkRead(() =>
          s3.send(new sdk.GetObjectCommand({ Bucket: this.#bucket, Key: path, Range: range }))
        );
      }
      const credentials = await s3.config.credentials();
      const timeoutMs = this.#options.timeoutMs ?? DEFAULT_S3_TIMEOUT_MS;
      return await signedGet({ base, path, range, signer, credentials, timeoutMs });
    } catch (err) {
      throw this.#error(err, op);
    }
  }

  async #upload(key: string, body: PutBody, ifAbsent: boolean): Promise<void> {
    const size = bodySize(body);
    // A create is one conditional PUT whatever its size: Ceph RGW 16 ignores If-None-Match on
    // CompleteMultipartUpload (tests/backend_s3_test.ts saw a second create win), and vger
    // creates only small objects (locks, the repository config).
    if (body instanceof Uint8Array || size <= PART_SIZE || ifAbsent) {
      const data = body instanceof Uint8Array ? body : await collect(body, size);
      await this.#putOnce(key, data, ifAbsent);
    } else {
      await this.#multipart(key, body, size);
    }
  }

  async #putOnce(key: string, data: Uint8Array, ifAbsent: boolean): Promise<void> {
    const { sdk, s3 } = await this.#connect();
    const op = { what: ifAbsent ? "create" : "write", key };
    // AWS answers 409 ConditionalRequestConflict while another conditional write of the key is
    // in flight; the next attempt sees its outcome.
    for (let attempt = 1;; attempt++) {
      try {
        await s3.send(
          new sdk.PutObjectCommand({
            Bucket: this.#bucket,
            Key: this.#key(key),
            Body: data,
            ContentLength: data.length,
            IfNoneMatch: ifAbsent ? "*" : undefined,
          }),
        );
        return;
      } catch (err) {
        if (ifAbsent && status(err) === 412) {
          throw new AlreadyExistsError(`Object "${key}" already exists`, { cause: err });
        }
        if (ifAbsent && status(err) === 409 && attempt < 5) continue;
        throw this.#error(err, op);
      }
    }
  }

  async #multipart(key: string, body: PutBody, size: number): Promise<void> {
    const { sdk, s3 } = await this.#connect();
    const op = { what: "write", key };
    const target = { Bucket: this.#bucket, Key: this.#key(key) };
    let uploadId: string | undefined;
    try {
      uploadId = (await s3.send(new sdk.CreateMultipartUploadCommand(target))).UploadId;
    } catch (err) {
      throw this.#error(err, op);
    }
    if (uploadId === undefined) {
      throw new BackendError(`The S3 server gave no upload id for object "${key}"`);
    }
    try {
      const parts: Sdk.CompletedPart[] = [];
      let sent = 0;
      for await (const part of partsOf(body, size)) {
        const number = parts.length + 1;
        let out: Sdk.UploadPartCommandOutput;
        try {
          out = await s3.send(
            new sdk.UploadPartCommand({
              ...target,
              UploadId: uploadId,
              PartNumber: number,
              Body: part,
              ContentLength: part.length,
            }),
          );
        } catch (err) {
          throw this.#error(err, op);
        }
        parts.push({ PartNumber: number, ETag: out.ETag });
        sent += part.length;
      }
      if (sent !== size) {
        throw new BackendError(`Body of object "${key}" is shorter than its size`);
      }
      try {
        await s3.send(
          new sdk.CompleteMultipartUploadCommand({
            ...target,
            UploadId: uploadId,
            MultipartUpload: { Parts: parts },
          }),
        );
      } catch (err) {
        throw this.#error(err, op);
      }
    } catch (err) {
      try {
        await s3.send(new sdk.AbortMultipartUploadCommand({ ...target, UploadId: uploadId }));
      } catch {
        // removeLeftovers aborts what this could not
      }
      throw err;
    }
  }
}

/** A logger that drops the SDK's messages. */
const SILENT = { trace() {}, debug() {}, info() {}, warn() {}, error() {} };

function checkKey(key: string): void {
  if (!isValidKey(key)) throw new BackendError(`Invalid object key "${key}"`);
}

/** A prefix without leading or trailing `/`; throws BackendError for an invalid one. */
function normalizePrefix(prefix: string): string {
  const p = prefix.replace(/^\/+|\/+$/g, "");
  if (p !== "" && !isValidKey(p)) throw new BackendError(`Invalid S3 key prefix "${prefix}"`);
  return p;
}

/** The endpoint URL without user name or password, for messages. */
function safeEndpoint(endpoint: string): string {
  try {
    const url = new URL(endpoint);
    url.username = "";
    url.password = "";
    return url.href.replace(/\/$/, "");
  } catch {
    return "the S3 endpoint";
  }
}

function envRegion(): string | undefined {
  try {
    return Deno.env.get("AWS_REGION") || Deno.env.get("AWS_DEFAULT_REGION") || undefined;
  } catch {
    return undefined;
  }
}

/**
 * Credentials from the environment, else from the shared files (`fromIni`, loaded when needed);
 * never from instance metadata or another host.
 */
async function credentialsFromEnvOrFiles(): Promise<Credentials> {
  const id = Deno.env.get("AWS_ACCESS_KEY_ID");
  const secret = Deno.env.get("AWS_SECRET_ACCESS_KEY");
  if (id && secret) {
    const token = Deno.env.get("AWS_SESSION_TOKEN");
    return { accessKeyId: id, secretAccessKey: secret, ...(token ? { sessionToken: token } : {}) };
  }
  const { fromIni }: typeof Ini = await import(INI);
  try {
    return await fromIni()();
  } catch (err) {
    throw new BackendError(
      "No S3 credentials: set s3_access_key_id and s3_secret_access_key, " +
        "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a profile in ~/.aws/credentials",
      { cause: err },
    );
  }
}

/** A body of at most {@linkcode PART_SIZE} bytes as one buffer. */
async function collect(body: PutBody, size: number): Promise<Uint8Array> {
  const out = new Uint8Array(size);
  let at = 0;
  for await (const piece of bodyPieces(body)) {
    if (at + piece.length > size) throw new BackendError("Body is longer than its size");
    out.set(piece, at);
    at += piece.length;
  }
  if (at !== size) throw new BackendError("Body is shorter than its size");
  return out;
}

/** The body cut into parts of {@linkcode PART_SIZE} bytes (the last may be shorter). */
async function* partsOf(body: PutBody, size: number): AsyncGenerator<Uint8Array> {
  let part = new Uint8Array(Math.min(PART_SIZE, size));
  let fill = 0;
  let total = 0;
  for await (const piece of bodyPieces(body)) {
    total += piece.length;
    if (total > size) throw new BackendError("Body is longer than its size");
    let at = 0;
    while (at < piece.length) {
      const n = Math.min(part.length - fill, piece.length - at);
      part.set(piece.subarray(at, at + n), fill);
      fill += n;
      at += n;
      if (fill === part.length) {
        yield part;
        const left = size - total + (piece.length - at);
        if (left === 0) return;
        part = new Uint8Array(Math.min(PART_SIZE, left));
        fill = 0;
      }
    }
  }
  if (fill > 0) yield part.subarray(0, fill);
}
