/**
 * The README's Quick start, run command by command as a user would: `vger config` writes the
 * starter file, the test sets the repository path and the source directory (the edit the README
 * asks for), then every following line of the block runs from the same working directory.
 */

import { deepStrictEqual, equal, ok } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { pseudoRandomBytes, restoredPath, runVger, treeSnapshot, withTempDir } from "./_helpers.ts";

const README = fileURLToPath(new URL("../README.md", import.meta.url));

/** The `vger ...` lines of the README's "Quick start" code block, comments stripped. */
async function quickStartCommands(): Promise<string[][]> {
  const text = await Deno.readTextFile(README);
  const section = text.slice(text.indexOf("## Quick start"));
  const block = /```bash\n([\s\S]*?)```/.exec(section);
  ok(block, "the README has no Quick start code block");
  return block[1].split("\n")
    .map((l) => l.replace(/\s+#.*$/, "").trim())
    .filter((l) => l.startsWith("vger "))
    .map((l) => l.split(/\s+/).slice(1));
}

Deno.test("the README's Quick start works command by command", async () => {
  const commands = await quickStartCommands();
  ok(commands.length >= 10, `only ${commands.length} commands found`);
  deepStrictEqual(commands[0], ["config"]);
  await withTempDir(async (dir) => {
    const work = `${dir}/work`;
    const source = `${dir}/documents`;
    const repo = `${dir}/repo`;
    await Deno.mkdir(work);
    await writeTestTree(source);
    const before = await treeSnapshot(source);
    const run = async (args: string[]) => {
      // the README restores to /tmp/restored: keep it inside the test's directory
      const fixed = args.map((a) => a.replace(/^\/tmp\//, `${dir}/`));
      const r = await runVger(fixed, { cwd: work });
      equal(r.code, 0, `vger ${fixed.join(" ")} failed (${r.code}):\n${r.stderr}${r.stdout}`);
      return r;
    };

    await run(commands[0]);
    const starter = await Deno.readTextFile(`${work}/vger.yaml`);
    ok(starter.includes('path: "/backup/repo"'), "starter has no repository path to edit");
    ok(starter.includes('- "/home/user/documents"'), "starter has no source directory to edit");
    await Deno.writeTextFile(
      `${work}/vger.yaml`,
      starter.replace('path: "/backup/repo"', `path: "${repo}"`)
        .replace('- "/home/user/documents"', `- "${source}"`),
    );

    const seen: string[] = [];
    for (const args of commands.slice(1)) {
      const r = await run(args);
      seen.push(args.join(" "));
      if (args[0] === "list" && args.length === 1) {
        ok(r.stdout.includes("daily-2025-01-15"), `list shows no archive:\n${r.stdout}`);
      }
      if (args[0] === "list" && args.includes("--archive")) {
        ok(r.stdout.includes(storedName(source)), `list --archive misses the files:\n${r.stdout}`);
      }
      if (args[0] === "extract") {
        const dest = args[args.indexOf("--dest") + 1].replace(/^\/tmp\//, `${dir}/`);
        deepStrictEqual(await treeSnapshot(restoredPath(dest, source)), before);
      }
      if (args[0] === "check") ok(/0 errors/.test(r.stdout), `check found errors:\n${r.stdout}`);
    }
    for (const step of ["init", "backup", "extract", "delete", "prune", "check", "compact"]) {
      ok(seen.some((s) => s.startsWith(step)), `the Quick start never runs ${step}`);
    }
    const list = await runVger(["list", "--json"], { cwd: work });
    deepStrictEqual(JSON.parse(list.stdout).archives, [], "delete left the archive");
  });
});

/** A small tree of documents: nested directories, a multi-chunk file, a symlink, an empty file. */
async function writeTestTree(root: string): Promise<void> {
  await Deno.mkdir(`${root}/letters/2025`, { recursive: true });
  await Deno.writeTextFile(`${root}/letters/2025/bank.txt`, "Dear bank,\n".repeat(100));
  await Deno.writeFile(`${root}/scan.pdf`, pseudoRandomBytes(3 << 20, 7));
  await Deno.writeFile(`${root}/empty`, new Uint8Array());
  await Deno.symlink("letters/2025/bank.txt", `${root}/latest-letter`);
}

function storedName(path: string): string {
  return path.replace(/^\/+/, "").split("/").pop()!;
}
