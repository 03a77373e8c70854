// The master of a pool of worker processes (gunicorn's arbiter, on Deno.Command): it serves no
// traffic; it binds the listening sockets, starts workers that accept from them (one shared
// queue, src/pool/listeners.ts), keeps their number right, and upgrades itself in place.

import { type ControlMessage, WORKER_ENV } from "./control.ts";
import { ControlServer } from "./control_server.ts";
import {
  bindShared,
  inheritShared,
  type PoolListeners,
  reservePorts,
  type SharedListeners,
  sharingUnavailable,
} from "./listeners.ts";
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
import { ErrorLog } from "../server/log.ts";
import { BootFailures } from "../process/backoff.ts";
import { describeExit } from "../process/exit_status.ts";
import { selfCommand } from "../process/reexec.ts";
import { stopListening } from "../server/listener_close.ts";
import {
  adoptionGrants,
  NARROWED_ENV,
  narrowedRunFlags,
  serverSetUpGrants,
  widenedGrantsLine,
} from "../process/least_privilege.ts";
import { parsePermissionFlags } from "../process/permission_set.ts";
import { absoluteAppPath } from "../process/app_location.ts";
import { roleEnv } from "../process/role.ts";
import { formatBind, isUnixBind } from "../server/bind.ts";
import { takeSystemdSockets } from "../server/systemd.ts";
import { removeSocket } from "../server/unix_socket.ts";
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
/** After a worker exits, how long its control connection may take to end. */
const DRAIN_CONTROL_MS = 1000;
/** What tells a master started by USR2 whom it replaces, which sockets it inherits, and which
 * unix socket files become its own to remove (a JSON array). */
const UPGRADE_ENV = {
  from: "TSGI_UPGRADE_FROM",
  fds: "TSGI_UPGRADE_FDS",
  files: "TSGI_UPGRADE_FILES",
} as const;
/** Status of a master whose workers all failed to boot. */
export const EXIT_NO_WORKER = 3;

const SIGNALS = [
  "SIGTERM",
  "SIGINT",
  "SIGQUIT",
  "SIGHUP",
  "SIGTTIN",
  "SIGTTOU",
  "SIGUSR2",
] as const;
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
  /** Its resident memory in bytes, as of its last heartbeat that said. */
  rss?: number;
  /** Resolves when its control connection has ended (or it never made one). */
  readonly controlEnded: Promise<void>;
  endControl(): void;
  /** Whether it has said hello on the control socket. */
  connected: boolean;
}

type Event =
  | { type: "stopped-listening" }
  | { type: "signal"; signal: MasterSignal }
  | { type: "upgraded"; status: Deno.CommandStatus }
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
  /** The config file the command line was read from: narrowed workers read it too. */
  configFile?: string;
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
  let listeners: PoolListeners;
  try {
    listeners = await openListeners(config, log);
  } catch (error) {
    console.error(`tsgi: cannot listen: ${error instanceof Error ? error.message : error}`);
    return 1;
  }
  const arbiter = new Arbiter(config, argv, listeners, log, spec);
  log.info(
    `Master starting (pid ${Deno.pid}): ${config.workers} worker(s) serving ${spec}, ` +
      (listeners.mode === "shared" ? "sharing one accept queue" : "with SO_REUSEPORT"),
  );
  return await arbiter.run(options);
}

/**
 * The sockets the workers will serve: inherited ones (systemd's, or the master's this one
 * upgrades), else bound here once and shared; with --reuse-port, or where sharing cannot work,
 * bound by each worker with SO_REUSEPORT.
 */
async function openListeners(config: PoolConfig, log: ErrorLog): Promise<PoolListeners> {
  const systemd = takeSystemdSockets()?.fds ?? null;
  const upgrade = takeUpgradeFds();
  // systemd's socket files are its own; those of the master this one upgrades become this one's.
  ownedSocketFiles = [];
  socketsOfSystemd = systemd !== null;
  if (systemd !== null) return inheritShared(systemd);
  if (upgrade !== null) {
    ownedSocketFiles = upgrade.files;
    return removingFiles(inheritShared(upgrade.fds), upgrade.files);
  }
  const unavailable = config.reusePort ? "--reuse-port" : sharingUnavailable();
  if (unavailable === null) {
    const listeners = await bindShared(config.bind, config.umask);
    ownedSocketFiles = config.bind.filter(isUnixBind).map((bind) => bind.path);
    return listeners;
  }
  if (!config.reusePort) {
    log.warning(
      `Workers bind with SO_REUSEPORT: the master's sockets cannot be shared here ` +
        `(${unavailable}); a busy worker's queue waits for it`,
    );
  }
  return reservePorts(config.bind);
}

/** The unix socket files this master removes when it stops, and hands over on USR2: those it
 * bound, or was handed; never systemd's. */
let ownedSocketFiles: string[] = [];

/** Whether the shared sockets are systemd's: they listen on after this master, for the next. */
let socketsOfSystemd = false;

/** The sockets a master started by USR2 inherits from the one it replaces, and its files. */
function takeUpgradeFds(): { fds: number[]; files: string[] } | null {
  const raw = Deno.env.get(UPGRADE_ENV.fds);
  const files = Deno.env.get(UPGRADE_ENV.files);
  Deno.env.delete(UPGRADE_ENV.fds);
  Deno.env.delete(UPGRADE_ENV.files);
  if (!raw) return null;
  let paths: unknown = [];
  try {
    paths = JSON.parse(files ?? "[]");
  } catch {
    // Not from a master: no file is this one's to remove.
  }
  return {
    fds: raw.split(",").map(Number),
    files: Array.isArray(paths) ? paths.filter((p) => typeof p === "string") : [],
  };
}

/**
 * Sockets inherited from the master this one upgrades: `files` are removed on a clean stop,
 * as that master would have — unless `keepFiles` (still handed off: see Arbiter.#handedOff).
 */
function removingFiles(listeners: SharedListeners, files: string[]): SharedListeners {
  return {
    ...listeners,
    release: (keepFiles) => {
      listeners.release(keepFiles);
      if (!keepFiles) files.forEach(removeSocket);
    },
  };
}

/** The master a USR2 upgrade replaces, stopped once this one's workers are ready. */
function takeUpgradeFrom(): number | null {
  const raw = Deno.env.get(UPGRADE_ENV.from);
  Deno.env.delete(UPGRADE_ENV.from);
  return raw && /^\d+$/.test(raw) ? Number(raw) : null;
}

/**
 * The supervisor. Signal handlers and the watchers of each child only push events onto a
 * queue; one loop owns all process state — reaping, spawning, timeouts, scaling, stopping — so
 * no two pieces of code ever decide about the same child.
 */
class Arbiter {
  readonly #config: PoolConfig;
  readonly #log: ErrorLog;
  readonly #listeners: PoolListeners;
  #command: string;
  #args: string[];
  readonly #argv: string[];
  readonly #spec: string;
  /** With permission flags: a worker's command and set-up grants (as its environment has them). */
  #narrowed: ((id: number) => { command: string; args: string[]; env: string }) | null = null;
  #control: ControlServer | null = null;
  /** The master started by USR2, while it boots; the old one it replaces, when this is one. */
  #successor: Deno.ChildProcess | null = null;
  #predecessor: number | null = takeUpgradeFrom();
  /** Another master serves the socket files: they are not removed at exit. True from USR2
   * until the upgrade fails; in a master started by USR2, until it stops its predecessor. */
  #handedOff = this.#predecessor !== null;

  readonly #workers = new Map<number, PoolWorker>();
  readonly #events: Event[] = [];
  #wake: (() => void) | null = null;

  #target: number;
  /** Bumped by each reload: workers started for an earlier one are replaced. */
  #generation = 0;
  #nextId = 1;
  #everBooted = false;
  /** Files are watched (--reload): a reload that fails waits for the next change. */
  #watched = false;
  readonly #bootFailures = new BootFailures();
  #nextSpawnAt = 0;
  #stopping: "graceful" | "quick" | null = null;
  #announced = false;
  #exitCode = 0;

  constructor(
    config: PoolConfig,
    argv: string[],
    listeners: PoolListeners,
    log: ErrorLog,
    spec: string,
  ) {
    this.#spec = spec;
    this.#config = config;
    this.#log = log;
    this.#listeners = listeners;
    this.#target = config.workers;
    this.#argv = argv;
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
      this.#control = await ControlServer.open({
        message: (id, message) => {
          const worker = this.#workers.get(id);
          if (worker) this.#push({ type: "message", worker, message });
        },
        closed: (id) => this.#workers.get(id)?.endControl(),
      });
      this.#narrowWorkers(options.configFile);
      watcher = options.watch?.((why) => this.#push({ type: "reload", why }));
      this.#watched = watcher !== undefined;
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
      // Closing a unix listener removes its file (Deno 2.9 does: denoland/deno#31947), so a
      // socket handed off is left open: this process's exit closes it and leaves the file.
      if (!this.#handedOff) this.#listeners.release(false);
      await this.#control?.close();
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
    else if (event.type === "stopped-listening") {
      // A second signal may have made the stop quick meanwhile.
      if (this.#stopping === "graceful") this.#stopAll("graceful", Date.now());
    } else if (event.type === "upgraded") this.#upgradeFailed(event.status);
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
          this.#stopGracefully();
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
      case "SIGUSR2":
        this.#upgrade();
        return;
    }
  }

  /**
   * USR2, as gunicorn's: a new master is started from the code now on disk, inheriting the
   * listening sockets; once its workers are ready it stops this one gracefully (TERM), so no
   * connection is refused and none that was queued is lost.
   */
  #upgrade(): void {
    if (this.#stopping !== null || this.#successor !== null) return;
    if (this.#predecessor !== null) {
      this.#log.warning("SIGUSR2: ignored while this master still replaces the one before it");
      return;
    }
    if (this.#listeners.mode !== "shared") {
      this.#log.warning("SIGUSR2: an upgrade needs the shared sockets, which this pool lacks");
      return;
    }
    const { command, args } = selfCommand(this.#argv);
    try {
      this.#successor = new Deno.Command(command, {
        args,
        env: {
          [UPGRADE_ENV.from]: String(Deno.pid),
          [UPGRADE_ENV.fds]: this.#listeners.fds.join(","),
          [UPGRADE_ENV.files]: JSON.stringify(ownedSocketFiles),
        },
        stdin: "null",
        stdout: "inherit",
        stderr: "inherit",
      }).spawn();
    } catch (error) {
      this.#log.error(`SIGUSR2: cannot start a new master: ${error}`);
      return;
    }
    this.#handedOff = true;
    this.#log.info(`SIGUSR2: new master starting (pid ${this.#successor.pid})`);
    this.#successor.status.then((status) => this.#push({ type: "upgraded", status }));
  }

  /** The new master exited; if this one is still serving, the upgrade failed. */
  #upgradeFailed(status: Deno.CommandStatus): void {
    this.#successor = null;
    if (this.#stopping !== null) return;
    this.#handedOff = false;
    this.#log.error(`Upgrade failed: the new master exited (${describeExit(status)})`);
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
    worker.connected = true;
    switch (message.t) {
      case "hello":
        return;
      case "hb":
        worker.served = message.n;
        if (message.rss !== undefined) worker.rss = message.rss;
        return;
      case "ready":
        this.#ready(worker);
        return;
      case "retiring":
        // Said by a ready worker; one told to go already is going anyway.
        if (phase.name === "serving" || phase.name === "outdated") {
          this.#enter(worker, { ...phase, name: "retiring" });
          const rss = worker.rss === undefined ? "" : ` (RSS ${mebibytes(worker.rss)})`;
          this.#log.info(`Worker ${worker.id} (pid ${worker.pid}) retiring${rss}: replacing it`);
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

  /**
   * The first ready worker: say where the pool listens (a SO_REUSEPORT probe may go now). A
   * master started by USR2 stops the one it replaces once all its workers are ready.
   */
  #announce(): void {
    if (this.#listeners.mode === "reuseport") this.#listeners.release(false);
    if (!this.#announced) {
      this.#announced = true;
      const https = this.#config.certfile !== "";
      for (const url of this.#listeners.urls) {
        console.error(`Listening on ${https ? url.replace(/^http:/, "https:") : url}`);
      }
    }
    const ready = this.#select((phase) => phase.name === "serving").length;
    if (this.#predecessor !== null && ready >= this.#target) this.#retirePredecessor();
  }

  #retirePredecessor(): void {
    const pid = this.#predecessor as number;
    this.#predecessor = null;
    this.#handedOff = false;
    // Its child until it exits: another parent means it is gone, and its PID may be reused.
    if (Deno.ppid !== pid) {
      this.#log.warning(`Upgrade: all ${this.#target} worker(s) ready; old master ${pid} gone`);
      return;
    }
    try {
      Deno.kill(pid, "SIGTERM");
      this.#log.info(`Upgrade: all ${this.#target} worker(s) ready; old master ${pid} stopping`);
    } catch {
      // Gone already.
    }
  }

  /** A worker has exited (and its stdout is read): log it as its phase says, forget it. */
  #reap(worker: PoolWorker, status: Deno.CommandStatus): void {
    this.#workers.delete(worker.id);
    const how = describeExit(status);
    const who = `Worker ${worker.id} (pid ${worker.pid})`;
    const { phase } = worker;
    switch (exitMeaning(phase)) {
      case "stopped":
        if (status.success) this.#log.info(`${who} exited (${worker.served} requests served)`);
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
    // Watching files (--reload), the same broken file would fail the same way: the next save
    // is what to wait for, not a retry.
    const giveUpAfter = this.#watched ? 1 : BOOT_FAILURE_LIMIT;
    if (failures === giveUpAfter && this.#keepOutdated(reason)) return;
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

  /**
   * The shared sockets stop listening first, at an instant when nothing waits in their queues
   * and while the workers still accept (listener_close.ts stopListening()); then the workers are
   * asked to finish. Without it, what queued while they drained was reset at the last close.
   */
  #stopGracefully(): void {
    this.#stopping = "graceful";
    // Not sockets another master serves now (USR2), nor systemd's: those must go on listening.
    const listeners = this.#listeners;
    const own = listeners.mode === "shared" && !this.#handedOff && !socketsOfSystemd;
    const fds = own && listeners.mode === "shared" ? listeners.fds : [];
    stopListening(fds).finally(() => this.#push({ type: "stopped-listening" }));
  }

  #stopAll(mode: "graceful" | "quick", now: number): void {
    this.#stopping = mode;
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
    const narrowed = this.#narrowed?.(id);
    try {
      child = new Deno.Command(narrowed?.command ?? this.#command, {
        args: narrowed?.args ?? this.#args,
        env: {
          ...this.#workerEnv(id),
          ...(narrowed === undefined ? {} : { [NARROWED_ENV]: narrowed.env }),
        },
        stdin: "piped",
        // The app's own: what it prints goes where this process's output goes, as it is.
        stdout: "inherit",
        stderr: "inherit",
      }).spawn();
    } catch (error) {
      const reason = `cannot start a process: ${error instanceof Error ? error.message : error}`;
      this.#log.error(`Worker ${id} ${reason}`);
      this.#bootFailed(reason);
      return false;
    }
    const timesOutAt = this.#timesOutAt(now, true);
    let endControl!: () => void;
    const controlEnded = new Promise<void>((resolve) => (endControl = resolve));
    const worker: PoolWorker = {
      id,
      pid: child.pid,
      child,
      phase: { name: "booting", generation: this.#generation, timesOutAt },
      served: 0,
      connected: false,
      controlEnded,
      endControl,
    };
    this.#workers.set(id, worker);
    this.#log.info(`Worker ${id} booting (pid ${child.pid})`);
    this.#watch(worker);
    return true;
  }

  /** With permission flags after APP, workers start narrowed (least_privilege.ts). */
  #narrowWorkers(configFile?: string): void {
    const user = parsePermissionFlags(this.#config.permissions);
    if (user.length === 0 || this.#control === null) return;
    if (Deno.build.standalone) {
      this.#log.warning(
        "Permission flags after APP are not applied: a compiled program's workers keep the " +
          "permissions it was built with",
      );
      return;
    }
    const widened = widenedGrantsLine(user);
    if (widened !== null) this.#log.warning(widened);
    const grants = serverSetUpGrants({
      ...this.#config,
      // With --reuse-port each worker binds the addresses itself, port 0 resolved by now.
      bind: this.#listeners.mode === "reuseport" ? this.#listeners.binds : this.#config.bind,
      appPath: absoluteAppPath(this.#spec),
      configFile,
      control: this.#control.path,
    });
    // Each worker adopts the shared sockets over a throwaway listener: a unix one at a path of
    // its own, in the control socket's private folder (Deno grants a socket by its path).
    const folder = this.#control.path.slice(0, this.#control.path.lastIndexOf("/"));
    this.#narrowed = (id) => {
      const own = adoptionGrants(grants, `${folder}/adopt-${id}`);
      return {
        ...selfCommand(this.#argv, (flags) => narrowedRunFlags(flags, own, user)),
        env: JSON.stringify(own),
      };
    };
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
      [WORKER_ENV.control]: this.#control?.path ?? "",
      ...(this.#listeners.mode === "shared"
        ? { [WORKER_ENV.listenFds]: this.#listeners.fds.join(",") }
        : { [WORKER_ENV.binds]: this.#listeners.binds.map(formatBind).join(",") }),
    };
  }

  /**
   * Reports a worker's exit once both its status and the end of its control connection are
   * in, so the loop sees every message a worker sent before it sees the worker gone.
   */
  #watch(worker: PoolWorker): void {
    const { child } = worker;
    child.status.then(async (status) => {
      if (worker.connected) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        const late = new Promise<void>((
          resolve,
        ) => (timer = setTimeout(resolve, DRAIN_CONTROL_MS)));
        await Promise.race([worker.controlEnded, late]);
        clearTimeout(timer);
      }
      await child.stdin.close().catch(() => {});
      this.#push({ type: "exit", worker, status });
    });
  }
}

/** Bytes as the log shows a memory size: "212.4 MiB". */
function mebibytes(bytes: number): string {
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
}
