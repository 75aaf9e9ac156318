/**
 * vger-server's roles (docs/SERVER.md, "Tokens and roles"): the tokens a server accepts, the
 * repositories each one sees (names and `*` globs) and the role it holds there, `read-only`,
 * `append-only` or `full`; the role each request needs; and the one-line refusals that name the
 * role needed. Pure: no I/O. The `[server]` token is role `full` on every repository.
 *
 * @example
 * ```ts
 * import { TokenTable } from "./server_roles.ts";
 *
 * const table = new TokenTable(undefined, [
 *   { name: "tokens[0]", token: "laptop-secret", repos: ["laptop", "nas-*"], role: "append-only" },
 * ]);
 * const access = table.lookup("Bearer laptop-secret");
 * console.log(access?.role, access?.sees("nas-1"), access?.sees("desktop")); // append-only true false
 * ```
 *
 * @module
 */

import { createHash, timingSafeEqual } from "node:crypto";
import { HttpError } from "./server_request.ts";

/** What a token may do on its repositories, weakest first. */
export type Role = "read-only" | "append-only" | "full";

/** The roles, weakest first. */
export const ROLES: readonly Role[] = ["read-only", "append-only", "full"];

/** One `[[tokens]]` entry of the configuration. */
export interface TokenGrant {
  /** `tokens[i]`, for messages (never the token). */
  readonly name: string;
  /** The token; absent until `token_command` has run. */
  readonly token?: string;
  /** The command that prints the token (run once when the server starts). */
  readonly tokenCommand?: string;
  /** Repository names and `*` globs (`nas-*`) this token sees. */
  readonly repos: readonly string[];
  /** What it may do there. */
  readonly role: Role;
}

/** What one request's token may do. */
export interface Access {
  /** Its role on the repositories it sees. */
  readonly role: Role;
  /** A stable id of the token (a hash, never the token), for the locks a read-only token owns. */
  readonly id: string;
  /** Whether it sees repository `repo` (others are unknown to it: 404). */
  sees(repo: string): boolean;
}

/** A repository name pattern: a name of docs/SERVER.md's rules in which `*` matches any run. */
const PATTERN = /^(?!\.)[A-Za-z0-9._*-]{1,64}$/;

/** Whether `pattern` is a valid entry of a token's `repos`. */
export function isRepoPattern(pattern: string): boolean {
  return PATTERN.test(pattern);
}

/** Whether repository `repo` matches one of `patterns` (`*` matches any run of characters). */
export function repoMatches(patterns: readonly string[], repo: string): boolean {
  return patterns.some((p) => {
    const re = new RegExp(
      `^${p.split("*").map((s) => s.replace(/[.]/g, "\\.")).join("[A-Za-z0-9._-]*")}$`,
    );
    return re.test(repo);
  });
}

/** Whether `role` is at least `needed`. */
export function roleAllows(role: Role, needed: Role): boolean {
  return ROLES.indexOf(role) >= ROLES.indexOf(needed);
}

/** "append-only or full" for `append-only`: the roles that would do. */
export function rolesFrom(needed: Role): string {
  return ROLES.slice(ROLES.indexOf(needed)).join(" or ");
}

/**
 * The 403 of a request that needs role `needed` from a token of role `role`: `Repository
 * "laptop": "packs/ab/ab01..." cannot be written: needs role append-only or full; this token is
 * read-only`.
 */
export function roleRefusal(repo: string, what: string, needed: Role, role: Role): HttpError {
  return new HttpError(
    403,
    `Repository "${repo}": ${what}: needs role ${rolesFrom(needed)}; this token is ${role}`,
  );
}

/** The tokens of a server, looked up in constant time (neither a token nor its length leaks). */
export class TokenTable {
  readonly #entries: { digest: Uint8Array; access: Access }[] = [];
  /** Every token, for masking in logs. */
  readonly tokens: readonly string[];

  /**
   * A table of the `[server]` token (role full on every repository) and of `grants`, whose
   * `token_command`s must have run (a grant without its token is a UsageError-worthy bug).
   */
  constructor(serverToken: string | undefined, grants: readonly TokenGrant[]) {
    const tokens: string[] = [];
    const add = (token: string, role: Role, sees: (repo: string) => boolean) => {
      tokens.push(token);
      this.#entries.push({
        digest: digest(token),
        access: { role, id: tokenId(token), sees },
      });
    };
    if (serverToken !== undefined) add(serverToken, "full", () => true);
    for (const grant of grants) {
      if (grant.token === undefined) {
        throw new Error(`The token_command of ${grant.name} has not run`);
      }
      const repos = grant.repos;
      add(grant.token, grant.role, (repo) => repoMatches(repos, repo));
    }
    this.tokens = tokens;
  }

  /** The access of the token an `Authorization` header carries, or null (401). */
  lookup(header: string | null): Access | null {
    const m = /^Bearer ([^\s]+)\s*$/i.exec(header ?? "");
    const given = digest(m ? m[1] : "\0no token");
    let found: Access | null = null;
    // every entry is compared, so the time does not tell which matched
    for (const entry of this.#entries) {
      if (timingSafeEqual(given, entry.digest) && m !== null) found = entry.access;
    }
    return found;
  }
}

function digest(text: string): Uint8Array {
  return createHash("sha256").update(text).digest();
}

/** A token's stable id: 32 hex of a labelled SHA-256 (a token is long and random; never shown). */
export function tokenId(token: string): string {
  return createHash("sha256").update(`vger-server token id\n${token}`).digest("hex").slice(0, 32);
}
