/**
 * Extract: restores the items of an archive under a destination directory, with their
 * contents, mode, owner (when root), extended attributes and nanosecond mtimes.
 *
 * It never writes outside the destination: stored paths that are absolute, empty or contain
 * `.`/`..` segments are refused, and so is any path whose parent on disk is not a directory
 * that extract itself checked (a symlinked parent is refused).
 *
 * Reading is pipelined: blob reads are coalesced per pack (adjacent records in one range read),
 * opened and decompressed in the codec workers, and kept ahead of the writer within a byte
 * budget. All-zero chunks are not written: the file gets a hole instead.
 *
 * Each file is written under a temporary name in its directory (`.vger-tmp-` and 16 hex digits),
 * gets its metadata and is then renamed into place: a file under its real name is always
 * complete, so an interrupted extract never leaves a truncated file that a re-run (which keeps
 * existing files) would take for restored. A signal removes the temp file in flight
 * (lib/exit_hooks.ts); those a killed extract left are removed by the next extract from the
 * directories it writes into. A file's content is its item's declared size: chunks that hold
 * more or fewer bytes are an integrity error naming the file; nothing past the size is written.
 *
 * @module
 */

import type { ReadonlyBackend } from "../backends/backend.ts";
import type { Item } from "./archive.ts";
import { isDevice } from "./archive.ts";
import type { ChunkIndex } from "./chunk_index.ts";
import { CodecPool } from "./codec_pool.ts";
import { ByteBudget, Signal } from "./concurrency.ts";
import { type Abortable, errorMessage, IntegrityError, VgerError, whenAborted } from "./errors.ts";
import { atExit } from "./exit_hooks.ts";
import { describeFsError, makeSymlink, S_IFBLK, S_IFCHR, S_IFIFO } from "./fs_meta.ts";
import {
  applyItemMeta,
  type ApplyMetaOptions,
  createdMeta,
  creator,
  inode,
  isSafeRelativePath,
  openTemp,
  prepareDest,
  RestoreSkips,
  type TempFile,
} from "./restore_meta.ts";
import { ERRNO, NativeError, nativeFs } from "./fs_native.ts";
import { randomBytes, toHex } from "./ids.ts";
import { PathSelector } from "./patterns.ts";
import { isAllZero, release, releaseOwned } from "./bytes.ts";
import { RecordBatcher } from "./record_batcher.ts";
import type { Repository } from "./repository.ts";
import { readArchiveItems } from "./archive_items.ts";

/** Options of {@linkcode extract}; an aborted `signal` stops it between files (no temp file left). */
export interface ExtractOptions extends Abortable {
  /** Archive name. */
  archive: string;
  /** Destination directory (created if missing). */
  dest: string;
  /** Globs on stored paths; empty means everything. */
  patterns?: string[];
  /** The index to read through (default: read it). */
  index?: ChunkIndex;
  /** Replace existing files (default: skip them with a warning). */
  overwrite?: boolean;
  /** Restore owners (default: when running as root). */
  restoreOwners?: boolean;
  /** Called for each warning. */
  onWarning?: (message: string) => void;
  /** Called now and then with the progress; the last call has `files` and `bytes` at their totals. */
  onProgress?: (p: ExtractProgress) => void;
  /** Bytes of blobs read ahead of the writer (default: RecordBatcher's `readAheadBytes`). */
  budgetBytes?: number;
}

/** Progress of a running extract. */
export interface ExtractProgress {
  /** Items done (restored, skipped or failed). */
  files: number;
  /** File bytes done (written, left as holes, or of files skipped or failed). */
  bytes: number;
  /** Items to do: from the archive's stats, or counted first when patterns select a part. */
  totalFiles: number;
  /** File bytes to do, likewise. */
  totalBytes: number;
  /** Path being written. */
  current: string;
}

/** What extract did. */
export interface ExtractResult {
  /** Items restored. */
  files: number;
  /** File bytes restored (holes included: the restored files' sizes). */
  bytes: number;
  /** Warnings (skipped items); non-empty means exit code 3. */
  warnings: string[];
}

/** Names of files being written start with this; see the module doc. */
const TEMP_PREFIX = ".vger-tmp-";
/** The exact names extract gives its temp files: those a killed extract left are removed. */
const TEMP_NAME = /^\.vger-tmp-[0-9a-f]{16}$/;

const MAX_BATCH = 8 << 20;
/** Chunks at least this large are written from Deno's blocking pool (restore_meta.ts). */
const ASYNC_WRITE = 128 << 10;
/** Items queued ahead of the writer at most. */
const MAX_QUEUED_ITEMS = 512;

interface Pending {
  /** Plaintext length. */
  raw: number;
  /** Bytes this read still holds in the budget. */
  held: number;
  /** The plaintext; null for an all-zero chunk (write a hole). */
  data: Promise<Uint8Array | null>;
  /** The batcher's read behind `data`, until it is sent (see RecordBatcher.flushFor). */
  read?: Promise<Uint8Array>;
}

interface QueuedItem {
  item: Item;
  path: string;
  chunks: Pending[];
  complete: boolean;
  /** A later name of a hardlink group: the restored path of the group's first selected name. */
  linkTo?: string;
}

/** Restores an archive. */
export async function extract(
  repo: Repository<ReadonlyBackend>,
  options: ExtractOptions,
): Promise<ExtractResult> {
  const entry = await repo.findArchive(options.archive);
  const meta = await repo.readArchive(entry);
  const index = options.index ?? await repo.readIndex();
  const workers = CodecPool.sizeBesideBusyThread(); // this thread writes the whole time
  const pool = new CodecPool(repo.key.material, repo.config.encryption, workers);
  const dest = options.dest.replace(/\/+$/, "") || "/";
  await prepareDest(dest);
  const run = new ExtractRun(repo, index, pool, dest, options);
  const forget = atExit(() => run.removeInFlight());
  const stop = whenAborted(options.signal, "Extract", (err) => run.close(err)); // its next item
  const writer = run.writeLoop();
  try {
    if (options.onProgress) {
      if ((options.patterns ?? []).length === 0) {
        run.setTotals(meta.stats.files, meta.stats.original);
      } else {
        // a part of the archive: count it first (item blobs are small next to the data)
        const selector = new PathSelector(options.patterns ?? []);
        let files = 0;
        let bytes = 0;
        for await (const item of readArchiveItems(repo, index, meta, pool)) {
          if (!selector.selects(item.path)) continue;
          files++;
          if (item.type === "file") bytes += item.size;
        }
        run.setTotals(files, bytes);
      }
    }
    for await (const item of readArchiveItems(repo, index, meta, pool)) await run.add(item);
    run.close();
    await writer;
    run.finishDirs();
    run.finishSpecials();
    run.finalProgress();
    return { files: run.files, bytes: run.bytes, warnings: run.warnings };
  } catch (err) {
    run.close(err);
    await writer.catch(() => {});
    throw err;
  } finally {
    stop();
    forget();
    pool.close();
  }
}

class ExtractRun {
  readonly warnings: string[] = [];
  files = 0;
  bytes = 0;
  readonly #index: ChunkIndex;
  readonly #dest: string;
  readonly #options: ExtractOptions;
  readonly #selector: PathSelector;
  readonly #native = nativeFs();
  readonly #owners: boolean;
  readonly #root = Deno.uid() === 0;
  readonly #creator = creator();
  readonly #skipped = new RestoreSkips();
  /** Hardlink groups met in the selection: group -> restored path of its first selected name. */
  readonly #linkGroups = new Map<string, string>();
  /** The first names of hardlink groups that were restored -> what they are ({@linkcode inode}). */
  readonly #linked = new Map<string, string>();
  readonly #checkedDirs = new Set<string>();
  /** Directories this run created: nothing in them is in the way (no lstat, no NotFound). */
  readonly #createdDirs = new Set<string>();
  readonly #dirs: { path: string; item: Item }[] = [];
  readonly #zeroIds = new Set<string>();
  /** Bytes of chunks requested and not yet written. */
  readonly #budget: ByteBudget;
  readonly #queue: QueuedItem[] = [];
  /** New work for the writer. */
  readonly #added = new Signal();
  /** A written item or released bytes, for the producer. */
  readonly #freed = new Signal();
  /** Reads of adjacent records of one pack, gathered into one range request. */
  readonly #reader: RecordBatcher;
  #closed = false;
  #failure: unknown = null;
  /** Temp names are this run's random tag and a count: 16 hex digits ({@linkcode TEMP_NAME}). */
  readonly #tempTag = toHex(randomBytes(4));
  #tempCount = 0;
  #inFlight: string | null = null; // the temp file being written
  #lastProgress = 0;
  #doneFiles = 0;
  #doneBytes = 0;
  #totalFiles = 0;
  #totalBytes = 0;
  #current = "";

  constructor(
    repo: Repository<ReadonlyBackend>,
    index: ChunkIndex,
    pool: CodecPool,
    dest: string,
    options: ExtractOptions,
  ) {
    this.#index = index;
    this.#dest = dest;
    this.#options = options;
    this.#selector = new PathSelector(options.patterns ?? []);
    this.#owners = options.restoreOwners ?? Deno.uid() === 0;
    this.#reader = new RecordBatcher(repo, pool, { maxBytes: MAX_BATCH });
    this.#budget = new ByteBudget(options.budgetBytes ?? this.#reader.readAheadBytes);
    this.#checkedDirs.add(dest);
    this.#removeLeftovers(dest);
  }

  /** Removes the temp files a killed extract left in `dir`, an existing directory. */
  #removeLeftovers(dir: string): void {
    try {
      for (const e of Deno.readDirSync(dir)) {
        if (e.isFile && TEMP_NAME.test(e.name)) Deno.removeSync(`${dir}/${e.name}`);
      }
    } catch (err) {
      this.#warn(
        `Cannot remove the temp files of an earlier extract in "${dir}": ${describeFsError(err)}`,
      );
    }
  }

  #warn(message: string): void {
    this.warnings.push(message);
    this.#options.onWarning?.(message);
  }

  /** What progress counts up to. */
  setTotals(files: number, bytes: number): void {
    this.#totalFiles = files;
    this.#totalBytes = bytes;
  }

  /** Reports the end: done is the total (the archive's stats can count a file cut short). */
  finalProgress(): void {
    this.#options.onProgress?.({
      files: this.#doneFiles,
      bytes: this.#doneBytes,
      totalFiles: this.#doneFiles,
      totalBytes: this.#doneBytes,
      current: this.#current,
    });
  }

  /** Producer: queues an item and the reads of its chunks, within the byte budget. */
  async add(item: Item): Promise<void> {
    if (this.#failure) throw this.#failure;
    if (!this.#selector.selects(item.path)) return;
    if (!isSafeRelativePath(item.path)) {
      this.#warn(`Refused "${item.path}": the stored path is not a safe relative path`);
      this.#doneFiles++;
      if (item.type === "file") this.#doneBytes += item.size;
      return;
    }
    const path = `${this.#dest === "/" ? "" : this.#dest}/${item.path}`;
    const queued: QueuedItem = { item, path, chunks: [], complete: item.type !== "file" };
    if (item.hardlink !== undefined && item.type !== "dir") {
      // the group's first selected name is restored whole; later ones link to it, unread
      queued.linkTo = this.#linkGroups.get(item.hardlink);
      if (queued.linkTo === undefined) this.#linkGroups.set(item.hardlink, path);
      else queued.complete = true;
    }
    this.#queue.push(queued);
    this.#added.notify();
    // many small files fit in the byte budget: bound the queue's length too, and once it is
    // full wait for a quarter of it to be written, so that the batch sent meanwhile is not one
    // small file long
    if (this.#queue.length > MAX_QUEUED_ITEMS) {
      this.#reader.flush();
      while (this.#queue.length > MAX_QUEUED_ITEMS * 3 / 4) {
        await this.#freed.wait();
        if (this.#failure) throw this.#failure;
      }
    }
    for (const id of queued.linkTo === undefined ? item.chunks ?? [] : []) {
      queued.chunks.push(await this.#request(id));
      this.#added.notify();
    }
    queued.complete = true;
    this.#added.notify();
  }

  /** No more items (or a failure): lets the writer finish. */
  close(failure?: unknown): void {
    this.#closed = true;
    if (failure) this.#failure ??= failure;
    this.#reader.flush();
    this.#added.notify();
  }

  /** Sets directory metadata last, deepest first, so writing their contents does not change it. */
  finishDirs(): void {
    for (let i = this.#dirs.length - 1; i >= 0; i--) {
      const { path, item } = this.#dirs[i];
      try {
        // chmod follows symlinks: only touch what is still the directory extract made
        if (!Deno.lstatSync(path).isDirectory) continue;
      } catch {
        continue;
      }
      this.#applyMeta(path, item);
    }
  }

  /** Queues the read of one chunk, coalescing adjacent records of one pack. */
  async #request(id: Uint8Array): Promise<Pending> {
    const loc = this.#index.get(id);
    if (!loc) {
      const data = Promise.reject(
        new IntegrityError(`Chunk ${toHex(id)} is missing from the index`),
      );
      data.catch(() => {});
      return { raw: 0, held: 0, data };
    }
    if (this.#zeroIds.size > 0 && this.#zeroIds.has(toHex(id))) {
      return { raw: loc.rawLength, held: 0, data: Promise.resolve(null) };
    }
    if (!this.#budget.tryReserve(loc.rawLength)) {
      this.#reader.flush(); // the writer frees bytes only once the pending reads are sent
      // Wait for room for a batch, not for this chunk alone: else each chunk the writer frees
      // lets one more in, and every batch sent is one chunk long.
      const room = Math.max(loc.rawLength, Math.min(MAX_BATCH, this.#budget.limit / 4));
      await this.#budget.reserve(room); // throws the writer's failure
      this.#budget.release(room - loc.rawLength);
    }
    const read = this.#reader.read(id, loc);
    const data = read.then((plain): Uint8Array | null => {
      if (!isAllZero(plain)) return plain;
      this.#zeroIds.add(toHex(id));
      freePlain(plain);
      return null;
    });
    data.catch(() => {}); // awaited by the writer
    return { raw: loc.rawLength, held: loc.rawLength, data, read };
  }

  #release(p: Pending): void {
    this.#budget.release(p.held);
    p.held = 0;
    this.#freed.notify();
  }

  /** Consumer: writes queued items in archive order. */
  async writeLoop(): Promise<void> {
    try {
      for (;;) {
        if (this.#failure) throw this.#failure;
        const next = this.#queue.shift();
        if (!next) {
          if (this.#closed) return;
          this.#reader.flush();
          await this.#added.wait();
          continue;
        }
        const bytesBefore = this.#doneBytes;
        const filesBefore = this.files;
        if (next.linkTo !== undefined) this.#link(next.path, next.linkTo, next.item);
        else if (next.item.type === "file") await this.#writeFile(next);
        else this.#restoreNonFile(next.item, next.path);
        // a hardlink group's first name, restored: the later names may link to it
        if (next.item.hardlink !== undefined && this.files > filesBefore) {
          this.#linked.set(next.path, inode(next.path));
        }
        // whatever became of it, the item is done: count it whole
        this.#doneFiles++;
        if (next.item.type === "file") this.#doneBytes = bytesBefore + next.item.size;
        this.#progress(next.path);
        this.#freed.notify();
      }
    } catch (err) {
      this.#failure ??= err;
      this.#freed.notify();
      this.#budget.abort(this.#failure);
      throw err;
    }
  }

  /** The i-th chunk of a queued file, waiting for the producer when it is not queued yet. */
  async #chunkAt(q: QueuedItem, i: number): Promise<Pending | null> {
    while (i >= q.chunks.length) {
      if (q.complete) return null;
      this.#reader.flush();
      await this.#added.wait();
      if (this.#failure) throw this.#failure;
    }
    return q.chunks[i];
  }

  async #writeFile(q: QueuedItem): Promise<void> {
    const { item, path } = q;
    let file: TempFile | null = null;
    let temp: string | null = null;
    let i = 0;
    try {
      if (!this.#prepareParent(path) || !this.#makeRoom(path, item)) {
        for (let c; (c = await this.#chunkAt(q, i)) !== null; i++) this.#release(c);
        return;
      }
      const name = temp = `${path.slice(0, path.lastIndexOf("/"))}/${TEMP_PREFIX}${this.#tempTag}${
        (this.#tempCount++ >>> 0).toString(16).padStart(8, "0")
      }`;
      file = openTemp(this.#native, name, item.mode);
      this.#inFlight = name; // a signal that ends the process meanwhile removes it
      let pos = 0;
      let sparse = false;
      for (let c; (c = await this.#chunkAt(q, i)) !== null; i++) {
        if (pos + c.raw > item.size) throw this.#sizeMismatch(item, "more");
        if (c.read) this.#reader.flushFor(c.read); // about to wait: send it if it is not yet
        const data = await c.data;
        this.#release(c);
        if (data === null) {
          sparse = true;
          pos += c.raw;
          this.bytes += c.raw; // restored as a hole: still bytes of the file
          this.#doneBytes += c.raw;
          this.#progress(path);
          continue;
        }
        if (pos + data.length > item.size) throw this.#sizeMismatch(item, "more");
        // a large chunk is copied into the page cache on another thread; this one goes on
        if (data.length >= ASYNC_WRITE && file.writeAtAsync) await file.writeAtAsync(data, pos);
        else file.writeAt(data, pos);
        pos += data.length;
        this.bytes += data.length;
        this.#doneBytes += data.length;
        freePlain(data);
        this.#progress(path);
      }
      if (pos !== item.size) throw this.#sizeMismatch(item, "fewer");
      if (sparse) file.truncate(pos);
      // through the descriptor when it is libc's; else by name (Deno's API)
      // a directory this run made has no set-group-id bit nor default ACL yet (finishDirs)
      const known = this.#creator && file.native && this.#inCreatedDir(path)
        ? createdMeta(item, this.#creator)
        : undefined;
      this.#applyMeta(name, item, { shown: path, file: file.native, known });
      const f = file;
      file = null;
      f.close();
      if (this.#native) this.#native.rename(name, path);
      else Deno.renameSync(name, path);
      temp = null;
      this.files++;
    } catch (err) {
      // release what this file still holds so the producer does not wait forever
      for (let c; (c = await this.#chunkAt(q, i)) !== null; i++) this.#release(c);
      if (temp !== null) {
        // a partial file never takes the real name: remove it
        try {
          file?.close();
        } catch { /* removed next */ }
        file = null;
        try {
          Deno.removeSync(temp);
        } catch { /* already gone */ }
      }
      if (err instanceof IntegrityError) this.#warn(`Cannot restore "${path}": ${err.message}`);
      else if (err instanceof VgerError && !(err instanceof NativeError)) throw err;
      else this.#warn(`Cannot restore "${path}": ${describeFsError(err)}`);
    } finally {
      this.#inFlight = null;
    }
  }

  /** Removes the temp file being written, if any: run at exit (on a signal). */
  removeInFlight(): void {
    if (this.#inFlight !== null) Deno.removeSync(this.#inFlight);
  }

  /** A later name of a hardlink group: a hard link to the group's first restored name. */
  #link(path: string, to: string, item: Item): void {
    if (!this.#linked.has(to)) {
      this.#warn(`Cannot restore "${path}": its hard link "${to}" was not restored`);
      return;
    }
    try {
      // the very inode restored there: a later item may have put a symlink in its way
      if (inode(to) !== this.#linked.get(to)) throw new Error("it changed since it was restored");
      if (!this.#prepareParent(path) || !this.#makeRoom(path, item)) return;
      Deno.linkSync(to, path);
      this.files++;
    } catch (err) {
      this.#warn(`Cannot restore "${path}" as a hard link to "${to}": ${describeFsError(err)}`);
    }
  }

  /** The error for a file whose chunks hold more or fewer bytes than its item declares. */
  #sizeMismatch(item: Item, what: "more" | "fewer"): IntegrityError {
    return new IntegrityError(
      `its chunks hold ${what} bytes than its declared size of ${item.size} bytes`,
    );
  }

  #prepareParent(path: string): boolean {
    const parent = path.slice(0, path.lastIndexOf("/")) || "/";
    if (this.#checkedDirs.has(parent)) return true;
    // walk down from dest: each component must be a real directory (created if missing)
    const rel = parent.slice(this.#dest.length + 1);
    let cur = this.#dest === "/" ? "" : this.#dest;
    for (const seg of rel.split("/")) {
      cur = `${cur}/${seg}`;
      if (this.#checkedDirs.has(cur)) continue;
      let info: Deno.FileInfo | null = null;
      try {
        info = Deno.lstatSync(cur);
      } catch (err) {
        if (!(err instanceof Deno.errors.NotFound)) throw err;
      }
      if (info === null) {
        Deno.mkdirSync(cur, { mode: 0o700 });
        this.#createdDirs.add(cur);
      } else if (!info.isDirectory) {
        this.#warn(
          `Refused "${path}": "${cur}" is not a directory (a symlink or file is in the way)`,
        );
        return false;
      } else this.#removeLeftovers(cur);
      this.#checkedDirs.add(cur);
    }
    return true;
  }

  /** Removes what is in the way when overwriting; false when the item must be skipped. */
  #makeRoom(path: string, item: Item, always = false): boolean {
    // a new file in a new directory: a throwing lstat per file cost restore 0.7 s in 26,000
    if (!always && this.#inCreatedDir(path)) return true;
    let info: Deno.FileInfo;
    try {
      info = Deno.lstatSync(path);
    } catch {
      return true;
    }
    if (item.type === "dir" && info.isDirectory) return true;
    if (!this.#options.overwrite) {
      this.#warn(`Skipped "${path}": it exists (use --overwrite to replace it)`);
      return false;
    }
    Deno.removeSync(path, { recursive: info.isDirectory });
    // what was checked as a directory at or below path is gone: never trust it again
    const below = `${path}/`;
    for (const d of this.#checkedDirs) {
      if (d === path || d.startsWith(below)) this.#checkedDirs.delete(d);
    }
    for (const d of this.#createdDirs) {
      if (d === path || d.startsWith(below)) this.#createdDirs.delete(d);
    }
    for (let i = this.#dirs.length - 1; i >= 0; i--) {
      const d = this.#dirs[i].path;
      if (d === path || d.startsWith(below)) this.#dirs.splice(i, 1);
    }
    return true;
  }

  #inCreatedDir(path: string): boolean {
    return this.#createdDirs.has(path.slice(0, path.lastIndexOf("/")));
  }

  /**
   * Runs `make`, which creates `path`. In a directory this run created, makeRoom looked at
   * nothing: a path there that exists all the same is a name the archive holds twice, which gets
   * makeRoom's checks (--overwrite) after all, and `make` once more.
   */
  #create(path: string, item: Item, make: () => void): boolean {
    try {
      make();
      return true;
    } catch (err) {
      const exists = err instanceof Deno.errors.AlreadyExists ||
        (err instanceof NativeError && err.errno === ERRNO.EEXIST);
      if (!exists || !this.#inCreatedDir(path)) throw err;
    }
    if (!this.#makeRoom(path, item, true)) return false;
    make();
    return true;
  }

  #restoreNonFile(item: Item, path: string): void {
    if (item.type === "fifo" || isDevice(item.type)) {
      this.#restoreSpecial(item, path);
      return;
    }
    try {
      if (!this.#prepareParent(path) || !this.#makeRoom(path, item)) return;
      if (item.type === "dir") {
        try {
          Deno.mkdirSync(path, { mode: 0o700 });
          this.#createdDirs.add(path);
        } catch (err) {
          if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
          this.#removeLeftovers(path);
        }
        this.#checkedDirs.add(path);
        this.#dirs.push({ path, item });
      } else {
        if (!this.#create(path, item, () => makeSymlink(item.target!, path))) return;
        this.#applyMeta(path, item);
      }
      this.files++;
    } catch (err) {
      if (err instanceof Deno.errors.NotCapable && item.type === "symlink") {
        this.#skipped.symlinkScoped(item.path);
      } else this.#warn(`Cannot restore "${path}": ${describeFsError(err)}`);
    }
  }

  #progress(current: string): void {
    if (!this.#options.onProgress) return;
    this.#current = current;
    const now = Date.now();
    if (now - this.#lastProgress < 200) return;
    this.#lastProgress = now;
    this.#options.onProgress({
      files: this.#doneFiles,
      bytes: this.#doneBytes,
      totalFiles: this.#totalFiles,
      totalBytes: this.#totalBytes,
      current,
    });
  }

  /**
   * A FIFO or a device, made with mknod (lib/fs_native.ts). Without FFI neither can be made, and
   * a device needs root: those are counted and reported by {@linkcode finishSpecials} in one
   * warning each, not one per item.
   */
  #restoreSpecial(item: Item, path: string): void {
    const n = this.#native;
    if (!n) return this.#skipped.specialNoFfi(item.path);
    if (isDevice(item.type) && !this.#root) return this.#skipped.deviceNotRoot(item.path);
    try {
      if (!this.#prepareParent(path) || !this.#makeRoom(path, item)) return;
      const type = item.type === "fifo" ? S_IFIFO : item.type === "chardev" ? S_IFCHR : S_IFBLK;
      const mknod = () => n.mknod(path, type | 0o600, item.major ?? 0, item.minor ?? 0);
      if (!this.#create(path, item, mknod)) return;
      this.#applyMeta(path, item);
      this.files++;
    } catch (err) {
      this.#warn(`Cannot restore "${path}": ${errorMessage(err)}`);
    }
  }

  /** The one warning each for FIFOs, devices and xattrs that could not be made or set. */
  finishSpecials(): void {
    for (const w of this.#skipped.warnings()) this.#warn(w);
  }

  /** {@linkcode applyItemMeta} with this run's native calls, owner rule and warnings. */
  #applyMeta(path: string, item: Item, more: Partial<ApplyMetaOptions> = {}): void {
    applyItemMeta(path, item, {
      native: this.#native,
      owners: this.#owners,
      warn: (m) => this.#warn(m),
      skipped: this.#skipped,
      ...more,
    });
  }
}

/**
 * Frees a plaintext the batcher read: one under 64 KiB may share its buffer with others of its
 * batch (codec_worker.ts, shareSmall); a larger one owns its buffer, maybe at an offset.
 */
function freePlain(b: Uint8Array): void {
  if (b.length >= 64 << 10) releaseOwned(b);
  else release(b);
}
