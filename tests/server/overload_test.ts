// Admission control and slow clients: --max-connections, --max-pending, --write-timeout.

import assert from "node:assert/strict";
import type { App, Body } from "../../src/tsgi/types.ts";
import { parseResponses, rawExchange, waitFor, withServer } from "../support/server.ts";

const hello: App = (_environ, startResponse) => {
  startResponse("200 OK", [["Content-Type", "text/plain"]]);
  return ["hello"];
};

async function openKeptAlive(port: number): Promise<Deno.Conn> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  const n = await conn.read(new Uint8Array(1024));
  assert.ok(n && n > 0, "the first connections are served");
  return conn;
}

Deno.test("server queues connections past --max-connections and answers 503 past --max-pending", async () => {
  await withServer(hello, async ({ port, handle }) => {
    const first = await openKeptAlive(port);
    const second = await openKeptAlive(port);
    const waiting = rawExchange(port, [
      "GET /third HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ]);
    assert.ok(await waitFor(() => handle.server.pendingCount === 1), "the third one waits");
    const refused = parseResponses(
      await rawExchange(port, ["GET / HTTP/1.1\r\nHost: x\r\n\r\n"]),
    );
    assert.equal(refused[0].status, 503);
    assert.equal(refused[0].headers["retry-after"], "1");
    first.close();
    const served = parseResponses(await waiting);
    assert.equal(served[0].status, 200, "served once a slot is free");
    second.close();
  }, { maxConnections: 2, maxPending: 1 });
});

Deno.test("server drops a client that stops reading after --write-timeout and closes the body", async () => {
  let closed = false;
  const app: App = (_environ, startResponse) => {
    startResponse("200 OK", []);
    const chunk = new Uint8Array(256 * 1024);
    return {
      async *[Symbol.asyncIterator]() {
        while (true) yield chunk;
      },
      close: () => (closed = true),
    } as Body;
  };
  await withServer(app, async ({ port, errors }) => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await conn.write(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    // The client reads nothing: the socket buffers fill and the server's write stalls.
    assert.ok(await waitFor(() => closed, 10_000), "body closed after the write timeout");
    assert.match(errors.text, /Write timed out/);
    conn.close();
  }, { writeTimeout: 0.5 });
});

Deno.test("a graceful stop answers connections still waiting for a slot with 503, not a reset", async () => {
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let started!: () => void;
  const serving = new Promise<void>((resolve) => (started = resolve));
  const slow: App = async (_environ, startResponse) => {
    started();
    await released;
    startResponse("200 OK", [["Content-Type", "text/plain"]]);
    return ["done"];
  };
  await withServer(slow, async ({ port, handle, errors }) => {
    const busy = rawExchange(port, ["GET /busy HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"]);
    await serving;
    const waiting = rawExchange(port, [
      "POST /queued HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    ]);
    assert.ok(await waitFor(() => handle.server.pendingCount === 1), "the second one waits");
    const stopped = handle.shutdown(5000);
    const refused = parseResponses(await waiting);
    assert.equal(refused.length, 1, "the waiting connection got an answer");
    assert.equal(refused[0].status, 503);
    assert.equal(refused[0].headers["retry-after"], "1");
    release();
    assert.equal(parseResponses(await busy)[0].status, 200, "the one in progress finished");
    await stopped;
    assert.match(errors.text, /503 sent to 1 connection\(s\) still waiting/);
  }, { maxConnections: 1, maxPending: 4 });
});
