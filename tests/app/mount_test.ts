// mount(): prefix dispatch through a real server, SCRIPT_NAME / PATH_INFO as each app sees them.

import assert from "node:assert/strict";
import { Hono } from "npm:hono@4";
import { mount } from "../../src/app/mount.ts";
import type { App } from "../../src/tsgi/types.ts";
import { withServer } from "../support/server.ts";

/** Answers "name SCRIPT_NAME|PATH_INFO". */
function named(name: string): App {
  return (environ, startResponse) => {
    startResponse("200 OK", [["Content-Type", "text/plain"]]);
    return [`${name} ${environ.SCRIPT_NAME}|${environ.PATH_INFO}`];
  };
}

async function get(url: string): Promise<[number, string]> {
  const response = await fetch(url);
  return [response.status, await response.text()];
}

Deno.test("mount() dispatches by the longest prefix and moves it into SCRIPT_NAME", async () => {
  const app = mount({ "/api": named("api"), "/api/v2/": named("v2"), "/": named("site") });
  await withServer(app, async ({ url }) => {
    assert.deepEqual(await get(url + "/api/users"), [200, "api /api|/users"]);
    assert.deepEqual(await get(url + "/api/v2/users"), [200, "v2 /api/v2|/users"]);
    assert.deepEqual(await get(url + "/api"), [200, "api /api|"]);
    assert.deepEqual(await get(url + "/api/"), [200, "api /api|/"]);
    assert.deepEqual(await get(url + "/api/v2"), [200, "v2 /api/v2|"]);
    assert.deepEqual(await get(url + "/"), [200, "site |/"]);
    assert.deepEqual(await get(url + "/about"), [200, "site |/about"]);
  });
});

Deno.test("mount() matches whole segments only: /apix is not under /api", async () => {
  await withServer(mount({ "/api": named("api"), "/": named("site") }), async ({ url }) => {
    assert.deepEqual(await get(url + "/apix"), [200, "site |/apix"]);
    assert.deepEqual(await get(url + "/api%20x"), [200, "site |/api x"]);
  });
});

Deno.test("mount() answers 404 when no prefix matches", async () => {
  await withServer(mount({ "/api": named("api") }), async ({ url }) => {
    const [status, body] = await get(url + "/elsewhere");
    assert.equal(status, 404);
    assert.equal(body, "Not Found\n");
  });
});

Deno.test("mount() adds to an existing SCRIPT_NAME and nests", async () => {
  const app = mount({ "/a": mount({ "/b": named("inner") }) });
  await withServer(app, async ({ url }) => {
    assert.deepEqual(await get(url + "/root/a/b/c"), [200, "inner /root/a/b|/c"]);
  }, { rootPath: "/root" });
});

Deno.test("mount() takes fetch apps, which see the whole path", async () => {
  const hono = new Hono().basePath("/hono").get("/hi/:name", (c) => c.text(c.req.param("name")));
  await withServer(mount({ "/hono": hono, "/": named("site") }), async ({ url }) => {
    assert.deepEqual(await get(url + "/hono/hi/ann"), [200, "ann"]);
  });
});

Deno.test("mount() refuses a prefix without a leading slash and a non-app", () => {
  assert.throws(() => mount({ api: named("api") }), /must start with "\/"/);
  assert.throws(() => mount({ "/x": 42 as unknown as App }), /not an app/);
});
