// `deno task soak`: mixed load against a real `deno run -A main.ts apps/echo.ts` child for a
// while — keep-alive clients, a new connection per request, pipelining, uploads (Content-Length
// and chunked) and aborted requests — then the figures: requests served, errors, the child's
// RSS and open descriptors at the start and the end (from /proc/<pid>/).
//
//   deno run -A bench/soak.ts [--seconds N] [--json]      (default 60 s)
//
// tests/soak_test.ts runs a shorter soak() and asserts no descriptor leak and bounded RSS.

import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("../", import.meta.url));

export interface SoakOptions {
  seconds: number;
  /** Clients of each kind running at once. */
  clients?: Partial<Record<Kind, number>>;
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

export interface SoakReport {
  seconds: number;
  pid: number;
  /** Responses received complete and correct, by kind of client. */
  served: Record<Exclude<Kind, "aborted">, number>;
  requests: number;
  /** Requests a client gave up on deliberately (not counted as served). */
  aborted: number;
  errors: number;
  /** The first few errors, for the report. */
  errorSamples: string[];
  /** Bytes: after warm-up, the highest seen, at half time, and after the load. */
  rss: { start: number; peak: number; mid: number; end: number };
  fds: { start: number; end: number };
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

interface Child {
  process: Deno.ChildProcess;
  port: number;
  stderrTail: string[];
  drained: Promise<void>;
}

async function startServer(extra: string[]): Promise<Child> {
  const process = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "main.ts",
      "apps/echo.ts",
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
      }
    }
    failed(new Error(`The server exited before listening:\n${stderrTail.join("\n")}`));
  })();
  const timer = setTimeout(() => failed(new Error("The server did not start in 20 s")), 20_000);
  try {
    const port = await listening;
    return { process, port, stderrTail, drained };
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

/** Runs the soak; the child is always stopped. */
export async function soak(options: SoakOptions): Promise<SoakReport> {
  const clients = { ...DEFAULT_CLIENTS, ...options.clients };
  const child = await startServer(options.serverArgs ?? []);
  const pid = child.process.pid;
  const report: SoakReport = {
    seconds: options.seconds,
    pid,
    served: { keepAlive: 0, fresh: 0, pipelined: 0, upload: 0 },
    requests: 0,
    aborted: 0,
    errors: 0,
    errorSamples: [],
    rss: { start: 0, peak: 0, mid: 0, end: 0 },
    fds: { start: 0, end: 0 },
  };
  const port = child.port;
  // The baseline is taken after one request has been served: a fresh process opens a few
  // descriptors lazily (signal handling, caches) that are not the load's doing.
  await warmUp(port);
  report.rss.start = report.rss.peak = procStatus(pid, "VmRSS");
  report.fds.start = openFds(pid);
  const deadline = Date.now() + options.seconds * 1000;
  const running = () => Date.now() < deadline;
  const fail = (kind: Kind, error: unknown) => {
    report.errors++;
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
  const loop = async (kind: Kind, body: (conn: Deno.Conn) => Promise<void>) => {
    while (running()) {
      let conn: Deno.Conn | undefined;
      try {
        conn = await connect();
        await body(conn);
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
        await conn.write(encoder.encode(get(path)));
        checkEcho(await reader.read(), "GET", path);
        report.served.keepAlive++;
      }
    });

  const fresh = (id: number) =>
    loop("fresh", async (conn) => {
      const path = `/fresh/${id}`;
      await conn.write(encoder.encode(get(path, true)));
      checkEcho(await new ResponseReader(conn).read(), "GET", path);
      report.served.fresh++;
    });

  const pipelined = (id: number) =>
    loop("pipelined", async (conn) => {
      const reader = new ResponseReader(conn);
      for (let round = 0; round < 20 && running(); round++) {
        const paths = Array.from({ length: 10 }, (_, i) => `/pipe/${id}/${round}/${i}`);
        await conn.write(encoder.encode(paths.map((p) => get(p)).join("")));
        for (const path of paths) {
          checkEcho(await reader.read(), "GET", path);
          report.served.pipelined++;
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
        if (i % 2 === 0) {
          await conn.write(encoder.encode(
            `POST ${path} HTTP/1.1\r\nHost: soak\r\nContent-Length: ${size}\r\n\r\n`,
          ));
          await conn.write(payload.subarray(0, size));
        } else {
          // Chunked, in four pieces, each its own write.
          await conn.write(encoder.encode(
            `POST ${path} HTTP/1.1\r\nHost: soak\r\nTransfer-Encoding: chunked\r\n\r\n`,
          ));
          const piece = Math.ceil(size / 4);
          for (let at = 0; at < size; at += piece) {
            const n = Math.min(piece, size - at);
            await conn.write(encoder.encode(`${n.toString(16)}\r\n`));
            await conn.write(payload.subarray(0, n));
            await conn.write(encoder.encode("\r\n"));
          }
          await conn.write(encoder.encode("0\r\n\r\n"));
        }
        checkEcho(await reader.read(), "POST", path, size);
        report.served.upload++;
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
          await conn.write(payload.subarray(0, 5000));
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

  const began = Date.now();
  const sampler = setInterval(() => {
    const rss = procStatus(pid, "VmRSS");
    report.rss.peak = Math.max(report.rss.peak, rss);
    if (report.rss.mid === 0 && Date.now() - began >= options.seconds * 500) report.rss.mid = rss;
  }, 250);
  const progress = setInterval(() => {
    const served = Object.values(report.served).reduce((a, b) => a + b, 0);
    options.log?.(
      `  ${Math.round((Date.now() - began) / 1000)} s: ${served} served, ${report.aborted} ` +
        `aborted, ${report.errors} errors, RSS ${mb(procStatus(pid, "VmRSS"))}, ` +
        `${openFds(pid)} fds`,
    );
  }, 10_000);
  try {
    const loops: Promise<void>[] = [];
    const start = (n: number, f: (id: number) => Promise<void>) => {
      for (let i = 0; i < n; i++) loops.push(f(i));
    };
    start(clients.keepAlive, keepAlive);
    start(clients.fresh, fresh);
    start(clients.pipelined, pipelined);
    start(clients.upload, upload);
    start(clients.aborted, aborted);
    await Promise.all(loops);
    report.requests = Object.values(report.served).reduce((a, b) => a + b, 0);
    // Every client connection is closed now: the server should be back to its baseline.
    const until = Date.now() + 15_000;
    for (;;) {
      report.fds.end = openFds(pid);
      if (report.fds.end <= report.fds.start || Date.now() > until) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    report.rss.end = procStatus(pid, "VmRSS");
    report.rss.peak = Math.max(report.rss.peak, report.rss.end);
    return report;
  } finally {
    clearInterval(sampler);
    clearInterval(progress);
    try {
      child.process.kill("SIGTERM");
    } catch {
      // Gone already.
    }
    await child.process.status;
    await child.drained;
  }
}

function mb(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MB`;
}

/** The report as the lines `deno task soak` prints. */
export function formatReport(r: SoakReport): string {
  const s = r.served;
  return [
    `Soak: ${r.seconds} s against apps/echo.ts (pid ${r.pid})`,
    `  requests served  ${r.requests}  (${
      (r.requests / r.seconds).toFixed(0)
    }/s: keep-alive ${s.keepAlive}, new connection ${s.fresh}, pipelined ${s.pipelined}, uploads ${s.upload})`,
    `  aborted          ${r.aborted}  (mid-head, mid-body, unread, half-read)`,
    `  errors           ${r.errors}${r.errorSamples.map((e) => `\n    ${e}`).join("")}`,
    `  RSS              start ${mb(r.rss.start)}, half time ${mb(r.rss.mid)}, peak ${
      mb(r.rss.peak)
    }, end ${mb(r.rss.end)}`,
    `  open fds         start ${r.fds.start}, end ${r.fds.end}`,
  ].join("\n");
}

if (import.meta.main) {
  const i = Deno.args.indexOf("--seconds");
  const seconds = i >= 0 ? Number(Deno.args[i + 1]) : 60;
  if (!(seconds > 0)) {
    console.error(
      `--seconds: expected a number of seconds, got ${JSON.stringify(Deno.args[i + 1])}`,
    );
    Deno.exit(2);
  }
  console.log(`Soak: ${seconds} s of mixed load against a child server…`);
  const report = await soak({ seconds, log: (line) => console.log(line) });
  if (Deno.args.includes("--json")) console.log(JSON.stringify(report));
  console.log(formatReport(report));
  Deno.exit(report.errors > 0 || report.fds.end > report.fds.start ? 1 : 0);
}
