/**
 * `vger break-lock` on the command line: its glue and its result as `--json` and as text.
 *
 * @module
 */

import { breakLockCommand } from "./commands.ts";
import { bool } from "./cli_command_line.ts";
import { emit, type Run } from "./cli_run.ts";
import type { LockEntry, LockInfo } from "./repo_lock.ts";

/** One removed lock in `vger break-lock --json`: its key and, when it parsed, its content. */
export interface RemovedLockJson extends Partial<LockInfo> {
  /** The object key, `locks/<id>`. */
  key: string;
}

/** `vger break-lock --json`. */
export interface BreakLockJson {
  /** Repository path. */
  repository: string;
  /** The locks removed. */
  removed: RemovedLockJson[];
}

/** The `--json` object of `vger break-lock`. */
export function breakLockJson(repository: string, removed: readonly LockEntry[]): BreakLockJson {
  return { repository, removed: removed.map((l) => ({ key: l.key, ...l.info })) };
}

/** The lines of `vger break-lock`: one per lock removed, or one saying there was none. */
export function breakLockLines(
  repository: string,
  removed: readonly LockEntry[],
  options: { all: boolean },
): string[] {
  if (removed.length === 0) return [`No ${options.all ? "" : "stale "}locks in ${repository}`];
  return removed.map((l) => {
    const who = l.info
      ? `${l.info.host}/${l.info.pid} since ${l.info.time} (${l.info.command})`
      : "unreadable";
    return `Removed lock ${l.key}: ${who}`;
  });
}

/** `vger break-lock [--all]`. */
export async function runBreakLock(run: Run): Promise<number> {
  const { flags, repo } = run;
  const all = bool(flags, "all");
  const removed = await breakLockCommand(await run.backend(), { all });
  emit(
    run,
    () => breakLockJson(repo.path, removed),
    () => breakLockLines(repo.path, removed, { all }),
  );
  return 0;
}
