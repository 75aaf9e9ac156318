/**
 * Where the configuration file is looked for and how it is read: {@linkcode configCandidates}
 * lists the places in the README's order (it takes the environment as a function), and
 * {@linkcode loadConfigFile} reads the first that exists, up to a size cap, and parses it with
 * lib/config.ts.
 *
 * @example Find and read the configuration, if there is one
 * ```ts ignore
 * import { loadConfigFile } from "./config_file.ts";
 *
 * const config = await loadConfigFile({ explicit: "/etc/vger/config.yaml" });
 * console.log(config?.repositories.length);
 * ```
 *
 * @module
 */

import type { VgerConfig } from "./config.ts";
import { errorMessage, UsageError } from "./errors.ts";

/**
 * The configuration files to try, in the README's order: `--config` (explicit) alone if given,
 * else `VGER_CONFIG` alone if set, else `./vger.yaml`, `$XDG_CONFIG_HOME/vger/config.yaml` (or
 * `~/.config/vger/config.yaml`) and `/etc/vger/config.yaml`.
 */
export function configCandidates(
  opts: { explicit?: string; env: (name: string) => string | undefined; cwd?: string },
): string[] {
  if (opts.explicit) return [opts.explicit];
  const fromEnv = opts.env("VGER_CONFIG");
  if (fromEnv) return [fromEnv];
  const join = (dir: string, rest: string) => `${dir.replace(/\/+$/, "")}/${rest}`;
  const out = [opts.cwd ? join(opts.cwd, "vger.yaml") : "./vger.yaml"];
  // The XDG spec says to ignore a relative XDG_CONFIG_HOME.
  const xdg = opts.env("XDG_CONFIG_HOME");
  const home = opts.env("HOME");
  if (xdg && xdg.startsWith("/")) out.push(join(xdg, "vger/config.yaml"));
  else if (home) out.push(join(home, ".config/vger/config.yaml"));
  out.push("/etc/vger/config.yaml");
  return out;
}

/**
 * Finds, reads and parses the configuration (see {@linkcode configCandidates}); null when no
 * candidate exists. A file given by `--config` or `VGER_CONFIG` that cannot be read is an error;
 * missing (or unreadable for lack of permission) default locations are skipped.
 */
export async function loadConfigFile(
  opts: { explicit?: string; env?: (name: string) => string | undefined; cwd?: string } = {},
): Promise<VgerConfig | null> {
  const env = opts.env ?? ((name: string) => Deno.env.get(name));
  const explicit = Boolean(opts.explicit || env("VGER_CONFIG"));
  for (const file of configCandidates({ explicit: opts.explicit, env, cwd: opts.cwd })) {
    let text: string;
    try {
      text = await readCapped(file, MAX_CONFIG_BYTES);
    } catch (err) {
      if (err instanceof UsageError) throw err;
      if (
        !explicit && (err instanceof Deno.errors.NotFound || err instanceof Deno.errors.NotCapable)
      ) {
        continue;
      }
      if (err instanceof Deno.errors.NotCapable) throw err; // cli.ts names the missing flag
      const why = err instanceof Deno.errors.NotFound ? "no such file" : errorMessage(err);
      throw new UsageError(`Cannot read configuration ${file}: ${why}`, { cause: err });
    }
    // the parser (and its YAML library) is loaded only when there is a file to parse
    const { parseConfig } = await import("./config.ts");
    return parseConfig(text, file);
  }
  return null;
}

/** The largest configuration file read (1 MiB): a bigger one, or /dev/zero, is refused. */
export const MAX_CONFIG_BYTES = 1 << 20;

/** A file's text, read up to `cap` bytes; a longer file is a UsageError naming it. */
async function readCapped(file: string, cap: number): Promise<string> {
  using f = await Deno.open(file, { read: true });
  const buf = new Uint8Array(cap + 1);
  let n = 0;
  while (n < buf.length) {
    const got = await f.read(buf.subarray(n));
    if (got === null) break;
    n += got;
  }
  if (n > cap) {
    throw new UsageError(
      `Cannot read configuration ${file}: larger than ${cap} bytes (the limit for a configuration)`,
    );
  }
  return new TextDecoder().decode(buf.subarray(0, n));
}
