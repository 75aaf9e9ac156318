import { equal, match } from "node:assert/strict";
import { createHash, createHmac } from "node:crypto";
import { EMPTY_SHA256, SigV4Signer, uriEncodePath } from "./s3_sign.ts";

const SUITE = {
  accessKeyId: "AKIDEXAMPLE",
  secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
};
const SUITE_DATE = new Date(Date.UTC(2015, 7, 30, 12, 36, 0));

function signature(authorization: string): string {
  return authorization.match(/Signature=([0-9a-f]{64})$/)?.[1] ?? "";
}

Deno.test("SigV4Signer signs AWS's test suite cases get-vanilla and get-vanilla-query-order-key-case", () => {
  const signer = new SigV4Signer({ region: "us-east-1", service: "service" });
  const vanilla = signer.sign({
    method: "GET",
    url: new URL("https://example.amazonaws.com/"),
    headers: {},
    payloadHash: EMPTY_SHA256,
    credentials: SUITE,
    date: SUITE_DATE,
  });
  equal(vanilla["x-amz-date"], "20150830T123600Z");
  equal(
    vanilla.authorization,
    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, " +
      "SignedHeaders=host;x-amz-date, " +
      "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
  );
  const query = signer.sign({
    method: "GET",
    url: new URL("https://example.amazonaws.com/?Param2=value2&Param1=value1"),
    headers: {},
    payloadHash: EMPTY_SHA256,
    credentials: SUITE,
    date: SUITE_DATE,
  });
  equal(
    signature(query.authorization),
    "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
  );
});

Deno.test("SigV4Signer signs the S3 documentation's GET of a range (examplebucket/test.txt)", () => {
  const signer = new SigV4Signer({ region: "us-east-1", service: "s3" });
  const headers = signer.sign({
    method: "GET",
    url: new URL("https://examplebucket.s3.amazonaws.com" + uriEncodePath("/test.txt")),
    headers: { Range: "bytes=0-9", "x-amz-content-sha256": EMPTY_SHA256 },
    payloadHash: EMPTY_SHA256,
    credentials: {
      accessKeyId: "AKIAIOSFODNN7EXAMPLE",
      secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    },
    date: new Date(Date.UTC(2013, 4, 24)),
  });
  equal(
    headers.authorization,
    "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, " +
      "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, " +
      "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
  );
  equal(headers.range, "bytes=0-9");
});

function bytes(data: string | ArrayBuffer | ArrayBufferView): string | Uint8Array {
  if (typeof data === "string") return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** node:crypto as the `Sha256` constructor the SDK's signer takes (an HMAC with a secret). */
class NodeSha256 {
  #h: ReturnType<typeof createHash> | ReturnType<typeof createHmac>;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.#h = secret === undefined ? createHash("sha256") : createHmac("sha256", bytes(secret));
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.#h.update(bytes(data));
  }
  digest(): Promise<Uint8Array> {
    return Promise.resolve(new Uint8Array(this.#h.digest()));
  }
}

Deno.test("SigV4Signer agrees with the SDK's signer on S3 GETs: odd keys, ports, session tokens", async () => {
  const { SignatureV4 } = await import("npm:@smithy/signature-v4@5");
  const credentials = {
    accessKeyId: "AKIAEXAMPLE",
    secretAccessKey: "secret/with+chars",
    sessionToken: "token==",
  };
  const date = new Date(Date.UTC(2026, 11, 4, 18, 30, 5));
  const reference = new SignatureV4({
    credentials,
    region: "eu-west-1",
    service: "s3",
    sha256: NodeSha256,
    uriEscapePath: false,
    applyChecksum: false,
  });
  const ours = new SigV4Signer({ region: "eu-west-1", service: "s3" });
  const keys = [
    "host1/data/ab/abcdef",
    "p/with space/and+plus/ünï/(paren)*!'~._-",
    "x/%41/a=b&c",
  ];
  for (const key of keys) {
    for (const base of ["http://127.0.0.1:7560/bucket", "https://b.s3.eu-west-1.amazonaws.com"]) {
      const url = new URL(base);
      url.pathname = url.pathname.replace(/\/$/, "") + uriEncodePath("/" + key);
      equal(url.pathname, new URL(url.href).pathname, "the URL keeps the encoded path");
      const headers = { range: "bytes=5-99", "x-amz-content-sha256": "UNSIGNED-PAYLOAD" };
      const got = ours.sign({
        method: "GET",
        url,
        headers,
        payloadHash: "UNSIGNED-PAYLOAD",
        credentials,
        date,
      });
      const want = await reference.sign({
        method: "GET",
        protocol: url.protocol,
        hostname: url.hostname,
        port: url.port === "" ? undefined : Number(url.port),
        path: url.pathname,
        query: {},
        headers: { ...headers, host: url.host },
      }, { signingDate: date });
      equal(got.authorization, want.headers.authorization, key);
      equal(got["x-amz-security-token"], "token==");
      match(
        got.authorization,
        /SignedHeaders=host;range;x-amz-content-sha256;x-amz-date;x-amz-security-token,/,
      );
    }
  }
});
