/**
 * Repositories and source trees shared by the lib/ tests of several engines (test code only).
 *
 * @module
 */

import { MemoryBackend } from "../backends/memory.ts";
import type { KdfParams } from "./key_file.ts";
import { initRepository, Repository } from "./repository.ts";
import { seededBytes } from "./_fuzz.ts";

const FAST: KdfParams = { iterations: 1, memoryKiB: 1024, parallelism: 1 };
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
