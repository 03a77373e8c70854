// TSGI apps anywhere a fetch handler goes (Deno.serve, Deno Deploy, Bun, workers):
// `toFetchHandler(app)` builds the environ from a Request, runs the app, and streams its body
// into the Response, with startResponse's rules (excInfo, headers held until the first byte).

import { HOP_BY_HOP } from "../../http/grammar.ts";
import { percentDecodePath } from "../../tsgi/environ.ts";
import { HttpError } from "../../http/errors.ts";
import { environKey } from "../../http/field_names.ts";
import { concat } from "../../tsgi/byte_input.ts";
import { EMPTY_INPUT } from "../../tsgi/input.ts";
import { StreamInput } from "../../tsgi/stream_input.ts";
import type { App, Body, Chunk, Environ, ErrorStream, StartResponse } from "../../tsgi/types.ts";

/** Options for toFetchHandler. */
export interface FetchHandlerOptions {
  /** A mount prefix taken off the path into SCRIPT_NAME ("/app"); none by default. */
  scriptName?: string;
  /** Where `tsgi.errors` and the app's failures go; stderr by default. */
  errors?: ErrorStream;
}

/** The peer, as `Deno.serve` passes it as the handler's second argument (any Deno.Addr). */
interface PeerInfo {
  remoteAddr?: unknown;
}

interface NetAddrLike {
  hostname?: string;
  port?: number;
}

const VERSION: readonly [number, number] = Object.freeze([1, 0] as const);
const encoder = new TextEncoder();
/** Statuses whose Response may not have a body (Fetch standard "null body status"). */
const NULL_BODY = new Set([101, 103, 204, 205, 304]);

/** Writes to stderr: the default `tsgi.errors` outside the server. */
const STDERR: ErrorStream = {
  write: (s) => void Deno.stderr.writeSync(encoder.encode(s)),
  writelines(lines) {
    for (const line of lines) this.write(line);
  },
  flush() {},
};

/**
 * Wraps a TSGI app as a fetch handler: `(request) => Promise<Response>`.
 *
 * ```ts
 * import { toFetchHandler } from "../../mod.ts";
 * import hello from "../../apps/hello.ts";
 * Deno.serve({ port: 8000 }, toFetchHandler(hello));
 * ```
 */
export function toFetchHandler(
  app: App,
  options: FetchHandlerOptions = {},
): (request: Request, info?: PeerInfo) => Promise<Response> {
  const errors = options.errors ?? STDERR;
  const scriptName = (options.scriptName ?? "").replace(/\/+$/, "");
  return async (request, info) => {
    const environ = environFromRequest(request, info, scriptName, errors);
    if (environ instanceof HttpError) return plainResponse(environ.status, environ.message);
    const exchange = new Exchange(errors);
    let body: Body;
    try {
      body = await app(environ, exchange.startResponse);
    } catch (error) {
      return exchange.failed(error);
    }
    return await exchange.respond(body);
  };
}

/** The environ (docs/tsgi.md) a Request describes; HttpError(400) for an undecodable path. */
export function environFromRequest(
  request: Request,
  info: PeerInfo | undefined,
  scriptName: string,
  errors: ErrorStream,
): Environ | HttpError {
  const url = new URL(request.url);
  const path = percentDecodePath(url.pathname);
  if (path instanceof HttpError) return path;
  const mounted = scriptName !== "" &&
    (path === scriptName || path.startsWith(scriptName + "/"));
  const https = url.protocol === "https:";
  const peer = (info?.remoteAddr ?? {}) as NetAddrLike;
  const environ: Environ = {
    REQUEST_METHOD: request.method,
    SCRIPT_NAME: mounted ? scriptName : "",
    PATH_INFO: mounted ? path.slice(scriptName.length) : path,
    QUERY_STRING: url.search.slice(1),
    RAW_URI: url.pathname + url.search,
    REQUEST_URI: url.pathname + url.search,
    SERVER_NAME: url.hostname.replace(/^\[(.*)\]$/, "$1"),
    SERVER_PORT: url.port || (https ? "443" : "80"),
    SERVER_PROTOCOL: "HTTP/1.1",
    REMOTE_ADDR: peer.hostname ?? "",
    REMOTE_PORT: String(peer.port ?? ""),
    "tsgi.version": VERSION,
    "tsgi.url_scheme": https ? "https" : "http",
    "tsgi.input": request.body === null ? EMPTY_INPUT : new StreamInput(request.body),
    "tsgi.errors": errors,
    "tsgi.multithread": false,
    "tsgi.multiprocess": false,
    "tsgi.run_once": false,
    "tsgi.server.signal": () => request.signal,
  };
  for (const [name, value] of request.headers) {
    const key = environKey(name);
    if (key !== "") environ[key] = value;
  }
  return environ;
}

/**
 * One request's response side: what startResponse was told, the legacy write() bytes, and
 * the app's body turned into a Response once its first byte exists.
 */
class Exchange {
  readonly startResponse: StartResponse;
  readonly #errors: ErrorStream;
  #status = 0;
  #statusText = "";
  #headers: Headers | null = null;
  #committed = false;
  #ended = false;
  /** Bytes from write() not yet in the Response stream. */
  #written: Uint8Array[] = [];
  #closeBody: () => void = () => {};

  constructor(errors: ErrorStream) {
    this.#errors = errors;
    this.startResponse = (status, headers, excInfo) => this.#start(status, headers, excInfo);
  }

  #start(status: string, headers: [string, string][], excInfo?: unknown) {
    if (this.#headers !== null && (excInfo === undefined || excInfo === null)) {
      throw new Error("startResponse() called a second time without excInfo");
    }
    // docs/tsgi.md: once the response is on its way its status cannot change; the error goes on.
    if (this.#committed) throw excInfo;
    const match = /^([2-5]\d\d) (.*)$/s.exec(status);
    if (match === null || hasControl(match[2])) {
      throw new Error(`Invalid status ${JSON.stringify(status)}: expected "200 OK" form`);
    }
    this.#status = Number(match[1]);
    this.#statusText = match[2];
    this.#headers = headersOf(headers);
    return (chunk: Chunk) => {
      if (this.#ended) throw new Error("write() called after the response ended");
      this.#written.push(toBytes(chunk));
    };
  }

  /** The Response for what the app returned; a 500 when it fails before its first byte. */
  async respond(body: Body): Promise<Response> {
    this.#closeBody = closerOf(body);
    try {
      if (Array.isArray(body)) {
        return this.#commit(concat([...this.#taken(), ...body.map(toBytes)]));
      }
      const chunks = iteratorOf(body);
      while (true) {
        const { done, value } = await chunks.next();
        if (done) return this.#commit(concat(this.#taken()));
        const bytes = toBytes(value);
        if (bytes.length > 0) return this.#commit(concat([...this.#taken(), bytes]), chunks);
      }
    } catch (error) {
      return this.failed(error);
    }
  }

  /** Logs the app's failure and answers a bare 500: nothing of it reaches the client. */
  failed(error: unknown): Response {
    this.#end();
    const detail = error instanceof Error ? error.stack ?? error.message : String(error);
    this.#errors.write(`App raised an exception: ${detail}\n`);
    return plainResponse(500, "Internal Server Error");
  }

  #taken(): Uint8Array[] {
    const written = this.#written;
    this.#written = [];
    return written;
  }

  /** Sends the head: the Response, its body the bytes so far and then the rest of `chunks`. */
  #commit(first: Uint8Array, chunks?: AsyncIterator<Chunk>): Response {
    if (this.#headers === null) throw new Error("App returned a body without startResponse()");
    this.#committed = true;
    const init = { status: this.#status, statusText: this.#statusText, headers: this.#headers };
    if (NULL_BODY.has(this.#status)) {
      this.#end();
      return new Response(null, init);
    }
    if (chunks === undefined) {
      this.#end();
      return new Response(first as Uint8Array<ArrayBuffer>, init);
    }
    return new Response(this.#stream(first, chunks), init);
  }

  #stream(first: Uint8Array, chunks: AsyncIterator<Chunk>): ReadableStream<Uint8Array> {
    let pending: Uint8Array | null = first;
    return new ReadableStream<Uint8Array>({
      pull: async (controller) => {
        try {
          if (pending !== null) {
            controller.enqueue(pending);
            pending = null;
            return;
          }
          const { done, value } = await chunks.next();
          for (const bytes of this.#taken()) controller.enqueue(bytes);
          if (done) {
            this.#end();
            controller.close();
          } else controller.enqueue(toBytes(value));
        } catch (error) {
          this.#end();
          this.#errors.write(
            `Response aborted: the app failed after its head was sent: ${error}\n`,
          );
          controller.error(error);
        }
      },
      cancel: async () => {
        this.#end();
        await chunks.return?.();
      },
    }, { highWaterMark: 0 });
  }

  /** The response is over: the body's close() runs, exactly once. */
  #end(): void {
    if (this.#ended) return;
    this.#ended = true;
    try {
      this.#closeBody();
    } catch (error) {
      this.#errors.write(`Body close() failed: ${error}\n`);
    }
  }
}

function headersOf(pairs: [string, string][]): Headers {
  if (!Array.isArray(pairs)) throw new Error("startResponse() headers must be an array");
  const headers = new Headers();
  for (const [name, value] of pairs) {
    if (HOP_BY_HOP.has(String(name).toLowerCase())) {
      throw new Error(`Response header "${name}" is hop-by-hop: the server sets it`);
    }
    headers.append(name, value);
  }
  return headers;
}

function hasControl(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if ((c < 0x20 && c !== 0x09) || c === 0x7f) return true;
  }
  return false;
}

function closerOf(body: Body): () => void {
  const close = (body as { close?: unknown })?.close;
  return typeof close === "function" ? () => close.call(body) : () => {};
}

function iteratorOf(body: Body): AsyncIterator<Chunk> {
  if (body !== null && typeof body === "object") {
    if (Symbol.asyncIterator in body) return (body as AsyncIterable<Chunk>)[Symbol.asyncIterator]();
    if (Symbol.iterator in body) {
      const sync = (body as Iterable<Chunk>)[Symbol.iterator]();
      return {
        next: () => Promise.resolve(sync.next()),
        return: () => Promise.resolve(sync.return?.() ?? { done: true, value: undefined }),
      };
    }
  }
  throw new Error("App returned a body that is not an iterable of chunks");
}

function toBytes(chunk: Chunk): Uint8Array {
  if (chunk instanceof Uint8Array) return chunk;
  if (typeof chunk === "string") return encoder.encode(chunk);
  throw new Error("Body chunks must be Uint8Array or string");
}

function plainResponse(status: number, reason: string): Response {
  return new Response(reason + "\n", {
    status,
    headers: { "content-type": "text/plain; charset=utf-8" },
  });
}
