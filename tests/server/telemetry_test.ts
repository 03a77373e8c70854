// OpenTelemetry (OTEL_DENO=true): a real tsgi server and a Deno.serve server, both children
// exporting OTLP/HTTP JSON to a receiver in this test, get the same request with a
// traceparent. tsgi's server span continues the caller's trace, the app's span and its fetch()
// are its children, and its span and metrics have Deno.serve's names, units and keys.

import assert from "node:assert/strict";
import { fromFileUrl } from "../support/paths.ts";
import { waitUntil } from "../support/process.ts";
import { openTelemetry } from "../../src/server/telemetry.ts";

const MAIN = fromFileUrl(new URL("../../main.ts", import.meta.url));
const APP = fromFileUrl(new URL("../fixtures/otel_app.ts", import.meta.url));
const DENO_SERVE = fromFileUrl(new URL("../fixtures/otel_deno_serve.ts", import.meta.url));

interface KeyValue {
  key: string;
  value: Record<string, unknown>;
}

interface Span {
  name: string;
  kind: number;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  attributes: KeyValue[];
  /** Added here: the exporting process's service.name and the span's scope. */
  service: string;
  scope: string;
}

interface Metric {
  name: string;
  unit: string;
  service: string;
  scope: string;
  /** The attribute keys of its data points with their value types, sorted. */
  keys: string[];
  kind: string;
}

/** An OTLP/HTTP receiver on loopback: keeps every span and metric it is sent. */
function startReceiver() {
  const spans: Span[] = [];
  const metrics: Metric[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const path = new URL(req.url).pathname;
    const body = await req.text();
    if (path === "/v1/traces") {
      for (const resource of JSON.parse(body).resourceSpans ?? []) {
        const service = serviceOf(resource.resource);
        for (const scope of resource.scopeSpans ?? []) {
          for (const span of scope.spans ?? []) {
            spans.push({ ...span, service, scope: scope.scope?.name });
          }
        }
      }
    } else if (path === "/v1/metrics") {
      for (const resource of JSON.parse(body).resourceMetrics ?? []) {
        const service = serviceOf(resource.resource);
        for (const scope of resource.scopeMetrics ?? []) {
          for (const metric of scope.metrics ?? []) {
            const kind = ["histogram", "sum", "gauge"].find((k) => k in metric) ?? "?";
            const points: { attributes?: KeyValue[] }[] = metric[kind]?.dataPoints ?? [];
            // Each key with its OTLP value type: "http.response.status_code:intValue".
            const keys = new Set(
              points.flatMap((p) =>
                (p.attributes ?? []).map((a) => `${a.key}:${Object.keys(a.value)[0]}`)
              ),
            );
            metrics.push({
              name: metric.name,
              unit: metric.unit,
              service,
              scope: scope.scope?.name,
              keys: [...keys].sort(),
              kind,
            });
          }
        }
      }
    }
    return Response.json({});
  });
  return { server, spans, metrics, url: `http://127.0.0.1:${server.addr.port}` };
}

function serviceOf(resource: { attributes?: KeyValue[] }): string {
  const name = resource?.attributes?.find((a) => a.key === "service.name");
  return String(name?.value.stringValue ?? "");
}

/** Starts `deno args` with telemetry on, exporting to `endpoint`; resolves with its port. */
async function spawnTraced(args: string[], service: string, endpoint: string) {
  const child = new Deno.Command(Deno.execPath(), {
    args,
    env: {
      OTEL_DENO: "true",
      OTEL_SERVICE_NAME: service,
      OTEL_EXPORTER_OTLP_PROTOCOL: "http/json",
      OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
      OTEL_BSP_SCHEDULE_DELAY: "50",
      OTEL_METRIC_EXPORT_INTERVAL: "200",
    },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let log = "";
  const logDone = (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) log += chunk;
  })();
  let exited = false;
  child.status.then(() => (exited = true));
  const listening = /Listening on http:\/\/\S+:(\d+)/;
  await waitUntil(`${service} listens`, () => exited || listening.test(log));
  if (exited) throw new Error(`${service} exited before listening:\n${log}`);
  const port = Number(listening.exec(log)![1]);
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch {
      // Exited already.
    }
    await child.status;
    await logDone;
  };
  return { port, stop, log: () => log };
}

const attributes = (span: Span) =>
  Object.fromEntries(span.attributes.map((a) => [a.key, Object.values(a.value)[0]]));

Deno.test("telemetry: off without OTEL_DENO, at no cost per request", () => {
  if (Deno.env.get("OTEL_DENO") !== undefined) return;
  assert.equal(openTelemetry(), null);
});

Deno.test("telemetry: tsgi's server span and metrics, as Deno.serve's, continuing the caller's trace", async () => {
  const receiver = startReceiver();
  const tsgi = await spawnTraced(
    ["run", "-A", MAIN, APP, "--bind", "127.0.0.1:0"],
    "tsgi",
    receiver.url,
  );
  const denoServe = await spawnTraced(["run", "-A", DENO_SERVE], "deno-serve", receiver.url);
  try {
    const traces = { tsgi: "0af7651916cd43dd8448eb211c80319c", "deno-serve": "" };
    traces["deno-serve"] = "1bf7651916cd43dd8448eb211c80319d";
    const callerSpan = "b7ad6b7169203331";
    for (const [service, port] of [["tsgi", tsgi.port], ["deno-serve", denoServe.port]] as const) {
      const response = await fetch(
        `http://127.0.0.1:${port}/p/a%20b?x=1&fetch=${receiver.url}/ping`,
        {
          method: "POST",
          body: "abcdef",
          headers: {
            traceparent: `00-${traces[service]}-${callerSpan}-01`,
            tracestate: "vendor=value",
          },
        },
      );
      assert.equal(await response.text(), "hello world\n");
    }

    const serverSpan = (service: string) =>
      receiver.spans.find((s) => s.service === service && s.kind === 2);
    const names = ["http.server.request.duration", "http.server.active_requests"].concat(
      "http.server.request.body.size",
      "http.server.response.body.size",
    );
    const httpMetrics = (service: string) =>
      receiver.metrics.filter((m) => m.service === service && names.includes(m.name));
    const done = (service: string) =>
      serverSpan(service) !== undefined &&
      receiver.spans.filter((s) => s.service === service).length >= 3 &&
      new Set(httpMetrics(service).map((m) => m.name)).size === 4;
    await waitUntil(
      "both servers' spans and metrics arrive",
      () => done("tsgi") && done("deno-serve"),
    );

    // tsgi's server span: named by the method, the caller's trace continued.
    const ours = serverSpan("tsgi")!;
    assert.equal(ours.name, "POST");
    assert.equal(ours.scope, "tsgi");
    assert.equal(ours.traceId, traces.tsgi);
    assert.equal(ours.parentSpanId, callerSpan);
    const got = attributes(ours);
    assert.equal(got["http.request.method"], "POST");
    assert.equal(Number(got["http.response.status_code"]), 200);
    assert.equal(
      got["url.full"],
      `http://127.0.0.1:${tsgi.port}/p/a%20b?x=1&fetch=${receiver.url}/ping`,
    );
    assert.equal(got["url.path"], "/p/a%20b");
    assert.equal(got["url.query"], `x=1&fetch=${receiver.url}/ping`);
    assert.equal(got["url.scheme"], "http");
    assert.equal(got["client.address"], "127.0.0.1");
    assert.equal(got["server.address"], "127.0.0.1");
    assert.equal(Number(got["server.port"]), tsgi.port);
    assert.equal(got["network.protocol.version"], "1.1");

    // The app's own span and its fetch() are children of the server span.
    const children = receiver.spans.filter((s) => s.service === "tsgi" && s !== ours);
    const appSpan = children.find((s) => s.name === "app-work");
    const fetchSpan = children.find((s) => s.kind === 3);
    assert.ok(appSpan && fetchSpan, JSON.stringify(children));
    for (const child of [appSpan, fetchSpan]) {
      assert.equal(child.traceId, traces.tsgi);
      assert.equal(child.parentSpanId, ours.spanId);
    }

    // Deno.serve's, for the same request: the same name and the same keys, which tsgi adds to.
    const theirs = serverSpan("deno-serve")!;
    assert.equal(theirs.name, ours.name);
    assert.equal(theirs.traceId, traces["deno-serve"]);
    assert.equal(theirs.parentSpanId, callerSpan);
    const theirKeys = Object.keys(attributes(theirs)).sort();
    assert.deepEqual(theirKeys.filter((k) => !(k in got)), []);
    assert.deepEqual(
      Object.keys(got).filter((k) => !theirKeys.includes(k)).sort(),
      ["client.address", "network.protocol.version", "server.address", "server.port"],
    );
    for (const key of ["url.path", "url.query", "url.scheme", "http.request.method"]) {
      assert.equal(got[key], attributes(theirs)[key], key);
    }
    // Each shared key carries the same OTLP value type (intValue, stringValue) as Deno.serve's.
    const types = (span: Span) =>
      Object.fromEntries(span.attributes.map((a) => [a.key, Object.keys(a.value)[0]]));
    const theirTypes = types(theirs);
    const ourTypes = types(ours);
    for (const key of theirKeys) assert.equal(ourTypes[key], theirTypes[key], key);

    // The metrics: the same names, units, kinds, attribute keys and value types.
    const summary = (service: string) => {
      const seen = new Map<string, string>();
      for (const m of httpMetrics(service)) {
        seen.set(m.name, `${m.kind} ${m.unit} [${m.keys.join(", ")}]`);
      }
      return Object.fromEntries([...seen].sort());
    };
    assert.deepEqual(summary("tsgi"), summary("deno-serve"));
    assert.equal(httpMetrics("tsgi")[0].scope, "tsgi");
  } finally {
    await tsgi.stop();
    await denoServe.stop();
    await receiver.server.shutdown();
  }
});

for (
  const [mode, args] of [
    ["--workers 2", ["--workers", "2"]],
    ["--isolate request", ["--isolate", "request", "--spares", "1", "--allow-net=127.0.0.1"]],
  ] as const
) {
  Deno.test(`telemetry under ${mode}: the server span continues the caller's trace, the app's spans are its children`, async () => {
    const receiver = startReceiver();
    const tsgi = await spawnTraced(
      ["run", "-A", MAIN, APP, "--bind", "127.0.0.1:0", ...args],
      "tsgi",
      receiver.url,
    );
    try {
      const trace = "2cf7651916cd43dd8448eb211c80319e";
      const callerSpan = "c7ad6b7169203332";
      const response = await fetch(`http://127.0.0.1:${tsgi.port}/?fetch=${receiver.url}/ping`, {
        headers: { traceparent: `00-${trace}-${callerSpan}-01` },
      });
      assert.equal(await response.text(), "hello world\n");
      const inTrace = () => receiver.spans.filter((s) => s.traceId === trace);
      const server = () => inTrace().find((s) => s.kind === 2);
      await waitUntil(
        "the server span, the app's span and its fetch arrive, and the four metrics",
        () =>
          server() !== undefined && inTrace().length >= 3 &&
          new Set(
              receiver.metrics.filter((m) => m.name.startsWith("http.server.")).map((m) => m.name),
            ).size === 4,
      );
      const ours = server()!;
      assert.equal(ours.name, "GET");
      assert.equal(ours.parentSpanId, callerSpan);
      const appSpan = inTrace().find((s) => s.name === "app-work");
      const fetchSpan = inTrace().find((s) => s.kind === 3);
      assert.ok(appSpan && fetchSpan, JSON.stringify(inTrace()));
      for (const child of [appSpan, fetchSpan]) assert.equal(child.parentSpanId, ours.spanId);
    } catch (error) {
      throw new Error(`${error}\n--- log ---\n${tsgi.log().slice(-3000)}`);
    } finally {
      await tsgi.stop();
      await receiver.server.shutdown();
    }
  });
}
