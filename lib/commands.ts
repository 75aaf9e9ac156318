/**
 * One function per command: options in, result object out. No argv, no printing. What every
 * command does first (open, unlock, check against the client's memory, lock) is
 * lib/open_repository.ts; the key commands are lib/key_commands.ts.
 *
 * @module
 */

import type { Backend, ReadonlyBackend } from "../backends/backend.ts";
import "./platform_deno.ts"; // the native codecs and hashes (lib/platform.ts)
// the engines, and what only some commands use, are imported by the command that runs them:
// a command loads only its own modules (`vger list` of a small repository is mostly start-up)
import type { BackupOptions, BackupResult } from "./archiver.ts";
import type { CheckResult, RepairResult } from "./check_report.ts";
import type { CheckOptions } from "./checker.ts";
import type { CompactionResult, CompactOptions } from "./compactor.ts";
import { type Abortable, throwIfAborted } from "./errors.ts";
import { breakLocks, listLocks, type LockEntry } from "./repo_lock.ts";
import type { RetentionDecision, RetentionPolicy } from "./retention.ts";
import { type ArchiveMeta, type Item, validateArchiveName } from "./archive.ts";
import type { ManifestEntry } from "./manifest.ts";
import {
  type InitOptions,
  initRepository,
  type OpenOptions,
  removeStorageLeftovers,
  Repository,
  requireRole,
} from "./repository.ts";
import type { ExtractOptions, ExtractResult } from "./restorer.ts";
import { COMMIT_LOCK_KEY } from "./storage_keys.ts";
import { loadCodecs } from "./compress.ts";
import { ensureCreateHonoured, keyFingerprint } from "./known_repos.ts";
import { join } from "node:path";
import type { RepoConfig } from "./repo_config.ts";
import {
  type LockingOptions,
  openRepository,
  openRepositoryWithManifest,
  rememberManifest,
  saveRecord,
  type TrustingOptions,
  withReadLock,
  withRepoLock,
} from "./open_repository.ts";

export type { BackupOptions, BackupResult, ExtractOptions, ExtractResult, InitOptions };

/** `vger init`: creates the repository and (with `knownRepos.dir`) remembers it. */
export async function initCommand(
  backend: Backend,
  options: InitOptions & TrustingOptions,
): Promise<RepoConfig> {
  const dir = options.knownRepos?.dir;
  await ensureCreateHonoured(backend, { dir, onWarning: options.knownRepos?.onWarning });
  const config = await initRepository(backend, options);
  if (dir !== undefined) {
    // replaces any record of an earlier repository at this location
    const repo = await Repository.open(backend, { passphrase: options.passphrase });
    await saveRecord(dir, {
      location: repo.location,
      id: config.id,
      mode: config.encryption,
      fingerprint: await keyFingerprint(repo.key),
      counter: (await repo.readManifest()).counter ?? 0,
    }, options.knownRepos!);
  }
  return config;
}

/** `vger backup`. */
export async function backupCommand(
  backend: Backend,
  options: BackupOptions & OpenOptions & TrustingOptions & LockingOptions & IndexRebuildNotice & {
    /** Files cache directory (one subdirectory per repository id); none: read every file. */
    filesCacheDir?: string;
  },
): Promise<BackupResult> {
  validateArchiveName(options.name); // before anything is read or written
  throwIfAborted(options.signal, "Backup");
  await requireRole(backend, "append-only", "back up");
  // the files cache (keyed by the repository id, no key needed) loads while the key is derived
  const cacheModule = import("./files_cache.ts");
  const loadCache = (id: string) =>
    options.filesCacheDir === undefined
      ? undefined
      : cacheModule.then(({ FilesCache }) =>
        FilesCache.load(join(options.filesCacheDir!, id, "files"), { onWarning: options.onWarning })
      );
  let early: { id: string; cache: ReturnType<typeof loadCache> } | undefined;
  const [repo, { backup }] = await Promise.all([
    openRepository(backend, {
      ...options,
      onConfigRead: (id) => {
        early = { id, cache: loadCache(id) };
        early.cache?.catch(() => {}); // awaited below once the open succeeded
      },
    }),
    import("./archiver.ts"),
    loadCodecs(), // a missing permission is named here, before the codec workers start
  ]);
  // the id the open authenticated is the one read before (the same bytes); else load again
  const cache = early?.id === repo.config.id ? early.cache : loadCache(repo.config.id);
  await rebuildLostIndex(repo, options);
  const filesCache = await cache;
  let result: BackupResult;
  try {
    result = await withRepoLock(
      backend,
      "shared",
      "backup",
      options,
      (lock) =>
        backup(repo, {
          ...options,
          filesCache,
          checkLock: () => {
            // the last moment to stop: the commit that follows is atomic
            throwIfAborted(options.signal, "Backup");
            lock.assertHeld();
          },
        }),
    );
  } catch (err) {
    filesCache?.discard(); // the half-written new cache goes
    throw err;
  }
  await filesCache?.save({ onWarning: options.onWarning });
  await rememberManifest(repo, options);
  return result;
}

/** Told when an unreadable index was rebuilt from the packs. */
export interface IndexRebuildNotice {
  /** Receives one line saying why and how. */
  onIndexRebuilt?: (why: string) => void;
}

/**
 * A lost or unreadable index is rebuilt from the pack headers and written back (under an
 * exclusive lock), so that a backup can commit on top of it.
 */
async function rebuildLostIndex(
  repo: Repository<Backend>,
  options: LockingOptions & IndexRebuildNotice,
): Promise<void> {
  const { loadIndexOrRebuild, writeRebuiltIndex } = await import("./index_recovery.ts");
  const loaded = await loadIndexOrRebuild(repo);
  if (!loaded.rebuilt) return;
  await withRepoLock(repo.backend, "exclusive", "index rebuild", options, async (lock) => {
    // no index to salvage by: damaged packs are left to check --repair
    const r = await writeRebuiltIndex(repo, { checkLock: () => lock.assertHeld() });
    options.onIndexRebuilt?.(
      `${
        loaded.problem ?? "the index could not be read"
      }; wrote it back (${r.entries} blobs in ${r.packs} packs)`,
    );
  });
}

/** `vger list` without an archive: the manifest's archives. */
export async function listArchivesCommand(
  backend: ReadonlyBackend,
  options: OpenOptions & TrustingOptions,
): Promise<ManifestEntry[]> {
  // lock-free: the manifest the open's check read is as good as one read now
  const { repo, manifest } = await openRepositoryWithManifest(backend, options);
  return (manifest ?? await repo.readManifest()).archives;
}

/** `vger list --archive NAME`: yields the archive's items (optionally filtered by globs). */
export async function* listItemsCommand(
  backend: ReadonlyBackend,
  options: OpenOptions & TrustingOptions & IndexRebuildNotice & {
    archive: string;
    patterns?: string[];
    /** Hears the archive's metadata (sources, command line) before the first item. */
    onArchive?: (meta: ArchiveMeta) => void;
  },
): AsyncGenerator<Item> {
  // no lock: reading one archive's metadata blobs races with nothing but compact, which would
  // make a read fail cleanly rather than return wrong data
  const [repo, { loadIndexOrRebuild }, { readArchiveItems }, { PathSelector }] = await Promise
    .all([
      openRepository(backend, options),
      import("./index_recovery.ts"),
      import("./archive_items.ts"),
      import("./patterns.ts"),
    ]);
  const meta = await repo.readArchive(await repo.findArchive(options.archive));
  options.onArchive?.(meta);
  const loaded = await loadIndexOrRebuild(repo);
  if (loaded.rebuilt) {
    options.onIndexRebuilt?.(loaded.problem ?? "the index could not be read; rebuilt it");
  }
  const index = loaded.index;
  const selector = new PathSelector(options.patterns ?? []);
  for await (const item of readArchiveItems(repo, index, meta)) {
    if (selector.selects(item.path)) yield item;
  }
}

/** `vger delete`: removes archives from the manifest (data stays until compact). */
export async function deleteCommand(
  backend: Backend,
  options: OpenOptions & TrustingOptions & LockingOptions & {
    names: readonly string[];
    dryRun?: boolean;
  },
): Promise<ManifestEntry[]> {
  if (!options.dryRun) await requireRole(backend, "full", "delete archives");
  const [repo, { deleteArchives }] = await Promise.all([
    openRepository(backend, options),
    import("./archive_delete.ts"),
  ]);
  if (options.dryRun) return await deleteArchives(repo, options.names, { dryRun: true });
  const deleted = await withRepoLock(backend, "exclusive", "delete", options, (lock) => {
    lock.assertHeld();
    return deleteArchives(repo, options.names);
  });
  await rememberManifest(repo, options);
  return deleted;
}

/** What `vger prune` decided and did. */
export interface PruneResult {
  /** Every archive, newest first, with keep/prune and the rules that kept it. */
  decisions: RetentionDecision<ManifestEntry>[];
  /** The archives removed (none on a dry run). */
  deleted: ManifestEntry[];
}

/**
 * `vger prune`: applies the retention policy and deletes what it does not keep. An aborted
 * `signal` stops it before its one commit (then nothing is deleted), not after.
 */
export async function pruneCommand(
  backend: Backend,
  options: OpenOptions & TrustingOptions & LockingOptions & Abortable & {
    policy: RetentionPolicy;
    dryRun?: boolean;
    now?: Date;
  },
): Promise<PruneResult> {
  throwIfAborted(options.signal, "Prune");
  if (!options.dryRun) await requireRole(backend, "full", "prune archives");
  const [repo, { deleteArchives }, { applyRetention }] = await Promise.all([
    openRepository(backend, options),
    import("./archive_delete.ts"),
    import("./retention.ts"),
  ]);
  const decide = async () =>
    applyRetention((await repo.readManifest()).archives, options.policy, {
      now: options.now ?? new Date(),
    });
  if (options.dryRun) return { decisions: await decide(), deleted: [] };
  const result = await withRepoLock(backend, "exclusive", "prune", options, async (lock) => {
    const decisions = await decide();
    const drop = decisions.filter((d) => !d.keep).map((d) => d.archive.name);
    throwIfAborted(options.signal, "Prune");
    lock.assertHeld();
    return { decisions, deleted: drop.length === 0 ? [] : await deleteArchives(repo, drop) };
  });
  await rememberManifest(repo, options);
  return result;
}

/**
 * `vger compact`: rewrites or deletes packs with unused space (see lib/compactor.ts). An aborted
 * `signal` stops it between packs; new packs not yet in the committed index are left for the
 * next compact, and once the index is committed the old packs left undeleted are too.
 */
export async function compactCommand(
  backend: Backend,
  options: OpenOptions & TrustingOptions & LockingOptions & Abortable & {
    /** Rewrite packs whose unused share is at least this percent (0..100, default 20). */
    thresholdPercent?: number;
    /** Only plan; change nothing. */
    dryRun?: boolean;
    /** Compose new packs in storage when the backend can (vger-server); default true. */
    serverSide?: boolean;
    /** Called with the progress of each phase (copy, index, delete). */
    onProgress?: CompactOptions["onProgress"];
  },
): Promise<CompactionResult> {
  throwIfAborted(options.signal, "Compact");
  // a dry run writes nothing but its exclusive lock, which a read-only token may not take
  if (options.dryRun) await requireRole(backend, "append-only", "compact --dry-run");
  else await requireRole(backend, "full", "compact");
  const [repo, { CodecPool }, { compactRepository }, { removeUnlistedArchives }] = await Promise
    .all([
      openRepository(backend, options),
      import("./codec_pool.ts"),
      import("./compactor.ts"),
      import("./archive_delete.ts"),
      loadCodecs(),
    ]);
  return await withRepoLock(backend, "exclusive", "compact", options, async (lock) => {
    const pool = new CodecPool(repo.key.material, repo.config.encryption);
    try {
      const result = await compactRepository(repo, {
        thresholdPercent: options.thresholdPercent,
        dryRun: options.dryRun,
        serverSide: options.serverSide,
        onProgress: options.onProgress,
        signal: options.signal,
        pool,
        checkLock: () => lock.assertHeld(),
      });
      if (!options.dryRun) {
        throwIfAborted(options.signal, "Compact");
        // leftovers of killed processes: archive objects never committed, temp files of puts
        lock.assertHeld();
        await removeUnlistedArchives(repo);
        await removeStorageLeftovers(repo);
      }
      return result;
    } finally {
      pool.close();
    }
  });
}

/** `vger break-lock`: removes stale locks, or every lock with `all`. */
export async function breakLockCommand(
  backend: Backend,
  options: { all?: boolean } = {},
): Promise<LockEntry[]> {
  // other clients' locks: a read-only token may remove only its own
  await requireRole(backend, "append-only", "break locks");
  return await breakLocks(backend, { all: options.all });
}

/** `vger extract`. */
export async function extractCommand(
  backend: Backend,
  options:
    & ExtractOptions
    & OpenOptions
    & TrustingOptions
    & LockingOptions
    & IndexRebuildNotice,
): Promise<ExtractResult> {
  throwIfAborted(options.signal, "Extract");
  const [repo, { loadIndexOrRebuild }, { extract }] = await Promise.all([
    openRepository(backend, options),
    import("./index_recovery.ts"),
    import("./restorer.ts"),
    loadCodecs(),
  ]);
  // shared: compact (exclusive) must not delete packs this extract is reading
  return await withReadLock(backend, "extract", options, async () => {
    const loaded = await loadIndexOrRebuild(repo);
    if (loaded.rebuilt) {
      options.onIndexRebuilt?.(loaded.problem ?? "the index could not be read; rebuilt it");
    }
    return await extract(repo, { ...options, index: loaded.index });
  });
}

/**
 * `vger check`: structure, optionally every byte (`verifyData`); read-only. An aborted `signal`
 * stops it between packs and archives.
 */
export async function checkCommand(
  backend: Backend,
  options: OpenOptions & TrustingOptions & LockingOptions & Abortable & {
    /** Also read every pack and verify every blob (`--verify-data`). */
    verifyData?: boolean;
    /** Called after each pack (and as a pack's ranges arrive, when verifying data). */
    onProgress?: CheckOptions["onProgress"];
  },
): Promise<CheckResult> {
  throwIfAborted(options.signal, "Check");
  const [repo, { CodecPool }, { checkRepository }, { structureProblems }] = await Promise.all([
    openRepository(backend, options),
    import("./codec_pool.ts"),
    import("./checker.ts"),
    import("./check_report.ts"),
    options.verifyData ? loadCodecs() : undefined,
  ]);
  return await withReadLock(backend, "check", options, async () => {
    const pool = options.verifyData
      ? new CodecPool(repo.key.material, repo.config.encryption)
      : undefined;
    try {
      // a storage that checks the structure itself without the key (vger-server) goes first
      const server = await backend.checkStructure?.();
      const result = await checkRepository(repo, {
        verifyData: options.verifyData,
        pool,
        onProgress: options.onProgress,
        signal: options.signal,
      });
      if (server) result.problems = [...structureProblems(server), ...result.problems];
      // a lock left by a killed process blocks nobody but is worth a word (restic says so too)
      for (const lock of await listLocks(backend)) {
        if (!lock.stale || lock.key === COMMIT_LOCK_KEY) continue;
        const who = lock.info
          ? `${lock.info.command} on ${lock.info.host} (pid ${lock.info.pid}) since ${lock.info.time}`
          : "unreadable";
        result.problems.push({
          kind: "stale-lock",
          severity: "warning",
          message: `Stale lock ${lock.key}: ${who}; vger break-lock removes it`,
          affects: { archives: [], paths: [], pathsTruncated: false },
        });
      }
      return result;
    } finally {
      pool?.close();
    }
  });
}

/**
 * `vger check --repair`: rebuilds the index from the packs, salvages damaged packs (with
 * `verifyData`, also those with a blob that fails verification), drops archives whose file list
 * is unreadable.
 */
export async function repairCommand(
  backend: Backend,
  options: OpenOptions & TrustingOptions & LockingOptions & {
    dryRun?: boolean;
    verifyData?: boolean;
    onProgress?: CheckOptions["onProgress"];
    confirm(archives: string[]): Promise<boolean>;
  },
): Promise<RepairResult> {
  if (!options.dryRun) await requireRole(backend, "full", "repair it (check --repair)");
  const [repo, { CodecPool }, { repairRepository }] = await Promise.all([
    openRepository(backend, options),
    import("./codec_pool.ts"),
    import("./repair.ts"),
    options.verifyData ? loadCodecs() : undefined,
  ]);
  const result = await withRepoLock(
    backend,
    "exclusive",
    "check --repair",
    options,
    async (lock) => {
      const pool = options.verifyData
        ? new CodecPool(repo.key.material, repo.config.encryption)
        : undefined;
      try {
        return await repairRepository(repo, {
          dryRun: options.dryRun,
          verifyData: options.verifyData,
          pool,
          onProgress: options.onProgress,
          confirm: options.confirm,
          checkLock: () => lock.assertHeld(),
        });
      } finally {
        pool?.close();
      }
    },
  );
  await rememberManifest(repo, options);
  return result;
}
