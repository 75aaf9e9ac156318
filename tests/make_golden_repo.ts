/**
 * Writes the golden repository `tests/testdata/repo-v1` and its description
 * `tests/testdata/repo-v1.expected.json`, which tests/golden_repo_test.ts reads. The repository
 * pins the on-disk format: every later version of vger must still list and extract it.
 *
 * The source tree is deterministic (contents from a seeded generator, fixed modes, owners and
 * nanosecond mtimes, one extended attribute) and lives at the fixed path `/tmp/vger-golden-tree`,
 * so the stored paths do not depend on where the script runs. The repository itself is not
 * byte-for-byte reproducible (keys, ids and nonces are random); run this only when a new format
 * version needs a new golden repository, never to "fix" a failing golden test.
 *
 * Archives: "golden-1" (lz4), then "golden-2" (zstd) after a small change. Small chunker
 * parameters (4 / 16 / 64 KiB) make files span several chunks and the two archives share most.
 *
 * Run (as root, so that the pinned owner 1234:5678 can be set):
 *   deno run -A tests/make_golden_repo.ts
 */

import { nativeFs } from "../lib/fs_native.ts";

const HERE = new URL(".", import.meta.url).pathname;
const CLI = new URL("../cli.ts", import.meta.url).pathname;
/** Where the golden repository is written. */
export const GOLDEN_REPO = `${HERE}testdata/repo-v1`;
/** Where its description is written. */
export const GOLDEN_EXPECTED = `${HERE}testdata/repo-v1.expected.json`;
/** The passphrase of the golden repository. */
export const GOLDEN_PASSPHRASE = "golden-test-passphrase";
/** The fixed source path (stored in the archives as `tmp/vger-golden-tree/...`). */
export const GOLDEN_SOURCE = "/tmp/vger-golden-tree";

/** One archived entry as repo-v1.expected.json describes it. */
export interface GoldenEntry {
  /** Stored path (absolute without the leading "/"). */
  path: string;
  /** "file", "dir" or "symlink". */
  type: "file" | "dir" | "symlink";
  /** Permission bits (st_mode & 0o7777). */
  mode: number;
  /** Owner uid. */
  uid: number;
  /** Owner gid. */
  gid: number;
  /** Size in bytes (0 for directories and symlinks, as the archive records them). */
  size: number;
  /** Hex SHA-256 of the contents (files), else null. */
  sha256: string | null;
  /** Link target (symlinks), else null. */
  target: string | null;
  /** Modification time, ns since the epoch, as a decimal string. */
  mtime_ns: string;
  /** Extended attributes, name -> UTF-8 value. */
  xattrs: Record<string, string>;
}

/** The whole description file. */
export interface GoldenExpected {
  /** Repository format version the golden repository was written with. */
  format_version: number;
  /** The passphrase. */
  passphrase: string;
  /** The backed-up path. */
  source: string;
  /** Chunker parameters the repository was created with. */
  chunker: { min_size: number; avg_size: number; max_size: number };
  /** The archives, oldest first, each with its entries in archive order. */
  archives: { name: string; compression: string; items: GoldenEntry[] }[];
}

const CHUNKER = { min_size: 4096, avg_size: 16384, max_size: 65536 };
const BASE_NS = 1_600_000_000_123_456_789n;
const PINNED_UID = 1234;
const PINNED_GID = 5678;

/** Deterministic bytes (xorshift32), so the tree is the same on every run. */
function pseudoRandom(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

function notesText(): string {
  const lines: string[] = [];
  for (let i = 0; i < 1500; i++) {
    lines.push(
      `${i.toString().padStart(4, "0")} The quick brown fox jumps over the lazy dog ${
        i * 7919 % 1000
      }`,
    );
  }
  return lines.join("\n") + "\n";
}

const enc = new TextEncoder();

/** Builds (or rebuilds) the version-1 tree, then applies the change for golden-2 when `v2`. */
function writeTree(root: string, v2: boolean): void {
  const fs = nativeFs();
  if (!fs) throw new Error("make_golden_repo needs --allow-ffi (run with -A) on Linux");
  const file = (rel: string, data: Uint8Array | string, mode: number) => {
    const p = `${root}/${rel}`;
    Deno.writeFileSync(p, typeof data === "string" ? enc.encode(data) : data);
    Deno.chmodSync(p, mode);
  };
  if (!v2) {
    Deno.mkdirSync(`${root}/docs/deep`, { recursive: true });
    Deno.mkdirSync(`${root}/bin`);
    file("empty.txt", "", 0o644);
    file("hello.txt", "Hello, golden repository\n", 0o644);
    file("docs/notes.md", notesText(), 0o640);
    file("docs/deep/random.bin", pseudoRandom(160 * 1024, 0x5eed), 0o600);
    file("bin/run.sh", "#!/bin/sh\necho golden\n", 0o755);
    file("\u00fcn\u00efc\u00f8d\u00e9 name.txt", "caf\u00e9 \u2603\n", 0o604);
    Deno.symlinkSync("hello.txt", `${root}/link`);
    Deno.symlinkSync("/nonexistent/golden/target", `${root}/docs/dangling`);
    fs.setXattr(`${root}/hello.txt`, "user.golden", enc.encode("pinned xattr value"));
    if (Deno.uid() === 0) fs.lchown(`${root}/docs/notes.md`, PINNED_UID, PINNED_GID);
  } else {
    file("hello.txt", "Hello, golden repository, second version\n", 0o644);
    const random = pseudoRandom(160 * 1024, 0x5eed);
    random.set(enc.encode("CHANGED IN THE MIDDLE"), 80 * 1024);
    file("docs/deep/random.bin", random, 0o600);
    file("docs/added.txt", "added for golden-2\n", 0o444);
    Deno.removeSync(`${root}/bin/run.sh`);
  }
  Deno.chmodSync(`${root}/docs`, 0o750);
  Deno.chmodSync(`${root}/docs/deep`, 0o700);
  Deno.chmodSync(`${root}/bin`, 0o1755);
  Deno.chmodSync(root, 0o755);
  // Times last, deepest first, so that setting them does not change a directory's mtime again.
  const entries = describeTree(root, "").map((e) => e.path);
  const depth = (rel: string) => (rel === "" ? 0 : rel.split("/").length);
  entries.sort((a, b) => depth(b) - depth(a) || (a < b ? -1 : 1));
  entries.forEach((rel, i) => {
    const t = BASE_NS + BigInt(i) * 1_000_000_007n + (v2 ? 86_400_000_000_000n : 0n);
    fs.setTimes(rel === "" ? root : `${root}/${rel}`, t - 1_000n, t);
  });
}

async function sha256Hex(data: Uint8Array): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", data as BufferSource));
  return Array.from(d, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Entries under root in archive order (pre-order, names sorted); paths relative to root. */
function describeTree(root: string, rel: string): { path: string; isDir: boolean }[] {
  const here = rel === "" ? root : `${root}/${rel}`;
  const info = Deno.lstatSync(here);
  const out = [{ path: rel, isDir: info.isDirectory }];
  if (!info.isDirectory) return out;
  const names = [...Deno.readDirSync(here)].map((e) => e.name);
  names.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  for (const n of names) out.push(...describeTree(root, rel === "" ? n : `${rel}/${n}`));
  return out;
}

/** Describes the tree at `root` as GoldenEntry rows, with stored paths under `storedRoot`. */
export async function describeEntries(root: string, storedRoot: string): Promise<GoldenEntry[]> {
  const fs = nativeFs();
  if (!fs) throw new Error("describeEntries needs --allow-ffi on Linux");
  const rows: GoldenEntry[] = [];
  for (const { path: rel } of describeTree(root, "")) {
    const p = rel === "" ? root : `${root}/${rel}`;
    const st = fs.lstat(p);
    const kind = (st.mode & 0o170000) === 0o040000
      ? "dir"
      : (st.mode & 0o170000) === 0o120000
      ? "symlink"
      : "file";
    const xattrs: Record<string, string> = {};
    for (const name of fs.listXattrs(p).sort()) {
      xattrs[name] = new TextDecoder().decode(fs.getXattr(p, name) ?? new Uint8Array());
    }
    rows.push({
      path: rel === "" ? storedRoot : `${storedRoot}/${rel}`,
      type: kind,
      mode: st.mode & 0o7777,
      uid: st.uid,
      gid: st.gid,
      size: kind === "file" ? st.size : 0,
      sha256: kind === "file" ? await sha256Hex(Deno.readFileSync(p)) : null,
      target: kind === "symlink" ? Deno.readLinkSync(p) : null,
      mtime_ns: st.mtimeNs.toString(),
      xattrs,
    });
  }
  return rows;
}

function removeEmptyDirs(dir: string): void {
  for (const e of Deno.readDirSync(dir)) {
    if (!e.isDirectory) continue;
    const sub = `${dir}/${e.name}`;
    removeEmptyDirs(sub);
    if ([...Deno.readDirSync(sub)].length === 0) Deno.removeSync(sub);
  }
}

async function vger(args: string[], cwd: string): Promise<void> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, ...args],
    cwd,
    env: { VGER_PASSPHRASE: GOLDEN_PASSPHRASE, XDG_CONFIG_HOME: cwd },
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (out.code !== 0) throw new Error(`vger ${args.join(" ")} exited with ${out.code}`);
}

/** Writes the golden repository and its description. */
export async function makeGoldenRepo(): Promise<void> {
  const work = await Deno.makeTempDir({ prefix: "vger-make-golden-" });
  try {
    await Deno.remove(GOLDEN_SOURCE, { recursive: true }).catch(() => {});
    await Deno.remove(GOLDEN_REPO, { recursive: true }).catch(() => {});
    Deno.mkdirSync(GOLDEN_SOURCE);
    const config = `${work}/vger.yaml`;
    await Deno.writeTextFile(
      config,
      `repositories:\n  - path: ${JSON.stringify(GOLDEN_REPO)}\nchunker:\n` +
        `  min_size: ${CHUNKER.min_size}\n  avg_size: ${CHUNKER.avg_size}\n` +
        `  max_size: ${CHUNKER.max_size}\n`,
    );
    const stored = GOLDEN_SOURCE.slice(1);
    const common = ["--config", config, "-R", GOLDEN_REPO];
    await vger([
      ...common,
      "init",
      "--kdf-memory",
      "1024",
      "--kdf-iterations",
      "1",
      "--kdf-parallelism",
      "1",
    ], work);
    writeTree(GOLDEN_SOURCE, false);
    const first = await describeEntries(GOLDEN_SOURCE, stored);
    await vger([
      ...common,
      "backup",
      "--archive",
      "golden-1",
      "--compression",
      "lz4",
      GOLDEN_SOURCE,
    ], work);
    writeTree(GOLDEN_SOURCE, true);
    const second = await describeEntries(GOLDEN_SOURCE, stored);
    await vger([
      ...common,
      "backup",
      "--archive",
      "golden-2",
      "--compression",
      "zstd",
      GOLDEN_SOURCE,
    ], work);
    removeEmptyDirs(GOLDEN_REPO); // git keeps no empty directories (locks/); match a checkout
    const repoConfig = JSON.parse(await Deno.readTextFile(`${GOLDEN_REPO}/config`));
    const expected: GoldenExpected = {
      format_version: repoConfig.vger_repository,
      passphrase: GOLDEN_PASSPHRASE,
      source: GOLDEN_SOURCE,
      chunker: CHUNKER,
      archives: [
        { name: "golden-1", compression: "lz4", items: first },
        { name: "golden-2", compression: "zstd", items: second },
      ],
    };
    await Deno.writeTextFile(GOLDEN_EXPECTED, JSON.stringify(expected, null, 2) + "\n");
  } finally {
    await Deno.remove(work, { recursive: true });
    await Deno.remove(GOLDEN_SOURCE, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) {
  await makeGoldenRepo();
  console.log(`Wrote ${GOLDEN_REPO} and ${GOLDEN_EXPECTED}`);
}
