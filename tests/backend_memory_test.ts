import { deepStrictEqual, equal } from "node:assert/strict";
import { MemoryBackend } from "../backends/memory.ts";
import { backendConformance } from "./backend_conformance.ts";

backendConformance(
  "memory",
  () => Promise.resolve({ backend: new MemoryBackend(), cleanup: () => Promise.resolve() }),
);

Deno.test("memory backend: location defaults to memory: and can be named", () => {
  equal(new MemoryBackend().location, "memory:");
  equal(new MemoryBackend("memory:test").location, "memory:test");
});

Deno.test("memory backend: a listing is a snapshot unaffected by later writes", async () => {
  const backend = new MemoryBackend();
  await backend.put("a", new Uint8Array(1));
  const seen: string[] = [];
  for await (const { key } of backend.list("")) {
    seen.push(key);
    await backend.put(`${key}x`, new Uint8Array(1));
  }
  deepStrictEqual(seen, ["a"]);
});
