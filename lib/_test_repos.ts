/**
 * Repositories, packs and source trees shared by the lib/ tests of several modules (test code
 * only): the two-archive {@linkcode fixture} of the check, verify, repair and index recovery
 * tests; the packs ({@linkcode makePack}) of the pack and pack reader tests; {@linkcode withRepo}
 * and {@linkcode writeTree} for the progress tests.
 *
 * @module
 */

import { equal, ok } from "node:assert/strict";
import { MemoryBackend } from "../backends/memory.ts";
import { encodeItem, type Item, ItemStreamBuffer, newItemEncoder } from "./archive.ts";
import type { CheckResult, Problem, ProblemKind } from "./check_report.ts";
import { compress, loadCodecs } from "./compress.ts";
import { type EncryptionMode, ObjectType, type ObjectTypeTag, RepoKey } from "./crypto.ts";
import { packKey } from "./storage_keys.ts";
import type { KdfParams } from "./key_file.ts";
import { initRepository, Repository } from "./repository.ts";
import { WriteSession } from "./write_session.ts";
import { concat, randomBytes, seededBytes } from "./_fuzz.ts";
import { IntegrityError } from "./errors.ts";
import { type PackEntry, PackWriter } from "./pack.ts";
import { readPackHeader } from "./pack_reader.ts";

const randomData = seededBytes;

/** Key derivation parameters that make tests fast. */
export const FAST: KdfParams = { iterations: 1, memoryKiB: 1024, parallelism: 1 };
/** The passphrase of the fixtures. */
export const PASS = "pass";

/** A repository in memory with named chunks (see {@linkcode fixture}). */
export interface Fixture {
  backend: MemoryBackend;
  repo: Repository<MemoryBackend>;
  /** Chunk data by name. */
  data: Record<string, Uint8Array>;
  /** Chunk ids by name. */
  ids: Record<string, Uint8Array>;
}

/** Compresses and seals a blob the way the archiver does, and adds it to the session unless it has it. */
export async function addBlob(
  repo: Pick<Repository, "key">,
  session: WriteSession,
  type: ObjectTypeTag,
  data: Uint8Array,
): Promise<Uint8Array> {
  const id = await repo.key.chunkId(data);
  if (session.reserve(id)) {
    await loadCodecs(); // lz4 compression is native (a thread loads it when it needs it)
    const sealed = await repo.key.seal(type, id, compress(data, { algorithm: "lz4" }));
    await session.add(id, type, sealed, data.length);
  }
  return id;
}

/** Commits an archive of a directory `src` holding files made of the named chunks. */
export async function commit(
  f: Fixture,
  name: string,
  files: Record<string, string[]>,
): Promise<void> {
  const session = new WriteSession(f.repo, await f.repo.readIndex());
  const item = (path: string, chunks?: Uint8Array[]): Item => ({
    path,
    type: chunks ? "file" : "dir",
    mode: 0o644,
    uid: 0,
    gid: 0,
    mtimeNs: 1_700_000_000_000_000_000n,
    size: chunks ? chunks.length : 0,
    chunks,
  });
  const encoder = newItemEncoder();
  const stream = new ItemStreamBuffer();
  const encoded = [encodeItem(encoder, item("src"))];
  for (const [path, names] of Object.entries(files)) {
    const chunks = [];
    for (const n of names) {
      f.ids[n] = await addBlob(f.repo, session, ObjectType.data, f.data[n]);
      chunks.push(f.ids[n]);
    }
    encoded.push(encodeItem(encoder, item(`src/${path}`, chunks)));
  }
  const items: Uint8Array[] = [];
  for (const e of encoded) {
    const blob = stream.add(e);
    if (blob) items.push(await addBlob(f.repo, session, ObjectType.items, blob));
  }
  const rest = stream.flush();
  if (rest) items.push(await addBlob(f.repo, session, ObjectType.items, rest));
  await session.commit({
    name,
    hostname: "host",
    username: "user",
    time: "2024-05-06T07:08:09.000Z",
    timeEnd: "2024-05-06T07:08:10.000Z",
    sources: ["/src"],
    items,
    stats: { files: encoded.length, original: 0, compressed: 0, deduplicated: 0 },
  });
}

/**
 * Two archives. "a": src/a1 = [c1, c2], src/a2 = [c3], all in one data pack, its item blob in
 * a pack of its own. "b": src/b1 = [big] (3.4 MiB, over the 3.2 MiB pack target: a pack of its
 * own), src/b2 = [c1] (shared with a); b's item blob is in a fourth pack.
 */
export async function fixture(encryption: EncryptionMode = "aes256gcm"): Promise<Fixture> {
  const backend = new MemoryBackend("memory:check");
  await initRepository(backend, {
    encryption,
    passphrase: encryption === "none" ? undefined : PASS,
    kdf: FAST,
    minPackSize: 1 << 20,
    maxPackSize: 4 << 20,
  });
  const repo = await Repository.open(backend, { passphrase: PASS });
  const f: Fixture = {
    backend,
    repo,
    data: {
      c1: randomData(3000, 1),
      c2: randomData(5000, 2),
      c3: new TextEncoder().encode("hello ".repeat(500)),
      big: randomData(3_400_000, 3),
    },
    ids: {},
  };
  await commit(f, "a", { a1: ["c1", "c2"], a2: ["c3"] });
  await commit(f, "b", { b1: ["big"], b2: ["c1"] });
  return f;
}

/** The storage key of the pack that holds the named chunk. */
export async function packOf(f: Fixture, name: string): Promise<string> {
  return packKey((await f.repo.readIndex()).get(f.ids[name])!.pack);
}

/** Rewrites a stored object through `edit`. */
export async function edit(
  f: Fixture,
  key: string,
  fn: (b: Uint8Array) => Uint8Array,
): Promise<void> {
  await f.backend.put(key, fn((await f.backend.get(key))!));
}

/** The problems of `r` that are errors. */
export function errors(r: CheckResult): Problem[] {
  return r.problems.filter((p) => p.severity === "error");
}

/** The one problem of `kind` in `r` (asserts there is exactly one). */
export function only(r: CheckResult, kind: ProblemKind): Problem {
  const found = r.problems.filter((p) => p.kind === kind);
  equal(found.length, 1, `one ${kind} in ${JSON.stringify(r.problems, null, 1)}`);
  return found[0];
}

/** "severity kind" of every problem of `r`, sorted. */
export function kinds(r: CheckResult): string[] {
  return r.problems.map((p) => `${p.severity} ${p.kind}`).sort();
}

/** The keys of the packs in `backend`, sorted. */
export async function packKeys(backend: MemoryBackend): Promise<string[]> {
  const keys = [];
  for await (const o of backend.list("packs/")) keys.push(o.key);
  return keys.sort();
}

/** Read ranges to verify with: the default, and one so small that records span many ranges. */
export const RANGES = [undefined, 4093];

/** Bytes in a KiB. */
export const KiB = 1024;
/** Bytes in a MiB. */
export const MiB: number = 1024 * KiB;

/**
 * Runs `fn` with a temp dir (removed afterwards) and an open repository in memory: 1 MiB packs,
 * chunks of 16-256 KiB.
 */
export async function withRepo(
  fn: (dir: string, repo: Repository<MemoryBackend>) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    const backend = new MemoryBackend();
    await initRepository(backend, {
      encryption: "aes256gcm",
      passphrase: "p",
      kdf: FAST,
      chunker: { minSize: 16 * KiB, avgSize: 64 * KiB, maxSize: 256 * KiB },
      minPackSize: MiB,
      maxPackSize: MiB,
    });
    await fn(dir, await Repository.open(backend, { passphrase: "p" }));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Writes files of the given sizes (and a dir, a symlink); returns the sum of their sizes. */
export async function writeTree(src: string, sizes: number[]): Promise<number> {
  await Deno.mkdir(`${src}/sub`, { recursive: true });
  let sum = 0;
  for (const [i, n] of sizes.entries()) {
    const data = i % 3 === 2 ? new Uint8Array(n) : seededBytes(n, i + 1); // zeros become holes
    await Deno.writeFile(`${src}/${i % 2 ? "sub/" : ""}f${i}.bin`, data);
    sum += n;
  }
  await Deno.symlink("f0.bin", `${src}/link`);
  return sum;
}

/** Bytes a pack parser reads as types, counts and lengths. */
export const PACK_SPECIALS = [0x00, 0xff, 0x7f, 0x80, 0x01, 0x02, 0x06];

/** The u32le at `at` in `b`. */
export const u32 = (b: Uint8Array, at: number) =>
  new DataView(b.buffer, b.byteOffset).getUint32(at, true);

/** A blob of a pack made by {@linkcode makePack}. */
export interface Blob {
  id: Uint8Array;
  type: ObjectTypeTag;
  plain: Uint8Array;
  sealed: Uint8Array;
}

/** A finished pack of `count` sealed blobs (every third an items blob), with its bytes. */
export async function makePack(key: RepoKey, next: () => number, count: number) {
  const writer = new PackWriter();
  const blobs: Blob[] = [];
  for (let i = 0; i < count; i++) {
    const plain = randomBytes(next, 1 + (next() % 300));
    const id = await key.chunkId(plain);
    const type = i % 3 === 2 ? ObjectType.items : ObjectType.data;
    const sealed = await key.seal(type, id, plain);
    writer.add(id, type, sealed, plain.length);
    blobs.push({ id, type, plain, sealed });
  }
  const done = await writer.finish(key);
  return {
    ...done,
    entries: [...done.entries],
    bytes: concat(...(done.body as Uint8Array[])),
    blobs,
  };
}

/** An error check for `rejects`/`throws`: an IntegrityError about `what`, for `reason`. */
export function assertCorrupt(what: string, reason: RegExp): (err: unknown) => boolean {
  return (err: unknown) => {
    ok(err instanceof IntegrityError, `expected IntegrityError, got ${err}`);
    ok(err.message.startsWith(what), err.message);
    ok(reason.test(err.message), err.message);
    return true;
  };
}

/** readPackHeader's entries as an array, to compare with deepStrictEqual. */
export async function readPackHeaderArray(
  ...args: Parameters<typeof readPackHeader>
): Promise<PackEntry[]> {
  return [...await readPackHeader(...args)];
}
