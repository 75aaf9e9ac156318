/**
 * vger: fast, encrypted, deduplicated backups for Deno.
 *
 * Library entry. Running this module as a program starts the command line
 * (`deno run -A jsr:@vger/cli backup ...`); importing it loads no CLI code (the command line's
 * `main` is the `@vger/cli/cli` export).
 *
 * Each command is a function: a backend (`openBackend`, `LocalBackend`, `MemoryBackend`) and an
 * options object in, a typed result out, a {@linkcode VgerError} subclass thrown. Backup,
 * extract, check and compact report `onProgress`; they and prune stop on an `AbortSignal`
 * (`signal`), rejecting with an {@linkcode InterruptedError} and committing nothing more. The
 * README's "Using vger from TypeScript" has a complete example.
 *
 * @example Back up a directory and restore it, from TypeScript
 * ```ts
 * import {
 *   backupCommand,
 *   extractCommand,
 *   initCommand,
 *   listArchivesCommand,
 *   LocalBackend,
 * } from "./mod.ts";
 *
 * const dir = await Deno.makeTempDir();
 * await Deno.mkdir(`${dir}/src`);
 * await Deno.writeTextFile(`${dir}/src/hello.txt`, "hello, vger\n");
 * const repo = new LocalBackend(`${dir}/repo`);
 * const passphrase = "correct horse battery staple";
 * // cheap key derivation for the example; the default is Argon2id t=3, m=64 MiB, p=4
 * const kdf = { iterations: 1, memoryKiB: 1024, parallelism: 1 };
 * await initCommand(repo, { encryption: "aes256gcm", passphrase, kdf });
 * const backup = await backupCommand(repo, {
 *   passphrase,
 *   name: "first",
 *   sources: [`${dir}/src`],
 *   compression: { algorithm: "lz4" },
 *   onProgress: (p) => void p.files, // files, bytes read, bytes stored so far
 * });
 * console.log(backup.stats.files); // the directory and its file: 2
 * const archives = await listArchivesCommand(repo, { passphrase });
 * await extractCommand(repo, { passphrase, archive: archives[0].name, dest: `${dir}/out` });
 * console.log(await Deno.readTextFile(`${dir}/out${dir}/src/hello.txt`)); // hello, vger
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @module
 */

export * from "./lib/errors.ts";
export type {
  Backend,
  BackendCapabilities,
  ComposePlan,
  ComposeRange,
  ComposeResult,
  GetOptions,
  ObjectInfo,
  ObjectStream,
  PutBody,
  ReadonlyBackend,
  StagedObject,
  StoragePolicy,
  StorageRole,
  StoredVersion,
  StreamBody,
  StreamOptions,
  StructureProblem,
  StructureReport,
} from "./backends/backend.ts";
export type { ArchiveMeta, Item, ItemType } from "./lib/archive.ts";
export type { BackupProgress } from "./lib/archiver.ts";
export type {
  Affected,
  BrokenArchive,
  CheckProgress,
  CheckResult,
  CheckStats,
  DamagedFile,
  Problem,
  ProblemKind,
  RepairResult,
  SalvagedPack,
  Severity,
  UnreadablePack,
} from "./lib/check_report.ts";
export { PROBLEM_KINDS } from "./lib/check_report.ts";
export type { CheckOptions } from "./lib/checker.ts";
export type { ChunkIndex, ChunkLocation } from "./lib/chunk_index.ts";
export type { Chunker, ChunkerParams } from "./lib/chunker.ts";
export type {
  CodecPool,
  HashedBlock,
  HashStream,
  SealedBlock,
  VerifyBatch,
} from "./lib/codec_pool.ts";
export type { BatchPart, BlockJob, ChunkRange, VerifyPart } from "./lib/codec_worker.ts";
export type { BackupOptions, BackupResult, ExtractOptions, ExtractResult } from "./lib/commands.ts";
export type { PreviousKeyFile } from "./lib/key_commands.ts";
export type {
  CompactionPlan,
  CompactionResult,
  CompactOptions,
  CompactProgress,
  CorruptBlob,
  PackUsage,
  PlanOptions,
} from "./lib/compactor.ts";
export type { CompressionAlgorithm, CompressionOptions } from "./lib/compress.ts";
export type {
  BackendKind,
  EncryptionConfig,
  RepositoryConfig,
  RestConfig,
  S3Config,
  VgerConfig,
} from "./lib/config.ts";
export type { EncryptionMode, ObjectTypeTag, RepoKey } from "./lib/crypto.ts";
export type { CacheHit, FilesCache, FileStamp } from "./lib/files_cache.ts";
export type { KdfParams } from "./lib/key_file.ts";
export type { ArchiveStats, Manifest, ManifestEntry } from "./lib/manifest.ts";
export type { RepoConfig } from "./lib/repo_config.ts";
export type { LockEntry, LockInfo, LockMode, RepoLock } from "./lib/repo_lock.ts";
export type { InitOptions, OpenOptions } from "./lib/repository.ts";
export type { ExtractProgress } from "./lib/restorer.ts";
export type { RetentionDecision, RetentionPolicy } from "./lib/retention.ts";
export type { PassphraseSettings, PassphraseSources, SecretIo } from "./lib/secrets.ts";
export { LocalBackend } from "./backends/local.ts";
export { MemoryBackend } from "./backends/memory.ts";
export { type BackendConfig, openBackend, type OpenBackendOptions } from "./backends/mod.ts";
export { initRepository, Repository } from "./lib/repository.ts";
export {
  backupCommand,
  breakLockCommand,
  checkCommand,
  compactCommand,
  deleteCommand,
  extractCommand,
  initCommand,
  listArchivesCommand,
  listItemsCommand,
  pruneCommand,
  repairCommand,
} from "./lib/commands.ts";
export {
  keyChangePassphraseCommand,
  keyExportCommand,
  keyImportCommand,
} from "./lib/key_commands.ts";
export { rollbackCommand, versionsCommand } from "./lib/version_commands.ts";
export { parseConfig } from "./lib/config.ts";
export { selectRepositories } from "./lib/config_select.ts";
export { loadConfigFile } from "./lib/config_file.ts";
export { resolvePassphrase } from "./lib/secrets.ts";

// types the public API refers to (deno doc --lint: no private types in the public API)
export type { IndexRebuildNotice, PruneResult } from "./lib/commands.ts";
export type {
  KeyChangePassphraseOptions,
  KeyChangePassphraseResult,
  KeyExportOptions,
  KeyImportOptions,
  KeyImportResult,
} from "./lib/key_commands.ts";
export type { LockingOptions, TrustingOptions } from "./lib/open_repository.ts";
export type { RollbackOptions, RollbackResult } from "./lib/version_commands.ts";
export { ObjectType } from "./lib/crypto.ts";

// Run as a program, this module starts the command line; imported, it loads none of it (the CLI's
// own API is the package's `./cli` export).
if (import.meta.main) await (await import("./cli.ts")).runCli();
