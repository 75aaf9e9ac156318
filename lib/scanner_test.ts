import { deepStrictEqual, ok, rejects } from "node:assert/strict";
import { scanSources } from "./scanner.ts";

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
