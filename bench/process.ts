// Child servers for the benchmarks: start, wait until they answer, measure RSS, stop by PID.
// Only processes this module started (and their descendants) are ever signalled.

const HOST = "127.0.0.1";
const TAIL_BYTES = 8 * 1024;
const POLL_MS = 50;

/** A server child process with the last bytes of its output kept for error messages. */
export interface ServerProcess {
  readonly pid: number;
  readonly child: Deno.ChildProcess;
  /** Set once the process has exited. */
  exitCode(): number | null;
  /** The last few KiB of stdout and stderr, for reporting why a server failed. */
  outputTail(): string;
}

const live = new Set<ServerProcess>();

/** Asks the kernel for a free port on 127.0.0.1 by binding port 0 and releasing it. */
export function freePort(): number {
  const listener = Deno.listen({ hostname: HOST, port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** Keeps draining a pipe into a bounded buffer so that the child never blocks on a full pipe. */
async function drainInto(stream: ReadableStream<Uint8Array>, tail: { text: string }) {
  const decoder = new TextDecoder();
  for await (const chunk of stream) {
    tail.text = (tail.text + decoder.decode(chunk, { stream: true })).slice(-TAIL_BYTES);
  }
}

/**
 * Output fit for a one-line reason: no colour codes, and no Rust backtrace (children inherit
 * RUST_BACKTRACE, which makes Deno append dozens of "<unknown>" frames to any error).
 */
export function cleanOutput(text: string): string {
  // deno-lint-ignore no-control-regex
  const plain = text.replace(/\x1b\[[0-9;]*m/g, "");
  const backtrace = plain.indexOf("Stack backtrace:");
  return (backtrace < 0 ? plain : plain.slice(0, backtrace)).trim();
}

/** Starts `argv` in `cwd` with both output pipes drained in the background. */
export function spawnServer(argv: string[], cwd: string): ServerProcess {
  const [command, ...args] = argv;
  const child = new Deno.Command(command, {
    args,
    cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const tail = { text: "" };
  let code: number | null = null;
  drainInto(child.stdout, tail).catch(() => {});
  drainInto(child.stderr, tail).catch(() => {});
  const server: ServerProcess = {
    pid: child.pid,
    child,
    exitCode: () => code,
    outputTail: () => cleanOutput(tail.text),
  };
  live.add(server);
  child.status.then((status) => {
    code = status.code;
    live.delete(server);
  });
  return server;
}

/** A parsed HTTP/1.1 response, read to EOF over a `Connection: close` socket. */
export interface ProbeResponse {
  status: number;
  headers: Map<string, string>;
  body: Uint8Array;
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

function indexOfCrlfCrlf(bytes: Uint8Array): number {
  for (let i = 0; i + 3 < bytes.length; i++) {
    if (bytes[i] === 13 && bytes[i + 1] === 10 && bytes[i + 2] === 13 && bytes[i + 3] === 10) {
      return i;
    }
  }
  return -1;
}

/** Decodes a chunked body; good enough for a probe (no trailers, well-formed input). */
function dechunk(bytes: Uint8Array): Uint8Array {
  const text = new TextDecoder("latin1");
  const parts: Uint8Array[] = [];
  let at = 0;
  for (let guard = 0; guard < 100_000 && at < bytes.length; guard++) {
    let lineEnd = at;
    while (lineEnd + 1 < bytes.length && !(bytes[lineEnd] === 13 && bytes[lineEnd + 1] === 10)) {
      lineEnd++;
    }
    const size = parseInt(text.decode(bytes.subarray(at, lineEnd)).split(";")[0], 16);
    if (!(size > 0)) break;
    parts.push(bytes.subarray(lineEnd + 2, lineEnd + 2 + size));
    at = lineEnd + 2 + size + 2;
  }
  return concat(parts);
}

function parseResponse(raw: Uint8Array): ProbeResponse {
  const headEnd = indexOfCrlfCrlf(raw);
  if (headEnd < 0) {
    throw new Error(`Cannot parse probe response: no end of head in ${raw.length} bytes`);
  }
  const lines = new TextDecoder("latin1").decode(raw.subarray(0, headEnd)).split("\r\n");
  const status = Number(lines[0].split(" ")[1]);
  const headers = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    if (colon > 0) {
      headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
    }
  }
  let body = raw.subarray(headEnd + 4);
  if (headers.get("transfer-encoding")?.toLowerCase() === "chunked") body = dechunk(body);
  return { status, headers, body };
}

/**
 * Sends one request on a fresh connection and reads the response to EOF. A raw socket rather
 * than fetch, so that no pooled keep-alive connection stays open into the measured run.
 */
export async function probe(
  port: number,
  method: string,
  path: string,
  body?: Uint8Array,
  timeoutMs = 5000,
): Promise<ProbeResponse> {
  const conn = await Deno.connect({ hostname: HOST, port });
  const timer = setTimeout(() => conn.close(), timeoutMs);
  try {
    const head = `${method} ${path} HTTP/1.1\r\nHost: ${HOST}:${port}\r\nConnection: close\r\n` +
      (body ? `Content-Length: ${body.length}\r\n` : "") + "\r\n";
    await writeAll(conn, new TextEncoder().encode(head));
    if (body) await writeAll(conn, body);
    const chunks: Uint8Array[] = [];
    const buffer = new Uint8Array(64 * 1024);
    let total = 0;
    // Bounded: a probe response is small; 16 MiB is far past any route used here but /1m.
    while (total < 16 * 1024 * 1024) {
      const n = await conn.read(buffer);
      if (n === null) break;
      chunks.push(buffer.slice(0, n));
      total += n;
    }
    return parseResponse(concat(chunks));
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch { /* already closed by the timer */ }
  }
}

/** Writes every byte; Deno's `write` may write fewer than asked. */
export async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let at = 0; at < bytes.length;) at += await conn.write(bytes.subarray(at));
}

/** How waiting for a server ended. */
export type Readiness = { ready: true } | { ready: false; exitCode: number | null; reason: string };

/**
 * Polls until `GET /` answers with any status, the child exits, or the deadline passes.
 * Polling rather than a fixed sleep: start-up time differs by server and by cache state.
 */
export async function waitReady(
  server: ServerProcess,
  port: number,
  deadlineMs = 20_000,
): Promise<Readiness> {
  const deadline = Date.now() + deadlineMs;
  while (Date.now() < deadline) {
    if (server.exitCode() !== null) {
      // Give the drain a moment to collect the last words of the child.
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
      return { ready: false, exitCode: server.exitCode(), reason: server.outputTail() };
    }
    try {
      await probe(port, "GET", "/", undefined, 2000);
      return { ready: true };
    } catch {
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  }
  return { ready: false, exitCode: null, reason: `not answering after ${deadlineMs} ms` };
}

/** PIDs of every live descendant of `root`, from the parent field of /proc/<pid>/stat. */
export function descendants(root: number): number[] {
  const parentOf = new Map<number, number>();
  for (const entry of Deno.readDirSync("/proc")) {
    const pid = Number(entry.name);
    if (!Number.isInteger(pid)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
      // The command name may hold spaces and parentheses; fields resume after the last ')'.
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      parentOf.set(pid, Number(fields[1]));
    } catch { /* the process ended while we looked */ }
  }
  const found: number[] = [];
  let frontier = [root];
  for (let depth = 0; depth < 8 && frontier.length > 0; depth++) {
    const next: number[] = [];
    for (const [pid, parent] of parentOf) if (frontier.includes(parent)) next.push(pid);
    found.push(...next);
    frontier = next;
  }
  return found;
}

/** VmRSS of one process in KiB, or 0 when it is gone. */
export function rssKiB(pid: number): number {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    const match = status.match(/^VmRSS:\s+(\d+)\s+kB/m);
    return match ? Number(match[1]) : 0;
  } catch {
    return 0;
  }
}

/** RSS in MiB of a server and all its descendants (workers count towards the server). */
export function treeRssMiB(pid: number): number {
  const pids = [pid, ...descendants(pid)];
  return pids.reduce((sum, p) => sum + rssKiB(p), 0) / 1024;
}

function signal(pid: number, sig: Deno.Signal): void {
  try {
    Deno.kill(pid, sig);
  } catch { /* already gone */ }
}

async function exitedWithin(server: ServerProcess, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<false>((resolve) => timer = setTimeout(() => resolve(false), ms));
  const exited = server.child.status.then(() => true);
  const result = await Promise.race([exited, timeout]);
  clearTimeout(timer);
  return result;
}

/**
 * SIGTERM, then SIGKILL after `graceMs`. Descendants seen before the signal (workers) that
 * outlive their parent are killed too, so no run leaks a process into the next.
 */
export async function stopServer(server: ServerProcess, graceMs = 5000): Promise<void> {
  const workers = descendants(server.pid);
  if (server.exitCode() === null) {
    signal(server.pid, "SIGTERM");
    if (!(await exitedWithin(server, graceMs))) {
      signal(server.pid, "SIGKILL");
      await server.child.status;
    }
  }
  // Workers normally follow their parent out; give them the same grace before SIGKILL.
  const deadline = Date.now() + graceMs;
  while (workers.some(existsProc) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  for (const pid of workers.filter(existsProc)) signal(pid, "SIGKILL");
}

/** Whether `pid` is a live process; a zombie awaiting its reaper counts as gone. */
function existsProc(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/** Stops every server still running; for Ctrl-C and fatal errors. */
export async function stopAll(): Promise<void> {
  await Promise.all([...live].map((server) => stopServer(server, 1000)));
}
