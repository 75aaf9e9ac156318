/**
 * The S3 backend against a real S3 server: the conformance suite and the S3-only cases
 * (pagination past 1,000 keys, conditional and multipart uploads, aborted uploads, ranges,
 * errors). The server comes from the environment (tests/_s3.ts says how). Each test works in a
 * bucket of its own, created and deleted around it.
 */

import { deepStrictEqual, equal, ok, rejects } from "node:assert/strict";
import {
  CreateMultipartUploadCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  type S3Client,
} from "@aws-sdk/client-s3";
import { BackendError, IntegrityError, NotFoundError } from "../lib/errors.ts";
import type { ObjectInfo, StreamBody } from "../backends/backend.ts";
import { PART_SIZE, S3Backend, type S3BackendOptions } from "../backends/s3.ts";
import { RetryBackend } from "../backends/retry.ts";
import { ensureCreateHonoured } from "../lib/known_repos.ts";
import { backendConformance } from "./backend_conformance.ts";
import { adminClient, ignoreS3 as ignore, makeBucket, requireS3Server } from "./_s3.ts";
import { type Fault, startFaultProxy } from "./_fault_proxy.ts";

function backendOn(bucket: string, options: Partial<S3BackendOptions> = {}): S3Backend {
  return new S3Backend({ ...requireS3Server(), bucket, ...options });
}

backendConformance("s3", async () => {
  const { bucket, drop } = await makeBucket();
  return { backend: backendOn(bucket, { prefix: "repo/one" }), cleanup: drop };
}, { ignore });

/** A test with a fresh bucket and a backend on prefix `repo`; both removed afterwards. */
function s3Test(
  name: string,
  fn: (backend: S3Backend, bucket: string, admin: S3Client) => Promise<void>,
): void {
  Deno.test(`s3 backend: ${name}`, { ignore }, async () => {
    const { bucket, admin, drop } = await makeBucket();
    const backend = backendOn(bucket, { prefix: "repo" });
    try {
      await fn(backend, bucket, admin);
    } finally {
      await backend.close();
      await drop();
    }
  });
}

async function listAll(backend: S3Backend, prefix: string): Promise<ObjectInfo[]> {
  const out: ObjectInfo[] = [];
  for await (const info of backend.list(prefix)) out.push(info);
  return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/** A stream body of `size` bytes of a repeating pattern, in pieces of `piece` bytes. */
function patternBody(size: number, piece: number, failAfter = Infinity): StreamBody {
  return {
    size,
    async *pieces() {
      for (let at = 0; at < size; at += piece) {
        if (at >= failAfter) throw new Error("the staged file went away");
        const n = Math.min(piece, size - at);
        yield pattern(n + (at % 251)).slice(at % 251);
      }
    },
  };
}

/** How many parts the object was uploaded in (the "-N" of a multipart ETag), 0 for one PUT. */
async function etagParts(admin: S3Client, bucket: string, key: string): Promise<number> {
  const head = await admin.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
  const m = head.ETag?.match(/-(\d+)"?$/);
  return m ? Number(m[1]) : 0;
}

/** `size` bytes of 0, 1, ..., 250, 0, 1, ... (built by doubling: 16 MiB in milliseconds). */
function pattern(size: number): Uint8Array {
  const out = new Uint8Array(size);
  for (let i = 0; i < Math.min(251, size); i++) out[i] = i;
  for (let have = 251; have < size; have *= 2) out.copyWithin(have, 0, have);
  return out;
}

s3Test("list pages through more than 1,000 keys", async (backend) => {
  const keys = Array.from({ length: 1050 }, (_, i) => `packs/${String(i).padStart(4, "0")}`);
  for (let i = 0; i < keys.length; i += 50) {
    await Promise.all(keys.slice(i, i + 50).map((key) => backend.put(key, new Uint8Array([1]))));
  }
  await backend.put("index", new Uint8Array(3));
  const listed = await listAll(backend, "packs/");
  equal(listed.length, 1050);
  deepStrictEqual(listed.map((o) => o.key), keys);
  ok(listed.every((o) => o.size === 1));
  equal((await listAll(backend, "")).length, 1051);
});

s3Test("the prefix keeps repositories apart", async (backend, bucket) => {
  const other = backendOn(bucket, { prefix: "repo2" });
  try {
    await backend.put("config", new Uint8Array([1]));
    await other.put("config", new Uint8Array([2, 2]));
    deepStrictEqual(await listAll(backend, ""), [{ key: "config", size: 1 }]);
    deepStrictEqual(await listAll(other, ""), [{ key: "config", size: 2 }]);
    deepStrictEqual(await backend.get("config"), new Uint8Array([1]));
  } finally {
    await other.close();
  }
});

s3Test(
  "a stream body larger than a part goes up in parts and reads back equal",
  async (backend, bucket, admin) => {
    const size = 2 * PART_SIZE + 12345;
    await backend.put("packs/ab/big", patternBody(size, 1 << 20));
    equal(await backend.size("packs/ab/big"), size);
    deepStrictEqual(await backend.get("packs/ab/big"), pattern(size));
    deepStrictEqual(
      await backend.getRange("packs/ab/big", PART_SIZE - 5, 10),
      pattern(size).slice(PART_SIZE - 5, PART_SIZE + 5),
    );
    equal(await etagParts(admin, bucket, "repo/packs/ab/big"), 3, "a multipart upload of 3 parts");
    const uploads = await admin.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
    equal(uploads.Uploads?.length ?? 0, 0, "no upload left open");
  },
);

s3Test(
  "a buffer goes up in one PUT whatever its size, small bodies too",
  async (backend, bucket, admin) => {
    await backend.put("packs/ab/buffer", pattern(2 * PART_SIZE));
    await backend.put("packs/ab/parts", [pattern(1000), pattern(2000)]);
    await backend.put("packs/ab/stream", patternBody(PART_SIZE, 1 << 20));
    for (const key of ["buffer", "parts", "stream"]) {
      equal(await etagParts(admin, bucket, `repo/packs/ab/${key}`), 0, key);
    }
    deepStrictEqual(await backend.get("packs/ab/buffer"), pattern(2 * PART_SIZE));
  },
);

s3Test(
  "a multipart upload that fails midway leaves no object and no open upload",
  async (backend, bucket, admin) => {
    const size = 3 * PART_SIZE;
    await rejects(backend.put("packs/ab/cut", patternBody(size, 1 << 20, PART_SIZE + (1 << 20))));
    equal(await backend.get("packs/ab/cut"), null);
    const uploads = await admin.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
    equal(uploads.Uploads?.length ?? 0, 0, "the upload was aborted");
  },
);

s3Test("create of a large body writes once and refuses an existing key", async (backend) => {
  const size = PART_SIZE + 1000;
  equal(await backend.create("packs/ab/once", patternBody(size, 1 << 20)), true);
  equal(await backend.create("packs/ab/once", patternBody(size, 1 << 20)), false);
  equal(await backend.create("packs/ab/small", new Uint8Array([1])), true);
  equal(await backend.create("packs/ab/small", patternBody(size, 1 << 20)), false);
  deepStrictEqual(await backend.get("packs/ab/small"), new Uint8Array([1]));
  equal(await backend.size("packs/ab/once"), size);
});

s3Test(
  "removeLeftovers aborts the uploads under the prefix only",
  async (backend, bucket, admin) => {
    for (const key of ["repo/packs/ab/x", "repo/packs/cd/y", "other/packs/z"]) {
      await admin.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }));
    }
    equal(await backend.removeLeftovers(), 2);
    equal(await backend.removeLeftovers(), 0);
    const left = await admin.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
    deepStrictEqual(left.Uploads?.map((u) => u.Key), ["other/packs/z"]);
  },
);

s3Test("getRange of zero bytes and past the end", async (backend) => {
  await backend.put("empty", new Uint8Array(0));
  await backend.put("ten", pattern(10));
  deepStrictEqual(await backend.getRange("empty", 0, 0), new Uint8Array(0));
  deepStrictEqual(await backend.getRange("ten", 10, 0), new Uint8Array(0));
  deepStrictEqual(await backend.getRange("ten", 9, 1), pattern(10).slice(9));
  for (
    const [key, offset, length] of [["empty", 0, 1], ["ten", 11, 0], ["ten", 10, 1], [
      "ten",
      5,
      6,
    ]] as const
  ) {
    await rejects(backend.getRange(key, offset, length), (err: unknown) => {
      ok(err instanceof IntegrityError, `${key} ${offset}+${length}: ${err}`);
      ok(
        err.message.includes(`"${key}"`) &&
          err.message.includes(key === "empty" ? "size is 0" : "size is 10"),
        err.message,
      );
      return true;
    });
  }
  await rejects(backend.getRange("none", 0, 0), NotFoundError);
  await rejects(backend.getRange("none", 3, 4), NotFoundError);
});

s3Test("get with maxBytes refuses a large object before reading it", async (backend) => {
  await backend.put("index", pattern(3 * 1024 * 1024));
  await rejects(
    backend.get("index", { maxBytes: 1024 }),
    (err: unknown) =>
      err instanceof IntegrityError &&
      err.message === `Object "index" is too large: ${3 * 1024 * 1024} bytes, the limit is 1024`,
  );
  deepStrictEqual(await backend.get("index"), pattern(3 * 1024 * 1024));
});

Deno.test(
  "s3 backend: errors name a missing bucket, wrong credentials and an unreachable endpoint without secrets",
  { ignore },
  async () => {
    const cases: [Partial<S3BackendOptions>, typeof BackendError | typeof NotFoundError, string][] =
      [
        [
          { bucket: "vger-test-no-such-bucket" },
          NotFoundError,
          'bucket "vger-test-no-such-bucket" does not exist',
        ],
        [{ secretAccessKey: "wrong-secret-value" }, BackendError, "rejected the signature"],
        [
          { accessKeyId: "NOSUCHKEYID", secretAccessKey: "wrong-secret-value" },
          BackendError,
          "does not know the access key id",
        ],
        [{ endpoint: "http://127.0.0.1:1" }, BackendError, "cannot reach http://127.0.0.1:1"],
      ];
    const { bucket, drop } = await makeBucket();
    try {
      for (const [options, type, words] of cases) {
        const backend = backendOn(bucket, { prefix: "repo", ...options });
        try {
          await rejects(backend.put("config", new Uint8Array([1])), (err: unknown) => {
            ok(err instanceof type, `${JSON.stringify(options)}: ${err}`);
            ok(err.message.includes(words), err.message);
            for (
              const secret of [
                requireS3Server().secretAccessKey,
                requireS3Server().accessKeyId,
                "wrong-secret-value",
                "NOSUCHKEYID",
              ]
            ) {
              ok(!err.message.includes(secret), err.message);
            }
            ok(!err.message.includes("UnknownError"), err.message);
            return true;
          });
        } finally {
          await backend.close();
        }
      }
    } finally {
      await drop();
    }
  },
);

s3Test(
  "the server honours conditional creates; the probe leaves nothing behind",
  async (backend, bucket) => {
    equal(
      backend.capabilities.createProbeScope,
      `s3://${bucket} at ${new URL(requireS3Server().endpoint).origin}`,
    );
    equal(await backend.probeCreate(), true);
    deepStrictEqual(await listAll(backend, ""), []);
    // through the retry decorator openBackend puts around it, with a verdict remembered
    const retrying = new RetryBackend(backend);
    const dir = await Deno.makeTempDir({ prefix: "vger-probe-" });
    try {
      await ensureCreateHonoured(retrying, { dir });
      equal((await Array.fromAsync(Deno.readDir(`${dir}/create-probes`))).length, 1);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
    deepStrictEqual(await listAll(backend, ""), []);
  },
);

Deno.test(
  "s3 backend: retries ride out throttling, dropped connections and a create whose answer was lost, on the real server",
  { ignore },
  async () => {
    const server = requireS3Server();
    const { bucket, drop } = await makeBucket();
    // One proxy per case: the SDK keeps connections alive, so a fault must be on a fresh one
    const through = (plan: Fault[]) => {
      const proxy = startFaultProxy(server.endpoint, plan);
      const inner = backendOn(bucket, { prefix: "repo", endpoint: proxy.endpoint });
      return { proxy, backend: new RetryBackend(inner, { baseDelayMs: 20 }), inner };
    };
    const cases: { plan: Fault[]; run(b: RetryBackend): Promise<void> }[] = [
      {
        plan: ["slowdown", "reset", "slowdown"],
        async run(b) {
          await b.put("data/small", pattern(100_000));
          deepStrictEqual(await b.get("data/small"), pattern(100_000));
        },
      },
      {
        // a multipart upload: its parts and its completion meet the faults
        plan: ["pass", "reset", "slowdown", "reset"],
        async run(b) {
          await b.put("data/large", patternBody(2 * PART_SIZE + 12345, 1 << 20));
          deepStrictEqual(
            await b.getRange("data/large", PART_SIZE - 5, 10),
            pattern(
              2 * PART_SIZE + 12345,
            ).subarray(PART_SIZE - 5, PART_SIZE + 5),
          );
        },
      },
      {
        // the create lands, its answer is lost; the retry finds our own bytes and succeeds
        plan: ["lose-response"],
        async run(b) {
          equal(await b.create("locks/ours", pattern(300)), true);
          equal(await b.create("locks/ours", pattern(301)), false);
          deepStrictEqual(await b.get("locks/ours"), pattern(300));
        },
      },
    ];
    try {
      for (const { plan, run } of cases) {
        const { proxy, backend, inner } = through(plan);
        try {
          await run(backend);
          deepStrictEqual(proxy.dealt, plan.filter((f) => f !== "pass"), plan.join(","));
        } finally {
          await inner.close();
          await proxy.close();
        }
      }
      // nothing half-written: no multipart upload is left open
      const admin = adminClient();
      try {
        const uploads = await admin.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
        deepStrictEqual(uploads.Uploads ?? [], []);
      } finally {
        admin.destroy();
      }
    } finally {
      await drop();
    }
  },
);

Deno.test(
  "s3 backend: credentials come from the environment or a shared credentials file, never from instance metadata",
  { ignore },
  async () => {
    const server = requireS3Server();
    const { bucket, drop } = await makeBucket();
    const dir = await Deno.makeTempDir({ prefix: "vger-s3-creds-" });
    // instance metadata, were it asked, would be here: a listener that counts its connections
    const metadata = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    let asked = 0;
    const counting = (async () => {
      for await (const conn of metadata) {
        asked++;
        conn.close();
      }
    })().catch(() => {});
    const names = [
      "AWS_ACCESS_KEY_ID",
      "AWS_SECRET_ACCESS_KEY",
      "AWS_SESSION_TOKEN",
      "AWS_PROFILE",
      "AWS_SHARED_CREDENTIALS_FILE",
      "AWS_CONFIG_FILE",
      "AWS_EC2_METADATA_SERVICE_ENDPOINT",
      "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    ];
    const saved = new Map(names.map((n) => [n, Deno.env.get(n)]));
    const setEnv = (values: Record<string, string>) => {
      for (const n of names) Deno.env.delete(n);
      Deno.env.set("AWS_SHARED_CREDENTIALS_FILE", `${dir}/none`);
      Deno.env.set("AWS_CONFIG_FILE", `${dir}/none`);
      Deno.env.set("AWS_EC2_METADATA_SERVICE_ENDPOINT", `http://127.0.0.1:${metadata.addr.port}`);
      Deno.env.set("AWS_CONTAINER_CREDENTIALS_FULL_URI", `http://127.0.0.1:${metadata.addr.port}/`);
      for (const [n, v] of Object.entries(values)) Deno.env.set(n, v);
    };
    const roundTrip = async (key: string) => {
      const backend = new S3Backend({ endpoint: server.endpoint, region: server.region, bucket });
      try {
        await backend.put(key, pattern(10));
        deepStrictEqual(await backend.get(key), pattern(10));
      } finally {
        await backend.close();
      }
    };
    try {
      setEnv({
        AWS_ACCESS_KEY_ID: server.accessKeyId,
        AWS_SECRET_ACCESS_KEY: server.secretAccessKey,
      });
      await roundTrip("from-env");
      await Deno.writeTextFile(
        `${dir}/credentials`,
        `[vger]\naws_access_key_id = ${server.accessKeyId}\n` +
          `aws_secret_access_key = ${server.secretAccessKey}\n`,
      );
      setEnv({ AWS_SHARED_CREDENTIALS_FILE: `${dir}/credentials`, AWS_PROFILE: "vger" });
      await roundTrip("from-file");
      setEnv({});
      await rejects(roundTrip("from-nowhere"), (err: unknown) => {
        ok(err instanceof BackendError, String(err));
        ok(err.message.startsWith("No S3 credentials: set s3_access_key_id"), err.message);
        return true;
      });
      equal(asked, 0, "instance metadata or a container endpoint was asked for credentials");
    } finally {
      for (const [n, v] of saved) v === undefined ? Deno.env.delete(n) : Deno.env.set(n, v);
      metadata.close();
      await counting;
      await Deno.remove(dir, { recursive: true });
      await drop();
    }
  },
);
