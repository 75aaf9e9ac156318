import { deepStrictEqual, equal, ok, throws } from "node:assert/strict";
import { lstatSync, statSync } from "node:fs";
import { BackendError } from "./errors.ts";
import { ERRNO, NativeError, type NativeFs, nativeFs, XATTR_SIZE_MAX } from "./fs_native.ts";
import { S_IFBLK, S_IFCHR, S_IFIFO, S_IFMT, splitRdev } from "./fs_meta.ts";

function fsOrFail(): NativeFs {
  const fs = nativeFs();
  ok(fs, "nativeFs() is null although the test runs with --allow-ffi on Linux");
  return fs;
}

async function withTempDir(
  fn: (dir: string) => Promise<void> | void,
  parent = "/tmp",
): Promise<void> {
  const dir = await Deno.makeTempDir({ dir: parent, prefix: "vger_fs_native_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** False (with a note) when the file system of `dir` refuses user xattrs. */
function userXattrsSupported(fs: NativeFs, dir: string): boolean {
  const probe = `${dir}/probe`;
  Deno.writeTextFileSync(probe, "");
  try {
    fs.setXattr(probe, "user.vger_probe", new Uint8Array([1]));
    return true;
  } catch (err) {
    if (err instanceof NativeError && err.errno === ERRNO.ENOTSUP) {
      console.log(`note: ${dir} does not support user xattrs; skipping xattr checks`);
      return false;
    }
    throw err;
  } finally {
    Deno.removeSync(probe);
  }
}

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

/**
 * [atime, mtime] in nanoseconds as coreutils `stat` (not following symlinks) reports them: an
 * independent reading, since Deno.lstat and node:fs's bigint stats stop at milliseconds.
 */
async function coreutilsTimes(path: string): Promise<[bigint, bigint]> {
  const out = await new Deno.Command("stat", { args: ["-c", "%.9X %.9Y", path] }).output();
  equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const parse = (text: string): bigint => {
    const m = /^(-?)(\d+)\.(\d{9})$/.exec(text);
    ok(m, `unexpected stat output ${text}`);
    const ns = BigInt(m[2]) * 1_000_000_000n + BigInt(m[3]);
    return m[1] ? -ns : ns;
  };
  const [a, m] = new TextDecoder().decode(out.stdout).trim().split(" ");
  return [parse(a), parse(m)];
}

Deno.test("nativeFs is loaded once and returns the same object", () => {
  equal(nativeFs(), fsOrFail());
});

Deno.test("xattrs round-trip text, binary with NUL bytes, empty and 4 KiB values", async () => {
  const fs = fsOrFail();
  await withTempDir((dir) => {
    if (!userXattrsSupported(fs, dir)) return;
    const file = `${dir}/f`;
    Deno.writeTextFileSync(file, "data");
    deepStrictEqual(fs.listXattrs(file).filter((n) => n.startsWith("user.")), []);

    const binary = new Uint8Array([0, 1, 0, 255, 0, 0]);
    const big = new Uint8Array(4096).map((_, i) => (i * 7 + 3) & 0xff);
    fs.setXattr(file, "user.text", bytes("hello"));
    fs.setXattr(file, "user.binary", binary);
    fs.setXattr(file, "user.empty", new Uint8Array(0));
    fs.setXattr(file, "user.überlang", bytes("utf-8 name"));

    // ext4 keeps all of a file's xattrs in one 4 KiB block, so a 4 KiB value may not fit.
    let bigValue = big;
    try {
      fs.setXattr(file, "user.big", big);
    } catch (err) {
      ok(err instanceof NativeError && err.errno === ERRNO.ENOSPC, `unexpected ${err}`);
      ok(err.message.includes('"user.big"') && err.message.includes(file), err.message);
      console.log(`note: 4096-byte value refused (${err.message}); using 3500 bytes`);
      bigValue = big.subarray(0, 3500);
      fs.setXattr(file, "user.big", bigValue);
    }

    deepStrictEqual(
      fs.listXattrs(file).filter((n) => n.startsWith("user.")).sort(),
      ["user.big", "user.binary", "user.empty", "user.text", "user.überlang"],
    );
    deepStrictEqual(fs.getXattr(file, "user.text"), bytes("hello"));
    deepStrictEqual(fs.getXattr(file, "user.binary"), binary);
    deepStrictEqual(fs.getXattr(file, "user.empty"), new Uint8Array(0));
    deepStrictEqual(fs.getXattr(file, "user.überlang"), bytes("utf-8 name"));
    deepStrictEqual(fs.getXattr(file, "user.big"), bigValue);

    fs.setXattr(file, "user.text", bytes("replaced"));
    deepStrictEqual(fs.getXattr(file, "user.text"), bytes("replaced"));
  });
});

Deno.test("values of exactly 4 KiB and 64 KiB round-trip on tmpfs", async () => {
  const fs = fsOrFail();
  try {
    Deno.statSync("/dev/shm");
  } catch {
    console.log("note: no /dev/shm; skipping");
    return;
  }
  await withTempDir((dir) => {
    if (!userXattrsSupported(fs, dir)) return;
    const file = `${dir}/f`;
    Deno.writeTextFileSync(file, "");
    const k4 = new Uint8Array(4096).map((_, i) => i & 0xff);
    const k64 = new Uint8Array(XATTR_SIZE_MAX).map((_, i) => (i >> 8) ^ i);
    fs.setXattr(file, "user.k4", k4);
    fs.setXattr(file, "user.k64", k64);
    deepStrictEqual(fs.getXattr(file, "user.k4"), k4);
    deepStrictEqual(fs.getXattr(file, "user.k64"), k64);
  }, "/dev/shm");
});

Deno.test("getXattr of an absent attribute is null", async () => {
  const fs = fsOrFail();
  await withTempDir((dir) => {
    const file = `${dir}/f`;
    Deno.writeTextFileSync(file, "");
    equal(fs.getXattr(file, "user.absent"), null);
  });
});

Deno.test("setXattr rejects values over 64 KiB with a message naming the limit", async () => {
  const fs = fsOrFail();
  await withTempDir((dir) => {
    const file = `${dir}/f`;
    Deno.writeTextFileSync(file, "");
    throws(
      () => fs.setXattr(file, "user.huge", new Uint8Array(XATTR_SIZE_MAX + 1)),
      (err: unknown) =>
        err instanceof NativeError && err.errno === ERRNO.E2BIG &&
        err.message ===
          `Cannot set extended attribute "user.huge" on "${file}": value of 65537 bytes exceeds ` +
            "the 65536-byte limit",
    );
  });
});

Deno.test("xattrs of a symlink are not those of its target", async () => {
  const fs = fsOrFail();
  await withTempDir((dir) => {
    if (!userXattrsSupported(fs, dir)) return;
    const target = `${dir}/target`;
    const link = `${dir}/link`;
    Deno.writeTextFileSync(target, "t");
    Deno.symlinkSync(target, link);
    fs.setXattr(target, "user.on_target", bytes("x"));

    ok(fs.listXattrs(target).includes("user.on_target"));
    ok(!fs.listXattrs(link).includes("user.on_target"), "llistxattr followed the symlink");
    equal(fs.getXattr(link, "user.on_target"), null);
    // Linux allows user.* only on regular files and directories.
    throws(
      () => fs.setXattr(link, "user.on_link", bytes("y")),
      (err: unknown) =>
        err instanceof NativeError && err.errno === ERRNO.EPERM &&
        err.message.includes(`"${link}"`) && err.message.includes("operation not permitted"),
    );
    equal(fs.getXattr(target, "user.on_link"), null);
  });
});

Deno.test("setTimes sets mtime and atime to the nanosecond", async () => {
  const fs = fsOrFail();
  await withTempDir(async (dir) => {
    const file = `${dir}/f`;
    Deno.writeTextFileSync(file, "x");
    fs.setTimes(file, 1_500_000_000_987_654_321n, 1_600_000_000_123_456_789n);
    deepStrictEqual(await coreutilsTimes(file), [
      1_500_000_000_987_654_321n,
      1_600_000_000_123_456_789n,
    ]);
    const st = fs.lstat(file);
    equal(st.mtimeNs, 1_600_000_000_123_456_789n);
    equal(st.atimeNs, 1_500_000_000_987_654_321n);
    // node:fs in Deno 2.9.6 truncates bigint stats to milliseconds.
    equal(lstatSync(file, { bigint: true }).mtimeNs, 1_600_000_000_123_000_000n);

    // Before 1970: tv_sec is floored, tv_nsec stays positive.
    fs.setTimes(file, 0n, -1_500_000_001n);
    deepStrictEqual(await coreutilsTimes(file), [0n, -1_500_000_001n]);
    equal(fs.lstat(file).mtimeNs, -1_500_000_001n);
  });
});

Deno.test("setTimes on a symlink changes the link, not its target", async () => {
  const fs = fsOrFail();
  await withTempDir(async (dir) => {
    const target = `${dir}/target`;
    const link = `${dir}/link`;
    Deno.writeTextFileSync(target, "t");
    Deno.symlinkSync(target, link);
    fs.setTimes(target, 1_000_000_000_000_000_001n, 1_000_000_000_000_000_002n);
    fs.setTimes(link, 1_700_000_000_000_000_003n, 1_700_000_000_999_999_999n);

    deepStrictEqual(await coreutilsTimes(link), [
      1_700_000_000_000_000_003n,
      1_700_000_000_999_999_999n,
    ]);
    deepStrictEqual(await coreutilsTimes(target), [
      1_000_000_000_000_000_001n,
      1_000_000_000_000_000_002n,
    ]);
    equal(fs.lstat(link).mtimeNs, 1_700_000_000_999_999_999n);
    equal(fs.lstat(target).mtimeNs, 1_000_000_000_000_000_002n);
    equal(statSync(link).mtimeMs, 1_000_000_000_000);
  });
});

Deno.test("lstat agrees with Deno.lstatSync and does not follow symlinks", async () => {
  const fs = fsOrFail();
  await withTempDir((dir) => {
    const file = `${dir}/f`;
    const link = `${dir}/link`;
    Deno.writeTextFileSync(file, "12345");
    Deno.chmodSync(file, 0o640);
    Deno.symlinkSync(file, link);
    for (const path of [file, link, dir, "/dev/null"]) {
      const mine = fs.lstat(path);
      const deno = Deno.lstatSync(path);
      equal(mine.mode, deno.mode, path);
      equal(mine.uid, deno.uid, path);
      equal(mine.gid, deno.gid, path);
      equal(mine.size, deno.size, path);
      equal(mine.nlink, deno.nlink, path);
      equal(mine.ino, BigInt(deno.ino!), path);
      equal(mine.dev, deno.dev, path);
      equal(mine.rdev, deno.rdev, path);
      equal(mine.mtimeNs / 1_000_000n, BigInt(deno.mtime!.getTime()), path);
      ok(mine.ctimeNs > 0n, path);
    }
    equal(fs.lstat(file).mode, 0o100640);
    equal(fs.lstat(link).mode & 0o170000, 0o120000);
    equal(fs.lstat(link).size, file.length);
    ok(fs.lstat("/dev/null").rdev !== 0);
  });
});

Deno.test("openRead reads a file and stats it through the descriptor; never follows a symlink or waits on a FIFO", async () => {
  const fs = fsOrFail();
  await withTempDir((dir) => {
    const file = `${dir}/f`;
    const data = new Uint8Array(100_000).map((_, i) => i * 7);
    Deno.writeFileSync(file, data);
    const r = fs.openRead(file);
    const got = new Uint8Array(150_000);
    let n = 0;
    for (let k; (k = r.read(got.subarray(n, n + 30_000))) > 0;) n += k;
    deepStrictEqual(got.subarray(0, n), data);
    // the descriptor's file, even once its name is gone
    Deno.removeSync(file);
    const st = r.stat();
    deepStrictEqual([st.size, st.mode & S_IFMT, st.nlink], [100_000, 0o100000, 0]);
    r.close();
    r.close(); // once only
    Deno.writeTextFileSync(file, "x");
    Deno.symlinkSync(file, `${dir}/link`);
    throws(
      () => fs.openRead(`${dir}/link`),
      (e: unknown) => e instanceof NativeError && e.errno === 40,
    );
    // a FIFO opens at once (no writer), reads as empty and stats as a FIFO
    const fifo = `${dir}/fifo`;
    fs.mknod(fifo, S_IFIFO | 0o600, 0, 0);
    const p = fs.openRead(fifo);
    equal(p.stat().mode & S_IFMT, S_IFIFO);
    equal(p.read(new Uint8Array(10)), 0);
    p.close();
    throws(() => fs.openRead(`${dir}/absent`), /Cannot open .*absent.*no such file/i);
  });
});

Deno.test("listDir gives the names Deno gives, over many getdents64 calls, and fails naming the path", async () => {
  const fs = fsOrFail();
  await withTempDir((dir) => {
    const names = ["a", ".hidden", "..x", "ünïcödé ✓", "with\nnewline", "x".repeat(255)];
    for (let i = 0; i < 3000; i++) names.push(`file-${i}-${"y".repeat(i % 200)}`);
    for (const n of names) Deno.writeFileSync(`${dir}/${n}`, new Uint8Array());
    Deno.mkdirSync(`${dir}/sub`);
    names.push("sub");
    const sorted = (a: string[]) => [...a].sort();
    deepStrictEqual(sorted(fs.listDir(dir)), sorted(names));
    deepStrictEqual(sorted(fs.listDir(dir)), sorted([...Deno.readDirSync(dir)].map((e) => e.name)));
    deepStrictEqual(fs.listDir(`${dir}/sub`), []);
    throws(() => fs.listDir(`${dir}/a`), /Cannot list .*\/a.*not a directory/i);
    throws(() => fs.listDir(`${dir}/absent`), /no such file/i);
    Deno.symlinkSync(`${dir}/sub`, `${dir}/link`);
    throws(() => fs.listDir(`${dir}/link`), (e: unknown) => e instanceof NativeError);
  });
});

Deno.test("setTimes rejects times beyond the 64-bit range", async () => {
  const fs = fsOrFail();
  await withTempDir((dir) => {
    const file = `${dir}/f`;
    Deno.writeTextFileSync(file, "");
    throws(
      () => fs.setTimes(file, 0n, 2n ** 63n * 1_000_000_000n),
      (err: unknown) => err instanceof NativeError && err.message.includes("out of range"),
    );
  });
});

Deno.test("lchown changes owners of files and of symlinks without touching targets", async () => {
  const fs = fsOrFail();
  await withTempDir((dir) => {
    const file = `${dir}/f`;
    const link = `${dir}/link`;
    Deno.writeTextFileSync(file, "x");
    Deno.symlinkSync(file, link);
    if (Deno.uid() !== 0) {
      console.log("note: not root; skipping lchown checks");
      return;
    }
    fs.lchown(file, 0, 0);
    fs.lchown(link, 65534, 65534);
    let l = lstatSync(link);
    equal(l.uid, 65534);
    equal(l.gid, 65534);
    let t = statSync(file);
    equal(t.uid, 0);
    equal(t.gid, 0);

    fs.lchown(file, 65534, 65534);
    t = lstatSync(file);
    equal(t.uid, 65534);
    equal(t.gid, 65534);

    // -1 leaves that id alone.
    fs.lchown(link, -1, 0);
    l = lstatSync(link);
    equal(l.uid, 65534);
    equal(l.gid, 0);

    throws(() => fs.lchown(file, -5, 0), /not a valid id/);
  });
});

Deno.test("failed calls throw NativeError naming the path and the errno text", async () => {
  const fs = fsOrFail();
  await withTempDir((dir) => {
    const missing = `${dir}/missing`;
    const isEnoent = (err: unknown): boolean =>
      err instanceof NativeError && err instanceof BackendError && err.code === "backend" &&
      err.errno === ERRNO.ENOENT && err.message.includes(`"${missing}"`) &&
      err.message.endsWith(": no such file or directory (errno 2)");
    throws(() => fs.getXattr(missing, "user.x"), (err: unknown) => {
      ok(isEnoent(err), String(err));
      equal(
        (err as Error).message,
        `Cannot read extended attribute "user.x" of "${missing}": no such file or directory ` +
          "(errno 2)",
      );
      return true;
    });
    throws(() => fs.listXattrs(missing), isEnoent);
    throws(() => fs.setXattr(missing, "user.x", bytes("v")), isEnoent);
    throws(() => fs.setTimes(missing, 0n, 0n), isEnoent);
    throws(() => fs.lchown(missing, 0, 0), isEnoent);
    throws(() => fs.lstat(missing), isEnoent);
    throws(() => fs.listXattrs(`${dir}/a\0b`), /contains a NUL byte/);
  });
});

Deno.test("nativeFs is null without --allow-ffi", async () => {
  await withTempDir(async (dir) => {
    const script = `${dir}/probe.ts`;
    const moduleUrl = new URL("./fs_native.ts", import.meta.url).href;
    await Deno.writeTextFile(
      script,
      `import { nativeFs } from ${JSON.stringify(moduleUrl)};\nconsole.log(nativeFs() === null);\n`,
    );
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-prompt", "--no-lock", "--no-config", script],
      stdin: "null",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    equal(out.code, 0, stderr);
    equal(new TextDecoder().decode(out.stdout).trim(), "true");
  });
});

Deno.test("listXattrs + lstat cost per file (10,000 files)", async () => {
  const fs = fsOrFail();
  await withTempDir((dir) => {
    const n = 10_000;
    const paths: string[] = [];
    for (let i = 0; i < n; i++) {
      const p = `${dir}/f${i}`;
      Deno.writeFileSync(p, new Uint8Array(0));
      paths.push(p);
    }
    const supported = userXattrsSupported(fs, dir);
    // One file in ten carries an xattr, so both code paths are timed.
    if (supported) {
      for (let i = 0; i < n; i += 10) fs.setXattr(paths[i], "user.tag", bytes("v"));
    }

    const time = (label: string, body: (p: string) => unknown): number => {
      for (const p of paths.slice(0, 500)) body(p); // warm up (JIT, dentry cache)
      const start = performance.now();
      for (const p of paths) body(p);
      const us = ((performance.now() - start) * 1000) / n;
      console.log(`${label}: ${us.toFixed(2)} µs/file`);
      return us;
    };
    time("lstat", (p) => Deno.lstatSync(p));
    time("native lstat (statx)", (p) => fs.lstat(p));
    time("listXattrs", (p) => fs.listXattrs(p));
    const both = time("listXattrs+lstat", (p) => {
      Deno.lstatSync(p);
      fs.listXattrs(p);
    });
    time("listXattrs+native lstat", (p) => {
      fs.lstat(p);
      fs.listXattrs(p);
    });
    time("listXattrs+getXattr+lstat", (p) => {
      Deno.lstatSync(p);
      for (const name of fs.listXattrs(p)) fs.getXattr(p, name);
    });
    if (supported) {
      equal(paths.filter((p) => fs.listXattrs(p).includes("user.tag")).length, n / 10);
    }
    ok(both < 1000, `listXattrs+lstat took ${both} µs/file`);
  });
});

Deno.test("mknod makes a FIFO without opening it, and devices as root; lstat gives device numbers", async () => {
  const fs = fsOrFail();
  await withTempDir((dir) => {
    fs.mknod(`${dir}/fifo`, S_IFIFO | 0o640, 0, 0);
    const st = fs.lstat(`${dir}/fifo`);
    deepStrictEqual([st.mode & S_IFMT, st.mode & 0o777 & ~0o022], [S_IFIFO, 0o640 & ~0o022]);
    ok(lstatSync(`${dir}/fifo`).isFIFO());
    // an existing name is refused with the path and the errno
    throws(() => fs.mknod(`${dir}/fifo`, S_IFIFO | 0o600, 0, 0), (err: unknown) => {
      ok(err instanceof NativeError && err.errno === 17, String(err));
      ok(err.message.startsWith(`Cannot create "${dir}/fifo": `), err.message);
      return true;
    });
    throws(() => fs.mknod(`${dir}/x`, -1, 0, 0), /out of range/);
    throws(() => fs.mknod(`${dir}/x`, S_IFCHR, 2 ** 32, 0), /out of range/);
    deepStrictEqual([fs.lstat("/dev/null").rdevMajor, fs.lstat("/dev/null").rdevMinor], [1, 3]);
    if (Deno.uid() !== 0) return;
    // numbers past the old 8-bit split (the kernel keeps 12 bits of major, 20 of minor) survive
    fs.mknod(`${dir}/blk`, S_IFBLK | 0o600, 259, 0x12345);
    const b = fs.lstat(`${dir}/blk`);
    deepStrictEqual([b.mode & S_IFMT, b.rdevMajor, b.rdevMinor], [S_IFBLK, 259, 0x12345]);
    deepStrictEqual(splitRdev(b.rdev), [259, 0x12345]);
    deepStrictEqual(splitRdev(Deno.lstatSync(`${dir}/blk`).rdev ?? 0), [259, 0x12345]);
  });
});

Deno.test("createFile writes at offsets, sets owner, mode, xattrs and ns times through the descriptor, then rename", async () => {
  const fs = fsOrFail();
  await withTempDir(async (dir) => {
    const temp = `${dir}/.tmp`;
    const f = fs.createFile(temp, 0o600);
    f.writeAt(bytes("world"), 6);
    await f.writeAtAsync(bytes("hello "), 0);
    f.truncate(20); // a hole at the end
    f.chmod(0o4751); // setuid kept: chmod comes after chown in restore, and here too
    const xattrs = userXattrsSupported(fs, dir);
    if (xattrs) f.setXattr("user.k", bytes("v\0w"));
    const mtime = 1_700_000_000_123_456_789n;
    f.setTimes(1_600_000_000_000_000_001n, mtime);
    f.close();
    f.close(); // a second close does nothing
    fs.rename(temp, `${dir}/final`);
    throws(() => Deno.lstatSync(temp), Deno.errors.NotFound);
    deepStrictEqual(await coreutilsTimes(`${dir}/final`), [1_600_000_000_000_000_001n, mtime]);
    const got = Deno.readFileSync(`${dir}/final`);
    deepStrictEqual(got, new Uint8Array([...bytes("hello world"), ...new Uint8Array(9)]));
    equal(statSync(`${dir}/final`).mode & 0o7777, 0o4751);
    if (xattrs) deepStrictEqual(fs.getXattr(`${dir}/final`, "user.k"), bytes("v\0w"));
    if (Deno.uid() === 0) {
      const g = fs.createFile(`${dir}/owned`, 0o644);
      g.chown(1234, 5678);
      g.close();
      const st = lstatSync(`${dir}/owned`);
      deepStrictEqual([st.uid, st.gid], [1234, 5678]);
    }
  });
});

Deno.test("createFile never opens an existing file or follows a symlink; failures name the call", async () => {
  const fs = fsOrFail();
  await withTempDir((dir) => {
    Deno.writeTextFileSync(`${dir}/there`, "keep");
    Deno.symlinkSync(`${dir}/target`, `${dir}/link`);
    const exists = (err: unknown) =>
      err instanceof NativeError && err.errno === ERRNO.EEXIST &&
      err.message.startsWith(`Cannot create ${JSON.stringify(`${dir}/there`)}: file exists`);
    throws(() => fs.createFile(`${dir}/there`, 0o600), exists);
    throws(() => fs.createFile(`${dir}/link`, 0o600), NativeError);
    throws(() => Deno.lstatSync(`${dir}/target`), Deno.errors.NotFound);
    equal(Deno.readTextFileSync(`${dir}/there`), "keep");
    throws(
      () => fs.rename(`${dir}/absent`, `${dir}/x`),
      (err) => err instanceof NativeError && err.errno === ERRNO.ENOENT,
    );
    // a name past the reused path buffer is encoded on its own, and the kernel refuses it
    throws(
      () => fs.createFile(`${dir}/${"é/".repeat(5000)}x`, 0o600),
      (err) => err instanceof NativeError && err.errno === 36, // ENAMETOOLONG
    );
    const name = `${dir}/naïve ✓`;
    fs.createFile(name, 0o600).close();
    fs.rename(name, `${name}.2`);
    deepStrictEqual([...Deno.readDirSync(dir)].map((e) => e.name).sort(), [
      "link",
      "naïve ✓.2",
      "there",
    ]);
    const f = fs.createFile(`${dir}/t`, 0o600);
    throws(
      () => f.setTimes(1n << 100n, 0n),
      (err) =>
        err instanceof NativeError && /^Cannot set times: time out of range/.test(err.message),
    );
    f.close();
  });
});

Deno.test("writeAtAsync writes megabytes at an offset from another thread", async () => {
  const fs = fsOrFail();
  await withTempDir(async (dir) => {
    const data = new Uint8Array(3 << 20).map((_, i) => i * 7);
    const f = fs.createFile(`${dir}/big`, 0o600);
    await Promise.all([f.writeAtAsync(data, 4096), f.writeAtAsync(bytes("head"), 0)]);
    f.close();
    const got = Deno.readFileSync(`${dir}/big`);
    equal(got.length, 4096 + data.length);
    deepStrictEqual(got.subarray(0, 4), bytes("head"));
    deepStrictEqual(got.subarray(4, 4096), new Uint8Array(4092));
    ok(got.subarray(4096).every((v, i) => v === data[i]));
  });
});
