/**
 * Where large packs are staged while they are filled: one directory per process,
 * `<temp dir>/vger-staging-<uid>/<host>-<pid>-<start time>`, made 0700 on first use and removed
 * when the process exits (also on a signal, through lib/exit_hooks.ts), with `vger-staging-<uid>`
 * when no other process's directory is left in it. A process killed with
 * SIGKILL cannot remove its own: {@linkcode removeDeadStaging}, which every run calls at start-up,
 * removes the directories of this host's processes that are no longer alive. The start time in
 * the name tells a dead process from a new one that got its pid.
 *
 * @module
 */

import { tmpdir } from "node:os";
import process from "node:process";
import { join } from "node:path";
import { BackendError, errorMessage } from "./errors.ts";
import { atExit } from "./exit_hooks.ts";
import { release } from "./bytes.ts";
import type { StagedObject, StreamBody } from "../backends/backend.ts";
import type { StoringPackSink } from "./pack.ts";

/** This process's directory once made (a process exits once: one per process). */
let own: string | null = null;

/** The directory that holds the staging directories of this user's processes. */
export function stagingRoot(): string {
  return join(tmpdir(), `vger-staging-${Deno.uid() ?? "user"}`);
}

/** This process's staging directory, made on first use; removed when the process exits. */
export function stagingDir(): string {
  if (own !== null) return own;
  const root = stagingRoot();
  const dir = join(root, processName(Deno.pid));
  for (let attempt = 0;; attempt++) {
    ensureOwnDir(root);
    try {
      Deno.mkdirSync(dir, { mode: 0o700 });
      break;
    } catch (err) {
      if (err instanceof Deno.errors.AlreadyExists) break;
      // another process that exited removed the (then empty) root meanwhile: make it again
      if (err instanceof Deno.errors.NotFound && attempt < 3) continue;
      throw failure(dir, err);
    }
  }
  own = dir;
  atExit(() => {
    own = null;
    Deno.removeSync(dir, { recursive: true });
    try {
      Deno.removeSync(root); // only when empty: other processes' directories keep it
    } catch {
      // not empty, or gone
    }
  });
  return dir;
}

/**
 * Removes the staging directories that processes on this host left when they died (SIGKILL, a
 * crash, a power cut); returns how many. Best effort: a directory it cannot read is let be.
 */
export function removeDeadStaging(root?: string): number {
  let host: string;
  let entries: Deno.DirEntry[];
  try {
    root ??= stagingRoot();
    host = hostname();
    entries = [...Deno.readDirSync(root)];
  } catch {
    return 0; // none yet, not ours to read, or a permission this run was not given
  }
  let removed = 0;
  for (const e of entries) {
    const m = /^(.*)-(\d+)-(\d+)$/.exec(e.name);
    if (!e.isDirectory || m === null || m[1] !== host) continue;
    const pid = Number(m[2]);
    if (pid === Deno.pid || processName(pid) === e.name) continue; // alive: its own
    try {
      Deno.removeSync(join(root, e.name), { recursive: true });
      removed++;
    } catch {
      // another run removed it meanwhile, or it is not ours: let it be
    }
  }
  return removed;
}

/**
 * `<host>-<pid>-<start time>` of a living process; for a dead one, a name no directory has.
 * The start time is the kernel's (Linux); elsewhere it is 0 and the pid alone tells.
 */
function processName(pid: number): string {
  let start = "0";
  if (Deno.build.os === "linux") {
    try {
      const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
      // the fields after the command name (which may hold spaces and parentheses)
      start = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
    } catch {
      return "";
    }
  } else if (!alive(pid)) return "";
  return `${hostname()}-${pid}-${start}`;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as { code?: string }).code === "EPERM";
  }
}

function hostname(): string {
  try {
    return Deno.hostname().replaceAll("/", "_");
  } catch {
    return "localhost";
  }
}

/** Makes `root` 0700, or checks that it is a directory of this user (not a symlink). */
function ensureOwnDir(root: string): void {
  try {
    Deno.mkdirSync(root, { mode: 0o700 });
    return;
  } catch (err) {
    if (!(err instanceof Deno.errors.AlreadyExists)) throw failure(root, err);
  }
  const info = Deno.lstatSync(root);
  const uid = Deno.uid();
  if (!info.isDirectory || (uid !== null && info.uid !== uid)) {
    throw new BackendError(
      `Cannot stage packs in "${root}": it is not a directory of this user`,
    );
  }
}

function failure(path: string, err: unknown): BackendError {
  return new BackendError(`Cannot stage packs in "${path}": ${errorMessage(err)}`, {
    cause: err,
  });
}

/** Bytes of a pack held in memory before it is staged in a temporary file. */
export const DEFAULT_SPILL_ABOVE = 64 << 20;

/**
 * Where a pack's bytes go while it is filled (a `PackSink` of lib/pack.ts): memory up to
 * `spillAbove` (64 MiB); past that (the pack target grows with the repository, up to
 * max_pack_size) a temporary file in this process's staging directory, so that memory stays
 * bounded whatever the pack size.
 */
export class SpillingSink {
  #parts: Uint8Array[] = [];
  #spillAbove: number;
  #staged: { path: string; file: Deno.FsFile } | null = null;

  /** A sink that stages past `spillAbove` bytes. */
  constructor(options: { spillAbove?: number } = {}) {
    this.#spillAbove = options.spillAbove ?? DEFAULT_SPILL_ABOVE;
  }

  /** Takes `bytes` over; `size` is the pack's size with them. */
  write(bytes: Uint8Array, size: number): void {
    if (this.#staged) {
      writeAllSync(this.#staged.file, bytes);
      release(bytes);
      return;
    }
    // a copy: `bytes` may be a view of a buffer that its owner frees once the pack has it (a
    // codec worker's reply, SealedBlock.dispose), also when the view covers it whole
    this.#parts.push(bytes.slice());
    if (size > this.#spillAbove) this.#stage();
  }

  #stage(): void {
    // a directory of this process's own, which a later run removes if this one dies
    const path = Deno.makeTempFileSync({ dir: stagingDir(), prefix: "vger-pack-" });
    const file = Deno.openSync(path, { write: true, truncate: true });
    this.#staged = { path, file };
    for (const p of this.#parts) {
      writeAllSync(file, p);
      release(p);
    }
    this.#parts = [];
  }

  /** The pack's `size` bytes, in memory or streamed from the staging file, and how to free them. */
  finish(size: number): { body: readonly Uint8Array[] | StreamBody; dispose(): void } {
    const staged = this.#staged;
    if (!staged) {
      const parts = this.#parts;
      return { body: parts, dispose: () => parts.forEach(release) };
    }
    staged.file.close();
    return {
      body: { size, pieces: () => readPieces(staged.path) },
      dispose: () => {
        try {
          Deno.removeSync(staged.path);
        } catch { /* already gone */ }
      },
    };
  }

  /** Removes the staging file of a pack that will not be finished. */
  abandon(): void {
    if (!this.#staged) return;
    try {
      this.#staged.file.close();
    } catch { /* closed */ }
    try {
      Deno.removeSync(this.#staged.path);
    } catch { /* gone */ }
  }
}

function writeAllSync(file: Deno.FsFile, b: Uint8Array): void {
  for (let o = 0; o < b.length;) o += file.writeSync(b.subarray(o));
}

async function* readPieces(path: string): AsyncGenerator<Uint8Array> {
  using file = await Deno.open(path, { read: true });
  for (;;) {
    const buf = new Uint8Array(8 << 20);
    let n = 0;
    while (n < buf.length) {
      const r = file.readSync(buf.subarray(n));
      if (r === null) break;
      n += r;
    }
    if (n === 0) return;
    yield n === buf.length ? buf : buf.slice(0, n);
    if (n < buf.length) return;
  }
}

/** The buffers a {@linkcode StagedSink} writes and hands to its hasher. */
const STAGED_BUFFER = 1 << 20;
/** Buffers being hashed beyond which {@linkcode StagedSink.drained} waits. */
const STAGED_IN_FLIGHT = 8;

/** What a {@linkcode StagedSink} needs of a SHA-256 stream (a codec pool's `hashStream`). */
export interface StagedHasher {
  /** Hashes `bytes` (handed over whole) and hands them back; in the order of the calls. */
  updateAndReturn(bytes: Uint8Array): Promise<Uint8Array>;
  /** Hashes `bytes` (handed over, not returned). */
  update(bytes: Uint8Array): Promise<void>;
  /** The SHA-256 of all the bytes, once every update is done. */
  digest(): Promise<Uint8Array>;
}

/**
 * A pack written where it will be stored as it fills ({@linkcode StagedObject}, a local disk's
 * temporary file), through 1 MiB buffers that are written, then hashed off this thread and
 * handed back for the next bytes: a pack being filled costs a few MiB of memory, not its size
 * (three 41 MiB pack buffers were the largest part of a first backup's peak RSS). The owner
 * stores the pack under its digest with the staged object's `finish`. The buffers are shared by
 * the sinks of one owner (`spare`): buffers left to the garbage collector held ~75 MiB.
 */
export class StagedSink implements StoringPackSink {
  readonly #staged: StagedObject;
  readonly #hasher: StagedHasher;
  #buf: Uint8Array;
  #used = 0;
  readonly #spare: Uint8Array[];
  readonly #hashing = new Set<Promise<unknown>>();

  /** Writes to `staged`, hashed by `hasher`, through buffers taken from and given to `spare`. */
  constructor(staged: StagedObject, hasher: StagedHasher, spare: Uint8Array[] = []) {
    this.#staged = staged;
    this.#hasher = hasher;
    this.#spare = spare;
    this.#buf = this.#takeBuffer();
  }

  #takeBuffer(): Uint8Array {
    return this.#spare.pop() ?? new Uint8Array(STAGED_BUFFER);
  }

  #giveBack(b: Uint8Array): void {
    if (this.#spare.length <= STAGED_IN_FLIGHT) this.#spare.push(b);
    else release(b);
  }

  /** The staged object, to store the pack with once its digest is known. */
  get staged(): StagedObject {
    return this.#staged;
  }

  /** Copies `bytes` into the current buffer, writing each buffer that fills. */
  write(bytes: Uint8Array): void {
    for (let at = 0; at < bytes.length;) {
      const n = Math.min(bytes.length - at, this.#buf.length - this.#used);
      this.#buf.set(bytes.subarray(at, at + n), this.#used);
      this.#used += n;
      at += n;
      if (this.#used === this.#buf.length) this.#writeFull();
    }
  }

  #writeFull(): void {
    const full = this.#buf;
    this.#staged.write(full);
    this.#buf = this.#takeBuffer();
    this.#used = 0;
    const back = this.#hasher.updateAndReturn(full).then((b) => this.#giveBack(b));
    this.#track(back);
  }

  #track(p: Promise<unknown>): void {
    const settled = p.then(() => {}, () => {}); // a failure surfaces in digest()
    this.#hashing.add(settled);
    void settled.finally(() => this.#hashing.delete(settled));
  }

  /** Whether more than a few buffers are being hashed. */
  get backlogged(): boolean {
    return this.#hashing.size > STAGED_IN_FLIGHT;
  }

  /** Waits while more than a few buffers are being hashed. */
  async drained(): Promise<void> {
    while (this.#hashing.size > STAGED_IN_FLIGHT) await Promise.race(this.#hashing);
  }

  /** Writes the last bytes; resolves to the SHA-256 of all of them once hashed. */
  async digest(): Promise<Uint8Array> {
    if (this.#used > 0) {
      const last = this.#buf.slice(0, this.#used);
      this.#staged.write(last);
      this.#track(this.#hasher.update(last));
    }
    this.#giveBack(this.#buf);
    this.#buf = new Uint8Array(0);
    this.#used = 0;
    return await this.#hasher.digest();
  }

  /** Drops the staged object and the buffers. */
  abandon(): void {
    this.#staged.abort();
    if (this.#buf.length > 0) this.#giveBack(this.#buf);
    this.#buf = new Uint8Array(0);
  }
}
