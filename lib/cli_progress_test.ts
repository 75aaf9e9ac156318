import { deepStrictEqual, equal, ok } from "node:assert/strict";
import {
  displayWidth,
  fitMiddle,
  formatBytes,
  formatDuration,
  formatProgressLine,
  progressEnabled,
  ProgressMeter,
  progressPercent,
} from "./cli_progress.ts";

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

// ---------------------------------------------------------------------------------------------
// Pure helpers

Deno.test("formatBytes uses binary units with three significant digits", () => {
  const table: [number, string][] = [
    [0, "0 B"],
    [1, "1 B"],
    [1023, "1023 B"],
    [KiB, "1.00 KiB"],
    [1.5 * KiB, "1.50 KiB"],
    [10 * KiB, "10.0 KiB"],
    [123.4 * KiB, "123 KiB"],
    [1023.7 * KiB, "1.00 MiB"], // rounds up into the next unit, never "1024 KiB"
    [10 * MiB - 1, "10.0 MiB"], // 9.99999 rounds to 10: one decimal, not "10.00"
    [5 * GiB + 512 * MiB, "5.50 GiB"],
    [3 * 1024 * GiB, "3.00 TiB"],
    [-2 * KiB, "-2.00 KiB"],
    [NaN, "? B"],
  ];
  for (const [n, want] of table) equal(formatBytes(n), want, `formatBytes(${n})`);
});

Deno.test("formatDuration shows two units at most and rounds to the second", () => {
  const table: [number, string][] = [
    [0, "0s"],
    [0.4, "0s"],
    [42, "42s"],
    [59.4, "59s"],
    [59.6, "1m00s"],
    [185, "3m05s"],
    [3599, "59m59s"],
    [3600, "1h00m"],
    [3720, "1h02m"],
    [23 * 3600 + 59 * 60 + 50, "1d00h"], // 23h59m50s rounds to the next day, not "24h00m"
    [2 * 86400 + 3 * 3600, "2d03h"],
    [-1, "?"],
    [Infinity, "?"],
  ];
  for (const [s, want] of table) equal(formatDuration(s), want, `formatDuration(${s})`);
});

Deno.test("progressEnabled draws only on a terminal or with --progress, never with --quiet or --json", () => {
  const rows = [];
  for (const quiet of [false, true]) {
    for (const json of [false, true]) {
      for (const progress of [false, true]) {
        for (const isTerminal of [false, true]) {
          rows.push({ quiet, json, progress, isTerminal });
        }
      }
    }
  }
  const shown = rows.filter((r) => progressEnabled(r));
  deepStrictEqual(shown, [
    { quiet: false, json: false, progress: false, isTerminal: true },
    { quiet: false, json: false, progress: true, isTerminal: false },
    { quiet: false, json: false, progress: true, isTerminal: true },
  ]);
  equal(progressEnabled({ isTerminal: true }), true, "absent flags count as not given");
});

Deno.test("the percent comes from bytes when their total is known, else from items", () => {
  equal(progressPercent({ bytes: 25, totalBytes: 100, files: 9, totalFiles: 10 }), 25);
  equal(progressPercent({ bytes: 25, files: 3, totalFiles: 4 }), 75);
  equal(progressPercent({ bytes: 0, totalBytes: 0, files: 1, totalFiles: 2 }), 50);
  equal(progressPercent({ bytes: 150, totalBytes: 100 }), 100, "a low estimate caps at 100");
  equal(progressPercent({ bytes: 5 }), undefined);
  const line = formatProgressLine({ files: 3, totalFiles: 4, bytes: 25 });
  ok(line.startsWith("3/4 files (75%), 25 B"), line);
});

Deno.test("fitMiddle keeps both ends, counts wide characters as two columns and splits no character", () => {
  const name = "/home/me/写真/2024/🎉🎉 party 👨‍👩‍👧 family/IMG_20240101_\u0301é.jpg";
  for (let columns = 1; columns <= displayWidth(name) + 2; columns++) {
    const out = fitMiddle(name, columns);
    ok(displayWidth(out) <= columns, `${columns}: "${out}" is ${displayWidth(out)} wide`);
    ok(out.isWellFormed(), `${columns}: no lone surrogate in "${out}"`);
    ok(!out.includes("\u200d…") && !out.startsWith("\u200d"), `${columns}: no torn emoji`);
    if (columns >= displayWidth(name)) equal(out, name);
    else {
      ok(out.includes("…"), `${columns}: "${out}" marks the cut`);
      if (columns >= 12) ok(out.startsWith("/ho") && out.endsWith(".jpg"), out);
    }
  }
  equal(displayWidth("写真"), 4);
  equal(displayWidth("👨‍👩‍👧"), 2, "one family emoji is one wide grapheme");
  equal(displayWidth("e\u0301"), 1, "a combining accent takes no column");
});

Deno.test("names with newlines, escapes and bidi overrides print as one harmless line", () => {
  const evil = "a\nb\r\x1b[2Jc\u202ed\ud800e\u0085f";
  equal(fitMiddle(evil, 100), "a?b??[2Jc?d?e?f");
  const line = formatProgressLine({ files: 1, bytes: 1, current: evil }, { columns: 80 });
  ok(!/[\p{Cc}\u202e]/u.test(line) && line.isWellFormed(), JSON.stringify(line));
});

Deno.test("formatProgressLine fits the terminal width and drops a name with no room left", () => {
  const u = {
    phase: "copy",
    files: 12345,
    totalFiles: 99999,
    bytes: 3 * GiB,
    totalBytes: 7 * GiB,
    current: "/srv/data/" + "非常に長いディレクトリ名/".repeat(10) + "final-name.bin",
  };
  const rates = { bytesPerSecond: 85 * MiB, etaSeconds: 185 };
  const full = formatProgressLine(u, { rates });
  equal(
    full,
    `copy: 12345/99999 files, 3.00 GiB of 7.00 GiB (42%), 85.0 MiB/s, ETA 3m05s  ${u.current}`,
  );
  for (const columns of [20, 60, 90, 120, 200]) {
    const line = formatProgressLine(u, { rates, columns });
    ok(displayWidth(line) <= columns, `${columns}: ${displayWidth(line)} wide`);
    if (columns >= 90) ok(line.endsWith(".bin"), `${columns}: the name's end stays`);
    if (columns >= 120) ok(line.endsWith("/final-name.bin"), `${columns}: all of the name`);
  }
  ok(!formatProgressLine(u, { rates, columns: 60 }).includes("非"), "too little room: no name");
});

// ---------------------------------------------------------------------------------------------
// The meter, with a fake clock

function fakeMeter(options: { columns?: number; terminal?: boolean } = {}) {
  const clock = { t: 0 };
  const out: string[] = [];
  const meter = new ProgressMeter((s) => out.push(s), {
    now: () => clock.t,
    columns: () => options.columns ?? 100,
    terminal: options.terminal,
  });
  return { clock, out, meter };
}

Deno.test("100 updates in 50 ms draw once; the next interval draws again", () => {
  const { clock, out, meter } = fakeMeter();
  for (let i = 0; i < 100; i++) {
    clock.t = i / 2;
    meter.update({ files: i, bytes: i * KiB, current: `/f${i}` });
  }
  ok(out.length >= 1 && out.length <= 2, `${out.length} draws`);
  clock.t = 120;
  meter.update({ files: 100, bytes: 100 * KiB, current: "/f100" });
  equal(out.length, 2);
  ok(out[1].startsWith("\r\x1b[K100 files, 100 KiB"), JSON.stringify(out[1]));
});

Deno.test("the rate is the last 5 seconds' bytes, not the average since the start", () => {
  const { clock, meter } = fakeMeter();
  let bytes = 0;
  // 10 s at 100 MiB/s, then 10 s at 10 MiB/s, an update every 100 ms
  for (let step = 1; step <= 200; step++) {
    clock.t = step * 100;
    bytes += (step <= 100 ? 100 : 10) * MiB / 10;
    meter.update({ bytes });
    if (step === 100) {
      equal(Math.round(meter.rates().bytesPerSecond! / MiB), 100);
    }
  }
  const rate = meter.rates().bytesPerSecond!;
  equal(Math.round(rate / MiB), 10, `${formatBytes(rate)}/s`);
  equal(Math.round((bytes / 20) / MiB), 55, "the average since the start would say 55");
});

Deno.test("ETA is what is left over the windowed rate, and percent shows beside the bytes", () => {
  const { clock, out, meter } = fakeMeter({ columns: 200 });
  for (let step = 0; step <= 20; step++) {
    clock.t = step * 100;
    meter.update({ files: step, bytes: step * MiB, totalBytes: 100 * MiB, current: "/x" });
  }
  // 20 MiB in 2 s: 10 MiB/s, 80 MiB left
  equal(Math.round(meter.rates().etaSeconds!), 8);
  equal(out.at(-1), "\r\x1b[K20 files, 20.0 MiB of 100 MiB (20%), 10.0 MiB/s, ETA 8s  /x");
});

Deno.test("totals from a concurrent scan give percent and ETA until the updates carry their own", () => {
  const { clock, out, meter } = fakeMeter({ columns: 200 });
  meter.update({ files: 0, bytes: 0 });
  meter.setTotals({ files: 40, bytes: 40 * MiB });
  for (let step = 1; step <= 10; step++) {
    clock.t = step * 100;
    meter.update({ files: step, bytes: step * MiB });
  }
  equal(out.at(-1), "\r\x1b[K10/40 files, 10.0 MiB of 40.0 MiB (25%), 10.0 MiB/s, ETA 3s");
  clock.t = 2000;
  meter.update({ files: 11, bytes: 11 * MiB, totalBytes: 22 * MiB });
  ok(out.at(-1)!.includes("11.0 MiB of 22.0 MiB (50%)"), out.at(-1));
});

Deno.test("a new phase draws at once and restarts the rate", () => {
  const { clock, out, meter } = fakeMeter();
  for (let step = 0; step <= 10; step++) {
    clock.t = step * 100;
    meter.update({ phase: "scan", files: step, unit: "archives" });
  }
  const draws = out.length;
  clock.t = 1010;
  meter.update({ phase: "copy", files: 0, totalFiles: 5, unit: "blobs", bytes: 0 });
  equal(out.length, draws + 1, "drawn though the last draw was 10 ms ago");
  equal(out.at(-1), "\r\x1b[Kcopy: 0/5 blobs (0%), 0 B");
  equal(meter.rates().bytesPerSecond, undefined, "no rate carried over from the scan");
});

Deno.test("every drawn line fits the terminal, one column spare", () => {
  const { clock, out, meter } = fakeMeter({ columns: 50 });
  for (let i = 0; i < 50; i++) {
    clock.t = i * 150;
    meter.update({
      files: i,
      bytes: i * 7 * MiB,
      totalBytes: 400 * MiB,
      current: `/data/${"長い名前".repeat(i % 7)}/${"x".repeat(i)}/file-${i}.txt`,
    });
  }
  ok(out.length > 10);
  for (const w of out) {
    ok(w.startsWith("\r\x1b[K"));
    ok(displayWidth(w.slice(4)) <= 49, `${displayWidth(w.slice(4))}: ${w}`);
  }
});

Deno.test("clear and finish take the line off; nothing is drawn after finish", () => {
  const { clock, out, meter } = fakeMeter();
  meter.clear();
  deepStrictEqual(out, [], "nothing on screen: nothing to clear");
  meter.update({ bytes: 1 });
  meter.clear();
  equal(out.at(-1), "\r\x1b[K");
  clock.t = 1;
  meter.update({ bytes: 2 });
  equal(out.at(-1), "\r\x1b[K2 B", "after a clear the next update redraws at once");
  meter.finish();
  equal(out.at(-1), "\r\x1b[K");
  const n = out.length;
  clock.t = 1000;
  meter.update({ bytes: 3 });
  meter.finish();
  equal(out.length, n);
});

Deno.test("off a terminal the meter writes plain lines once a second, and disabled it writes nothing", () => {
  const { clock, out, meter } = fakeMeter({ terminal: false });
  for (let step = 0; step <= 30; step++) {
    clock.t = step * 100;
    meter.update({ files: step, bytes: step * KiB, current: "/a/b" });
  }
  meter.finish();
  deepStrictEqual(out.map((l) => l.split(",")[0]), ["0 files", "10 files", "20 files", "30 files"]);
  ok(out.every((l) => l.endsWith("\n") && !l.includes("\r") && !l.includes("\x1b")));

  const lines: string[] = [];
  const off = new ProgressMeter((s) => lines.push(s), { disabled: true });
  off.update({ bytes: 1 });
  off.finish();
  deepStrictEqual(lines, []);
});
