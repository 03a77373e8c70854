// What is measured: the servers under test and the scenarios, as data. bench/run.ts runs the
// cross product; bench/report.ts and bench/chart.ts only read the results JSON.

export type ServerId = "tsgi" | "deno" | "node";

export type ScenarioId =
  | "hello"
  | "close"
  | "pipeline"
  | "download"
  | "upload"
  | "latency"
  | "fetch"
  | "workers";

/** Which figure a scenario is judged by; the ratio to Deno.serve is taken on it. */
export type Metric = "rps" | "mibps" | "p99";

/** A goal for the tsgi / Deno.serve ratio: at least (throughput) or at most (latency). */
export interface Target {
  op: ">=" | "<=";
  value: number;
}

export interface Scenario {
  id: ScenarioId;
  title: string;
  /** A few words for the chart's axis. */
  label: string;
  path: string;
  connections: number;
  /** A file in bench/lua/, or none for plain GETs. */
  script?: string;
  metric: Metric;
  /** For uploads, wrk reports only bytes read; MiB/s is req/s times this body size. */
  uploadMiB?: number;
  /** The tsgi app module and extra flags; the peers always run their one app. */
  tsgiApp: string;
  tsgiFlags: string[];
  /** False when the server runs several processes, which pinning to one CPU would defeat. */
  pinServer: boolean;
  target: Target | null;
}

export const SERVER_NAMES: Readonly<Record<ServerId, string>> = {
  tsgi: "tsgi",
  deno: "Deno.serve",
  node: "node:http",
};

export const ALL_SERVERS: readonly ServerId[] = ["tsgi", "deno", "node"];

const APP = "apps/bench_app.ts";
/** The handler bench/peers/deno_serve.ts serves, as a fetch app for tsgi. */
const FETCH_APP = "apps/bench_fetch.ts";

export const SCENARIOS: readonly Scenario[] = [
  {
    id: "hello",
    label: "hello, keep-alive",
    title: "hello, keep-alive, 50 conns",
    path: "/",
    connections: 50,
    metric: "rps",
    tsgiApp: APP,
    tsgiFlags: [],
    pinServer: true,
    target: { op: ">=", value: 1.0 },
  },
  {
    id: "close",
    label: "new connection per request",
    title: "hello, new connection per request, 50 conns",
    path: "/",
    connections: 50,
    script: "close.lua",
    metric: "rps",
    tsgiApp: APP,
    tsgiFlags: [],
    pinServer: true,
    target: { op: ">=", value: 1.0 },
  },
  {
    id: "pipeline",
    label: "16 pipelined per write",
    title: "hello, 16 pipelined per write, 50 conns",
    path: "/",
    connections: 50,
    script: "pipeline.lua",
    metric: "rps",
    tsgiApp: APP,
    tsgiFlags: [],
    pinServer: true,
    target: { op: ">=", value: 3.0 },
  },
  {
    id: "download",
    label: "1 MiB responses (MiB/s)",
    title: "1 MiB responses, 10 conns",
    path: "/1m",
    connections: 10,
    metric: "mibps",
    tsgiApp: APP,
    tsgiFlags: [],
    pinServer: true,
    target: { op: ">=", value: 1.3 },
  },
  {
    id: "upload",
    label: "1 MiB uploads (MiB/s)",
    title: "1 MiB uploads, 10 conns",
    path: "/upload",
    connections: 10,
    script: "upload.lua",
    metric: "mibps",
    uploadMiB: 1,
    tsgiApp: APP,
    tsgiFlags: [],
    pinServer: true,
    target: { op: ">=", value: 1.5 },
  },
  {
    id: "latency",
    label: "p99 latency (lower is better)",
    title: "latency p50/p99, hello, 10 conns",
    path: "/",
    connections: 10,
    metric: "p99",
    tsgiApp: APP,
    tsgiFlags: [],
    pinServer: true,
    target: { op: "<=", value: 1.2 },
  },
  {
    id: "fetch",
    label: "fetch-app hello",
    title: "fetch-app hello, 50 conns",
    path: "/",
    connections: 50,
    metric: "rps",
    tsgiApp: FETCH_APP,
    tsgiFlags: [],
    pinServer: true,
    target: { op: ">=", value: 0.85 },
  },
  {
    id: "workers",
    label: "--workers 2 (peers: 1 process)",
    title: "hello, tsgi --workers 2 (peers: 1 process), 50 conns",
    path: "/",
    connections: 50,
    metric: "rps",
    tsgiApp: APP,
    tsgiFlags: ["--workers", "2"],
    pinServer: false,
    target: null,
  },
];

/** Issue 15's goals for fetch apps, against Deno.serve running the same handler. */
const FETCH_TARGETS: Partial<Record<ScenarioId, Target>> = {
  hello: { op: ">=", value: 0.9 },
  close: { op: ">=", value: 1.0 },
  pipeline: { op: ">=", value: 2.0 },
  download: { op: ">=", value: 1.5 },
  upload: { op: ">=", value: 1.0 },
  latency: { op: "<=", value: 2.0 },
  fetch: { op: ">=", value: 0.9 },
};

/**
 * `bench/run.ts --fetch`: the same scenarios with tsgi serving the fetch handler Deno.serve
 * runs (apps/bench_fetch.ts), judged by the fetch targets. The workers scenario has none.
 */
export function asFetchScenarios(scenarios: readonly Scenario[]): Scenario[] {
  return scenarios.filter((s) => s.id !== "workers").map((s) => ({
    ...s,
    title: `fetch app: ${s.title}`,
    tsgiApp: FETCH_APP,
    target: FETCH_TARGETS[s.id] ?? null,
  }));
}
