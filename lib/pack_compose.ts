/**
 * New packs composed in storage (server-side compaction): the client lists the kept records of
 * the packs it rewrites (their types from each pack's authenticated header), builds and seals each
 * new pack's header itself (it knows every entry and the new offsets), and has the storage copy
 * the records ({@linkcode Backend.compose}, offered by vger-server, which checks every record).
 * It then checks what was stored: the size planned, the name of its SHA-256, and the header bytes
 * read back. Records the storage refuses are reported and left where they are.
 *
 * @example
 * ```ts ignore
 * import { canCompose, PackComposer } from "./pack_compose.ts";
 *
 * if (canCompose(repo.backend)) {
 *   const composer = new PackComposer(repo, { target: 16 << 20 });
 *   for (const r of kept) await composer.add(r);
 *   await composer.flush();
 *   console.log(composer.packs.length, composer.refused.length);
 * }
 * ```
 *
 * @module
 */

import {
  type Backend,
  type ComposePlan,
  ComposeRefusedError,
  MAX_COMPOSE_RANGES,
  type ReadonlyBackend,
} from "../backends/backend.ts";
import { ChunkIndex } from "./chunk_index.ts";
import { ObjectType, type ObjectTypeTag } from "./crypto.ts";
import { IntegrityError, NotFoundError } from "./errors.ts";
import { bytesEqual, fromHex, toHex } from "./ids.ts";
import {
  encodePackHeader,
  FIRST_OBJECT_OFFSET,
  HEADER_ENTRY_SIZE,
  PACK_MAGIC,
  PACK_PREAMBLE,
  PACK_VERSION,
  type PackEntry,
  recordSize,
  recordStart,
} from "./pack.ts";
import { readPackHeader, type WantedRecord } from "./pack_reader.ts";
import type { StoredPack } from "./packer.ts";
import type { Repository } from "./repository.ts";
import { packKey, packKeyHex } from "./storage_keys.ts";

/** What composing needs of a repository. */
export type ComposeRepository = Pick<Repository<Backend>, "backend" | "key" | "config">;

/** Whether packs can be composed in this storage: it offers compose and checks the records. */
export function canCompose(backend: Backend): boolean {
  return backend.compose !== undefined && backend.capabilities.composeChecksRecords === true;
}

/** A live record to keep: where its blob is now, and what the new header says of it. */
export interface KeptRecord {
  /** The blob's id. */
  id: Uint8Array;
  /** Data or items (from the source pack's header). */
  type: ObjectTypeTag;
  /** The pack that holds it now. */
  pack: Uint8Array;
  /** Offset of its object there. */
  offset: number;
  /** Length of its object. */
  length: number;
  /** Its plaintext length. */
  rawLength: number;
}

/** A blob that cannot be kept: the header disagrees with the index, or the storage refused it. */
export interface LostRecord {
  /** The blob's id. */
  id: Uint8Array;
  /** Its pack. */
  pack: Uint8Array;
  /** Why, in words. */
  reason: string;
}

/** Bytes that went over the wire, counted by whoever passes this in. */
export interface Traffic {
  /** Bytes sent (compose plans). */
  sent: number;
  /** Bytes read (pack headers, headers read back). */
  read: number;
}

/**
 * A backend whose range reads count their bytes into `traffic.read` (every other call passes
 * through), for the readers of compaction.
 */
export function countingBackend(backend: ReadonlyBackend, traffic: Traffic): ReadonlyBackend {
  return {
    location: backend.location,
    capabilities: backend.capabilities,
    get: (key, options) => backend.get(key, options),
    getRange: async (key, offset, length) => {
      const bytes = await backend.getRange(key, offset, length);
      traffic.read += bytes.length;
      return bytes;
    },
    size: (key) => backend.size(key),
    list: (prefix) => backend.list(prefix),
    close: () => backend.close(),
  };
}

/**
 * The kept records of `wanted` (a pack's live blobs as the index places them), typed from the
 * pack's authenticated header; a blob the header does not list where the index does is lost.
 * Null when the header cannot be read (a damaged or missing pack): the caller copies that pack's
 * records through the client instead, which verifies each one.
 */
export async function keptRecords(
  repo: Pick<Repository<ReadonlyBackend>, "backend" | "key">,
  pack: { id: Uint8Array; size: number; entries: number },
  wanted: readonly WantedRecord[],
): Promise<{ kept: KeptRecord[]; lost: LostRecord[] } | null> {
  let entries: PackEntry[];
  try {
    entries = [
      ...await readPackHeader(repo.backend, repo.key, packKey(pack.id), pack.size, {
        entries: pack.entries,
      }),
    ];
  } catch (err) {
    if (err instanceof IntegrityError || err instanceof NotFoundError) return null;
    throw err;
  }
  const byOffset = new Map(entries.map((e) => [e.offset, e]));
  const kept: KeptRecord[] = [];
  const lost: LostRecord[] = [];
  for (const w of wanted) {
    const e = byOffset.get(w.offset);
    if (e === undefined || e.length !== w.length || !bytesEqual(e.id, w.id)) {
      const reason = `Blob ${toHex(w.id)} in pack ${toHex(pack.id)} is corrupt: the pack's ` +
        "header does not list it where the index does";
      lost.push({ id: w.id, pack: pack.id, reason });
    } else kept.push({ ...w, type: e.type, pack: pack.id });
  }
  return { kept, lost };
}

/** Options of {@linkcode PackComposer}. */
export interface PackComposerOptions {
  /** Compose a pack once its records reach this size (the packer's target). */
  target: number;
  /** Counts the bytes sent and read. */
  traffic?: Traffic;
}

/**
 * Gathers kept records into new packs, one open pack per blob type as the packer does (cut before
 * a record that would take it past `max_pack_size`, or past {@linkcode MAX_COMPOSE_RANGES}
 * records; composed once it reaches the target), and has each composed in storage.
 */
export class PackComposer {
  readonly #repo: ComposeRepository;
  readonly #target: number;
  readonly #traffic: Traffic;
  readonly #open = new Map<ObjectTypeTag, { records: KeptRecord[]; size: number }>();
  readonly #stored = new ChunkIndex();
  readonly #packs: StoredPack[] = [];
  readonly #refused: LostRecord[] = [];

  /** A composer writing to `repo`'s backend, which must offer compose ({@linkcode canCompose}). */
  constructor(repo: ComposeRepository, options: PackComposerOptions) {
    this.#repo = repo;
    this.#target = options.target;
    this.#traffic = options.traffic ?? { sent: 0, read: 0 };
  }

  /** Where the blobs of the composed packs are. */
  get stored(): ChunkIndex {
    return this.#stored;
  }

  /** The composed packs, in order. */
  get packs(): StoredPack[] {
    return this.#packs;
  }

  /** The records the storage refused (left in their packs). */
  get refused(): LostRecord[] {
    return this.#refused;
  }

  /** Adds a kept record to the open pack of its type; composes the pack once it is full. */
  async add(record: KeptRecord): Promise<void> {
    let open = this.#open.get(record.type);
    const seal = this.#repo.key.sealHead + this.#repo.key.sealTail;
    if (
      open && open.records.length > 0 &&
      (open.records.length >= MAX_COMPOSE_RANGES ||
        PACK_PREAMBLE + open.size + recordSize(record.length) + 4 + seal +
              HEADER_ENTRY_SIZE * (open.records.length + 1) + 4 > this.#repo.config.maxPackSize)
    ) {
      await this.#compose(record.type);
      open = undefined;
    }
    if (!open) this.#open.set(record.type, open = { records: [], size: 0 });
    open.records.push(record);
    open.size += recordSize(record.length);
    if (open.size >= this.#target) await this.#compose(record.type);
  }

  /** Composes the open packs. */
  async flush(): Promise<void> {
    for (const type of [...this.#open.keys()]) await this.#compose(type);
  }

  /**
   * Composes the open pack of `type`; records the storage refuses are set aside and the pack is
   * composed again without them (each round drops at least one, so this ends).
   */
  async #compose(type: ObjectTypeTag): Promise<void> {
    let records = this.#open.get(type)?.records ?? [];
    this.#open.delete(type);
    while (records.length > 0) {
      try {
        await this.#composeOnce(records);
        return;
      } catch (err) {
        if (!(err instanceof ComposeRefusedError) || err.refused.length === 0) throw err;
        const out = new Set(err.refused.map((r) => r.range));
        for (const r of err.refused) {
          const rec = records[r.range];
          const reason = `Blob ${toHex(rec.id)} in pack ${toHex(rec.pack)} is corrupt: the ` +
            `server refused its record: ${r.reason}`;
          this.#refused.push({ id: rec.id, pack: rec.pack, reason });
        }
        records = records.filter((_, i) => !out.has(i));
      }
    }
  }

  /** One compose of `records` into a new pack, checked; its entries go to `stored`. */
  async #composeOnce(records: readonly KeptRecord[]): Promise<void> {
    const { backend, key } = this.#repo;
    const entries: PackEntry[] = [];
    let at = FIRST_OBJECT_OFFSET;
    for (const r of records) {
      entries.push({
        id: r.id,
        type: r.type,
        offset: at,
        length: r.length,
        rawLength: r.rawLength,
      });
      at += recordSize(r.length);
    }
    const header = await key.seal(ObjectType.packHeader, "pack-header", encodePackHeader(entries));
    const suffix = new Uint8Array(header.length + 4);
    suffix.set(header);
    new DataView(suffix.buffer).setUint32(header.length, header.length, true);
    const prefix = new Uint8Array(PACK_PREAMBLE);
    prefix.set(PACK_MAGIC);
    prefix[8] = PACK_VERSION;
    const plan: ComposePlan = {
      prefix,
      ranges: records.map((r) => ({
        key: packKey(r.pack),
        offset: recordStart(r.offset),
        length: recordSize(r.length),
        type: r.type,
      })),
      suffix,
      name: packKeyHex,
    };
    const size = at - 8 + suffix.length;
    const done = await backend.compose!(plan);
    this.#traffic.sent += done.sentBytes;
    const where = `Pack ${done.key} composed in ${backend.location}`;
    if (done.size !== size || done.key !== packKeyHex(done.sha256)) {
      throw new IntegrityError(
        `${where} is not the pack planned: ${done.size} bytes (${size} planned), ` +
          `not named by its SHA-256`,
      );
    }
    const tail = await backend.getRange(done.key, size - suffix.length, suffix.length);
    this.#traffic.read += tail.length;
    if (!bytesEqual(tail, suffix)) {
      throw new IntegrityError(`${where} does not end with the header planned`);
    }
    const id = fromHex(done.sha256);
    for (const e of entries) {
      this.#stored.set(e.id, {
        pack: id,
        offset: e.offset,
        length: e.length,
        rawLength: e.rawLength,
      });
    }
    this.#packs.push({ id, size });
  }
}
