/**
 * Commands on an append-only repository (vger-server's `append_only`), played by a decorator over
 * the memory backend that declares the mode and refuses what the server refuses (docs/SERVER.md,
 * "Append-only"): backups go on, again and again; every command that would delete or overwrite
 * refuses up front in one line, before anything is written (not even a lock).
 */

import { deepStrictEqual, equal, ok, rejects } from "node:assert/strict";
import type { Backend, PutBody, StoragePolicy } from "../backends/backend.ts";
import { BackendDecorator } from "../backends/decorator.ts";
import { MemoryBackend } from "../backends/memory.ts";
import {
  backupCommand,
  compactCommand,
  deleteCommand,
  extractCommand,
  listArchivesCommand,
  pruneCommand,
  repairCommand,
} from "./commands.ts";
import { ForbiddenError } from "./errors.ts";
import { keyChangePassphraseCommand, keyExportCommand, keyImportCommand } from "./key_commands.ts";
import { initRepository } from "./repository.ts";
import { pseudoRandomBytes, withTempDir } from "../tests/_helpers.ts";

const FAST = { iterations: 1, memoryKiB: 1024, parallelism: 1 };
const PASS = "pass";

/** What vger-server lets an append-only token replace, and delete. */
const REPLACEABLE = /^(manifest|index|locks\/.*)$/;
const DELETABLE = /^locks\//;

/** A backend in vger-server's append-only mode (or not), counting the writes it lets through. */
class AppendOnlyBackend extends BackendDecorator {
  writes = 0;
  asked = 0;
  readonly appendOnly: boolean;
  constructor(inner: Backend, appendOnly: boolean) {
    super(inner);
    this.appendOnly = appendOnly;
    Object.defineProperty(this, "policy", {
      value: (): Promise<StoragePolicy> => {
        this.asked++;
        return Promise.resolve({ appendOnly: this.appendOnly });
      },
    });
  }
  override async put(key: string, body: PutBody): Promise<void> {
    if (this.appendOnly && !REPLACEABLE.test(key) && (await this.inner.size(key)) !== null) {
      throw new ForbiddenError(`Cannot write "${key}": refused by the server: append-only`);
    }
    this.writes++;
    return await this.inner.put(key, body);
  }
  override async create(key: string, body: PutBody): Promise<boolean> {
    const created = await this.inner.create(key, body);
    if (created) this.writes++;
    return created;
  }
  override async delete(key: string): Promise<void> {
    if (this.appendOnly && !DELETABLE.test(key)) {
      throw new ForbiddenError(`Cannot delete "${key}": refused by the server: append-only`);
    }
    this.writes++;
    return await this.inner.delete(key);
  }
}

const isAppendOnlyRefusal = (err: unknown) =>
  err instanceof ForbiddenError && !err.message.includes("\n") &&
  /^Cannot .+: repository "memory:.*" is append-only \(its server refuses deletes and overwrites\)$/
    .test(err.message);

Deno.test("on an append-only repository backups go on, and delete, prune, compact, check --repair and key changes refuse up front, writing nothing", async () => {
  await withTempDir(async (dir) => {
    const src = `${dir}/src`;
    await Deno.mkdir(src);
    const memory = new MemoryBackend();
    const backend = new AppendOnlyBackend(memory, true);
    await initRepository(backend, { encryption: "aes256gcm", passphrase: PASS, kdf: FAST });
    for (const name of ["one", "two", "three"]) {
      await Deno.writeFile(`${src}/${name}.bin`, pseudoRandomBytes(50_000, name.length));
      await backupCommand(backend, {
        name,
        sources: [src],
        compression: { algorithm: "lz4" },
        passphrase: PASS,
      });
    }
    const names = (await listArchivesCommand(backend, { passphrase: PASS })).map((a) => a.name);
    deepStrictEqual(names.sort(), ["one", "three", "two"]);
    const exported = await keyExportCommand(backend, { passphrase: PASS });

    const before = new Map<string, number>();
    for await (const o of memory.list("")) before.set(o.key, o.size);
    const writes = backend.writes;
    const refusals: [string, () => Promise<unknown>][] = [
      ["delete", () => deleteCommand(backend, { names: ["one"], passphrase: PASS })],
      [
        "prune",
        () => pruneCommand(backend, { policy: { keepLast: 1 }, passphrase: PASS }),
      ],
      ["compact", () => compactCommand(backend, { passphrase: PASS })],
      [
        "check --repair",
        () => repairCommand(backend, { passphrase: PASS, confirm: () => Promise.resolve(true) }),
      ],
      [
        "key change-passphrase",
        () => keyChangePassphraseCommand(backend, { passphrase: PASS, newPassphrase: "new" }),
      ],
      [
        "key import",
        () => keyImportCommand(backend, { keyFile: exported, passphrase: PASS, force: true }),
      ],
    ];
    for (const [command, run] of refusals) {
      const asked = backend.asked;
      await rejects(run(), isAppendOnlyRefusal, command);
      ok(backend.asked > asked, `${command} asked the policy`);
      equal(backend.writes, writes, `${command} wrote nothing, not even a lock`);
    }
    const after = new Map<string, number>();
    for await (const o of memory.list("")) after.set(o.key, o.size);
    deepStrictEqual(after, before);

    // what writes nothing still runs: dry runs, and reading
    const dry = await deleteCommand(backend, { names: ["one"], passphrase: PASS, dryRun: true });
    deepStrictEqual(dry.map((a) => a.name), ["one"]);
    const pruned = await pruneCommand(backend, {
      policy: { keepLast: 1 },
      passphrase: PASS,
      dryRun: true,
    });
    equal(pruned.decisions.filter((d) => !d.keep).length, 2);
    const out = `${dir}/out`;
    await extractCommand(backend, { archive: "one", dest: out, passphrase: PASS });
    deepStrictEqual(
      await Deno.readFile(`${out}${src}/one.bin`),
      pseudoRandomBytes(50_000, 3),
    );
  });
});

Deno.test("the same commands run on a repository whose storage declares it is not append-only", async () => {
  await withTempDir(async (dir) => {
    const src = `${dir}/src`;
    await Deno.mkdir(src);
    await Deno.writeFile(`${src}/f`, pseudoRandomBytes(10_000, 1));
    const backend = new AppendOnlyBackend(new MemoryBackend(), false);
    await initRepository(backend, { encryption: "aes256gcm", passphrase: PASS, kdf: FAST });
    await backupCommand(backend, {
      name: "one",
      sources: [src],
      compression: { algorithm: "lz4" },
      passphrase: PASS,
    });
    await backupCommand(backend, {
      name: "two",
      sources: [src],
      compression: { algorithm: "lz4" },
      passphrase: PASS,
    });
    const deleted = await deleteCommand(backend, { names: ["one"], passphrase: PASS });
    deepStrictEqual(deleted.map((a) => a.name), ["one"]);
    await compactCommand(backend, { passphrase: PASS });
    ok(backend.asked >= 2);
    const names = (await listArchivesCommand(backend, { passphrase: PASS })).map((a) => a.name);
    deepStrictEqual(names, ["two"]);
  });
});
