// The layout stays true: src/ is one folder per layer, imports point down only, and no two
// modules import each other, however indirectly. The graph is Deno's own (`deno info --json`).

import assert from "node:assert/strict";
import { fromFileUrl } from "./support/paths.ts";

const ROOT = fromFileUrl(new URL("..", import.meta.url)).replace(/\/$/, "");

/**
 * The layers, lowest first. A module may import from its own layer and those below; layers
 * that share a rank (the pool and isolation) may not import each other.
 */
const LAYERS: string[][] = [
  ["http"],
  ["tsgi"],
  ["server"],
  ["app"],
  ["process"],
  ["pool", "isolate"],
  ["cli"],
];

type Graph = Map<string, string[]>;

/** src/ modules reached from the entries, each with the src/ modules it imports. */
async function srcGraph(entries: string[]): Promise<Graph> {
  const graph: Graph = new Map();
  for (const entry of entries) {
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json", entry],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
    const info = JSON.parse(new TextDecoder().decode(output.stdout));
    for (const module of info.modules) {
      const from = srcPath(module.specifier);
      if (from === null) continue;
      const targets = new Set<string>(graph.get(from) ?? []);
      for (const dependency of module.dependencies ?? []) {
        for (const kind of ["code", "type"]) {
          const to = srcPath(dependency[kind]?.specifier);
          if (to !== null) targets.add(to);
        }
      }
      graph.set(from, [...targets].sort());
    }
  }
  return graph;
}

function srcPath(specifier: string | undefined): string | null {
  const prefix = `file://${ROOT}/src/`;
  return specifier?.startsWith(prefix) ? "src/" + specifier.slice(prefix.length) : null;
}

/** The rank of a module's layer; -1 for a module outside every layer folder. */
function rankOf(path: string): number {
  const folder = path.split("/")[1];
  return LAYERS.findIndex((layer) => layer.includes(folder));
}

/** Every import that points up, or sideways between two layers of one rank. */
export function upwardImports(graph: Graph): string[] {
  const wrong: string[] = [];
  for (const [from, targets] of graph) {
    for (const to of targets) {
      const [a, b] = [rankOf(from), rankOf(to)];
      const sideways = a === b && from.split("/")[1] !== to.split("/")[1];
      if (b > a || sideways) wrong.push(`${from} -> ${to}`);
    }
  }
  return wrong;
}

/** The import cycles, each as its modules (Tarjan's strongly connected components). */
export function cycles(graph: Graph): string[][] {
  let index = 0;
  const indices = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (node: string) => {
    indices.set(node, index);
    low.set(node, index++);
    stack.push(node);
    onStack.add(node);
    for (const next of graph.get(node) ?? []) {
      if (!indices.has(next)) {
        visit(next);
        low.set(node, Math.min(low.get(node)!, low.get(next)!));
      } else if (onStack.has(next)) low.set(node, Math.min(low.get(node)!, indices.get(next)!));
    }
    if (low.get(node) === indices.get(node)) {
      const component: string[] = [];
      let member: string;
      do {
        member = stack.pop()!;
        onStack.delete(member);
        component.push(member);
      } while (member !== node);
      if (component.length > 1 || (graph.get(node) ?? []).includes(node)) found.push(component);
    }
  };
  for (const node of graph.keys()) if (!indices.has(node)) visit(node);
  return found;
}

Deno.test("every module in src/ lives in a layer's folder", async () => {
  const loose: string[] = [];
  for await (const entry of Deno.readDir(`${ROOT}/src`)) {
    if (entry.isFile) loose.push(`src/${entry.name}`);
    else if (rankOf(`src/${entry.name}/x.ts`) < 0) loose.push(`src/${entry.name}/`);
  }
  assert.deepEqual(loose, []);
});

Deno.test("imports in src/ point down the layers only, with no cycle", async () => {
  const graph = await srcGraph(["main.ts", "mod.ts", "src/isolate/child.ts"]);
  assert.ok(graph.size > 30, `only ${graph.size} modules reached`);
  assert.deepEqual(upwardImports(graph), []);
  assert.deepEqual(cycles(graph), []);
});

Deno.test("the layout checks catch an upward import and a cycle", () => {
  const graph: Graph = new Map([
    ["src/http/parser.ts", ["src/server/log.ts"]],
    ["src/server/log.ts", ["src/server/clock.ts"]],
    ["src/server/clock.ts", ["src/server/log.ts"]],
    ["src/pool/master.ts", ["src/isolate/frames.ts"]],
  ]);
  assert.deepEqual(upwardImports(graph), [
    "src/http/parser.ts -> src/server/log.ts",
    "src/pool/master.ts -> src/isolate/frames.ts",
  ]);
  assert.deepEqual(cycles(graph), [["src/server/clock.ts", "src/server/log.ts"]]);
});
