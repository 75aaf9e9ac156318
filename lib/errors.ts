/**
 * The one error hierarchy of vger. Every error that reaches the user is a {@linkcode VgerError}
 * with a stable `code`; cli.ts maps codes to exit codes.
 *
 * Messages are sentence case, name the thing and the reason, and have no trailing period:
 * `Cannot open repository "/mnt/repo": config not found`.
 *
 * @module
 */

/** Base class of every error vger reports on purpose. */
export class VgerError extends Error {
  /** Stable machine-readable code, used in `--json` output. */
  readonly code: string;
  /** Creates an error with a stable code. */
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** Bad command line or bad configuration (exit code 2). */
export class UsageError extends VgerError {
  /** Creates a usage error. */
  constructor(message: string, options?: ErrorOptions) {
    super("usage", message, options);
  }
}

/** A repository, archive, object or file that does not exist. */
export class NotFoundError extends VgerError {
  /** Creates a not-found error. */
  constructor(message: string, options?: ErrorOptions) {
    super("not_found", message, options);
  }
}

/** Something that exists and should not (an existing repository, archive name, file). */
export class AlreadyExistsError extends VgerError {
  /** Creates an already-exists error. */
  constructor(message: string, options?: ErrorOptions) {
    super("already_exists", message, options);
  }
}

/** Stored bytes that are corrupt, truncated, tampered with or malformed. */
export class IntegrityError extends VgerError {
  /** Creates an integrity error. */
  constructor(message: string, options?: ErrorOptions) {
    super("integrity", message, options);
  }
}

/** The key file cannot be opened with the given passphrase. */
export class DecryptionError extends VgerError {
  /** Creates a decryption error. */
  constructor(message: string, options?: ErrorOptions) {
    super("decryption", message, options);
  }
}

/** The repository is locked by another process. */
export class LockedError extends VgerError {
  /** Creates a locked error. */
  constructor(message: string, options?: ErrorOptions) {
    super("locked", message, options);
  }
}

/** A storage quota would be exceeded. */
export class QuotaError extends VgerError {
  /** Creates a quota error. */
  constructor(message: string, options?: ErrorOptions) {
    super("quota", message, options);
  }
}

/**
 * The storage refused an operation by policy: a vger-server in append-only mode refuses deletes
 * and overwrites (HTTP 403), and the commands that would need them refuse up front with it.
 */
export class ForbiddenError extends VgerError {
  /** Creates a forbidden error. */
  constructor(message: string, options?: ErrorOptions) {
    super("forbidden", message, options);
  }
}

/** A storage backend failed (I/O error, disk full, network). */
export class BackendError extends VgerError {
  /** Creates a backend error. */
  constructor(message: string, options?: ErrorOptions) {
    super("backend", message, options);
  }
}

/**
 * A backend failure that may pass if the request is sent again: an HTTP 5xx, throttling (503
 * SlowDown, 429), a dropped or reset connection, a timeout. Backends throw it for exactly these;
 * backends/retry.ts retries only it. Its `code` is `backend`, like any backend failure.
 */
export class TransientError extends BackendError {
  /** Creates a transient backend error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
  }
}

/**
 * Stored data of a format this version of vger does not know (an item type a newer vger wrote).
 * Not damage: check reports it and stops, repair and compact never remove what it names.
 */
export class UnsupportedError extends VgerError {
  /** Creates an unsupported-format error. */
  constructor(message: string, options?: ErrorOptions) {
    super("unsupported", message, options);
  }
}

/**
 * The operation was interrupted: by a signal in the CLI (exit code 130), or by the
 * `AbortSignal` a library caller passed (`signal`, {@linkcode Abortable}). Nothing it had not
 * committed yet is committed; the repository stays valid.
 */
export class InterruptedError extends VgerError {
  /** Creates an interrupted error. */
  constructor(message: string, options?: ErrorOptions) {
    super("interrupted", message, options);
  }
}

/** Options of an operation that an `AbortSignal` can stop. */
export interface Abortable {
  /**
   * Stops the operation soon after it is aborted (between files, blobs or packs): its promise
   * rejects with an {@linkcode InterruptedError} whose `cause` is the signal's reason, and what
   * it had not committed stays uncommitted.
   */
  signal?: AbortSignal;
}

/** Throws an {@linkcode InterruptedError} naming `what` (e.g. "Backup") once `signal` is aborted. */
export function throwIfAborted(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw abortedError(signal, what);
}

/** The {@linkcode InterruptedError} of an aborted `signal`; its reason is the cause. */
export function abortedError(signal: AbortSignal, what: string): InterruptedError {
  return new InterruptedError(`${what} aborted: ${errorMessage(signal.reason)}`, {
    cause: signal.reason,
  });
}

/**
 * Calls `onAbort` with the {@linkcode abortedError} once `signal` is aborted (at once when it
 * already is); returns the function that stops listening.
 */
export function whenAborted(
  signal: AbortSignal | undefined,
  what: string,
  onAbort: (err: InterruptedError) => void,
): () => void {
  if (signal === undefined) return () => {};
  const listener = () => onAbort(abortedError(signal, what));
  if (signal.aborted) {
    listener();
    return () => {};
  }
  signal.addEventListener("abort", listener, { once: true });
  return () => signal.removeEventListener("abort", listener);
}

/** Returns the message of any thrown value, for one-line error reports. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Whether an error means stored data is gone or damaged, not a failing backend or network: an
 * IntegrityError or NotFoundError whose cause (readBlob wraps any backend failure in an
 * IntegrityError) is not another kind of VgerError.
 */
export function isDamage(err: unknown): boolean {
  if (!(err instanceof IntegrityError || err instanceof NotFoundError)) return false;
  const cause = err.cause;
  return !(cause instanceof VgerError) || cause instanceof IntegrityError ||
    cause instanceof NotFoundError;
}

/**
 * The missing Deno permission behind an error, or undefined: it may hide in the cause chain
 * (storage wraps the file system's errors, lz4-napi its loader's). The command line must change,
 * so both entry points exit 2 on it.
 */
export function missingPermission(err: unknown): Deno.errors.NotCapable | undefined {
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    if (e instanceof Deno.errors.NotCapable) return e;
  }
  return undefined;
}

/** One line naming the flag to add for a missing permission. */
export function missingPermissionMessage(err: Deno.errors.NotCapable): string {
  const m = /Requires (\w+) access/.exec(err.message);
  const flag = m ? `--allow-${m[1]}` : "a permission flag";
  return `Missing Deno permission: ${err.message.split(",")[0]}; run with ${flag} (or -A)`;
}
