import { equal } from "node:assert/strict";
import { Owners } from "./owners.ts";

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "vger_owners_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const PASSWD = [
  "# comment line",
  "root:x:0:0:root:/root:/bin/bash",
  "",
  "   ",
  "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin",
  "broken line without colons",
  "noid:x::100:missing uid:/:/bin/false",
  "badid:x:12a:100::/:/bin/false",
  "negative:x:-3:100::/:/bin/false",
  "huge:x:99999999999:100::/:/bin/false",
  ":x:5:5:empty name:/:/bin/false",
  "+nisuser::::::",
  "alice:x:1000:1000:Alice,,,:/home/alice:/bin/bash\r",
  "alias:x:1000:1000:second name for 1000:/home/alice:/bin/bash",
  "alice:x:1001:1000:duplicate name:/:/bin/false",
  "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin",
  "short:x:42",
].join("\n");

const GROUP = [
  "root:x:0:",
  "# wheel:x:10:",
  "adm:x:4:syslog,alice",
  "users:x:100:",
  "garbage",
  "bad:x:oops:",
  "nogroup:x:65534:",
].join("\n");

Deno.test("Owners parses passwd and group files, skipping comments and malformed lines", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/passwd`, PASSWD);
    await Deno.writeTextFile(`${dir}/group`, GROUP);
    const owners = await Owners.load({ passwdPath: `${dir}/passwd`, groupPath: `${dir}/group` });

    equal(owners.userName(0), "root");
    equal(owners.userName(1), "daemon");
    equal(owners.userName(1000), "alice"); // first entry wins, trailing \r ignored
    equal(owners.userName(65534), "nobody");
    equal(owners.userName(42), "short");
    equal(owners.userName(5), undefined);
    equal(owners.userName(12), undefined);
    equal(owners.userName(99999999999), undefined);
    equal(owners.uid("alice"), 1000);
    equal(owners.uid("alias"), 1000);
    equal(owners.uid("root"), 0);
    equal(owners.uid("noid"), undefined);
    equal(owners.uid("badid"), undefined);
    equal(owners.uid("negative"), undefined);
    equal(owners.uid("+nisuser"), undefined);
    equal(owners.uid("# comment line"), undefined);
    equal(owners.uid("nobody-such"), undefined);

    equal(owners.groupName(0), "root");
    equal(owners.groupName(4), "adm");
    equal(owners.groupName(100), "users");
    equal(owners.groupName(10), undefined);
    equal(owners.groupName(65534), "nogroup");
    equal(owners.gid("users"), 100);
    equal(owners.gid("bad"), undefined);
    equal(owners.gid("alice"), undefined); // a user, not a group
  });
});

Deno.test("Owners tolerates missing and unreadable files", async () => {
  await withTempDir(async (dir) => {
    await Deno.writeTextFile(`${dir}/group`, GROUP);
    const owners = await Owners.load({ passwdPath: `${dir}/absent`, groupPath: `${dir}/group` });
    equal(owners.userName(0), undefined);
    equal(owners.uid("root"), undefined);
    equal(owners.groupName(4), "adm");

    // A directory cannot be read as text: same as missing.
    const none = await Owners.load({ passwdPath: dir, groupPath: `${dir}/absent` });
    equal(none.userName(0), undefined);
    equal(none.groupName(0), undefined);
  });
});

Deno.test("Owners reads the real /etc/passwd and /etc/group by default", async () => {
  const owners = await Owners.load();
  equal(owners.userName(0), "root");
  equal(owners.uid("root"), 0);
  equal(owners.groupName(0), "root");
  equal(owners.gid("root"), 0);
});
