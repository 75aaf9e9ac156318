/**
 * Throughput of OpenSSL through FFI (lib/native_crypto.ts) against Web Crypto, on one thread:
 * `deno run --allow-ffi --allow-env bench/crypto_bench.ts`. Prints MB/s (10^6 bytes per second) for 2 MiB
 * blocks (native sealed and opened in place; Web Crypto returns a fresh buffer per call), then
 * calls per second for 4 KiB blocks, where the per-call overhead shows.
 *
 * Environment: BENCH_SECONDS (time per case, default 1.5).
 *
 * @module
 */

import { nativeCrypto } from "../lib/native_crypto.ts";

const seconds = Number(Deno.env.get("BENCH_SECONDS") ?? 1.5);
const nc = nativeCrypto();
if (!nc) {
  console.error(
    "nativeCrypto() is null: run with --allow-ffi --allow-env on Linux with libcrypto.so.3",
  );
  Deno.exit(1);
}

/** Random bytes; getRandomValues fills at most 65536 bytes per call. */
function randomBytes(size: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(size);
  for (let off = 0; off < size; off += 65536) {
    crypto.getRandomValues(out.subarray(off, Math.min(off + 65536, size)));
  }
  return out;
}

/** Runs `fn` repeatedly for `seconds` after a short warm-up; returns calls per second. */
async function rate(fn: () => unknown): Promise<number> {
  const warmUntil = performance.now() + 200;
  while (performance.now() < warmUntil) await fn();
  let calls = 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  let now = start;
  while (now < end) {
    for (let i = 0; i < 8; i++) await fn();
    calls += 8;
    now = performance.now();
  }
  return calls / ((now - start) / 1000);
}

function print(label: string, size: number, perSecond: number): void {
  const mbps = ((perSecond * size) / 1e6).toFixed(0).padStart(6);
  console.log(`${label.padEnd(44)} ${mbps} MB/s ${perSecond.toFixed(0).padStart(9)} calls/s`);
}

/** Times `fn`, prints MB/s and calls/s, returns calls per second. */
async function report(label: string, size: number, fn: () => unknown): Promise<number> {
  const perSecond = await rate(fn);
  print(label, size, perSecond);
  return perSecond;
}

const keyBytes = randomBytes(32);
const macKeyBytes = randomBytes(32);
const nonce = randomBytes(12);
const aad = randomBytes(33);
const aesKey = await crypto.subtle.importKey("raw", keyBytes, "AES-GCM", false, [
  "encrypt",
  "decrypt",
]);
const macKey = await crypto.subtle.importKey(
  "raw",
  macKeyBytes,
  { name: "HMAC", hash: "SHA-256" },
  false,
  ["sign"],
);

for (const size of [2 * 1024 * 1024, 4096]) {
  const label = size >= 1 << 20 ? `${size >> 20} MiB` : `${size >> 10} KiB`;
  console.log(`-- ${label} blocks, one thread`);
  const plain = randomBytes(size);
  // Native: one buffer with room for the tag, sealed and opened in place over and over.
  const work = new Uint8Array(size + 16);
  work.set(plain);
  const body = work.subarray(0, size);
  const seal = await report(`native aesGcmSeal, in place`, size, () => {
    nc.aesGcmSeal(keyBytes, nonce, aad, body, work); // re-encrypts last round's output
  });
  // An in-place open destroys its input, so time seal+open pairs and take away the seal time.
  work.set(plain);
  const pair = await rate(() => {
    nc.aesGcmSeal(keyBytes, nonce, aad, body, work);
    if (nc.aesGcmOpen(keyBytes, nonce, aad, work, work) !== size) throw new Error("open failed");
  });
  print(`native aesGcmOpen, in place (pair - seal)`, size, 1 / (1 / pair - 1 / seal));
  const sealed = new Uint8Array(size + 16);
  nc.aesGcmSeal(keyBytes, nonce, aad, plain, sealed);
  const scratch = new Uint8Array(size + 16);
  await report(`native aesGcmOpen, into a reused buffer`, size, () => {
    if (nc.aesGcmOpen(keyBytes, nonce, aad, sealed, scratch) !== size) throw new Error("open");
  });
  await report(
    `Web Crypto AES-GCM encrypt`,
    size,
    () => crypto.subtle.encrypt({ name: "AES-GCM", iv: nonce, additionalData: aad }, aesKey, plain),
  );
  await report(
    `Web Crypto AES-GCM decrypt`,
    size,
    () =>
      crypto.subtle.decrypt({ name: "AES-GCM", iv: nonce, additionalData: aad }, aesKey, sealed),
  );
  await report(`native hmacSha256`, size, () => nc.hmacSha256(macKeyBytes, plain));
  await report(
    `Web Crypto HMAC sign (key imported once)`,
    size,
    () => crypto.subtle.sign("HMAC", macKey, plain),
  );
  await report(`native sha256`, size, () => nc.sha256(plain));
  await report(`Web Crypto SHA-256 digest`, size, () => crypto.subtle.digest("SHA-256", plain));
}
