/**
 * The README's "Using vger from TypeScript" example, run as it is written: the test reads the
 * block from README.md, points its `jsr:@vger/cli` import at this checkout's mod.ts, type-checks
 * it and runs it, and compares what it prints with what its comments say. A change to the block
 * that breaks it, or to the library that breaks the block, fails here.
 */

import { deepStrictEqual, equal, ok } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { PROJECT_DIR, withTempDir } from "./_helpers.ts";

const README = fileURLToPath(new URL("../README.md", import.meta.url));
const MOD_URL = new URL("../mod.ts", import.meta.url).href;

/** The README's library example, with its package import pointed at this checkout's mod.ts. */
async function readmeExample(): Promise<string> {
  const text = await Deno.readTextFile(README);
  const start = text.indexOf("## Using vger from TypeScript");
  ok(start >= 0, 'the README has no section "Using vger from TypeScript"');
  const block = /```ts\n([\s\S]*?)```/.exec(text.slice(start));
  ok(block, "the section has no ts code block");
  const code = block[1];
  ok(code.includes(`from "jsr:@vger/cli";`), "the example does not import jsr:@vger/cli");
  return code.replaceAll(`"jsr:@vger/cli"`, JSON.stringify(MOD_URL));
}

Deno.test("the README's library example covers what it promises", async () => {
  const code = await readmeExample();
  for (
    const part of [
      "openBackend(",
      "initCommand(",
      "backupCommand(",
      "onProgress",
      "listArchivesCommand(",
      "extractCommand(",
      "checkCommand(",
      "AbortSignal",
      "AbortController",
      "instanceof InterruptedError",
      "instanceof DecryptionError",
    ]
  ) ok(code.includes(part), `the example never uses ${part}`);
});

Deno.test("the README's library example type-checks", async () => {
  await withTempDir(async (dir) => {
    const file = `${dir}/example.ts`;
    await Deno.writeTextFile(file, await readmeExample());
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["check", "--quiet", "--config", `${PROJECT_DIR}/deno.json`, file],
      cwd: PROJECT_DIR,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const decode = (b: Uint8Array) => new TextDecoder().decode(b);
    equal(out.code, 0, `deno check failed:\n${decode(out.stderr)}${decode(out.stdout)}`);
  });
});

Deno.test("the README's library example runs and prints what its comments say", async () => {
  await withTempDir(async (dir) => {
    const file = `${dir}/example.ts`;
    await Deno.writeTextFile(file, await readmeExample());
    const logged: string[] = [];
    const debugged: string[] = [];
    const { log, debug } = console;
    console.log = (...args: unknown[]) => void logged.push(args.map(String).join(" "));
    console.debug = (...args: unknown[]) => void debugged.push(args.map(String).join(" "));
    try {
      await import(new URL(`file://${file}`).href);
    } finally {
      console.log = log;
      console.debug = debug;
    }
    deepStrictEqual(logged, [
      "stored documents-1: 101 items", // the directory and its 100 notes
      "interrupted: Backup aborted: the user cancelled",
      "documents-1",
      "note 7\n",
      logged[4],
      "decryption: wrong passphrase",
    ]);
    ok(/^checked [1-9]\d* packs: 0 errors$/.test(logged[4]), logged[4]);
    ok(debugged.some((l) => /^\d+ files, \d+ bytes, at /.test(l)), "no backup progress");
    ok(debugged.some((l) => /^\d+\/\d+ files$/.test(l)), "no extract progress");
  });
});
