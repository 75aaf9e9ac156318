/**
 * What check, verify-data and repair report: problems (with the archives and files they touch),
 * counts, progress and repair's outcome, and the {@linkcode Report} the check engines collect
 * problems in. Types and a collector only: the engines (lib/checker.ts, lib/repair.ts) and
 * lib/verifier.ts import it, so that no engine imports another for its types.
 *
 * @module
 */

import type { ReadonlyBackend, StructureReport } from "../backends/backend.ts";
import type { UnreadablePack } from "./index_recovery.ts";
import type { Repository } from "./repository.ts";

export type { UnreadablePack } from "./index_recovery.ts";

/**
 * What a problem can be about. The last three only vger-server's key-less structure check
 * (lib/server_check.ts) reports: the client's check cannot open a repository without them.
 */
export const PROBLEM_KINDS = [
  "corrupt-manifest",
  "corrupt-index",
  "corrupt-archive",
  "missing-chunk",
  "missing-pack",
  "corrupt-pack",
  "pack-header-mismatch",
  "corrupt-blob",
  "pack-hash-mismatch",
  "unreferenced-pack",
  "unreferenced-archive",
  "unknown-object",
  "stale-lock",
  "corrupt-config",
  "corrupt-key-file",
  "misplaced-pack",
] as const;

/** What a problem is about. */
export type ProblemKind = typeof PROBLEM_KINDS[number];

/** Errors make `vger check` fail; warnings are leftovers that compact removes. */
export type Severity = "error" | "warning";

/** The archives and files that reference a damaged object. */
export interface Affected {
  /** Archive names, in manifest order. */
  archives: string[];
  /** Stored paths (without the leading "/"), at most 1000. */
  paths: string[];
  /** Whether more paths were affected than `paths` lists. */
  pathsTruncated: boolean;
}

/** One thing wrong with the repository. */
export interface Problem {
  /** What it is about. */
  kind: ProblemKind;
  /** Whether it makes the check fail. */
  severity: Severity;
  /** One line naming the object and the reason. */
  message: string;
  /** Who references the damaged data (empty when unknown or not applicable). */
  affects: Affected;
}

/** Counts of what a check looked at. */
export interface CheckStats {
  /** Archives checked. */
  archives: number;
  /** Packs in storage. */
  packs: number;
  /** Index entries checked; with verifyData, blobs opened and re-hashed. */
  blobs: number;
  /** Bytes read from packs. */
  bytesRead: number;
}

/** The outcome of {@linkcode checkRepository}. */
export interface CheckResult {
  /** Everything found, errors and warnings. */
  problems: Problem[];
  /** What was looked at. */
  stats: CheckStats;
  /** Whether the stored index was unreadable and the check used one rebuilt from the packs. */
  indexRebuilt: boolean;
}

/** Progress of a check: packs done and bytes read so far. */
export interface CheckProgress {
  /** headers: reading every pack header; data (verifyData): reading every pack through. */
  phase: "headers" | "data";
  /** Packs done in this phase (header read; read through). */
  packs: number;
  /** Packs this phase goes through (data: those present in storage). */
  totalPacks: number;
  /** Bytes read from packs, in all. */
  bytes: number;
  /** Data phase: bytes of the packs read through so far (0 in the headers phase). */
  packBytes: number;
  /** Bytes of the referenced packs in storage: what the data phase reads. */
  totalPackBytes: number;
}

/** What the checker and the verifier need of a repository. */
export type CheckableRepository = Pick<
  Repository<ReadonlyBackend>,
  "backend" | "key" | "location" | "readManifest" | "readIndex" | "readArchive" | "readBlob"
>;

/** An archive whose file list (archive object or item stream) cannot be read. */
export interface BrokenArchive {
  /** Its name. */
  name: string;
  /** Its id, in hex. */
  id: string;
  /** The first missing or unreadable object found. */
  reason: string;
}

/** A file of a kept archive that references chunks the repaired index no longer has. */
export interface DamagedFile {
  /** The archive's name. */
  archive: string;
  /** The stored path (without the leading "/"). */
  path: string;
  /** How many of its chunk references are lost. */
  missingChunks: number;
}

/** A damaged pack whose blobs repair copied, as far as they verify, into new packs. */
export interface SalvagedPack {
  /** Its storage key. */
  key: string;
  /** What is wrong with it (one line). */
  reason: string;
  /** Blobs that verified and were copied into new packs (on a dry run: would be). */
  kept: number;
  /** Blobs that did not verify and left the index. */
  lost: number;
  /** Whether the damaged pack was deleted (after the index without it was written). */
  removed: boolean;
}

/** The outcome of {@linkcode repairRepository}. */
export interface RepairResult {
  /** Entries of the rebuilt index. */
  entries: number;
  /** Packs the rebuilt index references. */
  packs: number;
  /** Packs left out because their header could not be read. */
  unreadablePacks: UnreadablePack[];
  /** Whether the rebuilt index differs from the stored one (or the stored one is unreadable). */
  indexChanged: boolean;
  /** Whether the rebuilt index was written (not on a dry run, not when unchanged). */
  indexWritten: boolean;
  /** Archives whose file list cannot be read: removed when confirmed. */
  brokenArchives: BrokenArchive[];
  /** Archives removed from the manifest. */
  removedArchives: string[];
  /** Damaged packs whose verifying blobs were copied into new packs. */
  salvagedPacks: SalvagedPack[];
  /** Files of kept archives whose chunks are lost (at most 1000; a backup stores them again). */
  damagedFiles: DamagedFile[];
  /** Whether more files are damaged than `damagedFiles` lists. */
  damagedFilesTruncated: boolean;
  /** Why archives could not be looked at (the manifest is unreadable). */
  manifestError?: string;
}

/**
 * The findings of a storage's own key-less structure check (vger-server's) as problems of the
 * client's check, each message starting with "Server check: "; a kind the client does not know
 * counts as an unknown object.
 */
export function structureProblems(report: StructureReport): Problem[] {
  const known = new Set<string>(PROBLEM_KINDS);
  return report.problems.map((p) => ({
    kind: known.has(p.kind) ? p.kind as ProblemKind : "unknown-object",
    severity: p.severity,
    message: `Server check: ${p.message}`,
    affects: { archives: [], paths: [], pathsTruncated: false },
  }));
}

/** Paths listed per problem at most (a shared chunk can be in millions of files). */
export const MAX_PATHS = 1000;

/** Whether a check found any error (the CLI exits 1 then). */
export function hasErrors(result: CheckResult): boolean {
  return result.problems.some((p) => p.severity === "error");
}

// Problems

/** A problem being collected: the archives and paths that reference it grow during the walk. */
export class Found {
  /** What it is about. */
  readonly kind: ProblemKind;
  /** Whether it makes the check fail. */
  readonly severity: Severity;
  /** One line naming the object and the reason (may be completed later). */
  message: string;
  /** Archives that reference the damaged object. */
  readonly archives = new Set<string>();
  /** Stored paths that reference it, at most MAX_PATHS. */
  readonly paths = new Set<string>();
  /** Whether more paths reference it than `paths` holds. */
  pathsTruncated = false;

  /** A problem of `kind` with no references yet. */
  constructor(kind: ProblemKind, severity: Severity, message: string) {
    this.kind = kind;
    this.severity = severity;
    this.message = message;
  }

  /** Notes that `archive` (and the file `path` in it) references the damaged object. */
  affect(archive: string, path?: string): void {
    this.archives.add(archive);
    if (path === undefined || this.paths.has(path)) return;
    if (this.paths.size < MAX_PATHS) this.paths.add(path);
    else this.pathsTruncated = true;
  }

  /** The problem as reported. */
  problem(): Problem {
    return {
      kind: this.kind,
      severity: this.severity,
      message: this.message,
      affects: {
        archives: [...this.archives],
        paths: [...this.paths],
        pathsTruncated: this.pathsTruncated,
      },
    };
  }
}

/** The problems found so far, and which blob ids each one concerns. */
export class Report {
  readonly #found: Found[] = [];
  /** Hex blob id -> the problems about it; only damaged ids are here (bounded memory). */
  readonly #byId = new Map<string, Found[]>();

  /** Adds a problem (an error unless `severity` says otherwise) and returns it. */
  add(kind: ProblemKind, message: string, severity: Severity = "error"): Found {
    const f = new Found(kind, severity, message);
    this.#found.push(f);
    return f;
  }

  /** Records that the blob `hex` is damaged as `f` says, so the walk fills in who uses it. */
  link(hex: string, f: Found): void {
    const list = this.#byId.get(hex);
    if (!list) this.#byId.set(hex, [f]);
    else if (!list.includes(f)) list.push(f);
  }

  /** Whether any blob is linked (when none, the walk need not spell ids in hex). */
  get linked(): boolean {
    return this.#byId.size > 0;
  }

  /** Notes that `archive` (and the file `path`) references the blob `hex`; true if damaged. */
  touch(hex: string, archive: string, path?: string): boolean {
    const list = this.#byId.get(hex);
    if (!list) return false;
    for (const f of list) f.affect(archive, path);
    return true;
  }

  /**
   * Moves the problems of `other` (and what they are linked to) after this report's own: the
   * report of one pack verified beside others joins the whole in the packs' order.
   */
  append(other: Report): void {
    // one by one: a spread of 100,000s of problems (a pack of tiny chunks, all damaged)
    // overflows the call stack
    for (const f of other.#found) this.#found.push(f);
    for (const [hex, list] of other.#byId) for (const f of list) this.link(hex, f);
    other.#found.length = 0;
    other.#byId.clear();
  }

  /** Every problem, in the order found. */
  problems(): Problem[] {
    return this.#found.map((f) => f.problem());
  }
}
