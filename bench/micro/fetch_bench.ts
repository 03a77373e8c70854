// The fetch adapter (src/app/fetch/to_tsgi.ts) step by step: what each part of serving a fetch
// app costs, in isolation and through the whole engine over a fake socket. See
// docs/performance.md, "Fetch apps: where the time goes".
//
//   deno bench -A bench/micro/fetch_bench.ts

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
Deno.bench("Request: requestFromEnviron + read url, headers", { group: "request" }, () => {
  const r = requestFromEnviron(environ);
  sink = r.url + r.headers.get("accept");
});
Deno.bench("Request: requestFromEnviron (17-field head) + read url, headers", {
  group: "request",
}, () => {
  const r = requestFromEnviron(heavyEnviron);
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
