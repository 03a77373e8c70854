// The worker pool as a user runs it: a real master (`deno run main.ts --workers N`), its real
// worker processes, real clients, and /proc to see what the kernel sees — who is whose child,
// who is a zombie, how many descriptors the master holds. Nothing here sleeps to synchronise:
// every wait polls a condition against a deadline.

import assert from "node:assert/strict";
import { fromFileUrl } from "../support/paths.ts";
import { childrenOf, exited, fdCount, procStat, waitUntil } from "../support/process.ts";
import { parseResponses } from "../support/server.ts";

const MAIN = fromFileUrl(new URL("../../main.ts", import.meta.url));
const ROOT = fromFileUrl(new URL("../..", import.meta.url));
const APP = "tests/fixtures/workers_app.ts";

// --- the master ----------------------------------------------------------------------------

interface Master {
  child: Deno.ChildProcess;
  pid: number;
  port: number;
  /** The master's stderr so far, worker lines included (they inherit it). */
  log(): string;
  /** Resolves with the whole stderr once every process holding it has exited. */
  logDone: Promise<string>;
  /** Live workers that have reported ready. */
  readyWorkers(): number[];
  /** The descriptor count once the pool was first complete. */
  baselineFds: number;
}

/** Starts a master on a free port and waits for all its workers to be ready. */
async function startMaster(args: string[], workers: number): Promise<Master> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args, "-b", "127.0.0.1:0", "--access-log", "off"],
    cwd: ROOT,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let text = "";
  const logDone = (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) text += chunk;
    return text;
  })();
  const master: Master = {
    child,
    pid: child.pid,
    port: 0,
    log: () => text,
    logDone,
    readyWorkers: () => {
      const ready = new Set(readyPids(text));
      return childrenOf(child.pid).filter((p) => ready.has(p.pid) && p.state !== "Z")
        .map((p) => p.pid);
    },
    baselineFds: 0,
  };
  let failed = false;
  child.status.then(() => (failed = true));
  await waitUntil("the master listens", () => failed || /Listening on http:\/\/\S+:\d+/.test(text));
  if (failed) throw new Error(`The master exited before listening:\n${text}`);
  master.port = Number(/Listening on http:\/\/\S+:(\d+)/.exec(text)![1]);
  await waitForPool(master, workers);
  master.baselineFds = fdCount(master.pid);
  return master;
}

function readyPids(log: string): number[] {
  return [...log.matchAll(/Worker \d+ \(pid (\d+)\) ready/g)].map((m) => Number(m[1]));
}

/** Waits until the master has exactly `n` children, all of them ready, none a zombie. */
async function waitForPool(master: Master, n: number, deadlineMs = 15_000): Promise<number[]> {
  await waitUntil(`${n} worker(s) are ready`, () => {
    const children = childrenOf(master.pid);
    return children.length === n && master.readyWorkers().length === n;
  }, deadlineMs);
  return master.readyWorkers();
}

/** What every test checks at its end: no zombie, descriptors back to where they were. */
async function assertClean(master: Master, workers: number): Promise<void> {
  await waitForPool(master, workers);
  await waitUntil(
    `the master holds ${master.baselineFds} descriptors again (now ${fdCount(master.pid)})`,
    () => fdCount(master.pid) === master.baselineFds,
  );
  const zombies = childrenOf(master.pid).filter((p) => p.state === "Z");
  assert.deepEqual(zombies, [], "no child of the master is a zombie");
}

/** SIGTERM, and the master's exit status; every worker it had is gone by then. */
async function stopMaster(master: Master): Promise<Deno.CommandStatus> {
  const workers = childrenOf(master.pid).map((p) => p.pid);
  try {
    master.child.kill("SIGTERM");
  } catch {
    // Already exited.
  }
  const status = await master.child.status;
  await master.logDone;
  for (const pid of workers) assert.ok(exited(pid), `worker ${pid} exited with its master`);
  return status;
}

// --- clients -------------------------------------------------------------------------------

/** One request on a connection of its own; the worker's answer, or an Error saying where
 * the exchange broke. */
async function get(port: number, path = "/"): Promise<string> {
  let stage = "connect";
  const started = Date.now();
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
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
      conn.close();
    }
  } catch (error) {
    throw new Error(`GET ${path}: ${stage} failed after ${Date.now() - started} ms: ${error}`);
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

interface Load {
  ok: number;
  failed: number;
  /**
   * Connections the kernel reset in their handshake or in a closing listener's queue: see
   * docs/workers.md, "What HUP can cost".
   */
  handshakeResets: number;
  errors: string[];
  pids: Set<string>;
  stop(): Promise<void>;
}

/**
 * No request failed, and none was reset: the workers accept from the master's sockets, so a
 * worker that goes leaves nothing queued behind. (With --reuse-port, at most one connection
 * per worker replaced may be reset by the kernel: docs/workers.md, "What HUP can cost".)
 */
function assertNoFailure(traffic: Load, replaced: number, log: string, reusePort = false): void {
  console.log(
    `${traffic.ok} requests, ${traffic.failed} failed, ${traffic.handshakeResets} reset in ` +
      `their handshake, ${traffic.pids.size} workers served`,
  );
  assert.equal(traffic.failed, 0, `${traffic.errors.join("\n")}\n${log}`);
  const allowed = reusePort ? replaced : 0;
  assert.ok(traffic.handshakeResets <= allowed, `${traffic.handshakeResets} handshake resets`);
}

/**
 * Clients that keep sending requests until stopped: `connections` of them opening a new
 * connection per request, and one fetch() client reusing a keep-alive connection.
 */
function load(port: number, connections: number, keepAlive = 1): Load {
  let running = true;
  const result: Load = {
    ok: 0,
    failed: 0,
    handshakeResets: 0,
    errors: [],
    pids: new Set(),
    stop: async () => {
      running = false;
      await Promise.all(loops);
    },
  };
  const record = (body: string) => {
    result.ok++;
    result.pids.add(body.split(" ")[0]);
  };
  const fail = (kind: string) => (error: unknown) => {
    // Reset in the handshake, or queued on a listener as it closed: the same kernel limit.
    if (/(connect|read) failed after \d+ ms: ConnectionReset/.test(String(error))) {
      result.handshakeResets++;
      return;
    }
    result.failed++;
    if (result.errors.length < 5) {
      result.errors.push(`${new Date().toISOString()} ${kind}: ${error}`);
    }
  };
  const loops = Array.from({ length: connections }, async () => {
    while (running) await get(port).then(record, fail("new connection"));
  });
  for (let i = 0; i < keepAlive; i++) {
    loops.push((async () => {
      const client = Deno.createHttpClient({});
      while (running) {
        await fetch(`http://127.0.0.1:${port}/`, { client }).then((r) => r.text()).then(
          record,
          (error) => fail("keep-alive")(`${error} (${error?.cause})`),
        );
      }
      client.close();
    })());
  }
  return result;
}

// --- tests ---------------------------------------------------------------------------------

Deno.test("--workers N starts N processes sharing one port, tsgi.multiprocess true", async () => {
  const master = await startMaster([APP, "--workers", "2"], 2);
  try {
    const workers = master.readyWorkers();
    const seen = new Set<string>();
    await waitUntilAsync("both workers have answered", async () => {
      const [pid, multiprocess] = (await get(master.port)).split(" ");
      assert.equal(multiprocess, "true");
      seen.add(pid);
      return seen.size === 2;
    });
    assert.deepEqual([...seen].map(Number).sort(), workers.sort());
    await assertClean(master, 2);
  } finally {
    assert.equal((await stopMaster(master)).code, 0);
  }
  assert.match(master.log(), /SIGTERM: stopping gracefully/);
  assert.equal(
    [...master.log().matchAll(/Worker \d \(pid \d+\) exited \(\d+ requests served\)\n/g)].length,
    2,
  );
});

async function waitUntilAsync(what: string, check: () => Promise<boolean>, deadlineMs = 15_000) {
  const until = Date.now() + deadlineMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`Timed out waiting until ${what}`);
  }
}

Deno.test("a worker killed with SIGKILL is reaped, logged and replaced at once", async () => {
  const master = await startMaster([APP, "--workers", "2"], 2);
  try {
    const [victim, survivor] = master.readyWorkers();
    const killedAt = performance.now();
    Deno.kill(victim, "SIGKILL");
    await waitUntil("the killed worker is reaped", () => procStat(victim) === null);
    const workers = await waitForPool(master, 2);
    const replacedMs = performance.now() - killedAt;
    assert.ok(!workers.includes(victim) && workers.includes(survivor));
    assert.match(master.log(), new RegExp(`pid ${victim}\\) died: signal SIGKILL; replacing it`));
    console.log(`worker replaced and ready ${replacedMs.toFixed(0)} ms after SIGKILL`);
    await get(master.port);
    await assertClean(master, 2);
  } finally {
    assert.equal((await stopMaster(master)).code, 0);
  }
});

Deno.test("a master whose workers cannot boot backs off, then exits 3 with one line", async () => {
  const started = performance.now();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "tests/fixtures/throws_at_import.ts", "-w", "2", "-b", "127.0.0.1:0"],
    cwd: ROOT,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const output = await child.output();
  const log = new TextDecoder().decode(output.stderr);
  assert.equal(output.code, 3, log);
  assert.match(
    log,
    /\[ERROR\] no worker could boot: Cannot import "tests\/fixtures\/throws_at_import.ts": .*database unreachable at import \(at tests\/fixtures\/throws_at_import\.ts:\d+:\d+\)\n/,
  );
  assert.equal([...log.matchAll(/\) failed to boot: /g)].length, 5);
  // Two at first, then one at a time after 200, 400 and 800 ms.
  assert.match(log, /Next worker in 800 ms/);
  assert.ok(performance.now() - started > 1400, "the retries were spread out");
  assert.ok(!log.includes("Listening on"));
  for (const m of log.matchAll(/booting \(pid (\d+)\)/g)) assert.ok(exited(Number(m[1])));
});

for (const reusePort of [false, true]) {
  const how = reusePort ? "--reuse-port (each worker binds)" : "one shared accept queue";
  Deno.test(`SIGHUP replaces every worker under load, with no failure: ${how}`, async () => {
    const flags = reusePort ? ["--reuse-port"] : [];
    const master = await startMaster([APP, "--workers", "2", ...flags], 2);
    try {
      const old = master.readyWorkers();
      const traffic = load(master.port, 2, 2);
      try {
        await waitUntil("the clients are running", () => traffic.ok >= 50);
        for (let round = 0; round < 2; round++) {
          const before = master.readyWorkers();
          Deno.kill(master.pid, "SIGHUP");
          await waitUntil("the old workers are gone and the new ones ready", () => {
            const now = master.readyWorkers();
            return now.length === 2 && now.every((pid) => !before.includes(pid)) &&
              before.every(exited);
          });
          const okBefore = traffic.ok;
          await waitUntil("the new workers serve", () => traffic.ok >= okBefore + 50);
        }
      } finally {
        await traffic.stop();
      }
      assertNoFailure(traffic, 4, master.log(), reusePort);
      assert.match(master.log(), reusePort ? /with SO_REUSEPORT/ : /sharing one accept queue/);
      const now = master.readyWorkers();
      assert.ok(now.every((pid) => !old.includes(pid)));
      assert.ok(now.some((pid) => traffic.pids.has(String(pid))), "the new workers served");
      await assertClean(master, 2);
    } finally {
      assert.equal((await stopMaster(master)).code, 0);
    }
  });
}

Deno.test("SIGTTIN adds a worker and SIGTTOU removes one", async () => {
  const master = await startMaster([APP, "--workers", "1"], 1);
  try {
    Deno.kill(master.pid, "SIGTTIN");
    await waitForPool(master, 2);
    Deno.kill(master.pid, "SIGTTIN");
    const three = await waitForPool(master, 3);
    Deno.kill(master.pid, "SIGTTOU");
    const two = await waitForPool(master, 2);
    assert.ok(two.every((pid) => three.includes(pid)));
    Deno.kill(master.pid, "SIGTTOU");
    await waitForPool(master, 1);
    Deno.kill(master.pid, "SIGTTOU");
    await waitUntil(
      "the master says it keeps one",
      () => /SIGTTOU: 1 worker\(s\)\n[^]*SIGTTOU: 1 worker/.test(master.log()),
    );
    await get(master.port);
    await assertClean(master, 1);
  } finally {
    assert.equal((await stopMaster(master)).code, 0);
  }
});

Deno.test("--max-requests recycles workers under load without failing a request", async () => {
  const master = await startMaster(
    [APP, "--workers", "2", "--max-requests", "30", "--max-requests-jitter", "10"],
    2,
  );
  try {
    const traffic = load(master.port, 2, 2);
    try {
      await waitUntil("several generations have served", () => traffic.pids.size >= 6);
    } finally {
      await traffic.stop();
    }
    assertNoFailure(traffic, traffic.pids.size, master.log());
    assert.match(master.log(), /served \d+ requests: asking to be replaced/);
    await assertClean(master, 2);
  } finally {
    assert.equal((await stopMaster(master)).code, 0);
  }
});

Deno.test("--timeout: a worker whose event loop is stuck is killed and replaced", async () => {
  const master = await startMaster([APP, "--workers", "1", "--timeout", "2"], 1);
  try {
    const [stuck] = master.readyWorkers();
    await assert.rejects(get(master.port, "/hang"));
    assert.match(
      master.log(),
      new RegExp(`pid ${stuck}\\) timed out: no heartbeat for 2 s; killing it`),
    );
    const [fresh] = await waitForPool(master, 1);
    assert.notEqual(fresh, stuck);
    assert.equal(await get(master.port), `${fresh} true`);
    await assertClean(master, 1);
  } finally {
    assert.equal((await stopMaster(master)).code, 0);
  }
});

Deno.test("SIGTERM lets a slow request in flight complete", async () => {
  const master = await startMaster([APP, "--workers", "2"], 2);
  const slow = get(master.port, "/slow?ms=1500");
  await waitUntil("the slow request has started", () => /slow request started/.test(master.log()));
  await assertClean(master, 2);
  const status = await stopMaster(master);
  assert.match(await slow, /^slow done in \d+$/);
  assert.equal(status.code, 0);
});

Deno.test("workers exit by themselves when their master is killed", async () => {
  const master = await startMaster([APP, "--workers", "2"], 2);
  const workers = master.readyWorkers();
  Deno.kill(master.pid, "SIGKILL");
  await master.child.status;
  await waitUntil("the orphaned workers have exited", () => workers.every(exited));
  await master.logDone;
  assert.equal([...master.log().matchAll(/stopping: master gone/g)].length, 2);
});
