/**
 * Path patterns.
 *
 * {@linkcode PathSelector} selects stored paths for extract and list: glob patterns on stored paths
 * (absolute paths without the leading "/"): `*` matches within one path segment, `**` across
 * segments, `?` one character, `[...]` a character class. A pattern selects a path when it matches
 * the path or one of its parent directories, so `home/me/docs` selects everything below it.
 *
 * {@linkcode ExcludeMatcher} decides what a backup leaves out (`exclude_patterns`), matched like
 * restic's `--exclude`, with borg's explicit pattern styles on top. Paths are absolute, given
 * without their leading "/" (`home/me/a.txt`). A pattern without a style prefix follows restic:
 *
 * - A pattern matches whole path components; without a leading "/" it matches at any depth
 *   (`foo` matches `/a/foo` and `/a/foo/b`, not `/a/foobar`); a leading "/" anchors it at the
 *   filesystem root (`/bin` matches `/bin/bash`, not `/usr/bin`).
 * - A pattern that matches a directory excludes everything below it.
 * - `*` matches within one component (dotfiles too), `?` one character, `[abc]`, `[a-z]` a class,
 *   `[^...]` or `[!...]` a negated class, `\` escapes the next character (`\*`, `\[`).
 * - `**` as a whole component matches any number of components, zero included: `a/**` also
 *   matches `a` itself, like restic (so `.cache/**` leaves out the `.cache` directory too).
 *   Inside a component (`a**`) it is just `*`.
 * - `a//b`, `./a` and `a/../b` are cleaned first (`a/b`, `a`, `b`), as restic does.
 * - A pattern starting with `!` re-includes what an earlier pattern excluded (restic, gitignore):
 *   patterns apply in order, the last one that matches decides. Like restic, a directory once
 *   excluded is not descended into, so nothing below it can be re-included: exclude `dir/*`
 *   and re-include `!dir/keep` instead of excluding `dir`.
 * - When an `env` lookup is given, `$NAME` and `${NAME}` are expanded as in restic's exclude
 *   files and `$$` is a literal `$`; an unset variable is an error (restic would silently use "").
 *   `~` is not expanded, as in restic.
 *
 * Deliberate differences from restic: a trailing "/" matches directories only (gitignore,
 * rsync; restic ignores it, so restic's `build/` also excludes a file named `build`); `[!...]`
 * negates like `[^...]` (Go's filepath.Match takes `!` literally); a reversed range `[z-a]` is
 * an error; in a pattern with two `**`, each still matches any number of components (restic
 * 0.14 matches less there, `/q/**` + `/*ab/**` keeps `/q/a/yab`: the length bound of its `**`
 * expansion counts the other `**` as a component, against its documentation).
 *
 * Borg's styles, chosen with a prefix like `borg help patterns` (a pattern whose first two
 * characters are letters or digits followed by ":" always names a style; write `\ab:c` for a
 * file named `ab:c`). They are anchored at the root, like borg >= 1.2 with absolute recursion
 * roots, a trailing "/" excludes the contents but keeps the directory, and `\` is literal:
 *
 * - `fm:` fnmatch: `*` and `?` also match "/", `[...]`, `[!...]`; matches the path or a parent.
 * - `sh:` shell: `*` stays in one component, `**` then "/" any number of directories; path or a
 *   parent.
 * - `re:` a JavaScript regular expression (Unicode mode) searched anywhere in the path.
 * - `pp:` a path prefix: the path and everything below it. `pf:` exactly that path.
 *
 * The matcher answers for an entry the walk reaches; the walk does not descend into an excluded
 * directory (lib/archiver.ts). That is why `re:`, `pf:` and `!` patterns need not decide about
 * entries below an excluded directory.
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

/** Options of {@linkcode ExcludeMatcher}. */
export interface ExcludeMatcherOptions {
  /** Looks up environment variables for `$NAME` in restic-style patterns (none: `$` is literal). */
  env?: (name: string) => string | undefined;
}

/** Consecutive patterns of one polarity, tested together. */
interface Group {
  negated: boolean;
  /** Tested on the path. */
  path: RegExp[];
  /** Tested on the path of a directory only. */
  dir: RegExp[];
  /** Tested on the path with "/" appended (borg's styles match that way). */
  slashed: RegExp[];
}

/** Regular-expression sources of one group, before compiling. */
interface GroupSources {
  negated: boolean;
  /** Restic-style alternatives, by "start|end" (see PATTERN_START and PATTERN_END). */
  alternatives: Map<string, string[]>;
  /** Borg-style sources, tested on the path with "/" appended. */
  slashed: string[];
  /** `re:` patterns, each on its own (their groups and backreferences must not mix). */
  regexps: RegExp[];
  /** Capture groups named so far (names stay unique in the combined expressions). */
  names: number;
}

/** Where a restic-style match may start. */
const PATTERN_START = {
  /** At a component start: "" or "/" just before. */
  component: "(?:^|/)",
  /** At the root. */
  root: "^",
  /** Anywhere: the pattern began with `*`, which reaches back to the component start anyway. */
  free: "",
} as const;

/** Where a restic-style match must end. */
const PATTERN_END = {
  /** At a component end: the entry itself or a parent directory matched. */
  any: "(?:/|$)",
  /** Before a "/": a parent directory matched (patterns ending in "/" on any entry). */
  parent: "/",
  /** At the end: the entry itself matched (patterns ending in "/" on a directory). */
  self: "$",
} as const;

const STYLE_PREFIX = /^[A-Za-z0-9]{2}:/;
const BORG_STYLES = ["fm", "sh", "re", "pp", "pf"];
/** One or more components: what `**` alone stands for. */
const ANY_COMPONENTS = "[^/]+(?:/[^/]+)*";

/**
 * Exclude patterns of a backup, compiled once: restic's `--exclude` rules, borg's `fm:`, `sh:`,
 * `re:`, `pp:` and `pf:` styles, and `!` to re-include (see the module documentation).
 *
 * @example
 * ```ts
 * import { ExcludeMatcher } from "./patterns.ts";
 * import { equal } from "node:assert/strict";
 *
 * const m = new ExcludeMatcher(["*.tmp", ".cache/**", "/var/log/*.gz"]);
 * equal(m.excludes("home/me/notes.tmp"), true);
 * equal(m.excludes("home/me/.cache/thumbs/1.png"), true);
 * equal(m.excludes("var/log/old.gz"), true);
 * equal(m.excludes("srv/var/log/old.gz"), false);
 * ```
 */
export class ExcludeMatcher {
  readonly #groups: Group[];
  readonly #slashed: boolean;

  /** Compiles the patterns; throws UsageError naming the first invalid one. */
  constructor(patterns: readonly string[], options: ExcludeMatcherOptions = {}) {
    const sources: GroupSources[] = [];
    for (const pattern of patterns) {
      const negated = pattern.startsWith("!");
      let last = sources.at(-1);
      if (!last || last.negated !== negated) sources.push(last = emptySources(negated));
      addPattern(last, pattern, negated ? pattern.slice(1) : pattern, options);
    }
    this.#groups = sources.map((s) => compileGroup(s, patterns));
    this.#slashed = this.#groups.some((g) => g.slashed.length > 0);
  }

  /**
   * Whether the entry at `path` (absolute, without the leading "/") is excluded; `isDir` says
   * it is a directory (for patterns ending in "/"). Answers for an entry whose parent directory
   * is not excluded: the caller does not descend into an excluded directory.
   */
  excludes(path: string, isDir = false): boolean {
    // the filesystem root is never excluded: relative patterns skip it in restic too
    if (path === "") return false;
    const slashed = this.#slashed ? path + "/" : "";
    let excluded = false;
    for (const g of this.#groups) {
      // the last matching pattern decides, so only a group that can flip the answer is tested
      if (g.negated !== excluded) continue;
      if (groupMatches(g, path, isDir, slashed)) excluded = !g.negated;
    }
    return excluded;
  }
}

function groupMatches(g: Group, path: string, isDir: boolean, slashed: string): boolean {
  for (const r of g.path) if (r.test(path)) return true;
  if (isDir) { for (const r of g.dir) if (r.test(path)) return true; }
  for (const r of g.slashed) if (r.test(slashed)) return true;
  return false;
}

function emptySources(negated: boolean): GroupSources {
  return { negated, alternatives: new Map(), slashed: [], regexps: [], names: 0 };
}

function addAlternative(
  g: GroupSources,
  start: keyof typeof PATTERN_START,
  end: keyof typeof PATTERN_END,
  src: string,
): void {
  const key = `${start}|${end}`;
  const list = g.alternatives.get(key);
  if (list) list.push(src);
  else g.alternatives.set(key, [src]);
}

function invalid(pattern: string, reason: string, cause?: unknown): UsageError {
  return new UsageError(`Invalid exclude pattern ${JSON.stringify(pattern)}: ${reason}`, { cause });
}

/** Adds one pattern (`body` is `pattern` without its `!`) to the group's sources. */
function addPattern(
  g: GroupSources,
  pattern: string,
  body: string,
  options: ExcludeMatcherOptions,
): void {
  if (body === "") throw invalid(pattern, "it is empty");
  if (!STYLE_PREFIX.test(body)) {
    addResticPattern(g, pattern, options.env ? expandEnv(body, pattern, options.env) : body);
    return;
  }
  const style = body.slice(0, 2);
  const rest = body.slice(3);
  if (!BORG_STYLES.includes(style)) {
    throw invalid(
      pattern,
      `unknown style "${style}:" (use fm:, sh:, re:, pp: or pf:, or write \\${body} for a name)`,
    );
  }
  if (rest === "") throw invalid(pattern, "nothing follows the style prefix");
  if (style === "re") {
    try {
      g.regexps.push(new RegExp(rest, "u"));
    } catch (cause) {
      throw invalid(pattern, (cause as Error).message, cause);
    }
    return;
  }
  // borg: normpath, then a suffix that also matches what lies below, then the leading "/" goes
  const trailing = rest.endsWith("/");
  const { parts } = cleanPath(rest);
  const path = parts.join("/");
  if (style === "pp" || style === "pf") {
    const literal = Array.from(path, escapeLiteral).join("");
    g.slashed.push(path === "" ? "^" : style === "pp" ? `^${literal}/` : `^${literal}/$`);
  } else if (style === "fm") {
    const full = trimLeadingSlashes(`/${path}/*${trailing ? "/" : ""}`);
    g.slashed.push(`^${emitGlob(g, borgTokens(full, pattern, false), "[^]")}$`);
  } else {
    const full = trimLeadingSlashes(`/${path}/**/*${trailing ? "/" : ""}`);
    g.slashed.push(`^${emitShell(borgTokens(full, pattern, true))}$`);
  }
}

function trimLeadingSlashes(s: string): string {
  let i = 0;
  while (s[i] === "/") i++;
  return s.slice(i);
}

/** A restic-style pattern: components matched like Go's filepath.Match, plus `**`. */
function addResticPattern(g: GroupSources, pattern: string, body: string): void {
  const cleaned = cleanPath(body);
  let anchored = cleaned.anchored;
  // consecutive `**` match what one matches
  const parts = cleaned.parts.filter((c, i, all) => !(c === "**" && all[i - 1] === "**"));
  const dirOnly = body.endsWith("/") && parts.length > 0;
  // Rewrites that keep the meaning and save time: a leading `**` adds nothing to a pattern that
  // matches at any depth, and makes an anchored one match at any depth; a trailing `**` adds
  // nothing because matching a directory already excludes what lies below it.
  if (parts.length > 1 && parts[0] === "**") {
    parts.shift();
    anchored = false;
  }
  if (parts.length > 1 && parts.at(-1) === "**") parts.pop();
  // a first component starting with `*` may start matching anywhere: the `*` reaches back to
  // the component start anyway, and the search skips the test at every "/"
  const free = !anchored && parts.length > 0 && parts[0] !== "**" && parts[0].startsWith("*");
  let src = "";
  let needSep = false;
  const n = parts.length;
  for (let i = 0; i < n; i++) {
    const part = parts[i];
    if (part !== "**") {
      const tokens = goTokens(part, pattern);
      if (i === 0 && free) tokens.shift(); // the search start stands for it
      src += (needSep ? "/" : "") + emitGlob(g, tokens, "[^/]");
      needSep = true;
    } else if (n === 1) src = ANY_COMPONENTS;
    else {
      src += (needSep ? "/" : "") + "(?:[^/]+/)*";
      needSep = false;
    }
  }
  // "/" alone is the root, so everything below it
  if (n === 0 && anchored) src = ANY_COMPONENTS;
  const start: keyof typeof PATTERN_START = anchored ? "root" : free ? "free" : "component";
  addAlternative(g, start, dirOnly ? "parent" : "any", src);
  if (dirOnly) addAlternative(g, start, "self", src);
}

/** Go's path.Clean (Python's normpath) on a pattern: no empty or "." components, ".." resolved. */
function cleanPath(p: string): { anchored: boolean; parts: string[] } {
  const anchored = p.startsWith("/");
  const parts: string[] = [];
  for (const c of p.split("/")) {
    if (c === "" || c === ".") continue;
    if (c === "..") {
      if (parts.length > 0 && parts.at(-1) !== "..") parts.pop();
      else if (!anchored) parts.push(c);
    } else parts.push(c);
  }
  if (!anchored && parts.length === 0) parts.push(".");
  return { anchored, parts };
}

/** The characters that mean something in a regular expression (Unicode mode). */
const REGEXP_SYNTAX = new Set("^$\\.*+?()[]{}|/");

function escapeLiteral(c: string): string {
  return REGEXP_SYNTAX.has(c) ? "\\" + c : c;
}

function codePoint(c: string): string {
  return `\\u{${c.codePointAt(0)!.toString(16)}}`;
}

/** A glob as a sequence: `*` (one or more in a row) or one character (a regexp source). */
type GlobToken = "*" | { one: string };
/** Borg's `sh:` adds `**` followed by "/": any number of directories. */
type ShellToken = GlobToken | "**/";

/**
 * Emits a glob as a regexp source, `any` being what one character of `*` may be. Each segment
 * between two `*` takes its leftmost match and keeps it (emulating an atomic group with a
 * lookahead and a backreference), as Go's filepath.Match does: exact for globs, and linear
 * instead of exponential on a long name with a pattern like `*a*a*a*b`.
 */
function emitGlob(g: GroupSources, tokens: GlobToken[], any: string): string {
  const segments: string[] = [""];
  for (const t of tokens) {
    if (t === "*") segments.push("");
    else segments[segments.length - 1] += t.one;
  }
  let out = segments[0];
  const last = segments.length - 1;
  for (let i = 1; i < last; i++) {
    const name = `g${++g.names}`;
    out += `(?=(?<${name}>${any}*?${segments[i]}))\\k<${name}>`;
  }
  if (last > 0) out += `${any}*${segments[last]}`;
  return out;
}

/** Emits a borg `sh:` glob as borg does: plain backtracking. */
function emitShell(tokens: ShellToken[]): string {
  let out = "";
  for (const t of tokens) out += t === "*" ? "[^/]*" : t === "**/" ? "(?:[^/]*/)*" : t.one;
  return out;
}

/** One component of a restic pattern, as Go's filepath.Match reads it. */
function goTokens(part: string, pattern: string): GlobToken[] {
  const cs = Array.from(part);
  const tokens: GlobToken[] = [];
  for (let i = 0; i < cs.length; i++) {
    const c = cs[i];
    if (c === "*") {
      tokens.push("*");
      while (cs[i + 1] === "*") i++;
    } else if (c === "?") tokens.push({ one: "[^/]" });
    else if (c === "\\") {
      if (i + 1 === cs.length) {
        throw invalid(pattern, `"\\" at the end of "${part}" escapes nothing`);
      }
      tokens.push({ one: escapeLiteral(cs[++i]) });
    } else if (c === "[") {
      const cls = goClass(cs, i + 1, pattern);
      tokens.push({ one: cls.source });
      i = cls.end;
    } else tokens.push({ one: escapeLiteral(c) });
  }
  return tokens;
}

/** A Go character class starting after its "[" at `start`; `end` is the index of its "]". */
function goClass(cs: string[], start: number, pattern: string): { source: string; end: number } {
  let i = start;
  const negated = cs[i] === "^" || cs[i] === "!";
  if (negated) i++;
  let items = "";
  const endpoint = (lo?: string): string => {
    let c = cs[i];
    if (c === undefined) throw invalid(pattern, `"[" is not closed`);
    if (lo !== undefined && c === "]") {
      throw invalid(pattern, `the range "${lo}-" has no end: write a literal "-" as "\\-"`);
    }
    if (c === "-" || c === "]") {
      const what = c === "]" ? "an empty class" : `"-" without a range start`;
      throw invalid(pattern, `${what} in "[...]": write a literal "${c}" as "\\${c}"`);
    }
    if (c === "\\") {
      c = cs[++i];
      if (c === undefined) throw invalid(pattern, `"[" is not closed`);
    }
    i++;
    return c;
  };
  for (let n = 0;; n++) {
    if (cs[i] === "]" && n > 0) break;
    const lo = endpoint();
    let hi = lo;
    if (cs[i] === "-") {
      i++;
      hi = endpoint(lo);
    }
    if (hi.codePointAt(0)! < lo.codePointAt(0)!) {
      throw invalid(pattern, `the range "${lo}-${hi}" is reversed`);
    }
    items += hi === lo ? codePoint(lo) : `${codePoint(lo)}-${codePoint(hi)}`;
  }
  // a negated class must not match "/", which would cross into the next component
  return { source: `[${negated ? "^/" : ""}${items}]`, end: i };
}

/**
 * Borg's reading of a pattern (`sh:` when `shell`, else Python's fnmatch for `fm:`): "\\" is
 * literal and so is an unclosed "[".
 */
function borgTokens(pat: string, pattern: string, shell: true): ShellToken[];
function borgTokens(pat: string, pattern: string, shell: false): GlobToken[];
function borgTokens(pat: string, pattern: string, shell: boolean): ShellToken[] {
  const cs = Array.from(pat);
  const n = cs.length;
  const tokens: ShellToken[] = [];
  for (let i = 0; i < n;) {
    const c = cs[i++];
    if (c === "*") {
      if (shell && cs[i] === "*" && cs[i + 1] === "/") {
        tokens.push("**/");
        i += 2;
      } else if (shell) tokens.push({ one: "[^/]*" }); // sh: `*` never crosses "/"
      else if (tokens.at(-1) !== "*") tokens.push("*");
    } else if (c === "?") tokens.push({ one: shell ? "[^/]" : "[^]" });
    else if (c === "[") {
      let j = i;
      if (cs[j] === "!") j++;
      if (cs[j] === "]") j++;
      while (j < n && cs[j] !== "]") j++;
      if (j >= n) tokens.push({ one: "\\[" });
      else {
        tokens.push({ one: pythonClass(cs.slice(i, j), pattern) });
        i = j + 1;
      }
    } else tokens.push({ one: escapeLiteral(c) });
  }
  return tokens;
}

/** The body of a Python character class (`!` negates, `^` is literal) to a regexp class. */
function pythonClass(body: string[], pattern: string): string {
  const negated = body[0] === "!";
  const cs = negated ? body.slice(1) : body;
  let items = "";
  for (let k = 0; k < cs.length;) {
    const lo = cs[k];
    if (cs[k + 1] === "-" && k + 2 < cs.length) {
      const hi = cs[k + 2];
      if (hi.codePointAt(0)! < lo.codePointAt(0)!) {
        throw invalid(pattern, `the range "${lo}-${hi}" is reversed`);
      }
      items += `${codePoint(lo)}-${codePoint(hi)}`;
      k += 3;
    } else {
      items += codePoint(lo);
      k++;
    }
  }
  return `[${negated ? "^" : ""}${items}]`;
}

/**
 * Expands `$NAME`, `${NAME}` and `$$` like restic's exclude files (Go's os.Expand); a `$`
 * followed by anything else stays.
 */
function expandEnv(
  body: string,
  pattern: string,
  env: (name: string) => string | undefined,
): string {
  const lookup = (name: string): string => {
    const value = env(name);
    if (value === undefined) {
      throw invalid(
        pattern,
        `environment variable ${name} is not set (write $$ for a literal $)`,
      );
    }
    return value;
  };
  return body.replace(/\$(?:\$|\{([^}]*)\}?|([A-Za-z0-9_]+))/g, (m, braced, bare) => {
    if (m === "$$") return "$";
    if (bare !== undefined) return lookup(bare);
    if (!m.endsWith("}") || braced === "") throw invalid(pattern, `"${m}" is not a variable`);
    return lookup(braced);
  });
}

function compileGroup(s: GroupSources, patterns: readonly string[]): Group {
  const any: string[] = [];
  const self: string[] = [];
  for (const [key, xs] of s.alternatives) {
    const [start, end] = key.split("|") as [keyof typeof PATTERN_START, keyof typeof PATTERN_END];
    const alt = xs.length === 1 ? xs[0] : `(?:${xs.join("|")})`;
    (end === "self" ? self : any).push(PATTERN_START[start] + alt + PATTERN_END[end]);
  }
  const compile = (parts: string[]): RegExp[] => {
    if (parts.length === 0) return [];
    try {
      return [new RegExp(parts.join("|"), "u")];
    } catch (cause) {
      // every part was built from validated pieces, so this is a bug: name all the patterns
      throw invalid(patterns.join(", "), (cause as Error).message, cause);
    }
  };
  return {
    negated: s.negated,
    path: [...compile(any), ...s.regexps],
    dir: compile(self),
    slashed: compile(s.slashed),
  };
}
