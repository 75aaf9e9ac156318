import { equal, ok, throws } from "node:assert/strict";
import { UsageError } from "./errors.ts";
import { globToRegExp, PathSelector } from "./patterns.ts";
import { fuzzCases, FuzzClock, rng } from "./_fuzz.ts";

/** [glob, path, whether the glob itself matches the whole path] */
const MATCHES: [string, string, boolean][] = [
  // literal paths
  ["home/me/a.txt", "home/me/a.txt", true],
  ["home/me/a.txt", "home/me/a.txs", false],
  ["home/me/a.txt", "home/me/aXtxt", false], // "." is literal, not a regexp wildcard
  ["/home/me/", "home/me", true], // leading and trailing slashes are dropped
  ["a+b(c)|d$^{1}", "a+b(c)|d$^{1}", true], // regexp metacharacters are literal
  ["a+b", "aab", false],
  // * stays within one segment
  ["*", "etc", true],
  ["*", "etc/passwd", false],
  ["*.txt", "a.txt", true],
  ["*.txt", ".txt", true],
  ["*.txt", "dir/a.txt", false],
  ["home/*/docs", "home/me/docs", true],
  ["home/*/docs", "home/me/you/docs", false],
  ["home/*", "home/", true],
  // ** crosses segments; **/ also matches no directory at all
  ["**", "a/b/c", true],
  ["**/*.txt", "a.txt", true],
  ["**/*.txt", "x/y/z/a.txt", true],
  ["**/*.txt", "x/y/z/a.txt.bak", false],
  ["home/**/docs", "home/docs", true],
  ["home/**/docs", "home/a/b/docs", true],
  ["home/**/docs", "home/a/b/docsx", false],
  ["home/**", "home/a/b", true],
  ["home/**", "home", false],
  ["home/a**", "home/abc/def", true],
  // ? is exactly one character, never a slash
  ["file?.log", "file1.log", true],
  ["file?.log", "file.log", false],
  ["file?.log", "file12.log", false],
  ["a?b", "a/b", false],
  ["?", "é", true],
  // character classes
  ["file[0-9].log", "file7.log", true],
  ["file[0-9].log", "filex.log", false],
  ["file[abc]", "fileb", true],
  ["file[!abc]", "fileb", false],
  ["file[!abc]", "filed", true],
  ["file[^abc]", "filed", true],
  ["a[.]b", "a.b", true],
  ["a[.]b", "axb", false],
  ["a[", "a[", true], // an unclosed bracket is literal
  ["a[b", "a[b", true],
  ["a[\\]b", "a\\b", true], // a backslash in a class is literal
  // names with newlines still match as one string
  ["*", "new\nline", true],
];

Deno.test("globToRegExp matches whole paths for *, **, ?, classes and literals", () => {
  for (const [glob, path, want] of MATCHES) {
    equal(
      globToRegExp(glob).test(path),
      want,
      `${JSON.stringify(glob)} vs ${JSON.stringify(path)}`,
    );
  }
});

/** [patterns, path, selected] */
const SELECTS: [string[], string, boolean][] = [
  [[], "anything/at/all", true], // no patterns select everything
  [["home/me/docs"], "home/me/docs", true],
  [["home/me/docs"], "home/me/docs/a/b/c.txt", true], // a parent matches
  [["home/me/docs"], "home/me/docsx/a", false], // a parent is a whole segment
  [["home/me/docs"], "home/me", false], // parents of the pattern are not selected
  [["home/*/docs"], "home/you/docs/x", true],
  [["*.txt"], "a.txt", true],
  [["*.txt"], "dir/a.txt", false], // * does not reach into directories
  [["**/*.txt"], "dir/a.txt", true],
  [["**/*.txt"], "dir/a.txt/inner", true], // a directory named a.txt selects its contents
  [["etc", "var/log"], "var/log/syslog", true],
  [["etc", "var/log"], "var/lib/x", false],
  [["/etc/"], "etc/passwd", true],
  [["tmp/x/src"], "tmp/x/src/sub/f", true],
];

Deno.test("PathSelector selects a path when it or one of its parents matches", () => {
  for (const [patterns, path, want] of SELECTS) {
    equal(new PathSelector(patterns).selects(path), want, `${JSON.stringify(patterns)} vs ${path}`);
  }
});

Deno.test("globToRegExp gives a RegExp or a UsageError for any glob text (fuzz)", () => {
  // A glob comes from the command line or the config, so a bad one is a usage error (exit 2).
  throws(() => globToRegExp("file[z-a]"), UsageError);
  const chars = [
    "*",
    "?",
    "[",
    "]",
    "!",
    "^",
    "\\",
    "/",
    "a",
    ".",
    "-",
    "(",
    ")",
    "{",
    "}",
    "|",
    "$",
    "+",
  ];
  const next = rng(12345);
  const cases = fuzzCases();
  const clock = new FuzzClock({ meanCaseMs: 1 });
  for (let i = 0; i < cases; i++) {
    clock.lap(i);
    let g = "";
    const n = i % 12;
    for (let k = 0; k < n; k++) g += chars[next() % chars.length];
    let re: RegExp;
    try {
      re = globToRegExp(g);
    } catch (err) {
      ok(err instanceof UsageError, `${JSON.stringify(g)}: ${err}`);
      continue;
    }
    ok(re instanceof RegExp);
    // the expression stays linear: no pattern of stars makes a near-miss path backtrack for long
    re.test("a/".repeat(20) + "x".repeat(30) + "!");
  }
  clock.done();
});
