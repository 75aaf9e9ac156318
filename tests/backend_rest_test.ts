/**
 * The backend conformance suite against a real vger-server process on 127.0.0.1
 * (tests/_server.ts), through `openBackend` as the CLI opens a `rest` repository (the REST
 * backend behind the retry decorator), with the token from the configuration.
 *
 * Each test gets a server of its own with a fresh data directory, and a repository created the
 * way `vger init` creates one (the `create` of its `config`). The suite's keys go under the
 * prefix `c/` of that repository: the suite stores random bytes under `packs/` and plays with
 * `config` and `locks/`, which the server treats by policy (pack names are hashes of their
 * bytes, locks expire); under `c/` they are plain objects, so the suite tests the transport,
 * and the CLI tests (tests/rest_cli_test.ts) the repository's own keys.
 *
 * @module
 */

import { deepStrictEqual, equal, ok, rejects } from "node:assert/strict";
import type {
  Backend,
  GetOptions,
  ObjectInfo,
  PutBody,
  StoragePolicy,
} from "../backends/backend.ts";
import { BackendDecorator } from "../backends/decorator.ts";
import { openBackend } from "../backends/mod.ts";
import { BackendError, ForbiddenError, IntegrityError, NotFoundError } from "../lib/errors.ts";
import { backendConformance } from "./backend_conformance.ts";
import { startServer, type TestServer } from "./_server.ts";

/** The keys of `inner` under `prefix`, as a backend of their own. */
class PrefixBackend extends BackendDecorator {
  readonly #prefix: string;
  constructor(inner: Backend, prefix: string) {
    super(inner);
    this.#prefix = prefix;
  }
  override async get(key: string, options?: GetOptions): Promise<Uint8Array | null> {
    try {
      return await this.inner.get(this.#prefix + key, options);
    } catch (err) {
      // the suite reads its own keys in the message of an object too large
      if (!(err instanceof IntegrityError)) throw err;
      throw new IntegrityError(err.message.replace(`"${this.#prefix}${key}"`, `"${key}"`));
    }
  }
  override getRange(key: string, offset: number, length: number): Promise<Uint8Array> {
    return this.inner.getRange(this.#prefix + key, offset, length);
  }
  override size(key: string): Promise<number | null> {
    return this.inner.size(this.#prefix + key);
  }
  override async *list(prefix: string): AsyncIterable<ObjectInfo> {
    for await (const info of this.inner.list(this.#prefix + prefix)) {
      yield { ...info, key: info.key.slice(this.#prefix.length) };
    }
  }
  override put(key: string, body: PutBody): Promise<void> {
    return this.inner.put(this.#prefix + key, body);
  }
  override create(key: string, body: PutBody): Promise<boolean> {
    return this.inner.create(this.#prefix + key, body);
  }
  override delete(key: string): Promise<void> {
    return this.inner.delete(this.#prefix + key);
  }
}

const bytes = (text: string) => new TextEncoder().encode(text);

/** A new repository `name` on `server`, opened as the CLI opens it, created as init does. */
async function newRepository(server: TestServer, name: string): Promise<Backend> {
  const backend = await openBackend({
    backend: "rest",
    path: `${server.url}/${name}`,
    rest: { token: server.token },
  });
  ok(await backend.create("config", bytes("a repository")));
  return backend;
}

backendConformance("rest", async () => {
  const server = await startServer("run");
  try {
    const backend = await newRepository(server, "conformance");
    return { backend: new PrefixBackend(backend, "c/"), cleanup: () => server.stop() };
  } catch (err) {
    await server.stop();
    throw err;
  }
});

Deno.test("rest backend: an unknown repository reads as empty and refuses writes with 'run vger init'; a wrong token is refused in words; the mode is learned", async () => {
  const server = await startServer("run");
  try {
    const url = `${server.url}/absent`;
    const noRepo = (err: unknown) =>
      err instanceof NotFoundError && err.message === `No repository at ${url}: run vger init`;
    const backend = await openBackend({
      backend: "rest",
      path: url,
      rest: { token: server.token },
    });
    try {
      equal(await backend.get("config"), null);
      equal(await backend.size("keys/repokey"), null);
      await rejects(backend.put("keys/repokey", bytes("k")), noRepo);
      await rejects(Array.fromAsync(backend.list("")), noRepo);
    } finally {
      await backend.close();
    }
    const fresh = await openBackend({ backend: "rest", path: url, rest: { token: server.token } });
    await rejects(fresh.policy!(), noRepo);
    await fresh.close();

    const repo = await newRepository(server, "laptop");
    deepStrictEqual(
      await repo.policy!(),
      { appendOnly: false, role: "full" } satisfies StoragePolicy,
    );
    await repo.close();

    const wrong = await openBackend({
      backend: "rest",
      path: `${server.url}/laptop`,
      rest: { token: "not-the-token" },
    });
    try {
      await rejects(wrong.get("config"), (err: unknown) => {
        ok(err instanceof BackendError, String(err));
        ok(/wrong or missing token \(HTTP 401/.test(err.message), err.message);
        ok(!err.message.includes("not-the-token") && !err.message.includes(server.token));
        return true;
      });
    } finally {
      await wrong.close();
    }
  } finally {
    await server.stop();
  }
});
Deno.test("rest backend: an append-only server declares its mode and refuses deletes and overwrites with its reason", async () => {
  const server = await startServer("run", { toml: "append_only = true\n" });
  try {
    const backend = await newRepository(server, "kept");
    try {
      deepStrictEqual(await backend.policy!(), { appendOnly: true, role: "full" });
      await backend.put("keys/repokey", bytes("key"));
      const refused = (err: unknown) => {
        ok(err instanceof ForbiddenError, String(err));
        ok(
          /^Cannot (delete|write) "keys\/repokey" in .*: refused by the server: .*append-only/.test(
            err.message,
          ),
          err.message,
        );
        return true;
      };
      await rejects(backend.delete("keys/repokey"), refused);
      await rejects(backend.put("keys/repokey", bytes("other")), refused);
      deepStrictEqual(await backend.get("keys/repokey"), bytes("key"));
      // locks may come and go
      ok(await backend.create("locks/l1", bytes("lock")));
      await backend.delete("locks/l1");
      equal(await backend.size("locks/l1"), null);
    } finally {
      await backend.close();
    }
  } finally {
    await server.stop();
  }
});
