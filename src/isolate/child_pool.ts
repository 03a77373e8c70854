// The isolating executor's children: started ahead as spares, lent one per request, reaped
// and replaced. A child's state lives on the child alone; the pool's counts derive from it.

import { ChildLife, countStates } from "./child_state.ts";
import {
  CHILD_LOAD_ENV,
  type ChildLoad,
  FRAME,
  type Frame,
  FrameReader,
  FrameWriter,
} from "./frames.ts";
import { BootFailures } from "../process/backoff.ts";
import { describeExit } from "../process/exit_status.ts";
import { relayLines } from "../process/line_relay.ts";
import { selfCommand } from "../process/reexec.ts";
import { roleEnv } from "../process/role.ts";
import type { ErrorLog } from "../server/log.ts";

/** How the pool starts and bounds its children. */
export interface PoolOptions {
  errorLog: ErrorLog;
  /** Children kept started ahead, app imported, waiting for a request. */
  spares: number;
  /** Most children alive at once, spares included. */
  maxChildren: number;
  /** Most requests waiting for a child beyond what maxChildren can start; then 503. */
  maxQueue: number;
  /** How the child loads the app (--app-factory, --validate), as the master does. */
  appFactory?: boolean;
  validate?: boolean;
}

/** Children alive now, by what they do, and the requests waiting for one. */
export interface PoolStats {
  starting: number;
  idle: number;
  busy: number;
  waiting: number;
}

/** A child that is not ready within this long (runtime start, app import) is killed. */
const BOOT_TIMEOUT_MS = 30_000;
/** Failed boots in a row after which waiting requests get 502 and spawning backs off. */
const BOOT_FAILURE_LIMIT = 3;
/** After close() has waited this long for busy children, they are killed. */
const CLOSE_GRACE_MS = 1000;
/** How long a dead child's stderr may stay open (held by a process it started). */
const STDERR_DRAIN_MS = 1000;

export class PoolClosedError extends Error {
  constructor() {
    super("The server is stopping");
    this.name = "PoolClosedError";
  }
}

export class BootError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BootError";
  }
}

/** One child process, from spawn to reaping; its state moves only as ChildLife allows. */
export class Child extends ChildLife {
  readonly pid: number;
  readonly process: Deno.ChildProcess;
  readonly frames: FrameReader;
  readonly writer: FrameWriter;
  /** Resolves once the child has been reaped. */
  readonly exited: Promise<Deno.CommandStatus>;
  /** Resolves once its stderr has been relayed to the end. */
  stderrDone: Promise<void> = Promise.resolve();

  constructor(process: Deno.ChildProcess) {
    super();
    this.process = process;
    this.pid = process.pid;
    this.frames = new FrameReader(process.stdout);
    this.writer = new FrameWriter(process.stdin);
    this.exited = process.status;
  }

  kill(signal: Deno.Signal = "SIGKILL"): void {
    // A reaped child's PID may belong to another process by now.
    if (this.state === "exited") return;
    try {
      this.process.kill(signal);
    } catch {
      // It exited in the meantime; its reaping is under way.
    }
  }

  /** The next frame that is not OUTPUT (those go to stdout); null at the end of stdout. */
  async next(onPull?: () => void): Promise<Frame | null> {
    while (true) {
      const frame = await this.frames.next();
      if (frame === null) return null;
      if (frame.type === FRAME.OUTPUT) writeStdout(frame.payload);
      else if (frame.type === FRAME.PULL && onPull) onPull();
      else return frame;
    }
  }
}

function writeStdout(bytes: Uint8Array): void {
  try {
    let done = 0;
    while (done < bytes.length) done += Deno.stdout.writeSync(bytes.subarray(done));
  } catch {
    // A closed stdout loses the app's prints, not the server.
  }
}

interface Waiter {
  resolve(child: Child): void;
  reject(error: Error): void;
}

/**
 * The children. A state changes in one of four places — acquire(), a child ready, a child
 * reaped, close() — always through Child.moveTo(), and each ends by topping the pool up
 * again (#fill).
 */
export class ChildPool {
  readonly #command: string;
  readonly #args: string[];
  readonly #env: Record<string, string>;
  readonly #options: PoolOptions;
  readonly #log: ErrorLog;
  /** Every child spawned and not yet reaped, oldest first. */
  readonly #alive = new Set<Child>();
  readonly #waiters: Waiter[] = [];
  // The third failed boot in a row is the first to wait.
  readonly #bootFailures = new BootFailures(BOOT_FAILURE_LIMIT - 1);
  #closing = false;
  #spawnAfter = 0;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(spec: string, userArgs: string[], options: PoolOptions) {
    this.#options = options;
    this.#log = options.errorLog;
    // The same program again: main.ts, a generated compile entry, or a compiled binary.
    const self = selfCommand(userArgs);
    this.#command = self.command;
    this.#args = self.args;
    // What the child needs to load the app, so that main.ts can start it without the CLI.
    const load: ChildLoad = {
      spec,
      appFactory: options.appFactory ?? false,
      validate: options.validate ?? false,
    };
    this.#env = { ...roleEnv("child"), [CHILD_LOAD_ENV]: JSON.stringify(load) };
    // The child's stderr is a pipe into the log: no terminal colours there unless ours is one.
    if (!Deno.stderr.isTerminal()) this.#env.NO_COLOR = "1";
    this.#fill();
  }

  stats(): PoolStats {
    const { starting, idle, busy } = countStates(this.#alive);
    return { starting, idle, busy, waiting: this.#waiters.length };
  }

  /** A ready child for one request, now or in turn; null when the queue is full or closing. */
  acquire(): Promise<Child> | null {
    if (this.#closing) return null;
    const spare = this.#oldestIdle();
    if (spare !== undefined) {
      spare.moveTo("busy");
      this.#fill();
      return Promise.resolve(spare);
    }
    // Waiters a child can still be started for are not queued yet; the rest are.
    const startable = Math.max(0, this.#options.maxChildren - countStates(this.#alive).busy);
    if (this.#waiters.length - startable >= this.#options.maxQueue) return null;
    return new Promise<Child>((resolve, reject) => {
      this.#waiters.push({ resolve, reject });
      this.#fill();
    });
  }

  #oldestIdle(): Child | undefined {
    for (const child of this.#alive) if (child.state === "idle") return child;
    return undefined;
  }

  /** Starts children until idle + starting covers the spares and the waiters, within bounds. */
  #fill(): void {
    if (this.#closing) return;
    const { idle, starting } = countStates(this.#alive);
    const wanted = this.#options.spares + this.#waiters.length - idle - starting;
    const room = this.#options.maxChildren - this.#alive.size;
    for (let left = Math.min(wanted, room); left > 0; left--) {
      const wait = this.#spawnAfter - Date.now();
      if (wait > 0) {
        this.#retryTimer ??= setTimeout(() => {
          this.#retryTimer = undefined;
          this.#fill();
        }, wait);
        return;
      }
      if (!this.#spawn()) return;
    }
  }

  #spawn(): boolean {
    let process: Deno.ChildProcess;
    try {
      process = new Deno.Command(this.#command, {
        args: this.#args,
        env: this.#env,
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
    } catch (error) {
      this.#bootFailed(`Cannot start a child: ${error instanceof Error ? error.message : error}`);
      return false;
    }
    const child = new Child(process);
    this.#alive.add(child);
    const prefix = `[child ${child.pid}] `;
    child.stderrDone = relayLines(
      process.stderr,
      (line) => this.#log.error(prefix + line),
      child.exited,
      STDERR_DRAIN_MS,
    );
    child.exited.then((status) => this.#reaped(child, status));
    this.#awaitReady(child);
    return true;
  }

  async #awaitReady(child: Child): Promise<void> {
    const timer = setTimeout(() => {
      this.#log.error(`Child ${child.pid} not ready after ${BOOT_TIMEOUT_MS} ms: killing it`);
      child.kill();
    }, BOOT_TIMEOUT_MS);
    let frame: Frame | null = null;
    try {
      frame = await child.next();
    } catch (error) {
      this.#log.error(`Child ${child.pid} broke the protocol at start: ${error}`);
    } finally {
      clearTimeout(timer);
    }
    if (child.state !== "starting") return; // reaped already
    if (frame?.type !== FRAME.READY) {
      // It is dying or broke the protocol; its reaping does the accounting.
      child.kill();
      return;
    }
    child.moveTo("idle");
    this.#bootFailures.reset();
    this.#log.debug(`Child ${child.pid} ready`);
    const waiter = this.#waiters.shift();
    if (waiter !== undefined) {
      child.moveTo("busy");
      waiter.resolve(child);
    }
    this.#fill();
  }

  #reaped(child: Child, status: Deno.CommandStatus): void {
    const was = child.moveTo("exited");
    this.#alive.delete(child);
    switch (was) {
      case "starting":
        if (!this.#closing) {
          this.#bootFailed(
            `Child ${child.pid} exited before it was ready: ${describeExit(status)}`,
          );
        }
        break;
      case "idle": {
        const level = this.#closing ? "debug" : "warning";
        this.#log.log(level, `Spare child ${child.pid} exited: ${describeExit(status)}`);
        break;
      }
    }
    // A busy child's exchange reads its stdout to the end and releases it.
    if (was !== "busy") {
      child.frames.cancel();
      child.writer.abort();
    }
    this.#fill();
  }

  #bootFailed(message: string): void {
    this.#log.error(message);
    const wait = this.#bootFailures.failed();
    if (wait === 0) return;
    // Something is wrong with every child: tell those waiting rather than make them wait.
    this.#spawnAfter = Date.now() + wait;
    for (const waiter of this.#waiters.splice(0)) {
      waiter.reject(new BootError("No child could be started"));
    }
  }

  /** Kills spares and children still starting, waits for busy ones, reaps everything. */
  async close(graceMs = CLOSE_GRACE_MS): Promise<void> {
    this.#closing = true;
    clearTimeout(this.#retryTimer);
    for (const waiter of this.#waiters.splice(0)) waiter.reject(new PoolClosedError());
    const children = [...this.#alive];
    for (const child of children) {
      if (child.state === "idle") child.writer.close(); // end of stdin: it exits 0
      else if (child.state === "starting") child.kill("SIGTERM");
    }
    const allExited = Promise.all(children.map((c) => c.exited));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)));
    await Promise.race([allExited, late]);
    clearTimeout(timer);
    for (const child of this.#alive) {
      this.#log.warning(`Child ${child.pid} still running at shutdown: killing it`);
      child.kill();
    }
    await allExited;
    await Promise.all(children.map((c) => c.stderrDone));
  }
}
