import { deepStrictEqual, equal, ok, rejects } from "node:assert/strict";
import type { BackendCapabilities, GetOptions } from "../backends/backend.ts";
import { BackendDecorator } from "../backends/decorator.ts";
import { MemoryBackend } from "../backends/memory.ts";
import { checkCommand, deleteCommand, initCommand, listArchivesCommand } from "./commands.ts";
import { BackendError, NotFoundError } from "./errors.ts";

const FAST = { iterations: 1, memoryKiB: 1024, parallelism: 1 };

/** A memory backend that declares a create probe, answering `honoured`, and counts its calls. */
class ProbedBackend extends BackendDecorator {
  probes = 0;
  constructor(public honoured: boolean) {
    super(new MemoryBackend("memory:probed"));
    Object.defineProperty(this, "probeCreate", {
      value: () => {
        this.probes++;
        return Promise.resolve(this.honoured);
      },
    });
  }
  override get capabilities(): BackendCapabilities {
    return { connections: 1, createProbeScope: "s3://b at http://127.0.0.1:1" };
  }
}

Deno.test("init and write commands probe conditional creates; read commands do not", async () => {
  const backend = new ProbedBackend(true);
  const passphrase = "pw";
  await initCommand(backend, { encryption: "aes256gcm", passphrase, kdf: FAST });
  equal(backend.probes, 1);
  await listArchivesCommand(backend, { passphrase });
  await checkCommand(backend, { passphrase });
  equal(backend.probes, 1);
  deepStrictEqual(await deleteCommand(backend, { passphrase, names: [] }), []);
  equal(backend.probes, 2);

  // a server found not to honour them: the write command stops before its lock
  backend.honoured = false;
  await rejects(deleteCommand(backend, { passphrase, names: [] }), BackendError);
  deepStrictEqual(await Array.fromAsync(backend.list("locks/")), []);
  await checkCommand(backend, { passphrase });
});

Deno.test("init on a server that ignores If-None-Match writes nothing", async () => {
  const backend = new ProbedBackend(false);
  await rejects(
    initCommand(backend, { encryption: "aes256gcm", passphrase: "pw", kdf: FAST }),
    /does not honour conditional writes \(If-None-Match\); vger needs them for its locks/,
  );
  deepStrictEqual(await Array.fromAsync(backend.list("")), []);
});

Deno.test("a command that fails under the lock reports its own failure, not that of releasing the lock", async () => {
  // storage that went away once the lock was taken: the release of the lock fails too
  class Failing extends BackendDecorator {
    broken = false;
    override delete(key: string): Promise<void> {
      if (this.broken) return Promise.reject(new BackendError(`Cannot delete "${key}": gone`));
      return super.delete(key);
    }
  }
  const memory = new MemoryBackend();
  await initCommand(memory, { encryption: "none" });
  const backend = new Failing(memory);
  await rejects(
    deleteCommand(backend, { names: ["none-such"], onLock: () => void (backend.broken = true) }),
    (err: unknown) => {
      ok(backend.broken, "the lock was taken");
      ok(err instanceof NotFoundError && /"none-such" not found/.test(err.message), String(err));
      return true;
    },
  );
});

/** A memory backend that records the key of every get, in order. */
class RecordingBackend extends BackendDecorator {
  gets: string[] = [];
  constructor() {
    super(new MemoryBackend("memory:recording"));
  }
  override get(key: string, options?: GetOptions): Promise<Uint8Array | null> {
    this.gets.push(key);
    return super.get(key, options);
  }
}

Deno.test("open fetches the manifest while the key is derived, and list lists the one the check read", async () => {
  const backend = new RecordingBackend();
  const passphrase = "pw";
  const dir = await Deno.makeTempDir();
  try {
    const knownRepos = { dir };
    await initCommand(backend, { encryption: "aes256gcm", passphrase, kdf: FAST, knownRepos });
    backend.gets = [];
    let requestedBeforeKdf: string[] = [];
    const ask = () => {
      requestedBeforeKdf = [...backend.gets];
      return Promise.resolve(passphrase);
    };
    deepStrictEqual(await listArchivesCommand(backend, { passphrase: ask, knownRepos }), []);
    // the three requests of list, all made before the passphrase was asked for
    deepStrictEqual(requestedBeforeKdf.sort(), ["config", "keys/repokey", "manifest"]);
    deepStrictEqual(backend.gets.sort(), ["config", "keys/repokey", "manifest"]);

    // a missing manifest is still the command's error, after the open succeeded
    await backend.delete("manifest");
    await rejects(
      listArchivesCommand(backend, { passphrase, knownRepos }),
      (err: Error) => err instanceof NotFoundError && /Manifest not found/.test(err.message),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
