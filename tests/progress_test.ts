import { deepStrictEqual, equal, ok } from "node:assert/strict";
import { MemoryBackend } from "../backends/memory.ts";
import { encodeManifest } from "../lib/manifest.ts";
import { backup } from "../lib/archiver.ts";
import type { CheckProgress } from "../lib/check_report.ts";
import { checkRepository } from "../lib/checker.ts";
import { type CompactProgress, compactRepository, planCompaction } from "../lib/compactor.ts";
import { ObjectType } from "../lib/crypto.ts";
import type { KdfParams } from "../lib/key_file.ts";
import { initRepository, Repository } from "../lib/repository.ts";
import { extract, type ExtractProgress } from "../lib/restorer.ts";
import { seededBytes } from "../lib/_fuzz.ts";

const FAST: KdfParams = { iterations: 1, memoryKiB: 1024, parallelism: 1 };
const KiB = 1024;
const MiB = 1024 * KiB;

// ---------------------------------------------------------------------------------------------
// What extract, check and compact report

async function withRepo(
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
async function writeTree(src: string, sizes: number[]): Promise<number> {
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

Deno.test("extract reports bytes and items up to the archive's totals, also for a selected part", async () => {
  await withRepo(async (dir, repo) => {
    const sizes = [0, 1, 300 * KiB, 700 * KiB, 5 * KiB, 1 * MiB, 200 * KiB, 40 * KiB];
    const sum = await writeTree(`${dir}/src`, sizes);
    const r = await backup(repo, {
      name: "a",
      sources: [`${dir}/src`],
      compression: { algorithm: "lz4" },
    });
    const updates: ExtractProgress[] = [];
    const result = await extract(repo, {
      archive: "a",
      dest: `${dir}/out`,
      budgetBytes: 64 * KiB,
      onProgress: (p) => updates.push({ ...p }),
    });
    const items = r.stats.files;
    equal(result.files, items);
    const last = updates.at(-1)!;
    deepStrictEqual(
      [last.files, last.totalFiles, last.bytes, last.totalBytes],
      [items, items, sum, sum],
    );
    for (const u of updates) {
      deepStrictEqual([u.totalFiles, u.totalBytes], [items, sum], "the totals never change");
    }
    for (let i = 1; i < updates.length; i++) ok(updates[i].bytes >= updates[i - 1].bytes);

    // only sub/: the totals are counted from the selected items before extracting
    const part: ExtractProgress[] = [];
    const base = `${dir}/src`.replace(/^\/+/, "");
    await extract(repo, {
      archive: "a",
      dest: `${dir}/part`,
      patterns: [`${base}/sub`],
      onProgress: (p) => part.push({ ...p }),
    });
    const subBytes = sizes.filter((_, i) => i % 2).reduce((a, b) => a + b, 0);
    const subItems = 1 + sizes.filter((_, i) => i % 2).length;
    const end = part.at(-1)!;
    deepStrictEqual(
      [end.files, end.totalFiles, end.bytes, end.totalBytes],
      [subItems, subItems, subBytes, subBytes],
    );
    for (const u of part) deepStrictEqual([u.totalFiles, u.totalBytes], [subItems, subBytes]);
  });
});

Deno.test("check reports packs and, with verifyData, pack bytes up to the totals in storage", async () => {
  await withRepo(async (dir, repo) => {
    await writeTree(`${dir}/src`, [1500 * KiB, 2 * MiB, 900 * KiB]);
    await backup(repo, { name: "a", sources: [`${dir}/src`], compression: { algorithm: "lz4" } });
    let packs = 0;
    let packBytes = 0;
    for await (const o of repo.backend.list("packs/")) {
      packs++;
      packBytes += o.size;
    }
    ok(packs >= 3, `${packs} packs`);
    const updates: CheckProgress[] = [];
    const result = await checkRepository(repo, {
      verifyData: true,
      readRange: 32 * KiB,
      onProgress: (p) => updates.push({ ...p }),
    });
    deepStrictEqual(result.problems, []);
    const headers = updates.filter((u) => u.phase === "headers");
    const data = updates.filter((u) => u.phase === "data");
    equal(updates.indexOf(data[0]), headers.length, "headers first, then data");
    deepStrictEqual(
      [headers.at(-1)!.packs, headers.at(-1)!.totalPacks, headers.at(-1)!.totalPackBytes],
      [packs, packs, packBytes],
    );
    const end = data.at(-1)!;
    deepStrictEqual(
      [end.packs, end.totalPacks, end.packBytes, end.totalPackBytes],
      [packs, packs, packBytes, packBytes],
    );
    equal(end.bytes, result.stats.bytesRead);
    ok(data.length > 2 * packs, `${data.length} updates: also within each pack`);
    for (let i = 1; i < data.length; i++) ok(data[i].packBytes >= data[i - 1].packBytes);
  });
});

Deno.test("compact reports the bytes copied up to the plan's copyBytes", async () => {
  await withRepo(async (dir, repo) => {
    // "all" stores files in turn dropped and kept, so most packs hold both and get rewritten
    await Deno.mkdir(`${dir}/all`);
    await Deno.mkdir(`${dir}/keep`);
    for (let i = 0; i < 24; i++) {
      const data = seededBytes(200 * KiB, 100 + i);
      await Deno.writeFile(`${dir}/all/f${String(i).padStart(2, "0")}`, data);
      if (i % 2) await Deno.writeFile(`${dir}/keep/f${i}`, data);
    }
    const compression = { algorithm: "lz4" as const };
    await backup(repo, { name: "both", sources: [`${dir}/all`], compression });
    await backup(repo, { name: "keep", sources: [`${dir}/keep`], compression });
    const manifest = await repo.readManifest();
    manifest.archives = manifest.archives.filter((a) => a.name !== "both");
    await repo.backend.put(
      "manifest",
      await repo.key.seal(ObjectType.manifest, "manifest", encodeManifest(manifest)),
    );
    const plan = await planCompaction(repo, { thresholdPercent: 1 });
    ok(plan.copyBlobs > 0, "some live blobs must move");
    const updates: CompactProgress[] = [];
    const result = await compactRepository(repo, {
      thresholdPercent: 1,
      onProgress: (p) => updates.push({ ...p }),
    });
    deepStrictEqual(result.corrupt, []);
    const copy = updates.filter((u) => u.phase === "copy");
    deepStrictEqual(copy[0], {
      phase: "copy",
      done: 0,
      total: plan.copyBlobs,
      bytes: 0,
      totalBytes: plan.copyBytes,
    });
    const end = copy.at(-1)!;
    deepStrictEqual(
      [end.done, end.total, end.bytes, end.totalBytes],
      [plan.copyBlobs, plan.copyBlobs, plan.copyBytes, plan.copyBytes],
    );
    for (let i = 1; i < copy.length; i++) ok(copy[i].bytes! > copy[i - 1].bytes!);
    deepStrictEqual([...new Set(updates.map((u) => u.phase))], ["scan", "copy", "index", "delete"]);
  });
});
