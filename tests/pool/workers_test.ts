// The worker pool as a user runs it: a real master (`deno run main.ts --workers N`), its real
// worker processes, real clients, and /proc to see what the kernel sees — who is whose child,
// who is a zombie, how many descriptors the master holds. Nothing here sleeps to synchronise:
// every wait polls a condition against a deadline.

import assert from "node:assert/strict";
import { exited, fdCount, procStat, waitUntil } from "../support/process.ts";
import {
  assertNoFailure,
  assertSettled,
  get,
  type Load,
  load,
  type Pool,
  runToExit,
  startPool,
  stopPool,
  waitForPool,
  waitUntilAsync,
} from "../support/pool.ts";

const APP = "tests/fixtures/workers_app.ts";

// --- the master ----------------------------------------------------------------------------

interface Master extends Pool {
  /** The descriptor count once the pool was first complete. */
  baselineFds: number;
}

/** Starts a master on a free port and waits for all its workers to be ready. */
async function startMaster(args: string[], workers: number): Promise<Master> {
  const pool = await startPool(args, workers);
  return { ...pool, baselineFds: fdCount(pool.pid) };
}

/** What every test checks at its end: no zombie, descriptors back to where they were. */
async function assertClean(master: Master, workers: number): Promise<void> {
  await waitForPool(master, workers);
  await assertSettled(master.pid, master.baselineFds);
}

const stopMaster = stopPool;

// --- clients -------------------------------------------------------------------------------

/** The workers that answered: the first word of each body. */
function pids(traffic: Load): Set<string> {
  return new Set([...traffic.since].map((body) => body.split(" ")[0]));
}

/**
 * No request failed, and none was reset: the workers accept from the master's sockets, so a
 * worker that goes leaves nothing queued behind. (With --reuse-port, at most one connection
 * per worker replaced may be reset by the kernel: docs/workers.md, "What HUP can cost".)
 */
function assertNoLoss(traffic: Load, replaced: number, log: string, reusePort = false): void {
  console.log(
    `${traffic.ok} requests, ${traffic.failed} failed, ${traffic.resets} reset in ` +
      `their handshake, ${pids(traffic).size} workers served`,
  );
  assertNoFailure(traffic, log, reusePort ? replaced : 0);
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
  const output = await runToExit([
    "tests/fixtures/throws_at_import.ts",
    "-w",
    "2",
    "-b",
    "127.0.0.1:0",
  ]);
  const log = output.stderr;
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
      assertNoLoss(traffic, 4, master.log(), reusePort);
      assert.match(master.log(), reusePort ? /with SO_REUSEPORT/ : /sharing one accept queue/);
      const now = master.readyWorkers();
      assert.ok(now.every((pid) => !old.includes(pid)));
      assert.ok(now.some((pid) => pids(traffic).has(String(pid))), "the new workers served");
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
      await waitUntil("several generations have served", () => pids(traffic).size >= 6);
    } finally {
      await traffic.stop();
    }
    assertNoLoss(traffic, pids(traffic).size, master.log());
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
