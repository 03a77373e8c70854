// A per-request child of an isolating master (executor.ts, docs/isolation.md). It connects to
// its master's socket and says its token, gives up the grants it needed for that, waits for
// START (its memory cgroup holds it then), imports the app, says READY, serves exactly one request that comes as frames on the connection, sends the
// response as frames on it, and exits. Its stdout and stderr are the app's: the master puts
// each line in its error log, marked with this child's PID.

import { AppLoadError, loadApp, preloadApp } from "../app/loader.ts";
import {
  CHILD_LOAD_ENV,
  type ChildLoad,
  decodeJson,
  decodeText,
  encodeFrame,
  encodeJson,
  fileSink,
  fileSource,
  FRAME,
  FrameError,
  FrameReader,
  FrameWriter,
  type RequestHeadFrame,
  type ResponseHeadFrame,
} from "./frames.ts";
import { describeError } from "../server/log.ts";
import { withTraceHeaders } from "../server/telemetry.ts";
import { ByteInput } from "../tsgi/byte_input.ts";
import type { App, Body, Chunk, Environ, ErrorStream, StartResponse } from "../tsgi/types.ts";

/**
 * The entry of a child started with least privilege: a module the master generates calls this
 * with a function that imports the app by a literal specifier, so that Deno loads the app's
 * modules as part of the entry's graph (a computed import would need read access to each).
 * The load comes as the one argument.
 */
export async function childMain(importApp: () => Promise<object>): Promise<number> {
  const load = JSON.parse(Deno.args[0] ?? "null") as ChildLoad | null;
  if (load === null) {
    writeStderr("A child is started by its master only\n");
    return 2;
  }
  return await runChildWith(load, importApp);
}

/**
 * main.ts's entry for a child of a compiled binary or another entry: the load comes from
 * CHILD_LOAD_ENV, so neither the CLI nor the server is loaded.
 */
export async function runChildFromEnv(): Promise<number> {
  const raw = Deno.env.get(CHILD_LOAD_ENV);
  if (raw === undefined) {
    writeStderr(`${CHILD_LOAD_ENV} is not set: a child is started by its master only\n`);
    return 2;
  }
  return await runChildWith(JSON.parse(raw) as ChildLoad);
}

/** The CLI's entry for a child (a program that embeds the CLI): as runChildFromEnv(). */
export async function runChild(_spec: string, _config: unknown): Promise<number> {
  return await runChildFromEnv();
}

/** The most a token on stdin may be (it is a few dozen characters). */
const STDIN_TOKEN_MAX = 1024;

/** What the master wrote to this child's stdin, to its end (the token). */
async function readStdin(): Promise<string> {
  const buffer = new Uint8Array(STDIN_TOKEN_MAX);
  let filled = 0;
  while (filled < buffer.length) {
    const n = await Deno.stdin.read(buffer.subarray(filled));
    if (n === null) break;
    filled += n;
  }
  return new TextDecoder().decode(buffer.subarray(0, filled));
}

/** Exit status of a child whose app failed (it said so with an ERROR frame first). */
export const EXIT_APP_FAILED = 1;

const encoder = new TextEncoder();
const VERSION: readonly [number, number] = Object.freeze([1, 0] as const);

/** Runs as a child: connect, load the app, one request, then the exit status. */
async function runChildWith(
  load: ChildLoad,
  importApp?: () => Promise<object>,
): Promise<number> {
  let conn: Deno.UnixConn;
  try {
    const token = load.token ?? await readStdin();
    conn = await Deno.connect({ transport: "unix", path: load.socket });
    await fileSink(conn).write(encoder.encode(token));
  } catch (error) {
    writeStderr(`Cannot reach the master at ${load.socket}: ${describeError(error)}\n`);
    return 2;
  }
  // The socket's grants were for this connection only: the app gets none of them.
  for (const descriptor of load.revoke) Deno.permissions.revokeSync(descriptor);
  const out = new FrameWriter(fileSink(conn));
  const frames = new FrameReader(fileSource(conn));
  // The master says START once this process is in its memory cgroup: only then the app.
  const start = await frames.next();
  if (start === null) return 0;
  if (start.type !== FRAME.START) {
    throw new FrameError(`Expected START, got frame type ${start.type}`);
  }
  let app: App;
  try {
    if (importApp !== undefined) preloadApp(load.spec, await importApp());
    app = (await loadApp(load.spec, load)).app;
  } catch (error) {
    const message = error instanceof AppLoadError ? error.message : describeError(error);
    writeStderr(`Cannot load the app: ${message}\n`);
    return 2;
  }
  await out.write(encodeFrame(FRAME.READY));
  const first = await frames.next();
  // End of input before a request: the master no longer needs this spare.
  if (first === null) return 0;
  if (first.type !== FRAME.REQUEST_HEAD) {
    throw new FrameError(`Expected a request head, got frame type ${first.type}`);
  }
  const head = decodeJson<RequestHeadFrame>(first);
  const environ = childEnviron(head, frames, out);
  // The app's spans and fetch() calls are children of the master's server span.
  const ok = await withTraceHeaders(head.trace, () => serveOne(app, environ, out));
  await out.close();
  return ok ? 0 : EXIT_APP_FAILED;
}

/** The request's environ, rebuilt from its head, with this process's own tsgi.* keys. */
function childEnviron(head: RequestHeadFrame, frames: FrameReader, out: FrameWriter): Environ {
  return {
    ...head.environ,
    "tsgi.version": VERSION,
    "tsgi.url_scheme": head.environ["tsgi.url_scheme"] === "https" ? "https" : "http",
    "tsgi.input": new FrameInput(head.body, frames, out),
    "tsgi.errors": stderrStream(),
    "tsgi.multithread": false,
    "tsgi.multiprocess": true,
    "tsgi.run_once": true,
  } as unknown as Environ;
}

/**
 * The request body, read from BODY frames. It asks the master for them (PULL) on the first
 * read only, so `Expect: 100-continue` is answered only when the app reads, as in the default
 * mode.
 */
class FrameInput extends ByteInput {
  readonly #frames: FrameReader;
  readonly #out: FrameWriter;
  #asked = false;
  #done: boolean;

  constructor(hasBody: boolean, frames: FrameReader, out: FrameWriter) {
    super();
    this.#frames = frames;
    this.#out = out;
    this.#done = !hasBody;
  }

  protected async next(max: number): Promise<Uint8Array | null> {
    if (!this.#asked && !this.#done) {
      this.#asked = true;
      await this.#out.write(encodeFrame(FRAME.PULL));
    }
    while (!this.#done) {
      const frame = await this.#frames.next();
      if (frame === null) throw new FrameError("The master closed the request body");
      if (frame.type === FRAME.BODY_END) this.#done = true;
      else if (frame.type === FRAME.ERROR) throw new Error(decodeText(frame));
      else if (frame.type !== FRAME.BODY) {
        throw new FrameError(`Unexpected frame type ${frame.type} in the body`);
      } else if (frame.payload.length > 0) {
        if (frame.payload.length <= max) return frame.payload;
        this.keep(frame.payload.subarray(max));
        return frame.payload.subarray(0, max);
      }
    }
    return null;
  }
}

/**
 * Calls the app and sends its response as frames. The head goes with the first non-empty
 * chunk (or at the end), so the app may still replace it with excInfo until then. Returns
 * false when the app failed; the master has been told with an ERROR frame.
 */
async function serveOne(app: App, environ: Environ, out: FrameWriter): Promise<boolean> {
  let head: ResponseHeadFrame | null = null;
  let headSent = false;
  let legacy: Uint8Array[] = [];
  const sendHead = async () => {
    if (head === null) throw new Error("App returned a body without startResponse()");
    headSent = true;
    await out.write(encodeJson(FRAME.RESPONSE_HEAD, head));
    for (const bytes of legacy) await out.writeBody(FRAME.RESPONSE_BODY, bytes);
    legacy = [];
  };
  const startResponse: StartResponse = (status, headers, excInfo) => {
    if (head !== null) {
      if (excInfo === undefined || excInfo === null) {
        throw new Error("startResponse() called a second time without excInfo");
      }
      if (headSent) throw excInfo;
    }
    // The master checks status and headers when it passes them on to the engine.
    head = { status, headers };
    return (chunk: Chunk) => {
      const bytes = toBytes(chunk);
      if (!headSent) legacy.push(bytes);
      else out.writeBody(FRAME.RESPONSE_BODY, bytes).catch(() => {});
    };
  };
  let body: Body | undefined;
  try {
    body = await app(environ, startResponse);
    if (typeof body === "string") throw new Error("App returned a string; return [string]");
    for await (const chunk of body) {
      const bytes = toBytes(chunk);
      if (bytes.length === 0) continue;
      if (!headSent) await sendHead();
      await out.writeBody(FRAME.RESPONSE_BODY, bytes);
    }
    if (!headSent) await sendHead();
    await out.write(encodeFrame(FRAME.RESPONSE_END));
    return true;
  } catch (error) {
    writeStderr(`App raised an exception\n${describeError(error)}\n`);
    await out.write(encodeFrame(FRAME.ERROR, encoder.encode(firstLine(error)))).catch(() => {});
    return false;
  } finally {
    closeBody(body);
  }
}

/** docs/tsgi.md: a body's close() is called exactly once, however the response ended. */
function closeBody(body: Body | undefined): void {
  const close = (body as { close?: unknown } | undefined)?.close;
  if (typeof close !== "function") return;
  try {
    const result = close.call(body);
    if (result instanceof Promise) result.catch((e) => writeStderr(`close() failed: ${e}\n`));
  } catch (error) {
    writeStderr(`Body close() failed\n${describeError(error)}\n`);
  }
}

function toBytes(chunk: Chunk): Uint8Array {
  if (typeof chunk === "string") return encoder.encode(chunk);
  if (chunk instanceof Uint8Array) return chunk;
  throw new Error(`Body chunk is ${typeof chunk}, not a string or Uint8Array`);
}

/** `tsgi.errors`: raw text to stderr, where the master turns each line into a log line. */
function stderrStream(): ErrorStream {
  return {
    write: (s: string) => writeStderr(String(s)),
    writelines: (lines: Iterable<string>) => writeStderr([...lines].join("")),
    flush: () => {},
  };
}

function writeStderr(text: string): void {
  const bytes = encoder.encode(text);
  try {
    let done = 0;
    while (done < bytes.length) done += Deno.stderr.writeSync(bytes.subarray(done));
  } catch {
    // The master is gone; nobody is left to read it.
  }
}

function firstLine(error: unknown): string {
  const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  return message.split("\n")[0];
}
