import { equal, ok, throws } from "node:assert/strict";
import { resolve } from "node:path";
import { UsageError } from "../lib/errors.ts";
import { LocalBackend } from "./local.ts";
import { openBackend } from "./mod.ts";

Deno.test("openBackend opens a local repository as a LocalBackend at its resolved path", async () => {
  const backend = openBackend({ backend: "local", path: "some/repo" });
  ok(backend instanceof LocalBackend);
  equal(backend.location, resolve("some/repo"));
  await backend.close();
});

Deno.test("openBackend refuses the kinds not built yet with a one-line error", () => {
  for (const kind of ["s3", "rest"]) {
    throws(
      () => openBackend({ backend: kind, path: "https://example.com/repo" }),
      (err: unknown) =>
        err instanceof UsageError &&
        err.message ===
          `The ${kind} backend is not available yet (repository "https://example.com/repo")`,
    );
  }
});

Deno.test("openBackend refuses an unknown kind and names it", () => {
  throws(
    () => openBackend({ backend: "ftp", path: "/srv/repo" }),
    (err: unknown) =>
      err instanceof UsageError &&
      err.message ===
        'Unknown backend "ftp" (repository "/srv/repo"): the kinds are local, s3 and rest',
  );
});
