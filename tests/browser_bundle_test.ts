/**
 * The repository read path runs in a web browser: lib/read_path.ts bundled with
 * `deno bundle --platform browser` holds no `Deno.` and no `node:`, and the bundle, run in a
 * worker over an in-memory copy of the golden repository (tests/testdata/repo-v1), unlocks it and
 * reads every file back byte for byte with its portable codecs; zstd blobs need an installed
 * codec, and a wrong passphrase is a DecryptionError.
 */

import { deepStrictEqual, equal, ok } from "node:assert/strict";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const GOLDEN = `${ROOT}tests/testdata/repo-v1`;
const expected = JSON.parse(await Deno.readTextFile(`${GOLDEN}.expected.json`)) as {
  passphrase: string;
  archives: {
    name: string;
    items: { path: string; type: string; size: number; sha256: string | null }[];
  }[];
};

/** Bundles lib/read_path.ts for the browser into `dir`; returns the bundle's text. */
async function bundle(dir: string): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["bundle", "--platform", "browser", "-o", `${dir}/read_path.js`, "lib/read_path.ts"],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  ok(out.success, new TextDecoder().decode(out.stderr));
  return await Deno.readTextFile(`${dir}/read_path.js`);
}

/** Every object of a directory-shaped repository, by key. */
async function objectsOf(dir: string, prefix = ""): Promise<Map<string, Uint8Array>> {
  const objects = new Map<string, Uint8Array>();
  for await (const e of Deno.readDir(`${dir}/${prefix}`)) {
    const key = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory) { for (const [k, v] of await objectsOf(dir, key)) objects.set(k, v); }
    else objects.set(key, await Deno.readFile(`${dir}/${key}`));
  }
  return objects;
}

/**
 * The worker: a ReadonlyBackend over a Map, then the bundle's RepositoryReader. It uses nothing
 * but the bundle and Web APIs, except the zstd codec it installs from node:zlib when asked (a
 * browser would install a wasm one the same way).
 */
const WORKER = `
import * as vger from "./read_path.js";

class MapBackend {
  location = "memory:golden";
  capabilities = { connections: 4 };
  constructor(objects) { this.objects = objects; }
  async get(key, options = {}) {
    const b = this.objects.get(key);
    if (!b) return null;
    if (options.maxBytes !== undefined && b.length > options.maxBytes) {
      throw new vger.IntegrityError("Object " + key + " is too large");
    }
    return b.slice();
  }
  async getRange(key, offset, length) {
    const b = this.objects.get(key);
    if (!b) throw new vger.NotFoundError("Object " + key + " not found");
    if (offset + length > b.length) throw new vger.IntegrityError("Object " + key + " is short");
    return b.slice(offset, offset + length);
  }
  async size(key) { return this.objects.get(key)?.length ?? null; }
  async *list(prefix) {
    for (const [key, b] of this.objects) if (key.startsWith(prefix)) yield { key, size: b.length };
  }
  async close() {}
}

async function hex(bytes) {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(d, (x) => x.toString(16).padStart(2, "0")).join("");
}

async function readArchive(reader, name) {
  const items = [];
  for await (const item of reader.items(name)) {
    const sha256 = item.type === "file" ? await hex(await reader.readFile(item)) : null;
    items.push({ path: item.path, type: item.type, size: item.size, sha256 });
  }
  return items;
}

self.onmessage = async (e) => {
  const { objects, passphrase } = e.data;
  const result = {};
  try {
    const backend = new MapBackend(objects);
    try {
      await vger.RepositoryReader.open(backend, { passphrase: passphrase + "!" });
      result.wrongPassphrase = "opened";
    } catch (err) {
      result.wrongPassphrase = err.name;
    }
    const reader = await vger.RepositoryReader.open(backend, { passphrase });
    result.names = (await reader.archives()).map((a) => a.name);
    result.lz4 = await readArchive(reader, result.names[0]);
    try {
      await readArchive(reader, result.names[1]);
      result.zstdWithout = "read";
    } catch (err) {
      result.zstdWithout = err.message;
    }
    const zlib = await import("node:zlib");
    vger.installPlatform({
      zstd: {
        compress: () => { throw new Error("not needed"); },
        decompress: (frame, max) => zlib.zstdDecompressSync(frame, { maxOutputLength: max }),
      },
    });
    result.zstd = await readArchive(reader, result.names[1]);
  } catch (err) {
    result.error = String(err?.stack ?? err);
  }
  self.postMessage(result);
};
`;

Deno.test("the read path bundles for the browser with no Deno. and no node:, and the bundle reads the golden repository in a worker", async () => {
  const dir = await Deno.makeTempDir({ prefix: "vger-browser-bundle-" });
  let worker: Worker | undefined;
  try {
    const code = await bundle(dir);
    ok(code.includes("RepositoryReader"), "the bundle lacks the reader");
    deepStrictEqual(code.match(/\bDeno\.[A-Za-z_.]*/g), null, "the bundle uses Deno.*");
    deepStrictEqual(code.match(/node:[A-Za-z_/]*/g), null, "the bundle imports node: modules");

    await Deno.writeTextFile(`${dir}/worker.js`, WORKER);
    worker = new Worker(new URL(`file://${dir}/worker.js`).href, { type: "module" });
    const reply = new Promise<Record<string, unknown>>((resolve, reject) => {
      worker!.onmessage = (e) => resolve(e.data);
      worker!.onerror = (e) => reject(new Error(e.message));
    });
    worker.postMessage({ objects: await objectsOf(GOLDEN), passphrase: expected.passphrase });
    const result = await reply;
    equal(result.error, undefined);
    equal(result.wrongPassphrase, "DecryptionError");
    deepStrictEqual(result.names, expected.archives.map((a) => a.name));
    const want = expected.archives.map((a) =>
      a.items.map(({ path, type, size, sha256 }) => ({ path, type, size, sha256 }))
    );
    deepStrictEqual(result.lz4, want[0]);
    ok(want[0].some((i) => i.size > 65536), "the golden repository has a file of several chunks");
    ok(/zstd is not available here/.test(String(result.zstdWithout)), String(result.zstdWithout));
    deepStrictEqual(result.zstd, want[1]);
  } finally {
    worker?.terminate();
    await Deno.remove(dir, { recursive: true });
  }
});
