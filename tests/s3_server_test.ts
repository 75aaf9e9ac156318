// The S3 server that tests/s3_server.sh starts honours what vger's S3 backend relies on, checked
// with raw SigV4-signed requests (no SDK): conditional create with one winner among concurrent
// writers, ranged reads, paginated listing, delete. The server comes from the environment
// (tests/_s3.ts says how).
import { deepStrictEqual, equal, ok } from "node:assert/strict";
import { ignoreS3 as ignore, requireS3Server, S3_SERVER } from "./_s3.ts";

const { accessKeyId, secretAccessKey, region } = S3_SERVER;

const encoder = new TextEncoder();

function hex(bytes: ArrayBuffer): string {
  return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
}

async function sha256(data: Uint8Array<ArrayBuffer>): Promise<string> {
  return hex(await crypto.subtle.digest("SHA-256", data));
}

async function hmac(key: Uint8Array<ArrayBuffer>, data: string): Promise<Uint8Array<ArrayBuffer>> {
  const k = await crypto.subtle.importKey("raw", key, { name: "HMAC", hash: "SHA-256" }, false, [
    "sign",
  ]);
  return new Uint8Array(await crypto.subtle.sign("HMAC", k, encoder.encode(data)));
}

/** RFC 3986 encoding, as SigV4 wants it. */
function uriEncode(s: string): string {
  return encodeURIComponent(s).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

/** One SigV4-signed request to the test server; `path` is `/bucket[/key]`. */
async function s3(
  method: string,
  path: string,
  options: {
    query?: Record<string, string>;
    body?: Uint8Array<ArrayBuffer>;
    headers?: Record<string, string>;
  } = {},
): Promise<Response> {
  const url = new URL(requireS3Server().endpoint);
  const body = options.body ?? new Uint8Array();
  const now = new Date().toISOString().replace(/[-:]|\.\d{3}/g, "");
  const day = now.slice(0, 8);
  const headers: Record<string, string> = {
    host: url.host,
    "x-amz-content-sha256": await sha256(body),
    "x-amz-date": now,
  };
  for (const [k, v] of Object.entries(options.headers ?? {})) headers[k.toLowerCase()] = v;
  const names = Object.keys(headers).sort();
  const canonicalPath = path.split("/").map(uriEncode).join("/");
  const query = Object.entries(options.query ?? {}).map(([k, v]) =>
    `${uriEncode(k)}=${uriEncode(v)}`
  )
    .sort().join("&");
  const canonical = [
    method,
    canonicalPath,
    query,
    ...names.map((n) => `${n}:${headers[n].trim()}`),
    "",
    names.join(";"),
    headers["x-amz-content-sha256"],
  ].join("\n");
  const scope = `${day}/${region}/s3/aws4_request`;
  const toSign = `AWS4-HMAC-SHA256\n${now}\n${scope}\n${await sha256(encoder.encode(canonical))}`;
  let key = encoder.encode(`AWS4${secretAccessKey}`);
  for (const part of [day, region, "s3", "aws4_request"]) key = await hmac(key, part);
  const signature = hex((await hmac(key, toSign)).buffer);
  const { host: _, ...sent } = headers;
  return await fetch(`${url.origin}${canonicalPath}${query ? `?${query}` : ""}`, {
    method,
    body: method === "GET" || method === "HEAD" ? undefined : body,
    headers: {
      ...sent,
      authorization: `AWS4-HMAC-SHA256 Credential=${accessKeyId}/${scope}, ` +
        `SignedHeaders=${names.join(";")}, Signature=${signature}`,
    },
  });
}

/** The status of a signed request, its body read (and so released). */
async function status(
  method: string,
  path: string,
  options?: Parameters<typeof s3>[2],
): Promise<number> {
  const res = await s3(method, path, options);
  await res.arrayBuffer();
  return res.status;
}

Deno.test({
  name: "the S3 test server honours conditional create, ranged reads, paginated listing and delete",
  ignore,
  async fn() {
    const bucket = `/vger-server-test-${crypto.randomUUID().slice(0, 8)}`;
    const data = encoder.encode("0123456789abcdefghij");
    equal(await status("PUT", bucket), 200);
    try {
      equal(await status("PUT", `${bucket}/a/1`, { body: data }), 200);
      const create = { body: data, headers: { "if-none-match": "*" } };
      equal(await status("PUT", `${bucket}/a/2`, create), 200, "a create of a new key succeeds");
      equal(await status("PUT", `${bucket}/a/1`, create), 412, "a create of an existing key fails");

      const got = await s3("GET", `${bucket}/a/1`);
      deepStrictEqual(new Uint8Array(await got.arrayBuffer()), data);
      const range = await s3("GET", `${bucket}/a/1`, { headers: { range: "bytes=5-9" } });
      equal(range.status, 206);
      equal(await range.text(), "56789");

      equal(await status("PUT", `${bucket}/a/3`, { body: data }), 200);
      const keys: string[] = [];
      let token: string | undefined;
      let pages = 0;
      do {
        const query: Record<string, string> = { "list-type": "2", prefix: "a/", "max-keys": "2" };
        if (token) query["continuation-token"] = token;
        const res = await s3("GET", bucket, { query });
        equal(res.status, 200);
        const xml = await res.text();
        keys.push(...[...xml.matchAll(/<Key>([^<]*)<\/Key>/g)].map((m) => m[1]));
        token = /<NextContinuationToken>([^<]*)</.exec(xml)?.[1];
        pages++;
      } while (token);
      deepStrictEqual(keys, ["a/1", "a/2", "a/3"]);
      equal(pages, 2);

      equal(await status("DELETE", `${bucket}/a/1`), 204);
      equal(await status("GET", `${bucket}/a/1`), 404);
    } finally {
      await emptyAndDelete(bucket);
    }
  },
});

Deno.test({
  name: "the S3 test server lets exactly one of 20 concurrent conditional creates of a key win",
  ignore,
  async fn() {
    const bucket = `/vger-server-test-${crypto.randomUUID().slice(0, 8)}`;
    equal(await status("PUT", bucket), 200);
    try {
      const codes = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          status("PUT", `${bucket}/locks/commit`, {
            body: encoder.encode(`writer ${i}`),
            headers: { "if-none-match": "*" },
          })),
      );
      equal(codes.filter((c) => c === 200).length, 1, `statuses: ${codes.join(" ")}`);
      ok(codes.every((c) => c === 200 || c === 412), `statuses: ${codes.join(" ")}`);
      const winner = codes.indexOf(200);
      const stored = await s3("GET", `${bucket}/locks/commit`);
      equal(await stored.text(), `writer ${winner}`, "the stored object is the winner's");
    } finally {
      await emptyAndDelete(bucket);
    }
  },
});

async function emptyAndDelete(bucket: string): Promise<void> {
  const res = await s3("GET", bucket, { query: { "list-type": "2" } });
  for (const m of (await res.text()).matchAll(/<Key>([^<]*)<\/Key>/g)) {
    await status("DELETE", `${bucket}/${m[1]}`);
  }
  equal(await status("DELETE", bucket), 204);
}
