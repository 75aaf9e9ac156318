import { deepStrictEqual, equal } from "node:assert/strict";
import { Report } from "./check_report.ts";

Deno.test("a report takes another's problems after its own, 300,000 of them too (no spread that overflows the stack)", () => {
  const whole = new Report();
  whole.add("corrupt-pack", "first");
  const part = new Report();
  const n = 300_000;
  for (let i = 0; i < n; i++) {
    part.link(i.toString(16).padStart(64, "0"), part.add("corrupt-blob", `blob ${i}`));
  }
  whole.append(part);
  const problems = whole.problems();
  equal(problems.length, n + 1);
  equal(problems[0].message, "first");
  equal(problems[n].message, `blob ${n - 1}`);
  equal(part.problems().length, 0, "the appended report is emptied");
  // the links came along: a blob touched names its archive and file in its problem
  equal(whole.touch((7).toString(16).padStart(64, "0"), "a1", "etc/x"), true);
  deepStrictEqual(whole.problems()[8].affects.paths, ["etc/x"]);
});
