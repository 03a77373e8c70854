// The fetch adapter (src/app/fetch/to_tsgi.ts) step by step: what each part of serving a fetch
// app costs, in isolation and through the whole engine over a fake socket, and what the
// prototypes below (not in src/) would save. See docs/performance.md, "Fetch apps: where the
// time goes".
//
//   deno bench -A bench/micro/fetch_bench.ts
//
// The prototypes are exported so that a wrk run can serve them (see the doc section).

import { Connection } from "../../src/server/connection.ts";
import { requestFromEnviron, toTsgiApp } from "../../src/app/fetch/to_tsgi.ts";
import { isUpgradeResponse } from "../../src/app/websocket.ts";
import { reasonPhrase } from "../../src/http/errors.ts";
import type { App, Chunk, Environ, StartResponse } from "../../src/tsgi/types.ts";
import {
  CONNECTION_INFO,
  engineFor,
  fakeConn,
  HEAVY_REQUEST,
  helloApp,
  pipelined,
  SMALL_REQUEST,
} from "./fixtures.ts";

const hello = (_request: Request): Response => new Response("Hello, World!");
const helloAsync = (_request: Request): Promise<Response> =>
  Promise.resolve(new Response("Hello, World!"));

// ---------------------------------------------------------------------------------------------
// Prototypes (scratch copies of to_tsgi.ts's pieces; src/ is unchanged).

interface FixedMarks {
  status: symbol;
  body: symbol;
  headerKind: symbol;
  contentType: symbol;
  consumed: symbol;
}
let fixedMarks: FixedMarks | null | undefined;
const TEXT_HEADERS: [string, string][] = [["content-type", "text/plain;charset=UTF-8"]];

/** to_tsgi.ts's fixedResponse; `shared` returns one frozen header list for the text kind. */
function fixedResponse(
  response: Response,
  shared = false,
): { headers: [string, string][]; body: Chunk } | null {
  if (fixedMarks === undefined) {
    const byName = new Map<string, symbol>();
    for (const s of Object.getOwnPropertySymbols(response)) {
      if (s.description) byName.set(s.description, s);
    }
    const m = {
      status: byName.get("serve fast status"),
      body: byName.get("serve fast body"),
      headerKind: byName.get("serve fast header kind"),
      contentType: byName.get("serve fast content type"),
      consumed: byName.get("serve fast consumed"),
    };
    fixedMarks = Object.values(m).every((v) => v) ? m as FixedMarks : null;
  }
  if (fixedMarks === null) return null;
  const marked = response as unknown as Record<symbol, unknown>;
  const status = marked[fixedMarks.status];
  const body = marked[fixedMarks.body];
  if (status !== response.status || marked[fixedMarks.consumed] !== false) return null;
  if (typeof body !== "string" && !(body instanceof Uint8Array)) return null;
  const kind = marked[fixedMarks.headerKind];
  if (kind === 0) return { headers: [], body };
  if (kind === 1) {
    return {
      headers: shared ? TEXT_HEADERS : [["content-type", "text/plain;charset=UTF-8"]],
      body,
    };
  }
  const contentType = marked[fixedMarks.contentType];
  if (kind === 2 && typeof contentType === "string") {
    return { headers: [["content-type", contentType]], body };
  }
  return null;
}

const STATUS_LINES = new Map<number, string>();
function statusLineOf(response: Response): string {
  const text = response.statusText;
  if (text === "") {
    let line = STATUS_LINES.get(response.status);
    if (line === undefined) {
      STATUS_LINES.set(
        response.status,
        line = `${response.status} ${reasonPhrase(response.status)}`,
      );
    }
    return line;
  }
  return `${response.status} ${text}`;
}

/**
 * Prototype A: when the handler returns a Response (not a promise) with a fixed body, answer
 * synchronously, so the engine's sync path (coalesced writes, no promise) serves it. Anything
 * else falls back to the real adapter, given the Response already made.
 */
export function syncFirstTsgiApp(handler: (r: Request) => Response | Promise<Response>): App {
  let pending: Response | Promise<Response> | null = null;
  const slow = toTsgiApp((_request) => pending!);
  return (environ: Environ, startResponse: StartResponse) => {
    const method = environ.REQUEST_METHOD;
    const bodiless = method === "GET" || method === "HEAD";
    if (!bodiless || environ["tsgi.server.websocket"] !== undefined) {
      return toTsgiApp(handler)(environ, startResponse);
    }
    const request = requestFromEnviron(environ);
    const response = handler(request);
    if (!(response instanceof Promise) && !isUpgradeResponse(response)) {
      const fixed = fixedResponse(response, true);
      if (fixed !== null) {
        startResponse(statusLineOf(response), fixed.headers);
        return [fixed.body];
      }
    }
    // The real adapter, with the handler's answer (it builds a second Request: a prototype).
    pending = response;
    return slow(environ, startResponse);
  };
}

/** Prototype B: A, and the async wrapper when the promise settles: a Response in one tick. */
export function protoAsyncTsgiApp(handler: (r: Request) => Response | Promise<Response>): App {
  return (environ: Environ, startResponse: StartResponse) => {
    const request = requestFromEnviron(environ);
    const response = handler(request);
    if (response instanceof Promise) {
      return response.then((r) => {
        const fixed = fixedResponse(r, true)!;
        startResponse(statusLineOf(r), fixed.headers);
        return [fixed.body];
      });
    }
    const fixed = fixedResponse(response, true)!;
    startResponse(statusLineOf(response), fixed.headers);
    return [fixed.body];
  };
}

/**
 * Prototype C: a Request built as Deno.serve builds its own (fromInnerRequest): branded, with an
 * inner request whose URL and header list are computed only when read. Uses runtime internals
 * found by symbol description, as to_tsgi.ts's fixedResponse does for Responses (Deno 2.9).
 */
const template = new Request("http://x/");
const sym = (d: string, o: object = template) =>
  Object.getOwnPropertySymbols(o).find((s) => s.description === d)!;
const BRAND = sym("[[webidl.brand]]");
const INNER = sym("request");
const GET_HEADERS = sym("get headers");
const GUARD = sym("headers guard");
const lazyOk = [BRAND, INNER, GET_HEADERS, GUARD].every((s) => s !== undefined);

/** The inner request Deno's Request getters read; its URL and header list are made on demand. */
class LazyInner {
  methodInner: string;
  headerListInner: [string, string][] | null = null;
  body = null;
  redirectMode = "follow";
  redirectCount = 0;
  urlList: (() => string)[];
  urlListProcessed: string[] = [];
  clientRid = null;
  blobUrlEntry = null;
  readonly #headers: () => [string, string][];

  constructor(method: string, url: () => string, headers: () => [string, string][]) {
    this.methodInner = method;
    this.urlList = [url];
    this.#headers = headers;
  }
  get method(): string {
    return this.methodInner;
  }
  set method(v: string) {
    this.methodInner = v;
  }
  get headerList(): [string, string][] {
    return (this.headerListInner ??= this.#headers());
  }
  set headerList(v: [string, string][]) {
    this.headerListInner = v;
  }
  url(): string {
    return (this.urlListProcessed[0] ??= this.urlList[0]());
  }
  currentUrl(): string {
    const i = this.urlList.length - 1;
    return (this.urlListProcessed[i] ??= this.urlList[i]());
  }
}

function headersOfInner(this: LazyInner): Headers {
  return new Headers(this.headerList);
}

export function lazyRequest(
  method: string,
  url: () => string,
  headers: () => [string, string][],
  proto: object = Request.prototype,
): Request {
  const inner = new LazyInner(method, url, headers);
  const r = Object.create(proto);
  r[BRAND] = BRAND;
  r[INNER] = inner;
  r[GUARD] = "request";
  r[GET_HEADERS] = headersOfInner.bind(inner);
  return r;
}

// ---------------------------------------------------------------------------------------------
// A real environ, as the engine builds it, for the steps in isolation.

async function captureEnviron(request: Uint8Array): Promise<Environ> {
  let captured: Environ | undefined;
  const app: App = (environ, startResponse) => {
    captured ??= { ...environ };
    return helloApp(environ, startResponse);
  };
  await new Connection(fakeConn(request, 1), engineFor(app), CONNECTION_INFO).run();
  return captured!;
}

const environ = await captureEnviron(SMALL_REQUEST);
const heavyEnviron = await captureEnviron(HEAVY_REQUEST);
const noop: StartResponse = () => () => {};
const url = "http://localhost:8080/plaintext";
const headersRecord = { host: "localhost:8080", accept: "*/*" };
let sink: unknown;

// ---- building the Request --------------------------------------------------------------------

Deno.bench("Request: requestFromEnviron (small head)", { group: "request", baseline: true }, () => {
  sink = requestFromEnviron(environ);
});
Deno.bench("Request: requestFromEnviron (17-field head)", { group: "request" }, () => {
  sink = requestFromEnviron(heavyEnviron);
});
Deno.bench("Request: prototype C, lazy Request (nothing read)", { group: "request" }, () => {
  if (!lazyOk) throw new Error("this runtime has no such internals");
  sink = lazyRequest("GET", () => url, () => Object.entries(headersRecord));
});
Deno.bench("Request: prototype C, lazy Request + read url, headers", { group: "request" }, () => {
  const r = lazyRequest("GET", () => new URL(url).href, () => Object.entries(headersRecord));
  sink = r.url + r.headers.get("accept");
});
Deno.bench("Request: requestFromEnviron + read url, headers", { group: "request" }, () => {
  const r = requestFromEnviron(environ);
  sink = r.url + r.headers.get("accept");
});
Deno.bench("Request: new Request(url) alone", { group: "request" }, () => {
  sink = new Request(url);
});
Deno.bench("Request: new Request(url, {method, headers record})", { group: "request" }, () => {
  sink = new Request(url, { method: "GET", headers: headersRecord });
});
Deno.bench("Request: new URL(url) alone", { group: "request" }, () => {
  sink = new URL(url);
});
Deno.bench("Request: new Headers(record) alone", { group: "request" }, () => {
  sink = new Headers(headersRecord);
});
Deno.bench("Request: object of the same fields (no Request)", { group: "request" }, () => {
  sink = { method: "GET", url, headers: headersRecord };
});

// ---- the handler and its Response -------------------------------------------------------------

Deno.bench("Response: new Response(text)", { group: "response", baseline: true }, () => {
  sink = new Response("Hello, World!");
});
Deno.bench("Response: fixedResponse(new Response(text))", { group: "response" }, () => {
  sink = fixedResponse(new Response("Hello, World!"));
});
Deno.bench("Response: new Response(text) + status + statusLine", { group: "response" }, () => {
  const r = new Response("Hello, World!");
  sink = `${r.status} ${r.statusText || reasonPhrase(r.status)}`;
});
Deno.bench("Response: new Response(text) + iterate .headers", { group: "response" }, () => {
  const r = new Response("Hello, World!");
  const out: [string, string][] = [];
  for (const [k, v] of r.headers) out.push([k, v]);
  for (const c of r.headers.getSetCookie()) out.push(["set-cookie", c]);
  sink = out;
});
Deno.bench(
  "Response: new Response(text, {headers: record}) + iterate",
  { group: "response" },
  () => {
    const r = new Response("Hello, World!", { headers: { "content-type": "text/plain" } });
    const out: [string, string][] = [];
    for (const [k, v] of r.headers) out.push([k, v]);
    sink = out;
  },
);
Deno.bench("Response: new Response(text) + read .body stream", { group: "response" }, async () => {
  const reader = new Response("Hello, World!").body!.getReader();
  sink = await reader.read();
  sink = await reader.read();
});
Deno.bench("Response: await of a resolved promise", { group: "response" }, async () => {
  sink = await helloAsync(sink as Request);
});

// ---- the adapter as a whole (one request, no engine) -----------------------------------------

const adapter = toTsgiApp(hello);
const adapterAsync = toTsgiApp(helloAsync);
const syncFirst = syncFirstTsgiApp(hello);

Deno.bench("adapter: toTsgiApp(hello) per call", { group: "adapter", baseline: true }, async () => {
  sink = await adapter(environ, noop);
});
Deno.bench("adapter: toTsgiApp(async hello) per call", { group: "adapter" }, async () => {
  sink = await adapterAsync(environ, noop);
});
Deno.bench("adapter: prototype A, sync answer", { group: "adapter" }, () => {
  sink = syncFirst(environ, noop);
});
Deno.bench("adapter: TSGI hello app (reference)", { group: "adapter" }, () => {
  sink = helloApp(environ, noop);
});

// ---- the whole engine over a fake socket -----------------------------------------------------

const small16 = pipelined(SMALL_REQUEST, 16);
const engines: [string, App][] = [
  ["TSGI hello app", helloApp],
  ["toTsgiApp(hello)", toTsgiApp(hello)],
  ["toTsgiApp(async hello)", toTsgiApp(helloAsync)],
  ["prototype A (sync answer)", syncFirstTsgiApp(hello)],
  ["prototype B (promise, one tick)", protoAsyncTsgiApp(helloAsync)],
];
for (const [name, app] of engines) {
  const engine = engineFor(app);
  Deno.bench(`engine x16 pipelined: ${name}`, {
    group: "engine16",
    baseline: app === helloApp,
    n: 20000,
  }, async () => {
    await new Connection(fakeConn(small16, 1), engine, CONNECTION_INFO).run();
  });
}
for (const [name, app] of engines) {
  const engine = engineFor(app);
  Deno.bench(`engine x1: ${name}`, { group: "engine1", baseline: app === helloApp }, async () => {
    await new Connection(fakeConn(SMALL_REQUEST, 1), engine, CONNECTION_INFO).run();
  });
}

export { sink };
