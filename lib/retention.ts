/**
 * The retention policy behind `vger prune`: which archives a `retention:` block keeps. Pure: no
 * repository, no clock (unless asked), no I/O.
 *
 * The semantics are restic's `forget` (internal/restic/snapshot_policy.go):
 *
 * - Archives are walked newest first (by time; equal times: the name that sorts later counts as
 *   newer, so the result never depends on input order).
 * - `keep_last N` keeps the N newest.
 * - `keep_hourly|daily|weekly|monthly|yearly N`: each rule keeps an archive when its period (UTC
 *   hour, day, ISO week of the ISO week-year, month, year) differs from the period of the last
 *   archive that same rule kept, until the rule has kept N. The rules run independently over the
 *   same list: an archive kept by one rule still counts for every other rule that keeps it (unlike
 *   borg, where a rule skips archives an earlier rule already kept).
 * - `keep_within D` keeps every archive strictly newer than D before the newest archive (not
 *   before "now"); `D` is `<n>y<n>m<n>w<n>d<n>h` (any subset, in that order, e.g. `2d`, `3m`,
 *   `1y2m3d`), with calendar arithmetic for months and years exactly like Go's
 *   `AddDate(-y, -m, -d)`: 2021-05-31 minus 3m is "2021-02-31", which normalizes to 2021-03-03.
 * - An empty policy (no rule, or every count zero and no/zero duration) keeps EVERY archive: a
 *   missing or mistyped `retention:` block must never delete all archives.
 *
 * One deliberate difference: restic >= 0.17 also keeps the oldest archive when a count rule has
 * counts left at the end of the list. vger does not, so `keep_yearly: 10` over three years keeps
 * exactly one archive per year.
 *
 * @example Keep the newest archive of each of the last two days
 * ```ts
 * import { applyRetention, parseRetention } from "./retention.ts";
 * import { deepStrictEqual } from "node:assert/strict";
 *
 * const policy = parseRetention({ keep_daily: 2 });
 * const decisions = applyRetention([
 *   { name: "mon-a", time: "2021-05-31T08:00:00Z" },
 *   { name: "mon-b", time: "2021-05-31T20:00:00Z" },
 *   { name: "sun", time: "2021-05-30T20:00:00Z" },
 *   { name: "sat", time: "2021-05-29T20:00:00Z" },
 * ], policy);
 * deepStrictEqual(decisions.map((d) => [d.archive.name, d.reasons]), [
 *   ["mon-b", ["daily"]],
 *   ["mon-a", []],
 *   ["sun", ["daily"]],
 *   ["sat", []],
 * ]);
 * ```
 *
 * @module
 */

import { editDistance } from "./suggest.ts";
import { IntegrityError, UsageError } from "./errors.ts";

/** A parsed `retention:` block; unset and zero counts mean "rule not used". */
export interface RetentionPolicy {
  /** Keep the N newest archives. */
  keepLast?: number;
  /** Keep the newest archive of each of the last N hours that have archives. */
  keepHourly?: number;
  /** Keep the newest archive of each of the last N days that have archives. */
  keepDaily?: number;
  /** Keep the newest archive of each of the last N ISO weeks that have archives. */
  keepWeekly?: number;
  /** Keep the newest archive of each of the last N months that have archives. */
  keepMonthly?: number;
  /** Keep the newest archive of each of the last N years that have archives. */
  keepYearly?: number;
  /** Keep every archive within this duration (e.g. `2d`, `3m`, `1y2m`) of the newest one. */
  keepWithin?: string;
}

/** What the policy decided for one archive. */
export interface RetentionDecision<T> {
  /** The archive, as given. */
  archive: T;
  /** Whether it survives the prune. */
  keep: boolean;
  /**
   * Why it is kept: rule names in the order `last`, `hourly`, `daily`, `weekly`, `monthly`,
   * `yearly`, `within`, or `["empty policy"]`; empty exactly when the archive is pruned.
   */
  reasons: string[];
}

/** Options of {@linkcode applyRetention}. */
export interface ApplyRetentionOptions {
  /**
   * The current time. When given, archives dated after it are ignored when picking the newest
   * archive that `keep_within` counts back from (restic does the same), so one archive with a
   * clock-skewed future time cannot make `keep_within` prune everything else.
   */
  now?: Date;
}

/** The YAML keys of a `retention:` block, and the policy field each one sets. */
const COUNT_KEYS = [
  ["keep_last", "keepLast"],
  ["keep_hourly", "keepHourly"],
  ["keep_daily", "keepDaily"],
  ["keep_weekly", "keepWeekly"],
  ["keep_monthly", "keepMonthly"],
  ["keep_yearly", "keepYearly"],
] as const;
const KEYS: readonly string[] = [...COUNT_KEYS.map(([k]) => k), "keep_within"];

/**
 * Parses and validates a `retention:` YAML mapping (snake_case keys) into a policy. Throws a
 * {@linkcode UsageError} naming the key, e.g.
 * `retention.keep_within: "2x" is not a duration like 2d, 3m or 1y`.
 */
export function parseRetention(raw: unknown, keyPath = "retention"): RetentionPolicy {
  if (raw === undefined || raw === null) return {};
  if (typeof raw !== "object" || Array.isArray(raw)) {
    throw new UsageError(`${keyPath}: expected a mapping of keep_* rules`);
  }
  const obj = raw as Record<string, unknown>;
  for (const key of Object.keys(obj)) {
    if (KEYS.includes(key)) continue;
    const near = suggestKey(key);
    throw new UsageError(
      `${keyPath}.${key}: unknown key${near ? ` (did you mean "${near}"?)` : ""}`,
    );
  }
  const policy: RetentionPolicy = {};
  for (const [key, field] of COUNT_KEYS) {
    const v = obj[key];
    // A YAML key with no value (`keep_daily:`) reads as null: treat it as unset, like config.ts.
    if (v === undefined || v === null) continue;
    if (!isCount(v)) {
      throw new UsageError(
        `${keyPath}.${key}: expected a whole number of archives (0 or more), got ${
          JSON.stringify(v)
        }`,
      );
    }
    policy[field] = v;
  }
  const within = obj.keep_within;
  if (within !== undefined && within !== null) {
    if (typeof within !== "string" || parseDuration(within) === undefined) {
      throw new UsageError(
        `${keyPath}.keep_within: ${JSON.stringify(within)} is not a duration like 2d, 3m or 1y`,
      );
    }
    policy.keepWithin = within;
  }
  return policy;
}

/** True when the policy has no rule that keeps anything, so applying it keeps every archive. */
export function isEmptyPolicy(p: RetentionPolicy): boolean {
  checkPolicy(p);
  const counts = COUNT_KEYS.some(([, field]) => (p[field] ?? 0) > 0);
  return !counts && (p.keepWithin === undefined || isZero(checkedDuration(p.keepWithin)));
}

/** Describes a policy in one line for `prune` output, e.g. `keep 3 last, 7 daily archives`. */
export function describeRetention(p: RetentionPolicy): string {
  if (isEmptyPolicy(p)) return "keep all archives (empty policy)";
  const counts = COUNT_KEYS
    .filter(([, field]) => (p[field] ?? 0) > 0)
    .map(([key, field]) => `${p[field]} ${key.slice("keep_".length)}`);
  const within = p.keepWithin !== undefined && !isZero(checkedDuration(p.keepWithin))
    ? `all archives within ${p.keepWithin} of the newest`
    : "";
  if (counts.length === 0) return `keep ${within}`;
  return `keep ${counts.join(", ")} archives${within ? ` and ${within}` : ""}`;
}

/**
 * Decides, for every archive, whether the policy keeps it and why. Returns the archives newest
 * first, whatever their input order. An empty policy keeps all of them.
 */
export function applyRetention<T extends { name: string; time: string }>(
  archives: readonly T[],
  policy: RetentionPolicy,
  options: ApplyRetentionOptions = {},
): RetentionDecision<T>[] {
  checkPolicy(policy);
  const sorted = archives
    .map((archive) => ({ archive, ms: archiveTime(archive) }))
    .sort((a, b) => b.ms - a.ms || compareDesc(a.archive.name, b.archive.name));
  if (isEmptyPolicy(policy)) {
    return sorted.map(({ archive }) => ({ archive, keep: true, reasons: ["empty policy"] }));
  }

  const rules = countRules(policy);
  const within = policy.keepWithin === undefined ? undefined : checkedDuration(policy.keepWithin);
  const cutoff = within === undefined || isZero(within)
    ? undefined
    : withinCutoff(sorted.map((s) => s.ms), within, options.now);

  return sorted.map(({ archive, ms }, nr) => {
    const reasons: string[] = [];
    const date = new Date(ms);
    for (const rule of rules) {
      if (rule.left === 0) continue;
      const bucket = rule.bucket(date, nr);
      if (bucket === rule.last) continue;
      rule.last = bucket;
      rule.left--;
      reasons.push(rule.name);
    }
    if (cutoff !== undefined && ms > cutoff) reasons.push("within");
    return { archive, keep: reasons.length > 0, reasons };
  });
}

/** A parsed `keep_within` duration; weeks are folded into days. */
interface Duration {
  years: number;
  months: number;
  days: number;
  hours: number;
}

const DURATION = /^(?:(\d+)y)?(?:(\d+)m)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?$/;

/** Parses `<n>y<n>m<n>w<n>d<n>h` (any non-empty subset, in that order), else undefined. */
function parseDuration(text: string): Duration | undefined {
  const m = DURATION.exec(text);
  if (text === "" || !m) return undefined;
  const [y, mo, w, d, h] = m.slice(1).map((s) => s === undefined ? 0 : Number(s));
  if (![y, mo, w, d, h].every(Number.isSafeInteger)) return undefined;
  const days = d + 7 * w;
  if (!Number.isSafeInteger(days)) return undefined;
  return { years: y, months: mo, days, hours: h };
}

/** Validates a policy built in code, which may have skipped parseRetention. */
function checkPolicy(p: RetentionPolicy): void {
  for (const [key, field] of COUNT_KEYS) {
    const n = p[field];
    if (n !== undefined && !isCount(n)) {
      throw new UsageError(`Invalid retention policy: ${key} must be a whole number, got ${n}`);
    }
  }
  if (p.keepWithin !== undefined) checkedDuration(p.keepWithin);
}

/** Parses a duration that came in through a policy built in code, which skipped parseRetention. */
function checkedDuration(text: string): Duration {
  const d = parseDuration(text);
  if (!d) {
    throw new UsageError(`Invalid retention policy: "${text}" is not a duration like 2d, 3m or 1y`);
  }
  return d;
}

function isZero(d: Duration): boolean {
  return d.years === 0 && d.months === 0 && d.days === 0 && d.hours === 0;
}

/**
 * The instant `keep_within` counts back to: newer archives are kept. Counts from the newest archive
 * (not after `now`, when given), with Go's AddDate normalization: setUTCFullYear carries month and
 * day overflow the same way (Feb 31 becomes Mar 3). No reference archive keeps everything.
 */
function withinCutoff(times: number[], d: Duration, now: Date | undefined): number {
  const limit = now?.getTime() ?? Infinity;
  const ref = times.reduce((best, t) => t <= limit && t > best ? t : best, -Infinity);
  if (ref === -Infinity) return -Infinity;
  const t = new Date(ref);
  t.setUTCFullYear(
    t.getUTCFullYear() - d.years,
    t.getUTCMonth() - d.months,
    t.getUTCDate() - d.days,
  );
  return t.getTime() - d.hours * 3_600_000;
}

/** One count rule's state while walking the archives newest first. */
interface CountRule {
  name: string;
  left: number;
  last: number | undefined;
  bucket: (d: Date, nr: number) => number;
}

function countRules(p: RetentionPolicy): CountRule[] {
  const buckets: Record<(typeof COUNT_KEYS)[number][1], (d: Date, nr: number) => number> = {
    // The position is unique, so every archive is its own "period" and the N newest are kept.
    keepLast: (_d, nr) => nr,
    keepHourly: (d) => ymd(d) * 100 + d.getUTCHours(),
    keepDaily: ymd,
    keepWeekly: isoWeek,
    keepMonthly: (d) => d.getUTCFullYear() * 100 + d.getUTCMonth() + 1,
    keepYearly: (d) => d.getUTCFullYear(),
  };
  const rules: CountRule[] = [];
  for (const [key, field] of COUNT_KEYS) {
    const n = p[field] ?? 0;
    if (n > 0) {
      rules.push({
        name: key.slice("keep_".length),
        left: n,
        last: undefined,
        bucket: buckets[field],
      });
    }
  }
  return rules;
}

/** YYYYMMDD of the UTC day. */
function ymd(d: Date): number {
  return d.getUTCFullYear() * 10000 + (d.getUTCMonth() + 1) * 100 + d.getUTCDate();
}

/**
 * YYYYWW of the ISO week, with the ISO week-year: the week's Thursday decides the year, so
 * 2021-01-03 is in 2020-W53 and 2019-12-30 in 2020-W01.
 */
function isoWeek(d: Date): number {
  const day = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate());
  const mondayBased = (d.getUTCDay() + 6) % 7;
  const thursday = new Date(day + (3 - mondayBased) * 86_400_000);
  const year = thursday.getUTCFullYear();
  const week = 1 + Math.floor((thursday.getTime() - Date.UTC(year, 0, 1)) / (7 * 86_400_000));
  return year * 100 + week;
}

/** Reads an archive's time; an ISO date-time without an offset is UTC, not the local zone. */
function archiveTime(a: { name: string; time: string }): number {
  const text = /T\d{2}:\d{2}(:\d{2}(\.\d+)?)?$/.test(a.time) ? a.time + "Z" : a.time;
  const ms = Date.parse(text);
  if (Number.isNaN(ms)) {
    throw new IntegrityError(
      `Cannot apply retention to archive "${a.name}": time ${
        JSON.stringify(a.time)
      } is not ISO 8601`,
    );
  }
  return ms;
}

function isCount(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

/** Orders names so the one that sorts later comes first (counts as newer on equal times). */
function compareDesc(a: string, b: string): number {
  return a < b ? 1 : a > b ? -1 : 0;
}

/** The key a mistyped one probably meant: `daily` and `keepDaily` mean `keep_daily`. */
function suggestKey(key: string): string | undefined {
  const snake = key.replace(/[A-Z]/g, (c) => "_" + c.toLowerCase()).replace(/-/g, "_");
  for (const candidate of [snake, `keep_${snake}`]) {
    if (KEYS.includes(candidate)) return candidate;
  }
  let best: string | undefined;
  let bestDistance = 3;
  for (const k of KEYS) {
    const dist = editDistance(k, snake);
    if (dist < bestDistance) [best, bestDistance] = [k, dist];
  }
  return best;
}
