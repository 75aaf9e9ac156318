/**
 * Glob patterns on stored paths (absolute paths without the leading "/"): `*` matches within one
 * path segment, `**` across segments, `?` one character, `[...]` a character class. A pattern
 * selects a path when it matches the path or one of its parent directories, so `home/me/docs`
 * selects everything below it.
 *
 * @module
 */

import { UsageError } from "./errors.ts";

/** Compiles a glob into a regular expression over a whole path. */
export function globToRegExp(glob: string): RegExp {
  let re = "";
  const g = glob.replace(/^\/+/, "").replace(/\/+$/, "");
  for (let i = 0; i < g.length; i++) {
    const c = g[i];
    if (c === "*") {
      if (g[i + 1] === "*") {
        const slash = g[i + 2] === "/";
        re += slash ? "(?:.*/)?" : ".*";
        i += slash ? 2 : 1;
      } else re += "[^/]*";
    } else if (c === "?") re += "[^/]";
    else if (c === "[") {
      const close = g.indexOf("]", i + 2);
      if (close < 0) re += "\\[";
      else {
        let cls = g.slice(i + 1, close).replace(/\\/g, "\\\\");
        if (cls.startsWith("!")) cls = "^" + cls.slice(1);
        re += `[${cls}]`;
        i = close;
      }
    } else re += c.replace(/[.+^${}()|\\\]]/g, "\\$&");
  }
  try {
    return new RegExp(`^${re}$`, "s");
  } catch (cause) {
    throw new UsageError(`Invalid pattern "${glob}": ${(cause as Error).message}`, { cause });
  }
}

/** A set of patterns; an empty set selects everything. */
export class PathSelector {
  readonly #res: RegExp[];

  /** Compiles the patterns. */
  constructor(patterns: readonly string[]) {
    this.#res = patterns.map(globToRegExp);
  }

  /** Whether the path, or one of its parents, matches a pattern. */
  selects(path: string): boolean {
    if (this.#res.length === 0) return true;
    let p = path;
    for (;;) {
      if (this.#res.some((r) => r.test(p))) return true;
      const slash = p.lastIndexOf("/");
      if (slash < 0) return false;
      p = p.slice(0, slash);
    }
  }
}
