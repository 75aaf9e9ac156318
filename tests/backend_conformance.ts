/**
 * The behaviour every {@linkcode Backend} must show, as one suite that each backend's test file
 * runs against its own fixture (after restic's `internal/backend/test`).
 *
 * @example
 * ```ts ignore
 * import { backendConformance } from "./backend_conformance.ts";
 * import { MemoryBackend } from "../backends/memory.ts";
 *
 * backendConformance("memory", () => Promise.resolve({
 *   backend: new MemoryBackend(),
 *   cleanup: () => Promise.resolve(),
 * }));
 * ```
 *
 * @module
 */

import { deepStrictEqual, equal, ok, rejects } from "node:assert/strict";
import { createHash } from "node:crypto";
import { IntegrityError, NotFoundError, VgerError } from "../lib/errors.ts";
import type { Backend, ObjectInfo } from "../backends/backend.ts";

/** A backend under test and how to dispose of it. */
export interface BackendFixture {
  /** A backend over empty storage. */
  backend: Backend;
  /** Removes the storage; called after the suite has closed the backend. */
  cleanup(): Promise<void>;
}

/** Keys that no backend may accept. */
const INVALID_KEYS = ["", "/abs", "a/../b", "a//b", ".", "a/./b", "..", "a/", "a\0b"];

/** Options of {@linkcode backendConformance}. */
export interface ConformanceOptions {
  /** Registers the tests as ignored (a backend whose server the environment does not name). */
  ignore?: boolean;
}

/** Registers one Deno.test per behaviour, named "<name> backend: <behaviour>". */
export function backendConformance(
  name: string,
  make: () => Promise<BackendFixture>,
  options: ConformanceOptions = {},
): void {
  const test = (behaviour: string, fn: (backend: Backend) => Promise<void>): void => {
    Deno.test(`${name} backend: ${behaviour}`, { ignore: options.ignore ?? false }, async () => {
      const fixture = await make();
      try {
        await fn(fixture.backend);
      } finally {
        await fixture.backend.close();
        await fixture.cleanup();
      }
    });
  };

  test("get and size of an absent key are null", async (backend) => {
    equal(await backend.get("config"), null);
    equal(await backend.size("config"), null);
    equal(await backend.get("packs/ab/abcdef"), null);
    equal(await backend.size("packs/ab/abcdef"), null);
  });

  test("put then get round-trips empty, one-byte and 5 MiB objects", async (backend) => {
    const cases: [string, Uint8Array][] = [
      ["empty", new Uint8Array(0)],
      ["one", new Uint8Array([0xa5])],
      ["packs/5m/big", randomBytes(5 * 1024 * 1024)],
    ];
    for (const [key, data] of cases) await backend.put(key, data);
    for (const [key, data] of cases) {
      deepStrictEqual(await backend.get(key), data, key);
      equal(await backend.size(key), data.length, key);
    }
  });

  test("get with maxBytes returns objects up to the limit and refuses larger ones", async (backend) => {
    const cases: [string, Uint8Array][] = [
      ["empty", new Uint8Array(0)],
      ["keys/repokey", randomBytes(4096)],
      ["index", randomBytes(70_000)],
    ];
    for (const [key, data] of cases) await backend.put(key, data);
    for (const [key, data] of cases) {
      deepStrictEqual(await backend.get(key, { maxBytes: data.length }), data, key);
      deepStrictEqual(await backend.get(key, { maxBytes: data.length + 1 }), data, key);
      if (data.length === 0) continue;
      await rejects(backend.get(key, { maxBytes: data.length - 1 }), (err: unknown) => {
        ok(err instanceof IntegrityError, `${key}: ${err}`);
        equal(
          err.message,
          `Object "${key}" is too large: ${data.length} bytes, the limit is ${data.length - 1}`,
        );
        return true;
      });
    }
    equal(await backend.get("manifest", { maxBytes: 10 }), null, "absent is still null");
    for (const maxBytes of [-1, 1.5, NaN]) {
      await rejects(backend.get("index", { maxBytes }), VgerError, `maxBytes ${maxBytes}`);
    }
  });

  test("put replaces an existing object", async (backend) => {
    await backend.put("index", bytes("old contents that are longer"));
    await backend.put("index", bytes("new"));
    deepStrictEqual(await backend.get("index"), bytes("new"));
    equal(await backend.size("index"), 3);
  });

  test("put of parts stores their concatenation", async (backend) => {
    const parts = [bytes("head-"), new Uint8Array(0), randomBytes(70_000), bytes("-tail")];
    await backend.put("archives/a1", parts);
    deepStrictEqual(await backend.get("archives/a1"), concat(parts));
    ok(await backend.create("archives/a2", parts));
    deepStrictEqual(await backend.get("archives/a2"), concat(parts));
  });

  test("put and create of a stream body store its pieces in order, read again if needed", async (backend) => {
    const pieces = [new Uint8Array([1, 2, 3]), new Uint8Array(0), new Uint8Array(70_000).fill(9)];
    let reads = 0;
    const body = {
      size: 70_003,
      async *pieces() {
        reads++;
        for (const p of pieces) yield p.slice();
      },
    };
    await backend.put("packs/ab/stream", body);
    const want = new Uint8Array(70_003);
    want.set([1, 2, 3]);
    want.fill(9, 3);
    deepStrictEqual(await backend.get("packs/ab/stream"), want);
    equal(await backend.create("packs/ab/stream2", body), true);
    deepStrictEqual(await backend.get("packs/ab/stream2"), want);
    ok(reads >= 2);
  });

  test("buffers are copied in and out", async (backend) => {
    const data = bytes("original");
    const part = bytes("part");
    await backend.put("a", data);
    await backend.put("b", [part, part]);
    ok(await backend.create("c", data));
    data.fill(0);
    part.fill(0);
    deepStrictEqual(await backend.get("a"), bytes("original"));
    deepStrictEqual(await backend.get("b"), bytes("partpart"));
    deepStrictEqual(await backend.get("c"), bytes("original"));
    const got = (await backend.get("a"))!;
    got.fill(1);
    deepStrictEqual(await backend.get("a"), bytes("original"));
    const range = await backend.getRange("a", 0, 4);
    range.fill(1);
    deepStrictEqual(await backend.getRange("a", 0, 4), bytes("orig"));
  });

  test("create stores a new object and returns true", async (backend) => {
    equal(await backend.create("locks/l1", bytes("lock one")), true);
    deepStrictEqual(await backend.get("locks/l1"), bytes("lock one"));
    equal(await backend.size("locks/l1"), 8);
  });

  test("create on an existing key returns false and keeps the old bytes", async (backend) => {
    await backend.put("locks/l1", bytes("first"));
    equal(await backend.create("locks/l1", bytes("second writer")), false);
    deepStrictEqual(await backend.get("locks/l1"), bytes("first"));
    equal(await backend.create("locks/l1", [bytes("third")]), false);
    deepStrictEqual(await backend.get("locks/l1"), bytes("first"));
  });

  test("exactly one of 20 concurrent creates wins and its bytes are stored", async (backend) => {
    const bodies = Array.from({ length: 20 }, (_, i) => {
      const body = randomBytes(4096 + i);
      body[0] = i;
      return body;
    });
    const results = await Promise.all(bodies.map((body) => backend.create("locks/race", body)));
    const winners = results.flatMap((won, i) => (won ? [i] : []));
    equal(winners.length, 1, `winners: ${winners.join(", ")}`);
    deepStrictEqual(await backend.get("locks/race"), bodies[winners[0]]);
  });

  test("getRange returns exact slices and rejects bad ranges", async (backend) => {
    const data = randomBytes(1000);
    await backend.put("packs/ab/ab01", data);
    const slices: [number, number][] = [[0, 10], [500, 123], [990, 10], [0, 1000], [1000, 0], [
      0,
      0,
    ]];
    for (const [offset, length] of slices) {
      const got = await backend.getRange("packs/ab/ab01", offset, length);
      deepStrictEqual(got, data.slice(offset, offset + length), `${offset}+${length}`);
    }
    for (const [offset, length] of [[995, 10], [1000, 1], [1001, 0], [0, 1001]]) {
      const err = await rejectsWith(backend.getRange("packs/ab/ab01", offset, length));
      ok(err instanceof IntegrityError, `${offset}+${length}: ${err}`);
      ok(err.message.includes("packs/ab/ab01"), err.message);
      ok(err.message.includes("1000"), err.message);
    }
    const err = await rejectsWith(backend.getRange("packs/ab/absent", 0, 1));
    ok(err instanceof NotFoundError, String(err));
    ok(err.message.includes("packs/ab/absent"), err.message);
    ok((await rejectsWith(backend.getRange("packs/cd/absent", 0, 0))) instanceof NotFoundError);
  });

  test("size reports object sizes", async (backend) => {
    await backend.put("zero", new Uint8Array(0));
    await backend.put("keys/repokey", randomBytes(1234));
    equal(await backend.size("zero"), 0);
    equal(await backend.size("keys/repokey"), 1234);
    equal(await backend.size("keys/other"), null);
  });

  test("list returns exactly the keys under a prefix with their sizes", async (backend) => {
    const objects: Record<string, number> = {
      "config": 10,
      "index": 0,
      "keys/repokey": 11,
      "packs/ab/ab11": 12,
      "packs/ab/ab22": 13,
      "packs/abc/abc3": 14,
      "packs/ac/ac44": 15,
      "packs/b0/b055": 16,
      "locks/l1": 17,
    };
    for (const [key, size] of Object.entries(objects)) await backend.put(key, randomBytes(size));
    const expect = (prefix: string): ObjectInfo[] =>
      Object.entries(objects).filter(([key]) => key.startsWith(prefix))
        .map(([key, size]) => ({ key, size })).sort(byKey);
    for (
      const prefix of [
        "",
        "packs/",
        "packs/ab",
        "packs/ab/",
        "packs/ab/ab1",
        "packs/a",
        "locks/",
        "con",
        "keys/repokey",
      ]
    ) {
      deepStrictEqual(await listAll(backend, prefix), expect(prefix), `prefix "${prefix}"`);
    }
    for (const prefix of ["archives/", "packs/ff", "packs/ab/zz", "zzz", "config/"]) {
      deepStrictEqual(await listAll(backend, prefix), [], `prefix "${prefix}"`);
    }
  });

  test("list tells when each object was last written, where it tells at all", async (backend) => {
    const before = Date.now() - 2000; // file systems keep coarse times
    await backend.put("locks/a", bytes("a"));
    await backend.create("locks/b", bytes("b"));
    const infos = await Array.fromAsync(backend.list("locks/"));
    equal(infos.length, 2);
    for (const info of infos) {
      if (info.modified === undefined) continue;
      ok(info.modified >= before && info.modified <= Date.now() + 2000, `${info.key} time`);
    }
  });

  test("getStream streams all or part of an object, null when absent", async (backend) => {
    if (backend.getStream === undefined) return;
    const data = randomBytes(700_000); // more than one piece of any sensible size
    await backend.put("packs/ab/ab01", data);
    equal(await backend.getStream("packs/ab/absent"), null);
    const read = async (options?: { offset?: number; length?: number }) => {
      const got = (await backend.getStream!("packs/ab/ab01", options))!;
      const body = new Uint8Array(await new Response(got.stream).arrayBuffer());
      equal(body.length, got.length);
      return { ...got, body };
    };
    const whole = await read();
    deepStrictEqual([whole.size, whole.offset, whole.length], [data.length, 0, data.length]);
    deepStrictEqual(whole.body, data);
    const part = await read({ offset: 300_001, length: 5 });
    deepStrictEqual(part.body, data.subarray(300_001, 300_006));
    const tail = await read({ offset: data.length - 3, length: 100 });
    deepStrictEqual([tail.length, tail.body], [3, data.subarray(data.length - 3)]);
    const past = await read({ offset: data.length + 10 });
    deepStrictEqual([past.size, past.length, past.body.length], [data.length, 0, 0]);
    // a replacement while a stream is open: the stream keeps the bytes it started with
    const open = (await backend.getStream("packs/ab/ab01"))!;
    await backend.put("packs/ab/ab01", bytes("new"));
    const old = new Uint8Array(await new Response(open.stream).arrayBuffer());
    deepStrictEqual(old, data);
    ok(
      (await rejectsWith(backend.getStream("packs/ab/ab01", { offset: -1 }))) instanceof VgerError,
    );
    ok(
      (await rejectsWith(backend.getStream("packs/ab/ab01", { length: 0.5 }))) instanceof VgerError,
    );
    // a stream given up early releases the object; it can be deleted and read no more
    const dropped = (await backend.getStream("packs/ab/ab01"))!;
    await dropped.stream.cancel();
    await backend.delete("packs/ab/ab01");
    equal(await backend.getStream("packs/ab/ab01"), null);
    ok((await rejectsWith(backend.getStream("a/../b"))) instanceof VgerError);
  });

  test("freeBytes, where offered, is a count of bytes or null", async (backend) => {
    if (backend.freeBytes === undefined) return;
    const free = await backend.freeBytes();
    ok(free === null || (Number.isSafeInteger(free) && free >= 0), String(free));
    await backend.put("config", bytes("x"));
    const after = await backend.freeBytes();
    ok(after === null || (Number.isSafeInteger(after) && after >= 0), String(after));
  });

  test("list of empty storage yields nothing", async (backend) => {
    deepStrictEqual(await listAll(backend, ""), []);
    deepStrictEqual(await listAll(backend, "packs/"), []);
  });

  test("delete removes an object and deleting again is fine", async (backend) => {
    await backend.put("packs/ab/ab01", bytes("pack"));
    await backend.put("packs/ab/ab02", bytes("other"));
    await backend.delete("packs/ab/ab01");
    equal(await backend.get("packs/ab/ab01"), null);
    equal(await backend.size("packs/ab/ab01"), null);
    deepStrictEqual(await listAll(backend, ""), [{ key: "packs/ab/ab02", size: 5 }]);
    await backend.delete("packs/ab/ab01");
    await backend.delete("never/existed");
    deepStrictEqual(await backend.get("packs/ab/ab02"), bytes("other"));
    ok(await backend.create("packs/ab/ab01", bytes("again")));
    deepStrictEqual(await backend.get("packs/ab/ab01"), bytes("again"));
  });

  test("invalid keys and prefixes are rejected by every method", async (backend) => {
    for (const key of INVALID_KEYS) {
      const calls: [string, () => Promise<unknown>][] = [
        ["put", () => backend.put(key, bytes("x"))],
        ["create", () => backend.create(key, bytes("x"))],
        ["get", () => backend.get(key)],
        ["getRange", () => backend.getRange(key, 0, 1)],
        ["size", () => backend.size(key)],
        ["delete", () => backend.delete(key)],
      ];
      for (const [method, call] of calls) {
        await rejects(call, (err: unknown) => {
          ok(err instanceof VgerError, `${method}(${JSON.stringify(key)}): ${err}`);
          ok(err.message.includes("Invalid object key"), err.message);
          return true;
        });
      }
    }
    for (const prefix of ["/", "/abs", "a//", "../", "a/../", "./"]) {
      await rejects(listAll(backend, prefix), (err: unknown) => {
        ok(err instanceof VgerError, `list(${JSON.stringify(prefix)}): ${err}`);
        return true;
      });
    }
    deepStrictEqual(await listAll(backend, ""), [], "nothing was written");
  });

  test("a 64 MiB object put as 8 parts reads back equal", async (backend) => {
    const parts = Array.from({ length: 8 }, () => randomBytes(8 * 1024 * 1024));
    const sent = createHash("sha256");
    for (const part of parts) sent.update(part);
    await backend.put("packs/64/big", parts);
    equal(await backend.size("packs/64/big"), 64 * 1024 * 1024);
    const got = await backend.get("packs/64/big");
    ok(got !== null);
    equal(got.length, 64 * 1024 * 1024);
    equal(createHash("sha256").update(got).digest("hex"), sent.digest("hex"));
  });

  test("concurrent puts of different keys all land", async (backend) => {
    const objects = new Map<string, Uint8Array>();
    for (let i = 0; i < 60; i++) {
      const hex = i.toString(16).padStart(2, "0");
      objects.set(`packs/${hex}/${hex}${"0".repeat(62)}`, randomBytes(1000 + i * 37));
    }
    await Promise.all([...objects].map(([key, data]) => backend.put(key, data)));
    const listed = await listAll(backend, "packs/");
    deepStrictEqual(
      listed,
      [...objects].map(([key, data]) => ({ key, size: data.length })).sort(byKey),
    );
    for (const [key, data] of objects) deepStrictEqual(await backend.get(key), data, key);
  });

  // compose is optional; a storage that checks records (vger-server) is covered by its own tests
  const composes = (backend: Backend) =>
    backend.compose !== undefined && !backend.capabilities.composeChecksRecords;
  const packName = (sha: string) => `packs/${sha.slice(0, 2)}/${sha}`;

  test("compose (where offered) writes prefix, ranges and suffix under the name of their SHA-256, and again the same", async (backend) => {
    if (!composes(backend)) return;
    const a = randomBytes(6 << 20); // over one 4 MiB read
    const b = randomBytes(1000);
    await backend.put("src/a", a);
    await backend.put("src/b", b);
    const plan = {
      prefix: bytes("HEAD"),
      ranges: [
        { key: "src/b", offset: 10, length: 500 },
        { key: "src/a", offset: 1, length: a.length - 1 },
        { key: "src/b", offset: 0, length: 0 },
        { key: "src/b", offset: 999, length: 1 },
      ],
      suffix: bytes("TAIL"),
      name: packName,
    };
    const want = concat([
      bytes("HEAD"),
      b.subarray(10, 510),
      a.subarray(1),
      b.subarray(999),
      bytes("TAIL"),
    ]);
    const sha = createHash("sha256").update(want).digest("hex");
    const r = await backend.compose!(plan);
    deepStrictEqual(r, { key: packName(sha), sha256: sha, size: want.length, sentBytes: 0 });
    deepStrictEqual(await backend.get(r.key), want);
    deepStrictEqual(await backend.compose!(plan), r, "composing again is the same");
    deepStrictEqual(await backend.get(r.key), want);
    deepStrictEqual(await backend.get("src/b"), b, "the sources stay");
    deepStrictEqual(
      (await listAll(backend, "")).map((o) => o.key),
      ["packs/" + sha.slice(0, 2) + "/" + sha, "src/a", "src/b"].sort(),
    );
  });

  test("compose (where offered) of a missing object or past an object's end writes nothing", async (backend) => {
    if (!composes(backend)) return;
    await backend.put("src/a", randomBytes(100));
    const plan = (key: string, offset: number, length: number) => ({
      prefix: bytes("x"),
      ranges: [{ key: "src/a", offset: 0, length: 10 }, { key, offset, length }],
      suffix: new Uint8Array(0),
      name: packName,
    });
    ok(await rejectsWith(backend.compose!(plan("src/absent", 0, 1))) instanceof NotFoundError);
    ok(await rejectsWith(backend.compose!(plan("src/a", 50, 51))) instanceof IntegrityError);
    ok(await rejectsWith(backend.compose!(plan("../a", 0, 1))) instanceof VgerError);
    deepStrictEqual((await listAll(backend, "")).map((o) => o.key), ["src/a"]);
    if (backend.removeLeftovers) {
      equal(await backend.removeLeftovers(), 0, "no temporary file left");
    }
  });
}

async function listAll(backend: Backend, prefix: string): Promise<ObjectInfo[]> {
  const out: ObjectInfo[] = [];
  for await (const info of backend.list(prefix)) out.push({ key: info.key, size: info.size });
  return out.sort(byKey);
}

function byKey(a: ObjectInfo, b: ObjectInfo): number {
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}

async function rejectsWith(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof Error) return err;
    throw new Error(`Rejected with a non-Error: ${String(err)}`);
  }
  throw new Error("Expected a rejection, but it resolved");
}

function bytes(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** Random bytes of any length (getRandomValues fills at most 64 KiB per call). */
function randomBytes(length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let at = 0; at < length; at += 65536) {
    crypto.getRandomValues(out.subarray(at, Math.min(at + 65536, length)));
  }
  return out;
}
