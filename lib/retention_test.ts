import { deepStrictEqual, equal, ok, throws } from "node:assert/strict";
import { IntegrityError, UsageError } from "./errors.ts";
import {
  applyRetention,
  describeRetention,
  isEmptyPolicy,
  parseRetention,
  type RetentionPolicy,
} from "./retention.ts";

/**
 * Thirty archives, oldest first; the comment gives each one's UTC weekday, ISO week (ISO
 * week-year) and what makes it interesting. Every expected set below was worked out by hand from
 * this table, walking it bottom-up (newest first).
 */
const ARCHIVES = [
  { name: "a01", time: "2019-03-10T09:00:00Z" }, // Sun 2019-W10, oldest
  { name: "a02", time: "2019-11-20T09:00:00Z" }, // Wed 2019-W47, newest of 2019
  { name: "a03", time: "2020-02-29T10:00:00Z" }, // Sat 2020-W09, leap day
  { name: "a04", time: "2020-05-31T12:00:00Z" }, // Sun 2020-W22, exactly 1y before a30
  { name: "a05", time: "2020-06-01T12:00:00Z" }, // Mon 2020-W23
  { name: "a06", time: "2020-12-28T10:00:00Z" }, // Mon 2020-W53 (first day of that week)
  { name: "a07", time: "2020-12-31T10:00:00Z" }, // Thu 2020-W53
  { name: "a08", time: "2020-12-31T22:00:00Z" }, // Thu 2020-W53, newest of 2020
  { name: "a09", time: "2021-01-01T08:00:00Z" }, // Fri 2020-W53: calendar 2021, ISO year 2020
  { name: "a10", time: "2021-01-03T20:00:00Z" }, // Sun 2020-W53 (last day of that week)
  { name: "a11", time: "2021-01-04T08:00:00Z" }, // Mon 2021-W01
  { name: "a12", time: "2021-01-10T08:00:00Z" }, // Sun 2021-W01
  { name: "a13", time: "2021-02-28T12:00:00Z" }, // Sun 2021-W08
  { name: "a14", time: "2021-03-01T12:00:00Z" }, // Mon 2021-W09
  { name: "a15", time: "2021-03-03T12:00:00Z" }, // Wed 2021-W09, exactly 3m before a30 (Go)
  { name: "a16", time: "2021-03-03T18:00:00Z" }, // Wed 2021-W09
  { name: "a17", time: "2021-04-30T12:00:00Z" }, // Fri 2021-W17
  { name: "a18", time: "2021-05-27T12:00:00Z" }, // Thu 2021-W21
  { name: "a19", time: "2021-05-29T12:00:00Z" }, // Sat 2021-W21, exactly 2d before a30
  { name: "a20", time: "2021-05-29T18:00:00Z" }, // Sat 2021-W21
  { name: "a21", time: "2021-05-30T09:00:00Z" }, // Sun 2021-W21
  { name: "a22", time: "2021-05-30T21:00:00Z" }, // Sun 2021-W21
  { name: "a23", time: "2021-05-31T08:00:00Z" }, // Mon 2021-W22, hour 08
  { name: "a24", time: "2021-05-31T08:30:00Z" }, // hour 08
  { name: "a25", time: "2021-05-31T09:15:00Z" }, // hour 09
  { name: "a26", time: "2021-05-31T09:45:00Z" }, // hour 09
  { name: "a27", time: "2021-05-31T10:05:00Z" }, // hour 10
  { name: "a28", time: "2021-05-31T11:00:00Z" }, // hour 11
  { name: "a29", time: "2021-05-31T11:59:00Z" }, // hour 11
  { name: "a30", time: "2021-05-31T12:00:00Z" }, // hour 12, newest
];

/** The archives in a fixed scrambled order (7 is coprime to 30), so input order never helps. */
const SCRAMBLED = ARCHIVES.map((_, i) => ARCHIVES[(i * 7) % ARCHIVES.length]);

/** a<from>..a<to> inclusive, newest first. */
function range(from: number, to: number): string[] {
  const out: string[] = [];
  for (let i = to; i >= from; i--) out.push(`a${String(i).padStart(2, "0")}`);
  return out;
}

/** The names kept, newest first. */
function kept(policy: RetentionPolicy, archives = SCRAMBLED): string[] {
  return applyRetention(archives, policy).filter((d) => d.keep).map((d) => d.archive.name);
}

const TABLE: { name: string; policy: RetentionPolicy; keep: string[] }[] = [
  // The three newest, nothing else.
  { name: "keep_last 3", policy: { keepLast: 3 }, keep: ["a30", "a29", "a28"] },
  // Hours 12 (a30), 11 (a29; a28 is the same hour), 10 (a27), 09 (a26, newer than a25).
  { name: "keep_hourly 4", policy: { keepHourly: 4 }, keep: ["a30", "a29", "a27", "a26"] },
  // Days 05-31 (a30), 05-30 (a22 beats a21), 05-29 (a20 beats a19), 05-27 (a18), 04-30 (a17).
  // Days without archives (05-28) are not counted.
  {
    name: "keep_daily 5",
    policy: { keepDaily: 5 },
    keep: ["a30", "a22", "a20", "a18", "a17"],
  },
  // ISO weeks 2021-W22 (a30), W21 (a22), W17 (a17), W09 (a16), W08 (a13), W01 (a12), then
  // 2020-W53 (a10): a09 (2021-01-01), a08/a07 (2020-12-31) and a06 (2020-12-28) share that week,
  // so none of them is kept; a bucket keyed by calendar year would wrongly keep a08 too. Then
  // 2020-W23 (a05) is the eighth.
  {
    name: "keep_weekly 8 (ISO week-year boundary)",
    policy: { keepWeekly: 8 },
    keep: ["a30", "a22", "a17", "a16", "a13", "a12", "a10", "a05"],
  },
  // Months 2021-05 (a30), 04 (a17), 03 (a16), 02 (a13), 01 (a12), 2020-12 (a08, the newest of
  // December; a09 is January 2021).
  {
    name: "keep_monthly 6",
    policy: { keepMonthly: 6 },
    keep: ["a30", "a17", "a16", "a13", "a12", "a08"],
  },
  // Years 2021 (a30) and 2020 (a08, its newest archive).
  { name: "keep_yearly 2", policy: { keepYearly: 2 }, keep: ["a30", "a08"] },
  // Only three years have archives: one per year, the newest of each. (restic >= 0.17 would also
  // keep a01 as the "oldest" archive; vger does not, see the module doc.)
  { name: "keep_yearly 10 > years", policy: { keepYearly: 10 }, keep: ["a30", "a08", "a02"] },
  // Each rule counts on its own: last takes a30, a29; daily takes a30 (05-31), a22, a20 even
  // though a30 is already kept by last (borg would skip a30 and also keep a18); weekly takes a30
  // (W22), a22 (W21), a17 (W17); monthly a30 (05), a17 (04), a16 (03).
  {
    name: "keep_last 2 + daily 3 + weekly 3 + monthly 3",
    policy: { keepLast: 2, keepDaily: 3, keepWeekly: 3, keepMonthly: 3 },
    keep: ["a30", "a29", "a22", "a20", "a17", "a16"],
  },
  // Newer than 2021-05-29T12:00 (a30 minus 2 days): a20..a30; a19 is exactly on the cutoff and
  // restic keeps only archives strictly after it.
  { name: "keep_within 2d", policy: { keepWithin: "2d" }, keep: range(20, 30) },
  // 2021-05-31 minus 3 months is "2021-02-31", which Go (and vger) normalize to 2021-03-03T12:00.
  // a15 sits exactly on it (out), a16 is after (in). a14 (03-01) would be kept by a "clamp to end
  // of February" rule and a13 by a "90 days" rule; both are out.
  { name: "keep_within 3m (month arithmetic)", policy: { keepWithin: "3m" }, keep: range(16, 30) },
  // 2020-05-31T12:00: a04 is exactly on it (out), a05 onwards in.
  { name: "keep_within 1y", policy: { keepWithin: "1y" }, keep: range(5, 30) },
  // 1 week = 7 days: newer than 2021-05-24T12:00, so a18 (05-27) onwards.
  { name: "keep_within 1w", policy: { keepWithin: "1w" }, keep: range(18, 30) },
  // 2021-05-31T12:00 minus 1y2m3d = 2020-03-28T12:00, minus 12h = 2020-03-28T00:00: a04 onwards;
  // a03 (2020-02-29) is out.
  { name: "keep_within 1y2m3d12h", policy: { keepWithin: "1y2m3d12h" }, keep: range(4, 30) },
  // Within and a count rule together: 2d keeps a20..a30, yearly adds a08 and a02.
  {
    name: "keep_within 2d + keep_yearly 3",
    policy: { keepWithin: "2d", keepYearly: 3 },
    keep: [...range(20, 30), "a08", "a02"],
  },
  // No rule: everything stays.
  { name: "empty policy", policy: {}, keep: range(1, 30) },
  // All zero is empty too: everything stays, nothing is deleted by accident.
  {
    name: "all-zero policy",
    policy: { keepLast: 0, keepDaily: 0, keepWithin: "0d" },
    keep: range(1, 30),
  },
];

for (const { name, policy, keep } of TABLE) {
  Deno.test(`retention table: ${name}`, () => {
    deepStrictEqual(kept(policy), keep);
  });
}

Deno.test("every archive is decided once, newest first, with the rules that kept it", () => {
  const decisions = applyRetention(SCRAMBLED, {
    keepLast: 2,
    keepDaily: 3,
    keepWeekly: 3,
    keepMonthly: 3,
  });
  deepStrictEqual(decisions.map((d) => d.archive.name), range(1, 30));
  const reasons = Object.fromEntries(
    decisions.filter((d) => d.keep).map((d) => [d.archive.name, d.reasons]),
  );
  deepStrictEqual(reasons, {
    a30: ["last", "daily", "weekly", "monthly"],
    a29: ["last"],
    a22: ["daily", "weekly"],
    a20: ["daily"],
    a17: ["weekly", "monthly"],
    a16: ["monthly"],
  });
  for (const d of decisions) equal(d.keep, d.reasons.length > 0, d.archive.name);
  // The decision carries the caller's own object, not a copy.
  ok(decisions.every((d) => ARCHIVES.includes(d.archive)));
});

Deno.test("within and hourly reasons are named", () => {
  const decisions = applyRetention(ARCHIVES, { keepHourly: 1, keepWithin: "1h" });
  deepStrictEqual(decisions.slice(0, 3).map((d) => [d.archive.name, d.reasons]), [
    ["a30", ["hourly", "within"]],
    ["a29", ["within"]],
    // a28 at 11:00 is exactly 1h before a30: on the cutoff, so out (restic keeps strictly after).
    ["a28", []],
  ]);
});

Deno.test("an empty policy keeps every archive and says so", () => {
  const decisions = applyRetention(ARCHIVES, {});
  equal(decisions.length, 30);
  ok(decisions.every((d) => d.keep && d.reasons.join() === "empty policy"));
  deepStrictEqual(applyRetention([], { keepLast: 1 }), []);
});

Deno.test("restic's documented example: keep-daily 4 over 12 weekly Sundays keeps the last four", () => {
  // doc/060_forget.rst, "Removing snapshots according to a policy": one backup every Sunday for
  // 12 weeks; `forget --keep-daily 4` keeps 8f8018c0, 59403279, dfee9fb4, e1ae2f40 and removes
  // the other eight.
  const snapshots = [
    ["0a1f9759", "2019-09-01"],
    ["46cfe4d5", "2019-09-08"],
    ["f6b1f037", "2019-09-15"],
    ["eb430a5d", "2019-09-22"],
    ["8cf1cb9a", "2019-09-29"],
    ["5d33b116", "2019-10-06"],
    ["b9553125", "2019-10-13"],
    ["e1a7b58b", "2019-10-20"],
    ["8f8018c0", "2019-10-27"],
    ["59403279", "2019-11-03"],
    ["dfee9fb4", "2019-11-10"],
    ["e1ae2f40", "2019-11-17"],
  ].map(([name, day]) => ({ name, time: `${day}T11:00:00Z` }));
  const decisions = applyRetention(snapshots, { keepDaily: 4 });
  deepStrictEqual(
    decisions.filter((d) => d.keep).map((d) => d.archive.name),
    ["e1ae2f40", "dfee9fb4", "59403279", "8f8018c0"],
  );
  ok(decisions.filter((d) => d.keep).every((d) => d.reasons.join() === "daily"));
  equal(decisions.filter((d) => !d.keep).length, 8);
  // The same Sundays with keep-weekly 4 keep the same four: one archive per week.
  deepStrictEqual(kept({ keepWeekly: 4 }, snapshots), [
    "e1ae2f40",
    "dfee9fb4",
    "59403279",
    "8f8018c0",
  ]);
});

Deno.test("ISO weeks at the start of a year belong to the next ISO week-year", () => {
  // 2019-12-29 is Sunday of 2019-W52; 2019-12-30 (Mon) and 2020-01-05 (Sun) are both 2020-W01.
  const archives = [
    { name: "w52", time: "2019-12-29T12:00:00Z" },
    { name: "w01-mon", time: "2019-12-30T12:00:00Z" },
    { name: "w01-sun", time: "2020-01-05T12:00:00Z" },
  ];
  deepStrictEqual(kept({ keepWeekly: 5 }, archives), ["w01-sun", "w52"]);
});

Deno.test("equal times are ordered by name, so the result does not depend on input order", () => {
  const archives = [
    { name: "host-b", time: "2021-05-31T12:00:00.000Z" },
    { name: "host-a", time: "2021-05-31T12:00:00Z" },
    { name: "host-c", time: "2021-05-31T14:00:00+02:00" }, // the same instant, another offset
    { name: "older", time: "2021-05-30T12:00:00Z" },
  ];
  const orders = [archives, [...archives].reverse(), [
    archives[2],
    archives[0],
    archives[3],
    archives[1],
  ]];
  for (const input of orders) {
    const decisions = applyRetention(input, { keepLast: 1, keepDaily: 2 });
    // Among equal times the name that sorts last counts as newest.
    deepStrictEqual(decisions.map((d) => [d.archive.name, d.reasons]), [
      ["host-c", ["last", "daily"]],
      ["host-b", []],
      ["host-a", []],
      ["older", ["daily"]],
    ]);
  }
});

Deno.test("times without an offset are UTC, and a bad time is an integrity error", () => {
  // 23:30 without offset must be read as UTC (day 05-31), whatever the machine's zone.
  deepStrictEqual(
    kept({ keepDaily: 2 }, [
      { name: "late", time: "2021-05-31T23:30:00" },
      { name: "early", time: "2021-05-31T00:30:00Z" },
      { name: "before", time: "2021-05-30T23:59:00Z" },
    ]),
    ["late", "before"],
  );
  throws(
    () => applyRetention([{ name: "x", time: "yesterday" }], { keepLast: 1 }),
    (err: unknown) =>
      err instanceof IntegrityError &&
      /archive "x": time "yesterday" is not ISO 8601/.test(err.message),
  );
});

Deno.test("with now, a future archive does not move the keep_within reference", () => {
  const archives = [
    { name: "future", time: "2099-01-01T00:00:00Z" }, // clock skew on some host
    { name: "today", time: "2021-05-31T12:00:00Z" },
    { name: "yesterday", time: "2021-05-30T13:00:00Z" },
    { name: "last-week", time: "2021-05-24T12:00:00Z" },
  ];
  // Without now the future archive is the newest and 2d keeps only it.
  deepStrictEqual(kept({ keepWithin: "2d" }, archives), ["future"]);
  // With now the newest non-future archive is the reference; the future one is after the cutoff
  // and so is kept as well, as restic does.
  const now = new Date("2021-06-01T00:00:00Z");
  deepStrictEqual(
    applyRetention(archives, { keepWithin: "2d" }, { now }).filter((d) => d.keep)
      .map((d) => d.archive.name),
    ["future", "today", "yesterday"],
  );
  // When every archive is in the future, keep_within keeps them all.
  deepStrictEqual(
    applyRetention(archives.slice(0, 1), { keepWithin: "1h" }, { now }).map((d) => d.keep),
    [true],
  );
});

Deno.test("parseRetention reads every key", () => {
  deepStrictEqual(
    parseRetention({
      keep_last: 1,
      keep_hourly: 24,
      keep_daily: 7,
      keep_weekly: 4,
      keep_monthly: 12,
      keep_yearly: 0,
      keep_within: "1y2m3d",
    }),
    {
      keepLast: 1,
      keepHourly: 24,
      keepDaily: 7,
      keepWeekly: 4,
      keepMonthly: 12,
      keepYearly: 0,
      keepWithin: "1y2m3d",
    },
  );
  deepStrictEqual(parseRetention(undefined), {});
  deepStrictEqual(parseRetention(null), {});
  deepStrictEqual(parseRetention({ keep_daily: null, keep_within: null }), {});
  for (const d of ["2d", "3m", "1y", "12h", "2w", "1y2m3d", "2y5m7d3h", "1w2d", "0d"]) {
    deepStrictEqual(parseRetention({ keep_within: d }), { keepWithin: d }, d);
  }
});

/** Asserts that parseRetention throws a UsageError whose message matches exactly. */
function assertRejects(raw: unknown, message: string, keyPath?: string): void {
  throws(() => parseRetention(raw, keyPath), (err: unknown) => {
    ok(err instanceof UsageError, `expected UsageError, got ${err}`);
    equal(err.message, message);
    return true;
  });
}

Deno.test("parseRetention rejects bad input naming the key", () => {
  assertRejects(
    { keep_within: "2x" },
    'retention.keep_within: "2x" is not a duration like 2d, 3m or 1y',
  );
  for (const bad of ["", "d", "2", "2 d", "-2d", "1.5d", "2d1y", "1d1d", "2D", "P2D"]) {
    assertRejects(
      { keep_within: bad },
      `retention.keep_within: ${JSON.stringify(bad)} is not a duration like 2d, 3m or 1y`,
    );
  }
  assertRejects({ keep_within: 7 }, "retention.keep_within: 7 is not a duration like 2d, 3m or 1y");
  assertRejects(
    { keep_daily: -1 },
    "retention.keep_daily: expected a whole number of archives (0 or more), got -1",
  );
  assertRejects(
    { keep_last: 1.5 },
    "retention.keep_last: expected a whole number of archives (0 or more), got 1.5",
  );
  assertRejects(
    { keep_weekly: "4" },
    'retention.keep_weekly: expected a whole number of archives (0 or more), got "4"',
  );
  assertRejects([1], "retention: expected a mapping of keep_* rules");
  assertRejects("keep_daily", "retention: expected a mapping of keep_* rules");
});

Deno.test("parseRetention suggests the key an unknown one probably meant", () => {
  assertRejects(
    { keep_dayly: 7 },
    'retention.keep_dayly: unknown key (did you mean "keep_daily"?)',
  );
  assertRejects({ daily: 7 }, 'retention.daily: unknown key (did you mean "keep_daily"?)');
  assertRejects(
    { keepWithin: "2d" },
    'retention.keepWithin: unknown key (did you mean "keep_within"?)',
  );
  assertRejects(
    { keep_montly: 1 },
    'repositories[0].retention.keep_montly: unknown key (did you mean "keep_monthly"?)',
    "repositories[0].retention",
  );
  assertRejects({ prefix: "x" }, "retention.prefix: unknown key");
});

Deno.test("isEmptyPolicy and describeRetention", () => {
  ok(isEmptyPolicy({}));
  ok(isEmptyPolicy({ keepLast: 0, keepYearly: 0, keepWithin: "0y0d" }));
  ok(!isEmptyPolicy({ keepYearly: 1 }));
  ok(!isEmptyPolicy({ keepWithin: "1h" }));
  equal(describeRetention({}), "keep all archives (empty policy)");
  equal(
    describeRetention({ keepLast: 3, keepDaily: 7, keepWeekly: 0, keepWithin: "2d" }),
    "keep 3 last, 7 daily archives and all archives within 2d of the newest",
  );
  equal(describeRetention({ keepWithin: "1y" }), "keep all archives within 1y of the newest");
});

Deno.test("a policy built in code is validated too", () => {
  throws(() => applyRetention(ARCHIVES, { keepWithin: "soon" }), UsageError);
  throws(() => applyRetention(ARCHIVES, { keepDaily: -1 }), UsageError);
  throws(() => applyRetention(ARCHIVES, { keepDaily: Infinity }), UsageError);
});
