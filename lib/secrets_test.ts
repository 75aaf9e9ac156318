import { deepStrictEqual, equal, ok, rejects, throws } from "node:assert/strict";
import { InterruptedError, UsageError } from "./errors.ts";
import {
  type PassphraseSources,
  promptSecret,
  resolvePassphrase,
  resolveToken,
  runSecretCommand,
  type SecretIo,
  type SecretTerminal,
  splitCommandLine,
} from "./secrets.ts";

// ---------------------------------------------------------------------------------------------
// splitCommandLine

Deno.test("splitCommandLine splits words like a POSIX shell splits a simple command", () => {
  const table: [string, string[]][] = [
    ["pass show vger", ["pass", "show", "vger"]],
    ["  pass\tshow \n vger  ", ["pass", "show", "vger"]],
    ["", []],
    ["   ", []],
    ["'a b' c", ["a b", "c"]],
    ['"a b" c', ["a b", "c"]],
    ["a'b c'd", ["ab cd"]],
    ["'' x", ["", "x"]],
    ['x ""', ["x", ""]],
    ["'$HOME' \"$HOME\" $HOME", ["$HOME", "$HOME", "$HOME"]],
    ["'a\\nb'", ["a\\nb"]],
    ["'it'\\''s'", ["it's"]],
    ['"say \\"hi\\""', ['say "hi"']],
    ['"back\\\\slash"', ["back\\slash"]],
    ['"\\$x \\`y\\`"', ["$x `y`"]],
    ['"\\n stays"', ["\\n stays"]],
    ['"a\'b"', ["a'b"]],
    ["'a\"b'", ['a"b']],
    ["a\\ b", ["a b"]],
    ["\\'x", ["'x"]],
    ['\\"x', ['"x']],
    ["a\\\\b", ["a\\b"]],
    ["trailing\\", ["trailing\\"]],
    ["a\\\nb", ["ab"]],
    ["a \\\n b", ["a", "b"]],
    ['"a\\\nb"', ["ab"]],
    ["sh -c 'pass show vger | head -n 1'", ["sh", "-c", "pass show vger | head -n 1"]],
    // no operators, no globbing, no comments, no tilde: all plain characters
    ["a | b ; c && d", ["a", "|", "b", ";", "c", "&&", "d"]],
    ["ls *.txt ~/x # note", ["ls", "*.txt", "~/x", "#", "note"]],
    ["gpg --passphrase-fd=0 -d ~/.vger.gpg", ["gpg", "--passphrase-fd=0", "-d", "~/.vger.gpg"]],
    ["écho 'ünï côdé'", ["écho", "ünï côdé"]],
  ];
  for (const [command, words] of table) {
    deepStrictEqual(splitCommandLine(command), words, JSON.stringify(command));
  }
});

Deno.test("splitCommandLine agrees with /bin/sh on quoting and escapes", async () => {
  // only commands without operators, expansions and newlines (a shell ends the command at a
  // newline, vger reads it as a blank), where the shell and vger must agree
  const commands = [
    "pass show vger",
    "  a\tb  c  ",
    "'a b' c",
    '"a b" c',
    "a'b c'd",
    "'' x",
    'x ""',
    "'a\\nb'",
    "'it'\\''s'",
    '"say \\"hi\\""',
    '"back\\\\slash"',
    '"\\$x \\`y\\`"',
    '"\\n stays"',
    '"a\'b"',
    "'a\"b'",
    "a\\ b",
    "\\'x",
    "a\\\\b",
    "a\\\nb",
    "a \\\n b",
    '"a\\\nb"',
    "écho 'ünï côdé'",
  ];
  for (const command of commands) {
    // each word of the simple command, NUL-terminated, exactly as the shell passed it on
    const out = await new Deno.Command("sh", {
      args: ["-c", `printf '%s\\0' ${command}`],
      stdout: "piped",
    }).output();
    ok(out.success, command);
    const words = new TextDecoder().decode(out.stdout).split("\0").slice(0, -1);
    deepStrictEqual(splitCommandLine(command), words, JSON.stringify(command));
  }
});

Deno.test("splitCommandLine refuses an unterminated quote with a UsageError", () => {
  const table: [string, RegExp][] = [
    ["pass show 'vger", /unterminated single quote/],
    ['pass show "vger', /unterminated double quote/],
    ['"escaped end\\"', /unterminated double quote/],
    ["'", /unterminated single quote/],
  ];
  for (const [command, reason] of table) {
    throws(() => splitCommandLine(command), (err: unknown) => {
      ok(err instanceof UsageError, `${command}: ${err}`);
      ok(reason.test(err.message), err.message);
      return true;
    });
  }
});

// ---------------------------------------------------------------------------------------------
// runSecretCommand (real processes)

function usageErrorMatching(...parts: (string | RegExp)[]): (err: unknown) => boolean {
  return (err: unknown) => {
    ok(err instanceof UsageError, `expected UsageError, got ${err}`);
    ok(!err.message.includes("\n"), `one line: ${JSON.stringify(err.message)}`);
    for (const p of parts) {
      ok(typeof p === "string" ? err.message.includes(p) : p.test(err.message), err.message);
    }
    return true;
  };
}

Deno.test("runSecretCommand returns the output minus one trailing newline", async () => {
  equal(await runSecretCommand("printf 's3cret\\n'", "passcommand"), "s3cret");
  equal(await runSecretCommand("printf 's3cret'", "passcommand"), "s3cret");
  equal(await runSecretCommand("printf 's3cret\\r\\n'", "passcommand"), "s3cret");
  equal(await runSecretCommand("printf 'two\\n\\n'", "passcommand"), "two\n");
  equal(await runSecretCommand("printf ' spaced \\n'", "passcommand"), " spaced ");
  equal(await runSecretCommand("echo 'a b' \"c  d\"", "passcommand"), "a b c  d");
});

Deno.test("runSecretCommand runs without a shell: operators and variables reach the program", async () => {
  // a shell would pipe, expand and stop at ';'; echo shows that it received them as words
  equal(await runSecretCommand("echo a | b ; $HOME && *", "passcommand"), "a | b ; $HOME && *");
  equal(await runSecretCommand("sh -c 'echo piped | tr a-z A-Z'", "passcommand"), "PIPED");
});

Deno.test("runSecretCommand reports a failing command with its exit code and stderr on one line", async () => {
  const what = 'passcommand "pass show vger"';
  await rejects(
    runSecretCommand("sh -c 'echo Error: vger is not in the password store >&2; exit 3'", what),
    usageErrorMatching(
      'The passcommand "pass show vger" failed with exit code 3',
      ": Error: vger is not in the password store",
    ),
  );
  await rejects(
    runSecretCommand("sh -c 'printf \"gpg: one\\ngpg: two\\n\" >&2; exit 2'", what),
    usageErrorMatching("exit code 2: gpg: one; gpg: two"),
  );
  await rejects(runSecretCommand("false", what), usageErrorMatching(/exit code 1$/));
  await rejects(
    runSecretCommand("sh -c 'kill -TERM $$'", what),
    usageErrorMatching("was killed by SIGTERM"),
  );
});

Deno.test("runSecretCommand cuts a long stderr quote", async () => {
  await rejects(
    runSecretCommand("sh -c 'head -c 5000 /dev/zero | tr \"\\0\" x >&2; exit 1'", "passcommand"),
    (err: unknown) => {
      ok(err instanceof UsageError);
      ok(err.message.length < 400, `${err.message.length} characters`);
      ok(err.message.endsWith("xxx..."), err.message.slice(-20));
      return true;
    },
  );
});

Deno.test("runSecretCommand names a command that cannot start", async () => {
  await rejects(
    runSecretCommand("vger-no-such-program-here show", 'passcommand "vger-no-such-program-here"'),
    usageErrorMatching(
      'Cannot run the passcommand "vger-no-such-program-here": "vger-no-such-program-here" not found',
    ),
  );
  const dir = await Deno.makeTempDir({ prefix: "vger-secrets-" });
  try {
    const script = `${dir}/not-executable`;
    await Deno.writeTextFile(script, "#!/bin/sh\necho x\n", { mode: 0o644 });
    await rejects(
      runSecretCommand(script, "rest_token_command"),
      usageErrorMatching("Cannot run the rest_token_command", "is not executable"),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("runSecretCommand refuses an empty command, empty output and bad quoting", async () => {
  await rejects(runSecretCommand("  ", "passcommand"), usageErrorMatching("the command is empty"));
  await rejects(
    runSecretCommand("true", 'passcommand "true"'),
    usageErrorMatching('The passcommand "true" printed nothing'),
  );
  await rejects(
    runSecretCommand("sh -c 'echo; echo why >&2'", "passcommand"),
    usageErrorMatching("printed nothing: why"),
  );
  await rejects(
    runSecretCommand("pass show 'vger", "passcommand"),
    usageErrorMatching("Cannot run the passcommand: command has an unterminated single quote"),
  );
  await rejects(
    runSecretCommand("printf '\\377\\376'", "passcommand"),
    usageErrorMatching("printed bytes that are not UTF-8 text"),
  );
});

// ---------------------------------------------------------------------------------------------
// resolvePassphrase: precedence

/** The sources in order of precedence; each yields a distinct passphrase. */
const SOURCES = ["ownCommand", "ownPassphrase", "env", "topCommand", "topPassphrase"] as const;
type Source = typeof SOURCES[number];

function sourcesWith(set: readonly Source[], extra: Partial<PassphraseSources> = {}) {
  const has = (s: Source) => set.includes(s);
  const sources: PassphraseSources = { repository: "main", ...extra };
  if (has("ownCommand") || has("ownPassphrase")) {
    sources.own = {
      passcommand: has("ownCommand") ? "own-command" : undefined,
      passphrase: has("ownPassphrase") ? "from ownPassphrase" : undefined,
    };
  }
  if (has("topCommand") || has("topPassphrase")) {
    sources.top = {
      passcommand: has("topCommand") ? "top-command" : undefined,
      passphrase: has("topPassphrase") ? "from topPassphrase" : undefined,
    };
  }
  if (has("env")) sources.env = "from env";
  return sources;
}

/** A fake outside world that records what was run and asked. */
function recordingIo(answers: (string | undefined)[] = ["from prompt"]) {
  const ran: string[] = [];
  const whats: string[] = [];
  const prompts: string[] = [];
  const io: SecretIo = {
    run: (command, what) => {
      ran.push(command);
      whats.push(what);
      return Promise.resolve(
        command === "own-command" ? "from ownCommand" : "from topCommand",
      );
    },
    prompt: (text) => {
      prompts.push(text);
      return Promise.resolve(answers.shift());
    },
  };
  return { io, ran, whats, prompts };
}

Deno.test("resolvePassphrase uses the most specific source set, for every combination of sources", async () => {
  // all 32 subsets of the five sources, so every pair is compared both ways
  for (let mask = 0; mask < 1 << SOURCES.length; mask++) {
    const set = SOURCES.filter((_, i) => mask & (1 << i));
    const { io, ran, prompts } = recordingIo();
    const got = await resolvePassphrase(sourcesWith(set), io);
    const label = `sources ${set.join(", ") || "(none)"}`;
    if (set.length === 0) {
      equal(got, "from prompt", label);
      deepStrictEqual(prompts, ['Passphrase for repository "main": '], label);
      deepStrictEqual(ran, [], label);
      continue;
    }
    const winner = set[0]; // SOURCES is in order of precedence
    equal(got, `from ${winner}`, label);
    // the less specific sources are not consulted: no command runs, no prompt
    deepStrictEqual(
      ran,
      winner === "ownCommand" ? ["own-command"] : winner === "topCommand" ? ["top-command"] : [],
      label,
    );
    deepStrictEqual(prompts, [], label);
  }
});

Deno.test("resolvePassphrase names the passcommand and its repository for messages", async () => {
  const own = recordingIo();
  await resolvePassphrase(sourcesWith(["ownCommand"]), own.io);
  deepStrictEqual(own.whats, ['passcommand "own-command" of repository "main"']);
  const top = recordingIo();
  await resolvePassphrase(sourcesWith(["topCommand"]), top.io);
  deepStrictEqual(top.whats, ['passcommand "top-command"']);
});

Deno.test("resolvePassphrase stops at a failing passcommand instead of trying the next source", async () => {
  const io: SecretIo = {
    run: () => Promise.reject(new UsageError("The passcommand failed with exit code 1")),
    prompt: () => Promise.resolve("never asked"),
  };
  await rejects(
    resolvePassphrase(sourcesWith(["ownCommand", "ownPassphrase", "env"]), io),
    /failed with exit code 1/,
  );
  await rejects(
    resolvePassphrase(sourcesWith(["topCommand", "topPassphrase"]), io),
    /failed with exit code 1/,
  );
});

Deno.test("resolvePassphrase counts empty values as set, and refuses them naming the source", async () => {
  const { io } = recordingIo();
  await rejects(
    resolvePassphrase({ repository: "r", env: "", top: { passphrase: "x" } }, io),
    usageErrorMatching('Empty passphrase for repository "r" (from VGER_PASSPHRASE)'),
  );
  await rejects(
    resolvePassphrase({ repository: "r", own: { passphrase: "" }, env: "x" }, io),
    usageErrorMatching('Empty passphrase for repository "r" (from encryption.passphrase)'),
  );
  await rejects(
    resolvePassphrase({ repository: "r", env: "", envName: "VGER_NEW_PASSPHRASE" }, io),
    usageErrorMatching('Empty passphrase for repository "r" (from VGER_NEW_PASSPHRASE)'),
  );
});

Deno.test("resolvePassphrase gives undefined when nothing is set and nobody can be asked", async () => {
  const { io, prompts } = recordingIo([undefined]);
  equal(await resolvePassphrase({ repository: "main", confirm: true }, io), undefined);
  equal(prompts.length, 1);
});

Deno.test("resolvePassphrase asks twice when confirming and refuses a mismatch or an empty entry", async () => {
  const same = recordingIo(["new pass", "new pass"]);
  equal(
    await resolvePassphrase({ repository: "main", confirm: true }, same.io),
    "new pass",
  );
  deepStrictEqual(same.prompts, ['Passphrase for repository "main": ', "Repeat the passphrase: "]);

  const differ = recordingIo(["new pass", "new pasz"]);
  await rejects(
    resolvePassphrase({ repository: "main", confirm: true }, differ.io),
    usageErrorMatching('The passphrases entered for repository "main" do not match'),
  );
  const empty = recordingIo(["", ""]);
  await rejects(
    resolvePassphrase({ repository: "main", confirm: true }, empty.io),
    usageErrorMatching('Empty passphrase for repository "main" (from the prompt)'),
  );
  equal(empty.prompts.length, 1);

  // confirming only concerns the prompt: a configured passphrase is used as is
  const configured = recordingIo();
  equal(
    await resolvePassphrase({ repository: "main", confirm: true, env: "set" }, configured.io),
    "set",
  );
  deepStrictEqual(configured.prompts, []);
});

Deno.test("resolvePassphrase uses the given prompt text", async () => {
  const { io, prompts } = recordingIo(["x"]);
  await resolvePassphrase(
    { repository: "main", promptText: 'New passphrase for repository "main": ' },
    io,
  );
  deepStrictEqual(prompts, ['New passphrase for repository "main": ']);
});

// ---------------------------------------------------------------------------------------------
// resolveToken

Deno.test("resolveToken prefers rest_token_command over rest_token", async () => {
  const { io, ran, whats } = recordingIo();
  equal(
    await resolveToken({ token: "inline", tokenCommand: "top-command", repository: "remote" }, io),
    "from topCommand",
  );
  deepStrictEqual(ran, ["top-command"]);
  deepStrictEqual(whats, ['rest_token_command "top-command" of repository "remote"']);
  equal(await resolveToken({ token: "inline" }, io), "inline");
  equal(await resolveToken({}, io), undefined);
  equal(ran.length, 1);
});

Deno.test("resolveToken runs a real rest_token_command and reports its failure", async () => {
  equal(await resolveToken({ tokenCommand: "echo tok" }, { run: runSecretCommand }), "tok");
  await rejects(
    resolveToken({ tokenCommand: "sh -c 'echo denied >&2; exit 4'" }, { run: runSecretCommand }),
    usageErrorMatching(
      `The rest_token_command "sh -c 'echo denied >&2; exit 4'" failed with exit code 4: denied`,
    ),
  );
});

// ---------------------------------------------------------------------------------------------
// promptSecret

/** A fake terminal that delivers the given chunks of key presses. */
function fakeTerminal(chunks: (string | number[])[], isTerminal = true) {
  const written: string[] = [];
  const rawModes: boolean[] = [];
  const pending = chunks.map((c) => typeof c === "string" ? new TextEncoder().encode(c) : c);
  const terminal: SecretTerminal = {
    isTerminal: () => isTerminal,
    setRaw: (raw) => rawModes.push(raw),
    read: (buffer) => {
      const next = pending.shift();
      if (next === undefined) return Promise.resolve(null);
      buffer.set(next);
      return Promise.resolve(next.length);
    },
    write: (text) => written.push(text),
  };
  return { terminal, written, rawModes };
}

Deno.test("promptSecret reads a line in raw mode, shows the prompt and never the secret", async () => {
  const t = fakeTerminal(["hun", "ter2", "\r", "ignored after enter"]);
  equal(await promptSecret("Passphrase: ", { terminal: t.terminal }), "hunter2");
  deepStrictEqual(t.written, ["Passphrase: ", "\n"]);
  deepStrictEqual(t.rawModes, [true, false]);
});

Deno.test("promptSecret handles backspace on multi-byte characters, Ctrl-U and escape sequences", async () => {
  const cases: [(string | number[])[], string][] = [
    [["abcd", [127, 127], "x\n"], "abx"],
    [["abc", [8], "\r"], "ab"],
    [["ünï", [127], "\r"], "ün"],
    [["😀x", [127, 127], "y\r"], "y"],
    [[[127, 127], "a\r"], "a"],
    [["wrong", [21], "right\r"], "right"],
    // arrow keys (ESC [ A, ESC O D) and a lone control character are ignored
    [["a", [27, 0x5b, 0x41], "b", [27, 0x4f, 0x44], [1], "c\r"], "abc"],
    [["tab\there\r"], "tab\there"],
  ];
  for (const [chunks, want] of cases) {
    const t = fakeTerminal(chunks);
    equal(await promptSecret("? ", { terminal: t.terminal }), want, JSON.stringify(chunks));
  }
});

Deno.test("promptSecret ends at Ctrl-D or the end of input", async () => {
  equal(await promptSecret("? ", { terminal: fakeTerminal(["abc", [4], "def"]).terminal }), "abc");
  equal(await promptSecret("? ", { terminal: fakeTerminal(["abc"]).terminal }), "abc");
  equal(await promptSecret("? ", { terminal: fakeTerminal([]).terminal }), "");
});

Deno.test("promptSecret throws InterruptedError on Ctrl-C and leaves raw mode", async () => {
  const t = fakeTerminal(["abc", [3], "def\r"]);
  await rejects(promptSecret("? ", { terminal: t.terminal }), (err: unknown) => {
    ok(err instanceof InterruptedError, `${err}`);
    equal(err.code, "interrupted");
    return true;
  });
  deepStrictEqual(t.rawModes, [true, false]);
  deepStrictEqual(t.written, ["? ", "\n"]);
});

Deno.test("promptSecret gives undefined without asking when input is not a terminal", async () => {
  const t = fakeTerminal(["secret\r"], false);
  equal(await promptSecret("? ", { terminal: t.terminal }), undefined);
  deepStrictEqual(t.written, []);
  deepStrictEqual(t.rawModes, []);
});
