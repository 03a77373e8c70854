// Fetch apps on TSGI: `toTsgiApp` turns a `(Request) => Response` handler, or an object with
// `fetch()` (a Hono app, a `deno serve` module), into a TSGI app: environ -> Request with its
// body streamed from tsgi.input, Response -> startResponse + a body streamed out chunk by chunk.
// The other direction, TSGI app -> fetch handler, is fetch_handler.ts.

import { HttpError, reasonPhrase } from "../../http/errors.ts";
import { headerNameOf } from "../../http/field_names.ts";
import { isUpgradeResponse, rememberEnviron } from "../websocket.ts";
import type { App, Body, Environ, FetchApp, Input, StartResponse } from "../../tsgi/types.ts";

import { HOP_BY_HOP, isToken } from "../../http/grammar.ts";
import { ByteInput } from "../../tsgi/byte_input.ts";
import { lazyRequest, lazyRequestsWork } from "./lazy_request.ts";
import { blobBody, fixedResponse, wholeBody } from "./response_internals.ts";
import { checkedBase, lazyUrl, urlOf } from "./request_url.ts";

export { type FetchHandlerOptions, toFetchHandler } from "./to_fetch.ts";

/** What a fetch handler gets besides the Request: the peer, as `Deno.serve` gives it. */
export interface FetchInfo {
  remoteAddr: { transport: "tcp"; hostname: string; port: number };
}

/** `(request) => response`, the shape `Deno.serve` and workers take. */
export type FetchHandler = (
  request: Request,
  info: FetchInfo,
) => Response | Promise<Response>;

/** The server's disconnect signal, when the server offers one (connection.ts). */
type SignalSource = () => AbortSignal;

/**
 * Wraps a fetch handler, or an object with `fetch()`, as a TSGI app.
 *
 * ```ts
 * import { Hono } from "npm:hono@4";
 * import { serve, toTsgiApp } from "../../mod.ts";
 * const hono = new Hono().get("/", (c) => c.text("hi"));
 * serve(toTsgiApp(hono), { bind: [{ hostname: "127.0.0.1", port: 8000 }] });
 * ```
 */
export function toTsgiApp(handler: FetchHandler | FetchApp): App {
  const fetch: FetchHandler = typeof handler === "function"
    ? handler
    : (request, info) => handler.fetch(request, info);
  return (environ, startResponse) => {
    const input = hasBody(environ) ? new InputStream(environ["tsgi.input"]) : null;
    const request = requestFromEnviron(environ, input?.stream);
    // A WebSocket handshake: upgradeWebSocket(request) finds its way back to the environ.
    if (environ["tsgi.server.websocket"] !== undefined) rememberEnviron(request, environ);
    const result = fetch(request, infoOf(environ));
    // A handler that answers at once is answered at once: no promise between it and the
    // server, so pipelined responses still leave together in one write.
    if (typeof (result as Promise<Response>)?.then !== "function") {
      return answer(result as Response, input, environ, startResponse);
    }
    return Promise.resolve(result).then((response) =>
      answer(response, input, environ, startResponse)
    );
  };
}

/** The TSGI answer for a fetch handler's Response. */
function answer(
  response: Response,
  input: InputStream | null,
  environ: Environ,
  startResponse: StartResponse,
): Body | Promise<Body> {
  // A body the app could not read (413, a client gone) decides the answer, whatever the app
  // made of it: frameworks turn such errors into their own 500.
  if (input?.failure !== undefined) throw input.failure;
  // The server writes the 101 for an upgraded request; nothing of the app's goes out.
  if (isUpgradeResponse(response)) return [];
  const fixed = fixedResponse(response);
  if (fixed !== null) {
    startResponse(statusLineOf(response), fixed.headers);
    return [fixed.body];
  }
  startResponse(statusLineOf(response), [...responseHeaders(response.headers)]);
  const whole = wholeBody(response);
  if (whole !== undefined) return whole === null ? [] : [whole];
  const blob = blobBody(response);
  if (blob !== null) return wholeBlob(response, blob);
  return bodyOf(response, environ["tsgi.server.signal"] as SignalSource | undefined);
}

/** A Blob body, read whole; the Response's stream, never read, is cancelled as used. */
async function wholeBlob(response: Response, blob: Blob): Promise<Body> {
  const bytes = await blob.bytes();
  response.body?.cancel().catch(() => {});
  return [bytes];
}

/**
 * The Request an environ describes: method, URL (scheme, Host, SCRIPT_NAME + PATH_INFO, query),
 * headers, and `body` (by default streamed from `tsgi.input`). Its `signal` aborts when the
 * client goes away, if the server provides `tsgi.server.signal`. Throws HttpError(400) for a
 * request that no Request can describe (an invalid Host) and HttpError(405) for the methods
 * fetch forbids (CONNECT, TRACE, TRACK).
 */
export function requestFromEnviron(
  environ: Environ,
  body?: ReadableStream<Uint8Array>,
): Request {
  const method = environ.REQUEST_METHOD;
  const stream = hasBody(environ) ? body ?? new InputStream(environ["tsgi.input"]).stream : null;
  const signal = environ["tsgi.server.signal"] as SignalSource | undefined;
  if (LAZY_METHODS.has(method) && lazyRequestsWork()) {
    const base = checkedBase(environ);
    return lazyRequest((token) => newRequest(token as unknown as string, undefined, signal), {
      method,
      url: () => lazyUrl(base, environ),
      headers: () => checkedHeaderList(headerListOf(environ)),
      body: stream,
    });
  }
  const init: RequestInit & { duplex?: string } = { method, headers: headerListOf(environ) };
  if (stream !== null) {
    init.body = stream;
    init.duplex = "half";
  }
  try {
    return newRequest(urlOf(environ), init, signal);
  } catch (error) {
    if (/method/i.test((error as Error).message)) {
      throw new HttpError(405, `Method "${method}" cannot be given to a fetch app`);
    }
    throw new HttpError(400, "Request cannot be expressed as a URL and headers");
  }
}

/**
 * Methods a Request keeps as they are: no normalizing, none forbidden. Requests with these are
 * built lazily; any other takes the public constructor, which normalizes or refuses it.
 */
const LAZY_METHODS = new Set(["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"]);

function newRequest(
  input: string,
  init: RequestInit | undefined,
  signal: SignalSource | undefined,
): Request {
  return signal === undefined ? new Request(input, init) : new ServerRequest(input, init, signal);
}

/**
 * A Request whose `signal` is the server's disconnect signal, asked for only when read:
 * watching for a disconnect keeps a read in flight, which most requests never need.
 */
class ServerRequest extends Request {
  readonly #source: SignalSource;
  #signal: AbortSignal | undefined;

  constructor(input: string, init: RequestInit | undefined, source: SignalSource) {
    super(input, init);
    this.#source = source;
  }

  override get signal(): AbortSignal {
    return (this.#signal ??= this.#source());
  }
}

function hasBody(environ: Environ): boolean {
  const method = environ.REQUEST_METHOD;
  if (method === "GET" || method === "HEAD") return false;
  const length = environ.CONTENT_LENGTH;
  if (length !== undefined) return length !== "0";
  return environ.HTTP_TRANSFER_ENCODING !== undefined;
}

/** The header list a Request holds: lower-case names, one entry per field. */
function headerListOf(environ: Environ): [string, string][] {
  const headers: [string, string][] = [];
  for (const key in environ) {
    if (key.charCodeAt(0) === 0x48 /* H */ && key.startsWith("HTTP_")) {
      headers.push([headerNameOf(key), environ[key] as string]);
    }
  }
  if (environ.CONTENT_TYPE !== undefined) headers.push(["content-type", environ.CONTENT_TYPE]);
  if (environ.CONTENT_LENGTH !== undefined) {
    headers.push(["content-length", environ.CONTENT_LENGTH]);
  }
  return headers;
}

/** What the Headers class refuses in a value (it takes any other byte). */
const FORBIDDEN_IN_VALUE = /[\0\r\n]/;

/**
 * The header list of a lazily built Request, checked as `new Headers()` would: fields from the
 * wire were checked by the parser, but middleware may have added HTTP_* keys of its own, and
 * a lazy Request skips the constructor's checks. A bad one is the app's error (500).
 */
function checkedHeaderList(list: [string, string][]): [string, string][] {
  for (const [name, value] of list) {
    if (!isToken(name) || FORBIDDEN_IN_VALUE.test(value)) {
      throw new TypeError(`Invalid header in the environ: ${JSON.stringify(name)}`);
    }
  }
  return list;
}

function infoOf(environ: Environ): FetchInfo {
  return {
    remoteAddr: {
      transport: "tcp",
      hostname: environ.REMOTE_ADDR,
      port: Number(environ.REMOTE_PORT),
    },
  };
}

/** `tsgi.input` as the ReadableStream a Request body is, read only as the app pulls. */
class InputStream {
  readonly stream: ReadableStream<Uint8Array>;
  /** Why reading the body failed, if it did. */
  failure: unknown = undefined;

  constructor(input: Input) {
    // The server's own input hands over pieces as they come off the socket; any other (one
    // middleware wrapped) is read through the TSGI contract.
    const read = input instanceof ByteInput
      ? () => input.readChunk(INPUT_CHUNK)
      : () => input.read(INPUT_CHUNK);
    this.stream = new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        try {
          const bytes = await read();
          if (bytes.length === 0) controller.close();
          else controller.enqueue(bytes);
        } catch (error) {
          this.failure = error;
          controller.error(error);
        }
      },
      // Nothing is read before the app asks: that is what decides 100 Continue.
    }, { highWaterMark: 0 });
  }
}

const INPUT_CHUNK = 64 * 1024;

function statusLineOf(response: Response): string {
  return `${response.status} ${response.statusText || reasonPhrase(response.status)}`;
}

function* responseHeaders(headers: Headers): Iterable<[string, string]> {
  for (const [name, value] of headers) {
    if (HOP_BY_HOP.has(name)) continue;
    // Joined, Set-Cookie values would break (their dates hold commas): each goes on its own.
    if (name === "set-cookie") continue;
    yield [name, value];
  }
  for (const cookie of headers.getSetCookie()) yield ["set-cookie", cookie];
}

/** A body Deno made from a string or bytes delivers within a few microtasks; I/O cannot. */
const FIXED_BODY_TICKS = 8;
const PENDING = Symbol("pending");

/**
 * The Response's body as a TSGI body. A body that is all there (a string, JSON, bytes) comes
 * back as one chunk in an array, so the server sends it with a Content-Length in one write;
 * any other is streamed, chunk by chunk, and its close() cancels the Response's stream.
 */
async function bodyOf(response: Response, signal: SignalSource | undefined): Promise<Body> {
  const stream = response.body;
  if (stream === null) return [];
  const body = new ResponseBody(stream.getReader(), signal);
  const first = await body.read();
  if (first.done) return [];
  const next = body.reader.read();
  const after = await settledWithin(next, FIXED_BODY_TICKS);
  if (after !== PENDING && after.done) return [first.value];
  body.start(first.value, next);
  return body;
}

/** The value of `promise` if it settles within `ticks` microtasks; PENDING otherwise. */
async function settledWithin<T>(promise: Promise<T>, ticks: number): Promise<T | typeof PENDING> {
  let result: T | typeof PENDING = PENDING;
  promise.then((value) => (result = value), () => {});
  for (let i = 0; i < ticks && result === PENDING; i++) await null;
  return result;
}

type ReadResult = ReadableStreamReadResult<Uint8Array>;

/** A streamed Response body; watches for the client leaving once a read has to wait. */
class ResponseBody implements AsyncIterable<Uint8Array> {
  readonly reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #signal: SignalSource | undefined;
  #first: Uint8Array | null = null;
  #next: Promise<ReadResult> | null = null;
  #watching = false;
  #cancelled = false;

  constructor(reader: ReadableStreamDefaultReader<Uint8Array>, signal: SignalSource | undefined) {
    this.reader = reader;
    this.#signal = signal;
  }

  /** Resumes after bodyOf() looked ahead: the chunk it took and the read in flight. */
  start(first: Uint8Array, next: Promise<ReadResult>): void {
    this.#first = first;
    this.#next = next;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array> {
    if (this.#first !== null) yield this.#first;
    this.#first = null;
    while (true) {
      const result = await this.read();
      if (result.done) return;
      yield result.value;
    }
  }

  /**
   * The next chunk. A read that waits (a stream fed by timers or I/O) starts watching the
   * client, so that a client gone while the app is silent still cancels the app's stream.
   */
  async read(): Promise<ReadResult> {
    const read = this.#next ?? this.reader.read();
    this.#next = null;
    if (!this.#watching && this.#signal !== undefined) {
      const now = await settledWithin(read, FIXED_BODY_TICKS);
      if (now !== PENDING) return now;
      this.#watchClient(this.#signal);
    }
    return await read;
  }

  #watchClient(source: SignalSource): void {
    this.#watching = true;
    const signal = source();
    if (signal.aborted) this.close();
    else signal.addEventListener("abort", () => this.close(), { once: true });
  }

  /** Cancels the app's stream (its `cancel()` runs: Hono's `onAbort`); once is enough. */
  close(): void {
    if (this.#cancelled) return;
    this.#cancelled = true;
    this.reader.cancel().catch(() => {});
  }
}
