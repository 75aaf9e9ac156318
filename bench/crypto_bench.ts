/**
 * Throughput of OpenSSL through FFI (lib/native_crypto.ts) against Web Crypto:
 * `deno run --allow-ffi --allow-env --allow-read --allow-write bench/crypto_bench.ts`.
 *
 * Prints MB/s (10^6 bytes per second) and calls per second on one thread, for 2 MiB blocks
 * (native sealed and opened in place; Web Crypto returns a fresh buffer per call) and for 4 KiB
 * blocks, where the per-call overhead shows; then the native seal rate of two Workers at once.
 * Each case reports the best of several short trials, which filters out noise from other
 * processes on a shared machine.
 *
 * Environment: BENCH_SECONDS (time per case, default 1.5).
 *
 * @module
 */

import { nativeCrypto } from "../lib/native_crypto.ts";

const seconds = Number(Deno.env.get("BENCH_SECONDS") ?? 1.5);
const TRIALS = 5;
const MiB = 1024 * 1024;
const nc = nativeCrypto();
if (!nc) {
  console.error("nativeCrypto() is null: run with --allow-ffi on Linux with libcrypto.so.3");
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

/** Calls per second of `fn`: the best of TRIALS trials, after a short warm-up. */
async function rate(fn: () => unknown): Promise<number> {
  const warmUntil = performance.now() + 100;
  while (performance.now() < warmUntil) await fn();
  let best = 0;
  for (let t = 0; t < TRIALS; t++) {
    let calls = 0;
    const start = performance.now();
    const end = start + (seconds * 1000) / TRIALS;
    let now = start;
    while (now < end) {
      await fn();
      calls++;
      now = performance.now();
    }
    best = Math.max(best, calls / ((now - start) / 1000));
  }
  return best;
}

function print(label: string, size: number, perSecond: number): void {
  const mbps = ((perSecond * size) / 1e6).toFixed(0).padStart(6);
  console.log(`${label.padEnd(46)} ${mbps} MB/s ${perSecond.toFixed(0).padStart(9)} calls/s`);
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
const aad = randomBytes(33); // type byte + 32-byte chunk id, as vger's envelopes use
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

for (const size of [2 * MiB, 4096]) {
  console.log(`-- ${size >= MiB ? `${size / MiB} MiB` : `${size / 1024} KiB`} blocks, one thread`);
  const plain = randomBytes(size);
  const work = new Uint8Array(size + 16);
  work.set(plain);
  const body = work.subarray(0, size);
  const seal = await report("native aesGcmSeal, in place", size, () => {
    nc.aesGcmSeal(keyBytes, nonce, aad, body, work); // re-encrypts last round's output
  });
  // An in-place open consumes its input, so time seal+open pairs and take away the seal time.
  work.set(plain);
  const pair = await rate(() => {
    nc.aesGcmSeal(keyBytes, nonce, aad, body, work);
    if (nc.aesGcmOpen(keyBytes, nonce, aad, work, work) !== size) throw new Error("open failed");
  });
  print("native aesGcmOpen, in place (pair - seal)", size, 1 / (1 / pair - 1 / seal));
  const sealed = new Uint8Array(size + 16);
  nc.aesGcmSeal(keyBytes, nonce, aad, plain, sealed);
  const scratch = new Uint8Array(size + 16);
  await report("native aesGcmSeal, into another buffer", size, () => {
    nc.aesGcmSeal(keyBytes, nonce, aad, plain, scratch);
  });
  await report("native aesGcmOpen, into another buffer", size, () => {
    if (nc.aesGcmOpen(keyBytes, nonce, aad, sealed, scratch) !== size) throw new Error("open");
  });
  await report(
    "Web Crypto AES-GCM encrypt",
    size,
    () => crypto.subtle.encrypt({ name: "AES-GCM", iv: nonce, additionalData: aad }, aesKey, plain),
  );
  await report(
    "Web Crypto AES-GCM decrypt",
    size,
    () =>
      crypto.subtle.decrypt({ name: "AES-GCM", iv: nonce, additionalData: aad }, aesKey, sealed),
  );
  await report("native hmacSha256", size, () => nc.hmacSha256(macKeyBytes, plain));
  await report(
    "Web Crypto HMAC sign (key imported once)",
    size,
    () => crypto.subtle.sign("HMAC", macKey, plain),
  );
  await report("native sha256", size, () => nc.sha256(plain));
  await report("Web Crypto SHA-256 digest", size, () => crypto.subtle.digest("SHA-256", plain));
}

// Two Workers, each with its own OpenSSL handle and context, sealing 2 MiB blocks in place.
const dir = await Deno.makeTempDir({ prefix: "vger_crypto_bench_" });
try {
  const workerFile = `${dir}/seal_worker.js`;
  const moduleUrl = new URL("../lib/native_crypto.ts", import.meta.url).href;
  await Deno.writeTextFile(
    workerFile,
    `import { nativeCrypto } from ${JSON.stringify(moduleUrl)};
const nc = nativeCrypto();
self.postMessage("ready");
self.onmessage = (e) => {
  const { key, nonce, aad, size, ms } = e.data;
  const work = new Uint8Array(size + 16);
  crypto.getRandomValues(work.subarray(0, 65536));
  const body = work.subarray(0, size);
  const start = performance.now();
  let calls = 0;
  while (performance.now() - start < ms) { nc.aesGcmSeal(key, nonce, aad, body, work); calls++; }
  self.postMessage(calls / ((performance.now() - start) / 1000));
};
`,
  );
  const workers = [0, 1].map(() => new Worker(`file://${workerFile}`, { type: "module" }));
  const next = (w: Worker): Promise<unknown> =>
    new Promise((resolve) => w.onmessage = (e) => resolve(e.data));
  await Promise.all(workers.map(next));
  const job = { key: keyBytes, nonce, aad, size: 2 * MiB, ms: seconds * 1000 };
  const rates = await Promise.all(workers.map((w) => {
    const reply = next(w);
    w.postMessage(job);
    return reply as Promise<number>;
  }));
  for (const w of workers) w.terminate();
  console.log("-- 2 MiB blocks, two Workers at once");
  rates.forEach((r, i) => print(`native aesGcmSeal, in place, Worker ${i + 1}`, 2 * MiB, r));
  print("native aesGcmSeal, in place, both Workers", 2 * MiB, rates[0] + rates[1]);
} finally {
  await Deno.remove(dir, { recursive: true });
}
