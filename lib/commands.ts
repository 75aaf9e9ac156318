/**
 * One function per command: options in, result object out. No argv, no printing.
 *
 * @module
 */

import type { Backend, ReadonlyBackend } from "../backends/backend.ts";
import "./platform_deno.ts"; // the native codecs and hashes (lib/platform.ts)
import { backup, type BackupOptions, type BackupResult } from "./archiver.ts";
import { deleteArchives, removeUnlistedArchives } from "./archive_delete.ts";
import { CodecPool } from "./codec_pool.ts";
import {
  type CheckOptions,
  checkRepository,
  type CheckResult,
  loadIndexOrRebuild,
  repairRepository,
  type RepairResult,
} from "./checker.ts";
import { type CompactionResult, type CompactOptions, compactRepository } from "./compactor.ts";
import { breakLocks, listLocks, type LockEntry, type LockMode, RepoLock } from "./repo_lock.ts";
import { applyRetention, type RetentionDecision, type RetentionPolicy } from "./retention.ts";
import { decodeItems, type Item, validateArchiveName } from "./archive.ts";
import { type EncryptionMode, ObjectType, RepoKey } from "./crypto.ts";
import {
  AlreadyExistsError,
  BackendError,
  DecryptionError,
  errorMessage,
  IntegrityError,
  LockedError,
  NotFoundError,
  UsageError,
} from "./errors.ts";
import { bytesEqual, toHex } from "./ids.ts";
import {
  type KdfParams,
  MAX_KEY_FILE_BYTES,
  parseKeyFile,
  rewrapKeyFile,
  unwrapKey,
  validateKdf,
} from "./key_file.ts";
import type { ManifestEntry } from "./manifest.ts";
import { PathSelector } from "./patterns.ts";
import { type InitOptions, initRepository, type OpenOptions, Repository } from "./repository.ts";
import { extract, type ExtractOptions, type ExtractResult } from "./restorer.ts";
import { COMMIT_LOCK_KEY, CONFIG_KEY, KEY_FILE_KEY } from "./storage_keys.ts";
import { FilesCache } from "./files_cache.ts";
import {
  checkKnownRepository,
  keyFingerprint,
  type KnownRepository,
  loadKnownRepository,
  saveKnownRepository,
  type SeenRepository,
} from "./known_repos.ts";
import { join } from "node:path";
import {
  MAX_REPO_CONFIG_BYTES,
  parseRepoConfig,
  type RepoConfig,
  type UnverifiedConfig,
  verifyRepoConfig,
} from "./repo_config.ts";

export type { BackupOptions, BackupResult, ExtractOptions, ExtractResult, InitOptions };

/** How commands take the repository lock. */
export interface LockingOptions {
  /** Wait this long for a conflicting lock to go (default: fail at once). */
  lockWaitMs?: number;
  /** Told about the lock once held (the CLI releases it on Ctrl-C). */
  onLock?: (lock: RepoLock) => void;
  /**
   * Take no lock (`--no-lock`, for a read-only repository): only the commands that never write
   * honour it (extract, check); the others refuse it.
   */
  noLock?: boolean;
}

/** Runs fn under a repository lock of the given mode, released afterwards. */
async function withRepoLock<T>(
  backend: Backend,
  mode: LockMode,
  command: string,
  options: LockingOptions,
  fn: (lock: RepoLock) => Promise<T>,
): Promise<T> {
  if (options.noLock) {
    throw new UsageError(`${command} writes to the repository: it cannot run with --no-lock`);
  }
  let lock: RepoLock;
  try {
    lock = await RepoLock.acquire(backend, mode, { command, waitMs: options.lockWaitMs ?? 0 });
  } catch (err) {
    throw readOnlyLockError(backend, err) ?? err;
  }
  options.onLock?.(lock);
  try {
    return await fn(lock);
  } finally {
    await lock.release();
  }
}

/** Runs a command that only reads under a shared lock, or with none when `noLock` is set. */
function withReadLock<T>(
  backend: Backend,
  command: string,
  options: LockingOptions,
  fn: () => Promise<T>,
): Promise<T> {
  return options.noLock
    ? fn()
    : withRepoLock(backend, "shared", command, { ...options, noLock: false }, fn);
}

/** A clear error for a lock that cannot be written because the repository is read-only. */
function readOnlyLockError(backend: Backend, err: unknown): LockedError | undefined {
  if (!(err instanceof BackendError)) return undefined;
  const why = /: (permission denied|read-only file system)$/.exec(err.message)?.[1];
  if (why === undefined) return undefined;
  return new LockedError(
    `Cannot lock repository "${backend.location}": read-only (${why}; ` +
      "use --no-lock for list, extract and check)",
    { cause: err },
  );
}

/**
 * How a command checks the repository against the configured mode and this client's memory of
 * it (lib/known_repos.ts), before anything is written. Without `knownRepos`, no check.
 */
export interface TrustingOptions {
  /** The check's settings. */
  knownRepos?: {
    /** Cache directory holding the memory (`known-repos/`); none: only the mode is checked. */
    dir?: string;
    /** The mode the configuration names; none: the remembered one, else aes256gcm. */
    configuredMode?: EncryptionMode;
    /** Accept a changed repository and rewrite the memory (`--trust-repository`). */
    trust?: boolean;
    /** Told when the memory cannot be saved (the command goes on). */
    onWarning?: (message: string) => void;
  };
}

/**
 * Checks what a repository shows against the configuration and the memory; refuses with an
 * IntegrityError, else remembers what it saw. The record is saved right after the check, and
 * raised again by {@linkcode rememberManifest} after a command wrote the manifest.
 */
async function trustRepository(
  location: string,
  show: () => Promise<SeenRepository>,
  options: TrustingOptions,
): Promise<KnownRepository | null> {
  const k = options.knownRepos;
  if (!k) return null;
  // the record before the repository's manifest: a record that another client saved meanwhile
  // holds a counter already written, so never one above the counter read next (no false alarm)
  const known = k.dir === undefined || k.trust ? null : await loadKnownRepository(k.dir, location);
  const seen = await show();
  const record = checkKnownRepository(known, seen, {
    configuredMode: k.configuredMode,
    trust: k.trust,
  });
  if (k.dir !== undefined && !sameRecord(known, record)) await saveRecord(k.dir, record, k);
  return record;
}

function sameRecord(a: KnownRepository | null, b: KnownRepository): boolean {
  return a !== null && a.id === b.id && a.mode === b.mode && a.fingerprint === b.fingerprint &&
    a.counter === b.counter;
}

async function saveRecord(
  dir: string,
  record: KnownRepository,
  options: { onWarning?: (message: string) => void },
): Promise<void> {
  try {
    await saveKnownRepository(dir, record);
  } catch (err) {
    options.onWarning?.(errorMessage(err));
  }
}

/** Opens and unlocks a repository, then checks it with {@linkcode trustRepository}. */
async function openRepository<B extends ReadonlyBackend>(
  backend: B,
  options: OpenOptions & TrustingOptions,
): Promise<Repository<B>> {
  const repo = await Repository.open(backend, options);
  const record = await trustRepository(repo.location, async () => {
    let counter: number | null = null;
    try {
      counter = (await repo.readManifest()).counter ?? 0;
    } catch (err) {
      // a damaged or missing manifest is the command's to report (check --repair must run)
      if (!(err instanceof IntegrityError || err instanceof NotFoundError)) throw err;
    }
    return {
      location: repo.location,
      id: repo.config.id,
      mode: repo.config.encryption,
      fingerprint: await keyFingerprint(repo.key),
      counter,
    };
  }, options);
  // every later read of the manifest by this command must be at least as new (the storage could
  // serve the current manifest to the check and an old one to the command)
  if (record) repo.noteManifestCounter(record.counter);
  return repo;
}

/** After a command wrote the manifest: raises the remembered counter to the one written. */
async function rememberManifest(repo: Repository, options: TrustingOptions): Promise<void> {
  const k = options.knownRepos;
  if (k?.dir === undefined) return;
  try {
    const known = await loadKnownRepository(k.dir, repo.location);
    if (known?.id !== repo.config.id || repo.manifestCounter <= known.counter) return;
    await saveRecord(k.dir, { ...known, counter: repo.manifestCounter }, k);
  } catch (err) {
    k.onWarning?.(errorMessage(err));
  }
}

/** `vger init`: creates the repository and (with `knownRepos.dir`) remembers it. */
export async function initCommand(
  backend: Backend,
  options: InitOptions & TrustingOptions,
): Promise<RepoConfig> {
  const config = await initRepository(backend, options);
  const dir = options.knownRepos?.dir;
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
  const repo = await openRepository(backend, options);
  await rebuildLostIndex(repo, options);
  const filesCache = options.filesCacheDir === undefined
    ? undefined
    : await FilesCache.load(join(options.filesCacheDir, repo.config.id, "files"), {
      onWarning: options.onWarning,
    });
  const result = await withRepoLock(
    backend,
    "shared",
    "backup",
    options,
    (lock) => backup(repo, { ...options, filesCache, checkLock: () => lock.assertHeld() }),
  );
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
  const loaded = await loadIndexOrRebuild(repo);
  if (!loaded.rebuilt) return;
  await withRepoLock(repo.backend, "exclusive", "index rebuild", options, async (lock) => {
    const r = await repairRepository(repo, {
      confirm: () => Promise.resolve(false),
      salvage: false, // no index to salvage by: leave damaged packs to check --repair
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
  options: OpenOptions & TrustingOptions,
): Promise<ManifestEntry[]> {
  const repo = await openRepository(backend, options);
  return (await repo.readManifest()).archives;
}

/** `vger list --archive NAME`: yields the archive's items (optionally filtered by globs). */
export async function* listItemsCommand(
  backend: ReadonlyBackend,
  options: OpenOptions & TrustingOptions & IndexRebuildNotice & {
    archive: string;
    patterns?: string[];
  },
): AsyncGenerator<Item> {
  // no lock: reading one archive's metadata blobs races with nothing but compact, which would
  // make a read fail cleanly rather than return wrong data
  const repo = await openRepository(backend, options);
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
  options: OpenOptions & TrustingOptions & LockingOptions & {
    names: readonly string[];
    dryRun?: boolean;
  },
): Promise<ManifestEntry[]> {
  const repo = await openRepository(backend, options);
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

/** `vger prune`: applies the retention policy and deletes what it does not keep. */
export async function pruneCommand(
  backend: Backend,
  options: OpenOptions & TrustingOptions & LockingOptions & {
    policy: RetentionPolicy;
    dryRun?: boolean;
    now?: Date;
  },
): Promise<PruneResult> {
  const repo = await openRepository(backend, options);
  const decide = async () =>
    applyRetention((await repo.readManifest()).archives, options.policy, {
      now: options.now ?? new Date(),
    });
  if (options.dryRun) return { decisions: await decide(), deleted: [] };
  const result = await withRepoLock(backend, "exclusive", "prune", options, async (lock) => {
    const decisions = await decide();
    const drop = decisions.filter((d) => !d.keep).map((d) => d.archive.name);
    lock.assertHeld();
    return { decisions, deleted: drop.length === 0 ? [] : await deleteArchives(repo, drop) };
  });
  await rememberManifest(repo, options);
  return result;
}

/** `vger compact`: rewrites or deletes packs with unused space (see lib/compactor.ts). */
export async function compactCommand(
  backend: Backend,
  options: OpenOptions & TrustingOptions & LockingOptions & {
    thresholdPercent?: number;
    dryRun?: boolean;
    onProgress?: CompactOptions["onProgress"];
  },
): Promise<CompactionResult> {
  const repo = await openRepository(backend, options);
  return await withRepoLock(backend, "exclusive", "compact", options, async (lock) => {
    const pool = new CodecPool(repo.key.material, repo.config.encryption);
    try {
      const result = await compactRepository(repo, {
        thresholdPercent: options.thresholdPercent,
        dryRun: options.dryRun,
        onProgress: options.onProgress,
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
    & TrustingOptions
    & LockingOptions
    & IndexRebuildNotice,
): Promise<ExtractResult> {
  const repo = await openRepository(backend, options);
  // shared: compact (exclusive) must not delete packs this extract is reading
  return await withReadLock(backend, "extract", options, async () => {
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
  options: OpenOptions & TrustingOptions & LockingOptions & {
    verifyData?: boolean;
    onProgress?: CheckOptions["onProgress"];
  },
): Promise<CheckResult> {
  const repo = await openRepository(backend, options);
  return await withReadLock(backend, "check", options, async () => {
    const pool = options.verifyData
      ? new CodecPool(repo.key.material, repo.config.encryption)
      : undefined;
    try {
      const result = await checkRepository(repo, {
        verifyData: options.verifyData,
        pool,
        onProgress: options.onProgress,
      });
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
  const repo = await openRepository(backend, options);
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

// ---------------------------------------------------------------------------------------------
// Key management: `vger key change-passphrase | export | import`

/**
 * The repository's config, parsed but not yet authenticated. `action` completes "Cannot ..." in
 * messages. Key commands only make sense for an encrypted repository.
 */
async function encryptedConfig(
  backend: ReadonlyBackend,
  action: string,
): Promise<UnverifiedConfig> {
  const bytes = await backend.get(CONFIG_KEY, { maxBytes: MAX_REPO_CONFIG_BYTES });
  if (bytes === null) {
    throw new NotFoundError(`Cannot ${action}: config not found (is it a vger repository?)`);
  }
  const unverified = parseRepoConfig(bytes);
  if (unverified.config.encryption === "none") {
    throw new UsageError(`Cannot ${action}: the repository is not encrypted`);
  }
  return unverified;
}

/**
 * Unwraps key file bytes with a passphrase and authenticates the repository's config with the
 * key; returns the key material. Proves the file is this repository's key, not just a key.
 */
async function unlockKeyFile(
  keyFile: Uint8Array,
  passphrase: string,
  config: UnverifiedConfig,
  location: string,
): Promise<Uint8Array> {
  const parsed = await parseKeyFile(keyFile);
  if (parsed.kdf !== "argon2id") {
    throw new IntegrityError(
      `Repository "${location}" is inconsistent: config says encryption "${config.config.encryption}" but the key file is not encrypted`,
    );
  }
  const material = await unwrapKey(parsed, passphrase, location);
  await verifyRepoConfig(config, await RepoKey.fromMaterial(material, config.config.encryption));
  return material;
}

/**
 * Key commands check and remember the repository (lib/known_repos.ts) by its config and key; they
 * do not read the manifest, so the remembered counter stays.
 */
async function trustKey(
  location: string,
  config: RepoConfig,
  material: Uint8Array,
  options: TrustingOptions,
): Promise<void> {
  await trustRepository(location, async () => ({
    location,
    id: config.id,
    mode: config.encryption,
    fingerprint: await keyFingerprint(await RepoKey.fromMaterial(material, config.encryption)),
    counter: null,
  }), options);
}

/** Options of {@linkcode keyChangePassphraseCommand}. */
export interface KeyChangePassphraseOptions extends LockingOptions, TrustingOptions {
  /** The current passphrase. */
  passphrase: string;
  /** The new passphrase. */
  newPassphrase: string;
  /** Argon2id costs of the new wrapping (default: those of the current key file). */
  kdf?: KdfParams;
}

/** What `vger key change-passphrase` did. */
export interface KeyChangePassphraseResult {
  /** The Argon2id costs the key file is now wrapped with. */
  kdf: KdfParams;
}

/**
 * `vger key change-passphrase`: wraps the master key under a new passphrase, under the exclusive
 * repository lock. Only `keys/repokey` changes: every other object is sealed with the master key,
 * which stays the same. The new key file replaces the old one in a single put, which the backend
 * contract makes atomic, so a crash leaves the old key file (the old passphrase opens the
 * repository) or the new one (the new passphrase does), never none and never a mix. The written
 * file is read back and unwrapped with the new passphrase before returning; if that fails, the old
 * bytes are put back and the error says so. A copy of the old key file (an earlier `key export`)
 * still opens the repository with the old passphrase: changing the passphrase does not revoke it.
 */
export async function keyChangePassphraseCommand(
  backend: Backend,
  options: KeyChangePassphraseOptions,
): Promise<KeyChangePassphraseResult> {
  const location = backend.location;
  const action = `change the passphrase of repository "${location}"`;
  if (options.kdf) validateKdf(options.kdf);
  return await withRepoLock(
    backend,
    "exclusive",
    "key change-passphrase",
    options,
    async (lock) => {
      const config = await encryptedConfig(backend, action);
      const old = await backend.get(KEY_FILE_KEY, { maxBytes: MAX_KEY_FILE_BYTES });
      if (old === null) {
        throw new NotFoundError(
          `Cannot ${action}: ${KEY_FILE_KEY} not found (restore it with vger key import)`,
        );
      }
      const next = await rewrapKeyFile(old, {
        passphrase: options.passphrase,
        newPassphrase: options.newPassphrase,
        kdf: options.kdf,
        location,
      });
      // The current key file must be this repository's key, or we would re-wrap a stranger's.
      await verifyRepoConfig(
        config,
        await RepoKey.fromMaterial(next.material, config.config.encryption),
      );
      await trustKey(location, config.config, next.material, options);
      lock.assertHeld();
      await backend.put(KEY_FILE_KEY, next.bytes);
      try {
        const back = await backend.get(KEY_FILE_KEY, { maxBytes: MAX_KEY_FILE_BYTES });
        if (back === null) throw new IntegrityError(`${KEY_FILE_KEY} is missing after writing it`);
        const material = await unlockKeyFile(back, options.newPassphrase, config, location);
        if (!bytesEqual(material, next.material)) {
          throw new IntegrityError(`${KEY_FILE_KEY} holds a different key after writing it`);
        }
      } catch (cause) {
        await restoreKeyFile(backend, old, `Cannot ${action}`, cause);
      }
      return { kdf: next.kdf };
    },
  );
}

/** Puts a previous key file back after a failed write, and throws saying what happened. */
async function restoreKeyFile(
  backend: Backend,
  previous: Uint8Array | null,
  failure: string,
  cause: unknown,
): Promise<never> {
  const why = errorMessage(cause);
  try {
    if (previous === null) await backend.delete(KEY_FILE_KEY);
    else await backend.put(KEY_FILE_KEY, previous);
  } catch (err) {
    throw new IntegrityError(
      `${failure}: the written key file did not read back correctly (${why}), and restoring the previous one failed too (${
        errorMessage(err)
      }); import a key export with vger key import`,
      { cause },
    );
  }
  throw new IntegrityError(
    `${failure}: the written key file did not read back correctly (${why}); the previous one was put back`,
    { cause },
  );
}

/** Options of {@linkcode keyExportCommand}. */
export interface KeyExportOptions extends TrustingOptions {
  /** The passphrase the key file is wrapped under. */
  passphrase: string;
}

/**
 * `vger key export`: the bytes of `keys/repokey`, for safekeeping, once proven good: they
 * unwrap with the passphrase and authenticate this repository's config. The export is still
 * protected by the passphrase; keep both, apart.
 */
export async function keyExportCommand(
  backend: ReadonlyBackend,
  options: KeyExportOptions,
): Promise<Uint8Array> {
  const location = backend.location;
  const action = `export the key of repository "${location}"`;
  const config = await encryptedConfig(backend, action);
  const keyFile = await backend.get(KEY_FILE_KEY, { maxBytes: MAX_KEY_FILE_BYTES });
  if (keyFile === null) throw new NotFoundError(`Cannot ${action}: ${KEY_FILE_KEY} not found`);
  const material = await unlockKeyFile(keyFile, options.passphrase, config, location);
  await trustKey(location, config.config, material, options);
  return keyFile;
}

/** Options of {@linkcode keyImportCommand}. */
export interface KeyImportOptions extends LockingOptions, TrustingOptions {
  /** The key file to import (what `vger key export` wrote). */
  keyFile: Uint8Array;
  /** The passphrase the imported key file is wrapped under. */
  passphrase: string;
  /** Replace an intact `keys/repokey` with different bytes (default: refuse). */
  force?: boolean;
  /** Name of the imported file in messages (default "to import"). */
  source?: string;
}

/** What `keys/repokey` was before an import. */
export type PreviousKeyFile = "missing" | "damaged" | "intact" | "identical";

/** What `vger key import` did. */
export interface KeyImportResult {
  /**
   * The key file found: missing, damaged (did not parse) or intact (replaced, with `force`);
   * identical means it already had the imported bytes and nothing was written.
   */
  previous: PreviousKeyFile;
}

/**
 * `vger key import`: restores `keys/repokey` from an export, under the exclusive repository
 * lock. The file must unwrap with the passphrase and authenticate this repository's config (a
 * key of another repository is refused) before anything is written. A missing or damaged key
 * file is replaced; an intact one only with `force`. The new file is written in one atomic put
 * and read back; if it does not read back, the previous state is restored.
 */
export async function keyImportCommand(
  backend: Backend,
  options: KeyImportOptions,
): Promise<KeyImportResult> {
  const location = backend.location;
  const action = `import a key into repository "${location}"`;
  const source = options.source === undefined ? "to import" : `"${options.source}"`;
  const parsed = await parseKeyFile(options.keyFile, { name: source });
  return await withRepoLock(backend, "exclusive", "key import", options, async (lock) => {
    const config = await encryptedConfig(backend, action);
    if (parsed.kdf !== "argon2id") {
      throw new UsageError(
        `Cannot ${action}: key file ${source} is of an unencrypted repository`,
      );
    }
    let material: Uint8Array;
    try {
      material = await unwrapKey(parsed, options.passphrase, location);
    } catch (cause) {
      if (!(cause instanceof DecryptionError)) throw cause;
      throw new DecryptionError(`Cannot ${action}: wrong passphrase for key file ${source}`, {
        cause,
      });
    }
    try {
      await verifyRepoConfig(
        config,
        await RepoKey.fromMaterial(material, config.config.encryption),
      );
    } catch (cause) {
      if (!(cause instanceof IntegrityError)) throw cause;
      throw new UsageError(
        `Cannot ${action}: key file ${source} is not the key of this repository (id ${
          config.config.id.slice(0, 16)
        }...); its config does not authenticate with it`,
        { cause },
      );
    }
    await trustKey(location, config.config, material, options);
    // an oversized key file is damaged: the import replaces it (and a failed import deletes it)
    let current: Uint8Array | null = null;
    let oversized = false;
    try {
      current = await backend.get(KEY_FILE_KEY, { maxBytes: MAX_KEY_FILE_BYTES });
    } catch (err) {
      if (!(err instanceof IntegrityError)) throw err;
      oversized = true;
    }
    const previous = oversized ? "damaged" : await classifyKeyFile(current, options.keyFile);
    if (previous === "identical") return { previous };
    if (previous === "intact" && !options.force) {
      throw new AlreadyExistsError(
        `Cannot ${action}: it has an intact ${KEY_FILE_KEY} (replace it with --force)`,
      );
    }
    lock.assertHeld();
    await backend.put(KEY_FILE_KEY, options.keyFile);
    try {
      const back = await backend.get(KEY_FILE_KEY, { maxBytes: MAX_KEY_FILE_BYTES });
      if (back === null || !bytesEqual(back, options.keyFile)) {
        throw new IntegrityError(
          `${KEY_FILE_KEY} does not hold the imported bytes after writing it`,
        );
      }
    } catch (cause) {
      await restoreKeyFile(backend, current, `Cannot ${action}`, cause);
    }
    return { previous };
  });
}

/** What the current key file is, compared with one about to replace it. */
async function classifyKeyFile(
  current: Uint8Array | null,
  replacement: Uint8Array,
): Promise<PreviousKeyFile> {
  if (current === null) return "missing";
  if (bytesEqual(current, replacement)) return "identical";
  try {
    await parseKeyFile(current);
    return "intact";
  } catch (err) {
    if (err instanceof IntegrityError) return "damaged";
    throw err;
  }
}
