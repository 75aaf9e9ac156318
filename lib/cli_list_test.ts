import { deepStrictEqual, equal } from "node:assert/strict";
import type { Item } from "./archive.ts";
import {
  archiveLine,
  archivesJson,
  itemJson,
  itemLine,
  itemsJson,
  itemTime,
  jsonHead,
  modeString,
} from "./cli_list.ts";
import { entry, REPO, text } from "./_test_cli.ts";

function item(overrides: Partial<Item>): Item {
  return {
    path: "home/alice/notes.txt",
    type: "file",
    mode: 0o644,
    uid: 1000,
    gid: 100,
    mtimeNs: 1_714_557_600_123_456_789n,
    size: 4096,
    ...overrides,
  };
}

Deno.test("list renders archives as JSON rows and as lines with the name padded to 32", () => {
  const a = entry("docs-2024-05-01", "2024-05-01T10:00:00.000Z");
  equal(
    text(archivesJson(REPO, [a])),
    `{"repository":"/mnt/repo","archives":[{"name":"docs-2024-05-01","id":"${"ab".repeat(32)}",` +
      `"time":"2024-05-01T10:00:00.000Z","hostname":"host1","username":"alice","files":12,` +
      `"original_size":3145728,"compressed_size":1536,"deduplicated_size":100}]}`,
  );
  equal(
    archiveLine(a),
    "docs-2024-05-01                  2024-05-01T10:00:00.000Z  host1  12 files  3.00 MiB",
  );
  equal(text(archivesJson(REPO, [])), `{"repository":"/mnt/repo","archives":[]}`);
});

Deno.test("item JSON gives mtime_ns as an exact decimal string and null for unknown names and targets", () => {
  const row = itemJson(item({}));
  equal(
    text(row),
    `{"path":"home/alice/notes.txt","type":"file","mode":420,"uid":1000,"gid":100,"user":null,` +
      `"group":null,"size":4096,"mtime_ns":"1714557600123456789","target":null}`,
  );
  // beyond 2^53: a JSON number would lose the nanoseconds
  equal(row.mtime_ns, (1_714_557_600_123_456_789n).toString());
  const link = itemJson(item({ type: "symlink", user: "alice", group: "users", target: "../x" }));
  deepStrictEqual([link.user, link.group, link.target], ["alice", "users", "../x"]);
  equal(
    text(itemsJson(REPO, [row], { archive: "docs", meta: { sources: ["/home/alice"] } })),
    `{"repository":"/mnt/repo","archive":"docs","sources":["/home/alice"],"command_line":null,` +
      `"items":[${text(row)}]}`,
  );
  const argv = ["-R", REPO, "backup", "--archive", "docs", "/home/alice"];
  equal(
    itemsJson(REPO, [], { archive: "docs", meta: { sources: ["/home/alice"], commandLine: argv } })
      .command_line,
    argv,
  );
});

Deno.test("modeString shows the type and the nine permission bits as ls -l does", () => {
  equal(modeString({ type: "dir", mode: 0o750 }), "drwxr-x---");
  equal(modeString({ type: "symlink", mode: 0o777 }), "lrwxrwxrwx");
  equal(modeString({ type: "file", mode: 0o644 }), "-rw-r--r--");
  // setuid, setgid and sticky are not among the nine columns
  equal(modeString({ type: "file", mode: 0o7000 }), "----------");
});

Deno.test("the item time column is UTC to the second, and item lines pad owner to 17 and size to 12", () => {
  equal(itemTime(1_714_557_600_999_999_999n), "2024-05-01 10:00:00");
  equal(itemTime(0n), "1970-01-01 00:00:00");
  equal(
    itemLine(item({})),
    "-rw-r--r-- 1000 100                  4096 2024-05-01 10:00:00 home/alice/notes.txt",
  );
  equal(
    itemLine(item({ type: "symlink", mode: 0o777, user: "alice", group: "users", size: 4 })),
    "lrwxrwxrwx alice users                  4 2024-05-01 10:00:00 home/alice/notes.txt",
  );
  equal(
    itemLine(item({ type: "symlink", mode: 0o777, target: "../x", size: 4 })),
    "lrwxrwxrwx 1000 100                     4 2024-05-01 10:00:00 home/alice/notes.txt -> ../x",
  );
});

Deno.test("list shows FIFOs and devices with ls -l's letters and devices' numbers as major, minor", () => {
  equal(modeString({ type: "fifo", mode: 0o640 }), "prw-r-----");
  equal(modeString({ type: "chardev", mode: 0o666 }), "crw-rw-rw-");
  equal(modeString({ type: "blockdev", mode: 0o660 }), "brw-rw----");
  const dev = item({ path: "dev/sda", type: "blockdev", mode: 0o660, size: 0, major: 8, minor: 1 });
  equal(
    itemLine(dev),
    "brw-rw---- 1000 100                  8, 1 2024-05-01 10:00:00 dev/sda",
  );
  const row = itemJson(dev);
  deepStrictEqual([row.type, row.major, row.minor, row.hardlink], ["blockdev", 8, 1, undefined]);
  equal(text(row).endsWith(`"target":null,"major":8,"minor":1}`), true, text(row));
  equal(itemJson(item({ type: "fifo", size: 0 })).major, undefined);
});

Deno.test("list shows a hardlink's later names with the group's first name, in lines and JSON", () => {
  const first = item({ path: "home/a", hardlink: "home/a" });
  const later = item({ path: "srv/b", hardlink: "home/a" });
  equal(itemLine(first), "-rw-r--r-- 1000 100                  4096 2024-05-01 10:00:00 home/a");
  equal(
    itemLine(later),
    "-rw-r--r-- 1000 100                  4096 2024-05-01 10:00:00 srv/b link to home/a",
  );
  deepStrictEqual([itemJson(first).hardlink, itemJson(later).hardlink], ["home/a", "home/a"]);
  equal(text(itemJson(later)).endsWith(`"target":null,"hardlink":"home/a"}`), true);
});

Deno.test("the streamed items JSON is the document itemsJson makes, item by item", () => {
  const rows = [itemJson(item({})), itemJson(item({ type: "symlink", target: "a\nb" }))];
  const meta = { sources: ["/home/alice"], commandLine: ["backup", "/home/alice"] };
  const whole = itemsJson(REPO, rows, { archive: "docs", meta });
  const head = jsonHead(itemsJson(REPO, [], { archive: "docs", meta }));
  equal(head + rows.map((r) => JSON.stringify(r)).join(",") + "]}", text(whole));
  equal(head + "]}", text(itemsJson(REPO, [], { archive: "docs", meta })));
});
