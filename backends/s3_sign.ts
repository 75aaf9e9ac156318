/**
 * AWS Signature Version 4 for the S3 backend's own reads (backends/s3.ts signs its GET requests
 * here and sends them with `fetch`, without the SDK's middleware). HMAC-SHA-256 is node:crypto's,
 * synchronous; the signing key is derived once a day per region and secret.
 *
 * @example
 * ```ts
 * import { SigV4Signer, uriEncodePath } from "./s3_sign.ts";
 *
 * const signer = new SigV4Signer({ region: "us-east-1", service: "s3" });
 * const url = new URL("https://examplebucket.s3.amazonaws.com" + uriEncodePath("/test.txt"));
 * const headers = signer.sign({
 *   method: "GET",
 *   url,
 *   headers: { range: "bytes=0-9", "x-amz-content-sha256": "UNSIGNED-PAYLOAD" },
 *   payloadHash: "UNSIGNED-PAYLOAD",
 *   credentials: { accessKeyId: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "secret" },
 *   date: new Date(Date.UTC(2013, 4, 24)),
 * });
 * console.log(headers.authorization.startsWith("AWS4-HMAC-SHA256 Credential="));
 * ```
 *
 * @module
 */

import { createHash, createHmac } from "node:crypto";

/** What a request is signed with. */
export interface SigningCredentials {
  /** The access key id. */
  accessKeyId: string;
  /** The secret access key. */
  secretAccessKey: string;
  /** The session token of temporary credentials, sent as `x-amz-security-token`. */
  sessionToken?: string;
}

/** One request to sign. */
export interface SignInput {
  /** The HTTP method. */
  method: string;
  /** The URL as it will be sent: its path already encoded by {@linkcode uriEncodePath}. */
  url: URL;
  /** Headers to send and sign besides `host`, `x-amz-date` and the token (any letter case). */
  headers: Record<string, string>;
  /** The hex SHA-256 of the body, or `UNSIGNED-PAYLOAD`. */
  payloadHash: string;
  /** The credentials. */
  credentials: SigningCredentials;
  /** The signing time; now when absent. */
  date?: Date;
}

/** The hex SHA-256 of an empty body. */
export const EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/** Signs requests for one region and service with SigV4 (`AWS4-HMAC-SHA256`). */
export class SigV4Signer {
  readonly #region: string;
  readonly #service: string;
  #keyFor = "";
  #key: Uint8Array = new Uint8Array(0);

  /** A signer for `region` and `service` (`s3` for S3). */
  constructor(options: { region: string; service: string }) {
    this.#region = options.region;
    this.#service = options.service;
  }

  /**
   * The headers to send: the input's, with `x-amz-date`, `x-amz-security-token` (with a session
   * token) and `authorization`, names in lower case. `host` is the URL's and not returned.
   */
  sign(input: SignInput): Record<string, string> {
    const stamp = amzDate(input.date ?? new Date());
    const day = stamp.slice(0, 8);
    const out: Record<string, string> = {};
    for (const [name, value] of Object.entries(input.headers)) out[name.toLowerCase()] = value;
    out["x-amz-date"] = stamp;
    if (input.credentials.sessionToken) {
      out["x-amz-security-token"] = input.credentials.sessionToken;
    }
    const signed: [string, string][] = [["host", input.url.host]];
    for (const [name, value] of Object.entries(out)) signed.push([name, value]);
    signed.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    const names = signed.map(([name]) => name).join(";");
    const canonical = [
      input.method,
      input.url.pathname === "" ? "/" : input.url.pathname,
      canonicalQuery(input.url),
      signed.map(([name, value]) => `${name}:${value.trim().replace(/\s+/g, " ")}\n`).join(""),
      names,
      input.payloadHash,
    ].join("\n");
    const scope = `${day}/${this.#region}/${this.#service}/aws4_request`;
    const toSign = `AWS4-HMAC-SHA256\n${stamp}\n${scope}\n${sha256Hex(canonical)}`;
    const signature = createHmac("sha256", this.#signingKey(day, input.credentials.secretAccessKey))
      .update(toSign).digest("hex");
    out.authorization = `AWS4-HMAC-SHA256 Credential=${input.credentials.accessKeyId}/${scope}, ` +
      `SignedHeaders=${names}, Signature=${signature}`;
    return out;
  }

  #signingKey(day: string, secret: string): Uint8Array {
    const id = `${day}\n${secret}`;
    if (this.#keyFor !== id) {
      let key: Uint8Array = hmac(new TextEncoder().encode("AWS4" + secret), day);
      for (const part of [this.#region, this.#service, "aws4_request"]) key = hmac(key, part);
      this.#key = key;
      this.#keyFor = id;
    }
    return this.#key;
  }
}

/**
 * A path with each segment URI-encoded as SigV4 wants for S3: every byte but `A-Z a-z 0-9 - . _ ~`
 * as `%XX` (upper case), the `/` between segments kept.
 */
export function uriEncodePath(path: string): string {
  return path.split("/").map(uriEncode).join("/");
}

function uriEncode(s: string): string {
  return encodeURIComponent(s).replace(
    /[!'()*]/g,
    (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase(),
  );
}

/** The query string as SigV4 signs it: pairs sorted by name then value, each part encoded. */
function canonicalQuery(url: URL): string {
  if (url.search === "") return "";
  const pairs = [...url.searchParams].map(([k, v]) => [uriEncode(k), uriEncode(v)]);
  pairs.sort((a, b) => a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0);
  return pairs.map(([k, v]) => `${k}=${v}`).join("&");
}

/** `YYYYMMDDTHHMMSSZ`. */
function amzDate(date: Date): string {
  return date.toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
}

function hmac(key: Uint8Array, data: string): Uint8Array {
  return createHmac("sha256", key).update(data).digest();
}

function sha256Hex(data: string): string {
  return createHash("sha256").update(data).digest("hex");
}
