// What permessage-deflate costs tsgi: echo throughput with and without --ws-deflate, and the
// memory an idle socket holds once it has sent and received a compressed message. The client is
// bench/ws_deflate_client.ts (Deno's WebSocket offers no compression); payloads are JSON-like
// text, which deflate shrinks about 5×.
//
//   deno run -A bench/ws_deflate_bench.ts [--duration 5] [--repeats 3] [--size BYTES]
//       Server on CPU 0, client on CPU 1; each configuration × 64 B/64 conns, 1 KiB/64 conns,
//       16 KiB/16 conns, 1 MiB/4 conns. The same message every time (with context takeover the
//       next one is mostly a reference to the last: the best case for takeover).
//   deno run -A bench/ws_deflate_bench.ts --idle 2000
//       Server VmRSS growth per socket, per configuration (raise `ulimit -n` first).

import { DeflateClient } from "./ws_deflate_client.ts";
import { freePort, spawnServer, stopAll, stopServer, waitReady } from "./process.ts";
import { serverArgv, settledRss } from "./ws_bench.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const OFFER = "permessage-deflate; client_max_window_bits";
const CONFIGS: { id: string; flags: string[] }[] = [
  { id: "off", flags: [] },
  { id: "--ws-deflate", flags: ["--ws-deflate"] },
  { id: "takeover client", flags: ["--ws-deflate", "--ws-deflate-context-takeover", "client"] },
  { id: "takeover both", flags: ["--ws-deflate", "--ws-deflate-context-takeover", "both"] },
  {
    id: "both, 12 bits",
    flags: [
      "--ws-deflate",
      "--ws-deflate-context-takeover",
      "both",
      "--ws-deflate-window-bits",
      "12",
    ],
  },
];
const SCENARIOS = [
  { size: 64, connections: 64 },
  { size: 1024, connections: 64 },
  { size: 16 * 1024, connections: 16 },
  { size: 1024 * 1024, connections: 4 },
];

/** JSON-like records, as an app's messages often are. */
function payload(size: number): Uint8Array {
  let text = "";
  for (let i = 0; text.length < size; i++) {
    text += `{"id":${i * 7919 % 100_003},"user":"user${i % 97}","score":${
      (i * 31) % 1000
    },"tags":["a","b${i % 13}"]},`;
  }
  return new TextEncoder().encode(text.slice(0, size));
}

async function startTsgi(flags: string[]) {
  const port = freePort();
  const argv = [
    "taskset",
    "-c",
    "0",
    ...serverArgv("tsgi", port, ["--max-connections", "50000", ...flags]),
  ];
  const process = spawnServer(argv, ROOT);
  const ready = await waitReady(process, port);
  if (!ready.ready) throw new Error(`tsgi did not start: ${ready.reason}`);
  return { process, port };
}

/** The client side of one run (in its own process, on CPU 1): round trips per second. */
async function client(url: string, connections: number, size: number, seconds: number) {
  const message = payload(size);
  const sockets = await Promise.all(
    Array.from({ length: connections }, () => DeflateClient.open(url, OFFER)),
  );
  let roundTrips = 0;
  let errors = 0;
  const warmEnd = performance.now() + 1000;
  const end = warmEnd + seconds * 1000;
  await Promise.all(sockets.map((ws) =>
    new Promise<void>((resolve) => {
      // Replies are counted, not inflated: the client's CPU goes to keeping the server busy.
      ws.inflate = false;
      ws.onmessage = (data, compressed) => {
        if (!compressed && data.length !== size) errors++;
        const now = performance.now();
        if (now >= warmEnd) roundTrips++;
        if (now >= end) return resolve();
        ws.send(message);
      };
      ws.send(message);
    })
  ));
  for (const ws of sockets) ws.close();
  const extensions = sockets[0].extensions;
  console.log(JSON.stringify({ roundTripsPerSec: roundTrips / seconds, errors, extensions }));
  Deno.exit(0);
}

async function runClient(port: number, connections: number, size: number, seconds: number) {
  const args = ["-c", "1", Deno.execPath(), "run", "-A", "bench/ws_deflate_bench.ts"];
  args.push("--client", `ws://127.0.0.1:${port}/`, String(connections), String(size));
  args.push(String(seconds));
  const output = await new Deno.Command("taskset", { args, cwd: ROOT, stdout: "piped" }).output();
  const text = new TextDecoder().decode(output.stdout).trim().split("\n").at(-1)!;
  return JSON.parse(text) as { roundTripsPerSec: number; errors: number; extensions: string };
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[values.length >> 1];

async function throughput(seconds: number, repeats: number, only: number): Promise<void> {
  console.log(`ws_deflate_bench: medians of ${repeats} × ${seconds} s; JSON-like payloads`);
  for (const { size, connections } of SCENARIOS) {
    if (only > 0 && size !== only) continue;
    for (const config of CONFIGS) {
      const { process, port } = await startTsgi(config.flags);
      try {
        const runs = [];
        for (let r = 0; r < repeats; r++) {
          runs.push(await runClient(port, connections, size, seconds));
        }
        const rate = median(runs.map((run) => run.roundTripsPerSec));
        const mib = (rate * size) / 1024 / 1024;
        const errors = runs.reduce((sum, run) => sum + run.errors, 0);
        console.log(
          `  ${String(size).padStart(7)} B × ${String(connections).padStart(2)} conns, ` +
            `${config.id.padEnd(20)} ${rate.toFixed(0).padStart(7)} rt/s ${
              mib.toFixed(1).padStart(7)
            } MiB/s  errors ${errors}  [${runs[0].extensions || "no extension"}]`,
        );
      } finally {
        await stopServer(process);
      }
    }
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Opens `count` sockets; each sends one 4 KiB message and gets its echo, then idles. */
async function openUsed(url: string, count: number): Promise<DeflateClient[]> {
  const message = payload(4096);
  const sockets: DeflateClient[] = [];
  while (sockets.length < count) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(200, count - sockets.length) }, async () => {
        const ws = await DeflateClient.open(url, OFFER);
        await new Promise<void>((resolve) => {
          ws.onmessage = () => resolve();
          ws.send(message);
        });
        return ws;
      }),
    );
    sockets.push(...batch);
  }
  return sockets;
}

async function idle(count: number): Promise<void> {
  console.log(`ws_deflate_bench --idle: ${count} sockets, each after one 4 KiB message each way`);
  for (const config of CONFIGS) {
    const { process, port } = await startTsgi(config.flags);
    const url = `ws://127.0.0.1:${port}/`;
    try {
      for (const ws of await openUsed(url, 100)) ws.close();
      await sleep(500);
      const before = await settledRss(process.pid);
      const sockets = await openUsed(url, count);
      const after = await settledRss(process.pid);
      console.log(
        `  ${config.id.padEnd(20)} before ${(before / 1024).toFixed(1)} MiB, after ${
          (after / 1024).toFixed(1)
        } MiB: ${((after - before) / count).toFixed(2)} KiB per socket`,
      );
      for (const ws of sockets) ws.close();
    } finally {
      await stopServer(process);
    }
  }
}

if (import.meta.main) {
  const args = Deno.args;
  const value = (flag: string, fallback: number) => {
    const at = args.indexOf(flag);
    return at < 0 ? fallback : Number(args[at + 1]);
  };
  if (args[0] === "--client") {
    await client(args[1], Number(args[2]), Number(args[3]), Number(args[4]));
  }
  try {
    if (args.includes("--idle")) await idle(value("--idle", 2000));
    else await throughput(value("--duration", 5), value("--repeats", 3), value("--size", 0));
  } finally {
    await stopAll();
  }
  Deno.exit(0);
}
