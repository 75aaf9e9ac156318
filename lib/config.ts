/**
 * The YAML configuration (borgmatic style): its schema, validation and defaults.
 * {@linkcode parseConfig} is pure; how a `--repo` selector picks repositories from it is
 * lib/config_select.ts, where the file is found and how it is read is lib/config_file.ts, the position-tracking YAML reader lib/yaml_reader.ts and the archive name
 * template lib/archive_name_format.ts.
 *
 * Every configuration error is one line naming the file, the line and the key path, e.g.
 * `Invalid configuration /etc/vger/config.yaml line 7: repositories[1].compression.algorithm:
 * "gzip" is not "lz4", "zstd" or "none"`, thrown as a UsageError (exit code 2) before any
 * repository is touched. Unknown keys are errors, with a "did you mean" suggestion.
 *
 * ## Top-level settings and repository entries
 *
 * The top-level `encryption`, `compression`, `retention` and `source_directories` are the
 * defaults of every entry of `repositories:`; an entry may override each of them:
 *
 * - `compression` and `retention` merge key by key: the entry's keys win and the other keys come
 *   from the top level, so `compression: {zstd_level: 9}` keeps the top-level algorithm, and
 *   `retention: {keep_daily: 30}` keeps the top-level weekly/monthly rules (drop one with
 *   `keep_weekly: 0`). Merging can only keep more archives than the entry's rules alone.
 * - `source_directories` of an entry replaces the top-level list.
 * - `encryption.mode` is the entry's, else the top level's, else `aes256gcm`. The secrets are
 *   not merged: {@linkcode RepositoryConfig}`.encryption` holds only the entry's own
 *   `passphrase`/`passcommand`, and {@linkcode VgerConfig}`.encryption` the top-level ones,
 *   because `VGER_PASSPHRASE` ranks between the two (lib/secrets.ts applies the precedence).
 * - `chunker`, `exclude_patterns` and `archive_name_format` exist only at the top level;
 *   `min_pack_size`, `max_pack_size`, `s3_*` and `rest_*` only in an entry.
 *
 * @example Read a configuration and pick a repository
 * ```ts
 * import { parseConfig } from "./config.ts";
 * import { selectRepositories } from "./config_select.ts";
 * import { equal } from "node:assert/strict";
 *
 * const config = parseConfig(
 *   "repositories:\n  - path: /backup/repo\n    label: main\ncompression:\n  algorithm: zstd\n",
 *   "vger.yaml",
 * );
 * const [repo] = selectRepositories(config, "main");
 * equal(repo.path, "/backup/repo");
 * equal(repo.compression.algorithm, "zstd");
 * ```
 *
 * @module
 */

import { isSeq, LineCounter, parseDocument } from "./yaml.ts";
import { archiveNameFormatProblem } from "./archive_name_format.ts";
import {
  type ChunkerParams,
  DEFAULT_CHUNKER_PARAMS,
  MAX_CHUNK_LIMIT,
  MIN_CHUNK_LIMIT,
  validateChunkerParams,
} from "./chunker.ts";
import { type CompressionOptions, DEFAULT_COMPRESSION } from "./compress.ts";
import type { EncryptionMode } from "./crypto.ts";
import { isValidKey } from "../backends/backend.ts";
import { errorMessage, UsageError } from "./errors.ts";
import { ExcludeMatcher } from "./patterns.ts";
import { DEFAULT_MAX_PACK_SIZE, DEFAULT_MIN_PACK_SIZE } from "./repository.ts";
import { repositoryIdentity, sameEndpoint } from "./repository_identity.ts";
import { parseRetention, type RetentionPolicy } from "./retention.ts";
import { splitCommandLine } from "./secrets.ts";
import { absent, describe, type Field, plain, YamlReader } from "./yaml_reader.ts";
import { isHttpUrl, SCHEME } from "./repository_identity.ts";

/** The storage backends a repository entry can name. */
export type BackendKind = "local" | "s3" | "rest";

/**
 * Encryption settings. In a {@linkcode RepositoryConfig}, `mode` is the effective one and the
 * secrets are only the entry's own; in a {@linkcode VgerConfig}, all three are the top level's.
 */
export interface EncryptionConfig {
  /** Encryption mode. */
  mode: EncryptionMode;
  /** Inline passphrase (not recommended). */
  passphrase?: string;
  /** Command that prints the passphrase (split into words by lib/secrets.ts, no shell). */
  passcommand?: string;
}

/** The S3 settings of a repository entry with `backend: s3`. */
export interface S3Config {
  /** Bucket name: the bucket of an `s3://BUCKET[/PREFIX]` path, else `s3_bucket`. */
  bucket: string;
  /** Key prefix in the bucket: no leading or trailing `/`, valid segments; empty = the root. */
  prefix: string;
  /** Region, e.g. `us-east-1`. */
  region?: string;
  /** Endpoint URL of an S3-compatible service (MinIO etc.). */
  endpoint?: string;
  /** Access key id (always given together with the secret). */
  accessKeyId?: string;
  /** Secret access key (always given together with the id). */
  secretAccessKey?: string;
}

/** The REST settings of a repository entry with `backend: rest` (at most one of the two). */
export interface RestConfig {
  /** Bearer token for vger-server. */
  token?: string;
  /** Command that prints the token (split into words by lib/secrets.ts, no shell). */
  tokenCommand?: string;
}

/** One repository: an entry of `repositories:` with the top-level defaults merged in. */
export interface RepositoryConfig {
  /** Local path, S3 prefix or REST URL (http or https). */
  path: string;
  /** Short name for `--repo`. */
  label?: string;
  /** Backend kind. */
  backend: BackendKind;
  /** Pack size floor in bytes (unset: the repository default). */
  minPackSize?: number;
  /** Pack size ceiling in bytes (unset: the repository default). */
  maxPackSize?: number;
  /** Parallel requests to the storage (unset: the backend's own default). */
  connections?: number;
  /** S3 settings; present exactly when `backend` is `s3`. */
  s3?: S3Config;
  /** REST settings; present exactly when `backend` is `rest`. */
  rest?: RestConfig;
  /** Effective mode; passphrase and passcommand only from the entry's own `encryption`. */
  encryption: EncryptionConfig;
  /** True when the configuration names the mode (the entry's or the top level's); else absent. */
  modeNamed?: true;
  /** Compression: the entry's keys over the top-level ones. */
  compression: CompressionOptions;
  /** Retention policy for prune: the entry's keys over the top-level ones. */
  retention: RetentionPolicy;
  /** Source directories: the entry's list, else the top-level one. */
  sourceDirectories: string[];
}

/** A whole configuration file, validated. */
export interface VgerConfig {
  /** The file it was read from, as named to {@linkcode parseConfig}. */
  file: string;
  /** Repositories, in file order, with the top-level defaults merged in. */
  repositories: RepositoryConfig[];
  /** The top-level encryption: mode (default aes256gcm) and the top-level secrets. */
  encryption: EncryptionConfig;
  /** True when the top level names `encryption.mode`; else absent. */
  modeNamed?: true;
  /** The top-level compression (default lz4). */
  compression: CompressionOptions;
  /** The top-level retention policy. */
  retention: RetentionPolicy;
  /** The top-level source directories. */
  sourceDirectories: string[];
  /** Exclude globs. */
  excludePatterns: string[];
  /** Chunker parameters for init. */
  chunker: ChunkerParams;
  /** Archive name template. */
  archiveNameFormat: string;
}

/** Default archive name template. */
export const DEFAULT_ARCHIVE_NAME_FORMAT = "{hostname}-{now:%Y-%m-%dT%H:%M:%S}";

/** The keys accepted at the top level of the file. */
export const TOP_LEVEL_KEYS: readonly string[] = [
  "repositories",
  "encryption",
  "source_directories",
  "exclude_patterns",
  "chunker",
  "compression",
  "retention",
  "archive_name_format",
];
/** The S3 keys of a repository entry (only with `backend: s3`). */
export const S3_KEYS: readonly string[] = [
  "s3_bucket",
  "s3_region",
  "s3_endpoint",
  "s3_access_key_id",
  "s3_secret_access_key",
];
/** The REST keys of a repository entry (only with `backend: rest`). */
export const REST_KEYS: readonly string[] = ["rest_token", "rest_token_command"];
/** The keys accepted in an entry of `repositories:`. */
export const REPOSITORY_KEYS: readonly string[] = [
  "path",
  "label",
  "backend",
  "min_pack_size",
  "max_pack_size",
  "connections",
  ...S3_KEYS,
  ...REST_KEYS,
  "encryption",
  "compression",
  "retention",
  "source_directories",
];
/** The keys accepted in an `encryption:` block. */
export const ENCRYPTION_KEYS: readonly string[] = ["mode", "passphrase", "passcommand"];
/** The keys accepted in a `compression:` block. */
export const COMPRESSION_KEYS: readonly string[] = ["algorithm", "zstd_level"];
/** The keys accepted in the `chunker:` block. */
export const CHUNKER_KEYS: readonly string[] = ["min_size", "avg_size", "max_size"];
/** The keys accepted in a `retention:` block (parsed by lib/retention.ts). */
export const RETENTION_KEYS: readonly string[] = [
  "keep_last",
  "keep_hourly",
  "keep_daily",
  "keep_weekly",
  "keep_monthly",
  "keep_yearly",
  "keep_within",
];

/** Compression without a `compression:` block, with the zstd level filled in. */
const BASE_COMPRESSION: Readonly<CompressionOptions> = Object.freeze({
  algorithm: DEFAULT_COMPRESSION.algorithm,
  zstdLevel: DEFAULT_COMPRESSION.zstdLevel ?? 3,
});
const BACKENDS: readonly BackendKind[] = ["local", "s3", "rest"];
const ALGORITHMS: readonly CompressionOptions["algorithm"][] = ["lz4", "zstd", "none"];
const MODES: readonly EncryptionMode[] = ["aes256gcm", "none"];
/** Bounds of validatePackSizes in lib/repository.ts (config_test.ts checks they agree). */
const MIN_PACK_LIMIT = 1 << 20;
const MAX_PACK_LIMIT = 2 ** 32 - 1;

/** The configuration's own blocks and values, read on top of the generic YAML reader. */
class ConfigReader extends YamlReader {
  url(f: Field): string | undefined {
    const v = this.str(f);
    if (v === undefined) return undefined;
    if (!isHttpUrl(v)) this.fail(f, `${JSON.stringify(v)} is not an http:// or https:// URL`);
    return v;
  }

  command(f: Field): string | undefined {
    const v = this.str(f);
    if (v === undefined) return undefined;
    let words: string[] = [];
    try {
      words = splitCommandLine(v);
    } catch (cause) {
      this.fail(f, errorMessage(cause));
    }
    if (words.length === 0) this.fail(f, "the command is empty");
    return v;
  }

  encryption(f: Field): { mode?: EncryptionMode; passphrase?: string; passcommand?: string } {
    const s = this.section(f, ENCRYPTION_KEYS);
    const out: { mode?: EncryptionMode; passphrase?: string; passcommand?: string } = {};
    const mode = this.oneOf(this.get(s, "mode", f), MODES);
    const passphrase = this.secret(this.get(s, "passphrase", f));
    const passcommand = this.command(this.get(s, "passcommand", f));
    if (mode !== undefined) out.mode = mode;
    if (passphrase !== undefined) out.passphrase = passphrase;
    if (passcommand !== undefined) out.passcommand = passcommand;
    return out;
  }

  compression(f: Field, base: CompressionOptions): CompressionOptions {
    const s = this.section(f, COMPRESSION_KEYS);
    return {
      algorithm: this.oneOf(this.get(s, "algorithm", f), ALGORITHMS) ?? base.algorithm,
      zstdLevel: this.int(this.get(s, "zstd_level", f), 1, 22, "") ?? base.zstdLevel,
    };
  }

  retention(f: Field, base: RetentionPolicy): RetentionPolicy {
    const s = this.section(f, RETENTION_KEYS, "a mapping of keep_* rules");
    const policy: RetentionPolicy = { ...base };
    for (const [name, { value }] of s?.keys ?? []) {
      if (absent(value)) continue;
      // One key at a time, so an error carries the line of its own value.
      try {
        Object.assign(policy, parseRetention({ [name]: plain(value.node) }, f.path));
      } catch (cause) {
        const message = errorMessage(cause);
        const prefix = `${value.path}: `;
        this.fail(value, message.startsWith(prefix) ? message.slice(prefix.length) : message);
      }
    }
    return policy;
  }

  chunker(f: Field): ChunkerParams {
    const s = this.section(f, CHUNKER_KEYS);
    const field = (name: string) => this.get(s, name, f);
    const bytes = (name: string) =>
      this.int(field(name), MIN_CHUNK_LIMIT, MAX_CHUNK_LIMIT, " of bytes");
    const min = bytes("min_size");
    const avg = bytes("avg_size");
    const max = bytes("max_size");
    const p: ChunkerParams = {
      minSize: min ?? DEFAULT_CHUNKER_PARAMS.minSize,
      avgSize: avg ?? DEFAULT_CHUNKER_PARAMS.avgSize,
      maxSize: max ?? DEFAULT_CHUNKER_PARAMS.maxSize,
    };
    if ((p.avgSize & (p.avgSize - 1)) !== 0) {
      this.fail(field("avg_size"), `${p.avgSize} is not a power of two (e.g. 1048576, 2097152)`);
    }
    const given = (v: number | undefined) => (v === undefined ? " (the default)" : "");
    if (p.minSize > p.avgSize) {
      this.fail(
        field(min !== undefined ? "min_size" : "avg_size"),
        `min_size ${p.minSize}${given(min)} is larger than avg_size ${p.avgSize}${given(avg)}`,
      );
    }
    if (p.avgSize > p.maxSize) {
      this.fail(
        field(max !== undefined ? "max_size" : "avg_size"),
        `avg_size ${p.avgSize}${given(avg)} is larger than max_size ${p.maxSize}${given(max)}`,
      );
    }
    try {
      validateChunkerParams(p); // the chunker's own rule, in case it grows stricter than the above
    } catch (cause) {
      this.fail(f, errorMessage(cause));
    }
    return p;
  }

  archiveNameFormat(f: Field): string | undefined {
    const v = this.str(f);
    if (v === undefined) return undefined;
    const problem = archiveNameFormatProblem(v);
    if (problem) this.fail(f, problem);
    return v;
  }

  patterns(f: Field): string[] | undefined {
    const list = this.strList(f);
    if (!list || !isSeq(f.node)) return list;
    const items = f.node.items;
    list.forEach((pattern, i) => {
      try {
        new ExcludeMatcher([pattern]);
      } catch (cause) {
        this.fail(this.field(items[i], `${f.path}[${i}]`, f.line), errorMessage(cause));
      }
    });
    return list;
  }
}

/** The most parallel requests `connections` may ask for. */
export const MAX_CONNECTIONS = 256;

/**
 * The bucket and normalised prefix of an S3 entry's `path` (`s3://BUCKET[/PREFIX]` or a bare
 * PREFIX) and `s3_bucket`; fails at the line of the key in the wrong.
 */
function s3Location(
  r: ConfigReader,
  path: string,
  pathField: Field,
  bucketField: Field,
): { bucket: string; prefix: string } {
  const given = r.str(bucketField);
  let bucket = given;
  let prefix = path;
  const url = /^s3:\/\/([^/]*)(?:\/(.*))?$/i.exec(path);
  if (url) {
    if (url[1] === "") r.fail(pathField, `${JSON.stringify(path)} names no bucket`);
    if (given !== undefined && given !== url[1]) {
      r.fail(
        bucketField,
        `${JSON.stringify(given)} is not the bucket "${url[1]}" of path ${
          JSON.stringify(path)
        } (give one, or the same in both)`,
      );
    }
    bucket = url[1];
    prefix = url[2] ?? "";
  } else if (SCHEME.test(path)) {
    r.fail(pathField, `${JSON.stringify(path)} is not an s3:// URL or a key prefix (backend: s3)`);
  }
  if (bucket === undefined) {
    r.fail(
      pathField,
      `${JSON.stringify(path)} names no bucket: write s3://BUCKET/${
        prefix.replace(/^\/+/, "")
      } or add s3_bucket`,
    );
  }
  if (!/^[a-z0-9][a-z0-9._-]*$/i.test(bucket)) {
    r.fail(url ? pathField : bucketField, `${JSON.stringify(bucket)} is not a bucket name`);
  }
  prefix = prefix.replace(/^\/+|\/+$/g, "");
  if (prefix !== "" && !isValidKey(prefix)) {
    r.fail(
      pathField,
      `${JSON.stringify(path)} has an invalid key prefix ${
        JSON.stringify(prefix)
      } (an empty, "." or ".." segment)`,
    );
  }
  return { bucket, prefix };
}

function parseRepository(
  r: ConfigReader,
  f: Field,
  defaults: {
    mode: EncryptionMode;
    modeNamed: boolean;
    compression: CompressionOptions;
    retention: RetentionPolicy;
    sources: string[];
  },
): RepositoryConfig {
  const s = r.section(f, REPOSITORY_KEYS, "a mapping such as {path: /backup/repo}");
  if (!s) r.fail(f, "expected a mapping such as {path: /backup/repo}, got nothing");
  const get = (name: string) => r.get(s, name, f);
  const backend = r.oneOf(get("backend"), BACKENDS) ?? "local";
  // Options of another backend are mistakes (a forgotten `backend:`), not silently ignored.
  for (const [name, { key }] of s.keys) {
    const owner = S3_KEYS.includes(name) ? "s3" : REST_KEYS.includes(name) ? "rest" : undefined;
    if (owner && owner !== backend) {
      r.fail(key, `only for backend: ${owner} (this repository's backend is "${backend}")`);
    }
  }
  const pathField = get("path");
  const path = r.str(pathField, { required: true })!;
  if (backend === "rest" && !isHttpUrl(path)) {
    r.fail(pathField, `${JSON.stringify(path)} is not an http:// or https:// URL (backend: rest)`);
  }
  if (backend === "local" && SCHEME.test(path)) {
    r.fail(pathField, `${JSON.stringify(path)} is a URL: set backend to "s3" or "rest"`);
  }
  const labelField = get("label");
  const label = r.str(labelField);
  if (label !== undefined && /[/:]/.test(label)) {
    r.fail(
      labelField,
      `${JSON.stringify(label)} contains "/" or ":", which --repo reads as a path`,
    );
  }
  const own = r.encryption(get("encryption"));
  const repo: RepositoryConfig = {
    path,
    backend,
    encryption: { ...own, mode: own.mode ?? defaults.mode },
    compression: r.compression(get("compression"), defaults.compression),
    retention: r.retention(get("retention"), defaults.retention),
    sourceDirectories: r.strList(get("source_directories")) ?? [...defaults.sources],
  };
  if (label !== undefined) repo.label = label;
  if (own.mode !== undefined || defaults.modeNamed) repo.modeNamed = true;

  const bytes = " of bytes";
  const minField = get("min_pack_size");
  const maxField = get("max_pack_size");
  const min = r.int(minField, MIN_PACK_LIMIT, MAX_PACK_LIMIT, bytes);
  const max = r.int(maxField, MIN_PACK_LIMIT, MAX_PACK_LIMIT, bytes);
  if ((min ?? DEFAULT_MIN_PACK_SIZE) > (max ?? DEFAULT_MAX_PACK_SIZE)) {
    const minText = `${min ?? DEFAULT_MIN_PACK_SIZE}${min === undefined ? " (the default)" : ""}`;
    const maxText = `${max ?? DEFAULT_MAX_PACK_SIZE}${max === undefined ? " (the default)" : ""}`;
    r.fail(
      max !== undefined ? maxField : minField,
      `min_pack_size ${minText} is larger than max_pack_size ${maxText}`,
    );
  }
  if (min !== undefined) repo.minPackSize = min;
  if (max !== undefined) repo.maxPackSize = max;
  const connections = r.int(get("connections"), 1, MAX_CONNECTIONS, " of parallel requests");
  if (connections !== undefined) repo.connections = connections;

  if (backend === "s3") {
    const s3: S3Config = s3Location(r, path, pathField, get("s3_bucket"));
    const region = r.str(get("s3_region"));
    const endpoint = r.url(get("s3_endpoint"));
    const id = r.str(get("s3_access_key_id"));
    const secret = r.secret(get("s3_secret_access_key"));
    if ((id === undefined) !== (secret === undefined)) {
      const [given, missing] = id === undefined
        ? ["s3_secret_access_key", "s3_access_key_id"]
        : ["s3_access_key_id", "s3_secret_access_key"];
      r.fail(s.keys.get(given)!.key, `needs ${missing} too (give both or neither)`);
    }
    if (region !== undefined) s3.region = region;
    if (endpoint !== undefined) s3.endpoint = endpoint;
    if (id !== undefined) s3.accessKeyId = id;
    if (secret !== undefined) s3.secretAccessKey = secret;
    repo.s3 = s3;
  }
  if (backend === "rest") {
    const rest: RestConfig = {};
    const token = r.secret(get("rest_token"));
    const tokenCommand = r.command(get("rest_token_command"));
    if (token !== undefined && tokenCommand !== undefined) {
      r.fail(
        s.keys.get("rest_token_command")!.key,
        "give rest_token or rest_token_command, not both",
      );
    }
    if (token !== undefined) rest.token = token;
    if (tokenCommand !== undefined) rest.tokenCommand = tokenCommand;
    repo.rest = rest;
  }
  return repo;
}

/**
 * Parses and validates configuration text; `file` names it in errors and in the result. Throws a
 * one-line UsageError naming the file, line and key path.
 */
export function parseConfig(text: string, file: string): VgerConfig {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: true });
  if (doc.errors.length > 0) {
    const e = doc.errors[0];
    const line = e.linePos?.[0].line ?? 1;
    const why = e.message.split("\n")[0].replace(/ at line \d+, column \d+:?$/, "");
    throw new UsageError(`Invalid configuration ${file} line ${line}: ${why}`, { cause: e });
  }
  const r: ConfigReader = new ConfigReader(file, doc, lines);
  const root = r.field(doc.contents, "", 1);
  const top = r.section(root, TOP_LEVEL_KEYS, "a mapping of settings");
  const get = (name: string) => r.get(top, name, root);

  const ownEncryption = r.encryption(get("encryption"));
  const encryption: EncryptionConfig = { mode: "aes256gcm", ...ownEncryption };
  const compression = r.compression(get("compression"), BASE_COMPRESSION);
  const retention = r.retention(get("retention"), {});
  const sourceDirectories = r.strList(get("source_directories")) ?? [];
  const excludePatterns = r.patterns(get("exclude_patterns")) ?? [];
  const chunker = r.chunker(get("chunker"));
  const archiveNameFormat = r.archiveNameFormat(get("archive_name_format")) ??
    DEFAULT_ARCHIVE_NAME_FORMAT;

  const reposField = get("repositories");
  if (absent(reposField)) {
    r.fail(reposField, "missing (required): list at least one repository (- path: /backup/repo)");
  }
  if (!isSeq(reposField.node) || reposField.node.items.length === 0) {
    r.fail(
      reposField,
      `expected a list with at least one repository, got ${describe(reposField.node)}`,
    );
  }
  const modeNamed = ownEncryption.mode !== undefined;
  const defaults = {
    mode: encryption.mode,
    modeNamed,
    compression,
    retention,
    sources: sourceDirectories,
  };
  const labels = new Map<string, string>();
  const identities = new Map<string, string>();
  const repositories = reposField.node.items.map((item, i) => {
    const f = r.field(item, `repositories[${i}]`, reposField.line);
    const repo = parseRepository(r, f, defaults);
    const at = (name: string) => r.get(r.section(f, REPOSITORY_KEYS), name, f);
    if (repo.label !== undefined) {
      const other = labels.get(repo.label);
      if (other) {
        r.fail(at("label"), `label ${JSON.stringify(repo.label)} is also used by ${other}`);
      }
      labels.set(repo.label, f.path);
    }
    const identity = repositoryIdentity(repo);
    const other = identities.get(identity);
    if (other) {
      const what = repo.s3
        ? `bucket "${repo.s3.bucket}" prefix ${JSON.stringify(repo.s3.prefix)}${
          repo.s3.endpoint ? ` at ${sameEndpoint(repo.s3.endpoint)}` : ""
        }`
        : `path ${JSON.stringify(repo.path)}`;
      r.fail(at("path"), `${what} is also used by ${other}`);
    }
    identities.set(identity, f.path);
    return repo;
  });
  return {
    file,
    repositories,
    encryption,
    ...(modeNamed ? { modeNamed: true as const } : {}),
    compression,
    retention,
    sourceDirectories,
    excludePatterns,
    chunker,
    archiveNameFormat,
  };
}
