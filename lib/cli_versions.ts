/**
 * `vger versions` and `vger rollback ID` on the command line: their glue and their results as
 * `--json` and as text.
 *
 * @module
 */

import { rollbackCommand, type RollbackResult, versionsCommand } from "./version_commands.ts";
import type { StoredVersion } from "./repo_versions.ts";
import { emit, type Run } from "./cli_run.ts";
import { bool } from "./cli_command_line.ts";
import { UsageError } from "./errors.ts";

/** One version in `vger versions --json`. */
export interface VersionJson {
  /** Its id, for `vger rollback`. */
  id: string;
  /** When the server kept it, RFC 3339 UTC. */
  time: string;
  /** The kept manifest's size in bytes. */
  manifest_bytes: number;
  /** The kept index's size in bytes, or null when none is kept with it. */
  index_bytes: number | null;
}

/** `vger versions --json`. */
export interface VersionsJson {
  /** Repository path. */
  repository: string;
  /** The versions, newest first. */
  versions: VersionJson[];
}

/** The `--json` object of `vger versions`. */
export function versionsJson(repository: string, versions: readonly StoredVersion[]): VersionsJson {
  return {
    repository,
    versions: versions.map((v) => ({
      id: v.id,
      time: v.time,
      manifest_bytes: v.manifestBytes,
      index_bytes: v.indexBytes,
    })),
  };
}

/** The lines of `vger versions`: one per version, newest first. */
export function versionsLines(repository: string, versions: readonly StoredVersion[]): string[] {
  if (versions.length === 0) return [`No kept versions in ${repository}`];
  return versions.map((v) =>
    `${v.id}  ${v.time}  manifest ${v.manifestBytes} B, ` +
    (v.indexBytes === null ? "no index kept" : `index ${v.indexBytes} B`)
  );
}

/** `vger rollback --json`. */
export interface RollbackJson {
  /** Repository path. */
  repository: string;
  /** The version made current. */
  rolled_back_to: VersionJson;
  /** Archives in its manifest. */
  archives: number;
  /** The counter of the manifest written. */
  manifest_counter: number;
  /** Whether its index was written too. */
  index_restored: boolean;
  /** Packs its index names that are gone (non-zero only with --force). */
  missing_packs: number;
  /** Archive objects its manifest lists that are gone (non-zero only with --force). */
  missing_archives: number;
}

/** The `--json` object of `vger rollback`. */
export function rollbackJson(repository: string, r: RollbackResult): RollbackJson {
  return {
    repository,
    rolled_back_to: versionsJson(repository, [r.version]).versions[0],
    archives: r.archives,
    manifest_counter: r.counter,
    index_restored: r.indexRestored,
    missing_packs: r.missingPacks,
    missing_archives: r.missingArchives,
  };
}

/** The line `vger rollback` prints. */
export function rollbackLine(repository: string, r: RollbackResult): string {
  const index = r.indexRestored
    ? "and its index"
    : "(no index was kept with it: the current stays)";
  const missing = r.missingPacks + r.missingArchives === 0
    ? ""
    : `; ${r.missingPacks} packs and ${r.missingArchives} archive objects it names are gone ` +
      "(vger check tells what is lost)";
  return `Rolled ${repository} back to version ${r.version.id} of ${r.version.time}: its ` +
    `manifest (${r.archives} archives) ${index}, written as manifest number ${r.counter}${missing}`;
}

/** `vger versions`. */
export async function runVersions(run: Run): Promise<number> {
  if (run.args.length > 0) throw new UsageError("vger versions takes no arguments");
  const versions = await versionsCommand(await run.backend());
  emit(
    run,
    () => versionsJson(run.repo.path, versions),
    () => versionsLines(run.repo.path, versions),
  );
  return 0;
}

/** `vger rollback ID`. */
export async function runRollback(run: Run): Promise<number> {
  const [id, ...rest] = run.args;
  if (id === undefined || rest.length > 0) {
    throw new UsageError("vger rollback takes one version id (vger versions lists them)");
  }
  const r = await rollbackCommand(await run.backend(), id, {
    ...run.locking,
    ...run.trusting,
    passphrase: run.passphrase,
    force: bool(run.flags, "force"),
  });
  emit(run, () => rollbackJson(run.repo.path, r), () => rollbackLine(run.repo.path, r));
  return 0;
}
