// `deno task bench:memory`: proves that bodies are streamed, not buffered. Starts tsgi with
// apps/bench_memory.ts, then downloads 1 GiB (chunked, no Content-Length) and uploads 1 GiB
// (once with Content-Length, once chunked), each against a fresh server, while sampling the
// server's VmRSS every 200 ms.
// Fails (exit 1) when any transfer is incomplete or grows RSS by 50 MB or more.
//
//   deno run -A bench/memory.ts [--size-mib 1024] [--server tsgi|deno]
//
// `--server deno` runs the same transfers against bench/peers/deno_serve.ts, for reference.

import {
  freePort,
  probe,
  type ServerProcess,
  spawnServer,
  stopAll,
  stopServer,
  treeRssMiB,
  waitReady,
  writeAll,
} from "./process.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const SAMPLE_MS = 200;
const CHUNK = 64 * 1024;
const LIMIT_MB = 50;
// No transfer on loopback should take this long; a stalled server must not hang the check.
const TRANSFER_TIMEOUT_MS = 300_000;

interface Options {
  sizeMiB: number;
  server: "tsgi" | "deno";
}

interface Outcome {
  name: string;
  bytes: number;
  expected: number;
  seconds: number;
  baseMiB: number;
  peakMiB: number;
  error?: string;
}

function parseOptions(args: string[]): Options {
  const options: Options = { sizeMiB: 1024, server: "tsgi" };
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--size-mib") options.sizeMiB = Number(args[++i]);
    else if (args[i] === "--server" && ["tsgi", "deno"].includes(args[i + 1])) {
      options.server = args[++i] as Options["server"];
    } else {
      console.error(`bench:memory: unknown option "${args[i]}"`);
      console.error("Usage: deno run -A bench/memory.ts [--size-mib N] [--server tsgi|deno]");
      Deno.exit(2);
    }
  }
  if (!Number.isInteger(options.sizeMiB) || options.sizeMiB < 1 || options.sizeMiB > 1024) {
    console.error("bench:memory: --size-mib needs a whole number from 1 to 1024");
    Deno.exit(2);
  }
  return options;
}

function serverArgv(server: Options["server"], port: number): string[] {
  const deno = Deno.execPath();
  if (server === "deno") return [deno, "run", "-A", "bench/peers/deno_serve.ts", String(port)];
  return [
    deno,
    "run",
    "-A",
    "main.ts",
    "apps/bench_memory.ts",
    "--bind",
    `127.0.0.1:${port}`,
    "--access-log",
    "off",
  ];
}

/** Samples the server's RSS every 200 ms while `transfer` runs; returns the peak seen. */
async function withRssSampling<T>(
  proc: ServerProcess,
  transfer: () => Promise<T>,
): Promise<{ value: T; peakMiB: number }> {
  let peakMiB = treeRssMiB(proc.pid);
  const timer = setInterval(() => {
    peakMiB = Math.max(peakMiB, treeRssMiB(proc.pid));
  }, SAMPLE_MS);
  try {
    const value = await transfer();
    return { value, peakMiB: Math.max(peakMiB, treeRssMiB(proc.pid)) };
  } finally {
    clearInterval(timer);
  }
}

/** GET /big, reading and discarding; the server decides the length (1 GiB in the app). */
async function download(port: number): Promise<number> {
  const response = await fetch(`http://127.0.0.1:${port}/big`, {
    signal: AbortSignal.timeout(TRANSFER_TIMEOUT_MS),
  });
  if (response.status !== 200 || !response.body) {
    throw new Error(`GET /big answered ${response.status}`);
  }
  let total = 0;
  const reader = response.body.getReader();
  // Bounded by the byte count (at most 2 GiB of chunks) as well as by the timeout.
  for (let reads = 0; reads < 2 ** 31; reads++) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.length;
  }
  return total;
}

/** POST /upload with Content-Length over a raw socket, 64 KiB writes; returns the count the app saw. */
async function uploadWithLength(port: number, size: number): Promise<number> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const timer = setTimeout(() => conn.close(), TRANSFER_TIMEOUT_MS);
  try {
    const head = `POST /upload HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n` +
      `Content-Type: application/octet-stream\r\nContent-Length: ${size}\r\n\r\n`;
    await writeAll(conn, new TextEncoder().encode(head));
    const chunk = new Uint8Array(CHUNK).fill(0x78);
    for (let sent = 0; sent < size; sent += CHUNK) {
      await writeAll(conn, chunk.subarray(0, Math.min(CHUNK, size - sent)));
    }
    const response = await readAll(conn);
    return countFromResponse(response);
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch { /* closed by the timer */ }
  }
}

async function readAll(conn: Deno.Conn): Promise<string> {
  const decoder = new TextDecoder();
  const buffer = new Uint8Array(4096);
  let text = "";
  // The answer is a short count; 64 KiB is plenty and bounds the loop.
  while (text.length < 64 * 1024) {
    const n = await conn.read(buffer);
    if (n === null) break;
    text += decoder.decode(buffer.subarray(0, n), { stream: true });
  }
  return text;
}

function countFromResponse(raw: string): number {
  const status = raw.slice(0, raw.indexOf("\r\n"));
  if (!/^HTTP\/1\.[01] 200 /.test(status)) throw new Error(`POST /upload answered "${status}"`);
  const body = raw.slice(raw.indexOf("\r\n\r\n") + 4);
  // A chunked answer is "<hex>\r\n<count>\r\n0\r\n\r\n"; the count is the longest digit run.
  const digits = body.match(/\d+/g) ?? [];
  return Math.max(...digits.map(Number), -1);
}

/** POST /upload from a ReadableStream, which fetch sends with chunked transfer coding. */
async function uploadChunked(port: number, size: number): Promise<number> {
  const chunk = new Uint8Array(CHUNK).fill(0x78);
  let sent = 0;
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent >= size) return controller.close();
      const n = Math.min(CHUNK, size - sent);
      sent += n;
      controller.enqueue(chunk.slice(0, n));
    },
  });
  const response = await fetch(`http://127.0.0.1:${port}/upload`, {
    method: "POST",
    body,
    signal: AbortSignal.timeout(TRANSFER_TIMEOUT_MS),
  });
  const text = await response.text();
  if (response.status !== 200) {
    throw new Error(`POST /upload (chunked) answered ${response.status}`);
  }
  return Number(text);
}

async function measure(
  proc: ServerProcess,
  name: string,
  expected: number,
  transfer: () => Promise<number>,
): Promise<Outcome> {
  const baseMiB = treeRssMiB(proc.pid);
  const started = performance.now();
  try {
    const { value, peakMiB } = await withRssSampling(proc, transfer);
    const seconds = (performance.now() - started) / 1000;
    return { name, bytes: value, expected, seconds, baseMiB, peakMiB };
  } catch (error) {
    const seconds = (performance.now() - started) / 1000;
    const message = error instanceof Error ? error.message : String(error);
    return {
      name,
      bytes: 0,
      expected,
      seconds,
      baseMiB,
      peakMiB: treeRssMiB(proc.pid),
      error: message,
    };
  }
}

/** RSS growth in MB (10^6 bytes, as the target is stated); VmRSS is in KiB. */
function growthMB(outcome: Outcome): number {
  return ((outcome.peakMiB - outcome.baseMiB) * 1024 * 1024) / 1e6;
}

function passed(outcome: Outcome): boolean {
  return !outcome.error && outcome.bytes === outcome.expected && growthMB(outcome) < LIMIT_MB;
}

function report(outcome: Outcome): string {
  const mib = (outcome.bytes / 2 ** 20).toFixed(0);
  const rate = (outcome.bytes / 2 ** 20 / outcome.seconds).toFixed(0);
  const problem = outcome.error ??
    (outcome.bytes !== outcome.expected
      ? `moved ${outcome.bytes} of ${outcome.expected} bytes`
      : "");
  return `${outcome.name.padEnd(28)} ${mib} MiB in ${
    outcome.seconds.toFixed(1)
  } s (${rate} MiB/s); ` +
    `RSS ${outcome.baseMiB.toFixed(1)} → ${outcome.peakMiB.toFixed(1)} MiB, ` +
    `growth ${growthMB(outcome).toFixed(1)} MB (target < ${LIMIT_MB} MB): ` +
    `${passed(outcome) ? "met" : "NOT MET"}${problem ? ` — ${problem}` : ""}`;
}

/** Runs one transfer against a fresh server, so each growth is measured from a clean start. */
async function measureFresh(
  options: Options,
  name: string,
  expected: number,
  transfer: (port: number) => Promise<number>,
): Promise<Outcome> {
  const port = freePort();
  const proc = spawnServer(serverArgv(options.server, port), ROOT);
  try {
    const ready = await waitReady(proc, port);
    if (!ready.ready) {
      const error = `${options.server} did not start: ${ready.reason}`;
      return { name, bytes: 0, expected, seconds: 0, baseMiB: 0, peakMiB: 0, error };
    }
    // A few small requests first, so the baseline includes a warmed-up connection path.
    for (let i = 0; i < 20; i++) await probe(port, "GET", "/");
    return await measure(proc, name, expected, () => transfer(port));
  } finally {
    await stopServer(proc);
  }
}

async function main(): Promise<void> {
  const options = parseOptions(Deno.args);
  const size = options.sizeMiB * 2 ** 20;
  if (options.sizeMiB !== 1024) {
    console.log(`bench:memory: note: /big always serves 1 GiB; --size-mib sets only the uploads`);
  }
  Deno.addSignalListener("SIGINT", () => {
    stopAll().finally(() => Deno.exit(130));
  });
  console.log(
    `bench:memory: ${options.server}, a fresh server per transfer, RSS every ${SAMPLE_MS} ms`,
  );
  const transfers: [string, number, (port: number) => Promise<number>][] = [
    ["download, chunked response", 2 ** 30, download],
    ["upload, Content-Length", size, (port) => uploadWithLength(port, size)],
    ["upload, chunked request", size, (port) => uploadChunked(port, size)],
  ];
  let allPassed = true;
  for (const [name, expected, transfer] of transfers) {
    const outcome = await measureFresh(options, name, expected, transfer);
    allPassed &&= passed(outcome);
    console.log(report(outcome));
  }
  Deno.exit(allPassed ? 0 : 1);
}

if (import.meta.main) await main();
