import { deepStrictEqual, equal, ok, rejects, throws } from "node:assert/strict";
import { join, relative } from "node:path";
import { BackendError, IntegrityError } from "../lib/errors.ts";
import { LocalBackend } from "../backends/local.ts";
import { backendConformance } from "./backend_conformance.ts";

backendConformance("local", async () => {
  const root = await Deno.makeTempDir({ prefix: "vger-local-" });
  return {
    backend: new LocalBackend(root),
    cleanup: () => Deno.remove(root, { recursive: true }),
  };
});

/** Runs `fn` with a backend over a fresh temp dir and removes both afterwards. */
function withBackend(
  fn: (backend: LocalBackend, root: string) => Promise<void>,
): () => Promise<void> {
  return async () => {
    const root = await Deno.makeTempDir({ prefix: "vger-local-" });
    const backend = new LocalBackend(root);
    try {
      await fn(backend, root);
    } finally {
      await backend.close();
      await Deno.remove(root, { recursive: true });
    }
  };
}

/** Every file name under `dir`, as paths relative to it. */
async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) out.push(...(await walk(path)).map((p) => join(entry.name, p)));
    else out.push(entry.name);
  }
  return out.sort();
}

async function run(cmd: string, ...args: string[]): Promise<boolean> {
  try {
    const { success } = await new Deno.Command(cmd, { args, stdout: "null", stderr: "null" })
      .output();
    return success;
  } catch {
    return false;
  }
}

/** Whether this machine lets us make a directory read-only in a way that binds root too. */
async function probeReadOnlyDir(): Promise<"chmod" | "chattr" | null> {
  if (Deno.build.os === "windows") return null;
  if (Deno.uid() !== 0) return "chmod";
  const dir = await Deno.makeTempDir();
  try {
    if (!(await run("chattr", "+i", dir))) return null;
    await run("chattr", "-i", dir);
    return "chattr";
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Whether we may mount a tiny tmpfs (root with CAP_SYS_ADMIN) to test a full disk for real. */
async function probeMount(): Promise<boolean> {
  if (Deno.build.os !== "linux" || Deno.uid() !== 0) return false;
  const dir = await Deno.makeTempDir();
  try {
    if (!(await run("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", dir))) return false;
    await run("umount", dir);
    return true;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const readOnlyMethod = await probeReadOnlyDir();
const canMount = await probeMount();

Deno.test("local backend: location is the absolute path of a relative root", () => {
  const backend = new LocalBackend("some/repo");
  equal(backend.location, join(Deno.cwd(), "some/repo"));
});

Deno.test(
  "local backend: no .tmp- files remain after put, create and a losing create",
  withBackend(async (backend, root) => {
    await backend.put("config", new Uint8Array(10));
    await backend.put("config", [new Uint8Array(3), new Uint8Array(4)]);
    await backend.put("packs/ab/ab01", new Uint8Array(100));
    equal(await backend.create("locks/l1", new Uint8Array(5)), true);
    equal(await backend.create("locks/l1", new Uint8Array(6)), false);
    const results = await Promise.all(
      Array.from({ length: 10 }, () => backend.create("locks/race", new Uint8Array(7))),
    );
    equal(results.filter(Boolean).length, 1);
    deepStrictEqual(await walk(root), ["config", "locks/l1", "locks/race", "packs/ab/ab01"]);
  }),
);

Deno.test(
  "local backend: list skips temp files, symlinks and directories named like the prefix",
  withBackend(async (backend, root) => {
    await backend.put("packs/ab/ab01", new Uint8Array(4));
    await Deno.writeFile(join(root, "packs/ab/.tmp-0123abcd"), new Uint8Array(9));
    await Deno.symlink(join(root, "packs/ab/ab01"), join(root, "packs/ab/ab02"));
    await Deno.mkdir(join(root, "packs/ab/ab03"));
    const listed = [];
    for await (const { key, size } of backend.list("packs/ab/")) listed.push({ key, size });
    deepStrictEqual(listed, [{ key: "packs/ab/ab01", size: 4 }]);
    await rejects(backend.put("packs/.tmp-x", new Uint8Array(1)), /reserved/);
  }),
);

Deno.test(
  "local backend: get with maxBytes refuses a 4 GiB object without reading or allocating it",
  withBackend(async (backend, root) => {
    await Deno.mkdir(join(root, "keys"));
    const path = join(root, "keys", "repokey");
    await Deno.writeFile(path, new Uint8Array(0));
    await Deno.truncate(path, 4 * 2 ** 30); // sparse: costs no disk
    const rssBefore = Deno.memoryUsage().rss;
    const started = performance.now();
    await rejects(backend.get("keys/repokey", { maxBytes: 4096 }), (err: unknown) => {
      ok(err instanceof IntegrityError, String(err));
      equal(
        err.message,
        `Object "keys/repokey" is too large: ${4 * 2 ** 30} bytes, the limit is 4096`,
      );
      return true;
    });
    ok(performance.now() - started < 2000, "refused at once");
    ok(Deno.memoryUsage().rss - rssBefore < 64 << 20, "nothing of its size was allocated");
    // Only regular files are objects, as for size(): a FIFO would block a read forever.
    await Deno.mkdir(join(root, "locks"));
    await new Deno.Command("mkfifo", { args: [join(root, "locks", "fifo")] }).output();
    equal(await backend.get("locks/fifo", { maxBytes: 4096 }), null);
  }),
);

Deno.test(
  "local backend: a put below a regular file fails naming the path and leaves no temp file",
  withBackend(async (backend, root) => {
    await backend.put("packs", new Uint8Array(1)); // "packs" is now a file, not a directory.
    const path = join(root, "packs", "ab", "ab01");
    await rejects(backend.put("packs/ab/ab01", new Uint8Array(10)), (err: unknown) => {
      ok(err instanceof BackendError, String(err));
      ok(err.message.includes(`"${path}"`), err.message);
      ok(err.message.includes("not a directory"), err.message);
      return true;
    });
    await rejects(backend.create("packs/ab/ab02", new Uint8Array(10)), BackendError);
    equal(await backend.get("packs/ab/ab01"), null);
    equal(await backend.size("packs/ab/ab01"), null);
    deepStrictEqual(await walk(root), ["packs"]);
  }),
);

Deno.test({
  name: "local backend: a put into a read-only directory says permission denied" +
    (readOnlyMethod === null ? " (skipped: needs chattr +i as root, or a non-root user)" : ""),
  ignore: readOnlyMethod === null,
  fn: withBackend(async (backend, root) => {
    await backend.put("locks/l0", new Uint8Array(1));
    const dir = join(root, "locks");
    const lock = readOnlyMethod === "chattr"
      ? () => run("chattr", "+i", dir)
      : () => Deno.chmod(dir, 0o555).then(() => true);
    const unlock = readOnlyMethod === "chattr"
      ? () => run("chattr", "-i", dir)
      : () => Deno.chmod(dir, 0o755).then(() => true);
    ok(await lock());
    try {
      const writes = [
        () => backend.put("locks/l1", new Uint8Array(10)),
        () => backend.create("locks/l1", new Uint8Array(10)),
      ];
      for (const write of writes) {
        await rejects(write, (err: unknown) => {
          ok(err instanceof BackendError, String(err));
          ok(err.message.includes(`"${join(dir, "l1")}"`), err.message);
          ok(err.message.endsWith(": permission denied"), err.message);
          return true;
        });
      }
    } finally {
      await unlock();
    }
    deepStrictEqual(await walk(root), ["locks/l0"]);
  }),
});

Deno.test({
  name: "local backend: a full or read-only file system is reported in plain words" +
    (canMount ? "" : " (skipped: needs root and permission to mount tmpfs)"),
  ignore: !canMount,
  fn: async () => {
    const root = await Deno.makeTempDir({ prefix: "vger-local-full-" });
    ok(await run("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", root));
    const backend = new LocalBackend(root);
    try {
      await backend.put("packs/ab/small", new Uint8Array(1000));
      const big = [new Uint8Array(1024 * 1024), new Uint8Array(1024 * 1024)];
      await rejects(backend.put("packs/ab/big", big), (err: unknown) => {
        ok(err instanceof BackendError, String(err));
        equal(err.message, `Cannot write "${join(root, "packs/ab/big")}": disk full`);
        return true;
      });
      equal(
        await backend.create("packs/ab/big2", big).catch((err) => err.message),
        `Cannot write "${join(root, "packs/ab/big2")}": disk full`,
      );
      deepStrictEqual(await walk(root), ["packs/ab/small"]);
      ok(await run("mount", "-o", "remount,ro", root));
      await rejects(backend.put("packs/ab/other", new Uint8Array(1)), (err: unknown) => {
        ok(err instanceof BackendError, String(err));
        equal(err.message, `Cannot write "${join(root, "packs/ab/other")}": read-only file system`);
        return true;
      });
      await rejects(backend.delete("packs/ab/small"), /read-only file system/);
      deepStrictEqual(await backend.getRange("packs/ab/small", 10, 5), new Uint8Array(5));
    } finally {
      await backend.close();
      await run("umount", root);
      await Deno.remove(root, { recursive: true });
    }
  },
});

Deno.test(
  "local backend: getRange sees a new object after this backend deletes, re-puts or replaces it",
  withBackend(async (backend) => {
    const key = "packs/ab/ab01";
    await backend.put(key, new Uint8Array([1, 2, 3, 4]));
    deepStrictEqual(await backend.getRange(key, 0, 4), new Uint8Array([1, 2, 3, 4]));
    await backend.delete(key);
    await rejects(backend.getRange(key, 0, 1), { name: "NotFoundError" });
    await backend.put(key, new Uint8Array([5, 6, 7, 8, 9, 10]));
    deepStrictEqual(await backend.getRange(key, 2, 4), new Uint8Array([7, 8, 9, 10]));
    await backend.put(key, new Uint8Array([11, 12]));
    deepStrictEqual(await backend.getRange(key, 0, 2), new Uint8Array([11, 12]));
    await rejects(backend.getRange(key, 0, 4), { name: "IntegrityError" });
    await backend.delete(key);
    equal(await backend.create(key, new Uint8Array([13, 14, 15])), true);
    deepStrictEqual(await backend.getRange(key, 0, 3), new Uint8Array([13, 14, 15]));
  }),
);

Deno.test(
  "local backend: getRange stays correct across many keys and concurrent reads of one key",
  withBackend(async (backend) => {
    const packs = new Map<string, Uint8Array>();
    for (let i = 0; i < 80; i++) {
      const data = crypto.getRandomValues(new Uint8Array(4096));
      const key = `packs/${(i % 4).toString(16).padStart(2, "0")}/p${i}`;
      packs.set(key, data);
      await backend.put(key, data);
    }
    // More keys than cached handles, read twice in interleaved order, all at once.
    const reads = [...packs.keys(), ...[...packs.keys()].reverse()].flatMap((key) =>
      [0, 1000, 4000].map(async (offset) => {
        const got = await backend.getRange(key, offset, 96);
        deepStrictEqual(got, packs.get(key)!.slice(offset, offset + 96), `${key}@${offset}`);
      })
    );
    await Promise.all(reads);
    // Many concurrent reads of one handle must not interleave their seek and read.
    const [key, data] = [...packs][0];
    await Promise.all(
      Array.from({ length: 200 }, async (_, i) => {
        const offset = (i * 97) % 4000;
        deepStrictEqual(await backend.getRange(key, offset, 90), data.slice(offset, offset + 90));
      }),
    );
  }),
);

Deno.test(
  "local backend: put creates missing parent directories of a new root",
  withBackend(async (_backend, root) => {
    const nested = new LocalBackend(relative(Deno.cwd(), join(root, "new", "repo")));
    await nested.put("packs/ab/ab01", new Uint8Array([1]));
    deepStrictEqual(await nested.get("packs/ab/ab01"), new Uint8Array([1]));
    deepStrictEqual(await walk(root), ["new/repo/packs/ab/ab01"]);
    await nested.close();
  }),
);

Deno.test("local backend: freeBytes tells the free space of its file system, before its root exists too", async () => {
  const parent = await Deno.makeTempDir({ prefix: "vger-local-" });
  try {
    const backend = new LocalBackend(join(parent, "not", "yet"));
    const free = await backend.freeBytes();
    ok(free !== null && free > 0, String(free));
    await backend.close();
  } finally {
    await Deno.remove(parent, { recursive: true });
  }
});

Deno.test(
  "local backend: a staged object is a hidden temp file until finished, then appears whole under its key; abort leaves nothing",
  withBackend(async (backend, root) => {
    const staged = backend.stage();
    staged.write(new Uint8Array([1, 2, 3]));
    const temps = await walk(root);
    equal(temps.length, 1);
    ok(temps[0].startsWith(".tmp-"), temps[0]);
    deepStrictEqual([...await collect(backend.list(""))], []); // listings skip it
    staged.write(new Uint8Array([4, 5]));
    await staged.finish("packs/ab/ab02");
    deepStrictEqual(await backend.get("packs/ab/ab02"), new Uint8Array([1, 2, 3, 4, 5]));
    deepStrictEqual(await walk(root), ["packs/ab/ab02"]);
    throws(() => staged.write(new Uint8Array([6])), BackendError);

    const dropped = backend.stage();
    dropped.write(new Uint8Array(1000));
    dropped.abort();
    deepStrictEqual(await walk(root), ["packs/ab/ab02"]);

    // a process killed while staging leaves the temp file, which removeLeftovers takes away
    const left = backend.stage();
    left.write(new Uint8Array([9]));
    equal(await backend.removeLeftovers(), 1);
    deepStrictEqual(await walk(root), ["packs/ab/ab02"]);
    await rejects(left.finish("packs/ab/ab03"), BackendError);
    equal(await backend.size("packs/ab/ab03"), null);
  }),
);

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}
