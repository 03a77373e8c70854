// OpenTelemetry for each request, as `deno serve` emits it under OTEL_DENO=true: one server span
// named by the method, and the four HTTP server metrics, through Deno.telemetry (no npm
// dependency). An incoming traceparent continues the caller's trace, and the span is the active
// one while the app runs, so the app's own spans and its fetch() calls are its children.
// With telemetry off, openTelemetry() is null and the connection checks one field per request.

import type { Environ } from "../tsgi/types.ts";

/** The part of Deno's OpenTelemetry API used here (Deno.telemetry is typed `any`). */
interface OtelContext {
  setValue(key: symbol, value: unknown): OtelContext;
}

interface OtelSpan {
  setAttribute(key: string, value: Attribute): unknown;
  setStatus(status: { code: number; message?: string }): unknown;
  end(): void;
}

interface OtelTracer {
  startSpan(
    name: string,
    options: { kind: number; attributes: Record<string, Attribute> },
    context: OtelContext,
  ): OtelSpan;
}

interface OtelContextManager {
  active(): OtelContext;
  with<T>(context: OtelContext, fn: () => T): T;
}

interface OtelInstrument {
  record(value: number, attributes: Record<string, Attribute>): void;
}

interface OtelCounter {
  add(value: number, attributes: Record<string, Attribute>): void;
}

interface OtelMeter {
  createHistogram(name: string, options: MetricOptions): OtelInstrument;
  createUpDownCounter(name: string, options: MetricOptions): OtelCounter;
}

interface MetricOptions {
  description: string;
  unit: string;
  advice?: { explicitBucketBoundaries: number[] };
}

interface TextMapPropagator {
  extract(context: OtelContext, carrier: Carrier, getter: typeof CARRIER_GETTER): OtelContext;
  inject(context: OtelContext, carrier: Carrier, setter: typeof CARRIER_SETTER): void;
}

/** What Deno installs at Symbol.for("opentelemetry.js.api.1"): each part only when enabled. */
interface OtelGlobal {
  trace?: unknown;
  metrics?: unknown;
  propagation?: TextMapPropagator;
}

/** A bigint goes out as an OTLP intValue (a number would be a doubleValue), as Deno's own. */
type Attribute = string | number | bigint;

type Carrier = Record<string, string | undefined>;

const OTEL_API = Symbol.for("opentelemetry.js.api.1");
/** The key under which @opentelemetry/api (and Deno) keep the active span in a context. */
const SPAN_KEY = Symbol.for("OpenTelemetry Context Key SPAN");
const SPAN_KIND_SERVER = 1;
const STATUS_ERROR = 2;

const CARRIER_GETTER = {
  keys: (carrier: Carrier): string[] => Object.keys(carrier),
  get: (carrier: Carrier, key: string): string | undefined => carrier[key],
};

const CARRIER_SETTER = {
  set: (carrier: Carrier, key: string, value: string): void => {
    carrier[key] = value;
  },
};

/** Deno.serve's buckets (Deno 2.9.6), the semantic conventions' defaults. */
const DURATION_BUCKETS = [
  0.005,
  0.01,
  0.025,
  0.05,
  0.075,
  0.1,
  0.25,
  0.5,
  0.75,
  1,
  2.5,
  5,
  7.5,
  10,
];
const SIZE_BUCKETS = [0, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];

/**
 * The server's telemetry when Deno's is enabled (OTEL_DENO=true, which is what makes Deno
 * install its API on the global), null otherwise: null costs nothing per request.
 */
export function openTelemetry(): Telemetry | null {
  const api = (globalThis as Record<symbol, unknown>)[OTEL_API] as OtelGlobal | undefined;
  const tracing = api?.trace !== undefined;
  const metrics = api?.metrics !== undefined;
  if (!tracing && !metrics) return null;
  return new Telemetry(tracing, metrics, api?.propagation ?? null);
}

/** The tracer and the instruments, made once per server. */
export class Telemetry {
  readonly tracer: OtelTracer | null;
  readonly contexts: OtelContextManager;
  readonly propagation: TextMapPropagator | null;
  readonly duration: OtelInstrument | null = null;
  readonly active: OtelCounter | null = null;
  readonly requestSize: OtelInstrument | null = null;
  readonly responseSize: OtelInstrument | null = null;

  constructor(tracing: boolean, metrics: boolean, propagation: TextMapPropagator | null) {
    const telemetry = Deno.telemetry;
    this.contexts = telemetry.contextManager as OtelContextManager;
    this.propagation = propagation;
    this.tracer = tracing ? telemetry.tracerProvider.getTracer("tsgi") as OtelTracer : null;
    if (!metrics) return;
    const meter = telemetry.meterProvider.getMeter("tsgi") as OtelMeter;
    this.duration = meter.createHistogram("http.server.request.duration", {
      description: "Duration of HTTP server requests.",
      unit: "s",
      advice: { explicitBucketBoundaries: DURATION_BUCKETS },
    });
    this.active = meter.createUpDownCounter("http.server.active_requests", {
      description: "Number of active HTTP server requests.",
      unit: "{request}",
    });
    this.requestSize = meter.createHistogram("http.server.request.body.size", {
      description: "Size of HTTP server request bodies.",
      unit: "By",
      advice: { explicitBucketBoundaries: SIZE_BUCKETS },
    });
    this.responseSize = meter.createHistogram("http.server.response.body.size", {
      description: "Size of HTTP server response bodies.",
      unit: "By",
      advice: { explicitBucketBoundaries: SIZE_BUCKETS },
    });
  }

  /**
   * A request begins, its environ built (forwarding headers applied): its span starts, and it
   * counts as active. `requestBodySize` is the Content-Length, or -1 when none is known.
   */
  start(environ: Environ, requestBodySize: number): RequestTelemetry {
    return new RequestTelemetry(this, environ, requestBodySize);
  }
}

/** One request's span and measurements, from the app's call to the access log line. */
export class RequestTelemetry {
  readonly #telemetry: Telemetry;
  readonly #began = performance.now();
  readonly #span: OtelSpan | null = null;
  /** The context the app runs in: the caller's, with this request's span in it. */
  readonly #context: OtelContext | null = null;
  readonly #method: string;
  readonly #scheme: string;
  readonly #version: string;
  readonly #requestBodySize: number;

  constructor(telemetry: Telemetry, environ: Environ, requestBodySize: number) {
    this.#telemetry = telemetry;
    const method = this.#method = environ.REQUEST_METHOD;
    const scheme = this.#scheme = environ["tsgi.url_scheme"];
    this.#version = environ.SERVER_PROTOCOL === "HTTP/1.0" ? "1.0" : "1.1";
    this.#requestBodySize = requestBodySize;
    telemetry.active?.add(1, { "http.request.method": method, "url.scheme": scheme });
    const tracer = telemetry.tracer;
    if (tracer === null) return;
    let parent = telemetry.contexts.active();
    const traceparent = environ.HTTP_TRACEPARENT as string | undefined;
    if (traceparent !== undefined && telemetry.propagation !== null) {
      const carrier: Carrier = { traceparent, tracestate: environ.HTTP_TRACESTATE as string };
      parent = telemetry.propagation.extract(parent, carrier, CARRIER_GETTER);
    }
    const span = this.#span = tracer.startSpan(method, {
      kind: SPAN_KIND_SERVER,
      attributes: spanAttributes(environ, method, scheme, this.#version),
    }, parent);
    this.#context = parent.setValue(SPAN_KEY, span);
  }

  /** Runs `fn` (the app's call) with this request's span active. */
  run<T>(fn: () => T): T {
    const context = this.#context;
    return context === null ? fn() : this.#telemetry.contexts.with(context, fn);
  }

  /** The response is done (or the connection is): the span ends, the metrics record it. */
  /** The connection ended before the response did: an error span, no status, one less active. */
  abandon(): void {
    this.#span?.setStatus({ code: STATUS_ERROR, message: "connection ended before the response" });
    this.#span?.end();
    this.#telemetry.active?.add(-1, {
      "http.request.method": this.#method,
      "url.scheme": this.#scheme,
    });
  }

  end(status: number, responseBodySize: number): void {
    const telemetry = this.#telemetry;
    const span = this.#span;
    if (span !== null) {
      // A string on the span, as Deno.serve (2.9) sends it, so that queries written for an
      // app under `deno serve` keep working; the metrics carry it as an int, as Deno's do.
      span.setAttribute("http.response.status_code", String(status));
      // Semantic conventions: a server span is an error for 5xx only.
      if (status >= 500) span.setStatus({ code: STATUS_ERROR });
      span.end();
    }
    if (telemetry.active === null) return;
    const method = this.#method;
    const scheme = this.#scheme;
    telemetry.active.add(-1, { "http.request.method": method, "url.scheme": scheme });
    const attributes = {
      "http.request.method": method,
      "http.response.status_code": BigInt(status),
      "network.protocol.version": this.#version,
      "url.scheme": scheme,
    };
    telemetry.duration?.record((performance.now() - this.#began) / 1000, attributes);
    if (this.#requestBodySize >= 0) {
      telemetry.requestSize?.record(this.#requestBodySize, attributes);
    }
    telemetry.responseSize?.record(responseBodySize, attributes);
  }
}

function spanAttributes(
  environ: Environ,
  method: string,
  scheme: string,
  version: string,
): Record<string, Attribute> {
  const target = environ.RAW_URI as string;
  const [hostName, hostPort] = hostOf(environ, scheme);
  let full: string;
  if (target.startsWith("/")) {
    const port = hostPort === defaultPort(scheme) ? "" : `:${hostPort}`;
    full = `${scheme}://${bracketed(hostName)}${port}${target}`;
  } else full = target; // absolute-form, or "*"
  // The path as sent (still percent-encoded), as a URL's pathname is.
  const q = target.indexOf("?");
  let path = q < 0 ? target : target.slice(0, q);
  if (!path.startsWith("/")) {
    const slash = path.indexOf("/", path.indexOf("//") + 2);
    path = slash < 0 || path.indexOf("//") < 0 ? "/" : path.slice(slash);
  }
  const attributes: Record<string, Attribute> = {
    "http.request.method": method,
    "url.full": full,
    "url.path": path,
    "url.query": environ.QUERY_STRING,
    "url.scheme": scheme,
    "client.address": environ.REMOTE_ADDR,
    "server.address": hostName,
    "network.protocol.version": version,
  };
  const port = Number(hostPort);
  if (Number.isInteger(port) && port > 0) attributes["server.port"] = BigInt(port);
  return attributes;
}

/** The host and port the client asked for: Host, or the server's own address without one. */
function hostOf(environ: Environ, scheme: string): [string, string] {
  const host = environ.HTTP_HOST as string | undefined;
  if (host === undefined || host === "") {
    return [environ.SERVER_NAME as string, environ.SERVER_PORT as string];
  }
  const colon = host.lastIndexOf(":");
  if (colon > host.lastIndexOf("]")) {
    return [unbracketed(host.slice(0, colon)), host.slice(colon + 1)];
  }
  return [unbracketed(host), defaultPort(scheme)];
}

function defaultPort(scheme: string): string {
  return scheme === "https" ? "443" : "80";
}

function unbracketed(host: string): string {
  return host.startsWith("[") ? host.slice(1, -1) : host;
}

function bracketed(host: string): string {
  return host.includes(":") ? `[${host}]` : host;
}

/** Deno's OpenTelemetry API where tracing is on (OTEL_DENO=true), else null. */
function tracingApi(): { propagation: TextMapPropagator; contexts: OtelContextManager } | null {
  const api = (globalThis as Record<symbol, unknown>)[OTEL_API] as OtelGlobal | undefined;
  if (api?.trace === undefined || api.propagation === undefined) return null;
  return { propagation: api.propagation, contexts: Deno.telemetry.contextManager };
}

/**
 * The active trace context (the request's server span, inside the app's call) as W3C
 * traceparent/tracestate values, for a process that runs the app elsewhere: an isolated
 * child continues it. Null with tracing off.
 */
export function activeTraceHeaders(): Record<string, string> | null {
  const api = tracingApi();
  if (api === null) return null;
  const carrier: Carrier = {};
  api.propagation.inject(api.contexts.active(), carrier, CARRIER_SETTER);
  return carrier.traceparent === undefined ? null : carrier as Record<string, string>;
}

/** Runs `fn` inside the trace context `headers` carry (from activeTraceHeaders), where on. */
export function withTraceHeaders<T>(headers: Record<string, string> | undefined, fn: () => T): T {
  const api = headers === undefined ? null : tracingApi();
  if (api === null) return fn();
  const context = api.propagation.extract(api.contexts.active(), headers!, CARRIER_GETTER);
  return api.contexts.with(context, fn);
}
