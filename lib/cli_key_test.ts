import { equal } from "node:assert/strict";
import {
  keyChangePassphraseJson,
  keyChangePassphraseSummary,
  keyExportJson,
  keyExportSummary,
  keyImportJson,
  keyImportSummary,
} from "./cli_key.ts";
import { REPO, text } from "./_test_cli.ts";

Deno.test("key subcommands render what changed, with the repository first in JSON", () => {
  equal(
    text(
      keyChangePassphraseJson(REPO, { kdf: { memoryKiB: 1024, iterations: 1, parallelism: 1 } }),
    ),
    `{"repository":"/mnt/repo","changed":true,` +
      `"kdf":{"memory_kib":1024,"iterations":1,"parallelism":1}}`,
  );
  equal(
    keyChangePassphraseSummary(REPO),
    "Changed the passphrase of /mnt/repo; earlier key exports still open it with the old one",
  );
  equal(text(keyExportJson(REPO, "key.bin")), `{"repository":"/mnt/repo","written":"key.bin"}`);
  equal(
    keyExportSummary(REPO, "key.bin"),
    "Wrote the key of /mnt/repo to key.bin; keep it and the passphrase, apart",
  );
  equal(
    text(keyImportJson(REPO, { previous: "damaged" }, { file: "key.bin" })),
    `{"repository":"/mnt/repo","imported":"key.bin","previous":"damaged"}`,
  );
  equal(
    keyImportSummary(REPO, { previous: "damaged" }, { file: "key.bin" }),
    "Imported key.bin as the key of /mnt/repo (the old one was damaged)",
  );
  equal(
    keyImportSummary(REPO, { previous: "identical" }, { file: "key.bin" }),
    "The key file of /mnt/repo already is key.bin: nothing changed",
  );
});
