// Test support for the worker pool run as a user runs it: a real master (`deno run main.ts APP
// --workers N`) on a free port or a unix socket, its workers seen through its log and /proc,
// and a client that sends one request on a connection of its own, over TCP or a unix socket.

import { fromFileUrl } from "./paths.ts";
import { childrenOf, exited, waitUntil } from "./process.ts";
import { parseResponses } from "./server.ts";

export const MAIN = fromFileUrl(new URL("../../main.ts", import.meta.url));
export const ROOT = fromFileUrl(new URL("../..", import.meta.url));

/** Where a client connects: a TCP port on 127.0.0.1, or a unix socket's path. */
export type Target = number | { path: string };

/** A master started by startPool(). */
export interface Pool {
  child: Deno.ChildProcess;
  pid: number;
  /** The port of its first "Listening on http://…" line; 0 when it listens on unix only. */
  port: number;
  /** Its stderr so far, worker lines included (they inherit it). */
  log(): string;
  /** Its stdout so far ("" unless started with `stdout: true`), the workers' included. */
  out(): string;
  /** Resolves with the whole stderr once every process holding it has exited. */
  logDone: Promise<string>;
  /** Live children that have reported ready. */
  readyWorkers(): number[];
}

export interface PoolOptions {
  /** --bind; 127.0.0.1:0 unless given. */
  bind?: string;
  /** Read the master's stdout (otherwise it is discarded). */
  stdout?: boolean;
}

/** Starts `main.ts ...args` and waits until it listens and `workers` workers are ready. */
export async function startPool(
  args: string[],
  workers: number,
  options: PoolOptions = {},
): Promise<Pool> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      MAIN,
      ...args,
      "-b",
      options.bind ?? "127.0.0.1:0",
      "--access-log",
      "off",
    ],
    cwd: ROOT,
    stdin: "null",
    stdout: options.stdout ? "piped" : "null",
    stderr: "piped",
  }).spawn();
  let text = "";
  const logDone = (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) text += chunk;
    return text;
  })();
  let out = "";
  if (options.stdout) {
    (async () => {
      for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) out += chunk;
    })();
  }
  const pool: Pool = {
    child,
    pid: child.pid,
    port: 0,
    log: () => text,
    out: () => out,
    logDone,
    readyWorkers: () => {
      const ready = new Set(readyPids(text));
      return childrenOf(child.pid).filter((p) => ready.has(p.pid) && p.state !== "Z")
        .map((p) => p.pid);
    },
  };
  let failed = false;
  child.status.then(() => (failed = true));
  await waitUntil("the master listens", () => failed || /Listening on \S+/.test(text));
  if (failed) throw new Error(`The master exited before listening:\n${text}`);
  pool.port = Number(/Listening on http:\/\/\S+:(\d+)/.exec(text)?.[1] ?? 0);
  await waitForPool(pool, workers);
  return pool;
}

/** The pids of the "Worker N (pid P) ready" lines in a master's log. */
export function readyPids(log: string): number[] {
  return [...log.matchAll(/Worker \d+ \(pid (\d+)\) ready/g)].map((m) => Number(m[1]));
}

/** Waits until the master has exactly `n` children, all of them ready, none a zombie. */
export async function waitForPool(pool: Pool, n: number, deadlineMs = 15_000): Promise<number[]> {
  await waitUntil(`${n} worker(s) are ready`, () => {
    return childrenOf(pool.pid).length === n && pool.readyWorkers().length === n;
  }, deadlineMs);
  return pool.readyWorkers();
}

/** SIGTERM, and the master's exit status once its log is complete and its workers are gone. */
export async function stopPool(pool: Pool): Promise<Deno.CommandStatus> {
  const workers = childrenOf(pool.pid).map((p) => p.pid);
  try {
    pool.child.kill("SIGTERM");
  } catch {
    // Already exited.
  }
  const status = await pool.child.status;
  await pool.logDone;
  for (const pid of workers) {
    if (!exited(pid)) throw new Error(`worker ${pid} outlived its master`);
  }
  return status;
}

/** Polls an async `check` (no pause: each check is a request); throws at the deadline. */
export async function waitUntilAsync(
  what: string,
  check: () => Promise<boolean>,
  deadlineMs = 15_000,
): Promise<void> {
  const until = Date.now() + deadlineMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`Timed out waiting until ${what}`);
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * One GET on a connection of its own ("Connection: close"); the body of a 200 response, or an
 * Error saying at which stage the exchange broke and after how long. A response not complete
 * within `deadlineMs` is an error too: the connection is closed then.
 */
export async function get(target: Target, path = "/", deadlineMs = 15_000): Promise<string> {
  let stage = "connect";
  const started = performance.now();
  let timedOut = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const conn = typeof target === "number"
      ? await Deno.connect({ hostname: "127.0.0.1", port: target })
      : await Deno.connect({ transport: "unix", path: target.path });
    let closed = false;
    const close = () => {
      if (!closed) conn.close();
      closed = true;
    };
    timer = setTimeout(() => {
      timedOut = true;
      close();
    }, Math.max(0, deadlineMs - (performance.now() - started)));
    try {
      stage = "write";
      await conn.write(encoder.encode(
        `GET ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`,
      ));
      stage = "read";
      let text = "";
      const buf = new Uint8Array(4096);
      for (let n = await conn.read(buf); n !== null; n = await conn.read(buf)) {
        text += decoder.decode(buf.subarray(0, n), { stream: true });
      }
      const [response] = text === "" ? [] : parseResponses(text);
      if (response?.status !== 200) throw new Error(`closed with ${JSON.stringify(text)}`);
      return response.body;
    } finally {
      close();
    }
  } catch (error) {
    const ms = (performance.now() - started).toFixed(0);
    const why = timedOut ? "timed out" : String(error);
    throw new Error(`GET ${path}: ${stage} failed after ${ms} ms: ${why}`);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Runs `main.ts ...args` expecting it to exit by itself; kills it (and says so) if it is
 * still running after `deadlineMs`, as a server that should have refused to start would be.
 */
export async function runToExit(
  args: string[],
  deadlineMs = 20_000,
): Promise<{ code: number; stderr: string; killed: boolean }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    cwd: ROOT,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let killed = false;
  const timer = setTimeout(() => {
    killed = true;
    try {
      child.kill("SIGKILL");
    } catch {
      // Exited meanwhile.
    }
  }, deadlineMs);
  const [status, stderr] = await Promise.all([
    child.status,
    new Response(child.stderr).text(),
  ]);
  clearTimeout(timer);
  return { code: status.code, stderr, killed };
}
