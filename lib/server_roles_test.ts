import { deepStrictEqual, equal, throws } from "node:assert/strict";
import {
  isRepoPattern,
  repoMatches,
  roleAllows,
  roleRefusal,
  tokenId,
  TokenTable,
} from "./server_roles.ts";

Deno.test("roles: repository patterns match whole names, * any run of name characters", () => {
  deepStrictEqual(
    ["nas-1", "nas-", "nas", "xnas-1", "laptop", "lap.top"].map((r) =>
      repoMatches(["nas-*", "lap.top"], r)
    ),
    [true, true, false, false, false, true],
  );
  equal(repoMatches(["*"], "anything_here"), true);
  equal(repoMatches(["a.b"], "aXb"), false, "a dot is a dot");
  deepStrictEqual(
    ["laptop", "nas-*", "*", ".hidden", "a/b", "", "x".repeat(65)].map(isRepoPattern),
    [true, true, true, false, false, false, false],
  );
});

Deno.test("roles: the token table finds each token's role and repositories; the [server] token is full everywhere", () => {
  const table = new TokenTable("master-token", [
    { name: "tokens[0]", token: "ro-token", repos: ["laptop"], role: "read-only" },
    { name: "tokens[1]", token: "ao-token", repos: ["nas-*"], role: "append-only" },
  ]);
  const master = table.lookup("Bearer master-token")!;
  deepStrictEqual([master.role, master.sees("whatever")], ["full", true]);
  const ro = table.lookup("bearer ro-token")!;
  deepStrictEqual([ro.role, ro.sees("laptop"), ro.sees("nas-1")], ["read-only", true, false]);
  const ao = table.lookup("Bearer ao-token")!;
  deepStrictEqual([ao.role, ao.sees("nas-1"), ao.sees("laptop")], ["append-only", true, false]);
  equal(ao.id, tokenId("ao-token"));
  equal(ao.id.includes("ao-token"), false);
  for (const bad of [null, "", "Bearer", "Bearer wrong", "Basic ro-token", "Bearer ro-token x"]) {
    equal(table.lookup(bad), null, String(bad));
  }
  deepStrictEqual(table.tokens, ["master-token", "ro-token", "ao-token"]);
  throws(
    () =>
      new TokenTable(undefined, [{
        name: "tokens[0]",
        tokenCommand: "c",
        repos: ["a"],
        role: "full",
      }]),
    /token_command of tokens\[0\] has not run/,
  );
});

Deno.test("roles: order and refusals name the roles that would do", () => {
  equal(roleAllows("full", "append-only"), true);
  equal(roleAllows("append-only", "full"), false);
  equal(roleAllows("read-only", "read-only"), true);
  const err = roleRefusal("laptop", '"packs/ab/ab" cannot be written', "append-only", "read-only");
  equal(err.status, 403);
  equal(
    err.message,
    'Repository "laptop": "packs/ab/ab" cannot be written: needs role append-only or full; this token is read-only',
  );
});
