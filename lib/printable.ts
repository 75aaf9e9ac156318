/**
 * Text for a terminal or a log: names from a backup source or a repository may hold control
 * characters (an escape sequence in a file name could rewrite the user's screen), so text output
 * shows them escaped. `--json` keeps the exact names (JSON escapes them itself).
 *
 * @module
 */

/**
 * C0 and C1 controls, DEL, line and paragraph separators and the bidirectional overrides and
 * isolates (which reorder what a terminal shows).
 */
// deno-lint-ignore no-control-regex
const UNSAFE = /[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]/gu;

/**
 * The text with every control character escaped: `\n`, `\r`, `\t` as such, others as `\xHH` or
 * `\u{HHHH}`; printable text (any script) is unchanged.
 *
 * @example
 * ```ts
 * import { equal } from "node:assert/strict";
 * import { escapeControl } from "./printable.ts";
 *
 * equal(escapeControl("a\x1b[2Jb\nc"), "a\\x1b[2Jb\\nc");
 * equal(escapeControl("résumé.txt"), "résumé.txt");
 * ```
 */
export function escapeControl(text: string): string {
  return text.replace(UNSAFE, (c) => {
    if (c === "\n") return "\\n";
    if (c === "\r") return "\\r";
    if (c === "\t") return "\\t";
    const code = c.codePointAt(0)!;
    return code < 0x100 ? `\\x${code.toString(16).padStart(2, "0")}` : `\\u{${code.toString(16)}}`;
  });
}

/** Whether the text holds a character that {@linkcode escapeControl} escapes. */
export function hasControl(text: string): boolean {
  UNSAFE.lastIndex = 0;
  const found = UNSAFE.test(text);
  UNSAFE.lastIndex = 0;
  return found;
}
