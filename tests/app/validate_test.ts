// validate(): one test per rule, each with a broken app (or a broken server) that it catches,
// and a correct app that passes. Apps run under a real server; withServer validates by default.

import assert from "node:assert/strict";
import { EMPTY_INPUT } from "../../src/tsgi/input.ts";
import type { App, Body, Chunk, Environ, StartResponse } from "../../src/tsgi/types.ts";
import { type Rule, validate, ValidationError } from "../../src/app/validate.ts";
import { parseResponses, rawExchange, waitFor, withServer } from "../support/server.ts";

const GET = "GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";

/** Serves `app` validated; asserts a 500 and a logged message naming `rule`. */
async function assertCaught(app: App, rule: Rule, request = GET): Promise<void> {
  await withServer(app, async ({ port, errors }) => {
    const out = await rawExchange(port, [request]);
    assert.equal(parseResponses(out)[0].status, 500, `status for rule ${rule}`);
    assert.match(errors.text, new RegExp(`TSGI rule "${rule}" broken`), errors.text);
  });
}

/** An app behind a middleware that breaks the environ the server gave. */
function withEnviron(change: (environ: Environ) => void): App {
  const inner = validate(ok);
  return (environ, startResponse) => {
    const broken = { ...environ };
    change(broken);
    return inner(broken, startResponse);
  };
}

async function assertEnvironCaught(rule: Rule, change: (environ: Environ) => void) {
  await withServer(withEnviron(change), async ({ port, errors }) => {
    assert.equal(parseResponses(await rawExchange(port, [GET]))[0].status, 500);
    assert.match(errors.text, new RegExp(`TSGI rule "${rule}" broken`));
  }, { validate: false });
}

const ok: App = (_environ, startResponse) => {
  startResponse("200 OK", [["Content-Type", "text/plain"]]);
  return ["ok"];
};

Deno.test("validate() passes a correct app that uses every part of the contract", async () => {
  const app: App = async (environ, startResponse) => {
    const input = environ["tsgi.input"];
    const first = await input.readline();
    const rest = await input.read(100);
    environ["tsgi.errors"].write("a note\n");
    environ["tsgi.errors"].writelines(["two\n", "lines\n"]);
    environ["tsgi.errors"].flush();
    startResponse("500 Internal Server Error", []);
    const write = startResponse("200 OK", [["X-Len", String(first.length + rest.length)]], "e");
    write("legacy,");
    return (async function* () {
      yield "";
      yield new TextEncoder().encode("bytes,");
      yield "text";
    })();
  };
  await withServer(app, async ({ port, errors }) => {
    const out = await rawExchange(port, [
      "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 9\r\nConnection: close\r\n\r\nab\ncdefgh",
    ]);
    const [response] = parseResponses(out);
    assert.equal(response.status, 200);
    assert.equal(response.headers["x-len"], "9");
    assert.equal(response.body, "legacy,bytes,text");
    assert.doesNotMatch(errors.text, /TSGI rule/);
  });
});

Deno.test('validate() rule "environ-key": a required key missing or of the wrong type', async () => {
  await assertEnvironCaught("environ-key", (env) => delete (env as Partial<Environ>).REMOTE_ADDR);
  await assertEnvironCaught("environ-key", (env) => (env.SERVER_PORT = 80 as unknown as string));
  await assertEnvironCaught("environ-key", (env) => (env["tsgi.version"] = [1, 1]));
  await assertEnvironCaught("environ-key", (env) => (env["tsgi.input"] = {} as never));
  await assertEnvironCaught("environ-key", (env) => (env["tsgi.multithread"] = "no" as never));
  await assertEnvironCaught("environ-key", (env) => (env.HTTP_X = 1));
});

Deno.test('validate() rule "environ-value": SCRIPT_NAME, PATH_INFO and lengths in their forms', async () => {
  await assertEnvironCaught("environ-value", (env) => (env.PATH_INFO = "x"));
  await assertEnvironCaught("environ-value", (env) => (env.SCRIPT_NAME = "/app/"));
  await assertEnvironCaught("environ-value", (env) => (env.SERVER_PROTOCOL = "HTTP/2"));
  await assertEnvironCaught("environ-value", (env) => (env.CONTENT_LENGTH = "-1"));
  await assertEnvironCaught("environ-value", (env) => (env.HTTP_CONTENT_TYPE = "text/plain"));
  await assertEnvironCaught("environ-value", (env) => {
    env.SCRIPT_NAME = "";
    env.PATH_INFO = "";
  });
});

function startsWith(status: unknown, headers: unknown): App {
  return (_environ, startResponse) => {
    startResponse(status as string, headers as [string, string][]);
    return ["x"];
  };
}

Deno.test('validate() rule "status-form": "200 OK" form, final statuses only', async () => {
  for (const status of ["200", "OK 200", "2000 OK", "100 Continue", 200, "200 OK\r\nX: y"]) {
    await assertCaught(startsWith(status, []), "status-form");
  }
});

Deno.test('validate() rule "headers-list": an array of [string, string]', async () => {
  for (const headers of [{ a: "b" }, [["a"]], [["a", "b", "c"]], [["a", 1]], ["a: b"]]) {
    await assertCaught(startsWith("200 OK", headers), "headers-list");
  }
});

Deno.test('validate() rule "header-name": names are tokens', async () => {
  for (const name of ["Bad Name", "", "X:Y", "Ünicode"]) {
    await assertCaught(startsWith("200 OK", [[name, "v"]]), "header-name");
  }
});

Deno.test('validate() rule "header-value": no CR, LF, NUL; Content-Length is a number', async () => {
  for (const pair of [["X", "a\r\nSet-Cookie: x"], ["X", "a\0"], ["Content-Length", "5 "]]) {
    await assertCaught(startsWith("200 OK", [pair]), "header-value");
  }
});

Deno.test('validate() rule "header-hop-by-hop": connection headers are the server\'s', async () => {
  for (const name of ["Connection", "transfer-encoding", "Keep-Alive", "Upgrade"]) {
    await assertCaught(startsWith("200 OK", [[name, "x"]]), "header-hop-by-hop");
  }
});

Deno.test('validate() rule "start-twice": a second startResponse() needs excInfo', async () => {
  await assertCaught((_environ, startResponse) => {
    startResponse("200 OK", []);
    startResponse("404 Not Found", []);
    return [];
  }, "start-twice");
});

Deno.test('validate() rule "start-before-body": startResponse() before the first byte', async () => {
  await assertCaught(() => ["early"], "start-before-body");
  await assertCaught(() =>
    (function* () {
      yield "early";
    })(), "start-before-body");
  await assertCaught(() => (async function* () {})(), "start-before-body");
});

Deno.test('validate() rule "body-type": an iterable, not a string or a number', async () => {
  for (const body of ["text", 42, null, { not: "iterable" }]) {
    await assertCaught((_environ, startResponse) => {
      startResponse("200 OK", []);
      return body as unknown as Body;
    }, "body-type");
  }
});

Deno.test('validate() rule "chunk-type": chunks are Uint8Array or string', async () => {
  const bad: unknown[] = [42, [1, 2], { length: 1 }, new Uint16Array(2)];
  for (const chunk of bad) {
    await assertCaught((_environ, startResponse) => {
      startResponse("200 OK", []);
      return [chunk as Chunk];
    }, "chunk-type");
    await assertCaught((_environ, startResponse) => {
      const write = startResponse("200 OK", []);
      write(chunk as Chunk);
      return [];
    }, "chunk-type");
  }
});

/** Serves an app that keeps its startResponse and write; returns them after the response. */
async function keptAfterResponse(): Promise<{ start: StartResponse; write: (c: Chunk) => void }> {
  let start!: StartResponse;
  let write!: (c: Chunk) => void;
  let closed = false;
  const app: App = (_environ, startResponse) => {
    start = startResponse;
    write = startResponse("200 OK", []);
    return Object.assign(["done"], { close: () => (closed = true) });
  };
  await withServer(app, async ({ port }) => {
    assert.equal(parseResponses(await rawExchange(port, [GET]))[0].body, "done");
    assert.ok(await waitFor(() => closed));
  });
  return { start, write };
}

function assertRule(fn: () => unknown, rule: Rule): void {
  assert.throws(fn, (error) => error instanceof ValidationError && error.rule === rule);
}

Deno.test('validate() rule "write-after-end": no write() once the body is over', async () => {
  const { write } = await keptAfterResponse();
  assertRule(() => write("late"), "write-after-end");
});

Deno.test('validate() rule "call-after-close": no startResponse() after close()', async () => {
  const { start } = await keptAfterResponse();
  assertRule(() => start("200 OK", []), "call-after-close");
});

Deno.test('validate() rule "input-args": tsgi.input sizes are integers', async () => {
  for (const size of [1.5, "10", NaN]) {
    await assertCaught(async (environ, startResponse) => {
      await environ["tsgi.input"].read(size as number);
      return ok(environ, startResponse);
    }, "input-args");
  }
});

Deno.test('validate() rule "input-args": readInto() takes a Uint8Array', async () => {
  await assertCaught(async (environ, startResponse) => {
    await environ["tsgi.input"].readInto?.(new ArrayBuffer(8) as unknown as Uint8Array);
    return ok(environ, startResponse);
  }, "input-args");
});

Deno.test("validate() passes readInto() through only where the input has it", () => {
  let seen: Environ | null = null;
  const spy = validate((environ, startResponse) => {
    seen = environ;
    return ok(environ, startResponse);
  });
  const { readInto: _, ...withoutReadInto } = EMPTY_INPUT;
  for (const [input, has] of [[EMPTY_INPUT, true], [withoutReadInto, false]] as const) {
    spy(fakeEnviron({ "tsgi.input": input }), noStart);
    assert.equal(typeof (seen as Environ | null)?.["tsgi.input"].readInto === "function", has);
  }
});

Deno.test('validate() rule "errors-write": tsgi.errors takes strings', async () => {
  await assertCaught((environ, startResponse) => {
    environ["tsgi.errors"].write(42 as unknown as string);
    return ok(environ, startResponse);
  }, "errors-write");
  await assertCaught((environ, startResponse) => {
    environ["tsgi.errors"].writelines([new Uint8Array(1) as unknown as string]);
    return ok(environ, startResponse);
  }, "errors-write");
});

// The server-side rules: our server keeps them, so a hand-made server breaks them here.

function fakeEnviron(overrides: Partial<Environ> = {}): Environ {
  return {
    REQUEST_METHOD: "GET",
    SCRIPT_NAME: "",
    PATH_INFO: "/",
    QUERY_STRING: "",
    RAW_URI: "/",
    REQUEST_URI: "/",
    SERVER_NAME: "localhost",
    SERVER_PORT: "80",
    SERVER_PROTOCOL: "HTTP/1.1",
    REMOTE_ADDR: "127.0.0.1",
    REMOTE_PORT: "5000",
    "tsgi.version": [1, 0],
    "tsgi.url_scheme": "http",
    "tsgi.input": EMPTY_INPUT,
    "tsgi.errors": { write() {}, writelines() {}, flush() {} },
    "tsgi.multithread": false,
    "tsgi.multiprocess": false,
    "tsgi.run_once": false,
    ...overrides,
  };
}

const noStart: StartResponse = () => () => {};

Deno.test('validate() rule "server-input": tsgi.input resolves to bytes', async () => {
  const input = { ...EMPTY_INPUT, read: () => Promise.resolve("text" as unknown as Uint8Array) };
  const app = validate(async (environ, startResponse) => {
    await environ["tsgi.input"].read();
    return ok(environ, startResponse);
  });
  await assert.rejects(
    Promise.resolve(app(fakeEnviron({ "tsgi.input": input }), noStart)),
    (error) => error instanceof ValidationError && error.rule === "server-input",
  );
});

Deno.test('validate() rule "server-input": readInto() resolves to a count that fits', async () => {
  const input = { ...EMPTY_INPUT, readInto: () => Promise.resolve(9) };
  const app = validate(async (environ, startResponse) => {
    await environ["tsgi.input"].readInto?.(new Uint8Array(8));
    return ok(environ, startResponse);
  });
  await assert.rejects(
    Promise.resolve(app(fakeEnviron({ "tsgi.input": input }), noStart)),
    (error) => error instanceof ValidationError && error.rule === "server-input",
  );
});

Deno.test('validate() rule "server-close-twice": the server calls close() once', () => {
  const body = validate(ok)(fakeEnviron(), noStart) as Body & { close(): void };
  body.close();
  assertRule(() => body.close(), "server-close-twice");
});

Deno.test('validate() rule "server-iterate-after-close": no reading after close()', async () => {
  const app = validate((_environ, startResponse) => {
    startResponse("200 OK", []);
    return (function* () {
      yield "a";
      yield "b";
    })();
  });
  const body = app(fakeEnviron(), noStart) as Iterable<Chunk> & { close(): void };
  const chunks = body[Symbol.iterator]();
  assert.equal(chunks.next().value, "a");
  body.close();
  assertRule(() => chunks.next(), "server-iterate-after-close");
  const asyncApp = validate((_environ, startResponse) => {
    startResponse("200 OK", []);
    return (async function* () {
      yield "a";
    })();
  });
  const asyncBody = asyncApp(fakeEnviron(), noStart) as AsyncIterable<Chunk> & { close(): void };
  const asyncChunks = asyncBody[Symbol.asyncIterator]();
  asyncBody.close();
  await assert.rejects(
    asyncChunks.next(),
    (error) => error instanceof ValidationError && error.rule === "server-iterate-after-close",
  );
});
