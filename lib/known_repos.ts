/**
 * The client's memory of the repositories it has used, so that the storage cannot downgrade,
 * replace or roll back a repository unnoticed (as borg's security directory). One small JSON
 * file per repository location, `<cache dir>/known-repos/<sha256 of the location>.json`, mode
 * 0600, replaced atomically (temp file, then rename):
 *
 *   { "v": 1, "location": "/mnt/repo", "id": "<64 hex>", "encryption": "aes256gcm",
 *     "key": "<32 hex>", "manifest_counter": 12, "updated": "2026-12-04T12:00:00.000Z" }
 *
 * `key` is a fingerprint of the key material (a keyed hash under the chunk-id key, which reveals
 * nothing of it); `manifest_counter` is the newest manifest counter seen (lib/manifest.ts).
 * {@linkcode checkKnownRepository} compares what a repository shows with the record.
 *
 * Also the client's memory of S3 servers that honour conditional creates (the locks depend on
 * them): {@linkcode ensureCreateHonoured} probes a server once per endpoint and bucket and keeps
 * the verdict in `<cache dir>/create-probes/`, written the same way.
 *
 * @module
 */

import { dirname, join } from "node:path";
import type { Backend } from "../backends/backend.ts";
import { type EncryptionMode, type RepoKey, sha256Parts } from "./crypto.ts";
import { BackendError, errorMessage, IntegrityError, VgerError } from "./errors.ts";
import { toHex } from "./ids.ts";

/** The flag that accepts a deliberate change of a repository (named in every refusal). */
export const TRUST_FLAG = "--trust-repository";

/** Largest record file read (a record is a few hundred bytes). */
const MAX_RECORD = 64 << 10;

/** What this client remembers of the repository at one location. */
export interface KnownRepository {
  /** The location (absolute path or URL), as the backend names it. */
  location: string;
  /** Repository id (hex). */
  id: string;
  /** Encryption mode. */
  mode: EncryptionMode;
  /** Fingerprint of the key material ({@linkcode keyFingerprint}). */
  fingerprint: string;
  /** Newest manifest counter seen. */
  counter: number;
}

/** What a repository shows now; `counter` is null when its manifest could not be read. */
export type SeenRepository = Omit<KnownRepository, "counter"> & { counter: number | null };

/** A fingerprint of a key: 16 bytes of a keyed hash under the key, in hex. */
export async function keyFingerprint(key: Pick<RepoKey, "deriveSecret">): Promise<string> {
  return toHex((await key.deriveSecret("known-repository fingerprint")).subarray(0, 16));
}

/** The memory's file for a location, under the cache directory `dir`. */
export async function knownRepoFile(dir: string, location: string): Promise<string> {
  const hash = toHex(await sha256Parts([new TextEncoder().encode(location)]));
  return join(dir, "known-repos", `${hash}.json`);
}

/**
 * The record of a location, or null when this client has none. A record that cannot be read or
 * parsed is an IntegrityError naming the file (the memory is the client's own, so damage to it is
 * reported, not taken for "never seen").
 */
export async function loadKnownRepository(
  dir: string,
  location: string,
): Promise<KnownRepository | null> {
  const file = await knownRepoFile(dir, location);
  const bad = (why: string, cause?: unknown) =>
    new IntegrityError(
      `The record of repository "${location}" in ${file} is unreadable: ${why} (delete it, or run with ${TRUST_FLAG} to write it again)`,
      { cause },
    );
  let text: string;
  try {
    const f = await Deno.open(file);
    try {
      const st = await f.stat();
      if (st.size > MAX_RECORD) throw bad(`${st.size} bytes, more than ${MAX_RECORD}`);
    } finally {
      f.close();
    }
    text = await Deno.readTextFile(file);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return null;
    if (err instanceof VgerError) throw err;
    throw bad(errorMessage(err), err);
  }
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(text);
  } catch (err) {
    throw bad("not JSON", err);
  }
  if (
    typeof o !== "object" || o === null || o.v !== 1 || o.location !== location ||
    typeof o.id !== "string" || (o.encryption !== "aes256gcm" && o.encryption !== "none") ||
    typeof o.key !== "string" || !Number.isSafeInteger(o.manifest_counter) ||
    (o.manifest_counter as number) < 0
  ) throw bad("unexpected structure");
  return {
    location,
    id: o.id,
    mode: o.encryption,
    fingerprint: o.key,
    counter: o.manifest_counter as number,
  };
}

/** Writes a record (mode 0600, directory 0700), atomically replacing the old one. */
export async function saveKnownRepository(dir: string, record: KnownRepository): Promise<void> {
  const file = await knownRepoFile(dir, record.location);
  const body = JSON.stringify({
    v: 1,
    location: record.location,
    id: record.id,
    encryption: record.mode,
    key: record.fingerprint,
    manifest_counter: record.counter,
    updated: new Date().toISOString(),
  }) + "\n";
  await writeCacheFile(file, body, `the record of repository "${record.location}"`);
}

/** Writes `body` to `file` (mode 0600, its directory 0700), atomically replacing the old one. */
async function writeCacheFile(file: string, body: string, what: string): Promise<void> {
  const temp = `${file}.${Deno.pid}.${toHex(crypto.getRandomValues(new Uint8Array(6)))}.tmp`;
  try {
    await Deno.mkdir(dirname(file), { recursive: true, mode: 0o700 });
    await Deno.writeTextFile(temp, body, { mode: 0o600, createNew: true });
    await Deno.rename(temp, file);
  } catch (err) {
    await Deno.remove(temp).catch(() => {});
    throw new VgerError("io", `Cannot save ${what} in ${file}: ${errorMessage(err)}`, {
      cause: err,
    });
  }
}

/**
 * The file remembering whether the server of `scope` (a backend's `createProbeScope`) honours
 * conditional creates: `<cache dir>/create-probes/<sha256 of the scope>.json`, JSON
 * `{ "v": 1, "scope": "...", "honoured": true, "probed": "<ISO time>" }`.
 */
async function createProbeFile(dir: string, scope: string): Promise<string> {
  const hash = toHex(await sha256Parts([new TextEncoder().encode(scope)]));
  return join(dir, "create-probes", `${hash}.json`);
}

/** Options of {@linkcode ensureCreateHonoured}. */
export interface CreateProbeOptions {
  /** Cache directory remembering the verdict; none: probe every time. */
  dir?: string;
  /** Told when the verdict cannot be saved (the command goes on). */
  onWarning?: (message: string) => void;
}

/**
 * Before a write command's first `create`: on a backend that declares a
 * `capabilities.createProbeScope`, checks once per scope (then remembers it under `dir`) that
 * the server honours conditional creates, and refuses with a BackendError when it does not.
 * Nothing is done on a backend without the probe (local, memory). Only a positive verdict is
 * remembered: a refused server is probed again next time (it may have been upgraded).
 */
export async function ensureCreateHonoured(
  backend: Pick<Backend, "capabilities" | "probeCreate">,
  options: CreateProbeOptions = {},
): Promise<void> {
  const scope = backend.capabilities.createProbeScope;
  if (scope === undefined || !backend.probeCreate) return;
  const file = options.dir === undefined ? undefined : await createProbeFile(options.dir, scope);
  if (file !== undefined) {
    try {
      const o = JSON.parse(await Deno.readTextFile(file));
      if (o?.v === 1 && o.scope === scope && o.honoured === true) return;
    } catch {
      // absent or damaged: probe again, and rewrite it
    }
  }
  if (!(await backend.probeCreate())) {
    throw new BackendError(
      `S3 server of ${scope} does not honour conditional writes (If-None-Match); vger needs them for its locks`,
    );
  }
  if (file === undefined) return;
  const body = JSON.stringify({ v: 1, scope, honoured: true, probed: new Date().toISOString() });
  try {
    await writeCacheFile(file, body + "\n", `the create probe of ${scope}`);
  } catch (err) {
    options.onWarning?.(errorMessage(err));
  }
}

/** Options of {@linkcode checkKnownRepository}. */
export interface TrustOptions {
  /** The mode the configuration names for this repository; undefined when it names none. */
  configuredMode?: EncryptionMode;
  /** Accept a changed repository and rewrite the record to what it shows now. */
  trust?: boolean;
}

/**
 * Compares what a repository shows with this client's record of its location and returns the
 * record to save. Refuses (IntegrityError, one line naming {@linkcode TRUST_FLAG} or the
 * setting that accepts the change):
 * - a mode other than the configured one;
 * - without a configured mode, a mode other than the remembered one, or than aes256gcm when
 *   there is no record (an unencrypted repository is used only when asked for);
 * - another repository id or another key than remembered;
 * - a manifest counter lower than the newest seen (an old copy served again).
 *
 * @example
 * ```ts
 * import { checkKnownRepository } from "./known_repos.ts";
 * const seen = { location: "/r", id: "ab", mode: "aes256gcm" as const, fingerprint: "f", counter: 4 };
 * const record = checkKnownRepository({ ...seen, counter: 3 }, seen);
 * console.assert(record.counter === 4);
 * ```
 */
export function checkKnownRepository(
  known: KnownRepository | null,
  seen: SeenRepository,
  options: TrustOptions = {},
): KnownRepository {
  const where = `Repository "${seen.location}"`;
  const refuse = (what: string, accept = `if the change is deliberate, run with ${TRUST_FLAG}`) =>
    new IntegrityError(`${where} ${what}; refusing to use it (${accept})`);
  const { configuredMode, trust } = options;
  if (configuredMode !== undefined && configuredMode !== seen.mode) {
    throw refuse(
      `uses encryption "${seen.mode}" but the configuration says "${configuredMode}"`,
      `if the change is deliberate, set encryption.mode to "${seen.mode}" for it`,
    );
  }
  const counter = seen.counter ?? 0;
  if (trust) {
    return { ...seen, counter };
  }
  if (known === null) {
    if (configuredMode === undefined && seen.mode !== "aes256gcm") {
      throw refuse(
        `uses encryption "${seen.mode}", not "aes256gcm", and this client has not used it before`,
        `if it is meant to be unencrypted, set encryption.mode to "${seen.mode}" for it in the configuration, or run with ${TRUST_FLAG}`,
      );
    }
    return { ...seen, counter };
  }
  if (known.mode !== seen.mode) {
    throw refuse(
      `uses encryption "${seen.mode}" but used "${known.mode}" when this client last saw it (was it replaced?)`,
    );
  }
  if (known.id !== seen.id) {
    throw refuse(
      `is another repository than this client knew there: its id is ${
        seen.id.slice(0, 16)
      }..., was ${known.id.slice(0, 16)}...`,
    );
  }
  if (known.fingerprint !== seen.fingerprint) {
    throw refuse("has another key than when this client last saw it (was it replaced?)");
  }
  if (seen.counter !== null && seen.counter < known.counter) {
    throw refuse(
      `serves manifest number ${seen.counter}, older than number ${known.counter} that this client saw: an old copy would hide the archives made since`,
      `if it was restored from an old copy deliberately, run with ${TRUST_FLAG}`,
    );
  }
  return { ...seen, counter: Math.max(known.counter, counter) };
}
