/**
 * vger-server under load: 8 real `vger backup` processes at once against one real server process
 * on 127.0.0.1 (tests/_server.ts), 2 clients on each of 4 repositories, for 2 rounds (all 8 start
 * together, each round waits for the last of them). The quota (one `quota_bytes` for every
 * repository) leaves the 3 small repositories room, while the large one fills it in the first
 * round, so that both of its second-round backups must fail cleanly: one line, the 413, exit 1.
 *
 * Afterwards: every backup succeeded or failed over quota (nothing else); each repository's
 * `used_bytes` is exactly what it holds on the server's disk (its objects, kept versions and held
 * deletes: what lib/server_quota.ts counts), and was never seen above the quota, sampled all
 * along; no lock is left; `last_backup_at` is at or after the start of the last successful backup,
 * and unchanged by a round in which none succeeded; `check --verify-data` is clean everywhere and
 * the last archive of each repository restores byte for byte.
 *
 * @module
 */

import { deepStrictEqual, equal, ok } from "node:assert/strict";
import {
  archiveNames,
  assertCheckClean,
  assertNoSecret,
  assertOneLine,
  assertRestores,
  FAST_KDF_ARGS,
  pseudoRandomBytes,
  type RunResult,
  type TreeSnapshot,
  treeSnapshot,
  withTempDir,
} from "./_helpers.ts";
import { requestLog, type TestServer, withServer } from "./_server.ts";
import { fileSizes, listedKeys, type RestRepo, restRepo, run, vger, vgerOn } from "./_rest.ts";

/** The quota of every repository. */
const QUOTA = 8 << 20;
/** The repositories; the last one's clients back up 3 MiB each a round, the others 1 MiB. */
const REPOS = ["load-a", "load-b", "load-c", "load-full"];
const FULL = "load-full";
const CLIENTS_PER_REPO = 2;
const ROUNDS = 2;

/** One client: its repository, its configuration and cache, its source tree. */
interface Client {
  repoName: string;
  repo: RestRepo;
  src: string;
  bytesPerRound: number;
}

/** What one backup did. */
interface Backup {
  client: Client;
  archive: string;
  startedAt: number;
  result: RunResult;
  snapshot: TreeSnapshot;
}

/** What the server tells of a repository (`GET /<repo>`). */
interface RepoInfo {
  used_bytes: number;
  quota_bytes: number;
  last_backup_at: string | null;
}

async function info(server: TestServer, name: string): Promise<RepoInfo> {
  const res = await server.fetch(`/${name}`);
  equal(res.status, 200, `GET /${name}`);
  return await res.json() as RepoInfo;
}

/** Bytes of `name` on the server's disk, as the quota counts them. */
async function bytesOnDisk(dataDir: string, name: string): Promise<number> {
  let total = 0;
  for (
    const root of [
      `${dataDir}/${name}`,
      `${dataDir}/.vger-server/versions/${name}`,
      `${dataDir}/.vger-server/held/${name}`,
    ]
  ) {
    for (const size of (await fileSizes(root)).values()) total += size;
  }
  return total;
}

/** The client's tree for `round`: new random data each round, and a note. */
async function writeRound(client: Client, index: number, round: number): Promise<void> {
  await Deno.mkdir(client.src, { recursive: true });
  const seed = 1000 * round + index;
  await Deno.writeFile(
    `${client.src}/round${round}.bin`,
    pseudoRandomBytes(client.bytesPerRound, seed),
  );
  await Deno.writeTextFile(`${client.src}/note.txt`, `client ${index} round ${round}\n`);
}

Deno.test("8 clients back up at once to 4 repositories for 2 rounds: each backup succeeds or fails cleanly over quota, used_bytes is what the disk holds and never over the quota, no lock is left, last_backup_at follows the backups, check is clean and the last archives restore", async () => {
  await withServer(
    "run",
    { toml: `quota_bytes = ${QUOTA}\nlog_format = "json"\n` },
    async (server) => {
      await withTempDir(async (dir) => {
        const clients: Client[] = [];
        for (const name of REPOS) {
          for (let c = 0; c < CLIENTS_PER_REPO; c++) {
            const label = `${name}-c${c}`;
            clients.push({
              repoName: name,
              repo: await restRepo(dir, server, name, { label, ownCache: true }),
              src: `${dir}/src/${label}`,
              bytesPerRound: name === FULL ? 3 << 20 : 1 << 20,
            });
          }
        }
        const first = (name: string) => clients.find((c) => c.repoName === name)!.repo;
        await Promise.all(REPOS.map((name) => run(first(name), ["init", ...FAST_KDF_ARGS])));

        // used_bytes sampled all along, by a reader beside the backups
        const peak = new Map<string, number>(REPOS.map((n) => [n, 0]));
        let sampling = true;
        let samples = 0;
        const sampler = (async () => {
          while (sampling) {
            for (const name of REPOS) {
              const used = (await info(server, name)).used_bytes;
              peak.set(name, Math.max(peak.get(name)!, used));
            }
            samples++;
            await new Promise((r) => setTimeout(r, 200));
          }
        })();

        const backups: Backup[] = [];
        const freshAfter: Map<string, string | null>[] = [];
        const started = performance.now();
        try {
          for (let round = 1; round <= ROUNDS; round++) {
            const runs = await Promise.all(clients.map(async (client, i) => {
              await writeRound(client, i, round);
              const snapshot = await treeSnapshot(client.src);
              const archive = `${client.repoName}-c${i % CLIENTS_PER_REPO}-r${round}`;
              const startedAt = Date.now();
              const result = await vger(client.repo, ["backup", "--archive", archive, client.src]);
              return { client, archive, startedAt, result, snapshot } satisfies Backup;
            }));
            backups.push(...runs);
            freshAfter.push(
              new Map(
                await Promise.all(
                  REPOS.map(async (n) => [n, (await info(server, n)).last_backup_at] as const),
                ),
              ),
            );
          }
        } finally {
          sampling = false;
          await sampler;
        }
        const seconds = (performance.now() - started) / 1000;

        // every backup succeeded, or failed over the quota in one line; only the full one failed
        for (const b of backups) {
          assertNoSecret(b.result, b.client.repo.secrets, b.archive);
          if (b.result.code === 0) continue;
          assertOneLine(
            b.result,
            /over the repository's quota \(HTTP 413/,
            `${b.archive} (exit ${b.result.code})`,
            { secrets: b.client.repo.secrets },
          );
        }
        const ok0 = (b: Backup) => b.result.code === 0;
        deepStrictEqual(
          backups.filter((b) => !ok0(b)).map((b) => b.archive).sort(),
          [`${FULL}-c0-r2`, `${FULL}-c1-r2`],
          "the full repository's second round fails over quota, and nothing else fails",
        );
        const log = requestLog(server);
        const refused = log.filter((q) => q.status === 413).length;
        console.log(
          `${backups.length} backups in ${seconds.toFixed(1)} s, ${log.length} requests ` +
            `(${refused} refused over quota), ${samples} samples of used_bytes`,
        );
        ok(refused >= 2, `${refused} requests refused over quota`);
        ok(samples >= 2, `${samples} samples`);

        for (const name of REPOS) {
          const repo = first(name);
          const mine = backups.filter((b) => b.client.repoName === name);
          const now = await info(server, name);
          equal(now.quota_bytes, QUOTA);
          // the quota's count is what the disk holds, and it was never over the quota
          equal(now.used_bytes, await bytesOnDisk(server.dataDir, name), `${name}: used_bytes`);
          ok(now.used_bytes <= QUOTA, `${name}: ${now.used_bytes} bytes over the quota`);
          ok(peak.get(name)! <= QUOTA, `${name}: used_bytes seen at ${peak.get(name)}`);
          ok(peak.get(name)! > 0, `${name}: used_bytes never sampled above 0`);
          // no lock left, as the server lists it and on its disk
          deepStrictEqual(await listedKeys(server, name, "locks/"), [], `${name}: a lock is left`);
          deepStrictEqual([...(await fileSizes(`${server.dataDir}/${name}/locks`)).keys()], []);

          // freshness: at or after the start of the last successful backup, before now; a round
          // without a success changes nothing
          const succeeded = mine.filter(ok0);
          ok(succeeded.length > 0, name);
          const lastStart = Math.max(...succeeded.map((b) => b.startedAt));
          ok(now.last_backup_at !== null, `${name}: no last_backup_at`);
          const at = Date.parse(now.last_backup_at);
          ok(at >= lastStart && at <= Date.now(), `${name}: last_backup_at ${now.last_backup_at}`);
          for (let round = 1; round <= ROUNDS; round++) {
            const inRound = mine.filter((b) => b.archive.endsWith(`-r${round}`));
            if (inRound.some(ok0)) continue;
            const before = round === 1 ? null : freshAfter[round - 2].get(name);
            equal(freshAfter[round - 1].get(name), before, `${name}: round ${round} moved it`);
            equal(now.last_backup_at, before, `${name}: last_backup_at moved`);
          }

          // every successful backup is listed and nothing else; check is clean; the last restores
          deepStrictEqual(
            (await archiveNames(vgerOn(repo))).sort(),
            succeeded.map((b) => b.archive).sort(),
            name,
          );
          await assertCheckClean(vgerOn(repo), `${name} after the load`);
          const last = (await archiveNames(vgerOn(repo))).at(-1)!;
          const b = succeeded.find((x) => x.archive === last)!;
          await assertRestores(
            vgerOn(repo),
            last,
            b.client.src,
            b.snapshot,
            `${name} after the load`,
          );
        }
      });
    },
  );
});
