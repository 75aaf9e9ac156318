/**
 * The local backend's file operations: durable writes (a temp file fsynced, then renamed), the
 * directories made and synced on the way, the modes of what it creates, and file-system errors
 * named for its messages.
 *
 * @module
 */

import { dirname } from "node:path";
import { BackendError, errorMessage } from "../lib/errors.ts";
import { bodyPieces, type PutBody } from "./backend.ts";

/** Permission bits of the files and directories a backend creates. */
export interface Modes {
  file: number;
  dir: number;
}

/**
 * Files 0600 in directories 0700, whatever the umask, as restic and borg make them; when the
 * owner has given the root directory group bits, new files and directories get the same group
 * bits (read and write for files, all three for directories). A missing root is created 0700.
 */
export async function modesOf(root: string): Promise<Modes> {
  let group = 0;
  try {
    group = ((await Deno.stat(root)).mode ?? 0) & 0o070;
  } catch (err) {
    if (!isAbsent(err)) throw err;
  }
  return modesFor(group);
}

/** {@linkcode modesOf}, synchronously. */
export function modesOfSync(root: string): Modes {
  let group = 0;
  try {
    group = (Deno.statSync(root).mode ?? 0) & 0o070;
  } catch (err) {
    if (!isAbsent(err)) throw err;
  }
  return modesFor(group);
}

/** Files and directories as private as the root's group bits allow. */
export function modesFor(group: number): Modes {
  return { file: 0o600 | (group & 0o060), dir: 0o700 | group };
}

/** Writes `body` to the new fsynced file `temp` (mode `modes.file`) beside `path`. */
export async function writeTemp(
  temp: string,
  path: string,
  body: PutBody,
  modes: Modes,
): Promise<void> {
  const dir = dirname(temp);
  let file: Deno.FsFile | undefined;
  try {
    try {
      file = await Deno.open(temp, { write: true, createNew: true, mode: modes.file });
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
      await ensureDir(dir, path, modes.dir);
      file = await Deno.open(temp, { write: true, createNew: true, mode: modes.file });
    }
    // the umask may have cleared bits of the mode asked for: set it exactly
    if (Deno.build.os !== "windows") await Deno.chmod(temp, modes.file);
    for await (const part of bodyPieces(body)) {
      // synchronous: an async write costs a copy through a fresh buffer (measured 2x slower
      // and more memory); writing to the page cache blocks for milliseconds
      for (let at = 0; at < part.length;) at += file.writeSync(part.subarray(at));
    }
    await file.sync();
    const done = file;
    file = undefined;
    done.close();
  } catch (err) {
    file?.close();
    await removeQuietly(temp);
    throw err instanceof BackendError ? err : fail("write", path, err);
  }
}

/**
 * Creates `dir` (mode `mode`, whatever the umask) and any missing parents, fsyncing each parent
 * that gained an entry.
 */
export async function ensureDir(dir: string, path: string, mode: number): Promise<void> {
  try {
    await Deno.mkdir(dir, { mode });
    if (Deno.build.os !== "windows") await Deno.chmod(dir, mode);
  } catch (err) {
    if (err instanceof Deno.errors.AlreadyExists) return; // Maybe a concurrent writer made it.
    const parent = dirname(dir);
    if (!(err instanceof Deno.errors.NotFound) || parent === dir) throw fail("write", path, err);
    await ensureDir(parent, path, mode);
    return await ensureDir(dir, path, mode);
  }
  await syncDir(dirname(dir), path);
}

/** Makes a directory's entries durable; file systems that cannot fsync a directory are let be. */
export async function syncDir(dir: string, path: string): Promise<void> {
  if (Deno.build.os === "windows") return;
  let handle: Deno.FsFile | undefined;
  try {
    handle = await Deno.open(dir, { read: true });
    await handle.sync();
  } catch (err) {
    const code = errorCode(err);
    if (code === "EINVAL" || code === "ENOTSUP" || code === "EOPNOTSUPP") return;
    throw fail("write", path, err);
  } finally {
    handle?.close();
  }
}

export async function lstatOrNull(path: string): Promise<Deno.FileInfo | null> {
  try {
    return await Deno.lstat(path);
  } catch (err) {
    if (isAbsent(err)) return null;
    throw fail("list", path, err);
  }
}

export async function removeQuietly(path: string): Promise<void> {
  try {
    await Deno.remove(path);
  } catch {
    // Best effort: the caller is already reporting the real failure.
  }
}

/** {@linkcode removeQuietly}, synchronously (for a staged object dropped on a failed write). */
export function removeQuietlySync(path: string): void {
  try {
    Deno.removeSync(path);
  } catch {
    // Best effort: the caller is already reporting the real failure.
  }
}

/** True for errors that mean "no such object": the file or one of its parents is missing. */
export function isAbsent(err: unknown): boolean {
  return err instanceof Deno.errors.NotFound || err instanceof Deno.errors.NotADirectory;
}

export function fail(verb: string, path: string, err: unknown): BackendError {
  return new BackendError(`Cannot ${verb} "${path}": ${reason(err)}`, { cause: err });
}

/** Linux and macOS errno values, for errors that carry only "(os error N)". */
export const ERRNO_NAMES: Record<number, string> = {
  1: "EPERM",
  13: "EACCES",
  27: "EFBIG",
  28: "ENOSPC",
  30: "EROFS",
  ...(Deno.build.os === "darwin" ? { 69: "EDQUOT" } : { 122: "EDQUOT" }),
};

/** Windows system error codes that mean the same. */
export const WINDOWS_ERROR_NAMES: Record<number, string> = {
  5: "EACCES",
  39: "ENOSPC",
  112: "ENOSPC",
  19: "EROFS",
};

export const REASONS: Record<string, string> = {
  ENOSPC: "disk full",
  EACCES: "permission denied",
  EPERM: "permission denied",
  EDQUOT: "quota exceeded",
  EFBIG: "file too large",
  EROFS: "read-only file system",
};

/** The cause of a file system error in plain words. */
export function reason(err: unknown): string {
  // Its message already says which --allow flag is missing.
  if (err instanceof Deno.errors.NotCapable) return errorMessage(err);
  const named = REASONS[errorCode(err) ?? ""];
  if (named !== undefined) return named;
  if (err instanceof Deno.errors.PermissionDenied) return "permission denied";
  // "No such file or directory (os error 2): open '/x'" -> "no such file or directory".
  const message = errorMessage(err).replace(/\s*\(os error \d+\).*$/s, "");
  return message.charAt(0).toLowerCase() + message.slice(1);
}

/** The errno name of an error, from its `code` or from the "(os error N)" in its message. */
export function errorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === "string" && code !== "") return code;
  const match = /\(os error (\d+)\)/.exec(errorMessage(err));
  if (match === null) return undefined;
  const table = Deno.build.os === "windows" ? WINDOWS_ERROR_NAMES : ERRNO_NAMES;
  return table[Number(match[1])];
}

export function randomHex(bytes: number): string {
  const buf = crypto.getRandomValues(new Uint8Array(bytes));
  return Array.from(buf, (b) => b.toString(16).padStart(2, "0")).join("");
}
