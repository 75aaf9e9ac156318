/**
 * Confidentiality and integrity of a repository, through the real CLI: no plaintext reaches the
 * storage in an encrypted repository, and every damaged, swapped or tampered object is reported
 * as corrupt (naming the object), never read as something else and never as a crash.
 */

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { LocalBackend } from "../backends/local.ts";
import type { Item } from "../lib/archive.ts";
import { listItemsCommand } from "../lib/commands.ts";
import { IntegrityError } from "../lib/errors.ts";
import { nativeFs } from "../lib/fs_native.ts";
import { toHex } from "../lib/ids.ts";
import { packKey } from "../lib/storage_keys.ts";
import { Repository } from "../lib/repository.ts";

const CLI = new URL("../cli.ts", import.meta.url).pathname;
const PASS = "encryption-test-passphrase";
const KDF = ["--kdf-memory", "1024", "--kdf-iterations", "1", "--kdf-parallelism", "1"];
const MiB = 1 << 20;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the real CLI in a subprocess, away from any configuration file. */
async function vger(work: string, args: string[], passphrase = PASS): Promise<Run> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, ...args],
    cwd: work,
    env: { VGER_PASSPHRASE: passphrase, XDG_CONFIG_HOME: work },
    stdin: "null",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

async function ok(work: string, args: string[]): Promise<Run> {
  const r = await vger(work, args);
  assert.equal(r.code, 0, `vger ${args.join(" ")}: ${r.stderr}`);
  return r;
}

/** Asserts a clean failure report: no JS stack trace, no "Unexpected error". */
function assertNoCrash(r: Run): void {
  assert.doesNotMatch(r.stderr, /^\s+at /m, `stack trace printed:\n${r.stderr}`);
  assert.doesNotMatch(r.stderr, /Unexpected error/, r.stderr);
}

function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) {
    crypto.getRandomValues(out.subarray(i, Math.min(n, i + 65536)));
  }
  return out;
}

/** 64 random letters and digits: safe in file names, never found by chance. */
function randomMarker(): string {
  const abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  return Array.from(randomBytes(64), (b) => abc[b % abc.length]).join("");
}

/** Every file under dir (relative paths). */
function filesUnder(dir: string, rel = ""): string[] {
  const out: string[] = [];
  for (const e of Deno.readDirSync(rel ? `${dir}/${rel}` : dir)) {
    const r = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory) out.push(...filesUnder(dir, r));
    else out.push(r);
  }
  return out.sort();
}

/** The repository files whose bytes contain needle. */
function filesContaining(repo: string, needle: string): string[] {
  const n = Buffer.from(needle, "utf8");
  return filesUnder(repo).filter((f) =>
    Buffer.from(Deno.readFileSync(`${repo}/${f}`)).indexOf(n) >= 0
  );
}

function copyFiles(from: string, to: string): void {
  Deno.mkdirSync(to, { recursive: true });
  for (const e of Deno.readDirSync(from)) {
    if (e.isDirectory) copyFiles(`${from}/${e.name}`, `${to}/${e.name}`);
    else Deno.copyFileSync(`${from}/${e.name}`, `${to}/${e.name}`);
  }
}

/** Flips one bit of the file at `offset` (negative: from the end). */
function flipBit(path: string, offset: number, bit = 0x10): void {
  const b = Deno.readFileSync(path);
  b[offset < 0 ? b.length + offset : offset] ^= bit;
  Deno.writeFileSync(path, b);
}

function equalBytes(x: Uint8Array, y: Uint8Array): boolean {
  if (x.length !== y.length) return false;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

async function withWork(fn: (work: string) => Promise<void>): Promise<void> {
  const work = await Deno.makeTempDir({ prefix: "vger-encryption-test-" });
  try {
    await fn(work);
  } finally {
    await Deno.remove(work, { recursive: true });
  }
}

/** A tree that carries the marker in a file's contents and name, a symlink target and an xattr. */
function markedTree(src: string, marker: string): void {
  const fs = nativeFs();
  assert.ok(fs, "this test needs --allow-ffi on Linux");
  Deno.mkdirSync(src, { recursive: true });
  const enc = new TextEncoder();
  const body = new Uint8Array(200 * 1024);
  body.set(randomBytes(100 * 1024));
  for (let o = 100 * 1024; o + 64 <= body.length; o += 64) body.set(enc.encode(marker), o);
  Deno.writeFileSync(`${src}/contents.bin`, body);
  Deno.writeTextFileSync(`${src}/name-${marker}.txt`, "the name is the secret\n");
  Deno.symlinkSync(`../target-${marker}`, `${src}/link`);
  Deno.writeTextFileSync(`${src}/xattr.txt`, "the xattr is the secret\n");
  fs.setXattr(`${src}/xattr.txt`, "user.secret", enc.encode(marker));
}

/** Asserts that the extracted tree carries the marker everywhere markedTree put it. */
function assertMarkedTreeRestored(src: string, restored: string, marker: string): void {
  const fs = nativeFs()!;
  assert.ok(
    equalBytes(
      Deno.readFileSync(`${restored}/contents.bin`),
      Deno.readFileSync(`${src}/contents.bin`),
    ),
  );
  assert.equal(
    Deno.readTextFileSync(`${restored}/name-${marker}.txt`),
    "the name is the secret\n",
  );
  assert.equal(Deno.readLinkSync(`${restored}/link`), `../target-${marker}`);
  const x = fs.getXattr(`${restored}/xattr.txt`, "user.secret");
  assert.equal(x && new TextDecoder().decode(x), marker);
}

Deno.test("an encrypted repository holds no plaintext of contents, names, symlink targets or xattrs", async () => {
  await withWork(async (work) => {
    const marker = randomMarker();
    const src = `${work}/src`;
    const repo = `${work}/repo`;
    markedTree(src, marker);
    await ok(work, ["-R", repo, "init", ...KDF]);
    // No compression, so only the encryption can hide the repeated marker.
    await ok(work, ["-R", repo, "backup", "--archive", "plain", "--compression", "none", src]);
    const config = `${work}/vger.yaml`;
    Deno.writeTextFileSync(
      config,
      `repositories:\n  - path: ${JSON.stringify(repo)}\ncompression:\n  algorithm: none\n`,
    );
    Deno.writeTextFileSync(`${src}/later-${marker}.txt`, marker.repeat(100));
    await ok(work, ["--config", config, "backup", "--archive", "config", src]);

    // The backup really stored the marked entries: listing (decrypted) shows them ...
    const listed = await ok(work, ["-R", repo, "list", "--archive", "config"]);
    assert.match(listed.stdout, new RegExp(`name-${marker}\\.txt`));
    assert.match(listed.stdout, new RegExp(`-> \\.\\./target-${marker}`));
    // ... and extract gives them back.
    await ok(work, ["-R", repo, "extract", "--archive", "plain", "--dest", `${work}/out`]);
    assertMarkedTreeRestored(src, `${work}/out${src}`, marker);

    // But no byte of the repository shows the marker, nor any 24-character piece of it.
    assert.ok(filesUnder(repo).some((f) => f.startsWith("packs/")));
    for (const needle of [marker, marker.slice(0, 24), marker.slice(40)]) {
      assert.deepEqual(filesContaining(repo, needle), [], `found "${needle}" in the repository`);
    }
  });
});

Deno.test("an unencrypted repository shows the marker (the scan works) and still round-trips", async () => {
  await withWork(async (work) => {
    const marker = randomMarker();
    const src = `${work}/src`;
    const repo = `${work}/repo`;
    markedTree(src, marker);
    await ok(work, ["-R", repo, "init", "--encryption", "none"]);
    await ok(work, ["-R", repo, "backup", "--archive", "a", "--compression", "none", src]);
    const found = filesContaining(repo, marker);
    assert.ok(found.length > 0 && found.every((f) => f.startsWith("packs/")), `found in ${found}`);
    await ok(work, ["-R", repo, "extract", "--archive", "a", "--dest", `${work}/out`]);
    assertMarkedTreeRestored(src, `${work}/out${src}`, marker);

    // Without encryption the envelope checksum still catches a flipped bit in the contents
    // (in the data pack: the item blobs, which hold the marked names, have packs of their own).
    const contents = Buffer.from(marker.repeat(3));
    const pack = `${repo}/${
      found.find((f) => Buffer.from(Deno.readFileSync(`${repo}/${f}`)).indexOf(contents) > 0)
    }`;
    const bytes = Deno.readFileSync(pack);
    const at = Buffer.from(bytes).indexOf(contents);
    assert.ok(at > 0);
    flipBit(pack, at + 64);
    const r = await vger(work, ["-R", repo, "extract", "--archive", "a", "--dest", `${work}/out2`]);
    assertNoCrash(r);
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /contents\.bin.*checksum mismatch/);
  });
});

/** What the corruption tests share: a repository with two archives and where things are. */
interface Base {
  repo: string;
  src: string;
  /** Hex ids of the archives "first" and "second". */
  archives: Record<string, string>;
  /** The first chunk of victim.bin: its id and where it lives. */
  victim: ChunkAt;
  /** The only chunks of twin-a.bin and twin-b.bin (same length, one pack). */
  twins: [ChunkAt, ChunkAt];
}

/** A chunk's id and the place of its sealed object. */
interface ChunkAt {
  chunk: string;
  pack: string;
  offset: number;
  length: number;
}

async function makeBase(work: string): Promise<Base> {
  const repo = `${work}/base`;
  const src = `${work}/src`;
  Deno.mkdirSync(src);
  Deno.writeFileSync(`${src}/victim.bin`, randomBytes(3 * MiB));
  Deno.writeFileSync(`${src}/bystander.bin`, randomBytes(MiB + 17));
  Deno.writeTextFileSync(`${src}/note.txt`, "a note\n".repeat(500));
  // Random and below the chunker's minimum: one stored object each, of equal length.
  Deno.writeFileSync(`${src}/twin-a.bin`, randomBytes(100 * 1024));
  Deno.writeFileSync(`${src}/twin-b.bin`, randomBytes(100 * 1024));
  await ok(work, ["-R", repo, "init", ...KDF]);
  await ok(work, ["-R", repo, "backup", "--archive", "first", src]);
  Deno.writeFileSync(`${src}/extra.bin`, randomBytes(MiB));
  await ok(work, ["-R", repo, "backup", "--archive", "second", src]);
  Deno.removeSync(`${src}/extra.bin`);
  const list = JSON.parse((await ok(work, ["-R", repo, "--json", "list"])).stdout);
  const archives: Record<string, string> = {};
  for (const a of list.archives) archives[a.name] = a.id;

  const backend = new LocalBackend(repo);
  try {
    const r = await Repository.open(backend, { passphrase: PASS });
    const index = await r.readIndex();
    const items = new Map<string, Item>();
    for await (const i of listItemsCommand(backend, { passphrase: PASS, archive: "first" })) {
      items.set(i.path.slice(i.path.lastIndexOf("/") + 1), i);
    }
    const firstChunk = (name: string): ChunkAt => {
      const id = items.get(name)!.chunks![0];
      const loc = index.get(id)!;
      return { chunk: toHex(id), pack: toHex(loc.pack), offset: loc.offset, length: loc.length };
    };
    assert.equal(items.get("twin-a.bin")!.chunks!.length, 1);
    return {
      repo,
      src,
      archives,
      victim: firstChunk("victim.bin"),
      twins: [firstChunk("twin-a.bin"), firstChunk("twin-b.bin")],
    };
  } finally {
    await backend.close();
  }
}

Deno.test("damaged, swapped and wrongly unlocked repositories fail cleanly and name the object", async (t) => {
  await withWork(async (work) => {
    const base = await makeBase(work);
    let n = 0;
    /** A fresh copy of the base repository for one case. */
    const fresh = () => {
      const repo = `${work}/case-${n++}`;
      copyFiles(base.repo, repo);
      return repo;
    };
    const extract = (repo: string, archive: string) =>
      vger(work, ["-R", repo, "extract", "--archive", archive, "--dest", `${repo}-out`]);

    await t.step(
      "a flipped bit in a pack's data record fails only the file that uses it",
      async () => {
        const repo = fresh();
        const v = base.victim;
        flipBit(`${repo}/${packKey(fromHexId(v.pack))}`, v.offset + (v.length >> 1));
        const r = await extract(repo, "first");
        assertNoCrash(r);
        assert.equal(r.code, 3, r.stderr);
        assert.match(r.stderr, /victim\.bin/);
        assert.ok(r.stderr.includes(`Chunk ${v.chunk}`), r.stderr);
        assert.ok(r.stderr.includes(`pack ${v.pack}`), r.stderr);
        assert.match(r.stderr, /corrupt/);
        const out = `${repo}-out${base.src}`;
        for (const f of ["bystander.bin", "note.txt"]) {
          assert.ok(
            equalBytes(Deno.readFileSync(`${out}/${f}`), Deno.readFileSync(`${base.src}/${f}`)),
            f,
          );
        }
        let victim: Uint8Array | null = null;
        try {
          victim = Deno.readFileSync(`${out}/victim.bin`);
        } catch {
          // absent is fine
        }
        assert.ok(!victim || !equalBytes(victim, Deno.readFileSync(`${base.src}/victim.bin`)));
      },
    );

    await t.step(
      "a file whose chunk is corrupt is not left behind truncated under its name",
      async () => {
        const repo = fresh();
        const v = base.victim;
        flipBit(`${repo}/${packKey(fromHexId(v.pack))}`, v.offset + (v.length >> 1));
        const r = await extract(repo, "first");
        assert.equal(r.code, 3, r.stderr);
        const out = `${repo}-out${base.src}`;
        const left = (() => {
          try {
            return Deno.lstatSync(`${out}/victim.bin`).size;
          } catch {
            return null;
          }
        })();
        // A partial file at the real path looks restored, and a later extract without
        // --overwrite would skip it as "exists".
        assert.equal(left, null, `victim.bin was left with ${left} of ${3 * MiB} bytes`);
      },
    );

    await t.step("two chunk records swapped inside a pack fail authentication", async () => {
      const repo = fresh();
      const [a, b] = base.twins;
      assert.equal(a.pack, b.pack);
      assert.equal(a.length, b.length);
      const path = `${repo}/${packKey(fromHexId(a.pack))}`;
      const bytes = Deno.readFileSync(path);
      const objA = bytes.slice(a.offset, a.offset + a.length);
      bytes.copyWithin(a.offset, b.offset, b.offset + b.length);
      bytes.set(objA, b.offset);
      Deno.writeFileSync(path, bytes);
      const r = await extract(repo, "first");
      assertNoCrash(r);
      assert.equal(r.code, 3, r.stderr);
      for (const c of base.twins) {
        assert.match(
          r.stderr,
          new RegExp(`Chunk ${c.chunk} in pack ${c.pack} is corrupt: authentication failed`),
        );
      }
      assert.match(r.stderr, /twin-a\.bin/);
      assert.match(r.stderr, /twin-b\.bin/);
      const out = `${repo}-out${base.src}`;
      for (const f of ["victim.bin", "bystander.bin", "note.txt"]) {
        assert.ok(
          equalBytes(Deno.readFileSync(`${out}/${f}`), Deno.readFileSync(`${base.src}/${f}`)),
          f,
        );
      }
    });

    await t.step(
      "a flipped bit in the index is named, and the index is rebuilt from the pack headers",
      async () => {
        const repo = fresh();
        flipBit(`${repo}/index`, Deno.statSync(`${repo}/index`).size >> 1);
        // check reports it; list and extract work through an index rebuilt in memory
        const check = await vger(work, ["-R", repo, "check"]);
        assertNoCrash(check);
        assert.equal(check.code, 1, check.stderr);
        assert.match(check.stdout, /Index is corrupt/);
        for (
          const args of [
            ["list", "--archive", "first"],
            ["extract", "--archive", "first", "--dest", `${repo}-out`],
          ]
        ) {
          const r = await vger(work, ["-R", repo, ...args]);
          assertNoCrash(r);
          assert.equal(r.code, 0, `${args[0]}: ${r.stderr}`);
          assert.match(r.stderr, /Index is corrupt.*rebuilt/, args[0]);
        }
        // backup writes the rebuilt index, after which check is clean
        const b = await vger(work, ["-R", repo, "backup", "--archive", "third", base.src]);
        assertNoCrash(b);
        assert.equal(b.code, 0, b.stderr);
        assert.match(b.stderr, /Index is corrupt.*rebuilt/);
        const after = await vger(work, ["-R", repo, "check"]);
        assert.equal(after.code, 0, after.stdout + after.stderr);
      },
    );

    await t.step(
      "a flipped bit in an archive object fails list --archive, naming the archive",
      async () => {
        const repo = fresh();
        const hex = base.archives.first;
        flipBit(`${repo}/archives/${hex}`, 40);
        const r = await vger(work, ["-R", repo, "list", "--archive", "first"]);
        assertNoCrash(r);
        assert.equal(r.code, 1, r.stderr);
        assert.ok(r.stderr.includes(`archives/${hex}`), r.stderr);
        assert.match(r.stderr, /corrupt/);
        const x = await extract(repo, "first");
        assertNoCrash(x);
        assert.equal(x.code, 1);
        assert.ok(x.stderr.includes(`archives/${hex}`), x.stderr);
        await ok(work, ["-R", repo, "list", "--archive", "second"]); // the other archive is fine
      },
    );

    await t.step(
      "a flipped bit in keys/repokey is reported as corrupt, not as a wrong passphrase",
      async () => {
        for (const at of [0, 40, -1]) {
          const repo = fresh();
          flipBit(`${repo}/keys/repokey`, at, 0x01);
          const r = await vger(work, ["-R", repo, "list"]);
          assertNoCrash(r);
          assert.equal(r.code, 1, r.stderr);
          assert.match(r.stderr, /keys\/repokey/);
          assert.match(r.stderr, /corrupt/);
          assert.doesNotMatch(r.stderr, /wrong passphrase/i);
        }
      },
    );

    await t.step("a flipped bit in the manifest fails list, naming the manifest", async () => {
      const repo = fresh();
      flipBit(`${repo}/manifest`, -5);
      const r = await vger(work, ["-R", repo, "list"]);
      assertNoCrash(r);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /Manifest is corrupt/);
    });

    await t.step("a flipped bit in the config fails, naming the config", async () => {
      const text = Deno.readTextFileSync(`${base.repo}/config`);
      for (
        const at of [
          0,
          text.indexOf('"id"') + 10,
          text.indexOf("min_size") + 11,
          text.indexOf('"mac"') + 9,
        ]
      ) {
        const repo = fresh();
        flipBit(`${repo}/config`, at, 0x01);
        const r = await vger(work, ["-R", repo, "list"]);
        assertNoCrash(r);
        assert.equal(r.code, 1, `byte ${at}: ${r.stderr}`);
        assert.match(r.stderr, /config is corrupt/, `byte ${at}`);
      }
    });

    await t.step("a wrong passphrase is one line saying so, exit code 1", async () => {
      const r = await vger(work, ["-R", base.repo, "list"], "not-the-passphrase");
      assertNoCrash(r);
      assert.equal(r.code, 1);
      assert.equal(r.stderr.trimEnd().split("\n").length, 1, r.stderr);
      assert.match(r.stderr, /Wrong passphrase/);
      assert.equal(r.stdout, "");
    });

    await t.step("an archive object copied over another fails authentication", async () => {
      const repo = fresh();
      const { first, second } = base.archives;
      Deno.copyFileSync(`${repo}/archives/${first}`, `${repo}/archives/${second}`);
      const r = await vger(work, ["-R", repo, "list", "--archive", "second"]);
      assertNoCrash(r);
      assert.equal(r.code, 1, r.stderr);
      assert.ok(r.stderr.includes(`archives/${second}`), r.stderr);
      assert.match(r.stderr, /authentication failed/);
      await ok(work, ["-R", repo, "list", "--archive", "first"]);
    });

    await t.step(
      "two packs swapped under each other's names fail rather than being read",
      async () => {
        const repo = fresh();
        const packs = filesUnder(repo).filter((f) => f.startsWith("packs/"));
        // per backup one data pack and one of item blobs (metadata never shares a data pack)
        assert.equal(packs.length, 4, `expected two packs per backup, got ${packs}`);
        const size = (p: string) => Deno.statSync(`${repo}/${p}`).size;
        const [a, b] = packs.sort((x, y) => size(y) - size(x)).slice(0, 2).map((p) =>
          `${repo}/${p}`
        );
        Deno.renameSync(a, `${a}.swap`);
        Deno.renameSync(b, a);
        Deno.renameSync(`${a}.swap`, b);
        for (const archive of ["first", "second"]) {
          const r = await extract(repo, archive);
          assertNoCrash(r);
          assert.notEqual(r.code, 0, `${archive} restored from swapped packs`);
          assert.match(r.stderr, /corrupt|cannot be read/, r.stderr);
          // Whatever was restored is the original data, never the other pack's bytes.
          for (const f of ["victim.bin", "bystander.bin", "note.txt", "twin-a.bin", "twin-b.bin"]) {
            let got: Uint8Array;
            try {
              got = Deno.readFileSync(`${repo}-out${base.src}/${f}`);
            } catch {
              continue;
            }
            assert.ok(equalBytes(got, Deno.readFileSync(`${base.src}/${f}`)), `${archive}: ${f}`);
          }
          Deno.removeSync(`${repo}-out`, { recursive: true });
        }
      },
    );
  });
});

function fromHexId(hex: string): Uint8Array {
  return Uint8Array.from(hex.match(/../g)!.map((h) => parseInt(h, 16)));
}

Deno.test("every single-bit flip in config, key file, manifest, index and archive is caught and named", async () => {
  await withWork(async (work) => {
    const repo = `${work}/repo`;
    const src = `${work}/src`;
    Deno.mkdirSync(src);
    Deno.writeTextFileSync(`${src}/a.txt`, "a\n");
    await ok(work, ["-R", repo, "init", ...KDF]);
    await ok(work, ["-R", repo, "backup", "--archive", "only", src]);
    const [archive] = filesUnder(repo).filter((f) => f.startsWith("archives/"));

    /** Flips bit (i % 8) of byte i of key's file, one at a time, and expects `read` to fail. */
    const everyFlip = async (key: string, name: RegExp, read: () => Promise<unknown>) => {
      const path = `${repo}/${key}`;
      const good = Deno.readFileSync(path);
      try {
        for (let i = 0; i < good.length; i++) {
          const bad = good.slice();
          bad[i] ^= 1 << (i % 8);
          Deno.writeFileSync(path, bad);
          await assert.rejects(read, (err: unknown) => {
            assert.ok(err instanceof IntegrityError, `${key} byte ${i}: ${err}`);
            assert.match(err.message, name, `${key} byte ${i}`);
            return true;
          });
        }
      } finally {
        Deno.writeFileSync(path, good);
      }
    };
    const backend = new LocalBackend(repo);
    try {
      const open = () => Repository.open(backend, { passphrase: PASS });
      await everyFlip("config", /^Repository config is corrupt/, open);
      await everyFlip("keys/repokey", /^Key file keys\/repokey is corrupt/, open);
      const r = await open();
      await everyFlip("manifest", /^Manifest is corrupt/, () => r.readManifest());
      await everyFlip("index", /^Index is corrupt/, () => r.readIndex());
      const entry = (await r.readManifest()).archives[0];
      await everyFlip(
        archive,
        new RegExp(`\\(${archive}\\) is corrupt`),
        () => r.readArchive(entry),
      );
    } finally {
      await backend.close();
    }
  });
});
