// The request-side rules of RFC 9110/9112 that the parser enforces (docs/http.md), each checked
// over a raw socket against a real server: the status, `Connection: close`, the connection
// closed by the server at once, and the app never called for a refused request.

import assert from "node:assert/strict";
import type { App } from "../../src/tsgi/types.ts";
import { parseResponses, rawExchange, withServer } from "../support/server.ts";

/** Well under the header timeout (10 s): an answer this fast did not wait for it. */
const PROMPT_MS = 2000;

/** An app that records what it is called with and answers 200 with the method and Host. */
function recorder(): { app: App; calls: string[] } {
  const calls: string[] = [];
  const app: App = (environ, startResponse) => {
    calls.push(`${environ.REQUEST_METHOD} ${environ.RAW_URI} ${environ.HTTP_HOST}`);
    startResponse("200 OK", [["Content-Type", "text/plain"]]);
    return [`${environ.REQUEST_METHOD} ${environ.HTTP_HOST}`];
  };
  return { app, calls };
}

/** Sends `raw` without closing the write side; the server must answer and close by itself. */
async function exchange(port: number, raw: string) {
  const began = performance.now();
  const text = await rawExchange(port, [raw], PROMPT_MS * 2);
  return { text, elapsed: performance.now() - began };
}

/** Asserts that `raw` gets `status`, then the server closes at once, the app never called. */
async function assertRefused(raw: string, status: number): Promise<void> {
  const { app, calls } = recorder();
  await withServer(app, async ({ port }) => {
    const { text, elapsed } = await exchange(port, raw);
    const responses = parseResponses(text);
    assert.equal(responses.length, 1, `${JSON.stringify(raw)}: ${text}`);
    assert.equal(responses[0].status, status, `${JSON.stringify(raw)}: ${text}`);
    assert.equal(responses[0].headers.connection, "close");
    assert.ok(elapsed < PROMPT_MS, `closed after ${elapsed.toFixed(0)} ms`);
    assert.deepEqual(calls, []);
  });
}

const INVALID_HOSTS = [
  "a.example, evil.example",
  "a .example",
  "evil.example/a",
  "user:pw@evil.example",
  "evil.example?.a.example",
  "evil.example#.a.example",
  "a.example:65536",
  "a.example:000080",
  "a.example:",
  "::1",
];

Deno.test("RFC 9112 §3.2: an invalid Host gets 400 and the connection closes", async () => {
  for (const host of INVALID_HOSTS) {
    await assertRefused(`GET / HTTP/1.1\r\nHost: ${host}\r\n\r\n`, 400);
  }
});

Deno.test("RFC 9112 §3.2: two Host fields, or none on HTTP/1.1, get 400", async () => {
  await assertRefused("GET / HTTP/1.1\r\nHost: a.example\r\nHost: evil.example\r\n\r\n", 400);
  await assertRefused("GET / HTTP/1.0\r\nHost: a.example\r\nHost: a.example\r\n\r\n", 400);
  await assertRefused("GET / HTTP/1.1\r\n\r\n", 400);
});

Deno.test("RFC 9110 §7.2: a valid Host is served as sent; an empty one is valid", async () => {
  const { app, calls } = recorder();
  await withServer(app, async ({ port }) => {
    const hosts = ["[::1]:8080", "192.0.2.1", "xn--caf-dma.example:443", ""];
    const raw = hosts.map((host) => `GET / HTTP/1.1\r\nHost: ${host}\r\n\r\n`).join("");
    const { text } = await exchange(
      port,
      raw + "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert.deepEqual(parseResponses(text).map((r) => r.status), [200, 200, 200, 200, 200]);
    assert.deepEqual(calls, [...hosts, "x"].map((host) => `GET / ${host}`));
  });
});

Deno.test("RFC 9110 §4.2.4: userinfo in an absolute-form target gets 400", async () => {
  await assertRefused("GET http://user:pw@a.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n", 400);
  await assertRefused(
    "GET http://a.example@evil.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n",
    400,
  );
});

Deno.test("RFC 9110 §4.2.1: an absolute-form target without a host gets 400", async () => {
  await assertRefused("GET http:///a HTTP/1.1\r\nHost: a.example\r\n\r\n", 400);
});

Deno.test("RFC 9112 §3.2.2: absolute-form's authority is the Host the app sees; Host is still checked", async () => {
  const { app, calls } = recorder();
  await withServer(app, async ({ port }) => {
    const { text } = await exchange(
      port,
      "GET http://a.example:8080/p HTTP/1.1\r\nHost: b.example\r\nConnection: close\r\n\r\n",
    );
    assert.equal(parseResponses(text)[0].status, 200);
    assert.deepEqual(calls, ["GET http://a.example:8080/p a.example:8080"]);
  });
  await assertRefused("GET http://a.example/ HTTP/1.1\r\nHost: a b\r\n\r\n", 400);
});

Deno.test("RFC 9112 §2.3: a request line without a version (HTTP/0.9) gets 400 at once", async () => {
  // No blank line follows: the answer must not wait for a head that never comes.
  await assertRefused("GET /\r\n", 400);
  await assertRefused("GET /index.html\r\nHost: a.example\r\n", 400);
});

Deno.test("RFC 9112 §2.3: a versionless line after a served request gets 400 at once", async () => {
  const { app, calls } = recorder();
  await withServer(app, async ({ port }) => {
    const { text, elapsed } = await exchange(
      port,
      "GET /first HTTP/1.1\r\nHost: h\r\n\r\nGET /\r\n",
    );
    assert.deepEqual(parseResponses(text).map((r) => r.status), [200, 400]);
    assert.ok(elapsed < PROMPT_MS, `closed after ${elapsed.toFixed(0)} ms`);
    assert.deepEqual(calls, ["GET /first h"]);
  });
});

Deno.test("RFC 9110 §9.1: every token is a method, # included; anything else is 400", async () => {
  const { app, calls } = recorder();
  await withServer(app, async ({ port }) => {
    const methods = ["G#T", "#", "!#$%&'*+-.^_`|~09AZaz", "get"];
    const raw = methods.map((method) => `${method} / HTTP/1.1\r\nHost: h\r\n\r\n`).join("");
    const { text } = await exchange(
      port,
      raw + "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    );
    assert.deepEqual(parseResponses(text).map((r) => r.status), [200, 200, 200, 200, 200]);
    assert.deepEqual(calls, [...methods, "GET"].map((method) => `${method} / h`));
  });
  for (const method of ["G@T", "G(T)", "G/T", "G\x7fT", "G\xe9T"]) {
    await assertRefused(`${method} / HTTP/1.1\r\nHost: h\r\n\r\n`, 400);
  }
});

Deno.test("an error answer survives a client still sending: the server half-closes, then drops the rest (RFC 9112 §9.6)", async () => {
  const { app } = recorder();
  await withServer(app, async ({ port }) => {
    for (let round = 0; round < 5; round++) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      const head = "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n";
      await conn.write(new TextEncoder().encode(head));
      // Keep sending after the 413 is on its way: a close of both sides now would reset the
      // connection and the client could lose the answer.
      const chunk = new Uint8Array(64 * 1024);
      const sending = (async () => {
        for (let i = 0; i < 4; i++) await conn.write(chunk).catch(() => 0);
      })();
      await sending;
      const answer = await new Response(conn.readable).text().catch((e) => `read failed: ${e}`);
      assert.match(answer, /^HTTP\/1\.1 413 /, `round ${round}: ${answer.slice(0, 80)}`);
    }
  }, { maxBodySize: 1024 });
});

Deno.test("a head over --limit-request-head (64 KiB) gets 431, though each line is in bounds", async () => {
  const fields = Array.from({ length: 90 }, (_, i) => `X-${i}: ${"v".repeat(1000)}\r\n`).join("");
  await assertRefused(`GET / HTTP/1.1\r\nHost: h\r\n${fields}\r\n`, 431);
});
