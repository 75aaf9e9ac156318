/**
 * `vger prune` and `vger delete` on the command line: their glue and their result as `--json` and
 * as text.
 *
 * @module
 */

import { deleteCommand, pruneCommand, type PruneResult } from "./commands.ts";
import { bool, list } from "./cli_command_line.ts";
import { emit, printJson, printLines, type Run } from "./cli_run.ts";
import { UsageError } from "./errors.ts";
import { toHex } from "./ids.ts";
import type { ManifestEntry } from "./manifest.ts";
import {
  describeRetention,
  isEmptyPolicy,
  type RetentionDecision,
  type RetentionPolicy,
} from "./retention.ts";

/** One archive's fate in `vger prune --json`. */
export interface PruneDecisionJson {
  /** Archive name. */
  name: string;
  /** When the backup started (ISO 8601). */
  time: string;
  /** Whether the policy keeps it. */
  keep: boolean;
  /** The rules that keep it (empty when pruned). */
  reasons: string[];
}

/** `vger prune --json`. */
export interface PruneJson {
  /** Repository path. */
  repository: string;
  /** Whether nothing was deleted on purpose. */
  dry_run: boolean;
  /** The retention policy in words. */
  policy: string;
  /** Every archive, newest first. */
  archives: PruneDecisionJson[];
  /** Names of the archives deleted (none on a dry run). */
  deleted: string[];
}

/** The `--json` object of `vger prune`. */
export function pruneJson(
  repository: string,
  result: PruneResult,
  options: { dryRun: boolean; policy: RetentionPolicy },
): PruneJson {
  return {
    repository,
    dry_run: options.dryRun,
    policy: describeRetention(options.policy),
    archives: result.decisions.map((d) => ({
      name: d.archive.name,
      time: d.archive.time,
      keep: d.keep,
      reasons: d.reasons,
    })),
    deleted: result.deleted.map((a) => a.name),
  };
}

/** The lines of `vger prune --list` (and `--dry-run`): keep or (would) prune, name, time, why. */
export function pruneDecisionLines(
  decisions: readonly RetentionDecision<ManifestEntry>[],
  options: { dryRun: boolean },
): string[] {
  return decisions.map((d) => {
    const what = d.keep ? "keep " : options.dryRun ? "would prune" : "prune";
    const why = d.keep ? `  (${d.reasons.join(", ")})` : "";
    return `${what.padEnd(11)} ${d.archive.name.padEnd(32)} ${d.archive.time}${why}`;
  });
}

/** The summary line of `vger prune`: how many archives were (or would be) pruned, and the policy. */
export function pruneSummary(
  result: PruneResult,
  options: { dryRun: boolean; policy: RetentionPolicy },
): string {
  const pruned = result.decisions.filter((d) => !d.keep).length;
  return `${options.dryRun ? "Would prune" : "Pruned"} ${pruned} of ${result.decisions.length} ` +
    `archives (${describeRetention(options.policy)})`;
}

/** One archive in `vger delete --json`. */
export interface DeletedArchiveJson {
  /** Archive name. */
  name: string;
  /** Archive id (hex). */
  id: string;
  /** When the backup started (ISO 8601). */
  time: string;
}

/** `vger delete --json`. */
export interface DeleteJson {
  /** Repository path. */
  repository: string;
  /** Whether nothing was deleted on purpose. */
  dry_run: boolean;
  /** The archives deleted (or that would be). */
  archives: DeletedArchiveJson[];
}

/** The `--json` object of `vger delete`. */
export function deleteJson(
  repository: string,
  deleted: readonly ManifestEntry[],
  options: { dryRun: boolean },
): DeleteJson {
  return {
    repository,
    dry_run: options.dryRun,
    archives: deleted.map((a) => ({ name: a.name, id: toHex(a.id), time: a.time })),
  };
}

/** The lines of `vger delete`: one per archive deleted (or that would be). */
export function deleteLines(
  deleted: readonly ManifestEntry[],
  options: { dryRun: boolean },
): string[] {
  const verb = options.dryRun ? "Would delete" : "Deleted";
  return deleted.map((a) => `${verb} archive ${a.name} (${a.time})`);
}

/** `vger prune [--list] [--dry-run]`. */
export async function runPrune(run: Run): Promise<number> {
  const { flags, repo, io } = run;
  const policy = repo.retention;
  if (isEmptyPolicy(policy)) {
    run.warn(`the retention policy of ${repo.path} is empty: nothing is pruned`);
  }
  const dryRun = !!bool(flags, "dry-run");
  const result = await pruneCommand(await run.backend(), {
    ...run.locking,
    ...run.trusting,
    passphrase: run.passphrase,
    policy,
    dryRun,
  });
  if (bool(flags, "json")) {
    printJson(io, pruneJson(repo.path, result, { dryRun, policy }));
    return 0;
  }
  // --quiet drops the summary line, not the decisions that --list or --dry-run ask for
  if (bool(flags, "list") || dryRun) {
    printLines(io.out, pruneDecisionLines(result.decisions, { dryRun }));
  }
  if (!bool(flags, "quiet")) printLines(io.out, pruneSummary(result, { dryRun, policy }));
  return 0;
}

/** `vger delete --archive NAME...`. */
export async function runDelete(run: Run): Promise<number> {
  const { flags, repo } = run;
  const names = list(flags, "archive");
  if (names.length === 0) throw new UsageError("delete needs --archive NAME (one or more)");
  const dryRun = bool(flags, "dry-run");
  const deleted = await deleteCommand(await run.backend(), {
    ...run.locking,
    ...run.trusting,
    passphrase: run.passphrase,
    names,
    dryRun,
  });
  emit(
    run,
    () => deleteJson(repo.path, deleted, { dryRun }),
    () => deleteLines(deleted, { dryRun }),
  );
  return 0;
}
