/**
 * Unit tests of lib/fs_meta.ts's source files: what backup reads files through.
 */

import { deepStrictEqual, equal, ok, rejects, throws } from "node:assert/strict";
import { lstatEntry, openSourceFile, statChanged } from "./fs_meta.ts";

Deno.test("a source file reads in parts, ahead on another thread, and stats as lstat did", async () => {
  const dir = await Deno.makeTempDir({ prefix: "vger_fs_meta_" });
  try {
    const path = `${dir}/f`;
    const data = new Uint8Array(3 << 20).map((_, i) => (i * 31) >>> 3);
    Deno.writeFileSync(path, data);
    const listed = lstatEntry(path);
    const file = openSourceFile(path);
    const got = new Uint8Array(data.length + 10);
    let at = await file.read(got.subarray(0, 1 << 20));
    equal(at, 1 << 20);
    file.readAhead(got.subarray(at));
    equal(file.readingAhead, true);
    // a read elsewhere than where the read ahead goes is a mistake of the caller
    throws(() => file.read(got.subarray(at + 1)), /read ahead/);
    at += await file.read(got.subarray(at));
    equal(file.readingAhead, false);
    equal(await file.read(got.subarray(at)), 0);
    deepStrictEqual(got.subarray(0, at), data);
    ok(!statChanged(listed, file.stat()));
    // closing waits for a read ahead still in flight
    file.readAhead(got.subarray(at));
    await file.close();
    equal(file.readingAhead, false);
    // without a read ahead, reading and closing take no promise
    const again = openSourceFile(path);
    equal(again.read(got.subarray(0, 100)), 100);
    equal(again.close(), undefined);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("through libc, a source file that is a symlink (one that replaced a file) is not followed", async () => {
  const dir = await Deno.makeTempDir({ prefix: "vger_fs_meta_" });
  try {
    Deno.writeTextFileSync(`${dir}/target`, "secret");
    Deno.symlinkSync(`${dir}/target`, `${dir}/f`);
    await rejects(async () => await (openSourceFile(`${dir}/f`)).close());
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
