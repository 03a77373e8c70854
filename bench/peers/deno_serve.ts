// Deno.serve peer for bench/run.ts: the routes of apps/bench_app.ts (and /big of
// apps/bench_memory.ts, for bench/memory.ts --server deno), on 127.0.0.1 and the
// port given as the first argument. Prints the tsgi-style "Listening on" line when ready.

const HELLO = "Hello, World!";
// Built once at load, as in apps/bench_app.ts.
const ONE_MIB = new Uint8Array(1024 * 1024).fill(0x78);
const MAX_READS = 1_000_000;

async function countBody(body: ReadableStream<Uint8Array> | null): Promise<number> {
  if (body === null) return 0;
  const reader = body.getReader();
  let total = 0;
  for (let reads = 0; reads < MAX_READS; reads++) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.length;
  }
  return total;
}

/** 1 GiB in 64 KiB chunks with no length, as apps/bench_memory.ts serves it (bench/memory.ts). */
function oneGiB(): ReadableStream<Uint8Array> {
  const chunk = new Uint8Array(64 * 1024).fill(0x78);
  let left = (1024 * 1024 * 1024) / chunk.length;
  return new ReadableStream({
    pull(controller) {
      if (left-- > 0) controller.enqueue(chunk);
      else controller.close();
    },
  });
}

function text(body: string | Uint8Array<ArrayBuffer>, status = 200): Response {
  return new Response(body, { status, headers: { "Content-Type": "text/plain" } });
}

async function handle(request: Request): Promise<Response> {
  const path = new URL(request.url).pathname;
  if (path === "/") return text(HELLO);
  if (path === "/1m") return text(ONE_MIB);
  if (path === "/big") return new Response(oneGiB());
  if (path === "/upload") return text(String(await countBody(request.body)));
  return text("Not Found", 404);
}

const port = Number(Deno.args[0] ?? "8000");
Deno.serve({
  hostname: "127.0.0.1",
  port,
  onListen: ({ hostname, port }) => console.error(`Listening on http://${hostname}:${port}`),
}, handle);
