import { deepStrictEqual, equal, ok } from "node:assert/strict";
import { backup } from "./archiver.ts";
import { extract, type ExtractProgress } from "./restorer.ts";
import { KiB, MiB, withRepo, writeTree } from "./_test_repos.ts";

// What extract reports

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

// What extract sets, and what it skips because it is already right

Deno.test("extract sets exact modes and owners (set-id bits, bits the umask strips) in new and existing directories", async () => {
  await withRepo(async (dir, repo) => {
    const src = `${dir}/src`;
    Deno.mkdirSync(src);
    const root = Deno.uid() === 0;
    const modes = [0o644, 0o600, 0o000, 0o777, 0o666, 0o4755, 0o2750, 0o1744];
    const want = new Map<string, [number, number, number]>();
    modes.forEach((mode, i) => {
      const f = `${src}/f${i}`;
      Deno.writeTextFileSync(f, `file ${i}`);
      if (root && i % 2) Deno.chownSync(f, 1234 + i, 5678 + i);
      Deno.chmodSync(f, mode); // after chown, which clears set-id bits
      const st = Deno.lstatSync(f);
      want.set(`f${i}`, [st.mode! & 0o7777, st.uid!, st.gid!]);
    });
    equal(want.get("f5")![0], 0o4755);
    await backup(repo, { name: "a", sources: [src], compression: { algorithm: "lz4" } });
    const rel = src.replace(/^\/+/, "");
    // an existing directory with the set-group-id bit: files made there get its group
    const existing = `${dir}/old/${rel}`;
    Deno.mkdirSync(existing, { recursive: true });
    if (root) Deno.chownSync(existing, 0, 4242);
    Deno.chmodSync(existing, 0o2777);
    for (const out of [`${dir}/new`, `${dir}/old`]) {
      const r = await extract(repo, { archive: "a", dest: out });
      deepStrictEqual(r.warnings, []);
      for (const [name, [mode, uid, gid]] of want) {
        const st = Deno.lstatSync(`${out}/${rel}/${name}`);
        deepStrictEqual([st.mode! & 0o7777, st.uid, st.gid], [mode, uid, gid], `${out} ${name}`);
        equal(Deno.readTextFileSync(`${out}/${rel}/${name}`), `file ${name.slice(1)}`);
      }
    }
  });
});
