/**
 * Key management on real repositories (LocalBackend in a temp dir, made by initRepository and
 * filled by a real backup): changing the passphrase, exporting the key file and importing it to
 * restore a lost or damaged `keys/repokey`. Each test proves the outcome by restoring the backed
 * up files byte for byte, or by showing that nothing was written.
 */

import { deepStrictEqual, equal, ok, rejects } from "node:assert/strict";
import type { Backend, PutBody } from "../backends/backend.ts";
import { BackendDecorator } from "../backends/decorator.ts";
import { LocalBackend } from "../backends/local.ts";
import { backupCommand, extractCommand } from "./commands.ts";
import { keyChangePassphraseCommand, keyExportCommand, keyImportCommand } from "./key_commands.ts";
import {
  AlreadyExistsError,
  DecryptionError,
  IntegrityError,
  LockedError,
  NotFoundError,
  UsageError,
} from "./errors.ts";
import type { KdfParams } from "./key_file.ts";
import { RepoLock } from "./repo_lock.ts";
import { initRepository, Repository } from "./repository.ts";
import { pseudoRandomBytes, restoredPath, withTempDir } from "../tests/_helpers.ts";

const FAST: KdfParams = { iterations: 1, memoryKiB: 1024, parallelism: 1 };
const PASS = "correct horse battery staple";
const NEW_PASS = "tr0ub4dor & 3";
const KEY = "keys/repokey";

/** A repository with one archive ("one") of a small tree, and the tree's files. */
interface Fixture {
  dir: string;
  backend: LocalBackend;
  /** Absolute path of each backed up file, with its bytes. */
  files: Map<string, Uint8Array>;
}

async function makeTree(src: string): Promise<Map<string, Uint8Array>> {
  const files = new Map<string, Uint8Array>([
    [`${src}/a.txt`, new TextEncoder().encode("hello, key management\n")],
    [`${src}/sub/random.bin`, pseudoRandomBytes(300_000, 7)],
    [`${src}/sub/empty`, new Uint8Array(0)],
  ]);
  await Deno.mkdir(`${src}/sub`, { recursive: true });
  for (const [path, bytes] of files) await Deno.writeFile(path, bytes);
  return files;
}

/** A backed-up repository at `${dir}/${name}`. */
async function makeRepo(dir: string, name: string): Promise<LocalBackend> {
  const backend = new LocalBackend(`${dir}/${name}`);
  await initRepository(backend, { encryption: "aes256gcm", passphrase: PASS, kdf: FAST });
  return backend;
}

function withFixture(fn: (f: Fixture) => Promise<void>): () => Promise<void> {
  return () =>
    withTempDir(async (dir) => {
      const files = await makeTree(`${dir}/src`);
      const backend = await makeRepo(dir, "repo");
      try {
        await backupCommand(backend, {
          name: "one",
          sources: [`${dir}/src`],
          compression: { algorithm: "lz4" },
          passphrase: PASS,
        });
        await fn({ dir, backend, files });
      } finally {
        await backend.close();
      }
    }, "vger-key-test-");
}

/** Extracts archive "one" with the passphrase and checks every file byte for byte. */
async function assertRestores(f: Fixture, passphrase: string, tag: string): Promise<void> {
  const dest = `${f.dir}/out-${tag}`;
  const result = await extractCommand(f.backend, { archive: "one", dest, passphrase });
  deepStrictEqual(result.warnings, []);
  for (const [path, bytes] of f.files) {
    deepStrictEqual(await Deno.readFile(restoredPath(dest, path)), bytes, path);
  }
}

/** Every object of the repository except locks, with its bytes. */
async function objects(backend: Backend): Promise<Map<string, Uint8Array>> {
  const keys: string[] = [];
  for await (const o of backend.list("")) if (!o.key.startsWith("locks/")) keys.push(o.key);
  keys.sort();
  const out = new Map<string, Uint8Array>();
  for (const k of keys) out.set(k, (await backend.get(k))!);
  return out;
}

async function lockCount(backend: Backend): Promise<number> {
  let n = 0;
  for await (const _ of backend.list("locks/")) n++;
  return n;
}

function errorOf<T extends Error>(
  type: new (...args: never[]) => T,
  ...parts: (string | RegExp)[]
): (err: unknown) => boolean {
  return (err: unknown) => {
    ok(err instanceof type, `expected ${type.name}, got ${err}`);
    for (const p of parts) {
      ok(typeof p === "string" ? err.message.includes(p) : p.test(err.message), err.message);
    }
    return true;
  };
}

// ---------------------------------------------------------------------------------------------
// change-passphrase

Deno.test(
  "key change-passphrase: the old passphrase stops working, the new one opens and restores every byte",
  withFixture(async (f) => {
    const before = await objects(f.backend);
    const result = await keyChangePassphraseCommand(f.backend, {
      passphrase: PASS,
      newPassphrase: NEW_PASS,
    });
    deepStrictEqual(result.kdf, FAST, "the key file's own KDF costs are kept");
    await rejects(
      Repository.open(f.backend, { passphrase: PASS }),
      errorOf(DecryptionError, `Wrong passphrase for repository "${f.backend.location}"`),
    );
    await assertRestores(f, NEW_PASS, "new");
    // only the key file changed: every other object is sealed with the same master key
    const after = await objects(f.backend);
    deepStrictEqual([...after.keys()], [...before.keys()]);
    for (const [k, v] of before) {
      if (k === KEY) ok(!v.every((b, i) => b === after.get(k)![i]), "key file rewritten");
      else deepStrictEqual(after.get(k), v, k);
    }
    equal(await lockCount(f.backend), 0, "the exclusive lock is released");
    // and the repository takes new backups under the new passphrase
    await backupCommand(f.backend, {
      name: "two",
      sources: [`${f.dir}/src`],
      compression: { algorithm: "lz4" },
      passphrase: NEW_PASS,
    });
  }),
);

Deno.test(
  "key change-passphrase applies new KDF costs when given",
  withFixture(async (f) => {
    const costlier: KdfParams = { iterations: 2, memoryKiB: 2048, parallelism: 2 };
    const result = await keyChangePassphraseCommand(f.backend, {
      passphrase: PASS,
      newPassphrase: NEW_PASS,
      kdf: costlier,
    });
    deepStrictEqual(result.kdf, costlier);
    await assertRestores(f, NEW_PASS, "new");
  }),
);

Deno.test(
  "key change-passphrase with a wrong passphrase changes nothing",
  withFixture(async (f) => {
    const before = await objects(f.backend);
    await rejects(
      keyChangePassphraseCommand(f.backend, { passphrase: "wrong", newPassphrase: NEW_PASS }),
      errorOf(DecryptionError, `Wrong passphrase for repository "${f.backend.location}"`),
    );
    deepStrictEqual(await objects(f.backend), before);
    equal(await lockCount(f.backend), 0);
    await assertRestores(f, PASS, "old");
  }),
);

Deno.test(
  "key change-passphrase needs the exclusive lock and refuses while another command holds one",
  withFixture(async (f) => {
    const before = await f.backend.get(KEY);
    const other = await RepoLock.acquire(f.backend, "shared", { command: "backup" });
    try {
      await rejects(
        keyChangePassphraseCommand(f.backend, { passphrase: PASS, newPassphrase: NEW_PASS }),
        LockedError,
      );
    } finally {
      await other.release();
    }
    deepStrictEqual(await f.backend.get(KEY), before);
  }),
);

/** Storage that damages the next write of `keys/repokey` (a faulty disk or server). */
class DamagingBackend extends BackendDecorator {
  #damageNext = true;
  override put(key: string, body: PutBody): Promise<void> {
    if (key === KEY && this.#damageNext && body instanceof Uint8Array) {
      this.#damageNext = false;
      const bad = body.slice();
      bad[bad.length - 40] ^= 0x01;
      return this.inner.put(key, bad);
    }
    return this.inner.put(key, body);
  }
}

Deno.test(
  "key change-passphrase puts the old key file back when the new one does not read back",
  withFixture(async (f) => {
    const before = await f.backend.get(KEY);
    await rejects(
      keyChangePassphraseCommand(new DamagingBackend(f.backend), {
        passphrase: PASS,
        newPassphrase: NEW_PASS,
      }),
      errorOf(IntegrityError, "did not read back correctly", "the previous one was put back"),
    );
    deepStrictEqual(await f.backend.get(KEY), before);
    await assertRestores(f, PASS, "old");
  }),
);

// ---------------------------------------------------------------------------------------------
// export and import

Deno.test(
  "key export, loss of keys/repokey, key import: the repository opens and restores again",
  withFixture(async (f) => {
    await rejects(keyExportCommand(f.backend, { passphrase: "wrong" }), DecryptionError);
    const exported = await keyExportCommand(f.backend, { passphrase: PASS });
    deepStrictEqual(exported, await f.backend.get(KEY), "the export is the key file");
    await f.backend.delete(KEY);
    await rejects(
      Repository.open(f.backend, { passphrase: PASS }),
      errorOf(NotFoundError, `"${f.backend.location}": keys/repokey not found`),
    );
    await rejects(keyExportCommand(f.backend, { passphrase: PASS }), NotFoundError);
    await rejects(
      keyChangePassphraseCommand(f.backend, { passphrase: PASS, newPassphrase: NEW_PASS }),
      errorOf(NotFoundError, "keys/repokey not found (restore it with vger key import)"),
    );
    const result = await keyImportCommand(f.backend, { keyFile: exported, passphrase: PASS });
    equal(result.previous, "missing");
    deepStrictEqual(await f.backend.get(KEY), exported);
    equal(await lockCount(f.backend), 0);
    await assertRestores(f, PASS, "imported");
  }),
);

Deno.test(
  "key import of the export repairs a damaged key file",
  withFixture(async (f) => {
    const exported = await keyExportCommand(f.backend, { passphrase: PASS });
    const damaged = exported.slice();
    damaged[20] ^= 0x10;
    await f.backend.put(KEY, damaged);
    await rejects(
      Repository.open(f.backend, { passphrase: PASS }),
      errorOf(IntegrityError, "Key file keys/repokey is corrupt: checksum mismatch"),
    );
    // an export is only made of a key file known good
    await rejects(keyExportCommand(f.backend, { passphrase: PASS }), IntegrityError);
    const result = await keyImportCommand(f.backend, { keyFile: exported, passphrase: PASS });
    equal(result.previous, "damaged");
    await assertRestores(f, PASS, "repaired");
  }),
);

Deno.test(
  "key import refuses a key exported from another repository and writes nothing",
  withFixture(async (f) => {
    // the same passphrase and KDF costs: only the master key tells the repositories apart
    const other = await makeRepo(f.dir, "other");
    const foreign = await keyExportCommand(other, { passphrase: PASS });
    await other.close();
    const refused = errorOf(
      UsageError,
      `Cannot import a key into repository "${f.backend.location}"`,
      "is not the key of this repository",
    );
    const before = await f.backend.get(KEY);
    await rejects(
      keyImportCommand(f.backend, { keyFile: foreign, passphrase: PASS, force: true }),
      refused,
    );
    deepStrictEqual(await f.backend.get(KEY), before);
    // nor when the repository has lost its own key file
    await f.backend.delete(KEY);
    await rejects(keyImportCommand(f.backend, { keyFile: foreign, passphrase: PASS }), refused);
    equal(await f.backend.size(KEY), null);
    equal(await lockCount(f.backend), 0);
  }),
);

Deno.test(
  "key import with a wrong passphrase is refused and writes nothing",
  withFixture(async (f) => {
    const exported = await keyExportCommand(f.backend, { passphrase: PASS });
    await f.backend.delete(KEY);
    await rejects(
      keyImportCommand(f.backend, { keyFile: exported, passphrase: "wrong", source: "saved.key" }),
      errorOf(DecryptionError, 'wrong passphrase for key file "saved.key"'),
    );
    equal(await f.backend.size(KEY), null);
    equal(await lockCount(f.backend), 0);
    await keyImportCommand(f.backend, { keyFile: exported, passphrase: PASS });
    await assertRestores(f, PASS, "imported");
  }),
);

Deno.test(
  "key import replaces an intact key file only with force, and an identical one not at all",
  withFixture(async (f) => {
    const oldExport = await keyExportCommand(f.backend, { passphrase: PASS });
    await keyChangePassphraseCommand(f.backend, { passphrase: PASS, newPassphrase: NEW_PASS });
    const current = await f.backend.get(KEY);
    await rejects(
      keyImportCommand(f.backend, { keyFile: oldExport, passphrase: PASS }),
      errorOf(AlreadyExistsError, "intact keys/repokey"),
    );
    deepStrictEqual(await f.backend.get(KEY), current);
    // an export made before a passphrase change still holds the key, under the old passphrase
    const forced = await keyImportCommand(f.backend, {
      keyFile: oldExport,
      passphrase: PASS,
      force: true,
    });
    equal(forced.previous, "intact");
    await assertRestores(f, PASS, "old-again");
    const again = await keyImportCommand(f.backend, { keyFile: oldExport, passphrase: PASS });
    equal(again.previous, "identical");
    deepStrictEqual(await f.backend.get(KEY), oldExport);
  }),
);

Deno.test(
  "key import names a file to import that is not a key file",
  withFixture(async (f) => {
    const before = await f.backend.get(KEY);
    await rejects(
      keyImportCommand(f.backend, {
        keyFile: new TextEncoder().encode("not a key file at all, but some text"),
        passphrase: PASS,
        source: "/tmp/notes.txt",
      }),
      errorOf(IntegrityError, 'Key file "/tmp/notes.txt" is corrupt: checksum mismatch'),
    );
    deepStrictEqual(await f.backend.get(KEY), before);
  }),
);

Deno.test("key commands refuse an unencrypted repository", async () => {
  await withTempDir(async (dir) => {
    const backend = new LocalBackend(`${dir}/plain`);
    await initRepository(backend, { encryption: "none" });
    const keyFile = (await backend.get(KEY))!;
    const notEncrypted = (action: string) =>
      errorOf(
        UsageError,
        `Cannot ${action} repository "${backend.location}": the repository is not encrypted`,
      );
    await rejects(
      keyChangePassphraseCommand(backend, { passphrase: "a", newPassphrase: "b" }),
      notEncrypted("change the passphrase of"),
    );
    await rejects(
      keyExportCommand(backend, { passphrase: "a" }),
      notEncrypted("export the key of"),
    );
    await rejects(
      keyImportCommand(backend, { keyFile, passphrase: "a" }),
      notEncrypted("import a key into"),
    );
    deepStrictEqual(await backend.get(KEY), keyFile);
    await backend.close();
  }, "vger-key-test-");
});

Deno.test("key commands report a directory that is not a repository", async () => {
  await withTempDir(async (dir) => {
    const backend = new LocalBackend(`${dir}/nothing`);
    await rejects(
      keyExportCommand(backend, { passphrase: PASS }),
      errorOf(NotFoundError, "config not found"),
    );
    await backend.close();
  }, "vger-key-test-");
});
