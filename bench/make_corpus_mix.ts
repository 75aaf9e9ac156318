/**
 * The second benchmark corpus ("mix", issue 14): what the shared corpus of system files lacks.
 * Deterministic (seeded), about 1.3 GB apparent, written to `$BENCH_DATA/A` (default
 * `~/vger-bench-mix/A`) with the `.bench-root-marker` that ../shared/bench/peers.sh needs:
 *
 * - large/random-vm-*.img: three 160 MiB disk images that share 90% of their 64 KiB blocks with
 *   one another, 40% of them zero (dedup and zero runs);
 * - medium/logs/: 20 text logs of 8 MiB and their rotated halves (compressible, shared prefixes);
 * - small/tiny/: 50,000 files of 0-300 bytes six directories deep (per-file costs);
 * - small/mail/: 8,000 messages of 1-30 KB text with repeated headers;
 * - medium/photos/: 60 incompressible files of 1-8 MiB, 10 exact copies under other names and 5
 *   hard links;
 * - large/disk.sparse: a 256 MiB sparse file holding 4 MiB of data.
 *
 * The top directories and the `random-` names are what ../shared/bench/mutate.py selects from
 * (1% of small/ and medium/ appended to, the middle of the three images rewritten).
 *
 * `MIX_SCALE=4` writes four such trees of distinct bytes (the second to fourth under `more-N/`),
 * for the memory-versus-input-size table.
 *
 * Run: `deno run -A bench/make_corpus_mix.ts`, then the peers benchmark with
 * `BENCH_DATA=~/vger-bench-mix` (bench/README.md).
 *
 * @module
 */

const root = Deno.env.get("BENCH_DATA") ?? `${Deno.env.get("HOME")}/vger-bench-mix`;
const out = `${root}/A`;
/** How many times the corpus's bytes, each copy distinct (`MIX_SCALE`, default 1). */
const scale = Number(Deno.env.get("MIX_SCALE") ?? 1);
if (!Number.isInteger(scale) || scale < 1) throw new Error("MIX_SCALE must be a positive integer");
let dir = out;
let seedBase = 0;

/** xorshift32: the same bytes on every machine. */
class Rng {
  #x: number;
  constructor(seed: number) {
    this.#x = ((seed + seedBase) * 2654435761) | 1;
  }
  next(): number {
    let x = this.#x;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (this.#x = x) >>> 0;
  }
  below(n: number): number {
    return this.next() % n;
  }
  fill(buf: Uint8Array): void {
    const words = new Uint32Array(buf.buffer, buf.byteOffset, buf.length >>> 2);
    for (let i = 0; i < words.length; i++) words[i] = this.next();
    for (let i = words.length * 4; i < buf.length; i++) buf[i] = this.next() & 0xff;
  }
}

const WORDS = ("error warning info debug request response client server connection timeout retry " +
  "backup restore archive chunk pack index manifest user session token upload download cache " +
  "the a of to in and for with on at by from disk memory thread worker queue latency").split(" ");
const enc = new TextEncoder();

function text(rng: Rng, bytes: number): Uint8Array {
  let s = "";
  while (s.length < bytes) {
    const n = 4 + rng.below(12);
    const line: string[] = [];
    for (let i = 0; i < n; i++) line.push(WORDS[rng.below(WORDS.length)]);
    s += line.join(" ") + "\n";
  }
  return enc.encode(s.slice(0, bytes));
}

async function write(path: string, data: Uint8Array): Promise<void> {
  await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
  await Deno.writeFile(path, data);
}

async function vm(): Promise<void> {
  const BLOCK = 64 << 10;
  const blocks = (160 << 20) / BLOCK;
  const base: Uint8Array[] = [];
  const rng = new Rng(1);
  for (let b = 0; b < blocks; b++) {
    const kind = rng.below(10);
    const block = new Uint8Array(BLOCK);
    if (kind >= 4 && kind < 7) rng.fill(block);
    else if (kind >= 7) block.set(text(rng, BLOCK));
    base.push(block); // kinds 0-3: zeros
  }
  for (let image = 0; image < 3; image++) {
    const r = new Rng(100 + image);
    using file = await Deno.open(`${dir}/large/random-vm-${image}.img`, {
      write: true,
      create: true,
      truncate: true,
    });
    for (let b = 0; b < blocks; b++) {
      let block = base[b];
      if (r.below(10) === 0) {
        block = new Uint8Array(BLOCK);
        r.fill(block);
      }
      for (let o = 0; o < block.length;) o += await file.write(block.subarray(o));
    }
  }
}

async function logs(): Promise<void> {
  for (let i = 0; i < 20; i++) {
    const rng = new Rng(200 + i);
    let s = "";
    let t = Date.UTC(2026, 0, 1) + i * 3_600_000;
    while (s.length < 8 << 20) {
      t += rng.below(2000);
      const level = ["INFO", "WARN", "DEBUG", "ERROR"][rng.below(4)];
      const words: string[] = [];
      for (let w = 3 + rng.below(10); w > 0; w--) words.push(WORDS[rng.below(WORDS.length)]);
      s += `${new Date(t).toISOString()} ${level} [worker-${rng.below(16)}] ${words.join(" ")} id=${
        rng.next().toString(16)
      }\n`;
    }
    const bytes = enc.encode(s);
    await write(`${dir}/medium/logs/service-${i}.log`, bytes);
    await write(`${dir}/medium/logs/service-${i}.log.1`, bytes.subarray(0, bytes.length >> 1));
  }
}

async function tiny(): Promise<void> {
  const rng = new Rng(300);
  for (let i = 0; i < 50_000; i++) {
    const d = `${dir}/small/tiny/${i % 5}/${(i >> 3) % 7}/${(i >> 6) % 9}/${(i >> 9) % 11}/${
      i >> 12
    }`;
    const n = rng.below(301);
    await write(`${d}/f${i}.txt`, text(rng, n));
  }
}

async function mail(): Promise<void> {
  const rng = new Rng(400);
  for (let i = 0; i < 8_000; i++) {
    const header = `From: user${rng.below(50)}@example.org\nTo: team@example.org\n` +
      `Subject: ${WORDS[rng.below(WORDS.length)]} report ${i}\nMessage-ID: <${rng.next()}@mx>\n\n`;
    const body = text(rng, 1000 + rng.below(29_000));
    const data = new Uint8Array(header.length + body.length);
    data.set(enc.encode(header));
    data.set(body, header.length);
    await write(`${dir}/small/mail/${i % 40}/${i}.eml`, data);
  }
}

async function photos(): Promise<void> {
  const rng = new Rng(500);
  for (let i = 0; i < 60; i++) {
    const data = new Uint8Array((1 << 20) + rng.below(7 << 20));
    rng.fill(data);
    await write(`${dir}/medium/photos/${2020 + (i % 5)}/IMG_${1000 + i}.jpg`, data);
  }
  await Deno.mkdir(`${dir}/medium/photos/copies`, { recursive: true });
  for (let i = 0; i < 10; i++) {
    await Deno.copyFile(
      `${dir}/medium/photos/${2020 + (i % 5)}/IMG_${1000 + i}.jpg`,
      `${dir}/medium/photos/copies/copy-${i}.jpg`,
    );
  }
  for (let i = 10; i < 15; i++) {
    await Deno.link(
      `${dir}/medium/photos/${2020 + (i % 5)}/IMG_${1000 + i}.jpg`,
      `${dir}/medium/photos/copies/link-${i}.jpg`,
    );
  }
}

async function sparse(): Promise<void> {
  const rng = new Rng(600);
  using file = await Deno.open(`${dir}/large/disk.sparse`, {
    write: true,
    create: true,
    truncate: true,
  });
  await file.truncate(256 << 20);
  for (let i = 0; i < 4; i++) {
    const data = new Uint8Array(1 << 20);
    rng.fill(data);
    await file.seek(i * (64 << 20), Deno.SeekMode.Start);
    for (let o = 0; o < data.length;) o += await file.write(data.subarray(o));
  }
}

await Deno.remove(out, { recursive: true }).catch(() => {});
const started = performance.now();
for (let copy = 0; copy < scale; copy++) {
  // copies after the first: other bytes (other seeds) in a tree of their own
  dir = copy === 0 ? out : `${out}/more-${copy}`;
  seedBase = copy * 1000;
  await Deno.mkdir(`${dir}/large`, { recursive: true });
  for (const [name, step] of Object.entries({ vm, logs, tiny, mail, photos, sparse })) {
    const t = performance.now();
    await step();
    console.log(`${copy}/${name}: ${((performance.now() - t) / 1000).toFixed(1)} s`);
  }
}
await Deno.writeTextFile(`${out}/.bench-root-marker`, "vger benchmark corpus: mix\n");
console.log(`${out}: done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
