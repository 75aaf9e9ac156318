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

Deno.test("a process's staging directory goes when it exits, and the root with it when no other is left", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "vger-staging-test-" });
  try {
    // as the CLI does: stage, then run the exit hooks
    const script = `
      import { stagingDir } from ${JSON.stringify(import.meta.resolve("./staging.ts"))};
      import { runExitHooks } from ${JSON.stringify(import.meta.resolve("./exit_hooks.ts"))};
      Deno.writeFileSync(stagingDir() + "/vger-pack-x", new Uint8Array(8));
      await runExitHooks();
    `;
    const run = async () => {
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["eval", script],
        env: { TMPDIR: tmp },
        stdout: "piped",
        stderr: "piped",
      }).output();
      equal(out.code, 0, new TextDecoder().decode(out.stderr));
    };
    await run();
    deepStrictEqual(await Array.fromAsync(Deno.readDir(tmp)), []);
    // another process's directory keeps the root
    const other = `${tmp}/vger-staging-${Deno.uid()}/other-host-1-1`;
    await Deno.mkdir(other, { recursive: true, mode: 0o700 });
    await Deno.chmod(`${tmp}/vger-staging-${Deno.uid()}`, 0o700);
    await run();
    deepStrictEqual(
      (await Array.fromAsync(Deno.readDir(`${tmp}/vger-staging-${Deno.uid()}`))).map((e) => e.name),
      ["other-host-1-1"],
    );
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
