// Apps that break the TSGI contract (docs/tsgi.md), one test each against a real server: the
// client gets the documented status (500 before the head went out) or an aborted response
// (after), the error log names the fault, and the server serves the next request.
// The apps run without validate(), so the server's own checks are what is tested.

import assert from "node:assert/strict";
import type { App, Body, Environ, StartResponse } from "../../src/tsgi/types.ts";
import {
  parseResponses,
  rawExchange,
  type TestServer,
  waitFor,
  withServer,
} from "../support/server.ts";

const GET = (path: string, close = false) =>
  `GET ${path} HTTP/1.1\r\nHost: x\r\n${close ? "Connection: close\r\n" : ""}\r\n`;

const ok = (_environ: Environ, startResponse: StartResponse): Body => {
  startResponse("200 OK", [["Content-Type", "text/plain"]]);
  return ["fine"];
};

/** Serves `bad` at /bad and a good answer elsewhere. */
function route(bad: App): App {
  return (environ, startResponse) =>
    environ.PATH_INFO === "/bad" ? bad(environ, startResponse) : ok(environ, startResponse);
}

/**
 * The common shape: /bad then /next pipelined on one connection gets `status` then 200 (the
 * server's own 500 keeps the stream in step), the log names the fault, and a fresh connection
 * is served too.
 */
async function assertFault(bad: App, fault: RegExp, status = 500): Promise<void> {
  await withServer(route(bad), async ({ port, errors }) => {
    const out = await rawExchange(port, [GET("/bad") + GET("/next", true)]);
    const responses = parseResponses(out);
    assert.deepEqual(responses.map((r) => r.status), [status, 200], out);
    assert.equal(responses[0].body, "Internal Server Error\n", "a generic body, no stack");
    assert.match(errors.text, fault);
    await assertServing({ port } as TestServer);
  }, { validate: false });
}

async function assertServing({ port }: TestServer): Promise<void> {
  const out = await rawExchange(port, [GET("/", true)]);
  assert.equal(parseResponses(out)[0]?.status, 200, `still serving: ${out}`);
}

Deno.test("an app that throws: 500, the exception in the log, the next request served", async () => {
  await assertFault(
    () => {
      throw new Error("boom in the app");
    },
    /App raised an exception \("GET \/bad HTTP\/1\.1" from 127\.0\.0\.1\)\nError: boom in the app/,
  );
});

Deno.test("an async app that rejects: 500, the exception in the log, the next request served", async () => {
  await assertFault(() => Promise.reject(new TypeError("async boom")), /TypeError: async boom/);
});

Deno.test("an app that returns a non-iterable: 500 naming what it returned", async () => {
  await assertFault((_environ, startResponse) => {
    startResponse("200 OK", []);
    return 42 as unknown as Body;
  }, /App error: App returned a number, which is not an iterable body/);
});

Deno.test("an app that returns a bare string: 500 saying to return [string]", async () => {
  await assertFault((_environ, startResponse) => {
    startResponse("200 OK", []);
    return "text" as unknown as Body;
  }, /App returned a string; return \[string\]/);
});

Deno.test("an app whose body yields a number first: 500 naming the chunk", async () => {
  await assertFault((_environ, startResponse) => {
    startResponse("200 OK", []);
    return [7 as unknown as string];
  }, /Body yielded a number; chunks must be Uint8Array or string/);
});

Deno.test("an app whose body yields a number after its head went out: response aborted, logged", async () => {
  let closed = 0;
  const bad: App = (_environ, startResponse) => {
    startResponse("200 OK", [["Content-Type", "text/plain"]]);
    const body = (async function* () {
      yield "first chunk\n";
      yield 7 as unknown as string;
    })();
    return Object.assign(body, { close: () => void closed++ });
  };
  await withServer(route(bad), async (server) => {
    const out = await rawExchange(server.port, [GET("/bad") + GET("/never")]);
    // The head and the first chunk went out; the chunked body never ends: the client knows.
    assert.match(out, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(out, /Transfer-Encoding: chunked/);
    assert.ok(out.includes("first chunk"));
    assert.ok(!out.includes("\r\n0\r\n\r\n"), "no final chunk: the response is cut short");
    assert.ok(!out.includes("fine"), "the pipelined request behind it is not served");
    assert.match(server.errors.text, /Body yielded a number/);
    assert.match(server.errors.text, /Response aborted: the app failed after its head was sent/);
    assert.equal(closed, 1, "close() called once");
    await assertServing(server);
  }, { validate: false });
});

Deno.test("an app that calls startResponse twice without excInfo: 500, logged", async () => {
  await assertFault((_environ, startResponse) => {
    startResponse("200 OK", []);
    startResponse("404 Not Found", []);
    return ["unreachable"];
  }, /startResponse\(\) called a second time without excInfo/);
});

Deno.test("an app that sends an illegal header name: 500, the name in the log, nothing on the wire", async () => {
  await withServer(
    route((_environ, startResponse) => {
      startResponse("200 OK", [["Bad Name", "x"], ["X-Ok", "y"]]);
      return ["body"];
    }),
    async (server) => {
      const out = await rawExchange(server.port, [GET("/bad", true)]);
      assert.equal(parseResponses(out)[0].status, 500);
      assert.ok(!out.includes("Bad Name") && !out.includes("X-Ok"), out);
      assert.match(server.errors.text, /Invalid response header name "Bad Name"/);
      await assertServing(server);
    },
    { validate: false },
  );
});

Deno.test("an app that sends a hop-by-hop or split header: 500, logged", async () => {
  await assertFault((_environ, startResponse) => {
    startResponse("200 OK", [["Transfer-Encoding", "identity"]]);
    return ["x"];
  }, /Response header "Transfer-Encoding" is hop-by-hop: the server sets it/);
  await assertFault((_environ, startResponse) => {
    startResponse("200 OK", [["X-Split", "a\r\nSet-Cookie: b"]]);
    return ["x"];
  }, /Response header "X-Split" has CR, LF, NUL or another control/);
});

Deno.test("an endless body to a client that left: close() is called once and iteration stops", async () => {
  let closed = 0;
  let pulled = 0;
  let pulledAfterClose = 0;
  const bad: App = (_environ, startResponse) => {
    startResponse("200 OK", [["Content-Type", "text/plain"]]);
    const chunk = "x".repeat(16 * 1024);
    return {
      [Symbol.asyncIterator]: () => ({
        next: async () => {
          pulled++;
          if (closed > 0) pulledAfterClose++;
          await new Promise((resolve) => setTimeout(resolve, 1));
          return { done: false, value: chunk };
        },
      }),
      close: () => void closed++,
    } as Body;
  };
  await withServer(route(bad), async (server) => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    await conn.write(new TextEncoder().encode(GET("/bad")));
    const buf = new Uint8Array(64 * 1024);
    assert.ok(((await conn.read(buf)) ?? 0) > 0, "the response started");
    conn.close();
    assert.ok(await waitFor(() => closed > 0, 5000), "close() called after the client left");
    const at = pulled;
    // Some round trips on other connections: an endless body still pulled would show here.
    for (let i = 0; i < 5; i++) await assertServing(server);
    assert.equal(closed, 1, "close() exactly once");
    assert.equal(pulledAfterClose, 0, "no chunk pulled after close()");
    assert.equal(pulled, at, "iteration stopped");
    assert.match(server.errors.text, /Writing to the client failed|Client closed the connection/);
    assert.ok(await waitFor(() => server.handle.server.connectionCount === 0));
  }, { validate: false });
});

Deno.test("an app that blocks the event loop: requests that queued meanwhile are served after", async () => {
  const BLOCK_MS = 1000;
  const bad: App = (environ, startResponse) => {
    const until = performance.now() + BLOCK_MS;
    while (performance.now() < until) {
      // A synchronous busy loop: nothing else in this process runs.
    }
    return ok(environ, startResponse);
  };
  await withServer(route(bad), async (server) => {
    // The slow request and, right behind it, another client: sent before the loop blocks.
    const blocked = rawExchange(server.port, [GET("/bad", true)]);
    const waiting = rawExchange(server.port, [GET("/queued", true)]);
    const began = performance.now();
    const [slow, queued] = await Promise.all([blocked, waiting]);
    assert.equal(parseResponses(slow)[0].status, 200);
    assert.equal(parseResponses(queued)[0].status, 200, "the queued request is served after");
    assert.ok(performance.now() - began >= BLOCK_MS * 0.9);
    // It recovers at once: a new request is served promptly.
    const t = performance.now();
    await assertServing(server);
    assert.ok(performance.now() - t < 500, "served promptly after the block");
    // The access log records the blocked request with its duration. A single process cannot
    // preempt its own loop: --workers with --timeout kills and replaces a worker stuck longer
    // (tests/pool/workers_test.ts).
    server.handle.server.engine.accessLog?.flush();
    const line = server.access.text.split("\n").find((l) => l.includes("GET /bad "));
    assert.ok(line, server.access.text);
    assert.ok(Number(line.trim().split(" ").at(-1)) >= BLOCK_MS / 1000 * 0.9, line);
  }, { validate: false });
});

Deno.test({
  name: "an app that blocks the event loop: the error log names the stall",
  fn: async () => {
    const bad: App = (environ, startResponse) => {
      const until = performance.now() + 1000;
      while (performance.now() < until) {
        // Busy.
      }
      return ok(environ, startResponse);
    };
    await withServer(route(bad), async (server) => {
      await rawExchange(server.port, [GET("/bad", true)]);
      assert.ok(await waitFor(() => /event loop/i.test(server.errors.text), 2000));
    }, { validate: false });
  },
});
