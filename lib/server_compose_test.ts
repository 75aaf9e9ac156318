import { deepStrictEqual, equal, match } from "node:assert/strict";
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import { MemoryBackend } from "../backends/memory.ts";
import { makePack } from "./_test_repos.ts";
import { ObjectType, RepoKey } from "./crypto.ts";
import {
  encodePackHeader,
  FIRST_OBJECT_OFFSET,
  PACK_MAGIC,
  PACK_VERSION,
  type PackEntry,
  RECORD_PREFIX,
} from "./pack.ts";
import { createApp } from "./server_app.ts";
import { ServerStore } from "./server_store.ts";
import { packKeyHex } from "./storage_keys.ts";
import { toHex } from "./ids.ts";

const TOKEN = "compose-test-token";
const PREAMBLE = new Uint8Array([...PACK_MAGIC, PACK_VERSION]);

const APPEND_TOKEN = "compose-test-append-only-token";

async function setup(options: { appendOnly?: boolean; quotaBytes?: number } = {}) {
  const memory = new MemoryBackend();
  const appendOnly = options.appendOnly ?? false;
  const store = new ServerStore(memory, {
    appendOnly,
    maxObjectBytes: 1 << 20,
    quotaBytes: options.quotaBytes ?? 0,
  });
  const app = createApp(store, {
    token: TOKEN,
    tokens: [{ name: "tokens[0]", token: APPEND_TOKEN, repos: ["*"], role: "append-only" }],
    bodyTimeoutSeconds: 5,
    appendOnly,
    lockTtlSeconds: 3600,
    logFormat: "json",
    log: () => {},
  });
  const one = {
    size: 1,
    async *pieces() {
      yield new Uint8Array([1]);
    },
  };
  equal(await store.put("laptop", "config", one, { create: true }), 201);
  const key = await RepoKey.generate("aes256gcm");
  let seed = 7;
  const pack = await makePack(key, () => (seed = (seed * 1103515245 + 12345) >>> 0), 6);
  const source = packKeyHex(toHex(pack.id));
  await memory.put(`laptop/${source}`, pack.bytes);
  const post = (plan: unknown, token = TOKEN) => {
    const body = JSON.stringify(plan);
    return app.fetch(
      new Request("http://h/laptop?compose", {
        method: "POST",
        body,
        headers: { Authorization: `Bearer ${token}`, "Content-Length": String(body.length) },
      }),
    );
  };
  return { memory, key, pack, source, post };
}

/** The plan of a pack of `keep` (entries of the source pack), and the bytes it must compose. */
async function planOf(
  key: RepoKey,
  entries: readonly PackEntry[],
  bytes: Uint8Array,
  keep: number[],
  types?: number[],
) {
  const kept: PackEntry[] = [];
  let at = FIRST_OBJECT_OFFSET;
  const parts: Uint8Array[] = [PREAMBLE];
  for (const i of keep) {
    const e = entries[i];
    kept.push({ ...e, offset: at });
    at += e.length + RECORD_PREFIX;
    parts.push(bytes.subarray(e.offset - RECORD_PREFIX, e.offset + e.length));
  }
  const header = await key.seal(ObjectType.packHeader, "pack-header", encodePackHeader(kept));
  const suffix = new Uint8Array(header.length + 4);
  suffix.set(header);
  new DataView(suffix.buffer).setUint32(header.length, header.length, true);
  parts.push(suffix);
  const want = new Uint8Array(Buffer.concat(parts));
  return {
    want,
    plan: (source: string) => ({
      prefix: Buffer.from(PREAMBLE).toString("base64"),
      sources: [source],
      records: keep.map((i, n) => [
        0,
        entries[i].offset - RECORD_PREFIX,
        entries[i].length + RECORD_PREFIX,
        types?.[n] ?? entries[i].type,
      ]),
      suffix: Buffer.from(suffix).toString("base64"),
    }),
  };
}

Deno.test("the server composes a pack of kept records under its SHA-256, byte for byte what the client planned", async () => {
  const { memory, key, pack, source, post } = await setup();
  const { want, plan } = await planOf(key, pack.entries, pack.bytes, [0, 2, 5]);
  const res = await post(plan(source));
  equal(res.status, 201, await res.clone().text());
  const answer = await res.json();
  const sha = createHash("sha256").update(want).digest("hex");
  deepStrictEqual(answer, { key: packKeyHex(sha), sha256: sha, size: want.length });
  deepStrictEqual(await memory.get(`laptop/${answer.key}`), want);
});

Deno.test("the server refuses records that fail pack.ts's checks (CRC, type byte, outside the record area, a missing pack) with 422 naming them, and stores nothing", async () => {
  const { memory, key, pack, source, post } = await setup();
  const packs = async () => (await Array.fromAsync(memory.list("laptop/packs/"))).length;
  // a flipped byte in the object of entry 2
  const damaged = pack.bytes.slice();
  damaged[pack.entries[2].offset + 5] ^= 0xff;
  await memory.put(`laptop/${source}`, damaged);
  const { plan } = await planOf(key, pack.entries, pack.bytes, [0, 2, 5]);
  let res = await post(plan(source));
  equal(res.status, 422);
  let body = await res.json();
  match(body.error, /1 of its records fail the checks \(record 1: .*CRC-32 mismatch\)/);
  deepStrictEqual(body.refused.map((r: [number, string]) => r[0]), [1]);
  equal(await packs(), 1, "nothing stored");
  await memory.put(`laptop/${source}`, pack.bytes);

  // the plan says items where the record holds data
  const wrong = pack.entries[0].type === ObjectType.data ? ObjectType.items : ObjectType.data;
  res = await post((await planOf(key, pack.entries, pack.bytes, [0, 1], [wrong])).plan(source));
  equal(res.status, 422);
  body = await res.json();
  deepStrictEqual(body.refused[0][0], 0);
  match(body.refused[0][1], /type byte \d, the plan says \d/);

  // a range that reaches into the header
  const p = plan(source);
  const last = pack.entries[pack.entries.length - 1];
  p.records[2] = [0, last.offset - RECORD_PREFIX, last.length + RECORD_PREFIX + 10, last.type];
  body = await (await post(p)).json();
  match(body.refused[0][1], /not in its record area/);

  // a pack that is not there
  const absent = packKeyHex("ab".repeat(32));
  res = await post(plan(absent));
  equal(res.status, 422);
  body = await res.json();
  equal(body.refused.length, 3);
  match(body.refused[0][1], /is missing/);
  equal(await packs(), 1, "nothing stored");
});

Deno.test("a compose plan that is not a pack's is 400, one over the quota 413, and append-only mode and an append-only token refuse composing (403)", async () => {
  const { key, pack, source, post } = await setup();
  const { plan } = await planOf(key, pack.entries, pack.bytes, [0]);
  const cases: [string, (p: ReturnType<typeof plan>) => unknown][] = [
    ["the prefix is not the pack preamble", (p) => ({ ...p, prefix: "AAAA" })],
    ["not a sealed pack header", (p) => ({ ...p, suffix: Buffer.from("xyz").toString("base64") })],
    ["trailer does not fit", (p) => {
      const s = Buffer.from(p.suffix, "base64");
      s.writeUInt32LE(s.length, s.length - 4);
      return { ...p, suffix: s.toString("base64") };
    }],
    ["is not a pack key", (p) => ({ ...p, sources: ["index"] })],
    ["is not a pack key", (p) => ({ ...p, sources: ["../x/packs/ab/ab"] })],
    ["is not \\[source, offset, length, type\\]", (p) => ({ ...p, records: [[0, -1, 5, 1]] })],
    ["names source 1", (p) => ({ ...p, records: [[1, 9, 50, 1]] })],
    ["has type 6", (p) => ({ ...p, records: [[0, 9, 50, 6]] })],
    ["suffix is not base64", (p) => ({ ...p, suffix: "a b" })],
    ["no records", (p) => ({ ...p, records: [] })],
  ];
  for (const [why, change] of cases) {
    const res = await post(change(plan(source)));
    equal(res.status, 400, why);
    match(
      (await res.json()).error,
      new RegExp(`Invalid compose plan for repository "laptop": .*${why}`),
    );
  }

  const small = await setup({ quotaBytes: 1 });
  const over = await small.post(
    (await planOf(small.key, small.pack.entries, small.pack.bytes, [0])).plan(small.source),
  );
  equal(over.status, 413);
  match((await over.json()).error, /over its quota/);

  const ao = await setup({ appendOnly: true });
  const refused = await ao.post(
    (await planOf(ao.key, ao.pack.entries, ao.pack.bytes, [0])).plan(ao.source),
  );
  equal(refused.status, 403);
  match((await refused.json()).error, /append-only: packs cannot be composed/);

  // a token below full may not compose either, whatever the server's mode
  const byRole = await post(plan(source), APPEND_TOKEN);
  equal(byRole.status, 403);
  match(
    (await byRole.json()).error,
    /packs cannot be composed \(compaction deletes\): needs role full; this token is append-only/,
  );
});
