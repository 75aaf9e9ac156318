import { deepStrictEqual, equal, ok, rejects, throws } from "node:assert/strict";
import { hmacSha256, RepoKey } from "./crypto.ts";
import { IntegrityError } from "./errors.ts";
import { toHex } from "./ids.ts";
import {
  encodeRepoConfig,
  FORMAT_VERSION,
  parseRepoConfig,
  type RepoConfig,
  verifyRepoConfig,
} from "./repo_config.ts";
import { fuzzCases, FuzzClock, mutate, rng } from "./_fuzz.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

function sampleConfig(): RepoConfig {
  return {
    version: FORMAT_VERSION,
    id: toHex(crypto.getRandomValues(new Uint8Array(32))),
    encryption: "aes256gcm",
    chunker: { minSize: 1024, avgSize: 4096, maxSize: 16384 },
    minPackSize: 1 << 20,
    maxPackSize: 8 << 20,
  };
}

/** JSON-significant characters: digits, quotes, braces, separators. */
const JSON_SPECIALS = [...enc.encode('0912"{}[],:- en')];

function assertCorrupt(reason: RegExp): (err: unknown) => boolean {
  return (err: unknown) => {
    ok(err instanceof IntegrityError, `expected IntegrityError, got ${err}`);
    ok(err.message.startsWith("Repository config is corrupt: "), err.message);
    ok(reason.test(err.message), err.message);
    return true;
  };
}

Deno.test("encode, parse and verify give back the same config", async () => {
  const key = await RepoKey.generate("aes256gcm");
  const c = sampleConfig();
  const bytes = await encodeRepoConfig(c, key);
  const parsed = parseRepoConfig(bytes);
  deepStrictEqual(parsed.config, c);
  deepStrictEqual(await verifyRepoConfig(parsed, key), c);
});

Deno.test("the config is canonical JSON with the MAC last and a newline", async () => {
  const key = await RepoKey.generate("none");
  const c = { ...sampleConfig(), encryption: "none" as const };
  const text = dec.decode(await encodeRepoConfig(c, key));
  ok(text.endsWith("}\n"));
  const o = JSON.parse(text);
  deepStrictEqual(Object.keys(o), [
    "vger_repository",
    "id",
    "encryption",
    "chunker",
    "min_pack_size",
    "max_pack_size",
    "mac",
  ]);
  deepStrictEqual(o.chunker, { min_size: 1024, avg_size: 4096, max_size: 16384 });
  // mac = HMAC-SHA-256(deriveSecret("config"), the JSON without the mac, no whitespace).
  const { mac, ...rest } = o;
  const want = await hmacSha256(await key.deriveSecret("config"), enc.encode(JSON.stringify(rest)));
  equal(mac, toHex(want));
  equal(text, `${JSON.stringify(rest).slice(0, -1)},"mac":"${mac}"}\n`);
});

Deno.test("verify rejects a switched encryption mode, changed chunker or pack sizes, or a foreign key", async () => {
  const key = await RepoKey.generate("aes256gcm");
  const c = sampleConfig();
  const text = dec.decode(await encodeRepoConfig(c, key));
  const edits = [
    text.replace('"encryption":"aes256gcm"', '"encryption":"none"'),
    text.replace('"avg_size":4096', '"avg_size":8192'),
    text.replace('"min_size":1024', '"min_size":2048'),
    text.replace('"max_pack_size":8388608', '"max_pack_size":8388609'),
    text.replace(c.id, (c.id[0] === "0" ? "1" : "0") + c.id.slice(1)),
  ];
  for (const edited of edits) {
    ok(edited !== text);
    const parsed = parseRepoConfig(enc.encode(edited));
    await rejects(verifyRepoConfig(parsed, key), assertCorrupt(/MAC does not match/));
  }
  const other = await RepoKey.generate("aes256gcm");
  await rejects(verifyRepoConfig(parseRepoConfig(enc.encode(text)), other), IntegrityError);
});

Deno.test("parse rejects each malformed field with a reason", async () => {
  const key = await RepoKey.generate("aes256gcm");
  const o = JSON.parse(dec.decode(await encodeRepoConfig(sampleConfig(), key)));
  const cases: [unknown, RegExp][] = [
    [[], /not an object/],
    [null, /not an object/],
    [{ ...o, vger_repository: 2 }, /unsupported format version 2/],
    [{ ...o, vger_repository: "1" }, /unsupported format version "1"/],
    [{ ...o, id: "ABC" }, /bad id/],
    [{ ...o, id: o.id.toUpperCase() }, /bad id/],
    [{ ...o, encryption: "aes" }, /bad encryption mode/],
    [{ ...o, chunker: null }, /bad chunker parameters/],
    [{ ...o, chunker: { ...o.chunker, avg_size: -1 } }, /bad chunker parameters/],
    [{ ...o, chunker: { ...o.chunker, max_size: 1.5 } }, /bad chunker parameters/],
    [{ ...o, min_pack_size: "1" }, /bad pack sizes/],
    [{ ...o, max_pack_size: 2 ** 60 }, /bad pack sizes/],
    [{ ...o, mac: undefined }, /bad mac/],
    [{ ...o, mac: "00" }, /bad mac/],
  ];
  for (const [value, reason] of cases) {
    throws(() => parseRepoConfig(enc.encode(JSON.stringify(value))), assertCorrupt(reason));
  }
  throws(() => parseRepoConfig(enc.encode("{")), assertCorrupt(/not valid JSON/));
  throws(() => parseRepoConfig(Uint8Array.of(0x7b, 0xff, 0x7d)), assertCorrupt(/not valid JSON/));
});

Deno.test("parseRepoConfig throws only IntegrityError on random and mutated inputs (fuzz)", async () => {
  const key = await RepoKey.generate("aes256gcm");
  const c = sampleConfig();
  const valid = await encodeRepoConfig(c, key);
  const next = rng(41);
  const cases = fuzzCases();
  const clock = new FuzzClock();
  let parsedCount = 0;
  for (let i = 0; i < cases; i++) {
    clock.lap(i);
    const input = mutate(valid, next, { kind: i, specials: JSON_SPECIALS });
    let parsed;
    try {
      parsed = parseRepoConfig(input);
    } catch (err) {
      ok(err instanceof IntegrityError, `input ${i}: ${err}`);
      ok(err.message.startsWith("Repository config is corrupt: "), err.message);
      continue;
    }
    parsedCount++;
    // Whatever parses either is the original config or fails the MAC.
    try {
      deepStrictEqual(await verifyRepoConfig(parsed, key), c, `input ${i}`);
    } catch (err) {
      ok(err instanceof IntegrityError, `input ${i}: ${err}`);
    }
  }
  ok(parsedCount > 0, "whitespace or digit edits keep valid JSON");
  clock.done();
});
