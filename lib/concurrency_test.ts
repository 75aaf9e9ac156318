import { deepStrictEqual, equal, rejects, throws } from "node:assert/strict";
import { ByteBudget, InOrder, Limiter, Signal } from "./concurrency.ts";

/** A promise with its resolve and reject. */
function deferred<T = void>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Lets every pending microtask and timer-free continuation run. */
const tick = () => new Promise<void>((r) => setTimeout(r, 0));

Deno.test("limiter never runs more than its limit at once", async () => {
  const limiter = new Limiter(3);
  let running = 0;
  let peak = 0;
  const items = Array.from({ length: 40 }, (_, i) => i);
  await limiter.forEach(items, async (i) => {
    running++;
    peak = Math.max(peak, running);
    await new Promise((r) => setTimeout(r, i % 3));
    running--;
  });
  deepStrictEqual(peak, 3);
  deepStrictEqual(running, 0);
  deepStrictEqual(limiter.active, 0);
});

Deno.test("limiter starts tasks and hands out slots in the order asked", async () => {
  const limiter = new Limiter(1);
  const started: number[] = [];
  const gates = Array.from({ length: 5 }, () => deferred());
  const spawns = gates.map((g, i) =>
    limiter.spawn(async () => {
      started.push(i);
      await g.promise;
    })
  );
  await tick();
  deepStrictEqual(started, [0]);
  for (const g of gates) {
    g.resolve();
    await tick();
  }
  await Promise.all(spawns);
  await limiter.drain();
  deepStrictEqual(started, [0, 1, 2, 3, 4]);
});

Deno.test("limiter run returns the result and frees the slot on failure", async () => {
  const limiter = new Limiter(1);
  deepStrictEqual(await limiter.run(() => Promise.resolve(7)), 7);
  await rejects(() => limiter.run(() => Promise.reject(new Error("boom"))), /boom/);
  deepStrictEqual(limiter.active, 0);
  deepStrictEqual(limiter.failed, false); // run's failure goes to its caller only
  deepStrictEqual(await limiter.run(() => Promise.resolve(8)), 8);
});

Deno.test("limiter propagates the first failure of a spawned task", async () => {
  const limiter = new Limiter(2);
  const gate = deferred();
  await limiter.spawn(() => Promise.reject(new Error("first")));
  await limiter.spawn(async () => {
    await gate.promise;
    throw new Error("second");
  });
  await tick();
  deepStrictEqual(limiter.failed, true);
  await rejects(() => limiter.spawn(() => Promise.resolve()), /first/);
  await rejects(() => limiter.ready(), /first/);
  gate.resolve();
  await rejects(() => limiter.drain(), /first/);
  deepStrictEqual(limiter.active, 0);
});

Deno.test("limiter wakes a producer waiting for a slot with the failure", async () => {
  const limiter = new Limiter(1);
  const gate = deferred();
  await limiter.spawn(async () => {
    await gate.promise;
    throw new Error("upload failed");
  });
  const waiting = limiter.spawn(() => Promise.resolve());
  gate.resolve();
  await rejects(() => waiting, /upload failed/);
  deepStrictEqual(limiter.active, 0);
});

Deno.test("limiter forEach stops at the first failure and waits for the running tasks", async () => {
  const limiter = new Limiter(2);
  const started: number[] = [];
  let finished = 0;
  await rejects(
    () =>
      limiter.forEach([0, 1, 2, 3, 4, 5], async (i) => {
        started.push(i);
        await tick();
        finished++;
        if (i === 1) throw new Error("item 1");
      }),
    /item 1/,
  );
  deepStrictEqual(finished, started.length); // nothing left running
  deepStrictEqual(started.length < 6, true);
  deepStrictEqual(limiter.active, 0);
});

Deno.test("limiter ready waits for a free slot without taking it", async () => {
  const limiter = new Limiter(2);
  const a = deferred();
  await limiter.spawn(() => a.promise);
  await limiter.ready(); // one slot free
  const b = deferred();
  await limiter.spawn(() => b.promise);
  let ready = false;
  const r = limiter.ready().then(() => ready = true);
  await tick();
  deepStrictEqual(ready, false);
  a.resolve();
  await r;
  deepStrictEqual(ready, true);
  b.resolve();
  await limiter.drain();
});

Deno.test("an unlimited limiter runs every task at once and still keeps the first failure", async () => {
  const limiter = new Limiter(Infinity);
  const gate = deferred();
  for (let i = 0; i < 100; i++) await limiter.spawn(() => gate.promise);
  deepStrictEqual(limiter.active, 100);
  await limiter.spawn(() => Promise.reject(new Error("task failed")));
  gate.resolve();
  await rejects(() => limiter.drain(), /task failed/);
  deepStrictEqual(limiter.active, 0);
});

Deno.test("limiter refuses a limit that is not a positive integer", () => {
  throws(() => new Limiter(0), RangeError);
  throws(() => new Limiter(1.5), RangeError);
  throws(() => new Limiter(NaN), RangeError);
  throws(() => new Limiter(-Infinity), RangeError);
});

Deno.test("byte budget holds at most its limit and serves waiters in order", async () => {
  const budget = new ByteBudget(100);
  await budget.reserve(60);
  await budget.reserve(40);
  deepStrictEqual(budget.used, 100);
  const order: string[] = [];
  const a = budget.reserve(30).then(() => order.push("a"));
  const b = budget.reserve(10).then(() => order.push("b")); // fits after a, never before it
  await tick();
  deepStrictEqual(order, []);
  budget.release(20);
  await tick();
  deepStrictEqual(order, []); // 80 + 30 > 100
  budget.release(40);
  await Promise.all([a, b]);
  deepStrictEqual(order, ["a", "b"]);
  deepStrictEqual(budget.used, 80);
  deepStrictEqual(budget.fits(20), true);
  deepStrictEqual(budget.fits(21), false);
  deepStrictEqual(budget.tryReserve(21), false);
  deepStrictEqual(budget.tryReserve(20), true);
  deepStrictEqual(budget.used, 100);
});

Deno.test("byte budget lets a reservation larger than the budget through when empty", async () => {
  const budget = new ByteBudget(10);
  await budget.reserve(1000); // alone: no deadlock
  deepStrictEqual(budget.used, 1000);
  let next = false;
  const p = budget.reserve(1).then(() => next = true);
  await tick();
  deepStrictEqual(next, false);
  budget.release(1000);
  await p;
  deepStrictEqual(budget.used, 1);
  const big = budget.reserve(50); // waits for the 1 byte, then goes alone
  budget.release(1);
  await big;
  deepStrictEqual(budget.used, 50);
});

Deno.test("byte budget abort fails waiting and later reservations", async () => {
  const budget = new ByteBudget(10);
  await budget.reserve(10);
  const waiting = budget.reserve(5);
  budget.abort(new Error("writer failed"));
  await rejects(() => waiting, /writer failed/);
  await rejects(() => budget.reserve(1), /writer failed/);
  throws(() => new ByteBudget(0), RangeError);
});

Deno.test("signal wakes every waiter at the next notify, and none at an earlier one", async () => {
  const signal = new Signal();
  signal.notify(); // nobody waits: nothing is remembered
  const woken: number[] = [];
  const a = signal.wait().then(() => woken.push(1));
  const b = signal.wait().then(() => woken.push(2));
  await tick();
  deepStrictEqual(woken, []);
  signal.notify();
  await Promise.all([a, b]);
  deepStrictEqual(woken, [1, 2]);
  // a waiter that comes after a notify waits for the next one
  let late = false;
  const c = signal.wait().then(() => late = true);
  await tick();
  deepStrictEqual(late, false);
  signal.notify();
  await c;
  deepStrictEqual(late, true);
});

Deno.test("in order: steps run in the order added, each after its gate, whatever order the gates settle in", async () => {
  const order = new InOrder();
  const ran: string[] = [];
  const gates = [0, 1, 2].map(() => deferred());
  order.add(() => void ran.push("a"), gates[0].promise);
  order.add(() => void ran.push("b")); // no gate, but behind a
  order.add(() => void ran.push("c"), gates[1].promise);
  order.add(() => void ran.push("d"), gates[2].promise);
  equal(order.waiting, 4);
  gates[2].resolve();
  gates[1].resolve();
  await tick();
  equal(ran.join(), ""); // c and d may not pass a
  gates[0].resolve();
  await order.settle();
  deepStrictEqual(ran, ["a", "b", "c", "d"]);
  equal(order.waiting, 0);
  // nothing waits: a step without a gate runs at once, its promise handed back
  const stored = Promise.resolve();
  equal(order.add(() => stored), stored);
  order.add(() => void ran.push("e"));
  deepStrictEqual(ran, ["a", "b", "c", "d", "e"]);
});

Deno.test("in order: a step waits for the promise the one before it returned", async () => {
  const order = new InOrder();
  const ran: string[] = [];
  const slow = deferred();
  order.add(() => slow.promise.then(() => void ran.push("slow")), Promise.resolve());
  order.add(() => void ran.push("next"));
  await tick();
  equal(ran.join(), "");
  slow.resolve();
  await order.settle();
  deepStrictEqual(ran, ["slow", "next"]);
});

Deno.test("in order: the first failure skips the steps after it and is thrown by add, below and settle", async () => {
  for (const failing of ["gate", "step"]) {
    const order = new InOrder();
    const ran: string[] = [];
    const boom = new Error(`${failing} failed`);
    order.add(() => void ran.push("before"), Promise.resolve());
    if (failing === "gate") order.add(() => void ran.push("gated"), Promise.reject(boom));
    else order.add(() => Promise.reject(boom), Promise.resolve());
    order.add(() => void ran.push("after"));
    await rejects(order.settle(), boom);
    deepStrictEqual(ran, ["before"]);
    throws(() => order.add(() => void ran.push("later")), boom);
    await rejects(order.below(5), boom);
    deepStrictEqual(ran, ["before"]);
  }
});

Deno.test("in order: below waits until at most n steps wait", async () => {
  const order = new InOrder();
  const gates = [0, 1, 2].map(() => deferred());
  for (const gate of gates) order.add(() => {}, gate.promise);
  let woke = false;
  const below = order.below(1).then(() => woke = true);
  gates[0].resolve();
  await tick();
  equal(woke, false); // two still wait
  gates[1].resolve();
  await below;
  equal(order.waiting, 1);
  gates[2].resolve();
  await order.settle();
});

Deno.test("in order: many steps in one run keep their order while the run drops the ones done", async () => {
  const order = new InOrder();
  const ran: number[] = [];
  const first = deferred();
  for (let i = 0; i < 5000; i++) {
    order.add(
      () => void ran.push(i),
      i === 0 ? first.promise : i % 7 === 0 ? Promise.resolve() : undefined,
    );
  }
  first.resolve();
  await order.below(2500);
  for (let i = 5000; i < 6000; i++) order.add(() => void ran.push(i));
  await order.settle();
  deepStrictEqual(ran, Array.from({ length: 6000 }, (_, i) => i));
});
