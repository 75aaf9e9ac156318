import { equal, ok, rejects } from "node:assert/strict";
import { BackendError, NotFoundError, TransientError, VgerError } from "../lib/errors.ts";
import { S3Backend } from "./s3.ts";
import { s3Error, type S3ErrorContext } from "./s3_errors.ts";

const CTX: S3ErrorContext = {
  bucket: "backups",
  region: "us-east-1",
  location: "s3://backups/host1 at http://127.0.0.1:7480",
  endpoint: "http://127.0.0.1:7480",
};

/** An error shaped like the SDK's: name, $metadata, and the message it gives unmodeled codes. */
function sdkError(name: string, httpStatusCode: number, extra: Record<string, unknown> = {}) {
  return Object.assign(new Error("UnknownError"), {
    name,
    $fault: "client",
    $metadata: { httpStatusCode, requestId: "tx1" },
    AWSAccessKeyId: "AKIASECRETID",
    ...extra,
  });
}

/** A network error as node:http reports it under the SDK. */
function netError(code: string) {
  return Object.assign(new Error(`connect ${code} 127.0.0.1:7480`), { code, $metadata: {} });
}

function check(err: unknown, type: new (message: string) => VgerError, message: string): void {
  const got = s3Error(err, { what: "read", key: "config" }, CTX);
  ok(got instanceof type, `${got.constructor.name}: ${got.message}`);
  equal(got.message, message);
  equal(got.cause, err);
  ok(!got.message.includes("AKIA"), got.message);
  ok(!got.message.includes("UnknownError"), got.message);
}

const AT = 'Cannot read "config" in s3://backups/host1 at http://127.0.0.1:7480';

Deno.test("s3Error says in words that the bucket is missing", () => {
  check(
    sdkError("NoSuchBucket", 404),
    NotFoundError,
    `${AT}: bucket "backups" does not exist on http://127.0.0.1:7480`,
  );
});

Deno.test("s3Error says access denied and names wrong credentials without showing them", () => {
  check(
    sdkError("AccessDenied", 403),
    BackendError,
    `${AT}: access denied (the credentials lack permission for bucket "backups")`,
  );
  check(
    sdkError("InvalidAccessKeyId", 403),
    BackendError,
    `${AT}: http://127.0.0.1:7480 does not know the access key id (check the credentials)`,
  );
  check(
    sdkError("SignatureDoesNotMatch", 403),
    BackendError,
    `${AT}: http://127.0.0.1:7480 rejected the signature (check the secret access key)`,
  );
  check(
    sdkError("Forbidden", 403),
    BackendError,
    `${AT}: access denied (HTTP 403: wrong credentials, or no permission for bucket "backups")`,
  );
});

Deno.test("s3Error says the region is wrong and names the bucket's region when S3 tells", () => {
  check(
    sdkError("AuthorizationHeaderMalformed", 400, { Region: "eu-west-1" }),
    BackendError,
    `${AT}: bucket "backups" is not in region "us-east-1": it is in "eu-west-1" (set s3_region)`,
  );
  check(
    sdkError("PermanentRedirect", 301),
    BackendError,
    `${AT}: bucket "backups" is not in region "us-east-1" (set s3_region)`,
  );
  check(
    sdkError("Unknown", 301),
    BackendError,
    `${AT}: bucket "backups" is not in region "us-east-1" (set s3_region)`,
  );
});

Deno.test("s3Error says the endpoint is unreachable, in the cause chain too", () => {
  check(
    Object.assign(new Error("timed out"), { name: "TimeoutError", code: "ETIMEDOUT" }),
    BackendError,
    `${AT}: http://127.0.0.1:7480 did not answer in time`,
  );
  check(
    netError("ECONNREFUSED"),
    BackendError,
    `${AT}: cannot reach http://127.0.0.1:7480 (connection refused)`,
  );
  check(
    new Error("fetch failed", { cause: netError("ENOTFOUND") }),
    BackendError,
    `${AT}: cannot reach http://127.0.0.1:7480 (host not found)`,
  );
  check(
    Object.assign(new Error("AggregateError"), { errors: [netError("ECONNREFUSED")] }),
    BackendError,
    `${AT}: cannot reach http://127.0.0.1:7480 (connection refused)`,
  );
});

Deno.test("s3Error says the clock is off", () => {
  check(
    sdkError("RequestTimeTooSkewed", 403),
    BackendError,
    `${AT}: this computer's clock is too far from http://127.0.0.1:7480's (set the clock)`,
  );
});

Deno.test("s3Error never answers a bare UnknownError: it names the S3 code and HTTP status", () => {
  check(sdkError("InternalError", 500), BackendError, `${AT}: S3 error (InternalError, HTTP 500)`);
  check(sdkError("UnknownError", 502), BackendError, `${AT}: S3 error (HTTP 502)`);
  check(
    new Error("UnknownError"),
    BackendError,
    `${AT}: unexpected error from http://127.0.0.1:7480`,
  );
});

Deno.test("s3Error marks 5xx, throttling, reset connections and timeouts transient, nothing else", () => {
  const transient = [
    sdkError("InternalError", 500),
    sdkError("UnknownError", 502),
    sdkError("SlowDown", 503),
    sdkError("ServiceUnavailable", 503),
    sdkError("TooManyRequests", 429),
    sdkError("RequestTimeout", 400),
    Object.assign(new Error("timed out"), { name: "TimeoutError" }),
    netError("ECONNRESET"),
    new Error("fetch failed", { cause: netError("ETIMEDOUT") }),
  ];
  const permanent = [
    sdkError("AccessDenied", 403),
    sdkError("NoSuchBucket", 404),
    sdkError("InvalidArgument", 400),
    sdkError("NotFound", 404),
    sdkError("RequestTimeTooSkewed", 403),
    netError("ECONNREFUSED"),
    netError("ENOTFOUND"),
    new Error("UnknownError"),
  ];
  for (const err of transient) {
    const got = s3Error(err, { what: "read", key: "config" }, CTX);
    ok(got instanceof TransientError, got.message);
  }
  for (const err of permanent) {
    const got = s3Error(err, { what: "read", key: "config" }, CTX);
    ok(!(got instanceof TransientError), got.message);
  }
});

Deno.test("s3Error says a 404 without an S3 code may not come from an S3 endpoint", () => {
  check(
    sdkError("NotFound", 404),
    BackendError,
    `${AT}: http://127.0.0.1:7480 answered HTTP 404 without an S3 error code (is it an S3 endpoint?)`,
  );
});

Deno.test("an S3 server that accepts and never answers fails the request after the timeout", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of listener) conns.push(conn);
  })();
  const { port } = listener.addr as Deno.NetAddr;
  const endpoint = `http://127.0.0.1:${port}`;
  const backend = new S3Backend({
    bucket: "b",
    endpoint,
    accessKeyId: "id",
    secretAccessKey: "secret",
    timeoutMs: 300,
  });
  try {
    await rejects(backend.get("config"), (err: unknown) => {
      ok(err instanceof BackendError, String(err));
      equal(
        err.message,
        `Cannot read "config" in s3://b at ${endpoint}: ${endpoint} did not answer in time`,
      );
      return true;
    });
  } finally {
    await backend.close();
    listener.close();
    await accepting.catch(() => {});
    for (const conn of conns) conn.close();
  }
});

Deno.test("s3Error passes vger's own errors through", () => {
  const err = new NotFoundError("x");
  equal(s3Error(err, { what: "read" }, CTX), err);
});

Deno.test("the S3 SDK is no code dependency of the CLI: local commands never load it", async () => {
  const cli = new URL("../cli.ts", import.meta.url).pathname;
  const { stdout, success } = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", cli],
    stdout: "piped",
    stderr: "null",
  }).output();
  ok(success, "deno info failed");
  const graph = JSON.parse(new TextDecoder().decode(stdout)) as {
    modules: { specifier: string; dependencies?: { specifier: string; code?: unknown }[] }[];
  };
  const s3 = graph.modules.find((m) => m.specifier.endsWith("/backends/s3.ts"));
  ok(s3 !== undefined, "cli.ts reaches backends/s3.ts");
  for (const m of graph.modules) {
    for (const dep of m.dependencies ?? []) {
      ok(
        !(dep.specifier.includes("@aws-sdk/") && dep.code !== undefined),
        `${m.specifier} imports ${dep.specifier} as code`,
      );
    }
  }
});
