import { deepStrictEqual, equal, ok, rejects } from "node:assert/strict";
import { configCandidates, loadConfigFile, MAX_CONFIG_BYTES } from "./config_file.ts";
import { UsageError } from "./errors.ts";

const REPO = ["repositories:", "  - path: /a"];

Deno.test("configCandidates follows the README's order", () => {
  const env = (vars: Record<string, string>) => (name: string) => vars[name];
  deepStrictEqual(configCandidates({ explicit: "/x.yaml", env: env({ VGER_CONFIG: "/e.yaml" }) }), [
    "/x.yaml",
  ]);
  deepStrictEqual(configCandidates({ env: env({ VGER_CONFIG: "/e.yaml", HOME: "/h" }) }), [
    "/e.yaml",
  ]);
  deepStrictEqual(configCandidates({ env: env({ HOME: "/h", XDG_CONFIG_HOME: "/xdg/" }) }), [
    "./vger.yaml",
    "/xdg/vger/config.yaml",
    "/etc/vger/config.yaml",
  ]);
  deepStrictEqual(configCandidates({ env: env({ HOME: "/h", VGER_CONFIG: "" }) }), [
    "./vger.yaml",
    "/h/.config/vger/config.yaml",
    "/etc/vger/config.yaml",
  ]);
  // A relative XDG_CONFIG_HOME is ignored, as the XDG spec says.
  deepStrictEqual(configCandidates({ env: env({ HOME: "/h", XDG_CONFIG_HOME: "rel" }) }), [
    "./vger.yaml",
    "/h/.config/vger/config.yaml",
    "/etc/vger/config.yaml",
  ]);
  deepStrictEqual(configCandidates({ env: env({}), cwd: "/work" }), [
    "/work/vger.yaml",
    "/etc/vger/config.yaml",
  ]);
});

Deno.test("loadConfigFile reads the first existing candidate and says which", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const home = `${dir}/home`;
    const cwd = `${dir}/cwd`;
    await Deno.mkdir(`${home}/.config/vger`, { recursive: true });
    await Deno.mkdir(cwd);
    const vars: Record<string, string> = { HOME: home };
    const env = (name: string) => vars[name];
    const etcExists = await Deno.stat("/etc/vger/config.yaml").then(() => true, () => false);
    const none = await loadConfigFile({ env, cwd });
    if (!etcExists) equal(none, null);

    await Deno.writeTextFile(`${home}/.config/vger/config.yaml`, "repositories: [{path: /u}]\n");
    const user = await loadConfigFile({ env, cwd });
    equal(user?.file, `${home}/.config/vger/config.yaml`);
    equal(user?.repositories[0].path, "/u");

    await Deno.writeTextFile(`${cwd}/vger.yaml`, "repositories: [{path: /p}]\n");
    equal((await loadConfigFile({ env, cwd }))?.file, `${cwd}/vger.yaml`);

    await Deno.writeTextFile(`${dir}/env.yaml`, "repositories: [{path: /e}]\n");
    vars.VGER_CONFIG = `${dir}/env.yaml`;
    equal((await loadConfigFile({ env, cwd }))?.repositories[0].path, "/e");
    const explicit = await loadConfigFile({ explicit: `${cwd}/vger.yaml`, env, cwd });
    equal(explicit?.repositories[0].path, "/p");

    // An explicit file that is missing or broken is an error, never a fallback.
    await rejects(
      loadConfigFile({ explicit: `${dir}/missing.yaml`, env, cwd }),
      (err: unknown) =>
        err instanceof UsageError &&
        err.message === `Cannot read configuration ${dir}/missing.yaml: no such file`,
    );
    vars.VGER_CONFIG = `${dir}/missing.yaml`;
    await rejects(loadConfigFile({ env, cwd }), UsageError);
    await Deno.writeTextFile(`${dir}/bad.yaml`, "repositories:\n  - path: /a\n    lable: x\n");
    await rejects(
      loadConfigFile({ explicit: `${dir}/bad.yaml`, env, cwd }),
      (err: Error) =>
        err.message.startsWith(
          `Invalid configuration ${dir}/bad.yaml line 3: repositories[0].lable: unknown key`,
        ),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadConfigFile refuses a configuration past the size cap, and /dev/zero, without reading it all", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const big = `${dir}/big.yaml`;
    await Deno.writeTextFile(big, `# ${"x".repeat(MAX_CONFIG_BYTES)}\n`);
    for (const file of [big, "/dev/zero"]) {
      await rejects(loadConfigFile({ explicit: file }), (err: unknown) => {
        ok(err instanceof UsageError, `expected UsageError, got ${err}`);
        equal(
          err.message,
          `Cannot read configuration ${file}: larger than ${MAX_CONFIG_BYTES} bytes ` +
            "(the limit for a configuration)",
        );
        return true;
      });
    }
    const fits = `${dir}/fits.yaml`;
    await Deno.writeTextFile(fits, `${REPO.join("\n")}\n# ${"x".repeat(MAX_CONFIG_BYTES - 40)}\n`);
    equal((await loadConfigFile({ explicit: fits }))?.repositories[0].path, "/a");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
