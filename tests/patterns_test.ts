import { deepStrictEqual, ok } from "node:assert/strict";
import { MemoryBackend } from "../backends/memory.ts";
import { backupCommand, initCommand, listItemsCommand } from "../lib/commands.ts";
import { ExcludeMatcher } from "../lib/patterns.ts";

// The cross-checks with restic and borg themselves: the same tree, the same patterns, what they
// keep versus the archive vger's real archiver writes with the matcher as its isExcluded.

/** Whether a program runs (asked for its version), so a cross-check with it can run. */
function installed(program: string, args: string[]): boolean {
  try {
    return new Deno.Command(program, { args, stdout: "null", stderr: "null" }).outputSync().success;
  } catch {
    return false; // not installed, or no --allow-run
  }
}

const HAS_RESTIC = installed("restic", ["version"]);
const HAS_BORG = installed("borg", ["--version"]);
if (!HAS_RESTIC) console.warn("restic is not installed: the cross-check with restic is skipped");
if (!HAS_BORG) console.warn("borg is not installed: the cross-check with borg is skipped");

/** Escapes glob syntax so a literal path can be part of a pattern (both tools read "\"). */
function globEscape(path: string): string {
  return path.replace(/[*?[\]\\]/g, "\\$&");
}

/** Runs a program; its stdout and stderr, or an error with its stderr. */
async function run(
  program: string,
  args: string[],
  env: Record<string, string>,
): Promise<{ stdout: string; stderr: string }> {
  const out = await new Deno.Command(program, { args, env }).output();
  const text = new TextDecoder();
  if (!out.success) {
    throw new Error(`${program} ${args.join(" ")} failed: ${text.decode(out.stderr)}`);
  }
  return { stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}

async function restic(args: string[], env: Record<string, string>): Promise<string> {
  return (await run("restic", ["--no-cache", ...args], env)).stdout;
}

/**
 * Backs up `src` with vger's real archiver once per pattern set; the absolute paths each
 * archive holds, sorted.
 */
async function vgerKept(src: string, sets: string[][]): Promise<string[][]> {
  const backend = new MemoryBackend("memory:patterns");
  const passphrase = "pw";
  await initCommand(backend, {
    encryption: "aes256gcm",
    passphrase,
    kdf: { iterations: 1, memoryKiB: 1024, parallelism: 1 },
  });
  const kept: string[][] = [];
  for (const [i, patterns] of sets.entries()) {
    const m = new ExcludeMatcher(patterns);
    await backupCommand(backend, {
      passphrase,
      name: `set${i}`,
      sources: [src],
      compression: { algorithm: "lz4", zstdLevel: 3 },
      isExcluded: (path, isDir) => m.excludes(path, isDir),
    });
    const paths: string[] = [];
    for await (const item of listItemsCommand(backend, { passphrase, archive: `set${i}` })) {
      paths.push(`/${item.path}`);
    }
    kept.push(paths.sort());
  }
  return kept;
}

/** The number of entries in a tree, its root included. */
async function countEntries(path: string): Promise<number> {
  let n = 1;
  if ((await Deno.lstat(path)).isDirectory) {
    for await (const e of Deno.readDir(path)) n += await countEntries(`${path}/${e.name}`);
  }
  return n;
}

async function makeTree(src: string): Promise<void> {
  const files = [
    "a/x.tmp",
    "a/y.txt",
    "a/z.tmp/inner.txt",
    "a/.cache/thumbs/1.png",
    "a/.cache/z",
    "a/.cachex/k",
    "a/cache/keep.txt",
    "b/foo/x/y/bar/z.txt",
    "b/foo/bar",
    "b/foobar",
    "b/barfoo/bar",
    "c/ax",
    "c/bx",
    "c/[x]",
    "c/!x",
    "c/^x",
    "c/a b",
    "c/ab",
    "c/new\nline",
    "c/日本語.txt",
    "c/😀.md",
    "c/*star",
    "d/node_modules/pkg/index.js",
    "d/lib/node_modules_x",
    "d/.hidden",
    "d/.dot/file",
    "e/keep/doc.md",
    "e/drop/doc.md",
    "e/drop/keep.md",
    "e/other.md",
    "e/other/o.o",
    "f/build/o.o",
    "f/notes.md",
  ];
  for (const f of files) {
    const path = `${src}/${f}`;
    await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
    await Deno.writeTextFile(path, f);
  }
  await Deno.symlink("../a", `${src}/f/link`);
}

Deno.test({
  name: "ExcludeMatcher leaves out exactly what restic --exclude leaves out of the same tree",
  ignore: !HAS_RESTIC,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "vger_patterns_" });
    try {
      const src = `${dir}/src`;
      await makeTree(src);
      const root = globEscape(src);
      // patterns in one set touch different subtrees, so each set checks each of its patterns
      const sets: string[][] = [
        ["*.tmp", "foo/**/bar", "c/[ab]x", "node_modules"],
        [".cache/**", "c/[^a]x", "\\[x\\]", "d/.*"],
        [`${root}/e/*`, `!${root}/e/keep`, "c/a b", "*line", "日本*", "?.md"],
        ["e/drop", "!e/drop/keep.md", `${root}/**/o.o`, "\\*star", "b/**/z.txt"],
        ["f/build/", "a/cache/**", "/**/f/link"],
      ];
      const env = { RESTIC_PASSWORD: "x", RESTIC_REPOSITORY: `${dir}/restic` };
      const initDone = restic(["init", "-q"], env);
      const vger = await vgerKept(src, sets);
      await initDone;
      const ids = await Promise.all(sets.map(async (patterns) => {
        const out = await restic(
          ["backup", "--json", "-q", src, ...patterns.flatMap((p) => ["--exclude", p])],
          env,
        );
        const summary = JSON.parse(out.trim().split("\n").at(-1)!) as { snapshot_id: string };
        return summary.snapshot_id;
      }));
      const found = JSON.parse(await restic(["find", "--json", "*"], env)) as {
        snapshot: string;
        matches: { path: string }[];
      }[];
      const total = await countEntries(src);
      for (const [i, patterns] of sets.entries()) {
        const snap = found.find((f) => f.snapshot.startsWith(ids[i]));
        ok(snap, `restic snapshot ${ids[i]} of ${JSON.stringify(patterns)}`);
        const kept = snap.matches.map((m) => m.path)
          .filter((p) => p === src || p.startsWith(`${src}/`))
          .sort();
        deepStrictEqual(vger[i], kept, `vger and restic differ on ${JSON.stringify(patterns)}`);
        // each set both leaves things out and keeps things
        ok(kept.length > 1 && kept.length < total, `${kept.length} of ${total} kept`);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/** Escapes a literal path for borg's fm: and sh: styles, which have no "\\" escapes. */
function borgEscape(path: string): string {
  return path.replace(/[*?[]/g, "[$&]");
}

Deno.test({
  name:
    "ExcludeMatcher leaves out exactly what borg create --exclude does (fm:, sh:, re:, pp:, pf:)",
  ignore: !HAS_BORG,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "vger_patterns_" });
    try {
      const src = `${dir}/src`;
      await makeTree(src);
      const r = borgEscape(src.slice(1)); // borg >= 1.2 matches paths without the leading "/"
      const reRoot = src.slice(1).replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
      const sets: string[][] = [
        [`fm:${r}/a/*.tmp`, "fm:*/c/*x", `sh:${r}/b/**/bar`],
        [`sh:${r}/a/**/.cache`, `sh:${r}/d/.*`, `fm:${r}/c/[!a]x`, `sh:${r}/c/[^a]*`],
        ["re:/c/[ab]x$", "re:\\.md$", `pp:${r}/e/drop`, `pf:${r}/f/notes.md`],
        [`fm:${r}/e/`, `sh:${r}/f/build/`, `re:^${reRoot}/a/z\\.tmp$`],
        ["fm:*line", `sh:${r}/c/日本*`, "re:😀", `fm:/${r}/b/foo/x/../bar`],
      ];
      const env = { BORG_BASE_DIR: `${dir}/borg-base`, BORG_REPO: `${dir}/borg` };
      await run("borg", ["init", "--encryption", "none"], env);
      const borg = await Promise.all(sets.map(async (patterns, i) => {
        const { stderr } = await run("borg", [
          "create",
          "--dry-run",
          "--list",
          "--log-json",
          ...patterns.flatMap((p) => ["--exclude", p]),
          `::set${i}`,
          src,
        ], env);
        return stderr.split("\n").filter((l) => l.startsWith("{"))
          .map((l) => JSON.parse(l) as { type: string; status?: string; path?: string })
          .filter((e) => e.type === "file_status" && e.status !== "x")
          .map((e) => e.path!)
          .sort();
      }));
      const vger = await vgerKept(src, sets);
      const total = await countEntries(src);
      for (const [i, patterns] of sets.entries()) {
        deepStrictEqual(vger[i], borg[i], `vger and borg differ on ${JSON.stringify(patterns)}`);
        ok(borg[i].length > 1 && borg[i].length < total, `${borg[i].length} of ${total} kept`);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
