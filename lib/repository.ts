/**
 * Opening, creating, reading and writing a repository: config, key, manifest, index, archives,
 * blobs, and the one commit protocol ({@linkcode commitChanges}). New packs are written by
 * lib/write_session.ts.
 *
 * @module
 */

import type { Backend, PutBody, ReadonlyBackend, StorageRole } from "../backends/backend.ts";
import type { StagedObject } from "../backends/backend.ts";
import { ChunkIndex, type ChunkLocation, MAX_INDEX_BYTES } from "./chunk_index.ts";
import {
  Chunker,
  type ChunkerParams,
  DEFAULT_CHUNKER_PARAMS,
  deriveGearTable,
  validateChunkerParams,
} from "./chunker.ts";
import {
  type ArchiveMeta,
  decodeArchiveMeta,
  encodeArchiveMeta,
  MAX_ARCHIVE_META_BYTES,
} from "./archive.ts";
import type { CodecPool } from "./codec_pool.ts";
import { decompressLoading } from "./compress.ts";
import {
  type EncryptionMode,
  ObjectType,
  type ObjectTypeTag,
  RepoKey,
  SEAL_OVERHEAD_AES,
  SEAL_OVERHEAD_NONE,
} from "./crypto.ts";
import {
  AlreadyExistsError,
  errorMessage,
  ForbiddenError,
  IntegrityError,
  NotFoundError,
  UsageError,
  VgerError,
} from "./errors.ts";
import { randomBytes, toHex } from "./ids.ts";
import { withCommitLock } from "./lock.ts";
import {
  type KdfParams,
  MAX_KEY_FILE_BYTES,
  parseKeyFile,
  unwrapKey,
  wrapKey,
} from "./key_file.ts";
import {
  decodeManifest,
  encodeManifest,
  type Manifest,
  type ManifestEntry,
  MAX_MANIFEST_BYTES,
} from "./manifest.ts";
import { MAX_BLOB } from "./pack.ts";
import {
  encodeRepoConfig,
  FORMAT_VERSION,
  MAX_REPO_CONFIG_BYTES,
  parseRepoConfig,
  type RepoConfig,
  type UnverifiedConfig,
  verifyRepoConfig,
} from "./repo_config.ts";
import {
  archiveKey,
  ARCHIVES_PREFIX,
  CONFIG_KEY,
  INDEX_KEY,
  KEY_FILE_KEY,
  MANIFEST_KEY,
  packKey,
  packKeyHex,
  parseArchiveKey,
} from "./storage_keys.ts";

/** Default pack size floor: 32 MiB. */
export const DEFAULT_MIN_PACK_SIZE = 32 << 20;
/** Default pack size ceiling: 512 MiB. */
export const DEFAULT_MAX_PACK_SIZE = 512 << 20;

/** Options of {@linkcode initRepository}. */
export interface InitOptions {
  /** Encryption mode. */
  encryption: EncryptionMode;
  /** Passphrase (required unless encryption is none). */
  passphrase?: string;
  /** Argon2id costs (defaults: t=3, m=64 MiB, p=4). */
  kdf?: KdfParams;
  /** Chunker parameters. */
  chunker?: ChunkerParams;
  /** Pack size floor. */
  minPackSize?: number;
  /** Pack size ceiling. */
  maxPackSize?: number;
}

/** Throws UsageError unless min <= max and both are within 1 MiB..4 GiB-1. */
export function validatePackSizes(min: number, max: number): void {
  const ok = (v: number) => Number.isSafeInteger(v) && v >= 1 << 20 && v < 2 ** 32;
  if (!ok(min)) throw new UsageError(`Invalid min_pack_size ${min}: use 1 MiB to 4 GiB`);
  if (!ok(max)) throw new UsageError(`Invalid max_pack_size ${max}: use 1 MiB to 4 GiB`);
  if (min > max) throw new UsageError(`min_pack_size ${min} is larger than max_pack_size ${max}`);
}

/** Creates a repository; refuses when one (or part of one) already exists there. */
export async function initRepository(backend: Backend, options: InitOptions): Promise<RepoConfig> {
  const chunker = options.chunker ?? DEFAULT_CHUNKER_PARAMS;
  validateChunkerParams(chunker);
  const minPackSize = options.minPackSize ?? DEFAULT_MIN_PACK_SIZE;
  const maxPackSize = options.maxPackSize ?? DEFAULT_MAX_PACK_SIZE;
  validatePackSizes(minPackSize, maxPackSize);
  for (const k of [CONFIG_KEY, KEY_FILE_KEY, MANIFEST_KEY, INDEX_KEY]) {
    if ((await backend.size(k)) !== null) {
      throw new AlreadyExistsError(
        `Cannot create repository "${backend.location}": it already exists (${k} is present)`,
      );
    }
  }
  const key = await RepoKey.generate(options.encryption);
  const config: RepoConfig = {
    version: FORMAT_VERSION,
    id: toHex(randomBytes(32)),
    encryption: options.encryption,
    chunker: { ...chunker },
    minPackSize,
    maxPackSize,
  };
  const claim = async () => {
    if (!(await backend.create(CONFIG_KEY, await encodeRepoConfig(config, key)))) {
      throw new AlreadyExistsError(
        `Cannot create repository "${backend.location}": it already exists`,
      );
    }
  };
  // a storage that takes writes only once the config exists (vger-server) gets it first, as the
  // claim on the location; elsewhere it goes last: a repository without one is not a repository
  if (backend.capabilities.configFirst) await claim();
  await backend.put(
    KEY_FILE_KEY,
    await wrapKey(key.material, options.encryption, options.passphrase, options.kdf),
  );
  await saveIndex({ backend, key }, new ChunkIndex());
  await saveManifest({ backend, key }, { archives: [] });
  if (!backend.capabilities.configFirst) await claim();
  return config;
}

/** The roles of a vger-server token, weakest first. */
const ROLES: readonly StorageRole[] = ["read-only", "append-only", "full"];

/**
 * Refuses up front a command that needs role `needed` of the storage's policy (vger-server's
 * roles and append-only mode): `append-only` to back up, `full` to delete, prune, compact,
 * check --repair, break locks or change keys. A ForbiddenError in one line naming the role
 * needed, before anything is read, locked or written: the server would refuse it half way. A
 * backend without a policy (`Backend.policy`) allows everything.
 */
export async function requireRole(
  backend: Pick<Backend, "location" | "policy">,
  needed: StorageRole,
  command: string,
): Promise<void> {
  const policy = await backend.policy?.();
  if (policy === undefined) return;
  const role = policy.role ?? "full";
  if (ROLES.indexOf(role) < ROLES.indexOf(needed)) {
    throw new ForbiddenError(
      `Cannot ${command}: repository "${backend.location}" needs role ` +
        `${ROLES.slice(ROLES.indexOf(needed)).join(" or ")}; this token is ${role}`,
    );
  }
  if (needed === "full" && policy.appendOnly) {
    throw new ForbiddenError(
      `Cannot ${command}: repository "${backend.location}" is append-only ` +
        "(its server refuses deletes and overwrites)",
    );
  }
}

/** Options of {@linkcode Repository.open}. */
export interface OpenOptions {
  /** The passphrase, or a function that asks for it (called only for encrypted repositories). */
  passphrase?: string | (() => Promise<string | undefined>);
  /**
   * Told the repository's id as its config reads, before the key is derived and the config
   * authenticated: for work that needs no key and is used only once the open succeeded (the
   * files cache, keyed by the id, loads while the key is derived).
   */
  onConfigRead?: (id: string) => void;
}

/** The repository's config, parsed but not yet authenticated; null when there is none. */
export async function loadRepoConfig(backend: ReadonlyBackend): Promise<UnverifiedConfig | null> {
  const bytes = await backend.get(CONFIG_KEY, { maxBytes: MAX_REPO_CONFIG_BYTES });
  return bytes === null ? null : parseRepoConfig(bytes);
}

/**
 * The bytes of the key file, null when there is none; a key file larger than
 * `MAX_KEY_FILE_BYTES` is refused with IntegrityError.
 */
export async function loadKeyFile(backend: ReadonlyBackend): Promise<Uint8Array | null> {
  return await backend.get(KEY_FILE_KEY, { maxBytes: MAX_KEY_FILE_BYTES });
}

/** Options of {@linkcode unlockKeyFile}. */
export interface UnlockOptions extends OpenOptions {
  /** Where the repository is, for messages. */
  location: string;
}

/**
 * Unwraps key file bytes with the passphrase and authenticates the repository's config with the
 * key, which proves the file is this repository's key, not just a key. Returns the key and the
 * authenticated config.
 */
export async function unlockKeyFile(
  keyFile: Uint8Array,
  unverified: UnverifiedConfig,
  options: UnlockOptions,
): Promise<{ key: RepoKey; config: RepoConfig }> {
  const loc = options.location;
  const parsed = await parseKeyFile(keyFile);
  const wantKdf = unverified.config.encryption === "none" ? "none" : "argon2id";
  if (parsed.kdf !== wantKdf) {
    throw new IntegrityError(
      `Repository "${loc}" is inconsistent: config says encryption "${unverified.config.encryption}" but the key file is ${
        parsed.kdf === "none" ? "not encrypted" : "encrypted"
      }`,
    );
  }
  const pass = typeof options.passphrase === "function" && parsed.kdf !== "none"
    ? await options.passphrase()
    : typeof options.passphrase === "string"
    ? options.passphrase
    : undefined;
  const material = await unwrapKey(parsed, pass, loc);
  const key = await RepoKey.fromMaterial(material, unverified.config.encryption);
  return { key, config: await verifyRepoConfig(unverified, key) };
}

/** Options of {@linkcode saveKeyFile}. */
export interface SaveKeyFileOptions {
  /** The key file it replaces (null: there was none), put back when the new one fails its check. */
  previous: Uint8Array | null;
  /** Checks the key file as it reads back after the write (null: missing); throws when wrong. */
  check(written: Uint8Array | null): Promise<void>;
  /** How a failure's message starts, such as `Cannot import a key into repository "/r"`. */
  failure: string;
}

/**
 * Replaces the key file in one put (atomic by the backend contract), reads it back (with the
 * size cap of {@linkcode loadKeyFile}) and checks it. When the check fails, the previous key
 * file is put back (or the new one deleted when there was none) and IntegrityError says so.
 */
export async function saveKeyFile(
  backend: Backend,
  keyFile: Uint8Array,
  options: SaveKeyFileOptions,
): Promise<void> {
  await backend.put(KEY_FILE_KEY, keyFile);
  try {
    await options.check(await loadKeyFile(backend));
  } catch (cause) {
    await restoreKeyFile(backend, options.previous, options.failure, cause);
  }
}

/** Removes the key file. */
export async function deleteKeyFile(backend: Backend): Promise<void> {
  await backend.delete(KEY_FILE_KEY);
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
    if (previous === null) await deleteKeyFile(backend);
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

/** An opened, unlocked repository. */
export class Repository<B extends ReadonlyBackend = ReadonlyBackend> {
  /** The storage. */
  readonly backend: B;
  /** The verified config. */
  readonly config: RepoConfig;
  /** The unlocked key. */
  readonly key: RepoKey;
  #gear?: Promise<Uint32Array>;
  #manifestCounter = -1;

  private constructor(backend: B, config: RepoConfig, key: RepoKey) {
    this.backend = backend;
    this.config = config;
    this.key = key;
  }

  /** Opens and unlocks a repository. */
  static async open<B extends ReadonlyBackend>(
    backend: B,
    options: OpenOptions = {},
  ): Promise<Repository<B>> {
    const loc = backend.location;
    // both at once (a round trip less over S3 and REST); the config's failure is reported first
    const keyFile = loadKeyFile(backend);
    keyFile.catch(() => {});
    const unverified = await loadRepoConfig(backend);
    if (unverified === null) {
      throw new NotFoundError(
        `Cannot open repository "${loc}": config not found (is it a vger repository? run vger init)`,
      );
    }
    options.onConfigRead?.(unverified.config.id);
    const keyBytes = await keyFile;
    if (keyBytes === null) {
      throw new NotFoundError(`Cannot open repository "${loc}": ${KEY_FILE_KEY} not found`);
    }
    const { key, config } = await unlockKeyFile(keyBytes, unverified, {
      passphrase: options.passphrase,
      location: loc,
    });
    validateChunkerParams(config.chunker);
    return new Repository(backend, config, key);
  }

  /**
   * Opens a repository as {@linkcode Repository.open} does while the manifest is fetched (the key
   * derivation takes most of an open, and a remote storage's round trip hides behind it). The
   * returned `manifest()` opens it with the key: what {@linkcode readManifest} would have read at
   * that moment, or its error. Call it right away: it is not read again later.
   */
  static async openWithManifest<B extends ReadonlyBackend>(
    backend: B,
    options: OpenOptions = {},
  ): Promise<{ repo: Repository<B>; manifest: () => Promise<Manifest> }> {
    const sealed = backend.get(MANIFEST_KEY, { maxBytes: sealedLimit(MAX_MANIFEST_BYTES) });
    sealed.catch(() => {}); // its failure is the manifest's, reported by manifest()
    const repo = await Repository.open(backend, options);
    return { repo, manifest: async () => repo.#openManifest(await sealed) };
  }

  /** Where the repository is. */
  get location(): string {
    return this.backend.location;
  }

  /** A chunker with this repository's parameters and secret gear table. */
  async chunker(): Promise<Chunker> {
    this.#gear ??= this.key.deriveSecret("gear").then(deriveGearTable);
    return new Chunker(this.config.chunker, await this.#gear);
  }

  /** Reads and opens a whole object (index, manifest, archive) of at most `max` plain bytes. */
  async #readObject(
    key: string,
    type: ObjectTypeTag,
    identity: Uint8Array | string,
    what: string,
    max: number,
  ): Promise<Uint8Array> {
    const sealed = await this.backend.get(key, { maxBytes: sealedLimit(max) });
    if (sealed === null) throw new NotFoundError(`${what} not found in "${this.location}"`);
    return await this.key.open(type, identity, sealed, what);
  }

  /** The manifest. */
  async readManifest(): Promise<Manifest> {
    return await this.#openManifest(
      await this.backend.get(MANIFEST_KEY, { maxBytes: sealedLimit(MAX_MANIFEST_BYTES) }),
    );
  }

  /** The manifest from its sealed bytes (null: not found), checked against the newest seen. */
  async #openManifest(sealed: Uint8Array | null): Promise<Manifest> {
    if (sealed === null) throw new NotFoundError(`Manifest not found in "${this.location}"`);
    const m = decodeManifest(
      await this.key.open(ObjectType.manifest, "manifest", sealed, "Manifest"),
    );
    const counter = m.counter ?? 0;
    if (counter < this.#manifestCounter) {
      // the manifest only grows under the commit lock: an older one is a copy served again
      throw new IntegrityError(
        `Manifest of "${this.location}" is number ${counter}, older than number ${this.#manifestCounter} already seen: the storage served an old copy`,
      );
    }
    this.noteManifestCounter(counter);
    return m;
  }

  /**
   * The newest manifest counter this object read or wrote, or was told of; -1 before any. A
   * manifest read later with a lower counter is refused.
   */
  get manifestCounter(): number {
    return this.#manifestCounter;
  }

  /** Raises {@linkcode manifestCounter} to `counter` (called by {@linkcode saveManifest}). */
  noteManifestCounter(counter: number): void {
    if (counter > this.#manifestCounter) this.#manifestCounter = counter;
  }

  /** The chunk index. */
  async readIndex(): Promise<ChunkIndex> {
    return ChunkIndex.decode(
      await this.#readObject(INDEX_KEY, ObjectType.index, "index", "Index", MAX_INDEX_BYTES),
    );
  }

  /** The chunk index with the plaintext it was decoded from (its canonical, sorted encoding). */
  async readIndexPlain(): Promise<{ plain: Uint8Array; index: ChunkIndex }> {
    const plain = await this.#readObject(
      INDEX_KEY,
      ObjectType.index,
      "index",
      "Index",
      MAX_INDEX_BYTES,
    );
    return { plain, index: ChunkIndex.decode(plain) };
  }

  /** The manifest entry of an archive by name; NotFoundError when absent. */
  async findArchive(name: string, manifest?: Manifest): Promise<ManifestEntry> {
    const m = manifest ?? await this.readManifest();
    const e = m.archives.find((a) => a.name === name);
    if (!e) throw new NotFoundError(`Archive "${name}" not found in "${this.location}"`);
    return e;
  }

  /** An archive's metadata. */
  async readArchive(entry: ManifestEntry): Promise<ArchiveMeta> {
    const key = archiveKey(entry.id);
    const what = `Archive "${entry.name}" (${key})`;
    return decodeArchiveMeta(
      await this.#readObject(
        key,
        ObjectType.archive,
        entry.id,
        what,
        MAX_ARCHIVE_META_BYTES,
      ),
      what,
    );
  }

  /** The sealed bytes of a blob, from its pack. */
  async readSealed(loc: ChunkLocation): Promise<Uint8Array> {
    return await this.backend.getRange(packKey(loc.pack), loc.offset, loc.length);
  }

  /**
   * Reads, opens and decompresses a blob by id; through the codec pool when given.
   * Throws IntegrityError naming the blob and its pack.
   */
  async readBlob(
    index: ChunkIndex,
    id: Uint8Array,
    type: ObjectTypeTag,
    pool?: CodecPool,
  ): Promise<Uint8Array> {
    const loc = index.get(id);
    const name = `${type === ObjectType.items ? "Metadata blob" : "Chunk"} ${toHex(id)}`;
    if (!loc) throw new IntegrityError(`${name} is missing from the index`);
    const what = `${name} in pack ${toHex(loc.pack)}`;
    let sealed: Uint8Array;
    try {
      sealed = await this.readSealed(loc);
    } catch (err) {
      if (err instanceof VgerError) {
        throw new IntegrityError(`${what} cannot be read: ${err.message}`, { cause: err });
      }
      throw err;
    }
    const max = Math.min(MAX_BLOB, loc.rawLength);
    const plain = pool
      ? await pool.decode(type, id, sealed, max, what)
      : await decompressLoading(await this.key.open(type, id, sealed, what), max, what);
    if (plain.length !== loc.rawLength) {
      throw new IntegrityError(
        `${what} is corrupt: ${plain.length} bytes, the index says ${loc.rawLength}`,
      );
    }
    return plain;
  }
}

/** What {@linkcode saveManifest} and the other typed saves need of a repository. */
export type ManifestWriter = Pick<Repository<Backend>, "backend" | "key"> & {
  noteManifestCounter?(counter: number): void;
};

/**
 * Writes the manifest (the commit point), its counter one above the given manifest's. The caller
 * holds the commit lock and passes the manifest it read under it, so the counter only grows
 * whoever writes; a client that remembers the newest counter it saw can tell an old copy served
 * again (lib/known_repos.ts). Sets `manifest.counter` to the written value.
 */
export async function saveManifest(repo: ManifestWriter, manifest: Manifest): Promise<void> {
  manifest.counter = (manifest.counter ?? 0) + 1;
  await repo.backend.put(
    MANIFEST_KEY,
    await repo.key.seal(ObjectType.manifest, "manifest", encodeManifest(manifest)),
  );
  repo.noteManifestCounter?.(manifest.counter);
}

/** Seals and writes the chunk index (replacing it); the caller holds the commit lock. */
export async function saveIndex(repo: ManifestWriter, index: ChunkIndex): Promise<void> {
  // encoded into the envelope's buffer and sealed there: one index-sized buffer, not two
  const framed = index.encode(repo.key.sealHead, repo.key.sealTail);
  await repo.backend.put(INDEX_KEY, await repo.key.sealFramed(ObjectType.index, "index", framed));
}

/** Writes an archive object, sealed under its id (written once, never modified). */
export async function saveArchive(
  repo: ManifestWriter,
  id: Uint8Array,
  sealed: Uint8Array,
): Promise<void> {
  await repo.backend.put(archiveKey(id), sealed);
}

/** Removes an archive object (after the manifest that listed it has been written without it). */
export async function deleteArchive(
  repo: Pick<Repository<Backend>, "backend">,
  id: Uint8Array,
): Promise<void> {
  await repo.backend.delete(archiveKey(id));
}

/** An object stored under `archives/`, as {@linkcode listArchiveObjects} lists it. */
export interface ArchiveObject {
  /** Its storage key. */
  key: string;
  /** The archive id it is stored under, in hex; null when the key is not an archive key. */
  hex: string | null;
}

/** The objects under `archives/`, in the order the backend lists them. */
export async function* listArchiveObjects(
  repo: Pick<Repository, "backend">,
): AsyncGenerator<ArchiveObject> {
  for await (const { key } of repo.backend.list(ARCHIVES_PREFIX)) {
    yield { key, hex: parseArchiveKey(key) };
  }
}

/**
 * Removes an object listed under `archives/` (one the manifest does not list, or one that is not
 * an archive object at all).
 */
export async function deleteArchiveObject(
  repo: Pick<Repository<Backend>, "backend">,
  object: ArchiveObject,
): Promise<void> {
  await repo.backend.delete(object.key);
}

/**
 * Removes what killed processes left in storage besides objects (temp files of interrupted puts),
 * when the backend can (`removeLeftovers`); returns how many, 0 when it cannot.
 */
export async function removeStorageLeftovers(
  repo: Pick<Repository<Backend>, "backend">,
): Promise<number> {
  return await repo.backend.removeLeftovers?.() ?? 0;
}

/** Writes a finished pack under its id (written once, never modified). */
export async function savePack(
  repo: Pick<Repository<Backend>, "backend">,
  id: Uint8Array,
  body: PutBody,
): Promise<void> {
  await repo.backend.put(packKey(id), body);
}

/** A pack written where it is stored as it fills, where the backend can (`Backend.stage`). */
export function stagePack(repo: Pick<Repository<Backend>, "backend">): StagedObject | undefined {
  return repo.backend.stage?.();
}

/** Stores a pack written through {@linkcode stagePack} under its id. */
export async function saveStagedPack(staged: StagedObject, id: Uint8Array): Promise<void> {
  await staged.finish(packKey(id));
}

/** Removes a pack, by id or hex id (once no index that is written references it). */
export async function deletePack(
  repo: Pick<Repository<Backend>, "backend">,
  id: Uint8Array | string,
): Promise<void> {
  await repo.backend.delete(typeof id === "string" ? packKeyHex(id) : packKey(id));
}

/**
 * Seals an archive's metadata under the id of its plaintext; returns both, for
 * {@linkcode CommitTx.saveArchive}.
 */
export async function sealArchive(
  repo: Pick<Repository<Backend>, "key">,
  meta: ArchiveMeta,
): Promise<{ id: Uint8Array; sealed: Uint8Array }> {
  const plain = encodeArchiveMeta(meta);
  const id = await repo.key.chunkId(plain);
  return { id, sealed: await repo.key.seal(ObjectType.archive, id, plain) };
}

/** What {@linkcode commitChanges} needs of a repository. */
export type CommitTarget =
  & Pick<Repository<Backend>, "backend" | "key" | "readManifest" | "readIndex">
  & ManifestWriter;

/**
 * A change under the commit lock: what it re-reads and what it writes. The writes are made when
 * the change returns, in the crash-safe order: index, then archive objects, then manifest.
 */
export interface CommitTx {
  /** The manifest, read under the lock on the first call. */
  manifest(): Promise<Manifest>;
  /** The chunk index, read under the lock on the first call. */
  index(): Promise<ChunkIndex>;
  /** Writes this index. */
  saveIndex(index: ChunkIndex): void;
  /** Writes this sealed archive object (from {@linkcode sealArchive}). */
  saveArchive(id: Uint8Array, sealed: Uint8Array): void;
  /** Writes this manifest, its counter one above the given manifest's ({@linkcode saveManifest}). */
  saveManifest(manifest: Manifest): void;
}

/** Options of {@linkcode commitChanges}. */
export interface CommitOptions {
  /** The caller holds the commit lock already: do not take it. */
  lockHeld?: boolean;
}

/**
 * The one commit protocol: takes the commit lock (lib/lock.ts), lets `change` re-read what it
 * needs (manifest, index) and merge, then writes index, archive objects and manifest (the commit
 * point) in that order and releases the lock. Returns what `change` returned; writes nothing when
 * it throws.
 */
export async function commitChanges<T>(
  repo: CommitTarget,
  change: (tx: CommitTx) => Promise<T>,
  options: CommitOptions = {},
): Promise<T> {
  const run = async (): Promise<T> => {
    let manifest: Promise<Manifest> | undefined;
    let index: Promise<ChunkIndex> | undefined;
    let newIndex: ChunkIndex | undefined;
    const archives: { id: Uint8Array; sealed: Uint8Array }[] = [];
    let newManifest: Manifest | undefined;
    const result = await change({
      manifest: () => manifest ??= repo.readManifest(),
      index: () => index ??= repo.readIndex(),
      saveIndex: (i) => void (newIndex = i),
      saveArchive: (id, sealed) => void archives.push({ id, sealed }),
      saveManifest: (m) => void (newManifest = m),
    });
    if (newIndex) await saveIndex(repo, newIndex);
    for (const a of archives) await saveArchive(repo, a.id, a.sealed);
    if (newManifest) await saveManifest(repo, newManifest);
    return result;
  };
  return options.lockHeld ? await run() : await withCommitLock(repo.backend, run);
}

/** The most bytes of a sealed object whose plaintext is at most `plainBytes` long. */
export function sealedLimit(plainBytes: number): number {
  return plainBytes + Math.max(SEAL_OVERHEAD_AES, SEAL_OVERHEAD_NONE);
}
