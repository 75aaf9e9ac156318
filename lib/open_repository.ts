/**
 * What every command does before it runs its engine: open and unlock the repository, check it
 * against the configured mode and this client's memory of repositories (lib/known_repos.ts), and
 * take the repository lock (shared or exclusive, or none with `--no-lock` where reading is all).
 *
 * @module
 */

import type { Backend, ReadonlyBackend } from "../backends/backend.ts";
import type { EncryptionMode } from "./crypto.ts";
import {
  type Abortable,
  abortedError,
  BackendError,
  errorMessage,
  IntegrityError,
  LockedError,
  NotFoundError,
  UsageError,
} from "./errors.ts";
import {
  checkKnownRepository,
  ensureCreateHonoured,
  keyFingerprint,
  type KnownRepository,
  loadKnownRepository,
  saveKnownRepository,
  type SeenRepository,
} from "./known_repos.ts";
import { type LockMode, RepoLock } from "./repo_lock.ts";
import { type OpenOptions, Repository } from "./repository.ts";
import type { Manifest } from "./manifest.ts";

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

/**
 * Runs fn of a command that writes under a repository lock of the given mode, released
 * afterwards. First checks that the storage honours conditional creates
 * ({@linkcode ensureCreateHonoured}, remembered under `knownRepos.dir`).
 */
export async function withRepoLock<T>(
  backend: Backend,
  mode: LockMode,
  command: string,
  options: LockingOptions & TrustingOptions & Abortable,
  fn: (lock: RepoLock) => Promise<T>,
): Promise<T> {
  if (options.noLock) {
    throw new UsageError(`${command} writes to the repository: it cannot run with --no-lock`);
  }
  await ensureCreateHonoured(backend, {
    dir: options.knownRepos?.dir,
    onWarning: options.knownRepos?.onWarning,
  });
  return await lockAndRun(backend, mode, command, options, fn);
}

async function lockAndRun<T>(
  backend: Backend,
  mode: LockMode,
  command: string,
  options: LockingOptions & Abortable,
  fn: (lock: RepoLock) => Promise<T>,
): Promise<T> {
  const { signal } = options;
  let lock: RepoLock;
  try {
    lock = await RepoLock.acquire(backend, mode, {
      command,
      waitMs: options.lockWaitMs ?? 0,
      signal,
    });
  } catch (err) {
    // stopped while waiting for another process's lock
    if (signal?.aborted) throw abortedError(signal, command[0].toUpperCase() + command.slice(1));
    throw readOnlyLockError(backend, err) ?? err;
  }
  options.onLock?.(lock);
  let result: T;
  try {
    result = await fn(lock);
  } catch (err) {
    // the command's failure is the news: a release failing the same way (storage gone) would
    // hide it, and leaves a lock that turns stale (break-lock)
    await lock.release().catch(() => {});
    throw err;
  }
  await lock.release();
  return result;
}

/**
 * Runs a command that only reads under a shared lock, or with none when `noLock` is set. Its
 * data is never written, so the storage's conditional creates are not probed.
 */
export function withReadLock<T>(
  backend: Backend,
  command: string,
  options: LockingOptions & Abortable,
  fn: () => Promise<T>,
): Promise<T> {
  return options.noLock ? fn() : lockAndRun(backend, "shared", command, options, fn);
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
export async function trustRepository(
  location: string,
  show: () => Promise<SeenRepository>,
  options: TrustingOptions,
  loaded?: KnownRepository | null,
): Promise<KnownRepository | null> {
  const k = options.knownRepos;
  if (!k) return null;
  // the record before the repository's manifest: a record that another client saved meanwhile
  // holds a counter already written, so never one above the counter read next (no false alarm);
  // `loaded` is that record when the caller loaded it before it started reading the manifest
  const known = loaded !== undefined ? loaded : await knownRecord(location, options);
  const seen = await show();
  const record = checkKnownRepository(known, seen, {
    configuredMode: k.configuredMode,
    trust: k.trust,
  });
  if (k.dir !== undefined && !sameRecord(known, record)) await saveRecord(k.dir, record, k);
  return record;
}

/** This client's memory of the repository at `location`, as {@linkcode trustRepository} reads it. */
async function knownRecord(
  location: string,
  options: TrustingOptions,
): Promise<KnownRepository | null> {
  const k = options.knownRepos;
  return k?.dir === undefined || k.trust ? null : await loadKnownRepository(k.dir, location);
}

function sameRecord(a: KnownRepository | null, b: KnownRepository): boolean {
  return a !== null && a.id === b.id && a.mode === b.mode && a.fingerprint === b.fingerprint &&
    a.counter === b.counter;
}

/** Saves the memory of a repository; a failure is only a warning. */
export async function saveRecord(
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
export async function openRepository<B extends ReadonlyBackend>(
  backend: B,
  options: OpenOptions & TrustingOptions,
): Promise<Repository<B>> {
  return (await openRepositoryWithManifest(backend, options)).repo;
}

/**
 * {@linkcode openRepository}, also returning the manifest its check read (fetched while the key
 * was derived), for a command that needs no newer one (`list`); null when there was no check
 * or the manifest could not be read (then the command reads it and reports why).
 */
export async function openRepositoryWithManifest<B extends ReadonlyBackend>(
  backend: B,
  options: OpenOptions & TrustingOptions,
): Promise<{ repo: Repository<B>; manifest: Manifest | null }> {
  if (!options.knownRepos) return { repo: await Repository.open(backend, options), manifest: null };
  // the memory first, then the manifest (see trustRepository), fetched while the key is derived
  const known = await knownRecord(backend.location, options);
  const { repo, manifest: readManifest } = await Repository.openWithManifest(backend, options);
  let manifest: Manifest | null = null;
  const record = await trustRepository(
    repo.location,
    async () => {
      let counter: number | null = null;
      try {
        manifest = await readManifest();
        counter = manifest.counter ?? 0;
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
    },
    options,
    known,
  );
  // every later read of the manifest by this command must be at least as new (the storage could
  // serve the current manifest to the check and an old one to the command)
  if (record) repo.noteManifestCounter(record.counter);
  return { repo, manifest };
}

/** After a command wrote the manifest: raises the remembered counter to the one written. */
export async function rememberManifest(repo: Repository, options: TrustingOptions): Promise<void> {
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
