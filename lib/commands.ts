/**
 * One function per command: options in, result object out. No argv, no printing.
 *
 * @module
 */

import type { Backend, ReadonlyBackend } from "../backends/backend.ts";
import { backup, type BackupOptions, type BackupResult } from "./archiver.ts";
import { deleteArchives, removeUnlistedArchives } from "./archive_delete.ts";
import { CodecPool } from "./codec_pool.ts";
import {
  checkRepository,
  type CheckResult,
  loadIndexOrRebuild,
  repairRepository,
  type RepairResult,
} from "./checker.ts";
import { type CompactionResult, compactRepository } from "./compactor.ts";
import { breakLocks, type LockEntry, type LockMode, RepoLock } from "./repo_lock.ts";
import { applyRetention, type RetentionDecision, type RetentionPolicy } from "./retention.ts";
import { decodeItems, type Item } from "./archive.ts";
import { ObjectType } from "./crypto.ts";
import { toHex } from "./ids.ts";
import type { ManifestEntry } from "./manifest.ts";
import { PathSelector } from "./patterns.ts";
import { type InitOptions, initRepository, type OpenOptions, Repository } from "./repository.ts";
import { extract, type ExtractOptions, type ExtractResult } from "./restorer.ts";
import type { RepoConfig } from "./repo_config.ts";

export type { BackupOptions, BackupResult, ExtractOptions, ExtractResult, InitOptions };

/** How commands take the repository lock. */
export interface LockingOptions {
  /** Wait this long for a conflicting lock to go (default: fail at once). */
  lockWaitMs?: number;
  /** Told about the lock once held (the CLI releases it on Ctrl-C). */
  onLock?: (lock: RepoLock) => void;
}

/** Runs fn under a repository lock of the given mode, released afterwards. */
async function withRepoLock<T>(
  backend: Backend,
  mode: LockMode,
  command: string,
  options: LockingOptions,
  fn: (lock: RepoLock) => Promise<T>,
): Promise<T> {
  const lock = await RepoLock.acquire(backend, mode, { command, waitMs: options.lockWaitMs ?? 0 });
  options.onLock?.(lock);
  try {
    return await fn(lock);
  } finally {
    await lock.release();
  }
}

/** `vger init`. */
export function initCommand(backend: Backend, options: InitOptions): Promise<RepoConfig> {
  return initRepository(backend, options);
}

/** `vger backup`. */
export async function backupCommand(
  backend: Backend,
  options: BackupOptions & OpenOptions & LockingOptions & IndexRebuildNotice,
): Promise<BackupResult> {
  const repo = await Repository.open(backend, options);
  await rebuildLostIndex(repo, options);
  return await withRepoLock(
    backend,
    "shared",
    "backup",
    options,
    (lock) => backup(repo, { ...options, checkLock: () => lock.assertHeld() }),
  );
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
  const loaded = await loadIndexOrRebuild(repo);
  if (!loaded.rebuilt) return;
  await withRepoLock(repo.backend, "exclusive", "index rebuild", options, async (lock) => {
    const r = await repairRepository(repo, {
      confirm: () => Promise.resolve(false),
      checkLock: () => lock.assertHeld(),
    });
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
  options: OpenOptions,
): Promise<ManifestEntry[]> {
  const repo = await Repository.open(backend, options);
  return (await repo.readManifest()).archives;
}

/** `vger list --archive NAME`: yields the archive's items (optionally filtered by globs). */
export async function* listItemsCommand(
  backend: ReadonlyBackend,
  options: OpenOptions & IndexRebuildNotice & { archive: string; patterns?: string[] },
): AsyncGenerator<Item> {
  // no lock: reading one archive's metadata blobs races with nothing but compact, which would
  // make a read fail cleanly rather than return wrong data
  const repo = await Repository.open(backend, options);
  const meta = await repo.readArchive(await repo.findArchive(options.archive));
  const loaded = await loadIndexOrRebuild(repo);
  if (loaded.rebuilt) {
    options.onIndexRebuilt?.(loaded.problem ?? "the index could not be read; rebuilt it");
  }
  const index = loaded.index;
  const selector = new PathSelector(options.patterns ?? []);
  for (const id of meta.items) {
    const blob = await repo.readBlob(index, id, ObjectType.items);
    for (const item of decodeItems(blob, `Metadata blob ${toHex(id)}`)) {
      if (selector.selects(item.path)) yield item;
    }
  }
}

/** `vger delete`: removes archives from the manifest (data stays until compact). */
export async function deleteCommand(
  backend: Backend,
  options: OpenOptions & LockingOptions & { names: readonly string[]; dryRun?: boolean },
): Promise<ManifestEntry[]> {
  const repo = await Repository.open(backend, options);
  if (options.dryRun) return await deleteArchives(repo, options.names, { dryRun: true });
  return await withRepoLock(backend, "exclusive", "delete", options, (lock) => {
    lock.assertHeld();
    return deleteArchives(repo, options.names);
  });
}

/** What `vger prune` decided and did. */
export interface PruneResult {
  /** Every archive, newest first, with keep/prune and the rules that kept it. */
  decisions: RetentionDecision<ManifestEntry>[];
  /** The archives removed (none on a dry run). */
  deleted: ManifestEntry[];
}

/** `vger prune`: applies the retention policy and deletes what it does not keep. */
export async function pruneCommand(
  backend: Backend,
  options: OpenOptions & LockingOptions & {
    policy: RetentionPolicy;
    dryRun?: boolean;
    now?: Date;
  },
): Promise<PruneResult> {
  const repo = await Repository.open(backend, options);
  const decide = async () =>
    applyRetention((await repo.readManifest()).archives, options.policy, {
      now: options.now ?? new Date(),
    });
  if (options.dryRun) return { decisions: await decide(), deleted: [] };
  return await withRepoLock(backend, "exclusive", "prune", options, async (lock) => {
    const decisions = await decide();
    const drop = decisions.filter((d) => !d.keep).map((d) => d.archive.name);
    lock.assertHeld();
    return { decisions, deleted: drop.length === 0 ? [] : await deleteArchives(repo, drop) };
  });
}

/** `vger compact`: rewrites or deletes packs with unused space (see lib/compactor.ts). */
export async function compactCommand(
  backend: Backend,
  options: OpenOptions & LockingOptions & { thresholdPercent?: number; dryRun?: boolean },
): Promise<CompactionResult> {
  const repo = await Repository.open(backend, options);
  return await withRepoLock(backend, "exclusive", "compact", options, async (lock) => {
    const pool = new CodecPool(repo.key.material, repo.config.encryption);
    try {
      const result = await compactRepository(repo, {
        thresholdPercent: options.thresholdPercent,
        dryRun: options.dryRun,
        pool,
        checkLock: () => lock.assertHeld(),
      });
      if (!options.dryRun) {
        // leftovers of killed processes: archive objects never committed, temp files of puts
        lock.assertHeld();
        await removeUnlistedArchives(repo);
        await backend.removeLeftovers?.();
      }
      return result;
    } finally {
      pool.close();
    }
  });
}

/** `vger break-lock`: removes stale locks, or every lock with `all`. */
export function breakLockCommand(
  backend: Backend,
  options: { all?: boolean } = {},
): Promise<LockEntry[]> {
  return breakLocks(backend, { all: options.all });
}

/** `vger extract`. */
export async function extractCommand(
  backend: Backend,
  options:
    & ExtractOptions
    & OpenOptions
    & LockingOptions
    & IndexRebuildNotice,
): Promise<ExtractResult> {
  const repo = await Repository.open(backend, options);
  // shared: compact (exclusive) must not delete packs this extract is reading
  return await withRepoLock(backend, "shared", "extract", options, async () => {
    const loaded = await loadIndexOrRebuild(repo);
    if (loaded.rebuilt) {
      options.onIndexRebuilt?.(loaded.problem ?? "the index could not be read; rebuilt it");
    }
    return await extract(repo, { ...options, index: loaded.index });
  });
}

/** `vger check`: structure, optionally every byte (`verifyData`); read-only. */
export async function checkCommand(
  backend: Backend,
  options: OpenOptions & LockingOptions & { verifyData?: boolean },
): Promise<CheckResult> {
  const repo = await Repository.open(backend, options);
  return await withRepoLock(backend, "shared", "check", options, async () => {
    const pool = options.verifyData
      ? new CodecPool(repo.key.material, repo.config.encryption)
      : undefined;
    try {
      return await checkRepository(repo, { verifyData: options.verifyData, pool });
    } finally {
      pool?.close();
    }
  });
}

/** `vger check --repair`: rebuilds the index from the packs, drops archives whose data is gone. */
export async function repairCommand(
  backend: Backend,
  options: OpenOptions & LockingOptions & {
    dryRun?: boolean;
    confirm(archives: string[]): Promise<boolean>;
  },
): Promise<RepairResult> {
  const repo = await Repository.open(backend, options);
  return await withRepoLock(
    backend,
    "exclusive",
    "check --repair",
    options,
    (lock) =>
      repairRepository(repo, {
        dryRun: options.dryRun,
        confirm: options.confirm,
        checkLock: () => lock.assertHeld(),
      }),
  );
}
