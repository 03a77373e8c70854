// The Request a fetch app gets from tsgi (built lazily, src/app/fetch/lazy_request.ts) is a
// real Request: every property and body reader, clone(), new Request(it), fetch(it), over real
// sockets, the same for the methods built the public way.

import assert from "node:assert/strict";
import { toTsgiApp } from "../../src/app/fetch/to_tsgi.ts";
import type { App } from "../../src/tsgi/types.ts";
import { lazyRequestsWork } from "../../src/app/fetch/lazy_request.ts";
import { parseResponses, rawExchange, withServer } from "../support/server.ts";

type Handler = (request: Request) => Response | Promise<Response>;

/** Serves `handler` through tsgi; `fn` gets the base URL. */
async function withFetchApp(
  handler: Handler,
  fn: (url: string, port: number) => Promise<void>,
): Promise<void> {
  await withServer(toTsgiApp(handler), ({ url, port }) => fn(url, port));
}

/** The first Request the handler saw, with what `inspect` made of it, as JSON. */
async function inspectOne(
  inspect: (request: Request) => unknown | Promise<unknown>,
  send: (url: string) => Promise<Response>,
): Promise<unknown> {
  let seen: unknown;
  await withFetchApp(async (request) => {
    seen = await inspect(request);
    return new Response("ok");
  }, async (url) => {
    const response = await send(url);
    assert.equal(await response.text(), "ok");
  });
  return seen;
}

Deno.test("fetch Request: this runtime's Requests are built lazily", () => {
  // Not a behaviour (the public constructor serves as well), but a runtime whose internals
  // moved would otherwise lose the fast path without a word.
  assert.ok(lazyRequestsWork(), "the runtime's Request internals changed: see lazy_request.ts");
});

Deno.test("fetch Request: a real Request with method, url, headers and signal", async () => {
  const seen = await inspectOne((request) => ({
    isRequest: request instanceof Request,
    tag: Object.prototype.toString.call(request),
    method: request.method,
    url: request.url,
    accept: request.headers.get("Accept"),
    custom: request.headers.get("x-custom"),
    has: request.headers.has("X-CUSTOM"),
    names: [...request.headers.keys()].filter((name) => name.startsWith("x-")),
    signal: request.signal instanceof AbortSignal && !request.signal.aborted,
    body: request.body,
    bodyUsed: request.bodyUsed,
    redirect: request.redirect,
    cache: request.cache,
  }), (url) => fetch(`${url}/a/b?x=1&y=%20`, { headers: { accept: "a/b", "x-custom": "v" } }));
  const port = new URL((seen as { url: string }).url).port;
  assert.deepEqual(seen, {
    isRequest: true,
    tag: "[object Request]",
    method: "GET",
    url: `http://127.0.0.1:${port}/a/b?x=1&y=%20`,
    accept: "a/b",
    custom: "v",
    has: true,
    names: ["x-custom"],
    signal: true,
    body: null,
    bodyUsed: false,
    redirect: "follow",
    cache: "default",
  });
});

Deno.test("fetch Request: the URL is normalized as new Request(url) normalizes it", async () => {
  let url = "";
  await withFetchApp((request) => {
    url = request.url;
    return new Response("ok");
  }, async (_, port) => {
    const raw = await rawExchange(port, [
      "GET /a/./b/../c?q=%7e HTTP/1.1\r\nHost: EXAMPLE.com:80\r\nConnection: close\r\n\r\n",
    ]);
    assert.equal(parseResponses(raw)[0].status, 200);
  });
  assert.equal(url, new Request("http://EXAMPLE.com:80/a/./b/../c?q=%7e").url);
  assert.equal(url, "http://example.com/a/c?q=%7e");
});

Deno.test("fetch Request: the headers are the request's own, and the app may change them", async () => {
  const seen = await inspectOne((request) => {
    request.headers.set("x-added", "1");
    request.headers.delete("x-gone");
    return {
      added: request.headers.get("x-added"),
      gone: request.headers.has("x-gone"),
      joined: request.headers.get("x-many"),
      cookie: request.headers.get("cookie"),
    };
  }, (url) =>
    fetch(url, {
      headers: [["x-gone", "1"], ["x-many", "a"], ["x-many", "b"], ["cookie", "k=v"]],
    }));
  assert.deepEqual(seen, { added: "1", gone: false, joined: "a, b", cookie: "k=v" });
});

const READERS: [string, (request: Request) => Promise<unknown>][] = [
  ["text", (request) => request.text()],
  ["json", (request) => request.json()],
  ["arrayBuffer", async (request) => new TextDecoder().decode(await request.arrayBuffer())],
  ["bytes", async (request) => new TextDecoder().decode(await request.bytes())],
  ["blob", async (request) => {
    const blob = await request.blob();
    return [blob.type, await blob.text()];
  }],
  ["body stream", async (request) => {
    const decoder = new TextDecoder();
    let text = "";
    for await (const chunk of request.body!) text += decoder.decode(chunk, { stream: true });
    return text + decoder.decode();
  }],
];

Deno.test("fetch Request: every body reader reads the request body", async () => {
  const body = JSON.stringify({ list: [1, 2], text: "✓" });
  for (const [name, read] of READERS) {
    const seen = await inspectOne(
      async (request) => ({ value: await read(request), used: request.bodyUsed }),
      (url) =>
        fetch(url, { method: "POST", body, headers: { "content-type": "application/json" } }),
    );
    const expected = name === "json"
      ? JSON.parse(body)
      : name === "blob"
      ? ["application/json", body]
      : body;
    assert.deepEqual(seen, { value: expected, used: true }, name);
  }
});

Deno.test("fetch Request: formData() reads url-encoded and multipart bodies", async () => {
  const form = new FormData();
  form.append("a", "1");
  form.append("file", new Blob(["contents"], { type: "text/plain" }), "f.txt");
  for (const body of [new URLSearchParams({ a: "1", b: "two" }), form]) {
    const seen = await inspectOne(async (request) => {
      const data = await request.formData();
      const file = data.get("file");
      return [data.get("a"), file instanceof File ? [file.name, await file.text()] : data.get("b")];
    }, (url) => fetch(url, { method: "PUT", body }));
    assert.deepEqual(seen, body === form ? ["1", ["f.txt", "contents"]] : ["1", "two"]);
  }
});

Deno.test("fetch Request: a chunked body streams in, and an empty one is null", async () => {
  const seen = await inspectOne(
    async (request) => [request.method, await request.text()],
    (url) =>
      fetch(url, {
        method: "PATCH",
        body: ReadableStream.from([new TextEncoder().encode("a"), new TextEncoder().encode("b")]),
      }),
  );
  assert.deepEqual(seen, ["PATCH", "ab"]);
  const empty = await inspectOne(
    (request) => [request.body, request.headers.get("content-length")],
    (url) => fetch(url, { method: "POST", body: "" }),
  );
  assert.deepEqual(empty, [null, "0"]);
});

Deno.test("fetch Request: clone() and new Request(request) carry url, headers and body", async () => {
  const seen = await inspectOne(async (request) => {
    const clone = request.clone();
    const copy = new Request(request.clone(), { headers: { "x-b": "2" } });
    const moved = new Request("http://other.test/x", request.clone());
    return {
      cloneIsRequest: clone instanceof Request,
      urls: [clone.url === request.url, copy.url === request.url, moved.url],
      headers: [clone.headers.get("x-a"), copy.headers.get("x-a"), copy.headers.get("x-b")],
      methods: [clone.method, copy.method, moved.method],
      bodies: [await clone.text(), await copy.text(), await moved.text(), await request.text()],
    };
  }, (url) => fetch(url, { method: "POST", body: "payload", headers: { "x-a": "1" } }));
  assert.deepEqual(seen, {
    cloneIsRequest: true,
    urls: [true, true, "http://other.test/x"],
    headers: ["1", null, "2"],
    methods: ["POST", "POST", "POST"],
    bodies: ["payload", "payload", "payload", "payload"],
  });
});

Deno.test("fetch Request: a body read once cannot be read again, nor cloned", async () => {
  const seen = await inspectOne(async (request) => {
    await request.text();
    const again = await request.text().then(() => "read", (error) => error.constructor.name);
    let clone = "cloned";
    try {
      request.clone();
    } catch (error) {
      clone = (error as Error).constructor.name;
    }
    return [again, clone];
  }, (url) => fetch(url, { method: "POST", body: "x" }));
  assert.deepEqual(seen, ["TypeError", "TypeError"]);
});

Deno.test("fetch Request: fetch(request) forwards method, headers and body upstream", async () => {
  let upstreamSaw: unknown;
  const upstream = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (r) => {
    upstreamSaw = [r.method, new URL(r.url).pathname, r.headers.get("x-a"), await r.text()];
    return new Response("from upstream");
  });
  try {
    // The Host names the upstream, so request.url is where fetch(request) goes.
    const host = `127.0.0.1:${upstream.addr.port}`;
    await withFetchApp((request) => fetch(request), async (_, port) => {
      const raw = await rawExchange(port, [
        `POST /up?x HTTP/1.1\r\nHost: ${host}\r\nx-a: 1\r\nContent-Length: 4\r\n` +
        "Connection: close\r\n\r\nbody",
      ]);
      assert.equal(parseResponses(raw)[0].body, "from upstream");
    });
  } finally {
    await upstream.shutdown();
  }
  assert.deepEqual(upstreamSaw, ["POST", "/up", "1", "body"]);
});

Deno.test("fetch Request: an invalid Host is a 400 before the app runs", async () => {
  let called = false;
  await withFetchApp(() => {
    called = true;
    return new Response("ok");
  }, async (_, port) => {
    const raw = await rawExchange(port, ["GET / HTTP/1.1\r\nHost: a:99999\r\n\r\n"]);
    assert.equal(parseResponses(raw)[0].status, 400);
  });
  assert.equal(called, false);
});

Deno.test("fetch Request: other methods keep their name; forbidden ones are a 405", async () => {
  const methods: string[] = [];
  await withFetchApp((request) => {
    methods.push(request.method);
    return new Response("ok");
  }, async (_, port) => {
    for (const method of ["PROPFIND", "TRACE"]) {
      const raw = await rawExchange(port, [
        `${method} / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
      ]);
      assert.equal(parseResponses(raw)[0].status, method === "TRACE" ? 405 : 200);
    }
  });
  assert.deepEqual(methods, ["PROPFIND"]);
});

Deno.test("fetch Request: read after the handler awaited, url and headers still hold", async () => {
  const seen = await inspectOne(async (request) => {
    await new Promise((resolve) => setTimeout(resolve, 0));
    return [new URL(request.url).pathname, request.headers.get("x-late")];
  }, (url) => fetch(url + "/late", { headers: { "x-late": "yes" } }));
  assert.deepEqual(seen, ["/late", "yes"]);
});

Deno.test("fetch Request: a body read through middleware's own tsgi.input arrives whole", async () => {
  const handler = toTsgiApp(async (request) =>
    new Response(String((await request.bytes()).length))
  );
  let reads = 0;
  const app: App = (environ, startResponse) => {
    const input = environ["tsgi.input"];
    const counted = {
      read: (size?: number) => (reads++, input.read(size)),
      readline: (size?: number) => input.readline(size),
      readlines: (hint?: number) => input.readlines(hint),
      [Symbol.asyncIterator]: () => input[Symbol.asyncIterator](),
    };
    return handler({ ...environ, "tsgi.input": counted }, startResponse);
  };
  await withServer(app, async ({ url }) => {
    const body = new Uint8Array(300_000).fill(7);
    const response = await fetch(url, { method: "POST", body });
    assert.equal(await response.text(), "300000");
  });
  assert.ok(reads > 0, "the wrapper's read() was used");
});

Deno.test("fetch Request: a header middleware put in the environ is checked as Headers would", async () => {
  const handler = toTsgiApp((request) => new Response(request.headers.get("x-added") ?? "none"));
  const added = (value: string): App => (environ, startResponse) =>
    handler({ ...environ, HTTP_X_ADDED: value }, startResponse);
  await withServer(added("fine"), async ({ url }) => {
    const response = await fetch(url);
    assert.equal(await response.text(), "fine");
  });
  // A CR LF in a value would ride along into a fetch(request) of the app's: refused (500).
  await withServer(added("a\r\nInjected: 1"), async ({ url, errors }) => {
    const response = await fetch(url);
    await response.body?.cancel();
    assert.equal(response.status, 500);
    assert.match(errors.text, /Invalid header in the environ: "x-added"/);
  });
});
