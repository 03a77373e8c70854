// The fetch adapter (src/app/fetch/to_tsgi.ts) step by step: what each part of serving a fetch
// app costs, in isolation and through the whole engine over a fake socket, and what prototype C
// below (not in src/) would save. See docs/performance.md, "Fetch apps: where the time goes".
//
//   deno bench -A bench/micro/fetch_bench.ts
//
// The prototype is exported so that a wrk run can serve it (see the doc section).

import { Connection } from "../../src/server/connection.ts";
import { requestFromEnviron, toTsgiApp } from "../../src/app/fetch/to_tsgi.ts";
import { reasonPhrase } from "../../src/http/errors.ts";
import type { App, Environ, StartResponse } from "../../src/tsgi/types.ts";
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
// Prototype C (not in src/; A, the sync answer, is in to_tsgi.ts since cc44b67).

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

Deno.bench("adapter: toTsgiApp(hello) per call", { group: "adapter", baseline: true }, () => {
  sink = adapter(environ, noop);
});
Deno.bench("adapter: toTsgiApp(async hello) per call", { group: "adapter" }, async () => {
  sink = await adapterAsync(environ, noop);
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
