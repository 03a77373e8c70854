// The app for bench/memory.ts: 1 GiB each way, so any buffering of a whole body in the server
// shows up as RSS growth.

interface Environ {
  PATH_INFO: string;
  "tsgi.input": { read(size?: number): Promise<Uint8Array> };
}

type StartResponse = (status: string, headers: [string, string][]) => unknown;

const CHUNK = new Uint8Array(64 * 1024).fill(0x78);
const GIB = 1024 * 1024 * 1024;
const CHUNKS_PER_GIB = GIB / CHUNK.length;
// Bounds the discard loop at 64 GiB of 64 KiB reads.
const MAX_READS = 1_000_000;

/** 1 GiB in 64 KiB chunks; async so the server has to stream it rather than see an array. */
async function* oneGiB(): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < CHUNKS_PER_GIB; i++) {
    yield CHUNK;
    // Yield to the event loop now and then, as a real producer would.
    if (i % 64 === 0) await Promise.resolve();
  }
}

async function discardBody(input: Environ["tsgi.input"]): Promise<number> {
  let total = 0;
  for (let reads = 0; reads < MAX_READS; reads++) {
    const chunk = await input.read(CHUNK.length);
    if (chunk.length === 0) break;
    total += chunk.length;
  }
  return total;
}

export default async function app(
  environ: Environ,
  startResponse: StartResponse,
): Promise<Iterable<Uint8Array | string> | AsyncIterable<Uint8Array>> {
  if (environ.PATH_INFO === "/big") {
    // No Content-Length: the server must chunk (HTTP/1.1) and must not buffer.
    startResponse("200 OK", [["Content-Type", "application/octet-stream"]]);
    return oneGiB();
  }
  if (environ.PATH_INFO === "/upload") {
    const total = String(await discardBody(environ["tsgi.input"]));
    startResponse("200 OK", [["Content-Type", "text/plain"], [
      "Content-Length",
      String(total.length),
    ]]);
    return [total];
  }
  startResponse("200 OK", [["Content-Type", "text/plain"], ["Content-Length", "2"]]);
  return ["ok"];
}
