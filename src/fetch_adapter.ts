// Fetch apps on TSGI: `toTsgiApp` turns a `(Request) => Response` handler, or an object with
// `fetch()`, into a TSGI app (environ -> Request, Response -> startResponse + streamed body).

import { headerNameOf } from "./field_names.ts";
import type { App, Body, Chunk, Environ, FetchApp, Input } from "./types.ts";

/** Headers a Response may carry that belong to the connection, not the message. */
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "te",
  "trailer",
  "upgrade",
]);

const STATUS_REASONS: Record<number, string> = {
  200: "OK",
  201: "Created",
  202: "Accepted",
  204: "No Content",
  206: "Partial Content",
  301: "Moved Permanently",
  302: "Found",
  303: "See Other",
  304: "Not Modified",
  307: "Temporary Redirect",
  308: "Permanent Redirect",
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  409: "Conflict",
  413: "Content Too Large",
  415: "Unsupported Media Type",
  422: "Unprocessable Content",
  429: "Too Many Requests",
  500: "Internal Server Error",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
};

/** The reason phrase for a status, for a status line; "Unknown" when we have none. */
export function reasonPhrase(status: number): string {
  return STATUS_REASONS[status] ?? "Unknown";
}

type FetchHandler = (request: Request) => Response | Promise<Response>;

/** Wraps a fetch handler, or an object with `fetch()`, as a TSGI app. */
export function toTsgiApp(handler: FetchHandler | FetchApp): App {
  const fetch: FetchHandler = typeof handler === "function"
    ? handler
    : (request) => handler.fetch(request);
  return async (environ, startResponse) => {
    const response = await fetch(requestFromEnviron(environ));
    startResponse(`${response.status} ${response.statusText || reasonPhrase(response.status)}`, [
      ...responseHeaders(response.headers),
    ]);
    return bodyOf(response);
  };
}

/** The Request an environ describes, its body streamed from `tsgi.input`. */
export function requestFromEnviron(environ: Environ): Request {
  const headers = new Headers();
  for (const key in environ) {
    if (key.charCodeAt(0) === 0x48 /* H */ && key.startsWith("HTTP_")) {
      headers.append(headerNameOf(key), environ[key] as string);
    }
  }
  if (environ.CONTENT_TYPE !== undefined) headers.set("content-type", environ.CONTENT_TYPE);
  if (environ.CONTENT_LENGTH !== undefined) headers.set("content-length", environ.CONTENT_LENGTH);
  const method = environ.REQUEST_METHOD;
  const hasBody = method !== "GET" && method !== "HEAD" &&
    (environ.CONTENT_LENGTH !== undefined || environ.HTTP_TRANSFER_ENCODING !== undefined);
  const init: RequestInit & { duplex?: string } = { method, headers };
  if (hasBody) {
    init.body = streamOf(environ["tsgi.input"]);
    init.duplex = "half";
  }
  return new Request(urlOf(environ), init);
}

function urlOf(environ: Environ): string {
  const host = (environ.HTTP_HOST as string | undefined) ??
    `${environ.SERVER_NAME}:${environ.SERVER_PORT}`;
  const raw = environ.RAW_URI;
  // The raw target keeps the client's encoding; SCRIPT_NAME is already in it.
  const path = raw.charCodeAt(0) === 0x2f
    ? raw
    : encodeURI(environ.SCRIPT_NAME + environ.PATH_INFO);
  return `${environ["tsgi.url_scheme"]}://${host}${path}`;
}

function streamOf(input: Input): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const bytes = await input.read(64 * 1024);
      if (bytes.length === 0) controller.close();
      else controller.enqueue(bytes);
    },
    type: "bytes",
  });
}

function* responseHeaders(headers: Headers): Iterable<[string, string]> {
  for (const [name, value] of headers) {
    if (HOP_BY_HOP.has(name)) continue;
    // Headers joins Set-Cookie values with ", ", which breaks them: send each on its own.
    if (name === "set-cookie") continue;
    yield [name, value];
  }
  for (const cookie of headers.getSetCookie()) yield ["set-cookie", cookie];
}

/** The Response's body as a TSGI body whose close() cancels the stream. */
function bodyOf(response: Response): Body {
  const stream = response.body;
  if (stream === null) return [];
  const reader = stream.getReader();
  return {
    async *[Symbol.asyncIterator](): AsyncGenerator<Chunk> {
      while (true) {
        const { done, value } = await reader.read();
        if (done) return;
        yield value;
      }
    },
    close() {
      reader.cancel().catch(() => {});
    },
  } as Body;
}
