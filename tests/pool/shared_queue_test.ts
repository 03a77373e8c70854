// The pool's workers accept from one kernel queue per address, which the master binds once
// and hands them (src/pool/listeners.ts), as gunicorn's workers do: a worker whose event loop
// is blocked takes no connection, so nothing waits behind it, and nothing queued is lost when
// it is killed. With --reuse-port each worker has a queue of its own, filled by the kernel's
// hash whether the worker is busy or not: those figures are printed, not asserted. Real
// processes on port 0 (or a unix socket), real clients; every wait polls a condition against
// a deadline (the only timer is the pacing of the quick requests, which is load, not a wait).

import assert from "node:assert/strict";
import { fromFileUrl } from "../support/paths.ts";
import { childrenOf, exited, procStat, tsgiArgs, waitUntil } from "../support/process.ts";
import {
  get,
  hasPython,
  type Pool,
  readyPids,
  ROOT,
  runToExit,
  startPool,
  stopPool,
  type Target,
  waitForPool,
  waitUntilAsync,
} from "../support/pool.ts";

const BUSY_APP = "tests/fixtures/busy_app.ts";
const PRINTING_APP = "tests/fixtures/printing_app.ts";
const ACTIVATE = fromFileUrl(new URL("../fixtures/systemd_activate.py", import.meta.url));
const BUSY_STARTED = /busy request started in (\d+)/;

/** Starts a busy request and waits until a worker runs it: that worker's pid, and the
 * request's outcome (its body, or the Error that ended it). */
async function startBusy(pool: Pool, ms: number) {
  const before = [...pool.log().matchAll(new RegExp(BUSY_STARTED, "g"))].length;
  const outcome = get(pool.port, `/busy?ms=${ms}`).then(
    (body) => ({ body, error: null }),
    (error: Error) => ({ body: null, error }),
  );
  let pid = 0;
  await waitUntil("the busy request has started", () => {
    const all = [...pool.log().matchAll(new RegExp(BUSY_STARTED, "g"))];
    if (all.length > before) pid = Number(all[before][1]);
    return pid !== 0;
  }, 10_000);
  return { pid, outcome };
}

function flagsFor(workers: number, reusePort: boolean): string[] {
  return [BUSY_APP, "--workers", String(workers), ...(reusePort ? ["--reuse-port"] : [])];
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

// --- 1. head-of-line blocking --------------------------------------------------------------

const QUICK = 20;
/** The quick requests are paced this far apart (20 of them over ~0.4 s), each on a new
 * connection, without waiting for the previous one: a queue behind a busy worker fills. */
const PACE_MS = 20;
const BUSY_MS = 1500;

interface HeadOfLine {
  busyPid: number;
  /** In completion order: "busy", or the pid that served a quick request. */
  order: string[];
  latencies: number[];
  quickPids: number[];
}

async function headOfLine(workers: number, reusePort: boolean): Promise<HeadOfLine> {
  const pool = await startPool(flagsFor(workers, reusePort), workers);
  try {
    const order: string[] = [];
    const busy = await startBusy(pool, BUSY_MS);
    const busyDone = busy.outcome.then((outcome) => {
      order.push("busy");
      return outcome;
    });
    const quick: Promise<{ ms: number; pid: number }>[] = [];
    for (let i = 0; i < QUICK; i++) {
      const sent = performance.now();
      quick.push(
        get(pool.port).then((body) => {
          order.push(body);
          return { ms: performance.now() - sent, pid: Number(body) };
        }),
      );
      await new Promise((resolve) => setTimeout(resolve, PACE_MS));
    }
    const results = await Promise.all(quick);
    const { body, error } = await busyDone;
    assert.equal(error, null, `the busy request failed: ${error}\n${pool.log()}`);
    assert.equal(body, `busy done in ${busy.pid}`);
    const latencies = results.map((r) => r.ms).sort((a, b) => a - b);
    const label = reusePort ? "--reuse-port" : "shared queue";
    // Those the busy worker served were accepted after its loop: they waited behind it.
    const waited = results.filter((r) => r.pid === busy.pid).length;
    console.log(
      `${label}, ${workers} workers: quick requests p50 ${percentile(latencies, 0.5).toFixed(1)} ` +
        `ms, max ${latencies.at(-1)!.toFixed(1)} ms; ${waited} of ${QUICK} waited behind the ` +
        `busy worker`,
    );
    return { busyPid: busy.pid, order, latencies, quickPids: results.map((r) => r.pid) };
  } finally {
    assert.equal((await stopPool(pool)).code, 0);
  }
}

for (const workers of [2, 4]) {
  Deno.test(`a busy worker holds up no quick request: shared queue, ${workers} workers`, async () => {
    const { busyPid, order, quickPids } = await headOfLine(workers, false);
    assert.equal(order.length, QUICK + 1);
    assert.equal(
      order.at(-1),
      "busy",
      `every quick request completed before the busy one: ${order.join(" ")}`,
    );
    assert.ok(!quickPids.includes(busyPid), "the busy worker accepted no quick request");
  });
}

Deno.test("--reuse-port: quick requests hashed onto a busy worker wait for it (printed)", async () => {
  const { order } = await headOfLine(2, true);
  // Only that all were answered: how many waited depends on the kernel's hash.
  assert.equal(order.length, QUICK + 1);
});

// --- 2. kill -9 of a busy worker -----------------------------------------------------------

interface Load {
  ok: number;
  failed: number;
  errors: string[];
  pids: Set<number>;
  /** Every client waits on a request sent more than `ms` ago. */
  stuck(ms: number): boolean;
  stop(): Promise<void>;
}

/** `clients` loops, each sending one request after another on new connections, until
 * stopped (the test's deadlines bound them). */
function load(target: Target, clients: number): Load {
  let running = true;
  const since = new Array<number>(clients).fill(Infinity);
  const result: Load = {
    ok: 0,
    failed: 0,
    errors: [],
    pids: new Set(),
    stuck: (ms) => since.every((t) => performance.now() - t > ms),
    stop: async () => {
      running = false;
      await Promise.all(loops);
    },
  };
  const loops = since.map(async (_, i) => {
    while (running) {
      since[i] = performance.now();
      await get(target).then((body) => {
        result.ok++;
        result.pids.add(Number(body));
      }, (error) => {
        result.failed++;
        if (result.errors.length < 5) result.errors.push(String(error));
      });
      since[i] = Infinity;
    }
  });
  return result;
}

for (const reusePort of [false, true]) {
  const how = reusePort ? "--reuse-port (connections on its queue are reset)" : "shared queue";
  Deno.test(`kill -9 of a busy worker under load: ${how}`, async () => {
    const pool = await startPool(flagsFor(2, reusePort), 2);
    try {
      // Far longer than the test: it ends by SIGKILL.
      const busy = await startBusy(pool, 10_000);
      const traffic = load(pool.port, 4);
      let killedAt = 0;
      try {
        // Shared: the other worker serves everything. --reuse-port: every client soon waits
        // on a connection hashed onto the busy worker.
        await waitUntil(
          "the clients are running",
          () => traffic.ok >= 100 || traffic.stuck(300),
          10_000,
        );
        killedAt = traffic.ok;
        Deno.kill(busy.pid, "SIGKILL");
        const { error } = await busy.outcome;
        assert.ok(error !== null, "the busy request died with its worker");
        await waitUntil("the killed worker is reaped", () => procStat(busy.pid) === null);
        const workers = await waitForPool(pool, 2);
        assert.ok(!workers.includes(busy.pid));
        const okAfter = traffic.ok;
        await waitUntil("the pool serves again", () => traffic.ok >= okAfter + 100, 10_000);
      } finally {
        await traffic.stop();
      }
      console.log(
        `${reusePort ? "--reuse-port" : "shared queue"}: ${traffic.ok} requests ok ` +
          `(${killedAt} before the kill), ${traffic.failed} failed besides the busy one` +
          (traffic.errors.length > 0 ? `, e.g. ${traffic.errors[0]}` : ""),
      );
      assert.match(pool.log(), new RegExp(`pid ${busy.pid}\\) died: signal SIGKILL`));
      if (!reusePort) {
        assert.equal(traffic.failed, 0, `${traffic.errors.join("\n")}\n${pool.log()}`);
        assert.ok(!traffic.pids.has(busy.pid), "the busy worker accepted no connection");
      }
    } finally {
      assert.equal((await stopPool(pool)).code, 0);
    }
  });
}

// --- 3. --bind unix:/path with workers -----------------------------------------------------

function isSocketFile(path: string): boolean {
  try {
    return Deno.lstatSync(path).isSocket === true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}

Deno.test("--bind unix:/path serves with two workers; the file goes with the master", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tsgi-unix-" });
  const path = `${dir}/tsgi.sock`;
  try {
    // A clean start and stop: both workers answer on the socket, which is removed at the end.
    let pool = await startPool([BUSY_APP, "--workers", "2"], 2, { bind: `unix:${path}` });
    try {
      assert.match(pool.log(), new RegExp(`Listening on unix:${path}\n`));
      assert.match(pool.log(), /sharing one accept queue/);
      const workers = pool.readyWorkers();
      const seen = new Set<number>();
      await waitUntilAsync("both workers have answered on the socket", async () => {
        seen.add(Number(await get({ path })));
        return seen.size === 2;
      });
      assert.deepEqual([...seen].sort(), workers.sort());
    } finally {
      assert.equal((await stopPool(pool)).code, 0);
    }
    assert.ok(!isSocketFile(path), "the socket file was removed when the master stopped");

    // A master killed with SIGKILL leaves its socket file behind; the next one replaces it.
    pool = await startPool([BUSY_APP, "--workers", "2"], 2, { bind: `unix:${path}` });
    const orphans = pool.readyWorkers();
    Deno.kill(pool.pid, "SIGKILL");
    await pool.child.status;
    await waitUntil("the orphaned workers have exited", () => orphans.every(exited));
    await pool.logDone;
    assert.ok(isSocketFile(path), "a stale socket file is left");
    await assert.rejects(get({ path }), "nobody answers on the stale socket");

    pool = await startPool([BUSY_APP, "--workers", "2"], 2, { bind: `unix:${path}` });
    try {
      const pid = Number(await get({ path }));
      assert.ok(pool.readyWorkers().includes(pid), "a worker of the new master answered");
    } finally {
      assert.equal((await stopPool(pool)).code, 0);
    }
    assert.ok(!isSocketFile(path));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// --- 4. a second tsgi on an address served already -----------------------------------------

Deno.test("a second tsgi on an address a pool serves exits 1 with one line", async (t) => {
  for (const firstReusePort of [false, true]) {
    const first = await startPool(flagsFor(2, firstReusePort), 2);
    const address = `127.0.0.1:${first.port}`;
    try {
      const seconds: [string, string[]][] = [
        ["a pool", ["--workers", "2"]],
        ["--reload", ["--reload"]],
        ["a single process", []],
        ["a pool with --reuse-port", ["--workers", "2", "--reuse-port"]],
        ["a single process with --reuse-port", ["--reuse-port"]],
      ];
      for (const [name, flags] of seconds) {
        const firstIs = firstReusePort ? "a --reuse-port pool" : "a pool";
        await t.step({
          name: `${name}, where ${firstIs} serves`,
          fn: async () => {
            const second = await runToExit([BUSY_APP, ...flags, "-b", address], 10_000);
            assert.ok(!second.killed, `the second server ran on:\n${second.stderr}`);
            assert.equal(second.code, 1, second.stderr);
            const naming = second.stderr.split("\n").filter((line) => line.includes(address));
            assert.equal(naming.length, 1, second.stderr);
            assert.match(naming[0], /in use/);
            assert.ok(!/Listening on|booting|^\s+at /m.test(second.stderr), second.stderr);
          },
        });
      }
      assert.equal((await get(first.port)).length > 0, true, "the first one still serves");
    } finally {
      assert.equal((await stopPool(first)).code, 0);
    }
  }
});

// --- 5. the app's stdout is not the control channel -----------------------------------------

Deno.test("what the app prints on stdout passes unchanged and means nothing", async () => {
  const pool = await startPool([PRINTING_APP, "--workers", "2"], 2, { stdout: true });
  try {
    const workers = pool.readyWorkers().sort();
    const seen = new Set<number>();
    let requests = 0;
    await waitUntilAsync("both workers have answered, 10 requests or more", async () => {
      seen.add(Number(await get(pool.port)));
      requests++;
      return seen.size === 2 && requests >= 10;
    });
    const lines = '{"t":"retiring"}\n{"t":"error","msg":"x"}\n';
    await waitUntil("every line printed has reached the master's stdout", () => {
      return pool.out() === lines.repeat(requests);
    }, 5000);
    // A window in which the master would have acted on a "retiring" (it stops such a worker at
    // once): the time it takes to start and ready a third worker.
    Deno.kill(pool.pid, "SIGTTIN");
    const three = await waitForPool(pool, 3);
    assert.ok(workers.every((pid) => three.includes(pid)), "the first two workers still serve");
    assert.deepEqual(readyPids(pool.log()).slice(0, 2).sort(), workers);
    assert.equal([...pool.log().matchAll(/ booting \(pid/g)].length, 3, pool.log());
    assert.ok(!/stopping|exited|died|failed/.test(pool.log()), pool.log());
    assert.equal(pool.out(), lines.repeat(requests), "nothing more, nothing less on stdout");
  } finally {
    assert.equal((await stopPool(pool)).code, 0);
  }
});

// --- 6. systemd socket activation with a pool ----------------------------------------------

Deno.test({
  name: "started by systemd (LISTEN_FDS), a pool of two serves the socket it was handed",
  ignore: !(await hasPython()),
  async fn() {
    // A --bind that cannot be bound proves that nothing is bound: the handed socket is served.
    const child = new Deno.Command("python3", {
      args: [
        ACTIVATE,
        Deno.execPath(),
        ...tsgiArgs("apps/hello.ts", "--workers", "2"),
        "-b",
        "unix:/nonexistent/x.sock",
        "--access-log",
        "off",
      ],
      cwd: ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    let out = "";
    let err = "";
    const reading = Promise.all([
      (async () => {
        for await (const s of child.stdout.pipeThrough(new TextDecoderStream())) out += s;
      })(),
      (async () => {
        for await (const s of child.stderr.pipeThrough(new TextDecoderStream())) err += s;
      })(),
    ]);
    let exitedEarly = false;
    child.status.then(() => (exitedEarly = true));
    try {
      await waitUntil("two workers are ready", () => {
        return exitedEarly || readyPids(err).length === 2 && /Listening on/.test(err);
      });
      assert.ok(!exitedEarly, err);
      const port = Number(/port (\d+)/.exec(out)![1]);
      assert.match(err, new RegExp(`Listening on http://127\\.0\\.0\\.1:${port}\n`));
      assert.match(err, /sharing one accept queue/);
      // The script execs tsgi: the master is the script's process, the workers its children.
      const workers = childrenOf(child.pid).map((p) => p.pid).sort();
      assert.deepEqual(workers, readyPids(err).sort());
      for (let i = 0; i < 10; i++) {
        const response = await fetch(`http://127.0.0.1:${port}/`);
        assert.equal(response.status, 200);
        assert.equal(await response.text(), "Hello, World!\n");
      }
    } finally {
      child.kill("SIGTERM");
      const status = await child.status;
      await reading;
      assert.equal(status.code, 0, err);
    }
    assert.equal([...err.matchAll(/Worker \d \(pid \d+\) exited\b/g)].length, 2, err);
  },
});
