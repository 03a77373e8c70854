// Request bodies and responses that move too slowly (data_rate.ts): a body that stalls or
// trickles gets 408 while the app waits for it, an unread one is not drained without end, and
// a client that reads a response too slowly is dropped. Each case ran forever before.

import assert from "node:assert/strict";
import { bytes, parseResponses, withServer } from "../support/server.ts";
import type { App } from "../../src/tsgi/types.ts";

/** Reads the whole body, then answers with its length. */
const readsBody: App = async (environ, startResponse) => {
  const body = await environ["tsgi.input"].read();
  startResponse("200 OK", [["Content-Type", "text/plain"]]);
  return [String(body.length)];
};

/** Never looks at the body: the server must drain it, or give up the connection. */
const ignoresBody: App = (_environ, startResponse) => {
  startResponse("200 OK", [["Content-Type", "text/plain"]]);
  return ["hello"];
};

/** Short limits, so that a stalled body is cut off within a second or two. */
const SHORT = {
  bodyTimeout: 0.5,
  minBodyRate: 100,
  rateGrace: 0.5,
  logLevel: "info" as const,
};

/**
 * Sends `head`, then `trickle` one byte at a time every `everyMs`, and reads until the server
 * closes. Resolves with what was read; throws when the server has not closed by `boundMs`.
 */
async function slowClient(
  port: number,
  head: string,
  trickle: string,
  everyMs: number,
  boundMs = 8000,
): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(bytes(head));
  let open = true;
  const sending = (async () => {
    for (const c of trickle) {
      if (!open) return;
      await new Promise((resolve) => setTimeout(resolve, everyMs));
      if (!open) return;
      await conn.write(bytes(c)).catch(() => (open = false));
    }
  })();
  const received: number[] = [];
  const buf = new Uint8Array(4096);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const bound = new Promise<"bound">((resolve) => (timer = setTimeout(resolve, boundMs, "bound")));
  try {
    while (true) {
      const n = await Promise.race([conn.read(buf).catch(() => null), bound]);
      if (n === "bound") throw new Error(`the server kept the connection past ${boundMs} ms`);
      if (n === null) break;
      received.push(...buf.subarray(0, n));
    }
  } finally {
    open = false;
    clearTimeout(timer);
    try {
      conn.close();
    } catch {
      // The server closed it.
    }
    await sending;
  }
  return String.fromCharCode(...received);
}

const post = (framing: string) => `POST / HTTP/1.1\r\nHost: x\r\n${framing}\r\n`;

Deno.test("a Content-Length body that stops after one byte gets 408 and a close", async () => {
  await withServer(readsBody, async ({ port, errors }) => {
    const reply = await slowClient(port, post("Content-Length: 100\r\n") + "x", "", 0);
    const [response] = parseResponses(reply);
    assert.equal(response.status, 408);
    assert.equal(response.headers.connection, "close");
    assert.match(errors.text, /Request body too slow from 127\.0\.0\.1: stalled/);
  }, SHORT);
});

Deno.test("a head that promises a body and sends none gets 408", async () => {
  await withServer(readsBody, async ({ port }) => {
    const reply = await slowClient(port, post("Content-Length: 10\r\n"), "", 0);
    assert.equal(parseResponses(reply)[0].status, 408);
  }, SHORT);
});

Deno.test("a chunk size line and then silence gets 408", async () => {
  await withServer(readsBody, async ({ port }) => {
    const reply = await slowClient(port, post("Transfer-Encoding: chunked\r\n") + "5\r\nab", "", 0);
    assert.equal(parseResponses(reply)[0].status, 408);
  }, SHORT);
});

Deno.test("a body that trickles below --min-body-rate gets 408 once the grace is over", async () => {
  // 10 bytes a second against a floor of 100: never a stall, always too slow.
  const options = { ...SHORT, bodyTimeout: 0 };
  await withServer(readsBody, async ({ port, errors }) => {
    const reply = await slowClient(port, post("Content-Length: 1000\r\n"), "x".repeat(200), 100);
    assert.equal(parseResponses(reply)[0].status, 408);
    assert.match(errors.text, /below the minimum rate/);
  }, options);
});

Deno.test("a body that keeps up with the rate is read whole, however slowly it started", async () => {
  const body = "y".repeat(400);
  await withServer(readsBody, async ({ port }) => {
    // 400 bytes at 4 per 10 ms: 400 bytes a second against a floor of 100.
    const head = post(`Content-Length: ${body.length}\r\nConnection: close\r\n`);
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await conn.write(bytes(head));
    for (let i = 0; i < body.length; i += 4) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      await conn.write(bytes(body.slice(i, i + 4)));
    }
    const reply = await new Response(conn.readable).text();
    const [response] = parseResponses(reply);
    assert.equal(response.status, 200);
    assert.equal(response.body, "400");
  }, SHORT);
});

Deno.test("an unread body that stalls is not drained without end: the answer, then close", async () => {
  await withServer(ignoresBody, async ({ port }) => {
    const reply = await slowClient(port, post("Content-Length: 200000\r\n") + "z", "", 0);
    const [response] = parseResponses(reply);
    assert.equal(response.status, 200);
    assert.equal(response.body, "hello");
  }, SHORT);
});

Deno.test("a trickled unread body is dropped by the rate rules while draining", async () => {
  await withServer(ignoresBody, async ({ port }) => {
    const reply = await slowClient(
      port,
      post("Content-Length: 100000\r\n"),
      "w".repeat(300),
      50,
    );
    assert.equal(parseResponses(reply)[0].status, 200);
  }, { ...SHORT, bodyTimeout: 0 });
});

Deno.test("an app that does not wait for the body is not hurried by the body's rate", async () => {
  // The body comes at once, the app takes its time: time spent by the app is not the client's.
  const slowApp: App = async (environ, startResponse) => {
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const body = await environ["tsgi.input"].read();
    startResponse("200 OK", [["Content-Type", "text/plain"]]);
    return [String(body.length)];
  };
  await withServer(slowApp, async ({ port }) => {
    const reply = await slowClient(
      port,
      post("Content-Length: 3\r\nConnection: close\r\n") + "abc",
      "",
      0,
    );
    const [response] = parseResponses(reply);
    assert.equal(response.status, 200);
    assert.equal(response.body, "3");
  }, SHORT);
});

Deno.test("a client that reads a response below --min-response-rate is dropped", async () => {
  const big = new Uint8Array(8 * 1024 * 1024).fill(0x61);
  const app: App = (_environ, startResponse) => {
    startResponse("200 OK", [["Content-Type", "application/octet-stream"]]);
    return [big];
  };
  await withServer(app, async ({ port, errors }) => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await conn.write(bytes("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    // 4 KiB every 50 ms: 80 KiB/s, steady progress, against a floor of 1 MiB/s. What the
    // kernel buffered still arrives after the server gives up, so the log is what says so.
    const buf = new Uint8Array(4096);
    let total = 0;
    const until = Date.now() + 10_000;
    while (Date.now() < until && !/Write too slow/.test(errors.text)) {
      const n = await conn.read(buf).catch(() => null);
      if (n === null) break;
      total += n;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    conn.close();
    assert(total < big.length, `the whole ${big.length} bytes were delivered`);
    assert.match(errors.text, /Write too slow: 127\.0\.0\.1 reads too slowly/);
  }, { minResponseRate: 1024 * 1024, rateGrace: 0.5, logLevel: "info" });
});
