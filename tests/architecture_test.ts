/**
 * Keeps the dependency direction of ../shared/STYLE.md honest, from the module graphs of every
 * entry point and every test file (one `deno info --json` of a root that imports them all):
 * imports go down the layers of docs/ARCHITECTURE.md's module map (entry points -> commands ->
 * engines -> repository / file system -> format -> codec -> leaves), engines do not import each
 * other, `cli_*` modules serve cli.ts only, lib/ imports no concrete backend and no entrypoint,
 * backends/ import only errors from lib/, and there are no import cycles among the project's
 * modules. A new module needs only its line in the right table of the map.
 */

import { deepStrictEqual, ok } from "node:assert/strict";
import { relative } from "node:path";
import { fileURLToPath as fromFileUrl, pathToFileURL } from "node:url";

const root = fromFileUrl(new URL("..", import.meta.url));

/**
 * The layers docs/ARCHITECTURE.md's module map must have, in this order (../shared/STYLE.md).
 * The map's tables are the layers, top to bottom in the order they appear, so a table may sit
 * between two of these (for example modules that two engines share, below the engines). A module
 * may import its own layer (but an engine no other engine) and the layers below. Backends come
 * last and follow rules of their own.
 */
const REQUIRED_LAYERS = [
  "Entry points",
  "CLI support",
  "Commands",
  "Engines",
  "Repository layer",
  "File system",
  "Format",
  "Codec",
  "Leaves",
  "Backends",
];

/** Import edges the layering check lets through, each with the reason it is unavoidable. */
const ALLOWED: Record<string, string> = {};

/** One import of a module: the imported module, and whether only its types are imported. */
interface Edge {
  to: string;
  typeOnly: boolean;
}

/** The project's modules (paths relative to the checkout) and their imports of project modules. */
type Graph = Map<string, Edge[]>;

interface Module {
  specifier: string;
  dependencies?: {
    specifier: string;
    code?: { specifier: string };
    type?: { specifier: string };
  }[];
}

/** The entry points of the command line: they alone (with cli_* modules) import cli_* modules. */
const CLI_ENTRY = new Set(["cli.ts", "launch.ts"]);

/** Every entry point, every test file, and every module of lib/ and backends/ (so a worker's
 * module, which no import reaches, is seen too). */
async function roots(): Promise<string[]> {
  const found = ["cli.ts", "launch.ts", "mod.ts", "server.ts"];
  const walk = async (dir: string) => {
    for await (const e of Deno.readDir(`${root}${dir}`)) {
      const path = dir ? `${dir}/${e.name}` : e.name;
      if (e.isDirectory && !e.name.startsWith(".") && !["node_modules", "bench"].includes(e.name)) {
        await walk(path);
      } else if (e.isFile && e.name.endsWith("_test.ts")) found.push(path);
      else if (e.isFile && e.name.endsWith(".ts") && /^(lib|backends)\/[^/]+$/.test(path)) {
        found.push(path);
      }
    }
  };
  await walk("");
  return found.sort();
}

async function loadGraph(): Promise<Graph> {
  const source = (await roots()).map((m) => `import "${pathToFileURL(root + m).href}";\n`).join("");
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "info",
      "--json",
      "--config",
      "deno.json",
      `data:application/typescript;base64,${btoa(source)}`,
    ],
    cwd: root,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
  const info = JSON.parse(new TextDecoder().decode(out.stdout)) as { modules: Module[] };
  const graph: Graph = new Map();
  const local = (s: string) => s.startsWith("file://") ? relative(root, fromFileUrl(s)) : null;
  for (const m of info.modules) {
    const from = local(m.specifier);
    if (!from || !from.endsWith(".ts")) continue;
    const edges: Edge[] = [];
    for (const d of m.dependencies ?? []) {
      const to = local(d.code?.specifier ?? d.type?.specifier ?? "");
      if (to?.endsWith(".ts")) edges.push({ to, typeOnly: !d.code });
    }
    graph.set(from, edges);
  }
  return graph;
}

let cached: Promise<Graph> | undefined;
/** The graph, computed once per run of this file. */
function moduleGraph(): Promise<Graph> {
  return cached ??= loadGraph();
}

/** Test code: tests/, `*_test.ts`, and helpers private to a folder's tests (`lib/_fuzz.ts`). */
function isTestCode(m: string): boolean {
  return m.startsWith("tests/") || m.endsWith("_test.ts") || /(^|\/)_[^/]*$/.test(m);
}

/** docs/ARCHITECTURE.md's module map: its layers top to bottom, and the layer of each module. */
interface ModuleMap {
  layers: string[];
  layerOf: Map<string, string>;
}

/** Reads the module map: each bold heading opens a layer, each table row under it a module. */
function parseModuleMap(doc: string): ModuleMap {
  const start = doc.indexOf("\n## Module map, by layer\n");
  if (start < 0) throw new Error(`docs/ARCHITECTURE.md has no "## Module map, by layer"`);
  const end = doc.indexOf("\n## ", start + 1);
  const layers: string[] = [];
  const layerOf = new Map<string, string>();
  let layer: string | undefined;
  for (const line of doc.slice(start, end < 0 ? undefined : end).split("\n")) {
    const heading = /^\*\*(.+?)\*\*/.exec(line);
    if (heading) {
      layer = heading[1];
      if (layers.includes(layer)) throw new Error(`the module map has two tables "${layer}"`);
      layers.push(layer);
      continue;
    }
    const row = /^\| `([^`]+)`/.exec(line);
    if (!row) continue;
    if (!layer) throw new Error(`the module map lists ${row[1]} before any layer's heading`);
    const before = layerOf.get(row[1]);
    if (before) throw new Error(`the module map lists ${row[1]} twice: ${before}, ${layer}`);
    layerOf.set(row[1], layer);
  }
  const order = layers.filter((l) => REQUIRED_LAYERS.includes(l));
  if (order.join() !== REQUIRED_LAYERS.join() || layers.at(-1) !== "Backends") {
    throw new Error(
      `the module map's tables are ${layers.join(", ")}: it needs ${
        REQUIRED_LAYERS.join(", ")
      }, in this order, Backends last`,
    );
  }
  return { layers, layerOf };
}

/** Every import that breaks the layering, as a message naming the edge and both layers. */
function layeringViolations(graph: Graph, { layers, layerOf }: ModuleMap): string[] {
  const bad: string[] = [];
  const rank = (m: string) => layers.indexOf(layerOf.get(m)!);
  const named = (m: string) => `${m} (${layerOf.get(m) ?? "not in the module map"})`;
  for (const m of graph.keys()) {
    if (!isTestCode(m) && !layerOf.has(m)) {
      bad.push(
        `${m} is not in docs/ARCHITECTURE.md's module map: add its line to its layer's table`,
      );
    }
  }
  for (const [from, edges] of graph) {
    if (isTestCode(from) || !layerOf.has(from)) continue;
    for (const { to, typeOnly } of edges) {
      const edge = `${named(from)} -> ${named(to)}${typeOnly ? " (type-only import)" : ""}`;
      const why: string[] = [];
      if (isTestCode(to)) why.push("production code imports test code");
      else if (!layerOf.has(to)) continue; // reported above
      else if (from.startsWith("backends/")) {
        if (!to.startsWith("backends/") && to !== "lib/errors.ts") {
          why.push("backends/ import nothing from lib/ but errors.ts");
        }
      } else if (to.startsWith("backends/")) {
        if (from.startsWith("lib/") && to !== "backends/backend.ts") {
          why.push("lib/ imports no concrete backend, only the interface backends/backend.ts");
        }
      } else {
        if (rank(to) < rank(from)) why.push("imports a higher layer");
        if (layerOf.get(from) === "Engines" && layerOf.get(to) === "Engines" && from !== to) {
          why.push("engines do not import each other");
        }
      }
      if (/^lib\/cli_/.test(to) && !CLI_ENTRY.has(from) && !/^lib\/cli_/.test(from)) {
        why.push("cli_* modules are imported only by cli.ts, launch.ts and other cli_* modules");
      }
      if (why.length === 0) continue;
      const key = `${from} -> ${to}`;
      if (key in ALLOWED) continue;
      bad.push(`${edge}: ${why.join("; ")}`);
    }
  }
  return bad;
}

async function moduleMap(): Promise<ModuleMap> {
  return parseModuleMap(await Deno.readTextFile(`${root}docs/ARCHITECTURE.md`));
}

Deno.test("imports go down the layers of docs/ARCHITECTURE.md's module map, from every entry point and test file", async () => {
  const graph = await moduleGraph();
  // the graph must really hold the project and its tests, or the checks would pass on nothing
  ok(graph.has("lib/archiver.ts") && graph.has("backends/local.ts") && graph.has("cli.ts"));
  ok(graph.has("lib/codec_worker.ts") && graph.has("tests/architecture_test.ts"));
  ok([...graph.keys()].filter((m) => m.endsWith("_test.ts")).length > 40);
  deepStrictEqual(layeringViolations(graph, await moduleMap()), []);
});

Deno.test("every allowed exception to the layering is still an import of the code", async () => {
  const graph = await moduleGraph();
  const edges = new Set(
    [...graph].flatMap(([from, deps]) => deps.map(({ to }) => `${from} -> ${to}`)),
  );
  deepStrictEqual(Object.keys(ALLOWED).filter((e) => !edges.has(e)), []);
});

Deno.test("the module map gives each module one layer, and the CLI support table holds exactly the cli_* modules", async () => {
  const { layers, layerOf } = await moduleMap();
  ok(layerOf.size > 40, `only ${layerOf.size} modules in the map`);
  const empty = layers.filter((l) => ![...layerOf.values()].includes(l));
  deepStrictEqual(empty, [], "every layer's table lists modules");
  const mismatched = [...layerOf].filter(([m, layer]) =>
    (layer === "CLI support") !== /^lib\/cli_/.test(m)
  );
  deepStrictEqual(mismatched, []);
  const missing: string[] = [];
  for (const m of layerOf.keys()) {
    try {
      await Deno.stat(`${root}${m}`);
    } catch {
      missing.push(m);
    }
  }
  deepStrictEqual(missing, [], "the map lists modules that do not exist");
});

Deno.test("the layering check names each planted violation with its edge and both layers", () => {
  const doc = [
    "# map",
    "## Module map, by layer",
    "**Entry points** (in)",
    "| `cli.ts` | x |",
    "| `mod.ts` | x |",
    "**CLI support**",
    "| `lib/cli_report.ts` | x |",
    "**Commands**",
    "| `lib/commands.ts` | x |",
    "**Engines**",
    "| `lib/archiver.ts` | x |",
    "| `lib/checker.ts` | x |",
    "**Engine support** (a table of the doc's own, ranked where it stands)",
    "| `lib/verifier.ts` | x |",
    "**Repository layer**",
    "| `lib/repository.ts` | x |",
    "**File system**",
    "**Format**",
    "| `lib/pack.ts` | x |",
    "**Codec**",
    "**Leaves**",
    "| `lib/errors.ts` | x |",
    "**Backends**",
    "| `backends/backend.ts` | x |",
    "| `backends/memory.ts` | x |",
    "## Elsewhere",
    "| `lib/elsewhere.ts` | not in the map |",
  ].join("\n");
  const map = parseModuleMap(doc);
  deepStrictEqual(map.layerOf.get("lib/pack.ts"), "Format");
  ok(!map.layerOf.has("lib/elsewhere.ts"));
  const graph: Graph = new Map();
  const add = (from: string, ...to: string[]) =>
    graph.set(
      from,
      to.map((t) => ({ to: t.replace(/^type /, ""), typeOnly: t.startsWith("type ") })),
    );
  // allowed: downward, same layer, the backend interface, cli.ts's CLI modules, tests anywhere
  add("cli.ts", "lib/cli_report.ts", "lib/commands.ts", "backends/memory.ts");
  add("mod.ts", "lib/commands.ts", "backends/memory.ts");
  add("lib/cli_report.ts", "type lib/commands.ts", "lib/checker.ts");
  add("lib/commands.ts", "lib/archiver.ts", "lib/checker.ts", "lib/errors.ts");
  add("lib/checker.ts", "lib/verifier.ts");
  add("lib/verifier.ts", "lib/repository.ts");
  add("lib/repository.ts", "lib/pack.ts", "type backends/backend.ts");
  add("backends/memory.ts", "backends/backend.ts", "lib/errors.ts");
  add("lib/errors.ts");
  add("tests/x_test.ts", "lib/cli_report.ts", "backends/memory.ts", "lib/checker.ts");
  add("lib/pack_test.ts", "backends/memory.ts", "lib/pack.ts");
  deepStrictEqual(layeringViolations(graph, map), []);
  // planted: one of each kind
  add("lib/pack.ts", "type lib/repository.ts", "lib/errors.ts");
  add("lib/archiver.ts", "lib/checker.ts", "backends/memory.ts");
  add("lib/checker.ts", "lib/verifier.ts", "lib/cli_report.ts");
  add("lib/verifier.ts", "lib/repository.ts", "lib/checker.ts");
  add("backends/backend.ts", "lib/pack.ts");
  add("lib/repository.ts", "lib/pack.ts", "tests/x_test.ts", "mod.ts");
  add("lib/new_module.ts", "lib/errors.ts");
  deepStrictEqual(
    layeringViolations(graph, map).sort(),
    [
      "lib/new_module.ts is not in docs/ARCHITECTURE.md's module map: add its line to its layer's table",
      "lib/repository.ts (Repository layer) -> tests/x_test.ts (not in the module map): production code imports test code",
      "lib/repository.ts (Repository layer) -> mod.ts (Entry points): imports a higher layer",
      "lib/pack.ts (Format) -> lib/repository.ts (Repository layer) (type-only import): imports a higher layer",
      "lib/archiver.ts (Engines) -> lib/checker.ts (Engines): engines do not import each other",
      "lib/archiver.ts (Engines) -> backends/memory.ts (Backends): lib/ imports no concrete backend, only the interface backends/backend.ts",
      "lib/checker.ts (Engines) -> lib/cli_report.ts (CLI support): imports a higher layer; cli_* modules are imported only by cli.ts, launch.ts and other cli_* modules",
      "backends/backend.ts (Backends) -> lib/pack.ts (Format): backends/ import nothing from lib/ but errors.ts",
      "lib/verifier.ts (Engine support) -> lib/checker.ts (Engines): imports a higher layer",
    ].sort(),
  );
  // the layers STYLE.md names must all be there, in their order; a table name is used once
  const refused = (text: string) => {
    try {
      parseModuleMap(text);
      return "";
    } catch (e) {
      return (e as Error).message;
    }
  };
  const swapped = doc.replace("**Format**", "**@**").replace("**Codec**", "**Format**")
    .replace("**@**", "**Codec**");
  ok(refused(swapped).includes("it needs Entry points, CLI support, Commands"), refused(swapped));
  ok(refused(doc.replace("**Codec**", "**Formats**")).includes("it needs"));
  const twice = doc.replace("**Codec**", "**Format**");
  deepStrictEqual(refused(twice), `the module map has two tables "Format"`);
});

/** The methods of backends/backend.ts that read or change stored objects. */
const STORAGE_METHODS = [
  "get",
  "getRange",
  "put",
  "list",
  "delete",
  "create",
  "size",
  "removeLeftovers",
];

/** A storage method called on a name ending in "backend": `repo.backend.list(`, `backend.size(`. */
const BACKEND_CALL = new RegExp(
  `backend\\??\\.(${STORAGE_METHODS.join("|")})\\s*(\\?\\.)?\\(`,
  "i",
);

/**
 * Every call of a backend's storage methods in the source of a module above the repository layer
 * (entry points, CLI, commands, engines and what they share), as "file:line" messages; comments
 * are not read. Passing a backend into a repository-layer function is not a call.
 */
function backendCallsAbove(
  { layers, layerOf }: ModuleMap,
  source: (m: string) => string,
): string[] {
  const storage = layers.indexOf("Repository layer");
  const bad: string[] = [];
  for (const [m, layer] of layerOf) {
    if (isTestCode(m) || layers.indexOf(layer) >= storage) continue;
    for (const [i, line] of source(m).split("\n").entries()) {
      const code = line.trimStart();
      if (code.startsWith("*") || code.startsWith("/*")) continue;
      const call = BACKEND_CALL.exec(code.replace(/\/\/.*$/, ""));
      if (!call) continue;
      bad.push(
        `${m}:${i + 1} (${layer}) calls a backend's ${call[1]}: only the repository layer ` +
          `calls a Backend for repository objects (use a typed function of lib/repository.ts ` +
          `or another module of that layer): ${code}`,
      );
    }
  }
  return bad;
}

Deno.test("no module above the repository layer calls a backend's get, put, list, delete, create, getRange, size or removeLeftovers", async () => {
  const map = await moduleMap();
  const sources = new Map<string, string>();
  for (const m of map.layerOf.keys()) sources.set(m, await Deno.readTextFile(`${root}${m}`));
  const scanned = [...map.layerOf].filter(([, l]) =>
    map.layers.indexOf(l) < map.layers.indexOf("Repository layer")
  );
  ok(scanned.length > 30, `only ${scanned.length} modules above the repository layer`);
  ok(scanned.some(([m]) => m === "lib/archiver.ts") && scanned.some(([m]) => m === "cli.ts"));
  deepStrictEqual(backendCallsAbove(map, (m) => sources.get(m)!), []);
});

Deno.test("the storage-call check names each planted call with its file, line and layer", async () => {
  const map = await moduleMap();
  const planted = [
    "// repo.backend.list() in a comment is not a call",
    " * nor is backend.get() in a doc comment",
    'await withRepoLock(repo.backend, "exclusive", "x", {}, fn); // passing it down is fine',
    "const where = repo.backend.location;",
    "for await (const o of repo.backend.list(PACKS_PREFIX)) n++;",
    "await backend.removeLeftovers?.();",
    "const bytes = await this.#backend.getRange(key, 0, 8);",
  ].join("\n");
  const source = (m: string) =>
    ["lib/archiver.ts", "lib/repository.ts", "lib/pack.ts"].includes(m) ? planted : "";
  const found = backendCallsAbove(map, source).map((m) => m.slice(0, m.indexOf(": only")));
  deepStrictEqual(found, [
    "lib/archiver.ts:5 (Engines) calls a backend's list",
    "lib/archiver.ts:6 (Engines) calls a backend's removeLeftovers",
    "lib/archiver.ts:7 (Engines) calls a backend's getRange",
  ]);
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
    for (const { to } of graph.get(m) ?? []) visit(to, [...path, m]);
    state.set(m, "done");
  };
  for (const m of graph.keys()) visit(m, []);
  deepStrictEqual(cycles, []);
});

Deno.test("only backends/mod.ts chooses a backend class for the entry points, and no production module reads a test-only variable", async () => {
  const graph = await moduleGraph();
  const bad: string[] = [];
  for (const from of ["cli.ts", "launch.ts", "server.ts"]) {
    for (const { to } of graph.get(from) ?? []) {
      if (to.startsWith("backends/") && !["backends/backend.ts", "backends/mod.ts"].includes(to)) {
        bad.push(`${from} -> ${to}`);
      }
    }
  }
  // fault injection and request counting wrap backends from tests/ (main's wrapBackend)
  const production = [...graph.keys()].filter((m) => !isTestCode(m));
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

/** Lines a module may have: split by concern before a file grows past it. */
const MAX_MODULE_LINES = 700;

Deno.test(`no module of lib/, backends/ or an entry point has more than ${MAX_MODULE_LINES} lines`, async () => {
  const files = ["cli.ts", "launch.ts", "mod.ts", "server.ts"];
  for (const dir of ["lib", "backends"]) {
    for await (const e of Deno.readDir(`${root}${dir}`)) {
      if (e.isFile && e.name.endsWith(".ts") && !e.name.endsWith("_test.ts")) {
        files.push(`${dir}/${e.name}`);
      }
    }
  }
  ok(files.length > 40, `only ${files.length} modules found`);
  const long: string[] = [];
  for (const f of files.sort()) {
    const lines = (await Deno.readTextFile(`${root}${f}`)).split("\n").length - 1;
    if (lines > MAX_MODULE_LINES) long.push(`${f}: ${lines} lines`);
  }
  deepStrictEqual(long, []);
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
