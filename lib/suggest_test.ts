import { equal } from "node:assert/strict";
import { editDistance } from "./suggest.ts";

Deno.test("editDistance counts insertions, deletions and substitutions", () => {
  equal(editDistance("", ""), 0);
  equal(editDistance("abc", "abc"), 0);
  equal(editDistance("repositories", "repositorys"), 2);
  equal(editDistance("mode", "mdoe"), 2);
  equal(editDistance("kitten", "sitting"), 3);
  equal(editDistance("", "abc"), 3);
});
