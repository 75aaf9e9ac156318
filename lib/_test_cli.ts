/**
 * Fixtures the CLI rendering tests share (lib/cli_*_test.ts): a repository path, JSON as text and
 * a manifest entry.
 *
 * @module
 */

import type { ManifestEntry } from "./manifest.ts";

/** The repository path the rendering tests print. */
export const REPO = "/mnt/repo";

/** JSON text, so that field names and their order are compared, not just the values. */
export const text = (value: unknown): string => JSON.stringify(value);

/** A manifest entry named `name` at `time`, its id filled with `idByte`. */
export function entry(name: string, time: string, idByte = 0xab): ManifestEntry {
  return {
    name,
    id: new Uint8Array(32).fill(idByte),
    time,
    hostname: "host1",
    username: "alice",
    stats: { files: 12, original: 3 * 1024 * 1024, compressed: 1536, deduplicated: 100 },
  };
}
