import "./platform_deno.ts";
import { deepStrictEqual, equal, match } from "node:assert/strict";
import { MemoryBackend } from "../backends/memory.ts";
import { type Fixture, fixture, packOf } from "./_test_repos.ts";
import {
  checkStructure,
  runStructureCheck,
  structureCheckJson,
  type StructureCheckResult,
} from "./server_check.ts";
import { encodeLock } from "./lock.ts";
import { PROBLEM_KINDS } from "./check_report.ts";

const HOUR = 3_600_000;

/** The fixture's objects on a server's storage, under `laptop/`. */
async function onServer(f: Fixture): Promise<MemoryBackend> {
  const server = new MemoryBackend("memory:server");
  for await (const { key } of f.backend.list("")) {
    await server.put(`laptop/${key}`, (await f.backend.get(key))!);
  }
  return server;
}

async function edit(b: MemoryBackend, key: string, fn: (x: Uint8Array) => Uint8Array | null) {
  const got = fn((await b.get(`laptop/${key}`))!);
  if (got === null) await b.delete(`laptop/${key}`);
  else await b.put(`laptop/${key}`, got);
}

function found(r: StructureCheckResult): string[] {
  // the client reports them as its own kinds
  for (const p of r.problems) equal(PROBLEM_KINDS.includes(p.kind as never), true, p.kind);
  return r.problems.map((p) => `${p.severity} ${p.kind}: ${p.message}`);
}

const check = (b: MemoryBackend, now?: () => number) =>
  checkStructure(b, "laptop", { lockTtlMs: HOUR, now, rangeBytes: 4093 });

Deno.test("server check: a sound repository is clean in both modes, every pack walked record by record", async () => {
  for (const mode of ["aes256gcm", "none"] as const) {
    const f = await fixture(mode);
    const r = await check(await onServer(f));
    deepStrictEqual(found(r), [], mode);
    equal(r.stats.archives, 2);
    equal(r.stats.packs, 4);
    // every blob of the index was walked as a record
    equal(r.stats.blobs, (await f.repo.readIndex()).size);
    let bytes = 0;
    for await (const o of f.backend.list("packs/")) bytes += o.size;
    equal(r.stats.bytesRead, bytes + 4 * 4, "each pack once, and its trailer");
  }
});

Deno.test("server check: each structural damage is found without the key", async () => {
  const f = await fixture();
  const pack = await packOf(f, "c1");
  const big = await packOf(f, "big");
  const hex = pack.slice(-64);
  const wrongShard = `packs/${hex[0] === "0" ? "1" : "0"}${hex[1]}/${hex}`;
  const b = await onServer(f);
  const archive = (await Array.fromAsync(f.backend.list("archives/")))[0].key;
  // a truncated pack, a pack in the wrong shard, a missing index, garbage objects
  await edit(b, big, (x) => x.subarray(0, x.length - 100));
  await b.put(`laptop/${wrongShard}`, (await b.get(`laptop/${pack}`))!);
  await b.delete(`laptop/${pack}`);
  await edit(b, "index", () => null);
  await edit(b, "manifest", () => new TextEncoder().encode("garbage ".repeat(10)));
  await edit(b, archive, () => new TextEncoder().encode("garbage ".repeat(10)));
  await b.put("laptop/stray", new Uint8Array([1]));
  await b.put("laptop/packs/ab/not-a-pack", new Uint8Array([1]));
  const r = await check(b);
  deepStrictEqual(found(r).map((l) => l.replace(/:.*/, "")).sort(), [
    "error corrupt-archive",
    "error corrupt-index",
    "error corrupt-manifest",
    "error corrupt-pack",
    "error misplaced-pack",
    "warning unknown-object",
    "warning unknown-object",
  ]);
  const line = (kind: string) => found(r).find((l) => l.includes(kind))!;
  match(
    line("corrupt-pack"),
    new RegExp(`Pack ${big} is corrupt: header length \\d+ does not fit`),
  );
  match(
    line("misplaced-pack"),
    new RegExp(`${wrongShard} is in the wrong shard: it belongs under packs/${hex.slice(0, 2)}/`),
  );
  match(line("corrupt-index"), /Index is missing/);
  match(line("corrupt-manifest"), /Manifest is corrupt: its type tag is 103, not 4/);
  const json = structureCheckJson("laptop", r);
  deepStrictEqual([json.errors, json.warnings, json.verify_data], [5, 2, false]);
  deepStrictEqual(json.problems[0].affects, { archives: [], paths: [], paths_truncated: false });
});

Deno.test("server check: a record's CRC, a pack's hash, its magic; config, key file and locks", async () => {
  const f = await fixture();
  const [p1, p2, p3] = [await packOf(f, "c1"), await packOf(f, "big"), await packOf(f, "c3")];
  const items = (await Array.fromAsync(f.backend.list("packs/"))).map((o) => o.key)
    .filter((k) => k !== p1 && k !== p2 && k !== p3)[0];
  const b = await onServer(f);
  const flip = (at: (x: Uint8Array) => number) => (x: Uint8Array) => {
    const y = x.slice();
    y[at(y)] ^= 0x40;
    return y;
  };
  await edit(b, p1, flip(() => 30)); // inside the first record's object
  await edit(b, p2, flip((y) => y.length - 10)); // inside the header: only the hash tells
  await edit(b, items, flip(() => 2)); // the magic
  await edit(b, "config", () => new TextEncoder().encode("{}"));
  await edit(b, "keys/repokey", (x) => x.subarray(1));
  const old = Date.now() - 2 * HOUR;
  await b.put(
    "laptop/locks/commit",
    encodeLock({ host: "h", pid: 1, time: "x", exclusive: true, command: "c" }, true),
  );
  await b.put(`laptop/locks/${"a".repeat(64)}`, new TextEncoder().encode("not json"));
  await b.put(
    `laptop/locks/${"b".repeat(64)}`,
    encodeLock({
      host: "h",
      pid: 2,
      time: new Date(old).toISOString(),
      exclusive: false,
      command: "backup",
    }),
  );
  const r = await check(b, () => Date.now() + 2 * HOUR);
  const lines = found(r);
  deepStrictEqual(lines.map((l) => l.replace(/:.*/, "")).sort(), [
    "error corrupt-config",
    "error corrupt-key-file",
    "error corrupt-pack",
    "error corrupt-pack",
    "error pack-hash-mismatch",
    "warning stale-lock",
    "warning stale-lock",
    "warning stale-lock",
  ]);
  match(
    lines.join("\n"),
    new RegExp(`Pack ${p1} is corrupt: the record at offset 9: CRC-32 mismatch`),
  );
  match(lines.join("\n"), new RegExp(`Pack ${p2} is corrupt: its SHA-256 is [0-9a-f]{64}`));
  match(lines.join("\n"), new RegExp(`Pack ${items} is corrupt: bad magic`));
  match(lines.join("\n"), /Lock locks\/a{64} is malformed/);
  match(lines.join("\n"), /Stale lock locks\/b{64}: backup on h \(pid 2\), not written for \d+ s/);
});

Deno.test("server check as an operator command: text or --json, exit 1 on errors, usage errors 2", async () => {
  const f = await fixture();
  const b = await onServer(f);
  const out: string[] = [];
  const err: string[] = [];
  const io = { out: (l: string) => void out.push(l), err: (l: string) => void err.push(l) };
  equal(await runStructureCheck(b, ["laptop"], { lockTtlMs: HOUR, io }), 0);
  match(
    out.at(-1)!,
    /^Checked the structure of laptop without the key: 2 archive objects, 4 packs, \d+ records, \d+ bytes read: 0 errors, 0 warnings$/,
  );
  await edit(b, "index", () => null);
  out.length = 0;
  equal(await runStructureCheck(b, ["laptop", "--json"], { lockTtlMs: HOUR, io }), 1);
  equal(out.length, 1);
  equal(JSON.parse(out[0]).problems[0].kind, "corrupt-index");
  equal(await runStructureCheck(b, ["nope"], { lockTtlMs: HOUR, io }), 1);
  match(err.at(-1)!, /unknown repository "nope"/);
  equal(await runStructureCheck(b, [], { lockTtlMs: HOUR, io }), 2);
  equal(await runStructureCheck(b, ["../x"], { lockTtlMs: HOUR, io }), 2);
});
