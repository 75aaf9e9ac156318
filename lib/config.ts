/**
 * The YAML configuration (borgmatic style). This module parses and validates it into a plain
 * object; it does not touch repositories.
 *
 * @module
 */

import { parseDocument } from "yaml";
import type { ChunkerParams } from "./chunker.ts";
import { DEFAULT_CHUNKER_PARAMS } from "./chunker.ts";
import type { CompressionOptions } from "./compress.ts";
import type { EncryptionMode } from "./crypto.ts";
import { UsageError } from "./errors.ts";
import { closest } from "./suggest.ts";
import { parseRetention, type RetentionPolicy } from "./retention.ts";

/** Encryption settings. */
export interface EncryptionConfig {
  /** Mode. */
  mode: EncryptionMode;
  /** Inline passphrase (not recommended). */
  passphrase?: string;
  /** Command that prints the passphrase. */
  passcommand?: string;
}

/** One repository entry. */
export interface RepositoryConfig {
  /** Local path, S3 prefix or REST URL. */
  path: string;
  /** Short name for --repo. */
  label?: string;
  /** Backend kind. */
  backend: "local" | "s3" | "rest";
  /** Pack size floor. */
  minPackSize?: number;
  /** Pack size ceiling. */
  maxPackSize?: number;
  /** Per-repository encryption override. */
  encryption: EncryptionConfig;
  /** Per-repository compression override. */
  compression: CompressionOptions;
  /** Per-repository sources override. */
  sourceDirectories: string[];
  /** Retention policy for prune (the repository's own, else the top-level one). */
  retention: RetentionPolicy;
}

/** A whole configuration. */
export interface VgerConfig {
  /** Where it was read from. */
  file?: string;
  /** Repositories, in order. */
  repositories: RepositoryConfig[];
  /** Sources. */
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

type Obj = Record<string, unknown>;

const TOP_KEYS = [
  "repositories",
  "encryption",
  "source_directories",
  "exclude_patterns",
  "chunker",
  "compression",
  "retention",
  "archive_name_format",
];
const REPO_KEYS = [
  "path",
  "label",
  "backend",
  "min_pack_size",
  "max_pack_size",
  "s3_bucket",
  "s3_region",
  "s3_endpoint",
  "s3_access_key_id",
  "s3_secret_access_key",
  "rest_token",
  "rest_token_command",
  "encryption",
  "compression",
  "retention",
  "source_directories",
];

class Reader {
  constructor(readonly file: string) {}

  fail(path: string, why: string): never {
    throw new UsageError(`Invalid configuration ${this.file}: ${path}: ${why}`);
  }

  obj(v: unknown, path: string, keys: string[]): Obj {
    if (v === undefined || v === null) return {};
    if (typeof v !== "object" || Array.isArray(v)) this.fail(path, "expected a mapping");
    for (const k of Object.keys(v as Obj)) {
      if (!keys.includes(k)) {
        const near = closest(k, keys);
        this.fail(
          `${path ? path + "." : ""}${k}`,
          `unknown key${near ? ` (did you mean "${near}"?)` : ""}`,
        );
      }
    }
    return v as Obj;
  }

  str(v: unknown, path: string): string | undefined {
    if (v === undefined || v === null) return undefined;
    if (typeof v !== "string") this.fail(path, "expected a string");
    return v;
  }

  int(v: unknown, path: string): number | undefined {
    if (v === undefined || v === null) return undefined;
    if (!Number.isSafeInteger(v) || (v as number) < 0) this.fail(path, "expected a whole number");
    return v as number;
  }

  strList(v: unknown, path: string): string[] | undefined {
    if (v === undefined || v === null) return undefined;
    if (!Array.isArray(v) || !v.every((s) => typeof s === "string")) {
      this.fail(path, "expected a list of strings");
    }
    return v;
  }

  encryption(v: unknown, path: string, base?: EncryptionConfig): EncryptionConfig {
    const o = this.obj(v, path, ["mode", "passphrase", "passcommand"]);
    const mode = this.str(o.mode, `${path}.mode`) ?? base?.mode ?? "aes256gcm";
    if (mode !== "aes256gcm" && mode !== "none") {
      this.fail(`${path}.mode`, `"${mode}" is not "aes256gcm" or "none"`);
    }
    return {
      mode,
      passphrase: this.str(o.passphrase, `${path}.passphrase`) ??
        (v === undefined ? base?.passphrase : undefined),
      passcommand: this.str(o.passcommand, `${path}.passcommand`) ??
        (v === undefined ? base?.passcommand : undefined),
    };
  }

  retention(v: unknown, path: string): RetentionPolicy {
    try {
      return parseRetention(v ?? {}, path);
    } catch (cause) {
      throw new UsageError(`Invalid configuration ${this.file}: ${(cause as Error).message}`, {
        cause,
      });
    }
  }

  compression(v: unknown, path: string, base?: CompressionOptions): CompressionOptions {
    const o = this.obj(v, path, ["algorithm", "zstd_level"]);
    const algorithm = this.str(o.algorithm, `${path}.algorithm`) ?? base?.algorithm ?? "lz4";
    if (!["lz4", "zstd", "none"].includes(algorithm)) {
      this.fail(`${path}.algorithm`, `"${algorithm}" is not "lz4", "zstd" or "none"`);
    }
    const level = this.int(o.zstd_level, `${path}.zstd_level`) ?? base?.zstdLevel ?? 3;
    if (level < 1 || level > 22) this.fail(`${path}.zstd_level`, "use 1 to 22");
    return { algorithm: algorithm as CompressionOptions["algorithm"], zstdLevel: level };
  }
}

/** Parses configuration text; `file` names it in errors. */
export function parseConfig(text: string, file: string): VgerConfig {
  const doc = parseDocument(text);
  if (doc.errors.length > 0) {
    const e = doc.errors[0];
    const line = e.linePos?.[0].line;
    throw new UsageError(
      `Invalid configuration ${file}${line ? ` line ${line}` : ""}: ${e.message.split("\n")[0]}`,
    );
  }
  const r = new Reader(file);
  const top = r.obj(doc.toJS(), "", TOP_KEYS);
  const retention = r.retention(top.retention, "retention");
  const encryption = r.encryption(top.encryption, "encryption");
  const compression = r.compression(top.compression, "compression");
  const sources = r.strList(top.source_directories, "source_directories") ?? [];
  const ch = r.obj(top.chunker, "chunker", ["min_size", "avg_size", "max_size"]);
  const chunker: ChunkerParams = {
    minSize: r.int(ch.min_size, "chunker.min_size") ?? DEFAULT_CHUNKER_PARAMS.minSize,
    avgSize: r.int(ch.avg_size, "chunker.avg_size") ?? DEFAULT_CHUNKER_PARAMS.avgSize,
    maxSize: r.int(ch.max_size, "chunker.max_size") ?? DEFAULT_CHUNKER_PARAMS.maxSize,
  };
  if (!Array.isArray(top.repositories) || top.repositories.length === 0) {
    r.fail("repositories", "expected a list with at least one repository");
  }
  const repositories = (top.repositories as unknown[]).map((v, i) => {
    const p = `repositories[${i}]`;
    const o = r.obj(v, p, REPO_KEYS);
    const path = r.str(o.path, `${p}.path`) ?? r.fail(`${p}.path`, "missing");
    const backend = r.str(o.backend, `${p}.backend`) ?? "local";
    if (!["local", "s3", "rest"].includes(backend)) {
      r.fail(`${p}.backend`, `"${backend}" is not "local", "s3" or "rest"`);
    }
    return {
      path,
      label: r.str(o.label, `${p}.label`),
      backend: backend as RepositoryConfig["backend"],
      minPackSize: r.int(o.min_pack_size, `${p}.min_pack_size`),
      maxPackSize: r.int(o.max_pack_size, `${p}.max_pack_size`),
      encryption: o.encryption === undefined
        ? encryption
        : r.encryption(o.encryption, `${p}.encryption`, encryption),
      compression: o.compression === undefined
        ? compression
        : r.compression(o.compression, `${p}.compression`, compression),
      sourceDirectories: r.strList(o.source_directories, `${p}.source_directories`) ?? sources,
      retention: o.retention === undefined ? retention : r.retention(o.retention, `${p}.retention`),
    };
  });
  return {
    file,
    repositories,
    sourceDirectories: sources,
    excludePatterns: r.strList(top.exclude_patterns, "exclude_patterns") ?? [],
    chunker,
    archiveNameFormat: r.str(top.archive_name_format, "archive_name_format") ??
      DEFAULT_ARCHIVE_NAME_FORMAT,
  };
}

/** Expands `{hostname}`, `{user}` and `{now:<strftime>}` in an archive name template. */
export function formatArchiveName(
  template: string,
  ctx: { hostname: string; user: string; now: Date },
): string {
  return template.replace(
    /\{(hostname|user|now(?::([^}]*))?)\}/g,
    (_m, key: string, fmt?: string) => {
      if (key === "hostname") return ctx.hostname;
      if (key === "user") return ctx.user;
      return strftime(ctx.now, fmt ?? "%Y-%m-%dT%H:%M:%S");
    },
  );
}

function strftime(d: Date, fmt: string): string {
  const p = (n: number, w = 2) => String(n).padStart(w, "0");
  return fmt.replace(/%([YmdHMSjyfz%])/g, (_m, c: string) => {
    switch (c) {
      case "Y":
        return String(d.getFullYear());
      case "y":
        return p(d.getFullYear() % 100);
      case "m":
        return p(d.getMonth() + 1);
      case "d":
        return p(d.getDate());
      case "H":
        return p(d.getHours());
      case "M":
        return p(d.getMinutes());
      case "S":
        return p(d.getSeconds());
      case "f":
        return p(d.getMilliseconds() * 1000, 6);
      case "j": {
        const start = new Date(d.getFullYear(), 0, 1);
        return p(Math.floor((d.getTime() - start.getTime()) / 86400000) + 1, 3);
      }
      case "z": {
        const off = -d.getTimezoneOffset();
        return `${off >= 0 ? "+" : "-"}${p(Math.floor(Math.abs(off) / 60))}${
          p(Math.abs(off) % 60)
        }`;
      }
      default:
        return "%";
    }
  });
}
