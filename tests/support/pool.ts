// Test support for the worker pool run as a user runs it: a real master (`deno run main.ts APP
// --workers N`) on a free port or a unix socket, its workers seen through its log and /proc,
// a client that sends one request on a connection of its own, over TCP or a unix socket, and
// clients that keep sending requests, counting what they meet.

import assert from "node:assert/strict";
import { fromFileUrl } from "./paths.ts";
import {
  childrenOf,
  exited,
  fdCount,
  type Proc,
  spawnLogged,
  waitForListen,
  waitUntil,
} from "./process.ts";
import { parseResponses } from "./server.ts";

export const MAIN = fromFileUrl(new URL("../../main.ts", import.meta.url));
export const ROOT = fromFileUrl(new URL("../..", import.meta.url));

/** The flags of a master under --isolate request on a free port, logging at debug level. */
export const ISOLATE_FLAGS = [
  "--isolate",
  "request",
  "-b",
  "127.0.0.1:0",
  "--access-log",
  "off",
  "--log-level",
  "debug",
];

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
  const master = spawnLogged(Deno.execPath(), [
    "run",
    "-A",
    MAIN,
    ...args,
    "-b",
    options.bind ?? "127.0.0.1:0",
    "--access-log",
    "off",
  ], { cwd: ROOT, stdout: options.stdout ? "piped" : "null" });
  const pid = master.child.pid;
  const pool: Pool = {
    ...master,
    pid,
    port: 0,
    readyWorkers: () => readyWorkersOf(master.log(), pid),
  };
  await waitForListen(master, /Listening on \S+/, "master");
  pool.port = Number(/Listening on http:\/\/\S+:(\d+)/.exec(master.log())?.[1] ?? 0);
  await waitForPool(pool, workers);
  return pool;
}

/** The pids of the "Worker N (pid P) ready" lines in a master's log. */
export function readyPids(log: string): number[] {
  return [...log.matchAll(/Worker \d+ \(pid (\d+)\) ready/g)].map((m) => Number(m[1]));
}

/**
 * Live children of `master` that a "Worker N (pid P) ready" line of `log` names; with
 * `tagged`, only the lines that `master` wrote itself ("[PID] [INFO] Worker …").
 */
export function readyWorkersOf(log: string, master: number, tagged = false): number[] {
  const ready = new Set(
    tagged
      ? [
        ...log.matchAll(
          new RegExp(`\\[${master}\\] \\[INFO\\] Worker \\d+ \\(pid (\\d+)\\) ready`, "g"),
        ),
      ]
        .map((m) => Number(m[1]))
      : readyPids(log),
  );
  return childrenOf(master).filter((p) => ready.has(p.pid) && p.state !== "Z").map((p) => p.pid);
}

/**
 * Waits until `master` has exactly `n` children, all of them in `ready()` (its live, ready
 * ones); resolves with those.
 */
export async function waitForWorkers(
  master: number,
  n: number,
  ready: () => number[],
  deadlineMs = 15_000,
  what = `${n} worker(s) are ready`,
): Promise<number[]> {
  const serving = () => childrenOf(master).filter((p) => !isGroupGuard(p));
  await waitUntil(what, () => serving().length === n && ready().length === n, deadlineMs);
  return ready();
}

/** An isolating master's group guard (src/process/group_guard.ts), a child that serves nothing. */
export function isGroupGuard(proc: Proc): boolean {
  return proc.comm === "sh";
}

/** Waits until the master has exactly `n` children, all of them ready, none a zombie. */
export function waitForPool(pool: Pool, n: number, deadlineMs = 15_000): Promise<number[]> {
  return waitForWorkers(pool.pid, n, pool.readyWorkers, deadlineMs);
}

/**
 * What a test checks at its end: the master holds `baselineFds` descriptors again, and no
 * child of it is a zombie.
 */
export async function assertSettled(master: number, baselineFds: number): Promise<void> {
  await waitUntil(
    `the master holds ${baselineFds} descriptors again (now ${fdCount(master)})`,
    () => fdCount(master) === baselineFds,
  );
  const zombies = childrenOf(master).filter((p) => p.state === "Z");
  assert.deepEqual(zombies, [], "no child of the master is a zombie");
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

/** What clients started by load() have met so far. */
export interface Load {
  ok: number;
  failed: number;
  /**
   * Connections the kernel reset in their handshake or in a closing listener's queue: see
   * docs/workers.md, "What HUP can cost".
   */
  resets: number;
  /** The first few failures and resets, each with its time and the kind of client. */
  errors: string[];
  /** The bodies answered since the last mark() (or the start). */
  since: Set<string>;
  mark(): void;
  stop(): Promise<void>;
}

/** At most this many requests per load, whatever happens: the clients never run away. */
const MAX_REQUESTS = 100_000;

/**
 * Clients sending requests until stopped: `connections` of them opening a new connection per
 * request, and `keepAlive` fetch() clients reusing a kept-alive connection (TCP only).
 */
export function load(target: Target, connections: number, keepAlive: number): Load {
  let running = true;
  const result: Load = {
    ok: 0,
    failed: 0,
    resets: 0,
    errors: [],
    since: new Set(),
    mark: () => result.since.clear(),
    stop: async () => {
      running = false;
      await Promise.all(loops);
    },
  };
  const more = () => running && result.ok + result.failed + result.resets < MAX_REQUESTS;
  const record = (body: string) => {
    result.ok++;
    result.since.add(body);
  };
  const fail = (kind: string) => (error: unknown) => {
    // Reset in the handshake, or queued on a listener as it closed: the same kernel limit.
    if (/(connect|read) failed after \d+ ms: ConnectionReset/.test(String(error))) result.resets++;
    else result.failed++;
    if (result.errors.length < 5) {
      result.errors.push(`${new Date().toISOString()} ${kind}: ${error}`);
    }
  };
  const loops = Array.from({ length: connections }, async () => {
    while (more()) await get(target).then(record, fail("new connection"));
  });
  for (let i = 0; i < keepAlive && typeof target === "number"; i++) {
    loops.push((async () => {
      const client = Deno.createHttpClient({});
      while (more()) {
        await fetch(`http://127.0.0.1:${target}/`, { client }).then((r) => r.text()).then(
          record,
          (error) => fail("keep-alive")(`${error} (${error?.cause})`),
        );
      }
      client.close();
    })());
  }
  return result;
}

/** No request failed, and at most `allowedResets` were reset by the kernel. */
export function assertNoFailure(traffic: Load, log: string, allowedResets = 0): void {
  assert.equal(traffic.failed, 0, `${traffic.errors.join("\n")}\n${log}`);
  assert.ok(
    traffic.resets <= allowedResets,
    `${traffic.resets} reset(s), ${allowedResets} allowed\n${traffic.errors.join("\n")}\n${log}`,
  );
}

/** Whether python3 runs here (it plays systemd's part in the socket activation tests). */
export async function hasPython(): Promise<boolean> {
  try {
    return (await new Deno.Command("python3", { args: ["--version"] }).output()).success;
  } catch {
    return false;
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
