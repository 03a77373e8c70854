// The results file (bench/results/latest.json) and the medians taken from it. Everything the
// reports need is in the file, so bench/chart.ts can redraw them without rerunning anything.

import type { Metric, Scenario, ScenarioId, ServerId, Target } from "./scenarios.ts";

/** One server's run in one scenario, as recorded. */
export interface RunRecord {
  scenario: ScenarioId;
  server: ServerId;
  repeat: number;
  /** "n/a": the server does not support the scenario (yet); "error": it broke. */
  status: "ok" | "n/a" | "error";
  reason?: string;
  requests?: number;
  requestsPerSec?: number;
  mibPerSec?: number;
  p50Ms?: number | null;
  p99Ms?: number | null;
  socketErrors?: number;
  non2xx?: number;
  rssMiB?: number;
}

export interface Machine {
  nproc: number;
  cpuModel: string;
  os: string;
  deno: string;
  node: string;
  wrk: string;
}

export interface Meta {
  date: string;
  command: string;
  machine: Machine;
  pinned: boolean;
  repeats: number;
  durationSec: number;
  warmupSec: number;
  servers: ServerId[];
  /** The 1-minute load average before the first run; above ~0.5, other work shared the CPUs. */
  loadAtStart: number;
}

export interface Results {
  meta: Meta;
  scenarios: Scenario[];
  runs: RunRecord[];
}

/** Medians over one server's successful repeats in one scenario. */
export interface Cell {
  status: "ok" | "n/a" | "error" | "not run";
  reason?: string;
  runs: number;
  requestsPerSec?: number;
  mibPerSec?: number;
  p50Ms?: number;
  p99Ms?: number;
  rssMiB?: number;
  /** wrk saw socket errors or non-2xx answers in some repeat. */
  hadErrors: boolean;
}

export interface Row {
  scenario: Scenario;
  cells: Partial<Record<ServerId, Cell>>;
  /** tsgi / Deno.serve on the scenario's metric, or null when either is missing. */
  ratio: number | null;
  /** Node / Deno.serve, drawn beside tsgi in the chart for reference. */
  nodeRatio: number | null;
  met: boolean | null;
}

export function median(values: number[]): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function medianOf(runs: RunRecord[], pick: (run: RunRecord) => number | null | undefined) {
  return median(runs.map(pick).filter((v): v is number => typeof v === "number"));
}

/** Summarises one server's runs; a cell is ok when at least one repeat was. */
export function summariseCell(runs: RunRecord[]): Cell {
  if (runs.length === 0) return { status: "not run", runs: 0, hadErrors: false };
  const ok = runs.filter((run) => run.status === "ok");
  if (ok.length === 0) {
    const first = runs[0];
    return { status: first.status, reason: first.reason, runs: 0, hadErrors: false };
  }
  return {
    status: "ok",
    runs: ok.length,
    requestsPerSec: medianOf(ok, (run) => run.requestsPerSec),
    mibPerSec: medianOf(ok, (run) => run.mibPerSec),
    p50Ms: medianOf(ok, (run) => run.p50Ms),
    p99Ms: medianOf(ok, (run) => run.p99Ms),
    rssMiB: medianOf(ok, (run) => run.rssMiB),
    hadErrors: ok.some((run) => (run.socketErrors ?? 0) + (run.non2xx ?? 0) > 0),
  };
}

/** The figure a scenario is judged by. */
export function metricValue(cell: Cell | undefined, metric: Metric): number | undefined {
  if (cell?.status !== "ok") return undefined;
  if (metric === "rps") return cell.requestsPerSec;
  if (metric === "mibps") return cell.mibPerSec;
  return cell.p99Ms;
}

function ratioOf(a: Cell | undefined, b: Cell | undefined, metric: Metric): number | null {
  const x = metricValue(a, metric);
  const y = metricValue(b, metric);
  return x !== undefined && y !== undefined && y > 0 ? x / y : null;
}

export function meetsTarget(ratio: number | null, target: Target | null): boolean | null {
  if (ratio === null || target === null) return null;
  return target.op === ">=" ? ratio >= target.value : ratio <= target.value;
}

/** One row per scenario that has any runs, in the scenario order of the file. */
export function summarise(results: Results): Row[] {
  const rows: Row[] = [];
  for (const scenario of results.scenarios) {
    const runs = results.runs.filter((run) => run.scenario === scenario.id);
    if (runs.length === 0) continue;
    const cells: Partial<Record<ServerId, Cell>> = {};
    for (const server of results.meta.servers) {
      cells[server] = summariseCell(runs.filter((run) => run.server === server));
    }
    const ratio = ratioOf(cells.tsgi, cells.deno, scenario.metric);
    rows.push({
      scenario,
      cells,
      ratio,
      nodeRatio: ratioOf(cells.node, cells.deno, scenario.metric),
      met: meetsTarget(ratio, scenario.target),
    });
  }
  return rows;
}
