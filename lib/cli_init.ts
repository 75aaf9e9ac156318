/**
 * `vger config` and `vger init` on the command line: their glue, and their result as `--json` and
 * as text.
 *
 * @module
 */

import { initCommand } from "./commands.ts";
import { DEFAULT_CHUNKER_PARAMS } from "./chunker.ts";
import { bool, kdfFromFlags, str } from "./cli_command_line.ts";
import { type CliIo, emit, type Flags, passphraseFor, printJson, type Run } from "./cli_run.ts";
import { writeStarterConfig } from "./cli_starter_config.ts";
import { UsageError } from "./errors.ts";
import type { RepoConfig } from "./repo_config.ts";

/** `vger config --json`. */
export interface ConfigJson {
  /** The starter file written. */
  written: string;
}

/** The `--json` object of `vger config`. */
export function configJson(dest: string): ConfigJson {
  return { written: dest };
}

/** The line `vger config` prints (on stderr) after writing the starter file. */
export function configSummary(dest: string): string {
  return `Wrote ${dest}: set the repository path and source_directories, then run vger init`;
}

/** `vger init --json`. */
export interface InitJson {
  /** Repository path. */
  repository: string;
  /** Random repository id (hex). */
  id: string;
  /** Encryption mode. */
  encryption: string;
}

/** The `--json` object of `vger init`. */
export function initJson(repository: string, config: RepoConfig): InitJson {
  return { repository, id: config.id, encryption: config.encryption };
}

/** The line `vger init` prints (on stderr). */
export function initSummary(repository: string, config: RepoConfig): string {
  return `Created repository ${repository} (${config.encryption})`;
}

/** `vger config`: the starter file (needs no configuration and no repository). */
export async function runConfig(flags: Flags, io: CliIo): Promise<number> {
  const dest = str(flags, "dest") ?? "vger.yaml";
  await writeStarterConfig(dest);
  if (bool(flags, "json")) printJson(io, configJson(dest));
  else if (!bool(flags, "quiet")) io.err(configSummary(dest) + "\n");
  return 0;
}

/** `vger init`: creates the repository. */
export async function runInit(run: Run): Promise<number> {
  const { flags, repo, config } = run;
  const mode = str(flags, "encryption") ?? repo.encryption.mode;
  if (mode !== "aes256gcm" && mode !== "none") {
    throw new UsageError(`--encryption must be "aes256gcm" or "none", not "${mode}"`);
  }
  const pass = mode === "none" ? undefined : await passphraseFor(repo, config, true);
  if (mode !== "none" && pass === undefined) {
    throw new UsageError("A passphrase is needed: set VGER_PASSPHRASE or encryption.passphrase");
  }
  const cfg = await initCommand(await run.backend(), {
    ...run.trusting,
    encryption: mode,
    passphrase: pass,
    kdf: kdfFromFlags(flags),
    chunker: config?.chunker ?? DEFAULT_CHUNKER_PARAMS,
    minPackSize: repo.minPackSize,
    maxPackSize: repo.maxPackSize,
  });
  emit(run, () => initJson(repo.path, cfg), () => initSummary(repo.path, cfg), "err");
  return 0;
}
