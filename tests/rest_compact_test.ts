/**
 * Server-side compaction over REST: the real `vger` CLI in subprocesses against a real
 * vger-server process on 127.0.0.1. After an archive whose data shares packs with live data is
 * deleted, `compact --threshold 0` has the server compose the new packs (`POST /<repo>?compose`):
 * the space is freed while far fewer bytes go up than are freed (the figures are asserted and
 * printed), check --verify-data is clean and every remaining archive restores byte for byte. A
 * record corrupted on the server's disk is refused by the server and reported by the client; a
 * server SIGKILLed in the middle of a compaction loses nothing, and the next compact finishes.
 *
 * @module
 */

import { deepStrictEqual, equal, match, ok } from "node:assert/strict";
import {
  assertCheckClean,
  assertRestores,
  FAST_KDF_ARGS,
  jsonOf as json,
  pseudoRandomBytes,
  spawnVger,
  type TreeSnapshot,
  treeSnapshot,
  withTempDir,
} from "./_helpers.ts";
import { fixedPortConfig, killableServer, requestLog as requests, withServer } from "./_server.ts";
import { type RestRepo, restRepo as restRepoOn, run, storedBytes, vgerOn } from "./_rest.ts";

/** The repository "laptop" on the server at `url`, its configuration in `dir`. */
function restRepo(dir: string, url: string, token: string): Promise<RestRepo> {
  return restRepoOn(dir, { url, token }, "laptop");
}

interface CompactJson {
  server_side: boolean;
  rewrite_packs: string[];
  bytes_freed: number;
  bytes_uploaded: number;
  bytes_downloaded: number;
  corrupt: { id: string; pack: string; reason: string }[];
}

/**
 * Archive "one" of 40 files of 256 KiB, `fNNa` and `fNNb` in turn (so every pack holds both),
 * then archive "two" of the `a` files and a new one, then "one" deleted: every pack of "one" is
 * about half live. Returns the source and what "two" holds.
 */
async function sharedPacks(
  repo: RestRepo,
  dir: string,
): Promise<{ src: string; two: TreeSnapshot }> {
  const src = `${dir}/src`;
  await Deno.mkdir(src);
  for (let i = 0; i < 20; i++) {
    const n = String(i).padStart(2, "0");
    await Deno.writeFile(`${src}/f${n}a`, pseudoRandomBytes(256 << 10, 100 + i));
    await Deno.writeFile(`${src}/f${n}b`, pseudoRandomBytes(256 << 10, 200 + i));
  }
  await run(repo, ["init", ...FAST_KDF_ARGS]);
  await run(repo, ["backup", "--archive", "one", src]);
  for (let i = 0; i < 20; i++) await Deno.remove(`${src}/f${String(i).padStart(2, "0")}b`);
  await Deno.writeFile(`${src}/new`, pseudoRandomBytes(300 << 10, 999));
  const two = await treeSnapshot(src);
  await run(repo, ["backup", "--archive", "two", src]);
  await run(repo, ["delete", "--archive", "one"]);
  return { src, two };
}

Deno.test("compact over REST composes the new packs on the server: the space is freed, far fewer bytes go up than are freed, check --verify-data is clean and the archive left restores byte for byte", async () => {
  await withServer("run", { toml: 'log_format = "json"\n' }, async (server) => {
    await withTempDir(async (dir) => {
      const repo = await restRepo(dir, server.url, server.token);
      const { src, two } = await sharedPacks(repo, dir);
      const before = await storedBytes(server.dataDir, "laptop");
      const logged = requests(server).length;
      const r = json<CompactJson>(await run(repo, ["compact", "--threshold", "0", "--json"]));
      const after = await storedBytes(server.dataDir, "laptop");
      const during = requests(server).slice(logged);
      const composes = during.filter((q) => q.method === "POST" && q.path === "/laptop?compose");
      const sentToServer = during.reduce((n, q) => n + q.bytes_in, 0);
      console.log(
        `server-side compact: freed ${r.bytes_freed} bytes (${before} -> ${after} on the ` +
          `server's disk), uploaded ${r.bytes_uploaded} (compose plans; ${sentToServer} bytes ` +
          `in all requests, index and locks included), downloaded ${r.bytes_downloaded}, ` +
          `${composes.length} composes for ${r.rewrite_packs.length} packs rewritten`,
      );
      ok(r.server_side, JSON.stringify(r));
      deepStrictEqual(r.corrupt, []);
      ok(r.rewrite_packs.length >= 3, `packs rewritten: ${r.rewrite_packs.length}`);
      ok(composes.length >= 1 && composes.every((q) => q.status === 201), JSON.stringify(composes));
      equal(
        during.filter((q) => q.method === "PUT" && q.path.includes("/packs/")).length,
        0,
        "no pack uploaded",
      );
      ok(r.bytes_freed >= 4 << 20, `freed ${r.bytes_freed}`);
      equal(before - after >= r.bytes_freed - (64 << 10), true, `${before} -> ${after}`);
      ok(r.bytes_uploaded * 50 < r.bytes_freed, `uploaded ${r.bytes_uploaded}`);
      ok(sentToServer * 20 < r.bytes_freed, `sent ${sentToServer}`);
      ok(r.bytes_downloaded * 50 < r.bytes_freed, `downloaded ${r.bytes_downloaded}`);

      await assertCheckClean(vgerOn(repo), "after compact");
      await assertRestores(vgerOn(repo), "two", src, two, "two");
      const again = json<CompactJson>(await run(repo, ["compact", "--threshold", "0", "--json"]));
      deepStrictEqual(again.rewrite_packs, [], "nothing left to rewrite");
    });
  });
});

Deno.test("compact over REST --no-server-side copies through the client: records down, whole packs up", async () => {
  await withServer("run", { toml: 'log_format = "json"\n' }, async (server) => {
    await withTempDir(async (dir) => {
      const repo = await restRepo(dir, server.url, server.token);
      const { src, two } = await sharedPacks(repo, dir);
      const logged = requests(server).length;
      const r = json<CompactJson>(
        await run(repo, ["compact", "--threshold", "0", "--no-server-side", "--json"]),
      );
      console.log(
        `client-side compact: freed ${r.bytes_freed}, uploaded ${r.bytes_uploaded}, ` +
          `downloaded ${r.bytes_downloaded}`,
      );
      ok(!r.server_side);
      equal(requests(server).slice(logged).filter((q) => q.method === "POST").length, 0);
      ok(r.bytes_uploaded >= 4 << 20 && r.bytes_downloaded >= 4 << 20, JSON.stringify(r));
      await assertCheckClean(vgerOn(repo), "after compact");
      await assertRestores(vgerOn(repo), "two", src, two, "two");
    });
  });
});

Deno.test("a record corrupted on the server's disk is refused by the server (422) and reported by the client, its pack kept", async () => {
  await withServer("run", { toml: 'log_format = "json"\n' }, async (server) => {
    await withTempDir(async (dir) => {
      const repo = await restRepo(dir, server.url, server.token);
      await sharedPacks(repo, dir);
      const plan = json<CompactJson>(
        await run(repo, ["compact", "--threshold", "0", "--dry-run", "--json"]),
      );
      // every record of one pack to rewrite gets a flipped byte (its CRC-32 left as it was)
      const victim = plan.rewrite_packs[0];
      const file = `${server.dataDir}/laptop/packs/${victim.slice(0, 2)}/${victim}`;
      const bytes = await Deno.readFile(file);
      const view = new DataView(bytes.buffer);
      const headerAt = bytes.length - 4 - view.getUint32(bytes.length - 4, true);
      let records = 0;
      for (let at = 9; at < headerAt; at += 8 + view.getUint32(at, true), records++) {
        bytes[at + 8 + 20] ^= 0x01;
      }
      ok(records >= 2, `${records} records`);
      await Deno.writeFile(file, bytes);

      const logged = requests(server).length;
      const r = await run(repo, ["compact", "--threshold", "0", "--json"], { code: 3 });
      const out = json<CompactJson>(r);
      ok(out.server_side);
      ok(out.corrupt.length >= 1, JSON.stringify(out.corrupt));
      for (const c of out.corrupt) {
        equal(c.pack, victim);
        match(c.reason, /the server refused its record: .*CRC-32 mismatch/);
      }
      match(
        r.stderr,
        new RegExp(`blob ${out.corrupt[0].id} in pack ${victim} is corrupt and was left in place`),
      );
      ok(
        requests(server).slice(logged).some((q) =>
          q.path === "/laptop?compose" && q.status === 422
        ),
        "the server refused a compose",
      );
      ok((await Deno.stat(file)).isFile, "the damaged pack is kept");
    });
  });
});

Deno.test("a server SIGKILLed in the middle of a server-side compact loses nothing: the next compact finishes, check is clean, the archive restores", async () => {
  await withTempDir(async (dir) => {
    const token = "compact-kill-token-0123456789";
    const { configFile, url } = await fixedPortConfig(dir, token, 'log_format = "json"\n');
    let server = await killableServer(configFile);
    try {
      const repo = await restRepo(dir, url, token);
      const { src, two } = await sharedPacks(repo, dir);
      const compact = spawnVger(["--config", repo.config, "compact", "--threshold", "0", "--json"]);
      let finished = false;
      const output = compact.output().finally(() => (finished = true));
      // a compose writes its temporary file in the data directory's root (a PUT writes beside
      // its key): the server is killed as soon as one is there, in the middle of a compose
      const rootTemp = async () => {
        for await (const e of Deno.readDir(`${dir}/data`)) {
          if (e.name.startsWith(".tmp-")) return true;
        }
        return false;
      };
      let midCompose = false;
      const deadline = Date.now() + 60_000;
      while (!finished && Date.now() < deadline) {
        if (await rootTemp()) {
          midCompose = true;
          break;
        }
        await new Promise((r) => setTimeout(r, 1));
      }
      await server.kill();
      const composed = (server.stdout().match(/"path":"\/laptop\?compose","status":201/g) ?? [])
        .length;
      const tempLeft = await rootTemp();
      console.log(
        `killed ${
          midCompose ? "in the middle of a compose" : "after the compaction (no compose caught)"
        }` +
          `, after ${composed} composes; a temporary file left: ${tempLeft}`,
      );
      ok(midCompose, "the kill came in the middle of a compose");
      // back at once: the client sends its requests again (a refused connection to a server that
      // answered before is transient) and may finish; whether or not it did, the next run must
      server = await killableServer(configFile);
      const killed = await output;
      const first = new TextDecoder().decode(killed.stderr);
      ok(!first.includes(token), "the token shows");
      console.log(`the compact under the kill exited ${killed.code}`);
      const r = json<CompactJson>(await run(repo, ["compact", "--threshold", "0", "--json"]));
      deepStrictEqual(r.corrupt, []);
      const left = json<CompactJson>(await run(repo, ["compact", "--threshold", "0", "--json"]));
      deepStrictEqual(left.rewrite_packs, [], "the compaction finished");
      await assertCheckClean(vgerOn(repo), "after the kill");
      await assertRestores(vgerOn(repo), "two", src, two, "two");
      // no temporary file of the killed compose is left in the data directory
      const temps: string[] = [];
      const walk = async (d: string) => {
        for await (const e of Deno.readDir(d)) {
          if (e.isDirectory) await walk(`${d}/${e.name}`);
          else if (e.name.startsWith(".tmp-")) temps.push(`${d}/${e.name}`);
        }
      };
      await walk(`${dir}/data`);
      deepStrictEqual(temps, []);
    } finally {
      await server.kill();
    }
  });
});
