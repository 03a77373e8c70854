// --reload and HUP with a broken app, as a user meets them: a real `deno run main.ts` master
// serving a temporary copy of an app, its source edited on disk, real connections. Nothing
// sleeps to synchronise: every wait polls a condition against a deadline.

import assert from "node:assert/strict";
import { type Spawned, spawnServer, stopServer, waitUntil as poll } from "../support/process.ts";
import { get, MAIN, ROOT } from "../support/pool.ts";

function appSource(body: string): string {
  return `export default function app(_environ: unknown, startResponse: ` +
    `(status: string, headers: [string, string][]) => void) {\n` +
    `  startResponse("200 OK", [["Content-Type", "text/plain"]]);\n` +
    `  return [${JSON.stringify(body)}];\n}\n`;
}

const BROKEN = "export default function app( {\n  this is not TypeScript\n";

/** Polls `check` every 25 ms, for 30 s unless told. */
function waitUntil(what: string, check: () => boolean | Promise<boolean>, ms = 30_000) {
  return poll(what, check, ms, 25);
}

/** Polls until the server answers `body`; failures on the way are retried. */
async function waitForBody(port: number, body: string): Promise<void> {
  let last = "";
  await waitUntil(`the server answers ${JSON.stringify(body)} (last: ${last})`, async () => {
    try {
      last = await get(port);
    } catch (error) {
      last = String(error);
    }
    return last === body;
  });
}

function start(args: string[]): Promise<Spawned> {
  return spawnServer(Deno.execPath(), [
    "run",
    "-A",
    MAIN,
    ...args,
    "-b",
    "127.0.0.1:0",
    "--access-log",
    "off",
  ], { cwd: ROOT, deadlineMs: 30_000 });
}

const stop = stopServer;

/** How many times `pattern` occurs in the log. */
function count(server: Spawned, pattern: RegExp): number {
  return [...server.log().matchAll(new RegExp(pattern, "g"))].length;
}

Deno.test("--reload serves each edit; a broken edit logs the error and the last good app serves", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tsgi-reload-" });
  const app = `${dir}/app.ts`;
  await Deno.writeTextFile(app, appSource("v1"));
  const server = await start([app, "--reload"]);
  try {
    assert.match(server.log(), /Reload: watching /);
    assert.equal(await get(server.port), "v1");

    await Deno.writeTextFile(app, appSource("v2"));
    await waitForBody(server.port, "v2");
    assert.match(server.log(), /app\.ts changed: starting 1 fresh worker/);

    // A file that is not source changes nothing.
    const reloads = count(server, /changed: starting/);
    await Deno.writeTextFile(`${dir}/notes.txt`, "not code");

    const failures = count(server, /\(pid \d+\) failed to boot/);
    await Deno.writeTextFile(app, BROKEN);
    await waitUntil("the broken edit's error is logged", () => {
      return count(server, /failed to boot: Cannot import .*app\.ts/) > failures;
    });
    // The worker that imported v2 is still the one serving.
    for (let i = 0; i < 5; i++) assert.equal(await get(server.port), "v2");
    assert.equal(count(server, /changed: starting/), reloads + 1, "notes.txt reloaded nothing");
    // One try, then the next save is waited for: the same broken file is not retried.
    await waitUntil("the reload is given up", () => /Replacement given up/.test(server.log()));
    assert.equal(count(server, /\(pid \d+\) failed to boot/), failures + 1);

    await Deno.writeTextFile(app, appSource("v3"));
    await waitForBody(server.port, "v3");
  } finally {
    const status = await stop(server);
    await Deno.remove(dir, { recursive: true });
    assert.equal(status.code, 0, server.log());
  }
});

Deno.test("HUP with an app that no longer boots keeps the old workers, then gives up", async () => {
  const dir = await Deno.makeTempDir({ prefix: "tsgi-hup-" });
  const app = `${dir}/app.ts`;
  await Deno.writeTextFile(app, appSource("v1"));
  const server = await start([app, "--workers", "2"]);
  try {
    await waitUntil(
      "2 workers are ready",
      () => count(server, /Worker \d+ \(pid \d+\) ready/) === 2,
    );
    await Deno.writeTextFile(app, BROKEN);
    server.child.kill("SIGHUP");
    let served = 0;
    await waitUntil("the replacement is given up", async () => {
      // Every request on the way is answered by an old worker.
      assert.equal(await get(server.port), "v1");
      served++;
      return /Replacement given up after 5 failed boots/.test(server.log());
    });
    assert.ok(served > 0);
    assert.match(server.log(), /2 worker\(s\) keep serving the app they loaded/);
    // Given up: no more boots are attempted, nothing is retired.
    const boots = count(server, /booting/);
    assert.equal(count(server, /Worker [12] \(pid \d+\) exited/), 0);
    for (let i = 0; i < 5; i++) assert.equal(await get(server.port), "v1");
    assert.equal(count(server, /booting/), boots);

    // Fixed, and HUP again: the fresh workers boot at once (no backoff left over) and serve.
    await Deno.writeTextFile(app, appSource("v2"));
    server.child.kill("SIGHUP");
    await waitForBody(server.port, "v2");
    await waitUntil("the old workers are gone", () => {
      return count(server, /Worker [12] \(pid \d+\) exited/) === 2;
    });
    assert.ok(count(server, /booting/) >= boots + 2);
  } finally {
    const status = await stop(server);
    await Deno.remove(dir, { recursive: true });
    assert.equal(status.code, 0, server.log());
  }
});
