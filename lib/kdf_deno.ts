/**
 * Argon2id for Deno, so that the key derivation (64 MiB by default) costs the rest of the run
 * neither time nor memory: libargon2 (`libargon2.so.1`, the reference C library, multi-threaded
 * over the lanes) through FFI when `--allow-ffi` is granted and the library is installed, called
 * `nonblocking` so that the main thread goes on meanwhile, its memory freed when it returns; else
 * hash-wasm in a Worker of its own (lib/kdf_worker.ts), ended as soon as the key is derived, so
 * that its WebAssembly memory goes back to the system before the command's heavy work starts.
 * Both give the bytes hash-wasm gives in this thread (lib/platform.ts's portable one).
 *
 * @module
 */

import { VgerError } from "./errors.ts";
import { LIBARGON2, openLibrary } from "./native_library.ts";
import type { Argon2Params } from "./platform.ts";

const SYMBOLS = {
  // int argon2id_hash_raw(t_cost, m_cost, parallelism, pwd, pwdlen, salt, saltlen, hash, hashlen)
  argon2id_hash_raw: {
    parameters: ["u32", "u32", "u32", "buffer", "usize", "buffer", "usize", "buffer", "usize"],
    result: "i32",
    nonblocking: true,
  },
} as const;

type Argon2Library = Deno.DynamicLibrary<typeof SYMBOLS>;

let library: Argon2Library | null | undefined;

/** libargon2, or null without `--allow-ffi` or without the library (then the Worker). */
function argon2Library(): Argon2Library | null {
  if (library !== undefined) return library;
  // not granted or not installed: the Worker's WebAssembly does the same
  library = openLibrary(LIBARGON2, SYMBOLS);
  return library;
}

/** Argon2id of `password` and `salt` (32 bytes), off the main thread; see the module doc. */
export async function argon2idDeno(
  password: Uint8Array,
  salt: Uint8Array,
  params: Argon2Params,
): Promise<Uint8Array> {
  const lib = argon2Library();
  if (lib === null) return await argon2idInWorker(password, salt, params);
  const out = new Uint8Array(32);
  const rc = await lib.symbols.argon2id_hash_raw(
    params.iterations,
    params.memoryKiB,
    params.parallelism,
    password,
    BigInt(password.length),
    salt,
    BigInt(salt.length),
    out,
    BigInt(out.length),
  );
  // ARGON2_MEMORY_ALLOCATION_ERROR (-22), ARGON2_THREAD_FAIL (-33) and the like: the Worker
  // derives the same key, or says why it cannot
  if (rc !== 0) return await argon2idInWorker(password, salt, params);
  return out;
}

/** What lib/kdf_worker.ts is sent. */
export interface KdfRequest {
  /** The passphrase, UTF-8. */
  password: Uint8Array;
  /** The salt. */
  salt: Uint8Array;
  /** The costs. */
  params: Argon2Params;
}

/** What lib/kdf_worker.ts answers: the key, or why not. */
export type KdfReply = { key: Uint8Array } | { error: string };

/**
 * Runs hash-wasm's Argon2id in a Worker that is ended (its memory freed) once it answers: what
 * {@linkcode argon2idDeno} does without libargon2.
 */
export function argon2idInWorker(
  password: Uint8Array,
  salt: Uint8Array,
  params: Argon2Params,
): Promise<Uint8Array> {
  const worker = new Worker(new URL("./kdf_worker.ts", import.meta.url).href, { type: "module" });
  const { promise, resolve, reject } = Promise.withResolvers<Uint8Array>();
  worker.onmessage = (e: MessageEvent<KdfReply>) => {
    const r = e.data;
    if ("key" in r) resolve(r.key);
    else reject(new VgerError("internal", `Key derivation failed: ${r.error}`));
  };
  worker.onerror = (e) => {
    e.preventDefault();
    reject(new VgerError("internal", `Key derivation failed: ${e.message}`));
  };
  worker.postMessage({ password, salt, params } satisfies KdfRequest);
  return promise.finally(() => worker.terminate());
}
