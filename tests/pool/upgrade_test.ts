// SIGUSR2, as a user sends it: a real master (`deno run main.ts --workers 2`) starts a new
// master from the code now on disk, which inherits the listening sockets, starts its workers
// and, once they are all ready, stops the old master with TERM (src/pool/master.ts, #upgrade).
// The new master is the old one's child until the old one exits (then it is re-parented); it
// writes to the same stderr, so the test finds it by its "Master starting (pid N)" line, and
// its workers by the lines tagged with its PID. Real clients on new and kept-alive connections
// count every failure. Nothing here sleeps to synchronise: every wait polls a condition
// against a deadline.

import assert from "node:assert/strict";
import { fromFileUrl } from "../support/paths.ts";
import { childrenOf, exited, spawnLogged, waitForListen, waitUntil } from "../support/process.ts";
import {
  assertNoFailure,
  get,
  hasPython,
  type Load,
  load,
  MAIN,
  readyWorkersOf,
  ROOT,
  type Target,
  waitForWorkers,
} from "../support/pool.ts";

/** Answers "<pid> <version>" and imports nothing, so that a copy runs from anywhere. */
const APP = fromFileUrl(new URL("../fixtures/upgrade_app.ts", import.meta.url));
const ACTIVATE = fromFileUrl(new URL("../fixtures/systemd_activate.py", import.meta.url));
const BROKEN = 'throw new Error("upgrade test: broken on purpose");\n';

// --- the masters ---------------------------------------------------------------------------

interface Pool {
  /** The master the test started; every later one descends from it. */
  first: Deno.ChildProcess;
  target: Target;
  /** Everything written to the shared stderr so far, by every master and worker. */
  log(): string;
  /** Resolves once every process holding that stderr has exited. */
  logDone: Promise<string>;
}

/**
 * Starts a master with 2 workers on `bind` and waits until both are ready. `activated`: under
 * a script playing systemd's part, which hands it a TCP socket (LISTEN_FDS) and execs it.
 */
async function startPool(app: string, bind: string, activated = false): Promise<Pool> {
  const tsgi = ["run", "-A", MAIN, app, "--workers", "2", "-b", bind, "--access-log", "off"];
  const [command, args] = activated
    ? ["python3", [ACTIVATE, Deno.execPath(), ...tsgi]]
    : [Deno.execPath(), tsgi];
  const master = spawnLogged(command, args, { cwd: ROOT });
  const listening = /Listening on (?:http:\/\/127\.0\.0\.1:(\d+)|unix:(\S+))/;
  const [, port, path] = await waitForListen(master, listening, "master");
  const pool = {
    first: master.child,
    target: port ? Number(port) : { path },
    log: master.log,
    logDone: master.logDone,
  };
  await workersReady(pool, master.child.pid);
  return pool;
}

/** The PIDs of the masters started so far, in order: "Master starting (pid N)". */
function masterPids(log: string): number[] {
  return [...log.matchAll(/Master starting \(pid (\d+)\)/g)].map((m) => Number(m[1]));
}

/** Live children of `master` that it logged as ready. */
function readyWorkers(pool: Pool, master: number): number[] {
  return readyWorkersOf(pool.log(), master, true);
}

/** Waits until `master` has exactly 2 children, both ready. */
function workersReady(pool: Pool, master: number): Promise<number[]> {
  const what = `master ${master} has 2 ready workers`;
  return waitForWorkers(master, 2, () => readyWorkers(pool, master), 15_000, what);
}

/** Sends USR2 to `master`; resolves with the PID of the master it starts. */
async function usr2(pool: Pool, master: number): Promise<number> {
  const known = masterPids(pool.log()).length;
  Deno.kill(master, "SIGUSR2");
  await waitUntil("a new master says it starts", () => masterPids(pool.log()).length > known);
  return masterPids(pool.log())[known];
}

/** An upgrade that works: the old master and its workers have exited, the new one's are
 * ready. Resolves with the new master's PID and workers. */
async function upgrade(pool: Pool, old: number): Promise<{ master: number; workers: number[] }> {
  const oldWorkers = readyWorkers(pool, old);
  const master = await usr2(pool, old);
  await waitUntil(`the old master ${old} and its workers have exited`, () => {
    return exited(old) && oldWorkers.every(exited);
  });
  const workers = await workersReady(pool, master);
  await logged(pool, master, `Upgrade: all 2 worker(s) ready; old master ${old} stopping`);
  await logged(pool, old, `Master stopped (pid ${old})`);
  return { master, workers };
}

/** Waits until `pid` has logged `line` at INFO: a process may exit before the test has read
 * its last lines from the pipe. */
async function logged(pool: Pool, pid: number, line: string): Promise<void> {
  const text = `[${pid}] [INFO] ${line}\n`;
  await waitUntil(`${pid} logs "${line}"`, () => pool.log().includes(text));
}

/**
 * Stops every master still running (TERM, then SIGKILL for any left after the deadline) and
 * waits for the whole log. Called in `finally`, so a failing test leaves no process behind.
 */
async function shutdown(pool: Pool): Promise<void> {
  const running = () => masterPids(pool.log()).filter((pid) => !exited(pid));
  const workers = masterPids(pool.log()).flatMap((pid) => childrenOf(pid).map((p) => p.pid));
  for (const pid of running()) signal(pid, "SIGTERM");
  try {
    await waitUntil("every master has stopped", () => running().length === 0, 15_000);
  } finally {
    for (const pid of running()) signal(pid, "SIGKILL");
    await pool.first.status;
    await waitUntil("every worker has exited", () => workers.every(exited));
    await pool.logDone;
  }
}

function signal(pid: number, name: Deno.Signal): void {
  try {
    Deno.kill(pid, name);
  } catch {
    // Exited meanwhile.
  }
}

// --- clients -------------------------------------------------------------------------------

/** Waits for `n` more answers; a timeout says what the clients met. */
async function answered(traffic: Load, n: number): Promise<void> {
  const target = traffic.ok + n;
  try {
    await waitUntil(`${n} more requests are answered`, () => traffic.ok >= target);
  } catch (error) {
    throw new Error(
      `${error instanceof Error ? error.message : error}\n${traffic.errors.join("\n")}`,
    );
  }
}

/**
 * Marks, lets answers already under way arrive, marks again: every answer after that comes
 * from `workers`, the whole of the pool now, answering as `version`.
 */
async function assertServedBy(traffic: Load, workers: number[], version: string): Promise<void> {
  traffic.mark();
  await answered(traffic, 20);
  traffic.mark();
  await answered(traffic, 50);
  const expected = new Set(workers.map((pid) => `${pid} ${version}`));
  for (const body of traffic.since) {
    assert.ok(expected.has(body), `${body} is from one of ${[...expected].join(", ")}`);
  }
}

/** A copy of the app in a temporary folder, to be changed or broken before USR2. */
function copyApp(): { dir: string; app: string } {
  const dir = Deno.makeTempDirSync({ prefix: "tsgi-upgrade-" });
  const app = `${dir}/app.ts`;
  Deno.copyFileSync(APP, app);
  return { dir, app };
}

function setVersion(app: string, version: string): void {
  const text = Deno.readTextFileSync(APP).replace('"v1"', JSON.stringify(version));
  Deno.writeTextFileSync(app, text);
}

// --- tests ---------------------------------------------------------------------------------

Deno.test("USR2 under load: the new master's workers take over, no request fails (3 runs)", async () => {
  for (let run = 1; run <= 3; run++) {
    const started = performance.now();
    const pool = await startPool(APP, "127.0.0.1:0");
    try {
      const old = pool.first.pid;
      const traffic = load(pool.target, 2, 1);
      let next;
      try {
        await answered(traffic, 50);
        next = await upgrade(pool, old);
        await assertServedBy(traffic, next.workers, "v1");
      } finally {
        await traffic.stop();
      }
      assertNoFailure(traffic, pool.log());
      assert.equal((await pool.first.status).code, 0, "the old master exited 0");
      console.log(
        `run ${run}: ${traffic.ok} requests, ${traffic.failed} failed, ${traffic.resets} reset; ` +
          `master ${old} -> ${next.master} in ${(performance.now() - started).toFixed(0)} ms`,
      );
    } finally {
      await shutdown(pool);
    }
  }
});

Deno.test("the master started by USR2 serves the same port and answers HUP and USR2", async () => {
  const pool = await startPool(APP, "127.0.0.1:0");
  try {
    const second = await upgrade(pool, pool.first.pid);
    const port = pool.target as number;
    const listening = [...pool.log().matchAll(/Listening on (\S+)/g)].map((m) => m[1]);
    assert.deepEqual(listening, [`http://127.0.0.1:${port}`, `http://127.0.0.1:${port}`]);
    assert.ok(second.workers.map((pid) => `${pid} v1`).includes(await get(pool.target)));

    const traffic = load(pool.target, 2, 1);
    let third;
    try {
      await answered(traffic, 50);
      // HUP: fresh workers under the same (new) master, the ones before it stopped.
      Deno.kill(second.master, "SIGHUP");
      await waitUntil("the new master's workers are replaced", () => {
        const now = readyWorkers(pool, second.master);
        return now.length === 2 && now.every((pid) => !second.workers.includes(pid)) &&
          second.workers.every(exited);
      });
      await assertServedBy(traffic, readyWorkers(pool, second.master), "v1");
      // USR2 again: a master that inherited its sockets hands them on as well.
      third = await upgrade(pool, second.master);
      await assertServedBy(traffic, third.workers, "v1");
    } finally {
      await traffic.stop();
    }
    assertNoFailure(traffic, pool.log());
    await logged(pool, second.master, "SIGHUP: starting 2 fresh worker(s) to replace the others");
    Deno.kill(third.master, "SIGTERM");
    await logged(pool, third.master, `Master stopped (pid ${third.master})`);
  } finally {
    await shutdown(pool);
  }
});

Deno.test("USR2 whose new master cannot boot: Upgrade failed, the old one serves on", async () => {
  const { dir, app } = copyApp();
  const pool = await startPool(app, "127.0.0.1:0");
  try {
    const old = pool.first.pid;
    const workers = readyWorkers(pool, old);
    const traffic = load(pool.target, 2, 1);
    try {
      await answered(traffic, 50);
      Deno.writeTextFileSync(app, BROKEN + Deno.readTextFileSync(APP));
      const broken = await usr2(pool, old);
      await waitUntil("the old master says the upgrade failed", () => {
        return pool.log().includes(
          `[${old}] [ERROR] Upgrade failed: the new master exited (exit code 3)`,
        );
      });
      assert.ok(exited(broken));
      assert.match(pool.log(), /Cannot import .*upgrade test: broken on purpose/);
      assert.deepEqual(readyWorkers(pool, old).sort(), workers.sort(), "the same workers");
      await assertServedBy(traffic, workers, "v1");
      // Roll forward: fix the file, USR2 again.
      setVersion(app, "v2");
      const next = await upgrade(pool, old);
      await assertServedBy(traffic, next.workers, "v2");
    } finally {
      await traffic.stop();
    }
    assertNoFailure(traffic, pool.log());
    assert.equal((await pool.first.status).code, 0);
    console.log(`${traffic.ok} requests, ${traffic.failed} failed, ${traffic.resets} reset`);
  } finally {
    await shutdown(pool);
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("USR2 with a unix socket: the file stays and serves, the last master removes it", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "tsgi-upgrade-" });
  const path = `${dir}/tsgi.sock`;
  const pool = await startPool(APP, `unix:${path}`);
  try {
    assert.deepEqual(pool.target, { path });
    const traffic = load(pool.target, 2, 0);
    let next;
    try {
      await answered(traffic, 50);
      next = await upgrade(pool, pool.first.pid);
      assert.ok(Deno.lstatSync(path).isSocket, "the socket file is still there");
      await assertServedBy(traffic, next.workers, "v1");
    } finally {
      await traffic.stop();
    }
    assertNoFailure(traffic, pool.log());
    assert.ok(next.workers.map((pid) => `${pid} v1`).includes(await get(pool.target)));
    // The file is the new master's now: removed on its clean stop, as the old one would have.
    Deno.kill(next.master, "SIGTERM");
    await waitUntil("the new master has stopped", () => exited(next.master));
    assert.throws(() => Deno.lstatSync(path), Deno.errors.NotFound);
  } finally {
    await shutdown(pool);
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test({
  name: "USR2 under socket activation: the new master inherits systemd's socket",
  ignore: !(await hasPython()),
  async fn() {
    // A --bind that cannot be bound proves that no master binds: the handed socket is served.
    const pool = await startPool(APP, "unix:/nonexistent/x.sock", true);
    try {
      const traffic = load(pool.target, 2, 1);
      try {
        await answered(traffic, 50);
        const next = await upgrade(pool, pool.first.pid);
        await assertServedBy(traffic, next.workers, "v1");
      } finally {
        await traffic.stop();
      }
      assertNoFailure(traffic, pool.log());
      assert.equal([...pool.log().matchAll(/sharing one accept queue/g)].length, 2);
    } finally {
      await shutdown(pool);
    }
  },
});
