import { deepStrictEqual, equal } from "node:assert/strict";
import { removeDeadStaging } from "./staging.ts";

Deno.test("removeDeadStaging removes the staging dirs of dead processes of this host only", async () => {
  const root = await Deno.makeTempDir({ prefix: "vger-staging-test-" });
  try {
    const host = Deno.hostname();
    // a process that has ended: its pid is free (and a reuse would have another start time)
    const child = new Deno.Command("true").spawn();
    await child.status;
    const pid = child.pid;
    const names = [
      `${host}-${pid}-12345`, // dead: removed
      `${host}-${Deno.pid}-1`, // this process: kept
      `other-host-${pid}-12345`, // another host's, maybe alive there: kept
      "not-a-staging-dir", // not ours to judge: kept
    ];
    for (const n of names) {
      await Deno.mkdir(`${root}/${n}`);
      await Deno.writeFile(`${root}/${n}/vger-pack-x`, new Uint8Array(8));
    }
    equal(removeDeadStaging(root), 1);
    const left = (await Array.fromAsync(Deno.readDir(root))).map((e) => e.name).sort();
    deepStrictEqual(left, names.slice(1).sort());
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
