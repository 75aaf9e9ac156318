import { deepStrictEqual, equal, ok, rejects, throws } from "node:assert/strict";
import {
  findHttpError,
  HttpError,
  parseListQuery,
  parseRange,
  parseTarget,
  requestBody,
} from "./server_request.ts";
import { BackendError } from "./errors.ts";

function status(fn: () => unknown): number {
  try {
    fn();
  } catch (err) {
    if (err instanceof HttpError) return err.status;
    throw err;
  }
  return 0;
}

Deno.test("parseTarget: decodes once, refuses anything that could leave a repository", () => {
  deepStrictEqual(parseTarget("http://h/"), { kind: "root" });
  deepStrictEqual(parseTarget("http://h/health"), { kind: "health" });
  deepStrictEqual(parseTarget("http://h/laptop"), { kind: "repo", repo: "laptop" });
  deepStrictEqual(parseTarget("http://h/laptop/?prefix=x"), { kind: "list", repo: "laptop" });
  deepStrictEqual(parseTarget("http://h/a.b_c-1/packs/ab/ab01?x#y"), {
    kind: "object",
    repo: "a.b_c-1",
    key: "packs/ab/ab01",
  });
  // %2f is a separator once decoded; %252e stays "%2e" (decoded once only), a valid name
  deepStrictEqual(parseTarget("http://h/r/packs%2fab"), {
    kind: "object",
    repo: "r",
    key: "packs/ab",
  });
  deepStrictEqual(parseTarget("http://h/r/%252e%252e"), {
    kind: "object",
    repo: "r",
    key: "%2e%2e",
  });
  for (
    const path of [
      "/..",
      "/.hidden/config",
      "/%2e%2e/x",
      "/r%2fx/config",
      "/r/../x",
      "/r/%2e%2e",
      "/r/a/%2E%2E/b",
      "/r/a//b",
      "/r/%00",
      "/r/.tmp-ab",
      "/r/%e0%a4%a",
      "/health/x",
      "/ui",
      `/${"a".repeat(65)}`,
      `/r/${"b".repeat(256)}`,
      "/r/ok/.",
    ]
  ) {
    equal(status(() => parseTarget(`http://h${path}`)), 400, path);
  }
});

Deno.test("parseRange: one range, clipped at the end; past the end is 416, malformed is 400", () => {
  equal(parseRange(null, 10, "x"), null);
  deepStrictEqual(parseRange("bytes=2-4", 10, "x"), { offset: 2, length: 3 });
  deepStrictEqual(parseRange("bytes=8-100", 10, "x"), { offset: 8, length: 2 });
  deepStrictEqual(parseRange("bytes=3-", 10, "x"), { offset: 3, length: 7 });
  equal(status(() => parseRange("bytes=10-", 10, "x")), 416);
  equal(status(() => parseRange("bytes=0-0", 0, "x")), 416);
  for (const bad of ["bytes=4-2", "bytes=-5", "bytes=1-2,4-5", "items=1-2", "bytes=a-b"]) {
    equal(status(() => parseRange(bad, 10, "x")), 400, bad);
  }
});

Deno.test("parseListQuery: prefix, after and a bounded limit; unknown parameters are 400", () => {
  deepStrictEqual(parseListQuery("r", "http://h/r/"), { prefix: "", after: "", limit: 10_000 });
  deepStrictEqual(parseListQuery("r", "http://h/r/?prefix=packs/a&after=packs/a/1&limit=5"), {
    prefix: "packs/a",
    after: "packs/a/1",
    limit: 5,
  });
  for (const q of ["limit=0", "limit=10001", "limit=x", "prefix=../", "prefix=/a", "other=1"]) {
    equal(status(() => parseListQuery("r", `http://h/r/?${q}`)), 400, q);
  }
});

function streamOf(...parts: (Uint8Array | "stall")[]): ReadableStream<Uint8Array> {
  let i = 0;
  return new ReadableStream({
    pull(c) {
      if (i >= parts.length) return c.close();
      const p = parts[i++];
      if (p === "stall") return new Promise(() => {});
      c.enqueue(p);
    },
  });
}

async function drain(body: ReturnType<typeof requestBody>): Promise<number> {
  let n = 0;
  for await (const p of body.pieces()) n += p.length;
  return n;
}

Deno.test("requestBody: exactly Content-Length bytes, else 400; a stall is 408; a check may refuse", async () => {
  const opts = { timeoutMs: 200, where: 'x of repository "r"' };
  equal(
    await drain(requestBody(streamOf(new Uint8Array(3), new Uint8Array(4)), { ...opts, size: 7 })),
    7,
  );
  equal(await drain(requestBody(null, { ...opts, size: 0 })), 0);
  const httpStatus = async (p: Promise<unknown>) => {
    try {
      await p;
    } catch (err) {
      return findHttpError(err)?.status;
    }
    return 0;
  };
  equal(
    await httpStatus(drain(requestBody(streamOf(new Uint8Array(3)), { ...opts, size: 7 }))),
    400,
  );
  equal(
    await httpStatus(drain(requestBody(streamOf(new Uint8Array(9)), { ...opts, size: 7 }))),
    400,
  );
  equal(await httpStatus(drain(requestBody(null, { ...opts, size: 1 }))), 400);
  const t0 = Date.now();
  equal(
    await httpStatus(
      drain(requestBody(streamOf(new Uint8Array(1), "stall"), { ...opts, size: 7 })),
    ),
    408,
  );
  ok(Date.now() - t0 < 2000);
  let seen = 0;
  const refusing = requestBody(streamOf(new Uint8Array(5)), {
    ...opts,
    size: 5,
    check: {
      update: (p) => void (seen += p.length),
      finish: () => {
        throw new HttpError(400, "bad hash");
      },
    },
  });
  equal(await httpStatus(drain(refusing)), 400);
  equal(seen, 5);
  // read once only; a wrapped HttpError is found through its causes
  const once = requestBody(streamOf(new Uint8Array(1)), { ...opts, size: 1 });
  await drain(once);
  await rejects(drain(once), /read twice/);
  const wrapped = new BackendError("Cannot write", { cause: new HttpError(408, "stalled") });
  equal(findHttpError(wrapped)?.status, 408);
  equal(findHttpError(new Error("x")), undefined);
  throws(() => parseTarget("http://h/r/%zz"), HttpError);
});
