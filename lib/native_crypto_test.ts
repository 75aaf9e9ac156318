import { deepStrictEqual, equal, notEqual, ok, throws } from "node:assert/strict";
import { VgerError } from "./errors.ts";
import {
  GCM_TAG_LENGTH,
  MAX_NATIVE_LENGTH,
  type NativeCrypto,
  nativeCrypto,
} from "./native_crypto.ts";

function ncOrFail(): NativeCrypto {
  const nc = nativeCrypto();
  ok(nc, "nativeCrypto() is null although the test runs with --allow-ffi on Linux");
  return nc;
}

/** Random bytes; getRandomValues fills at most 65536 bytes per call. */
function random(size: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(size);
  for (let off = 0; off < size; off += 65536) {
    crypto.getRandomValues(out.subarray(off, Math.min(off + 65536, size)));
  }
  return out;
}

const hex = (s: string): Uint8Array<ArrayBuffer> =>
  Uint8Array.from(s.match(/../g) ?? [], (h) => parseInt(h, 16));
const toHex = (b: Uint8Array): string =>
  Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
const text = (s: string): Uint8Array<ArrayBuffer> => new TextEncoder().encode(s);

const SIZES = [0, 1, 15, 16, 17, 4096, 2 * 1024 * 1024 + 3];

async function webSeal(
  key: Uint8Array<ArrayBuffer>,
  nonce: Uint8Array<ArrayBuffer>,
  aad: Uint8Array<ArrayBuffer>,
  plaintext: Uint8Array<ArrayBuffer>,
): Promise<Uint8Array> {
  const k = await crypto.subtle.importKey("raw", key, "AES-GCM", false, ["encrypt"]);
  return new Uint8Array(
    await crypto.subtle.encrypt({ name: "AES-GCM", iv: nonce, additionalData: aad }, k, plaintext),
  );
}

async function webOpen(
  key: Uint8Array<ArrayBuffer>,
  nonce: Uint8Array<ArrayBuffer>,
  aad: Uint8Array<ArrayBuffer>,
  sealed: Uint8Array<ArrayBuffer>,
): Promise<Uint8Array> {
  const k = await crypto.subtle.importKey("raw", key, "AES-GCM", false, ["decrypt"]);
  return new Uint8Array(
    await crypto.subtle.decrypt({ name: "AES-GCM", iv: nonce, additionalData: aad }, k, sealed),
  );
}

async function webHmac(key: Uint8Array<ArrayBuffer>, data: Uint8Array<ArrayBuffer>) {
  // Web Crypto rejects empty HMAC keys; callers skip that case.
  const k = await crypto.subtle.importKey("raw", key, { name: "HMAC", hash: "SHA-256" }, false, [
    "sign",
  ]);
  return new Uint8Array(await crypto.subtle.sign("HMAC", k, data));
}

Deno.test("nativeCrypto is loaded once and returns the same object", () => {
  equal(nativeCrypto(), ncOrFail());
});

Deno.test("aesGcmSeal output opens with Web Crypto, for all sizes and random keys", async () => {
  const nc = ncOrFail();
  for (const size of SIZES) {
    for (const aadLength of [0, 1, 29]) {
      const key = random(32);
      const nonce = random(12);
      const aad = random(aadLength);
      const plaintext = random(size);
      const out = new Uint8Array(size + GCM_TAG_LENGTH);
      equal(nc.aesGcmSeal(key, nonce, aad, plaintext, out), size + GCM_TAG_LENGTH);
      deepStrictEqual(await webOpen(key, nonce, aad, out), plaintext, `size ${size}`);
      // And byte-identical to what Web Crypto produces.
      deepStrictEqual(await webSeal(key, nonce, aad, plaintext), out, `size ${size}`);
    }
  }
});

Deno.test("aesGcmOpen opens Web Crypto output, for all sizes and random keys", async () => {
  const nc = ncOrFail();
  for (const size of SIZES) {
    const key = random(32);
    const nonce = random(12);
    const aad = random(size % 40);
    const plaintext = random(size);
    const sealed = new Uint8Array(await webSeal(key, nonce, aad, plaintext));
    const out = new Uint8Array(size);
    equal(nc.aesGcmOpen(key, nonce, aad, sealed, out), size, `size ${size}`);
    deepStrictEqual(out, plaintext, `size ${size}`);
  }
});

Deno.test("seal and open work in place and on views at odd offsets", () => {
  const nc = ncOrFail();
  const key = random(32);
  const nonce = random(12);
  const aad = text("chunk 42");
  for (const size of [0, 1, 17, 4096, 100_003]) {
    const plaintext = random(size);
    // A view at an odd offset inside a larger buffer, with guard bytes on both sides.
    const backing = new Uint8Array(size + GCM_TAG_LENGTH + 10).fill(0xee);
    const buf = backing.subarray(3, 3 + size + GCM_TAG_LENGTH);
    buf.set(plaintext);
    equal(nc.aesGcmSeal(key, nonce, aad, buf.subarray(0, size), buf), size + GCM_TAG_LENGTH);
    const expected = new Uint8Array(size + GCM_TAG_LENGTH);
    nc.aesGcmSeal(key, nonce, aad, plaintext, expected);
    deepStrictEqual(buf, expected, `in-place seal of ${size} bytes`);
    equal(nc.aesGcmOpen(key, nonce, aad, buf, buf), size);
    deepStrictEqual(buf.subarray(0, size), plaintext, `in-place open of ${size} bytes`);
    deepStrictEqual(backing.subarray(0, 3), new Uint8Array(3).fill(0xee));
    deepStrictEqual(backing.subarray(3 + size + GCM_TAG_LENGTH), new Uint8Array(7).fill(0xee));
  }
});

Deno.test("seal and open work on views of a SharedArrayBuffer", async () => {
  const nc = ncOrFail();
  const key = random(32);
  const nonce = random(12);
  const plaintext = random(5000);
  const shared = new Uint8Array(new SharedArrayBuffer(plaintext.length + GCM_TAG_LENGTH));
  shared.set(plaintext);
  nc.aesGcmSeal(key, nonce, new Uint8Array(0), shared.subarray(0, plaintext.length), shared);
  deepStrictEqual(await webOpen(key, nonce, new Uint8Array(0), shared.slice()), plaintext);
});

function flip12(nonce: Uint8Array): Uint8Array {
  const copy = nonce.slice();
  copy[11] ^= 0x80;
  return copy;
}

Deno.test("aesGcmOpen returns -1 for tampered ciphertext, tag, AAD, nonce, key or length", () => {
  const nc = ncOrFail();
  const key = random(32);
  const nonce = random(12);
  const aad = text("archive 7");
  for (const size of [0, 1, 4096]) {
    const sealed = new Uint8Array(size + GCM_TAG_LENGTH);
    nc.aesGcmSeal(key, nonce, aad, random(size), sealed);
    const out = new Uint8Array(size).fill(0x55);
    const flip = (at: number): Uint8Array => {
      const copy = sealed.slice();
      copy[at] ^= 0x01;
      return copy;
    };
    const cases: [string, () => number][] = [
      ["tag", () => nc.aesGcmOpen(key, nonce, aad, flip(size + 15), out)],
      ["first tag byte", () => nc.aesGcmOpen(key, nonce, aad, flip(size), out)],
      ["aad", () => nc.aesGcmOpen(key, nonce, text("archive 8"), sealed, out)],
      ["empty aad", () => nc.aesGcmOpen(key, nonce, new Uint8Array(0), sealed, out)],
      ["nonce", () => nc.aesGcmOpen(key, flip12(nonce), aad, sealed, out)],
      ["key", () => nc.aesGcmOpen(random(32), nonce, aad, sealed, out)],
      ["truncated", () => nc.aesGcmOpen(key, nonce, aad, sealed.subarray(1), out)],
      ["shorter than a tag", () => nc.aesGcmOpen(key, nonce, aad, sealed.subarray(0, 15), out)],
    ];
    if (size > 0) {
      cases.push(["ciphertext", () => nc.aesGcmOpen(key, nonce, aad, flip(0), out)]);
      cases.push([
        "last ciphertext byte",
        () => nc.aesGcmOpen(key, nonce, aad, flip(size - 1), out),
      ]);
    }
    for (const [what, open] of cases) {
      equal(open(), -1, `tampered ${what}, size ${size}`);
      // No unauthenticated plaintext is left behind.
      ok(out.every((b) => b === 0 || b === 0x55), `plaintext left after tampered ${what}`);
    }
    // The context is still usable after failures.
    equal(nc.aesGcmOpen(key, nonce, aad, sealed, out), size);
  }
});

Deno.test("AES-256-GCM matches the GCM spec test cases 13, 14 and 16", () => {
  const nc = ncOrFail();
  const zeroKey = new Uint8Array(32);
  const zeroIv = new Uint8Array(12);
  const vectors = [
    { key: zeroKey, iv: zeroIv, aad: "", p: "", c: "", t: "530f8afbc74536b9a963b4f1c4cb738b" },
    {
      key: zeroKey,
      iv: zeroIv,
      aad: "",
      p: "00000000000000000000000000000000",
      c: "cea7403d4d606b6e074ec5d3baf39d18",
      t: "d0d1c8a799996bf0265b98b5d48ab919",
    },
    {
      key: hex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308"),
      iv: hex("cafebabefacedbaddecaf888"),
      aad: "feedfacedeadbeeffeedfacedeadbeefabaddad2",
      p: "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72" +
        "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
      c: "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa" +
        "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
      t: "76fc6ece0f4e1768cddf8853bb2d551b",
    },
  ];
  for (const v of vectors) {
    const p = hex(v.p);
    const out = new Uint8Array(p.length + GCM_TAG_LENGTH);
    equal(nc.aesGcmSeal(v.key, v.iv, hex(v.aad), p, out), p.length + GCM_TAG_LENGTH);
    equal(toHex(out), v.c + v.t);
    const back = new Uint8Array(p.length);
    equal(nc.aesGcmOpen(v.key, v.iv, hex(v.aad), out, back), p.length);
    equal(toHex(back), v.p);
  }
});

Deno.test("a changed key is used even when the caller reuses the key buffer", async () => {
  const nc = ncOrFail();
  const key = random(32);
  const nonce = random(12);
  const plaintext = random(100);
  const out = new Uint8Array(116);
  for (let round = 0; round < 4; round++) {
    // Alternate between a fresh key and the same key mutated in place.
    if (round % 2 === 0) key.set(random(32));
    else key[round] ^= 0xff;
    nc.aesGcmSeal(key, nonce, new Uint8Array(0), plaintext, out);
    deepStrictEqual(await webOpen(key, nonce, new Uint8Array(0), out), plaintext);
    equal(nc.aesGcmOpen(key.slice(), nonce, new Uint8Array(0), out, new Uint8Array(100)), 100);
  }
});

Deno.test("hmacSha256 and sha256 match Web Crypto for all sizes and key lengths", async () => {
  const nc = ncOrFail();
  for (const size of SIZES) {
    const data = random(size);
    deepStrictEqual(
      nc.sha256(data),
      new Uint8Array(await crypto.subtle.digest("SHA-256", data)),
      `sha256 of ${size} bytes`,
    );
    for (const keyLength of [1, 32, 64, 65, 200]) {
      const key = random(keyLength);
      deepStrictEqual(nc.hmacSha256(key, data), await webHmac(key, data), `${keyLength}/${size}`);
    }
  }
});

Deno.test("hmacSha256 follows key changes, including in-place mutation and empty keys", async () => {
  const nc = ncOrFail();
  const data = text("same data");
  const key = random(32);
  const first = nc.hmacSha256(key, data);
  deepStrictEqual(nc.hmacSha256(key, data), first);
  key[0] ^= 1;
  deepStrictEqual(nc.hmacSha256(key, data), await webHmac(key, data));
  notEqual(toHex(nc.hmacSha256(key, data)), toHex(first));
  // Empty key: HMAC with a zero-length key is the key of 64 zero bytes (RFC 2104 padding).
  const empty = nc.hmacSha256(new Uint8Array(0), data);
  deepStrictEqual(empty, await webHmac(new Uint8Array(64), data));
  deepStrictEqual(
    nc.hmacSha256(new Uint8Array(0), new Uint8Array(0)),
    hex(
      "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad",
    ),
  );
});

Deno.test("hmacSha256 and sha256 match RFC 4231 cases 2 and 6 and FIPS 180-2 'abc'", () => {
  const nc = ncOrFail();
  equal(
    toHex(nc.hmacSha256(text("Jefe"), text("what do ya want for nothing?"))),
    "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
  );
  equal(
    toHex(
      nc.hmacSha256(
        new Uint8Array(131).fill(0xaa),
        text("Test Using Larger Than Block-Size Key - Hash Key First"),
      ),
    ),
    "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
  );
  equal(
    toHex(nc.sha256(text("abc"))),
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
  );
  equal(
    toHex(nc.sha256(new Uint8Array(0))),
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
  );
});

Deno.test("misuse throws: bad key or nonce length, short output, partial overlap, 2 GiB", () => {
  const nc = ncOrFail();
  const key = random(32);
  const nonce = random(12);
  const none = new Uint8Array(0);
  const p = random(64);
  const out = new Uint8Array(80);
  throws(() => nc.aesGcmSeal(random(16), nonce, none, p, out), VgerError);
  throws(() => nc.aesGcmSeal(key, random(16), none, p, out), VgerError);
  throws(() => nc.aesGcmSeal(key, nonce, none, p, new Uint8Array(79)), /needs 80/);
  throws(() => nc.aesGcmOpen(key, nonce, none, out, new Uint8Array(63)), /needs 64/);
  throws(() => nc.aesGcmOpen(random(31), nonce, none, out, p), /key has 31 bytes/);
  // Shifted views of one buffer: GCM reads ahead, so only exact in-place use is allowed.
  const shared = new Uint8Array(200);
  throws(
    () => nc.aesGcmSeal(key, nonce, none, shared.subarray(13, 77), shared),
    /overlap at different offsets/,
  );
  nc.aesGcmSeal(key, nonce, none, shared.subarray(0, 64), shared.subarray(64)); // no overlap
  throws(
    () => nc.aesGcmOpen(key, nonce, none, shared.subarray(64, 144), shared.subarray(60)),
    /overlap at different offsets/,
  );
  // Lengths beyond a C int, without allocating 2 GiB: a view that reports a larger length.
  const huge = Object.defineProperty(new Uint8Array(0), "length", {
    value: MAX_NATIVE_LENGTH + 1,
  });
  throws(() => nc.aesGcmSeal(key, nonce, none, huge, huge), /larger than 2147483647 bytes/);
  throws(() => nc.aesGcmSeal(key, nonce, huge, p, out), /larger than 2147483647 bytes/);
  throws(() => nc.aesGcmOpen(key, nonce, none, huge, huge), /larger than 2147483647 bytes/);
  throws(() => nc.hmacSha256(huge, p), /larger than 2147483647 bytes/);
  // Still works afterwards.
  equal(nc.aesGcmSeal(key, nonce, none, p, out), 80);
});

Deno.test("nativeCrypto is null without --allow-ffi", async () => {
  const repo = new URL("..", import.meta.url).pathname;
  const dir = await Deno.makeTempDir({ prefix: "vger_native_crypto_" });
  try {
    const script = `${dir}/probe.ts`;
    const moduleUrl = new URL("./native_crypto.ts", import.meta.url).href;
    await Deno.writeTextFile(
      script,
      `import { nativeCrypto } from ${JSON.stringify(moduleUrl)};\n` +
        `console.log(nativeCrypto() === null);\n`,
    );
    const run = async (flags: string[]): Promise<string> => {
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "--no-prompt", "--no-lock", "--no-config", ...flags, script],
        stdin: "null",
      }).output();
      equal(out.code, 0, new TextDecoder().decode(out.stderr));
      return new TextDecoder().decode(out.stdout).trim();
    };
    equal(await run([`--allow-read=${repo}`]), "true");
    equal(await run([`--allow-read=${repo}`, "--allow-ffi"]), "false"); // the control
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("two Workers seal concurrently, each with its own library handle", async () => {
  const dir = await Deno.makeTempDir({ prefix: "vger_native_crypto_" });
  const workers: Worker[] = [];
  try {
    const moduleUrl = new URL("./native_crypto.ts", import.meta.url).href;
    const workerFile = `${dir}/seal_worker.js`; // plain JS: no type checking in the Worker
    // Each Worker seals its blocks over and over for ~300 ms, checking that every round gives
    // the same bytes (a context shared between threads would garble them), then returns them.
    await Deno.writeTextFile(
      workerFile,
      `import { nativeCrypto } from ${JSON.stringify(moduleUrl)};
const nc = nativeCrypto();
self.postMessage({ ready: nc !== null });
self.onmessage = (e) => {
  const { key, nonces, aad, blocks } = e.data;
  if (!nc) { self.postMessage({ error: "nativeCrypto() is null in the Worker" }); return; }
  const start = performance.timeOrigin + performance.now();
  const sealed = blocks.map((b) => new Uint8Array(b.length + 16));
  let rounds = 0;
  let first = null;
  while (performance.timeOrigin + performance.now() - start < 300 || rounds < 3) {
    blocks.forEach((b, i) => nc.aesGcmSeal(key, nonces[i], aad, b, sealed[i]));
    const digest = sealed.map((s) => Array.from(nc.sha256(s)).join(",")).join(";");
    if (first === null) first = digest;
    else if (digest !== first) { self.postMessage({ error: "round " + rounds + " differs" }); return; }
    rounds++;
  }
  const end = performance.timeOrigin + performance.now();
  self.postMessage({ sealed, start, end, rounds });
};
`,
    );
    const jobs = [0, 1].map(() => ({
      key: random(32),
      nonces: Array.from({ length: 8 }, () => random(12)),
      aad: random(20),
      blocks: Array.from({ length: 8 }, (_, i) => random(256 * 1024 + i)),
    }));
    type Reply = {
      ready?: boolean;
      error?: string;
      sealed: Uint8Array[];
      start: number;
      end: number;
    };
    // Start both sealing loops only once both Workers have loaded OpenSSL, so that they overlap.
    const inbox = jobs.map(() => {
      const w = new Worker(new URL(`file://${workerFile}`).href, { type: "module" });
      workers.push(w);
      const queue: Promise<Reply>[] = [];
      const resolvers: ((r: Reply) => void)[] = [];
      for (let k = 0; k < 2; k++) queue.push(new Promise((resolve) => resolvers.push(resolve)));
      let received = 0;
      w.onmessage = (e: MessageEvent<Reply>) => resolvers[received++](e.data);
      w.onerror = (e) => {
        e.preventDefault();
        resolvers[received++]({ error: e.message } as Reply);
      };
      return { w, queue };
    });
    for (const { queue } of inbox) deepStrictEqual(await queue[0], { ready: true });
    inbox.forEach(({ w }, i) => w.postMessage(jobs[i]));
    const replies = await Promise.all(inbox.map(({ queue }) => queue[1]));
    for (const [i, reply] of replies.entries()) {
      equal(reply.error, undefined);
      const job = jobs[i];
      for (const [j, block] of job.blocks.entries()) {
        deepStrictEqual(
          await webOpen(
            job.key,
            job.nonces[j],
            job.aad,
            reply.sealed[j] as Uint8Array<ArrayBuffer>,
          ),
          block,
          `worker ${i} block ${j}`,
        );
      }
    }
    // The two sealing loops ran at the same time.
    ok(
      replies[0].start < replies[1].end && replies[1].start < replies[0].end,
      `worker runs did not overlap: ${JSON.stringify(replies.map((r) => [r.start, r.end]))}`,
    );
  } finally {
    for (const w of workers) w.terminate();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("hmacSha256 writes into the output it is given, and refuses one of the wrong size", async () => {
  const nc = ncOrFail();
  const key = random(32);
  const data = text("into a slab");
  const slab = new Uint8Array(96).fill(0xee);
  const out = nc.hmacSha256(key, data, slab.subarray(32, 64));
  equal(out.buffer, slab.buffer);
  deepStrictEqual(out, await webHmac(key, data));
  ok(slab.subarray(0, 32).every((b) => b === 0xee) && slab.subarray(64).every((b) => b === 0xee));
  throws(() => nc.hmacSha256(key, data, new Uint8Array(31)), /expected 32/);
});
