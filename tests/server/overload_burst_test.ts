// Bursts past capacity: with --max-connections N and --max-pending M, a burst of many more
// connections gets 503 with Retry-After for the excess and 200 for the rest; memory stays
// bounded; and the server serves normally the moment the burst is over.

import assert from "node:assert/strict";
import type { App } from "../../src/tsgi/types.ts";
import {
  isolateMemory,
  parseResponses,
  rawExchange,
  waitFor,
  withServer,
} from "../support/server.ts";

const BURST = 300;
/** A correctness bound on recovery, not a benchmark. */
const RECOVERY_BOUND_MS = 500;

interface Outcome {
  status: number;
  retryAfter?: string;
  connection?: string;
  /** What came back when it was not a response. */
  raw?: string;
}

/** One client of the burst: connect, ask, read to the end. Never throws. */
async function burstClient(port: number, i: number): Promise<Outcome> {
  try {
    const out = await rawExchange(port, [
      `GET /burst/${i} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
    ], 30_000);
    const [response] = parseResponses(out);
    return response
      ? {
        status: response.status,
        retryAfter: response.headers["retry-after"],
        connection: response.headers["connection"],
      }
      : { status: 0, raw: out };
  } catch (error) {
    return { status: -1, raw: String(error) };
  }
}

function tally(outcomes: Outcome[]): Record<number, number> {
  const counts: Record<number, number> = {};
  for (const o of outcomes) counts[o.status] = (counts[o.status] ?? 0) + 1;
  return counts;
}

/** Time from now to the first 200 on a fresh connection. */
async function timeToServe(port: number): Promise<number> {
  const began = performance.now();
  const out = await rawExchange(port, [
    "GET /after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
  ]);
  assert.equal(parseResponses(out)[0]?.status, 200, `after the burst: ${out}`);
  return performance.now() - began;
}

Deno.test("a burst past --max-connections and --max-pending: exactly the excess gets 503 + Retry-After", async () => {
  const MAX_CONNECTIONS = 20;
  const MAX_PENDING = 20;
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  let entered = 0;
  // Requests of the burst hold their slot until the gate opens, so admission is exact.
  const app: App = async (environ, startResponse) => {
    if (environ.PATH_INFO.startsWith("/burst/")) {
      entered++;
      await gate;
    }
    startResponse("200 OK", [["Content-Type", "text/plain"]]);
    return ["ok"];
  };
  await withServer(app, async ({ port, handle, errors }) => {
    const rssBefore = isolateMemory();
    const outcomes: Outcome[] = [];
    const clients = Array.from({ length: BURST }, (_, i) =>
      burstClient(port, i).then((o) => {
        outcomes.push(o);
        return o;
      }));
    const excess = BURST - MAX_CONNECTIONS - MAX_PENDING;
    assert.ok(
      await waitFor(() => outcomes.length >= excess, 30_000, 20),
      `answered while full: ${JSON.stringify(tally(outcomes))}`,
    );
    assert.equal(handle.server.connectionCount, MAX_CONNECTIONS, "served at once");
    assert.equal(handle.server.pendingCount, MAX_PENDING, "waiting for a slot");
    assert.equal(entered, MAX_CONNECTIONS);
    const rssPeak = isolateMemory();
    release();
    const all = await Promise.all(clients);
    const counts = tally(all);
    assert.deepEqual(counts, { 200: MAX_CONNECTIONS + MAX_PENDING, 503: excess });
    for (const o of all.filter((o) => o.status === 503)) {
      assert.equal(o.retryAfter, "1");
      assert.equal(o.connection, "close");
    }
    const recovery = await timeToServe(port);
    const growthMb = (rssPeak - rssBefore) / 2 ** 20;
    console.log(
      `burst of ${BURST}: ${JSON.stringify(counts)}; memory growth ${growthMb.toFixed(1)} MB; ` +
        `first request after the burst served in ${recovery.toFixed(1)} ms`,
    );
    assert.ok(growthMb < 100, `memory grew ${growthMb.toFixed(1)} MB`);
    assert.ok(recovery < RECOVERY_BOUND_MS, `recovery took ${recovery.toFixed(0)} ms`);
    // The first refusal is logged at once, the rest summed up in a line a second at most.
    const refusalsLogged = () =>
      [...errors.text.matchAll(
        /Over capacity \(\d+ open, \d+ waiting\): 503(?: sent to ([\d,]+) more)?/g,
      )]
        .reduce((sum, m) => sum + (m[1] ? Number(m[1].replaceAll(",", "")) : 1), 0);
    assert.ok(await waitFor(() => refusalsLogged() === excess, 5000), errors.text);
    const lines = errors.text.match(/Over capacity/g)?.length ?? 0;
    assert.ok(lines <= 4, `${lines} warning lines for ${excess} refusals`);
    assert.ok(await waitFor(() => handle.server.connectionCount === 0));
  }, { maxConnections: MAX_CONNECTIONS, maxPending: MAX_PENDING });
});

Deno.test("a burst against a busy fast app: every client gets 200 or 503, never a reset; recovery is immediate", async () => {
  const MAX_CONNECTIONS = 8;
  const MAX_PENDING = 8;
  const WAVES = 3;
  const app: App = async (_environ, startResponse) => {
    // Some work per request, so the burst outruns the slots.
    await new Promise((resolve) => setTimeout(resolve, 5));
    startResponse("200 OK", [["Content-Type", "text/plain"]]);
    return ["ok"];
  };
  await withServer(app, async ({ port, handle }) => {
    const rssBefore = isolateMemory();
    const recoveries: number[] = [];
    const counts: Record<number, number> = {};
    for (let wave = 0; wave < WAVES; wave++) {
      const all = await Promise.all(
        Array.from({ length: BURST }, (_, i) => burstClient(port, wave * BURST + i)),
      );
      for (const o of all) {
        assert.ok(
          o.status === 200 || (o.status === 503 && o.retryAfter === "1"),
          `a burst client got ${JSON.stringify(o)}`,
        );
        counts[o.status] = (counts[o.status] ?? 0) + 1;
      }
      recoveries.push(await timeToServe(port));
    }
    const growthMb = (isolateMemory() - rssBefore) / 2 ** 20;
    console.log(
      `${WAVES} bursts of ${BURST}: ${JSON.stringify(counts)}; memory growth ${
        growthMb.toFixed(1)
      } MB; recovery ${recoveries.map((r) => r.toFixed(1)).join(", ")} ms`,
    );
    assert.ok(counts[200] > 0 && counts[503] > 0, "both admitted and refused clients");
    assert.ok(growthMb < 100, `memory grew ${growthMb.toFixed(1)} MB`);
    assert.ok(Math.max(...recoveries) < RECOVERY_BOUND_MS, `recovery: ${recoveries}`);
    assert.ok(await waitFor(() => handle.server.connectionCount === 0));
    assert.equal(handle.server.pendingCount, 0);
  }, { maxConnections: MAX_CONNECTIONS, maxPending: MAX_PENDING, logLevel: "error" });
});
