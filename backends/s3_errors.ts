/**
 * The S3 backend's errors in words: the SDK's (and the network's) failures mapped to vger's
 * errors, with transient ones (5xx, throttling, resets, timeouts) marked for the retry decorator.
 * Split from backends/s3.ts, which calls {@linkcode s3Error} around every request.
 *
 * @module
 */

import { BackendError, NotFoundError, TransientError, VgerError } from "../lib/errors.ts";

/** What a request was doing, for error messages. */
export interface Operation {
  /** A verb phrase: "read", "write", "list", "delete", "create". */
  what: string;
  /** The object key (relative to the prefix), when there is one. */
  key?: string;
}

/** What {@linkcode s3Error} says about where a request went. */
export interface S3ErrorContext {
  /** The bucket. */
  bucket: string;
  /** The region the client signed for. */
  region: string;
  /** The backend's location, for messages. */
  location: string;
  /** The endpoint URL, when one was given (without credentials). */
  endpoint?: string;
}

/**
 * The vger error of an error thrown by the S3 SDK (or the network under it), in words: a
 * missing bucket, access denied, wrong credentials, a wrong region, an unreachable endpoint, a
 * clock too far off; otherwise the S3 error name and HTTP status. Never the server's own
 * message, which may repeat the access key id.
 */
export function s3Error(err: unknown, op: Operation, ctx: S3ErrorContext): VgerError {
  if (err instanceof VgerError) return err;
  const cause = { cause: err };
  const name = errorName(err);
  const code = status(err);
  const object = op.key === undefined ? ctx.location : `"${op.key}" in ${ctx.location}`;
  const doing = `Cannot ${op.what} ${object}`;
  const where = ctx.endpoint ?? "S3";
  switch (name) {
    case "NoSuchBucket":
      return new NotFoundError(
        `${doing}: bucket "${ctx.bucket}" does not exist on ${where}`,
        cause,
      );
    case "AccessDenied":
    case "AllAccessDisabled":
    case "AccountProblem":
      return new BackendError(
        `${doing}: access denied (the credentials lack permission for bucket "${ctx.bucket}")`,
        cause,
      );
    case "InvalidAccessKeyId":
      return new BackendError(
        `${doing}: ${where} does not know the access key id (check the credentials)`,
        cause,
      );
    case "SignatureDoesNotMatch":
      return new BackendError(
        `${doing}: ${where} rejected the signature (check the secret access key)`,
        cause,
      );
    case "PermanentRedirect":
    case "AuthorizationHeaderMalformed":
    case "IncorrectEndpoint":
    case "IllegalLocationConstraintException":
      return wrongRegion(doing, err, ctx);
    case "RequestTimeTooSkewed":
      return new BackendError(
        `${doing}: this computer's clock is too far from ${where}'s (set the clock)`,
        cause,
      );
    case "TimeoutError":
      return new TransientError(`${doing}: ${where} did not answer in time`, cause);
    case "InvalidBucketName":
      return new BackendError(`${doing}: "${ctx.bucket}" is not a valid bucket name`, cause);
  }
  const net = networkCode(err);
  if (net !== undefined) {
    const why = NETWORK_WORDS[net] ?? net;
    const Class = TRANSIENT_NETWORK.has(net) ? TransientError : BackendError;
    return new Class(`${doing}: cannot reach ${where} (${why})`, cause);
  }
  // the answer to a HEAD request has no body: a redirect, or a 400 naming another region in its
  // x-amz-bucket-region header, is all that tells a wrong region
  const actual = bucketRegion(err);
  if (code === 301 || (code === 400 && actual !== undefined && actual !== ctx.region)) {
    return wrongRegion(doing, err, ctx);
  }
  if (code === 403) {
    // a HEAD request's 403 has no body to say why
    return new BackendError(
      `${doing}: access denied (HTTP 403: wrong credentials, or no permission for bucket "${ctx.bucket}")`,
      cause,
    );
  }
  if (code === 404) {
    // S3 names every 404 of a GET or PUT (NoSuchKey, NoSuchBucket, NoSuchUpload)
    return new BackendError(
      `${doing}: ${where} answered HTTP 404 without an S3 error code (is it an S3 endpoint?)`,
      cause,
    );
  }
  const label = name !== undefined && !VAGUE_NAMES.has(name) && !/^\d+$/.test(name) ? name : "";
  const http = code === undefined ? "" : `HTTP ${code}`;
  const detail = [label, http].filter((s) => s !== "").join(", ");
  if (detail !== "") {
    const transient = (name !== undefined && TRANSIENT_NAMES.has(name)) ||
      (code !== undefined && (code >= 500 || code === 429));
    const Class = transient ? TransientError : BackendError;
    return new Class(`${doing}: S3 error (${detail})`, cause);
  }
  const message = err instanceof Error && err.message !== "UnknownError" ? err.message : "";
  return new BackendError(`${doing}: ${message || "unexpected error from " + where}`, cause);
}

/** The error names the SDK gives an answer without an S3 error code: no word of the cause. */
const VAGUE_NAMES = new Set(["Error", "Unknown", "UnknownError"]);

/** The wrong-region error, naming the bucket's region when S3 told it. */
function wrongRegion(doing: string, err: unknown, ctx: S3ErrorContext): BackendError {
  const actual = bucketRegion(err);
  const hint = actual === undefined || actual === ctx.region ? "" : `: it is in "${actual}"`;
  return new BackendError(
    `${doing}: bucket "${ctx.bucket}" is not in region "${ctx.region}"${hint} (set s3_region)`,
    { cause: err },
  );
}

const NETWORK_WORDS: Record<string, string> = {
  ECONNREFUSED: "connection refused",
  ENOTFOUND: "host not found",
  EAI_AGAIN: "host name lookup failed",
  ECONNRESET: "connection reset",
  ETIMEDOUT: "timed out",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
  ConnectionRefused: "connection refused",
  ConnectionReset: "connection reset",
  TimedOut: "timed out",
};

/** Network failures that a new request may not meet (a refused connection or unknown host is not). */
const TRANSIENT_NETWORK = new Set(["ECONNRESET", "ETIMEDOUT", "ConnectionReset", "TimedOut"]);

/** S3 error codes of throttling and server trouble (sent with a 5xx, 429 or 400 status). */
const TRANSIENT_NAMES = new Set([
  "SlowDown",
  "Throttling",
  "ThrottlingException",
  "TooManyRequestsException",
  "RequestTimeout",
  "InternalError",
  "ServiceUnavailable",
]);

/** The network error code somewhere in the cause chain (Node's `code` or Deno's error name). */
function networkCode(err: unknown): string | undefined {
  for (let e = err, depth = 0; e && typeof e === "object" && depth < 5; depth++) {
    const o = e as { code?: unknown; name?: unknown; cause?: unknown; errors?: unknown };
    if (typeof o.code === "string" && o.code in NETWORK_WORDS) return o.code;
    if (typeof o.name === "string" && o.name in NETWORK_WORDS) return o.name;
    if (Array.isArray(o.errors) && o.errors.length > 0) {
      const inner = networkCode(o.errors[0]);
      if (inner !== undefined) return inner;
    }
    e = o.cause;
  }
  return undefined;
}

/** The S3 error code of an SDK error (its `Code` or `name`). */
export function errorName(err: unknown): string | undefined {
  if (!err || typeof err !== "object") return undefined;
  const o = err as { name?: unknown; Code?: unknown };
  if (typeof o.Code === "string") return o.Code;
  return typeof o.name === "string" ? o.name : undefined;
}

/** Whether an SDK error carries the S3 error code of a response body (`Code`). */
export function hasErrorCode(err: unknown): boolean {
  return !!err && typeof err === "object" && typeof (err as { Code?: unknown }).Code === "string";
}

/** The HTTP status of an SDK error, if it has one. */
export function status(err: unknown): number | undefined {
  if (!err || typeof err !== "object") return undefined;
  const meta = (err as { $metadata?: { httpStatusCode?: unknown } }).$metadata;
  return typeof meta?.httpStatusCode === "number" ? meta.httpStatusCode : undefined;
}

/** The region S3 says the bucket is in (AuthorizationHeaderMalformed's `Region`), if sane. */
function bucketRegion(err: unknown): string | undefined {
  if (!err || typeof err !== "object") return undefined;
  const o = err as { Region?: unknown; $response?: { headers?: Record<string, unknown> } };
  const region = o.Region ?? o.$response?.headers?.["x-amz-bucket-region"];
  return typeof region === "string" && /^[a-z0-9-]{1,40}$/.test(region) ? region : undefined;
}

/**
 * A HEAD request's 404: no body says whether the key or the bucket is missing, so the key is
 * taken to be (a missing bucket shows in the next GET or PUT, which name it).
 */
export function isHeadNotFound(err: unknown): boolean {
  return status(err) === 404;
}
