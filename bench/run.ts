// `deno task bench`: tsgi against Deno.serve and node:http under wrk.
//
//   deno run -A bench/run.ts [--quick] [--repeats N] [--duration S] [--warmup S]
//                            [--only hello,close,...] [--servers tsgi,deno,node] [--no-pin]
//                            [--fetch]
//
// Each run starts a fresh server process, waits until it answers, checks the route gives the
// right answer, warms it up, measures with wrk, reads its RSS and stops it. Repeats are
// interleaved (tsgi, Deno.serve, node:http, tsgi, ...) so that drift in the machine's speed
// falls on every server alike. Writes bench/results/latest.json, docs/benchmarks.md and
// docs/benchmarks.svg.

import { readResults, RESULTS_FILE, writeDocs } from "./chart.ts";
import { describeMachine, loadAverage } from "./machine.ts";
import {
  freePort,
  probe,
  type ServerProcess,
  spawnServer,
  stopAll,
  stopServer,
  treeRssMiB,
  waitReady,
} from "./process.ts";
import { consoleTable } from "./report.ts";
import {
  ALL_SERVERS,
  asFetchScenarios,
  type Scenario,
  type ScenarioId,
  SCENARIOS,
  SERVER_NAMES,
  type ServerId,
} from "./scenarios.ts";
import type { Results, RunRecord } from "./summary.ts";
import { ensureWrk, hasTaskset, killWrk, runWrk, type WrkResult } from "./wrk.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const SERVER_CPU = 0;
const WRK_CPU = 1;
// tsgi's CLI exits with 2 on a usage error, e.g. a flag it does not know yet.
const USAGE_EXIT = 2;

interface Options {
  repeats: number;
  durationSec: number;
  warmupSec: number;
  scenarios: Scenario[];
  servers: ServerId[];
  pin: boolean;
  /** tsgi serves the peers' fetch handler in every scenario (issue 15's comparison). */
  fetch: boolean;
  /** V8 flags for tsgi only (docs/performance.md, the young generation); the run is not kept. */
  tsgiV8Flags: string | null;
  /** --only left scenarios out: the run is a probe, not kept either. */
  onlySome: boolean;
}

/** Where --fetch runs go: the table of record (latest.json, docs/benchmarks.md) is TSGI apps. */
const FETCH_RESULTS_FILE = new URL("fetch.json", RESULTS_FILE);

const USAGE = `Usage: deno run -A bench/run.ts [options]
  --quick               1 repeat of 2 s (default: 3 repeats of 5 s)
  --repeats N           repeats per server and scenario
  --duration S          seconds of measurement per run (whole seconds)
  --warmup S            seconds of unmeasured load before each run (default 1)
  --only a,b            scenarios: ${SCENARIOS.map((s) => s.id).join(",")} (a partial run
                        prints its table and writes no results file)
  --servers a,b         servers: ${ALL_SERVERS.join(",")} (without tsgi and deno, likewise)
  --no-pin              do not pin server and wrk to CPUs with taskset
  --fetch               tsgi serves apps/bench_fetch.ts, the handler Deno.serve runs, in every
                        scenario; writes bench/results/fetch.json only
  --tsgi-v8-flags F     runs tsgi with --v8-flags=F (e.g. --max-semi-space-size=3); prints
                        the table and writes no results file`;

function usageError(message: string): never {
  console.error(`bench: ${message}\n${USAGE}`);
  Deno.exit(2);
}

function positiveInt(flag: string, value: string | undefined, min: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) {
    usageError(`${flag} needs a whole number ≥ ${min}, got "${value}"`);
  }
  return n;
}

function pickList<T extends string>(
  flag: string,
  value: string | undefined,
  known: readonly T[],
): T[] {
  const names = (value ?? "").split(",").map((s) => s.trim()).filter(Boolean);
  const unknown = names.filter((name) => !known.includes(name as T));
  if (names.length === 0 || unknown.length > 0) {
    usageError(`${flag}: unknown "${unknown.join(",") || value}"; choose from ${known.join(",")}`);
  }
  return known.filter((name) => names.includes(name));
}

export function parseOptions(args: string[]): Options {
  const options: Options = {
    repeats: 3,
    durationSec: 5,
    warmupSec: 1,
    scenarios: [...SCENARIOS],
    servers: [...ALL_SERVERS],
    pin: true,
    fetch: false,
    tsgiV8Flags: null,
    onlySome: false,
  };
  const ids = SCENARIOS.map((s) => s.id);
  for (let i = 0; i < args.length; i++) {
    const flag = args[i];
    if (flag === "--help" || flag === "-h") {
      console.log(USAGE);
      Deno.exit(0);
    } else if (flag === "--quick") {
      options.repeats = 1;
      options.durationSec = 2;
    } else if (flag === "--repeats") options.repeats = positiveInt(flag, args[++i], 1);
    else if (flag === "--duration") options.durationSec = positiveInt(flag, args[++i], 1);
    else if (flag === "--warmup") options.warmupSec = positiveInt(flag, args[++i], 0);
    else if (flag === "--only") {
      const only: ScenarioId[] = pickList(flag, args[++i], ids);
      options.scenarios = SCENARIOS.filter((s) => only.includes(s.id));
      options.onlySome = options.scenarios.length < SCENARIOS.length;
    } else if (flag === "--servers") options.servers = pickList(flag, args[++i], ALL_SERVERS);
    else if (flag === "--no-pin") options.pin = false;
    else if (flag === "--fetch") options.fetch = true;
    else if (flag === "--tsgi-v8-flags") {
      const value = args[++i];
      if (!value || value.startsWith("--v8-flags")) {
        usageError(`${flag} needs V8 flags, e.g. --max-semi-space-size=3`);
      }
      options.tsgiV8Flags = value;
    } else usageError(`unknown option "${flag}"`);
  }
  if (options.fetch) options.scenarios = asFetchScenarios(options.scenarios);
  return options;
}

/** The command line of one server, pinned to a CPU with taskset when `cpu` is set. */
function serverArgv(
  server: ServerId,
  scenario: Scenario,
  port: number,
  cpu: number | null,
  v8Flags: string | null,
): string[] {
  const deno = Deno.execPath();
  let argv: string[];
  if (server === "tsgi") {
    argv = [
      deno,
      "run",
      ...(v8Flags === null ? [] : [`--v8-flags=${v8Flags}`]),
      "-A",
      "main.ts",
      scenario.tsgiApp,
      "--bind",
      `127.0.0.1:${port}`,
      "--access-log",
      "off",
      ...scenario.tsgiFlags,
    ];
  } else if (server === "deno") {
    argv = [deno, "run", "-A", "bench/peers/deno_serve.ts", String(port)];
  } else argv = ["node", "bench/peers/node_http.mjs", String(port)];
  return cpu === null ? argv : ["taskset", "-c", String(cpu), ...argv];
}

/** The request that proves the route works, and the body it must answer with. */
function routeCheck(
  scenario: Scenario,
): { method: string; body?: Uint8Array; expect: (b: Uint8Array) => boolean } {
  if (scenario.path === "/1m") return { method: "GET", expect: (b) => b.length === 1024 * 1024 };
  if (scenario.path === "/upload") {
    return {
      method: "POST",
      body: new Uint8Array(1000).fill(0x78),
      expect: (b) => new TextDecoder().decode(b) === "1000",
    };
  }
  return { method: "GET", expect: (b) => new TextDecoder().decode(b) === "Hello, World!" };
}

/** Returns why the route misbehaves, or null when it answers as the peers do. */
async function checkRoute(scenario: Scenario, port: number): Promise<string | null> {
  const check = routeCheck(scenario);
  const response = await probe(port, check.method, scenario.path, check.body);
  if (response.status !== 200) {
    return `${check.method} ${scenario.path} answered ${response.status}`;
  }
  if (!check.expect(response.body)) {
    return `${check.method} ${scenario.path} answered an unexpected body of ${response.body.length} bytes`;
  }
  return null;
}

function failed(
  base: Pick<RunRecord, "scenario" | "server" | "repeat">,
  status: "n/a" | "error",
  reason: string,
): RunRecord {
  return { ...base, status, reason };
}

function measured(
  base: Pick<RunRecord, "scenario" | "server" | "repeat">,
  scenario: Scenario,
  wrk: WrkResult,
  rssMiB: number,
): RunRecord {
  const e = wrk.socketErrors;
  return {
    ...base,
    status: "ok",
    requests: wrk.requests,
    requestsPerSec: wrk.requestsPerSec,
    // wrk counts only bytes read; an upload's throughput is its request bodies.
    mibPerSec: scenario.uploadMiB ? wrk.requestsPerSec * scenario.uploadMiB : wrk.readMiBPerSec,
    p50Ms: wrk.p50Ms,
    p99Ms: wrk.p99Ms,
    socketErrors: e.connect + e.read + e.write + e.timeout,
    non2xx: wrk.non2xx,
    rssMiB: Math.round(rssMiB * 10) / 10,
  };
}

/**
 * A tsgi feature that is not there yet is "n/a", not a failure of the whole bench: an unknown
 * flag (exit 2), or a fetch app the server will not load or serve.
 */
function unsupported(server: ServerId, scenario: Scenario, exitCode: number | null): boolean {
  if (server !== "tsgi") return false;
  return exitCode === USAGE_EXIT || (scenario.id === "fetch" && exitCode !== null);
}

async function measure(
  proc: ServerProcess,
  port: number,
  base: Pick<RunRecord, "scenario" | "server" | "repeat">,
  scenario: Scenario,
  options: Options,
  wrkCpu: number | null,
): Promise<RunRecord> {
  const ready = await waitReady(proc, port);
  if (!ready.ready) {
    const status = unsupported(base.server, scenario, ready.exitCode) ? "n/a" : "error";
    const exit = ready.exitCode === null ? "" : `exited with status ${ready.exitCode}: `;
    return failed(base, status, exit + ready.reason);
  }
  const wrong = await checkRoute(scenario, port);
  if (wrong) {
    return failed(base, base.server === "tsgi" && scenario.id === "fetch" ? "n/a" : "error", wrong);
  }
  const url = `http://127.0.0.1:${port}${scenario.path}`;
  const script = scenario.script ? `${ROOT}bench/lua/${scenario.script}` : undefined;
  const load = { url, connections: scenario.connections, script, cpu: wrkCpu };
  if (options.warmupSec > 0) await runWrk({ ...load, durationSec: options.warmupSec });
  const { result } = await runWrk({ ...load, durationSec: options.durationSec });
  // Read before stopping: the figure is the server's footprint under this load.
  const rss = treeRssMiB(proc.pid);
  if (proc.exitCode() !== null) {
    return failed(
      base,
      "error",
      `exited with status ${proc.exitCode()} during the run: ${proc.outputTail()}`,
    );
  }
  if (result.requests === 0) return failed(base, "error", "wrk completed no requests");
  return measured(base, scenario, result, rss);
}

/** One server, one scenario, one repeat: start, measure, stop. */
async function runOnce(
  server: ServerId,
  scenario: Scenario,
  repeat: number,
  options: Options,
): Promise<RunRecord> {
  const base = { scenario: scenario.id, server, repeat };
  if (server === "tsgi" && !exists(`${ROOT}main.ts`)) {
    return failed(base, "error", "main.ts does not exist yet");
  }
  const port = freePort();
  const serverCpu = options.pin && scenario.pinServer ? SERVER_CPU : null;
  const proc = spawnServer(
    serverArgv(server, scenario, port, serverCpu, options.tsgiV8Flags),
    ROOT,
  );
  try {
    return await measure(proc, port, base, scenario, options, options.pin ? WRK_CPU : null);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    return failed(base, "error", `${message}\n${proc.outputTail()}`.trim());
  } finally {
    await stopServer(proc);
  }
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

function describeRun(record: RunRecord): string {
  if (record.status !== "ok") {
    return `${record.status}: ${
      (record.reason ?? "").split("\n").slice(0, 3).join(" / ").slice(0, 240)
    }`;
  }
  const errors = (record.socketErrors ?? 0) + (record.non2xx ?? 0);
  return [
    `${Math.round(record.requestsPerSec ?? 0)} req/s`,
    `${(record.mibPerSec ?? 0).toFixed(1)} MiB/s`,
    `p50 ${record.p50Ms?.toFixed(2)} ms`,
    `p99 ${record.p99Ms?.toFixed(2)} ms`,
    `RSS ${record.rssMiB} MiB`,
    ...(errors ? [`${record.socketErrors} socket errors, ${record.non2xx} non-2xx`] : []),
  ].join(", ");
}

async function main(): Promise<void> {
  const options = parseOptions(Deno.args);
  await ensureWrk();
  const canPin = options.pin && navigator.hardwareConcurrency >= 2 && await hasTaskset();
  options.pin = canPin;
  Deno.addSignalListener("SIGINT", () => {
    killWrk();
    stopAll().finally(() => Deno.exit(130));
  });
  const command = ["deno run -A bench/run.ts", ...Deno.args].join(" ");
  console.log(`bench: ${command}`);
  console.log(
    canPin
      ? `bench: pinning single-process servers to CPU ${SERVER_CPU} and wrk to CPU ${WRK_CPU} (taskset)`
      : "bench: no CPU pinning (taskset missing, fewer than 2 CPUs, or --no-pin)",
  );
  const load = loadAverage();
  if (load > 0.5) {
    console.log(
      `bench: warning: load average is ${load} before starting; other work will add noise`,
    );
  }
  const results: Results = {
    meta: {
      date: new Date().toISOString(),
      command,
      machine: await describeMachine(),
      pinned: canPin,
      repeats: options.repeats,
      durationSec: options.durationSec,
      warmupSec: options.warmupSec,
      servers: options.servers,
      loadAtStart: load,
    },
    scenarios: options.scenarios,
    runs: [],
  };
  for (const scenario of options.scenarios) {
    for (let repeat = 1; repeat <= options.repeats; repeat++) {
      for (const server of options.servers) {
        const record = await runOnce(server, scenario, repeat, options);
        results.runs.push(record);
        console.log(
          `[${scenario.id} ${repeat}/${options.repeats}] ${SERVER_NAMES[server]}: ${
            describeRun(record)
          }`,
        );
      }
    }
  }
  // A partial run is a probe, not the table of record: writing it would drop the rest.
  const partial = options.onlySome || !options.servers.includes("tsgi") ||
    !options.servers.includes("deno");
  if (options.tsgiV8Flags !== null || partial) {
    const why = partial
      ? "not every scenario and server ran"
      : `tsgi ran with --v8-flags=${options.tsgiV8Flags}`;
    console.log(`\n${consoleTable(results)}\n\nbench: ${why}; no file written`);
    return;
  }
  const file = options.fetch ? FETCH_RESULTS_FILE : RESULTS_FILE;
  await Deno.mkdir(new URL("./", file), { recursive: true });
  await Deno.writeTextFile(file, JSON.stringify(results, null, 2) + "\n");
  // The page shows both runs: the table of record (latest.json) and the last --fetch run.
  const ofRecord = options.fetch ? await readResults(RESULTS_FILE) : results;
  if (ofRecord !== null) await writeDocs(ofRecord);
  console.log(`\n${consoleTable(results)}\n`);
  const docs = ofRecord === null ? "" : ", docs/benchmarks.md and its charts";
  console.log(`bench: wrote ${file.pathname}${docs}`);
}

if (import.meta.main) await main();
