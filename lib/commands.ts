/**
 * One function per command: options in, result object out. No argv, no printing.
 *
 * @module
 */

import type { Backend, ReadonlyBackend } from "../backends/backend.ts";
import { backup, type BackupOptions, type BackupResult } from "./archiver.ts";
import { deleteArchives } from "./archive_delete.ts";
import { applyRetention, type RetentionDecision, type RetentionPolicy } from "./retention.ts";
import { decodeItems, type Item } from "./archive.ts";
import { ObjectType } from "./crypto.ts";
import { toHex } from "./ids.ts";
import type { ManifestEntry } from "./manifest.ts";
import { PathSelector } from "./patterns.ts";
import { type InitOptions, initRepository, type OpenOptions, Repository } from "./repository.ts";
import { extract, type ExtractOptions, type ExtractResult } from "./restorer.ts";
import type { RepoConfig } from "./repo_config.ts";

export type { BackupOptions, BackupResult, ExtractOptions, ExtractResult, InitOptions };

/** `vger init`. */
export function initCommand(backend: Backend, options: InitOptions): Promise<RepoConfig> {
  return initRepository(backend, options);
}

/** `vger backup`. */
export async function backupCommand(
  backend: Backend,
  options: BackupOptions & OpenOptions,
): Promise<BackupResult> {
  const repo = await Repository.open(backend, options);
  return await backup(repo, options);
}

/** `vger list` without an archive: the manifest's archives. */
export async function listArchivesCommand(
  backend: ReadonlyBackend,
  options: OpenOptions,
): Promise<ManifestEntry[]> {
  const repo = await Repository.open(backend, options);
  return (await repo.readManifest()).archives;
}

/** `vger list --archive NAME`: yields the archive's items (optionally filtered by globs). */
export async function* listItemsCommand(
  backend: ReadonlyBackend,
  options: OpenOptions & { archive: string; patterns?: string[] },
): AsyncGenerator<Item> {
  const repo = await Repository.open(backend, options);
  const meta = await repo.readArchive(await repo.findArchive(options.archive));
  const index = await repo.readIndex();
  const selector = new PathSelector(options.patterns ?? []);
  for (const id of meta.items) {
    const blob = await repo.readBlob(index, id, ObjectType.items);
    for (const item of decodeItems(blob, `Metadata blob ${toHex(id)}`)) {
      if (selector.selects(item.path)) yield item;
    }
  }
}

/** `vger delete`: removes archives from the manifest (data stays until compact). */
export async function deleteCommand(
  backend: Backend,
  options: OpenOptions & { names: readonly string[]; dryRun?: boolean },
): Promise<ManifestEntry[]> {
  const repo = await Repository.open(backend, options);
  return await deleteArchives(repo, options.names, { dryRun: options.dryRun });
}

/** What `vger prune` decided and did. */
export interface PruneResult {
  /** Every archive, newest first, with keep/prune and the rules that kept it. */
  decisions: RetentionDecision<ManifestEntry>[];
  /** The archives removed (none on a dry run). */
  deleted: ManifestEntry[];
}

/** `vger prune`: applies the retention policy and deletes what it does not keep. */
export async function pruneCommand(
  backend: Backend,
  options: OpenOptions & { policy: RetentionPolicy; dryRun?: boolean; now?: Date },
): Promise<PruneResult> {
  const repo = await Repository.open(backend, options);
  const manifest = await repo.readManifest();
  const decisions = applyRetention(manifest.archives, options.policy, {
    now: options.now ?? new Date(),
  });
  const drop = decisions.filter((d) => !d.keep).map((d) => d.archive.name);
  const deleted = options.dryRun || drop.length === 0 ? [] : await deleteArchives(repo, drop);
  return { decisions, deleted };
}

/** `vger extract`. */
export async function extractCommand(
  backend: ReadonlyBackend,
  options: ExtractOptions & OpenOptions,
): Promise<ExtractResult> {
  const repo = await Repository.open(backend, options);
  return await extract(repo, options);
}
