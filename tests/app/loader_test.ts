// loadApp() with --app-factory and --validate, and the CLI's exit status for a bad factory.

import assert from "node:assert/strict";
import { AppLoadError, loadApp } from "../../src/app/loader.ts";
import * as factories from "../fixtures/factory.ts";
import { parseResponses, rawExchange, withServer } from "../support/server.ts";
import { fromFileUrl } from "../support/paths.ts";

const FIXTURE = "tests/fixtures/factory.ts";
const ROOT = fromFileUrl(new URL("../..", import.meta.url));
const GET = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

Deno.test("loadApp() with appFactory calls the factory once and serves what it built", async () => {
  const before = factories.builds;
  const { app, kind } = await loadApp(`${ROOT}/${FIXTURE}`, { appFactory: true });
  assert.equal(kind, "tsgi");
  assert.equal(factories.builds, before + 1);
  await withServer(app, async ({ url }) => {
    assert.equal(await (await fetch(url)).text(), `built once (${before + 1})`);
    assert.equal(await (await fetch(url)).text(), `built once (${before + 1})`);
  });
  assert.equal(factories.builds, before + 1, "not called again per request");
  const fetchApp = await loadApp(`${ROOT}/${FIXTURE}:makeFetchApp`, { appFactory: true });
  assert.equal(fetchApp.kind, "fetch");
  await withServer(fetchApp.app, async ({ url }) => {
    assert.equal(await (await fetch(url)).text(), "fetch app from a factory");
  });
});

Deno.test("loadApp() turns a factory's failures into one-line AppLoadErrors", async () => {
  const cases: [string, RegExp][] = [
    [
      "failing",
      /^App factory .*factory\.ts:failing failed: cannot open database \(at .*factory\.ts:\d+:\d+\)$/,
    ],
    ["notAnApp", /^The app .*:notAnApp built is not an app: .* got number$/],
    ["notAFactory", /:notAFactory is not an app factory: expected a function, got string$/],
  ];
  for (const [name, message] of cases) {
    await assert.rejects(
      loadApp(`${ROOT}/${FIXTURE}:${name}`, { appFactory: true }),
      (error) => error instanceof AppLoadError && message.test(error.message),
      name,
    );
  }
});

Deno.test("loadApp() with validate wraps the app: a breach is a 500 naming the rule", async () => {
  const { app } = await loadApp(`${ROOT}/${FIXTURE}:brokenApp`, { validate: true });
  await withServer(app, async ({ port, errors }) => {
    assert.equal(parseResponses(await rawExchange(port, [GET]))[0].status, 500);
    assert.match(errors.text, /TSGI rule "header-hop-by-hop" broken/);
  }, { validate: false });
});

Deno.test("tsgi --app-factory exits with status 2 and one line when the factory fails", async () => {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "main.ts", `${FIXTURE}:failing`, "--app-factory", "--bind", "127.0.0.1:0"],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(output.code, 2);
  assert.equal(
    new TextDecoder().decode(output.stderr),
    `tsgi: App factory ${FIXTURE}:failing failed: cannot open database (at ${FIXTURE}:21:9)\n`,
  );
});
