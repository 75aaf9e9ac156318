import { deepStrictEqual, equal, ok, rejects } from "node:assert/strict";
import { MemoryBackend } from "../backends/memory.ts";
import { backup } from "./archiver.ts";
import type { KdfParams } from "./key_file.ts";
import { PathSelector } from "./patterns.ts";
import { initRepository, Repository } from "./repository.ts";
import { scanSources } from "./scanner.ts";
import { seededBytes } from "./_fuzz.ts";

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

Deno.test("scanSources skips what backup skips: unreadable directories and missing sources", async () => {
  await withTempDir(async (dir) => {
    await Deno.mkdir(`${dir}/src/locked`, { recursive: true });
    await Deno.writeFile(`${dir}/src/locked/secret`, new Uint8Array(1000));
    await Deno.writeFile(`${dir}/src/open`, new Uint8Array(10));
    await Deno.chmod(`${dir}/src/locked`, 0o000);
    try {
      // root reads any directory: then "locked" counts like any other
      const root = Deno.uid() === 0;
      const totals = await scanSources([`${dir}/src`, `${dir}/missing`, `${dir}/src/open`]);
      deepStrictEqual(
        totals,
        root ? { files: 5, bytes: 1020 } : { files: 3, bytes: 20 },
        "a source given twice counts twice, as backup stores it twice",
      );
    } finally {
      await Deno.chmod(`${dir}/src/locked`, 0o700);
    }
  });
});

Deno.test("scanSources yields the event loop while it walks, and stops when aborted", async (t) => {
  await withTempDir(async (dir) => {
    const DIRS = 10;
    const FILES = 1000;
    for (let d = 0; d < DIRS; d++) {
      Deno.mkdirSync(`${dir}/d${d}`);
      for (let i = 0; i < FILES; i++) Deno.writeFileSync(`${dir}/d${d}/f${i}`, new Uint8Array());
    }
    const entries = 1 + DIRS * (1 + FILES);

    await t.step("a 1 ms timer keeps running during the walk", async () => {
      // a stand-in for the backup beside the scan
      const gaps: number[] = [];
      let last = performance.now();
      const timer = setInterval(() => {
        const now = performance.now();
        gaps.push(now - last);
        last = now;
      }, 1);
      const start = performance.now();
      let totals;
      try {
        totals = await scanSources([dir]);
      } finally {
        clearInterval(timer);
      }
      const ms = performance.now() - start;
      deepStrictEqual(totals, { files: entries, bytes: 0 });
      gaps.sort((a, b) => a - b);
      const median = gaps[gaps.length >> 1] ?? Infinity;
      console.log(
        `scan: ${Math.round(totals.files / ms * 1000)} entries/s beside a 1 ms timer; ` +
          `${gaps.length} timer runs in ${ms.toFixed(0)} ms, median gap ${median.toFixed(1)} ms`,
      );
      // slices of 5 ms: a scan that never yielded would leave the timer one run at the end
      ok(gaps.length >= ms / 25, `${gaps.length} timer runs in ${ms.toFixed(0)} ms`);
      ok(median < 25, `median gap ${median.toFixed(1)} ms`);
    });

    await t.step("an abort stops it with the signal's reason", async () => {
      const before = new AbortController();
      before.abort();
      await rejects(scanSources([dir], { signal: before.signal }), { name: "AbortError" });

      const during = new AbortController();
      let seen = 0;
      const scan = scanSources([dir], {
        signal: during.signal,
        // counts the entries looked at
        isExcluded: () => {
          seen++;
          return false;
        },
      });
      setTimeout(() => during.abort(new Error("stop")), 0);
      await rejects(scan, { message: "stop" });
      ok(seen < entries, `stopped after ${seen} of ${entries} entries`);
    });
  });
});

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
    const socket = Deno.listen({ transport: "unix", path: `${src}/sock` });
    const selector = new PathSelector(["**/*.log", "**/cache"]);
    const options = {
      isExcluded: (p: string) => selector.selects(p),
      excludeDirs: [`${src}/repo`, `${dir}/does-not-exist`],
    };

    const totals = await scanSources([src], options);
    const stored = ["a.txt", "empty", "deep/er/still/b.bin", "deep/c.bin"];
    equal(totals.bytes, stored.reduce((sum, p) => sum + sizes[p], 0));
    // src, deep, deep/er, deep/er/still, 4 files, 2 symlinks, the FIFO (stored, never read)
    equal(totals.files, 4 + stored.length + 2 + (fifo ? 1 : 0));

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
    socket.close();
    deepStrictEqual(warnings, [`Skipped "${src}/sock": a socket (sockets are not backed up)`]);
  });
});
