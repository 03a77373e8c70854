// Red-team finding on the head read written as promise callbacks (src/server/connection.ts
// #readHead): a head that took more than one read was read by a callback that returned the
// next read's promise, so every read added a link to a promise chain held until the head was
// complete. A client sending its head a byte at a time made each connection hold ~100 B per
// byte (303 KiB after 3,000 bytes; up to 6.5 MB at the 64 KiB head limit, within the header
// timeout), where the async loop before held a constant ~16 KiB.

import assert from "node:assert/strict";
import { run } from "../support/process.ts";

const FIXTURE = new URL("./fixtures/head_trickle_heap.ts", import.meta.url).pathname;

Deno.test("redteam: a head sent a byte a read holds no memory per byte", async () => {
  const ran = await run(Deno.execPath(), [
    "run",
    "-A",
    "--v8-flags=--expose-gc",
    FIXTURE,
  ]);
  assert.equal(ran.code, 0, ran.stderr);
  const perConnection = Number(ran.stdout.trim());
  // 2,000 bytes: ~200 KiB per connection with the chain, ~16 KiB (buffers, scanner) without.
  assert.ok(
    perConnection < 80 * 1024,
    `each connection holds ${perConnection} B after 2,000 one-byte reads of its head`,
  );
});
