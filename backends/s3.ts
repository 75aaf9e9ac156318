/**
 * A backend on S3 or an S3-compatible service (Ceph RGW, MinIO, Garage...), through
 * `@aws-sdk/client-s3`. The SDK is loaded on the backend's first request, so commands on local
 * repositories never load it. Reads of objects and ranges (`get`, `getRange`), the bulk of
 * restore and check, skip the SDK's middleware: they are GET requests signed here (SigV4,
 * backends/s3_sign.ts, with the SDK client's credentials and its address of the bucket) and sent
 * with `fetch`, at half the CPU per byte; their errors take the SDK's shape, so they read the
 * same.
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
} from "./backend.ts";
import {
  errorName,
  hasErrorCode,
  isHeadNotFound,
  type Operation,
  s3Error,
  status,
} from "./s3_errors.ts";
import { SigV4Signer, uriEncodePath } from "./s3_sign.ts";

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
      const data = await this.#readBody(read, { size, max }, op);
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
    if (
      !Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0
    ) {
      throw new BackendError(
        `Invalid range of object "${key}": offset ${offset}, length ${length}`,
      );
    }
    if (length === 0) {
      // An HTTP Range cannot ask for no bytes: the object's size answers instead.
      const size = await this.size(key);
      if (size === null) throw new NotFoundError(`Object "${key}" not found`);
      if (offset > size) throw truncated(key, offset, length, size);
      return new Uint8Array(0);
    }
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
      const data = await this.#readBody(read, { size: contentLength(response), max: length }, op);
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
   * {@linkcode #fetchGet}), except to a port that `fetch` refuses to ask (the fetch standard's
   * "bad ports", 6000 or 10080 say): through the SDK.
   */
  async #read(key: string, range: string | undefined, op: Operation): Promise<FetchedRead> {
    const client = await this.#connect();
    return client.base.port !== "" && BAD_PORTS.has(Number(client.base.port))
      ? await this.#sdkGet(client, key, range, op)
      : await this.#fetchGet(client, key, range, op);
  }

  /** A GET through the SDK, its answer as a `Response`. */
  async #sdkGet(
    { sdk, s3 }: Client,
    key: string,
    range: string | undefined,
    op: Operation,
  ): Promise<FetchedRead> {
    let out: Sdk.GetObjectCommandOutput;
    try {
      out = await s3.send(
        new sdk.GetObjectCommand({ Bucket: this.#bucket, Key: this.#key(key), Range: range }),
      );
    } catch (err) {
      if (err instanceof VgerError || status(err) === undefined) throw this.#error(err, op);
      return {
        response: new Response(null, { status: 500 }),
        error: err,
        touch() {},
        done: async () => {},
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
   * A signed GET of the object (of `range` when given) through `fetch`, not the SDK: the SDK's
   * read path costs twice the CPU per byte (bench/README.md). Redirects are not followed (a
   * 301 says the region is wrong). The request fails with a TimeoutError when the server stays
   * silent `timeoutMs`, before the answer or within its body.
   */
  async #fetchGet(
    { s3, base, signer }: Client,
    key: string,
    range: string | undefined,
    op: Operation,
  ): Promise<FetchedRead> {
    let credentials: Credentials;
    try {
      credentials = await s3.config.credentials();
    } catch (err) {
      throw this.#error(err, op);
    }
    const url = new URL(base.href);
    url.pathname = base.pathname.replace(/\/$/, "") + uriEncodePath("/" + this.#key(key));
    const headers = signer.sign({
      method: "GET",
      url,
      headers: {
        "x-amz-content-sha256": "UNSIGNED-PAYLOAD",
        ...(range === undefined ? {} : { range }),
      },
      payloadHash: "UNSIGNED-PAYLOAD",
      credentials,
    });
    const watch = new IdleWatch(this.#options.timeoutMs ?? DEFAULT_S3_TIMEOUT_MS);
    let response: Response;
    try {
      response = await fetch(url, { headers, redirect: "manual", signal: watch.signal });
    } catch (err) {
      watch.stop();
      throw this.#error(fetchError(err), op);
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
        throw this.#error(fetchError(err), op);
      }
    }
    return read;
  }

  /**
   * The body of a fetched read: `size` bytes when the answer says so, read straight into one
   * buffer of that size (a BYOB reader: no copy, and 0.3-0.4 s less CPU per GB than pieces
   * copied together); at most `max + 1` bytes otherwise (the caller tells what too many means).
   */
  async #readBody(
    read: FetchedRead,
    limits: { size: number | undefined; max: number },
    op: Operation,
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
          throw this.#error(fetchError(err), op);
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
      throw this.#error(fetchError(err), op);
    } finally {
      await reader.cancel().catch(() => {});
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
const SILENT = {
  trace() {},
  debug() {},
  info() {},
  warn() {},
  error() {},
};

function truncated(key: string, offset: number, length: number, size: number): IntegrityError {
  return new IntegrityError(
    `Object "${key}" is truncated: wanted bytes ${offset}..${offset + length}, size is ${size}`,
  );
}

/** A GET's answer (`S3Backend.#read`). */
interface FetchedRead {
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
const BAD_PORTS = new Set([
  0,
  1,
  7,
  9,
  11,
  13,
  15,
  17,
  19,
  20,
  21,
  22,
  23,
  25,
  37,
  42,
  43,
  53,
  69,
  77,
  79,
  87,
  95,
  101,
  102,
  103,
  104,
  109,
  110,
  111,
  113,
  115,
  117,
  119,
  123,
  135,
  137,
  139,
  143,
  161,
  179,
  389,
  427,
  465,
  512,
  513,
  514,
  515,
  526,
  530,
  531,
  532,
  540,
  548,
  554,
  556,
  563,
  587,
  601,
  636,
  989,
  990,
  993,
  995,
  1719,
  1720,
  1723,
  2049,
  3659,
  4045,
  4190,
  5060,
  5061,
  6000,
  6566,
  6665,
  6666,
  6667,
  6668,
  6669,
  6679,
  6697,
  10080,
]);

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
function contentLength(response: Response): number | undefined {
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
async function answerError(response: Response): Promise<Error> {
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

/** The total of `bytes a-b/total`, if given. */
function totalFromContentRange(range: string | undefined): number | undefined {
  const m = range?.match(/\/(\d+)\s*$/);
  return m ? Number(m[1]) : undefined;
}

/** Drops a response body unread, so its connection is freed. */
async function discard(body: unknown): Promise<void> {
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
