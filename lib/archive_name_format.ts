/**
 * Archive name templates (`archive_name_format`): {@linkcode archiveNameFormatProblem} says what
 * is wrong with one (lib/config.ts refuses such a configuration), {@linkcode formatArchiveName}
 * expands `{hostname}`, `{user}` and `{now:<strftime>}` for a backup's archive name.
 *
 * @example Name an archive
 * ```ts
 * import { formatArchiveName } from "./archive_name_format.ts";
 * import { equal } from "node:assert/strict";
 *
 * const now = new Date(2024, 4, 1, 10, 0, 0);
 * equal(formatArchiveName("{hostname}-{now:%Y-%m-%d}", { hostname: "h", user: "u", now }), "h-2024-05-01");
 * ```
 *
 * @module
 */

import { closest } from "./suggest.ts";

const PLACEHOLDER = /\{(hostname|user|now(?::([^}]*))?)\}/g;
const STRFTIME = /%(.)/gs;
const STRFTIME_FIELDS = "YymdHMSIpjfzZaAbBesu%";

/** Why an archive name template is wrong, or undefined when it is fine. */
export function archiveNameFormatProblem(template: string): string | undefined {
  for (const m of template.matchAll(/\{([^}]*)\}?/g)) {
    const inner = m[1];
    if (!m[0].endsWith("}")) return `unclosed "{" in ${JSON.stringify(template)}`;
    if (inner === "hostname" || inner === "user" || inner === "now") continue;
    if (inner.startsWith("now:")) {
      for (const d of inner.slice(4).matchAll(STRFTIME)) {
        if (!STRFTIME_FIELDS.includes(d[1])) {
          return `unknown strftime field %${d[1]} in {${inner}} (known: ${
            [...STRFTIME_FIELDS].map((c) => `%${c}`).join(" ")
          })`;
        }
      }
      if (/%$/.test(inner.slice(4).replace(/%%/g, ""))) return `lone % at the end of {${inner}}`;
      continue;
    }
    const near = closest(inner, ["hostname", "user", "now"]);
    return `unknown placeholder {${inner}}${
      near ? ` (did you mean {${near}}?)` : " (known: {hostname}, {user}, {now:FORMAT})"
    }`;
  }
  return undefined;
}

/**
 * Expands `{hostname}`, `{user}` and `{now:<strftime>}` (default `%Y-%m-%dT%H:%M:%S`, local time)
 * in an archive name template. Fields: %Y %y %m %d %e %H %I %M %S %p %j %f %z %Z %a %A %b %B %s
 * %u %%; unknown placeholders and fields are left as they are.
 */
export function formatArchiveName(
  template: string,
  ctx: { hostname: string; user: string; now: Date },
): string {
  return template.replace(PLACEHOLDER, (_m, key: string, fmt?: string) => {
    if (key === "hostname") return ctx.hostname;
    if (key === "user") return ctx.user;
    return strftime(ctx.now, fmt ?? "%Y-%m-%dT%H:%M:%S");
  });
}

const DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
const MONTHS = [
  "January",
  "February",
  "March",
  "April",
  "May",
  "June",
  "July",
  "August",
  "September",
  "October",
  "November",
  "December",
];

/** strftime in the C locale (English names), local time. */
function strftime(d: Date, fmt: string): string {
  const p = (n: number, w = 2, fill = "0") => String(n).padStart(w, fill);
  return fmt.replace(STRFTIME, (m, c: string) => {
    switch (c) {
      case "Y":
        return String(d.getFullYear());
      case "y":
        return p(d.getFullYear() % 100);
      case "m":
        return p(d.getMonth() + 1);
      case "d":
        return p(d.getDate());
      case "e":
        return p(d.getDate(), 2, " ");
      case "H":
        return p(d.getHours());
      case "I":
        return p((d.getHours() + 11) % 12 + 1);
      case "p":
        return d.getHours() < 12 ? "AM" : "PM";
      case "M":
        return p(d.getMinutes());
      case "S":
        return p(d.getSeconds());
      case "f":
        return p(d.getMilliseconds() * 1000, 6);
      case "j": {
        const start = new Date(d.getFullYear(), 0, 1);
        const days = Math.round((startOfDay(d) - start.getTime()) / 86400000);
        return p(days + 1, 3);
      }
      case "z": {
        const off = -d.getTimezoneOffset();
        return `${off >= 0 ? "+" : "-"}${p(Math.floor(Math.abs(off) / 60))}${
          p(Math.abs(off) % 60)
        }`;
      }
      case "Z":
        return new Intl.DateTimeFormat("en-US", { timeZoneName: "short" })
          .formatToParts(d).find((part) => part.type === "timeZoneName")?.value ?? "";
      case "a":
        return DAYS[d.getDay()].slice(0, 3);
      case "A":
        return DAYS[d.getDay()];
      case "b":
        return MONTHS[d.getMonth()].slice(0, 3);
      case "B":
        return MONTHS[d.getMonth()];
      case "s":
        return String(Math.floor(d.getTime() / 1000));
      case "u":
        return String(d.getDay() === 0 ? 7 : d.getDay());
      case "%":
        return "%";
      default:
        return m;
    }
  });
}

/** Local midnight of `d`, so %j does not depend on the time of day or DST shifts. */
function startOfDay(d: Date): number {
  return new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime();
}
