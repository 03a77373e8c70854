// `--isolate request`: every request runs in a fresh child process that serves only it
// (docs/isolation.md). The master parses HTTP as usual; its app is the executor built here,
// a TSGI app that takes a warm child from the pool, sends it the request as frames on its
// stdin (the body streamed from tsgi.input), and streams the child's response back.
//
// The pool keeps `spares` children started ahead with the app imported, never more than
// `maxChildren` alive at once; requests beyond them wait in order, up to `maxQueue`, then
// get 503. Every child is reaped and its exit logged with its PID, its status and the
// request. A child that dies before its response ends is a 502 (or an aborted connection
// once bytes went out); one that outlives `timeout` is killed and is a 504.

import { AppError, HttpError } from "../http/errors.ts";
import {
  BODY_FRAME_MAX,
  CHILD_LOAD_ENV,
  type ChildLoad,
  decodeJson,
  encodeFrame,
  encodeJson,
  FRAME,
  type Frame,
  FrameReader,
  FrameWriter,
  type RequestHeadFrame,
  type ResponseHeadFrame,
} from "./frames.ts";
import { roleEnv } from "../process/role.ts";
import { BufferedInput, ClientGoneError, EMPTY_INPUT } from "../tsgi/input.ts";
import { type ErrorLog, escapeLogField } from "../server/log.ts";
import { selfCommand } from "../process/reexec.ts";
import type { App, Body, Environ, StartResponse } from "../tsgi/types.ts";

/** How an isolating executor runs its children. */
export interface IsolateOptions {
  errorLog: ErrorLog;
  /** Children kept started ahead, app imported, waiting for a request. */
  spares: number;
  /** Most children alive at once, spares included. */
  maxChildren: number;
  /** Most requests waiting for a child beyond what maxChildren can start; then 503. */
  maxQueue: number;
  /** Seconds a child may spend on its request before it is killed (504); 0: no limit. */
  timeout: number;
  /** The command-line arguments each child gets (APP and options); default `[spec]`. */
  args?: string[];
  /** How the child loads the app (--app-factory, --validate), as the master does. */
  appFactory?: boolean;
  validate?: boolean;
}

/** The executor: a TSGI app, plus close() to stop its children. */
export interface IsolatedApp extends App {
  /** Stops starting children, kills the spares, waits for (then kills) busy ones. */
  close(graceMs?: number): Promise<void>;
  /** Children alive now, by what they do. */
  stats(): { starting: number; idle: number; busy: number; waiting: number };
}

/** The start of a request body read before a child is taken for it. */
const BODY_BUFFER = 256 * 1024;

/** A child that is not ready within this long (runtime start, app import) is killed. */
const BOOT_TIMEOUT_MS = 30_000;
/** Failed boots in a row after which waiting requests get 502 and spawning backs off. */
const BOOT_FAILURE_LIMIT = 3;
const BACKOFF_MAX_MS = 5000;
/** A child that answered but has not exited after this long is killed. */
const EXIT_GRACE_MS = 5000;
/** After close() has waited this long for busy children, they are killed. */
const CLOSE_GRACE_MS = 1000;
/** How long a dead child's stderr may stay open (held by a process it started). */
const STDERR_DRAIN_MS = 1000;

const encoder = new TextEncoder();
const TEXT_PLAIN: [string, string] = ["Content-Type", "text/plain; charset=utf-8"];

/**
 * An app that runs `spec` in a child process per request.
 *
 * ```ts
 * const app = isolatedApp("apps/hello.ts", { errorLog, spares: 2, maxChildren: 32,
 *   maxQueue: 1024, timeout: 30 });
 * const handle = serve(app);
 * // … later:
 * await handle.shutdown();
 * await app.close();
 * ```
 */
export function isolatedApp(spec: string, options: IsolateOptions): IsolatedApp {
  const pool = new ChildPool(spec, options.args ?? [spec], options);
  const log = options.errorLog;
  const timeoutMs = options.timeout * 1000;
  const app = async (environ: Environ, startResponse: StartResponse): Promise<Body> => {
    // A client that sends its body slowly holds a connection, not a child: the start of the
    // body is read here, before a child is taken (its errors answer as the engine would).
    if (environ["tsgi.input"] !== EMPTY_INPUT) {
      environ["tsgi.input"] = await BufferedInput.read(environ["tsgi.input"], BODY_BUFFER);
    }
    const lease = pool.acquire();
    if (lease === null) {
      log.info(`503 no child free and the queue is full: ${requestLine(environ)}`);
      return serviceUnavailable(startResponse);
    }
    return lease.then(
      (child) => new Exchange(child, environ, log, timeoutMs).run(startResponse),
      (error) => {
        if (error instanceof PoolClosedError) return serviceUnavailable(startResponse);
        log.error(`502 ${error instanceof Error ? error.message : error}: ${requestLine(environ)}`);
        return errorBody(startResponse, 502, "Bad Gateway");
      },
    );
  };
  return Object.assign(app, {
    close: (graceMs?: number) => pool.close(graceMs),
    stats: () => pool.stats(),
  });
}

function serviceUnavailable(startResponse: StartResponse): Body {
  const body = "Service Unavailable\n";
  startResponse("503 Service Unavailable", [
    TEXT_PLAIN,
    ["Content-Length", String(body.length)],
    ["Retry-After", "1"],
  ]);
  return [body];
}

function errorBody(
  startResponse: StartResponse,
  status: number,
  reason: string,
  excInfo?: unknown,
): string[] {
  const body = reason + "\n";
  startResponse(
    `${status} ${reason}`,
    [TEXT_PLAIN, ["Content-Length", String(body.length)]],
    excInfo,
  );
  return [body];
}

/** `GET /path HTTP/1.1`, escaped for the log. */
function requestLine(environ: Environ): string {
  return escapeLogField(
    `${environ.REQUEST_METHOD} ${environ.RAW_URI} ${environ.SERVER_PROTOCOL}`,
  );
}

/** "exit code 3", "signal SIGKILL". */
function describeStatus(status: Deno.CommandStatus): string {
  return status.signal !== null ? `signal ${status.signal}` : `exit code ${status.code}`;
}

// --- the pool --------------------------------------------------------------------------------

class PoolClosedError extends Error {
  constructor() {
    super("The server is stopping");
    this.name = "PoolClosedError";
  }
}

class BootError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BootError";
  }
}

/** One child process, from spawn to reaping. */
class Child {
  readonly pid: number;
  readonly process: Deno.ChildProcess;
  readonly frames: FrameReader;
  readonly writer: FrameWriter;
  state: "starting" | "idle" | "busy" | "gone" = "starting";
  /** Resolves once the child has been reaped. */
  readonly exited: Promise<Deno.CommandStatus>;
  /** Resolves once its stderr has been relayed to the end. */
  stderrDone: Promise<void> = Promise.resolve();

  constructor(process: Deno.ChildProcess) {
    this.process = process;
    this.pid = process.pid;
    this.frames = new FrameReader(process.stdout);
    this.writer = new FrameWriter(process.stdin);
    this.exited = process.status;
  }

  kill(signal: Deno.Signal = "SIGKILL"): void {
    if (this.state === "gone") return;
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
 * The children. Every change of state happens in one of four places — acquire(), a child
 * ready, a child reaped, close() — and each ends by topping the pool up again (#fill).
 */
class ChildPool {
  readonly #command: string;
  readonly #args: string[];
  readonly #env: Record<string, string>;
  readonly #options: IsolateOptions;
  readonly #log: ErrorLog;
  readonly #alive = new Set<Child>();
  readonly #idle: Child[] = [];
  readonly #waiters: Waiter[] = [];
  #starting = 0;
  #busy = 0;
  #closing = false;
  #bootFailures = 0;
  #spawnAfter = 0;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(spec: string, userArgs: string[], options: IsolateOptions) {
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

  stats() {
    return {
      starting: this.#starting,
      idle: this.#idle.length,
      busy: this.#busy,
      waiting: this.#waiters.length,
    };
  }

  /** A ready child for one request, now or in turn; null when the queue is full or closing. */
  acquire(): Promise<Child> | null {
    if (this.#closing) return null;
    const child = this.#idle.shift();
    if (child !== undefined) {
      this.#lend(child);
      this.#fill();
      return Promise.resolve(child);
    }
    // Waiters a child can still be started for are not queued yet; the rest are.
    const startable = Math.max(0, this.#options.maxChildren - this.#busy);
    if (this.#waiters.length - startable >= this.#options.maxQueue) return null;
    return new Promise<Child>((resolve, reject) => {
      this.#waiters.push({ resolve, reject });
      this.#fill();
    });
  }

  #lend(child: Child): void {
    child.state = "busy";
    this.#busy++;
  }

  /** Starts children until idle + starting covers the spares and the waiters, within bounds. */
  #fill(): void {
    if (this.#closing) return;
    const wanted = this.#options.spares + this.#waiters.length;
    while (
      this.#alive.size < this.#options.maxChildren && this.#idle.length + this.#starting < wanted
    ) {
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
    this.#starting++;
    child.stderrDone = relayStderr(child, this.#log);
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
    if (child.state !== "starting") return;
    if (frame?.type !== FRAME.READY) {
      // It is dying or broke the protocol; its reaping does the accounting.
      child.kill();
      return;
    }
    this.#starting--;
    this.#bootFailures = 0;
    this.#log.debug(`Child ${child.pid} ready`);
    const waiter = this.#waiters.shift();
    if (waiter !== undefined) {
      this.#lend(child);
      waiter.resolve(child);
    } else {
      child.state = "idle";
      this.#idle.push(child);
    }
    this.#fill();
  }

  #reaped(child: Child, status: Deno.CommandStatus): void {
    const was = child.state;
    child.state = "gone";
    this.#alive.delete(child);
    if (was === "starting") {
      this.#starting--;
      if (!this.#closing) {
        this.#bootFailed(
          `Child ${child.pid} exited before it was ready: ${describeStatus(status)}`,
        );
      }
    } else if (was === "idle") {
      this.#idle.splice(this.#idle.indexOf(child), 1);
      const level = this.#closing ? "debug" : "warning";
      this.#log.log(level, `Spare child ${child.pid} exited: ${describeStatus(status)}`);
    } else if (was === "busy") {
      this.#busy--;
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
    this.#bootFailures++;
    if (this.#bootFailures < BOOT_FAILURE_LIMIT) return;
    // Something is wrong with every child: tell those waiting rather than make them wait.
    const backoff = Math.min(BACKOFF_MAX_MS, 100 * 2 ** (this.#bootFailures - BOOT_FAILURE_LIMIT));
    this.#spawnAfter = Date.now() + backoff;
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

/** Each line the child writes on stderr becomes an error-log line naming its PID. */
async function relayStderr(child: Child, log: ErrorLog): Promise<void> {
  const reader = child.process.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let drainTimer: ReturnType<typeof setTimeout> | undefined;
  child.exited.then(() => {
    drainTimer = setTimeout(() => reader.cancel().catch(() => {}), STDERR_DRAIN_MS);
  });
  let pending = "";
  try {
    while (true) {
      const { value, done } = await reader.read();
      if (done) break;
      pending += value;
      let nl = pending.indexOf("\n");
      while (nl >= 0) {
        log.error(`[child ${child.pid}] ${pending.slice(0, nl)}`);
        pending = pending.slice(nl + 1);
        nl = pending.indexOf("\n");
      }
    }
  } catch {
    // Cancelled after the drain time: the rest is lost with whoever held it.
  } finally {
    clearTimeout(drainTimer);
  }
  if (pending !== "") log.error(`[child ${child.pid}] ${pending}`);
}

// --- one request in one child ----------------------------------------------------------------

/** How an exchange ended, for the log line of its child's exit. */
type Outcome =
  | "done"
  | "app failed"
  | "crashed"
  | "timed out"
  | "client gone"
  | "head refused";

/**
 * One request served by one child: the request goes out, the body is pumped on demand, the
 * response comes back. Whatever happens, `#settle()` runs once: it stops the timer, kills
 * the child if it is still at work, releases its pipes and logs its exit.
 */
class Exchange {
  readonly #child: Child;
  readonly #environ: Environ;
  readonly #log: ErrorLog;
  readonly #timeoutMs: number;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timedOut = false;
  #settled = false;
  #pump: Promise<void> | null = null;
  /** Why the client's body could not be read, when it could not. */
  #inputError: unknown = null;
  /** Body bytes handed to the engine: once there are some, the status cannot change. */
  #sent = 0;
  #answer = "";
  #protocolError: unknown = null;

  constructor(child: Child, environ: Environ, log: ErrorLog, timeoutMs: number) {
    this.#child = child;
    this.#environ = environ;
    this.#log = log;
    this.#timeoutMs = timeoutMs;
  }

  async run(startResponse: StartResponse): Promise<Body> {
    if (this.#timeoutMs > 0) {
      this.#timer = setTimeout(() => {
        this.#timedOut = true;
        this.#child.kill("SIGKILL");
      }, this.#timeoutMs);
    }
    const head: RequestHeadFrame = {
      environ: serialisable(this.#environ),
      body: this.#environ["tsgi.input"] !== EMPTY_INPUT,
    };
    // A child that died already shows as the end of its stdout, just below.
    await this.#child.writer.write(encodeJson(FRAME.REQUEST_HEAD, head)).catch(() => {});
    const frame = await this.#next();
    if (frame?.type === FRAME.RESPONSE_HEAD) {
      const { status, headers } = decodeJson<ResponseHeadFrame>(frame);
      try {
        startResponse(status, headers);
      } catch (error) {
        // The engine answers 500 for it, as it would in this process.
        this.#settle("head refused", "500");
        await this.#pumpStopped();
        throw error;
      }
      const body: AsyncIterable<Uint8Array | string> & { close(): void } = {
        [Symbol.asyncIterator]: () => this.#chunks(startResponse),
        close: () => this.#close(),
      };
      return body;
    }
    const body = this.#failure(frame, startResponse);
    await this.#pumpStopped();
    if (body instanceof Error) throw body;
    return body;
  }

  /** The response body: RESPONSE_BODY payloads until RESPONSE_END. */
  async *#chunks(startResponse: StartResponse): AsyncGenerator<Uint8Array | string> {
    try {
      while (true) {
        const frame = await this.#next();
        if (frame?.type === FRAME.RESPONSE_BODY) {
          if (frame.payload.length === 0) continue;
          this.#sent += frame.payload.length;
          yield frame.payload;
        } else if (frame?.type === FRAME.RESPONSE_END) {
          this.#settle("done", "");
          return;
        } else {
          const body = this.#failure(frame, startResponse);
          if (body instanceof Error) throw body;
          yield* body;
          return;
        }
      }
    } finally {
      // Left early (the client went away): stop the child, which also stops the pump.
      if (!this.#settled) this.#settle("client gone", "connection closed");
      // The engine reads what is left of the request body after this: the pump must be done.
      await this.#pumpStopped();
    }
  }

  /** The engine is done with the body (close() is called once, however it ended). */
  #close(): void {
    if (!this.#settled) this.#settle("client gone", "connection closed");
  }

  /**
   * What to send when the child did not finish its response: the error status when nothing
   * has been sent (replacing the head if the child's went to the engine already), or an
   * error for the engine to abort the connection with.
   */
  #failure(frame: Frame | null, startResponse: StartResponse): string[] | Error {
    let outcome: Outcome;
    let status: number;
    let reason: string;
    if (frame?.type === FRAME.ERROR) {
      outcome = "app failed";
      [status, reason] = [500, "Internal Server Error"];
      // A body the client could not deliver is the reason; answer as the engine would.
      const inputError = this.#inputError;
      if (inputError instanceof HttpError || inputError instanceof ClientGoneError) {
        this.#settle(outcome, inputError instanceof HttpError ? String(inputError.status) : "-");
        return inputError;
      }
    } else if (this.#timedOut) {
      outcome = "timed out";
      [status, reason] = [504, "Gateway Timeout"];
    } else {
      outcome = "crashed";
      [status, reason] = [502, "Bad Gateway"];
      if (frame !== null) this.#protocolError = `unexpected frame type ${frame.type}`;
    }
    if (this.#sent > 0) {
      this.#settle(outcome, "response aborted");
      return new AppError(`Child ${this.#child.pid} ${outcome} after its response began`);
    }
    this.#settle(outcome, String(status));
    const excInfo = new AppError(`Child ${this.#child.pid} ${outcome}`);
    return errorBody(startResponse, status, reason, excInfo);
  }

  /** The child's next frame; PULL starts the body pump. Null when its stdout ended. */
  async #next(): Promise<Frame | null> {
    try {
      return await this.#child.next(() => this.#pump ??= this.#pumpBody());
    } catch (error) {
      this.#protocolError = error;
      return null;
    }
  }

  /** Sends the request body in frames, read from the client only as fast as the child takes it. */
  async #pumpBody(): Promise<void> {
    const input = this.#environ["tsgi.input"];
    const writer = this.#child.writer;
    while (!this.#settled) {
      let piece: Uint8Array;
      try {
        piece = await input.read(BODY_FRAME_MAX);
      } catch (error) {
        this.#inputError = error;
        const message = error instanceof Error ? error.message : String(error);
        await writer.write(encodeFrame(FRAME.ERROR, encoder.encode(message))).catch(() => {});
        return;
      }
      const frame = piece.length === 0
        ? encodeFrame(FRAME.BODY_END)
        : encodeFrame(FRAME.BODY, piece);
      try {
        await writer.write(frame);
      } catch {
        return; // The child is gone; what it did not read is the engine's to drain.
      }
      if (piece.length === 0) return;
    }
  }

  async #pumpStopped(): Promise<void> {
    if (this.#pump !== null) await this.#pump;
  }

  /** Ends the exchange once: stops the timer, stops the child, logs its exit when reaped. */
  #settle(outcome: Outcome, answer: string): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#answer = answer;
    clearTimeout(this.#timer);
    const child = this.#child;
    // A child that finished (or reported its app's failure) exits by itself, soon.
    let lingering: ReturnType<typeof setTimeout> | undefined;
    if (outcome === "done" || outcome === "app failed") {
      lingering = setTimeout(() => {
        this.#log.warning(
          `Child ${child.pid} still running ${EXIT_GRACE_MS} ms after its response`,
        );
        child.kill();
      }, EXIT_GRACE_MS);
    } else child.kill();
    // No more request bytes: its stdin closes, which also fails a pump blocked on a write.
    child.writer.abort();
    child.exited.then((status) => {
      clearTimeout(lingering);
      child.frames.cancel();
      this.#logExit(outcome, status);
    });
  }

  #logExit(outcome: Outcome, status: Deno.CommandStatus): void {
    const pid = this.#child.pid;
    const request = `"${requestLine(this.#environ)}"`;
    const how = describeStatus(status);
    const answered = this.#answer === "response aborted" || this.#answer === "connection closed"
      ? this.#answer
      : `answered ${this.#answer}`;
    switch (outcome) {
      case "done":
        if (status.success) this.#log.debug(`Child ${pid} exited (${how}) after ${request}`);
        else this.#log.warning(`Child ${pid} exited with ${how} after answering ${request}`);
        return;
      case "app failed":
        this.#log.error(`Child ${pid} exited (${how}): the app failed on ${request}; ${answered}`);
        return;
      case "crashed": {
        const why = this.#protocolError === null ? "" : ` (${this.#protocolError})`;
        this.#log.error(`Child ${pid} crashed (${how}) serving ${request}${why}; ${answered}`);
        return;
      }
      case "timed out":
        this.#log.error(
          `Child ${pid} killed (${how}) after the ${this.#timeoutMs / 1000} s timeout serving ` +
            `${request}; ${answered}`,
        );
        return;
      case "client gone":
        this.#log.info(`Child ${pid} stopped (${how}): the client went away from ${request}`);
        return;
      case "head refused":
        this.#log.error(
          `Child ${pid} stopped (${how}): its response head was refused (${request})`,
        );
        return;
    }
  }
}

/** The environ entries a child can be sent: strings, numbers and booleans, tsgi.* rebuilt. */
function serialisable(environ: Environ): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const key in environ) {
    const value = environ[key];
    const type = typeof value;
    if (type === "string" || type === "number" || type === "boolean") {
      out[key] = value as string | number | boolean;
    }
  }
  return out;
}
