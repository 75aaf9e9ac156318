/**
 * The YAML library (npm `yaml`), as the configuration reads it. Its package hands Deno its
 * CommonJS build (the `node` export condition comes first), which loads through Node's `require`
 * emulation, file by file and without V8's code cache: 60 ms on this VM, on every command that
 * reads a configuration file, against 11 ms for the same version's ES-module build. That build
 * is not among the package's exports, so it is imported by its place beside the package's
 * package.json where the package sits in a `node_modules` directory; elsewhere (Deno's global
 * cache, a compiled binary, no read permission there) the package's own entry is imported.
 * Both builds mark nodes with the same global symbols, so `isMap` and the like see either's nodes.
 *
 * @module
 */

import type * as Yaml from "yaml";

export type { Document } from "yaml";

async function load(): Promise<typeof Yaml> {
  try {
    const manifest = import.meta.resolve("yaml/package.json");
    if (manifest.startsWith("file:")) {
      return await import(new URL("./browser/index.js", manifest).href) as typeof Yaml;
    }
  } catch {
    // not there, or not readable: the package's own entry below
  }
  return await import("yaml");
}

const yaml = await load();

export const { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument } = yaml;
/** A line counter (its instances' type). */
export type LineCounter = Yaml.LineCounter;
