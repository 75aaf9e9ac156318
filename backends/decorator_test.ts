import { deepStrictEqual, equal, ok } from "node:assert/strict";
import { BackendDecorator, ReadonlyBackendDecorator } from "./decorator.ts";
import { LocalBackend } from "./local.ts";
import { MemoryBackend } from "./memory.ts";
import type { Backend, PutBody, ReadonlyBackend } from "./backend.ts";

Deno.test("a decorator has removeLeftovers exactly when the backend it wraps has it", async () => {
  const memory = new MemoryBackend();
  ok(!("removeLeftovers" in memory));
  const overMemory: Backend = new BackendDecorator(memory);
  ok(!("removeLeftovers" in overMemory));
  equal(overMemory.removeLeftovers, undefined);
  // a decorator of a decorator tells the truth too
  ok(!("removeLeftovers" in new BackendDecorator(overMemory)));

  const root = await Deno.makeTempDir({ prefix: "vger-decorator-" });
  try {
    const local = new LocalBackend(root);
    await Deno.writeFile(`${root}/.tmp-0123456789abcdef`, new Uint8Array(1));
    const overLocal: Backend = new BackendDecorator(new BackendDecorator(local));
    ok("removeLeftovers" in overLocal);
    equal(await overLocal.removeLeftovers?.(), 1);
    await overLocal.close();
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("decorators forward location, capabilities and every operation", async () => {
  const memory = new MemoryBackend("memory:inner");
  const writable = new BackendDecorator(memory);
  equal(writable.location, "memory:inner");
  equal(writable.capabilities, memory.capabilities);
  await writable.put("a/1", new Uint8Array([1, 2, 3]));
  equal(await writable.create("a/1", new Uint8Array(1)), false);
  equal(await writable.create("a/2", new Uint8Array(1)), true);
  await writable.delete("a/2");

  const readonly: ReadonlyBackend = new ReadonlyBackendDecorator(memory);
  ok(!("put" in readonly) && !("create" in readonly) && !("delete" in readonly));
  equal(readonly.capabilities.connections, memory.capabilities.connections);
  deepStrictEqual(await readonly.get("a/1"), new Uint8Array([1, 2, 3]));
  deepStrictEqual(await readonly.getRange("a/1", 1, 2), new Uint8Array([2, 3]));
  equal(await readonly.size("a/1"), 3);
  const keys: string[] = [];
  for await (const { key } of readonly.list("a/")) keys.push(key);
  deepStrictEqual(keys, ["a/1"]);
  await readonly.close();
});

Deno.test("a decorator has probeCreate exactly when the backend it wraps has it", async () => {
  const overMemory: Backend = new BackendDecorator(new MemoryBackend());
  ok(!("probeCreate" in overMemory));
  const probing = Object.assign(new MemoryBackend(), { probeCreate: () => Promise.resolve(true) });
  const over: Backend = new BackendDecorator(new BackendDecorator(probing));
  ok("probeCreate" in over);
  equal(await over.probeCreate?.(), true);
});

Deno.test("a decorator stages objects exactly when the backend it wraps does and it does not change how objects are put", async () => {
  ok(!("stage" in new BackendDecorator(new MemoryBackend())));
  const root = await Deno.makeTempDir({ prefix: "vger-decorator-" });
  try {
    const local = new LocalBackend(root);
    const plain: Backend = new BackendDecorator(new BackendDecorator(local));
    ok("stage" in plain);
    const staged = plain.stage!();
    staged.write(new Uint8Array([7, 8]));
    await staged.finish("packs/cd/cd01");
    deepStrictEqual(await local.get("packs/cd/cd01"), new Uint8Array([7, 8]));
    // one that counts or fails puts sees every pack: its packs go through put
    class Counting extends BackendDecorator {
      puts = 0;
      override put(key: string, body: PutBody): Promise<void> {
        this.puts++;
        return super.put(key, body);
      }
    }
    ok(!("stage" in new Counting(local)));
    await local.close();
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
