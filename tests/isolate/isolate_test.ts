// --isolate request as a user runs it: a real master (`deno run main.ts APP --isolate
// request`), its real per-request children, real clients on real sockets, and /proc to see
// what the kernel sees — who is whose child, who is a zombie, how many descriptors and how
// much memory the master holds. Nothing sleeps to synchronise: every wait polls a condition
// against a deadline.

import assert from "node:assert/strict";
import {
  childrenOf,
  fdCount,
  type Proc,
  procStat,
  spawnLogged,
  waitForListen,
  waitUntil,
} from "../support/process.ts";
import {
  assertSettled,
  isGroupGuard,
  ISOLATE_FLAGS,
  MAIN,
  ROOT,
  waitForWorkers,
} from "../support/pool.ts";

const APP = "tests/fixtures/isolate_app.ts";
const encoder = new TextEncoder();
const decoder = new TextDecoder();

// --- /proc ---------------------------------------------------------------------------------

function rssKiB(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(/VmRSS:\s+(\d+)/.exec(status)![1]);
}

// --- the master ----------------------------------------------------------------------------

interface Master {
  child: Deno.ChildProcess;
  pid: number;
  port: number;
  spares: number;
  /** The master's stderr so far (the children's lines come through it, PID-prefixed). */
  log(): string;
  logDone: Promise<string>;
  /** The descriptor count once the spares were first ready. */
  baselineFds: number;
}

/** Starts a master on a free port and waits until its spares are up. */
async function startMaster(args: string[] = [], spares = 2): Promise<Master> {
  const started = spawnLogged(Deno.execPath(), [
    "run",
    "-A",
    MAIN,
    APP,
    ...ISOLATE_FLAGS,
    "--spares",
    String(spares),
    ...args,
  ], { cwd: ROOT, stdout: "piped" });
  const master: Master = {
    child: started.child,
    pid: started.child.pid,
    port: 0,
    spares,
    log: () => started.log() + started.out(),
    logDone: started.logDone,
    baselineFds: 0,
  };
  const [, port] = await waitForListen(started, /Listening on http:\/\/\S+:(\d+)/, "master");
  master.port = Number(port);
  await waitForSpares(master);
  master.baselineFds = fdCount(master.pid);
  return master;
}

/** The children that said they are ready and are alive. */
function readySpares(master: Master): Proc[] {
  const ready = new Set([...master.log().matchAll(/Child (\d+) ready/g)].map((m) => Number(m[1])));
  return childrenOf(master.pid).filter((p) => ready.has(p.pid) && p.state !== "Z");
}

/** Waits until the master's only children are its spares, all ready, none a zombie. */
async function waitForSpares(master: Master): Promise<void> {
  const ready = () => readySpares(master).map((p) => p.pid);
  const what = `the master has exactly ${master.spares} ready spare(s)`;
  await waitForWorkers(master.pid, master.spares, ready, 20_000, what);
}

/** No zombie, nothing but the spares, and the descriptors back to where they started. */
async function assertClean(master: Master): Promise<void> {
  await waitForSpares(master);
  await assertSettled(master.pid, master.baselineFds);
}

/** SIGTERM, then the exit status; every child is gone by then. */
async function stopMaster(master: Master): Promise<Deno.CommandStatus> {
  const children = childrenOf(master.pid).map((p) => p.pid);
  master.child.kill("SIGTERM");
  const status = await master.child.status;
  await master.logDone;
  for (const pid of children) {
    await waitUntil(`child ${pid} is gone`, () => procStat(pid) === null, 5000);
  }
  return status;
}

async function withMaster(
  args: string[],
  fn: (master: Master) => Promise<void>,
  spares = 2,
): Promise<void> {
  const master = await startMaster(args, spares);
  try {
    await fn(master);
  } catch (error) {
    master.child.kill("SIGKILL");
    await master.child.status;
    throw new Error(`${error}\n--- master log ---\n${master.log().slice(-4000)}`);
  }
  const status = await stopMaster(master);
  assert.equal(status.code, 0, master.log().slice(-2000));
}

// --- a client ------------------------------------------------------------------------------

interface Response {
  status: number;
  headers: Record<string, string>;
  body: Uint8Array;
  /** The connection ended before the response did. */
  aborted: boolean;
}

/** A keep-alive HTTP/1.1 client on one socket, for responses with Content-Length or chunked. */
class Client {
  readonly #conn: Deno.Conn;
  #buf = new Uint8Array(0);
  #ended = false;

  private constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  static async open(port: number): Promise<Client> {
    return new Client(await Deno.connect({ hostname: "127.0.0.1", port }));
  }

  close(): void {
    try {
      this.#conn.close();
    } catch {
      // Closed by the server.
    }
  }

  async request(
    path: string,
    options: { method?: string; headers?: Record<string, string>; body?: Uint8Array } = {},
  ): Promise<Response> {
    const method = options.method ?? (options.body ? "POST" : "GET");
    let head = `${method} ${path} HTTP/1.1\r\nHost: test\r\n`;
    for (const [name, value] of Object.entries(options.headers ?? {})) {
      head += `${name}: ${value}\r\n`;
    }
    if (options.body) head += `Content-Length: ${options.body.length}\r\n`;
    await this.#writeAll(encoder.encode(head + "\r\n"));
    // Read while writing, as a real client does: the server may answer before the end.
    const response = this.#readResponse();
    if (options.body) {
      for (let at = 0; at < options.body.length; at += 256 * 1024) {
        await this.#writeAll(options.body.subarray(at, at + 256 * 1024)).catch(() => {});
      }
    }
    return await response;
  }

  async #writeAll(bytes: Uint8Array): Promise<void> {
    let done = 0;
    while (done < bytes.length) done += await this.#conn.write(bytes.subarray(done));
  }

  async #fill(): Promise<boolean> {
    if (this.#ended) return false;
    const chunk = new Uint8Array(256 * 1024);
    const n = await this.#conn.read(chunk).catch(() => null);
    if (n === null) {
      this.#ended = true;
      return false;
    }
    const grown = new Uint8Array(this.#buf.length + n);
    grown.set(this.#buf);
    grown.set(chunk.subarray(0, n), this.#buf.length);
    this.#buf = grown;
    return true;
  }

  /** Reads `n` bytes, or what there is when the stream ends first. */
  async #take(n: number): Promise<Uint8Array> {
    while (this.#buf.length < n && await this.#fill());
    const out = this.#buf.slice(0, n);
    this.#buf = this.#buf.subarray(out.length);
    return out;
  }

  async #line(): Promise<string | null> {
    while (true) {
      const lf = this.#buf.indexOf(0x0a);
      if (lf >= 0) return decoder.decode(await this.#take(lf + 1)).trimEnd();
      if (!(await this.#fill())) return null;
    }
  }

  async #readResponse(): Promise<Response> {
    const statusLine = await this.#line();
    if (statusLine === null) {
      return { status: 0, headers: {}, body: new Uint8Array(), aborted: true };
    }
    const headers: Record<string, string> = {};
    while (true) {
      const line = await this.#line();
      if (line === null || line === "") break;
      const colon = line.indexOf(":");
      headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
    }
    const status = Number(statusLine.split(" ")[1]);
    if (headers["content-length"] !== undefined) {
      const length = Number(headers["content-length"]);
      const body = await this.#take(length);
      return { status, headers, body, aborted: body.length < length };
    }
    if (headers["transfer-encoding"] === "chunked") {
      const parts: Uint8Array[] = [];
      while (true) {
        const size = await this.#line();
        if (size === null) return { status, headers, body: concat(parts), aborted: true };
        const n = parseInt(size, 16);
        if (n === 0) {
          await this.#line();
          return { status, headers, body: concat(parts), aborted: false };
        }
        const piece = await this.#take(n + 2);
        if (piece.length < n + 2) return { status, headers, body: concat(parts), aborted: true };
        parts.push(piece.subarray(0, n));
      }
    }
    return { status, headers, body: await this.#take(Infinity), aborted: false };
  }
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

async function get(port: number, path: string, headers?: Record<string, string>) {
  const client = await Client.open(port);
  try {
    return await client.request(path, { headers });
  } finally {
    client.close();
  }
}

const text = (r: Response) => decoder.decode(r.body);

// --- the tests -----------------------------------------------------------------------------

Deno.test("--isolate request serves 128 keep-alive clients × 4 requests, then holds only its spares", async () => {
  await withMaster([], async (master) => {
    const pids = new Set<number>();
    const statuses: number[] = [];
    await Promise.all(Array.from({ length: 128 }, async () => {
      const client = await Client.open(master.port);
      try {
        for (let i = 0; i < 4; i++) {
          const response = await client.request("/");
          statuses.push(response.status);
          const [pid, runOnce, multiprocess] = text(response).split(" ");
          assert.equal(`${runOnce} ${multiprocess}`, "true true");
          pids.add(Number(pid));
        }
      } finally {
        client.close();
      }
    }));
    assert.equal(statuses.length, 512);
    assert.deepEqual(statuses.filter((s) => s !== 200), []);
    // One process per request: no PID served twice.
    assert.equal(pids.size, 512);
    await assertClean(master);
  });
});

Deno.test("--isolate request: a child never sees another request's data", async () => {
  await withMaster([], async (master) => {
    const client = await Client.open(master.port);
    try {
      for (let i = 0; i < 6; i++) {
        const response = await client.request("/previous", { headers: { "X-Secret": `s${i}` } });
        assert.equal(response.status, 200);
        assert.equal(text(response), "", `request ${i} saw an earlier request's secret`);
      }
    } finally {
      client.close();
    }
    // What the app prints reaches the master: stdout as stdout, stderr as PID-prefixed lines.
    const printed = text(await get(master.port, "/print"));
    assert.equal(printed, "printed");
    await waitUntil("the child's output is relayed", () =>
      /printed by (\d+)/.test(master.log()) &&
      /\[child (\d+)\] error line from \1/.test(master.log()));
    await assertClean(master);
  });
});

Deno.test("--isolate request: app error 500, crash 502, exit 502, kill 502, timeout 504, late crash aborts", async () => {
  await withMaster(["--timeout", "2"], async (master) => {
    const cases: [string, number, RegExp][] = [
      [
        "/throw",
        500,
        /Child \d+ exited \(exit code 1\): the app failed on "GET \/throw HTTP\/1.1"; answered 500/,
      ],
      [
        "/crash",
        502,
        /Child \d+ crashed \(exit code 1\) serving "GET \/crash HTTP\/1.1"; answered 502/,
      ],
      [
        "/exit",
        502,
        /Child \d+ crashed \(exit code 3\) serving "GET \/exit HTTP\/1.1"; answered 502/,
      ],
      [
        "/kill",
        502,
        /Child \d+ crashed \(signal SIGKILL\) serving "GET \/kill HTTP\/1.1"; answered 502/,
      ],
      [
        "/hang",
        504,
        /Child \d+ killed \(signal SIGKILL\) after the 2 s timeout serving "GET \/hang HTTP\/1.1"; answered 504/,
      ],
    ];
    await Promise.all(cases.map(async ([path, status, line]) => {
      const response = await get(master.port, path);
      assert.equal(response.status, status, path);
      await waitUntil(`the log says ${line}`, () => line.test(master.log()));
    }));
    // The stack of the app's own error went to the log through the child's stderr.
    assert.match(master.log(), /\[child \d+\] Error: app failed on purpose/);

    const late = await get(master.port, "/exit-after-head");
    assert.equal(late.status, 200);
    assert.equal(late.aborted, true);
    assert.equal(text(late), "partial ");
    await waitUntil(
      "the late crash is logged",
      () =>
        /crashed \(exit code 4\) serving "GET \/exit-after-head HTTP\/1.1"; response aborted/
          .test(master.log()),
    );
    // Keep-alive survives a failed child: the connection carries the next request.
    const client = await Client.open(master.port);
    try {
      assert.equal((await client.request("/exit")).status, 502);
      assert.equal((await client.request("/")).status, 200);
    } finally {
      client.close();
    }
    await assertClean(master);
  });
});

Deno.test("--isolate request streams a 50 MB upload and a 50 MB response with flat master memory", async () => {
  await withMaster([], async (master) => {
    const before = rssKiB(master.pid);
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, rssKiB(master.pid))), 25);
    try {
      const size = 50 * 1024 * 1024;
      const upload = new Uint8Array(size).map((_, i) => i % 253);
      let sum = 0;
      for (let i = 0; i < size; i++) sum = (sum + upload[i]) >>> 0;
      const client = await Client.open(master.port);
      try {
        const up = await client.request("/upload", { body: upload });
        assert.equal(up.status, 200);
        assert.equal(text(up), `${size} ${sum}`);
        const down = await client.request("/download?mb=50");
        assert.equal(down.status, 200);
        assert.equal(down.body.length, size);
        assert.equal(down.body[size - 1], (size - 1) % (256 * 1024) % 251);
      } finally {
        client.close();
      }
    } finally {
      clearInterval(sampler);
    }
    const growthMiB = (peak - before) / 1024;
    assert.ok(growthMiB < 60, `the master grew by ${growthMiB.toFixed(1)} MiB`);
    await assertClean(master);
  });
});

Deno.test("--isolate request answers 503 with Retry-After when every child is busy and the queue is full", async () => {
  const args = ["--max-children", "1", "--max-queue", "0"];
  await withMaster(args, async (master) => {
    const slow = get(master.port, "/slow?ms=1500");
    // No spares: the child started for the slow request is the only one allowed.
    await waitUntil(
      "the only child has the slow request",
      () => /Child \d+ ready/.test(master.log()),
    );
    const refused = await get(master.port, "/");
    assert.equal(refused.status, 503);
    assert.equal(refused.headers["retry-after"], "1");
    assert.equal((await slow).status, 200);
    await assertClean(master);
  }, 0);
});

Deno.test("--isolate request: SIGTERM lets a running child finish, then stops every child", async () => {
  const master = await startMaster([], 2);
  const slow = get(master.port, "/slow?ms=800");
  await waitUntil(
    "the request runs in a child",
    () =>
      childrenOf(master.pid).filter((p) => !isGroupGuard(p)).length >= 3 ||
      /Child \d+ ready[\s\S]*Child \d+ ready[\s\S]*Child \d+ ready/.test(master.log()),
  );
  const status = await stopMaster(master);
  assert.equal(status.code, 0);
  const response = await slow;
  assert.equal(response.status, 200);
  assert.equal(text(response), "slow done");
});

Deno.test("--isolate request: clients stalled in their bodies hold connections, not children", async () => {
  // Two children at most, and more stalled uploads than that: before, each held a child until
  // its body ended (or the child's --timeout), and the request behind them waited for one.
  const args = ["--max-children", "2", "--max-queue", "16", "--timeout", "120"];
  await withMaster(args, async (master) => {
    const stalled: Deno.Conn[] = [];
    const answered: boolean[] = [];
    const reads: Promise<unknown>[] = [];
    for (let i = 0; i < 6; i++) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: master.port });
      await conn.write(encoder.encode(
        "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\nfirst bytes",
      ));
      stalled.push(conn);
      answered.push(false);
      reads.push(conn.read(new Uint8Array(1)).finally(() => (answered[i] = true)).catch(() => {}));
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const bound = new Promise<null>((resolve) => (timer = setTimeout(resolve, 20_000, null)));
    const normal = await Promise.race([get(master.port, "/"), bound]);
    clearTimeout(timer);
    assert.equal(normal?.status, 200, "no answer within 20 s: the children were held");
    // Served while every stalled upload was still waiting: none was cut off to make room.
    assert.deepEqual(answered, stalled.map(() => false));
    for (const conn of stalled) conn.close();
    await Promise.all(reads);
  });
});
