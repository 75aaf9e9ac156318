import { deepStrictEqual, equal, notEqual, ok, rejects, throws } from "node:assert/strict";
import { RepoKey } from "./crypto.ts";
import { BackendError, IntegrityError } from "./errors.ts";
import { probeConditionalCreate } from "../backends/backend.ts";
import { BackendDecorator } from "../backends/decorator.ts";
import { MemoryBackend } from "../backends/memory.ts";
import {
  checkKnownRepository,
  ensureCreateHonoured,
  keyFingerprint,
  knownRepoFile,
  type KnownRepository,
  loadKnownRepository,
  saveKnownRepository,
  type SeenRepository,
} from "./known_repos.ts";

const seen: SeenRepository = {
  location: "/mnt/repo",
  id: "a".repeat(64),
  mode: "aes256gcm",
  fingerprint: "f".repeat(32),
  counter: 5,
};

function refused(pattern: RegExp): (err: unknown) => boolean {
  return (err) => {
    ok(err instanceof IntegrityError, `expected IntegrityError, got ${err}`);
    ok(pattern.test(err.message), err.message);
    ok(!err.message.includes("\n") && !err.message.endsWith("."), err.message);
    return true;
  };
}

Deno.test("a record is saved 0600 under a hashed name and loaded back", async () => {
  const dir = await Deno.makeTempDir();
  try {
    equal(await loadKnownRepository(dir, seen.location), null);
    const record: KnownRepository = { ...seen, counter: 5 };
    await saveKnownRepository(dir, record);
    const file = await knownRepoFile(dir, seen.location);
    ok(/known-repos\/[0-9a-f]{64}\.json$/.test(file), file);
    equal((await Deno.stat(file)).mode! & 0o777, 0o600);
    equal((await Deno.stat(`${dir}/known-repos`)).mode! & 0o777, 0o700);
    deepStrictEqual(await loadKnownRepository(dir, seen.location), record);
    await saveKnownRepository(dir, { ...record, counter: 9 });
    equal((await loadKnownRepository(dir, seen.location))!.counter, 9);
    deepStrictEqual([...Deno.readDirSync(`${dir}/known-repos`)].length, 1, "no temp file left");
    equal(await loadKnownRepository(dir, "/mnt/other"), null);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a damaged record is an error naming the file, not taken for never seen", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await saveKnownRepository(dir, { ...seen, counter: 5 });
    const file = await knownRepoFile(dir, seen.location);
    await Deno.writeTextFile(file, "{not json");
    await rejects(
      loadKnownRepository(dir, seen.location),
      refused(/in .*known-repos.* unreadable/),
    );
    await Deno.writeTextFile(file, JSON.stringify({ v: 1, location: "/elsewhere" }));
    await rejects(loadKnownRepository(dir, seen.location), refused(/--trust-repository/));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the key fingerprint depends on the key and reveals none of it", async () => {
  const a = await RepoKey.generate("aes256gcm");
  const b = await RepoKey.generate("aes256gcm");
  const fa = await keyFingerprint(a);
  ok(/^[0-9a-f]{32}$/.test(fa));
  equal(await keyFingerprint(await RepoKey.fromMaterial(a.material, "aes256gcm")), fa);
  notEqual(await keyFingerprint(b), fa);
  const hex = Array.from(a.material, (x) => x.toString(16).padStart(2, "0")).join("");
  ok(!hex.includes(fa.slice(0, 8)));
});

Deno.test("an unknown encrypted repository is accepted and remembered as seen", () => {
  deepStrictEqual(checkKnownRepository(null, seen), { ...seen, counter: 5 });
  deepStrictEqual(checkKnownRepository(null, { ...seen, counter: null }), { ...seen, counter: 0 });
});

Deno.test("an unknown unencrypted repository is refused unless the configuration says none", () => {
  const plain = { ...seen, mode: "none" as const };
  throws(
    () => checkKnownRepository(null, plain),
    refused(/uses encryption "none", not "aes256gcm".*--trust-repository/),
  );
  equal(checkKnownRepository(null, plain, { configuredMode: "none" }).mode, "none");
  equal(checkKnownRepository(null, plain, { trust: true }).mode, "none");
});

Deno.test("a mode other than the configured one is refused naming both modes", () => {
  const plain = { ...seen, mode: "none" as const };
  for (const known of [null, { ...seen, counter: 5 }]) {
    throws(
      () => checkKnownRepository(known, plain, { configuredMode: "aes256gcm", trust: true }),
      refused(/uses encryption "none" but the configuration says "aes256gcm"/),
    );
  }
  throws(
    () => checkKnownRepository(null, seen, { configuredMode: "none" }),
    refused(/uses encryption "aes256gcm" but the configuration says "none"/),
  );
});

Deno.test("a changed mode, id or key at a known location is refused; the flag accepts it", () => {
  const known: KnownRepository = { ...seen, counter: 5 };
  const cases: [SeenRepository, RegExp][] = [
    [{ ...seen, mode: "none" }, /uses encryption "none" but used "aes256gcm" when/],
    [{ ...seen, id: "b".repeat(64) }, /another repository .*id is bbbb.*was aaaa/],
    [{ ...seen, fingerprint: "0".repeat(32) }, /another key/],
  ];
  for (const [now, pattern] of cases) {
    throws(() => checkKnownRepository(known, now), refused(pattern));
    throws(() => checkKnownRepository(known, now), refused(/run with --trust-repository\)$/));
    deepStrictEqual(checkKnownRepository(known, now, { trust: true }), { ...now, counter: 5 });
  }
  // the configured mode does not by itself accept a change from the remembered one
  throws(
    () => checkKnownRepository(known, { ...seen, mode: "none" }, { configuredMode: "none" }),
    refused(/used "aes256gcm"/),
  );
});

Deno.test("an older manifest is refused; a newer or equal one raises the record", () => {
  const known: KnownRepository = { ...seen, counter: 5 };
  throws(
    () => checkKnownRepository(known, { ...seen, counter: 4 }),
    refused(/serves manifest number 4, older than number 5.*--trust-repository/),
  );
  equal(checkKnownRepository(known, { ...seen, counter: 4 }, { trust: true }).counter, 4);
  equal(checkKnownRepository(known, { ...seen, counter: 5 }).counter, 5);
  equal(checkKnownRepository(known, { ...seen, counter: 8 }).counter, 8);
  // an unreadable manifest is left to the command to report; the record keeps its counter
  equal(checkKnownRepository(known, { ...seen, counter: null }).counter, 5);
});

/** A memory backend whose `create` overwrites (a server that ignores `If-None-Match`). */
class CreateIgnoringBackend extends BackendDecorator {
  probes = 0;
  readonly #honour: boolean;
  constructor(honour: boolean, scope = "s3://b at http://127.0.0.1:1") {
    super(new MemoryBackend());
    this.#honour = honour;
    Object.defineProperty(this, "capabilities", {
      value: { connections: 1, createProbeScope: scope },
    });
    Object.defineProperty(this, "probeCreate", {
      value: () => {
        this.probes++;
        return probeConditionalCreate(this);
      },
    });
  }
  override async create(key: string, body: Uint8Array): Promise<boolean> {
    if (this.#honour) return await super.create(key, body);
    await this.inner.put(key, body);
    return true;
  }
}

Deno.test("ensureCreateHonoured refuses a server that ignores If-None-Match, and never caches it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "vger-probe-" });
  try {
    const backend = new CreateIgnoringBackend(false);
    for (let i = 1; i <= 2; i++) {
      await rejects(ensureCreateHonoured(backend, { dir }), (err) => {
        ok(err instanceof BackendError, `expected BackendError, got ${err}`);
        equal(
          err.message,
          "S3 server of s3://b at http://127.0.0.1:1 does not honour conditional writes " +
            "(If-None-Match); vger needs them for its locks",
        );
        return true;
      });
      equal(backend.probes, i);
    }
    // the probe key is gone, and no verdict was written
    deepStrictEqual(await Array.fromAsync(backend.list("")), []);
    await rejects(Deno.stat(`${dir}/create-probes`), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ensureCreateHonoured probes once per scope and remembers it (0600)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "vger-probe-" });
  try {
    const backend = new CreateIgnoringBackend(true);
    await ensureCreateHonoured(backend, { dir });
    await ensureCreateHonoured(backend, { dir });
    equal(backend.probes, 1);
    deepStrictEqual(await Array.fromAsync(backend.list("")), []);
    const files = await Array.fromAsync(Deno.readDir(`${dir}/create-probes`));
    equal(files.length, 1);
    const file = `${dir}/create-probes/${files[0].name}`;
    equal((await Deno.stat(file)).mode! & 0o777, 0o600);
    const o = JSON.parse(await Deno.readTextFile(file));
    equal(o.scope, "s3://b at http://127.0.0.1:1");
    equal(o.honoured, true);
    ok(!Number.isNaN(Date.parse(o.probed)));
    // another process with the same scope trusts the verdict; another bucket is probed
    const same = new CreateIgnoringBackend(true);
    await ensureCreateHonoured(same, { dir });
    equal(same.probes, 0);
    const other = new CreateIgnoringBackend(true, "s3://c at http://127.0.0.1:1");
    await ensureCreateHonoured(other, { dir });
    equal(other.probes, 1);
    // a damaged verdict is probed again and rewritten
    await Deno.writeTextFile(file, "{");
    await ensureCreateHonoured(same, { dir });
    equal(same.probes, 1);
    equal(JSON.parse(await Deno.readTextFile(file)).honoured, true);
    // without a cache directory, every call probes
    await ensureCreateHonoured(same);
    equal(same.probes, 2);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ensureCreateHonoured does nothing on a backend without the probe", async () => {
  await ensureCreateHonoured(new MemoryBackend(), { dir: "/nonexistent/vger" });
});

Deno.test("ensureCreateHonoured goes on with a warning when the verdict cannot be saved", async () => {
  const dir = await Deno.makeTempDir({ prefix: "vger-probe-" });
  try {
    await Deno.writeTextFile(`${dir}/create-probes`, "a file where the directory goes");
    const warnings: string[] = [];
    const backend = new CreateIgnoringBackend(true);
    await ensureCreateHonoured(backend, { dir, onWarning: (m) => warnings.push(m) });
    equal(backend.probes, 1);
    equal(warnings.length, 1);
    ok(warnings[0].startsWith("Cannot save the create probe of s3://b at http://127.0.0.1:1 in "));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
