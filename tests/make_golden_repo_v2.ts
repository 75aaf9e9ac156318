/**
 * Writes the second golden repository `tests/testdata/repo-v2` and its description
 * `repo-v2.expected.json`, which tests/golden_repo_v2_test.ts reads: the item types and fields
 * of issue 13 (FIFO, character and block devices, hardlink groups across directories, POSIX
 * ACLs, user, security and trusted xattrs, the archive's command line). Like repo-v1, it pins
 * the format: every later version must still list and extract it. Not byte-for-byte
 * reproducible (keys, ids and nonces are random): run it only for a new golden repository.
 *
 * Run as root (devices, trusted xattrs, owners): deno run -A tests/make_golden_repo_v2.ts
 */

import { nativeFs } from "../lib/fs_native.ts";
import { S_IFBLK, S_IFCHR, S_IFIFO } from "../lib/fs_meta.ts";

const HERE = new URL(".", import.meta.url).pathname;
const CLI = new URL("../cli.ts", import.meta.url).pathname;
/** Where the golden repository is written. */
export const GOLDEN_V2_REPO = `${HERE}testdata/repo-v2`;
/** Where its description is written. */
export const GOLDEN_V2_EXPECTED = `${HERE}testdata/repo-v2.expected.json`;
/** The passphrase. */
export const GOLDEN_V2_PASSPHRASE = "golden-v2-passphrase";
/** The fixed source path (stored as `tmp/vger-golden-tree-v2/...`). */
export const GOLDEN_V2_SOURCE = "/tmp/vger-golden-tree-v2";
/** The archive's name. */
export const GOLDEN_V2_ARCHIVE = "golden-types";

/** What the golden repository holds and how it restores. */
export interface GoldenV2Expected {
  /** The passphrase. */
  passphrase: string;
  /** The archive's name. */
  archive: string;
  /** Its recorded command line and sources. */
  command_line: string[];
  /** Its sources. */
  sources: string[];
  /** `list --archive --json` items, without the user and group names (machine-dependent). */
  items: Record<string, unknown>[];
  /** Path relative to the source -> how it restores (as root). */
  restored: Record<string, GoldenV2Entry>;
}

/** One restored entry. */
export interface GoldenV2Entry {
  /** "file", "dir", "symlink", "fifo", "char" or "block". */
  type: string;
  /** st_mode & 0o7777. */
  mode: number;
  /** Owner. */
  uid: number;
  /** Group. */
  gid: number;
  /** mtime, ns, decimal. */
  mtime_ns: string;
  /** "major,minor" for devices, else null. */
  device: string | null;
  /** Index of its inode among the listed paths (hardlinks share one), and its link count. */
  inode: [number, number];
  /** Extended attributes, name -> hex. */
  xattrs: Record<string, string>;
  /** File contents as text, else null. */
  text: string | null;
}

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
const TYPES: Record<number, string> = {
  0o100000: "file",
  0o040000: "dir",
  0o120000: "symlink",
  0o010000: "fifo",
  0o020000: "char",
  0o060000: "block",
};

/** Describes the tree under `root` (root itself excluded), by relative path, sorted. */
export function describeV2(root: string): Record<string, GoldenV2Entry> {
  const fs = nativeFs();
  if (!fs) throw new Error("describeV2 needs --allow-ffi on Linux");
  const paths: string[] = [];
  const walk = (rel: string) => {
    for (const e of [...Deno.readDirSync(`${root}/${rel}`)].map((e) => e.name).sort()) {
      const r = rel ? `${rel}/${e}` : e;
      paths.push(r);
      if (Deno.lstatSync(`${root}/${r}`).isDirectory) walk(r);
    }
  };
  walk("");
  const inodes = new Map<bigint, number>();
  const out: Record<string, GoldenV2Entry> = {};
  for (const rel of paths) {
    const p = `${root}/${rel}`;
    const st = fs.lstat(p);
    const type = TYPES[st.mode & 0o170000] ?? "other";
    if (!inodes.has(st.ino)) inodes.set(st.ino, inodes.size);
    const xattrs: Record<string, string> = {};
    for (const n of fs.listXattrs(p).sort()) xattrs[n] = hex(fs.getXattr(p, n) ?? new Uint8Array());
    out[rel] = {
      type,
      mode: st.mode & 0o7777,
      uid: st.uid,
      gid: st.gid,
      mtime_ns: st.mtimeNs.toString(),
      device: type === "char" || type === "block" ? `${st.rdevMajor},${st.rdevMinor}` : null,
      inode: [inodes.get(st.ino)!, type === "dir" ? 0 : st.nlink],
      xattrs,
      text: type === "file" ? Deno.readTextFileSync(p) : null,
    };
  }
  return out;
}

/** A POSIX ACL xattr value (version 2, {u16 tag, u16 perm, u32 id} entries). */
function acl(entries: [number, number, number][]): Uint8Array {
  const out = new Uint8Array(4 + 8 * entries.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, 2, true);
  entries.forEach(([t, p, id], i) => {
    v.setUint16(4 + 8 * i, t, true);
    v.setUint16(6 + 8 * i, p, true);
    v.setUint32(8 + 8 * i, id, true);
  });
  return out;
}

function writeTree(root: string): void {
  const fs = nativeFs()!;
  const enc = new TextEncoder();
  Deno.mkdirSync(`${root}/a`, { recursive: true });
  Deno.mkdirSync(`${root}/b/deep`, { recursive: true });
  Deno.writeTextFileSync(`${root}/a/shared.txt`, "one inode, three names\n");
  Deno.linkSync(`${root}/a/shared.txt`, `${root}/a/shared-again.txt`);
  Deno.linkSync(`${root}/a/shared.txt`, `${root}/b/deep/shared-elsewhere.txt`);
  Deno.writeTextFileSync(`${root}/b/pair.txt`, "one inode, two names\n");
  Deno.linkSync(`${root}/b/pair.txt`, `${root}/pair-link.txt`);
  Deno.writeTextFileSync(`${root}/plain.txt`, "no links, every xattr namespace\n");
  Deno.symlinkSync("a/shared.txt", `${root}/symlink`);
  fs.mknod(`${root}/fifo`, S_IFIFO | 0o640, 0, 0);
  fs.mknod(`${root}/b/null`, S_IFCHR | 0o666, 1, 3);
  fs.mknod(`${root}/b/loop200`, S_IFBLK | 0o660, 7, 200);
  Deno.linkSync(`${root}/fifo`, `${root}/a/fifo-link`);
  Deno.chmodSync(`${root}/a/shared.txt`, 0o664);
  Deno.chmodSync(`${root}/b/null`, 0o666);
  Deno.chmodSync(`${root}/b/loop200`, 0o620);
  Deno.chmodSync(`${root}/fifo`, 0o640);
  fs.lchown(`${root}/b/loop200`, 0, 6);
  fs.lchown(`${root}/fifo`, 1234, 5678);
  fs.setXattr(
    `${root}/a/shared.txt`,
    "system.posix_acl_access",
    acl([
      [1, 6, 0xffffffff],
      [2, 6, 1234],
      [4, 4, 0xffffffff],
      [0x10, 6, 0xffffffff],
      [0x20, 4, 0xffffffff],
    ]),
  );
  fs.setXattr(
    `${root}/b`,
    "system.posix_acl_default",
    acl([
      [1, 7, 0xffffffff],
      [4, 5, 0xffffffff],
      [8, 5, 5678],
      [0x10, 5, 0xffffffff],
      [0x20, 5, 0xffffffff],
    ]),
  );
  fs.setXattr(`${root}/plain.txt`, "user.golden", enc.encode("user value"));
  fs.setXattr(`${root}/plain.txt`, "security.golden", enc.encode("security value"));
  fs.setXattr(`${root}/plain.txt`, "trusted.golden", enc.encode("trusted value"));
  Deno.chmodSync(root, 0o755);
  // times last, deepest first
  const all = Object.keys(describeV2(root)).sort((x, y) =>
    y.split("/").length - x.split("/").length || (x < y ? -1 : 1)
  );
  all.forEach((rel, i) => {
    const t = 1_700_000_000_000_000_001n + BigInt(i) * 1_000_000_007n;
    fs.setTimes(`${root}/${rel}`, t, t);
  });
  fs.setTimes(root, 1_700_000_100_000_000_000n, 1_700_000_100_000_000_000n);
}

/** Runs vger in tests/testdata (so the recorded command line names `repo-v2`), no config. */
async function vger(args: string[], work: string): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, ...args],
    cwd: `${HERE}testdata`,
    env: { VGER_PASSPHRASE: GOLDEN_V2_PASSPHRASE, XDG_CONFIG_HOME: work },
    stderr: "inherit",
  }).output();
  if (out.code !== 0) throw new Error(`vger ${args.join(" ")} exited with ${out.code}`);
  return new TextDecoder().decode(out.stdout);
}

/** Writes the golden repository and its description. */
export async function makeGoldenRepoV2(): Promise<void> {
  if (Deno.uid() !== 0) throw new Error("make_golden_repo_v2 runs as root (devices, owners)");
  const work = await Deno.makeTempDir({ prefix: "vger-make-golden-v2-" });
  try {
    await Deno.remove(GOLDEN_V2_SOURCE, { recursive: true }).catch(() => {});
    await Deno.remove(GOLDEN_V2_REPO, { recursive: true }).catch(() => {});
    Deno.mkdirSync(GOLDEN_V2_SOURCE);
    writeTree(GOLDEN_V2_SOURCE);
    const restored = describeV2(GOLDEN_V2_SOURCE);
    const repo = ["-R", "repo-v2"];
    const kdf = ["--kdf-memory", "1024", "--kdf-iterations", "1", "--kdf-parallelism", "1"];
    await vger([...repo, "init", ...kdf], work);
    const backup = [...repo, "backup", "--archive", GOLDEN_V2_ARCHIVE, GOLDEN_V2_SOURCE];
    await vger(backup, work);
    for (const d of ["locks"]) await Deno.remove(`${GOLDEN_V2_REPO}/${d}`).catch(() => {});
    const listed = JSON.parse(
      await vger([...repo, "--json", "list", "--archive", GOLDEN_V2_ARCHIVE], work),
    ).items as Record<string, unknown>[];
    const expected: GoldenV2Expected = {
      passphrase: GOLDEN_V2_PASSPHRASE,
      archive: GOLDEN_V2_ARCHIVE,
      command_line: backup,
      sources: [GOLDEN_V2_SOURCE],
      items: listed.map(({ user: _u, group: _g, ...rest }) => rest),
      restored,
    };
    await Deno.writeTextFile(GOLDEN_V2_EXPECTED, JSON.stringify(expected, null, 2) + "\n");
  } finally {
    await Deno.remove(work, { recursive: true });
    await Deno.remove(GOLDEN_V2_SOURCE, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) {
  await makeGoldenRepoV2();
  console.log(`Wrote ${GOLDEN_V2_REPO} and ${GOLDEN_V2_EXPECTED}`);
}
