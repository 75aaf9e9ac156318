/**
 * Signals and interruptions leave nothing behind and lose nothing: SIGINT, SIGTERM and SIGHUP
 * during a busy backup end it within seconds with 130, 143 and 129, with no lock, no `.tmp-` file
 * in the repository and no staged pack in the temp directory; the staged packs of a backup
 * killed with SIGKILL are removed by the next run; an extract ended by a signal leaves no partial
 * file under a real name and its re-run restores every byte.
 *
 * Real child processes, with their own TMPDIR so that their staging directories can be watched.
 *
 * @module
 */

import { deepStrictEqual, equal, ok } from "node:assert/strict";
import {
  CLI_PATH,
  FAST_KDF_ARGS,
  PASSPHRASE,
  runVger,
  runVgerOk,
  sha256File,
  spawnVger,
  withTempDir,
} from "./_helpers.ts";

/**
 * Packs are written where they are stored as they fill (a `.tmp-` file in the repository), or
 * staged in TMPDIR once past 64 MiB where they cannot be: make packs that large, so that one
 * is being written for a while.
 */
const PACK_SIZE = 256 << 20;
/** Random bytes to back up: several staged packs' worth of work. */
const SOURCE_BYTES = 400 << 20;

interface Workspace {
  dir: string;
  repo: string;
  src: string;
  /** TMPDIR of every child. */
  tmp: string;
  env: Record<string, string>;
}

async function workspace(dir: string): Promise<Workspace> {
  const ws: Workspace = {
    dir,
    repo: `${dir}/repo`,
    src: `${dir}/src`,
    tmp: `${dir}/tmp`,
    env: { TMPDIR: `${dir}/tmp` },
  };
  await Deno.mkdir(ws.src);
  await Deno.mkdir(ws.tmp);
  const out = await new Deno.Command("head", {
    args: ["-c", String(SOURCE_BYTES), "/dev/urandom"],
    stdout: "piped",
  }).output();
  await Deno.writeFile(`${ws.src}/big.bin`, out.stdout);
  await Deno.writeTextFile(
    `${dir}/vger.yaml`,
    `repositories:\n  - path: ${JSON.stringify(ws.repo)}\n    min_pack_size: ${PACK_SIZE}\n` +
      `    max_pack_size: ${PACK_SIZE}\ncompression:\n  algorithm: none\n`,
  );
  await runVgerOk(["-c", `${dir}/vger.yaml`, "init", ...FAST_KDF_ARGS], { env: ws.env });
  return ws;
}

/**
 * Packs being written: `.tmp-` files in the repository's root (not those of puts, such as the
 * lock's own while it is taken, in their key's directory), staged packs (`vger-pack-*` files)
 * anywhere in the children's TMPDIR, and staging dirs.
 */
async function staged(ws: Workspace): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const e of Deno.readDir(ws.repo)) {
      if (e.name.startsWith(".tmp-")) out.push(`${ws.repo}/${e.name}`);
    }
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  out.push(...await namesBelow(ws.tmp, (n) => n.startsWith("vger-pack-")));
  for await (const root of Deno.readDir(ws.tmp)) {
    if (!root.name.startsWith("vger-staging-")) continue;
    for await (const p of Deno.readDir(`${ws.tmp}/${root.name}`)) {
      out.push(`${ws.tmp}/${root.name}/${p.name}/`);
    }
  }
  return out;
}

/** Paths under `root` whose name satisfies `test`. */
async function namesBelow(root: string, test: (name: string) => boolean): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string) => {
    for await (const e of Deno.readDir(dir)) {
      const path = `${dir}/${e.name}`;
      if (test(e.name)) out.push(path);
      if (e.isDirectory) await walk(path);
    }
  };
  try {
    await walk(root);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  return out;
}

/** Whether this (test) process ignores SIGHUP, which its children then inherit. */
function sighupIgnoredHere(): boolean {
  try {
    const m = /^SigIgn:\s*([0-9a-f]+)$/m.exec(Deno.readTextFileSync("/proc/self/status"));
    return m !== null && (parseInt(m[1].slice(-1), 16) & 1) === 1;
  } catch {
    return false; // not Linux
  }
}

async function until(cond: () => Promise<boolean> | boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return await cond();
}

/** Starts a backup and waits until it has staged a pack in a file; returns the child. */
async function busyBackup(ws: Workspace, archive: string) {
  const child = spawnVger(["-R", ws.repo, "backup", "-a", archive, ws.src], { env: ws.env });
  const stderr = child.stderr.pipeThrough(new TextDecoderStream());
  const err = { text: "" };
  const drained = Promise.all([
    child.stdout.cancel(),
    (async () => {
      for await (const t of stderr) err.text += t;
    })(),
  ]);
  let exited = false;
  const status = child.status.finally(() => exited = true);
  const stagedFile = () => staged(ws).then((s) => s.some((p) => !p.endsWith("/")));
  const busy = await until(async () => exited || await stagedFile(), 120_000);
  ok(busy && !exited, `the backup never staged a pack:\n${err.text}`);
  return { child, status, drained, err, exited: () => exited };
}

Deno.test({
  name: "SIGINT, SIGTERM and SIGHUP during a backup: 130, 143, 129 within 5 s, nothing left behind",
  ignore: Deno.build.os === "windows",
  fn: () =>
    withTempDir(async (dir) => {
      const ws = await workspace(dir);
      const signals: [Deno.Signal, number][] = [["SIGTERM", 143], ["SIGHUP", 129], [
        "SIGINT",
        130,
      ]];
      for (const [signal, expected] of signals) {
        // a test run under nohup passes SIGHUP's being ignored on to its children
        if (signal === "SIGHUP" && sighupIgnoredHere()) continue;
        const b = await busyBackup(ws, `to-${signal}`);
        const sent = performance.now();
        b.child.kill(signal);
        const stopped = await until(() => b.exited(), 5_000);
        const seconds = ((performance.now() - sent) / 1000).toFixed(1);
        if (!stopped) b.child.kill("SIGKILL");
        const { code } = await b.status;
        await b.drained;
        ok(stopped, `still running ${seconds} s after ${signal}`);
        equal(code, expected, `exit code after ${signal}:\n${b.err.text}`);
        ok(b.err.text.includes("the repository is consistent"), b.err.text);
        deepStrictEqual(await staged(ws), [], `staged packs left after ${signal}`);
        deepStrictEqual(await namesBelow(`${ws.repo}/locks`, () => true), [], "a lock was left");
        deepStrictEqual(
          await namesBelow(ws.repo, (n) => n.startsWith(".tmp-")),
          [],
          `a partly written object was left after ${signal}`,
        );
      }
      // nothing was committed, and the repository is whole
      const list = await runVgerOk(["-R", ws.repo, "list"], { env: ws.env });
      equal(list.stdout, "");
      await runVgerOk(["-R", ws.repo, "check"], { env: ws.env });
    }),
});

Deno.test({
  name: "the pack a backup killed with SIGKILL was writing is removed by the next compact",
  ignore: Deno.build.os === "windows",
  fn: () =>
    withTempDir(async (dir) => {
      const ws = await workspace(dir);
      const b = await busyBackup(ws, "killed");
      b.child.kill("SIGKILL");
      await b.status;
      await b.drained;
      const left = await staged(ws);
      ok(left.some((p) => !p.endsWith("/")), `SIGKILL left no staged pack: ${left}`);
      // a command under the exclusive lock removes the temp files of dead writers
      await runVgerOk(["-R", ws.repo, "compact"], { env: ws.env });
      deepStrictEqual(await staged(ws), []);
      await runVgerOk(["-R", ws.repo, "check"], { env: ws.env });
    }),
});

/**
 * Starts an extract of `one` into `dest` (under `nohup` if told) and waits until its file is
 * partly written.
 */
async function busyExtract(ws: Workspace, dest: string, options: { nohup?: boolean } = {}) {
  const parent = `${dest}${ws.src}`;
  const args = ["-R", ws.repo, "extract", "-a", "one", "--dest", dest];
  const child = options.nohup
    ? new Deno.Command("nohup", {
      args: [Deno.execPath(), "run", "-A", CLI_PATH, ...args],
      env: { ...ws.env, VGER_PASSPHRASE: PASSPHRASE, XDG_CONFIG_HOME: "/nonexistent" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn()
    : spawnVger(args, { env: ws.env });
  const stderr = child.stderr.pipeThrough(new TextDecoderStream());
  const err = { text: "" };
  const drained = Promise.all([
    child.stdout.cancel(),
    (async () => {
      for await (const t of stderr) err.text += t;
    })(),
  ]);
  let exited = false;
  const status = child.status.finally(() => exited = true);
  // busy once the file is partly written (under whatever name)
  const writing = await until(async () => {
    if (exited) return true;
    for (const t of await namesBelow(parent, () => true)) {
      if (((await Deno.stat(t).catch(() => null))?.size ?? 0) > 0) return true;
    }
    return false;
  }, 120_000);
  ok(writing && !exited, `the extract never wrote its file:\n${err.text}`);
  return { child, status, drained, err, exited: () => exited };
}

Deno.test({
  name:
    "an extract ended by SIGTERM or SIGKILL leaves no partial file under a real name; under nohup it ignores SIGHUP",
  ignore: Deno.build.os === "windows",
  fn: () =>
    withTempDir(async (dir) => {
      const ws = await workspace(dir);
      await runVgerOk(["-R", ws.repo, "backup", "-a", "one", ws.src], { env: ws.env });
      const temps = (dest: string) =>
        namesBelow(`${dest}${ws.src}`, (n) => n.startsWith(".vger-tmp-"));

      // SIGTERM: 143 within 5 s, and the temp file is gone too
      const termDest = `${dir}/term`;
      const t = await busyExtract(ws, termDest);
      t.child.kill("SIGTERM");
      const stopped = await until(() => t.exited(), 5_000);
      if (!stopped) t.child.kill("SIGKILL");
      const { code } = await t.status;
      await t.drained;
      ok(stopped, "still running 5 s after SIGTERM");
      equal(code, 143, t.err.text);
      equal(await Deno.stat(`${termDest}${ws.src}/big.bin`).catch(() => null), null);
      deepStrictEqual(await temps(termDest), [], "SIGTERM left the temp file");

      // SIGKILL: the temp file stays, never the real name; the re-run restores every byte
      const dest = `${dir}/out`;
      const target = `${dest}${ws.src}/big.bin`;
      const k = await busyExtract(ws, dest);
      k.child.kill("SIGKILL");
      await k.status;
      await k.drained;
      const partial = await Deno.stat(target).catch(() => null);
      equal(partial, null, `a partial file of ${partial?.size} bytes is under the real name`);
      ok((await temps(dest)).length > 0, "SIGKILL left no temp file: the test did not bite");

      const again = await runVger(["-R", ws.repo, "extract", "-a", "one", "--dest", dest], {
        env: ws.env,
      });
      equal(again.code, 0, again.stderr);
      equal(await sha256File(target), await sha256File(`${ws.src}/big.bin`));
      deepStrictEqual(await temps(dest), [], "the re-run left the killed extract's temp file");

      // under nohup, SIGHUP is ignored as asked: the extract goes on and completes
      const hupDest = `${dir}/hup`;
      const h = await busyExtract(ws, hupDest, { nohup: true });
      h.child.kill("SIGHUP");
      const hup = await h.status;
      await h.drained;
      equal(hup.code, 0, h.err.text);
      equal(
        await sha256File(`${hupDest}${ws.src}/big.bin`),
        await sha256File(`${ws.src}/big.bin`),
      );
    }),
});
