// WebSockets under the worker pool, run as a user runs it (`main.ts APP --workers 2`): every
// worker serves sockets (Deno's own WebSocket client, echo of text and binary, the "pid" reply
// naming the worker that holds the socket), and SIGTERM to the master closes every open socket
// with 1001 before the pool exits.

import assert from "node:assert/strict";
import { fromFileUrl } from "../support/paths.ts";
import { startPool, stopPool } from "../support/pool.ts";
import { deflateClient, HAS_PYTHON_WEBSOCKETS } from "../support/ws_deflate_client.ts";

const APP = fromFileUrl(new URL("../fixtures/ws_echo_app.ts", import.meta.url));
const MAX_SOCKETS = 64;
const BATCH = 8;

interface Client {
  ws: WebSocket;
  /** The next message received. */
  next(): Promise<string | ArrayBuffer>;
  closed: Promise<CloseEvent>;
}

async function connect(port: number): Promise<Client> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/`);
  ws.binaryType = "arraybuffer";
  const inbox: (string | ArrayBuffer)[] = [];
  const waiting: ((data: string | ArrayBuffer) => void)[] = [];
  ws.onmessage = (event) => {
    const waiter = waiting.shift();
    if (waiter) waiter(event.data);
    else inbox.push(event.data);
  };
  const closed = new Promise<CloseEvent>((resolve) => ws.addEventListener("close", resolve));
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = () => reject(new Error("the socket did not open"));
  });
  const next = () =>
    inbox.length > 0
      ? Promise.resolve(inbox.shift()!)
      : new Promise<string | ArrayBuffer>((resolve) => waiting.push(resolve));
  return { ws, next, closed };
}

Deno.test("a pool of 2 workers serves WebSockets; SIGTERM to the master closes them with 1001", async () => {
  const pool = await startPool([APP, "--workers", "2", "--graceful-timeout", "5"], 2);
  const clients: Client[] = [];
  try {
    const workers = pool.readyWorkers();
    assert.equal(workers.length, 2);
    const seen = new Map<number, number>();
    // Sockets until both workers hold some (the kernel's queue decides who accepts: one at a
    // time, it may wake the same idle worker every time; a batch at once keeps one busy).
    for (let i = 0; i < MAX_SOCKETS && seen.size < 2; i += BATCH) {
      const batch = await Promise.all(Array.from({ length: BATCH }, () => connect(pool.port)));
      for (const client of batch) {
        clients.push(client);
        client.ws.send("pid");
        const pid = Number(await client.next());
        assert.ok(workers.includes(pid), `pid ${pid} is not a worker of ${workers}`);
        seen.set(pid, (seen.get(pid) ?? 0) + 1);
      }
    }
    assert.equal(seen.size, 2, `only worker(s) ${[...seen.keys()]} answered`);
    // Every socket echoes text and binary, on whichever worker it lives.
    for (const client of clients) {
      client.ws.send("hello");
      client.ws.send(Uint8Array.of(1, 2, 3, 250));
      assert.equal(await client.next(), "hello");
      assert.deepEqual([...new Uint8Array(await client.next() as ArrayBuffer)], [1, 2, 3, 250]);
    }
  } catch (error) {
    for (const client of clients) client.ws.close();
    await stopPool(pool);
    throw error;
  }
  // A graceful stop of the whole pool: every open socket hears 1001 (going away).
  const status = await stopPool(pool);
  const events = await Promise.all(clients.map((c) => c.closed));
  assert.deepEqual(
    events.map((e) => e.code),
    clients.map(() => 1001),
    pool.log().slice(-2000),
  );
  assert.ok(events.every((e) => e.wasClean), "every close was a clean close handshake");
  assert.equal(status.code, 0, pool.log().slice(-2000));
});

Deno.test({
  name: "--ws-deflate reaches every worker of a pool (python's websockets negotiates it)",
  ignore: !HAS_PYTHON_WEBSOCKETS,
  async fn() {
    const pool = await startPool([APP, "--workers", "2", "--ws-deflate"], 2);
    try {
      const workers = pool.readyWorkers();
      const seen = new Set<number>();
      for (let i = 0; i < MAX_SOCKETS && seen.size < 2; i += BATCH) {
        const results = await Promise.all(
          Array.from({ length: BATCH }, () =>
            deflateClient(pool.port, {
              messages: [{ kind: "text", literal: "pid" }, { kind: "text", size: 4096 }],
            })),
        );
        for (const result of results) {
          assert.equal(
            result.extensions,
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
          );
          assert.deepEqual(result.matched, [true]);
          seen.add(Number(result.literals[0]));
        }
      }
      assert.deepEqual([...seen].sort(), [...workers].sort());
    } finally {
      await stopPool(pool);
    }
  },
});
