/**
 * The repository's `config` object: unencrypted JSON that says how to read the repository,
 * authenticated with a MAC under a secret derived from the master key, so whoever holds the
 * storage cannot switch the encryption mode or the chunker parameters unnoticed.
 *
 *   {"vger_repository":1,"id":"<64 hex>","encryption":"aes256gcm"|"none",
 *    "chunker":{"min_size":N,"avg_size":N,"max_size":N},"min_pack_size":N,"max_pack_size":N,
 *    "mac":"<64 hex>"}
 * `mac` is HMAC-SHA-256(deriveSecret("config"), canonical JSON of the other fields in the order
 * above, no whitespace).
 *
 * @module
 */

import type { ChunkerParams } from "./chunker.ts";
import { hmacSha256 } from "./crypto.ts";
import type { EncryptionMode, RepoKey } from "./crypto.ts";
import { IntegrityError } from "./errors.ts";
import { bytesEqual, fromHex, isHexId, toHex } from "./ids.ts";

/** The current format version. */
export const FORMAT_VERSION = 1;

/** The most bytes of a config object; read with this cap (a real one takes under 400). */
export const MAX_REPO_CONFIG_BYTES = 4096;

/** Parsed repository configuration. */
export interface RepoConfig {
  /** Format version. */
  version: number;
  /** Random repository id (64 hex digits). */
  id: string;
  /** Encryption mode. */
  encryption: EncryptionMode;
  /** Chunker parameters. */
  chunker: ChunkerParams;
  /** Pack size floor in bytes. */
  minPackSize: number;
  /** Pack size ceiling in bytes. */
  maxPackSize: number;
}

function canonical(c: RepoConfig): string {
  return JSON.stringify({
    vger_repository: c.version,
    id: c.id,
    encryption: c.encryption,
    chunker: {
      min_size: c.chunker.minSize,
      avg_size: c.chunker.avgSize,
      max_size: c.chunker.maxSize,
    },
    min_pack_size: c.minPackSize,
    max_pack_size: c.maxPackSize,
  });
}

async function macOf(c: RepoConfig, key: RepoKey): Promise<Uint8Array> {
  return hmacSha256(await key.deriveSecret("config"), new TextEncoder().encode(canonical(c)));
}

/** Serializes a config with its MAC. */
export async function encodeRepoConfig(c: RepoConfig, key: RepoKey): Promise<Uint8Array> {
  const body = canonical(c);
  const mac = toHex(await macOf(c, key));
  return new TextEncoder().encode(`${body.slice(0, -1)},"mac":"${mac}"}\n`);
}

/** The parsed config and its claimed MAC; check it with {@linkcode verifyRepoConfig}. */
export interface UnverifiedConfig {
  /** The config. */
  config: RepoConfig;
  /** MAC bytes as stored. */
  mac: Uint8Array;
}

const isUint = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;

/** Parses config bytes; throws IntegrityError naming the config on any malformation. */
export function parseRepoConfig(bytes: Uint8Array): UnverifiedConfig {
  const bad = (why: string, cause?: unknown) =>
    new IntegrityError(`Repository config is corrupt: ${why}`, { cause });
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (cause) {
    throw bad("not valid JSON", cause);
  }
  if (typeof o !== "object" || o === null || Array.isArray(o)) throw bad("not an object");
  if (o.vger_repository !== FORMAT_VERSION) {
    throw bad(`unsupported format version ${JSON.stringify(o.vger_repository)}`);
  }
  if (typeof o.id !== "string" || !isHexId(o.id)) throw bad("bad id");
  if (o.encryption !== "aes256gcm" && o.encryption !== "none") throw bad("bad encryption mode");
  const ch = o.chunker as Record<string, unknown> | null;
  if (
    typeof ch !== "object" || ch === null || !isUint(ch.min_size) || !isUint(ch.avg_size) ||
    !isUint(ch.max_size)
  ) throw bad("bad chunker parameters");
  if (!isUint(o.min_pack_size) || !isUint(o.max_pack_size)) throw bad("bad pack sizes");
  if (typeof o.mac !== "string" || !isHexId(o.mac)) throw bad("bad mac");
  const config: RepoConfig = {
    version: o.vger_repository,
    id: o.id,
    encryption: o.encryption,
    chunker: { minSize: ch.min_size, avgSize: ch.avg_size, maxSize: ch.max_size },
    minPackSize: o.min_pack_size,
    maxPackSize: o.max_pack_size,
  };
  return { config, mac: fromHex(o.mac) };
}

/** Checks the config's MAC with the unlocked key. */
export async function verifyRepoConfig(u: UnverifiedConfig, key: RepoKey): Promise<RepoConfig> {
  if (!bytesEqual(await macOf(u.config, key), u.mac)) {
    throw new IntegrityError(
      "Repository config is corrupt: its MAC does not match the key (tampered with or damaged)",
    );
  }
  return u.config;
}
