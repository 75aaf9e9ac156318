/**
 * The real S3 server the S3 tests run against, from the environment that
 * `bash tests/s3_server.sh env DIR` prints (or that `bash tests/s3_server.sh run -- CMD` sets), and
 * a fresh bucket per test.
 *
 * Without `VGER_TEST_S3_ENDPOINT` the S3 tests are ignored on a developer's machine; with
 * `VGER_TEST_S3_REQUIRED=1` (set by `s3_server.sh run`, so by `.ci/run`) they are never ignored:
 * a server that did not start makes each of them fail, naming the cause.
 *
 * Private to tests/ (the leading underscore).
 *
 * @module
 */

import {
  AbortMultipartUploadCommand,
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  S3Client,
} from "@aws-sdk/client-s3";

/** Where the test server is and how to sign for it. */
export interface S3TestServer {
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
}

const endpoint = Deno.env.get("VGER_TEST_S3_ENDPOINT") ?? "";
const required = Deno.env.get("VGER_TEST_S3_REQUIRED") === "1";

/** The server from the environment (empty strings when none is named). */
export const S3_SERVER: S3TestServer = {
  endpoint,
  region: Deno.env.get("VGER_TEST_S3_REGION") ?? "us-east-1",
  accessKeyId: Deno.env.get("VGER_TEST_S3_ACCESS_KEY_ID") ?? "",
  secretAccessKey: Deno.env.get("VGER_TEST_S3_SECRET_ACCESS_KEY") ?? "",
};

/** `ignore` for an S3 test: only when no server is named and none is required. */
export const ignoreS3: boolean = endpoint === "" && !required;

/** Throws, naming the cause, when a server is required and none is named. Call first in a test. */
export function requireS3Server(): S3TestServer {
  if (endpoint === "") {
    throw new Error(
      "VGER_TEST_S3_REQUIRED=1 but VGER_TEST_S3_ENDPOINT is not set: the S3 server did not start " +
        "(see the output of tests/s3_server.sh above)",
    );
  }
  return S3_SERVER;
}

/** An SDK client with the test user's keys, path-style, for setting up and inspecting buckets. */
export function adminClient(): S3Client {
  const server = requireS3Server();
  return new S3Client({
    endpoint: server.endpoint,
    region: server.region,
    forcePathStyle: true,
    credentials: { accessKeyId: server.accessKeyId, secretAccessKey: server.secretAccessKey },
  });
}

let buckets = 0;

/** A fresh bucket, an admin client on it, and `drop` to remove both with everything inside. */
export async function makeBucket(): Promise<
  { bucket: string; admin: S3Client; drop(): Promise<void> }
> {
  const admin = adminClient();
  const bucket = `vger-test-${Date.now().toString(36)}-${
    crypto.randomUUID().slice(0, 8)
  }-${buckets++}`;
  await admin.send(new CreateBucketCommand({ Bucket: bucket }));
  const empty = async () => {
    for (;;) {
      const uploads = await admin.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
      for (const u of uploads.Uploads ?? []) {
        await admin.send(
          new AbortMultipartUploadCommand({ Bucket: bucket, Key: u.Key, UploadId: u.UploadId }),
        ).catch((err) => {
          // the gateway may list an upload a moment after compact aborted it
          if ((err as Error).name !== "NoSuchUpload") throw err;
        });
      }
      if (!uploads.IsTruncated) break;
    }
    for (;;) {
      const page = await admin.send(new ListObjectsV2Command({ Bucket: bucket }));
      await Promise.all(
        (page.Contents ?? []).map((o) =>
          admin.send(new DeleteObjectCommand({ Bucket: bucket, Key: o.Key }))
        ),
      );
      if (!page.IsTruncated) break;
    }
  };
  const drop = async () => {
    try {
      // the gateway's listings can lag an abort or a delete by a moment: empty it again then
      for (let attempt = 1;; attempt++) {
        await empty();
        try {
          await admin.send(new DeleteBucketCommand({ Bucket: bucket }));
          return;
        } catch (err) {
          if ((err as Error).name !== "BucketNotEmpty" || attempt === 5) throw err;
          await new Promise((r) => setTimeout(r, 500));
        }
      }
    } finally {
      admin.destroy();
    }
  };
  return { bucket, admin, drop };
}

/** Total bytes and count of the objects under `prefix` in `bucket`. */
export async function bucketUsage(
  admin: S3Client,
  bucket: string,
  prefix = "",
): Promise<{ objects: number; bytes: number }> {
  let objects = 0, bytes = 0, token: string | undefined;
  do {
    const page = await admin.send(
      new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
    );
    for (const o of page.Contents ?? []) {
      objects++;
      bytes += o.Size ?? 0;
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return { objects, bytes };
}
