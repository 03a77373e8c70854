// The error log (stderr, by level) and the access log (one line per request). Access lines
// are buffered and written in batches, so a busy server does not pay a syscall per request.

import type { ErrorStream } from "../tsgi/types.ts";

export type LogLevel = "debug" | "info" | "warning" | "error";

const LEVEL_RANK: Record<LogLevel, number> = { debug: 0, info: 1, warning: 2, error: 3 };

/** Writes bytes somewhere: stderr, stdout, or a file opened for appending. */
export interface Sink {
  writeSync(bytes: Uint8Array): number;
}

const encoder = new TextEncoder();

function writeAllSync(sink: Sink, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.length) done += sink.writeSync(bytes.subarray(done));
}

/** Leveled error log: "[time] [pid] [LEVEL] message" lines on stderr. */
export class ErrorLog {
  readonly level: LogLevel;
  readonly #rank: number;
  readonly #sink: Sink;
  readonly #tag: string;

  constructor(level: LogLevel = "info", sink: Sink = Deno.stderr, tag = `${Deno.pid}`) {
    this.level = level;
    this.#rank = LEVEL_RANK[level];
    this.#sink = sink;
    this.#tag = tag;
  }

  enabled(level: LogLevel): boolean {
    return LEVEL_RANK[level] >= this.#rank;
  }

  debug(message: string): void {
    this.log("debug", message);
  }
  info(message: string): void {
    this.log("info", message);
  }
  warning(message: string): void {
    this.log("warning", message);
  }
  error(message: string, error?: unknown): void {
    this.log("error", error === undefined ? message : `${message}\n${describeError(error)}`);
  }

  log(level: LogLevel, message: string): void {
    if (LEVEL_RANK[level] < this.#rank) return;
    const line = `[${
      new Date().toISOString()
    }] [${this.#tag}] [${level.toUpperCase()}] ${message}\n`;
    try {
      writeAllSync(this.#sink, encoder.encode(line));
    } catch {
      // A closed stderr must not take the server down with it.
    }
  }

  /** `environ["tsgi.errors"]`: what apps write lands here at error level, line by line. */
  stream(): ErrorStream {
    let pending = "";
    const flushLines = () => {
      let nl = pending.indexOf("\n");
      while (nl >= 0) {
        this.log("error", pending.slice(0, nl));
        pending = pending.slice(nl + 1);
        nl = pending.indexOf("\n");
      }
    };
    return {
      write: (s: string) => {
        pending += String(s);
        flushLines();
      },
      writelines: (lines: Iterable<string>) => {
        for (const line of lines) pending += String(line);
        flushLines();
      },
      flush: () => {
        flushLines();
        if (pending !== "") this.log("error", pending);
        pending = "";
      },
    };
  }
}

/** Time and timers, injectable so that tests need not sleep. */
export interface LogClock {
  now(): number;
  /** Calls `fn` in `ms`; the timer must not keep the process alive. */
  setTimer(fn: () => void, ms: number): unknown;
  clearTimer(timer: unknown): void;
}

const systemClock: LogClock = {
  now: () => Date.now(),
  setTimer(fn, ms) {
    const id = setTimeout(fn, ms);
    Deno.unrefTimer(id);
    return id;
  },
  clearTimer: (timer) => clearTimeout(timer as number),
};

/**
 * One kind of event that can repeat thousands of times a second (a 503 per connection of a
 * burst, a failing accept()): the first is logged at once, the rest are counted and summed up
 * in at most one line per interval ("… 503 sent to 1,999 connections in the last 1.0 s"), so a
 * burst costs a few lines, not one per connection. `flush()` writes what is counted now.
 */
export class RateLimitedLog {
  readonly #log: ErrorLog;
  readonly #level: LogLevel;
  readonly #intervalMs: number;
  readonly #clock: LogClock;
  #lastLineAt = -Infinity;
  #count = 0;
  #summary: (count: string, seconds: string) => string = () => "";
  #timer: unknown;

  constructor(log: ErrorLog, level: LogLevel, intervalMs = 1000, clock: LogClock = systemClock) {
    this.#log = log;
    this.#level = level;
    this.#intervalMs = intervalMs;
    this.#clock = clock;
  }

  /**
   * One event. `line` is logged if no line was for an interval; otherwise the event is counted
   * and the latest `summary` makes the next line from the count ("1,999") and the seconds since
   * the last line ("1.0").
   */
  note(line: string, summary: (count: string, seconds: string) => string): void {
    if (!this.#log.enabled(this.#level)) return;
    const now = this.#clock.now();
    const due = now - this.#lastLineAt >= this.#intervalMs;
    if (due && this.#count === 0) {
      this.#lastLineAt = now;
      this.#log.log(this.#level, line);
      return;
    }
    this.#count++;
    this.#summary = summary;
    if (due) this.flush();
    else if (this.#timer === undefined) {
      const wait = this.#lastLineAt + this.#intervalMs - now;
      this.#timer = this.#clock.setTimer(() => {
        this.#timer = undefined;
        this.flush();
      }, wait);
    }
  }

  /** Writes the summary of the events counted since the last line, if any. */
  flush(): void {
    if (this.#timer !== undefined) this.#clock.clearTimer(this.#timer);
    this.#timer = undefined;
    if (this.#count === 0) return;
    const now = this.#clock.now();
    const seconds = ((now - this.#lastLineAt) / 1000).toFixed(1);
    const count = this.#count.toLocaleString("en-US");
    this.#count = 0;
    this.#lastLineAt = now;
    this.#log.log(this.#level, this.#summary(count, seconds));
  }
}

/** The stack for the log, never for a client. */
export function describeError(error: unknown): string {
  if (error instanceof Error) return error.stack ?? `${error.name}: ${error.message}`;
  try {
    return `thrown value: ${String(error)}`;
  } catch {
    return "thrown value that cannot be printed";
  }
}

/** What the access log needs to know of one request. */
export interface AccessRecord {
  remoteAddr: string;
  method: string;
  target: string;
  protocol: string;
  status: number;
  bytesSent: number;
  referer: string | undefined;
  userAgent: string | undefined;
  /** Seconds the request took, from its head's arrival to its last byte written. */
  duration: number;
}

const FLUSH_BYTES = 32 * 1024;
const FLUSH_MS = 200;

/** Access log: combined-log-format lines plus the duration, or JSON lines; buffered. */
export class AccessLog {
  readonly #sink: Sink;
  readonly #format: (record: AccessRecord) => string;
  #lines: string[] = [];
  #bytes = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(sink: Sink, format: "text" | "json" = "text") {
    this.#sink = sink;
    this.#format = format === "json" ? formatAccessJson : formatAccessLine;
  }

  write(record: AccessRecord): void {
    const line = this.#format(record);
    this.#lines.push(line);
    this.#bytes += line.length;
    if (this.#bytes >= FLUSH_BYTES) this.flush();
    else if (this.#timer === undefined) {
      const timer = setTimeout(() => this.flush(), FLUSH_MS);
      Deno.unrefTimer(timer);
      this.#timer = timer;
    }
  }

  flush(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#lines.length === 0) return;
    const text = this.#lines.join("");
    this.#lines = [];
    this.#bytes = 0;
    try {
      writeAllSync(this.#sink, encoder.encode(text));
    } catch {
      // As for the error log: losing log lines beats losing the server.
    }
  }
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

function clfTime(date: Date): string {
  const pad = (n: number) => (n < 10 ? "0" + n : String(n));
  return `${pad(date.getUTCDate())}/${MONTHS[date.getUTCMonth()]}/${date.getUTCFullYear()}:` +
    `${pad(date.getUTCHours())}:${pad(date.getUTCMinutes())}:${pad(date.getUTCSeconds())} +0000`;
}

/** `addr - - [time] "GET / HTTP/1.1" 200 13 "referer" "agent" 0.000412` */
export function formatAccessLine(r: AccessRecord): string {
  const request = `${r.method} ${r.target} ${r.protocol}`;
  return `${r.remoteAddr} - - [${clfTime(new Date())}] "${escapeLogField(request)}" ${r.status} ` +
    `${r.bytesSent} "${escapeLogField(r.referer ?? "-")}" "${
      escapeLogField(r.userAgent ?? "-")
    }" ` +
    `${r.duration.toFixed(6)}\n`;
}

/** One JSON object per line; JSON's own escaping keeps each record on its line. */
export function formatAccessJson(r: AccessRecord): string {
  return JSON.stringify({
    time: new Date().toISOString(),
    remote_addr: r.remoteAddr,
    method: r.method,
    target: r.target,
    protocol: r.protocol,
    status: r.status,
    bytes_sent: r.bytesSent,
    referer: r.referer ?? null,
    user_agent: r.userAgent ?? null,
    duration: Number(r.duration.toFixed(6)),
  }) + "\n";
}

/**
 * Escapes what could forge or hide a log line: controls, quotes, backslashes and non-ASCII
 * become \xHH (log injection, CVE-2020-7694).
 */
export function escapeLogField(s: string): string {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c >= 0x7f || c === 0x22 || c === 0x5c) return escapeFrom(s, i);
  }
  return s;
}

function escapeFrom(s: string, from: number): string {
  let out = s.slice(0, from);
  for (let i = from; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c >= 0x7f || c === 0x22 || c === 0x5c) {
      out += c > 0xff
        ? `\\u${c.toString(16).padStart(4, "0")}`
        : `\\x${c.toString(16).padStart(2, "0")}`;
    } else out += s[i];
  }
  return out;
}
