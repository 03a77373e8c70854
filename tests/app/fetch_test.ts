// Fetch apps on tsgi (a real Hono app through a real server and client), and TSGI apps under
// a real Deno.serve through toFetchHandler.

import assert from "node:assert/strict";
import { Hono } from "npm:hono@4";
import { getCookie, setCookie } from "npm:hono@4/cookie";
import { stream as honoStream, streamText } from "npm:hono@4/streaming";
import { toFetchHandler, toTsgiApp } from "../../src/app/fetch/to_tsgi.ts";
import type { App, Body, Environ } from "../../src/tsgi/types.ts";
import { parseResponses, rawExchange, waitFor, withServer } from "../support/server.ts";

const MiB = 1024 * 1024;

function honoApp(): Hono {
  const app = new Hono();
  app.get("/", (c) => c.text("home"));
  app.get("/users/:id/posts/:post", (c) => c.json(c.req.param()));
  app.post(
    "/echo",
    async (c) => c.json({ got: await c.req.json(), type: c.req.header("x-t") }, 201),
  );
  app.get("/cookies", (c) => {
    // Expires holds a comma: joined with ", " the two cookies could not be told apart.
    setCookie(c, "a", "1", { path: "/", expires: new Date(Date.now() + 86_400_000) });
    setCookie(c, "b", "2", { httpOnly: true });
    return c.text("set");
  });
  app.get("/whoami", (c) => c.text(`${getCookie(c, "a")},${getCookie(c, "b")}`));
  app.get("/url", (c) => c.text(c.req.url));
  return app;
}

Deno.test("toTsgiApp() serves Hono routes, params and 404s through the server", async () => {
  await withServer(toTsgiApp(honoApp()), async ({ url }) => {
    const home = await fetch(url + "/");
    assert.equal(home.status, 200);
    assert.equal(home.headers.get("content-type"), "text/plain;charset=UTF-8");
    assert.equal(home.headers.get("content-length"), "4", "a whole body goes with its length");
    assert.equal(await home.text(), "home");
    const params = await fetch(url + "/users/42/posts/hello%20world");
    assert.deepEqual(await params.json(), { id: "42", post: "hello world" });
    const missing = await fetch(url + "/nope");
    assert.equal(missing.status, 404);
    await missing.body?.cancel();
    const head = await fetch(url + "/", { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(await head.text(), "");
  });
});

Deno.test("toTsgiApp() passes JSON bodies both ways and request headers to Hono", async () => {
  await withServer(toTsgiApp(honoApp()), async ({ url }) => {
    const response = await fetch(url + "/echo", {
      method: "POST",
      headers: { "content-type": "application/json", "x-t": "yes" },
      body: JSON.stringify({ list: [1, 2, 3], text: "✓" }),
    });
    assert.equal(response.status, 201);
    assert.equal(response.statusText, "Created");
    assert.deepEqual(await response.json(), { got: { list: [1, 2, 3], text: "✓" }, type: "yes" });
  });
});

Deno.test("toTsgiApp() sends each Set-Cookie on its own line and reads Cookie", async () => {
  await withServer(toTsgiApp(honoApp()), async ({ port }) => {
    const out = await rawExchange(port, [
      "GET /cookies HTTP/1.1\r\nHost: x\r\n\r\n",
      "GET /whoami HTTP/1.1\r\nHost: x\r\nCookie: a=1\r\nCookie: b=2\r\nConnection: close\r\n\r\n",
    ]);
    const lines = out.split("\r\n").filter((line) => /^set-cookie:/i.test(line));
    assert.equal(lines.length, 2);
    assert.match(
      lines[0],
      /^set-cookie: a=1; Path=\/; Expires=\w{3}, \d\d \w{3} \d{4} [\d:]{8} GMT$/,
    );
    assert.equal(lines[1], "set-cookie: b=2; Path=/; HttpOnly");
    assert.equal(parseResponses(out)[1].body, "1,2");
  });
});

Deno.test("toTsgiApp() gives the Request the scheme, Host, SCRIPT_NAME and raw path", async () => {
  const based = new Hono().basePath("/root").get("/url", (c) => c.text(c.req.url));
  await withServer(toTsgiApp(based), async ({ port }) => {
    const out = await rawExchange(port, [
      "GET /root/url?q=%20x HTTP/1.1\r\nHost: example.com:8080\r\nConnection: close\r\n\r\n",
    ]);
    assert.equal(parseResponses(out)[0].body, "http://example.com:8080/root/url?q=%20x");
  }, { rootPath: "/root" });
  const seen: string[] = [];
  const app = toTsgiApp((request) => {
    seen.push(request.url);
    return new Response("ok");
  });
  // A middleware that moved the path on (as mount() does) still yields the whole path.
  const moved: App = (environ, startResponse) =>
    app({ ...environ, SCRIPT_NAME: "/a", PATH_INFO: environ.PATH_INFO.slice(2) }, startResponse);
  await withServer(moved, async ({ port }) => {
    await rawExchange(port, ["GET /a/b%2Fc%3F HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"]);
    await rawExchange(port, [
      "GET http://other/a/x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    ]);
  });
  assert.deepEqual(seen, ["http://h/a/b%2Fc%3F", "http://other/a/x"]);
});

Deno.test("toTsgiApp() streams the response: the first chunk arrives before the app ends", async () => {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const app = new Hono().get("/", (c) =>
    streamText(c, async (stream) => {
      await stream.write("first;");
      await gate;
      await stream.write("second");
    }));
  await withServer(toTsgiApp(app), async ({ url }) => {
    const response = await fetch(url);
    assert.equal(response.headers.get("transfer-encoding"), "chunked");
    const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
    assert.equal((await reader.read()).value, "first;");
    release();
    let rest = "";
    for (let r = await reader.read(); !r.done; r = await reader.read()) rest += r.value;
    assert.equal(rest, "second");
  });
});

Deno.test("toTsgiApp() streams a large upload in and a large download out", async () => {
  const size = 24 * MiB;
  const app = new Hono();
  app.post("/upload", async (c) => {
    let bytes = 0;
    let sum = 0;
    for await (const chunk of c.req.raw.body!) {
      bytes += chunk.length;
      for (let i = 0; i < chunk.length; i += 4096) sum = (sum + chunk[i]) % 65521;
    }
    return c.json({ bytes, sum });
  });
  app.get("/download", (c) =>
    honoStream(c, async (stream) => {
      const piece = new Uint8Array(MiB).fill(7);
      for (let sent = 0; sent < size; sent += piece.length) await stream.write(piece);
    }));
  await withServer(toTsgiApp(app), async ({ url }) => {
    let sent = 0;
    let expectedSum = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent >= size) return controller.close();
        const chunk = new Uint8Array(MiB).map((_, i) => (sent + i) % 251);
        for (let i = 0; i < chunk.length; i += 4096) expectedSum = (expectedSum + chunk[i]) % 65521;
        sent += chunk.length;
        controller.enqueue(chunk);
      },
    });
    const upload = await fetch(url + "/upload", { method: "POST", body });
    assert.deepEqual(await upload.json(), { bytes: size, sum: expectedSum });
    const download = await fetch(url + "/download");
    let received = 0;
    for await (const chunk of download.body!) {
      assert.ok(chunk.every((b) => b === 7));
      received += chunk.length;
    }
    assert.equal(received, size);
  }, { maxBodySize: 64 * MiB });
});

Deno.test("toTsgiApp() answers 413 when the body passes --max-body-size, whatever Hono says", async () => {
  const app = new Hono().onError((_error, c) => c.text("hono error", 500))
    .post("/", async (c) => c.text(String((await c.req.arrayBuffer()).byteLength)));
  await withServer(toTsgiApp(app), async ({ port }) => {
    const out = await rawExchange(port, [
      "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
      "8\r\n12345678\r\n8\r\n12345678\r\n0\r\n\r\n",
    ]);
    assert.equal(parseResponses(out)[0].status, 413);
    const ok = await rawExchange(port, [
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    ]);
    assert.equal(parseResponses(ok)[0].body, "5");
  }, { maxBodySize: 10 });
});

Deno.test("toTsgiApp() aborts request.signal and cancels the stream when the client goes away", async () => {
  let aborted = false;
  let cancelled = false;
  let silentCancelled = false;
  let entered = 0;
  const app = new Hono();
  app.get("/endless", (c) => {
    entered++;
    c.req.raw.signal.addEventListener("abort", () => (aborted = true));
    return new Response(
      new ReadableStream({
        async pull(controller) {
          controller.enqueue(new Uint8Array(16 * 1024));
          await new Promise((resolve) => setTimeout(resolve, 5));
        },
        cancel: () => void (cancelled = true),
      }),
    );
  });
  // Says nothing at all: only the disconnect watch can notice the client left.
  app.get("/silent", () => {
    entered++;
    return new Response(new ReadableStream({ cancel: () => void (silentCancelled = true) }));
  });
  await withServer(toTsgiApp(app), async ({ port }) => {
    for (const path of ["/endless", "/silent"]) {
      const before = entered;
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      await conn.write(new TextEncoder().encode(`GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`));
      if (path === "/endless") await conn.read(new Uint8Array(1024));
      else assert.ok(await waitFor(() => entered > before));
      conn.close();
    }
    assert.ok(await waitFor(() => aborted), "request.signal aborted");
    assert.ok(await waitFor(() => cancelled), "the response stream was cancelled");
    assert.ok(await waitFor(() => silentCancelled), "a silent stream was cancelled too");
  });
});

Deno.test("toTsgiApp() takes a plain handler and passes the peer as Deno.serve's info", async () => {
  const app = toTsgiApp((request, info) =>
    new Response(`${request.method} ${info.remoteAddr.hostname} ${typeof info.remoteAddr.port}`)
  );
  await withServer(app, async ({ url }) => {
    assert.equal(await (await fetch(url, { method: "PATCH" })).text(), "PATCH 127.0.0.1 number");
  });
});

// --- toFetchHandler: TSGI apps under Deno.serve ------------------------------------------

async function withDenoServe(
  handler: (request: Request, info: Deno.ServeHandlerInfo) => Promise<Response>,
  fn: (url: string) => Promise<void>,
): Promise<void> {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, handler);
  try {
    await fn(`http://127.0.0.1:${server.addr.port}`);
  } finally {
    await server.shutdown();
  }
}

Deno.test("toFetchHandler() runs a TSGI app under Deno.serve with a full environ", async () => {
  let seen: Environ | undefined;
  const app: App = async (environ, startResponse) => {
    seen = environ;
    const body = await environ["tsgi.input"].read();
    startResponse("200 OK", [["Content-Type", "text/plain"], ["Set-Cookie", "a=1"], [
      "Set-Cookie",
      "b=2",
    ]]);
    return [`${environ.REQUEST_METHOD} ${environ.PATH_INFO} ${body.length}`];
  };
  await withDenoServe(toFetchHandler(app, { scriptName: "/app" }), async (url) => {
    const response = await fetch(url + "/app/a%20b?x=1", {
      method: "POST",
      headers: { "X-Thing": "yes", "X-A_B": "dropped", "content-type": "text/plain" },
      body: "hello",
    });
    assert.equal(await response.text(), "POST /a b 5");
    assert.deepEqual(response.headers.getSetCookie(), ["a=1", "b=2"]);
    const env = seen as Environ;
    assert.equal(env.SCRIPT_NAME, "/app");
    assert.equal(env.QUERY_STRING, "x=1");
    assert.equal(env.RAW_URI, "/app/a%20b?x=1");
    assert.equal(env.HTTP_X_THING, "yes");
    assert.equal(env.HTTP_X_A_B, undefined);
    assert.equal(env.CONTENT_TYPE, "text/plain");
    assert.equal(env.SERVER_NAME, "127.0.0.1");
    assert.equal(env.REMOTE_ADDR, "127.0.0.1");
    assert.deepEqual(env["tsgi.version"], [1, 0]);
  });
});

Deno.test("toFetchHandler() streams bodies both ways and calls close() exactly once", async () => {
  const closes: string[] = [];
  const app: App = async (environ, startResponse) => {
    const path = environ.PATH_INFO;
    startResponse("200 OK", [["Content-Type", "text/plain"]]);
    if (path === "/lines") {
      const lines: string[] = [];
      for await (const line of environ["tsgi.input"]) lines.push(new TextDecoder().decode(line));
      return Object.assign([JSON.stringify(lines)], { close: () => closes.push(path) });
    }
    const write = startResponse("200 OK", [], new Error("replace before sending"));
    write("legacy;");
    return {
      async *[Symbol.asyncIterator]() {
        for (let i = 0; i < 64; i++) yield new Uint8Array(256 * 1024).fill(1);
      },
      close: () => closes.push(path),
    } as Body;
  };
  await withDenoServe(toFetchHandler(app), async (url) => {
    const lines = await fetch(url + "/lines", { method: "POST", body: "a\nbb\nccc" });
    assert.deepEqual(JSON.parse(await lines.text()), ["a\n", "bb\n", "ccc"]);
    const big = await fetch(url + "/big");
    const bytes = new Uint8Array(await big.arrayBuffer());
    assert.equal(new TextDecoder().decode(bytes.subarray(0, 7)), "legacy;");
    assert.equal(bytes.length, 7 + 64 * 256 * 1024);
    assert.ok(await waitFor(() => closes.length === 2));
    assert.deepEqual(closes.sort(), ["/big", "/lines"]);
  });
});

Deno.test("toFetchHandler() answers 500 for a failing app and keeps its details private", async () => {
  const errors: string[] = [];
  const app: App = (environ, startResponse) => {
    if (environ.PATH_INFO === "/throw") throw new Error("secret detail");
    if (environ.PATH_INFO === "/twice") {
      startResponse("200 OK", []);
      startResponse("201 Created", []);
    }
    startResponse("200", []);
    return ["never"];
  };
  const sink = { write: (s: string) => void errors.push(s), writelines() {}, flush() {} };
  await withDenoServe(toFetchHandler(app, { errors: sink }), async (url) => {
    for (const path of ["/throw", "/twice", "/bad-status"]) {
      const response = await fetch(url + path);
      assert.equal(response.status, 500, path);
      assert.ok(!(await response.text()).includes("secret"));
    }
  });
  assert.match(errors.join(""), /secret detail/);
  assert.match(errors.join(""), /second time without excInfo/);
  assert.match(errors.join(""), /Invalid status "200"/);
});

Deno.test("toFetchHandler(toTsgiApp(hono)) round-trips a Hono app under Deno.serve", async () => {
  await withDenoServe(toFetchHandler(toTsgiApp(honoApp())), async (url) => {
    assert.deepEqual(await (await fetch(url + "/users/1/posts/2")).json(), { id: "1", post: "2" });
    const cookies = await fetch(url + "/cookies");
    assert.equal(cookies.headers.getSetCookie().length, 2);
    await cookies.body?.cancel();
  });
});

Deno.test("toTsgiApp(): an empty Host gives the server's address, not the path's first segment", async () => {
  const app = toTsgiApp((request) => new Response(new URL(request.url).host));
  await withServer(app, async ({ port }) => {
    const wire = await rawExchange(port, [
      "GET /evil.example/x HTTP/1.1\r\nHost:\r\nConnection: close\r\n\r\n",
    ]);
    const [response] = parseResponses(wire);
    assert.equal(response.status, 200);
    assert.equal(response.body, `127.0.0.1:${port}`);
  });
});
