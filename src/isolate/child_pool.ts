// The isolating executor's children: started ahead as spares, lent one per request, reaped
// and replaced. A child's state lives on the child alone; the pool's counts derive from it.
//
// How a child is contained (docs/isolation.md): it runs with least privilege (child_command.ts),
// speaks to the master on a socket the app does not hold (channel.ts), sits in a session and
// process group of its own (what it starts is killed with it), in a memory cgroup of its own
// where one can be made, and dies with the master (containment.ts). Its stdout and stderr
// become lines of the master's error log, marked with its PID.

import { ChildLife, countStates } from "./child_state.ts";
import { ChannelListener, connectionSink, connectionSource, type Expected } from "./channel.ts";
import { type ChildCommand, childCommand, childrenNarrowed } from "./child_command.ts";
import { encodeFrame, FRAME, type Frame, FrameReader, FrameWriter } from "./frames.ts";
import { containment } from "./containment.ts";
import type { CgroupParent, ChildCgroup } from "./memory_cgroup.ts";
import { parsePermissionFlags } from "../process/permission_set.ts";
import { BootFailures } from "../process/backoff.ts";
import { describeExit } from "../process/exit_status.ts";
import { relayLines } from "../process/line_relay.ts";
import { signalGroup } from "../process/process_group.ts";
import type { GroupGuard } from "../process/group_guard.ts";
import { type ErrorLog, escapeLogField } from "../server/log.ts";

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
  /** Deno permission flags granted to each child beyond its defaults (`--allow-net=…`). */
  permissions?: readonly string[];
  /** Most memory one child may use, in bytes (V8 heap and memory cgroup); 0: no cap. */
  isolateMemory?: number;
  /** Where to look for util-linux's setsid and setpriv (default: the usual folders, PATH). */
  utilLinuxDirs?: string[];
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
/** How long a dead child's output may stay open (held by a process it started). */
const OUTPUT_DRAIN_MS = 1000;
/** What V8 prints when a child passes its heap limit (before it aborts). */
const HEAP_EXHAUSTED = /Fatal JavaScript out of memory|JavaScript heap out of memory/;

export class PoolClosedError extends Error {
  constructor() {
    super("The server is stopping");
    this.name = "PoolClosedError";
  }
}

export class BootError extends Error {
  /** The exit code of the child that failed, where one did (2: the app could not be loaded). */
  readonly exitCode: number | null;

  constructor(message: string, exitCode: number | null = null) {
    super(message);
    this.name = "BootError";
    this.exitCode = exitCode;
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
  /**
   * Resolves once it has been reaped, what it started killed, its output relayed to the end and
   * its cgroup removed: then `outOfMemory` is known.
   */
  ended: Promise<Deno.CommandStatus>;
  /** Whether it passed its memory cap (V8 said so, or its cgroup's OOM killer acted). */
  outOfMemory = false;
  /** Resolve once its stdout and stderr have been relayed to the end. */
  stdoutDone: Promise<void> = Promise.resolve();
  stderrDone: Promise<void> = Promise.resolve();

  constructor(process: Deno.ChildProcess, connection: Promise<Deno.UnixConn | null>) {
    super();
    this.process = process;
    this.pid = process.pid;
    this.frames = new FrameReader(connectionSource(connection));
    this.writer = new FrameWriter(connectionSink(connection));
    this.exited = process.status;
    this.ended = this.exited;
    // Before its reaping is done (that waits for its cgroup): close() must not take a child
    // that has exited for one still running.
    this.exited.then(() => (this.gone = true));
  }

  /** Whether its process has exited (its reaping may still be under way). */
  gone = false;

  /** Signals the child and everything in its process group. */
  kill(signal: Deno.Signal = "SIGKILL"): void {
    // A reaped child's PID may belong to another process by now.
    if (this.state === "exited") return;
    if (signalGroup(this.pid, signal)) return;
    try {
      this.process.kill(signal);
    } catch {
      // It exited in the meantime; its reaping is under way.
    }
  }

  /** The next frame, PULL aside (it calls onPull); null at the end of the connection. */
  async next(onPull?: () => void): Promise<Frame | null> {
    while (true) {
      const frame = await this.frames.next();
      if (frame === null) return null;
      if (frame.type === FRAME.PULL && onPull) onPull();
      else return frame;
    }
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
  readonly #channel: ChannelListener;
  readonly #command: ChildCommand;
  readonly #cgroups: CgroupParent | null;
  readonly #guard: GroupGuard | null;
  readonly #memoryBytes: number;
  /** Whether children get their session from Deno (no setsid to start them through). */
  readonly #detached: boolean;
  readonly #options: PoolOptions;
  readonly #log: ErrorLog;
  /** Every child spawned and not yet reaped, oldest first. */
  readonly #alive = new Set<Child>();
  /** Every child spawned whose end (ended) has not been seen yet. */
  readonly #ending = new Set<Promise<unknown>>();
  readonly #waiters: Waiter[] = [];
  // The third failed boot in a row is the first to wait.
  readonly #bootFailures = new BootFailures(BOOT_FAILURE_LIMIT - 1);
  #closing = false;
  /** Settles when the first child is ready, or when one exits before any was (ready()). */
  readonly #firstReady = withoutUnhandledRejection(Promise.withResolvers<void>());
  #spawnAfter = 0;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;

  /**
   * Sets up what every child shares — the socket, the command, the memory cgroups — and
   * starts the spares. Throws (a PermissionFlagError, or the system's error) when the set-up
   * cannot be made; each fallback that weakens the containment is one warning line.
   */
  constructor(spec: string, userArgs: string[], options: PoolOptions) {
    this.#options = options;
    this.#log = options.errorLog;
    const permissions = parsePermissionFlags(options.permissions ?? []);
    this.#memoryBytes = options.isolateMemory ?? 0;
    const held = containment({
      permissions,
      unnarrowed: !childrenNarrowed(spec),
      memoryBytes: this.#memoryBytes,
      utilLinuxDirs: options.utilLinuxDirs,
    });
    for (const warning of held.warnings) this.#log.warning(warning);
    this.#detached = held.detached;
    this.#cgroups = held.cgroups;
    this.#guard = held.guard;
    this.#channel = new ChannelListener();
    try {
      this.#command = childCommand({
        spec,
        userArgs,
        appFactory: options.appFactory ?? false,
        validate: options.validate ?? false,
        socket: this.#channel.path,
        privateDir: this.#channel.dir,
        permissions,
        memoryBytes: this.#memoryBytes,
        prefix: held.prefix,
      });
    } catch (error) {
      this.#channel.close();
      this.#cgroups?.close();
      this.#guard?.close();
      throw error;
    }
    if (this.#command.notNarrowed !== null) {
      this.#log.warning(`Children run without least privilege: ${this.#command.notNarrowed}`);
    }
    this.#fill();
  }

  /**
   * Resolves once a child has imported the app and is ready; rejects (BootError, with the
   * child's exit code: 2 when the app could not be loaded) if the first to end did so before.
   * The app is checked this way, in a child, never by importing it here: its top-level code is
   * as untrusted as the rest of it.
   */
  ready(): Promise<void> {
    return this.#firstReady.promise;
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
    const expected = this.#channel.expect();
    const { command, args, env, input } = this.#command.forToken(expected.token);
    let process: Deno.ChildProcess;
    try {
      process = new Deno.Command(command, {
        args,
        env,
        clearEnv: true,
        // A session and process group of its own (own_session.ts): what it starts is signalled
        // with it, and a Ctrl-C at the master's terminal does not reach it.
        detached: this.#detached,
        stdin: input === undefined ? "null" : "piped",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      if (input !== undefined) writeAndClose(process.stdin, input);
    } catch (error) {
      expected.forget();
      this.#bootFailed(`Cannot start a child: ${error instanceof Error ? error.message : error}`);
      return false;
    }
    const child = new Child(process, expected.connection);
    this.#guard?.add(child.pid);
    this.#alive.add(child);
    const cgroup = this.#enterCgroup(child);
    // START once it is connected and in its cgroup: it imports the app only then.
    Promise.all([expected.connection, cgroup]).then(([conn]) => {
      if (conn !== null) child.writer.write(encodeFrame(FRAME.START)).catch(() => {});
    });
    this.#relayOutput(child);
    const reaped = child.exited.then(async (status) =>
      this.#afterExit(child, status, expected, await cgroup)
    );
    child.ended = Promise.all([reaped, child.stderrDone, child.stdoutDone]).then(([status]) =>
      status
    );
    this.#ending.add(child.ended);
    child.ended.then(() => this.#ending.delete(child.ended));
    this.#awaitReady(child);
    return true;
  }

  /** Puts the child in a memory cgroup of its own, where there are cgroups. */
  async #enterCgroup(child: Child): Promise<ChildCgroup | null> {
    if (this.#cgroups === null) return null;
    try {
      return await this.#cgroups.enter(child.pid, this.#memoryBytes);
    } catch (error) {
      // Gone already (it died at once, or was killed as the pool closed) is no news; anything
      // else weakens the cap.
      const gone = (error as { code?: string }).code === "ESRCH" || child.gone;
      if (!gone && child.state !== "exited") {
        this.#log.warning(
          `Child ${child.pid} is not in a memory cgroup (${
            error instanceof Error ? error.message : error
          }): only its V8 heap is capped`,
        );
      }
      return null;
    }
  }

  /** The child's stdout and stderr, line by line, into the error log under its PID. */
  #relayOutput(child: Child): void {
    const prefix = `[child ${child.pid}] `;
    child.stdoutDone = relayLines(
      child.process.stdout,
      (line) => this.#log.info(prefix + escapeLogField(line)),
      child.exited,
      OUTPUT_DRAIN_MS,
    );
    child.stderrDone = relayLines(
      child.process.stderr,
      (line) => {
        if (HEAP_EXHAUSTED.test(line)) child.outOfMemory = true;
        this.#log.error(prefix + escapeLogField(line));
      },
      child.exited,
      OUTPUT_DRAIN_MS,
    );
  }

  /**
   * After the child is reaped: what it started is killed (its group, its cgroup), and whether
   * the kernel ended it for its memory is read before its cgroup goes.
   */
  async #afterExit(
    child: Child,
    status: Deno.CommandStatus,
    expected: Expected,
    cgroup: ChildCgroup | null,
  ): Promise<Deno.CommandStatus> {
    expected.forget();
    signalGroup(child.pid, "SIGKILL");
    this.#guard?.remove(child.pid);
    this.#reaped(child, status);
    if (cgroup !== null && await cgroup.end(status.signal === "SIGKILL")) {
      child.outOfMemory = true;
    }
    return status;
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
    this.#firstReady.resolve();
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
          const why = `Child ${child.pid} exited before it was ready: ${describeExit(status)}`;
          this.#firstReady.reject(new BootError(why, status.code));
          this.#bootFailed(why);
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
      if (child.state === "idle") child.writer.close(); // end of input: it exits 0
      else if (child.state === "starting") child.kill("SIGTERM");
    }
    const allExited = Promise.all(children.map((c) => c.exited));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)));
    await Promise.race([allExited, late]);
    clearTimeout(timer);
    for (const child of this.#alive) {
      if (child.gone) continue;
      this.#log.warning(`Child ${child.pid} still running at shutdown: killing it`);
      child.kill();
    }
    await allExited;
    await Promise.all(this.#ending);
    this.#channel.close();
    this.#cgroups?.close();
    await this.#guard?.close();
  }
}

/** Deferred whose rejection nobody may wait for (a pool no caller asked ready() of). */
function withoutUnhandledRejection<T>(
  deferred: PromiseWithResolvers<T>,
): PromiseWithResolvers<T> {
  deferred.promise.catch(() => {});
  return deferred;
}

/** Writes `text` to a child's stdin and ends it; a child that died meanwhile is reaped anyway. */
function writeAndClose(stdin: WritableStream<Uint8Array>, text: string): void {
  const writer = stdin.getWriter();
  writer.write(new TextEncoder().encode(text)).then(() => writer.close()).catch(() => {});
}
