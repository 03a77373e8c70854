// `deno task bench:ws`: tsgi's WebSockets against Deno.serve + Deno.upgradeWebSocket, both
// serving the same echo handler (tests/fixtures/ws_echo_app.ts), on loopback.
//
//   deno run -A bench/ws_bench.ts [--repeats 3] [--duration 5] [--warmup 1] [--no-pin]
//       Two scenarios, servers interleaved, medians of the repeats and the ratio tsgi/Deno.serve:
//       "small": 64-byte echo round trips on 64 connections (round trips/s, p50/p99 latency);
//       "1mib":  1 MiB echo round trips on 4 connections (MiB/s echoed).
//       The server runs on CPU 0 and the client on CPU 1 (taskset). Each run also reports how
//       busy the client and the server were over the measured seconds (/proc/PID/stat): a
//       client near one whole CPU measures itself, not the server.
//   --client epoll      bench/ws_epoll_client.ts, the default: one epoll loop over libc (FFI),
//                       about half a CPU at the servers' pace.
//   --client websocket  bench/ws_client.ts, Deno's WebSocket: busy 85–95% at the same pace.
//
//   deno run -A bench/ws_bench.ts --idle 10000
//       Memory per idle socket: server RSS (VmRSS) before and after opening that many sockets.
//       Raise the descriptor limit first (`ulimit -n 20000` or more); tsgi gets --max-connections 2N.
//
//   deno run -A bench/ws_bench.ts --serve-deno PORT
//       The Deno.serve peer itself (what the bench starts).

import { makeEchoHandler } from "../tests/fixtures/ws_echo_app.ts";
import type { ClientResult } from "./ws_client.ts";
import { freePort, rssKiB, spawnServer, stopAll, stopServer, waitReady } from "./process.ts";
import type { ServerProcess } from "./process.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const SERVERS = ["tsgi", "deno"] as const;
type Server = typeof SERVERS[number];
const SERVER_CPU = 0;
const CLIENT_CPU = 1;

interface Scenario {
  id: string;
  size: number;
  connections: number;
}

const SCENARIOS: Scenario[] = [
  { id: "small", size: 64, connections: 64 },
  { id: "1mib", size: 1024 * 1024, connections: 4 },
];

interface Options {
  repeats: number;
  durationSec: number;
  warmupSec: number;
  pin: boolean;
  idle: number;
  serveDeno: number | null;
  client: "epoll" | "websocket";
}

const CLIENTS = { epoll: "bench/ws_epoll_client.ts", websocket: "bench/ws_client.ts" };

function parseOptions(args: string[]): Options {
  const options: Options = {
    repeats: 3,
    durationSec: 5,
    warmupSec: 1,
    pin: true,
    idle: 0,
    serveDeno: null,
    client: "epoll",
  };
  for (let i = 0; i < args.length; i++) {
    const flag = args[i];
    const number = () => {
      const value = Number(args[++i]);
      if (!Number.isInteger(value) || value < 0) throw new Error(`${flag} takes a whole number`);
      return value;
    };
    if (flag === "--repeats") options.repeats = Math.max(1, number());
    else if (flag === "--duration") options.durationSec = Math.max(1, number());
    else if (flag === "--warmup") options.warmupSec = number();
    else if (flag === "--no-pin") options.pin = false;
    else if (flag === "--idle") options.idle = number();
    else if (flag === "--serve-deno") options.serveDeno = number();
    else if (flag === "--client") {
      const client = args[++i];
      if (client !== "epoll" && client !== "websocket") {
        throw new Error("--client takes epoll or websocket");
      }
      options.client = client;
    } else throw new Error(`unknown flag ${flag} (see the head of bench/ws_bench.ts)`);
  }
  return options;
}

function canPin(): boolean {
  if (navigator.hardwareConcurrency < 2) return false;
  try {
    return new Deno.Command("taskset", { args: ["-V"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

function pinned(argv: string[], cpu: number | null): string[] {
  return cpu === null ? argv : ["taskset", "-c", String(cpu), ...argv];
}

/** The echo server's command line; `extra` are more tsgi flags (the Deno.serve peer has none). */
export function serverArgv(server: Server, port: number, extra: string[] = []): string[] {
  const deno = Deno.execPath();
  if (server === "tsgi") {
    return [
      deno,
      "run",
      "-A",
      "main.ts",
      "tests/fixtures/ws_echo_app.ts",
      "--bind",
      `127.0.0.1:${port}`,
      "--access-log",
      "off",
      ...extra,
    ];
  }
  return [deno, "run", "-A", "bench/ws_bench.ts", "--serve-deno", String(port)];
}

async function startServer(
  server: Server,
  cpu: number | null,
  extra: string[] = [],
): Promise<{ process: ServerProcess; port: number }> {
  const port = freePort();
  const process = spawnServer(pinned(serverArgv(server, port, extra), cpu), ROOT);
  const ready = await waitReady(process, port);
  if (!ready.ready) {
    await stopServer(process, 1000);
    throw new Error(`${server} did not start: ${ready.reason}`);
  }
  return { process, port };
}

/** A client's result, and the share of a CPU the client and the server used while it measured. */
interface Run extends ClientResult {
  clientBusy: number;
  serverBusy: number;
}

/** CPU seconds (user + system) a process has used so far. */
function cpuSeconds(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime; USER_HZ is 100
}

async function runClient(
  port: number,
  serverPid: number,
  scenario: Scenario,
  options: Options,
  cpu: number | null,
): Promise<Run> {
  const argv = pinned([
    Deno.execPath(),
    "run",
    "-A",
    CLIENTS[options.client],
    "--url",
    `ws://127.0.0.1:${port}/`,
    "--connections",
    String(scenario.connections),
    "--size",
    String(scenario.size),
    "--duration",
    String(options.durationSec),
    "--warmup",
    String(options.warmupSec),
  ], cpu);
  const [command, ...args] = argv;
  const child = new Deno.Command(command, { args, cwd: ROOT, stdout: "piped", stderr: "piped" })
    .spawn();
  // Bounded: the client's own deadline plus generous room for connecting and closing.
  const limitMs = (options.durationSec + options.warmupSec + 30) * 1000;
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
  }, limitMs);
  // Busy shares over the measured seconds, less half a second at each end.
  const windowSec = Math.max(0.5, options.durationSec - 1);
  const busy = sampleBusy([child.pid, serverPid], options.warmupSec + 1, windowSec);
  const output = await child.output();
  clearTimeout(timer);
  const [clientBusy, serverBusy] = await busy;
  const text = new TextDecoder().decode(output.stdout).trim();
  if (!output.success) {
    throw new Error(`client failed: ${new TextDecoder().decode(output.stderr).slice(-2000)}`);
  }
  const result = JSON.parse(text.split("\n").at(-1)!) as ClientResult;
  return { ...result, clientBusy, serverBusy };
}

/** The share of one CPU each process used from `fromSec` on, for `windowSec`; NaN if gone. */
async function sampleBusy(pids: number[], fromSec: number, windowSec: number): Promise<number[]> {
  const read = () =>
    pids.map((pid) => {
      try {
        return cpuSeconds(pid);
      } catch {
        return NaN;
      }
    });
  await sleep(fromSec * 1000);
  const before = read();
  await sleep(windowSec * 1000);
  return read().map((after, i) => (after - before[i]) / windowSec);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

const fixed = (n: number, digits = 1) => n.toFixed(digits);

async function throughput(options: Options): Promise<void> {
  const pin = options.pin && canPin();
  const serverCpu = pin ? SERVER_CPU : null;
  const clientCpu = pin ? CLIENT_CPU : null;
  console.log(
    pin
      ? `bench:ws: server on CPU ${SERVER_CPU}, client on CPU ${CLIENT_CPU} (taskset)`
      : "bench:ws: no CPU pinning",
  );
  console.log(
    `bench:ws: ${options.repeats} repeats of ${options.durationSec} s (+${options.warmupSec} s ` +
      `warm-up), servers interleaved, client ${CLIENTS[options.client]}`,
  );
  const results = new Map<string, Run[]>();
  for (let repeat = 1; repeat <= options.repeats; repeat++) {
    for (const scenario of SCENARIOS) {
      for (const server of SERVERS) {
        const { process, port } = await startServer(server, serverCpu);
        try {
          const result = await runClient(port, process.pid, scenario, options, clientCpu);
          const key = `${scenario.id}/${server}`;
          results.set(key, [...(results.get(key) ?? []), result]);
          console.log(
            `  #${repeat} ${scenario.id.padEnd(5)} ${server.padEnd(4)} ` +
              `${fixed(result.roundTripsPerSec, 0).padStart(8)} rt/s ` +
              `${fixed(result.mibPerSec).padStart(7)} MiB/s ` +
              `p50 ${fixed(result.p50Ms, 3)} ms p99 ${fixed(result.p99Ms, 3)} ms ` +
              `busy: client ${fixed(result.clientBusy * 100, 0)}%, ` +
              `server ${fixed(result.serverBusy * 100, 0)}%` +
              (result.errors ? ` ERRORS ${result.errors}` : ""),
          );
        } finally {
          await stopServer(process);
        }
      }
    }
  }
  console.log("\nmedians (ratio = tsgi / Deno.serve; for latency, lower is better)");
  for (const scenario of SCENARIOS) {
    const of = (server: Server, pick: (r: Run) => number) =>
      median((results.get(`${scenario.id}/${server}`) ?? []).map(pick));
    const row = (label: string, pick: (r: Run) => number, digits: number, ratio = true) => {
      const t = of("tsgi", pick);
      const d = of("deno", pick);
      console.log(
        `  ${scenario.id.padEnd(5)} ${label.padEnd(10)} tsgi ${fixed(t, digits).padStart(9)}  ` +
          `Deno.serve ${fixed(d, digits).padStart(9)}` +
          (ratio ? `  ratio ${fixed(t / d, 2)}x` : ""),
      );
    };
    if (scenario.size <= 1024) {
      row("rt/s", (r) => r.roundTripsPerSec, 0);
      row("p50 ms", (r) => r.p50Ms, 3);
      row("p99 ms", (r) => r.p99Ms, 3);
    } else {
      row("MiB/s", (r) => r.mibPerSec, 1);
      row("p50 ms", (r) => r.p50Ms, 2);
    }
    // How busy each side was: a client near 100% measured itself.
    row("client %", (r) => r.clientBusy * 100, 0, false);
    row("server %", (r) => r.serverBusy * 100, 0, false);
  }
}

/** Opens `count` sockets, `batch` at a time, and keeps them open. */
async function openIdle(url: string, count: number, batch = 250): Promise<WebSocket[]> {
  const sockets: WebSocket[] = [];
  while (sockets.length < count) {
    const n = Math.min(batch, count - sockets.length);
    const opened = await Promise.all(
      Array.from({ length: n }, () =>
        new Promise<WebSocket>((resolve, reject) => {
          const ws = new WebSocket(url);
          const timer = setTimeout(() => reject(new Error("no open within 20 s")), 20_000);
          ws.onopen = () => {
            clearTimeout(timer);
            resolve(ws);
          };
          ws.onerror = () => {
            clearTimeout(timer);
            reject(new Error(`socket ${sockets.length} failed to open`));
          };
        })),
    );
    sockets.push(...opened);
  }
  return sockets;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function settledRss(pid: number): Promise<number> {
  // Let the server's collector catch up: the least of a few readings a while apart.
  let least = Infinity;
  for (let i = 0; i < 5; i++) {
    await sleep(400);
    least = Math.min(least, rssKiB(pid));
  }
  return least;
}

async function idleMemory(options: Options): Promise<void> {
  const count = options.idle;
  console.log(`bench:ws --idle: ${count} idle WebSockets per server (VmRSS of the server)`);
  for (const server of SERVERS) {
    const extra = server === "tsgi" ? ["--max-connections", String(count * 2)] : [];
    const { process, port } = await startServer(server, null, extra);
    const url = `ws://127.0.0.1:${port}/`;
    try {
      // Warm the upgrade path so that code compiled on first use is not counted per socket.
      const warm = await openIdle(url, 100);
      for (const ws of warm) ws.close();
      await sleep(500);
      const before = await settledRss(process.pid);
      const started = performance.now();
      const sockets = await openIdle(url, count);
      const openMs = performance.now() - started;
      const after = await settledRss(process.pid);
      const growth = after - before;
      console.log(
        `  ${server.padEnd(4)} before ${fixed(before / 1024)} MiB, after ${fixed(after / 1024)} ` +
          `MiB with ${sockets.length} sockets (opened in ${fixed(openMs / 1000, 1)} s): ` +
          `${fixed((growth * 1024) / sockets.length / 1024, 2)} KiB per socket`,
      );
      for (const ws of sockets) ws.close();
      await sleep(1000);
    } finally {
      await stopServer(process);
    }
  }
}

function serveDeno(port: number): void {
  const handler = makeEchoHandler(Deno.upgradeWebSocket);
  Deno.serve({
    hostname: "127.0.0.1",
    port,
    onListen: ({ hostname, port }) => console.error(`Listening on http://${hostname}:${port}`),
  }, handler);
}

if (import.meta.main) {
  const options = parseOptions(Deno.args);
  if (options.serveDeno !== null) serveDeno(options.serveDeno);
  else {
    Deno.addSignalListener("SIGINT", async () => {
      await stopAll();
      Deno.exit(130);
    });
    try {
      if (options.idle > 0) await idleMemory(options);
      else await throughput(options);
    } finally {
      await stopAll();
    }
    Deno.exit(0);
  }
}
