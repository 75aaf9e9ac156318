import { equal, ok } from "node:assert/strict";
import { hugePageBuffer, mapHuge } from "./native_memory.ts";

Deno.test("a huge-page buffer is an ordinary zeroed buffer of the size asked", () => {
  for (const bytes of [0, 100, (4 << 20) + 17, 12 << 20]) {
    const b = hugePageBuffer(bytes);
    equal(b.length, bytes);
    ok(b.every((x) => x === 0));
    b.fill(7); // writable to its end
    equal(b[bytes - 1] ?? 7, 7);
  }
});

Deno.test("a huge mapping starts on a 2 MiB boundary and unmaps once", () => {
  const m = mapHuge(5 << 20);
  ok(m !== null, "libc through FFI (tests run with it)");
  equal(m.address % (2n << 20n), 0n);
  const view = new Uint8Array(
    Deno.UnsafePointerView.getArrayBuffer(Deno.UnsafePointer.create(m.address)!, 5 << 20),
  );
  equal(view[0], 0);
  view[(5 << 20) - 1] = 1; // the whole length is mapped
  m.unmap();
  m.unmap(); // a second call does nothing
});
