/**
 * Deduplication through the real CLI: what a backup adds to the repository, measured as the
 * bytes of every file under it before and after, and what the `--json` summary reports.
 */

import assert from "node:assert/strict";
import { dirname } from "node:path";

const CLI = new URL("../cli.ts", import.meta.url).pathname;
const MiB = 1 << 20;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** A temp dir with an initialized repository at `<dir>/repo`; removed after fn. */
async function withRepo(
  fn: (work: string, vger: (args: string[]) => Promise<Run>) => Promise<void>,
) {
  const work = await Deno.makeTempDir({ prefix: "vger-dedup-test-" });
  const vger = async (args: string[]): Promise<Run> => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", CLI, "-R", `${work}/repo`, ...args],
      cwd: work,
      env: { VGER_PASSPHRASE: "dedup-test", XDG_CONFIG_HOME: work },
      stdin: "null",
    }).output();
    const dec = new TextDecoder();
    return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
  };
  try {
    const init = await vger([
      "init",
      "--kdf-memory",
      "1024",
      "--kdf-iterations",
      "1",
      "--kdf-parallelism",
      "1",
    ]);
    assert.equal(init.code, 0, init.stderr);
    await fn(work, vger);
  } finally {
    await Deno.remove(work, { recursive: true });
  }
}

/** Sum of the sizes of every file under dir. */
function bytesUnder(dir: string): number {
  let n = 0;
  for (const e of Deno.readDirSync(dir)) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory) n += bytesUnder(p);
    else n += Deno.lstatSync(p).size;
  }
  return n;
}

function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) {
    crypto.getRandomValues(out.subarray(i, Math.min(n, i + 65536)));
  }
  return out;
}

/** Text that compresses well but is not one repeated block. */
function compressible(n: number): Uint8Array {
  const out = new Uint8Array(n);
  const enc = new TextEncoder();
  let o = 0;
  for (let i = 0; o < n; i++) {
    const line = enc.encode(`line ${i} of a log file, status=${i % 17 === 0 ? "ERROR" : "ok"}\n`);
    out.set(line.subarray(0, Math.min(line.length, n - o)), o);
    o += line.length;
  }
  return out;
}

interface Summary {
  files: number;
  original_size: number;
  compressed_size: number;
  deduplicated_size: number;
}

/** Runs a --json backup; returns its summary and the repository growth in bytes. */
async function backup(
  work: string,
  vger: (args: string[]) => Promise<Run>,
  name: string,
  src: string,
): Promise<{ summary: Summary; added: number }> {
  const before = bytesUnder(`${work}/repo`);
  const r = await vger(["--json", "backup", "--archive", name, src]);
  assert.equal(r.code, 0, r.stderr);
  return { summary: JSON.parse(r.stdout), added: bytesUnder(`${work}/repo`) - before };
}

function equalBytes(x: Uint8Array, y: Uint8Array): boolean {
  if (x.length !== y.length) return false;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}

async function sameBytes(a: string, b: string): Promise<boolean> {
  return equalBytes(await Deno.readFile(a), await Deno.readFile(b));
}

Deno.test("a second backup of an unchanged 40 MiB tree adds under 1% and its summary agrees", async () => {
  await withRepo(async (work, vger) => {
    const src = `${work}/src`;
    Deno.mkdirSync(`${src}/sub`, { recursive: true });
    Deno.writeFileSync(`${src}/random-a.bin`, randomBytes(20 * MiB));
    Deno.writeFileSync(`${src}/sub/random-b.bin`, randomBytes(8 * MiB + 12345));
    Deno.writeFileSync(`${src}/sub/log.txt`, compressible(12 * MiB));
    Deno.writeTextFileSync(`${src}/small.txt`, "small\n");
    const tree = bytesUnder(src);

    const first = await backup(work, vger, "first", src);
    assert.equal(first.summary.original_size, tree);
    // New data: the summary counts the sealed chunks, the repository also holds pack headers,
    // the index, the archive and the manifest (a few KiB).
    assert.ok(first.summary.deduplicated_size > 28 * MiB, JSON.stringify(first.summary));
    assert.ok(first.summary.deduplicated_size < tree, "the log file should have compressed");
    assert.ok(first.added >= first.summary.deduplicated_size);
    assert.ok(
      first.added - first.summary.deduplicated_size < 256 * 1024,
      `repository grew ${first.added}, summary says ${first.summary.deduplicated_size}`,
    );

    const second = await backup(work, vger, "second", src);
    assert.equal(second.summary.original_size, tree);
    assert.ok(second.added > 0, "the archive and manifest are written");
    assert.ok(second.added < tree / 100, `second backup added ${second.added} bytes`);
    assert.ok(second.summary.deduplicated_size <= second.added);
    assert.ok(second.summary.deduplicated_size < tree / 100);
  });
});

Deno.test("a 1-byte insertion in a 64 MiB file re-stores only the chunks around it", async () => {
  await withRepo(async (work, vger) => {
    const src = `${work}/src`;
    Deno.mkdirSync(src);
    const original = randomBytes(64 * MiB);
    Deno.writeFileSync(`${src}/big.bin`, original);
    const first = await backup(work, vger, "before", src);
    assert.ok(first.summary.deduplicated_size >= 64 * MiB);

    const mid = 32 * MiB + 777;
    const changed = new Uint8Array(original.length + 1);
    changed.set(original.subarray(0, mid));
    changed[mid] = original[mid] ^ 0x5a;
    changed.set(original.subarray(mid), mid + 1);
    Deno.writeFileSync(`${src}/big.bin`, changed);

    const second = await backup(work, vger, "after", src);
    assert.equal(second.summary.original_size, changed.length);
    assert.ok(second.added > 0);
    // At most the chunk holding the insertion and its neighbours (each at most 8 MiB).
    assert.ok(second.added < 12 * MiB, `the insertion re-stored ${second.added} bytes`);
    assert.ok(second.summary.deduplicated_size > 0);
    assert.ok(second.summary.deduplicated_size <= second.added);

    for (const [name, want] of [["before", original], ["after", changed]] as const) {
      const dest = `${work}/out-${name}`;
      const r = await vger(["extract", "--archive", name, "--dest", dest]);
      assert.equal(r.code, 0, r.stderr);
      const got = await Deno.readFile(`${dest}${src}/big.bin`);
      assert.equal(got.length, want.length);
      assert.ok(equalBytes(got, want), `archive ${name} restored different bytes`);
    }
  });
});

// copies larger than a read block: most chunks leave with their block before the file ends, so
// the codec workers hash them; smaller ones are hashed on the reading thread
for (
  const [title, name, size, copies] of [
    [
      "identical 40 MiB files, whose chunks the codec workers hash, are stored once and restore",
      "big-copies",
      40 * MiB + 777,
      ["one.bin", "two.bin"],
    ],
    [
      "identical files in one backup are stored once and all restore",
      "copies",
      6 * MiB + 4321,
      ["one.bin", "a/two.bin", "a/b/three.bin"],
    ],
  ] as const
) {
  Deno.test(title, async () => {
    await withRepo(async (work, vger) => {
      const src = `${work}/src`;
      const data = randomBytes(size);
      for (const c of copies) {
        Deno.mkdirSync(dirname(`${src}/${c}`), { recursive: true });
        Deno.writeFileSync(`${src}/${c}`, data);
      }

      const r = await backup(work, vger, name, src);
      assert.equal(r.summary.original_size, copies.length * data.length);
      assert.ok(r.summary.deduplicated_size >= data.length);
      assert.ok(
        r.summary.deduplicated_size < data.length + 64 * 1024,
        `stored ${r.summary.deduplicated_size} bytes for ${copies.length} copies of ${data.length}`,
      );
      assert.ok(r.added < data.length + 256 * 1024, `repository grew ${r.added}`);

      const dest = `${work}/out`;
      const x = await vger(["extract", "--archive", name, "--dest", dest]);
      assert.equal(x.code, 0, x.stderr);
      for (const c of copies) assert.ok(await sameBytes(`${src}/${c}`, `${dest}${src}/${c}`), c);
    });
  });
}
