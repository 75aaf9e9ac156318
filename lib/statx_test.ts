import { equal, ok } from "node:assert/strict";
import { makedev, sameFileStat, StatxResult } from "./statx.ts";

/** glibc's makedev on 64 bits, as bigints. */
function makedevReference(major: number, minor: number): number {
  const m = BigInt(major);
  const n = BigInt(minor);
  return Number(
    ((m & 0xfffff000n) << 32n) | ((m & 0xfffn) << 8n) | ((n & 0xffffff00n) << 12n) | (n & 0xffn),
  );
}

Deno.test("makedev gives glibc's encoding for majors and minors at every boundary", () => {
  const values = [0, 1, 8, 255, 256, 4095, 4096, 65535, 0xfffff, 0x100000, 0xffffff, 0xffffffff];
  for (const major of values) {
    for (const minor of values) {
      equal(makedev(major, minor), makedevReference(major, minor), `${major}:${minor}`);
    }
  }
  equal(makedev(8, 1), 0x801); // /dev/sda1
});

/** A struct statx with these times (seconds, nanoseconds) and inode. */
function statx(
  times: { a: [bigint, number]; m: [bigint, number]; c: [bigint, number]; b?: [bigint, number] },
  ino: bigint,
): DataView {
  const v = new DataView(new ArrayBuffer(256));
  v.setUint32(0, times.b ? 0xfff : 0x7ff, true); // stx_mask
  v.setUint32(0x10, 3, true); // nlink
  v.setUint32(0x14, 1000, true);
  v.setUint32(0x18, 100, true);
  v.setUint16(0x1c, 0o100644, true);
  v.setBigUint64(0x20, ino, true);
  v.setBigUint64(0x28, 2n ** 40n + 5n, true); // size
  const time = (at: number, [s, ns]: [bigint, number]) => {
    v.setBigInt64(at, s, true);
    v.setUint32(at + 8, ns, true);
  };
  time(0x40, times.a);
  if (times.b) time(0x50, times.b);
  time(0x60, times.c);
  time(0x70, times.m);
  v.setUint32(0x88, 259, true); // dev major
  v.setUint32(0x8c, 3, true);
  return v;
}

Deno.test("a statx result's times and inode are exact, before 1970 and beyond 2^53 seconds too", () => {
  const cases: [bigint, number][] = [
    [1_733_000_000n, 123_456_789],
    [-1n, 999_999_999],
    [-(2n ** 40n), 5],
    [2n ** 60n + 7n, 1], // beyond 2^53 s: built from the 64-bit word
    [-(2n ** 63n), 0],
  ];
  for (const t of cases) {
    const ino = 2n ** 64n - 3n;
    const s = new StatxResult(statx({ a: t, m: t, c: t, b: t }, ino));
    const ns = t[0] * 1_000_000_000n + BigInt(t[1]);
    equal(s.mtimeNs, ns);
    equal(s.ctimeNs, ns);
    equal(s.atimeNs, ns);
    equal(s.birthtimeNs, ns);
    equal(s.ino, ino);
    equal(s.size, 2 ** 40 + 5);
    equal(s.mode, 0o100644);
    equal(s.nlink, 3);
    equal(s.dev, makedev(259, 3));
  }
  const noBirth = new StatxResult(statx({ a: [1n, 0], m: [1n, 0], c: [1n, 0] }, 1n));
  equal(noBirth.birthtimeNs, null);
});

Deno.test("sameFileStat tells a nanosecond's change in mtime or ctime, and another inode", () => {
  const t: [bigint, number] = [1_733_000_000n, 500];
  const base = { a: t, m: t, c: t };
  const s = (over: Partial<typeof base>, ino = 42n) =>
    new StatxResult(statx({ ...base, ...over }, ino));
  ok(sameFileStat(s({}), s({})));
  ok(sameFileStat(s({ a: [5n, 0] }), s({})), "atime is not compared");
  ok(!sameFileStat(s({ m: [t[0], 501] }), s({})));
  ok(!sameFileStat(s({ c: [t[0] + 1n, 500] }), s({})));
  ok(!sameFileStat(s({}, 43n), s({})));
  ok(!sameFileStat(s({}, 42n + 2n ** 32n), s({})), "the inode's high word");
  const far: [bigint, number] = [2n ** 60n, 0];
  ok(sameFileStat(s({ m: far }), s({ m: far })));
  ok(!sameFileStat(s({ m: far }), s({ m: [2n ** 60n + 1n, 0] })));
  // a plain object (Deno's stat, milliseconds) compares by its bigints
  const plain = {
    size: 2 ** 40 + 5,
    mtimeNs: s({}).mtimeNs,
    ctimeNs: s({}).ctimeNs,
    ino: 42n,
    dev: s({}).dev,
  };
  ok(sameFileStat(plain, s({})));
  ok(!sameFileStat({ ...plain, ino: 41n }, s({})));
});
