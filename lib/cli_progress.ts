/**
 * Terminal progress for long commands (backup, extract, check, compact): one status line with
 * what is done, the rate over the last few seconds, percent and ETA when a total is known, and
 * the current file shortened in the middle to fit the terminal.
 *
 * The clock, the writer and the terminal width are injected, so the meter is tested with a fake
 * clock; the decision whether to draw at all is the pure {@linkcode progressEnabled}.
 *
 * @example Draw progress on stderr while a backup runs
 * ```ts ignore
 * import { ProgressMeter, progressEnabled } from "./cli_progress.ts";
 *
 * const isTerminal = Deno.stderr.isTerminal();
 * if (progressEnabled({ quiet: false, json: false, progress: false, isTerminal })) {
 *   const meter = new ProgressMeter((t) => Deno.stderr.writeSync(new TextEncoder().encode(t)), {
 *     terminal: isTerminal,
 *   });
 *   meter.update({ files: 10, bytes: 1 << 20, totalBytes: 8 << 20, current: "/home/me/a.txt" });
 *   meter.finish();
 * }
 * ```
 *
 * @module
 */

/** One report of how far a command is. */
export interface ProgressUpdate {
  /** What the command is doing ("copy", "verify"); a new phase restarts the rate. */
  phase?: string;
  /** Items done (files, packs, blobs: see `unit`). */
  files?: number;
  /** Items in all, when known. */
  totalFiles?: number;
  /** What `files` counts, plural (default "files"). */
  unit?: string;
  /** Bytes done. */
  bytes?: number;
  /** Bytes in all, when known. */
  totalBytes?: number;
  /** The file or object being worked on. */
  current?: string;
}

/** Options of {@linkcode ProgressMeter}. */
export interface ProgressMeterOptions {
  /** Milliseconds from any fixed point (default `performance.now`). */
  now?: () => number;
  /** Terminal width in columns (default: the console's, or 80; unlimited when not a terminal). */
  columns?: () => number;
  /**
   * Whether the output is a terminal (default true): the line is redrawn in place with `\r` and
   * clear-line. Otherwise one plain line is written per interval, for logs.
   */
  terminal?: boolean;
  /** Least time between two draws (default 100 ms on a terminal, 1000 ms otherwise). */
  intervalMs?: number;
  /** Span of the rate's sliding window (default 5000 ms). */
  windowMs?: number;
  /** Draw nothing at all (default false). */
  disabled?: boolean;
}

/** Whether to show progress: never with --quiet or --json, else on a terminal or with --progress. */
export function progressEnabled(
  flags: { quiet?: boolean; json?: boolean; progress?: boolean; isTerminal: boolean },
): boolean {
  return !flags.quiet && !flags.json && (!!flags.progress || flags.isTerminal);
}

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];

/** A byte count in binary units with three significant digits: "512 B", "1.50 KiB", "123 GiB". */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n)) return "? B";
  const sign = n < 0 ? "-" : "";
  let v = Math.abs(n);
  if (v < 1024) return `${sign}${Math.round(v)} B`;
  let i = 0;
  while (v >= 1024 && i < UNITS.length - 1) {
    v /= 1024;
    i++;
  }
  // decide the decimals on the rounded value: 9.999 is "10.0", not "10.00"
  let s = v.toFixed(2);
  if (Number(s) >= 10) s = v.toFixed(1);
  if (Number(s) >= 100) s = v.toFixed(0);
  // 1023.7 KiB rounds to "1024": say 1.00 MiB instead
  if (Number(s) >= 1024 && i < UNITS.length - 1) {
    s = (v / 1024).toFixed(2);
    i++;
  }
  return `${sign}${s} ${UNITS[i]}`;
}

/** A duration in seconds, two units at most: "42s", "3m05s", "1h02m", "2d03h"; "?" if unknown. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "?";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${pad2(s % 60)}s`;
  const m = Math.round(s / 60);
  if (m < 24 * 60) return `${Math.floor(m / 60)}h${pad2(m % 60)}m`;
  const h = Math.round(s / 3600);
  return `${Math.floor(h / 24)}d${pad2(h % 24)}h`;
}

function pad2(n: number): string {
  return n < 10 ? `0${n}` : `${n}`;
}

// Control characters (a newline or an escape sequence in a file name would break the line or
// drive the terminal), bidirectional overrides (they reorder what follows) and lone surrogates.
const UNPRINTABLE = /[\p{Cc}\p{Cs}\u202a-\u202e\u2066-\u2069]/gu;
let segmenter: Intl.Segmenter | undefined;

/** The grapheme segmenter, made on first use (making one costs ~15 ms: ICU's data loads). */
function graphemes(): Intl.Segmenter {
  return segmenter ??= new Intl.Segmenter(undefined, { granularity: "grapheme" });
}

/** Columns a grapheme takes in a terminal: 2 for wide (CJK, emoji), 0 for combining marks. */
function graphemeWidth(g: string): number {
  const cp = g.codePointAt(0)!;
  if (
    (cp >= 0x0300 && cp <= 0x036f) || (cp >= 0x200b && cp <= 0x200f) ||
    (cp >= 0x20d0 && cp <= 0x20ff) || (cp >= 0xfe00 && cp <= 0xfe0f) ||
    (cp >= 0xfe20 && cp <= 0xfe2f)
  ) return 0;
  if (g.includes("\ufe0f")) return 2; // emoji presentation
  return (cp >= 0x1100 && cp <= 0x115f) || (cp >= 0x2e80 && cp <= 0x303e) ||
      (cp >= 0x3041 && cp <= 0x33ff) || (cp >= 0x3400 && cp <= 0x4dbf) ||
      (cp >= 0x4e00 && cp <= 0x9fff) || (cp >= 0xa000 && cp <= 0xa4cf) ||
      (cp >= 0xac00 && cp <= 0xd7a3) || (cp >= 0xf900 && cp <= 0xfaff) ||
      (cp >= 0xfe30 && cp <= 0xfe4f) || (cp >= 0xff00 && cp <= 0xff60) ||
      (cp >= 0xffe0 && cp <= 0xffe6) || (cp >= 0x1f1e6 && cp <= 0x1f1ff) ||
      (cp >= 0x1f300 && cp <= 0x1f64f) || (cp >= 0x1f680 && cp <= 0x1f6ff) ||
      (cp >= 0x1f900 && cp <= 0x1f9ff) || (cp >= 0x20000 && cp <= 0x3fffd)
    ? 2
    : 1;
}

/** Text safe to print on one line: control characters, bidi overrides, lone surrogates as "?". */
export function printable(text: string): string {
  return text.replace(UNPRINTABLE, "?");
}

/** Columns that printable text takes in a terminal. */
export function displayWidth(text: string): number {
  let w = 0;
  for (const { segment } of graphemes().segment(text)) w += graphemeWidth(segment);
  return w;
}

/**
 * Makes text printable and shortens it in the middle ("/home/me/…/file.txt") to at most
 * `columns` terminal columns, never splitting a character or a grapheme.
 */
export function fitMiddle(text: string, columns: number): string {
  const safe = printable(text);
  if (!(columns > 0)) return "";
  if (columns === Infinity) return safe;
  const parts: { g: string; w: number }[] = [];
  let total = 0;
  for (const { segment } of graphemes().segment(safe)) {
    const w = graphemeWidth(segment);
    parts.push({ g: segment, w });
    total += w;
  }
  if (total <= columns) return safe;
  const avail = columns - 1; // the ellipsis takes one
  let head = "";
  let used = 0;
  let i = 0;
  // the end (the file's name) says most: it gets the larger half
  for (; i < parts.length && used + parts[i].w <= Math.floor(avail / 2); i++) {
    head += parts[i].g;
    used += parts[i].w;
  }
  let tail = "";
  for (let j = parts.length - 1; j >= i && used + parts[j].w <= avail; j--) {
    tail = parts[j].g + tail;
    used += parts[j].w;
  }
  return `${head}…${tail}`;
}

/** Cuts printable text at the end to at most `columns` terminal columns. */
function fitEnd(text: string, columns: number): string {
  let out = "";
  let used = 0;
  for (const { segment } of graphemes().segment(text)) {
    const w = graphemeWidth(segment);
    if (used + w > columns) break;
    out += segment;
    used += w;
  }
  return out;
}

/** Rates and estimates derived from the updates (undefined while unknown). */
export interface ProgressRates {
  /** Bytes per second over the sliding window. */
  bytesPerSecond?: number;
  /** Items per second over the sliding window. */
  filesPerSecond?: number;
  /** Seconds left at the current rate. */
  etaSeconds?: number;
}

/** Done share (0..100) from bytes when their total is known, else from items; undefined if neither. */
export function progressPercent(update: ProgressUpdate): number | undefined {
  const share = (done: number, total: number) => Math.min(100, Math.max(0, (100 * done) / total));
  if (update.bytes !== undefined && update.totalBytes) {
    return share(update.bytes, update.totalBytes);
  }
  if (update.files !== undefined && update.totalFiles) {
    return share(update.files, update.totalFiles);
  }
  return undefined;
}

/**
 * The status line of an update: "copy: 12/40 packs, 1.20 GiB of 4.00 GiB (30%), 85.0 MiB/s,
 * ETA 34s  path/…/file", fitted to `columns`.
 */
export function formatProgressLine(
  update: ProgressUpdate,
  options: { rates?: ProgressRates; columns?: number } = {},
): string {
  const r = options.rates ?? {};
  const columns = options.columns ?? Infinity;
  const unit = update.unit ?? "files";
  const percent = progressPercent(update);
  // the percent goes after the count it is computed from
  const byBytes = update.bytes !== undefined && !!update.totalBytes;
  const pct = (on: boolean) => (on && percent !== undefined ? ` (${Math.floor(percent)}%)` : "");
  const parts: string[] = [];
  if (update.files !== undefined) {
    parts.push(
      (update.totalFiles !== undefined
        ? `${update.files}/${update.totalFiles} ${unit}`
        : `${update.files} ${unit}`) + pct(!byBytes),
    );
  }
  if (update.bytes !== undefined) {
    parts.push(
      (update.totalBytes !== undefined
        ? `${formatBytes(update.bytes)} of ${formatBytes(update.totalBytes)}`
        : formatBytes(update.bytes)) + pct(byBytes),
    );
  }
  if (r.bytesPerSecond !== undefined && update.bytes !== undefined) {
    parts.push(`${formatBytes(r.bytesPerSecond)}/s`);
  } else if (r.filesPerSecond !== undefined && update.files !== undefined) {
    parts.push(`${r.filesPerSecond.toFixed(r.filesPerSecond < 10 ? 1 : 0)} ${unit}/s`);
  }
  if (r.etaSeconds !== undefined) parts.push(`ETA ${formatDuration(r.etaSeconds)}`);
  let status = parts.join(", ");
  if (update.phase) status = `${update.phase}: ${status}`;
  status = printable(status);
  const statusWidth = displayWidth(status);
  if (statusWidth >= columns) return fitEnd(status, columns);
  const room = columns - statusWidth - 2;
  // a name cut to a few columns says nothing: leave it out
  if (!update.current || room < 8) return status;
  return `${status}  ${fitMiddle(update.current, room)}`;
}

/** Columns of the console, or 80 when they cannot be read. */
export function consoleColumns(): number {
  try {
    return Deno.consoleSize().columns || 80;
  } catch {
    return 80;
  }
}

interface Sample {
  t: number;
  bytes: number;
  files: number;
}

/** A throttled one-line progress display fed by a stream of {@linkcode ProgressUpdate}s. */
export class ProgressMeter {
  readonly #write: (text: string) => void;
  readonly #now: () => number;
  readonly #columns: () => number;
  readonly #terminal: boolean;
  readonly #interval: number;
  readonly #window: number;
  readonly #disabled: boolean;
  #samples: Sample[] = [];
  #last: ProgressUpdate | null = null;
  #lastAt = 0;
  #totals: { files?: number; bytes?: number } = {};
  #drawnAt = -Infinity;
  #drawn = "";
  #onScreen = false;
  #finished = false;

  /** Creates a meter that writes its line with `write`. */
  constructor(write: (text: string) => void, options: ProgressMeterOptions = {}) {
    this.#write = write;
    this.#now = options.now ?? (() => performance.now());
    this.#terminal = options.terminal ?? true;
    this.#columns = options.columns ?? (this.#terminal ? consoleColumns : () => Infinity);
    this.#interval = options.intervalMs ?? (this.#terminal ? 100 : 1000);
    this.#window = options.windowMs ?? 5000;
    this.#disabled = options.disabled ?? false;
  }

  /**
   * Totals learnt apart from the updates (a concurrent scan of the sources); an update's own
   * totals take precedence.
   */
  setTotals(totals: { files?: number; bytes?: number }): void {
    this.#totals = { ...totals };
  }

  /** Records an update; redraws the line unless it was drawn less than an interval ago. */
  update(update: ProgressUpdate): void {
    if (this.#disabled || this.#finished) return;
    const now = this.#now();
    const prev = this.#last;
    const restart = !prev || prev.phase !== update.phase ||
      (update.bytes ?? 0) < (prev.bytes ?? 0) || (update.files ?? 0) < (prev.files ?? 0);
    if (restart) this.#samples = [];
    this.#last = update;
    this.#lastAt = now;
    const s = this.#samples;
    // samples 200 ms apart at least: the window holds a few dozen whatever the update rate
    if (s.length === 0 || now - s[s.length - 1].t >= 200) {
      s.push({ t: now, bytes: update.bytes ?? 0, files: update.files ?? 0 });
    }
    // keep one sample at or before the window's start, so the rate spans the whole window
    while (s.length > 1 && s[1].t <= now - this.#window) s.shift();
    if (restart || now - this.#drawnAt >= this.#interval) this.#draw(now);
  }

  /** Rates and ETA as of the last update. */
  rates(): ProgressRates {
    const u = this.#last;
    if (!u) return {};
    const out: ProgressRates = {};
    const first = this.#samples[0];
    const dt = (this.#lastAt - first.t) / 1000;
    // under half a second the rate is mostly noise
    if (dt >= 0.5) {
      if (u.bytes !== undefined) out.bytesPerSecond = (u.bytes - first.bytes) / dt;
      if (u.files !== undefined) out.filesPerSecond = (u.files - first.files) / dt;
    }
    const t = this.#withTotals(u);
    if (t.bytes !== undefined && t.totalBytes) {
      if (out.bytesPerSecond) {
        out.etaSeconds = Math.max(0, t.totalBytes - t.bytes) / out.bytesPerSecond;
      }
    } else if (t.files !== undefined && t.totalFiles && out.filesPerSecond) {
      out.etaSeconds = Math.max(0, t.totalFiles - t.files) / out.filesPerSecond;
    }
    return out;
  }

  /** Takes the line off the screen (before printing a warning); the next update redraws it. */
  clear(): void {
    if (this.#onScreen) this.#write("\r\x1b[K");
    this.#onScreen = false;
    this.#drawn = "";
    this.#drawnAt = -Infinity;
  }

  /** Clears the line for good: later updates draw nothing. */
  finish(): void {
    this.clear();
    this.#finished = true;
  }

  /** The update with the totals from {@linkcode ProgressMeter.setTotals} filled in. */
  #withTotals(u: ProgressUpdate): ProgressUpdate {
    return {
      ...u,
      totalFiles: u.totalFiles ?? (u.files !== undefined ? this.#totals.files : undefined),
      totalBytes: u.totalBytes ?? (u.bytes !== undefined ? this.#totals.bytes : undefined),
    };
  }

  #draw(now: number): void {
    // one column spare: writing the last one makes some terminals wrap
    const line = formatProgressLine(this.#withTotals(this.#last!), {
      rates: this.rates(),
      columns: this.#terminal ? Math.max(1, this.#columns() - 1) : this.#columns(),
    });
    this.#drawnAt = now;
    if (line === this.#drawn) return;
    this.#drawn = line;
    if (this.#terminal) {
      this.#write(`\r\x1b[K${line}`);
      this.#onScreen = true;
    } else this.#write(`${line}\n`);
  }
}
