// The master of a pool of worker processes (gunicorn's arbiter, on Deno.Command). It serves
// no traffic: it starts the workers, which each listen on the same addresses with
// SO_REUSEPORT, and keeps their number right. Signal handlers and the watchers of each
// child only push events onto a queue; one loop owns all process state — reaping, spawning,
// timeouts, scaling, stopping — so no two pieces of code ever decide about the same child.
//
//   TERM, INT  stop gracefully: workers finish in-flight requests within --graceful-timeout
//   QUIT       stop now
//   HUP        start fresh workers (the app is imported again); each one that is ready
//              replaces an old one, so the port is never without a listener. If the fresh
//              ones cannot boot (a broken edit), the old ones keep serving: after a few
//              failures in a row the replacement is given up until the next HUP.
//   TTIN/TTOU  one worker more / one fewer (never fewer than one)

import { type ControlMessage, parseMessage, WORKER_ENV } from "./control.ts";
import { ErrorLog } from "../server/log.ts";
import { selfCommand } from "../process/reexec.ts";
import { roleEnv } from "../process/role.ts";
import { type BindAddress, formatBind, isUnixBind, urlOf } from "../server/bind.ts";
import type { PoolConfig } from "./config.ts";

/** Failed boots in a row, with no worker ever ready, after which the master gives up. */
const BOOT_FAILURE_LIMIT = 5;
const BACKOFF_FIRST_MS = 100;
const BACKOFF_MAX_MS = 5000;
/** A worker is given this long to say anything at all, however short --timeout is: starting
 * a runtime and compiling the app can take a few seconds on a loaded machine. */
const FIRST_WORD_MS = 30_000;
/** After --graceful-timeout, the worker closes what is left itself; then SIGKILL. */
const KILL_MARGIN_MS = 1000;
/** QUIT: how long workers get to exit on their own before SIGKILL. */
const QUIT_WAIT_MS = 1000;
/** After a worker exits, how long its stdout may stay open (held by a process it started). */
const DRAIN_STDOUT_MS = 1000;
/** Status of a master whose workers all failed to boot. */
export const EXIT_NO_WORKER = 3;

const SIGNALS = ["SIGTERM", "SIGINT", "SIGQUIT", "SIGHUP", "SIGTTIN", "SIGTTOU"] as const;
type MasterSignal = typeof SIGNALS[number];

/** One child process, as the loop sees it. */
interface Worker {
  id: number;
  pid: number;
  child: Deno.ChildProcess;
  /** Bumped by HUP: workers of an older generation are replaced. */
  generation: number;
  ready: boolean;
  /** Asked to be replaced (request budget spent). */
  retiring: boolean;
  /** Signalled to stop by the master; its exit is expected. */
  stopping: boolean;
  /** When a stopping worker gets SIGKILL. */
  killAt: number;
  killed: boolean;
  timedOut: boolean;
  heard: boolean;
  lastSeen: number;
  served: number;
  /** Why it could not boot, in its own words. */
  error: string | undefined;
}

type Event =
  | { type: "signal"; signal: MasterSignal }
  | { type: "reload"; why: string }
  | { type: "message"; worker: Worker; message: ControlMessage }
  | { type: "exit"; worker: Worker; status: Deno.CommandStatus };

/** What else can ask a master to replace its workers. */
export interface MasterOptions {
  /**
   * Called once the master runs, with a function that does what HUP does (the reason goes to
   * the log); returns what stops the watching when the master stops (src/reload.ts).
   */
  watch?: (reload: (why: string) => void) => { close(): void };
}

/**
 * Runs the master until the pool has stopped; resolves with the exit status. `argv` are the
 * user's arguments, passed on to each worker as they were given.
 */
export async function runMaster(
  spec: string,
  config: PoolConfig,
  argv: string[],
  options: MasterOptions = {},
): Promise<number> {
  const log = new ErrorLog(config.logLevel);
  const unix = config.bind.find(isUnixBind);
  if (unix) {
    // SO_REUSEPORT is for TCP, and Deno cannot hand a listening socket to a child process.
    console.error(
      `tsgi: --bind unix:${unix.path} cannot be shared by --workers: use a TCP bind, ` +
        "or one process per socket",
    );
    return 2;
  }
  let reserved;
  try {
    reserved = reservePorts(config.bind as BindAddress[]);
  } catch (error) {
    console.error(`tsgi: cannot listen: ${error instanceof Error ? error.message : error}`);
    return 1;
  }
  log.info(`Master starting (pid ${Deno.pid}): ${config.workers} worker(s) serving ${spec}`);
  return await new Arbiter(config, argv, reserved.binds, reserved.probes, log).run(options);
}

/**
 * Resolves port 0 to a port all workers can share: binds it (with SO_REUSEPORT, as the
 * workers will) and keeps that listener until the first worker listens too, so no other
 * program can take the port meanwhile. It never accepts, and nobody knows the port before
 * "Listening on" is printed, so nothing connects to it. A fixed port is only checked.
 */
function reservePorts(binds: BindAddress[]): { binds: BindAddress[]; probes: Deno.Listener[] } {
  const resolved: BindAddress[] = [];
  const probes: Deno.Listener[] = [];
  try {
    for (const bind of binds) {
      const listener = Deno.listen({ hostname: bind.hostname, port: bind.port, reusePort: true });
      resolved.push({ hostname: bind.hostname, port: (listener.addr as Deno.NetAddr).port });
      if (bind.port === 0) probes.push(listener);
      else listener.close();
    }
  } catch (error) {
    for (const probe of probes) probe.close();
    throw error;
  }
  return { binds: resolved, probes };
}

/** How a worker ended, for the log: "exit code 1", "signal SIGKILL". */
function describeStatus(status: Deno.CommandStatus): string {
  return status.signal !== null ? `signal ${status.signal}` : `exit code ${status.code}`;
}

class Arbiter {
  readonly #config: PoolConfig;
  readonly #log: ErrorLog;
  readonly #binds: BindAddress[];
  readonly #command: string;
  readonly #args: string[];
  #probes: Deno.Listener[];

  readonly #workers = new Map<number, Worker>();
  readonly #events: Event[] = [];
  #wake: (() => void) | null = null;

  #target: number;
  #generation = 0;
  #nextId = 1;
  #everBooted = false;
  #bootFailures = 0;
  #lastBootFailure = "";
  #nextSpawnAt = 0;
  #stopping: "graceful" | "quick" | null = null;
  #announced = false;
  #exitCode = 0;
  #relay: Promise<void> = Promise.resolve();

  constructor(
    config: PoolConfig,
    argv: string[],
    binds: BindAddress[],
    probes: Deno.Listener[],
    log: ErrorLog,
  ) {
    this.#config = config;
    this.#log = log;
    this.#binds = binds;
    this.#probes = probes;
    this.#target = config.workers;
    ({ command: this.#command, args: this.#args } = selfCommand(argv));
  }

  async run(options: MasterOptions = {}): Promise<number> {
    const handlers = SIGNALS.map((signal) => {
      const handler = () => this.#push({ type: "signal", signal });
      Deno.addSignalListener(signal, handler);
      return [signal, handler] as const;
    });
    let watcher: { close(): void } | undefined;
    try {
      watcher = options.watch?.((why) => this.#push({ type: "reload", why }));
      while (true) {
        for (const event of this.#events.splice(0)) this.#handle(event);
        const now = Date.now();
        this.#supervise(now);
        if (this.#stopping !== null && this.#workers.size === 0) break;
        await this.#sleep(this.#nextWake(now) - now);
      }
    } finally {
      watcher?.close();
      for (const [signal, handler] of handlers) Deno.removeSignalListener(signal, handler);
      this.#closeProbes();
      await this.#relay;
    }
    this.#log.info(`Master stopped (pid ${Deno.pid})`);
    return this.#exitCode;
  }

  // --- events -----------------------------------------------------------------------------

  #push(event: Event): void {
    this.#events.push(event);
    this.#wake?.();
  }

  #sleep(ms: number): Promise<void> {
    if (this.#events.length > 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.#wake?.(), Math.max(1, ms));
      this.#wake = () => {
        clearTimeout(timer);
        this.#wake = null;
        resolve();
      };
    });
  }

  #handle(event: Event): void {
    if (event.type === "signal") this.#onSignal(event.signal);
    else if (event.type === "reload") this.#replaceAll(event.why);
    else if (event.type === "message") this.#onMessage(event.worker, event.message);
    else this.#onExit(event.worker, event.status);
  }

  #onSignal(signal: MasterSignal): void {
    const now = Date.now();
    switch (signal) {
      case "SIGTERM":
      case "SIGINT":
        if (this.#stopping === null) {
          this.#log.info(`${signal}: stopping gracefully`);
          this.#stopAll("graceful", now);
        } else {
          this.#log.warning(`${signal} again: stopping now`);
          this.#stopAll("quick", now);
        }
        return;
      case "SIGQUIT":
        this.#log.info(`${signal}: stopping now`);
        this.#stopAll("quick", now);
        return;
      case "SIGHUP":
        this.#replaceAll(signal);
        return;
      case "SIGTTIN":
        if (this.#stopping !== null) return;
        this.#target++;
        this.#log.info(`${signal}: ${this.#target} worker(s)`);
        return;
      case "SIGTTOU":
        if (this.#stopping !== null) return;
        if (this.#target > 1) this.#target--;
        this.#log.info(`${signal}: ${this.#target} worker(s)`);
        return;
    }
  }

  /** HUP: a new generation of workers; each old one goes when a fresh one is ready. */
  #replaceAll(why: string): void {
    if (this.#stopping !== null) return;
    this.#generation++;
    // Asked for on purpose, most likely after a fix: try at once, not after the backoff.
    this.#bootFailures = 0;
    this.#nextSpawnAt = 0;
    this.#log.info(`${why}: starting ${this.#target} fresh worker(s) to replace the others`);
  }

  #onMessage(worker: Worker, message: ControlMessage): void {
    worker.heard = true;
    worker.lastSeen = Date.now();
    switch (message.t) {
      case "hb":
        worker.served = message.n;
        return;
      case "ready":
        worker.ready = true;
        this.#everBooted = true;
        this.#bootFailures = 0;
        this.#nextSpawnAt = 0;
        this.#log.info(`Worker ${worker.id} (pid ${worker.pid}) ready`);
        this.#announce();
        return;
      case "retiring":
        worker.retiring = true;
        return;
      case "error":
        worker.error = message.msg;
        return;
    }
  }

  /** The first ready worker: the ports are held by workers now, so say where. */
  #announce(): void {
    this.#closeProbes();
    if (this.#announced) return;
    this.#announced = true;
    for (const bind of this.#binds) {
      console.error(`Listening on ${urlOf(bind)}`);
    }
  }

  #closeProbes(): void {
    for (const probe of this.#probes) probe.close();
    this.#probes = [];
  }

  #onExit(worker: Worker, status: Deno.CommandStatus): void {
    this.#workers.delete(worker.id);
    const how = describeStatus(status);
    const who = `Worker ${worker.id} (pid ${worker.pid})`;
    if (worker.stopping) {
      if (status.success) this.#log.info(`${who} exited`);
      else this.#log.warning(`${who} exited: ${how}`);
      return;
    }
    if (worker.ready) {
      this.#log.warning(`${who} died: ${how}; replacing it`);
      return;
    }
    const reason = worker.timedOut
      ? `no word from it for ${this.#config.timeout} s`
      : worker.error ?? how;
    this.#log.error(`${who} failed to boot: ${reason}`);
    this.#bootFailed(reason);
  }

  #bootFailed(reason: string): void {
    this.#bootFailures++;
    this.#lastBootFailure = reason;
    if (!this.#everBooted && this.#bootFailures >= BOOT_FAILURE_LIMIT) {
      if (this.#stopping === null) {
        this.#log.error(`no worker could boot: ${reason}`);
        this.#exitCode = EXIT_NO_WORKER;
        this.#stopAll("quick", Date.now());
      }
      return;
    }
    if (this.#bootFailures === BOOT_FAILURE_LIMIT && this.#keepOldWorkers(reason)) return;
    const delay = Math.min(BACKOFF_FIRST_MS * 2 ** (this.#bootFailures - 1), BACKOFF_MAX_MS);
    this.#nextSpawnAt = Date.now() + delay;
    this.#log.info(`Next worker in ${delay} ms (${this.#bootFailures} failed boot(s) in a row)`);
  }

  /**
   * A replacement (HUP) whose fresh workers keep failing to boot is given up: the old workers
   * that are serving become the current generation again, so they are not retired for
   * workers that cannot come. Without this the pool would retry the broken app forever.
   * True when they are enough: no worker is to be started.
   */
  #keepOldWorkers(reason: string): boolean {
    const old = [...this.#workers.values()].filter((w) =>
      w.generation < this.#generation && w.ready && !w.retiring && !w.stopping && !w.killed
    );
    if (old.length === 0) return false;
    for (const worker of old) worker.generation = this.#generation;
    this.#log.error(
      `Replacement given up after ${this.#bootFailures} failed boots (${reason}): ` +
        `${old.length} worker(s) keep serving the app they loaded; send HUP (with --reload: ` +
        "save a fix) to try again",
    );
    return old.length >= this.#target;
  }

  // --- the supervisor's decisions ---------------------------------------------------------

  /** Everything the loop does besides reacting to events: kills due, spawns, replacements. */
  #supervise(now: number): void {
    for (const worker of this.#workers.values()) {
      if (worker.killed) continue;
      if (worker.stopping) {
        if (now >= worker.killAt) {
          this.#log.warning(`Worker ${worker.id} (pid ${worker.pid}) still running: SIGKILL`);
          this.#kill(worker, "SIGKILL");
        }
      } else if (now >= this.#silenceDeadline(worker)) {
        this.#log.error(
          `Worker ${worker.id} (pid ${worker.pid}) timed out: no heartbeat for ` +
            `${this.#config.timeout} s; killing it`,
        );
        worker.timedOut = true;
        this.#kill(worker, "SIGKILL");
      }
    }
    if (this.#stopping !== null) return;

    const serving = [...this.#workers.values()].filter((w) => !w.stopping && !w.killed);
    const isOld = (w: Worker) => w.generation < this.#generation || w.retiring;
    const fresh = serving.filter((w) => !isOld(w));
    const old = serving.filter(isOld);

    // Spawn up to the target; after a failed boot, one at a time and only when the backoff
    // has passed.
    let freshCount = fresh.length;
    let booting = fresh.filter((w) => !w.ready).length;
    while (freshCount < this.#target && now >= this.#nextSpawnAt) {
      if (this.#bootFailures > 0 && booting > 0) break;
      if (!this.#spawn(now)) break;
      freshCount++;
      booting++;
    }

    // Each fresh worker that is ready lets one old one go, oldest first; an old one that is
    // not ready yet serves nobody and goes at once.
    const freshReady = fresh.filter((w) => w.ready).length;
    let keep = Math.max(0, this.#target - freshReady);
    for (const worker of old.sort((a, b) => a.id - b.id)) {
      if (worker.ready && keep > 0) keep--;
      else this.#stop(worker, now);
    }

    // TTOU: the fresh workers past the target, those still booting first, then the oldest.
    if (fresh.length > this.#target) {
      const byAge = fresh.sort((a, b) => Number(a.ready) - Number(b.ready) || a.id - b.id);
      for (const worker of byAge.slice(0, fresh.length - this.#target)) this.#stop(worker, now);
    }
  }

  #silenceDeadline(worker: Worker): number {
    const timeoutMs = this.#config.timeout * 1000;
    if (timeoutMs <= 0) return Infinity;
    return worker.lastSeen + (worker.heard ? timeoutMs : Math.max(timeoutMs, FIRST_WORD_MS));
  }

  /** When the loop must look again even if nothing happens. */
  #nextWake(now: number): number {
    let next = now + 1000;
    for (const worker of this.#workers.values()) {
      if (worker.killed) continue;
      next = Math.min(next, worker.stopping ? worker.killAt : this.#silenceDeadline(worker));
    }
    if (this.#stopping === null && this.#nextSpawnAt > now) {
      next = Math.min(next, this.#nextSpawnAt);
    }
    return next;
  }

  #stopAll(mode: "graceful" | "quick", now: number): void {
    this.#stopping = mode;
    this.#closeProbes();
    for (const worker of this.#workers.values()) {
      if (worker.killed) continue;
      if (mode === "graceful") this.#stop(worker, now);
      else {
        worker.stopping = true;
        worker.killAt = Math.min(worker.killAt, now + QUIT_WAIT_MS);
        this.#kill(worker, "SIGQUIT");
      }
    }
  }

  /** Asks a worker to finish its requests and exit; SIGKILL if it has not by killAt. */
  #stop(worker: Worker, now: number): void {
    if (worker.stopping) return;
    worker.stopping = true;
    worker.killAt = now + this.#config.gracefulTimeout * 1000 + KILL_MARGIN_MS;
    this.#kill(worker, "SIGTERM");
  }

  #kill(worker: Worker, signal: Deno.Signal): void {
    if (signal === "SIGKILL") worker.killed = true;
    try {
      worker.child.kill(signal);
    } catch {
      // It has exited already; its exit event is on its way.
    }
  }

  #spawn(now: number): boolean {
    const id = this.#nextId++;
    const { maxRequests, maxRequestsJitter } = this.#config;
    const budget = maxRequests > 0
      ? maxRequests + Math.floor(Math.random() * (maxRequestsJitter + 1))
      : 0;
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(this.#command, {
        args: this.#args,
        env: {
          ...roleEnv("worker"),
          [WORKER_ENV.id]: String(id),
          [WORKER_ENV.maxRequests]: String(budget),
          [WORKER_ENV.binds]: this.#binds.map(formatBind).join(","),
        },
        stdin: "piped",
        stdout: "piped",
        stderr: "inherit",
      }).spawn();
    } catch (error) {
      const reason = `cannot start a process: ${error instanceof Error ? error.message : error}`;
      this.#log.error(`Worker ${id} ${reason}`);
      this.#bootFailed(reason);
      return false;
    }
    const worker: Worker = {
      id,
      pid: child.pid,
      child,
      generation: this.#generation,
      ready: false,
      retiring: false,
      stopping: false,
      killAt: Infinity,
      killed: false,
      timedOut: false,
      heard: false,
      lastSeen: now,
      served: 0,
      error: undefined,
    };
    this.#workers.set(id, worker);
    this.#log.info(`Worker ${id} booting (pid ${child.pid})`);
    this.#watch(worker);
    return true;
  }

  /**
   * Reads a worker's stdout until it closes — control messages become events, other lines go
   * to our stdout — and reports its exit once both its status and its stdout are in, so the
   * loop sees every message a worker sent before it sees the worker gone.
   */
  #watch(worker: Worker): void {
    const { child } = worker;
    const reader = child.stdout.getReader();
    const reading = this.#readMessages(worker, reader);
    child.status.then(async (status) => {
      const timer = setTimeout(() => reader.cancel().catch(() => {}), DRAIN_STDOUT_MS);
      await reading;
      clearTimeout(timer);
      reader.releaseLock();
      await child.stdin.close().catch(() => {});
      this.#push({ type: "exit", worker, status });
    });
  }

  async #readMessages(
    worker: Worker,
    reader: ReadableStreamDefaultReader<Uint8Array>,
  ): Promise<void> {
    const decoder = new TextDecoder();
    let pending = "";
    try {
      while (true) {
        const { done, value } = await reader.read();
        if (done) break;
        pending += decoder.decode(value, { stream: true });
        let passThrough = "";
        let nl = pending.indexOf("\n");
        while (nl >= 0) {
          const line = pending.slice(0, nl);
          pending = pending.slice(nl + 1);
          const message = parseMessage(line);
          if (message) this.#push({ type: "message", worker, message });
          else passThrough += line + "\n";
          nl = pending.indexOf("\n");
        }
        if (passThrough !== "") this.#passThrough(passThrough);
      }
    } catch {
      // Cancelled after the worker exited: what is left is lost with it.
    }
    if (pending !== "") this.#passThrough(pending + "\n");
  }

  /** Writes a worker's other output (its access log on "-") to our stdout, in order. */
  #passThrough(text: string): void {
    const bytes = new TextEncoder().encode(text);
    this.#relay = this.#relay.then(async () => {
      try {
        let done = 0;
        while (done < bytes.length) done += await Deno.stdout.write(bytes.subarray(done));
      } catch {
        // Our stdout is gone; the lines are lost, the pool keeps serving.
      }
    });
  }
}
