// Red-team finding: read(0) of a chunked body (tsgi.input, byte_input.ts -> input.ts
// #nextChunked) looped forever without awaiting: #decodeBuffered(0) takes nothing, the body is
// not done, and the buffer is not empty, so no read is awaited. The server's event loop spun at
// 100% CPU and every connection of the process hung. A Content-Length body answered [] at once.

import assert from "node:assert/strict";
import { fromFileUrl } from "../support/paths.ts";
import { spawnServer, tsgiArgs } from "../support/process.ts";
import { parseResponses, rawExchange } from "../support/server.ts";

const ROOT = fromFileUrl(new URL("../../", import.meta.url));
const APP = fromFileUrl(new URL("./fixtures/read_zero_app.ts", import.meta.url));

for (
  const [framing, body] of [
    ["chunked", "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"],
    ["Content-Length", "Content-Length: 3\r\n\r\nabc"],
  ]
) {
  Deno.test(`redteam: read(0) and readChunk(0) of a ${framing} body answer empty`, async () => {
    // A server of its own: a hang is its event loop's, and SIGKILL ends it.
    const server = await spawnServer(Deno.execPath(), tsgiArgs(APP, "--bind", "127.0.0.1:0"), {
      cwd: ROOT,
    });
    try {
      const reply = await rawExchange(server.port, [
        `POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n${body}`,
      ], 5000);
      const responses = parseResponses(reply);
      assert.deepEqual(responses.map((r) => [r.status, r.body]), [[200, "0 0 abc"]]);
    } finally {
      server.child.kill("SIGKILL");
      await server.child.status;
      await server.logDone;
    }
  });
}
