// The benchmark app for tsgi (bench/run.ts). Its three routes behave exactly like the peers in
// bench/peers/, so the numbers compare servers, not apps.

/** The part of the TSGI environ this app reads. */
interface Environ {
  REQUEST_METHOD: string;
  PATH_INFO: string;
  "tsgi.input": { readInto(buf: Uint8Array): Promise<number> };
}

type StartResponse = (status: string, headers: [string, string][]) => unknown;

const HELLO = new TextEncoder().encode("Hello, World!");
// Built once at load so /1m measures the server's sending, not the app's allocating.
const ONE_MIB = new Uint8Array(1024 * 1024).fill(0x78);
const READ_SIZE = 64 * 1024;
// Bounds the upload loop: 1M reads of up to 64 KiB is 64 GiB, far beyond any benchmark body.
const MAX_READS = 1_000_000;

const readArrays: Uint8Array[] = [];

/**
 * Reads the request body to its end into one 64 KiB array of the app's (tsgi.input.readInto,
 * as a streaming upload handler would) and returns how many bytes it held.
 */
async function countBody(input: Environ["tsgi.input"], buf: Uint8Array): Promise<number> {
  let total = 0;
  for (let reads = 0; reads < MAX_READS; reads++) {
    const n = await input.readInto(buf);
    if (n === 0) break;
    total += n;
  }
  return total;
}

function plain(startResponse: StartResponse, status: string, body: Uint8Array): Uint8Array[] {
  startResponse(status, [
    ["Content-Type", "text/plain"],
    ["Content-Length", String(body.length)],
  ]);
  return [body];
}

export default async function app(
  environ: Environ,
  startResponse: StartResponse,
): Promise<Uint8Array[]> {
  switch (environ.PATH_INFO) {
    case "/":
      return plain(startResponse, "200 OK", HELLO);
    case "/1m":
      return plain(startResponse, "200 OK", ONE_MIB);
    case "/upload": {
      // One array per upload in progress, reused by the next (the peers' runtimes pool theirs).
      const buf = readArrays.pop() ?? new Uint8Array(READ_SIZE);
      const total = await countBody(environ["tsgi.input"], buf).finally(() => readArrays.push(buf));
      return plain(startResponse, "200 OK", new TextEncoder().encode(String(total)));
    }
    default:
      return plain(startResponse, "404 Not Found", new TextEncoder().encode("Not Found"));
  }
}
