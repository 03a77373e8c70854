// Deno.serve peer for bench/run.ts: the routes of apps/bench_app.ts (and /big of
// apps/bench_memory.ts, for bench/memory.ts --server deno), on 127.0.0.1 and the port given as
// the first argument. Prints the tsgi-style "Listening on" line when ready. The handler is
// apps/bench_fetch.ts, the very module tsgi serves in the fetch scenarios.

import app from "../../apps/bench_fetch.ts";

const port = Number(Deno.args[0] ?? "8000");
Deno.serve({
  hostname: "127.0.0.1",
  port,
  onListen: ({ hostname, port }) => console.error(`Listening on http://${hostname}:${port}`),
}, app.fetch);
