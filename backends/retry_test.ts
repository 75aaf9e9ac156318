import { deepStrictEqual, equal, ok, rejects } from "node:assert/strict";
import { BackendError, NotFoundError, TransientError } from "../lib/errors.ts";
import type {
  Backend,
  ComposePlan,
  GetOptions,
  ObjectInfo,
  PutBody,
  StreamBody,
} from "./backend.ts";
import { BackendDecorator } from "./decorator.ts";
import { MemoryBackend } from "./memory.ts";
import { RetryBackend, type RetryOptions } from "./retry.ts";

const enc = (s: string) => new TextEncoder().encode(s);

/** What a faulty request does: fail before reaching the inner backend, or after it (landed). */
interface Fault {
  error: Error;
  /** The request reaches the inner backend and only its answer is lost. */
  landed?: boolean;
  /** Called before the request fails (a test advances its clock: a slow failure). */
  before?: () => void;
  /** Before failing, another writer stores these bytes under the key. */
  theirs?: Uint8Array;
}

/** Fails the next requests of each operation as planned, counting every request. */
class FaultyBackend extends BackendDecorator {
  readonly faults = new Map<string, Fault[]>();
  readonly calls = new Map<string, number>();

  plan(op: string, ...faults: Fault[]): void {
    this.faults.set(op, [...(this.faults.get(op) ?? []), ...faults]);
  }

  count(op: string): number {
    return this.calls.get(op) ?? 0;
  }

  async #call<T>(op: string, key: string, request: () => Promise<T>): Promise<T> {
    this.calls.set(op, this.count(op) + 1);
    const fault = this.faults.get(op)?.shift();
    if (fault === undefined) return await request();
    fault.before?.();
    if (fault.theirs) await this.inner.put(key, fault.theirs);
    if (fault.landed) await request();
    throw fault.error;
  }

  override get(key: string, options?: GetOptions): Promise<Uint8Array | null> {
    return this.#call("get", key, () => super.get(key, options));
  }
  override getRange(key: string, offset: number, length: number): Promise<Uint8Array> {
    return this.#call("getRange", key, () => super.getRange(key, offset, length));
  }
  override size(key: string): Promise<number | null> {
    return this.#call("size", key, () => super.size(key));
  }
  override put(key: string, body: PutBody): Promise<void> {
    return this.#call("put", key, () => super.put(key, body));
  }
  override create(key: string, body: PutBody): Promise<boolean> {
    return this.#call("create", key, () => super.create(key, body));
  }
  override delete(key: string): Promise<void> {
    return this.#call("delete", key, () => super.delete(key));
  }
  /** Yields `failAfter` objects, then fails, when a list fault is planned. */
  override async *list(prefix: string): AsyncIterable<ObjectInfo> {
    this.calls.set("list", this.count("list") + 1);
    const fault = this.faults.get("list")?.shift();
    let n = 0;
    for await (const info of super.list(prefix)) {
      if (fault && n === 2) throw fault.error;
      n++;
      yield info;
    }
  }
}

/** A fake clock: sleeping advances it at once and is recorded. */
function fakeTime(random = 0.5): Required<Pick<RetryOptions, "now" | "sleep" | "random">> & {
  sleeps: number[];
  advance: (ms: number) => void;
} {
  let t = 1_000_000;
  const sleeps: number[] = [];
  return {
    sleeps,
    advance: (ms) => t += ms,
    now: () => t,
    sleep: (ms) => {
      sleeps.push(ms);
      t += ms;
      return Promise.resolve();
    },
    random: () => random,
  };
}

function setup(options: RetryOptions = {}, random?: number) {
  const memory = new MemoryBackend("memory:test");
  const faulty = new FaultyBackend(memory);
  const time = fakeTime(random);
  const backend: Backend = new RetryBackend(faulty, { ...time, ...options });
  return { memory, faulty, backend, sleeps: time.sleeps };
}

const flaky = (what = "S3 error (SlowDown, HTTP 503)") => ({
  error: new TransientError(`Cannot read "x": ${what}`),
});

Deno.test("retry sends a transiently failing request again, with growing jittered waits, until it succeeds", async () => {
  const { memory, faulty, backend, sleeps } = setup();
  await memory.put("packs/ab/1", enc("hello"));
  faulty.plan("get", flaky(), flaky("S3 error (InternalError, HTTP 500)"));
  deepStrictEqual(await backend.get("packs/ab/1"), enc("hello"));
  equal(faulty.count("get"), 3);
  // full jitter with random() = 0.5: half of 200 ms, then half of 400 ms
  deepStrictEqual(sleeps, [100, 200]);

  for (const op of ["getRange", "size", "put", "delete"]) faulty.plan(op, flaky(), flaky());
  deepStrictEqual(await backend.getRange("packs/ab/1", 1, 3), enc("ell"));
  equal(await backend.size("packs/ab/1"), 5);
  await backend.put("index", enc("i"));
  deepStrictEqual(await memory.get("index"), enc("i"));
  await backend.delete("index");
  equal(await memory.get("index"), null);
  for (const op of ["getRange", "size", "put", "delete"]) equal(faulty.count(op), 3, op);
});

Deno.test("retry passes a permanent error through at once, without waiting", async () => {
  const { memory, faulty, backend, sleeps } = setup();
  const denied = new BackendError('Cannot read "config": access denied');
  faulty.plan("get", { error: denied });
  await rejects(backend.get("config"), (err) => err === denied);
  await rejects(backend.getRange("config", 0, 1), NotFoundError);
  equal(faulty.count("get"), 1);
  equal(faulty.count("getRange"), 1);
  deepStrictEqual(sleeps, []);
  equal(await memory.size("config"), null);
});

Deno.test("retry gives up after maxAttempts with an error naming the key and the attempts", async () => {
  const { faulty, backend, sleeps } = setup({ maxAttempts: 4 });
  faulty.plan("size", ...Array.from({ length: 10 }, () => flaky()));
  await rejects(backend.size("locks/abc"), (err: unknown) => {
    ok(err instanceof BackendError);
    ok(!(err instanceof TransientError), "an outer retry must not retry it again");
    ok(err.cause instanceof TransientError);
    equal(
      err.message,
      'Cannot stat "locks/abc" in memory:test: Cannot read "x": S3 error (SlowDown, HTTP 503) ' +
        "(gave up after 4 attempts in 0.7 s)",
    );
    return true;
  });
  equal(faulty.count("size"), 4);
  deepStrictEqual(sleeps, [100, 200, 400]);
});

Deno.test("retry gives up before a wait would pass maxTotalMs, and caps each wait", async () => {
  const { faulty, backend, sleeps } = setup(
    { maxAttempts: 100, baseDelayMs: 1000, maxDelayMs: 3000, maxTotalMs: 10_000 },
    0.999,
  );
  faulty.plan("get", ...Array.from({ length: 100 }, () => flaky()));
  await rejects(backend.get("index"), /gave up after 5 attempts in 9\.0 s/);
  // bounds 1000, 2000, 3000 (capped), 3000: the next 2997 ms would end past 10 s
  deepStrictEqual(sleeps, [999, 1998, 2997, 2997]);
  ok(sleeps.reduce((a, b) => a + b) < 10_000);
  equal(faulty.count("get"), 5);
});

Deno.test("the defaults: 10 attempts within 65 s for quick failures, timed-out requests sent again within 300 s", async () => {
  const memory = new MemoryBackend("memory:test");
  const faulty = new FaultyBackend(memory);
  const time = fakeTime(0.999);
  const backend = new RetryBackend(faulty, time);
  faulty.plan("get", ...Array.from({ length: 20 }, () => flaky()));
  await rejects(backend.get("index"), /gave up after 10 attempts in 65\.3 s/);
  equal(faulty.count("get"), 10);
  equal(time.sleeps.at(-1), 19980);

  // each attempt times out after the S3 backend's 120 s: the third starts at 240.6 s, within
  // the 300 s in which a new attempt may start, and none starts after it
  time.sleeps.length = 0;
  faulty.faults.clear();
  const timeout = () => ({
    error: new TransientError('Cannot read "index": did not answer in time'),
    before: () => time.advance(120_000),
  });
  faulty.plan("get", timeout(), timeout(), timeout());
  await rejects(backend.get("index"), /gave up after 3 attempts in 360\.6 s/);
  deepStrictEqual(time.sleeps, [199, 399]);
  faulty.faults.clear();
  faulty.plan("get", timeout());
  await memory.put("index", enc("i"));
  deepStrictEqual(await backend.get("index"), enc("i"));
});

Deno.test("retry of a create whose earlier attempt landed: our own bytes are success", async () => {
  const { memory, faulty, backend } = setup();
  faulty.plan("create", { ...flaky(), landed: true });
  equal(await backend.create("locks/ours", enc("lock of process 1")), true);
  equal(faulty.count("create"), 2);
  deepStrictEqual(await memory.get("locks/ours"), enc("lock of process 1"));

  // the same with a body given in parts and as a stream
  const parts = [enc("lock "), enc("of "), enc("process 2")];
  faulty.plan("create", { ...flaky(), landed: true });
  equal(await backend.create("locks/parts", parts), true);
  const stream: StreamBody = {
    size: 9,
    async *pieces() {
      yield enc("pack");
      yield enc("bytes");
    },
  };
  faulty.plan("create", { ...flaky(), landed: true });
  equal(await backend.create("packs/cd/1", stream), true);
});

Deno.test("retry of a create that finds someone else's bytes answers exists (false)", async () => {
  const { memory, faulty, backend } = setup();
  faulty.plan("create", { ...flaky(), theirs: enc("lock of process 2") });
  equal(await backend.create("locks/x", enc("lock of process 1")), false);
  deepStrictEqual(await memory.get("locks/x"), enc("lock of process 2"));
  // longer and shorter bytes than ours are not ours either
  faulty.plan("create", { ...flaky(), theirs: enc("lock of process 1, longer") });
  equal(await backend.create("locks/y", enc("lock of process 1")), false);
  faulty.plan("create", { ...flaky(), theirs: enc("lock") });
  equal(await backend.create("locks/z", enc("lock of process 1")), false);
});

Deno.test("a create that fails nothing answers exists without reading the object", async () => {
  const { memory, faulty, backend } = setup();
  await memory.put("locks/x", enc("same"));
  equal(await backend.create("locks/x", enc("same")), false);
  equal(faulty.count("get"), 0);
  equal(await backend.create("locks/new", enc("n")), true);
});

Deno.test("retry of a list restarts from the start and yields each key once", async () => {
  const { memory, faulty, backend } = setup();
  for (const k of ["a", "b", "c", "d"]) await memory.put(`packs/${k}`, enc(k));
  faulty.plan("list", flaky());
  const keys: string[] = [];
  for await (const info of backend.list("packs/")) keys.push(info.key);
  deepStrictEqual(keys.toSorted(), ["packs/a", "packs/b", "packs/c", "packs/d"]);
  equal(faulty.count("list"), 2);

  faulty.plan("list", ...Array.from({ length: 10 }, () => flaky()));
  const limited = new RetryBackend(faulty, { ...fakeTime(), maxAttempts: 3 });
  await rejects(async () => {
    for await (const _ of limited.list("packs/")) { /* drain */ }
  }, /Cannot list "packs\/\*" in memory:test: .*\(gave up after 3 attempts in 0\.3 s\)/);
});

Deno.test("the retry decorator passes on location, capabilities and optional operations", () => {
  const memory = new MemoryBackend("memory:loc");
  const backend = new RetryBackend(memory);
  equal(backend.location, "memory:loc");
  equal(backend.capabilities, memory.capabilities);
  ok(!("removeLeftovers" in backend));
});

Deno.test("the create probe runs through the retries: creates that landed and failed still tell", async () => {
  const memory = Object.assign(new MemoryBackend("memory:probe"), {
    probeCreate: () => Promise.resolve(false), // never asked: the decorator probes itself
  });
  const faulty = new FaultyBackend(memory);
  const backend: Backend = new RetryBackend(faulty, fakeTime());
  faulty.plan("create", { ...flaky(), landed: true }, { ...flaky(), landed: true });
  faulty.plan("delete", flaky());
  equal(await backend.probeCreate?.(), true);
  equal(faulty.count("create"), 4);
  equal(faulty.count("delete"), 2);
  deepStrictEqual(await Array.fromAsync(memory.list("")), []);
});

Deno.test("retry sends a compose again after a transient failure, one that landed too: the same bytes under the same key; a decorator has compose exactly when its inner backend has", async () => {
  const memory = new MemoryBackend("memory:test");
  await memory.put("src", enc("hello world"));
  let calls = 0;
  const inner = new BackendDecorator(memory);
  ok("compose" in inner);
  Object.defineProperty(inner, "compose", {
    value: async (plan: ComposePlan) => {
      calls++;
      const landed = await memory.compose(plan);
      if (calls < 3) throw new TransientError("Cannot compose: connection reset");
      return landed;
    },
  });
  const backend = new RetryBackend(inner, fakeTime());
  const r = await backend.compose!({
    prefix: enc("<"),
    ranges: [{ key: "src", offset: 6, length: 5 }],
    suffix: enc(">"),
    name: (sha) => `packs/${sha}`,
  });
  equal(calls, 3);
  deepStrictEqual(await memory.get(r.key), enc("<world>"));
  deepStrictEqual((await Array.fromAsync(memory.list("packs/"))).length, 1);

  const without = new BackendDecorator(memory);
  Object.defineProperty(without, "compose", { value: undefined });
  ok(!("compose" in new RetryBackend(without)));
  ok(!("compose" in new BackendDecorator(without)));
});
