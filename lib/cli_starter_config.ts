/**
 * The commented starter `vger.yaml` that `vger config` writes: every option of the configuration
 * reference, with its default and a one-line explanation. Optional settings are commented out
 * (`# key: value`); removing the `# ` of a setting line gives a valid file, also for the example
 * S3 and REST repositories. cli_starter_config_test.ts checks that every key lib/config.ts accepts
 * appears here, so a new key cannot go undocumented.
 *
 * @example
 * ```ts
 * import { starterConfig } from "./cli_starter_config.ts";
 * import { parseConfig } from "./config.ts";
 * import { equal } from "node:assert/strict";
 *
 * equal(parseConfig(starterConfig(), "vger.yaml").repositories[0].label, "main");
 * ```
 *
 * @module
 */

import { dirname } from "node:path";
import { DEFAULT_CHUNKER_PARAMS } from "./chunker.ts";
import { DEFAULT_COMPRESSION } from "./compress.ts";
import { DEFAULT_ARCHIVE_NAME_FORMAT } from "./config.ts";
import { errorMessage, UsageError } from "./errors.ts";
import { DEFAULT_MAX_PACK_SIZE, DEFAULT_MIN_PACK_SIZE } from "./repository.ts";

/** "32 MiB" for 33554432. */
function size(bytes: number): string {
  for (const [unit, shift] of [["GiB", 30], ["MiB", 20], ["KiB", 10]] as const) {
    if (bytes >= 2 ** shift && bytes % 2 ** shift === 0) return `${bytes / 2 ** shift} ${unit}`;
  }
  return `${bytes} bytes`;
}

/** Aligns the comments that follow settings (marked `@@`) on one column. */
function align(text: string): string {
  return text.replace(
    /^(.*?)@@/gm,
    (_m, setting: string) => setting.padEnd(COMMENT_COLUMN - 2) + "  ",
  );
}

const COMMENT_COLUMN = 38;

/** The text of a commented starter configuration file. */
export function starterConfig(): string {
  const ch = DEFAULT_CHUNKER_PARAMS;
  const zstd = DEFAULT_COMPRESSION.zstdLevel ?? 3;
  const [minPack, minPackText] = [DEFAULT_MIN_PACK_SIZE, size(DEFAULT_MIN_PACK_SIZE)];
  const [maxPack, maxPackText] = [DEFAULT_MAX_PACK_SIZE, size(DEFAULT_MAX_PACK_SIZE)];
  return align(`# vger configuration, written by \`vger config\`.
#
# A line "# key: value" is an optional setting showing its default or an example: remove the
# "# " to use it. vger reads the first file it finds of: --config PATH, $VGER_CONFIG,
# ./vger.yaml, $XDG_CONFIG_HOME/vger/config.yaml (or ~/.config/vger/config.yaml),
# /etc/vger/config.yaml. This file may hold secrets: keep it readable only by you.

# Where backups go. Commands run on every repository, in order; --repo LABEL|PATH picks one.
repositories:
  - path: "/backup/repo"@@# Local path, S3 key prefix, or REST URL (required)
    label: "main"@@# Short name for --repo (optional, unique)
    # backend: "local"@@# "local", "s3" or "rest" (default: "local")
    # min_pack_size: ${minPack}@@# Pack size floor in bytes (default: ${minPackText})
    # max_pack_size: ${maxPack}@@# Pack size ceiling in bytes (default: ${maxPackText})
    # An entry may override the top-level encryption, compression, retention and
    # source_directories. Compression and retention merge key by key with the top level.
    # encryption:                     # Only for this repository, before VGER_PASSPHRASE
    #   passcommand: "pass show vger-main"
    # compression:
    #   zstd_level: 9@@# Keeps the top-level algorithm
    # retention:
    #   keep_daily: 30@@# Keeps the other top-level rules
    # source_directories:             # Replaces the top-level list
    #   - "/srv"

  # A repository on S3 or an S3-compatible service. path is s3://BUCKET/PREFIX, or a bare
  # PREFIX with s3_bucket; the prefix loses leading and trailing "/" and an empty one is the
  # bucket root. Writing both s3://BUCKET/... and s3_bucket is allowed only when they name the
  # same bucket. Two entries are the same repository when endpoint, bucket and prefix match.
  # AWS S3:
  # - path: "s3://my-backups/vger/main"@@# Bucket and key prefix
  #   label: "offsite"
  #   backend: "s3"
  #   s3_region: "eu-west-1"@@# The bucket's region (default: $AWS_REGION, else us-east-1)
  #   s3_access_key_id: "my-key-id"@@# Credentials (optional; give both or neither; default:
  #   s3_secret_access_key: "my-secret-key"@@# the AWS_* variables, then ~/.aws/ files)
  #   connections: 8@@# Parallel requests (any backend; default: the backend's)
  #   compression:
  #     algorithm: "zstd"@@# Better ratio for a remote repository
  # Ceph RADOS Gateway (an endpoint means path-style addressing):
  # - path: "vger/main"@@# A bare key prefix, with s3_bucket
  #   backend: "s3"
  #   s3_bucket: "backups"@@# Bucket name (required unless path is s3://BUCKET/...)
  #   s3_endpoint: "http://rgw.example.com:7480"@@# Endpoint URL of an S3-compatible service
  # MinIO:
  # - path: "s3://backups/vger"
  #   backend: "s3"
  #   s3_endpoint: "http://localhost:9000"
  # Backblaze B2 (its S3-compatible API; the region is the one in the endpoint):
  # - path: "s3://my-b2-bucket/vger"
  #   backend: "s3"
  #   s3_endpoint: "https://s3.us-west-004.backblazeb2.com"
  #   s3_region: "us-west-004"

  # A repository on a vger-server (REST backend):
  # - path: "https://backup.example.com/myrepo"@@# http:// or https:// URL of the repository
  #   label: "server"
  #   backend: "rest"
  #   rest_token: "some-secret-token"@@# Bearer token of the server (optional)
  #   # rest_token_command: "pass show vger-token"  # Or: command that prints the token

# Encryption of new repositories, and where the passphrase comes from. Most specific first:
# the repository entry's own encryption (passcommand, passphrase), VGER_PASSPHRASE, the
# passcommand below, the passphrase below, else a prompt on the terminal.
encryption:
  mode: "aes256gcm"@@# "aes256gcm" or "none" (default: "aes256gcm")
  # passphrase: "inline-secret"@@# Inline passphrase; not recommended for production
  # passcommand: "pass show vger"@@# Command that prints it (quotes honoured, no shell)

# What \`vger backup\` backs up when it is given no paths (default: none).
source_directories:
  - "/home/user/documents"

# Paths not to back up (default: none), matched like restic's --exclude: a pattern without a
# leading "/" matches at any depth, "/" anchors it at the root; * stays within a path segment,
# ** crosses segments; a matching directory is skipped whole; "!" re-includes; borg's fm:, sh:,
# re:, pp: and pf: prefixes work too.
exclude_patterns:
  - "*.tmp"
  - ".cache"

# Content-defined chunking, fixed when a repository is created (vger init); defaults shown.
# chunker:
#   min_size: ${ch.minSize}@@# Smallest chunk, ${size(ch.minSize)} (at least 64)
#   avg_size: ${ch.avgSize}@@# Average chunk, ${size(ch.avgSize)} (a power of two)
#   max_size: ${ch.maxSize}@@# Largest chunk, ${size(ch.maxSize)} (at most 256 MiB)

# Compression of new data; defaults shown.
# compression:
#   algorithm: "${DEFAULT_COMPRESSION.algorithm}"@@# "lz4", "zstd" or "none"
#   zstd_level: ${zstd}@@# 1 (fast) to 22 (small), only used with zstd

# Which archives \`vger prune\` keeps (default: no rule, which keeps every archive). The
# rules add up: an archive is kept when any rule keeps it.
retention:
  keep_daily: 7@@# The newest archive of each of the last 7 days
  keep_weekly: 4@@# ... of each of the last 4 ISO weeks
  keep_monthly: 6@@# ... of each of the last 6 months
  # keep_last: 3@@# The 3 newest archives
  # keep_hourly: 24@@# The newest archive of each of the last 24 hours
  # keep_yearly: 2@@# ... of each of the last 2 years
  # keep_within: "2d"@@# Every archive within 2 days of the newest (h d w m y)

# Name of a new archive when backup gets no --archive: {hostname}, {user} and
# {now:FORMAT} with strftime fields (%Y %m %d %H %M %S %a %b ...).
# archive_name_format: "${DEFAULT_ARCHIVE_NAME_FORMAT}"
`);
}

/**
 * Writes {@linkcode starterConfig} to `dest` (mode 0600, parent directories created). Refuses
 * to overwrite an existing file, atomically (createNew), with a UsageError naming the path.
 */
export async function writeStarterConfig(dest: string): Promise<void> {
  try {
    await Deno.mkdir(dirname(dest), { recursive: true });
    await Deno.writeTextFile(dest, starterConfig(), { createNew: true, mode: 0o600 });
  } catch (err) {
    if (err instanceof Deno.errors.NotCapable) throw err; // cli.ts names the missing flag
    if (err instanceof Deno.errors.AlreadyExists) {
      throw new UsageError(
        `Cannot write the starter configuration ${dest}: the file exists and vger config never ` +
          "overwrites (remove it or give another --dest)",
        { cause: err },
      );
    }
    throw new UsageError(
      `Cannot write the starter configuration ${dest}: ${errorMessage(err)}`,
      { cause: err },
    );
  }
}
