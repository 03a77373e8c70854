// `--isolate request`: every request runs in a fresh child process that serves only it
// (docs/isolation.md). The master parses HTTP as usual; its app is the executor built here,
// a TSGI app that takes a warm child from the pool, sends it the request as frames on the
// child's connection (the body streamed from tsgi.input), and streams the child's response
// back.
//
// The pool (child_pool.ts) keeps `spares` children started ahead with the app imported,
// never more than `maxChildren` alive at once; requests beyond them wait in order, up to
// `maxQueue`, then get 503. Every child is reaped and its exit logged with its PID, its
// status and the request (outcome.ts). A child that dies before its response ends is a 502
// (or an aborted connection once bytes went out); one that outlives `timeout` is killed and
// is a 504.

import { AppError, HttpError } from "../http/errors.ts";
import {
  type Child,
  ChildPool,
  PoolClosedError,
  type PoolOptions,
  type PoolStats,
} from "./child_pool.ts";
import {
  BODY_FRAME_MAX,
  decodeJson,
  decodeText,
  encodeFrame,
  encodeJson,
  FRAME,
  type Frame,
  type RequestHeadFrame,
  type ResponseHeadFrame,
} from "./frames.ts";
import {
  type Answer,
  exitLine,
  exitsByItself,
  type Failure,
  FAILURE_ANSWER,
  type Outcome,
} from "./outcome.ts";
import { type ErrorLog, escapeLogField } from "../server/log.ts";
import { activeTraceHeaders } from "../server/telemetry.ts";
import { BufferedInput, ClientGoneError, EMPTY_INPUT } from "../tsgi/input.ts";
import type { App, Body, Environ, StartResponse } from "../tsgi/types.ts";

/** How an isolating executor runs its children. */
export interface IsolateOptions extends PoolOptions {
  /** Seconds a child may spend on its request before it is killed (504); 0: no limit. */
  timeout: number;
  /** The command-line arguments each child gets (APP and options); default `[spec]`. */
  args?: string[];
}

/** The executor: a TSGI app, plus close() to stop its children. */
export interface IsolatedApp extends App {
  /** Stops starting children, kills the spares, waits for (then kills) busy ones. */
  close(graceMs?: number): Promise<void>;
  /** Resolves when a child has loaded the app; rejects (BootError) if the first could not. */
  ready(): Promise<void>;
  /** Children alive now, by what they do. */
  stats(): PoolStats;
}

/** The start of a request body read before a child is taken for it. */
const BODY_BUFFER = 256 * 1024;

/** A child that answered but has not exited after this long is killed. */
const EXIT_GRACE_MS = 5000;
/** A child whose connection ended without an answer is killed if still there after this. */
const DYING_GRACE_MS = 500;

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
  const limits: Limits = {
    timeoutMs: options.timeout * 1000,
    memoryBytes: options.isolateMemory ?? 0,
  };
  const app = async (environ: Environ, startResponse: StartResponse): Promise<Body> => {
    // Read while the request's span is the active context, before any wait.
    const trace = activeTraceHeaders();
    // A socket outlives the request its child serves: not offered here (docs/websocket.md).
    if (environ["tsgi.server.websocket"] !== undefined) {
      log.info(`501 WebSockets are not served under --isolate request: ${requestLine(environ)}`);
      return errorBody(startResponse, 501, "Not Implemented");
    }
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
      (child) => new Exchange(child, environ, log, limits, trace).run(startResponse),
      (error) => {
        if (error instanceof PoolClosedError) return serviceUnavailable(startResponse);
        log.error(`502 ${error instanceof Error ? error.message : error}: ${requestLine(environ)}`);
        return errorBody(startResponse, 502, "Bad Gateway");
      },
    );
  };
  return Object.assign(app, {
    close: (graceMs?: number) => pool.close(graceMs),
    ready: () => pool.ready(),
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

// --- one request in one child ----------------------------------------------------------------

/** What bounds a child at work: its time (0: none) and its memory cap (0: none). */
interface Limits {
  timeoutMs: number;
  memoryBytes: number;
}

/**
 * What to do about a child that did not finish its response: send this error body (nothing
 * of the child's body went out), or throw this error to the engine (a client's body error it
 * answers as its own, or the abort of a response that began).
 */
type FailureReply = { body: string[] } | { raise: Error };

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
  readonly #memoryBytes: number;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timedOut = false;
  #settled = false;
  #pump: Promise<void> | null = null;
  /** Why the client's body could not be read, when it could not. */
  #inputError: unknown = null;
  /** Body bytes handed to the engine: once there are some, the status cannot change. */
  #sent = 0;
  /** How the child broke the protocol, when its stdout could not be read as frames. */
  #protocolError: string | null = null;

  /** With tracing on: the request's server span, for the child to continue. */
  readonly #trace: Record<string, string> | null;

  constructor(
    child: Child,
    environ: Environ,
    log: ErrorLog,
    limits: Limits,
    trace: Record<string, string> | null,
  ) {
    this.#trace = trace;
    this.#child = child;
    this.#environ = environ;
    this.#log = log;
    this.#timeoutMs = limits.timeoutMs;
    this.#memoryBytes = limits.memoryBytes;
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
      trace: this.#trace ?? undefined,
    };
    // A child that died already shows as the end of its stdout, just below.
    await this.#child.writer.write(encodeJson(FRAME.REQUEST_HEAD, head)).catch(() => {});
    const frame = await this.#next();
    if (frame?.type === FRAME.RESPONSE_HEAD) {
      try {
        // Inside the try: a child that sends a head that is not JSON is refused, and settled.
        const { status, headers } = decodeJson<ResponseHeadFrame>(frame);
        startResponse(status, headers);
      } catch (error) {
        // The engine answers 500 for it, as it would in this process.
        this.#settle({ kind: "headRefused" });
        await this.#pumpStopped();
        throw error;
      }
      const body: AsyncIterable<Uint8Array | string> & { close(): void } = {
        [Symbol.asyncIterator]: () => this.#chunks(startResponse),
        close: () => this.#close(),
      };
      return body;
    }
    const reply = this.#failure(frame, startResponse);
    await this.#pumpStopped();
    if ("raise" in reply) throw reply.raise;
    return reply.body;
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
          this.#settle({ kind: "done" });
          return;
        } else {
          const reply = this.#failure(frame, startResponse);
          if ("raise" in reply) throw reply.raise;
          yield* reply.body;
          return;
        }
      }
    } finally {
      // Left early (the client went away): stop the child, which also stops the pump.
      if (!this.#settled) this.#settle({ kind: "clientGone" });
      // The engine reads what is left of the request body after this: the pump must be done.
      await this.#pumpStopped();
    }
  }

  /** The engine is done with the body (close() is called once, however it ended). */
  #close(): void {
    if (!this.#settled) this.#settle({ kind: "clientGone" });
  }

  /**
   * What to send when the child did not finish its response: the error status when nothing
   * has been sent (replacing the head if the child's went to the engine already), or an
   * error for the engine to raise.
   */
  #failure(frame: Frame | null, startResponse: StartResponse): FailureReply {
    const input = this.#inputError;
    if (
      frame?.type === FRAME.ERROR &&
      (input instanceof HttpError || input instanceof ClientGoneError)
    ) {
      // A body the client could not deliver is the reason; answer as the engine would.
      const answer: Answer = input instanceof HttpError
        ? { kind: "status", status: input.status }
        : { kind: "none" };
      this.#settle({ kind: "appFailed", answer });
      return { raise: input };
    }
    return this.#answerFailure(this.#whyFailed(frame), startResponse);
  }

  /** Why the child stopped short of RESPONSE_END, told by the frame that came instead. */
  #whyFailed(frame: Frame | null): Failure {
    if (frame?.type === FRAME.ERROR) {
      // Deno's refusals: NotCapable, and a TypeError for an import from a host not allowed.
      const denied = /^(?:NotCapable|PermissionDenied|TypeError): (Requires .*--allow-\w+ flag)$/
        .exec(decodeText(frame))?.[1];
      return denied === undefined ? { kind: "appFailed" } : { kind: "appFailed", denied };
    }
    if (this.#timedOut) return { kind: "timedOut", afterMs: this.#timeoutMs };
    const protocolError = frame === null
      ? this.#protocolError
      : `unexpected frame type ${frame.type}`;
    return { kind: "crashed", protocolError };
  }

  #answerFailure(failure: Failure, startResponse: StartResponse): FailureReply {
    const { status, reason, said } = FAILURE_ANSWER[failure.kind];
    const pid = this.#child.pid;
    if (this.#sent > 0) {
      this.#settle({ ...failure, answer: { kind: "aborted" } });
      return { raise: new AppError(`Child ${pid} ${said} after its response began`) };
    }
    this.#settle({ ...failure, answer: { kind: "status", status } });
    const excInfo = new AppError(`Child ${pid} ${said}`);
    return { body: errorBody(startResponse, status, reason, excInfo) };
  }

  /** The child's next frame; PULL starts the body pump. Null when its stdout ended. */
  async #next(): Promise<Frame | null> {
    try {
      return await this.#child.next(() => this.#pump ??= this.#pumpBody());
    } catch (error) {
      this.#protocolError = String(error);
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
  #settle(outcome: Outcome): void {
    if (this.#settled) return;
    this.#settled = true;
    clearTimeout(this.#timer);
    const child = this.#child;
    let lingering: ReturnType<typeof setTimeout> | undefined;
    if (exitsByItself(outcome)) {
      lingering = setTimeout(() => {
        this.#log.warning(
          `Child ${child.pid} still running ${EXIT_GRACE_MS} ms after its response`,
        );
        child.kill();
      }, EXIT_GRACE_MS);
    } else if (outcome.kind === "crashed" && outcome.protocolError === null) {
      // Its connection ended: it is exiting (the runtime closes it on the way out). A moment
      // lets its own exit status be the one logged.
      lingering = setTimeout(() => child.kill(), DYING_GRACE_MS);
    } else child.kill();
    // No more request bytes: its stdin closes, which also fails a pump blocked on a write.
    child.writer.abort();
    child.exited.then(() => {
      clearTimeout(lingering);
      child.frames.cancel();
    });
    // Logged once the child's end is known in full: its output relayed, its cgroup read.
    child.ended.then((status) => {
      const final = this.#memoryVerdict(outcome);
      const { level, message } = exitLine(final, child.pid, requestLine(this.#environ), status);
      this.#log.log(level, message);
    });
  }

  /** A child that died past its memory cap did not crash: it was ended for its memory. */
  #memoryVerdict(outcome: Outcome): Outcome {
    if (!this.#child.outOfMemory || this.#memoryBytes === 0) return outcome;
    if (outcome.kind !== "crashed" && outcome.kind !== "timedOut") return outcome;
    return { kind: "outOfMemory", capBytes: this.#memoryBytes, answer: outcome.answer };
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
