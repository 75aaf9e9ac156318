/**
 * The command line's grammar: every command with its options, defaults and help, in one table
 * that both the parser and `--help` read, so the two cannot disagree. Pure: no I/O.
 *
 * Options may come before or after the command (`vger --json list` = `vger list --json`); an
 * option that the command does not take is a usage error, as in restic.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { UsageError } from "./errors.ts";
import { closest } from "./suggest.ts";
import { DEFAULT_KDF, type KdfParams } from "./key_file.ts";

/** One option of the command line. */
export interface OptionSpec {
  /** Long name without the dashes. */
  name: string;
  /** One-letter alias. */
  short?: string;
  /** A flag takes no value. */
  type: "string" | "boolean";
  /** May be given several times. */
  multiple?: boolean;
  /** Name of the value in help (`--dest DIR`). */
  value?: string;
  /** One line of help. */
  help: string;
  /** The default, as shown in help. */
  default?: string;
}

/** One command. */
export interface CommandSpec {
  /** As typed. */
  name: string;
  /** Positional arguments in the usage line. */
  args: string;
  /** One line for the command list. */
  summary: string;
  /** A few lines for `vger COMMAND --help`. */
  description: string;
  /** Options of this command (the global ones come on top). */
  options: OptionSpec[];
}

const ARCHIVE: OptionSpec = {
  name: "archive",
  short: "a",
  type: "string",
  value: "NAME",
  help: "the archive",
};
const DRY_RUN: OptionSpec = {
  name: "dry-run",
  type: "boolean",
  help: "only show what would happen",
};
const LOCK_WAIT: OptionSpec = {
  name: "lock-wait",
  type: "string",
  value: "SECONDS",
  help: "wait this long for another process's lock",
  default: "0: fail at once",
};
const KDF: OptionSpec[] = [
  {
    name: "kdf-memory",
    type: "string",
    value: "KIB",
    help: "Argon2id memory in KiB",
    default: String(DEFAULT_KDF.memoryKiB),
  },
  {
    name: "kdf-iterations",
    type: "string",
    value: "N",
    help: "Argon2id iterations",
    default: String(DEFAULT_KDF.iterations),
  },
  {
    name: "kdf-parallelism",
    type: "string",
    value: "N",
    help: "Argon2id lanes",
    default: String(DEFAULT_KDF.parallelism),
  },
];

/** Options every command takes. */
export const GLOBAL_OPTIONS: readonly OptionSpec[] = [
  {
    name: "config",
    short: "c",
    type: "string",
    value: "FILE",
    help: "configuration file",
    default: "VGER_CONFIG, ./vger.yaml, ~/.config/vger/config.yaml, /etc/vger/config.yaml",
  },
  {
    name: "repo",
    short: "R",
    type: "string",
    value: "LABEL|PATH",
    help: "only this repository: a label of the configuration, or a path",
    default: "all configured repositories",
  },
  {
    name: "json",
    type: "boolean",
    help: "machine-readable output: one JSON document per repository, one per line",
  },
  { name: "quiet", short: "q", type: "boolean", help: "no progress, no summary, no warnings" },
  {
    name: "no-lock",
    type: "boolean",
    help: "take no repository lock (list, extract and check only: a read-only repository)",
  },
  { name: "progress", type: "boolean", help: "show progress even when not on a terminal" },
  { name: "verbose", short: "v", type: "boolean", help: "say which configuration file is used" },
  {
    name: "trust-repository",
    type: "boolean",
    help: "accept a repository whose id, encryption or key changed, or whose manifest is " +
      "older than the newest seen, and remember it as it is now",
  },
  { name: "help", short: "h", type: "boolean", help: "show help" },
  { name: "version", short: "V", type: "boolean", help: "print the version" },
];

/** Every command, in the order `vger --help` lists them. */
export const COMMANDS: readonly CommandSpec[] = [
  {
    name: "config",
    args: "",
    summary: "write a commented starter configuration file",
    description: "Writes a starter vger.yaml with every option, its default and an explanation.\n" +
      "Refuses to overwrite an existing file.",
    options: [{
      name: "dest",
      type: "string",
      value: "PATH",
      help: "where to write it",
      default: "./vger.yaml",
    }],
  },
  {
    name: "init",
    args: "",
    summary: "create a repository",
    description: "Creates the repository and its key, protected by the passphrase (asked twice\n" +
      "on a terminal, or from the configuration or VGER_PASSPHRASE).",
    options: [
      {
        name: "encryption",
        type: "string",
        value: "MODE",
        help: "aes256gcm or none",
        default: "encryption.mode of the configuration, else aes256gcm",
      },
      ...KDF,
    ],
  },
  {
    name: "backup",
    args: "[PATHS...]",
    summary: "back up PATHS (default: source_directories of the configuration)",
    description: "Stores the files, directories and symlinks below PATHS as a new archive.\n" +
      "Exit code 3 when some files were skipped (unreadable, vanished, sockets).",
    options: [
      {
        ...ARCHIVE,
        help: "archive name",
        default: "archive_name_format of the configuration",
      },
      {
        name: "compression",
        type: "string",
        value: "ALG",
        help: "lz4, zstd or none",
        default: "compression.algorithm of the configuration, else lz4",
      },
      {
        name: "no-files-cache",
        type: "boolean",
        help: "read every file, even those unchanged since the last backup",
      },
      {
        name: "exclude",
        short: "e",
        type: "string",
        multiple: true,
        value: "PATTERN",
        help: "exclude paths matching PATTERN (repeatable; adds to exclude_patterns)",
      },
      LOCK_WAIT,
    ],
  },
  {
    name: "list",
    args: "[PATTERNS...]",
    summary: "list archives; with --archive NAME, the files of one archive",
    description: "Without --archive: every archive with its time, host and size.\n" +
      "With --archive NAME: its files (ls -l style), only those matching PATTERNS if given.",
    options: [ARCHIVE],
  },
  {
    name: "extract",
    args: "[PATTERNS...]",
    summary: "restore an archive (or the paths matching PATTERNS) into a directory",
    description:
      "Restores contents, modes, times, owners (as root), symlinks, holes and xattrs.\n" +
      "Never writes outside --dest; existing files are kept unless --overwrite.",
    options: [
      { ...ARCHIVE, help: "the archive (required)" },
      { name: "dest", type: "string", value: "DIR", help: "where to restore (required)" },
      { name: "overwrite", type: "boolean", help: "replace existing files" },
      LOCK_WAIT,
    ],
  },
  {
    name: "delete",
    args: "",
    summary: "delete archives",
    description: "Removes archives from the manifest; run compact afterwards to free the space.",
    options: [
      { ...ARCHIVE, multiple: true, help: "an archive to delete (repeat for several)" },
      DRY_RUN,
      LOCK_WAIT,
    ],
  },
  {
    name: "prune",
    args: "",
    summary: "delete the archives the retention policy does not keep",
    description:
      "Applies the retention settings (keep_last, keep_daily, ...) as restic's forget\n" +
      "does. An empty policy prunes nothing. Run compact afterwards to free the space.",
    options: [
      DRY_RUN,
      { name: "list", type: "boolean", help: "show every archive with keep/prune and the rule" },
      LOCK_WAIT,
    ],
  },
  {
    name: "compact",
    args: "",
    summary: "free space: rewrite or delete packs with unused data",
    description: "Deletes packs that hold no used data and rewrites packs whose unused share is\n" +
      "at least --threshold percent.",
    options: [
      {
        name: "threshold",
        type: "string",
        value: "PERCENT",
        help: "rewrite packs with at least this much unused space",
        default: "20",
      },
      { ...DRY_RUN, help: "only show the plan" },
      {
        name: "no-server-side",
        type: "boolean",
        help: "copy live data through this client even where the server can compose packs",
      },
      LOCK_WAIT,
    ],
  },
  {
    name: "check",
    args: "",
    summary: "verify the repository",
    description: "Checks that every archive's data is present and the structures are sound;\n" +
      "--verify-data also reads, decrypts and re-hashes every blob. Exit code 1 on errors.",
    options: [
      { name: "verify-data", type: "boolean", help: "read, decrypt and re-hash every blob" },
      {
        name: "repair",
        type: "boolean",
        help: "rebuild the index, salvage damaged packs, offer to drop unreadable archives",
      },
      { name: "yes", type: "boolean", help: "with --repair: drop such archives without asking" },
      { ...DRY_RUN, help: "with --repair: only report" },
      LOCK_WAIT,
    ],
  },
  {
    name: "break-lock",
    args: "",
    summary: "remove stale locks (--all: every lock)",
    description: "Removes locks whose process is gone or whose time ran out; with --all, every\n" +
      "lock (make sure no other vger uses the repository).",
    options: [{ name: "all", type: "boolean", help: "remove every lock, stale or not" }],
  },
  {
    name: "versions",
    args: "",
    summary: "list the versions of manifest and index a vger-server keeps, newest first",
    description: "Each version is a manifest the server kept, with the index it was committed\n" +
      "with; vger rollback ID makes one current again. Needs a vger-server (backend: rest).",
    options: [],
  },
  {
    name: "rollback",
    args: "ID",
    summary: "make a kept version of manifest and index current again",
    description: "Writes the version's manifest and index as a new commit (also in append-only\n" +
      "mode), with a fresh counter that other clients accept. Needs a vger-server.",
    options: [
      {
        name: "force",
        type: "boolean",
        help: "roll back even when packs or archives the version names are gone",
      },
      LOCK_WAIT,
    ],
  },
  {
    name: "key",
    args: "change-passphrase | export | import FILE",
    summary: "manage the repository key: change-passphrase, export, import",
    description: "change-passphrase: re-wraps the key under a new passphrase (asked twice, or\n" +
      "  VGER_NEW_PASSPHRASE).\n" +
      "export --dest FILE: writes the wrapped key for safekeeping (still needs the passphrase).\n" +
      "import FILE: restores a lost or damaged keys/repokey from such an export.",
    options: [
      { name: "dest", type: "string", value: "FILE", help: "export: where to write the key" },
      { name: "force", type: "boolean", help: "import: replace a key file that is still valid" },
      ...KDF.map((o) => ({ ...o, help: `change-passphrase: ${o.help}` })),
      LOCK_WAIT,
    ],
  },
];

/** What the parser found. */
export interface CommandLine {
  /** The command, or undefined for a bare `vger` / `vger --help`. */
  command?: CommandSpec;
  /** Option values by long name (strings, booleans, or string lists for repeatable ones). */
  flags: Record<string, string | boolean | string[] | undefined>;
  /** Arguments after the command. */
  args: string[];
}

/** Parses argv against the table; a usage error names the bad option or command. */
export function parseCommandLine(argv: string[]): CommandLine {
  const all = new Map<string, OptionSpec>();
  for (const o of [...GLOBAL_OPTIONS, ...COMMANDS.flatMap((c) => c.options)]) all.set(o.name, o);
  const options: Record<
    string,
    { type: "string" | "boolean"; short?: string; multiple?: boolean }
  > = {};
  for (const o of all.values()) {
    options[o.name] = {
      type: o.type,
      ...(o.short ? { short: o.short } : {}),
      ...(o.multiple ? { multiple: true } : {}),
    };
  }
  // `--lock-wait -1` is a bad value, not an ambiguous option: a value that looks like a negative
  // number goes to the string option before it, so that the option's own check names it
  const words: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const spec = argv[i].startsWith("--") ? all.get(argv[i].slice(2)) : undefined;
    if (spec?.type === "string" && /^-\d/.test(argv[i + 1] ?? "")) {
      words.push(`${argv[i]}=${argv[++i]}`);
    } else words.push(argv[i]);
  }
  let parsed;
  try {
    parsed = parseArgs({ args: words, options, allowPositionals: true, strict: true });
  } catch (cause) {
    throw new UsageError(`${(cause as Error).message.split("\n")[0]} (see vger --help)`, {
      cause,
    });
  }
  const [name, ...args] = parsed.positionals;
  const flags = parsed.values as CommandLine["flags"];
  if (name === undefined) return { flags, args };
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) {
    const near = closest(name, COMMANDS.map((c) => c.name));
    throw new UsageError(
      `Unknown command "${name}"${near ? ` (did you mean "${near}"?)` : ""} (see vger --help)`,
    );
  }
  const allowed = new Set([...GLOBAL_OPTIONS, ...command.options].map((o) => o.name));
  for (const [key, value] of Object.entries(flags)) {
    if (value !== undefined && !allowed.has(key)) {
      throw new UsageError(`${name} does not take --${key} (see vger ${name} --help)`);
    }
  }
  return { command, flags, args };
}

function optionLines(options: readonly OptionSpec[]): string[] {
  const rows = options.map((o) => {
    const left = `${o.short ? `-${o.short}, ` : "    "}--${o.name}${o.value ? ` ${o.value}` : ""}`;
    const right = `${o.help}${o.multiple && !o.help.includes("repeat") ? " (repeatable)" : ""}${
      o.default ? ` [default: ${o.default}]` : ""
    }`;
    return [left, right];
  });
  const width = Math.max(...rows.map(([l]) => l.length)) + 2;
  return rows.map(([l, r]) => `  ${l.padEnd(width)}${r}`);
}

/** `vger --help` (no command) or `vger COMMAND --help`. */
export function helpText(version: string, command?: CommandSpec): string {
  if (command) {
    return [
      `Usage: vger ${command.name} [OPTIONS]${command.args ? ` ${command.args}` : ""}`,
      "",
      command.description,
      "",
      "Options:",
      ...optionLines(command.options),
      "",
      "Global options:",
      ...optionLines(GLOBAL_OPTIONS),
      "",
    ].join("\n");
  }
  const width = Math.max(...COMMANDS.map((c) => c.name.length)) + 2;
  return [
    `vger ${version}: fast, encrypted, deduplicated backups`,
    "",
    "Usage: vger [OPTIONS] COMMAND [OPTIONS] [ARGS]",
    "",
    "Commands:",
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}${c.summary}`),
    "",
    "Global options:",
    ...optionLines(GLOBAL_OPTIONS),
    "",
    "vger COMMAND --help shows the options of a command.",
    "Environment: VGER_CONFIG (configuration file), VGER_PASSPHRASE (passphrase).",
    "Exit codes: 0 ok, 1 error, 2 usage or configuration error, 3 finished with warnings,",
    "130 interrupted.",
    "",
  ].join("\n");
}

/** A string option's value. */
export function str(flags: CommandLine["flags"], name: string): string | undefined {
  const v = flags[name];
  return typeof v === "string" ? v : undefined;
}

/** Whether a flag is set. */
export function bool(flags: CommandLine["flags"], name: string): boolean {
  return flags[name] === true;
}

/** A repeatable option's values. */
export function list(flags: CommandLine["flags"], name: string): string[] {
  const v = flags[name];
  return Array.isArray(v) ? v : [];
}

/** The one archive a command works on (`--archive` given at most once). */
export function oneArchive(flags: CommandLine["flags"], command: string): string | undefined {
  const a = list(flags, "archive");
  if (a.length > 1) throw new UsageError(`${command} takes one --archive, not ${a.length}`);
  return a[0];
}

/** A whole-number option (`dflt` when absent); anything else is a usage error naming it. */
export function intFlag(flags: CommandLine["flags"], name: string, dflt: number): number {
  const v = str(flags, name);
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!/^\d+$/.test(v.trim()) || !Number.isSafeInteger(n)) {
    throw new UsageError(`--${name} takes a whole number, not "${v}"`);
  }
  return n;
}

/** The Argon2id costs from --kdf-memory, --kdf-iterations and --kdf-parallelism. */
export function kdfFromFlags(flags: CommandLine["flags"]): KdfParams {
  return {
    memoryKiB: intFlag(flags, "kdf-memory", DEFAULT_KDF.memoryKiB),
    iterations: intFlag(flags, "kdf-iterations", DEFAULT_KDF.iterations),
    parallelism: intFlag(flags, "kdf-parallelism", DEFAULT_KDF.parallelism),
  };
}

/** --lock-wait in seconds (0 when absent): a number >= 0, else a usage error naming it. */
export function lockWaitSeconds(flags: CommandLine["flags"]): number {
  const v = str(flags, "lock-wait");
  if (v === undefined) return 0;
  const n = Number(v);
  if (!/^\d+(\.\d+)?$/.test(v) || !Number.isFinite(n)) {
    throw new UsageError(`--lock-wait: expected seconds >= 0, got ${v}`);
  }
  return n;
}

/** --threshold as a percentage from 0 to 100, or undefined when absent. */
export function thresholdFlag(flags: CommandLine["flags"]): number | undefined {
  const v = str(flags, "threshold");
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === "" || !(n >= 0 && n <= 100)) {
    throw new UsageError(`--threshold takes a percentage from 0 to 100, not "${v}"`);
  }
  return n;
}
