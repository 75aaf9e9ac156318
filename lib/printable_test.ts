import { equal } from "node:assert/strict";
import { escapeControl, hasControl } from "./printable.ts";

Deno.test("escapeControl escapes C0, DEL, C1, separators and bidi controls, and nothing printable", () => {
  equal(escapeControl("a\x00b\x1b[31mc\x7f\x85"), "a\\x00b\\x1b[31mc\\x7f\\x85");
  equal(escapeControl("line\nbreak\r\ttab"), "line\\nbreak\\r\\ttab");
  equal(escapeControl("x\u2028y\u202ez\u2066"), "x\\u{2028}y\\u{202e}z\\u{2066}");
  for (const fine of ["plain.txt", "résumé — 日本語 ✓ 🎉", "back\\slash", "sp ace"]) {
    equal(escapeControl(fine), fine);
    equal(hasControl(fine), false);
  }
  equal(hasControl("a\x1bb"), true);
  equal(hasControl("a\x1bb"), true, "no state kept between calls");
});
