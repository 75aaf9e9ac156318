/**
 * Key management commands, `vger key change-passphrase | export | import`: options in, result
 * out, no argv and no printing (as lib/commands.ts).
 *
 * @module
 */

import type { Backend, ReadonlyBackend } from "../backends/backend.ts";
import { RepoKey } from "./crypto.ts";
import {
  AlreadyExistsError,
  DecryptionError,
  IntegrityError,
  NotFoundError,
  UsageError,
} from "./errors.ts";
import { bytesEqual } from "./ids.ts";
import { type KdfParams, parseKeyFile, rewrapKeyFile, unwrapKey, validateKdf } from "./key_file.ts";
import { keyFingerprint } from "./known_repos.ts";
import {
  type LockingOptions,
  type TrustingOptions,
  trustRepository,
  withRepoLock,
} from "./open_repository.ts";
import { type RepoConfig, type UnverifiedConfig, verifyRepoConfig } from "./repo_config.ts";
import {
  loadKeyFile,
  loadRepoConfig,
  requireRole,
  saveKeyFile,
  unlockKeyFile,
} from "./repository.ts";
import { KEY_FILE_KEY } from "./storage_keys.ts";

/**
 * The repository's config, parsed but not yet authenticated. `action` completes "Cannot ..." in
 * messages. Key commands only make sense for an encrypted repository.
 */
async function encryptedConfig(
  backend: ReadonlyBackend,
  action: string,
): Promise<UnverifiedConfig> {
  const unverified = await loadRepoConfig(backend);
  if (unverified === null) {
    throw new NotFoundError(`Cannot ${action}: config not found (is it a vger repository?)`);
  }
  if (unverified.config.encryption === "none") {
    throw new UsageError(`Cannot ${action}: the repository is not encrypted`);
  }
  return unverified;
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
  /** The current passphrase, or a function that asks for it (after the append-only check). */
  passphrase: string | (() => Promise<string>);
  /** The new passphrase, or a function that asks for it (after the current one). */
  newPassphrase: string | (() => Promise<string>);
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
  await requireRole(backend, "full", "change the passphrase");
  const ask = (p: string | (() => Promise<string>)) => typeof p === "string" ? p : p();
  const passphrase = await ask(options.passphrase);
  const newPassphrase = await ask(options.newPassphrase);
  return await withRepoLock(
    backend,
    "exclusive",
    "key change-passphrase",
    options,
    async (lock) => {
      const config = await encryptedConfig(backend, action);
      const old = await loadKeyFile(backend);
      if (old === null) {
        throw new NotFoundError(
          `Cannot ${action}: ${KEY_FILE_KEY} not found (restore it with vger key import)`,
        );
      }
      const next = await rewrapKeyFile(old, {
        passphrase,
        newPassphrase,
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
      await saveKeyFile(backend, next.bytes, {
        previous: old,
        failure: `Cannot ${action}`,
        check: async (back) => {
          if (back === null) {
            throw new IntegrityError(`${KEY_FILE_KEY} is missing after writing it`);
          }
          const { key } = await unlockKeyFile(back, config, {
            passphrase: newPassphrase,
            location,
          });
          if (!bytesEqual(key.material, next.material)) {
            throw new IntegrityError(`${KEY_FILE_KEY} holds a different key after writing it`);
          }
        },
      });
      return { kdf: next.kdf };
    },
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
  const keyFile = await loadKeyFile(backend);
  if (keyFile === null) throw new NotFoundError(`Cannot ${action}: ${KEY_FILE_KEY} not found`);
  const { key } = await unlockKeyFile(keyFile, config, {
    passphrase: options.passphrase,
    location,
  });
  await trustKey(location, config.config, key.material, options);
  return keyFile;
}

/** Options of {@linkcode keyImportCommand}. */
export interface KeyImportOptions extends LockingOptions, TrustingOptions {
  /** The key file to import (what `vger key export` wrote). */
  keyFile: Uint8Array;
  /**
   * The passphrase the imported key file is wrapped under, or a function that asks for it
   * (after the append-only check).
   */
  passphrase: string | (() => Promise<string>);
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
  await requireRole(backend, "full", "import a key");
  const passphrase = typeof options.passphrase === "string"
    ? options.passphrase
    : await options.passphrase();
  return await withRepoLock(backend, "exclusive", "key import", options, async (lock) => {
    const config = await encryptedConfig(backend, action);
    if (parsed.kdf !== "argon2id") {
      throw new UsageError(
        `Cannot ${action}: key file ${source} is of an unencrypted repository`,
      );
    }
    let material: Uint8Array;
    try {
      material = await unwrapKey(parsed, passphrase, location);
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
      current = await loadKeyFile(backend);
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
    await saveKeyFile(backend, options.keyFile, {
      previous: current,
      failure: `Cannot ${action}`,
      check: (back) => {
        if (back === null || !bytesEqual(back, options.keyFile)) {
          throw new IntegrityError(
            `${KEY_FILE_KEY} does not hold the imported bytes after writing it`,
          );
        }
        return Promise.resolve();
      },
    });
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
