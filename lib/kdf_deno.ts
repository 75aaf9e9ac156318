/**
 * Argon2id for Deno, so that the key derivation (64 MiB by default) costs the rest of the run
 * neither time nor memory: libargon2 (`libargon2.so.1`, the reference C library, multi-threaded
 * over the lanes) through FFI when `--allow-ffi` is granted and the library is installed, called
 * `nonblocking` so that the main thread goes on meanwhile, its memory freed when it returns; else
 * hash-wasm in a Worker of its own (lib/kdf_worker.ts), ended as soon as the key is derived, so
 * that its WebAssembly memory goes back to the system before the command's heavy work starts.
 * All give the bytes hash-wasm gives in this thread (lib/platform.ts's portable one).
 *
 * libargon2's memory is mapped here (lib/native_memory.ts), backed by huge pages when the kernel
 * gives them: with malloc's 4 KiB pages, faulting in and walking 64 MiB was half the derivation
 * (230 -> 110 ms on a 2-core VM, every command that opens a repository). libargon2 asks for it
 * through a callback, which runs on this thread while the derivation waits. Callbacks need FFI
 * granted without a path: under the launcher's grant by library path, libargon2 mallocs its
 * memory as before.
 *
 * @module
 */

import { VgerError } from "./errors.ts";
import { LIBARGON2, openLibrary } from "./native_library.ts";
import { mapHuge, type Mapping } from "./native_memory.ts";
import type { Argon2Params } from "./platform.ts";

const SYMBOLS = {
  // int argon2id_hash_raw(t_cost, m_cost, parallelism, pwd, pwdlen, salt, saltlen, hash, hashlen)
  argon2id_hash_raw: {
    parameters: ["u32", "u32", "u32", "buffer", "usize", "buffer", "usize", "buffer", "usize"],
    result: "i32",
    nonblocking: true,
  },
  // int argon2_ctx(argon2_context *context, argon2_type type)
  argon2_ctx: { parameters: ["buffer", "i32"], result: "i32", nonblocking: true },
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
  const key = await argon2idMapped(password, salt, params) ??
    await argon2idLibrary(password, salt, params);
  // null: no libargon2, or it refused (ARGON2_MEMORY_ALLOCATION_ERROR, ARGON2_THREAD_FAIL and the
  // like): the Worker derives the same key, or says why it cannot
  return key ?? await argon2idInWorker(password, salt, params);
}

/** libargon2 with its own (malloc'd) memory; null without the library or when it fails. */
export async function argon2idLibrary(
  password: Uint8Array,
  salt: Uint8Array,
  params: Argon2Params,
): Promise<Uint8Array | null> {
  const lib = argon2Library();
  if (lib === null) return null;
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
  return rc === 0 ? out : null;
}

const ARGON2_OK = 0;
const ARGON2_MEMORY_ALLOCATION_ERROR = -22;
const ARGON2_ID = 2;
const ARGON2_VERSION_13 = 0x13;

/**
 * libargon2 over memory mapped here with huge pages asked for (see the module doc); null without
 * libargon2 or libc, with FFI granted only by library path (the launcher's), or when it fails.
 */
export async function argon2idMapped(
  password: Uint8Array,
  salt: Uint8Array,
  params: Argon2Params,
): Promise<Uint8Array | null> {
  const lib = argon2Library();
  // callbacks and raw pointers need FFI unscoped (the launcher grants it by library path)
  if (lib === null || Deno.permissions.querySync({ name: "ffi" }).state !== "granted") return null;
  const mappings = new Map<bigint, Mapping>();
  // int allocate(uint8_t **memory, size_t bytes)
  const allocate = Deno.UnsafeCallback.threadSafe(
    { parameters: ["pointer", "usize"], result: "i32" } as const,
    (memory: Deno.PointerValue, bytes: number | bigint) => {
      const mapping = memory === null ? null : mapHuge(bytes);
      if (mapping === null) return ARGON2_MEMORY_ALLOCATION_ERROR;
      mappings.set(mapping.address, mapping);
      new BigUint64Array(Deno.UnsafePointerView.getArrayBuffer(memory!, 8))[0] = mapping.address;
      return ARGON2_OK;
    },
  );
  // void deallocate(uint8_t *memory, size_t bytes), after libargon2 has wiped it
  const deallocate = Deno.UnsafeCallback.threadSafe(
    { parameters: ["pointer", "usize"], result: "void" } as const,
    (memory: Deno.PointerValue) => {
      const at = BigInt(Deno.UnsafePointer.value(memory));
      mappings.get(at)?.unmap();
      mappings.delete(at);
    },
  );
  const out = new Uint8Array(32);
  const address = (p: Deno.PointerValue) => BigInt(Deno.UnsafePointer.value(p));
  const bytesAt = (b: Uint8Array) => address(Deno.UnsafePointer.of(b as Uint8Array<ArrayBuffer>));
  // argon2_context (argon2.h, x86-64 and aarch64 LP64): pointers at 8-byte offsets, lengths u32
  const context = new Uint8Array(120);
  const view = new DataView(context.buffer);
  view.setBigUint64(0, bytesAt(out), true);
  view.setUint32(8, out.length, true);
  view.setBigUint64(16, bytesAt(password), true);
  view.setUint32(24, password.length, true);
  view.setBigUint64(32, bytesAt(salt), true);
  view.setUint32(40, salt.length, true);
  // secret and associated data (48-72) stay empty
  view.setUint32(76, params.iterations, true);
  view.setUint32(80, params.memoryKiB, true);
  view.setUint32(84, params.parallelism, true); // lanes
  view.setUint32(88, params.parallelism, true); // threads
  view.setUint32(92, ARGON2_VERSION_13, true);
  view.setBigUint64(96, address(allocate.pointer), true);
  view.setBigUint64(104, address(deallocate.pointer), true);
  // flags (112) 0: libargon2 wipes its memory before handing it back, and leaves the inputs
  try {
    // the buffers the context points into stay referenced (and their memory in place) meanwhile
    const rc = await lib.symbols.argon2_ctx(context, ARGON2_ID);
    return rc === ARGON2_OK ? out : null;
  } finally {
    allocate.close();
    deallocate.close();
    for (const mapping of mappings.values()) mapping.unmap();
  }
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
