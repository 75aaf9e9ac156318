/**
 * User and group names for display and for restoring ownership by name, read from `/etc/passwd`
 * and `/etc/group`. Only these files are consulted, not NSS (LDAP, sssd): an id they do not
 * list has no name.
 *
 * @example Name the owner of a file
 * ```ts ignore
 * import { Owners } from "./owners.ts";
 *
 * const owners = await Owners.load();
 * console.log(owners.userName(0)); // "root"
 * ```
 *
 * @module
 */

/** Where {@linkcode Owners.load} reads from unless told otherwise. */
export interface OwnersOptions {
  /** The passwd file; `/etc/passwd` by default. */
  passwdPath?: string;
  /** The group file; `/etc/group` by default. */
  groupPath?: string;
}

/** An id table both ways; each map keeps the first entry, as getpwuid and getpwnam do. */
interface Table {
  byId: Map<number, string>;
  byName: Map<string, number>;
}

/** Names of users and groups, loaded once from the passwd and group files. */
export class Owners {
  #users: Table;
  #groups: Table;

  private constructor(users: Table, groups: Table) {
    this.#users = users;
    this.#groups = groups;
  }

  /** Reads both files; a missing, unreadable or malformed file or line just leaves names out. */
  static async load(options: OwnersOptions = {}): Promise<Owners> {
    const [passwd, group] = await Promise.all([
      readOrEmpty(options.passwdPath ?? "/etc/passwd"),
      readOrEmpty(options.groupPath ?? "/etc/group"),
    ]);
    return new Owners(parseTable(passwd), parseTable(group));
  }

  /** The name of user `uid`, or undefined when unknown. */
  userName(uid: number): string | undefined {
    return this.#users.byId.get(uid);
  }

  /** The name of group `gid`, or undefined when unknown. */
  groupName(gid: number): string | undefined {
    return this.#groups.byId.get(gid);
  }

  /** The uid of user `name`, or undefined when unknown. */
  uid(name: string): number | undefined {
    return this.#users.byName.get(name);
  }

  /** The gid of group `name`, or undefined when unknown. */
  gid(name: string): number | undefined {
    return this.#groups.byName.get(name);
  }
}

async function readOrEmpty(path: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch {
    // Absent (containers), unreadable, or no --allow-read: names are only a nicety.
    return "";
  }
}

const ID = /^\d{1,10}$/;

/** Parses `name:password:id:...` lines (passwd and group share the first three fields). */
function parseTable(text: string): Table {
  const table: Table = { byId: new Map(), byName: new Map() };
  for (const raw of text.split("\n")) {
    const line = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
    if (line === "" || line.startsWith("#")) continue;
    const fields = line.split(":");
    if (fields.length < 3) continue;
    const [name, , idText] = fields;
    // "+"/"-" lines are NIS compat markers, not accounts.
    if (name === "" || name.startsWith("+") || name.startsWith("-") || /\s/.test(name)) continue;
    if (!ID.test(idText)) continue;
    const id = Number(idText);
    if (id > 0xfffffffe) continue; // (uid_t)-1 means "no id"
    if (!table.byId.has(id)) table.byId.set(id, name);
    if (!table.byName.has(name)) table.byName.set(name, id);
  }
  return table;
}
