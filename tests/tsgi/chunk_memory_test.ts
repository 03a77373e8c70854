// A body cut into one-byte chunks must cost about its size, not an array per byte: chunks
// are coalesced as they are decoded, and a whole read gathers into one array.

import assert from "node:assert/strict";
import type { App } from "../../src/tsgi/types.ts";
import { bytes, isolateMemory, parseResponses, withServer } from "../support/server.ts";

const MIB = 1024 * 1024;

/** Reads the body whole and answers its length; keeps the array to the end of the request. */
function wholeReader(peak: { bytes: number }): App {
  return async (environ, startResponse) => {
    const body = await environ["tsgi.input"].read();
    peak.bytes = Math.max(peak.bytes, isolateMemory());
    startResponse("200 OK", [["Content-Type", "text/plain"]]);
    return [String(body.length)];
  };
}

/** A socket write may take part of what it is given. */
async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  for (let done = 0; done < data.length;) done += await conn.write(data.subarray(done));
}

/** A chunked POST whose body is `size` one-byte chunks, sent in `writes` separate writes. */
async function postOneByteChunks(port: number, size: number, writes: number): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  conn.setNoDelay(true);
  await conn.write(
    bytes("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"),
  );
  const perWrite = Math.ceil(size / writes);
  const piece = bytes("1\r\nX\r\n".repeat(perWrite));
  for (let sent = 0; sent < size; sent += perWrite) {
    const n = Math.min(perWrite, size - sent);
    await writeAll(conn, n === perWrite ? piece : piece.subarray(0, n * 6));
  }
  await writeAll(conn, bytes("0\r\n\r\n"));
  return await new Response(conn.readable).text();
}

Deno.test("8 MiB in one-byte chunks read whole costs at most twice its size", async () => {
  const size = 8 * MIB;
  const peak = { bytes: 0 };
  await withServer(wholeReader(peak), async ({ port }) => {
    const before = isolateMemory();
    const [response] = parseResponses(await postOneByteChunks(port, size, 256));
    assert.equal(response.status, 200);
    assert.equal(response.body, String(size));
    const growth = peak.bytes - before;
    // Before coalescing this was ~465 bytes per body byte (about 1 GB here).
    assert.ok(growth < 2 * size + 8 * MIB, `memory grew by ${(growth / MIB).toFixed(1)} MiB`);
  });
});

Deno.test("one-byte chunks that arrive one per packet still gather into one array", async () => {
  const size = 300_000;
  const peak = { bytes: 0 };
  await withServer(wholeReader(peak), async ({ port }) => {
    const before = isolateMemory();
    // 30,000 writes of ten chunks each: the server mostly sees tiny reads.
    const [response] = parseResponses(await postOneByteChunks(port, size, size / 10));
    assert.equal(response.body, String(size));
    const growth = peak.bytes - before;
    assert.ok(growth < 8 * MIB, `memory grew by ${(growth / MIB).toFixed(1)} MiB`);
  });
});
