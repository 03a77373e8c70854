// The WebSocket load client of `deno task bench:ws` (bench/ws_bench.ts): opens N connections to
// an echo server and, on each, sends one binary message and waits for its echo, again and again
// (a closed loop), for a warm-up and then T measured seconds. Prints one JSON line on stdout:
// round trips per second, p50/p99 round-trip latency in ms, and MiB/s of echoed payload.
//
//   deno run -A bench/ws_client.ts --url ws://127.0.0.1:8000/ [--connections 64]
//                                  [--size 64] [--duration 5] [--warmup 1]

export interface ClientOptions {
  url: string;
  connections: number;
  /** Payload bytes per message. */
  size: number;
  durationSec: number;
  warmupSec: number;
}

export interface ClientResult {
  connections: number;
  size: number;
  durationSec: number;
  roundTrips: number;
  roundTripsPerSec: number;
  /** Echoed payload (one direction) per second, in MiB. */
  mibPerSec: number;
  p50Ms: number;
  p99Ms: number;
  /** Connections that failed (closed early, wrong echo); 0 in a sound run. */
  errors: number;
}

const OPEN_TIMEOUT_MS = 10_000;

export function parseArgs(args: string[]): ClientOptions {
  const options: ClientOptions = {
    url: "",
    connections: 64,
    size: 64,
    durationSec: 5,
    warmupSec: 1,
  };
  for (let i = 0; i < args.length; i++) {
    const flag = args[i];
    const value = args[++i];
    if (flag === "--url") options.url = value;
    else if (flag === "--connections") options.connections = Number(value);
    else if (flag === "--size") options.size = Number(value);
    else if (flag === "--duration") options.durationSec = Number(value);
    else if (flag === "--warmup") options.warmupSec = Number(value);
    else throw new Error(`unknown flag ${flag}`);
  }
  if (options.url === "") throw new Error("--url is required");
  for (const key of ["connections", "size", "durationSec", "warmupSec"] as const) {
    if (!Number.isFinite(options[key]) || options[key] < 0) throw new Error(`bad ${key}`);
  }
  return options;
}

function open(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.binaryType = "arraybuffer";
    const timer = setTimeout(
      () => reject(new Error(`no open within ${OPEN_TIMEOUT_MS} ms`)),
      OPEN_TIMEOUT_MS,
    );
    ws.onopen = () => {
      clearTimeout(timer);
      resolve(ws);
    };
    ws.onerror = (event) => {
      clearTimeout(timer);
      reject(new Error(`open failed: ${(event as ErrorEvent).message ?? "error"}`));
    };
  });
}

export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

/** A growable list of latencies without boxing each sample. */
export class Samples {
  #data = new Float64Array(1 << 16);
  length = 0;
  push(value: number): void {
    if (this.length === this.#data.length) {
      const bigger = new Float64Array(this.#data.length * 2);
      bigger.set(this.#data);
      this.#data = bigger;
    }
    this.#data[this.length++] = value;
  }
  sorted(): Float64Array {
    return this.#data.slice(0, this.length).sort();
  }
}

/**
 * One connection's closed loop until `end` (performance.now() ms): send, await the echo, record
 * its latency when the send was at or after `measureFrom`.
 */
function loop(
  ws: WebSocket,
  payload: Uint8Array,
  measureFrom: number,
  end: number,
  samples: Samples,
  counted: { roundTrips: number; errors: number },
): Promise<void> {
  return new Promise((resolve) => {
    let sentAt = 0;
    const sendNext = () => {
      sentAt = performance.now();
      if (sentAt >= end) {
        ws.onmessage = null;
        resolve();
        return;
      }
      ws.send(payload);
    };
    ws.onmessage = (event) => {
      const now = performance.now();
      const data = event.data as ArrayBuffer;
      if (!(data instanceof ArrayBuffer) || data.byteLength !== payload.length) {
        counted.errors++;
        ws.onmessage = null;
        resolve();
        return;
      }
      if (sentAt >= measureFrom && now <= end) {
        samples.push(now - sentAt);
        counted.roundTrips++;
      }
      sendNext();
    };
    ws.onclose = () => {
      if (performance.now() < end) counted.errors++;
      resolve();
    };
    sendNext();
  });
}

export async function runClient(options: ClientOptions): Promise<ClientResult> {
  const sockets = await Promise.all(
    Array.from({ length: options.connections }, () => open(options.url)),
  );
  const payload = new Uint8Array(options.size);
  for (let i = 0; i < payload.length; i++) payload[i] = i & 0xff;
  const start = performance.now();
  const measureFrom = start + options.warmupSec * 1000;
  const end = measureFrom + options.durationSec * 1000;
  const samples = new Samples();
  const counted = { roundTrips: 0, errors: 0 };
  await Promise.all(sockets.map((ws) => loop(ws, payload, measureFrom, end, samples, counted)));
  const closed = sockets.map((ws) =>
    new Promise<void>((resolve) => {
      if (ws.readyState === WebSocket.CLOSED) return resolve();
      ws.onclose = () => resolve();
      ws.close(1000);
    })
  );
  await Promise.race([Promise.all(closed), new Promise((r) => setTimeout(r, 2000))]);
  return summarize(options, counted.roundTrips, samples, counted.errors);
}

/** A client's result from what it counted over the measured seconds. */
export function summarize(
  options: ClientOptions,
  roundTrips: number,
  samples: Samples,
  errors: number,
): ClientResult {
  const sorted = samples.sorted();
  const seconds = options.durationSec;
  return {
    connections: options.connections,
    size: options.size,
    durationSec: seconds,
    roundTrips,
    roundTripsPerSec: roundTrips / seconds,
    mibPerSec: (roundTrips * options.size) / seconds / (1024 * 1024),
    p50Ms: percentile(sorted, 0.5),
    p99Ms: percentile(sorted, 0.99),
    errors,
  };
}

if (import.meta.main) {
  const result = await runClient(parseArgs(Deno.args));
  console.log(JSON.stringify(result));
  // Sockets still closing must not hold the process open.
  Deno.exit(0);
}
