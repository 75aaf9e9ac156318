/**
 * vger: fast, encrypted, deduplicated backups for Deno.
 *
 * Library entry. Running this module as a program starts the command line
 * (`deno run -A jsr:@vger/cli backup ...`); importing it has no side effects.
 *
 * @example
 * ```ts ignore
 * import { initRepository, MemoryBackend } from "@vger/cli";
 * const backend = new MemoryBackend();
 * await initRepository(backend, { encryption: "none" });
 * ```
 *
 * @module
 */

export * from "./lib/errors.ts";
export type { Backend, ObjectInfo, PutBody, ReadonlyBackend } from "./backends/backend.ts";
export { LocalBackend } from "./backends/local.ts";
export { MemoryBackend } from "./backends/memory.ts";
export { initRepository, Repository } from "./lib/repository.ts";
export type { InitOptions, OpenOptions } from "./lib/repository.ts";
export {
  backupCommand,
  extractCommand,
  listArchivesCommand,
  listItemsCommand,
} from "./lib/commands.ts";
export type { BackupOptions, BackupResult, ExtractOptions, ExtractResult } from "./lib/commands.ts";
export { main, runCli } from "./cli.ts";
import { runCli } from "./cli.ts";

if (import.meta.main) await runCli();
