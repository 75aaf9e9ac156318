/**
 * Backup: walks the sources, reads and chunks files, stores new chunks, writes the item stream
 * and commits the archive.
 *
 * The main thread walks, reads and chunks (FastCDC); the chunks are hashed (HMAC, for the dedup
 * decision) by a codec worker when their read block leaves, which keeps the block until told which
 * chunks are new, seals those and sends them back to go into packs. The walk goes on meanwhile: a
 * file's item goes out once its ids are back and the items before it went (lib/concurrency.ts
 * `InOrder`), so items keep the walk's order. A byte budget bounds the chunks in flight and a count
 * the items waiting: memory stays flat whatever the input size.
 *
 * @module
 */

import { resolve } from "node:path";
import type { Backend } from "../backends/backend.ts";
import { type ArchiveMeta, type Item, ItemStreamBuffer, validateArchiveName } from "./archive.ts";
import type { Chunker } from "./chunker.ts";
import type { ChunkIndex } from "./chunk_index.ts";
import { type BlockJob, CodecPool } from "./codec_pool.ts";
import { ByteBudget, InOrder, Limiter } from "./concurrency.ts";
import type { CompressionOptions } from "./compress.ts";
import { ObjectType, type ObjectTypeTag } from "./crypto.ts";
import { AlreadyExistsError, NotFoundError, VgerError } from "./errors.ts";
import { type Abortable, throwIfAborted } from "./errors.ts";
import {
  describeFsError,
  type EntryStat,
  openSourceFile,
  readXattrs,
  type SourceFile,
  statChanged,
  throwIfNotPermitted,
} from "./fs_meta.ts";
import { nativeFs } from "./fs_native.ts";
import { HardLinks } from "./hard_links.ts";
import type { ArchiveStats, ManifestEntry } from "./manifest.ts";
import { Owners } from "./owners.ts";
import type { FilesCache } from "./files_cache.ts";
import { reconcileWithPacks } from "./index_recovery.ts";
import { hugePageBuffer } from "./native_memory.ts";
import type { Repository } from "./repository.ts";
import { type WalkEntry, walkSources } from "./walker.ts";
import { WriteSession } from "./write_session.ts";

/** Options of {@linkcode backup}; an aborted `signal` stops it between files (see `checkLock`). */
export interface BackupOptions extends Abortable {
  /** Archive name (must be new). */
  name: string;
  /** Paths to back up. */
  sources: string[];
  /** Compression of new chunks. */
  compression: CompressionOptions;
  /** Directories never to back up (the repository itself), as absolute paths. */
  excludeDirs?: string[];
  /** Decides whether a path (absolute, without leading "/") is excluded. */
  isExcluded?: (path: string, isDir: boolean) => boolean;
  /** Host name recorded in the archive. */
  hostname?: string;
  /** User name recorded in the archive. */
  username?: string;
  /** Called for each warning (skipped or unreadable files). */
  onWarning?: (message: string) => void;
  /** Called now and then with the progress so far. */
  onProgress?: (progress: BackupProgress) => void;
  /** The index to deduplicate against (default: read it). */
  index?: ChunkIndex;
  /** Called before the commit; throws when the repository lock was lost (or `signal` aborted). */
  checkLock?: () => void;
  /** Bytes of chunks in flight between reading and packing (default 32 MiB). */
  budgetBytes?: number;
  /** Skips reading files whose stat is unchanged since the last backup (lib/files_cache.ts). */
  filesCache?: FilesCache;
  /** The command line recorded in the archive metadata (vger's arguments), if any. */
  commandLine?: string[];
}

/** Progress of a running backup. */
export interface BackupProgress {
  /** Items done. */
  files: number;
  /** Bytes read. */
  bytes: number;
  /** Path being read. */
  current: string;
}

/** What a backup did. */
export interface BackupResult {
  /** The committed archive. */
  archive: ManifestEntry;
  /** Its sizes. */
  stats: ArchiveStats;
  /** Warnings (skipped files); a non-empty list means exit code 3. */
  warnings: string[];
  /** Seconds it took. */
  seconds: number;
  /** Regular files taken from the files cache, unchanged and not read again. */
  unchangedFiles: number;
}

/**
 * A read block's room past a largest chunk (a block is both). 4 MiB against 8: the shared corpus's
 * first backup peaked 5-10 MiB lower at the same time (three runs each), 400k tiny files ~20 MiB.
 */
const READ_BLOCK = 4 << 20;
/** Bytes read at once: the next part is read on another thread while one is cut. */
const READ_PART = 2 << 20;
/** Chunks a block takes before it goes: tiny files' chunks must not pile up (objects per chunk). */
const BLOCK_JOBS = 4096;
/** Items waiting for their files' ids (or behind one that does) before the walk waits too. */
const ITEMS_WAITING = 1024;

/** A chunk in the read block, on its way to a worker; its id once known and claimed as new. */
interface ReadChunk extends Omit<BlockJob, "id"> {
  id?: Uint8Array;
  /** The file's ids, where the id goes (at `at`). */
  ids: Uint8Array[];
  at: number;
}

/** A file read: its chunk ids (complete once `hashed` settles, when set) and its size. */
interface ReadFile {
  ids: Uint8Array[];
  size: number;
  hashed?: Promise<unknown>;
}

/** The files cache's option for a file listed without extended attributes (one object). */
const NO_XATTRS = { noXattrs: true } as const;

/** The place of a chunk id still to be computed. */
const NO_ID = new Uint8Array(0);

/** Backs up the sources into a new archive. */
export async function backup(
  repo: Repository<Backend>,
  options: BackupOptions,
): Promise<BackupResult> {
  validateArchiveName(options.name);
  const started = new Date();
  const manifest = await repo.readManifest();
  if (manifest.archives.some((a) => a.name === options.name)) {
    throw new AlreadyExistsError(`Archive "${options.name}" already exists in "${repo.location}"`);
  }
  const sources = options.sources.map((s) => resolve(s));
  if (sources.length === 0) throw new NotFoundError("Nothing to back up: no source directories");
  for (const s of sources) {
    try {
      Deno.lstatSync(s);
    } catch (cause) {
      throw new NotFoundError(`Source "${s}" cannot be read: ${describeFsError(cause)}`, { cause });
    }
  }
  const index = options.index ?? await repo.readIndex();
  // started on first use: an unchanged re-backup seals nothing, and a worker costs ~25 MiB
  let codecs: CodecPool | undefined;
  const workers = CodecPool.sizeBesideBusyThread();
  const start = () => codecs ??= new CodecPool(repo.key.material, repo.config.encryption, workers);
  const pool: Codecs = {
    size: workers,
    encode: (...args) => start().encode(...args),
    hashBlock: (...args) => start().hashBlock(...args),
  };
  // packs are hashed in the workers: the reading thread is the busier one
  const session = new WriteSession(repo, index, {
    digest: (parts) => start().sha256(parts),
    hasher: () => start().hashStream(),
  });
  try {
    await reconcileWithPacks(repo, session, { onWarning: options.onWarning });
    const run = new BackupRun(
      repo,
      session,
      pool,
      await repo.chunker(),
      await Owners.load(),
      options,
    );
    await run.walk(sources);
    const items = await run.finish();
    const stats = run.stats();
    const meta: ArchiveMeta = {
      name: options.name,
      hostname: options.hostname ?? Deno.hostname(),
      username: options.username ?? run.username(),
      time: started.toISOString(),
      timeEnd: new Date().toISOString(),
      sources,
      items,
      stats,
    };
    if (options.commandLine !== undefined) meta.commandLine = options.commandLine;
    const archive = await session.commit(meta, { checkLock: options.checkLock });
    return {
      archive,
      stats,
      warnings: run.warnings,
      seconds: (Date.now() - started.getTime()) / 1000,
      unchangedFiles: run.unchangedFiles,
    };
  } catch (err) {
    await session.abort();
    throw err;
  } finally {
    void codecs?.close();
  }
}

/** What a backup asks of the codec pool. */
type Codecs = Pick<CodecPool, "size" | "encode" | "hashBlock">;

class BackupRun {
  readonly warnings: string[] = [];
  unchangedFiles = 0;
  readonly #repo: Repository<Backend>;
  readonly #session: WriteSession;
  readonly #pool: Codecs;
  readonly #chunker: Chunker;
  readonly #owners: Owners;
  readonly #options: BackupOptions;
  readonly #itemBuffer = new ItemStreamBuffer();
  readonly #itemIds: Uint8Array[] = [];
  /** Item blobs being sealed and packed (their failures go to #failure). */
  readonly #itemJobs = new Limiter(Infinity);
  /** Bytes of those item blobs, within the backup's byte budget. */
  readonly #itemBytes: ByteBudget;
  readonly #native = nativeFs();
  /** Inodes with more than one link met so far: their first names, for the later ones. */
  readonly #links = new HardLinks();
  #failure: unknown = null;
  /** The read block being filled: chunks are cut and hashed in place, never copied. */
  #block: Uint8Array;
  /** Where the unconsumed data of the file being read starts and ends in #block. */
  #start: number;
  #end: number;
  /** Bytes at the start of every read block that data never takes (see the constructor). */
  readonly #slack: number;
  /** The chunks cut in #block, sent to a worker with it once it is full. */
  #jobs: ReadChunk[] = [];
  /** Resolved once the worker #block goes to has hashed its chunks (made by the first chunk). */
  #blockHashed: PromiseWithResolvers<void> | null = null;
  /** The items to go out, in walk order, once their files' ids are back. */
  readonly #inOrder = new InOrder();
  /** Blocks back from the workers, for reuse. */
  readonly #spareBlocks: Uint8Array[] = [];
  // blocks at the workers (and their chunks on the way into packs): one per worker and one more,
  // within the byte budget, at least 2; a CPU stage, so the count does not depend on the backend
  readonly #blocksOut: Limiter;
  #files = 0;
  #original = 0;
  #compressed = 0;
  #lastProgress = 0;
  #lastYield = 0;

  constructor(
    repo: Repository<Backend>,
    session: WriteSession,
    pool: Codecs,
    chunker: Chunker,
    owners: Owners,
    options: BackupOptions,
  ) {
    this.#repo = repo;
    this.#session = session;
    this.#pool = pool;
    this.#chunker = chunker;
    this.#owners = owners;
    this.#options = options;
    const budget = options.budgetBytes ?? 32 << 20;
    this.#itemBytes = new ByteBudget(budget);
    // room before the data for the sealed chunks' growth: a worker seals them over the block
    this.#slack = 2 * BLOCK_JOBS * (repo.key.sealHead + 1 + repo.key.sealTail);
    this.#start = this.#end = this.#slack;
    this.#block = hugePageBuffer(this.#slack + repo.config.chunker.maxSize + READ_BLOCK);
    // one block at each worker and one waiting for the first to be free, within the budget
    const blocks = Math.max(2, Math.ceil(budget / this.#block.length));
    this.#blocksOut = new Limiter(Math.min(pool.size + 1, blocks));
  }

  username(): string {
    return Deno.env.get("USER") ?? this.#owners.userName(Deno.uid() ?? -1) ?? "unknown";
  }

  stats(): ArchiveStats {
    return {
      files: this.#files,
      original: this.#original,
      compressed: this.#compressed,
      deduplicated: this.#session.addedBytes,
    };
  }

  #warn(message: string): void {
    this.warnings.push(message);
    this.#options.onWarning?.(message);
  }

  /** {@linkcode #warn}, as a function to hand over (made once, not per entry). */
  readonly #warnOf = (message: string): void => this.#warn(message);

  #progress(current: string): void {
    if (!this.#options.onProgress) return;
    const now = Date.now();
    if (now - this.#lastProgress < 200) return;
    this.#lastProgress = now;
    this.#options.onProgress({ files: this.#files, bytes: this.#original, current });
  }

  /**
   * Lets timers and signals run now and then: reading and hashing are synchronous, so without
   * this a deduplicating backup would starve the lock refresh, Ctrl-C and the progress scan.
   */
  async #breathe(): Promise<void> {
    const now = performance.now();
    if (now - this.#lastYield < 50) return;
    this.#lastYield = now;
    await new Promise((resolve) => setTimeout(resolve, 0));
    throwIfAborted(this.#options.signal, "Backup"); // aborted by a timer or event just run
  }

  /** Backs up the sources, entry by entry as lib/walker.ts finds them. */
  async walk(sources: string[]): Promise<void> {
    const entries = walkSources(sources, {
      isExcluded: this.#options.isExcluded,
      excludeDirs: this.#options.excludeDirs,
      onWarning: (message) => this.#warn(message),
    });
    for (let n = 0;; n++) {
      // the clock is read every 16 entries: a cached entry takes microseconds, and a file being
      // read breathes between its chunks
      throwIfAborted(this.#options.signal, "Backup");
      if ((n & 15) === 0) await this.#breathe();
      if (this.#inOrder.waiting >= ITEMS_WAITING) await this.#itemsOut(ITEMS_WAITING / 2);
      const next = entries.next();
      if (next.done) return;
      if (next.value) await this.#storeEntry(next.value);
    }
  }

  /** Backs up one entry of the walk. */
  async #storeEntry({ path, rel, kind, st }: WalkEntry): Promise<void> {
    const item: Item = {
      path: rel,
      type: kind,
      mode: st.mode & 0o7777,
      uid: st.uid,
      gid: st.gid,
      user: this.#owners.userName(st.uid),
      group: this.#owners.groupName(st.gid),
      mtimeNs: st.mtimeNs,
      size: 0,
    };
    // a later name of a hard-linked inode: its first name's chunks, not read again (its item
    // goes out after the first name's, whose ids are then all there)
    const key = HardLinks.keyOf(st, kind);
    if (key !== undefined && this.#links.later(key, item)) {
      this.#addXattrs(item, path);
      const out = this.#inOrder.add(() => this.#itemOut(item));
      if (out) await out;
      return;
    }
    // a file's ids, computed by a worker: its item goes out once they are back
    let hashed: Promise<unknown> | undefined;
    let cacheRow: { st: EntryStat; ids: Uint8Array[]; noXattrs: boolean } | undefined;
    if (kind === "symlink") {
      try {
        item.target = Deno.readLinkSync(path);
      } catch (err) {
        throwIfNotPermitted(err);
        this.#warn(`Skipped "${path}": ${describeFsError(err)}`);
        return;
      }
      // xattrs are read once the entry proved readable, so a vanished entry gets one warning
      this.#addXattrs(item, path);
    } else if (kind === "file") {
      const cached = this.#fromCache(path, rel, st);
      const chunks = cached ?? await this.#readStable(path, st);
      if (chunks === null) return;
      item.mtimeNs = chunks.st.mtimeNs;
      item.chunks = chunks.ids;
      item.size = chunks.size;
      // unchanged since it was cached without extended attributes: none were added since (that
      // would have moved its ctime), so they are not listed again
      const noXattrs = cached?.noXattrs || !this.#addXattrs(item, path);
      // a file that changed while read is not trusted next time
      if (!chunks.changed && chunks.size === chunks.st.size) {
        cacheRow = { st: chunks.st, ids: chunks.ids, noXattrs };
      }
      hashed = chunks.hashed;
    } else {
      if (kind === "chardev" || kind === "blockdev") {
        item.major = st.rdevMajor;
        item.minor = st.rdevMinor;
      }
      // directories, FIFOs and devices: their lstat is all there is (a FIFO is never opened)
      this.#addXattrs(item, path);
    }
    if (key !== undefined) this.#links.remember(key, item, st.nlink);
    const out = this.#inOrder.add(() => {
      if (this.#failure) throw this.#failure; // the ids a worker did not send are missing
      if (cacheRow) {
        const { st, ids, noXattrs } = cacheRow;
        this.#options.filesCache?.record(rel, st, ids, noXattrs ? NO_XATTRS : {});
      }
      if (key !== undefined) this.#links.settled(key);
      return this.#emit(item);
    }, hashed);
    if (out) await out;
  }

  /** Adds an item whose ids are all there (unless the backup failed) to the stream. */
  #itemOut(item: Item): Promise<void> | undefined {
    if (this.#failure) throw this.#failure; // the ids a worker did not send are missing
    return this.#emit(item);
  }

  /**
   * Waits until at most `left` items wait to go out; the read block goes to a worker first when it
   * holds chunks (the items may be waiting for their ids).
   */
  async #itemsOut(left: number): Promise<void> {
    if (this.#jobs.length > 0) await this.#rotateBlock();
    await this.#inOrder.below(left);
  }

  /**
   * Reads an entry's extended attributes into its item; false when it has none (listed), true
   * when it has some or they could not be listed (without libc: not remembered as none).
   */
  #addXattrs(item: Item, path: string): boolean {
    const xattrs = readXattrs(this.#native, path, this.#warnOf);
    if (xattrs) item.xattrs = xattrs;
    return xattrs !== undefined;
  }

  /** The chunks of an unchanged file, from the files cache, when all are still stored. */
  #fromCache(
    path: string,
    rel: string,
    st: EntryStat,
  ): ReadFile & { st: EntryStat; changed: boolean; noXattrs: boolean } | null {
    const hit = this.#options.filesCache?.lookup(rel, st);
    if (!hit) return null;
    const { ids, noXattrs } = hit;
    // every chunk still stored (one index lookup each: a length of 0 is checked again)
    let compressed = 0;
    for (const id of ids) {
      const length = this.#session.storedLength(id);
      if (length === 0 && !this.#session.has(id)) return null;
      compressed += length;
    }
    this.#compressed += compressed;
    this.#original += st.size;
    this.unchangedFiles++;
    this.#progress(path);
    return { ids, size: st.size, st, changed: false, noXattrs };
  }

  /**
   * Reads a file and checks by its stat before and after (size, mtime, ctime, inode) that it did
   * not change meanwhile; a changed file is read once more, and when it changes again the second
   * read is kept with a warning naming the file. The chunks of a discarded read may already be
   * queued for storage: harmless, they are deduplicated or left unreferenced.
   */
  async #readStable(
    path: string,
    before: EntryStat,
  ): Promise<ReadFile & { st: EntryStat; changed: boolean } | null> {
    let st = before;
    for (let attempt = 0;; attempt++) {
      const original = this.#original;
      const read = await this.#readFile(path, st.size);
      if (read === null) return null;
      const { ids, size, after, hashed } = read;
      const changed = size !== st.size || statChanged(st, after);
      if (!changed) return { ids, size, st, changed: false, hashed };
      if (attempt > 0) {
        this.#warn(`File "${path}" changed while it was read: stored as read, may be inconsistent`);
        return { ids, size, st, changed: true, hashed };
      }
      this.#original = original; // the torn read's bytes do not count
      st = after;
    }
  }

  /**
   * Reads a file up to `listed` bytes (its size when listed: a file that grows while read is
   * not chased) and stats it through its descriptor once read (a file replaced meanwhile, by a
   * symlink, a FIFO or another file, shows there); null when it could not be read (warned).
   */
  async #readFile(path: string, listed: number): Promise<ReadFile & { after: EntryStat } | null> {
    let file: SourceFile;
    try {
      file = openSourceFile(path);
    } catch (err) {
      throwIfNotPermitted(err);
      this.#warn(`Skipped "${path}": ${describeFsError(err)}`);
      return null;
    }
    const ids: Uint8Array[] = [];
    const waits: Promise<void>[] = []; // the hashing of the blocks that hold its chunks
    let size = 0;
    // this file's data starts where the last file's ended; earlier chunks stay in the block
    this.#start = this.#end;
    let after: EntryStat;
    try {
      let remaining = listed;
      let eof = remaining === 0;
      // bytes after #start searched without a cut: more is read only then (not a largest chunk
      // ahead, which a block's turn copied whole), and only the new bytes are searched
      let scanned = 0;
      for (;;) {
        if (!eof && this.#end - this.#start <= scanned) {
          // the next part is read ahead on another thread while this one is cut, to where the
          // block's data ends: it is taken before the block turns
          const full = this.#block.length - this.#end < READ_BLOCK / 2;
          if ((full || this.#jobs.length >= BLOCK_JOBS) && !file.readingAhead) {
            await this.#rotateBlock();
          }
          const block = this.#block;
          const read = file.read(
            block.subarray(this.#end, this.#end + Math.min(remaining, READ_PART)),
          );
          const n = typeof read === "number" ? read : await read;
          this.#end += n;
          remaining -= n;
          eof = n === 0 || remaining === 0;
          if (!eof && block.length - this.#end >= READ_BLOCK / 2) {
            file.readAhead(block.subarray(this.#end, this.#end + Math.min(remaining, READ_PART)));
          }
          continue;
        }
        if (this.#start === this.#end) break;
        const start = this.#start;
        const cut = this.#chunker.findCut(this.#block.subarray(start, this.#end), eof, scanned);
        scanned = cut === 0 ? this.#end - start : 0;
        if (cut === 0) continue;
        // hashed by the worker its block goes to, which places the id in `ids`
        this.#jobs.push({ offset: start, length: cut, type: ObjectType.data, ids, at: ids.length });
        ids.push(NO_ID);
        const hashed = (this.#blockHashed ??= Promise.withResolvers()).promise;
        if (waits.at(-1) !== hashed) waits.push(hashed);
        this.#start += cut;
        size += cut;
        this.#original += cut;
        this.#progress(path);
        if (performance.now() - this.#lastYield >= 50) await this.#breathe();
      }
      after = file.stat();
    } catch (err) {
      // repository and pipeline failures end the backup; file-system errors skip the file
      if (err instanceof VgerError || err === this.#failure) throw err;
      throwIfNotPermitted(err);
      this.#warn(`Skipped "${path}": ${describeFsError(err)}`);
      // chunks of the skipped file already queued are stored anyway (harmless, deduplicated)
      this.#end = this.#start;
      return null;
    } finally {
      const closing = file.close();
      if (closing) await closing;
    }
    return { ids, size, after, hashed: waits.length > 1 ? Promise.all(waits) : waits[0] };
  }

  /** Places the id of a chunk in its file's ids; claims it, or counts it stored. */
  #claimChunk(job: ReadChunk, id: Uint8Array): void {
    job.ids[job.at] = id;
    if (this.#session.reserve(id)) job.id = id;
    else this.#compressed += this.#session.storedLength(id);
  }

  /**
   * Makes room in the read block: when it holds new chunks, it goes to a worker (which seals them
   * and sends the block back for reuse) and the unconsumed data moves to another block;
   * otherwise the unconsumed data moves to the block's start.
   */
  async #rotateBlock(): Promise<void> {
    if (this.#failure) throw this.#failure;
    const old = this.#block;
    const start = this.#start;
    const end = this.#end;
    if (this.#jobs.length === 0) {
      old.copyWithin(this.#slack, start, end);
    } else {
      await this.#blocksOut.ready(); // a free slot: #ship below takes it at once
      if (this.#failure) throw this.#failure;
      const next = this.#spareBlocks.pop() ?? hugePageBuffer(old.length);
      next.set(old.subarray(start, end), this.#slack);
      this.#block = next;
      this.#ship(old);
    }
    this.#start = this.#slack;
    this.#end = this.#slack + end - start;
  }

  /**
   * Sends a block and its chunks to a worker, which hashes them and keeps the block until this
   * thread has claimed them: only the new ones are sealed, and go into packs as they return.
   */
  #ship(block: Uint8Array): void {
    const jobs = this.#jobs;
    const hashed = this.#blockHashed;
    this.#jobs = [];
    this.#blockHashed = null;
    void this.#blocksOut.spawn(async () => {
      try {
        const held = await this.#pool.hashBlock(
          block,
          jobs.map(({ offset, length }) => ({ offset, length })),
        );
        for (let k = 0; k < jobs.length; k++) this.#claimChunk(jobs[k], held.ids[k]);
        hashed?.resolve();
        const fresh = jobs.filter((job) => job.id);
        const r = await held.seal(
          fresh.map(({ offset, length, id, type }) => ({ offset, length, id: id!, type })),
          this.#options.compression,
        );
        for (let i = 0; i < fresh.length; i++) {
          this.#compressed += r.sealed[i].length;
          const { id, type, length } = fresh[i];
          const room = this.#session.add(id!, type, r.sealed[i], length, r.crcs[i]);
          if (room) await room;
        }
        r.dispose(); // the packs copied them
        this.#spareBlocks.push(r.block); // which may have been views of it
      } catch (err) {
        this.#failure ??= err;
      } finally {
        hashed?.resolve(); // the items waiting for it see the failure
      }
    });
  }

  /** Hashes a blob and, when new, sends it to be sealed and packed. Returns its id. */
  async #store(type: ObjectTypeTag, data: Uint8Array): Promise<Uint8Array> {
    if (this.#failure) throw this.#failure;
    const id = await this.#repo.key.chunkId(data);
    if (!this.#session.reserve(id)) {
      this.#compressed += this.#session.storedLength(id);
      return id;
    }
    const len = data.length;
    await this.#itemBytes.reserve(len);
    if (this.#failure) throw this.#failure;
    void this.#itemJobs.spawn(() =>
      this.#pool.encode(type, id, data, this.#options.compression)
        .then((sealed) => {
          this.#compressed += sealed.length;
          return this.#session.add(id, type, sealed, len);
        })
        .catch((err) => {
          this.#failure ??= err;
        })
        .finally(() => this.#itemBytes.release(len))
    );
    return id;
  }

  /** Adds an item to the stream; a promise only when a blob of it is cut and stored. */
  #emit(item: Item): Promise<void> | undefined {
    this.#files++;
    const blob = this.#itemBuffer.addItem(item);
    if (!blob) return undefined;
    return this.#store(ObjectType.items, blob).then((id) => void this.#itemIds.push(id));
  }

  /** Stores the last item blob and waits for every chunk; returns the item-blob ids. */
  async finish(): Promise<Uint8Array[]> {
    if (this.#jobs.length > 0) {
      // the last block goes as it is (a copy of its used part: the worker takes the buffer)
      this.#ship(this.#block.slice(0, this.#end));
    }
    await this.#inOrder.settle();
    const blob = this.#itemBuffer.flush();
    if (blob) this.#itemIds.push(await this.#store(ObjectType.items, blob));
    await Promise.all([this.#blocksOut.settle(), this.#itemJobs.settle()]);
    if (this.#failure) throw this.#failure;
    return this.#itemIds;
  }
}
