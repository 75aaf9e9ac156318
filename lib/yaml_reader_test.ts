import { deepStrictEqual, equal, ok, throws } from "node:assert/strict";
import { LineCounter, parseDocument } from "./yaml.ts";
import { UsageError } from "./errors.ts";
import { describe, type Field, YamlReader } from "./yaml_reader.ts";

const FILE = "/etc/vger/test.yaml";

/** A reader of `text` and the field of its root mapping. */
function read(text: string): { r: YamlReader; root: Field } {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines });
  const r = new YamlReader(FILE, doc, lines);
  return { r, root: r.field(doc.contents, "", 1) };
}

/** Asserts that `fn` throws the one-line UsageError `Invalid configuration FILE line N: ...`. */
function fails(fn: () => unknown, want: string): void {
  throws(fn, (err: unknown) => {
    ok(err instanceof UsageError, `expected UsageError, got ${err}`);
    equal(err.message, `Invalid configuration ${FILE} line ${want}`);
    return true;
  });
}

Deno.test("yaml reader: fields know their key path and line, and an alias its own line", () => {
  const { r, root } = read("a:\n  b: &x 5\nc: *x\n");
  const top = r.section(root, ["a", "c"]);
  const a = r.get(top, "a", root);
  const b = r.get(r.section(a, ["b"]), "b", a);
  equal(b.path, "a.b");
  equal(b.line, 2);
  equal(r.int(b, 0, 10, ""), 5);
  const c = r.get(top, "c", root);
  equal(c.line, 3);
  equal(r.int(c, 0, 10, ""), 5);
  // an absent key is on the line of the mapping that lacks it (a's value starts on line 2)
  const missing = r.get(r.section(a, ["b"]), "d", a);
  deepStrictEqual([missing.path, missing.line, missing.node], ["a.d", 2, undefined]);
});

Deno.test("yaml reader: unknown keys and wrong values fail with file, line, key path and a suggestion", () => {
  const { r, root } = read("mode: aes\nlevel: 30\nname: ''\nlist: [a, '']\nmpa: 1\n");
  fails(
    () => r.section(root, ["mode", "level", "name", "list", "map"]),
    `5: mpa: unknown key (did you mean "map"?)`,
  );
  const top = r.section(root, ["mode", "level", "name", "list", "mpa"]);
  const get = (name: string) => r.get(top, name, root);
  fails(
    () => r.oneOf(get("mode"), ["aes256gcm", "none"]),
    `1: mode: "aes" is not "aes256gcm" or "none"`,
  );
  fails(() => r.int(get("level"), 1, 22, ""), "2: level: 30 is out of range: use 1 to 22");
  fails(() => r.str(get("name")), "3: name: must not be empty");
  fails(() => r.strList(get("list")), "4: list[1]: must not be empty");
  fails(() => r.str(get("other"), { required: true }), "1: other: missing (required)");
  fails(() => r.section(get("mode"), []), `1: mode: expected a mapping, got the string "aes"`);
  equal(r.str(get("other")), undefined);
});

Deno.test("yaml reader: a secret of the wrong type names the type, never the value", () => {
  const { r, root } = read("secret: 123456\n");
  const f = r.get(r.section(root, ["secret"]), "secret", root);
  throws(() => r.secret(f), (err: Error) => {
    ok(err.message.includes("expected a string (put it in quotes), got a number"), err.message);
    ok(!err.message.includes("123456"), err.message);
    return true;
  });
});

Deno.test("yaml reader: describe names a node for an error message", () => {
  const { r, root } = read("m: {a: 1}\nl: []\ns: x\nn: 3\nz:\n");
  const node = (key: string) => {
    const top = r.section(root, ["m", "l", "s", "n", "z"]);
    return r.get(top, key, root).node;
  };
  deepStrictEqual(
    ["m", "l", "s", "n", "z"].map((k) => describe(node(k))),
    ["a mapping", "an empty list", 'the string "x"', "3", "nothing"],
  );
});
