import { deepStrictEqual, equal } from "node:assert/strict";
import { MemoryBackend } from "../backends/memory.ts";
import { backup } from "../lib/archiver.ts";
import type { KdfParams } from "../lib/key_file.ts";
import { PathSelector } from "../lib/patterns.ts";
import { initRepository, Repository } from "../lib/repository.ts";
import { scanSources } from "../lib/scanner.ts";
import { seededBytes } from "../lib/_fuzz.ts";

const FAST: KdfParams = { iterations: 1, memoryKiB: 1024, parallelism: 1 };

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.chmod(`${dir}`, 0o700).catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
}

/** Whether a FIFO could be made (mkfifo may be missing). */
async function mkfifo(path: string): Promise<boolean> {
  try {
    const { success } = await new Deno.Command("mkfifo", { args: [path] }).output();
    return success;
  } catch {
    return false;
  }
}

Deno.test("scanSources totals the regular files a backup stores, with excludes, symlinks and special files", async () => {
  await withTempDir(async (dir) => {
    const src = `${dir}/src`;
    const sizes: Record<string, number> = {
      "a.txt": 10,
      "empty": 0,
      "deep/er/still/b.bin": 70_000,
      "deep/c.bin": 123_457,
      "skip.log": 5_000, // excluded by pattern
      "deep/er/x.log": 7_000, // excluded by pattern
      "cache/big.bin": 250_000, // under an excluded directory
      "repo/pack": 99_999, // the repository: in excludeDirs
    };
    for (const [p, n] of Object.entries(sizes)) {
      await Deno.mkdir(`${src}/${p}`.replace(/\/[^/]+$/, ""), { recursive: true });
      await Deno.writeFile(`${src}/${p}`, seededBytes(n, n));
    }
    // not followed: counted as one entry of no bytes
    await Deno.symlink("deep/c.bin", `${src}/link-to-file`);
    await Deno.symlink("/", `${src}/link-to-root`);
    const fifo = await mkfifo(`${src}/fifo`);
    const selector = new PathSelector(["**/*.log", "**/cache"]);
    const options = {
      isExcluded: (p: string) => selector.selects(p),
      excludeDirs: [`${src}/repo`, `${dir}/does-not-exist`],
    };

    const totals = await scanSources([src], options);
    const stored = ["a.txt", "empty", "deep/er/still/b.bin", "deep/c.bin"];
    equal(totals.bytes, stored.reduce((sum, p) => sum + sizes[p], 0));
    // src, deep, deep/er, deep/er/still, 4 files, 2 symlinks
    equal(totals.files, 4 + stored.length + 2);

    // the archiver stores exactly what the scan counted
    const backend = new MemoryBackend();
    await initRepository(backend, { encryption: "aes256gcm", passphrase: "p", kdf: FAST });
    const repo = await Repository.open(backend, { passphrase: "p" });
    const warnings: string[] = [];
    const r = await backup(repo, {
      name: "a",
      sources: [src],
      compression: { algorithm: "lz4" },
      ...options,
      onWarning: (w) => warnings.push(w),
    });
    deepStrictEqual(totals, { files: r.stats.files, bytes: r.stats.original });
    equal(warnings.length, fifo ? 1 : 0, "the FIFO is skipped by both");
  });
});
