// The deadline clock (clock.ts) leaves out time the process did not run: a server whose event
// loop was held must not blame the client whose bytes waited in the socket meanwhile.

import assert from "node:assert/strict";
import { coarseNow } from "../../src/server/clock.ts";
import { bytes, withServer } from "../support/server.ts";
import type { App } from "../../src/tsgi/types.ts";

function holdEventLoop(ms: number): void {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    // Computing without awaiting, as a careless app does.
  }
}

/** Resolves once the deadline clock has ticked past `from`. */
async function nextTick(from: number): Promise<number> {
  while (coarseNow() === from) await new Promise((resolve) => setTimeout(resolve, 10));
  return coarseNow();
}

Deno.test("the deadline clock runs with the wall clock, and barely while the loop is held", async () => {
  const start = await nextTick(coarseNow());
  const wallStart = Date.now();
  await new Promise((resolve) => setTimeout(resolve, 300));
  const ran = (await nextTick(coarseNow())) - start;
  const wallRan = Date.now() - wallStart;
  // A busy machine may not run this process for a while: the clock then counts 250 ms at most.
  assert.ok(ran >= 250 && ran <= wallRan + 20, `the clock ran ${ran} ms in ${wallRan} ms`);

  const before = await nextTick(coarseNow());
  holdEventLoop(1200);
  const after = await nextTick(before);
  assert.ok(after - before <= 400, `a 1.2 s hold moved the deadline clock ${after - before} ms`);
});

Deno.test("a body wait across a held event loop is not a stalled client (no 408)", async () => {
  let firstRead!: () => void;
  const readFirst = new Promise<void>((resolve) => (firstRead = resolve));
  const app: App = async (environ, startResponse) => {
    const input = environ["tsgi.input"];
    const first = await input.read(1);
    firstRead();
    // The body's next read is in flight while the loop is held well past the body timeout.
    const next = input.read();
    holdEventLoop(1500);
    const rest = await next;
    startResponse("200 OK", [["Content-Type", "text/plain"]]);
    return [String(first.length + rest.length)];
  };
  await withServer(app, async ({ port }) => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await conn.write(bytes("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nx"));
    await readFirst;
    await conn.write(bytes("yzw"));
    const buf = new Uint8Array(4096);
    let reply = "";
    for (let n; (n = await conn.read(buf)) !== null;) {
      reply += new TextDecoder().decode(buf.subarray(0, n));
      if (reply.includes("\r\n\r\n") && /\r\n\r\n\d+$/.test(reply)) break;
    }
    conn.close();
    assert.match(reply, /^HTTP\/1\.1 200 /, reply);
    assert.match(reply, /\r\n\r\n4$/);
  }, { bodyTimeout: 0.5, logLevel: "info" });
});
