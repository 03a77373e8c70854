// Slow clients: slowloris (heads trickled in a byte at a time) and slow readers (a response
// nobody reads). Neither may starve other clients, and each is cut off by its timeout:
// --header-timeout and --write-timeout.

import assert from "node:assert/strict";
import type { App, Body } from "../../src/tsgi/types.ts";
import {
  isolateMemory,
  parseResponses,
  rawExchange,
  waitFor,
  withServer,
} from "../support/server.ts";

const hello: App = (_environ, startResponse) => {
  startResponse("200 OK", [["Content-Type", "text/plain"]]);
  return ["hello"];
};

const SLOW_CONNECTIONS = 500;
const BYTE_EVERY_MS = 200;
const HEADER_TIMEOUT_S = 2;
const SAMPLES = 20;
const PACE_MS = 50;
/** A correctness bound, not a benchmark: a starved client would wait for seconds. */
const LATENCY_BOUND_MS = 500;

interface Slow {
  conn: Deno.Conn;
  sent: number;
  firstByteAt: number;
  closedAt: number;
  received: number;
}

/** Opens up to `n` connections; stops early (and says so) if the fd limit is reached. */
async function openMany(port: number, n: number): Promise<Deno.Conn[]> {
  const conns: Deno.Conn[] = [];
  for (let i = 0; i < n; i++) {
    try {
      conns.push(await Deno.connect({ hostname: "127.0.0.1", port }));
    } catch (error) {
      console.warn(`Stopped at ${conns.length} connections: ${error}`);
      break;
    }
  }
  return conns;
}

Deno.test("500 slowloris connections do not delay another client, and each is closed at --header-timeout", async () => {
  let served = 0;
  const app: App = (environ, startResponse) => {
    served++;
    return hello(environ, startResponse);
  };
  await withServer(app, async ({ port, handle, errors }) => {
    // A head that cannot finish in time at one byte per interval.
    const head = new TextEncoder().encode(
      `GET /slow HTTP/1.1\r\nHost: x\r\nUser-Agent: ${"s".repeat(200)}\r\n\r\n`,
    );
    const conns = await openMany(port, SLOW_CONNECTIONS);
    assert.ok(conns.length >= 400, `only ${conns.length} connections could be opened`);
    const slow: Slow[] = conns.map((conn) => ({
      conn,
      sent: 0,
      firstByteAt: 0,
      closedAt: 0,
      received: 0,
    }));
    const readers = slow.map(async (s) => {
      const buf = new Uint8Array(1024);
      while (true) {
        const n = await s.conn.read(buf).catch(() => null);
        if (n === null) break;
        s.received += n;
      }
      s.closedAt = performance.now();
    });
    const drip = async () => {
      await Promise.all(slow.map(async (s) => {
        if (s.closedAt > 0 || s.sent >= head.length) return;
        try {
          await s.conn.write(head.subarray(s.sent, s.sent + 1));
          if (s.sent++ === 0) s.firstByteAt = performance.now();
        } catch {
          // Closed by the server: the reader notes when.
        }
      }));
    };
    await drip();
    const dripper = setInterval(drip, BYTE_EVERY_MS);
    try {
      assert.ok(
        await waitFor(() => handle.server.connectionCount >= slow.length, 5000),
        `server holds ${handle.server.connectionCount} of ${slow.length} slow connections`,
      );

      // Another client, meanwhile: each request on a fresh connection, timed, one every
      // PACE_MS (load pacing, not synchronisation) so they span the drip's first second.
      const latencies: number[] = [];
      for (let i = 0; i < SAMPLES; i++) {
        if (i > 0) await new Promise((resolve) => setTimeout(resolve, PACE_MS));
        const began = performance.now();
        const out = await rawExchange(port, [
          `GET /fast/${i} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
        ]);
        latencies.push(performance.now() - began);
        assert.equal(parseResponses(out)[0].status, 200);
      }
      const held = slow.filter((s) => s.closedAt === 0).length;
      latencies.sort((a, b) => a - b);
      const p99 = latencies[Math.ceil(latencies.length * 0.99) - 1];
      console.log(
        `${held} slowloris connections held; normal client: median ${
          latencies[latencies.length >> 1].toFixed(1)
        } ms, p99 ${p99.toFixed(1)} ms over ${SAMPLES} requests`,
      );
      assert.equal(held, slow.length, "the slow connections were all open while measuring");
      assert.ok(p99 < LATENCY_BOUND_MS, `p99 latency ${p99.toFixed(0)} ms`);

      // Every slow connection is closed once its header timeout passes.
      const limit = (HEADER_TIMEOUT_S + 4) * 1000;
      assert.ok(
        await waitFor(() => slow.every((s) => s.closedAt > 0), limit, 50),
        `${slow.filter((s) => s.closedAt === 0).length} slow connections still open`,
      );
      await Promise.all(readers);
      const lifetimes = slow.map((s) => s.closedAt - s.firstByteAt).sort((a, b) => a - b);
      console.log(
        `slowloris connections closed ${(lifetimes[0] / 1000).toFixed(2)}–${
          (lifetimes.at(-1)! / 1000).toFixed(2)
        } s after their first byte (--header-timeout ${HEADER_TIMEOUT_S})`,
      );
      assert.ok(lifetimes[0] >= HEADER_TIMEOUT_S * 1000 - 300, `closed early: ${lifetimes[0]} ms`);
      assert.ok(slow.every((s) => s.sent < head.length), "no slow head was ever completed");
      assert.ok(slow.every((s) => s.received === 0), "a timed-out head gets no response");
      assert.equal(served, SAMPLES, "only the normal client's requests reached the app");
      const logged = errors.text.match(/Request head not received in time/g)?.length ?? 0;
      assert.equal(logged, slow.length, "one log line per timed-out connection");
      assert.ok(await waitFor(() => handle.server.connectionCount === 0));
    } finally {
      clearInterval(dripper);
      for (const s of slow) {
        try {
          s.conn.close();
        } catch {
          // Closed already.
        }
      }
      await Promise.all(readers);
    }
  }, { headerTimeout: HEADER_TIMEOUT_S, maxConnections: 2000 });
});

Deno.test("slow readers of an endless response are dropped after --write-timeout, memory bounded", async () => {
  const READERS = 20;
  const WRITE_TIMEOUT_S = 1;
  let closed = 0;
  let chunks = 0;
  const chunk = new Uint8Array(64 * 1024).fill(0x61);
  const app: App = (environ, startResponse) => {
    if (environ.PATH_INFO !== "/endless") return hello(environ, startResponse);
    startResponse("200 OK", [["Content-Type", "application/octet-stream"]]);
    return {
      async *[Symbol.asyncIterator]() {
        while (true) {
          chunks++;
          yield chunk;
        }
      },
      close: () => void closed++,
    } as Body;
  };
  await withServer(app, async ({ port, handle, errors }) => {
    const rssBefore = isolateMemory();
    let rssPeak = rssBefore;
    const began = performance.now();
    const conns = await Promise.all(
      Array.from({ length: READERS }, () => Deno.connect({ hostname: "127.0.0.1", port })),
    );
    const request = new TextEncoder().encode("GET /endless HTTP/1.1\r\nHost: x\r\n\r\n");
    await Promise.all(conns.map((c) => c.write(request)));
    // The clients read nothing: the socket buffers fill, then the server's writes stall.
    const dropped = await waitFor(
      () => {
        rssPeak = Math.max(rssPeak, isolateMemory());
        return closed === READERS;
      },
      20_000,
      50,
    );
    const elapsed = performance.now() - began;
    for (const c of conns) c.close();
    const growthMb = (rssPeak - rssBefore) / 2 ** 20;
    console.log(
      `${READERS} slow readers dropped after ${(elapsed / 1000).toFixed(2)} s ` +
        `(--write-timeout ${WRITE_TIMEOUT_S}); ${chunks} chunks of 64 KiB produced; ` +
        `peak memory growth ${growthMb.toFixed(1)} MB`,
    );
    assert.ok(dropped, `bodies closed: ${closed} of ${READERS}`);
    assert.ok(elapsed >= WRITE_TIMEOUT_S * 1000, "not dropped before the write timeout");
    assert.equal(closed, READERS, "close() called once per body");
    assert.ok(growthMb < 100, `memory grew ${growthMb.toFixed(1)} MB`);
    const logged = errors.text.match(/Write timed out: .* reads too slowly/g)?.length ?? 0;
    assert.equal(logged, READERS);
    assert.ok(await waitFor(() => handle.server.connectionCount === 0));
    // The endless bodies are no longer pulled, and the server serves on.
    const after = chunks;
    for (let i = 0; i < 5; i++) {
      const out = await rawExchange(port, [
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
      ]);
      assert.match(out, /^HTTP\/1\.1 200 OK/, "still serving");
    }
    assert.equal(chunks, after, "an endless body was iterated after its connection was dropped");
  }, { writeTimeout: WRITE_TIMEOUT_S });
});
