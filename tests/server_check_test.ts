/**
 * vger-server's key-less structure check as real processes: a repository backed up over REST,
 * then each structural damage the client's check finds (a truncated pack, a pack in the wrong
 * shard, a missing index, a garbage object) made in the server's data directory; the operator
 * command (`server.ts --config FILE check REPO [--json]`, run with no passphrase or key anywhere
 * in its environment) and `vger check` over REST (which asks the server first) both find it.
 *
 * @module
 */

import { deepStrictEqual, equal, match, ok } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import {
  FAST_KDF_ARGS,
  pseudoRandomBytes,
  type RunResult,
  runVger,
  withTempDir,
} from "./_helpers.ts";
import { startServer, type TestServer } from "./_server.ts";

const SERVER = fileURLToPath(new URL("../server.ts", import.meta.url));

interface Report {
  errors: number;
  problems: { kind: string; severity: string; message: string }[];
}

/** `server.ts --config FILE check laptop --json`, with nothing of the client in its environment. */
async function operatorCheck(server: TestServer, args: string[] = ["--json"]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-read",
      "--allow-env",
      "--allow-sys",
      SERVER,
      "--config",
      server.configFile,
      "check",
      "laptop",
      ...args,
    ],
    clearEnv: true,
    env: {
      PATH: Deno.env.get("PATH") ?? "",
      HOME: "/nonexistent",
      NO_COLOR: "1",
      DENO_DIR: Deno.env.get("DENO_DIR") ?? `${Deno.env.get("HOME")}/.cache/deno`,
    },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return { code: out.code, stdout: decoder.decode(out.stdout), stderr: decoder.decode(out.stderr) };
}

Deno.test("the key-less check finds each damage the client's check finds, as an operator command and through vger check over REST", async () => {
  const server = await startServer("run");
  try {
    await withTempDir(async (dir) => {
      const tokenFile = `${dir}/token`;
      await Deno.writeTextFile(tokenFile, server.token + "\n");
      const config = `${dir}/vger.yaml`;
      await Deno.writeTextFile(
        config,
        [
          "repositories:",
          `  - path: ${server.url}/laptop`,
          "    backend: rest",
          `    rest_token_command: "cat ${tokenFile}"`,
          "    min_pack_size: 1048576",
          "    max_pack_size: 2097152",
          "",
        ].join("\n"),
      );
      const vger = async (args: string[], code = 0): Promise<RunResult> => {
        const r = await runVger(["--config", config, ...args], { timeoutMs: 120_000 });
        equal(r.code, code, `vger ${args.join(" ")}: ${r.stderr}${r.stdout}`);
        return r;
      };
      const src = `${dir}/src`;
      await Deno.mkdir(src);
      await Deno.writeFile(`${src}/data.bin`, pseudoRandomBytes(5 << 20, 3));
      await Deno.writeTextFile(`${src}/a.txt`, "text\n".repeat(1000));
      await vger(["init", ...FAST_KDF_ARGS]);
      await vger(["backup", "--archive", "one", src]);

      const root = `${server.dataDir}/laptop`;
      const packs: string[] = [];
      for await (const shard of Deno.readDir(`${root}/packs`)) {
        for await (const p of Deno.readDir(`${root}/packs/${shard.name}`)) {
          packs.push(`packs/${shard.name}/${p.name}`);
        }
      }
      ok(packs.length >= 3, `${packs.length} packs`);
      // sound: both checks are clean
      const clean = await operatorCheck(server);
      equal(clean.code, 0, clean.stderr);
      const cleanReport = JSON.parse(clean.stdout) as Report & { stats: { packs: number } };
      deepStrictEqual(cleanReport.problems, []);
      equal(cleanReport.stats.packs, packs.length);
      const text = await operatorCheck(server, []);
      match(
        text.stdout,
        /^Checked the structure of laptop without the key: 1 archive objects, \d+ packs/,
      );

      const [first, second] = packs;
      // a shard other than the second pack's own (the one it is moved to)
      const wrong = `packs/${second.at(-64) === "f" ? "e" : "f"}${second.at(-63)}`;
      const damages: {
        name: string;
        kind: string;
        damage: () => Promise<void>;
        undo: () => Promise<void>;
      }[] = [];
      let saved = new Uint8Array();
      damages.push({
        name: "a truncated pack",
        kind: "corrupt-pack",
        damage: async () => {
          saved = await Deno.readFile(`${root}/${first}`);
          await Deno.writeFile(`${root}/${first}`, saved.subarray(0, saved.length - 1000));
        },
        undo: () => Deno.writeFile(`${root}/${first}`, saved),
      });
      damages.push({
        name: "a pack in the wrong shard",
        kind: "misplaced-pack",
        damage: async () => {
          await Deno.mkdir(`${root}/${wrong}`, { recursive: true });
          await Deno.rename(`${root}/${second}`, `${root}/${wrong}/${second.slice(-64)}`);
        },
        undo: () => Deno.rename(`${root}/${wrong}/${second.slice(-64)}`, `${root}/${second}`),
      });
      damages.push({
        name: "a missing index",
        kind: "corrupt-index",
        damage: async () => {
          saved = await Deno.readFile(`${root}/index`);
          await Deno.remove(`${root}/index`);
        },
        undo: () => Deno.writeFile(`${root}/index`, saved),
      });
      damages.push({
        name: "a garbage object",
        kind: "corrupt-manifest",
        damage: async () => {
          saved = await Deno.readFile(`${root}/manifest`);
          await Deno.writeFile(
            `${root}/manifest`,
            pseudoRandomBytes(saved.length, 9).map((b, i) => i === 0 ? 0x99 : b),
          );
        },
        undo: () => Deno.writeFile(`${root}/manifest`, saved),
      });

      for (const d of damages) {
        await d.damage();
        // the operator's check, no key on the server's side
        const op = await operatorCheck(server);
        equal(op.code, 1, `${d.name}: ${op.stderr}`);
        const report = JSON.parse(op.stdout) as Report;
        ok(
          report.problems.some((p) => p.kind === d.kind && p.severity === "error"),
          `${d.name}: the operator's check says ${JSON.stringify(report.problems)}`,
        );
        // the client's check over REST: the server's findings first, then its own
        const client = await vger(["check", "--json"], 1);
        const mine = JSON.parse(client.stdout) as Report;
        const fromServer = mine.problems.filter((p) => p.message.startsWith("Server check: "));
        deepStrictEqual(
          fromServer.map((p) => [p.kind, p.severity]),
          report.problems.map((p) => [p.kind, p.severity]),
          `${d.name}: vger check did not report the server findings: ${JSON.stringify(fromServer)}`,
        );
        ok(
          mine.problems.some((p) =>
            !p.message.startsWith("Server check: ") && p.severity === "error"
          ),
          `${d.name}: the client's own check found nothing: ${client.stdout}`,
        );
        await d.undo();
      }
      // whole again
      const again = await vger(["check", "--json"]);
      equal((JSON.parse(again.stdout) as Report).errors, 0);
    });
  } finally {
    await server.stop();
  }
});
