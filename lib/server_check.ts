/**
 * vger-server's key-less structure check of one repository on its backend (docs/FORMAT.md, "What a
 * key-less server can do"): the required objects (`config` and `keys/repokey` parse, `manifest`
 * and `index` are sealed envelopes of their type), every pack (magic and version, its shard, the
 * header trailer, the chain of records from offset 9 to the header with each record's CRC-32 and
 * type tag, its SHA-256 against its name), archive objects' envelopes, locks (stale or malformed)
 * and objects where no vger writes any. Pack framing is read with pack.ts's and pack_reader.ts's
 * functions, not a parser of its own. Findings come with the kinds of the client's check
 * (lib/check_report.ts), and as the shape of its `--json` ({@linkcode structureCheckJson}). Offered as
 * `server.ts --config FILE check REPO [--json]` (lib/server_cli.ts) and as `GET /<repo>?check`
 * (docs/SERVER.md).
 *
 * @example
 * ```ts
 * import { MemoryBackend } from "../backends/memory.ts";
 * import { checkStructure } from "./server_check.ts";
 *
 * const backend = new MemoryBackend();
 * await backend.put("laptop/stray", new Uint8Array([1]));
 * const result = await checkStructure(backend, "laptop", { lockTtlMs: 3_600_000 });
 * console.log(result.problems.map((p) => p.kind)); // ["corrupt-config", "corrupt-key-file", ...]
 * ```
 *
 * @module
 */

import type { ObjectInfo, ReadonlyBackend, StructureProblem } from "../backends/backend.ts";
import { release } from "./bytes.ts";
import { ObjectType, SEAL_OVERHEAD_AES, SEAL_OVERHEAD_NONE } from "./crypto.ts";
import { errorMessage, IntegrityError, isDamage } from "./errors.ts";
import { MAX_KEY_FILE_BYTES, parseKeyFile } from "./key_file.ts";
import { decodeLock, MAX_LOCK_BYTES } from "./lock.ts";
import {
  checkPackPreamble,
  headerLocation,
  MAX_BLOB_OBJECT,
  PACK_PREAMBLE,
  parseRecordPrefix,
  RECORD_PREFIX,
} from "./pack.ts";
import { checkRecord, PackStream } from "./pack_reader.ts";
import { MAX_REPO_CONFIG_BYTES, parseRepoConfig } from "./repo_config.ts";
import { isValidRepoName } from "./server_request.ts";
import { escapeControl } from "./printable.ts";
import {
  ARCHIVES_PREFIX,
  COMMIT_LOCK_KEY,
  CONFIG_KEY,
  INDEX_KEY,
  KEY_FILE_KEY,
  LOCKS_PREFIX,
  MANIFEST_KEY,
  PACKS_PREFIX,
  parseArchiveKey,
  parseLockKey,
  parsePackKey,
} from "./storage_keys.ts";

/** What a structure check found and looked at. */
export interface StructureCheckResult {
  /** Everything found, errors and warnings, with lib/check_report.ts's kinds. */
  problems: StructureProblem[];
  /** Archive objects, packs, records walked and bytes read. */
  stats: { archives: number; packs: number; blobs: number; bytesRead: number };
}

/** The findings of a check being collected. */
class Findings {
  /** Everything found, in order. */
  readonly problems: StructureProblem[] = [];

  /** Adds a finding, an error unless `severity` says otherwise. */
  add(kind: string, message: string, severity: "error" | "warning" = "error"): void {
    this.problems.push({ kind, severity, message });
  }
}

/** Options of {@linkcode checkStructure}. */
export interface StructureCheckOptions {
  /** A lock not written for this long is stale (the server's `lock_ttl_seconds`). */
  lockTtlMs: number;
  /** The clock, in milliseconds (tests move it). */
  now?: () => number;
  /** Bytes per range read of a pack (default 4 MiB). */
  rangeBytes?: number;
  /** Told of each pack done (the HTTP side keeps its connection alive with it). */
  onPack?: () => void;
}

/** The keys a repository holds besides packs, archives and locks. */
const SINGLE_KEYS = new Set([CONFIG_KEY, KEY_FILE_KEY, MANIFEST_KEY, INDEX_KEY]);
/** `packs/<xx>/<64 hex>`: a pack's name, whatever its shard. */
const ANY_PACK_KEY = /^packs\/([0-9a-f]{2})\/([0-9a-f]{64})$/;

/**
 * Checks the structure of repository `repo` on `backend` (its keys are `repo/<key>`) without the
 * key; damage is reported, never thrown (a failing storage throws).
 */
export async function checkStructure(
  backend: ReadonlyBackend,
  repo: string,
  options: StructureCheckOptions,
): Promise<StructureCheckResult> {
  const report = new Findings();
  const stats = { archives: 0, packs: 0, blobs: 0, bytesRead: 0 };
  const base = `${repo}/`;
  const objects = new Map<string, ObjectInfo>();
  for await (const info of backend.list(base)) objects.set(info.key.slice(base.length), info);
  const now = (options.now ?? Date.now)();

  // the required objects
  let overhead = SEAL_OVERHEAD_AES;
  const config = await read(backend, base + CONFIG_KEY, MAX_REPO_CONFIG_BYTES);
  if (typeof config === "string") {
    report.add("corrupt-config", `Repository config ${config}`);
  } else {
    try {
      const parsed = parseRepoConfig(config);
      if (parsed.config.encryption === "none") overhead = SEAL_OVERHEAD_NONE;
    } catch (err) {
      report.add("corrupt-config", errorMessage(err));
    }
  }
  const keyFile = await read(backend, base + KEY_FILE_KEY, MAX_KEY_FILE_BYTES);
  if (typeof keyFile === "string") {
    report.add("corrupt-key-file", `Key file ${KEY_FILE_KEY} ${keyFile}`);
  } else {
    try {
      await parseKeyFile(keyFile);
    } catch (err) {
      report.add("corrupt-key-file", errorMessage(err));
    }
  }
  for (
    const [key, kind, type] of [
      [MANIFEST_KEY, "corrupt-manifest", ObjectType.manifest],
      [INDEX_KEY, "corrupt-index", ObjectType.index],
    ] as const
  ) {
    const why = await envelopeFault(backend, base + key, objects.get(key)?.size, type, overhead);
    if (why !== null) report.add(kind, `${key[0].toUpperCase()}${key.slice(1)} ${why}`);
  }

  for (const [key, info] of [...objects].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (SINGLE_KEYS.has(key)) continue;
    if (key.startsWith(PACKS_PREFIX)) {
      const named = ANY_PACK_KEY.exec(key);
      if (named === null) {
        report.add(
          "unknown-object",
          `Object ${key} is not a pack (its name is not packs/<xx>/<64 hex digits>)`,
          "warning",
        );
      } else if (parsePackKey(key) === null) {
        report.add(
          "misplaced-pack",
          `Pack ${key} is in the wrong shard: it belongs under packs/${named[2].slice(0, 2)}/`,
        );
      } else {
        stats.packs++;
        try {
          await checkPack(backend, base + key, key, named[2], info.size, {
            report,
            stats,
            rangeBytes: options.rangeBytes ?? 4 << 20,
          });
        } catch (err) {
          // a pack removed under the check (by compact) is no damage
          if (!isDamage(err)) throw err;
          if ((await backend.size(base + key)) === null) continue;
          report.add("corrupt-pack", `Pack ${key} cannot be read: ${errorMessage(err)}`);
        }
        options.onPack?.();
      }
    } else if (key.startsWith(ARCHIVES_PREFIX)) {
      if (parseArchiveKey(key) === null) {
        report.add("unknown-object", `Object ${key} is not an archive`, "warning");
        continue;
      }
      stats.archives++;
      const why = await envelopeFault(backend, base + key, info.size, ObjectType.archive, overhead);
      if (why !== null) report.add("corrupt-archive", `Archive object ${key} ${why}`);
    } else if (key.startsWith(LOCKS_PREFIX)) {
      checkLock(await lockBytes(backend, base + key), key, info, now, options.lockTtlMs, report);
    } else {
      report.add(
        "unknown-object",
        `Object ${key} is not one vger writes (config, keys/repokey, manifest, index, ` +
          "archives/, packs/, locks/)",
        "warning",
      );
    }
  }
  return { problems: report.problems, stats };
}

/** The bytes of `full`, or why there are none ("is missing", "is too large"). */
async function read(
  backend: ReadonlyBackend,
  full: string,
  maxBytes: number,
): Promise<Uint8Array | string> {
  try {
    return (await backend.get(full, { maxBytes })) ?? "is missing";
  } catch (err) {
    if (err instanceof IntegrityError) return "is too large";
    throw err;
  }
}

/** Why `full` is not a sealed envelope of `type` (its first byte and its least size), or null. */
async function envelopeFault(
  backend: ReadonlyBackend,
  full: string,
  size: number | undefined,
  type: number,
  overhead: number,
): Promise<string | null> {
  if (size === undefined) return "is missing";
  if (size < overhead) return `is corrupt: ${size} bytes, a sealed object has at least ${overhead}`;
  const [tag] = await backend.getRange(full, 0, 1);
  return tag === type ? null : `is corrupt: its type tag is ${tag}, not ${type}`;
}

/** Checks one pack: preamble, trailer, the record chain with CRCs, and its hash against its name. */
async function checkPack(
  backend: ReadonlyBackend,
  full: string,
  key: string,
  hex: string,
  size: number,
  ctx: { report: Findings; stats: { blobs: number; bytesRead: number }; rangeBytes: number },
): Promise<void> {
  const what = `Pack ${key}`;
  const corrupt = (why: string) => ctx.report.add("corrupt-pack", `${what} is corrupt: ${why}`);
  if (size < PACK_PREAMBLE + 4) return void corrupt(`${size} bytes, too short to be a pack`);
  // read front to back from one fresh open of the file (never a cached handle: the check must see
  // the bytes on disk now), the trailer from another
  if (backend.getStream === undefined) {
    return await walkPack(backend, backend, full, hex, size, ctx);
  }
  const got = await backend.getStream(full);
  if (got === null) return;
  const ranges = orderedRanges(got.stream, what);
  try {
    await walkPack(ranges, backend, full, hex, size, ctx);
  } finally {
    await ranges.cancel();
  }
}

/** The walk of {@linkcode checkPack} over a pack read in order through `ranges`. */
async function walkPack(
  ranges: Pick<ReadonlyBackend, "getRange">,
  backend: ReadonlyBackend,
  full: string,
  hex: string,
  size: number,
  ctx: { report: Findings; stats: { blobs: number; bytesRead: number }; rangeBytes: number },
): Promise<void> {
  const what = `Pack ${full.slice(full.indexOf("/") + 1)}`;
  const corrupt = (why: string) => ctx.report.add("corrupt-pack", `${what} is corrupt: ${why}`);
  const stream = new PackStream(ranges, full, size, {
    range: ctx.rangeBytes,
    onBytes: (n) => void (ctx.stats.bytesRead += n),
  });
  let header: { offset: number; length: number };
  try {
    checkPackPreamble(await stream.read(PACK_PREAMBLE), what);
    const tail = await backend.getStream!(full, { offset: size - 4, length: 4 });
    const trailer = tail === null
      ? new Uint8Array()
      : new Uint8Array(await new Response(tail.stream).arrayBuffer());
    if (trailer.length !== 4) throw new IntegrityError(`${what} is corrupt: it changed while read`);
    ctx.stats.bytesRead += trailer.length;
    header = headerLocation(trailer, size, what);
  } catch (err) {
    if (!(err instanceof IntegrityError)) throw err;
    ctx.report.add("corrupt-pack", errorMessage(err));
    return;
  }
  // the record chain: each length prefix frames the next record; the last ends at the header
  while (stream.pos < header.offset) {
    const at = stream.pos;
    if (header.offset - at < RECORD_PREFIX) {
      return void corrupt(`a record at offset ${at} does not fit before the header`);
    }
    const prefix = await stream.read(RECORD_PREFIX);
    const { length } = parseRecordPrefix(prefix);
    if (length > MAX_BLOB_OBJECT || at + RECORD_PREFIX + length > header.offset) {
      return void corrupt(
        `the record at offset ${at} says ${length} bytes, past the header at ${header.offset}`,
      );
    }
    const record = new Uint8Array(RECORD_PREFIX + length);
    record.set(prefix);
    const body = await stream.read(length);
    record.set(body, RECORD_PREFIX);
    stream.free(body);
    const checked = checkRecord(record, length);
    release(record); // up to a largest chunk: freed now, not when the collector finds it
    if (checked.fault !== null) return void corrupt(`the record at offset ${at}: ${checked.fault}`);
    ctx.stats.blobs++;
  }
  const digest = await stream.digest();
  if (digest !== hex) {
    ctx.report.add("pack-hash-mismatch", `${what} is corrupt: its SHA-256 is ${digest}`);
  }
}

/**
 * Ranges of one object served in order from one stream of it (what {@linkcode PackStream} asks:
 * each range right after the previous); `cancel` closes the stream. A stream that ends early is
 * an IntegrityError naming `what`.
 */
function orderedRanges(
  stream: ReadableStream<Uint8Array>,
  what: string,
): Pick<ReadonlyBackend, "getRange"> & { cancel(): Promise<void> } {
  const reader = stream.getReader();
  let position = 0;
  let buffered: Uint8Array = new Uint8Array(0);
  let queue: Promise<unknown> = Promise.resolve();
  const take = async (offset: number, length: number): Promise<Uint8Array> => {
    if (offset !== position) throw new IntegrityError(`${what}: ranges asked out of order`);
    const out = new Uint8Array(length);
    for (let filled = 0; filled < length;) {
      if (buffered.length === 0) {
        const { value, done } = await reader.read();
        if (done) throw new IntegrityError(`${what} is corrupt: it is shorter than listed`);
        buffered = value;
      }
      const n = Math.min(length - filled, buffered.length);
      out.set(buffered.subarray(0, n), filled);
      buffered = buffered.subarray(n);
      filled += n;
    }
    position += length;
    return out;
  };
  return {
    getRange: (_key, offset, length) => {
      const read = queue.then(() => take(offset, length));
      queue = read.catch(() => {});
      return read;
    },
    cancel: async () => {
      await queue;
      await reader.cancel().catch(() => {});
    },
  };
}

/** A lock's bytes; one too large to be a lock reads as empty (malformed). */
async function lockBytes(backend: ReadonlyBackend, full: string): Promise<Uint8Array | null> {
  const got = await read(backend, full, MAX_LOCK_BYTES);
  return typeof got === "string" ? (got === "is missing" ? null : new Uint8Array()) : got;
}

function checkLock(
  bytes: Uint8Array | null,
  key: string,
  info: ObjectInfo,
  now: number,
  ttlMs: number,
  report: Findings,
): void {
  if (bytes === null) return; // released meanwhile
  const commit = key === COMMIT_LOCK_KEY;
  if (!commit && parseLockKey(key) === null) {
    report.add("stale-lock", `Lock ${key} is not a lock's name (the sweep removes it)`, "warning");
    return;
  }
  const lock = decodeLock(bytes, commit);
  if (lock === null) {
    report.add("stale-lock", `Lock ${key} is malformed (the sweep removes it)`, "warning");
  } else if (info.modified !== undefined && now - info.modified > ttlMs) {
    const age = Math.round((now - info.modified) / 1000);
    report.add(
      "stale-lock",
      `Stale lock ${key}: ${lock.command} on ${lock.host} (pid ${lock.pid}), not written for ` +
        `${age} s (the sweep removes it)`,
      "warning",
    );
  }
}

/** `check --json` of a structure check: the shape of the client's `vger check --json`. */
export interface StructureCheckJson {
  /** The repository's name. */
  repository: string;
  /** Always false: nothing is decrypted. */
  verify_data: false;
  /** Problems of severity error. */
  errors: number;
  /** Problems of severity warning. */
  warnings: number;
  /** Everything found (who it affects is unknown without the key). */
  problems: {
    kind: string;
    severity: "error" | "warning";
    message: string;
    affects: { archives: string[]; paths: string[]; paths_truncated: boolean };
  }[];
  /** What was looked at: archive objects, packs, records walked, bytes read. */
  stats: { archives: number; packs: number; blobs: number; bytes_read: number };
}

/** The `--json` object of a structure check of `repository`. */
export function structureCheckJson(
  repository: string,
  result: StructureCheckResult,
): StructureCheckJson {
  const errors = result.problems.filter((p) => p.severity === "error").length;
  return {
    repository,
    verify_data: false,
    errors,
    warnings: result.problems.length - errors,
    problems: result.problems.map((p) => ({
      kind: p.kind,
      severity: p.severity,
      message: p.message,
      affects: { archives: [], paths: [], paths_truncated: false },
    })),
    stats: {
      archives: result.stats.archives,
      packs: result.stats.packs,
      blobs: result.stats.blobs,
      bytes_read: result.stats.bytesRead,
    },
  };
}

/** The text of a structure check: a line per problem, then a summary. */
export function structureCheckLines(repository: string, result: StructureCheckResult): string[] {
  const errors = result.problems.filter((p) => p.severity === "error").length;
  const s = result.stats;
  return [
    ...result.problems.map((p) => `${p.severity}: ${p.message}`),
    `Checked the structure of ${repository} without the key: ${s.archives} archive objects, ` +
    `${s.packs} packs, ${s.blobs} records, ${s.bytesRead} bytes read: ${errors} errors, ` +
    `${result.problems.length - errors} warnings`,
  ];
}

/** Where the operator command's output goes. */
export interface StructureCheckIo {
  /** Receives stdout's lines. */
  out: (line: string) => void;
  /** Receives stderr's lines. */
  err: (line: string) => void;
}

/**
 * `server.ts --config FILE check REPO [--json]`: checks repository REPO of the data directory's
 * storage `backend` and prints the result; resolves to the exit code (0 clean, 1 errors, 2 a
 * usage error).
 */
export async function runStructureCheck(
  backend: ReadonlyBackend,
  args: readonly string[],
  options: { lockTtlMs: number; io?: StructureCheckIo },
): Promise<number> {
  const io = options.io ?? { out: console.log, err: console.error };
  const json = args.includes("--json");
  const rest = args.filter((a) => a !== "--json");
  const [repo] = rest;
  if (rest.length !== 1 || repo.startsWith("-")) {
    io.err("Usage: server.ts --config FILE check REPO [--json]");
    return 2;
  }
  if (!isValidRepoName(repo)) {
    io.err(`vger-server: invalid repository name "${repo.slice(0, 80)}"`);
    return 2;
  }
  let any = false;
  for await (const _ of backend.list(`${repo}/`)) {
    any = true;
    break;
  }
  if (!any) {
    io.err(`vger-server: unknown repository "${repo}" in ${backend.location}`);
    return 1;
  }
  const result = await checkStructure(backend, repo, { lockTtlMs: options.lockTtlMs });
  if (json) io.out(JSON.stringify(structureCheckJson(repo, result)));
  else for (const line of structureCheckLines(repo, result)) io.out(escapeControl(line));
  return result.problems.some((p) => p.severity === "error") ? 1 : 0;
}
