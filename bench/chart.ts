// The ratio chart (docs/benchmarks.svg) as hand-written SVG, and the writer of the docs.
// Run directly to redraw docs/benchmarks.svg and docs/benchmarks.md from the saved results:
//   deno run -A bench/chart.ts [bench/results/latest.json]

import { fetchSection, markdownReport } from "./report.ts";
import { type Results, type Row, summarise } from "./summary.ts";

const ROOT = new URL("../", import.meta.url);
export const RESULTS_FILE = new URL("bench/results/latest.json", ROOT);
const SVG_FILE = new URL("docs/benchmarks.svg", ROOT);
const MD_FILE = new URL("docs/benchmarks.md", ROOT);
const FETCH_RESULTS_FILE = new URL("bench/results/fetch.json", ROOT);
const FETCH_SVG_FILE = new URL("docs/benchmarks-fetch.svg", ROOT);

const WIDTH = 720;
const LABEL_WIDTH = 210;
const PLOT_RIGHT = WIDTH - 80;
const BAR = 14;
const GROUP_GAP = 14;
const TOP = 48;
const COLORS = { tsgi: "#2f6fdf", node: "#9aa3ad", target: "#d33", axis: "#333" };

function escapeXml(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;");
}

// Beyond this the axis stops growing and longer bars are cut, with their value still printed,
// so that one outlier (a p99 ten times worse) does not flatten every other bar.
const AXIS_CAP = 4;

/** The largest value the x axis shows: bars, targets and 1.0, plus headroom, up to the cap. */
function axisMax(rows: Row[]): number {
  const values = rows.flatMap((row) => [row.ratio ?? 0, row.nodeRatio ?? 0]);
  const targets = rows.map((row) => row.scenario.target?.value ?? 0);
  const wanted = Math.max(1.2, ...values, ...targets) * 1.1;
  return Math.min(Math.ceil(wanted * 2) / 2, Math.max(AXIS_CAP, ...targets));
}

/** A grid step that gives at most about eight lines. */
function gridStep(max: number): number {
  return [0.25, 0.5, 1, 2].find((step) => max / step <= 8) ?? 5;
}

// Small SVG element builders; numbers are rounded to keep the file short and diffable.
const n = (v: number) => Number(v.toFixed(1));

function rect(x: number, y: number, width: number, height: number, fill: string): string {
  return `<rect x="${n(x)}" y="${n(y)}" width="${n(width)}" height="${n(height)}" fill="${fill}"/>`;
}

function vline(x: number, y1: number, y2: number, stroke: string, extra = ""): string {
  return `<line x1="${n(x)}" x2="${n(x)}" y1="${n(y1)}" y2="${n(y2)}" stroke="${stroke}"${extra}/>`;
}

function text(x: number, y: number, content: string, attributes = ""): string {
  return `<text x="${n(x)}" y="${n(y)}"${attributes}>${escapeXml(content)}</text>`;
}

/** A bar, or "n/a"; the value label is returned apart so it can be drawn above every line. */
function bar(y: number, ratio: number | null, color: string, x: (v: number) => number) {
  if (ratio === null) return { shape: "", label: text(x(0) + 4, y + BAR - 3, "n/a", ' class="v"') };
  const width = Math.max(1, Math.min(x(ratio), PLOT_RIGHT) - x(0));
  const cut = x(ratio) > PLOT_RIGHT ? " →" : "";
  return {
    shape: rect(x(0), y, width, BAR, color),
    label: text(x(0) + width + 4, y + BAR - 3, `${ratio.toFixed(2)}×${cut}`, ' class="v"'),
  };
}

/** One scenario: its name, the tsgi and node:http bars, and tsgi's target as a red tick. */
function group(
  row: Row,
  y: number,
  x: (v: number) => number,
  withNode: boolean,
): { shapes: string; labels: string } {
  const tsgi = bar(y, row.ratio, COLORS.tsgi, x);
  const node = withNode
    ? bar(y + BAR + 2, row.nodeRatio, COLORS.node, x)
    : { shape: "", label: "" };
  const target = row.scenario.target;
  const tick = target
    ? vline(x(target.value), y - 3, y + 2 * BAR + 5, COLORS.target, ' stroke-width="2"')
    : "";
  return {
    shapes: tsgi.shape + node.shape + tick,
    labels: text(LABEL_WIDTH - 8, y + BAR + 2, row.scenario.label, ' text-anchor="end"') +
      tsgi.label +
      node.label,
  };
}

function legend(): string {
  const swatch = (x: number, color: string, label: string) =>
    rect(x - 6, 15, 12, 12, color) + text(x + 10, 26, label);
  const tick = (x: number, color: string, label: string) =>
    vline(x, 14, 28, color, ' stroke-width="2"') + text(x + 10, 26, label);
  return swatch(LABEL_WIDTH, COLORS.tsgi, "tsgi") +
    swatch(LABEL_WIDTH + 70, COLORS.node, "node:http") +
    tick(LABEL_WIDTH + 170, COLORS.target, "tsgi target") +
    text(WIDTH - 10, 26, "ratio to Deno.serve", ' text-anchor="end" class="small"');
}

/** Grouped horizontal bars of each server's ratio to Deno.serve, with a line at 1.0. */
export function renderChart(results: Results): string {
  const rows = summarise(results);
  const max = axisMax(rows);
  const x = (v: number) => LABEL_WIDTH + (v / max) * (PLOT_RIGHT - LABEL_WIDTH);
  const groupHeight = 2 * BAR + 2 + GROUP_GAP;
  const plotBottom = TOP + rows.length * groupHeight;
  const height = plotBottom + 36;
  const grid: string[] = [];
  const step = gridStep(max);
  for (let v = 0; v <= max + 1e-9; v += step) {
    grid.push(vline(x(v), TOP - 8, plotBottom, "#e4e4e4"));
    grid.push(text(x(v), plotBottom + 16, v.toFixed(1), ' text-anchor="middle" class="small"'));
  }
  // A bench run with --servers tsgi,deno has no node:http bars to draw.
  const withNode = results.meta.servers.includes("node");
  const groups = rows.map((row, i) => group(row, TOP + i * groupHeight, x, withNode));
  const one = vline(
    x(1),
    TOP - 8,
    plotBottom,
    COLORS.axis,
    ' stroke-dasharray="4 3" stroke-width="1.5"',
  );
  // Drawn in layers: grid, bars and ticks, the 1.0 line, then every label on top with a halo.
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" ` +
    `viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif" font-size="12">`,
    `<style>.small{font-size:10px;fill:#444}` +
    `.v{font-size:10px;fill:#222;paint-order:stroke;stroke:#fff;stroke-width:3px}</style>`,
    rect(0, 0, WIDTH, height, "#fff"),
    legend(),
    ...grid,
    ...groups.map((g) => g.shapes),
    one,
    text(x(1), plotBottom + 30, "Deno.serve = 1.0", ' text-anchor="middle" class="small"'),
    ...groups.map((g) => g.labels),
    `</svg>`,
    "",
  ].join("\n");
}

/** Formats the generated Markdown with the project's settings so `deno fmt --check` passes. */
async function formatMarkdown(file: URL): Promise<void> {
  const result = await new Deno.Command(Deno.execPath(), {
    args: ["fmt", "--quiet", file.pathname],
    cwd: ROOT.pathname,
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!result.success) {
    console.error(
      `bench: deno fmt failed on ${file.pathname}: ${new TextDecoder().decode(result.stderr)}`,
    );
  }
}

/**
 * Writes docs/benchmarks.svg and docs/benchmarks.md from `results`, with the fetch apps' section
 * (and docs/benchmarks-fetch.svg) from the last `--fetch` run where there is one.
 */
export async function writeDocs(results: Results): Promise<void> {
  await Deno.mkdir(new URL("docs/", ROOT), { recursive: true });
  await Deno.writeTextFile(SVG_FILE, renderChart(results));
  let page = markdownReport(results, "benchmarks.svg");
  const fetched = await readResults(FETCH_RESULTS_FILE);
  if (fetched !== null) {
    await Deno.writeTextFile(FETCH_SVG_FILE, renderChart(fetched));
    page += "\n" + fetchSection(fetched, "benchmarks-fetch.svg");
  }
  await Deno.writeTextFile(MD_FILE, page);
  await formatMarkdown(MD_FILE);
}

/** The results saved in `file`; null when there are none yet. */
export async function readResults(file: URL): Promise<Results | null> {
  try {
    return JSON.parse(await Deno.readTextFile(file));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}

if (import.meta.main) {
  const file = Deno.args[0] ?? RESULTS_FILE.pathname;
  const results: Results = JSON.parse(await Deno.readTextFile(file));
  await writeDocs(results);
  console.log(`Wrote ${MD_FILE.pathname} and its charts from ${file} (and fetch.json, if any)`);
}
