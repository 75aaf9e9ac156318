import { deepStrictEqual, equal, rejects } from "node:assert/strict";
import { MemoryBackend } from "../backends/memory.ts";
import { heldBytes, holdObject, listHeld, purgeHeld, undelete } from "./server_held.ts";
import { heldCommand, undeleteCommand } from "./server_held_commands.ts";
import type { ServerConfig } from "./server_config.ts";
import { ServerStore } from "./server_store.ts";

const DAY = 86_400_000;
const bytes = (text: string) => new TextEncoder().encode(text);
const body = (text: string) => {
  const b = bytes(text);
  return {
    size: b.length,
    async *pieces() {
      yield b;
    },
  };
};

Deno.test("held: a held object is listed with its purge time, counted, put back, and purged after its days", async () => {
  const backend = new MemoryBackend();
  await backend.put("r/archives/a1", bytes("first"));
  await backend.put("r/packs/00/p", bytes("pack bytes"));
  const t0 = Date.UTC(2026, 0, 1);
  equal(await holdObject(backend, "r", "archives/a1", { remove: true, now: t0 }), true);
  equal(await holdObject(backend, "r", "packs/00/p", { remove: false, now: t0 + 1000 }), true);
  equal(await holdObject(backend, "r", "absent", { remove: true }), false);
  equal(await backend.size("r/archives/a1"), null, "moved aside");
  equal(await backend.size("r/packs/00/p"), 10, "copied");
  const held = await listHeld(backend, "r", 3);
  deepStrictEqual(
    held.map((h) => [h.key, h.size, h.deletedAt.getTime(), h.purgeAfter.getTime()]),
    [["archives/a1", 5, t0, t0 + 3 * DAY], ["packs/00/p", 10, t0 + 1000, t0 + 1000 + 3 * DAY]],
  );
  equal(await heldBytes(backend, "r"), 15);

  // the pack exists: refused and left held; the archive comes back; an unknown key is refused
  await rejects(undelete(backend, "r", ["nope"], { marker: "m/r" }), /Nothing held of "nope"/);
  const result = await undelete(backend, "r", null, { marker: "m/r" });
  deepStrictEqual(result.restored.map((h) => h.key), ["archives/a1"]);
  deepStrictEqual(result.refused.map((r) => r.held.key), ["packs/00/p"]);
  deepStrictEqual(await backend.get("r/archives/a1"), bytes("first"));
  equal(await backend.size("m/r"), 0, "the repository's marker is written");
  deepStrictEqual((await listHeld(backend, "r", 3)).map((h) => h.key), ["packs/00/p"]);

  deepStrictEqual(await purgeHeld(backend, 3, t0 + 3 * DAY), [], "not yet");
  deepStrictEqual(
    (await purgeHeld(backend, 3, t0 + 1001 + 3 * DAY)).map((h) => `${h.repo}/${h.key}`),
    ["r/packs/00/p"],
  );
  equal(await heldBytes(backend, "r"), 0);
});

Deno.test("held: with delete_hold_days, the store holds deletes and replaces (not locks), and the quota counts them", async () => {
  const backend = new MemoryBackend();
  const store = new ServerStore(backend, {
    appendOnly: false,
    maxObjectBytes: 1 << 20,
    quotaBytes: 0,
    deleteHoldDays: 30,
  });
  equal(await store.put("r", "config", body("cfg"), { create: true }), 201);
  await store.put("r", "archives/x", body("archive"), { create: true });
  await store.put("r", "keys/repokey", body("key-1"), { create: true });
  await store.put("r", "locks/" + "a".repeat(64), body("{}"), { create: true });
  await store.delete("r", "archives/x");
  await store.put("r", "keys/repokey", body("key-2"), { create: false });
  await store.delete("r", "locks/" + "a".repeat(64));
  const held = await listHeld(backend, "r", 30);
  deepStrictEqual(held.map((h) => [h.key, h.size]), [["archives/x", 7], ["keys/repokey", 5]]);
  equal((await store.stats("r")).heldBytes, 12);
  equal((await store.stats("r")).usedBytes, 3 + 5 + 12);
  deepStrictEqual(await store.purgeHeld(), [], "nothing is 30 days old");

  // the operator commands
  const config = { deleteHoldDays: 30 } as ServerConfig;
  const out: string[] = [];
  const err: string[] = [];
  const io = { out: (l: string) => out.push(l), err: (l: string) => err.push(l) };
  equal(await heldCommand(config, backend, ["r", "--json"], io), 0);
  const listed = JSON.parse(out[0]);
  deepStrictEqual(listed.held.map((h: { key: string }) => h.key), ["archives/x", "keys/repokey"]);
  equal(
    Date.parse(listed.held[0].purge_after) - Date.parse(listed.held[0].deleted_at),
    30 * DAY,
  );
  out.length = 0;
  equal(await undeleteCommand(config, backend, ["r", "--all"], io), 1, "one refused");
  deepStrictEqual(out, [
    "restored archives/x (7 bytes)",
    '1 object(s) restored, 1 left held, repository "r"',
  ]);
  deepStrictEqual(err, [
    'Cannot undelete "keys/repokey" of repository "r": it exists again; remove it first to put this one back',
  ]);
  deepStrictEqual(await backend.get("r/keys/repokey"), bytes("key-2"), "never overwritten");
  // the sweep purges after the days, and never with held deletes off
  deepStrictEqual(await store.purgeHeld(Date.now() + 29 * DAY), []);
  const off = new ServerStore(backend, {
    appendOnly: false,
    maxObjectBytes: 1 << 20,
    quotaBytes: 0,
  });
  deepStrictEqual(await off.purgeHeld(Date.now() + 1000 * DAY), []);
  deepStrictEqual(
    (await store.purgeHeld(Date.now() + 31 * DAY)).map((h) => h.key),
    ["keys/repokey"],
  );
  equal((await store.stats("r")).heldBytes, 0);
  equal(await undeleteCommand(config, backend, ["r"], io), 2, "usage");
  equal(await heldCommand(config, backend, ["../x"], io), 2, "usage");
});
