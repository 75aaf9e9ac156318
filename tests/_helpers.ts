/**
 * Helpers shared by the whole-program tests in tests/: temp dirs, running the real `vger` CLI
 * (also as an unprivileged user), repositories with cheap KDF costs, snapshots of a tree with
 * every byte and piece of metadata, and the peak memory of a child process.
 *
 * Private to tests/ (the leading underscore): nothing outside tests/ imports it.
 *
 * @example Back up a tree and check that extract restores it exactly
 * ```ts ignore
 * import { deepStrictEqual, equal } from "node:assert/strict";
 * import { initRepo, restoredPath, runVger, treeSnapshot, withTempDir } from "./_helpers.ts";
 *
 * await withTempDir(async (dir) => {
 *   await Deno.mkdir(`${dir}/src`);
 *   await Deno.writeTextFile(`${dir}/src/a.txt`, "hello");
 *   const repo = await initRepo(`${dir}/repo`);
 *   equal((await runVger(["-R", repo, "backup", "-a", "one", `${dir}/src`])).code, 0);
 *   equal((await runVger(["-R", repo, "extract", "-a", "one", "--dest", `${dir}/out`])).code, 0);
 *   deepStrictEqual(
 *     await treeSnapshot(restoredPath(`${dir}/out`, `${dir}/src`)),
 *     await treeSnapshot(`${dir}/src`),
 *   );
 * });
 * ```
 *
 * @module
 */

import type { ItemJson } from "../lib/cli_list.ts";
import { deepStrictEqual, equal, ok } from "node:assert/strict";
import { createHash } from "node:crypto";
import { fileURLToPath } from "node:url";
import { nativeFs } from "../lib/fs_native.ts";

/** Absolute path of the CLI entry point the tests run. */
export const CLI_PATH: string = fileURLToPath(new URL("../cli.ts", import.meta.url));

/** Absolute path of the least-privilege launcher (launch.ts). */
export const LAUNCH_PATH: string = fileURLToPath(new URL("../launch.ts", import.meta.url));

/** Absolute path of vger-server's entry point (server.ts). */
export const SERVER_PATH: string = fileURLToPath(new URL("../server.ts", import.meta.url));

/**
 * Deno flags for {@linkcode runVger} without FFI for libc or OpenSSL (lib/fs_native.ts), as a user
 * runs it who grants --allow-ffi only for the LZ4 codec's native module under node_modules.
 */
export function withoutLibcFfi(): string[] {
  return [
    "--allow-read",
    "--allow-write",
    "--allow-env",
    "--allow-sys",
    `--allow-ffi=${PROJECT_DIR}/node_modules`,
  ];
}

/** Absolute path of the project root (where deno.json and node_modules are). */
export const PROJECT_DIR: string = fileURLToPath(new URL("../", import.meta.url)).replace(
  /\/$/,
  "",
);

/** The passphrase {@linkcode runVger} passes in VGER_PASSPHRASE unless told otherwise. */
export const PASSPHRASE = "correct horse battery staple";

/** `init` options that make Argon2id cheap (tests only). */
export const FAST_KDF_ARGS: readonly string[] = [
  "--kdf-memory",
  "1024",
  "--kdf-iterations",
  "1",
  "--kdf-parallelism",
  "1",
];

/** nobody:nogroup on Debian and most Linux distributions. */
export const NOBODY_ID = 65534;

// ---------------------------------------------------------------------------------------------
// Temp dirs

/** Creates a temp dir (0700, owned by the caller); remove it with {@linkcode removeTree}. */
export async function makeTempDir(prefix = "vger-test-"): Promise<string> {
  return await Deno.makeTempDir({ prefix });
}

/** Removes a tree if it exists, making unreadable directories readable first when needed. */
export async function removeTree(path: string): Promise<void> {
  try {
    await Deno.remove(path, { recursive: true });
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return;
    if (!(err instanceof Deno.errors.PermissionDenied)) throw err;
    // not root and a directory without rwx for us: open everything up, then retry
    await new Deno.Command("chmod", { args: ["-R", "u+rwx", path] }).output();
    await Deno.remove(path, { recursive: true });
  }
}

/** Runs `fn` with a fresh temp dir and removes the dir afterwards, whatever happens. */
export async function withTempDir<T>(
  fn: (dir: string) => Promise<T>,
  prefix = "vger-test-",
): Promise<T> {
  const dir = await makeTempDir(prefix);
  try {
    return await fn(dir);
  } finally {
    await removeTree(dir);
  }
}

// ---------------------------------------------------------------------------------------------
// Running the CLI

/** A non-root identity to run the CLI as (see {@linkcode makeUnprivilegedUser}). */
export interface UnprivilegedUser {
  /** User id the process runs with. */
  uid: number;
  /** Group id the process runs with (no supplementary groups). */
  gid: number;
  /** A copy of the deno binary that this user can execute. */
  deno: string;
  /** A copy of the CLI (with the code and node_modules it needs) this user can read. */
  cli: string;
  /** A DENO_DIR the user owns. */
  denoDir: string;
  /** A HOME (and default working directory) the user owns. */
  home: string;
  /** Removes the copy of deno, the DENO_DIR and the HOME. */
  cleanup(): Promise<void>;
}

/** Options of {@linkcode runVger} and {@linkcode spawnVger}. */
export interface RunOptions {
  /**
   * Environment on top of the parent's (from which VGER_* are removed). VGER_PASSPHRASE defaults
   * to {@linkcode PASSPHRASE}; a value of `undefined` removes a variable.
   */
  env?: Record<string, string | undefined>;
  /** Working directory (default: "/", where no vger.yaml is). */
  cwd?: string;
  /** Run as this user through `setpriv` (the caller must be root). */
  user?: UnprivilegedUser;
  /**
   * The program to run instead of cli.ts (one that runs the CLI with wrapped backends, such as
   * tests/kill_switch.ts); not with `user`.
   */
  program?: string;
  /** Deno's flags for the run instead of `-A` (permissions: `-P=NAME`, `--allow-read=...`). */
  denoFlags?: readonly string[];
  /** Kill the process (SIGKILL) after this many ms; default 120 000. */
  timeoutMs?: number;
  /** Sample the peak RSS with {@linkcode peakRssOf}. */
  measureRss?: boolean;
}

/** What a CLI run did. */
export interface RunResult {
  /** Exit code (137 when killed after a timeout). */
  code: number;
  /** Standard output, decoded. */
  stdout: string;
  /** Standard error, decoded. */
  stderr: string;
  /** Whether the timeout killed it. */
  timedOut: boolean;
  /** Peak resident set size in bytes, when `measureRss` was set. */
  peakRssBytes?: number;
}

let cacheDir: string | undefined;

/**
 * A temp directory for the files caches of this test process's CLI runs, removed when the test
 * module ends (its unload event), so that a test run leaves nothing behind.
 */
function testCacheDir(): string {
  if (cacheDir === undefined) {
    const dir = Deno.makeTempDirSync({ prefix: "vger-test-cache-" });
    globalThis.addEventListener("unload", () => {
      try {
        Deno.removeSync(dir, { recursive: true });
      } catch {
        // gone already
      }
    });
    cacheDir = dir;
  }
  return cacheDir;
}

/** The environment a CLI child gets: the parent's minus VGER_*, plus the given variables. */
function childEnv(options: RunOptions): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(Deno.env.toObject())) {
    if (!k.startsWith("VGER_")) env[k] = v;
  }
  // no user configuration file may leak into a test; plain output for matching
  env.XDG_CONFIG_HOME = "/nonexistent/vger-test-config";
  // files caches of test repositories go to one directory per test process, not to ~/.cache
  env.VGER_CACHE_DIR = testCacheDir();
  env.NO_COLOR = "1";
  env.VGER_PASSPHRASE = PASSPHRASE;
  if (options.user) {
    env.HOME = options.user.home;
    env.VGER_CACHE_DIR = `${options.user.home}/.cache/vger`;
    env.DENO_DIR = options.user.denoDir;
  }
  for (const [k, v] of Object.entries(options.env ?? {})) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

/** Starts the CLI with piped stdout and stderr (stdin closed); the caller must consume both. */
export function spawnVger(args: readonly string[], options: RunOptions = {}): Deno.ChildProcess {
  const user = options.user;
  // --cached-only: an unprivileged user's empty DENO_DIR must not make deno go to the network
  const denoArgs = user
    ? ["run", "-A", "--cached-only", user.cli, ...args]
    : ["run", ...(options.denoFlags ?? ["-A"]), options.program ?? CLI_PATH, ...args];
  const [command, commandArgs] = user
    ? [
      "setpriv",
      [
        `--reuid=${user.uid}`,
        `--regid=${user.gid}`,
        "--clear-groups",
        "--",
        user.deno,
        ...denoArgs,
      ],
    ]
    : [Deno.execPath(), denoArgs];
  return new Deno.Command(command, {
    args: commandArgs,
    cwd: options.cwd ?? user?.home ?? "/",
    env: childEnv(options),
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/**
 * Runs `vger ARGS` to completion and returns its exit code and output.
 *
 * @example
 * ```ts ignore
 * const r = await runVger(["-R", repo, "list", "--json"]);
 * equal(r.code, 0, r.stderr);
 * ```
 */
export async function runVger(
  args: readonly string[],
  options: RunOptions = {},
): Promise<RunResult> {
  const child = spawnVger(args, options);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      child.kill("SIGKILL");
    } catch {
      // exited meanwhile
    }
  }, options.timeoutMs ?? 120_000);
  try {
    const rss = options.measureRss ? peakRssOf(child) : undefined;
    const out = await child.output();
    const decoder = new TextDecoder();
    return {
      code: out.code,
      stdout: decoder.decode(out.stdout),
      stderr: decoder.decode(out.stderr),
      timedOut,
      peakRssBytes: rss ? await rss : undefined,
    };
  } finally {
    clearTimeout(timer);
  }
}

/** Runs `vger ARGS` and throws (with its output) unless the exit code is `expected`. */
export async function runVgerOk(
  args: readonly string[],
  options: RunOptions = {},
  expected = 0,
): Promise<RunResult> {
  const r = await runVger(args, options);
  if (r.code !== expected) {
    throw new Error(
      `vger ${args.join(" ")} exited with ${r.code}, expected ${expected}\n` +
        `stdout: ${r.stdout}\nstderr: ${r.stderr}`,
    );
  }
  return r;
}

/** Creates an encrypted repository at `path` with cheap KDF costs; returns `path`. */
export async function initRepo(path: string, options: RunOptions = {}): Promise<string> {
  await runVgerOk(["-R", path, "init", ...FAST_KDF_ARGS], options);
  return path;
}

/**
 * Prepares a non-root identity for {@linkcode runVger}: a copy of the running deno binary in a
 * 0755 dir (the original may sit under /root), a world-readable copy of the project's code and
 * node_modules (the checkout may sit in a 0700 dir, as CI's does), and a HOME and DENO_DIR owned
 * by `uid`. Throws when not root or `setpriv` (util-linux) is missing.
 */
export async function makeUnprivilegedUser(
  uid = NOBODY_ID,
  gid = NOBODY_ID,
): Promise<UnprivilegedUser> {
  if (Deno.uid() !== 0) throw new Error("makeUnprivilegedUser needs root (to switch user)");
  const which = await new Deno.Command("sh", { args: ["-c", "command -v setpriv"] }).output();
  if (!which.success) {
    throw new Error("setpriv (util-linux) is not installed: cannot run vger as another user");
  }
  const base = await makeTempDir("vger-user-");
  try {
    await Deno.chmod(base, 0o755);
    const deno = `${base}/deno`;
    await Deno.copyFile(Deno.execPath(), deno);
    await Deno.chmod(deno, 0o755);
    const project = `${base}/project`;
    await Deno.mkdir(project);
    // a deno process of a parallel test may add and remove a lock file in node_modules/.deno
    // while cp runs (cp then fails on the file gone): copy again
    let copy: Deno.CommandOutput;
    for (let attempt = 1;; attempt++) {
      copy = await new Deno.Command("cp", {
        args: [
          "-a",
          ...["cli.ts", "mod.ts", "deno.json", "deno.lock", "lib", "backends", "node_modules"]
            .map((f) => `${PROJECT_DIR}/${f}`),
          project,
        ],
      }).output();
      if (copy.success || attempt === 3) break;
    }
    const chmod = await new Deno.Command("chmod", { args: ["-R", "a+rX", project] }).output();
    if (!copy.success || !chmod.success) {
      throw new Error(
        `Cannot copy the project for uid ${uid}: ${new TextDecoder().decode(copy.stderr)}`,
      );
    }
    const home = `${base}/home`;
    const denoDir = `${base}/deno_dir`;
    for (const d of [home, denoDir]) {
      await Deno.mkdir(d, { mode: 0o700 });
      await Deno.chown(d, uid, gid);
    }
    return {
      uid,
      gid,
      deno,
      cli: `${project}/cli.ts`,
      denoDir,
      home,
      cleanup: () => removeTree(base),
    };
  } catch (err) {
    await removeTree(base);
    throw err;
  }
}

/** Changes the owner of a tree (like `chown -R`, not following symlinks). */
export async function chownTree(path: string, uid: number, gid: number): Promise<void> {
  const fs = requireNativeFs();
  fs.lchown(path, uid, gid);
  if (!Deno.lstatSync(path).isDirectory) return;
  for await (const e of Deno.readDir(path)) await chownTree(`${path}/${e.name}`, uid, gid);
}

// ---------------------------------------------------------------------------------------------
// POSIX ACLs, as the xattr bytes the kernel stores (no setfacl needed)

/**
 * An ACL xattr value (`system.posix_acl_access` or `_default`): version 2, then
 * {u16 tag, u16 perm, u32 id} entries, little-endian (linux/posix_acl_xattr.h). Tags: USER_OBJ 1,
 * USER 2, GROUP_OBJ 4, GROUP 8, MASK 0x10, OTHER 0x20; entries without an id take
 * {@linkcode ACL_NO_ID}.
 */
export function posixAcl(entries: [tag: number, perm: number, id: number][]): Uint8Array {
  const out = new Uint8Array(4 + 8 * entries.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, 2, true);
  entries.forEach(([tag, perm, id], i) => {
    v.setUint16(4 + 8 * i, tag, true);
    v.setUint16(6 + 8 * i, perm, true);
    v.setUint32(8 + 8 * i, id, true);
  });
  return out;
}

/** The id of ACL entries that name no user or group. */
export const ACL_NO_ID = 0xffffffff;

/** A file's access ACL: owner rw, user 1000 rw, group r, mask rw, other r (mode 0664). */
export const FILE_ACL: Uint8Array = posixAcl([
  [1, 6, ACL_NO_ID],
  [2, 6, 1000],
  [4, 4, ACL_NO_ID],
  [0x10, 6, ACL_NO_ID],
  [0x20, 4, ACL_NO_ID],
]);

/** A directory's default ACL: owner rwx, group rx, group 100 rx, mask rx, other rx. */
export const DIR_ACL: Uint8Array = posixAcl([
  [1, 7, ACL_NO_ID],
  [4, 5, ACL_NO_ID],
  [8, 5, 100],
  [0x10, 5, ACL_NO_ID],
  [0x20, 5, ACL_NO_ID],
]);

// ---------------------------------------------------------------------------------------------
// Memory

/** VmHWM (peak RSS) of a process in bytes, or null when it cannot be read (gone, no /proc). */
export function readVmHwm(pid: number): number | null {
  let text: string;
  try {
    text = Deno.readTextFileSync(`/proc/${pid}/status`);
  } catch {
    return null;
  }
  const m = /^VmHWM:\s+(\d+) kB$/m.exec(text);
  return m ? Number(m[1]) * 1024 : null;
}

/**
 * The peak resident set size of a child in bytes: polls /proc/<pid>/status VmHWM every 25 ms
 * until the child exits and returns the largest value seen (VmHWM only grows, so this misses at
 * most the growth of the last 25 ms). Rejects when not a single sample could be taken.
 */
export async function peakRssOf(child: Deno.ChildProcess): Promise<number> {
  let running = true;
  const exited = child.status.then(() => {
    running = false;
  }, () => {
    running = false;
  });
  let peak = 0;
  let samples = 0;
  while (running) {
    const hwm = readVmHwm(child.pid);
    if (hwm !== null) {
      samples++;
      peak = Math.max(peak, hwm);
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([exited, new Promise((r) => timer = setTimeout(r, 25))]);
    clearTimeout(timer);
  }
  if (samples === 0) {
    throw new Error(`Could not read /proc/${child.pid}/status: no memory sample of the child`);
  }
  return peak;
}

// ---------------------------------------------------------------------------------------------
// Tree snapshots

/** Kinds of directory entries. */
export type EntryType = "file" | "dir" | "symlink" | "fifo" | "socket" | "char" | "block";

/** Everything a backup should preserve about one entry. */
export interface EntrySnapshot {
  /** Entry kind. */
  type: EntryType;
  /** Permission bits, with setuid, setgid and sticky (st_mode & 0o7777). */
  mode: number;
  /** Owner uid. */
  uid: number;
  /** Owner gid. */
  gid: number;
  /** Size in bytes for files and symlinks; 0 for directories (their size is file-system noise). */
  size: number;
  /** Modification time in nanoseconds since the epoch. */
  mtimeNs: bigint;
  /** Link target (symlinks), else null. */
  target: string | null;
  /** Extended attributes: name -> value as hex. */
  xattrs: Record<string, string>;
  /** SHA-256 of the contents as hex (regular files), else null. */
  sha256: string | null;
  /** Device numbers as "major,minor" (character and block devices), else null. */
  device: string | null;
}

/** A tree: relative path ("." for the root itself) -> entry, in sorted order. */
export type TreeSnapshot = Record<string, EntrySnapshot>;

function requireNativeFs() {
  const fs = nativeFs();
  if (!fs) throw new Error("The tests need lib/fs_native.ts: run them with --allow-ffi (or -A)");
  return fs;
}

function typeOfMode(mode: number): EntryType {
  switch (mode & 0o170000) {
    case 0o100000:
      return "file";
    case 0o040000:
      return "dir";
    case 0o120000:
      return "symlink";
    case 0o010000:
      return "fifo";
    case 0o140000:
      return "socket";
    case 0o020000:
      return "char";
    default:
      return "block";
  }
}

/** Hex string of bytes. */
export function hex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/** SHA-256 (hex) of the first `limit` bytes of a file (all of it by default), streamed. */
export async function sha256File(path: string, limit = Infinity): Promise<string> {
  const hash = createHash("sha256");
  using file = await Deno.open(path, { read: true });
  const buf = new Uint8Array(1 << 20);
  let left = limit;
  while (left > 0) {
    const n = await file.read(buf.subarray(0, Math.min(buf.length, left)));
    if (n === null) break;
    hash.update(buf.subarray(0, n));
    left -= n;
  }
  return hash.digest("hex");
}

/** Options of {@linkcode treeSnapshot}. */
export interface SnapshotOptions {
  /** Hash file contents (default true). */
  contents?: boolean;
  /** Leave out these relative paths and everything below them. */
  skip?: (relativePath: string) => boolean;
}

/**
 * Snapshots every entry under `root` (root included as "."): type, mode, owner, size, mtime in
 * ns, symlink target, xattrs and the SHA-256 of file contents. Symlinks are not followed. Two
 * snapshots compare with `deepStrictEqual`.
 */
export async function treeSnapshot(
  root: string,
  options: SnapshotOptions = {},
): Promise<TreeSnapshot> {
  const fs = requireNativeFs();
  const out: TreeSnapshot = {};
  const visit = async (rel: string): Promise<void> => {
    if (rel !== "." && options.skip?.(rel)) return;
    const path = rel === "." ? root : `${root}/${rel}`;
    const st = fs.lstat(path);
    const type = typeOfMode(st.mode);
    const xattrs: Record<string, string> = {};
    for (const name of fs.listXattrs(path).sort()) {
      const v = fs.getXattr(path, name);
      if (v !== null) xattrs[name] = hex(v);
    }
    out[rel] = {
      type,
      mode: st.mode & 0o7777,
      uid: st.uid,
      gid: st.gid,
      size: type === "dir" ? 0 : st.size,
      mtimeNs: st.mtimeNs,
      target: type === "symlink" ? await Deno.readLink(path) : null,
      xattrs,
      sha256: type === "file" && options.contents !== false ? await sha256File(path) : null,
      device: type === "char" || type === "block" ? `${st.rdevMajor},${st.rdevMinor}` : null,
    };
    if (type !== "dir") return;
    const names: string[] = [];
    for await (const e of Deno.readDir(path)) names.push(e.name);
    names.sort();
    for (const name of names) await visit(rel === "." ? name : `${rel}/${name}`);
  };
  await visit(".");
  return out;
}

/**
 * The hard-link shape of the regular files under `root`: relative path -> [group, link count],
 * the groups numbered by first appearance in sorted path order, so that two trees compare
 * whatever their inode numbers and readdir order.
 */
export async function linkShape(root: string): Promise<Record<string, [number, number]>> {
  const byPath: Record<string, [number, number]> = {};
  const visit = async (rel: string) => {
    for await (const e of Deno.readDir(rel ? `${root}/${rel}` : root)) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory) await visit(r);
      else if (e.isFile) {
        const st = await Deno.lstat(`${root}/${r}`);
        byPath[r] = [st.ino!, st.nlink!];
      }
    }
  };
  await visit("");
  const groups = new Map<number, number>();
  const out: Record<string, [number, number]> = {};
  for (const p of Object.keys(byPath).sort()) {
    const [ino, nlink] = byPath[p];
    if (!groups.has(ino)) groups.set(ino, groups.size);
    out[p] = [groups.get(ino)!, nlink];
  }
  return out;
}

/** Keeps only the entries of a snapshot whose relative path passes `keep`. */
export function filterSnapshot(
  snapshot: TreeSnapshot,
  keep: (relativePath: string, entry: EntrySnapshot) => boolean,
): TreeSnapshot {
  const out: TreeSnapshot = {};
  for (const [k, v] of Object.entries(snapshot)) if (keep(k, v)) out[k] = v;
  return out;
}

/** Whether a path exists (lstat, so a dangling symlink counts). */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

/** Bytes the file system allocated to a file (st_blocks * 512): less than its size when sparse. */
export function allocatedBytes(path: string): number {
  const blocks = Deno.lstatSync(path).blocks;
  if (blocks === null) throw new Error(`No st_blocks for ${path} on this platform`);
  return blocks * 512;
}

/** How an archive stores an absolute path: without the leading "/". */
export function storedPath(absolutePath: string): string {
  return absolutePath.replace(/^\/+/, "");
}

/** Where extract to `dest` puts the entry backed up from `absolutePath`. */
export function restoredPath(dest: string, absolutePath: string): string {
  return `${dest}/${storedPath(absolutePath)}`;
}

/** An item of `vger list --archive NAME --json` (the schema lib/cli_list.ts renders). */
export type ListedItem = ItemJson;

/** The items of an archive, through `vger list --archive NAME --json`. */
export async function listItems(
  repo: string,
  archive: string,
  options: RunOptions = {},
): Promise<ListedItem[]> {
  const r = await runVgerOk(["-R", repo, "list", "--archive", archive, "--json"], options);
  return (JSON.parse(r.stdout) as { items: ListedItem[] }).items;
}

/** Fills a buffer with pseudo-random bytes from a seed (fast; not for cryptography). */
export function pseudoRandomBytes(length: number, seed = 1): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(length);
  const words = new Uint32Array(out.buffer, 0, length >>> 2);
  let x = (seed >>> 0) || 0x9e3779b9;
  for (let i = 0; i < words.length; i++) {
    // xorshift32
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    words[i] = x >>> 0;
  }
  for (let i = words.length * 4; i < length; i++) {
    out[i] = (x = (x * 1103515245 + 12345) >>> 0) >>> 24;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Assertions on CLI runs, for any backend

/**
 * A `vger` run on one repository: the arguments after `--config FILE` (or `-R REPO`) in, the
 * result out. Each test file binds its own (a configuration, credentials, checks of its own).
 */
export type Vger = (args: readonly string[]) => Promise<RunResult>;

/** Parses stdout as exactly one JSON line (what `--json` prints). */
export function jsonOf<T = Record<string, unknown>>(r: RunResult): T {
  const lines = r.stdout.split("\n").filter((l) => l.trim() !== "");
  equal(lines.length, 1, `expected one JSON line on stdout (exit ${r.code}), got:\n${r.stdout}`);
  return JSON.parse(lines[0]) as T;
}

/** Options of {@linkcode assertOneLine}. */
export interface OneLineOptions {
  /** The exit code expected (default 1). */
  code?: number;
  /** Strings that must show neither on stdout nor on stderr (tokens, keys). */
  secrets?: readonly string[];
}

/** Asserts that none of `secrets` shows in a run's stdout or stderr. */
export function assertNoSecret(r: RunResult, secrets: readonly string[], what: string): void {
  for (const secret of secrets) {
    ok(!r.stdout.includes(secret), `${what}: stdout shows a secret: ${r.stdout}`);
    ok(!r.stderr.includes(secret), `${what}: stderr shows a secret: ${r.stderr}`);
  }
}

/**
 * Asserts a failed run: its exit code (1 unless told), exactly one line on stderr, matching
 * `line`, no stack trace, no "Unexpected error", and none of the secrets anywhere.
 */
export function assertOneLine(
  r: RunResult,
  line: RegExp,
  what: string,
  options: OneLineOptions = {},
): void {
  equal(r.code, options.code ?? 1, `${what}: exit code ${r.code}, stderr: ${r.stderr}`);
  const lines = r.stderr.split("\n").filter((l) => l !== "");
  equal(lines.length, 1, `${what}: not one line: ${r.stderr}`);
  ok(!/\bat .*:\d+:\d+/.test(r.stderr), `${what}: a stack trace: ${r.stderr}`);
  ok(!r.stderr.includes("Unexpected error"), `${what}: an unexpected error: ${r.stderr}`);
  ok(line.test(lines[0]), `${what}: ${line} does not match: ${lines[0]}`);
  assertNoSecret(r, options.secrets ?? [], what);
}

/** What `vger check --json` reports (the fields the tests read). */
export interface CheckReport {
  /** How many errors. */
  errors: number;
  /** Totals. */
  stats: { archives: number };
  /** Every problem found, warnings too. */
  problems: { kind: string; severity: string; message: string }[];
}

/**
 * Runs `check --verify-data --json` and asserts it is clean: JSON on stdout, no problem but
 * warnings, no error, exit 0. Returns the report (warnings may be in it).
 */
export async function assertCheckClean(vger: Vger, what: string): Promise<CheckReport> {
  const r = await vger(["check", "--verify-data", "--json"]);
  let report: CheckReport;
  try {
    report = JSON.parse(r.stdout);
  } catch {
    throw new Error(`${what}: check printed no JSON (exit ${r.code}): ${r.stderr}${r.stdout}`);
  }
  const errors = report.problems.filter((p) => p.severity !== "warning");
  deepStrictEqual(errors, [], `${what}: check --verify-data found errors`);
  equal(report.errors, 0, what);
  equal(r.code, 0, `${what}: check exited ${r.code}: ${r.stderr}`);
  return report;
}

/**
 * Extracts `archive` into a fresh temp dir and asserts that what was backed up from `source`
 * comes back exactly as `snapshot` (every byte and piece of metadata).
 */
export async function assertRestores(
  vger: Vger,
  archive: string,
  source: string,
  snapshot: TreeSnapshot,
  what: string,
): Promise<void> {
  const dest = await makeTempDir("vger-test-out-");
  try {
    const r = await vger(["extract", "--archive", archive, "--dest", dest]);
    equal(r.code, 0, `${what}: extract of "${archive}" failed: ${r.stderr}`);
    deepStrictEqual(
      await treeSnapshot(restoredPath(dest, source)),
      snapshot,
      `${what}: archive "${archive}" does not restore what was backed up`,
    );
  } finally {
    await removeTree(dest);
  }
}

/** The names of a repository's archives, oldest first (`list --json`, which must succeed). */
export async function archiveNames(vger: Vger): Promise<string[]> {
  const r = await vger(["list", "--json"]);
  equal(r.code, 0, `list failed: ${r.stderr}`);
  return jsonOf<{ archives: { name: string }[] }>(r).archives.map((a) => a.name);
}

// ---------------------------------------------------------------------------------------------
// --json fields, from the README's table

/** What the README documents of one command's --json output. */
export interface JsonDoc {
  /** Top-level fields; those ending in [] are arrays. */
  fields: string[];
  /** Fields of each element of an array field (key without []). */
  elements: Record<string, string[]>;
  /** "and what was done": more fields may follow. */
  open: boolean;
}

/** The README's --json table: command (as in the first column) -> documented fields. */
export async function readmeJsonTable(): Promise<Map<string, JsonDoc>> {
  const text = await Deno.readTextFile(`${PROJECT_DIR}/README.md`);
  const section = text.slice(text.indexOf("### Output, progress and exit codes"));
  const table = new Map<string, JsonDoc>();
  for (const row of section.split("\n")) {
    if (table.size > 0 && !row.startsWith("|")) break;
    const m = /^\|\s*(`.+?)\s*\|\s*(.+?)\s*\|$/.exec(row);
    if (!m) continue;
    const doc: JsonDoc = { fields: [], elements: {}, open: /what was done/.test(m[2]) };
    for (const segment of m[2].split(";")) {
      // "`archives[]`: `name`, `id`" documents the fields of each element of archives
      const nested = /^(.*?)`(\w+)\[\]`:(.*)$/.exec(segment);
      const names = (s: string) => [...s.matchAll(/`(\w+(?:\[\])?)`/g)].map((x) => x[1]);
      if (nested) {
        doc.fields.push(...names(nested[1]), `${nested[2]}[]`);
        doc.elements[nested[2]] = names(nested[3]).map((f) => f.replace(/\[\]$/, ""));
      } else doc.fields.push(...names(segment));
    }
    for (const command of [...m[1].matchAll(/`([^`]+)`/g)].map((x) => x[1])) {
      table.set(command, doc);
    }
  }
  return table;
}

/** Asserts a --json document has every documented field, and (unless open) no other. */
export function assertDocumented(doc: JsonDoc, json: Record<string, unknown>, what: string): void {
  const bare = (f: string) => f.replace(/\[\]$/, "");
  const keys = Object.keys(json).sort();
  for (const f of doc.fields) {
    ok(bare(f) in json, `${what} lacks the documented field ${bare(f)}: ${JSON.stringify(json)}`);
    if (f.endsWith("[]")) ok(Array.isArray(json[bare(f)]), `${what}: ${bare(f)} is not an array`);
  }
  if (!doc.open) deepStrictEqual(keys, doc.fields.map(bare).sort(), `${what}: undocumented fields`);
  for (const [array, fields] of Object.entries(doc.elements)) {
    const elements = json[array] as Record<string, unknown>[];
    ok(elements.length > 0, `${what}: ${array} is empty, its fields cannot be checked`);
    for (const e of elements) {
      deepStrictEqual(Object.keys(e).sort(), [...fields].sort(), `${what}: fields of ${array}[]`);
    }
  }
}
