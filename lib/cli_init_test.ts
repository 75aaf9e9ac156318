import { equal } from "node:assert/strict";
import { DEFAULT_CHUNKER_PARAMS } from "./chunker.ts";
import type { RepoConfig } from "./repo_config.ts";
import { configJson, configSummary, initJson, initSummary } from "./cli_init.ts";
import { REPO, text } from "./_test_cli.ts";

Deno.test("config and init render the written file, the repository id and encryption", () => {
  equal(text(configJson("vger.yaml")), `{"written":"vger.yaml"}`);
  equal(
    configSummary("vger.yaml"),
    "Wrote vger.yaml: set the repository path and source_directories, then run vger init",
  );
  const config: RepoConfig = {
    version: 1,
    id: "ff".repeat(32),
    encryption: "aes256gcm",
    chunker: DEFAULT_CHUNKER_PARAMS,
    minPackSize: 1,
    maxPackSize: 2,
  };
  equal(
    text(initJson(REPO, config)),
    `{"repository":"/mnt/repo","id":"${"ff".repeat(32)}","encryption":"aes256gcm"}`,
  );
  equal(initSummary(REPO, config), "Created repository /mnt/repo (aes256gcm)");
});
