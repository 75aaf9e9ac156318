/**
 * The test suite leaves nothing behind in the temp directory: one whole-program test file (CLI
 * runs with files caches, backups with staging and locks) runs in a child `deno test` with a
 * TMPDIR of its own, which must be empty afterwards.
 */

import { deepStrictEqual, ok } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { PROJECT_DIR, withTempDir } from "./_helpers.ts";

/** A small test file that runs the CLI: backup, check, compact, break-lock. */
const SAMPLE = fileURLToPath(new URL("./locks_test.ts", import.meta.url));

Deno.test("a test file run with its own TMPDIR leaves that directory empty", async () => {
  await withTempDir(async (tmp) => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["test", "-A", "--no-check", SAMPLE],
      cwd: PROJECT_DIR,
      env: { TMPDIR: tmp, NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const dec = new TextDecoder();
    ok(out.success, `${dec.decode(out.stdout)}\n${dec.decode(out.stderr)}`);
    const left: string[] = [];
    for await (const e of Deno.readDir(tmp)) left.push(e.name);
    deepStrictEqual(left.sort(), [], `left in TMPDIR by ${SAMPLE}`);
  }, "vger-leftovers-test-");
});
