/**
 * Worker entry of lib/kdf_deno.ts: one Argon2id (hash-wasm's WebAssembly), answered, then the
 * worker is ended by its parent, which frees the WebAssembly memory.
 *
 * @module
 */

import { argon2idPortable } from "./platform.ts";
import type { KdfReply, KdfRequest } from "./kdf_deno.ts";

/** The worker's global scope, typed without the deno.worker lib (JSR bans that directive). */
const scope = self as unknown as {
  onmessage: ((e: MessageEvent<KdfRequest>) => void) | null;
  postMessage(message: unknown): void;
};

scope.onmessage = async (e: MessageEvent<KdfRequest>) => {
  const { password, salt, params } = e.data;
  let reply: KdfReply;
  try {
    reply = { key: await argon2idPortable(password, salt, params) };
  } catch (err) {
    reply = { error: err instanceof Error ? err.message : String(err) };
  }
  scope.postMessage(reply);
};
