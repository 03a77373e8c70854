// Red team: a narrowed pool with --reuse-port (permission flags after APP). A worker that stops
// leaves its SO_REUSEPORT group at an instant when its accept queue is empty (src/server/listener_close.ts),
// through libc; a narrowed worker has given FFI back and closed tsgi's libc before its app was
// imported, so the leave must not need FFI at stop time. Attack: connections queued on a
// stopping worker whose event loop is busy; before the fix, a narrowed worker closed its
// listener with them in the queue and the kernel reset every one.

import assert from "node:assert/strict";
import { startPool, stopPool } from "../support/pool.ts";
import { waitUntil } from "../support/process.ts";

const APP = "tests/fixtures/busy_app.ts";
const QUEUED = 20;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Sends one request on a connection of its own; the status line, or the error's name. */
async function exchange(conn: Deno.Conn, path: string): Promise<string> {
  try {
    await conn.write(
      encoder.encode(`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`),
    );
    let text = "";
    const buf = new Uint8Array(4096);
    while (true) {
      const n = await conn.read(buf);
      if (n === null) break;
      text += decoder.decode(buf.subarray(0, n));
    }
    return text.split("\r\n")[0] || "closed without an answer";
  } catch (error) {
    return error instanceof Error ? error.name : String(error);
  } finally {
    try {
      conn.close();
    } catch {
      // Closed.
    }
  }
}

for (const narrowed of [false, true]) {
  const name = narrowed ? "narrowed (--allow-env=HOME)" : "not narrowed";
  Deno.test(`--reuse-port, ${name}: a stopping worker's queued connections are served`, async () => {
    const flags = narrowed ? ["--allow-env=HOME"] : [];
    const pool = await startPool([APP, "--workers", "1", "--reuse-port", ...flags], 1);
    try {
      const [worker] = pool.readyWorkers();
      const busy = exchange(
        await Deno.connect({ hostname: "127.0.0.1", port: pool.port }),
        "/busy?ms=2500",
      );
      await waitUntil(
        "the worker is busy",
        () => pool.log().includes(`busy request started in ${worker}`),
      );
      Deno.kill(worker, "SIGTERM");
      // Queued in the kernel while the worker's event loop is blocked: it is the only one in
      // the group, so every connection goes to its queue.
      const queued: Promise<string>[] = [];
      for (let i = 0; i < QUEUED; i++) {
        queued.push(exchange(await Deno.connect({ hostname: "127.0.0.1", port: pool.port }), "/"));
      }
      const statuses = await Promise.all(queued);
      assert.match(await busy, /200/);
      const failed = statuses.filter((s) => !s.includes("200"));
      assert.deepEqual(
        failed,
        [],
        `${failed.length} of ${QUEUED} queued connections failed\n${pool.log()}`,
      );
    } finally {
      await stopPool(pool);
    }
  });
}
