import { deepStrictEqual, equal, throws } from "node:assert/strict";
import {
  COMMANDS,
  helpText,
  intFlag,
  kdfFromFlags,
  lockWaitSeconds,
  oneArchive,
  parseCommandLine,
  thresholdFlag,
} from "./cli_command_line.ts";
import { UsageError } from "./errors.ts";
import { DEFAULT_KDF } from "./key_file.ts";

const usage = (text: RegExp) => (err: unknown) =>
  err instanceof UsageError && text.test(err.message);

Deno.test("options may come before or after the command; one the command does not take is refused", () => {
  const a = parseCommandLine(["--json", "list", "-a", "x"]);
  const b = parseCommandLine(["list", "--json", "--archive", "x"]);
  deepStrictEqual(a.flags, b.flags);
  equal(a.command?.name, "list");
  throws(() => parseCommandLine(["backup", "--dest", "x"]), usage(/backup does not take --dest/));
  throws(
    () => parseCommandLine(["bakup"]),
    usage(/Unknown command "bakup" \(did you mean "backup"\?\)/),
  );
  throws(() => parseCommandLine(["list", "--nope"]), usage(/nope/));
});

Deno.test("whole-number options refuse fractions, signs and words, naming the option", () => {
  const flags = (v: string) => parseCommandLine(["init", `--kdf-memory=${v}`]).flags;
  equal(intFlag(flags("30"), "kdf-memory", 0), 30);
  equal(intFlag(parseCommandLine(["init"]).flags, "kdf-memory", 7), 7);
  for (const bad of ["1.5", "-1", "abc", " ", "1e3"]) {
    throws(
      () => intFlag(flags(bad), "kdf-memory", 0),
      usage(/--kdf-memory takes a whole number/),
      bad,
    );
  }
});

Deno.test("--lock-wait takes seconds >= 0; a negative value is its error, not an ambiguous option", () => {
  const wait = (...a: string[]) => lockWaitSeconds(parseCommandLine(["backup", ...a]).flags);
  equal(wait(), 0);
  equal(wait("--lock-wait", "30"), 30);
  equal(wait("--lock-wait", "2.5"), 2.5);
  for (const bad of ["-1", "abc", "", "1e3", "-0.5"]) {
    throws(
      () => wait("--lock-wait", bad),
      usage(new RegExp(`^--lock-wait: expected seconds >= 0, got ${bad.replace(".", "\\.")}$`)),
      bad,
    );
  }
});

Deno.test("--threshold is a percentage from 0 to 100; KDF flags default to the standard costs", () => {
  const t = (v: string) => thresholdFlag(parseCommandLine(["compact", `--threshold=${v}`]).flags);
  equal(t("0"), 0);
  equal(t("12.5"), 12.5);
  equal(t("100"), 100);
  equal(thresholdFlag(parseCommandLine(["compact"]).flags), undefined);
  for (const bad of ["101", "-1", "", "x"]) {
    throws(() => t(bad), usage(/--threshold takes a percentage/));
  }
  deepStrictEqual(kdfFromFlags(parseCommandLine(["init"]).flags), { ...DEFAULT_KDF });
  deepStrictEqual(
    kdfFromFlags(parseCommandLine(["init", "--kdf-memory", "1024", "--kdf-iterations", "1"]).flags),
    { memoryKiB: 1024, iterations: 1, parallelism: DEFAULT_KDF.parallelism },
  );
});

Deno.test("a command that works on one archive refuses several", () => {
  const f = parseCommandLine(["extract", "-a", "x", "-a", "y"]).flags;
  throws(() => oneArchive(f, "extract"), usage(/extract takes one --archive, not 2/));
});

Deno.test("every command's help lists each of its options", () => {
  for (const c of COMMANDS) {
    const text = helpText("0.0.0", c);
    for (const o of c.options) equal(text.includes(`--${o.name}`), true, `${c.name} --${o.name}`);
  }
});
