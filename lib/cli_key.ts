/**
 * `vger key change-passphrase | export | import` on the command line: their glue (the new
 * passphrase, the key file read and written) and their result as `--json` and as text.
 *
 * @module
 */

import {
  keyChangePassphraseCommand,
  type KeyChangePassphraseResult,
  keyExportCommand,
  keyImportCommand,
  type KeyImportResult,
} from "./key_commands.ts";
import { bool, kdfFromFlags, str } from "./cli_command_line.ts";
import { emit, needPassphrase, type Run } from "./cli_run.ts";
import { errorMessage, UsageError } from "./errors.ts";
import { MAX_KEY_FILE_BYTES } from "./key_file.ts";
import { defaultSecretIo, resolvePassphrase } from "./secrets.ts";

/** `vger key change-passphrase --json`. */
export interface KeyChangePassphraseJson {
  /** Repository path. */
  repository: string;
  /** Always true: the passphrase was changed. */
  changed: true;
  /** The Argon2id costs the key file is now wrapped with. */
  kdf: { memory_kib: number; iterations: number; parallelism: number };
}

/** The `--json` object of `vger key change-passphrase`. */
export function keyChangePassphraseJson(
  repository: string,
  result: KeyChangePassphraseResult,
): KeyChangePassphraseJson {
  return {
    repository,
    changed: true,
    kdf: {
      memory_kib: result.kdf.memoryKiB,
      iterations: result.kdf.iterations,
      parallelism: result.kdf.parallelism,
    },
  };
}

/** The line `vger key change-passphrase` prints (on stderr). */
export function keyChangePassphraseSummary(repository: string): string {
  return `Changed the passphrase of ${repository}; earlier key exports still open it with the old one`;
}

/** `vger key export --json`. */
export interface KeyExportJson {
  /** Repository path. */
  repository: string;
  /** The file the key was written to. */
  written: string;
}

/** The `--json` object of `vger key export`. */
export function keyExportJson(repository: string, dest: string): KeyExportJson {
  return { repository, written: dest };
}

/** The line `vger key export` prints (on stderr). */
export function keyExportSummary(repository: string, dest: string): string {
  return `Wrote the key of ${repository} to ${dest}; keep it and the passphrase, apart`;
}

/** `vger key import --json`. */
export interface KeyImportJson {
  /** Repository path. */
  repository: string;
  /** The file imported. */
  imported: string;
  /** What the key file was before: missing, damaged, intact or identical. */
  previous: KeyImportResult["previous"];
}

/** The `--json` object of `vger key import`. */
export function keyImportJson(
  repository: string,
  result: KeyImportResult,
  options: { file: string },
): KeyImportJson {
  return { repository, imported: options.file, previous: result.previous };
}

/** The line `vger key import` prints (on stderr). */
export function keyImportSummary(
  repository: string,
  result: KeyImportResult,
  options: { file: string },
): string {
  return result.previous === "identical"
    ? `The key file of ${repository} already is ${options.file}: nothing changed`
    : `Imported ${options.file} as the key of ${repository} (the old one was ${result.previous})`;
}

/** `vger key change-passphrase | export --dest FILE | import FILE`. */
export async function runKey(run: Run): Promise<number> {
  const { flags, config, repo } = run;
  const [sub, ...rest] = run.args;
  const backend = await run.backend();
  const say = (json: () => unknown, text: () => string) => emit(run, json, text, "err");
  switch (sub) {
    case "change-passphrase": {
      // asked for by the command, after it checked that the repository may change
      const passphrase = () => needPassphrase(repo, config);
      const newPassphrase = async () => {
        const p = await resolvePassphrase({
          repository: repo.label ?? repo.path,
          env: Deno.env.get("VGER_NEW_PASSPHRASE"),
          envName: "VGER_NEW_PASSPHRASE",
          confirm: true,
          promptText: `New passphrase for ${repo.label ?? repo.path}: `,
        }, defaultSecretIo());
        if (p === undefined) {
          throw new UsageError(
            "A new passphrase is needed: set VGER_NEW_PASSPHRASE or run on a terminal",
          );
        }
        return p;
      };
      const kdfGiven = ["kdf-memory", "kdf-iterations", "kdf-parallelism"].some((k) =>
        str(flags, k) !== undefined
      );
      const r = await keyChangePassphraseCommand(backend, {
        ...run.locking,
        ...run.trusting,
        passphrase,
        newPassphrase,
        kdf: kdfGiven ? kdfFromFlags(flags) : undefined,
      });
      say(
        () => keyChangePassphraseJson(repo.path, r),
        () => keyChangePassphraseSummary(repo.path),
      );
      return 0;
    }
    case "export": {
      const dest = str(flags, "dest") ?? rest[0];
      if (!dest) throw new UsageError("key export needs --dest FILE");
      const bytes = await keyExportCommand(backend, {
        ...run.trusting,
        passphrase: await needPassphrase(repo, config),
      });
      try {
        await Deno.writeFile(dest, bytes, { createNew: true, mode: 0o600 });
      } catch (err) {
        throw new UsageError(`Cannot write the key export "${dest}": ${errorMessage(err)}`, {
          cause: err,
        });
      }
      say(
        () => keyExportJson(repo.path, dest),
        () => keyExportSummary(repo.path, dest),
      );
      return 0;
    }
    case "import": {
      const file = rest[0];
      if (!file) throw new UsageError("key import needs FILE (a file written by vger key export)");
      // Read at most one byte past the largest key file: FILE may be huge or endless.
      const keyFile = new Uint8Array(MAX_KEY_FILE_BYTES + 1);
      let keyLength = 0;
      try {
        using f = await Deno.open(file);
        while (keyLength < keyFile.length) {
          const n = await f.read(keyFile.subarray(keyLength));
          if (n === null) break;
          keyLength += n;
        }
      } catch (err) {
        throw new UsageError(`Cannot read the key file "${file}": ${errorMessage(err)}`, {
          cause: err,
        });
      }
      if (keyLength > MAX_KEY_FILE_BYTES) {
        throw new UsageError(
          `Cannot import the key file "${file}": larger than ${MAX_KEY_FILE_BYTES} bytes, so not a vger key file`,
        );
      }
      const r = await keyImportCommand(backend, {
        ...run.locking,
        ...run.trusting,
        keyFile: keyFile.subarray(0, keyLength),
        passphrase: () => needPassphrase(repo, config),
        force: bool(flags, "force"),
        source: `"${file}"`,
      });
      say(
        () => keyImportJson(repo.path, r, { file }),
        () => keyImportSummary(repo.path, r, { file }),
      );
      return 0;
    }
    default:
      throw new UsageError(
        `key needs a subcommand: change-passphrase, export or import${
          sub ? `, not "${sub}"` : ""
        } (see vger key --help)`,
      );
  }
}
