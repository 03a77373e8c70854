// What --isolate request can reach on this machine, against what it could at best.
//
// The ceiling: how many `deno` children per second this machine can start, feed a small
// request on stdin, read a response from stdout and reap, with nothing else running — one
// at a time, then two at a time. Then the real thing: requests per second and p50 latency
// through `main.ts apps/hello.ts --isolate request` at concurrency 1 and 32, with a client of
// fixed request counts on keep-alive sockets.
//
//   deno run -A bench/isolate_ceiling.ts [--children N] [--requests N] [--app apps/hello.ts]
//                                        [-- SERVER FLAGS…]
//
// Flags after `--` go to the server (`-- --isolate-memory 0` measures without the cgroup).
//
// This file is also the ceiling's child (TSGI_CEILING_CHILD=1): it has no imports, so that
// child costs a runtime start and nothing more.

if (Deno.env.get("TSGI_CEILING_CHILD") === "1") {
  const buf = new Uint8Array(4096);
  const n = await Deno.stdin.read(buf);
  const request = new TextDecoder().decode(buf.subarray(0, n ?? 0));
  await Deno.stdout.write(new TextEncoder().encode(`HTTP/1.1 200 OK\r\n\r\n${request.length}`));
  Deno.exit(0);
}

const SELF = new URL(import.meta.url).pathname;
const ROOT = new URL("..", import.meta.url).pathname;
const REQUEST = new TextEncoder().encode("GET / HTTP/1.1\r\nHost: bench\r\n\r\n");

interface Options {
  children: number;
  requests: number;
  app: string;
  /** Extra flags for the server. */
  serverArgs: string[];
}

function parseOptions(args: string[]): Options {
  const options: Options = { children: 60, requests: 320, app: "apps/hello.ts", serverArgs: [] };
  for (let i = 0; i < args.length; i += 2) {
    const [flag, value] = [args[i], args[i + 1]];
    if (flag === "--") {
      options.serverArgs = args.slice(i + 1);
      break;
    }
    if (flag === "--children") options.children = Number(value);
    else if (flag === "--requests") options.requests = Number(value);
    else if (flag === "--app") options.app = value;
    else throw new Error(`Unknown option "${flag}"`);
  }
  return options;
}

// --- the ceiling -------------------------------------------------------------------------------

/** One bare child: start, feed, read, reap. */
async function bareChild(): Promise<void> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", SELF],
    env: { TSGI_CEILING_CHILD: "1" },
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(REQUEST);
  await writer.close();
  const { code, stdout } = await child.output();
  if (code !== 0 || !new TextDecoder().decode(stdout).startsWith("HTTP/1.1 200")) {
    throw new Error(`Ceiling child failed: exit code ${code}`);
  }
}

/** Children per second, `lanes` at a time, `total` in all. */
async function ceiling(total: number, lanes: number): Promise<number> {
  await bareChild(); // warm the module cache
  let next = 0;
  const started = performance.now();
  await Promise.all(Array.from({ length: lanes }, async () => {
    while (next++ < total) await bareChild();
  }));
  return total / ((performance.now() - started) / 1000);
}

// --- through the server ------------------------------------------------------------------------

interface Server {
  child: Deno.ChildProcess;
  port: number;
}

async function startServer(app: string, extra: string[]): Promise<Server> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "main.ts",
      app,
      "--isolate",
      "request",
      "-b",
      "127.0.0.1:0",
      "--access-log",
      "off",
      "--max-children",
      "32",
      ...extra,
    ],
    cwd: ROOT,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (true) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`The server exited before listening:\n${text}`);
    text += value;
    const match = /Listening on http:\/\/\S+:(\d+)/.exec(text);
    if (match) {
      // Keep draining its stderr so it never blocks on a full pipe.
      (async () => {
        while (!(await reader.read()).done);
      })();
      return { child, port: Number(match[1]) };
    }
  }
}

/** A keep-alive connection that sends GET / and reads a Content-Length response. */
class Connection {
  readonly #conn: Deno.Conn;
  #buf = new Uint8Array(0);

  constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  async get(): Promise<number> {
    await this.#conn.write(REQUEST);
    let headEnd = -1;
    while ((headEnd = findHeadEnd(this.#buf)) < 0) await this.#fill();
    const head = new TextDecoder().decode(this.#buf.subarray(0, headEnd));
    const status = Number(head.split(" ")[1]);
    const length = Number(/content-length:\s*(\d+)/i.exec(head)?.[1] ?? "0");
    while (this.#buf.length < headEnd + 4 + length) await this.#fill();
    this.#buf = this.#buf.slice(headEnd + 4 + length);
    return status;
  }

  async #fill(): Promise<void> {
    const chunk = new Uint8Array(16 * 1024);
    const n = await this.#conn.read(chunk);
    if (n === null) throw new Error("The server closed the connection");
    const grown = new Uint8Array(this.#buf.length + n);
    grown.set(this.#buf);
    grown.set(chunk.subarray(0, n), this.#buf.length);
    this.#buf = grown;
  }

  close(): void {
    this.#conn.close();
  }
}

function findHeadEnd(buf: Uint8Array): number {
  for (let i = 0; i + 3 < buf.length; i++) {
    if (buf[i] === 13 && buf[i + 1] === 10 && buf[i + 2] === 13 && buf[i + 3] === 10) return i;
  }
  return -1;
}

interface Load {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
}

/** `total` requests over `concurrency` keep-alive connections. */
async function load(port: number, concurrency: number, total: number): Promise<Load> {
  const latencies: number[] = [];
  let errors = 0;
  let next = 0;
  const started = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    const conn = new Connection(await Deno.connect({ hostname: "127.0.0.1", port }));
    try {
      while (next++ < total) {
        const t0 = performance.now();
        const status = await conn.get();
        latencies.push(performance.now() - t0);
        if (status !== 200) errors++;
      }
    } finally {
      conn.close();
    }
  }));
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const at = (q: number) =>
    latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))];
  return { rps: total / seconds, p50: at(0.5), p99: at(0.99), errors };
}

async function main(): Promise<void> {
  const options = parseOptions(Deno.args);
  const cores = navigator.hardwareConcurrency;
  console.log(`deno ${Deno.version.deno}, ${cores} cores, load ${loadAverage()}`);

  const sequential = await ceiling(options.children, 1);
  const parallel = await ceiling(options.children, 2);
  const bare = Math.max(sequential, parallel);
  console.log(`ceiling: bare deno children started, fed and reaped`);
  console.log(
    `  1 at a time   ${sequential.toFixed(1)} /s   (${(1000 / sequential).toFixed(1)} ms each)`,
  );
  console.log(`  2 at a time   ${parallel.toFixed(1)} /s`);

  const server = await startServer(options.app, options.serverArgs);
  try {
    await load(server.port, 2, 10); // warm up: spares, module cache
    const c1 = await load(server.port, 1, Math.max(20, Math.round(options.requests / 4)));
    const c32 = await load(server.port, 32, options.requests);
    console.log(`--isolate request, ${[options.app, ...options.serverArgs].join(" ")}`);
    for (const [name, r] of [["concurrency 1 ", c1], ["concurrency 32", c32]] as const) {
      console.log(
        `  ${name}  ${r.rps.toFixed(1)} req/s (${(100 * r.rps / bare).toFixed(0)}% of ceiling)` +
          `   p50 ${r.p50.toFixed(1)} ms   p99 ${r.p99.toFixed(1)} ms` +
          (r.errors > 0 ? `   ${r.errors} non-200` : ""),
      );
    }
    console.log(
      `  p50 at concurrency 1 vs one bare process start: ${c1.p50.toFixed(1)} ms vs ` +
        `${(1000 / sequential).toFixed(1)} ms`,
    );
  } finally {
    server.child.kill("SIGTERM");
    await server.child.status;
  }
}

function loadAverage(): string {
  try {
    return Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
  } catch {
    return "unknown";
  }
}

await main();
