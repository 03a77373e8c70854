// The fetch-app benchmark app: the handler bench/peers/deno_serve.ts gives Deno.serve, run by
// tsgi through its fetch adapter (scenario "fetch", and every scenario under bench/run.ts
// --fetch). One module on both sides, so the numbers compare servers, not handlers.

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

async function fetch(request: Request): Promise<Response> {
  const path = new URL(request.url).pathname;
  if (path === "/") return text(HELLO);
  if (path === "/1m") return text(ONE_MIB);
  if (path === "/big") return new Response(oneGiB());
  if (path === "/upload") return text(String(await countBody(request.body)));
  return text("Not Found", 404);
}

export default { fetch };
