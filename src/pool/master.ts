// The master of a pool of worker processes (gunicorn's arbiter, on Deno.Command): it serves no
// traffic, starts workers that share the port (SO_REUSEPORT) and keeps their number right.

import { type ControlMessage, parseMessage, WORKER_ENV } from "./control.ts";
import {
  deadlineOf,
  exitMeaning,
  isFresh,
  isOld,
  isReady,
  isWatched,
  type Phase,
  transition,
} from "./phase.ts";
import { Passthrough } from "./passthrough.ts";
import { ErrorLog } from "../server/log.ts";
import { BootFailures } from "../process/backoff.ts";
import { describeExit } from "../process/exit_status.ts";
import { relayLines } from "../process/line_relay.ts";
import { selfCommand } from "../process/reexec.ts";
import { roleEnv } from "../process/role.ts";
import { type BindAddress, formatBind, isUnixBind, urlOf } from "../server/bind.ts";
import type { PoolConfig } from "./config.ts";

/** Failed boots in a row, with no worker ever ready, after which the master gives up. */
const BOOT_FAILURE_LIMIT = 5;
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

/** One worker process, as the loop sees it. */
interface PoolWorker {
  readonly id: number;
  readonly pid: number;
  readonly child: Deno.ChildProcess;
  /** All the master knows of its state; changed only through transition() (src/pool/phase.ts). */
  phase: Phase;
  /** Requests served, as of its last heartbeat. */
  served: number;
}

type Event =
  | { type: "signal"; signal: MasterSignal }
  | { type: "reload"; why: string }
  | { type: "message"; worker: PoolWorker; message: ControlMessage }
  | { type: "exit"; worker: PoolWorker; status: Deno.CommandStatus };

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

/**
 * The supervisor. Signal handlers and the watchers of each child only push events onto a
 * queue; one loop owns all process state — reaping, spawning, timeouts, scaling, stopping — so
 * no two pieces of code ever decide about the same child.
 */
class Arbiter {
  readonly #config: PoolConfig;
  readonly #log: ErrorLog;
  readonly #binds: BindAddress[];
  readonly #command: string;
  readonly #args: string[];
  #probes: Deno.Listener[];

  readonly #workers = new Map<number, PoolWorker>();
  readonly #events: Event[] = [];
  #wake: (() => void) | null = null;

  #target: number;
  /** Bumped by each reload: workers started for an earlier one are replaced. */
  #generation = 0;
  #nextId = 1;
  #everBooted = false;
  readonly #bootFailures = new BootFailures();
  #nextSpawnAt = 0;
  #stopping: "graceful" | "quick" | null = null;
  #announced = false;
  #exitCode = 0;
  readonly #passthrough = new Passthrough();

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
      await this.#passthrough.flushed();
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
    else if (event.type === "reload") this.#reload(event.why);
    else if (event.type === "message") this.#onMessage(event.worker, event.message);
    else this.#reap(event.worker, event.status);
  }

  /**
   *   TERM, INT  stop gracefully: workers finish in-flight requests within --graceful-timeout
   *              (a second one: stop now)
   *   QUIT       stop now
   *   HUP        reload (#reload)
   *   TTIN/TTOU  one worker more / one fewer (never fewer than one)
   */
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
        this.#reload(signal);
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

  /**
   * HUP (or a watched file changed): fresh workers import the app again; each one that is
   * ready replaces an old one (#retireOld), so the port is never without a listener. If the
   * fresh ones cannot boot (a broken edit), the old ones keep serving (#keepOutdated).
   */
  #reload(why: string): void {
    if (this.#stopping !== null) return;
    this.#generation++;
    for (const worker of this.#workers.values()) {
      const { phase } = worker;
      // A booting one knows its generation: it becomes outdated if it gets ready.
      if (phase.name === "serving") this.#enter(worker, { ...phase, name: "outdated" });
    }
    // Asked for on purpose, most likely after a fix: try at once, not after the backoff.
    this.#bootFailures.reset();
    this.#nextSpawnAt = 0;
    this.#log.info(`${why}: starting ${this.#target} fresh worker(s) to replace the others`);
  }

  #onMessage(worker: PoolWorker, message: ControlMessage): void {
    this.#heard(worker, Date.now());
    const { phase } = worker;
    switch (message.t) {
      case "hb":
        worker.served = message.n;
        return;
      case "ready":
        this.#ready(worker);
        return;
      case "retiring":
        // Said by a ready worker; one told to go already is going anyway.
        if (phase.name === "serving" || phase.name === "outdated") {
          this.#enter(worker, { ...phase, name: "retiring" });
        }
        return;
      case "error":
        if (phase.name === "booting") this.#enter(worker, { ...phase, error: message.msg });
        return;
    }
  }

  /** Any word from a worker proves its event loop turns: its timeout starts again. */
  #heard(worker: PoolWorker, now: number): void {
    const { phase } = worker;
    if (isWatched(phase)) this.#enter(worker, { ...phase, timesOutAt: this.#timesOutAt(now) });
  }

  /** When a worker silent from `now` on times out; its first word may take longer. */
  #timesOutAt(now: number, firstWord = false): number {
    const timeoutMs = this.#config.timeout * 1000;
    if (timeoutMs <= 0) return Infinity;
    return now + (firstWord ? Math.max(timeoutMs, FIRST_WORD_MS) : timeoutMs);
  }

  /** A worker loaded the app and listens: booting works, whatever became of this one since. */
  #ready(worker: PoolWorker): void {
    const { phase } = worker;
    if (phase.name === "booting") {
      const name = phase.generation === this.#generation ? "serving" : "outdated";
      this.#enter(worker, { name, timesOutAt: phase.timesOutAt });
    }
    this.#everBooted = true;
    this.#bootFailures.reset();
    this.#nextSpawnAt = 0;
    this.#log.info(`Worker ${worker.id} (pid ${worker.pid}) ready`);
    this.#announce();
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

  /** A worker has exited (and its stdout is read): log it as its phase says, forget it. */
  #reap(worker: PoolWorker, status: Deno.CommandStatus): void {
    this.#workers.delete(worker.id);
    const how = describeExit(status);
    const who = `Worker ${worker.id} (pid ${worker.pid})`;
    const { phase } = worker;
    switch (exitMeaning(phase)) {
      case "stopped":
        if (status.success) this.#log.info(`${who} exited`);
        else this.#log.warning(`${who} exited: ${how}`);
        return;
      case "died":
        this.#log.warning(`${who} died: ${how}; replacing it`);
        return;
      case "failed to boot": {
        const reason = phase.name === "booting"
          ? phase.error ?? how
          : `no word from it for ${this.#config.timeout} s`;
        this.#log.error(`${who} failed to boot: ${reason}`);
        this.#bootFailed(reason);
      }
    }
  }

  #bootFailed(reason: string): void {
    const delay = this.#bootFailures.failed();
    const failures = this.#bootFailures.count;
    if (!this.#everBooted && failures >= BOOT_FAILURE_LIMIT) {
      if (this.#stopping === null) {
        this.#log.error(`no worker could boot: ${reason}`);
        this.#exitCode = EXIT_NO_WORKER;
        this.#stopAll("quick", Date.now());
      }
      return;
    }
    if (failures === BOOT_FAILURE_LIMIT && this.#keepOutdated(reason)) return;
    this.#nextSpawnAt = Date.now() + delay;
    this.#log.info(`Next worker in ${delay} ms (${failures} failed boot(s) in a row)`);
  }

  /**
   * A reload whose fresh workers keep failing to boot is given up: the outdated workers serve
   * on as the current ones, so they are not retired for workers that cannot come. Without
   * this the pool would retry the broken app forever. True when they are enough: no worker
   * is to be started.
   */
  #keepOutdated(reason: string): boolean {
    let kept = 0;
    for (const worker of this.#workers.values()) {
      const { phase } = worker;
      if (phase.name !== "outdated") continue;
      this.#enter(worker, { ...phase, name: "serving" });
      kept++;
    }
    if (kept === 0) return false;
    this.#log.error(
      `Replacement given up after ${this.#bootFailures.count} failed boots (${reason}): ` +
        `${kept} worker(s) keep serving the app they loaded; send HUP (with --reload: ` +
        "save a fix) to try again",
    );
    return kept >= this.#target;
  }

  // --- the supervisor's steps -------------------------------------------------------------

  /** Everything the loop does besides reacting to events, one step after another. */
  #supervise(now: number): void {
    this.#killOverdue(now);
    if (this.#stopping !== null) return;
    this.#spawnMissing(now);
    this.#retireOld(now);
    this.#trimExcess(now);
  }

  /** SIGKILL for workers silent past --timeout and for stopping ones past their killAt. */
  #killOverdue(now: number): void {
    for (const worker of this.#workers.values()) {
      if (now < deadlineOf(worker.phase)) continue;
      const who = `Worker ${worker.id} (pid ${worker.pid})`;
      if (worker.phase.name === "stopping") {
        this.#log.warning(`${who} still running: SIGKILL`);
      } else {
        this.#log.error(
          `${who} timed out: no heartbeat for ${this.#config.timeout} s; killing it`,
        );
      }
      this.#kill(worker);
    }
  }

  /** Starts workers up to the target; after a failed boot one at a time, once the backoff
   * has passed, so a broken app is not started N times over. */
  #spawnMissing(now: number): void {
    const fresh = this.#select((phase) => isFresh(phase, this.#generation));
    let count = fresh.length;
    let booting = fresh.filter((w) => !isReady(w.phase)).length;
    while (count < this.#target && now >= this.#nextSpawnAt) {
      if (this.#bootFailures.count > 0 && booting > 0) break;
      if (!this.#spawn(now)) break;
      count++;
      booting++;
    }
  }

  /** Each fresh worker that is ready lets one old one go, oldest first; an old one that is
   * not ready (booting for an earlier reload) serves nobody and goes at once. */
  #retireOld(now: number): void {
    const freshReady = this.#select((phase) => phase.name === "serving").length;
    let keep = Math.max(0, this.#target - freshReady);
    for (const worker of this.#select((phase) => isOld(phase, this.#generation))) {
      if (isReady(worker.phase) && keep > 0) keep--;
      else this.#stop(worker, now);
    }
  }

  /** Fresh workers past the target (TTOU) go: those still booting first, then the oldest. */
  #trimExcess(now: number): void {
    const fresh = this.#select((phase) => isFresh(phase, this.#generation));
    const excess = fresh.length - this.#target;
    if (excess <= 0) return;
    fresh.sort((a, b) => Number(isReady(a.phase)) - Number(isReady(b.phase)) || a.id - b.id);
    for (const worker of fresh.slice(0, excess)) this.#stop(worker, now);
  }

  /** The workers whose phase passes `test`, oldest first. */
  #select(test: (phase: Phase) => boolean): PoolWorker[] {
    return [...this.#workers.values()].filter((w) => test(w.phase)).sort((a, b) => a.id - b.id);
  }

  /** When the loop must look again even if nothing happens. */
  #nextWake(now: number): number {
    let next = now + 1000;
    for (const worker of this.#workers.values()) next = Math.min(next, deadlineOf(worker.phase));
    if (this.#stopping === null && this.#nextSpawnAt > now) {
      next = Math.min(next, this.#nextSpawnAt);
    }
    return next;
  }

  // --- what the steps do to a worker ------------------------------------------------------

  #enter(worker: PoolWorker, next: Phase): void {
    worker.phase = transition(worker.phase, next);
  }

  #stopAll(mode: "graceful" | "quick", now: number): void {
    this.#stopping = mode;
    this.#closeProbes();
    for (const worker of this.#workers.values()) {
      if (mode === "graceful") this.#stop(worker, now);
      else this.#quit(worker, now);
    }
  }

  /** Asks a worker to finish its requests and exit; SIGKILL if it has not by killAt. */
  #stop(worker: PoolWorker, now: number): void {
    if (!isWatched(worker.phase)) return;
    const killAt = now + this.#config.gracefulTimeout * 1000 + KILL_MARGIN_MS;
    this.#enter(worker, { name: "stopping", killAt });
    this.#signal(worker, "SIGTERM");
  }

  /** Tells a worker to exit at once, even one stopping gracefully already. */
  #quit(worker: PoolWorker, now: number): void {
    const { phase } = worker;
    if (phase.name === "killed") return;
    const graceEnds = phase.name === "stopping" ? phase.killAt : Infinity;
    this.#enter(worker, { name: "stopping", killAt: Math.min(graceEnds, now + QUIT_WAIT_MS) });
    this.#signal(worker, "SIGQUIT");
  }

  #kill(worker: PoolWorker): void {
    const { phase } = worker;
    if (phase.name === "killed") return;
    this.#enter(worker, { name: "killed", from: phase.name });
    this.#signal(worker, "SIGKILL");
  }

  #signal(worker: PoolWorker, signal: Deno.Signal): void {
    try {
      worker.child.kill(signal);
    } catch {
      // It has exited already; its exit event is on its way.
    }
  }

  #spawn(now: number): boolean {
    const id = this.#nextId++;
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(this.#command, {
        args: this.#args,
        env: this.#workerEnv(id),
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
    const timesOutAt = this.#timesOutAt(now, true);
    const worker: PoolWorker = {
      id,
      pid: child.pid,
      child,
      phase: { name: "booting", generation: this.#generation, timesOutAt },
      served: 0,
    };
    this.#workers.set(id, worker);
    this.#log.info(`Worker ${id} booting (pid ${child.pid})`);
    this.#watch(worker);
    return true;
  }

  #workerEnv(id: number): Record<string, string> {
    const { maxRequests, maxRequestsJitter } = this.#config;
    const budget = maxRequests > 0
      ? maxRequests + Math.floor(Math.random() * (maxRequestsJitter + 1))
      : 0;
    return {
      ...roleEnv("worker"),
      [WORKER_ENV.id]: String(id),
      [WORKER_ENV.maxRequests]: String(budget),
      [WORKER_ENV.binds]: this.#binds.map(formatBind).join(","),
    };
  }

  /**
   * Reads a worker's stdout as lines — control messages become events, other lines go to our
   * stdout — and reports its exit once both its status and its stdout are in, so the loop
   * sees every message a worker sent before it sees the worker gone.
   */
  #watch(worker: PoolWorker): void {
    const { child } = worker;
    const onLine = (line: string) => {
      const message = parseMessage(line);
      if (message) this.#push({ type: "message", worker, message });
      else this.#passthrough.write(line);
    };
    const read = relayLines(child.stdout, onLine, child.status, DRAIN_STDOUT_MS);
    Promise.all([child.status, read]).then(async ([status]) => {
      await child.stdin.close().catch(() => {});
      this.#push({ type: "exit", worker, status });
    });
  }
}
