/**
 * The position-tracking YAML reader under lib/config.ts: every value is a {@linkcode Field} that
 * knows its key path and line, and every check fails with one line naming the file, the line and
 * the key path (`Invalid configuration FILE line 7: repositories[1].path: missing (required)`),
 * thrown as a UsageError. Unknown keys fail with a "did you mean" suggestion. The configuration's
 * schema is config.ts's; this module knows only YAML nodes.
 *
 * @module
 */

import { type Document, isAlias, isMap, isScalar, isSeq, type LineCounter } from "./yaml.ts";
import { UsageError } from "./errors.ts";
import { closest } from "./suggest.ts";

/** A value in the document: its node (aliases resolved), key path and line. */
export interface Field {
  node: unknown;
  path: string;
  line: number;
}

/** A validated mapping: the key and value fields of the keys present. */
export interface Section {
  keys: Map<string, { key: Field; value: Field }>;
}

/** Reads typed values out of a parsed YAML document, failing with file, line and key path. */
export class YamlReader {
  readonly #file: string;
  readonly #doc: Document.Parsed;
  readonly #lines: LineCounter;

  constructor(file: string, doc: Document.Parsed, lines: LineCounter) {
    this.#file = file;
    this.#doc = doc;
    this.#lines = lines;
  }

  /** Throws the one-line UsageError `Invalid configuration FILE line N: PATH: why`. */
  fail(at: Field, why: string): never {
    throw new UsageError(
      `Invalid configuration ${this.#file} line ${at.line}: ${at.path ? `${at.path}: ` : ""}${why}`,
    );
  }

  /** The field of `node` (an alias resolved) at key path `path`, on its own line if it has one. */
  field(node: unknown, path: string, fallbackLine: number): Field {
    const resolved = isAlias(node) ? node.resolve(this.#doc) : node;
    // An alias reports the line where it is used, not where its anchor is.
    const range = (node as { range?: [number, number, number] } | null | undefined)?.range ??
      (resolved as { range?: [number, number, number] } | null | undefined)?.range;
    const line = range ? this.#lines.linePos(range[0]).line : fallbackLine;
    return { node: resolved, path, line };
  }

  /** The mapping at `f` with every key checked against `allowed`; undefined when absent/null. */
  section(f: Field, allowed: readonly string[], what = "a mapping"): Section | undefined {
    if (absent(f)) return undefined;
    if (!isMap(f.node)) this.fail(f, `expected ${what}, got ${describe(f.node)}`);
    const keys = new Map<string, { key: Field; value: Field }>();
    for (const pair of f.node.items) {
      const keyNode = this.field(pair.key, f.path, f.line);
      const name = isScalar(keyNode.node) ? String(keyNode.node.value) : describe(keyNode.node);
      const path = f.path ? `${f.path}.${name}` : name;
      const key = { ...keyNode, path };
      if (!allowed.includes(name)) {
        const near = closest(name, allowed);
        this.fail(key, `unknown key${near ? ` (did you mean "${near}"?)` : ""}`);
      }
      keys.set(name, { key, value: this.field(pair.value, path, key.line) });
    }
    return { keys };
  }

  /** The value of `name` in `s`, or an absent field on the line of the mapping. */
  get(s: Section | undefined, name: string, parent: Field): Field {
    const hit = s?.keys.get(name);
    if (hit) return hit.value;
    return {
      node: undefined,
      path: parent.path ? `${parent.path}.${name}` : name,
      line: parent.line,
    };
  }

  /** A non-empty string, or undefined when absent (a UsageError when `required`). */
  str(f: Field, opts: { required?: boolean } = {}): string | undefined {
    if (absent(f)) {
      if (opts.required) this.fail(f, "missing (required)");
      return undefined;
    }
    const v = scalarValue(f.node);
    if (typeof v !== "string") this.fail(f, `expected a string, got ${describe(f.node)}`);
    if (v.trim() === "") this.fail(f, "must not be empty");
    return v;
  }

  /** A string that must never be echoed (a passphrase): a wrong type names only the type. */
  secret(f: Field): string | undefined {
    if (absent(f)) return undefined;
    const v = scalarValue(f.node);
    if (typeof v !== "string") {
      const type = isMap(f.node) ? "a mapping" : isSeq(f.node) ? "a list" : `a ${typeof v}`;
      this.fail(f, `expected a string (put it in quotes), got ${type}; the value is not shown`);
    }
    if (v.trim() === "") this.fail(f, "must not be empty");
    return v;
  }

  /** One of `allowed`, or undefined when absent; anything else fails with a suggestion. */
  oneOf<T extends string>(f: Field, allowed: readonly T[]): T | undefined {
    const v = this.str(f);
    if (v === undefined) return undefined;
    if (!allowed.includes(v as T)) {
      const near = closest(v.toLowerCase(), allowed);
      this.fail(
        f,
        `${JSON.stringify(v)} is not ${orList(allowed.map((a) => `"${a}"`))}${
          near ? ` (did you mean "${near}"?)` : ""
        }`,
      );
    }
    return v as T;
  }

  /** A whole number in `min..max` (`unit` names it in errors), or undefined when absent. */
  int(f: Field, min: number, max: number, unit: string): number | undefined {
    if (absent(f)) return undefined;
    const v = scalarValue(f.node);
    if (typeof v !== "number" || !Number.isSafeInteger(v)) {
      this.fail(f, `expected a whole number${unit}, got ${describe(f.node)}`);
    }
    if (v < min || v > max) this.fail(f, `${v} is out of range: use ${min} to ${max}`);
    return v;
  }

  /** A list of non-empty strings, or undefined when absent. */
  strList(f: Field): string[] | undefined {
    if (absent(f)) return undefined;
    if (!isSeq(f.node)) this.fail(f, `expected a list of strings, got ${describe(f.node)}`);
    return f.node.items.map((item, i) => {
      const entry = this.field(item, `${f.path}[${i}]`, f.line);
      return this.str(entry) ?? this.fail(entry, "empty entry");
    });
  }
}

/** Whether a field is missing or null. */
export function absent(f: Field): boolean {
  return f.node === undefined || f.node === null ||
    (isScalar(f.node) && (f.node.value === null || f.node.value === undefined));
}

/** The value of a scalar node; any other node as it is. */
export function scalarValue(node: unknown): unknown {
  return isScalar(node) ? node.value : node;
}

/** The JavaScript value of a node, for validators outside this module. */
export function plain(node: unknown): unknown {
  return isMap(node) || isSeq(node) ? node.toJSON() : scalarValue(node);
}

/** A node described for an error message: "a mapping", "the string \"x\"", "nothing"... */
export function describe(node: unknown): string {
  if (isMap(node)) return "a mapping";
  if (isSeq(node)) return node.items.length === 0 ? "an empty list" : "a list";
  const v = scalarValue(node);
  if (v === null || v === undefined) return "nothing";
  if (typeof v === "string") return `the string ${JSON.stringify(v)}`;
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  return `a ${typeof v === "object" ? v.constructor?.name ?? "value" : typeof v}`;
}

function orList(items: readonly string[]): string {
  return items.length <= 1
    ? items.join("")
    : `${items.slice(0, -1).join(", ")} or ${items[items.length - 1]}`;
}
