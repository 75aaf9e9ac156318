/**
 * Where passphrases and tokens come from: configuration values, `VGER_PASSPHRASE`, commands
 * such as `pass show vger` (passcommand, rest_token_command) and a prompt without echo.
 *
 * A command is split into words the way a POSIX shell splits a simple command (see
 * {@linkcode splitCommandLine}) and run WITHOUT a shell: `|`, `;`, `&&`, `$VAR`, `~` and `*` are
 * plain characters. Whoever needs a pipeline or a variable writes `sh -c 'pass show vger | head
 * -n 1'`. The command's standard input is the terminal (so that gpg's pinentry can ask), its
 * standard error is captured and quoted when the command fails.
 *
 * The functions that decide ({@linkcode resolvePassphrase}, {@linkcode resolveToken}) take the
 * outside world as a {@linkcode SecretIo}, so that they are tested without processes or a
 * terminal; {@linkcode defaultSecretIo} is the real one.
 *
 * @example Resolve a passphrase from settings and the environment
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { resolvePassphrase, type SecretIo } from "./secrets.ts";
 *
 * const io: SecretIo = {
 *   run: () => Promise.resolve("from the command"),
 *   prompt: () => Promise.resolve(undefined),
 * };
 * const pass = await resolvePassphrase(
 *   { repository: "main", env: "from the environment", top: { passcommand: "pass show vger" } },
 *   io,
 * );
 * equal(pass, "from the environment");
 * ```
 *
 * @module
 */

import { errorMessage, InterruptedError, UsageError } from "./errors.ts";

/** Longest quote of a failed command's standard error in a message. */
const MAX_STDERR_QUOTE = 300;

/**
 * Splits a command into words like a POSIX shell splits a simple command: blanks (space, tab,
 * newline) separate words; single quotes keep everything literally; double quotes keep
 * everything but `\"`, `\\`, `\$` and `` \` `` (a backslash before anything else stays); outside
 * quotes a backslash escapes the next character; backslash-newline is removed. There is no
 * globbing, no variable, tilde or command expansion, no comment, and no operator: `|`, `;` and
 * `&&` are ordinary characters. An unterminated quote is a UsageError.
 */
export function splitCommandLine(command: string): string[] {
  const words: string[] = [];
  let word = "";
  // a word exists once anything (even an empty quote pair) has been read since the last blank
  let inWord = false;
  let i = 0;
  while (i < command.length) {
    const c = command[i];
    if (c === " " || c === "\t" || c === "\n") {
      if (inWord) words.push(word);
      word = "";
      inWord = false;
      i++;
    } else if (c === "\\" && command[i + 1] === "\n") {
      i += 2; // line continuation: joins, and starts no word by itself
    } else if (c === "\\") {
      // a backslash at the very end stays, as in sh
      word += i + 1 < command.length ? command[i + 1] : "\\";
      inWord = true;
      i += 2;
    } else if (c === "'") {
      const end = command.indexOf("'", i + 1);
      if (end < 0) throw new UsageError("Command has an unterminated single quote");
      word += command.slice(i + 1, end);
      inWord = true;
      i = end + 1;
    } else if (c === '"') {
      inWord = true;
      i++;
      for (;;) {
        if (i >= command.length) throw new UsageError("Command has an unterminated double quote");
        const d = command[i];
        if (d === '"') {
          i++;
          break;
        }
        const e = command[i + 1];
        if (d === "\\" && e === "\n") {
          i += 2;
        } else if (d === "\\" && e !== undefined && '"\\$`'.includes(e)) {
          word += e;
          i += 2;
        } else {
          word += d;
          i++;
        }
      }
    } else {
      word += c;
      inWord = true;
      i++;
    }
  }
  if (inWord) words.push(word);
  return words;
}

/** A message's first letter in lower case, to continue a sentence with it. */
function continuing(message: string): string {
  return message.charAt(0).toLowerCase() + message.slice(1);
}

/** A command's standard error as one line: its non-empty lines joined, cut to a sane length. */
function stderrQuote(stderr: Uint8Array): string {
  const text = new TextDecoder().decode(stderr).split(/\r?\n/).map((l) => l.trim())
    .filter((l) => l !== "").join("; ");
  return text.length > MAX_STDERR_QUOTE ? `${text.slice(0, MAX_STDERR_QUOTE)}...` : text;
}

/**
 * Runs a command that prints a secret, without a shell (see {@linkcode splitCommandLine}), and
 * returns its standard output minus one trailing newline. Standard input is the terminal when
 * there is one (pass and gpg ask through pinentry), otherwise nothing; standard error is
 * captured. `what` names the command in messages, e.g. `passcommand "pass show vger"`. Failing to
 * start, a non-zero exit, a signal, empty output or output that is not UTF-8 is a one-line
 * UsageError that quotes the command's standard error.
 */
export async function runSecretCommand(command: string, what: string): Promise<string> {
  let argv: string[];
  try {
    argv = splitCommandLine(command);
  } catch (cause) {
    throw new UsageError(`Cannot run the ${what}: ${continuing(errorMessage(cause))}`, { cause });
  }
  if (argv.length === 0) throw new UsageError(`Cannot run the ${what}: the command is empty`);
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command(argv[0], {
      args: argv.slice(1),
      // a piped-in stdin belongs to vger's caller, not to the passcommand
      stdin: Deno.stdin.isTerminal() ? "inherit" : "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
  } catch (cause) {
    const why = cause instanceof Deno.errors.NotFound
      ? `"${argv[0]}" not found`
      : cause instanceof Deno.errors.PermissionDenied
      ? `"${argv[0]}" is not executable`
      : cause instanceof Deno.errors.NotCapable
      ? `running "${argv[0]}" is not allowed (add --allow-run)`
      : errorMessage(cause);
    throw new UsageError(`Cannot run the ${what}: ${why}`, { cause });
  }
  const stderr = stderrQuote(out.stderr);
  if (!out.success) {
    const how = out.signal !== null
      ? `was killed by ${out.signal}`
      : `failed with exit code ${out.code}`;
    throw new UsageError(`The ${what} ${how}${stderr ? `: ${stderr}` : ""}`);
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(out.stdout);
  } catch (cause) {
    throw new UsageError(`The ${what} printed bytes that are not UTF-8 text`, { cause });
  }
  const secret = text.replace(/\r?\n$/, "");
  if (secret === "") {
    throw new UsageError(`The ${what} printed nothing${stderr ? `: ${stderr}` : ""}`);
  }
  return secret;
}

/** The terminal a prompt talks to; injectable for tests. */
export interface SecretTerminal {
  /** Whether input comes from a terminal (no prompt otherwise). */
  isTerminal(): boolean;
  /** Switches raw mode (no echo, no line editing, Ctrl-C as a byte) on or off. */
  setRaw(raw: boolean): void;
  /** Reads some bytes; null at the end of input. */
  read(buffer: Uint8Array): Promise<number | null>;
  /** Shows text to the user. */
  write(text: string): void;
}

/** Standard input for keys, standard error for the prompt. */
function denoTerminal(): SecretTerminal {
  const encoder = new TextEncoder();
  return {
    isTerminal: () => Deno.stdin.isTerminal(),
    setRaw: (raw) => Deno.stdin.setRaw(raw),
    read: (buffer) => Deno.stdin.read(buffer),
    write: (text) => {
      const b = encoder.encode(text);
      for (let o = 0; o < b.length;) o += Deno.stderr.writeSync(b.subarray(o));
    },
  };
}

/** Options of {@linkcode promptSecret}. */
export interface PromptOptions {
  /** The terminal (default: standard input and standard error). */
  terminal?: SecretTerminal;
}

const ENTER = 13;
const NEWLINE = 10;
const CTRL_C = 3;
const CTRL_D = 4;
const CTRL_U = 21;
const BACKSPACE = 127;
const CTRL_H = 8;
const ESCAPE = 27;
const TAB = 9;

/**
 * Asks for a secret on a terminal without echoing it; undefined when input is not a terminal.
 * Enter, Ctrl-D or the end of input finish the entry; Backspace removes a character, Ctrl-U the
 * whole entry; Ctrl-C throws InterruptedError. Escape sequences (arrow keys) and other control
 * characters are ignored.
 */
export async function promptSecret(
  text: string,
  options: PromptOptions = {},
): Promise<string | undefined> {
  const term = options.terminal ?? denoTerminal();
  if (!term.isTerminal()) return undefined;
  term.write(text);
  term.setRaw(true);
  const bytes: number[] = [];
  // 0: normal; 1: after ESC; 2: inside a CSI sequence (ESC [ ... final byte); 3: after ESC O
  let escape = 0;
  const buffer = new Uint8Array(256);
  try {
    outer: for (;;) {
      const n = await term.read(buffer);
      if (n === null) break;
      for (const c of buffer.subarray(0, n)) {
        if (escape === 1) {
          escape = c === 0x5b ? 2 : c === 0x4f ? 3 : 0;
          continue;
        }
        if (escape === 2) {
          if (c >= 0x40 && c <= 0x7e) escape = 0;
          continue;
        }
        if (escape === 3) {
          escape = 0;
          continue;
        }
        if (c === ENTER || c === NEWLINE || c === CTRL_D) break outer;
        if (c === CTRL_C) throw new InterruptedError("Interrupted at the passphrase prompt");
        if (c === BACKSPACE || c === CTRL_H) {
          // one character, which in UTF-8 is a lead byte and its continuation bytes
          while (bytes.length > 0 && (bytes.pop()! & 0xc0) === 0x80);
        } else if (c === CTRL_U) {
          bytes.length = 0;
        } else if (c === ESCAPE) {
          escape = 1;
        } else if (c >= 32 || c === TAB) {
          bytes.push(c);
        }
      }
    }
  } finally {
    term.setRaw(false);
    term.write("\n");
  }
  return new TextDecoder().decode(new Uint8Array(bytes));
}

/** How secrets reach vger from outside: commands and the prompt. */
export interface SecretIo {
  /** Runs a command that prints a secret; `what` names it in messages. */
  run(command: string, what: string): Promise<string>;
  /** Asks the user; undefined when nobody can be asked (not a terminal). */
  prompt(text: string): Promise<string | undefined>;
}

/** The real {@linkcode SecretIo}: {@linkcode runSecretCommand} and {@linkcode promptSecret}. */
export function defaultSecretIo(): SecretIo {
  return { run: runSecretCommand, prompt: (text) => promptSecret(text) };
}

/** The passphrase settings of one `encryption` block. */
export interface PassphraseSettings {
  /** The passphrase itself. */
  passphrase?: string;
  /** A command that prints it. */
  passcommand?: string;
}

/** Everything a passphrase may come from, for {@linkcode resolvePassphrase}. */
export interface PassphraseSources {
  /** The repository's label or path, for the prompt and messages. */
  repository: string;
  /** The repository entry's own `encryption` keys (not merged with the top-level ones). */
  own?: PassphraseSettings;
  /** The top-level `encryption` keys. */
  top?: PassphraseSettings;
  /** The value of VGER_PASSPHRASE, if set. */
  env?: string;
  /** The variable `env` came from, for messages (default VGER_PASSPHRASE). */
  envName?: string;
  /** Ask twice at the prompt and refuse an empty entry (a new passphrase). */
  confirm?: boolean;
  /** The prompt (default `Passphrase for repository "<repository>": `). */
  promptText?: string;
}

/**
 * The passphrase, most specific source first: the repository's own passcommand, its own
 * passphrase, VGER_PASSPHRASE, the top-level passcommand, the top-level passphrase, then the
 * prompt (twice when `confirm`; a mismatch is a UsageError). An empty passphrase from any source
 * is a UsageError naming the source. The first source that is set is
 * used, and a failing command is an error, not a reason to try the next source. Undefined when
 * nothing is set and there is no terminal.
 */
export async function resolvePassphrase(
  sources: PassphraseSources,
  io: SecretIo,
): Promise<string | undefined> {
  const repo = sources.repository;
  const own = sources.own ?? {};
  const top = sources.top ?? {};
  // an empty passphrase protects nothing (and the KDF refuses it): one line naming its source
  const nonEmpty = (pass: string | undefined, from: string): string | undefined => {
    if (pass === "") {
      throw new UsageError(`Empty passphrase for repository "${repo}" (from ${from})`);
    }
    return pass;
  };
  if (own.passcommand !== undefined) {
    const what = `passcommand "${own.passcommand}" of repository "${repo}"`;
    return nonEmpty(await io.run(own.passcommand, what), what);
  }
  if (own.passphrase !== undefined) return nonEmpty(own.passphrase, "encryption.passphrase");
  if (sources.env !== undefined) return nonEmpty(sources.env, sources.envName ?? "VGER_PASSPHRASE");
  if (top.passcommand !== undefined) {
    const what = `passcommand "${top.passcommand}"`;
    return nonEmpty(await io.run(top.passcommand, what), what);
  }
  if (top.passphrase !== undefined) return nonEmpty(top.passphrase, "encryption.passphrase");
  const first = await io.prompt(sources.promptText ?? `Passphrase for repository "${repo}": `);
  if (first === undefined) return first;
  nonEmpty(first, "the prompt");
  if (!sources.confirm) return first;
  // a new passphrase: a typo would lock the user out
  const second = await io.prompt("Repeat the passphrase: ");
  if (first !== second) {
    throw new UsageError(`The passphrases entered for repository "${repo}" do not match`);
  }
  return first;
}

/** A REST repository's token settings, for {@linkcode resolveToken}. */
export interface TokenSources {
  /** `rest_token`. */
  token?: string;
  /** `rest_token_command`. */
  tokenCommand?: string;
  /** The repository's label or path, for messages. */
  repository?: string;
}

/**
 * The REST bearer token: the output of `rest_token_command` when set, else `rest_token`, else
 * undefined (no authentication).
 */
export async function resolveToken(
  sources: TokenSources,
  io: Pick<SecretIo, "run">,
): Promise<string | undefined> {
  if (sources.tokenCommand !== undefined) {
    const of = sources.repository === undefined ? "" : ` of repository "${sources.repository}"`;
    return await io.run(sources.tokenCommand, `rest_token_command "${sources.tokenCommand}"${of}`);
  }
  return sources.token;
}
