/**
 * A backend that stores each object as a file under a root directory: key `packs/ab/<id>` is the
 * file `<root>/packs/ab/<id>`.
 *
 * Writes are crash safe: the bytes go to a `.tmp-<hex>` file in the target's directory, which is
 * fsynced and then renamed (put) or hard-linked (create) into place, and the directory is fsynced.
 * Readers therefore see the old or the new object, never a mix, and listings skip `.tmp-` files
 * that a crash may leave behind.
 *
 * `getRange` keeps a small cache of open read handles. It must only be used on write-once objects
 * (packs): a cached handle still reads the old file after another process replaces it. Changes
 * made through this backend drop the cached handle of that key.
 *
 * @example
 * ```ts
 * import { LocalBackend } from "./local.ts";
 *
 * const root = await Deno.makeTempDir();
 * const backend = new LocalBackend(root);
 * await backend.put("packs/ab/ab01", new Uint8Array([1, 2, 3]));
 * console.log(await backend.getRange("packs/ab/ab01", 1, 2)); // Uint8Array(2) [ 2, 3 ]
 * await backend.close();
 * await Deno.remove(root, { recursive: true });
 * ```
 *
 * @module
 */

import { createHash } from "node:crypto";
import { statfs } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { BackendError, IntegrityError, NotFoundError } from "../lib/errors.ts";
import {
  type Backend,
  type BackendCapabilities,
  checkMaxBytes,
  composedBody,
  type ComposePlan,
  type ComposeResult,
  type GetOptions,
  isValidKey,
  type ObjectInfo,
  type ObjectStream,
  objectTooLarge,
  type PutBody,
  type StagedObject,
  type StreamOptions,
  streamRange,
  truncated,
} from "./backend.ts";
import {
  ensureDir,
  errorCode,
  fail,
  isAbsent,
  lstatOrNull,
  type Modes,
  modesOf,
  modesOfSync,
  randomHex,
  removeQuietly,
  removeQuietlySync,
  syncDir,
  writeTemp,
} from "./local_files.ts";

/** Names of in-progress writes start with this; they are never objects. */
const TEMP_PREFIX = ".tmp-";
/** How many read handles getRange keeps open. */
const HANDLE_CACHE_SIZE = 32;
/** How many files list stats at once. */
const STAT_BATCH = 64;
/** A local disk serves a request or two at a time well; more only adds seeks. */
const DEFAULT_LOCAL_CONNECTIONS = 2;

interface Handle {
  file: Deno.FsFile;
  size: number;
}

interface CachedHandle {
  opened: Promise<Handle>;
  /** The last read queued on this handle; reads take turns because seek + read is not atomic. */
  tail: Promise<unknown>;
}

/** A {@linkcode Backend} on a local (or mounted) file system. */
export class LocalBackend implements Backend {
  /** The absolute path of the root directory. */
  readonly location: string;
  /** `connections`: the `connections` option, else 2 (a disk serves one or two requests well). */
  readonly capabilities: BackendCapabilities;
  /** Least recently used first (Map keeps insertion order). */
  #handles = new Map<string, CachedHandle>();
  /** Modes of new files and directories, from the root's group bits (see {@linkcode modesOf}). */
  #modes: Promise<Modes> | null = null;
  #atExit: (hook: () => void) => () => void;
  /** The modes of staged objects (read synchronously: a pack starts inside a synchronous add). */
  #stageModes: Modes | undefined;

  /**
   * Opens a backend rooted at `root`; nothing is touched until the first call. `atExit`
   * registers the removal of each temp file while its write is in flight, for a process that
   * exits on a signal meanwhile (cli.ts passes lib/exit_hooks.ts's); it returns the function
   * that forgets the hook. `connections` overrides the default of 2 parallel requests.
   */
  constructor(
    root: string,
    options: { atExit?: (hook: () => void) => () => void; connections?: number } = {},
  ) {
    this.location = resolve(root);
    this.capabilities = { connections: options.connections ?? DEFAULT_LOCAL_CONNECTIONS };
    this.#atExit = options.atExit ?? (() => () => {});
  }

  /** The whole object, or null when it does not exist; see {@linkcode Backend.get}. */
  async get(key: string, options: GetOptions = {}): Promise<Uint8Array | null> {
    const path = this.#path(key);
    const max = checkMaxBytes(options.maxBytes);
    try {
      if (max === Infinity) return await Deno.readFile(path);
      return await readBounded(key, path, max);
    } catch (err) {
      if (isAbsent(err) || err instanceof Deno.errors.IsADirectory) return null;
      throw err instanceof IntegrityError ? err : fail("read", path, err);
    }
  }

  /** Exactly `length` bytes from `offset`; only for write-once objects (see the module doc). */
  async getRange(key: string, offset: number, length: number): Promise<Uint8Array> {
    const path = this.#path(key);
    if (
      !Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0
    ) {
      throw new BackendError(
        `Invalid range of object "${key}": offset ${offset}, length ${length}`,
      );
    }
    // No await between taking the entry and queueing on it, so a concurrent drop waits for us.
    const entry = this.#handle(key, path);
    const read = entry.tail.then(async () => {
      const { file, size } = await entry.opened;
      if (offset + length > size) throw truncated(key, offset, length, size);
      return await readAt(file, offset, length, key, path);
    });
    entry.tail = read.catch(() => {});
    return await read;
  }

  /** The object's size, or null when it does not exist. */
  async size(key: string): Promise<number | null> {
    const path = this.#path(key);
    try {
      const info = await Deno.stat(path);
      return info.isFile ? info.size : null;
    } catch (err) {
      if (isAbsent(err)) return null;
      throw fail("read", path, err);
    }
  }

  /**
   * Part or all of an object as a stream read from one open file (a replacement meanwhile is
   * not seen), in pieces of at most 256 KiB; see {@linkcode Backend.getStream}.
   */
  async getStream(key: string, options: StreamOptions = {}): Promise<ObjectStream | null> {
    const path = this.#path(key);
    let file: Deno.FsFile;
    try {
      // As size(): only a regular file is an object (opening a FIFO would block forever).
      if (!(await Deno.stat(path)).isFile) return null;
      file = await Deno.open(path, { read: true });
    } catch (err) {
      if (isAbsent(err)) return null;
      throw fail("read", path, err);
    }
    try {
      const info = await file.stat();
      if (!info.isFile) throw new Deno.errors.NotFound(path);
      const { offset, length } = streamRange(key, info.size, options);
      if (length > 0 && offset > 0) await file.seek(offset, Deno.SeekMode.Start);
      return { size: info.size, offset, length, stream: fileStream(file, key, path, length) };
    } catch (err) {
      file.close();
      if (isAbsent(err)) return null;
      throw err instanceof BackendError ? err : fail("read", path, err);
    }
  }

  /** Every object whose key starts with `prefix`; the prefix may end inside a name. */
  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    // A valid prefix is one that some valid key starts with.
    if (prefix !== "" && !isValidKey(prefix + "x")) {
      throw new BackendError(`Invalid object key prefix "${prefix}"`);
    }
    const cut = prefix.lastIndexOf("/") + 1;
    yield* this.#walk(prefix.slice(0, cut), prefix.slice(cut));
  }

  /** Stores an object, atomically replacing any old one; durable when it resolves. */
  async put(key: string, body: PutBody): Promise<void> {
    const path = this.#path(key);
    const dir = dirname(path);
    const temp = join(dir, TEMP_PREFIX + randomHex(8));
    // a signal that ends the process meanwhile removes the temp file
    const forget = this.#atExit(() => Deno.removeSync(temp));
    try {
      await this.#writeTemp(temp, path, body);
      await Deno.rename(temp, path);
    } catch (err) {
      await removeQuietly(temp);
      throw err instanceof BackendError ? err : fail("write", path, err);
    } finally {
      forget();
      this.#drop(key);
    }
    await syncDir(dir, path);
  }

  /** Stores an object only if the key is absent; returns false and writes nothing otherwise. */
  async create(key: string, body: PutBody): Promise<boolean> {
    const path = this.#path(key);
    // Cheap early answer; the link below is what makes it atomic.
    if (await this.size(key) !== null) return false;
    const dir = dirname(path);
    const temp = join(dir, TEMP_PREFIX + randomHex(8));
    const forget = this.#atExit(() => Deno.removeSync(temp));
    let created = true;
    try {
      await this.#writeTemp(temp, path, body);
      // link fails if the target exists, and the target appears with all its bytes at once.
      await Deno.link(temp, path);
    } catch (err) {
      if (!(err instanceof Deno.errors.AlreadyExists)) {
        await removeQuietly(temp);
        forget();
        throw err instanceof BackendError ? err : fail("write", path, err);
      }
      created = false;
    } finally {
      this.#drop(key);
    }
    // The object is in place; a temp file left by a failed remove is skipped by list.
    await removeQuietly(temp);
    forget();
    if (created) await syncDir(dir, path);
    return created;
  }

  /**
   * Composes a new object (see {@linkcode Backend.compose}): its bytes go to a `.tmp-` file in
   * the root, hashed as they are written, which is fsynced and renamed to the key of its hash.
   */
  async compose(plan: ComposePlan): Promise<ComposeResult> {
    const hash = createHash("sha256");
    const body = composedBody(this, plan, (piece) => hash.update(piece));
    const temp = join(this.location, TEMP_PREFIX + randomHex(8));
    const forget = this.#atExit(() => Deno.removeSync(temp));
    let path = temp;
    try {
      await this.#writeTemp(temp, temp, body);
      const sha256 = hash.digest("hex");
      const key = plan.name(sha256);
      path = this.#path(key);
      await ensureDir(dirname(path), path, (await this.#modes!).dir);
      await Deno.rename(temp, path);
      this.#drop(key);
      await syncDir(dirname(path), path);
      return { key, sha256, size: body.size, sentBytes: 0 };
    } catch (err) {
      await removeQuietly(temp);
      throw body.sourceError ?? (err instanceof BackendError ? err : fail("write", path, err));
    } finally {
      forget();
    }
  }

  /**
   * Starts an object written in pieces (see {@linkcode Backend.stage}): a `.tmp-` file in the
   * root, written synchronously as `put` writes, then fsynced and renamed to its key by
   * `finish`. A process killed meanwhile leaves the file to {@linkcode removeLeftovers}.
   */
  stage(): StagedObject {
    let modes: Modes;
    try {
      modes = this.#stageModes ??= modesOfSync(this.location);
    } catch (err) {
      throw fail("read", this.location, err);
    }
    const temp = join(this.location, TEMP_PREFIX + randomHex(8));
    let file: Deno.FsFile | undefined;
    try {
      file = Deno.openSync(temp, { write: true, createNew: true, mode: modes.file });
      if (Deno.build.os !== "windows") Deno.chmodSync(temp, modes.file);
    } catch (err) {
      file?.close();
      removeQuietlySync(temp);
      throw fail("write", temp, err);
    }
    const forget = this.#atExit(() => Deno.removeSync(temp));
    const drop = () => {
      try {
        file?.close();
      } catch { /* closed */ }
      file = undefined;
      removeQuietlySync(temp);
      forget();
    };
    return {
      write: (bytes) => {
        if (!file) throw new BackendError(`Staged object "${temp}" was already finished`);
        try {
          for (let at = 0; at < bytes.length;) at += file.writeSync(bytes.subarray(at));
        } catch (err) {
          drop();
          throw fail("write", temp, err);
        }
      },
      finish: async (key) => {
        const path = this.#path(key);
        if (!file) throw new BackendError(`Staged object "${temp}" was already finished`);
        try {
          await file.sync();
          file.close();
          file = undefined;
          await ensureDir(dirname(path), path, modes.dir);
          await Deno.rename(temp, path);
        } catch (err) {
          drop();
          throw err instanceof BackendError ? err : fail("write", path, err);
        } finally {
          this.#drop(key);
        }
        forget();
        await syncDir(dirname(path), path);
      },
      abort: drop,
    };
  }

  /**
   * Removes the `.tmp-*` files of interrupted puts. Under an exclusive lock only lock files are
   * written by others; removing one of their in-flight temp files fails that lock write, which
   * its process reports or retries: the repository's data is never touched.
   */
  async removeLeftovers(): Promise<number> {
    let removed = 0;
    const walk = async (dir: string): Promise<void> => {
      let entries: Deno.DirEntry[];
      try {
        entries = await Array.fromAsync(Deno.readDir(dir));
      } catch (err) {
        if (isAbsent(err)) return;
        throw fail("read", dir, err);
      }
      for (const e of entries) {
        const path = join(dir, e.name);
        if (e.isDirectory) await walk(path);
        else if (e.isFile && e.name.startsWith(TEMP_PREFIX)) {
          await removeQuietly(path);
          removed++;
        }
      }
    };
    await walk(this.location);
    return removed;
  }

  /** Removes an object; removing an absent object is not an error. */
  async delete(key: string): Promise<void> {
    const path = this.#path(key);
    try {
      await Deno.remove(path);
    } catch (err) {
      if (!isAbsent(err)) throw fail("delete", path, err);
    } finally {
      this.#drop(key);
    }
  }

  /**
   * The bytes free for an unprivileged user on the root's file system (of its nearest existing
   * parent before the first write), or null where it cannot be told (no `--allow-sys`).
   */
  async freeBytes(): Promise<number | null> {
    for (let dir = this.location;; dir = dirname(dir)) {
      try {
        const fs = await statfs(dir);
        return fs.bavail * fs.bsize;
      } catch (err) {
        // node:fs errors carry the errno name instead of Deno's classes
        const code = errorCode(err);
        const absent = isAbsent(err) || code === "ENOENT" || code === "ENOTDIR";
        if (!absent || dirname(dir) === dir) return null;
      }
    }
  }

  /** Closes the cached read handles; the backend stays usable. */
  async close(): Promise<void> {
    await Promise.all([...this.#handles.keys()].map((key) => this.#drop(key)));
  }

  /** {@linkcode writeTemp} with this repository's modes. */
  async #writeTemp(temp: string, path: string, body: PutBody): Promise<void> {
    this.#modes ??= modesOf(this.location).catch((err) => {
      this.#modes = null;
      throw fail("read", this.location, err);
    });
    const modes = await this.#modes;
    await writeTemp(temp, path, body, modes);
  }

  #path(key: string): string {
    if (!isValidKey(key)) throw new BackendError(`Invalid object key "${key}"`);
    const segments = key.split("/");
    if (segments.some((s) => s.startsWith(TEMP_PREFIX))) {
      throw new BackendError(
        `Invalid object key "${key}": names starting with "${TEMP_PREFIX}" are reserved`,
      );
    }
    return join(this.location, ...segments);
  }

  /** The cached handle of `key`, opening it (lazily) and evicting the oldest when full. */
  #handle(key: string, path: string): CachedHandle {
    const cached = this.#handles.get(key);
    if (cached !== undefined) {
      this.#handles.delete(key);
      this.#handles.set(key, cached);
      return cached;
    }
    const entry: CachedHandle = { opened: openForRange(key, path), tail: Promise.resolve() };
    entry.opened.catch(() => {
      if (this.#handles.get(key) === entry) this.#handles.delete(key);
    });
    this.#handles.set(key, entry);
    if (this.#handles.size > HANDLE_CACHE_SIZE) {
      const oldest = this.#handles.keys().next().value as string;
      this.#drop(oldest);
    }
    return entry;
  }

  /** Forgets the cached handle of `key` and closes it once its queued reads are done. */
  #drop(key: string): Promise<void> {
    const entry = this.#handles.get(key);
    if (entry === undefined) return Promise.resolve();
    this.#handles.delete(key);
    return entry.tail.then(() => entry.opened).then(
      ({ file }) => {
        try {
          file.close();
        } catch {
          // Already closed: nothing to release.
        }
      },
      () => {}, // It never opened: nothing to release.
    );
  }

  async *#walk(dirKey: string, namePrefix: string): AsyncGenerator<ObjectInfo> {
    const dir = dirKey === "" ? this.location : join(this.location, ...dirKey.split("/"));
    const files: string[] = [];
    const subdirs: string[] = [];
    try {
      for await (const entry of Deno.readDir(dir)) {
        if (!entry.name.startsWith(namePrefix)) continue;
        if (entry.isDirectory) subdirs.push(entry.name);
        else if (entry.isFile && !entry.name.startsWith(TEMP_PREFIX)) files.push(entry.name);
      }
    } catch (err) {
      if (isAbsent(err)) return;
      throw fail("list", dir, err);
    }
    for (let i = 0; i < files.length; i += STAT_BATCH) {
      const batch = files.slice(i, i + STAT_BATCH);
      const infos = await Promise.all(batch.map((name) => lstatOrNull(join(dir, name))));
      for (let j = 0; j < batch.length; j++) {
        const info = infos[j];
        // A file removed since readDir is simply no longer listed.
        if (info?.isFile) {
          yield { key: dirKey + batch[j], size: info.size, modified: info.mtime?.getTime() };
        }
      }
    }
    for (const name of subdirs) yield* this.#walk(`${dirKey}${name}/`, "");
  }
}

async function openForRange(key: string, path: string): Promise<Handle> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (err) {
    if (isAbsent(err)) throw new NotFoundError(`Object "${key}" not found`, { cause: err });
    throw fail("read", path, err);
  }
  try {
    const info = await file.stat();
    if (!info.isFile) throw new NotFoundError(`Object "${key}" not found`);
    return { file, size: info.size };
  } catch (err) {
    file.close();
    throw err instanceof NotFoundError ? err : fail("read", path, err);
  }
}

/**
 * The file at `path` if it holds at most `max` bytes: its size is checked before anything is
 * read, and reading stops one byte past `max` in case the file grew since.
 */
async function readBounded(key: string, path: string, max: number): Promise<Uint8Array> {
  // As size(): only a regular file is an object (opening a FIFO would block forever).
  if (!(await Deno.stat(path)).isFile) throw new Deno.errors.IsADirectory(path);
  using file = await Deno.open(path, { read: true });
  const info = await file.stat();
  if (!info.isFile) throw new Deno.errors.IsADirectory(path);
  if (info.size > max) throw objectTooLarge(key, max, info.size);
  let out = new Uint8Array(info.size);
  let filled = 0;
  const probe = new Uint8Array(1);
  for (;;) {
    if (filled === out.length) {
      // Full: one more byte tells whether the file grew after the stat.
      if (await file.read(probe) === null) return out;
      if (filled >= max) throw objectTooLarge(key, max);
      const grown = new Uint8Array(Math.min(Math.max(2 * filled, 4096), max));
      grown.set(out);
      grown[filled++] = probe[0];
      out = grown;
      continue;
    }
    const n = await file.read(out.subarray(filled));
    if (n === null) return out.subarray(0, filled); // it shrank after the stat
    filled += n;
  }
}

/** How many bytes a piece of {@linkcode fileStream} holds at most. */
const STREAM_PIECE = 256 << 10;

/** `length` bytes of `file` from where it stands, as a stream that closes the file when done. */
function fileStream(
  file: Deno.FsFile,
  key: string,
  path: string,
  length: number,
): ReadableStream<Uint8Array> {
  let left = length;
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    file.close();
  };
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        if (left === 0) {
          close();
          controller.close();
          return;
        }
        const piece = new Uint8Array(Math.min(left, STREAM_PIECE));
        const n = await file.read(piece);
        // Only if the file shrank after it was opened, which no put does (it replaces the file).
        if (n === null) throw new IntegrityError(`Object "${key}" shrank while it was read`);
        left -= n;
        controller.enqueue(n === piece.length ? piece : piece.subarray(0, n));
      } catch (err) {
        close();
        controller.error(err instanceof IntegrityError ? err : fail("read", path, err));
      }
    },
    cancel() {
      close();
    },
  }, { highWaterMark: 0 });
}

// deno-lint-ignore require-await
async function readAt(
  file: Deno.FsFile,
  offset: number,
  length: number,
  key: string,
  path: string,
): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  let filled = 0;
  try {
    // Synchronous on purpose: Deno's async reads copy through a fresh buffer and cost ~20x more
    // per call; a read of a page-cached range blocks for microseconds.
    file.seekSync(offset, Deno.SeekMode.Start);
    while (filled < length) {
      const n = file.readSync(out.subarray(filled));
      if (n === null) break;
      filled += n;
    }
  } catch (err) {
    throw fail("read", path, err);
  }
  // Only if the file shrank after it was opened, which write-once objects never do.
  if (filled < length) throw truncated(key, offset, length, offset + filled);
  return out;
}
