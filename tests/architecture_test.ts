/**
 * Keeps the dependency direction of ../shared/STYLE.md honest: lib/ never imports a concrete
 * backend or an entrypoint, backends/ never import lib/ beyond errors, and there are no import
 * cycles among the project's modules.
 */

import { deepStrictEqual, ok } from "node:assert/strict";
import { relative } from "node:path";
import { fileURLToPath as fromFileUrl } from "node:url";

const root = fromFileUrl(new URL("..", import.meta.url));

interface Module {
  specifier: string;
  dependencies?: {
    specifier: string;
    code?: { specifier: string };
    type?: { specifier: string };
  }[];
}

async function moduleGraph(): Promise<Map<string, string[]>> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", "mod.ts"],
    cwd: root,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
  const info = JSON.parse(new TextDecoder().decode(out.stdout)) as { modules: Module[] };
  const graph = new Map<string, string[]>();
  const local = (s: string) => s.startsWith("file://") ? relative(root, fromFileUrl(s)) : null;
  for (const m of info.modules) {
    const from = local(m.specifier);
    if (!from) continue;
    const deps: string[] = [];
    for (const d of m.dependencies ?? []) {
      const to = local(d.code?.specifier ?? d.type?.specifier ?? "");
      if (to) deps.push(to);
    }
    graph.set(from, deps);
  }
  return graph;
}

Deno.test("lib/ imports no concrete backend and no entrypoint; backends/ import only errors from lib/", async () => {
  const graph = await moduleGraph();
  // the graph must really hold the project, or the checks below would pass on nothing
  ok(graph.has("lib/archiver.ts") && graph.has("backends/local.ts") && graph.size > 20);
  const bad: string[] = [];
  for (const [from, deps] of graph) {
    for (const to of deps) {
      if (from.startsWith("lib/") && to.startsWith("backends/") && to !== "backends/backend.ts") {
        bad.push(`${from} -> ${to}`);
      }
      if (from.startsWith("lib/") && ["cli.ts", "server.ts", "mod.ts"].includes(to)) {
        bad.push(`${from} -> ${to}`);
      }
      if (from.startsWith("backends/") && to.startsWith("lib/") && to !== "lib/errors.ts") {
        bad.push(`${from} -> ${to}`);
      }
    }
  }
  deepStrictEqual(bad, []);
});

Deno.test("the project's modules import each other without cycles", async () => {
  const graph = await moduleGraph();
  const state = new Map<string, "visiting" | "done">();
  const cycles: string[] = [];
  const visit = (m: string, path: string[]) => {
    if (state.get(m) === "done") return;
    if (state.get(m) === "visiting") {
      cycles.push([...path.slice(path.indexOf(m)), m].join(" -> "));
      return;
    }
    state.set(m, "visiting");
    for (const d of graph.get(m) ?? []) visit(d, [...path, m]);
    state.set(m, "done");
  };
  for (const m of graph.keys()) visit(m, []);
  deepStrictEqual(cycles, []);
});

Deno.test("only backends/mod.ts chooses a backend class for the entry points, and no production module reads a test-only variable", async () => {
  const graph = await moduleGraph();
  const bad: string[] = [];
  for (const from of ["cli.ts", "server.ts"]) {
    for (const to of graph.get(from) ?? []) {
      if (to.startsWith("backends/") && !["backends/backend.ts", "backends/mod.ts"].includes(to)) {
        bad.push(`${from} -> ${to}`);
      }
    }
  }
  // fault injection and request counting wrap backends from tests/ (main's wrapBackend)
  const production = [...graph.keys()].filter((m) =>
    !m.startsWith("tests/") && !m.endsWith("_test.ts")
  );
  ok(production.includes("cli.ts") && production.includes("backends/mod.ts"));
  for (const m of production) {
    if (/VGER_TEST_/.test(await Deno.readTextFile(`${root}/${m}`))) {
      bad.push(`${m} reads VGER_TEST_*`);
    }
  }
  deepStrictEqual(bad, []);
});

Deno.test("docs/ARCHITECTURE.md lists every module of lib/ and backends/", async () => {
  const doc = await Deno.readTextFile(`${root}docs/ARCHITECTURE.md`);
  const unlisted: string[] = [];
  let seen = 0;
  for (const dir of ["lib", "backends"]) {
    for await (const e of Deno.readDir(`${root}${dir}`)) {
      if (!e.isFile || !e.name.endsWith(".ts") || e.name.endsWith("_test.ts")) continue;
      if (e.name.startsWith("_")) continue; // private to the folder's tests
      seen++;
      if (!doc.includes(`\`${dir}/${e.name}\``)) unlisted.push(`${dir}/${e.name}`);
    }
  }
  ok(seen > 40, `only ${seen} modules found`);
  deepStrictEqual(unlisted, []);
});

Deno.test("importing mod.ts loads no CLI code: cli.ts is only a dynamic import, for running it", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", "mod.ts"],
    cwd: root,
    stdout: "piped",
  }).output();
  const info = JSON.parse(new TextDecoder().decode(out.stdout)) as {
    modules: { specifier: string; dependencies?: { specifier: string; isDynamic?: boolean }[] }[];
  };
  const entry = new URL("../mod.ts", import.meta.url).href;
  const mod = info.modules.find((m) => m.specifier === entry);
  ok(mod?.dependencies?.length, "mod.ts's imports were not found");
  const cli = mod.dependencies.filter((d) => d.specifier === "./cli.ts");
  deepStrictEqual(cli.map((d) => d.isDynamic === true), [true]);
});
