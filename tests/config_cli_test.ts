/**
 * The configuration file, key by key and rule by rule, proven through the real `vger` CLI in a
 * subprocess on real files: each test shows the EFFECT of a setting (which repository was
 * written, which passphrase opened it, what the packs hold, what prune keeps...), not merely
 * that the file parses. lib/config_test.ts covers the parser itself.
 */

import { deepStrictEqual, equal, match, notEqual, ok } from "node:assert/strict";
import {
  exists,
  FAST_KDF_ARGS,
  listItems,
  PASSPHRASE,
  pseudoRandomBytes,
  type RunOptions,
  runVger,
  runVgerOk,
  storedPath,
  treeSnapshot,
  withTempDir,
} from "./_helpers.ts";

// ---------------------------------------------------------------------------------------------
// Small helpers

/** A YAML double-quoted scalar (a JSON string is one). */
function q(s: string): string {
  return JSON.stringify(s);
}

/** Writes a configuration file and returns its path. */
async function writeConfig(path: string, text: string): Promise<string> {
  await Deno.writeTextFile(path, text);
  return path;
}

/** The JSON documents of a JSON Lines output, each parsed (throws on a line that is not JSON). */
function jsonLines<T>(stdout: string): T[] {
  return stdout.split("\n").filter((l) => l.trim() !== "").map((l) => JSON.parse(l) as T);
}

/** The summary `backup --json` prints for one repository. */
interface BackupJson {
  repository: string;
  archive: string;
  files: number;
  original_size: number;
  compressed_size: number;
  deduplicated_size: number;
}

/** One repository's `list --json`. */
interface ListJson {
  repository: string;
  archives: { name: string; time: string }[];
}

/** The names of the archives in a repository (opened with `-R`, no configuration). */
async function archiveNames(repo: string, options: RunOptions = {}): Promise<string[]> {
  const r = await runVgerOk(["-R", repo, "list", "--json"], options);
  return (JSON.parse(r.stdout) as ListJson).archives.map((a) => a.name);
}

/** Archive names per repository of a configuration, in one `list --json` run. */
async function namesByRepo(config: string): Promise<Map<string, string[]>> {
  const r = await runVgerOk(["-c", config, "list", "--json"]);
  return new Map(
    jsonLines<ListJson>(r.stdout).map((l) => [l.repository, l.archives.map((a) => a.name)]),
  );
}

/** Every regular file below `root`, recursively. */
async function filesBelow(root: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(root)) {
    const path = `${root}/${e.name}`;
    if (e.isDirectory) out.push(...await filesBelow(path));
    else if (e.isFile) out.push(path);
  }
  return out.sort();
}

/** Whether `needle` occurs in `hay`. */
function containsBytes(hay: Uint8Array, needle: Uint8Array): boolean {
  const first = needle[0];
  for (let i = hay.indexOf(first); i >= 0 && i + needle.length <= hay.length;) {
    let j = 1;
    while (j < needle.length && hay[i + j] === needle[j]) j++;
    if (j === needle.length) return true;
    i = hay.indexOf(first, i + 1);
  }
  return false;
}

/** Whether any file of the repository contains `marker`. */
async function repoContains(repo: string, marker: string): Promise<boolean> {
  const needle = new TextEncoder().encode(marker);
  for (const f of await filesBelow(repo)) {
    if (containsBytes(await Deno.readFile(f), needle)) return true;
  }
  return false;
}

/** Stored paths of an archive relative to the backed-up directory `source` (which is left out). */
async function storedBelow(repo: string, archive: string, source: string): Promise<string[]> {
  const prefix = `${storedPath(source)}/`;
  return (await listItems(repo, archive))
    .map((i) => i.path)
    .filter((p) => p.startsWith(prefix))
    .map((p) => p.slice(prefix.length))
    .sort();
}

/** Asserts a configuration error: exit 2, one line on stderr naming file, line and key path. */
function assertConfigError(
  r: { code: number; stderr: string; stdout: string },
  file: string,
  line: number,
  keyPath: string | null,
  detail?: RegExp,
): void {
  equal(r.code, 2, `expected exit code 2 for a configuration error:\n${r.stderr}`);
  const lines = r.stderr.trim().split("\n");
  equal(lines.length, 1, `expected one line on stderr, got:\n${r.stderr}`);
  ok(lines[0].includes(file), `the error does not name ${file}: ${lines[0]}`);
  ok(lines[0].includes(`line ${line}`), `the error does not name line ${line}: ${lines[0]}`);
  if (keyPath !== null) {
    ok(lines[0].includes(`${keyPath}:`), `the error does not name ${keyPath}: ${lines[0]}`);
  }
  if (detail) match(lines[0], detail);
}

/** A small source tree: two text files in a subdirectory. */
async function smallTree(root: string, tag = "a"): Promise<void> {
  await Deno.mkdir(`${root}/sub`, { recursive: true });
  await Deno.writeTextFile(`${root}/one-${tag}.txt`, `first file ${tag}\n`.repeat(50));
  await Deno.writeTextFile(`${root}/sub/two-${tag}.txt`, `second file ${tag}\n`.repeat(50));
}

/** Text that compresses well but not trivially: words drawn from a vocabulary, pseudo-randomly. */
function compressibleText(bytes: number): string {
  const rnd = pseudoRandomBytes(bytes, 42);
  const words: string[] = [];
  for (let i = 0; i < 500; i++) {
    let w = "";
    for (let j = 0; j < 3 + (rnd[i] % 8); j++) w += String.fromCharCode(97 + rnd[i * 7 + j] % 26);
    words.push(w);
  }
  let out = "";
  for (let i = 0; out.length < bytes; i += 2) {
    out += words[((rnd[i % bytes] << 8) | rnd[(i + 1) % bytes]) % words.length];
    out += rnd[(i + 3) % bytes] % 13 === 0 ? ".\n" : " ";
  }
  return out.slice(0, bytes);
}

// ---------------------------------------------------------------------------------------------
// repositories: path, label, backend, min/max pack size; several repositories

Deno.test("repositories: commands run on every entry in order, --repo LABEL and -R PATH pick one", async (t) => {
  await withTempDir(async (dir) => {
    const src = `${dir}/src`;
    await smallTree(src);
    const local = `${dir}/local-repo`;
    const remote = `${dir}/remote-repo`;
    const cfg = await writeConfig(
      `${dir}/vger.yaml`,
      `repositories:
  - path: ${q(local)}
    label: local
  - path: ${q(remote)}
    label: remote
source_directories:
  - ${q(src)}
`,
    );
    const run = (args: string[], options: RunOptions = {}) =>
      runVger(["-c", cfg, ...args], options);

    await t.step(
      "an unknown label is exit 2 naming the file, with a suggestion, touching nothing",
      async () => {
        const r = await run(["--repo", "remot", "init", ...FAST_KDF_ARGS]);
        equal(r.code, 2, r.stderr);
        ok(r.stderr.includes(cfg), `the error does not name ${cfg}: ${r.stderr}`);
        ok(r.stderr.includes('did you mean "remote"'), `no suggestion: ${r.stderr}`);
        equal(r.stderr.trim().split("\n").length, 1, r.stderr);
        ok(!await exists(local) && !await exists(remote), "a repository was created");
      },
    );

    await t.step(
      "init and backup run on both repositories, in file order (JSON Lines)",
      async () => {
        const init = await run(["init", ...FAST_KDF_ARGS]);
        equal(init.code, 0, init.stderr);
        ok(await exists(`${local}/config`) && await exists(`${remote}/config`));
        ok(
          init.stderr.indexOf(local) < init.stderr.indexOf(remote),
          `init did not run in file order:\n${init.stderr}`,
        );
        const r = await run(["backup", "--archive", "both", "--json"]);
        equal(r.code, 0, r.stderr);
        const docs = jsonLines<BackupJson>(r.stdout);
        deepStrictEqual(docs.map((d) => d.repository), [local, remote]);
        deepStrictEqual(docs.map((d) => d.archive), ["both", "both"]);
        const list = await run(["list", "--json"]);
        equal(list.code, 0, list.stderr);
        const lists = jsonLines<ListJson>(list.stdout);
        deepStrictEqual(lists.map((l) => l.repository), [local, remote]);
        const [a, b] = lists.map((l) => l.archives.find((x) => x.name === "both")!);
        ok(Date.parse(a.time) <= Date.parse(b.time), "the second repository was written first");
      },
    );

    await t.step("--repo LABEL backs up to that repository only", async () => {
      const r = await run(["--repo", "remote", "backup", "--archive", "only-remote"]);
      equal(r.code, 0, r.stderr);
      const names = await namesByRepo(cfg);
      deepStrictEqual(names.get(remote), ["both", "only-remote"]);
      deepStrictEqual(names.get(local), ["both"]);
    });

    await t.step("-R PATH of an entry backs up to that repository only", async () => {
      const r = await run(["-R", local, "backup", "--archive", "only-local"]);
      equal(r.code, 0, r.stderr);
      const names = await namesByRepo(cfg);
      deepStrictEqual(names.get(local), ["both", "only-local"]);
      deepStrictEqual(names.get(remote), ["both", "only-remote"]);
    });

    await t.step(
      "a failing repository does not stop the next one; the exit code reports it",
      async () => {
        const notARepo = `${dir}/a-file`;
        await Deno.writeTextFile(notARepo, "not a repository\n");
        const cfg2 = await writeConfig(
          `${dir}/failing.yaml`,
          `repositories:
  - path: ${q(notARepo)}
  - path: ${q(local)}
  - path: ${q(remote)}
    encryption:
      passphrase: "not the passphrase"
source_directories:
  - ${q(src)}
`,
        );
        const r = await runVger(["-c", cfg2, "backup", "--archive", "after-failure", "--json"]);
        equal(r.code, 1, r.stderr);
        const docs = jsonLines<BackupJson>(r.stdout);
        deepStrictEqual(
          docs.map((d) => d.repository),
          [local],
          "one JSON line per repository done",
        );
        ok(r.stderr.includes(notARepo), `the error does not name ${notARepo}:\n${r.stderr}`);
        match(r.stderr, /wrong passphrase/i);
        ok(r.stderr.includes(remote), `the error does not name ${remote}:\n${r.stderr}`);
        const names = await namesByRepo(cfg);
        ok(names.get(local)!.includes("after-failure"));
        ok(!names.get(remote)!.includes("after-failure"));
        equal(await Deno.readTextFile(notARepo), "not a repository\n");
      },
    );
  });
});

Deno.test("repositories: an s3 repository it cannot open (no credentials, no server) and a rest one with no server fail by name, the local one still runs", async () => {
  await withTempDir(async (dir) => {
    const local = `${dir}/repo`;
    const cfg = await writeConfig(
      `${dir}/vger.yaml`,
      `repositories:
  - path: "vger/main"
    label: offsite
    backend: s3
    s3_bucket: my-backups
    s3_region: us-east-1
    s3_endpoint: "http://127.0.0.1:9"
  - path: "http://127.0.0.1:9/myrepo"
    label: server
    backend: rest
    rest_token: some-secret-token
  - path: ${q(local)}
`,
    );
    const r = await runVger(["-c", cfg, "init", ...FAST_KDF_ARGS]);
    ok(r.code === 1 || r.code === 2, `exit code ${r.code}:\n${r.stderr}`);
    ok(/s3/.test(r.stderr) && r.stderr.includes('"vger/main"'), r.stderr);
    ok(/http:\/\/127\.0\.0\.1:9\/myrepo: cannot reach the server/.test(r.stderr), r.stderr);
    ok(!r.stderr.includes("some-secret-token"), r.stderr);
    ok(!/Unexpected error|\n\s+at /.test(r.stderr), `a stack trace:\n${r.stderr}`);
    ok(await exists(`${local}/config`), "the local repository after them was not created");
  });
});

Deno.test("repositories: min_pack_size and max_pack_size bound the pack files on disk", async () => {
  await withTempDir(async (dir) => {
    const repo = `${dir}/repo`;
    const min = 1 << 20;
    const max = 2 << 20;
    // chunks (at most 256 KiB) well below the ceiling, so a pack never needs to exceed it
    const cfg = await writeConfig(
      `${dir}/vger.yaml`,
      `repositories:
  - path: ${q(repo)}
    min_pack_size: ${min}
    max_pack_size: ${max}
chunker:
  min_size: 65536
  avg_size: 131072
  max_size: 262144
compression:
  algorithm: none
`,
    );
    await runVgerOk(["-c", cfg, "init", ...FAST_KDF_ARGS]);
    await Deno.mkdir(`${dir}/src`);
    await Deno.writeFile(`${dir}/src/first.bin`, pseudoRandomBytes(10 << 20, 11));
    await runVgerOk(["-c", cfg, "backup", "--archive", "first", `${dir}/src/first.bin`]);
    const firstPacks = await filesBelow(`${repo}/packs`);
    const firstSizes = await Promise.all(firstPacks.map(async (p) => (await Deno.stat(p)).size));
    // the default floor (32 MiB) would have made one pack of these 10 MiB
    ok(firstSizes.length >= 5, `only ${firstSizes.length} packs: ${firstSizes}`);
    const small = firstSizes.filter((s) => s < min);
    // the last data pack, and the pack of item blobs (metadata never shares a data pack)
    ok(small.length <= 2, `more than the last packs are under min_pack_size: ${firstSizes}`);
    // a repository with packs aims at bigger packs (up to the ceiling): write 10 MiB more
    await Deno.writeFile(`${dir}/src/second.bin`, pseudoRandomBytes(10 << 20, 12));
    await runVgerOk(["-c", cfg, "backup", "--archive", "second", `${dir}/src/second.bin`]);
    const all = await filesBelow(`${repo}/packs`);
    const sizes = await Promise.all(all.map(async (p) => (await Deno.stat(p)).size));
    const over = sizes.filter((s) => s > max);
    deepStrictEqual(over, [], `packs over max_pack_size ${max}: ${sizes.join(", ")}`);
  });
});

// ---------------------------------------------------------------------------------------------
// encryption: mode, passphrase, passcommand and their precedence

Deno.test("encryption.mode none stores plaintext in the packs, aes256gcm does not", async () => {
  await withTempDir(async (dir) => {
    const marker = "VGER-CONFIG-MARKER-7f3a9c";
    const src = `${dir}/src`;
    await Deno.mkdir(src);
    await Deno.writeTextFile(`${src}/${marker}.txt`, `${marker}\n`.repeat(20));
    const plain = `${dir}/plain`;
    const secret = `${dir}/secret`;
    const cfg = await writeConfig(
      `${dir}/vger.yaml`,
      `repositories:
  - path: ${q(plain)}
    encryption:
      mode: none
  - path: ${q(secret)}
encryption:
  mode: aes256gcm
compression:
  algorithm: none
source_directories:
  - ${q(src)}
`,
    );
    const init = await runVgerOk(["-c", cfg, "init", "--json", ...FAST_KDF_ARGS]);
    deepStrictEqual(
      jsonLines<{ encryption: string }>(init.stdout).map((d) => d.encryption),
      ["none", "aes256gcm"],
    );
    await runVgerOk(["-c", cfg, "backup", "--archive", "one"]);
    ok(await repoContains(plain, marker), "mode none: the marker is not in the repository");
    ok(!await repoContains(secret, marker), "aes256gcm: the marker is in the repository");
  });
});

Deno.test("encryption.passphrase inline creates and opens the repository without VGER_PASSPHRASE", async () => {
  await withTempDir(async (dir) => {
    const repo = `${dir}/repo`;
    const inline = "an inline passphrase";
    const cfg = await writeConfig(
      `${dir}/vger.yaml`,
      `repositories:\n  - path: ${q(repo)}\nencryption:\n  passphrase: ${q(inline)}\n`,
    );
    const noEnv = { env: { VGER_PASSPHRASE: undefined } };
    await runVgerOk(["-c", cfg, "init", ...FAST_KDF_ARGS], noEnv);
    await runVgerOk(["-c", cfg, "list"], noEnv);
    // it was that passphrase that protects the key, not some default
    const right = await runVger(["-R", repo, "list"], { env: { VGER_PASSPHRASE: inline } });
    equal(right.code, 0, right.stderr);
    const wrong = await runVger(["-R", repo, "list"], { env: { VGER_PASSPHRASE: PASSPHRASE } });
    equal(wrong.code, 1, wrong.stderr);
    match(wrong.stderr, /Wrong passphrase/);
  });
});

Deno.test("encryption.passcommand runs a real command without a shell, quotes honoured", async (t) => {
  await withTempDir(async (dir) => {
    const noEnv = { env: { VGER_PASSPHRASE: undefined } };
    await t.step("printf with a quoted argument", async () => {
      const repo = `${dir}/printf-repo`;
      const cfg = await writeConfig(
        `${dir}/printf.yaml`,
        `repositories:\n  - path: ${
          q(repo)
        }\nencryption:\n  passcommand: "printf %s 'two  words'"\n`,
      );
      await runVgerOk(["-c", cfg, "init", ...FAST_KDF_ARGS], noEnv);
      const r = await runVger(["-R", repo, "list"], { env: { VGER_PASSPHRASE: "two  words" } });
      equal(r.code, 0, `the passphrase was not "two  words":\n${r.stderr}`);
    });

    await t.step("a script in a directory with a space, with a quoted argument", async () => {
      const repo = `${dir}/script-repo`;
      await Deno.mkdir(`${dir}/pass dir`);
      const script = `${dir}/pass dir/get-pass.sh`;
      await Deno.writeTextFile(script, '#!/bin/sh\nprintf "pass-for-%s\\n" "$2"\n');
      await Deno.chmod(script, 0o755);
      // no shell: "$HOME" and the pipe reach the script verbatim and are ignored by it
      const cfg = await writeConfig(
        `${dir}/script.yaml`,
        `repositories:\n  - path: ${q(repo)}\nencryption:\n  passcommand: ${
          q(`'${script}' --name "my repo" '$HOME|x'`)
        }\n`,
      );
      await runVgerOk(["-c", cfg, "init", ...FAST_KDF_ARGS], noEnv);
      await runVgerOk(["-c", cfg, "list"], noEnv);
      const r = await runVger(["-R", repo, "list"], {
        env: { VGER_PASSPHRASE: "pass-for-my repo" },
      });
      equal(r.code, 0, `the passphrase was not "pass-for-my repo":\n${r.stderr}`);
    });

    await t.step("a failing passcommand shows its stderr and touches nothing", async () => {
      const repo = `${dir}/failing-repo`;
      const cfg = await writeConfig(
        `${dir}/failing.yaml`,
        `repositories:\n  - path: ${q(repo)}\nencryption:\n  passcommand: ${
          q("sh -c 'echo the vault is sealed >&2; exit 3'")
        }\n`,
      );
      const r = await runVger(["-c", cfg, "init", ...FAST_KDF_ARGS], noEnv);
      notEqual(r.code, 0);
      ok(r.stderr.includes("the vault is sealed"), `stderr not shown:\n${r.stderr}`);
      match(r.stderr, /exit code 3/);
      ok(!await exists(repo), "a repository was created without a passphrase");
    });
  });
});

Deno.test("passphrase precedence: entry passcommand, entry passphrase, VGER_PASSPHRASE, top passcommand, top passphrase", async (t) => {
  await withTempDir(async (dir) => {
    const repo = `${dir}/repo`;
    const right = "the right one";
    await runVgerOk(["-R", repo, "init", ...FAST_KDF_ARGS], { env: { VGER_PASSPHRASE: right } });
    const cmd = (secret: string) => q(`printf %s '${secret}'`);
    interface Sources {
      entryCommand?: string;
      entryPassphrase?: string;
      env?: string;
      topCommand?: string;
      topPassphrase?: string;
    }
    const cases: { name: string; sources: Sources; opens: boolean }[] = [
      {
        name: "the entry's passcommand beats everything else",
        sources: {
          entryCommand: right,
          entryPassphrase: "wrong 1",
          env: "wrong 2",
          topCommand: "wrong 3",
          topPassphrase: "wrong 4",
        },
        opens: true,
      },
      {
        name: "the entry's own passphrase beats VGER_PASSPHRASE and the top level",
        sources: {
          entryPassphrase: right,
          env: "wrong 2",
          topCommand: "wrong 3",
          topPassphrase: "wrong 4",
        },
        opens: true,
      },
      {
        name: "a wrong entry passcommand is used even when VGER_PASSPHRASE is right",
        sources: { entryCommand: "wrong 1", env: right, topPassphrase: right },
        opens: false,
      },
      {
        name: "VGER_PASSPHRASE beats the top-level passcommand and passphrase",
        sources: { env: right, topCommand: "wrong 3", topPassphrase: "wrong 4" },
        opens: true,
      },
      {
        name: "a wrong VGER_PASSPHRASE is used even when the top-level passcommand is right",
        sources: { env: "wrong 2", topCommand: right, topPassphrase: right },
        opens: false,
      },
      {
        name: "the top-level passcommand beats the top-level passphrase",
        sources: { topCommand: right, topPassphrase: "wrong 4" },
        opens: true,
      },
      {
        name: "a wrong top-level passcommand is used even when the top-level passphrase is right",
        sources: { topCommand: "wrong 3", topPassphrase: right },
        opens: false,
      },
      {
        name: "the top-level passphrase alone opens it",
        sources: { topPassphrase: right },
        opens: true,
      },
    ];
    for (const [i, c] of cases.entries()) {
      await t.step(c.name, async () => {
        const s = c.sources;
        const entry = [
          s.entryCommand !== undefined ? `      passcommand: ${cmd(s.entryCommand)}` : "",
          s.entryPassphrase !== undefined ? `      passphrase: ${q(s.entryPassphrase)}` : "",
        ].filter((l) => l !== "");
        const top = [
          s.topCommand !== undefined ? `  passcommand: ${cmd(s.topCommand)}` : "",
          s.topPassphrase !== undefined ? `  passphrase: ${q(s.topPassphrase)}` : "",
        ].filter((l) => l !== "");
        const cfg = await writeConfig(
          `${dir}/case-${i}.yaml`,
          [
            "repositories:",
            `  - path: ${q(repo)}`,
            ...(entry.length > 0 ? ["    encryption:", ...entry] : []),
            ...(top.length > 0 ? ["encryption:", ...top] : []),
            "",
          ].join("\n"),
        );
        const r = await runVger(["-c", cfg, "list"], { env: { VGER_PASSPHRASE: s.env } });
        if (c.opens) equal(r.code, 0, r.stderr);
        else {
          equal(r.code, 1, r.stderr);
          match(r.stderr, /Wrong passphrase/);
        }
      });
    }
  });
});

// ---------------------------------------------------------------------------------------------
// source_directories, exclude_patterns, compression, chunker, retention, archive_name_format

Deno.test("source_directories: backup without paths takes them; an entry's list replaces the top level", async () => {
  await withTempDir(async (dir) => {
    const top = `${dir}/top-src`;
    const own = `${dir}/own-src`;
    await smallTree(top, "top");
    await smallTree(own, "own");
    const inherits = `${dir}/inherits`;
    const overrides = `${dir}/overrides`;
    const cfg = await writeConfig(
      `${dir}/vger.yaml`,
      `repositories:
  - path: ${q(inherits)}
  - path: ${q(overrides)}
    source_directories:
      - ${q(own)}
source_directories:
  - ${q(top)}
`,
    );
    await runVgerOk(["-c", cfg, "init", ...FAST_KDF_ARGS]);
    await runVgerOk(["-c", cfg, "backup", "--archive", "one"]);
    const paths = async (repo: string) => (await listItems(repo, "one")).map((i) => i.path);
    const a = await paths(inherits);
    const b = await paths(overrides);
    ok(a.includes(`${storedPath(top)}/sub/two-top.txt`), a.join("\n"));
    ok(!a.some((p) => p.startsWith(storedPath(own))), a.join("\n"));
    ok(b.includes(`${storedPath(own)}/sub/two-own.txt`), b.join("\n"));
    ok(!b.some((p) => p.startsWith(storedPath(top))), b.join("\n"));
  });
});

Deno.test("exclude_patterns: *.tmp at any depth, .cache/** and an anchored pattern", async () => {
  await withTempDir(async (dir) => {
    const src = `${dir}/src`;
    const files = [
      "keep.txt",
      "a.tmp",
      "sub/b.tmp",
      "sub/c.tmpx",
      "sub/tmp.txt",
      ".cache/x",
      "sub/.cache/deep/y",
      "sub/cache.txt",
      "skip-here/z",
      "sub/skip-here/z",
    ];
    for (const f of files) {
      await Deno.mkdir(`${src}/${f}`.replace(/\/[^/]*$/, ""), { recursive: true });
      await Deno.writeTextFile(`${src}/${f}`, f);
    }
    const repo = `${dir}/repo`;
    const cfg = await writeConfig(
      `${dir}/vger.yaml`,
      `repositories:
  - path: ${q(repo)}
source_directories:
  - ${q(src)}
exclude_patterns:
  - "*.tmp"
  - ".cache/**"
  - ${q(`${src}/skip-here`)}
`,
    );
    await runVgerOk(["-c", cfg, "init", ...FAST_KDF_ARGS]);
    await runVgerOk(["-c", cfg, "backup", "--archive", "one"]);
    const stored = await storedBelow(repo, "one", src);
    for (const f of ["keep.txt", "sub/c.tmpx", "sub/tmp.txt", "sub/cache.txt", "sub/skip-here/z"]) {
      ok(stored.includes(f), `${f} was not stored: ${stored.join(", ")}`);
    }
    for (const f of ["a.tmp", "sub/b.tmp", ".cache/x", "sub/.cache/deep/y", "skip-here/z"]) {
      ok(!stored.includes(f), `${f} was stored: ${stored.join(", ")}`);
    }
    ok(!stored.includes("skip-here"), "the anchored directory itself was stored");
  });
});

Deno.test("compression: zstd < lz4 < none on compressible data; an entry overrides key by key", async () => {
  await withTempDir(async (dir) => {
    const src = `${dir}/src`;
    await Deno.mkdir(src);
    await Deno.writeTextFile(`${src}/words.txt`, compressibleText(1 << 20));
    const repos = {
      zstd19: `${dir}/zstd19`,
      zstd1: `${dir}/zstd1`,
      lz4: `${dir}/lz4`,
      none: `${dir}/none`,
    };
    const cfg = await writeConfig(
      `${dir}/vger.yaml`,
      `repositories:
  - path: ${q(repos.zstd19)}
  - path: ${q(repos.zstd1)}
    compression:
      zstd_level: 1
  - path: ${q(repos.lz4)}
    compression:
      algorithm: lz4
  - path: ${q(repos.none)}
    compression:
      algorithm: none
compression:
  algorithm: zstd
  zstd_level: 19
source_directories:
  - ${q(src)}
`,
    );
    await runVgerOk(["-c", cfg, "init", ...FAST_KDF_ARGS]);
    const r = await runVgerOk(["-c", cfg, "backup", "--archive", "one", "--json"]);
    const by = new Map(jsonLines<BackupJson>(r.stdout).map((d) => [d.repository, d]));
    const size = (repo: string) => by.get(repo)!.compressed_size;
    const original = by.get(repos.none)!.original_size;
    const sizes = Object.fromEntries(Object.entries(repos).map(([k, v]) => [k, size(v)]));
    const why = JSON.stringify({ original, ...sizes });
    ok(sizes.none >= original, `none compressed: ${why}`);
    ok(sizes.lz4 < sizes.none * 0.8, `lz4 did not compress: ${why}`);
    // zstd_level alone keeps the top-level algorithm: zstd at level 1 still beats lz4
    ok(sizes.zstd1 < sizes.lz4, `zstd level 1 is not smaller than lz4: ${why}`);
    ok(sizes.zstd19 < sizes.zstd1, `zstd level 19 is not smaller than level 1: ${why}`);
  });
});

Deno.test("chunker: small chunk sizes make a 1-byte insert re-store little, the defaults a lot more", async () => {
  await withTempDir(async (dir) => {
    const data = pseudoRandomBytes(6 << 20, 5);
    const file = `${dir}/src/data.bin`;
    await Deno.mkdir(`${dir}/src`);
    const cfgFor = async (name: string, chunker: string) =>
      await writeConfig(
        `${dir}/${name}.yaml`,
        `repositories:\n  - path: ${
          q(`${dir}/${name}`)
        }\n${chunker}compression:\n  algorithm: none\n`,
      );
    const small = await cfgFor(
      "small",
      "chunker:\n  min_size: 4096\n  avg_size: 16384\n  max_size: 65536\n",
    );
    const dflt = await cfgFor("default", "");
    for (const cfg of [small, dflt]) await runVgerOk(["-c", cfg, "init", ...FAST_KDF_ARGS]);
    const backup = async (cfg: string, name: string) =>
      jsonLines<BackupJson>(
        (await runVgerOk(["-c", cfg, "backup", "--archive", name, "--json", file])).stdout,
      )[0];
    await Deno.writeFile(file, data);
    await Promise.all([backup(small, "before"), backup(dflt, "before")]);
    const mid = 3 << 20;
    const edited = new Uint8Array(data.length + 1);
    edited.set(data.subarray(0, mid));
    edited[mid] = 0x5a;
    edited.set(data.subarray(mid), mid + 1);
    await Deno.writeFile(file, edited);
    const [s, d] = await Promise.all([backup(small, "after"), backup(dflt, "after")]);
    const why = `small chunker added ${s.deduplicated_size}, default ${d.deduplicated_size}`;
    // at most a few chunks of <= 64 KiB change (plus metadata)
    ok(s.deduplicated_size < 400 << 10, why);
    // the changed chunk is at least the default min_size, 512 KiB
    ok(d.deduplicated_size >= 512 << 10, why);
  });
});

Deno.test("retention: prune keeps what the policy says; an entry's rules merge key by key", async () => {
  await withTempDir(async (dir) => {
    const src = `${dir}/src`;
    await smallTree(src);
    const repos = { top: `${dir}/top`, last1: `${dir}/last1`, daily: `${dir}/daily` };
    const cfg = await writeConfig(
      `${dir}/vger.yaml`,
      `repositories:
  - path: ${q(repos.top)}
  - path: ${q(repos.last1)}
    retention:
      keep_last: 1
  - path: ${q(repos.daily)}
    retention:
      keep_daily: 1
retention:
  keep_last: 2
source_directories:
  - ${q(src)}
`,
    );
    await runVgerOk(["-c", cfg, "init", ...FAST_KDF_ARGS]);
    for (const name of ["a1", "a2", "a3"]) {
      await Deno.writeTextFile(`${src}/changing.txt`, name);
      await runVgerOk(["-c", cfg, "backup", "--archive", name]);
    }
    const r = await runVgerOk(["-c", cfg, "prune", "--dry-run", "--json"]);
    type PruneJson = {
      repository: string;
      dry_run: boolean;
      archives: { name: string; keep: boolean }[];
    };
    const kept = new Map(
      jsonLines<PruneJson>(r.stdout).map((d) => [
        d.repository,
        d.archives.filter((a) => a.keep).map((a) => a.name).sort(),
      ]),
    );
    deepStrictEqual(kept.get(repos.top), ["a2", "a3"], "top-level keep_last: 2");
    deepStrictEqual(kept.get(repos.last1), ["a3"], "the entry's keep_last: 1 wins");
    // keep_daily alone would keep a3 only: the top-level keep_last: 2 still applies
    deepStrictEqual(kept.get(repos.daily), ["a2", "a3"], "keep_daily merged with keep_last");
    const names = await namesByRepo(cfg);
    for (const repo of Object.values(repos)) {
      deepStrictEqual(names.get(repo), ["a1", "a2", "a3"], "--dry-run deleted");
    }
  });
});

Deno.test("archive_name_format: {user}, {hostname} and {now:...} name a backup without --archive", async () => {
  await withTempDir(async (dir) => {
    const src = `${dir}/src`;
    await smallTree(src);
    const repo = `${dir}/repo`;
    const custom = await writeConfig(
      `${dir}/custom.yaml`,
      `repositories:
  - path: ${q(repo)}
source_directories:
  - ${q(src)}
archive_name_format: "{user}-on-{hostname}-{now:%Y}"
`,
    );
    const dflt = await writeConfig(
      `${dir}/default.yaml`,
      `repositories:\n  - path: ${q(repo)}\nsource_directories:\n  - ${q(src)}\n`,
    );
    const env = { env: { USER: "tester" } };
    await runVgerOk(["-c", custom, "init", ...FAST_KDF_ARGS]);
    const before = new Date().getFullYear();
    const r1 = await runVgerOk(["-c", custom, "backup", "--json"], env);
    const after = new Date().getFullYear();
    const name = jsonLines<BackupJson>(r1.stdout)[0].archive;
    const host = Deno.hostname();
    ok(
      [before, after].some((y) => name === `tester-on-${host}-${y}`),
      `archive name ${name}`,
    );
    const r2 = await runVgerOk(["-c", dflt, "backup", "--json"], env);
    const name2 = jsonLines<BackupJson>(r2.stdout)[0].archive;
    const escaped = host.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    match(name2, new RegExp(`^${escaped}-\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d$`));
    deepStrictEqual((await archiveNames(repo)).sort(), [name, name2].sort());
  });
});

// ---------------------------------------------------------------------------------------------
// Where the configuration comes from

Deno.test("config search order: --config, VGER_CONFIG, ./vger.yaml, $XDG_CONFIG_HOME, ~/.config", async (t) => {
  await withTempDir(async (dir) => {
    const make = async (name: string, path: string) => {
      await Deno.mkdir(path.replace(/\/[^/]*$/, ""), { recursive: true });
      return await writeConfig(path, `repositories:\n  - path: ${q(`${dir}/repo-${name}`)}\n`);
    };
    const explicit = await make("explicit", `${dir}/explicit.yaml`);
    const fromEnv = await make("env", `${dir}/env.yaml`);
    const work = `${dir}/work`;
    const cwd = await make("cwd", `${work}/vger.yaml`);
    const xdg = await make("xdg", `${dir}/xdg/vger/config.yaml`);
    const home = await make("home", `${dir}/home/.config/vger/config.yaml`);
    const everything = {
      cwd: work,
      env: { VGER_CONFIG: fromEnv, XDG_CONFIG_HOME: `${dir}/xdg`, HOME: `${dir}/home` },
    };
    const initWith = async (
      args: string[],
      options: RunOptions,
      expected: string,
      file: string,
    ) => {
      const r = await runVger(["--verbose", ...args, "init", ...FAST_KDF_ARGS], options);
      equal(r.code, 0, r.stderr);
      ok(r.stderr.includes(`using configuration ${file}`), `file not named:\n${r.stderr}`);
      const made = [];
      for (const n of ["explicit", "env", "cwd", "xdg", "home"]) {
        if (await exists(`${dir}/repo-${n}`)) made.push(n);
      }
      deepStrictEqual(made, [expected], "init wrote elsewhere than the chosen file says");
      await Deno.remove(`${dir}/repo-${expected}`, { recursive: true });
    };
    await t.step("--config beats all the others", async () => {
      await initWith(["--config", explicit], everything, "explicit", explicit);
    });
    await t.step("VGER_CONFIG beats ./vger.yaml and the user's file", async () => {
      await initWith([], everything, "env", fromEnv);
    });
    await t.step("./vger.yaml beats the user's file", async () => {
      await initWith(
        [],
        { ...everything, env: { ...everything.env, VGER_CONFIG: undefined } },
        "cwd",
        "./vger.yaml",
      );
      ok(await exists(cwd));
    });
    await t.step("$XDG_CONFIG_HOME/vger/config.yaml beats ~/.config/vger/config.yaml", async () => {
      await initWith(
        [],
        { env: { XDG_CONFIG_HOME: `${dir}/xdg`, HOME: `${dir}/home` } },
        "xdg",
        xdg,
      );
    });
    await t.step("~/.config/vger/config.yaml without XDG_CONFIG_HOME", async () => {
      await initWith(
        [],
        { env: { XDG_CONFIG_HOME: undefined, HOME: `${dir}/home` } },
        "home",
        home,
      );
    });
  });
});

// ---------------------------------------------------------------------------------------------
// Bad configuration

Deno.test("a bad configuration is one line naming file, line and key path, exit 2, nothing touched", async (t) => {
  await withTempDir(async (dir) => {
    const repo = `${dir}/repo`;
    const cases: {
      name: string;
      text: string;
      line: number;
      keyPath: string | null;
      detail?: RegExp;
    }[] = [
      {
        name: "a YAML syntax error",
        text: `repositories:\n  - path: ${
          q(repo)
        }\n    label: main: x\nencryption:\n  mode: none\n`,
        line: 3,
        keyPath: null,
      },
      {
        name: "an unknown key, with a suggestion",
        text: `repositories:\n  - path: ${q(repo)}\ncompresion:\n  algorithm: zstd\n`,
        line: 3,
        keyPath: "compresion",
        detail: /did you mean "compression"/,
      },
      {
        name: "an unknown key inside a repository entry",
        text: `repositories:\n  - path: ${q(repo)}\n    lable: main\n`,
        line: 3,
        keyPath: "repositories[0].lable",
        detail: /did you mean "label"/,
      },
      {
        name: "a value of the wrong type",
        text: `repositories:\n  - path: ${q(repo)}\ncompression:\n  zstd_level: high\n`,
        line: 4,
        keyPath: "compression.zstd_level",
      },
      {
        name: "a value not among the choices",
        text: `repositories:\n  - path: ${q(repo)}\n    compression:\n      algorithm: gzip\n`,
        line: 4,
        keyPath: "repositories[0].compression.algorithm",
      },
      {
        name: "a missing path",
        text: `repositories:\n  - path: ${q(repo)}\n  - label: second\n`,
        line: 3,
        keyPath: "repositories[1].path",
        detail: /missing/,
      },
      {
        name: "an s3 entry whose s3_bucket is not the bucket of its s3:// path",
        text: `repositories:\n  - path: ${
          q(repo)
        }\n  - path: s3://a/vger\n    backend: s3\n    s3_bucket: b\n`,
        line: 5,
        keyPath: "repositories[1].s3_bucket",
        detail: /"b" is not the bucket "a" of path "s3:\/\/a\/vger"/,
      },
    ];
    for (const [i, c] of cases.entries()) {
      await t.step(c.name, async () => {
        const cfg = await writeConfig(`${dir}/bad-${i}.yaml`, c.text);
        const r = await runVger(["-c", cfg, "init", ...FAST_KDF_ARGS]);
        assertConfigError(r, cfg, c.line, c.keyPath, c.detail);
        ok(!await exists(repo), "the repository was created despite the error");
        // the same file found as ./vger.yaml is judged the same way (checked once: it is slow)
        if (i !== 1) return;
        const work = `${dir}/work-${i}`;
        await Deno.mkdir(work);
        await Deno.copyFile(cfg, `${work}/vger.yaml`);
        const r2 = await runVger(["backup", "--archive", "x", dir], { cwd: work });
        assertConfigError(r2, "vger.yaml", c.line, c.keyPath, c.detail);
        ok(!await exists(repo), "the repository was created despite the error");
      });
    }
  });
});

// ---------------------------------------------------------------------------------------------
// vger config

Deno.test("vger config writes a starter that init uses once edited, and never overwrites", async (t) => {
  await withTempDir(async (dir) => {
    const work = `${dir}/work`;
    await Deno.mkdir(work);
    const repo = `${dir}/repo`;
    let starter = "";
    await t.step("the starter, with the path edited, creates the repository", async () => {
      const r = await runVger(["config"], { cwd: work });
      equal(r.code, 0, r.stderr);
      starter = await Deno.readTextFile(`${work}/vger.yaml`);
      equal((await Deno.stat(`${work}/vger.yaml`)).mode! & 0o777, 0o600);
      ok(starter.includes('path: "/backup/repo"'), starter);
      await Deno.writeTextFile(
        `${work}/vger.yaml`,
        starter.replace('path: "/backup/repo"', `path: ${q(repo)}`),
      );
      const init = await runVger(["--verbose", "init", ...FAST_KDF_ARGS], { cwd: work });
      equal(init.code, 0, init.stderr);
      ok(init.stderr.includes("using configuration ./vger.yaml"), init.stderr);
      ok(await exists(`${repo}/config`), "init did not use the edited path");
      await smallTree(`${dir}/src`);
      const b = await runVger(["--repo", "main", "backup", "--archive", "one", `${dir}/src`], {
        cwd: work,
      });
      equal(b.code, 0, b.stderr);
      deepStrictEqual(await archiveNames(repo), ["one"]);
    });
    await t.step("a second vger config refuses to overwrite: exit 2, file unchanged", async () => {
      const before = await Deno.readTextFile(`${work}/vger.yaml`);
      const r = await runVger(["config"], { cwd: work });
      equal(r.code, 2, r.stderr);
      ok(r.stderr.includes("vger.yaml"), r.stderr);
      equal(await Deno.readTextFile(`${work}/vger.yaml`), before);
    });
    await t.step("--dest creates missing parent directories", async () => {
      const dest = `${dir}/new/parent/config.yaml`;
      const r = await runVger(["config", "--dest", dest]);
      equal(r.code, 0, r.stderr);
      equal(await Deno.readTextFile(dest), starter);
      const again = await runVger(["config", "--dest", dest]);
      equal(again.code, 2, again.stderr);
      const snap = await treeSnapshot(`${dir}/new`);
      equal(Object.keys(snap).length, 3);
    });
  });
});
