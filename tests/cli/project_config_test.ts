// A project's own deno.json is used wherever tsgi is run from its folder: by `deno run` of
// tsgi's main.ts and by an installed `tsgi` command (src/cli/project_config.ts).

import assert from "node:assert/strict";
import { withProjectConfig } from "../../src/cli/project_config.ts";
import { fromFileUrl } from "../support/paths.ts";
import { waitUntil } from "../support/process.ts";

const ROOT = fromFileUrl(new URL("../..", import.meta.url)).replace(/\/$/, "");
const MAIN = `${ROOT}/main.ts`;
const deno = "/usr/bin/deno";

Deno.test("the command line gains the project's --config, unless another was chosen", () => {
  const project = "/p/deno.json";
  assert.deepEqual(withProjectConfig([deno, "run", "-A", MAIN, "app.ts"], project), [
    deno,
    "run",
    "-A",
    "--config",
    project,
    MAIN,
    "app.ts",
  ]);
  // tsgi's own config, or the copy `deno install` made of it, gives way to the project's.
  const installed = "/home/u/.deno/bin/.tsgi/deno.json";
  assert.deepEqual(
    withProjectConfig(
      [deno, "run", "--allow-all", "--config", installed, MAIN, "-w", "2"],
      project,
    ),
    [deno, "run", "--allow-all", "--config", project, MAIN, "-w", "2"],
  );
  assert.deepEqual(
    withProjectConfig([deno, "run", "-A", `--config=${ROOT}/deno.json`, MAIN], project),
    [deno, "run", "-A", "--config", project, MAIN],
  );
  assert.deepEqual(withProjectConfig([deno, "run", "--no-config", "-A", MAIN], project), [
    deno,
    "run",
    "-A",
    "--config",
    project,
    MAIN,
  ]);
  // Chosen on purpose, or the project's already: left alone (and so no loop).
  assert.equal(withProjectConfig([deno, "run", "-c", "/other/deno.json", MAIN], project), null);
  assert.equal(withProjectConfig([deno, "run", "--config", project, MAIN], project), null);
  assert.equal(withProjectConfig([deno, "serve", MAIN], project), null);
});

/** A project whose app needs its import map; the app answers with its PID. */
async function makeProject(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "tsgi-own-config-" });
  await Deno.mkdir(`${dir}/lib`);
  await Deno.writeTextFile(`${dir}/deno.json`, '{ "imports": { "greeting": "./lib/g.ts" } }');
  await Deno.writeTextFile(`${dir}/lib/g.ts`, 'export const greet = () => "from the map";\n');
  await Deno.writeTextFile(
    `${dir}/app.ts`,
    'import { greet } from "greeting";\n' +
      "export default (_e: unknown, start: (s: string, h: [string, string][]) => void) => {\n" +
      '  start("200 OK", []);\n  return [`${greet()} ${Deno.pid}`];\n};\n',
  );
  return dir;
}

async function serve(command: string, args: string[], cwd: string) {
  const child = new Deno.Command(command, { args, cwd, stdout: "null", stderr: "piped" }).spawn();
  let log = "";
  const done = (async () => {
    for await (const s of child.stderr.pipeThrough(new TextDecoderStream())) log += s;
  })();
  await waitUntil("it listens", () => /Listening on http:\/\/[^:]+:\d+/.test(log));
  const port = Number(/Listening on http:\/\/[^:]+:(\d+)/.exec(log)![1]);
  const stop = async () => {
    child.kill("SIGTERM");
    await child.status;
    await done;
  };
  return { child, port, stop, log: () => log };
}

Deno.test("`deno run main.ts` in a project folder uses the project's deno.json, same PID", async () => {
  const dir = await makeProject();
  const server = await serve(
    Deno.execPath(),
    ["run", "-A", MAIN, "app.ts", "-b", "127.0.0.1:0"],
    dir,
  );
  try {
    const text = await (await fetch(`http://127.0.0.1:${server.port}/`)).text();
    assert.equal(text, `from the map ${server.child.pid}`, server.log());
  } finally {
    await server.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an installed `tsgi` command serves a project's app with its import map, workers too", async () => {
  const root = await Deno.makeTempDir({ prefix: "tsgi-install-" });
  const dir = await makeProject();
  try {
    const install = await new Deno.Command(Deno.execPath(), {
      args: ["install", "-g", "-A", "-n", "tsgi", "--root", root, MAIN],
      stdout: "null",
      stderr: "piped",
    }).output();
    assert.ok(install.success, new TextDecoder().decode(install.stderr));
    const tsgi = `${root}/bin/tsgi`;
    const version = await new Deno.Command(tsgi, { args: ["--version"], stdout: "piped" }).output();
    assert.match(new TextDecoder().decode(version.stdout), /^tsgi \d+\.\d+\.\d+ \(deno /);
    const server = await serve(tsgi, ["app.ts", "--workers", "2", "-b", "127.0.0.1:0"], dir);
    try {
      const text = await (await fetch(`http://127.0.0.1:${server.port}/`)).text();
      assert.match(text, /^from the map \d+$/, server.log());
    } finally {
      await server.stop();
    }
  } finally {
    await Deno.remove(root, { recursive: true });
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("in tsgi's own folder nothing changes", () => {
  assert.equal(withProjectConfig([deno, "run", "-A", MAIN], `${ROOT}/deno.json`), null);
});
