import { deepStrictEqual, ok } from "node:assert/strict";
import { atExit, runExitHooks } from "./exit_hooks.ts";

// One test: running the hooks marks the (test) process as exiting for good.
Deno.test("exit hooks run once each, survive a failing hook, are bounded in time, and run at once when late", async () => {
  const ran: string[] = [];
  atExit(() => ran.push("sync"));
  atExit(() => {
    throw new Error("boom");
  });
  atExit(async () => {
    await new Promise((r) => setTimeout(r, 10));
    ran.push("async");
  });
  const forget = atExit(() => ran.push("forgotten"));
  forget();
  let hung: ReturnType<typeof setTimeout> | undefined;
  atExit(() => new Promise((r) => hung = setTimeout(r, 60_000)));
  const started = performance.now();
  await runExitHooks({ timeoutMs: 200 });
  clearTimeout(hung);
  ok(performance.now() - started < 5_000, "a hanging hook held the exit");
  deepStrictEqual(ran, ["sync", "async"]);
  // the process is on its way out: a late hook runs at once, and nothing runs twice
  atExit(() => ran.push("late"));
  await runExitHooks();
  deepStrictEqual(ran, ["sync", "async", "late"]);
});
