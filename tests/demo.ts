/**
 * The README's first command: a real backup and restore on a local repository, no setup.
 * Makes a small tree in a temp dir, runs `vger init`, `backup`, `list`, `extract` through the
 * real CLI (in-process), compares the restored bytes and removes everything.
 *
 * Run: npx -y deno@2.9.6 task demo [DIR]   (DIR: back up this directory instead)
 */

import { main } from "../cli.ts";

const work = await Deno.makeTempDir({ prefix: "vger-demo-" });
const repo = `${work}/repo`;
let source = Deno.args[0];
if (!source) {
  source = `${work}/source`;
  await Deno.mkdir(`${source}/docs/nested`, { recursive: true });
  await Deno.writeTextFile(`${source}/docs/hello.txt`, "Hello from vger\n".repeat(1000));
  const random = new Uint8Array(5 << 20);
  for (let i = 0; i < random.length; i += 65536) {
    crypto.getRandomValues(random.subarray(i, i + 65536));
  }
  await Deno.writeFile(`${source}/docs/nested/random.bin`, random);
  await Deno.symlink("hello.txt", `${source}/docs/link`);
}
Deno.env.set("VGER_PASSPHRASE", Deno.env.get("VGER_PASSPHRASE") ?? "demo-passphrase");
// the files cache and the memory of repositories of a throw-away repository go with it
Deno.env.set("VGER_CACHE_DIR", `${work}/cache`);

async function step(args: string[]): Promise<void> {
  console.log(`$ vger ${args.join(" ")}`);
  const code = await main(args);
  if (code !== 0 && code !== 3) {
    console.error(`demo failed: vger ${args[2]} exited with ${code}`);
    Deno.exit(code);
  }
}

try {
  await step(["-R", repo, "init"]);
  await step(["-R", repo, "backup", "--archive", "demo-1", source]);
  await step(["-R", repo, "backup", "--archive", "demo-2", source]);
  await step(["-R", repo, "list"]);
  await step(["-R", repo, "extract", "--archive", "demo-2", "--dest", `${work}/restore`]);
  const diff = await new Deno.Command("diff", {
    args: ["-r", "--no-dereference", source, `${work}/restore${await Deno.realPath(source)}`],
  }).output();
  if (!diff.success) {
    console.error(new TextDecoder().decode(diff.stdout));
    console.error("demo failed: the restored tree differs from the source");
    Deno.exit(1);
  }
  console.log("Restored tree is identical to the source.");
} finally {
  await Deno.remove(work, { recursive: true });
}
