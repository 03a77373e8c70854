// tsgi in a user's own project: a folder with its own deno.json (an import map), lock file
// and .env, served from that folder in each mode. Every process tsgi starts must run with the
// flags the user gave the first one (src/process/runtime_flags.ts).

import assert from "node:assert/strict";
import { fromFileUrl } from "../support/paths.ts";
import { waitUntil } from "../support/process.ts";

const MAIN = fromFileUrl(new URL("../../main.ts", import.meta.url));

/** A project in a temporary folder: `greeting` is a bare specifier only its import map knows. */
async function makeProject(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "tsgi-project-" });
  await Deno.mkdir(`${dir}/lib`);
  await Deno.writeTextFile(
    `${dir}/deno.json`,
    JSON.stringify({ imports: { greeting: "./lib/greeting.ts" } }),
  );
  await Deno.writeTextFile(`${dir}/.env`, "GREETING_NAME=project\n");
  await Deno.writeTextFile(
    `${dir}/lib/greeting.ts`,
    "export const greet = (name: string) => `hello from ${name}`;\n",
  );
  await Deno.writeTextFile(
    `${dir}/app.ts`,
    `import { greet } from "greeting";
export default (_environ: unknown, startResponse: (s: string, h: [string, string][]) => void) => {
  startResponse("200 OK", [["Content-Type", "text/plain"]]);
  return [greet(Deno.env.get("GREETING_NAME") ?? "nowhere") + " " + Deno.pid];
};
`,
  );
  return dir;
}

/** Runs `deno run -A --config deno.json --env-file=.env main.ts app.ts …` in `dir`. */
async function serveProject(dir: string, args: string[]) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", "deno.json", "--env-file=.env", MAIN, "app.ts", ...args],
    cwd: dir,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let log = "";
  const logDone = (async () => {
    for await (const s of child.stderr.pipeThrough(new TextDecoderStream())) log += s;
  })();
  await waitUntil("the server listens", () => /Listening on http:\/\/[^:]+:\d+/.test(log));
  const port = Number(/Listening on http:\/\/[^:]+:(\d+)/.exec(log)![1]);
  return { child, port, log: () => log, logDone };
}

// An isolated child gets no environment it is not granted (docs/isolation.md).
const ISOLATED = ["--isolate", "request", "--allow-env=GREETING_NAME"];
for (const mode of [[], ["--workers", "2"], ["--reload"], ISOLATED]) {
  const name = mode.length === 0 ? "a single process" : mode.join(" ");
  Deno.test(`a project's deno.json import map and .env reach the app: ${name}`, async () => {
    const dir = await makeProject();
    const server = await serveProject(dir, ["-b", "127.0.0.1:0", "--access-log", "off", ...mode]);
    try {
      const pids = new Set<string>();
      for (let i = 0; i < 6; i++) {
        const response = await fetch(`http://127.0.0.1:${server.port}/`);
        const text = await response.text();
        assert.equal(response.status, 200, `${text}\n${server.log()}`);
        assert.match(text, /^hello from project \d+$/);
        pids.add(text.split(" ").pop()!);
      }
      // Workers and isolated children are other processes than the master.
      if (mode.length > 0) assert.ok(!pids.has(String(server.child.pid)), "served elsewhere");
    } finally {
      server.child.kill("SIGTERM");
      await server.child.status;
      await server.logDone;
      await Deno.remove(dir, { recursive: true });
    }
  });
}
