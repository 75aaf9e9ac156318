import { equal, notEqual, ok } from "node:assert/strict";
import { formatArchiveName } from "./archive_name_format.ts";
import { DEFAULT_ARCHIVE_NAME_FORMAT } from "./config.ts";

Deno.test("formatArchiveName expands {hostname}, {user} and {now:...} strftime fields", () => {
  const am = new Date(2024, 0, 2, 3, 4, 5, 678); // local time, a Tuesday
  const pm = new Date(2023, 11, 31, 23, 59, 7, 0); // a Sunday
  const ctx = (now: Date) => ({ hostname: "box", user: "alice", now });
  const table: [string, Date, string][] = [
    ["{hostname}-{now:%Y-%m-%dT%H:%M:%S}", am, "box-2024-01-02T03:04:05"],
    [DEFAULT_ARCHIVE_NAME_FORMAT, am, "box-2024-01-02T03:04:05"],
    ["{user}@{hostname}", am, "alice@box"],
    ["{now}", am, "2024-01-02T03:04:05"],
    ["{now:%y%j %f %%}", am, "24002 678000 %"],
    ["{now:%j}", pm, "365"],
    ["{now:%Y}-{now:%Y}", am, "2024-2024"],
    ["{now:%a %A %b %B}", am, "Tue Tuesday Jan January"],
    ["{now:%a %A %b %B}", pm, "Sun Sunday Dec December"],
    ["{now:[%e] [%d]}", am, "[ 2] [02]"],
    ["{now:%I%p}", am, "03AM"],
    ["{now:%I%p %H}", pm, "11PM 23"],
    ["{now:%I%p}", new Date(2024, 0, 1, 0, 30), "12AM"],
    ["{now:%I%p}", new Date(2024, 0, 1, 12, 30), "12PM"],
    ["{now:%u}", pm, "7"],
    ["{now:%s}", am, String(Math.floor(am.getTime() / 1000))],
    // Unknown placeholders and fields are left alone.
    ["{other}-{now:%Q}", am, "{other}-%Q"],
  ];
  for (const [template, now, want] of table) {
    equal(formatArchiveName(template, ctx(now)), want, template);
  }
  const off = -am.getTimezoneOffset();
  const pad = (n: number) => String(n).padStart(2, "0");
  const zone = `${off >= 0 ? "+" : "-"}${pad(Math.floor(Math.abs(off) / 60))}${
    pad(Math.abs(off) % 60)
  }`;
  equal(formatArchiveName("{now:%z}", ctx(am)), zone);
  const name = formatArchiveName("{now:%Z}", ctx(am));
  notEqual(name, "%Z");
  ok(/^[A-Za-z0-9+:-]+$/.test(name), name);
});
