import { equal } from "node:assert/strict";
import { MemoryBackend } from "../backends/memory.ts";
import { HttpError } from "./server_request.ts";
import { TokenTable } from "./server_roles.ts";
import { ServerStore } from "./server_store.ts";

const lock = (exclusive: boolean) => {
  const b = new TextEncoder().encode(JSON.stringify({
    host: "h",
    pid: 1,
    time: new Date().toISOString(),
    exclusive,
    command: "check",
  }));
  return {
    size: b.length,
    async *pieces() {
      yield b;
    },
  };
};

async function refusal(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return "allowed";
  } catch (err) {
    if (err instanceof HttpError) return `${err.status} ${err.message}`;
    throw err;
  }
}

Deno.test("a read-only token takes, refreshes and releases shared locks of its own, and nothing else", async () => {
  const backend = new MemoryBackend();
  const store = new ServerStore(backend, {
    appendOnly: false,
    maxObjectBytes: 1 << 20,
    quotaBytes: 0,
  });
  const table = new TokenTable("full-token", [
    { name: "tokens[0]", token: "reader-1", repos: ["r"], role: "read-only" },
    { name: "tokens[1]", token: "reader-2", repos: ["r"], role: "read-only" },
  ]);
  const full = table.lookup("Bearer full-token")!;
  const reader = table.lookup("Bearer reader-1")!;
  const other = table.lookup("Bearer reader-2")!;
  const mine = "locks/" + "1".repeat(64);
  const theirs = "locks/" + "2".repeat(64);
  const ro = "needs role append-only or full; this token is read-only";

  equal(
    await refusal(store.put("r", "config", lock(false), { create: true, access: reader })),
    `403 Repository "r": creating a repository: ${ro}`,
  );
  await store.put("r", "config", lock(false), { create: true, access: full });
  equal(
    await refusal(store.put("r", mine, lock(false), { create: true, access: reader })),
    "allowed",
  );
  equal(
    await refusal(store.put("r", mine, lock(false), { create: false, access: reader })),
    "allowed",
  );
  equal(
    await refusal(store.put("r", theirs, lock(false), { create: true, access: other })),
    "allowed",
  );
  equal(
    await refusal(store.put("r", theirs, lock(false), { create: false, access: reader })),
    `403 Repository "r": another client's lock "${theirs}" cannot be replaced: ${ro}`,
  );
  equal(
    await refusal(store.delete("r", theirs, { access: reader })),
    `403 Repository "r": another client's lock "${theirs}" cannot be deleted: ${ro}`,
  );
  equal(
    await refusal(
      store.put("r", "locks/" + "3".repeat(64), lock(true), { create: true, access: reader }),
    ),
    `403 Repository "r": an exclusive lock "locks/${"3".repeat(64)}": ${ro}`,
  );
  equal(
    await refusal(store.put("r", "locks/commit", lock(false), { create: true, access: reader })),
    `403 Repository "r": "locks/commit" cannot be written: ${ro}`,
  );
  equal(
    await refusal(store.put("r", "archives/x", lock(false), { create: true, access: reader })),
    `403 Repository "r": "archives/x" cannot be written: ${ro}`,
  );
  equal(
    await refusal(store.delete("r", "archives/x", { access: reader })),
    `403 Repository "r": "archives/x" cannot be deleted: ${ro}`,
  );
  equal(await refusal(store.delete("r", mine, { access: reader })), "allowed");
  equal(await backend.size(`r/${mine}`), null);
  // its record is gone with it: the id cannot be taken over by another reader's refresh
  equal(
    await refusal(store.put("r", mine, lock(false), { create: false, access: other })),
    `403 Repository "r": another client's lock "${mine}" cannot be replaced: ${ro}`,
  );
  // a full token removes any lock (break-lock); the sweep forgets owners of vanished locks
  await store.delete("r", theirs, { access: full });
  await store.put("r", mine, lock(false), { create: true, access: reader });
  await backend.delete(`r/${mine}`);
  await store.sweepLocks(3_600_000);
  let records = 0;
  for await (const _ of backend.list(".vger-server/lock-owners/")) records++;
  equal(records, 0);
});
