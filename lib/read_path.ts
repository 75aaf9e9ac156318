/**
 * The repository read path on its own, for any JavaScript runtime (a web browser included): open
 * and unlock a repository from a {@linkcode ReadonlyBackend} and a passphrase, list its archives,
 * read an archive's items and a file's bytes. Nothing here, nor in what it imports, uses a
 * `Deno.*` API or a `node:` built-in (tests/browser_bundle_test.ts bundles it for the browser and
 * checks); the codecs are lib/platform.ts's portable ones unless the host installed faster ones.
 * Without an installed zstd codec ({@linkcode installPlatform}: a wasm build, say), blobs stored
 * with zstd cannot be read (lz4 and uncompressed ones can).
 *
 * @example
 * ```ts ignore
 * import { RepositoryReader } from "./read_path.ts";
 * const reader = await RepositoryReader.open(backend, { passphrase: "correct horse" });
 * for (const archive of await reader.archives()) {
 *   for await (const item of reader.items(archive.name)) {
 *     if (item.type === "file") console.log(item.path, (await reader.readFile(item)).length);
 *   }
 * }
 * ```
 *
 * @module
 */

import type { ReadonlyBackend } from "../backends/backend.ts";
import type { Item } from "./archive.ts";
import type { ChunkIndex } from "./chunk_index.ts";
import { ObjectType } from "./crypto.ts";
import { IntegrityError } from "./errors.ts";
import type { ManifestEntry } from "./manifest.ts";
import { type OpenOptions, Repository } from "./repository.ts";
import { readArchiveItems } from "./archive_items.ts";

export type {
  BackendCapabilities,
  GetOptions,
  ObjectInfo,
  ReadonlyBackend,
} from "../backends/backend.ts";
export type { Item, ItemType } from "./archive.ts";
export type { ArchiveStats, ManifestEntry } from "./manifest.ts";
export type { OpenOptions } from "./repository.ts";
export {
  type Argon2Params,
  type FastCrypto,
  installPlatform,
  type Lz4Codec,
  type Platform,
  type Sha256Hasher,
  type ZstdCodec,
} from "./platform.ts";
export { DecryptionError, IntegrityError, NotFoundError, UsageError, VgerError } from "./errors.ts";

/** Reads a repository: archives, items, files. Takes no lock and writes nothing. */
export class RepositoryReader {
  #repo: Repository;
  #index?: Promise<ChunkIndex>;

  private constructor(repo: Repository) {
    this.#repo = repo;
  }

  /** Opens and unlocks the repository in `backend`. */
  static async open(
    backend: ReadonlyBackend,
    options: OpenOptions = {},
  ): Promise<RepositoryReader> {
    return new RepositoryReader(await Repository.open(backend, options));
  }

  /** The archives, oldest first, as the manifest lists them. */
  async archives(): Promise<ManifestEntry[]> {
    return (await this.#repo.readManifest()).archives;
  }

  /** The chunk index, read once. */
  #loadIndex(): Promise<ChunkIndex> {
    this.#index ??= this.#repo.readIndex();
    this.#index.catch(() => this.#index = undefined); // a failed read is tried again
    return this.#index;
  }

  /** The items of an archive by name, in archive order; NotFoundError when it does not exist. */
  async *items(archive: string): AsyncGenerator<Item> {
    const repo = this.#repo;
    const meta = await repo.readArchive(await repo.findArchive(archive));
    const index = await this.#loadIndex();
    yield* readArchiveItems(repo, index, meta);
  }

  /**
   * A file's contents, chunk by chunk; IntegrityError when the chunks hold more or fewer bytes
   * than the item's declared size.
   */
  async *fileChunks(item: Item): AsyncGenerator<Uint8Array> {
    const index = await this.#loadIndex();
    let pos = 0;
    for (const id of item.chunks ?? []) {
      const data = await this.#repo.readBlob(index, id, ObjectType.data);
      if (pos + data.length > item.size) throw sizeMismatch(item, "more");
      pos += data.length;
      yield data;
    }
    if (pos !== item.size) throw sizeMismatch(item, "fewer");
  }

  /** A file's whole contents (see {@linkcode RepositoryReader.fileChunks}). */
  async readFile(item: Item): Promise<Uint8Array> {
    const out = new Uint8Array(item.size);
    let pos = 0;
    for await (const data of this.fileChunks(item)) {
      out.set(data, pos);
      pos += data.length;
    }
    return out;
  }
}

function sizeMismatch(item: Item, what: "more" | "fewer"): IntegrityError {
  return new IntegrityError(
    `File "/${item.path}" is corrupt: its chunks hold ${what} bytes than its declared size of ${item.size} bytes`,
  );
}
