import { deepStrictEqual, equal, ok, rejects } from "node:assert/strict";
import {
  BackendError,
  IntegrityError,
  NotFoundError,
  TransientError,
  VgerError,
} from "../lib/errors.ts";
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

Deno.test("s3Error tells a wrong region from a HEAD answer's status and x-amz-bucket-region alone", () => {
  // the answer to a HEAD request has no body: the SDK names its error "Unknown"
  const head = (status: number, region?: string) =>
    sdkError("Unknown", status, {
      $response: { statusCode: status, headers: region ? { "x-amz-bucket-region": region } : {} },
    });
  const wrong = `${AT}: bucket "backups" is not in region "us-east-1"`;
  check(head(301, "eu-west-1"), BackendError, `${wrong}: it is in "eu-west-1" (set s3_region)`);
  check(head(400, "eu-west-1"), BackendError, `${wrong}: it is in "eu-west-1" (set s3_region)`);
  check(head(301), BackendError, `${wrong} (set s3_region)`);
  // a 400 naming the region signed for is something else, and "Unknown" says nothing
  check(head(400, "us-east-1"), BackendError, `${AT}: S3 error (HTTP 400)`);
  check(head(400), BackendError, `${AT}: S3 error (HTTP 400)`);
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

/**
 * A loopback HTTP server that answers every request as `answer` says (real S3 answers, replayed
 * byte for byte), for cases the test server cannot produce; calls `fn` with a backend on it.
 */
async function withReplayServer(
  answer: (req: Request) => Response,
  fn: (backend: S3Backend, endpoint: string) => Promise<void>,
): Promise<void> {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, answer);
  const endpoint = `http://127.0.0.1:${server.addr.port}`;
  const backend = new S3Backend({
    bucket: "backups",
    prefix: "host1",
    endpoint,
    region: "us-east-1",
    accessKeyId: "AKIAREPLAYID",
    secretAccessKey: "replaysecret",
  });
  try {
    await fn(backend, endpoint);
  } finally {
    await backend.close();
    await server.shutdown();
  }
}

/** An S3 error document as AWS sends it. */
function errorXml(code: string, extra = ""): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>m</Message>` +
    `${extra}<RequestId>R</RequestId><HostId>H</HostId></Error>`;
}

Deno.test("size() of a HEAD refused without a body asks a one-byte GET why: a wrong secret is named", async () => {
  const methods: string[] = [];
  await withReplayServer((req) => {
    methods.push(`${req.method} ${req.headers.get("range") ?? ""}`.trim());
    return req.method === "HEAD" ? new Response(null, { status: 403 }) : new Response(
      errorXml("SignatureDoesNotMatch", "<AWSAccessKeyId>AKIAREPLAYID</AWSAccessKeyId>"),
      {
        status: 403,
        headers: { "content-type": "application/xml" },
      },
    );
  }, async (backend, endpoint) => {
    await rejects(backend.size("config"), (err: unknown) => {
      ok(err instanceof BackendError, String(err));
      equal(
        err.message,
        `Cannot read "config" in s3://backups/host1 at ${endpoint}: ${endpoint} rejected the ` +
          "signature (check the secret access key)",
      );
      return true;
    });
  });
  deepStrictEqual(methods, ["HEAD", "GET bytes=0-0"]);
});

Deno.test("a wrong region as AWS answers it (301 PermanentRedirect, 400 AuthorizationHeaderMalformed; HEAD without a body) names the bucket's region", async () => {
  const answers = {
    redirect: (req: Request) =>
      new Response(
        req.method === "HEAD" ? null : errorXml("PermanentRedirect", "<Bucket>backups</Bucket>"),
        {
          status: 301,
          headers: { "x-amz-bucket-region": "eu-west-1", "content-type": "application/xml" },
        },
      ),
    malformed: (req: Request) =>
      new Response(
        req.method === "HEAD"
          ? null
          : errorXml("AuthorizationHeaderMalformed", "<Region>eu-west-1</Region>"),
        {
          status: 400,
          headers: { "x-amz-bucket-region": "eu-west-1", "content-type": "application/xml" },
        },
      ),
  };
  for (const [name, answer] of Object.entries(answers)) {
    await withReplayServer(answer, async (backend, endpoint) => {
      const expected = (what: string) =>
        `Cannot ${what} s3://backups/host1 at ${endpoint}: bucket "backups" is not in region ` +
        `"us-east-1": it is in "eu-west-1" (set s3_region)`;
      for (
        const [what, call] of [
          ['read "config" in', () => backend.size("config")],
          ['read "config" in', () => backend.get("config")],
          ['write "config" in', () => backend.put("config", new Uint8Array(1))],
        ] as const
      ) {
        await rejects(call(), (err: unknown) => {
          ok(err instanceof BackendError, `${name}: ${err}`);
          equal(err.message, expected(what), name);
          return true;
        });
      }
    });
  }
});

Deno.test("get and getRange (signed fetch, not the SDK) say what AWS's GET errors mean: access denied, a missing bucket, SlowDown as transient, a missing key", async () => {
  const cases: [string, number, string, new (message: string) => VgerError, string][] = [
    [
      "AccessDenied",
      403,
      "",
      BackendError,
      "access denied (the credentials lack permission for " +
      'bucket "backups")',
    ],
    [
      "NoSuchBucket",
      404,
      "<BucketName>backups</BucketName>",
      NotFoundError,
      'bucket "backups" does not exist on ENDPOINT',
    ],
    ["SlowDown", 503, "", TransientError, "S3 error (SlowDown, HTTP 503)"],
    [
      "InvalidAccessKeyId",
      403,
      "<AWSAccessKeyId>AKIAREPLAYID</AWSAccessKeyId>",
      BackendError,
      "ENDPOINT does not know the access key id (check the credentials)",
    ],
    [
      "RequestTimeTooSkewed",
      403,
      "",
      BackendError,
      "this computer's clock is too far from ENDPOINT's (set the clock)",
    ],
  ];
  for (const [code, httpStatus, extra, type, words] of cases) {
    const seen: string[] = [];
    await withReplayServer((req) => {
      seen.push(`${req.method} ${new URL(req.url).pathname} ${req.headers.get("range") ?? ""}`);
      ok(req.headers.get("authorization")?.startsWith("AWS4-HMAC-SHA256 Credential=AKIAREPLAYID/"));
      equal(req.headers.get("x-amz-content-sha256"), "UNSIGNED-PAYLOAD");
      return new Response(errorXml(code, extra), {
        status: httpStatus,
        headers: { "content-type": "application/xml" },
      });
    }, async (backend, endpoint) => {
      for (
        const call of [() => backend.get("data/ab/x y"), () => backend.getRange("config", 2, 5)]
      ) {
        await rejects(call(), (err: unknown) => {
          ok(err instanceof type, `${code}: ${err}`);
          ok(!(err as Error).message.includes("AKIA"), (err as Error).message);
          const key = seen.length === 1 ? "data/ab/x y" : "config";
          equal(
            (err as Error).message,
            `Cannot read "${key}" in s3://backups/host1 at ${endpoint}: ` +
              words.replaceAll("ENDPOINT", endpoint),
          );
          return true;
        });
      }
    });
    deepStrictEqual(seen, [
      "GET /backups/host1/data/ab/x%20y ",
      "GET /backups/host1/config bytes=2-6",
    ]);
  }
  // NoSuchKey: get says absent, getRange NotFoundError
  await withReplayServer(
    () => new Response(errorXml("NoSuchKey"), { status: 404 }),
    async (backend) => {
      equal(await backend.get("config"), null);
      await rejects(backend.getRange("config", 0, 1), NotFoundError);
    },
  );
});

Deno.test("get and getRange over fetch: caps refused before reading, short and ignored ranges, a reset body transient", async () => {
  const object = new Uint8Array(1000).map((_, i) => i % 251);
  await withReplayServer((req) => {
    const path = new URL(req.url).pathname;
    if (path.endsWith("/whole")) return new Response(object); // ignores Range
    if (path.endsWith("/short")) {
      return new Response(object.subarray(10, 15), {
        status: 206,
        headers: { "content-range": "bytes 10-14/15" },
      });
    }
    if (path.endsWith("/reset")) {
      // promises 1000 bytes, sends 3, then ends (the server drops the connection)
      const body = new ReadableStream<Uint8Array>({
        start(c) {
          c.enqueue(object.subarray(0, 3));
          c.close();
        },
      });
      return new Response(body, { headers: { "content-length": "1000" } });
    }
    const range = req.headers.get("range")?.match(/^bytes=(\d+)-(\d+)$/);
    if (range === null || range === undefined) return new Response(object);
    const [from, to] = [Number(range[1]), Number(range[2])];
    return new Response(object.slice(from, to + 1), {
      status: 206,
      headers: { "content-range": `bytes ${from}-${to}/${object.length}` },
    });
  }, async (backend) => {
    deepStrictEqual(await backend.get("ok"), object);
    deepStrictEqual(await backend.getRange("ok", 100, 400), object.slice(100, 500));
    await rejects(backend.get("ok", { maxBytes: 999 }), (err: unknown) => {
      ok(err instanceof IntegrityError, String(err));
      equal(err.message, 'Object "ok" is too large: 1000 bytes, the limit is 999');
      return true;
    });
    await rejects(backend.getRange("short", 10, 10), (err: unknown) => {
      ok(err instanceof IntegrityError, String(err));
      equal(err.message, 'Object "short" is truncated: wanted bytes 10..20, size is 15');
      return true;
    });
    await rejects(backend.getRange("whole", 0, 10), /ignored the range of object "whole"/);
    await rejects(backend.get("reset"), (err: unknown) => {
      ok(err instanceof TransientError, String(err));
      ok((err as Error).message.includes("(connection reset)"), (err as Error).message);
      return true;
    });
  });
});

Deno.test("get and getRange say an endpoint is unreachable, on a port fetch asks and on one it refuses (read through the SDK)", async () => {
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (closed.addr as Deno.NetAddr).port;
  closed.close();
  for (const endpoint of [`http://127.0.0.1:${port}`, "http://127.0.0.1:1"]) {
    const backend = new S3Backend({
      bucket: "b",
      endpoint,
      accessKeyId: "id",
      secretAccessKey: "secret",
    });
    try {
      for (const call of [() => backend.get("config"), () => backend.getRange("config", 0, 9)]) {
        await rejects(call(), (err: unknown) => {
          ok(err instanceof BackendError && !(err instanceof TransientError), String(err));
          equal(
            err.message,
            `Cannot read "config" in s3://b at ${endpoint}: cannot reach ${endpoint} ` +
              "(connection refused)",
          );
          return true;
        });
      }
    } finally {
      await backend.close();
    }
  }
});

Deno.test("get over fetch signs with the credentials of the environment, session token included", async () => {
  const saved = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"].map((
    name,
  ) => [name, Deno.env.get(name)] as const);
  Deno.env.set("AWS_ACCESS_KEY_ID", "AKIAENVID");
  Deno.env.set("AWS_SECRET_ACCESS_KEY", "envsecret");
  Deno.env.set("AWS_SESSION_TOKEN", "envtoken");
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const auth = req.headers.get("authorization") ?? "";
    const good = auth.startsWith("AWS4-HMAC-SHA256 Credential=AKIAENVID/") &&
      auth.includes(";x-amz-security-token,") &&
      req.headers.get("x-amz-security-token") === "envtoken";
    return good ? new Response("hello") : new Response(errorXml("AccessDenied"), { status: 403 });
  });
  const backend = new S3Backend({ bucket: "b", endpoint: `http://127.0.0.1:${server.addr.port}` });
  try {
    equal(new TextDecoder().decode((await backend.get("config"))!), "hello");
  } finally {
    await backend.close();
    await server.shutdown();
    for (const [name, value] of saved) {
      if (value === undefined) Deno.env.delete(name);
      else Deno.env.set(name, value);
    }
  }
});
