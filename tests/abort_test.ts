/**
 * The library's `signal` option, on real repositories on disk: an aborted backup, extract, check,
 * compact or prune rejects with an InterruptedError soon after the abort, commits nothing it had
 * not committed, leaves no lock and no temp file, and the repository stays valid for the next
 * command.
 */

import { deepStrictEqual, equal, ok, rejects } from "node:assert/strict";
import {
  backupCommand,
  checkCommand,
  compactCommand,
  deleteCommand,
  extractCommand,
  initCommand,
  InterruptedError,
  listArchivesCommand,
  LocalBackend,
  pruneCommand,
} from "../mod.ts";
import { RepoLock } from "../lib/repo_lock.ts";
import { PASSPHRASE, pseudoRandomBytes, restoredPath, withTempDir } from "./_helpers.ts";

const passphrase = PASSPHRASE;
const kdf = { iterations: 1, memoryKiB: 1024, parallelism: 1 };
const compression = { algorithm: "lz4" } as const;

/** A tree of 300 small files in 10 directories and a few larger ones (several packs' worth). */
async function writeTree(root: string): Promise<void> {
  for (let d = 0; d < 10; d++) {
    await Deno.mkdir(`${root}/dir-${d}`, { recursive: true });
    for (let f = 0; f < 30; f++) {
      await Deno.writeTextFile(`${root}/dir-${d}/file-${f}.txt`, `file ${d}/${f}\n`.repeat(f + 1));
    }
  }
  for (let i = 0; i < 4; i++) {
    await Deno.writeFile(`${root}/big-${i}.bin`, pseudoRandomBytes(3 << 20, i + 1));
  }
}

/** A repository with the tree of {@linkcode writeTree} under `dir/src`. */
async function setUp(dir: string): Promise<{ repo: LocalBackend; src: string }> {
  const src = `${dir}/src`;
  await writeTree(src);
  const repo = new LocalBackend(`${dir}/repo`);
  await initCommand(repo, { encryption: "aes256gcm", passphrase, kdf });
  return { repo, src };
}

/** The problems of severity "error" a check finds. */
async function checkErrors(repo: LocalBackend, verifyData = false): Promise<string[]> {
  const result = await checkCommand(repo, { passphrase, verifyData });
  return result.problems.filter((p) => p.severity === "error").map((p) => p.message);
}

/** Paths under `root` whose names are extract's temp names. */
async function tempFiles(root: string): Promise<string[]> {
  const found: string[] = [];
  const visit = async (dir: string) => {
    for await (const e of Deno.readDir(dir)) {
      if (e.name.startsWith(".vger-tmp-")) found.push(`${dir}/${e.name}`);
      if (e.isDirectory) await visit(`${dir}/${e.name}`);
    }
  };
  await visit(root);
  return found;
}

/** An abort controller aborted by the first progress call, and the calls seen after it. */
function abortOnFirstProgress(): { signal: AbortSignal; onProgress: () => void; late: number[] } {
  const controller = new AbortController();
  const late: number[] = [];
  let calls = 0;
  return {
    signal: controller.signal,
    late,
    onProgress: () => {
      if (calls++ === 0) controller.abort();
      else late.push(calls);
    },
  };
}

Deno.test("an aborted backup commits no archive, and the next backup and check succeed", async () => {
  await withTempDir(async (dir) => {
    const { repo, src } = await setUp(dir);
    const stop = abortOnFirstProgress();
    const err = await backupCommand(repo, {
      passphrase,
      name: "aborted",
      sources: [src],
      compression,
      signal: stop.signal,
      onProgress: stop.onProgress,
    }).catch((e) => e);
    ok(err instanceof InterruptedError, `not an InterruptedError: ${err}`);
    equal(err.code, "interrupted");
    ok(err.message.startsWith("Backup aborted"), err.message);
    ok(stop.late.length <= 1, `backup went on after the abort: ${stop.late.length} more calls`);
    deepStrictEqual(await listArchivesCommand(repo, { passphrase }), []);
    deepStrictEqual(await checkErrors(repo), []);

    const second = await backupCommand(repo, {
      passphrase,
      name: "second",
      sources: [src],
      compression,
    });
    ok(second.stats.files >= 1 + 10 + 300 + 4, `${second.stats.files} items`);
    deepStrictEqual((await listArchivesCommand(repo, { passphrase })).map((a) => a.name), [
      "second",
    ]);
    deepStrictEqual(await checkErrors(repo, true), []);
    // no lock was left behind: compact takes the exclusive lock
    await compactCommand(repo, { passphrase });
    await extractCommand(repo, { passphrase, archive: "second", dest: `${dir}/out` });
    const out = restoredPath(`${dir}/out`, src);
    deepStrictEqual(
      await Deno.readFile(`${out}/big-3.bin`),
      await Deno.readFile(`${src}/big-3.bin`),
    );
    equal(
      await Deno.readTextFile(`${out}/dir-9/file-29.txt`),
      await Deno.readTextFile(`${src}/dir-9/file-29.txt`),
    );
  });
});

Deno.test("an already aborted signal stops every command before it reads or writes", async () => {
  await withTempDir(async (dir) => {
    const { repo, src } = await setUp(dir);
    await backupCommand(repo, { passphrase, name: "one", sources: [src], compression });
    const signal = AbortSignal.abort(new Error("not today"));
    const runs: [string, () => Promise<unknown>][] = [
      [
        "Backup",
        () => backupCommand(repo, { passphrase, name: "two", sources: [src], compression, signal }),
      ],
      [
        "Extract",
        () => extractCommand(repo, { passphrase, archive: "one", dest: `${dir}/out`, signal }),
      ],
      ["Check", () => checkCommand(repo, { passphrase, signal })],
      ["Compact", () => compactCommand(repo, { passphrase, signal })],
      ["Prune", () => pruneCommand(repo, { passphrase, policy: { keepLast: 0 }, signal })],
    ];
    for (const [what, run] of runs) {
      await rejects(run, (err: unknown) => {
        ok(err instanceof InterruptedError, `${what}: ${err}`);
        equal(err.message, `${what} aborted: not today`);
        equal((err.cause as Error).message, "not today");
        return true;
      });
    }
    deepStrictEqual((await listArchivesCommand(repo, { passphrase })).map((a) => a.name), ["one"]);
    deepStrictEqual(await checkErrors(repo), []);
  });
});

Deno.test("an aborted extract stops between files and leaves no temp file", async () => {
  await withTempDir(async (dir) => {
    const { repo, src } = await setUp(dir);
    await backupCommand(repo, { passphrase, name: "one", sources: [src], compression });
    const stop = abortOnFirstProgress();
    const dest = `${dir}/out`;
    const err = await extractCommand(repo, {
      passphrase,
      archive: "one",
      dest,
      signal: stop.signal,
      onProgress: stop.onProgress,
    }).catch((e) => e);
    ok(err instanceof InterruptedError, `not an InterruptedError: ${err}`);
    ok(err.message.startsWith("Extract aborted"), err.message);
    deepStrictEqual(await tempFiles(dest), []);
    // what was restored is whole; most of the archive was not
    let restored = 0;
    const out = restoredPath(dest, src);
    for (let d = 0; d < 10; d++) {
      for (let f = 0; f < 30; f++) {
        const rel = `dir-${d}/file-${f}.txt`;
        const got = await Deno.readTextFile(`${out}/${rel}`).catch(() => null);
        if (got === null) continue;
        restored++;
        equal(got, await Deno.readTextFile(`${src}/${rel}`));
      }
    }
    ok(restored < 300, `the extract ran to the end (${restored} files)`);
    // the repository's shared lock is gone: an exclusive one can be taken
    await compactCommand(repo, { passphrase });
  });
});

for (const verifyData of [false, true]) {
  Deno.test(`an aborted check${verifyData ? " --verify-data" : ""} rejects and releases its lock`, async () => {
    await withTempDir(async (dir) => {
      const { repo, src } = await setUp(dir);
      await backupCommand(repo, { passphrase, name: "one", sources: [src], compression });
      const stop = abortOnFirstProgress();
      const err = await checkCommand(repo, {
        passphrase,
        verifyData,
        signal: stop.signal,
        onProgress: stop.onProgress,
      }).catch((e) => e);
      ok(err instanceof InterruptedError, `not an InterruptedError: ${err}`);
      ok(err.message.startsWith("Check aborted"), err.message);
      ok(stop.late.length <= 1, `check went on after the abort: ${stop.late.length} more calls`);
      await compactCommand(repo, { passphrase });
      deepStrictEqual(await checkErrors(repo, verifyData), []);
    });
  });
}

Deno.test("an aborted compact commits nothing, and the next compact finishes the work", async () => {
  await withTempDir(async (dir) => {
    const { repo, src } = await setUp(dir);
    await backupCommand(repo, { passphrase, name: "one", sources: [src], compression });
    await Deno.remove(`${src}/big-0.bin`);
    await Deno.remove(`${src}/dir-0`, { recursive: true });
    await backupCommand(repo, { passphrase, name: "two", sources: [src], compression });
    await deleteCommand(repo, { passphrase, names: ["one"] });
    const controller = new AbortController();
    const phases: string[] = [];
    const err = await compactCommand(repo, {
      passphrase,
      thresholdPercent: 0,
      signal: controller.signal,
      onProgress: (p) => {
        phases.push(p.phase);
        controller.abort();
      },
    }).catch((e) => e);
    ok(err instanceof InterruptedError, `not an InterruptedError: ${err}`);
    ok(err.message.startsWith("Compact aborted"), err.message);
    ok(!phases.includes("index"), `the index was committed: ${phases}`);
    deepStrictEqual(await checkErrors(repo, true), []);
    const result = await compactCommand(repo, { passphrase, thresholdPercent: 0 });
    ok(result.deletedPacks.length > 0, "the second compact deleted nothing");
    deepStrictEqual(await checkErrors(repo, true), []);
    await extractCommand(repo, { passphrase, archive: "two", dest: `${dir}/out` });
    deepStrictEqual(
      await Deno.readFile(`${restoredPath(`${dir}/out`, src)}/big-2.bin`),
      await Deno.readFile(`${src}/big-2.bin`),
    );
  });
});

Deno.test("an abort while waiting for another process's lock stops the wait at once", async () => {
  await withTempDir(async (dir) => {
    const { repo, src } = await setUp(dir);
    await backupCommand(repo, { passphrase, name: "one", sources: [src], compression });
    const held = await RepoLock.acquire(repo, "shared", { command: "backup" });
    try {
      const started = performance.now();
      const err = await pruneCommand(repo, {
        passphrase,
        policy: { keepLast: 0 },
        lockWaitMs: 60_000,
        signal: AbortSignal.timeout(300),
      }).catch((e) => e);
      ok(err instanceof InterruptedError, `not an InterruptedError: ${err}`);
      ok(err.message.startsWith("Prune aborted"), err.message);
      ok(performance.now() - started < 10_000, "the wait went on after the abort");
    } finally {
      await held.release();
    }
    deepStrictEqual((await listArchivesCommand(repo, { passphrase })).map((a) => a.name), ["one"]);
    // the lock is free again: the same prune runs to its end
    const done = await pruneCommand(repo, { passphrase, policy: { keepLast: 1 } });
    deepStrictEqual(done.deleted, []);
  });
});
