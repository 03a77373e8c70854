// Red team: a narrowed pool (permission flags after APP) with --reuse-port on port 0. Each
// worker binds the address itself, so its set-up's net grant must name the port the master
// resolved, not the ":0" of --bind. Before the fix every worker failed to boot ("Requires net
// access to 127.0.0.1:PORT") and the master gave up: the pool never listened.

import assert from "node:assert/strict";
import { get, startPool, stopPool } from "../support/pool.ts";

Deno.test("a narrowed --reuse-port pool bound to port 0 boots and serves", async () => {
  const pool = await startPool([
    "tests/fixtures/workers_app.ts",
    "--workers",
    "2",
    "--reuse-port",
    "--allow-env=HOME",
  ], 2);
  try {
    assert.match(pool.log(), /with SO_REUSEPORT/);
    assert.match(await get(pool.port), /^\d+ true$/);
  } finally {
    assert.equal((await stopPool(pool)).code, 0);
  }
});
