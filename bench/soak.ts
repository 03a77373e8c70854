// `deno task soak`: mixed load against a real `deno run -A main.ts bench/soak.ts:soakApp` child
// (apps/echo.ts plus the attackers' routes) for a while — keep-alive clients, a new connection per
// request, pipelining, uploads (Content-Length and chunked) and aborted requests — while
// attackers work on it: slow bodies (a head, then a byte every few seconds, or nothing) and
// tiny chunks (2 MB sent as `1\r\nX\r\n` chunks). Then the figures: requests served, errors,
// the normal clients' latency, the child's RSS (and VmHWM) and open descriptors, how long each
// slow-body connection lasted before the server closed it and what it was answered, and how much
// a tiny-chunk upload made the server's RSS grow (measured alone, before the load).
//
//   deno run -A bench/soak.ts [--seconds N] [--json] [--slow-bodies N] [--trickle S] [--ramp S]
//     [--tiny-chunks N] [--tiny-bytes N] [--close-bound S] [-- SERVER FLAGS…]
//
// Everything is on 127.0.0.1, and stops by itself: no new connection starts after --seconds,
// and an attacker the server leaves open is closed by the client after --close-bound.
// tests/server/soak_test.ts runs a shorter soak() and asserts no descriptor leak and bounded RSS.

import { fileURLToPath } from "node:url";
import echo from "../apps/echo.ts";
import type { Environ, StartResponse } from "../mod.ts";

const ROOT = fileURLToPath(new URL("../", import.meta.url));

/** The largest read the streaming tiny-chunk route makes. */
const STREAM_READ = 64 * 1024;

/** Sum of the bytes mod 2^32: what the tiny-chunk routes answer besides the length. */
function checksum(bytes: Uint8Array, sum = 0): number {
  for (let i = 0; i < bytes.length; i++) sum = (sum + bytes[i]) >>> 0;
  return sum;
}

/**
 * The soak's server app: apps/echo.ts, and the attackers' routes. `/slow/read` reads the body
 * whole, `/slow/ignore` never looks at it (the server drains it, or gives up the connection),
 * `/tiny/whole` reads it whole and `/tiny/stream` in reads of 64 KiB; the last two answer
 * "LENGTH CHECKSUM".
 */
export async function soakApp(environ: Environ, startResponse: StartResponse) {
  const input = environ["tsgi.input"];
  const text = (body: string) => {
    startResponse("200 OK", [["Content-Type", "text/plain"]]);
    return [body];
  };
  switch (environ.PATH_INFO) {
    case "/slow/ignore":
      return text("ignored");
    case "/slow/read":
      return text(String((await input.read()).length));
    case "/tiny/whole": {
      const body = await input.read();
      return text(`${body.length} ${checksum(body)}`);
    }
    case "/tiny/stream": {
      let length = 0;
      let sum = 0;
      for (let piece = await input.read(STREAM_READ); piece.length > 0;) {
        length += piece.length;
        sum = checksum(piece, sum);
        piece = await input.read(STREAM_READ);
      }
      return text(`${length} ${sum}`);
    }
    default:
      return echo(environ, startResponse);
  }
}

export interface SoakOptions {
  seconds: number;
  /** Clients of each kind running at once. */
  clients?: Partial<Record<Kind, number>>;
  /** The attackers; DEFAULT_ATTACK where absent. */
  attack?: Partial<AttackOptions>;
  /** Extra flags for the server. */
  serverArgs?: string[];
  /** Progress lines (once per ~10 s); silent when absent. */
  log?: (line: string) => void;
}

type Kind = "keepAlive" | "fresh" | "pipelined" | "upload" | "aborted";

const DEFAULT_CLIENTS: Record<Kind, number> = {
  keepAlive: 4,
  fresh: 4,
  pipelined: 2,
  upload: 2,
  aborted: 2,
};

export interface AttackOptions {
  /** Slow-body connections open at once; each connects again when the server closes it. */
  slowBodies: number;
  /** Milliseconds between the bytes a slow body trickles. */
  trickleMs: number;
  /**
   * Slow-body attackers start spread over this many milliseconds. 0 starts them together, so
   * that their deadlines fall together, round after round (the worst case for a full server).
   */
  rampMs: number;
  /** Tiny-chunk clients at once: even ones' bodies are read whole, odd ones' in 64 KiB reads. */
  tinyChunks: number;
  /** Body bytes of a tiny-chunk upload, sent one byte per chunk. */
  tinyBytes: number;
  /**
   * An attacker connection still open this long after connecting is counted as kept open (a
   * failure) and closed by the client, so the soak ends whatever the server does.
   */
  closeBoundMs: number;
}

export const DEFAULT_ATTACK: AttackOptions = {
  slowBodies: 1000,
  trickleMs: 2000,
  rampMs: 5000,
  tinyChunks: 2,
  tinyBytes: 2 * 1024 * 1024,
  closeBoundMs: 40_000,
};

/** How a slow body goes after its head. */
const SLOW_SHAPES = [
  /** Content-Length, then one body byte every trickleMs. */
  "length-trickle",
  /** Chunked, then the framing of one-byte chunks, one byte every trickleMs. */
  "chunked-trickle",
  /** Chunked, a chunk size line and two of its five bytes, then nothing. */
  "chunk-size-then-silence",
  /** Content-Length, then nothing. */
  "head-only",
] as const;

/** Where a slow body goes: an app that reads it, or one that ignores it. */
const SLOW_ROUTES = ["read", "ignore"] as const;

/** Milliseconds: the 50th and 99th percentiles and the highest, of `count` values. */
export interface Spread {
  count: number;
  p50: number;
  p99: number;
  max: number;
}

export interface SlowBodyReport {
  /** Connections made (each one attack), and those the client could not make. */
  connections: number;
  connectErrors: number;
  /** Closed by the server, and left open past closeBoundMs (closed by the client). */
  closedByServer: number;
  keptOpen: number;
  /** The first few connect errors, for the report. */
  errorSamples: string[];
  /** From the attacker's connect to the server's close (FIN or reset), over every connection. */
  closeMs: Spread;
  /** The same by "shape/route", e.g. "head-only/read". */
  closeMsByVariant: Record<string, Spread>;
  /** What the attackers were answered before the close: "408", "200", "none", … */
  statuses: Record<string, number>;
  /** How the server closed: "fin" (end of stream) or "reset". */
  closes: Record<string, number>;
}

export interface TinyMemory {
  route: string;
  bodyBytes: number;
  ms: number;
  /** The server's RSS before, and its peak while the upload was served (VmHWM, reset first). */
  rssBefore: number;
  rssPeak: number;
  /** rssPeak - rssBefore. */
  growth: number;
}

export interface TinyChunkReport {
  /** Uploads answered with the right length and checksum, by route, during the load. */
  served: { whole: number; stream: number };
  /** Uploads answered wrong, or failed; the first few, for the report. */
  errors: number;
  errorSamples: string[];
  /** One upload of each route alone against the server before the load (none if no client). */
  alone: TinyMemory[];
}

export interface SoakReport {
  seconds: number;
  pid: number;
  /** Responses received complete and correct, by kind of client. */
  served: Record<Exclude<Kind, "aborted">, number>;
  requests: number;
  /** Requests a client gave up on deliberately (not counted as served). */
  aborted: number;
  /** Requests of the normal clients that failed (the one in progress when a client broke). */
  errors: number;
  errorsByKind: Record<Kind, number>;
  /** The first few errors, for the report. */
  errorSamples: string[];
  /**
   * The normal clients' latency once every attacker has started: write (or connect, for a new
   * connection) to the whole response, in ms.
   */
  latency: Spread;
  /** The same by kind of client: a new connection waits for a free slot too. */
  latencyByKind: Record<Exclude<Kind, "aborted">, Spread>;
  /** Bytes: after warm-up, the highest seen, at half time, and after the load. */
  rss: { start: number; peak: number; mid: number; end: number };
  /** The server's VmHWM at the end: its peak RSS over its whole life. */
  hwm: number;
  fds: { start: number; end: number };
  attack: AttackOptions;
  slowBodies: SlowBodyReport;
  tinyChunks: TinyChunkReport;
  /** What the server logged that could explain a client's error (Child.notes). */
  serverNotes: string[];
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Reads HTTP/1.1 responses off one connection (Content-Length or chunked). */
class ResponseReader {
  #conn: Deno.Conn;
  #buf = new Uint8Array(0);

  constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  async #more(): Promise<void> {
    const chunk = new Uint8Array(64 * 1024);
    const n = await this.#conn.read(chunk);
    if (n === null) throw new Error("connection closed mid-response");
    const joined = new Uint8Array(this.#buf.length + n);
    joined.set(this.#buf);
    joined.set(chunk.subarray(0, n), this.#buf.length);
    this.#buf = joined;
  }

  async #line(): Promise<string> {
    for (;;) {
      const lf = this.#buf.indexOf(0x0a);
      if (lf >= 0) {
        const line = decoder.decode(this.#buf.subarray(0, lf)).replace(/\r$/, "");
        this.#buf = this.#buf.subarray(lf + 1);
        return line;
      }
      await this.#more();
    }
  }

  async #bytes(n: number): Promise<Uint8Array> {
    while (this.#buf.length < n) await this.#more();
    const out = this.#buf.subarray(0, n);
    this.#buf = this.#buf.subarray(n);
    return out;
  }

  /** The next final response: its status and body text (interim 1xx skipped). */
  async read(): Promise<{ status: number; body: string }> {
    for (;;) {
      const statusLine = await this.#line();
      const status = Number(/^HTTP\/1\.[01] (\d{3}) /.exec(statusLine)?.[1]);
      if (!status) throw new Error(`bad status line ${JSON.stringify(statusLine)}`);
      const headers = new Map<string, string>();
      for (let line = await this.#line(); line !== ""; line = await this.#line()) {
        const colon = line.indexOf(":");
        headers.set(line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim());
      }
      if (status < 200) continue;
      if (headers.get("transfer-encoding") === "chunked") {
        let body = "";
        for (;;) {
          const size = parseInt(await this.#line(), 16);
          if (size === 0) {
            await this.#line();
            return { status, body };
          }
          body += decoder.decode(await this.#bytes(size));
          await this.#bytes(2);
        }
      }
      const length = Number(headers.get("content-length") ?? 0);
      return { status, body: decoder.decode(await this.#bytes(length)) };
    }
  }
}

function get(path: string, close = false): string {
  return `GET ${path} HTTP/1.1\r\nHost: soak\r\n${close ? "Connection: close\r\n" : ""}\r\n`;
}

/** The echo app's answer, checked: method, path and body length as sent. */
function checkEcho(
  response: { status: number; body: string },
  method: string,
  path: string,
  bodyLength = 0,
): void {
  if (response.status !== 200) throw new Error(`status ${response.status} for ${method} ${path}`);
  const echo = JSON.parse(response.body);
  if (echo.method !== method || echo.path !== path || echo.bodyLength !== bodyLength) {
    throw new Error(`wrong echo for ${method} ${path}: ${response.body.slice(0, 200)}`);
  }
}

/** The current value of a /proc/<pid>/status field in bytes (VmRSS, VmHWM), or 0. */
export function procStatus(pid: number, field: string): number {
  try {
    const text = Deno.readTextFileSync(`/proc/${pid}/status`);
    const kb = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(text);
    return kb ? Number(kb[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Open descriptors of a process, from /proc/<pid>/fd. */
export function openFds(pid: number): number {
  let n = 0;
  for (const _ of Deno.readDirSync(`/proc/${pid}/fd`)) n++;
  return n;
}

/**
 * Resets the process's VmHWM to its current RSS (Linux 4.0+, clear_refs 5), so that VmHWM
 * afterwards is the peak since now; false where that is not allowed.
 */
function resetPeak(pid: number): boolean {
  try {
    Deno.writeTextFileSync(`/proc/${pid}/clear_refs`, "5");
    return true;
  } catch {
    return false;
  }
}

/** The percentiles of a list of milliseconds (sorted in place). */
export function spread(values: number[] | Float64Array): Spread {
  const sorted = Float64Array.from(values).sort();
  const at = (q: number) =>
    sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
  return {
    count: sorted.length,
    p50: at(0.5),
    p99: at(0.99),
    max: sorted.length === 0 ? 0 : sorted[sorted.length - 1],
  };
}

/** A tiny-chunk body: its bytes on the wire (chunked), its length and its checksum. */
interface TinyBody {
  wire: Uint8Array;
  length: number;
  sum: number;
}

/** A body of `n` bytes (A to Z over and over) as one-byte chunks, with its checksum. */
function tinyChunked(n: number): TinyBody {
  const wire = new Uint8Array(n * 6 + 5);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const byte = 0x41 + (i % 26);
    sum = (sum + byte) >>> 0;
    const at = i * 6;
    wire[at] = 0x31; // "1"
    wire[at + 1] = wire[at + 4] = 0x0d;
    wire[at + 2] = wire[at + 5] = 0x0a;
    wire[at + 3] = byte;
  }
  wire.set(encoder.encode("0\r\n\r\n"), n * 6);
  return { wire, length: n, sum };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Child {
  process: Deno.ChildProcess;
  port: number;
  stderrTail: string[];
  /** The server's lines that say why a well-behaved client could have been cut off. */
  notes: string[];
  drained: Promise<void>;
}

/**
 * A stalled loop, or a body or response cut off after kilobytes had moved: an attacker's
 * trickle never moves that much, so these are about the load's clients.
 */
const NOTABLE =
  /Event loop blocked|(stalled|minimum rate), \d{4,} bytes|Write (timed out|too slow)/;

async function startServer(extra: string[]): Promise<Child> {
  const process = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "main.ts",
      "bench/soak.ts:soakApp",
      "--bind",
      "127.0.0.1:0",
      "--access-log",
      "off",
      ...extra,
    ],
    cwd: ROOT,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const stderrTail: string[] = [];
  const notes: string[] = [];
  let ready!: (port: number) => void;
  let failed!: (error: Error) => void;
  const listening = new Promise<number>((resolve, reject) => {
    ready = resolve;
    failed = reject;
  });
  // Stderr is read to the end, so the child never blocks on a full pipe.
  const drained = (async () => {
    let pending = "";
    for await (const chunk of process.stderr.pipeThrough(new TextDecoderStream())) {
      pending += chunk;
      const lines = pending.split("\n");
      pending = lines.pop() ?? "";
      for (const line of lines) {
        const url = /Listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(line);
        if (url) ready(Number(url[1]));
        stderrTail.push(line);
        if (stderrTail.length > 20) stderrTail.shift();
        if (NOTABLE.test(line) && notes.length < 20) notes.push(line);
      }
    }
    failed(new Error(`The server exited before listening:\n${stderrTail.join("\n")}`));
  })();
  const timer = setTimeout(() => failed(new Error("The server did not start in 20 s")), 20_000);
  try {
    const port = await listening;
    return { process, port, stderrTail, notes, drained };
  } finally {
    clearTimeout(timer);
  }
}

async function warmUp(port: number): Promise<void> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(encoder.encode(get("/warm-up", true)));
    checkEcho(await new ResponseReader(conn).read(), "GET", "/warm-up");
  } finally {
    conn.close();
  }
}

/** Writes all of `bytes` (a write may take only part). */
async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let at = 0; at < bytes.length;) at += await conn.write(bytes.subarray(at));
}

const TINY_WRITE = 64 * 1024;

/**
 * One tiny-chunk upload on a connection of its own: `body` to /tiny/`route`, written in
 * 64 KiB pieces while the answer is read. Throws unless the answer is 200 with the body's
 * length and checksum.
 */
async function tinyUpload(
  port: number,
  route: "whole" | "stream",
  body: TinyBody,
): Promise<void> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    conn.setNoDelay(true);
    const head = `POST /tiny/${route} HTTP/1.1\r\nHost: soak\r\nTransfer-Encoding: chunked\r\n` +
      "Connection: close\r\n\r\n";
    const writing = (async () => {
      await writeAll(conn, encoder.encode(head));
      for (let at = 0; at < body.wire.length; at += TINY_WRITE) {
        await writeAll(conn, body.wire.subarray(at, at + TINY_WRITE));
      }
    })();
    const [response] = await Promise.all([new ResponseReader(conn).read(), writing]);
    const expected = `${body.length} ${body.sum}`;
    if (response.status !== 200 || response.body !== expected) {
      throw new Error(
        `/tiny/${route}: ${response.status} ${JSON.stringify(response.body.slice(0, 100))}, ` +
          `expected 200 ${JSON.stringify(expected)}`,
      );
    }
  } finally {
    try {
      conn.close();
    } catch {
      // Closed by the server.
    }
  }
}

/** Runs the soak; the child is always stopped. */
export async function soak(options: SoakOptions): Promise<SoakReport> {
  const clients = { ...DEFAULT_CLIENTS, ...options.clients };
  const attack = { ...DEFAULT_ATTACK, ...options.attack };
  const child = await startServer(options.serverArgs ?? []);
  const pid = child.process.pid;
  const report: SoakReport = {
    seconds: options.seconds,
    pid,
    served: { keepAlive: 0, fresh: 0, pipelined: 0, upload: 0 },
    requests: 0,
    aborted: 0,
    errors: 0,
    errorsByKind: { keepAlive: 0, fresh: 0, pipelined: 0, upload: 0, aborted: 0 },
    errorSamples: [],
    latency: spread([]),
    latencyByKind: {
      keepAlive: spread([]),
      fresh: spread([]),
      pipelined: spread([]),
      upload: spread([]),
    },
    rss: { start: 0, peak: 0, mid: 0, end: 0 },
    hwm: 0,
    fds: { start: 0, end: 0 },
    attack,
    slowBodies: {
      connections: 0,
      connectErrors: 0,
      errorSamples: [],
      closedByServer: 0,
      keptOpen: 0,
      closeMs: spread([]),
      closeMsByVariant: {},
      statuses: {},
      closes: {},
    },
    tinyChunks: { served: { whole: 0, stream: 0 }, errors: 0, errorSamples: [], alone: [] },
    serverNotes: child.notes,
  };
  const port = child.port;
  const tiny = report.tinyChunks;
  const tinyFailed = (error: unknown) => {
    tiny.errors++;
    if (tiny.errorSamples.length < 5) tiny.errorSamples.push(String((error as Error)?.message));
  };
  try {
    // The baseline is taken after one request has been served: a fresh process opens a few
    // descriptors lazily (signal handling, caches) that are not the load's doing.
    await warmUp(port);
    report.rss.start = report.rss.peak = procStatus(pid, "VmRSS");
    report.fds.start = openFds(pid);
    // One tiny-chunk upload of each kind alone, for what it costs in memory: during the load,
    // the other clients' garbage would be counted too. A small one first warms the routes.
    const tinyBody = attack.tinyChunks > 0 ? tinyChunked(attack.tinyBytes) : null;
    if (tinyBody !== null) {
      const small = tinyChunked(64 * 1024);
      for (const route of ["stream", "whole"] as const) {
        try {
          await tinyUpload(port, route, small);
          tiny.alone.push(await tinyAlone(pid, port, route, tinyBody));
        } catch (error) {
          tinyFailed(error);
        }
      }
    }
    resetPeak(pid);
    await load(options, clients, attack, report, port, tinyBody, tinyFailed);
    // Every client connection is closed now: the server should be back to its baseline.
    const until = Date.now() + 15_000;
    for (;;) {
      report.fds.end = openFds(pid);
      if (report.fds.end <= report.fds.start || Date.now() > until) break;
      await sleep(100);
    }
    report.rss.end = procStatus(pid, "VmRSS");
    report.rss.peak = Math.max(report.rss.peak, report.rss.end);
    report.hwm = procStatus(pid, "VmHWM");
    return report;
  } finally {
    try {
      child.process.kill("SIGTERM");
    } catch {
      // Gone already.
    }
    await child.process.status;
    await child.drained;
  }
}

/** One tiny-chunk upload against the idle server: its time and the server's RSS growth. */
async function tinyAlone(
  pid: number,
  port: number,
  route: "whole" | "stream",
  body: TinyBody,
): Promise<TinyMemory> {
  const rssBefore = procStatus(pid, "VmRSS");
  // VmHWM catches a peak between two samples; the samples stand in where it cannot be reset.
  const exact = resetPeak(pid);
  let sampled = rssBefore;
  const sampler = setInterval(() => (sampled = Math.max(sampled, procStatus(pid, "VmRSS"))), 10);
  const began = performance.now();
  try {
    await tinyUpload(port, route, body);
  } finally {
    clearInterval(sampler);
  }
  const ms = performance.now() - began;
  const rssPeak = Math.max(sampled, exact ? procStatus(pid, "VmHWM") : 0);
  return {
    route,
    bodyBytes: body.length,
    ms,
    rssBefore,
    rssPeak,
    growth: rssPeak - rssBefore,
  };
}

/** The load itself: the normal clients and the attackers, until the deadline. */
async function load(
  options: SoakOptions,
  clients: Record<Kind, number>,
  attack: AttackOptions,
  report: SoakReport,
  port: number,
  tinyBody: TinyBody | null,
  tinyFailed: (error: unknown) => void,
): Promise<void> {
  const pid = report.pid;
  const began = Date.now();
  const deadline = began + options.seconds * 1000;
  const running = () => Date.now() < deadline;
  // Latency counts once every attacker is at work (the ramp is over).
  const attackedFrom = performance.now() + (attack.slowBodies > 0 ? attack.rampMs : 0);
  const latencies: Record<Exclude<Kind, "aborted">, number[]> = {
    keepAlive: [],
    fresh: [],
    pipelined: [],
    upload: [],
  };
  const served = (kind: Exclude<Kind, "aborted">, since: number) => {
    report.served[kind]++;
    if (since >= attackedFrom) latencies[kind].push(performance.now() - since);
  };
  const fail = (kind: Kind, error: unknown) => {
    report.errors++;
    report.errorsByKind[kind]++;
    if (report.errorSamples.length < 5) {
      report.errorSamples.push(`${kind}: ${(error as Error)?.message ?? error}`);
    }
  };
  const connect = async () => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    // Uploads are written in pieces: without this, Nagle and delayed ACKs stall each one.
    conn.setNoDelay(true);
    return conn;
  };
  const closeQuietly = (conn: Deno.Conn) => {
    try {
      conn.close();
    } catch {
      // Closed already.
    }
  };

  /** One client loop of a kind: reconnects after a failure, until the deadline. */
  const loop = async (
    kind: Kind,
    body: (conn: Deno.Conn, connecting: number) => Promise<void>,
  ) => {
    while (running()) {
      let conn: Deno.Conn | undefined;
      const connecting = performance.now();
      try {
        conn = await connect();
        await body(conn, connecting);
      } catch (error) {
        fail(kind, error);
      } finally {
        if (conn) closeQuietly(conn);
      }
    }
  };

  const keepAlive = (id: number) =>
    loop("keepAlive", async (conn) => {
      const reader = new ResponseReader(conn);
      // A hundred requests per connection, then a new one.
      for (let i = 0; i < 100 && running(); i++) {
        const path = `/ka/${id}/${i}`;
        const since = performance.now();
        await conn.write(encoder.encode(get(path)));
        checkEcho(await reader.read(), "GET", path);
        served("keepAlive", since);
      }
    });

  const fresh = (id: number) =>
    loop("fresh", async (conn, connecting) => {
      const path = `/fresh/${id}`;
      await conn.write(encoder.encode(get(path, true)));
      checkEcho(await new ResponseReader(conn).read(), "GET", path);
      served("fresh", connecting);
    });

  const pipelined = (id: number) =>
    loop("pipelined", async (conn) => {
      const reader = new ResponseReader(conn);
      for (let round = 0; round < 20 && running(); round++) {
        const paths = Array.from({ length: 10 }, (_, i) => `/pipe/${id}/${round}/${i}`);
        const since = performance.now();
        await conn.write(encoder.encode(paths.map((p) => get(p)).join("")));
        for (const path of paths) {
          checkEcho(await reader.read(), "GET", path);
          served("pipelined", since);
        }
      }
    });

  const payload = new Uint8Array(64 * 1024).fill(0x61);
  const upload = (id: number) =>
    loop("upload", async (conn) => {
      const reader = new ResponseReader(conn);
      for (let i = 0; i < 20 && running(); i++) {
        const path = `/up/${id}/${i}`;
        const size = 1024 + ((id * 7919 + i * 104729) % payload.length);
        const since = performance.now();
        if (i % 2 === 0) {
          await conn.write(encoder.encode(
            `POST ${path} HTTP/1.1\r\nHost: soak\r\nContent-Length: ${size}\r\n\r\n`,
          ));
          await writeAll(conn, payload.subarray(0, size));
        } else {
          // Chunked, in four pieces, each its own write.
          await conn.write(encoder.encode(
            `POST ${path} HTTP/1.1\r\nHost: soak\r\nTransfer-Encoding: chunked\r\n\r\n`,
          ));
          const piece = Math.ceil(size / 4);
          for (let at = 0; at < size; at += piece) {
            const n = Math.min(piece, size - at);
            await conn.write(encoder.encode(`${n.toString(16)}\r\n`));
            await writeAll(conn, payload.subarray(0, n));
            await conn.write(encoder.encode("\r\n"));
          }
          await conn.write(encoder.encode("0\r\n\r\n"));
        }
        checkEcho(await reader.read(), "POST", path, size);
        served("upload", since);
      }
    });

  const aborted = (_id: number) => {
    let n = 0;
    return loop("aborted", async (conn) => {
      // Four ways to give up: mid-head, mid-body, before reading the answer, after a byte.
      switch (n++ % 4) {
        case 0:
          await conn.write(encoder.encode("GET /abort HTTP/1.1\r\nHost: so"));
          break;
        case 1:
          await conn.write(encoder.encode(
            "POST /abort HTTP/1.1\r\nHost: soak\r\nContent-Length: 100000\r\n\r\n",
          ));
          await writeAll(conn, payload.subarray(0, 5000));
          break;
        case 2:
          await conn.write(encoder.encode(get("/abort")));
          break;
        default:
          await conn.write(encoder.encode(get("/abort")));
          await conn.read(new Uint8Array(1));
      }
      report.aborted++;
    });
  };

  // Slow bodies: a head, then a byte now and then or nothing, until the server closes.
  const slow = report.slowBodies;
  const closeMs: number[] = [];
  const closeMsByVariant = new Map<string, number[]>();
  let slowOpen = 0;
  const count = (
    table: Record<string, number>,
    key: string,
  ) => (table[key] = (table[key] ?? 0) + 1);
  const slowBodyOnce = async (variant: number) => {
    const shape = SLOW_SHAPES[variant % SLOW_SHAPES.length];
    const route = SLOW_ROUTES[Math.floor(variant / SLOW_SHAPES.length) % SLOW_ROUTES.length];
    const post = (framing: string) =>
      `POST /slow/${route} HTTP/1.1\r\nHost: soak\r\n${framing}\r\n\r\n`;
    const [head, trickle] = {
      "length-trickle": [post("Content-Length: 100000"), "x"],
      "chunked-trickle": [post("Transfer-Encoding: chunked"), "1\r\nx\r\n"],
      "chunk-size-then-silence": [post("Transfer-Encoding: chunked") + "5\r\nab", ""],
      "head-only": [post("Content-Length: 100000"), ""],
    }[shape];
    let conn: Deno.Conn;
    try {
      conn = await Deno.connect({ hostname: "127.0.0.1", port });
    } catch (error) {
      slow.connectErrors++;
      if (slow.errorSamples.length < 5) slow.errorSamples.push(String((error as Error)?.message));
      await sleep(100);
      return;
    }
    const connected = performance.now();
    slow.connections++;
    slowOpen++;
    let sent = 0;
    const pacer = trickle === "" ? undefined : setInterval(() => {
      conn.write(encoder.encode(trickle[sent++ % trickle.length])).catch(() => {});
    }, attack.trickleMs);
    let keptOpen = false;
    const bound = setTimeout(() => {
      keptOpen = true;
      closeQuietly(conn);
    }, attack.closeBoundMs);
    let answer = "";
    let how = "fin";
    try {
      await writeAll(conn, encoder.encode(head));
      const buf = new Uint8Array(4096);
      for (;;) {
        const n = await conn.read(buf);
        if (n === null) break;
        if (answer.length < 16) answer += decoder.decode(buf.subarray(0, Math.min(n, 16)));
      }
    } catch {
      how = "reset";
    }
    const ms = performance.now() - connected;
    clearInterval(pacer);
    clearTimeout(bound);
    closeQuietly(conn);
    slowOpen--;
    if (keptOpen) {
      slow.keptOpen++;
      return;
    }
    slow.closedByServer++;
    closeMs.push(ms);
    const key = `${shape}/${route}`;
    if (!closeMsByVariant.has(key)) closeMsByVariant.set(key, []);
    closeMsByVariant.get(key)!.push(ms);
    count(slow.statuses, /^HTTP\/1\.[01] (\d{3})/.exec(answer)?.[1] ?? "none");
    count(slow.closes, how);
  };
  const slowBody = async (id: number) => {
    await sleep(attack.rampMs * id / attack.slowBodies);
    for (let round = 0; running(); round++) await slowBodyOnce(id + round);
  };

  // Tiny chunks: 2 MB one byte per chunk, read whole (even ids) or in 64 KiB reads (odd).
  const tinyChunks = async (id: number) => {
    const route = id % 2 === 0 ? "whole" : "stream";
    while (running() && tinyBody !== null) {
      try {
        await tinyUpload(port, route, tinyBody);
        report.tinyChunks.served[route]++;
      } catch (error) {
        tinyFailed(error);
        await sleep(100);
      }
    }
  };

  const sampler = setInterval(() => {
    const rss = procStatus(pid, "VmRSS");
    report.rss.peak = Math.max(report.rss.peak, rss);
    if (report.rss.mid === 0 && Date.now() - began >= options.seconds * 500) report.rss.mid = rss;
  }, 250);
  const progress = setInterval(() => {
    const served = Object.values(report.served).reduce((a, b) => a + b, 0);
    const t = report.tinyChunks.served;
    options.log?.(
      `  ${Math.round((Date.now() - began) / 1000)} s: ${served} served, ${report.aborted} ` +
        `aborted, ${report.errors} errors, RSS ${mb(procStatus(pid, "VmRSS"))}, ` +
        `${openFds(pid)} fds; slow bodies ${slow.connections} (${slowOpen} open, ` +
        `${slow.closedByServer} closed); tiny chunks ${t.whole + t.stream}`,
    );
  }, 10_000);
  try {
    const loops: Promise<void>[] = [];
    const start = (n: number, f: (id: number) => Promise<void>) => {
      for (let i = 0; i < n; i++) loops.push(f(i));
    };
    start(attack.slowBodies, slowBody);
    start(attack.tinyChunks, tinyChunks);
    start(clients.keepAlive, keepAlive);
    start(clients.fresh, fresh);
    start(clients.pipelined, pipelined);
    start(clients.upload, upload);
    start(clients.aborted, aborted);
    await Promise.all(loops);
  } finally {
    clearInterval(sampler);
    clearInterval(progress);
  }
  report.requests = Object.values(report.served).reduce((a, b) => a + b, 0);
  report.latency = spread(Object.values(latencies).flat());
  for (const kind of Object.keys(latencies) as Exclude<Kind, "aborted">[]) {
    report.latencyByKind[kind] = spread(latencies[kind]);
  }
  slow.closeMs = spread(closeMs);
  for (const [key, values] of [...closeMsByVariant].sort()) {
    slow.closeMsByVariant[key] = spread(values);
  }
}

function mb(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MB`;
}

function ms(value: number): string {
  return value >= 1000 ? `${(value / 1000).toFixed(2)} s` : `${value.toFixed(1)} ms`;
}

function spreadText(s: Spread): string {
  return `p50 ${ms(s.p50)}, p99 ${ms(s.p99)}, max ${ms(s.max)} (${s.count})`;
}

function tally(table: Record<string, number>): string {
  const entries = Object.entries(table);
  return entries.length === 0 ? "none" : entries.map(([k, n]) => `${k} ×${n}`).join(", ");
}

/** The report as the lines `deno task soak` prints. */
export function formatReport(r: SoakReport): string {
  const s = r.served;
  const a = r.attack;
  const slow = r.slowBodies;
  const tiny = r.tinyChunks;
  const errorsByKind = Object.entries(r.errorsByKind).filter(([, n]) => n > 0);
  const lines = [
    `Soak: ${r.seconds} s against apps/echo.ts and the attack routes (pid ${r.pid})`,
    `  requests served  ${r.requests}  (${
      (r.requests / r.seconds).toFixed(0)
    }/s: keep-alive ${s.keepAlive}, new connection ${s.fresh}, pipelined ${s.pipelined}, uploads ${s.upload})`,
    `  latency          ${spreadText(r.latency)}${
      a.slowBodies > 0 ? ", once the attackers had all started" : ""
    }`,
    ...Object.entries(r.latencyByKind).map(([kind, spread]) =>
      `    ${kind.padEnd(14)} ${spreadText(spread)}`
    ),
    `  aborted          ${r.aborted}  (mid-head, mid-body, unread, half-read)`,
    `  errors           ${r.errors}${
      errorsByKind.length ? `  (${errorsByKind.map(([k, n]) => `${k} ${n}`).join(", ")})` : ""
    }${r.errorSamples.map((e) => `\n    ${e}`).join("")}`,
    `  RSS              start ${mb(r.rss.start)}, half time ${mb(r.rss.mid)}, peak ${
      mb(r.rss.peak)
    }, end ${mb(r.rss.end)}; VmHWM over the load ${mb(r.hwm)}`,
    `  open fds         start ${r.fds.start}, end ${r.fds.end}`,
  ];
  if (a.slowBodies > 0) {
    lines.push(
      `  slow bodies      ${a.slowBodies} attackers (a byte every ${ms(a.trickleMs)}, started ` +
        `over ${ms(a.rampMs)}): ${slow.connections} connections, ${slow.closedByServer} closed ` +
        `by the server, ${slow.keptOpen} kept open past ${ms(a.closeBoundMs)}, ` +
        `${slow.connectErrors} failed to connect` +
        slow.errorSamples.map((e) => `\n    ${e}`).join(""),
      `    connect→close  ${spreadText(slow.closeMs)}`,
      `    answered       ${tally(slow.statuses)}; closed by ${tally(slow.closes)}`,
      ...Object.entries(slow.closeMsByVariant).map(([key, spread]) =>
        `    ${key.padEnd(31)} ${spreadText(spread)}`
      ),
    );
  }
  if (a.tinyChunks > 0) {
    lines.push(
      `  tiny chunks      ${a.tinyChunks} clients, ${mb(a.tinyBytes)} one byte per chunk: ` +
        `read whole ${tiny.served.whole}, streamed ${tiny.served.stream}, errors ${tiny.errors}` +
        tiny.errorSamples.map((e) => `\n    ${e}`).join(""),
      ...tiny.alone.map((m) =>
        `    alone, ${m.route.padEnd(6)}  RSS +${mb(m.growth)} (${
          (m.growth / m.bodyBytes).toFixed(2)
        }× the body) in ${ms(m.ms)}`
      ),
    );
  }
  if (r.serverNotes.length > 0) {
    lines.push("  the server said", ...r.serverNotes.map((line) => `    ${line}`));
  }
  return lines.join("\n");
}

/** Whether the run passed: no failure, no descriptor leak, every attacker closed. */
export function soakPassed(r: SoakReport): boolean {
  return r.errors === 0 && r.fds.end <= r.fds.start && r.slowBodies.keptOpen === 0 &&
    r.tinyChunks.errors === 0;
}

const USAGE = `deno run -A bench/soak.ts [options] [-- server flags…]
  --seconds N        how long the load runs (default 60)
  --slow-bodies N    slow-body attackers at once (default ${DEFAULT_ATTACK.slowBodies}; 0: none)
  --trickle S        seconds between a slow body's bytes (default ${
  DEFAULT_ATTACK.trickleMs / 1000
})
  --ramp S           slow-body attackers start over S seconds (default ${
  DEFAULT_ATTACK.rampMs / 1000
}; 0: all at once)
  --tiny-chunks N    tiny-chunk clients at once (default ${DEFAULT_ATTACK.tinyChunks}; 0: none)
  --tiny-bytes N     a tiny-chunk body's bytes (default ${DEFAULT_ATTACK.tinyBytes})
  --close-bound S    an attacker still open S seconds after connecting is a failure (default ${
  DEFAULT_ATTACK.closeBoundMs / 1000
})
  --json             also print the report as JSON`;

/** The command line: the soak's options, and the server's flags after `--`. */
export function parseArgs(args: string[]): SoakOptions & { json: boolean } {
  const dash = args.indexOf("--");
  const own = dash < 0 ? args : args.slice(0, dash);
  const result = {
    seconds: 60,
    attack: { ...DEFAULT_ATTACK },
    serverArgs: dash < 0 ? [] : args.slice(dash + 1),
    json: false,
  };
  const numbers: Record<string, (n: number) => void> = {
    "--seconds": (n) => (result.seconds = n),
    "--slow-bodies": (n) => (result.attack.slowBodies = n),
    "--trickle": (n) => (result.attack.trickleMs = n * 1000),
    "--ramp": (n) => (result.attack.rampMs = n * 1000),
    "--tiny-chunks": (n) => (result.attack.tinyChunks = n),
    "--tiny-bytes": (n) => (result.attack.tinyBytes = n),
    "--close-bound": (n) => (result.attack.closeBoundMs = n * 1000),
  };
  const positive = new Set(["--seconds", "--trickle", "--tiny-bytes", "--close-bound"]);
  for (let i = 0; i < own.length; i++) {
    const flag = own[i];
    if (flag === "--json") {
      result.json = true;
      continue;
    }
    const set = numbers[flag];
    if (!set) throw new Error(`unknown option ${JSON.stringify(flag)}\n${USAGE}`);
    const n = Number(own[++i]);
    if (!Number.isFinite(n) || n < 0 || (positive.has(flag) && n === 0)) {
      throw new Error(`${flag}: expected a number, got ${JSON.stringify(own[i])}\n${USAGE}`);
    }
    set(n);
  }
  return result;
}

if (import.meta.main) {
  let options: ReturnType<typeof parseArgs>;
  try {
    options = parseArgs(Deno.args);
  } catch (error) {
    console.error((error as Error).message);
    Deno.exit(2);
  }
  const a = options.attack as AttackOptions;
  console.log(
    `Soak: ${options.seconds} s of mixed load against a child server, with ${a.slowBodies} ` +
      `slow-body and ${a.tinyChunks} tiny-chunk attackers…`,
  );
  const report = await soak({ ...options, log: (line) => console.log(line) });
  if (options.json) console.log(JSON.stringify(report));
  console.log(formatReport(report));
  Deno.exit(soakPassed(report) ? 0 : 1);
}
