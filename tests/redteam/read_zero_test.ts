// Red-team finding: read(0) of a chunked body (tsgi.input, byte_input.ts -> input.ts
// #nextChunked) looped forever without awaiting: #decodeBuffered(0) takes nothing, the body is
// not done, and the buffer is not empty, so no read is awaited. The server's event loop spun at
// 100% CPU and every connection of the process hung. A Content-Length body answered [] at once.
// A size that is not a whole number (read(1.5), read(0.5); an app's mistake, and --validate is
// off by default) did the same on a chunked body: the array made for 1.5 bytes holds 1, and the
// read waited forever for the half byte, without awaiting; on a Content-Length body read(1.5)
// gave 2 bytes.

import assert from "node:assert/strict";
import { fromFileUrl } from "../support/paths.ts";
import { spawnServer, tsgiArgs } from "../support/process.ts";
import { parseResponses, rawExchange } from "../support/server.ts";

const ROOT = fromFileUrl(new URL("../../", import.meta.url));
const APP = fromFileUrl(new URL("./fixtures/read_zero_app.ts", import.meta.url));

const BODIES: Record<string, string> = {
  "chunked": "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
  "Content-Length": "Content-Length: 3\r\n\r\nabc",
};
/** The size asked, the framing, and what the app answers: read(size)|readChunk(size)|read(). */
const CASES: [string, string, string][] = [
  ["0", "chunked", "||abc"],
  ["0", "Content-Length", "||abc"],
  ["1.5", "chunked", "a|b|c"],
  ["1.5", "Content-Length", "a|b|c"],
  ["0.5", "chunked", "||abc"],
  ["NaN", "chunked", "abc||"],
  ["NaN", "Content-Length", "abc||"],
];

for (const [size, framing, expected] of CASES) {
  Deno.test(`redteam: read(${size}) and readChunk(${size}) of a ${framing} body`, async () => {
    // A server of its own: a hang is its event loop's, and SIGKILL ends it.
    const server = await spawnServer(Deno.execPath(), tsgiArgs(APP, "--bind", "127.0.0.1:0"), {
      cwd: ROOT,
    });
    try {
      const reply = await rawExchange(server.port, [
        `POST /?size=${size} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n${BODIES[framing]}`,
      ], 5000);
      const responses = parseResponses(reply);
      assert.deepEqual(responses.map((r) => [r.status, r.body]), [[200, expected]]);
    } finally {
      server.child.kill("SIGKILL");
      await server.child.status;
      await server.logDone;
    }
  });
}
