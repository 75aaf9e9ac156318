/**
 * Hostile objects cost bounded memory and time: every object read is capped by its kind before
 * it is read, and msgpack nesting is limited before it is decoded.
 */

import { equal, ok } from "node:assert/strict";
import { LocalBackend } from "../backends/local.ts";
import { MAX_KEY_FILE_BYTES } from "../lib/key_file.ts";
import { MAX_MANIFEST_BYTES } from "../lib/manifest.ts";
import { ObjectType } from "../lib/crypto.ts";
import { Repository, sealedLimit } from "../lib/repository.ts";
import { initRepo, runVger, runVgerOk, withTempDir } from "./_helpers.ts";

/** Replaces `path` by a sparse file of `size` bytes (no disk used, but a full read costs RSS). */
async function sparse(path: string, size: number): Promise<void> {
  await Deno.writeFile(path, new Uint8Array(0));
  await Deno.truncate(path, size);
}

/** Less than the 300 MB a read of the hostile object would cost alone. */
const RSS_BOUND = 250 << 20;

Deno.test("list refuses a 300 MB key object naming it and the cap, without reading it", async () => {
  await withTempDir(async (dir) => {
    const repo = await initRepo(`${dir}/repo`);
    await sparse(`${repo}/keys/repokey`, 300_000_000);
    const r = await runVger(["-R", repo, "list"], { measureRss: true });
    equal(r.code, 1, r.stderr);
    ok(
      r.stderr.includes(
        `Object "keys/repokey" is too large: 300000000 bytes, the limit is ${MAX_KEY_FILE_BYTES}`,
      ),
      r.stderr,
    );
    equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    ok(r.peakRssBytes! < RSS_BOUND, `peak RSS ${r.peakRssBytes}`);
  });
});

Deno.test("a 300 MB lock object is judged a malformed (stale) lock without being read", async () => {
  await withTempDir(async (dir) => {
    const src = `${dir}/src`;
    await Deno.mkdir(src);
    await Deno.writeTextFile(`${src}/f`, "x");
    const repo = await initRepo(`${dir}/repo`);
    await Deno.mkdir(`${repo}/locks`);
    const lock = `${repo}/locks/${"a".repeat(64)}`;
    await sparse(lock, 300_000_000);
    const r = await runVger(["-R", repo, "backup", "--archive", "one", src], {
      measureRss: true,
    });
    equal(r.code, 0, r.stderr);
    ok(r.peakRssBytes! < RSS_BOUND, `peak RSS ${r.peakRssBytes}`);
    equal((await Deno.stat(lock)).size, 300_000_000, "left for break-lock");
    const broken = await runVger(["-R", repo, "break-lock"], { measureRss: true });
    equal(broken.code, 0, broken.stderr);
    ok(broken.peakRssBytes! < RSS_BOUND, `peak RSS ${broken.peakRssBytes}`);
    await Deno.stat(lock).then(() => ok(false, "break-lock removed it"), () => {});
  });
});

Deno.test("list refuses a manifest over its cap naming it and the cap, without reading it", async () => {
  await withTempDir(async (dir) => {
    const repo = await initRepo(`${dir}/repo`);
    const size = sealedLimit(MAX_MANIFEST_BYTES) + 1;
    await sparse(`${repo}/manifest`, size);
    const r = await runVger(["-R", repo, "list"], { measureRss: true });
    equal(r.code, 1, r.stderr);
    ok(
      r.stderr.includes(
        `Object "manifest" is too large: ${size} bytes, the limit is ${size - 1}`,
      ),
      r.stderr,
    );
    ok(r.peakRssBytes! < RSS_BOUND, `peak RSS ${r.peakRssBytes}`);
  });
});

Deno.test("list refuses a manifest of deeply nested msgpack arrays before decoding it", async () => {
  await withTempDir(async (dir) => {
    const repo = `${dir}/repo`;
    await runVgerOk(["-R", repo, "init", "--encryption", "none"]);
    // In plaintext mode the storage owner can seal a manifest: the checksum is no secret.
    const backend = new LocalBackend(repo);
    const opened = await Repository.open(backend);
    const nested = new Uint8Array(4 << 20).fill(0x91); // [[[[...]]]]: 4 Mi levels
    nested[nested.length - 1] = 0xc0;
    await backend.put(
      "manifest",
      await opened.key.seal(ObjectType.manifest, "manifest", nested),
    );
    await backend.close();
    const r = await runVger(["-R", repo, "list"], { measureRss: true });
    equal(r.code, 1, r.stderr);
    ok(r.stderr.includes("Manifest is corrupt: msgpack nested deeper than 5 levels"), r.stderr);
    equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    ok(r.peakRssBytes! < RSS_BOUND, `peak RSS ${r.peakRssBytes}`);
  });
});

Deno.test("key import refuses a 300 MB file without reading it all", async () => {
  await withTempDir(async (dir) => {
    const repo = await initRepo(`${dir}/repo`);
    const before = await Deno.readFile(`${repo}/keys/repokey`);
    await sparse(`${dir}/huge.key`, 300_000_000);
    const r = await runVger(["-R", repo, "key", "import", `${dir}/huge.key`], {
      measureRss: true,
    });
    equal(r.code, 2, r.stderr);
    ok(
      r.stderr.includes(
        `Cannot import the key file "${dir}/huge.key": larger than ${MAX_KEY_FILE_BYTES} bytes, so not a vger key file`,
      ),
      r.stderr,
    );
    ok(r.peakRssBytes! < RSS_BOUND, `peak RSS ${r.peakRssBytes}`);
    equal((await Deno.readFile(`${repo}/keys/repokey`)).length, before.length, "untouched");
  });
});
