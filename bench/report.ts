// The results as a console table and as docs/benchmarks.md.

import { SERVER_NAMES, type ServerId, type Target } from "./scenarios.ts";
import type { Cell, Results, Row } from "./summary.ts";
import { summarise } from "./summary.ts";

const int = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
const two = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });

/** The measured figure of a cell, e.g. "52,310 req/s" or "0.21 / 0.85 ms". */
export function formatFigure(cell: Cell | undefined, row: Row, repeats: number): string {
  if (!cell || cell.status === "not run") return "—";
  if (cell.status !== "ok") return cell.status;
  // A median over fewer repeats than asked for says so, e.g. "(2/3 runs)".
  const mark = (cell.hadErrors ? "*" : "") +
    (cell.runs < repeats ? ` (${cell.runs}/${repeats} runs)` : "");
  if (row.scenario.metric === "p99") {
    return `${two.format(cell.p50Ms ?? NaN)} / ${two.format(cell.p99Ms ?? NaN)} ms${mark}`;
  }
  if (row.scenario.metric === "mibps") {
    return `${int.format(cell.mibPerSec ?? NaN)} MiB/s, ${
      int.format(cell.requestsPerSec ?? NaN)
    } req/s${mark}`;
  }
  return `${int.format(cell.requestsPerSec ?? NaN)} req/s${mark}`;
}

export function formatRss(cell: Cell | undefined): string {
  return cell?.status === "ok" && cell.rssMiB !== undefined ? `${int.format(cell.rssMiB)}` : "";
}

export function formatTarget(target: Target | null): string {
  return target ? `${target.op === ">=" ? "≥" : "≤"} ${target.value.toFixed(2)}` : "—";
}

export function formatRatio(row: Row): string {
  return row.ratio === null ? "n/a" : `${row.ratio.toFixed(2)}×`;
}

export function formatMet(row: Row): string {
  if (row.met === null) return row.scenario.target ? "n/a" : "—";
  return row.met ? "met" : "not met";
}

/** Header and body cells of the results table, shared by the console and Markdown forms. */
export function tableCells(results: Results): { header: string[]; body: string[][] } {
  const servers: ServerId[] = results.meta.servers;
  const header = ["scenario"];
  for (const server of servers) header.push(SERVER_NAMES[server], "RSS MiB");
  const hasRatio = servers.includes("tsgi") && servers.includes("deno");
  if (hasRatio) header.push("tsgi / Deno.serve", "target", "met?");
  const body = summarise(results).map((row) => {
    const line = [row.scenario.title];
    for (const server of servers) {
      const cell = row.cells[server];
      line.push(formatFigure(cell, row, results.meta.repeats), formatRss(cell));
    }
    if (hasRatio) line.push(formatRatio(row), formatTarget(row.scenario.target), formatMet(row));
    return line;
  });
  return { header, body };
}

/** A fixed-width table for the terminal. */
export function consoleTable(results: Results): string {
  const { header, body } = tableCells(results);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((line) => line[i].length)));
  const render = (line: string[]) =>
    line.map((text, i) => (i === 0 ? text.padEnd(widths[i]) : text.padStart(widths[i])))
      .join("  ").trimEnd();
  return [render(header), widths.map((w) => "-".repeat(w)).join("  "), ...body.map(render)]
    .join("\n");
}

function markdownTable(results: Results): string {
  const { header, body } = tableCells(results);
  const escape = (text: string) => text.replaceAll("|", "\\|");
  const line = (cells: string[]) => `| ${cells.map(escape).join(" | ")} |`;
  const rule = `|${header.map((_, i) => (i === 0 ? " --- " : " ---: ")).join("|")}|`;
  return [line(header), rule, ...body.map(line)].join("\n");
}

/** Why runs were n/a or failed, one line each, so that a reader need not rerun to find out. */
function failureNotes(results: Results): string[] {
  const titles = new Map(results.scenarios.map((s) => [s.id, s.title]));
  return results.runs.filter((run) => run.status !== "ok").map((run) => {
    const reason = (run.reason ?? "").split("\n").map((l) => l.trim()).filter(Boolean).slice(0, 3)
      .join(" / ");
    return `- ${titles.get(run.scenario)}, ${SERVER_NAMES[run.server]}, repeat ${run.repeat}: ` +
      `${run.status}` + (reason ? ` — \`${reason.slice(0, 300).replaceAll("`", "'")}\`` : "");
  });
}

/**
 * The section on fetch apps (`bench/run.ts --fetch`: tsgi serves the very handler Deno.serve
 * runs, in every scenario), from its own run; `chartFile` as for markdownReport.
 */
export function fetchSection(results: Results, chartFile: string): string {
  const { meta } = results;
  return [
    "## Fetch apps",
    "",
    `tsgi serving \`apps/bench_fetch.ts\`, the module Deno.serve runs, in each scenario (issue 15's`,
    `comparison). Its own run: ${meta.date}, \`${meta.command}\`; load average before it`,
    `${meta.loadAtStart ?? "not recorded"}.`,
    "",
    markdownTable(results),
    "",
    `![a fetch app on tsgi relative to Deno.serve](${chartFile})`,
    "",
  ].join("\n");
}

/** docs/benchmarks.md; `chartFile` is the SVG's path relative to the Markdown file. */
export function markdownReport(results: Results, chartFile: string): string {
  const { meta } = results;
  const m = meta.machine;
  const notes = failureNotes(results);
  return [
    "# Benchmarks",
    "",
    "Generated by `bench/run.ts` (`deno task bench`); regenerate this page from",
    "`bench/results/latest.json` with `deno run -A bench/chart.ts`.",
    "",
    `- Date: ${meta.date}`,
    `- Machine: ${m.nproc} CPUs, ${m.cpuModel}, ${m.os}`,
    `- Deno ${m.deno}, Node ${m.node}, ${m.wrk}`,
    `- Command: \`${meta.command}\``,
    `- Method: every server is a fresh child process per run on 127.0.0.1; ` +
    `${meta.warmupSec} s of warm-up, then \`wrk -t1\` for ${meta.durationSec} s; ` +
    `${meta.repeats} repeat(s) interleaved tsgi, Deno.serve, node:http; medians shown.`,
    `- CPU pinning: ${
      meta.pinned
        ? "server on CPU 0, wrk on CPU 1 (taskset); the workers scenario leaves the server unpinned"
        : "none"
    }`,
    "- RSS: VmRSS of the server process and its children, read as each run ends.",
    `- Load average before the first run: ${meta.loadAtStart ?? "not recorded"}` +
    (meta.loadAtStart > 0.5 ? " (other work was running; expect noise)" : ""),
    "",
    "## Results",
    "",
    markdownTable(results),
    "",
    "Ratios are tsgi over Deno.serve on the scenario's figure: requests/s, MiB/s, or for the",
    "latency row p99 (lower is better). `*` marks a median over runs where wrk reported socket",
    "errors or non-2xx responses; `(n/R runs)` a median over fewer repeats than were run, the",
    "others having failed (see below).",
    "",
    `![tsgi and node:http relative to Deno.serve](${chartFile})`,
    "",
    ...(notes.length ? ["## Runs that failed or do not apply", "", ...notes, ""] : []),
  ].join("\n");
}
