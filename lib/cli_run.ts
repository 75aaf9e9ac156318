/**
 * The glue every command of the `vger` command line shares: where output goes
 * ({@linkcode CliIo}), one command's run against one repository ({@linkcode Run}: its flags, the
 * progress meter, warnings, the passphrase, the backend, locking and trust), and printing a result
 * as `--json` or as text lines (escaped for a terminal) unless `--quiet`. Each command's own glue
 * and rendering sit in its `cli_<command>.ts` module.
 *
 * @module
 */

import type { Backend } from "../backends/backend.ts";
import type { LockingOptions, TrustingOptions } from "./open_repository.ts";
import type { RepositoryConfig, VgerConfig } from "./config.ts";
import { bool, type CommandLine } from "./cli_command_line.ts";
import type { ProgressMeter } from "./cli_progress.ts";
import { UsageError } from "./errors.ts";
import { escapeControl } from "./printable.ts";
import { defaultSecretIo, resolvePassphrase, resolveToken } from "./secrets.ts";

/** Option values as parsed (see lib/cli_command_line.ts). */
export type Flags = CommandLine["flags"];

/** Where output goes; tests pass their own. */
export interface CliIo {
  /** Standard output. */
  out(text: string): void;
  /** Standard error. */
  err(text: string): void;
  /** Whether stderr is a terminal (progress). */
  isTerminal: boolean;
}

const encoder = new TextEncoder();

/** Standard output and standard error of this process. */
export const defaultIo: CliIo = {
  out: (t) => writeAll(Deno.stdout, t),
  err: (t) => writeAll(Deno.stderr, t),
  get isTerminal() {
    return Deno.stderr.isTerminal();
  },
};

/** Writes all of `text` to `f`. */
export function writeAll(f: { writeSync(b: Uint8Array): number }, text: string): void {
  const b = encoder.encode(text);
  for (let o = 0; o < b.length;) o += f.writeSync(b.subarray(o));
}

/** Asks a question on stderr and reads one line of the answer from stdin. */
export async function promptLine(prompt: string): Promise<string> {
  writeAll(Deno.stderr, prompt);
  const buf = new Uint8Array(256);
  const n = await Deno.stdin.read(buf);
  return n === null ? "" : new TextDecoder().decode(buf.subarray(0, n));
}

/** The passphrase of `repo`: configuration, environment, command or prompt (lib/secrets.ts). */
export function passphraseFor(
  repo: RepositoryConfig,
  config: VgerConfig | null,
  confirm: boolean,
): Promise<string | undefined> {
  return resolvePassphrase({
    repository: repo.label ?? repo.path,
    own: repo.encryption,
    top: config?.encryption,
    env: Deno.env.get("VGER_PASSPHRASE"),
    confirm,
  }, defaultSecretIo());
}

/**
 * The bearer token of a `rest` repository: `rest_token_command`'s output, else `rest_token`
 * (lib/secrets.ts); the REST backend asks for it on its first request.
 */
export function restTokenFor(repo: RepositoryConfig): () => Promise<string | undefined> {
  return () =>
    resolveToken({ ...repo.rest, repository: repo.label ?? repo.path }, defaultSecretIo());
}

/** One command run against one repository, with the glue every command shares. */
export interface Run {
  /** The whole command line as given (vger's arguments, without the program name). */
  argv: string[];
  /** The command's arguments (after the options). */
  args: string[];
  /** The options given. */
  flags: Flags;
  /** The configuration file read, if any. */
  config: VgerConfig | null;
  /** The repository this run is for. */
  repo: RepositoryConfig;
  /** Where output goes. */
  io: CliIo;
  /** The progress line, when shown. */
  meter: ProgressMeter | undefined;
  /** Prints a warning (clearing the progress line first) unless --quiet. */
  warn(message: string): void;
  /** The repository's passphrase, resolved when the repository turns out to need one. */
  passphrase(): Promise<string | undefined>;
  /** Opens the repository's backend (wrapped by the caller's `wrapBackend`, if any). */
  backend(): Promise<Backend>;
  /** --lock-wait, and each lock taken is released (at the latest) before the process exits. */
  locking: Required<LockingOptions>;
  /** The configured mode, this client's memory of repositories and --trust-repository. */
  trusting: TrustingOptions;
}

/** `--json`: the object on stdout; otherwise, unless `--quiet`, the lines on `to`. */
export function emit(
  run: Run,
  json: () => unknown,
  lines: () => string | string[],
  to: "out" | "err" = "out",
): void {
  if (bool(run.flags, "json")) printJson(run.io, json());
  else if (!bool(run.flags, "quiet")) printLines(run.io[to], lines());
}

/** Prints `value` as one line of JSON on stdout. */
export function printJson(io: CliIo, value: unknown): void {
  io.out(JSON.stringify(value) + "\n");
}

/** Prints each line, escaped for a terminal. */
export function printLines(write: (text: string) => void, lines: string | string[]): void {
  // text output: names in it may hold control characters, shown escaped (--json keeps them)
  for (const line of typeof lines === "string" ? [lines] : lines) {
    write(escapeControl(line) + "\n");
  }
}

/** The passphrase of `repo`, or a UsageError saying how to give one. */
export async function needPassphrase(
  repo: RepositoryConfig,
  config: VgerConfig | null,
): Promise<string> {
  const pass = await passphraseFor(repo, config, false);
  if (pass === undefined) {
    throw new UsageError(
      `A passphrase is needed for repository "${repo.path}": set VGER_PASSPHRASE, ` +
        "encryption.passcommand or encryption.passphrase, or run on a terminal",
    );
  }
  return pass;
}
