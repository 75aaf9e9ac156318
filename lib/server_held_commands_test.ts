import { deepStrictEqual, equal, match, rejects } from "node:assert/strict";
import { MemoryBackend } from "../backends/memory.ts";
import type { ServerConfig } from "./server_config.ts";
import { holdObject } from "./server_held.ts";
import { heldCommand, undeleteCommand } from "./server_held_commands.ts";

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { out: (l: string) => out.push(l), err: (l: string) => err.push(l) } };
}

Deno.test("held lists each held object in one line and a total; undelete KEY puts back its newest copy and marks the repository", async () => {
  const backend = new MemoryBackend();
  const t0 = Date.UTC(2026, 5, 1);
  await backend.put("r/config", new Uint8Array([1]));
  await holdObject(backend, "r", "config", { remove: true, now: t0 });
  await backend.put("r/config", new Uint8Array([2, 2]));
  await holdObject(backend, "r", "config", { remove: true, now: t0 + 1000 });
  const config = { deleteHoldDays: 2 } as ServerConfig;

  const c = capture();
  equal(await heldCommand(config, backend, ["r"], c.io), 0);
  deepStrictEqual(c.out, [
    "config  1 bytes  deleted 2026-06-01T00:00:00.000Z  purge after 2026-06-03T00:00:00.000Z",
    "config  2 bytes  deleted 2026-06-01T00:00:01.000Z  purge after 2026-06-03T00:00:01.000Z",
    '2 object(s), 3 bytes held of repository "r"',
  ]);
  const off = capture();
  await heldCommand({ deleteHoldDays: 0 } as ServerConfig, backend, ["r"], off.io);
  match(off.out[0], /purge after never \(off\)$/);
  const none = capture();
  await heldCommand(config, backend, ["other", "--json"], none.io);
  deepStrictEqual(JSON.parse(none.out[0]), { repository: "other", held: [] });

  const u = capture();
  await rejects(undeleteCommand(config, backend, ["r", "keys/repokey"], u.io), /Nothing held/);
  equal(await undeleteCommand(config, backend, ["r", "config"], u.io), 0);
  deepStrictEqual(u.out, [
    "restored config (2 bytes)",
    '1 object(s) restored, 0 left held, repository "r"',
  ]);
  deepStrictEqual(await backend.get("r/config"), new Uint8Array([2, 2]), "the newest copy");
  equal(await backend.size(".vger-server/repos/r"), 0, "listed again");
  const left = capture();
  await heldCommand(config, backend, ["r", "--json"], left.io);
  deepStrictEqual(JSON.parse(left.out[0]).held.map((h: { size: number }) => h.size), [1]);

  for (
    const args of [[], ["r"], ["r", "--all", "config"], [".x", "--all"], ["r", "--force"]]
  ) {
    const bad = capture();
    equal(await undeleteCommand(config, backend, args, bad.io), 2, args.join(" "));
    match(bad.err[0], /^Usage: server\.ts --config FILE undelete REPO KEY\.\.\. \| --all$/);
  }
  const bad = capture();
  equal(await heldCommand(config, backend, ["r", "s"], bad.io), 2);
});
