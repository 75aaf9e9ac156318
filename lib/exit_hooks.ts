/**
 * What must happen before the process exits, at the end of a command or on a signal: the one
 * registry of cleanups (remove a temp file in flight, release a lock, stop and join the codec
 * workers). The owner of a resource registers a hook when it takes the resource and forgets it
 * when it gives the resource back; cli.ts runs the hooks before every `Deno.exit`.
 *
 * The registry is process-wide on purpose: a process exits once, and a signal handler cannot be
 * handed the resources of the code it interrupts. Once the hooks have run, a hook registered
 * later runs at once (the process is on its way out: what it guards must not be left behind).
 *
 * @example
 * ```ts
 * import { atExit } from "./exit_hooks.ts";
 *
 * const path = await Deno.makeTempFile();
 * const forget = atExit(() => Deno.removeSync(path));
 * // ... the work; on success the file is renamed or removed, and then:
 * forget();
 * Deno.removeSync(path);
 * // cli.ts, before Deno.exit: await runExitHooks();
 * ```
 *
 * @module
 */

/** A cleanup; it may be async (awaited by {@linkcode runExitHooks} up to its timeout). */
export type ExitHook = () => unknown;

const hooks = new Set<ExitHook>();
let exiting = false;

/** Registers `hook` to run before the process exits; returns the function that forgets it. */
export function atExit(hook: ExitHook): () => void {
  if (exiting) {
    void settle(hook);
    return () => {};
  }
  hooks.add(hook);
  return () => hooks.delete(hook);
}

/**
 * Runs every registered hook (each at most once) and waits for them, at most `timeoutMs`
 * (default 5 s); a hook that throws does not stop the others.
 */
export async function runExitHooks(options: { timeoutMs?: number } = {}): Promise<void> {
  exiting = true;
  const all = [...hooks];
  hooks.clear();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<void>((r) => timer = setTimeout(r, options.timeoutMs ?? 5000));
  try {
    await Promise.race([Promise.all(all.map(settle)), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Runs a hook, swallowing its failure: cleanups at exit are best effort. */
async function settle(hook: ExitHook): Promise<void> {
  try {
    await hook();
  } catch {
    // best effort: the process is exiting and reports its own error
  }
}
