// The engine end to end: a real server on port 0, real clients.

import assert from "node:assert/strict";
import type { App, Body, Environ, StartResponse } from "../../src/tsgi/types.ts";
import {
  concat,
  encoder,
  parseResponses,
  rawExchange,
  waitFor,
  withServer,
} from "../support/server.ts";

const hello: App = (_environ, startResponse) => {
  startResponse("200 OK", [["Content-Type", "text/plain"]]);
  return ["hello"];
};

const echoApp: App = async (environ, startResponse) => {
  const body = await environ["tsgi.input"].read();
  startResponse("200 OK", [["Content-Type", "text/plain"]]);
  return [`${environ.REQUEST_METHOD} ${environ.PATH_INFO} ${body.length}:`, body];
};

Deno.test("server answers fetch with status, headers, Date and body", async () => {
  await withServer(hello, async ({ url }) => {
    const response = await fetch(url + "/");
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), "text/plain");
    assert.equal(response.headers.get("content-length"), "5");
    assert.ok(response.headers.get("date")?.endsWith(" GMT"));
    assert.equal(await response.text(), "hello");
  });
});

Deno.test("server keeps a connection alive across requests and answers pipelined ones in order", async () => {
  const app: App = (environ, startResponse) => {
    startResponse("200 OK", []);
    return [environ.PATH_INFO];
  };
  await withServer(app, async ({ port }) => {
    const requests = ["/a", "/b", "/c"].map((p, i) =>
      `GET ${p} HTTP/1.1\r\nHost: x\r\n${i === 2 ? "Connection: close\r\n" : ""}\r\n`
    );
    const out = await rawExchange(port, [requests.join("")]);
    const responses = parseResponses(out);
    assert.deepEqual(responses.map((r) => r.body), ["/a", "/b", "/c"]);
    assert.equal(responses[2].headers.connection, "close");
    const split = await rawExchange(port, [requests[0], requests[1], requests[2]]);
    assert.deepEqual(parseResponses(split).map((r) => r.body), ["/a", "/b", "/c"]);
  });
});

Deno.test("server closes an HTTP/1.0 connection unless keep-alive is asked", async () => {
  await withServer(hello, async ({ port }) => {
    const closed = parseResponses(await rawExchange(port, ["GET / HTTP/1.0\r\n\r\n"]));
    assert.equal(closed.length, 1);
    assert.equal(closed[0].headers.connection, "close");
    const kept = parseResponses(
      await rawExchange(port, [
        "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\n\r\n",
      ]),
    );
    assert.equal(kept.length, 2);
    assert.equal(kept[0].headers.connection, "keep-alive");
    assert.equal(kept[1].headers.connection, "close");
  });
});

Deno.test("server decodes chunked request bodies and frames the next request right", async () => {
  await withServer(echoApp, async ({ port }) => {
    const out = await rawExchange(port, [
      "POST /up HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
      "5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: yes\r\n\r\n",
      "GET /next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ]);
    const responses = parseResponses(out);
    assert.deepEqual(responses.map((r) => r.body), ["POST /up 11:hello world", "GET /next 0:"]);
  });
});

Deno.test("server sends chunked responses for bodies of unknown length on HTTP/1.1", async () => {
  const app: App = (_environ, startResponse) => {
    startResponse("200 OK", []);
    return (async function* () {
      yield "one,";
      yield new TextEncoder().encode("two");
    })();
  };
  await withServer(app, async ({ port, url }) => {
    const out = await rawExchange(port, ["GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"]);
    const [response] = parseResponses(out);
    assert.equal(response.headers["transfer-encoding"], "chunked");
    assert.equal(response.body, "one,two");
    assert.ok(out.endsWith("0\r\n\r\n"));
    assert.equal(await (await fetch(url)).text(), "one,two");
    const old = await rawExchange(port, ["GET / HTTP/1.0\r\n\r\n"]);
    assert.equal(parseResponses(old)[0].body, "one,two");
    assert.ok(!old.includes("chunked"));
  });
});

Deno.test("server answers HEAD with the GET headers and no body", async () => {
  await withServer(hello, async ({ port }) => {
    const out = await rawExchange(port, [
      "HEAD / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ]);
    const responses = parseResponses(out, 1);
    assert.equal(responses[0].headers["content-length"], "5");
    assert.equal(responses[0].body, "");
    assert.equal(responses[1].body, "hello");
  });
});

Deno.test("server sends no body and no Content-Length with 204, and no body with 304", async () => {
  const app: App = (environ, startResponse) => {
    if (environ.PATH_INFO === "/204") startResponse("204 No Content", []);
    else startResponse("304 Not Modified", [["ETag", '"x"']]);
    return ["ignored"];
  };
  await withServer(app, async ({ port }) => {
    const out = await rawExchange(port, [
      "GET /204 HTTP/1.1\r\nHost: x\r\n\r\nGET /304 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ]);
    const responses = parseResponses(out);
    assert.equal(responses.length, 2);
    assert.equal(responses[0].status, 204);
    assert.equal(responses[0].headers["content-length"], undefined);
    assert.equal(responses[1].status, 304);
    assert.ok(!out.includes("ignored"));
  });
});

Deno.test("server sends 100 Continue only when the app reads the body", async () => {
  let reads = 0;
  const app: App = async (environ, startResponse) => {
    if (environ.PATH_INFO === "/read") {
      reads += (await environ["tsgi.input"].read()).length;
    }
    startResponse("200 OK", []);
    return ["ok"];
  };
  await withServer(app, async ({ port }) => {
    const head =
      "POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n";
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await conn.write(new TextEncoder().encode(head));
    const buf = new Uint8Array(1024);
    const n = await conn.read(buf);
    assert.equal(
      new TextDecoder().decode(buf.subarray(0, n ?? 0)),
      "HTTP/1.1 100 Continue\r\n\r\n",
    );
    await conn.write(new TextEncoder().encode("abc"));
    const m = await conn.read(buf);
    assert.match(new TextDecoder().decode(buf.subarray(0, m ?? 0)), /^HTTP\/1.1 200 OK/);
    conn.close();
    assert.equal(reads, 3);
    const ignored = await rawExchange(port, [
      "POST /skip HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n",
    ]);
    assert.ok(!ignored.includes("100 Continue"));
    const [response] = parseResponses(ignored);
    assert.equal(response.status, 200);
    assert.equal(response.headers.connection, "close");
  });
});

Deno.test("server drains an unread body so the next request starts at the right byte", async () => {
  const app: App = (environ, startResponse) => {
    startResponse("200 OK", []);
    return [environ.PATH_INFO];
  };
  await withServer(app, async ({ port }) => {
    const body = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
    const out = await rawExchange(port, [
      `POST /first HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n${body}` +
      "GET /second HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ]);
    assert.deepEqual(parseResponses(out).map((r) => r.body), ["/first", "/second"]);
  });
});

Deno.test("server answers malformed requests with their status and closes", async () => {
  const cases: [string, number][] = [
    ["GET / HTTP/1.1\r\n\r\n", 400],
    ["GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400],
    ["GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505],
    ["PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505],
    ["POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501],
    ["POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400],
    [`GET /${"a".repeat(9000)} HTTP/1.1\r\nHost: x\r\n\r\n`, 414],
    [`GET / HTTP/1.1\r\nHost: x\r\nX: ${"a".repeat(9000)}\r\n\r\n`, 431],
    ["GET / HTTP/1.1\r\nHost: x\r\n" + "X: y\r\n".repeat(101) + "\r\n", 431],
    ["GET / HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\n\r\n", 417],
    ["GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n", 400],
    ["GET /%ff HTTP/1.1\r\nHost: x\r\n\r\n", 400],
  ];
  await withServer(hello, async ({ port, errors }) => {
    for (const [request, status] of cases) {
      const out = await rawExchange(port, [request + "GET / HTTP/1.1\r\nHost: x\r\n\r\n"]);
      const responses = parseResponses(out);
      assert.equal(
        responses.length,
        1,
        `one response only for ${JSON.stringify(request.slice(0, 40))}`,
      );
      assert.equal(responses[0].status, status, JSON.stringify(request.slice(0, 60)));
      assert.equal(responses[0].headers.connection, "close");
    }
    assert.match(errors.text, /400 Missing Host field/);
  });
});

Deno.test("server answers 413 for a body over --max-body-size, declared or chunked", async () => {
  await withServer(echoApp, async ({ port }) => {
    const declared = await rawExchange(port, [
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world",
    ]);
    assert.equal(parseResponses(declared)[0].status, 413);
    const chunked = await rawExchange(port, [
      "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n",
    ]);
    assert.equal(parseResponses(chunked)[0].status, 413);
  }, { maxBodySize: 10 });
});

Deno.test("server answers 500 when the app throws, logs the stack, and keeps serving", async () => {
  const failing: App = (environ, startResponse) => {
    if (environ.PATH_INFO === "/boom") throw new Error("secret detail");
    return hello(environ, startResponse);
  };
  await withServer(failing, async ({ port, errors }) => {
    const out = await rawExchange(port, [
      "GET /boom HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ]);
    const responses = parseResponses(out);
    assert.equal(responses[0].status, 500);
    assert.ok(!out.includes("secret detail"), "no detail leaks to the client");
    assert.equal(responses[1].body, "hello");
    assert.match(errors.text, /secret detail/);
    assert.match(errors.text, /at failing|server_test\.ts/);
  });
});

Deno.test("server aborts the connection when the app fails after the head went out", async () => {
  const app: App = (_environ, startResponse) => {
    startResponse("200 OK", []);
    return (async function* () {
      yield "partial";
      throw new Error("late failure");
    })();
  };
  await withServer(app, async ({ port, errors }) => {
    const out = await rawExchange(port, ["GET / HTTP/1.1\r\nHost: x\r\n\r\n"]);
    assert.match(out, /^HTTP\/1.1 200 OK/);
    assert.ok(out.includes("partial"));
    assert.ok(!out.endsWith("0\r\n\r\n"), "no last chunk: the client sees it is cut short");
    assert.match(errors.text, /late failure/);
  });
});

Deno.test("startResponse() follows the excInfo rules", async () => {
  const app: App = (environ, startResponse) => {
    const path = environ.PATH_INFO;
    startResponse("200 OK", [["X-First", "1"]]);
    if (path === "/twice") startResponse("201 Created", []);
    if (path === "/replace") {
      startResponse("503 Service Unavailable", [["X-Second", "2"]], new Error("x"));
    }
    if (path === "/late") {
      return (async function* () {
        yield "sent";
        startResponse("500 Internal Server Error", [], new Error("rethrown"));
      })();
    }
    return ["body"];
  };
  await withServer(app, async ({ port, errors }) => {
    const twice = parseResponses(
      await rawExchange(port, ["GET /twice HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"]),
    );
    assert.equal(twice[0].status, 500);
    assert.match(errors.text, /second time without excInfo/);
    const replaced = parseResponses(
      await rawExchange(port, ["GET /replace HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"]),
    );
    assert.equal(replaced[0].status, 503);
    assert.equal(replaced[0].headers["x-second"], "2");
    assert.equal(replaced[0].headers["x-first"], undefined);
    const late = await rawExchange(port, ["GET /late HTTP/1.1\r\nHost: x\r\n\r\n"]);
    assert.match(late, /^HTTP\/1.1 200 OK/);
    assert.match(errors.text, /rethrown/);
  }, { validate: false });
});

Deno.test("server refuses illegal response headers and statuses as app errors", async () => {
  const bad: [string, [string, string][]][] = [
    ["200 OK", [["X-Split", "a\r\nSet-Cookie: evil=1"]]],
    ["200 OK", [["X-Nul", "a\0b"]]],
    ["200 OK", [["Bad Name", "x"]]],
    ["200 OK", [["Connection", "close"]]],
    ["200 OK", [["Transfer-Encoding", "chunked"]]],
    ["200 OK", [["Content-Length", "abc"]]],
    ["200", []],
    ["99 Odd", []],
    ["100 Continue", []],
    ["200 OK\r\nX: y", []],
  ];
  let i = 0;
  const app: App = (_environ, startResponse) => {
    const [status, headers] = bad[i++];
    startResponse(status, headers);
    return ["never"];
  };
  await withServer(app, async ({ port }) => {
    for (const [status, headers] of bad) {
      const out = await rawExchange(port, [
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
      ]);
      assert.equal(parseResponses(out)[0].status, 500, `${status} ${JSON.stringify(headers)}`);
      assert.ok(!out.includes("evil") && !out.includes("never"));
    }
  }, { validate: false });
});

Deno.test("server checks the app's Content-Length against its body", async () => {
  const app: App = (environ, startResponse) => {
    startResponse("200 OK", [["Content-Length", "5"]]);
    return environ.PATH_INFO === "/long" ? ["toolong"] : (async function* () {
      yield "abc";
    })();
  };
  await withServer(app, async ({ port, errors }) => {
    const long = await rawExchange(port, [
      "GET /long HTTP/1.1\r\nHost: x\r\n\r\nGET /long HTTP/1.1\r\nHost: x\r\n\r\n",
    ]);
    assert.ok(long.endsWith("toolo"), "no byte past the declared length");
    assert.equal(parseResponses(long).length, 1, "the connection closes after the bad response");
    const short = await rawExchange(port, ["GET /short HTTP/1.1\r\nHost: x\r\n\r\n"]);
    assert.ok(short.endsWith("abc"));
    assert.match(errors.text, /longer than its Content-Length/);
    assert.match(errors.text, /shorter than its Content-Length/);
  });
});

Deno.test("body close() is called exactly once, including when the client goes away", async () => {
  const closes: string[] = [];
  const app: App = (environ, startResponse) => {
    const path = environ.PATH_INFO;
    startResponse("200 OK", []);
    if (path === "/throw") {
      return {
        *[Symbol.iterator]() {
          yield "x";
          throw new Error("iteration failed");
        },
        close: () => closes.push(path),
      } as Body;
    }
    if (path === "/endless") {
      return {
        async *[Symbol.asyncIterator]() {
          while (true) {
            yield "x".repeat(65536);
            await new Promise((resolve) => setTimeout(resolve, 1));
          }
        },
        close: () => closes.push(path),
      } as Body;
    }
    return Object.assign(["done"], { close: () => closes.push(path) });
  };
  await withServer(app, async ({ port }) => {
    await rawExchange(port, ["GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"]);
    await rawExchange(port, ["GET /throw HTTP/1.1\r\nHost: x\r\n\r\n"]);
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await conn.write(new TextEncoder().encode("GET /endless HTTP/1.1\r\nHost: x\r\n\r\n"));
    await conn.read(new Uint8Array(1024));
    conn.close();
    assert.ok(await waitFor(() => closes.includes("/endless")), "close() after the client left");
    assert.deepEqual(closes.sort(), ["/endless", "/ok", "/throw"]);
  });
});

Deno.test("environ holds the CGI keys, joined headers and no underscore headers", async () => {
  let seen: Environ | undefined;
  const app: App = (environ, startResponse: StartResponse) => {
    seen = environ;
    return hello(environ, startResponse);
  };
  await withServer(app, async ({ port }) => {
    await rawExchange(port, [
      "GET /mount/a%20b/%E2%9C%93?x=1&y=%20 HTTP/1.1\r\nHost: example.com\r\nX-Multi: 1\r\n" +
      "X-Multi: 2\r\nCookie: a=1\r\nCookie: b=2\r\nX-A_B: evil\r\nX-A-B: good\r\n" +
      "Content-Type: text/plain\r\nConnection: close\r\n\r\n",
    ]);
    const env = seen as Environ;
    assert.equal(env.REQUEST_METHOD, "GET");
    assert.equal(env.SCRIPT_NAME, "/mount");
    assert.equal(env.PATH_INFO, "/a b/✓");
    assert.equal(env.QUERY_STRING, "x=1&y=%20");
    assert.equal(env.RAW_URI, "/mount/a%20b/%E2%9C%93?x=1&y=%20");
    assert.equal(env.REQUEST_URI, env.RAW_URI);
    assert.equal(env.SERVER_PROTOCOL, "HTTP/1.1");
    assert.equal(env.SERVER_NAME, "127.0.0.1");
    assert.equal(env.SERVER_PORT, String(port));
    assert.equal(env.REMOTE_ADDR, "127.0.0.1");
    assert.match(env.REMOTE_PORT, /^\d+$/);
    assert.equal(env.HTTP_HOST, "example.com");
    assert.equal(env.HTTP_X_MULTI, "1, 2");
    assert.equal(env.HTTP_COOKIE, "a=1; b=2");
    assert.equal(env.HTTP_X_A_B, "good");
    assert.equal(env.CONTENT_TYPE, "text/plain");
    assert.equal(env.CONTENT_LENGTH, undefined);
    assert.deepEqual(env["tsgi.version"], [1, 0]);
    assert.equal(env["tsgi.url_scheme"], "http");
    assert.equal(env["tsgi.multithread"], false);
    assert.equal(env["tsgi.multiprocess"], false);
    assert.equal(env["tsgi.run_once"], false);
    assert.equal((await env["tsgi.input"].read()).length, 0);
  }, { rootPath: "/mount" });
});

Deno.test("tsgi.input reads by size, by line, and as an async iterator", async () => {
  const app: App = async (environ, startResponse) => {
    const input = environ["tsgi.input"];
    const parts: string[] = [];
    const decode = (b: Uint8Array) => new TextDecoder().decode(b);
    parts.push(decode(await input.read(3)));
    parts.push(decode(await input.readline()));
    parts.push(decode(await input.readline(2)));
    for await (const line of input) parts.push(decode(line));
    parts.push(`end:${(await input.read()).length}`);
    startResponse("200 OK", []);
    return [JSON.stringify(parts)];
  };
  await withServer(app, async ({ port }) => {
    const body = "abcdef\nghij\nkl\nmn";
    const out = await rawExchange(port, [
      `POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n`,
      `4\r\n${body.slice(0, 4)}\r\n`,
      `${(body.length - 4).toString(16)}\r\n${body.slice(4)}\r\n0\r\n\r\n`,
    ]);
    assert.deepEqual(JSON.parse(parseResponses(out)[0].body), [
      "abc",
      "def\n",
      "gh",
      "ij\n",
      "kl\n",
      "mn",
      "end:0",
    ]);
  });
});

Deno.test("server closes a connection whose head does not arrive within --header-timeout", async () => {
  await withServer(hello, async ({ port, errors }) => {
    const started = Date.now();
    const out = await rawExchange(port, ["GET / HTTP/1.1\r\nHost: x\r\n"], 10_000);
    assert.equal(out, "");
    assert.ok(Date.now() - started < 5000, "closed by the server, not by the test's deadline");
    assert.match(errors.text, /not received in time/);
  }, { headerTimeout: 0.3 });
});

Deno.test("server closes an idle keep-alive connection after --keep-alive", async () => {
  await withServer(hello, async ({ port }) => {
    const started = Date.now();
    const out = await rawExchange(port, ["GET / HTTP/1.1\r\nHost: x\r\n\r\n"], 10_000);
    assert.equal(parseResponses(out).length, 1);
    assert.ok(Date.now() - started < 5000, "closed by the server, not by the test's deadline");
  }, { keepAlive: 0.3 });
});

Deno.test("graceful shutdown lets an in-flight request finish and closes idle connections", async () => {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  let entered = false;
  const app: App = async (environ, startResponse) => {
    if (environ.PATH_INFO === "/slow") {
      entered = true;
      await gate;
    }
    return hello(environ, startResponse);
  };
  await withServer(app, async ({ port, handle }) => {
    const idle = await Deno.connect({ hostname: "127.0.0.1", port });
    const slow = rawExchange(port, ["GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"]);
    assert.ok(await waitFor(() => entered));
    const stopping = handle.shutdown(5000);
    const idleRead = await idle.read(new Uint8Array(16)).catch(() => null);
    assert.equal(idleRead, null, "the idle connection is closed");
    idle.close();
    await assert.rejects(Deno.connect({ hostname: "127.0.0.1", port }), "no new connections");
    release();
    const responses = parseResponses(await slow);
    assert.equal(responses[0].status, 200);
    assert.equal(responses[0].headers.connection, "close");
    await stopping;
  });
});

Deno.test("access log has one line per request with the fields a combined log has", async () => {
  await withServer(hello, async ({ port, access, handle }) => {
    await rawExchange(port, [
      'GET /x?y HTTP/1.1\r\nHost: x\r\nReferer: http://r/\r\nUser-Agent: t"ester\r\nConnection: close\r\n\r\n',
    ]);
    handle.server.engine.accessLog?.flush();
    assert.match(
      access.text,
      /^127\.0\.0\.1 - - \[\d\d\/\w{3}\/\d{4}:\d\d:\d\d:\d\d \+0000\] "GET \/x\?y HTTP\/1.1" 200 5 "http:\/\/r\/" "t\\x22ester" \d+\.\d{6}\n$/,
    );
  });
});

Deno.test("tsgi.server.signal aborts when the client goes away mid-request", async () => {
  let aborted = false;
  let entered = false;
  const app: App = async (environ, startResponse) => {
    const signal = (environ["tsgi.server.signal"] as () => AbortSignal)();
    entered = true;
    await new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve()));
    aborted = signal.aborted;
    startResponse("200 OK", []);
    return ["late"];
  };
  await withServer(app, async ({ port }) => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await conn.write(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    assert.ok(await waitFor(() => entered));
    conn.close();
    assert.ok(await waitFor(() => aborted), "the signal fired after the client closed");
  });
});

Deno.test("responses pipelined before a slow async app's leave without waiting for it", async () => {
  // The slow request waits until the client has read the answer to the quick one before it:
  // held back behind the slow one, that answer would never come (the test's deadline fails it).
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const app: App = async (environ, startResponse) => {
    if (environ.PATH_INFO === "/slow") await gate;
    return hello(environ, startResponse);
  };
  await withServer(app, async ({ port }) => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    try {
      await conn.write(encoder.encode(
        "GET /quick HTTP/1.1\r\nHost: x\r\n\r\nGET /slow HTTP/1.1\r\nHost: x\r\n\r\n",
      ));
      const buf = new Uint8Array(4096);
      let seen = "";
      // One read in flight at a time; the deadline only stops the wait for it.
      const readUntil = async (done: () => boolean, ms: number) => {
        let timer: ReturnType<typeof setTimeout> | undefined;
        const late = new Promise<"late">((resolve) => (timer = setTimeout(resolve, ms, "late")));
        try {
          while (!done()) {
            const n = await Promise.race([conn.read(buf), late]);
            if (n === "late" || n === null) return;
            seen += new TextDecoder().decode(buf.subarray(0, n));
          }
        } finally {
          clearTimeout(timer);
        }
      };
      await readUntil(() => seen.includes("hello"), 5000);
      assert.ok(seen.includes("hello"), "the quick answer came while the slow app waited");
      release();
      await readUntil(() => parseResponses(seen).length >= 2, 5000);
      assert.equal(parseResponses(seen).length, 2);
    } finally {
      release();
      conn.close();
    }
  });
});

Deno.test("read(n) of large bodies gives every byte once, in order, and never the next request's", async () => {
  // Each body's last 20,000 bytes go in one write with the request after it, so one socket
  // read could take both, whichever way read(65536) takes it (the buffer, or a read straight
  // into the app's array: tests/tsgi/input_test.ts holds that one to the body's end).
  const sizes = [131_072 + 20_000, 65_536 + 30_001];
  const app: App = async (environ, startResponse) => {
    const input = environ["tsgi.input"];
    let total = 0;
    let wrong = -1;
    for (let chunk = await input.read(65536); chunk.length > 0; chunk = await input.read(65536)) {
      for (let i = 0; i < chunk.length && wrong < 0; i++) {
        if (chunk[i] !== (total + i) % 251) wrong = total + i;
      }
      total += chunk.length;
    }
    startResponse("200 OK", [["Content-Type", "text/plain"]]);
    return [`${environ.PATH_INFO} ${total} ${wrong}`];
  };
  await withServer(app, async ({ port }) => {
    const pieces: Uint8Array[] = [];
    let tail: Uint8Array = new Uint8Array(0);
    for (const [i, size] of sizes.entries()) {
      const body = new Uint8Array(size);
      for (let k = 0; k < size; k++) body[k] = k % 251;
      const head = encoder.encode(
        `POST /b${i} HTTP/1.1\r\nHost: x\r\nContent-Length: ${size}\r\n\r\n`,
      );
      const front = body.subarray(0, size - 20_000);
      pieces.push(concat([tail, head, front]));
      tail = body.subarray(size - 20_000);
    }
    const last = encoder.encode("GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    pieces.push(concat([tail, last]));
    const responses = parseResponses(await rawExchange(port, pieces));
    assert.deepEqual(responses.map((r) => r.body), [
      `/b0 ${sizes[0]} -1`,
      `/b1 ${sizes[1]} -1`,
      "/last 0 -1",
    ]);
  });
});
