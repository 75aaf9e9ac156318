import { equal, ok, rejects } from "node:assert/strict";
import { resolve } from "node:path";
import { UsageError } from "../lib/errors.ts";
import { LocalBackend } from "./local.ts";
import { openBackend } from "./mod.ts";
import { DEFAULT_REST_CONNECTIONS } from "./rest.ts";
import { RetryBackend } from "./retry.ts";

Deno.test("openBackend opens a local repository as a LocalBackend at its resolved path", async () => {
  const backend = await openBackend({ backend: "local", path: "some/repo" });
  ok(backend instanceof LocalBackend);
  equal(backend.location, resolve("some/repo"));
  await backend.close();
});

Deno.test("openBackend opens a rest repository behind the retry decorator, its URL as location and its connections declared", async () => {
  const cases: [string, string][] = [
    ["https://backup.example.com/laptop", "https://backup.example.com/laptop"],
    ["http://127.0.0.1:8585/laptop/", "http://127.0.0.1:8585/laptop"],
    ["https://example.com/vger/nas-1", "https://example.com/vger/nas-1"],
  ];
  for (const [path, location] of cases) {
    const backend = await openBackend({ backend: "rest", path });
    ok(backend instanceof RetryBackend, path);
    equal(backend.location, location);
    equal(backend.capabilities.connections, DEFAULT_REST_CONNECTIONS);
    equal(backend.capabilities.configFirst, true);
    equal(typeof backend.policy, "function");
    equal(backend.probeCreate, undefined);
    await backend.close();
  }
  const four = await openBackend({ backend: "rest", path: "https://x/r", connections: 4 });
  equal(four.capabilities.connections, 4);
  await four.close();
});

Deno.test("openBackend refuses a rest URL that names no repository or carries credentials, without repeating a password", async () => {
  const cases: [string, RegExp][] = [
    ["https://x/", /names no repository/],
    ["https://x/health", /names no repository/],
    ["https://x/.hidden", /names no repository/],
    ["https://x/a%2Fb", /names no repository/],
    ["https://user:hunter2@x/r", /user name or password in its URL: put the token in rest_token/],
    ["https://x/r?token=abc", /has a query or fragment/],
    ["ftp://x/r", /is not an http:\/\/ or https:\/\/ URL/],
    ["not a url", /is not a URL/],
  ];
  for (const [path, message] of cases) {
    await rejects(
      () => openBackend({ backend: "rest", path }),
      (err: unknown) =>
        err instanceof UsageError && message.test(err.message) &&
        !err.message.includes("hunter2") && !err.message.includes("abc"),
      path,
    );
  }
});

Deno.test("openBackend refuses rest_token_command without a resolver", async () => {
  await rejects(
    () => openBackend({ backend: "rest", path: "https://x/r", rest: { tokenCommand: "pass x" } }),
    (err: unknown) => err instanceof UsageError && /rest_token_command/.test(err.message),
  );
});

Deno.test("openBackend refuses an unknown kind and names it", async () => {
  await rejects(
    () => openBackend({ backend: "ftp", path: "/srv/repo" }),
    (err: unknown) =>
      err instanceof UsageError &&
      err.message ===
        'Unknown backend "ftp" (repository "/srv/repo"): the kinds are local, s3 and rest',
  );
});

Deno.test("openBackend opens an s3 repository, behind the retry decorator, from an s3:// URL or a bare prefix with s3_bucket", async () => {
  const cases: [string, string | undefined, string][] = [
    ["s3://bucket", undefined, "s3://bucket"],
    ["s3://bucket/", "bucket", "s3://bucket"],
    ["s3://bucket/host1/repo/", undefined, "s3://bucket/host1/repo"],
    ["host1/repo", "bucket", "s3://bucket/host1/repo"],
    ["/host1/", "bucket", "s3://bucket/host1"],
  ];
  for (const [path, bucket, location] of cases) {
    const backend = await openBackend({ backend: "s3", path, s3: { bucket, region: "us-east-1" } });
    ok(backend instanceof RetryBackend, path);
    equal(backend.location, location, path);
    await backend.close();
  }
  const backend = await openBackend({
    backend: "s3",
    path: "s3://b/p",
    s3: { endpoint: "http://user:pw@127.0.0.1:7480/", accessKeyId: "AKID", secretAccessKey: "SEC" },
  });
  equal(backend.location, "s3://b/p at http://127.0.0.1:7480");
  await backend.close();
});

Deno.test("openBackend refuses an s3 path with no bucket, two buckets or a bad prefix", async () => {
  const cases: [string, string | undefined, string][] = [
    [
      "host1/repo",
      undefined,
      'Repository "host1/repo" names no bucket: use s3://BUCKET/PREFIX or s3_bucket',
    ],
    ["s3:///repo", undefined, 'Repository "s3:///repo" names no bucket'],
    [
      "s3://one/repo",
      "two",
      'Repository "s3://one/repo" names bucket "one" but s3_bucket is "two"',
    ],
    ["s3://b/a//c", undefined, 'Repository "s3://b/a//c" has an invalid key prefix "a//c"'],
    ["s3://b/../c", undefined, 'Repository "s3://b/../c" has an invalid key prefix "../c"'],
    ["https://x/b", "b", 'Repository "https://x/b" is not an s3:// URL or a key prefix'],
  ];
  for (const [path, bucket, message] of cases) {
    await rejects(
      () => openBackend({ backend: "s3", path, s3: { bucket } }),
      (err: unknown) => err instanceof UsageError && err.message === message,
      path,
    );
  }
});

Deno.test("openBackend passes a repository's connections to its backend's capabilities", async () => {
  const local = await openBackend({ backend: "local", path: "some/repo" });
  equal(local.capabilities.connections, 2);
  await local.close();
  const fewer = await openBackend({ backend: "local", path: "some/repo", connections: 1 });
  equal(fewer.capabilities.connections, 1);
  await fewer.close();
  const s3 = await openBackend({
    backend: "s3",
    path: "s3://b/p",
    connections: 32,
    s3: { bucket: "b", prefix: "p", region: "us-east-1" },
  });
  equal(s3.capabilities.connections, 32);
  equal(s3.location, "s3://b/p");
  await s3.close();
});
