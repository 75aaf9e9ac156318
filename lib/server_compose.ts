/**
 * vger-server's side of server-side compaction (docs/SERVER.md, "Compose a pack"): the client's
 * small JSON plan of a new pack (the preamble, the kept records as ranges of existing packs, and
 * the sealed header with its trailer, which the client built) is parsed and checked, every record
 * is checked with lib/pack.ts's rules (inside its pack's record area, length prefix and CRC-32
 * match, type byte as the plan says), and only then is the pack composed by the storage's
 * {@linkcode Backend.compose}, all or nothing, under the name of its SHA-256. The server holds no
 * key: it cannot authenticate the records (docs/FORMAT.md, "What a server can check").
 *
 * @example
 * ```ts
 * import { parseComposePlan } from "./server_compose.ts";
 *
 * const plan = parseComposePlan("laptop", new TextEncoder().encode('{"prefix":"","sources":[],"records":[],"suffix":""}'));
 * console.log(plan.records.length); // 0
 * ```
 *
 * @module
 */

import { Buffer } from "node:buffer";
import {
  type Backend,
  type ComposeRange,
  type ComposeResult,
  MAX_COMPOSE_RANGES,
} from "../backends/backend.ts";
import { ObjectType } from "./crypto.ts";
import { errorMessage, IntegrityError } from "./errors.ts";
import {
  checkPackPreamble,
  headerLocation,
  MAX_BLOB_OBJECT,
  PACK_MAGIC,
  PACK_PREAMBLE,
  PACK_VERSION,
  parseRecordPrefix,
  RECORD_PREFIX,
  recordFault,
  recordObject,
} from "./pack.ts";
import { checkKey, HttpError } from "./server_request.ts";
import { packKeyHex, parsePackKey } from "./storage_keys.ts";

/** The most bytes of a compose plan (its JSON). */
export const MAX_COMPOSE_PLAN_BYTES = 32 << 20;
/** The most source packs one compose reads. */
export const MAX_COMPOSE_SOURCES = 10_000;
/** The most records one compose copies. */
export const MAX_COMPOSE_RECORDS: number = MAX_COMPOSE_RANGES;
/** The most refused records an answer names (the client composes again without them). */
export const MAX_REFUSED_NAMED = 32;
/** The most bytes read at once while checking records (adjacent records are read together). */
const CHECK_READ_BYTES = 8 << 20;

/** One kept record of a plan: a range of a source pack. */
export interface PlanRecord {
  /** Index into the plan's sources. */
  source: number;
  /** Where the record (its length and CRC prefix first) starts in the source. */
  offset: number;
  /** The record's length, prefix included. */
  length: number;
  /** The type byte its object must carry (data or items). */
  type: number;
}

/** A compose plan as parsed from a request (checked for shape, not yet against storage). */
export interface ServerComposePlan {
  /** The new pack's first bytes: exactly the pack preamble. */
  prefix: Uint8Array;
  /** Source pack keys, each a valid pack key of the repository. */
  sources: string[];
  /** The kept records, in the new pack's order. */
  records: PlanRecord[];
  /** The sealed header and its trailer. */
  suffix: Uint8Array;
}

/** A record the checks refused. */
export interface Refusal {
  /** Its position in the plan's records. */
  record: number;
  /** Why. */
  reason: string;
}

/** Parses and checks the shape of a plan; HttpError 400 naming what is wrong. */
export function parseComposePlan(repo: string, body: Uint8Array): ServerComposePlan {
  const bad = (why: string) =>
    new HttpError(400, `Invalid compose plan for repository "${repo}": ${why}`);
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(body));
  } catch {
    throw bad("not JSON");
  }
  const p = (raw ?? {}) as Record<string, unknown>;
  const bytes = (name: string): Uint8Array => {
    const v = p[name];
    const decoded = typeof v === "string" ? Buffer.from(v, "base64") : undefined;
    // strict: only the canonical spelling of its bytes
    if (decoded === undefined || decoded.toString("base64") !== v) {
      throw bad(`${name} is not base64`);
    }
    return new Uint8Array(decoded.buffer, decoded.byteOffset, decoded.length);
  };
  const prefix = bytes("prefix");
  const suffix = bytes("suffix");
  if (!Array.isArray(p.sources) || p.sources.length > MAX_COMPOSE_SOURCES) {
    throw bad(`sources must be a list of at most ${MAX_COMPOSE_SOURCES} pack keys`);
  }
  const sources: string[] = [];
  for (const key of p.sources as unknown[]) {
    if (typeof key !== "string" || parsePackKey(key) === null) {
      throw bad(`source "${String(key).slice(0, 200)}" is not a pack key`);
    }
    checkKey(repo, key);
    sources.push(key);
  }
  if (!Array.isArray(p.records) || p.records.length > MAX_COMPOSE_RECORDS) {
    throw bad(`records must be a list of at most ${MAX_COMPOSE_RECORDS}`);
  }
  const records: PlanRecord[] = [];
  const count = (v: unknown) => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
  for (const [i, r] of (p.records as unknown[]).entries()) {
    if (!Array.isArray(r) || r.length !== 4 || !r.every(count)) {
      throw bad(`record ${i} is not [source, offset, length, type]`);
    }
    const [source, offset, length, type] = r as number[];
    if (source >= sources.length) throw bad(`record ${i} names source ${source}, which is absent`);
    if (type !== ObjectType.data && type !== ObjectType.items) {
      throw bad(`record ${i} has type ${type}`);
    }
    records.push({ source, offset, length, type });
  }
  return { prefix, sources, records, suffix };
}

/** Options of {@linkcode composePack}. */
export interface ComposePackOptions {
  /** The largest object the server stores. */
  maxObjectBytes: number;
  /** Reserves `bytes` of the quota for the new pack (HttpError 413 when over); frees it after. */
  reserve: (bytes: number) => Promise<{ release(): Promise<void> } | null>;
}

/**
 * Checks `plan` against the repository's packs and composes the new pack; resolves to what the
 * storage wrote (the key without the repository). HttpError 400 for a plan whose preamble or
 * trailer is not a pack's, 413 over the size limit or the quota, and a {@linkcode ComposeRefused}
 * (422) naming the records that fail the checks, in which case nothing is written.
 */
export async function composePack(
  backend: Backend,
  repo: string,
  plan: ServerComposePlan,
  options: ComposePackOptions,
): Promise<ComposeResult> {
  if (backend.compose === undefined) {
    throw new HttpError(500, "The server's storage cannot compose objects");
  }
  const size = plan.prefix.length + plan.suffix.length +
    plan.records.reduce((n, r) => n + r.length, 0);
  checkFrame(repo, plan, size);
  if (size > options.maxObjectBytes) {
    throw new HttpError(
      413,
      `The pack to compose in repository "${repo}" is too large: ${size} bytes, the server's ` +
        `limit is ${options.maxObjectBytes}`,
    );
  }
  const refused = await checkRecords(backend, repo, plan);
  if (refused.length > 0) throw new ComposeRefused(repo, refused);
  const reservation = await options.reserve(size);
  try {
    const ranges: ComposeRange[] = plan.records.map((r) => ({
      key: `${repo}/${plan.sources[r.source]}`,
      offset: r.offset,
      length: r.length,
    }));
    const done = await backend.compose({
      prefix: plan.prefix,
      ranges,
      suffix: plan.suffix,
      name: (sha256) => `${repo}/${packKeyHex(sha256)}`,
    });
    return { ...done, key: done.key.slice(repo.length + 1) };
  } finally {
    await reservation?.release();
  }
}

/** The records refused by the checks (HTTP 422), with the first {@linkcode MAX_REFUSED_NAMED}. */
export class ComposeRefused extends HttpError {
  /** Every record refused. */
  readonly refused: readonly Refusal[];
  /** The error of a compose in `repo` whose `refused` records failed the checks. */
  constructor(repo: string, refused: readonly Refusal[]) {
    const first = refused[0];
    super(
      422,
      `Cannot compose a pack in repository "${repo}": ${refused.length} of its records fail ` +
        `the checks (record ${first.record}: ${first.reason})`,
    );
    this.refused = refused;
  }

  /** The answer's body: the error line and the first refused records as `[record, reason]`. */
  body(message: string): { error: string; refused: [number, string][] } {
    return {
      error: message,
      refused: this.refused.slice(0, MAX_REFUSED_NAMED).map((r) => [r.record, r.reason]),
    };
  }
}

/** The preamble must be a pack's, the suffix a sealed header and its trailer (400 otherwise). */
function checkFrame(repo: string, plan: ServerComposePlan, size: number): void {
  const bad = (why: string) =>
    new HttpError(400, `Invalid compose plan for repository "${repo}": ${why}`);
  const { prefix, suffix } = plan;
  if (
    prefix.length !== PACK_PREAMBLE || !PACK_MAGIC.every((b, i) => prefix[i] === b) ||
    prefix[8] !== PACK_VERSION
  ) {
    throw bad("the prefix is not the pack preamble");
  }
  if (plan.records.length === 0) throw bad("no records");
  if (suffix.length < 5 || suffix[0] !== ObjectType.packHeader) {
    throw bad("the suffix is not a sealed pack header and its trailer");
  }
  try {
    const at = headerLocation(suffix.subarray(suffix.length - 4), size, "the new pack");
    if (at.offset !== size - suffix.length) throw new Error("the header is not the suffix");
  } catch (err) {
    throw bad(`the trailer does not fit the suffix (${errorMessage(err)})`);
  }
}

/** Runs the record checks of every record of `plan`; resolves to the refused ones. */
async function checkRecords(
  backend: Backend,
  repo: string,
  plan: ServerComposePlan,
): Promise<Refusal[]> {
  const refused: Refusal[] = [];
  const areas = new Map<number, { end: number } | { error: string }>();
  const area = async (source: number) => {
    let a = areas.get(source);
    if (a === undefined) {
      a = await recordArea(backend, repo, plan.sources[source]);
      areas.set(source, a);
    }
    return a;
  };
  const { records } = plan;
  for (let i = 0; i < records.length;) {
    // a run of adjacent records of one source, read at once
    let j = i + 1;
    let end = records[i].offset + records[i].length;
    while (
      j < records.length && records[j].source === records[i].source &&
      records[j].offset === end && end + records[j].length - records[i].offset <= CHECK_READ_BYTES
    ) {
      end += records[j].length;
      j++;
    }
    const a = await area(records[i].source);
    const ok: number[] = [];
    for (let k = i; k < j; k++) {
      const r = records[k];
      if ("error" in a) refused.push({ record: k, reason: a.error });
      else if (
        r.offset < PACK_PREAMBLE || r.offset + r.length > a.end ||
        r.length <= RECORD_PREFIX || r.length - RECORD_PREFIX > MAX_BLOB_OBJECT
      ) {
        refused.push({
          record: k,
          reason: `bytes ${r.offset}..${r.offset + r.length} of ${
            plan.sources[r.source]
          } are not in its record area`,
        });
      } else ok.push(k);
    }
    if (ok.length > 0) {
      const from = records[ok[0]].offset;
      const last = records[ok[ok.length - 1]];
      const bytes = await read(
        backend,
        repo,
        plan.sources[last.source],
        from,
        last.offset + last.length - from,
      );
      for (const k of ok) {
        const r = records[k];
        const why = recordProblem(
          bytes.subarray(r.offset - from, r.offset - from + r.length),
          r.type,
        );
        if (why !== null) {
          refused.push({ record: k, reason: `${plan.sources[r.source]} at ${r.offset}: ${why}` });
        }
      }
    }
    i = j;
  }
  return refused;
}

/** Why `record` (prefix and object) is not an intact record of a `type` object; null if it is. */
export function recordProblem(record: Uint8Array, type: number): string | null {
  const object = recordObject(record);
  const prefix = parseRecordPrefix(record);
  const fault = recordFault(prefix, object);
  if (fault === "length") {
    return `its record says ${prefix.length} bytes, the plan ${object.length}`;
  }
  if (fault === "crc") return "CRC-32 mismatch";
  if (object[0] !== type) return `type byte ${object[0]}, the plan says ${type}`;
  return null;
}

/** Where a source pack's records end (its header's offset), or why it cannot be told. */
async function recordArea(
  backend: Backend,
  repo: string,
  key: string,
): Promise<{ end: number } | { error: string }> {
  const full = `${repo}/${key}`;
  const size = await backend.size(full);
  if (size === null) return { error: `pack ${key} is missing` };
  try {
    if (size < PACK_PREAMBLE + 4) return { error: `pack ${key} is too short (${size} bytes)` };
    checkPackPreamble(await read(backend, repo, key, 0, PACK_PREAMBLE), `Pack ${key}`);
    const trailer = await read(backend, repo, key, size - 4, 4);
    return { end: headerLocation(trailer, size, `Pack ${key}`).offset };
  } catch (err) {
    // a damaged pack refuses its records; a failing storage fails the request (500)
    if (err instanceof IntegrityError) return { error: errorMessage(err) };
    throw err;
  }
}

function read(
  backend: Backend,
  repo: string,
  key: string,
  offset: number,
  length: number,
): Promise<Uint8Array> {
  return backend.getRange(`${repo}/${key}`, offset, length);
}
