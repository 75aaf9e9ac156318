/**
 * The corruption matrix, through the real CLI: one kind of damage per step, each on its own copy
 * of a small repository (two archives, several packs). For each it proves what `check` and
 * `check --verify-data` report (kinds, severity, and the archives and stored paths the damage
 * touches), that the files the damage does not touch still restore byte for byte, what the next
 * `backup` does, and that no command crashes with a stack trace.
 *
 * Packs are walked without the key, as docs/FORMAT.md allows ("Verify a pack"): records from
 * offset 9, each `u32le length || u32le crc32 || sealed object` whose first byte is the type tag,
 * then the header located by the trailing `u32le header_length`.
 */

import { deepStrictEqual, equal, notEqual, ok } from "node:assert/strict";
import { createHash } from "node:crypto";
import type { Problem, ProblemKind } from "../lib/check_report.ts";
import {
  FAST_KDF_ARGS,
  listItems,
  pseudoRandomBytes,
  type RunResult,
  runVger,
  sha256File,
  storedPath,
  withTempDir,
} from "./_helpers.ts";

// ---------------------------------------------------------------------------------------------
// Packs, read without the key

/** One record of a pack. */
interface PackRecord {
  /** Offset of the record (its u32 length), not of the object. */
  offset: number;
  /** Length of the sealed object. */
  length: number;
  /** Type tag of the sealed object: 1 data, 2 item-stream blob. */
  type: number;
}

/** Where the records and the header of a pack lie. */
interface PackLayout {
  /** Storage key, `packs/xx/<id>`. */
  key: string;
  /** File of the pack. */
  file: string;
  /** Size in bytes. */
  size: number;
  /** Offset of the sealed header. */
  headerOffset: number;
  /** Length of the sealed header. */
  headerLength: number;
  /** The records, in order. */
  records: PackRecord[];
}

async function packKeys(repo: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const d of Deno.readDir(`${repo}/packs`)) {
    for await (const f of Deno.readDir(`${repo}/packs/${d.name}`)) {
      if (f.isFile && !f.name.startsWith(".tmp-")) keys.push(`packs/${d.name}/${f.name}`);
    }
  }
  return keys.sort();
}

async function packLayout(repo: string, key: string): Promise<PackLayout> {
  const file = `${repo}/${key}`;
  const b = await Deno.readFile(file);
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  equal(new TextDecoder().decode(b.subarray(0, 8)), "VGERPACK", `${key}: magic`);
  const headerLength = dv.getUint32(b.length - 4, true);
  const headerOffset = b.length - 4 - headerLength;
  const records: PackRecord[] = [];
  for (let off = 9; off < headerOffset;) {
    const length = dv.getUint32(off, true);
    records.push({ offset: off, length, type: b[off + 8] });
    off += 8 + length;
  }
  return { key, file, size: b.length, headerOffset, headerLength, records };
}

// ---------------------------------------------------------------------------------------------
// Damage

async function flipBit(file: string, offset: number, mask = 0x10): Promise<void> {
  const b = await Deno.readFile(file);
  ok(offset >= 0 && offset < b.length, `offset ${offset} inside ${file} (${b.length} bytes)`);
  b[offset] ^= mask;
  await Deno.writeFile(file, b);
}

async function zeroFill(file: string, offset: number, length: number): Promise<void> {
  const b = await Deno.readFile(file);
  b.fill(0, offset, offset + length);
  await Deno.writeFile(file, b);
}

async function truncateFile(file: string, size: number): Promise<void> {
  using f = await Deno.open(file, { write: true });
  await f.truncate(size);
}

// ---------------------------------------------------------------------------------------------
// Source tree

const WORDS = [
  "archive",
  "backup",
  "chunk",
  "deduplicate",
  "encrypt",
  "fastcdc",
  "gear",
  "header",
  "index",
  "journal",
  "key",
  "lz4",
  "manifest",
  "nonce",
  "pack",
  "restore",
];

/** Compressible text: numbered lines of words and numbers drawn from a seeded generator. */
function textBytes(length: number, seed: number): Uint8Array {
  const r = pseudoRandomBytes(length, seed);
  let s = "";
  for (let k = 0, line = 0; s.length < length; line++) {
    s += `${line}:`;
    for (let w = 0; w < 8; w++, k += 2) {
      s += ` ${WORDS[r[k % r.length] % WORDS.length]}${r[(k + 1) % r.length]}`;
    }
    s += "\n";
  }
  return new TextEncoder().encode(s.slice(0, length));
}

async function writeBytes(path: string, bytes: Uint8Array): Promise<void> {
  await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
  await Deno.writeFile(path, bytes);
}

/** Stored path -> SHA-256 of the contents, for every regular file under `root`. */
async function fileHashes(root: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const visit = async (dir: string): Promise<void> => {
    for await (const e of Deno.readDir(dir)) {
      const p = `${dir}/${e.name}`;
      if (e.isDirectory) await visit(p);
      else if (e.isFile) out.set(storedPath(p), await sha256File(p));
    }
  };
  await visit(root);
  return out;
}

function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

// ---------------------------------------------------------------------------------------------
// Running and reading the CLI's answers

/** What `vger check --json` prints (lib's Problem, with snake_case names). */
interface CheckJson {
  errors: number;
  warnings: number;
  problems: (Omit<Problem, "affects"> & {
    affects: { archives: string[]; paths: string[]; paths_truncated: boolean };
  })[];
}

/** Fails when a command crashed instead of reporting: a JS stack trace or an uncaught error. */
function assertNoCrash(args: readonly string[], r: RunResult): void {
  const where = `vger ${args.join(" ")}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
  ok(!r.timedOut, `timed out: ${where}`);
  for (const text of [r.stdout, r.stderr]) {
    ok(!/^ {4}at /m.test(text), `stack trace: ${where}`);
    ok(!text.includes("Uncaught"), `uncaught error: ${where}`);
    ok(!text.includes("Unexpected error"), `unexpected (non-vger) error: ${where}`);
  }
}

/** Asserts a clean failure: exit 1, nothing on stdout, one line on stderr that matches `what`. */
function assertCleanError(r: RunResult, what: RegExp, label: string): void {
  equal(r.code, 1, `${label}: exit code\n${r.stderr}`);
  equal(r.stdout, "", `${label}: stdout`);
  const lines = r.stderr.trimEnd().split("\n");
  equal(lines.length, 1, `${label}: one line on stderr, got:\n${r.stderr}`);
  ok(lines[0].startsWith("vger: "), `${label}: ${lines[0]}`);
  ok(what.test(lines[0]), `${label}: ${lines[0]} should match ${what}`);
}

function errorKinds(report: CheckJson): ProblemKind[] {
  return [...new Set(report.problems.filter((p) => p.severity === "error").map((p) => p.kind))]
    .sort();
}

/** Union of the stored paths the problems of these kinds name. */
function affectedPaths(report: CheckJson, kinds: readonly ProblemKind[]): Set<string> {
  const out = new Set<string>();
  for (const p of report.problems) {
    if (kinds.includes(p.kind)) { for (const path of p.affects.paths) out.add(path); }
  }
  return out;
}

function sorted(s: Iterable<string>): string[] {
  return [...s].sort();
}

function isSubset(a: Iterable<string>, b: Set<string>): boolean {
  for (const x of a) if (!b.has(x)) return false;
  return true;
}

// ---------------------------------------------------------------------------------------------
// The matrix

Deno.test(
  "corruption matrix: check names the damage, intact files still restore, the next backup " +
    "succeeds or fails with one clean line",
  async (t) => {
    await withTempDir(async (dir) => {
      const src = `${dir}/src`;
      const base = `${dir}/base`;
      const config = `${dir}/vger.yaml`;
      await Deno.writeTextFile(
        config,
        `repositories:\n  - path: ${JSON.stringify(base)}\n    min_pack_size: 1048576\n` +
          `chunker:\n  min_size: 16384\n  avg_size: 65536\n  max_size: 262144\n`,
      );
      const vger = async (args: string[]): Promise<RunResult> => {
        const r = await runVger(["--config", config, ...args]);
        assertNoCrash(args, r);
        return r;
      };
      const vgerOk = async (args: string[], expected = 0): Promise<RunResult> => {
        const r = await vger(args);
        equal(r.code, expected, `vger ${args.join(" ")}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
        return r;
      };
      const check = async (repo: string, verifyData = false): Promise<CheckJson> => {
        const args = ["-R", repo, "check", "--json", ...(verifyData ? ["--verify-data"] : [])];
        const r = await vger(args);
        const report = JSON.parse(r.stdout) as CheckJson;
        equal(r.code, report.errors > 0 ? 1 : 0, `exit code of check follows its errors`);
        equal(report.errors, report.problems.filter((p) => p.severity === "error").length);
        return report;
      };
      let copies = 0;
      const copyOfBase = async (): Promise<string> => {
        const repo = `${dir}/case-${++copies}`;
        const cp = await new Deno.Command("cp", { args: ["-a", base, repo] }).output();
        ok(cp.success, new TextDecoder().decode(cp.stderr));
        return repo;
      };

      /** Extracts (optionally only `patterns`); returns the failed stored paths. */
      const extract = async (
        repo: string,
        archive: string,
        patterns: string[] = [],
      ): Promise<{ r: RunResult; failed: Set<string>; dest: string }> => {
        const dest = `${dir}/out-${++copies}`;
        const r = await vger(
          ["-R", repo, "extract", "--archive", archive, "--dest", dest, "--json", ...patterns],
        );
        const failed = new Set<string>();
        if (r.code === 0 || r.code === 3) {
          const { warnings } = JSON.parse(r.stdout) as { warnings: string[] };
          equal(r.code, warnings.length > 0 ? 3 : 0, r.stdout);
          for (const w of warnings) {
            const m = /^Cannot restore "(.+?)": /.exec(w);
            ok(m, `only unrestorable files are warned about: ${w}`);
            ok(m[1].startsWith(`${dest}/`), w);
            failed.add(m[1].slice(dest.length + 1));
          }
        }
        return { r, failed, dest };
      };
      /** Every expected file not in `failed` restored byte-identical; failed ones left no file. */
      const assertRestored = async (
        dest: string,
        expected: Map<string, string>,
        failed: Set<string>,
      ): Promise<void> => {
        for (const [path, hash] of expected) {
          const file = `${dest}/${path}`;
          if (failed.has(path)) {
            let exists = true;
            try {
              await Deno.lstat(file);
            } catch {
              exists = false;
            }
            ok(!exists, `${path} could not be restored and must not be left half-written`);
          } else {
            equal(await sha256File(file), hash, `${path} restored byte-identical`);
          }
        }
      };

      // -- the base repository: archive "one", then a change and archive "two" --
      await writeBytes(`${src}/a.bin`, pseudoRandomBytes(300 << 10, 1));
      await writeBytes(`${src}/b.bin`, pseudoRandomBytes(900 << 10, 2));
      await writeBytes(`${src}/c.bin`, pseudoRandomBytes(1600 << 10, 3));
      await writeBytes(`${src}/docs/d.txt`, textBytes(250 << 10, 4));
      await writeBytes(`${src}/docs/e.txt`, textBytes(700 << 10, 5));
      await writeBytes(`${src}/f.txt`, textBytes(400 << 10, 6));
      await vgerOk(["-R", base, "init", ...FAST_KDF_ARGS]);
      await vgerOk(["-R", base, "backup", "--archive", "one", src]);
      const filesOne = await fileHashes(src);
      const packsOne = await packKeys(base);
      await Deno.writeFile(`${src}/docs/d.txt`, textBytes(20 << 10, 7), { append: true });
      await writeBytes(`${src}/g.bin`, pseudoRandomBytes(400 << 10, 8));
      await vgerOk(["-R", base, "backup", "--archive", "two", src]);
      const filesTwo = await fileHashes(src);
      const packsTwo = (await packKeys(base)).filter((k) => !packsOne.includes(k));

      // the listed files of "one" are exactly the source files
      const listedOne = (await listItems(base, "one")).filter((i) => i.type === "file");
      deepStrictEqual(sorted(listedOne.map((i) => i.path)), sorted(filesOne.keys()));
      const pathsOne = new Set(filesOne.keys());
      ok(packsOne.length >= 3, `several packs: ${packsOne.join(", ")}`);
      ok(packsTwo.length >= 1, "the second backup added a pack");
      equal((await check(base, true)).problems.length, 0, "the base repository is clean");

      // The victim of the pack cases: a pack of "one" with data records only (no item-stream
      // blob, so the archives stay listable), the one with most records.
      const layouts = await Promise.all(packsOne.map((k) => packLayout(base, k)));
      // Which files a pack holds depends on the order the codec workers finished in (a loaded
      // machine can mix every file into one pack): take the largest data-only pack whose loss
      // affects some but not all files, found by deleting each candidate in a scratch copy.
      const candidates = layouts
        .filter((l) => l.records.length >= 3 && l.records.every((r) => r.type === 1))
        .sort((x, y) => y.records.length - x.records.length);
      let victim: (typeof candidates)[number] | undefined;
      for (const c of candidates) {
        const scratch = await copyOfBase();
        await Deno.remove(`${scratch}/${c.key}`);
        const hit = affectedPaths(await check(scratch), ["missing-pack"]);
        await Deno.remove(scratch, { recursive: true });
        if (hit.size > 0 && hit.size < pathsOne.size) {
          victim = c;
          break;
        }
      }
      if (!victim) throw new Error(`no data-only pack of "one" holds only some files: ${packsOne}`);
      const victimFile = (repo: string) => `${repo}/${victim.key}`;

      interface PackCase {
        name: string;
        damage(file: string): Promise<void>;
        /** Error kinds of `check`. */
        structural: ProblemKind[];
        /** Error kinds of `check --verify-data`. */
        verify: ProblemKind[];
        /** Whether extract restores every file (the damage spares every record). */
        allRestore: boolean;
        /** Whether extract fails exactly the reported paths (else a non-empty subset). */
        exact: boolean;
      }
      const midAt = Math.floor(victim.records.length / 2);
      const mid = victim.records[midAt];
      const next = victim.records[midAt + 1];
      /** Middle of a record's sealed object. */
      const objectMiddle = (r: PackRecord) => r.offset + 8 + Math.floor(r.length / 2);
      const packCases: PackCase[] = [
        {
          name: "1. a bit flip in a pack's data record passes the structural check; " +
            "verify-data reports corrupt-blob and pack-hash-mismatch naming its archives and files",
          damage: (f) => flipBit(f, objectMiddle(mid)),
          structural: [],
          verify: ["corrupt-blob", "pack-hash-mismatch"],
          allRestore: false,
          exact: true,
        },
        {
          name: "2. a bit flip in a pack's header is a corrupt-pack naming its archives and " +
            "files; every file still restores (the index locates the intact records)",
          damage: (f) => flipBit(f, victim.headerOffset + Math.floor(victim.headerLength / 2)),
          structural: ["corrupt-pack"],
          verify: ["corrupt-pack", "pack-hash-mismatch"],
          allRestore: true,
          exact: false,
        },
        {
          name: "3. a truncated pack is a corrupt-pack naming its archives and files; the " +
            "records before the cut and the other packs restore",
          damage: (f) => truncateFile(f, Math.floor(victim.size / 2)),
          structural: ["corrupt-pack"],
          verify: ["corrupt-blob", "corrupt-pack", "pack-hash-mismatch"],
          allRestore: false,
          exact: false,
        },
        {
          name: "4. a zero-filled region inside a pack (across a record boundary) passes the " +
            "structural check; verify-data reports corrupt-blob naming exactly the files that " +
            "fail to restore",
          // from the middle of one object to the middle of the next: both objects are damaged
          damage: (f) => zeroFill(f, objectMiddle(mid), objectMiddle(next) - objectMiddle(mid)),
          structural: [],
          verify: ["corrupt-blob", "pack-hash-mismatch"],
          allRestore: false,
          exact: true,
        },
        {
          name: "5. a deleted pack is a missing-pack naming exactly the files that fail to " +
            "restore; the others restore",
          damage: (f) => Deno.remove(f),
          structural: ["missing-pack"],
          verify: ["missing-pack"],
          allRestore: false,
          exact: true,
        },
      ];
      for (const c of packCases) {
        await t.step(c.name, async () => {
          const repo = await copyOfBase();
          await c.damage(victimFile(repo));

          const structural = await check(repo);
          deepStrictEqual(errorKinds(structural), c.structural, JSON.stringify(structural));
          const verified = await check(repo, true);
          deepStrictEqual(errorKinds(verified), c.verify, JSON.stringify(verified));
          for (const report of [structural, verified]) {
            for (const p of report.problems) {
              equal(p.severity, "error", `damage is an error: ${p.message}`);
              ok(p.message.includes(victim.key), `names the pack: ${p.message}`);
              if (p.kind === "pack-hash-mismatch") continue;
              // the blobs of the pack belong to "one" (and "two" where it shares them)
              equal(p.affects.archives[0], "one", JSON.stringify(p));
              ok(isSubset(p.affects.archives, new Set(["one", "two"])), JSON.stringify(p));
              ok(p.affects.paths.length > 0, `names the damaged files: ${JSON.stringify(p)}`);
              ok(isSubset(p.affects.paths, pathsOne), JSON.stringify(p));
              equal(p.affects.paths_truncated, false);
            }
          }
          const reported = affectedPaths(verified, [
            "corrupt-blob",
            "corrupt-pack",
            "missing-pack",
          ]);
          ok(reported.size > 0 && reported.size < pathsOne.size, `some files: ${sorted(reported)}`);

          // full extract: only files named by check fail, every other file is byte-identical
          const full = await extract(repo, "one");
          await assertRestored(full.dest, filesOne, full.failed);
          if (c.allRestore) {
            equal(full.r.code, 0, full.r.stderr);
          } else {
            equal(full.r.code, 3, full.r.stderr);
            ok(full.failed.size > 0, "some file fails");
            if (c.exact) deepStrictEqual(sorted(full.failed), sorted(reported));
            else {ok(
                isSubset(full.failed, reported),
                `${sorted(full.failed)} ⊆ ${sorted(reported)}`,
              );}
          }

          // extract of just the files check did not name: no warning at all
          const unaffected = sorted(pathsOne).filter((p) => !reported.has(p));
          const some = await extract(repo, "one", unaffected);
          equal(some.r.code, 0, some.r.stderr);
          await assertRestored(
            some.dest,
            new Map(unaffected.map((p) => [p, filesOne.get(p)!])),
            new Set(),
          );

          // the next backup goes through
          await vgerOk(["-R", repo, "backup", "--archive", "three", src]);
        });
      }

      await t.step(
        "5b. check --repair --yes after a deleted pack removes exactly the archives whose data " +
          "is gone; the others restore and a new backup stores the lost data again",
        async () => {
          const repo = await copyOfBase();
          // the packs of the second backup hold only blobs that "two" alone references: its
          // new data and (in a pack of its own) its list of files
          for (const key of packsTwo) await Deno.remove(`${repo}/${key}`);
          const before = await check(repo);
          ok(errorKinds(before).includes("missing-pack"), JSON.stringify(before));
          const affected = new Set(before.problems.flatMap((p) => p.affects.archives));
          deepStrictEqual([...affected], ["two"], JSON.stringify(before));

          const r = await vgerOk(["-R", repo, "check", "--repair", "--yes", "--json"]);
          const repair = JSON.parse(r.stdout) as {
            index_written: boolean;
            removed_archives: string[];
            broken_archives: { name: string }[];
          };
          equal(repair.index_written, true);
          deepStrictEqual(repair.broken_archives.map((b) => b.name), ["two"]);
          deepStrictEqual(repair.removed_archives, ["two"]);
          const list = await vgerOk(["-R", repo, "list", "--json"]);
          deepStrictEqual(
            JSON.parse(list.stdout).archives.map((a: { name: string }) => a.name),
            ["one"],
          );
          equal((await check(repo, true)).errors, 0, "no error is left");

          const one = await extract(repo, "one");
          equal(one.r.code, 0, one.r.stderr);
          await assertRestored(one.dest, filesOne, new Set());

          // the repaired index no longer claims the lost blobs: the next backup stores them
          await vgerOk(["-R", repo, "backup", "--archive", "three", src]);
          const three = await extract(repo, "three");
          equal(three.r.code, 0, three.r.stderr);
          await assertRestored(three.dest, filesTwo, new Set());
          equal((await check(repo, true)).errors, 0);
        },
      );

      await t.step(
        "6. a corrupt index is a corrupt-index; extract rebuilds it in memory, the next " +
          "backup writes a rebuilt one and check is clean again",
        async () => {
          const repo = await copyOfBase();
          const size = (await Deno.stat(`${repo}/index`)).size;
          await flipBit(`${repo}/index`, Math.floor(size / 2), 0x01);
          const damaged = sha256(await Deno.readFile(`${repo}/index`));

          for (const verifyData of [false, true]) {
            const report = await check(repo, verifyData);
            deepStrictEqual(errorKinds(report), ["corrupt-index"], JSON.stringify(report));
            equal(report.problems.length, 1, JSON.stringify(report));
            ok(/index/i.test(report.problems[0].message), report.problems[0].message);
          }

          const two = await extract(repo, "two");
          equal(two.r.code, 0, two.r.stderr);
          ok(/index is corrupt.*rebuilt it in memory/i.test(two.r.stderr), two.r.stderr);
          await assertRestored(two.dest, filesTwo, new Set());
          const listed = await vgerOk(["-R", repo, "list", "--archive", "two", "--json"]);
          deepStrictEqual(
            sorted(
              JSON.parse(listed.stdout).items.filter((i: { type: string }) => i.type === "file")
                .map((i: { path: string }) => i.path),
            ),
            sorted(filesTwo.keys()),
            "list --archive works through the rebuilt index",
          );

          const b = await vgerOk(["-R", repo, "backup", "--archive", "three", src]);
          ok(/wrote it back/.test(b.stderr), b.stderr);
          notEqual(sha256(await Deno.readFile(`${repo}/index`)), damaged, "index rewritten");
          const after = await check(repo, true);
          deepStrictEqual(after.problems, [], "clean after the rebuilt index was written");
        },
      );

      await t.step(
        "7. a corrupt manifest is a corrupt-manifest; list, extract and backup stop with one " +
          "line naming the manifest",
        async () => {
          const repo = await copyOfBase();
          const size = (await Deno.stat(`${repo}/manifest`)).size;
          await flipBit(`${repo}/manifest`, Math.floor(size / 2), 0x01);
          for (const verifyData of [false, true]) {
            const report = await check(repo, verifyData);
            deepStrictEqual(errorKinds(report), ["corrupt-manifest"], JSON.stringify(report));
            equal(report.problems.length, 1, JSON.stringify(report));
            ok(/manifest/i.test(report.problems[0].message));
          }
          const manifest = /manifest/i;
          assertCleanError(await vger(["-R", repo, "list"]), manifest, "list");
          assertCleanError(
            await vger(["-R", repo, "extract", "--archive", "one", "--dest", `${dir}/out-m`]),
            manifest,
            "extract",
          );
          assertCleanError(
            await vger(["-R", repo, "backup", "--archive", "three", src]),
            manifest,
            "backup",
          );
        },
      );

      await t.step(
        "8. corrupt archive metadata is a corrupt-archive naming that archive; the other " +
          "archive restores and the next backup succeeds",
        async () => {
          const repo = await copyOfBase();
          const list = await vgerOk(["-R", repo, "list", "--json"]);
          const id = (JSON.parse(list.stdout).archives as { name: string; id: string }[])
            .find((a) => a.name === "one")!.id;
          const key = `archives/${id}`;
          const size = (await Deno.stat(`${repo}/${key}`)).size;
          await flipBit(`${repo}/${key}`, Math.floor(size / 2), 0x01);

          for (const verifyData of [false, true]) {
            const report = await check(repo, verifyData);
            deepStrictEqual(errorKinds(report), ["corrupt-archive"], JSON.stringify(report));
            equal(report.problems.length, 1, JSON.stringify(report));
            const p = report.problems[0];
            ok(p.message.includes(key) && p.message.includes('"one"'), p.message);
            deepStrictEqual(p.affects.archives, ["one"]);
          }
          const one = await extract(repo, "one");
          assertCleanError(one.r, new RegExp(`"one".*${key}`), "extract one");
          const two = await extract(repo, "two");
          equal(two.r.code, 0, two.r.stderr);
          await assertRestored(two.dest, filesTwo, new Set());
          const names = await vgerOk(["-R", repo, "list", "--json"]);
          deepStrictEqual(
            JSON.parse(names.stdout).archives.map((a: { name: string }) => a.name),
            ["one", "two"],
          );
          await vgerOk(["-R", repo, "backup", "--archive", "three", src]);
        },
      );

      /** Every command stops with one line matching `what`: the repository cannot be opened. */
      const assertUnopenable = async (repo: string, what: RegExp): Promise<void> => {
        const runs: [string, string[]][] = [
          ["check", ["check", "--json"]],
          ["check --verify-data", ["check", "--verify-data", "--json"]],
          ["list", ["list"]],
          ["extract", ["extract", "--archive", "two", "--dest", `${dir}/out-${++copies}`]],
          ["backup", ["backup", "--archive", "three", src]],
        ];
        for (const [label, args] of runs) {
          assertCleanError(await vger(["-R", repo, ...args]), what, label);
        }
      };

      await t.step(
        "9. a corrupt key file stops every command with one line naming keys/repokey",
        async () => {
          const repo = await copyOfBase();
          const size = (await Deno.stat(`${repo}/keys/repokey`)).size;
          await flipBit(`${repo}/keys/repokey`, Math.floor(size / 2), 0x01);
          await assertUnopenable(repo, /keys\/repokey.*corrupt/);
        },
      );

      await t.step(
        "10. a corrupt config (a flipped bit, or a changed digit only the MAC catches) stops " +
          "every command with one line naming the config",
        async () => {
          const flipped = await copyOfBase();
          const size = (await Deno.stat(`${flipped}/config`)).size;
          await flipBit(`${flipped}/config`, Math.floor(size / 2), 0x01);
          await assertUnopenable(flipped, /config is corrupt/);

          // still valid JSON with valid fields: the id's last hex digit changed
          const edited = await copyOfBase();
          const text = await Deno.readTextFile(`${edited}/config`);
          const m = /"id":"([0-9a-f]{63})([0-9a-f])"/.exec(text);
          ok(m, text);
          const digit = m[2] === "0" ? "1" : "0";
          await Deno.writeTextFile(
            `${edited}/config`,
            text.replace(m[0], `"id":"${m[1]}${digit}"`),
          );
          await assertUnopenable(edited, /config is corrupt: its MAC does not match/);
        },
      );
    });
  },
);
