/**
 * An archive's items read from storage: its item blobs fetched several at once (one after
 * another, each would wait a round trip of the storage: 45 ms to a loopback S3 gateway) and
 * decoded in stream order. Used by extract, list, check and the read path.
 *
 * @module
 */

import { type ArchiveMeta, decodeItems, type Item } from "./archive.ts";
import type { ChunkIndex } from "./chunk_index.ts";
import type { CodecPool } from "./codec_pool.ts";
import { ObjectType, type ObjectTypeTag } from "./crypto.ts";
import { VgerError } from "./errors.ts";
import { toHex } from "./ids.ts";
import type { Repository } from "./repository.ts";

/**
 * The blobs `ids` in order, read `ahead` at once: one after another, each read would wait a round
 * trip of the storage (45 ms to a loopback S3 gateway, for each metadata blob of an archive).
 * Each comes as its bytes or as the VgerError that reading it threw; the reads stop with the
 * consumer.
 */
export async function* readBlobsAhead(
  repo: Pick<Repository, "readBlob">,
  index: ChunkIndex,
  ids: readonly Uint8Array[],
  options: { type: ObjectTypeTag; ahead: number; pool?: CodecPool },
): AsyncGenerator<Uint8Array | VgerError> {
  const queue: Promise<Uint8Array | VgerError>[] = [];
  let next = 0;
  const fill = () => {
    while (queue.length < Math.max(1, options.ahead) && next < ids.length) {
      const read = repo.readBlob(index, ids[next++], options.type, options.pool)
        .catch((err) => err instanceof VgerError ? err : Promise.reject(err));
      read.catch(() => {}); // a read nobody awaits (the consumer stopped) must not go unhandled
      queue.push(read);
    }
  };
  fill();
  while (queue.length > 0) {
    const blob = await queue.shift()!;
    fill(); // after the wait: never more than `ahead` reads at once
    yield blob;
  }
}

/**
 * The items of archive `meta` in stream order, its item blobs read as many at once as the
 * backend has connections; a blob that cannot be read or decoded throws, naming it and the
 * archive.
 */
export async function* readArchiveItems(
  repo: Pick<Repository, "readBlob" | "backend">,
  index: ChunkIndex,
  meta: Pick<ArchiveMeta, "items" | "name">,
  pool?: CodecPool,
): AsyncGenerator<Item> {
  const ahead = repo.backend.capabilities.connections;
  let at = 0;
  for await (
    const blob of readBlobsAhead(repo, index, meta.items, { type: ObjectType.items, ahead, pool })
  ) {
    if (blob instanceof VgerError) throw blob;
    yield* decodeItems(blob, `Metadata blob ${toHex(meta.items[at++])}`, { archive: meta.name });
  }
}
