// Peer servers' CVEs that are about the server rather than the parser (the parser's are in
// cve_test.ts): response splitting, log injection, and connections that end at bad moments.

import assert from "node:assert/strict";
import type { App } from "../../src/tsgi/types.ts";
import { bytes, parseResponses, rawExchange, waitFor, withServer } from "../support/server.ts";

const hello: App = (_environ, startResponse) => {
  startResponse("200 OK", [["Content-Type", "text/plain"]]);
  return ["hello"];
};

Deno.test("CVE-2018-1000164 / CVE-2020-7695: a CRLF in an app's header value never reaches the wire", async () => {
  const app: App = (environ, startResponse) => {
    startResponse("302 Found", [["Location", "/next\r\nSet-Cookie: session=stolen"]]);
    return [environ.PATH_INFO];
  };
  await withServer(app, async ({ port }) => {
    const out = await rawExchange(port, ["GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"]);
    assert.equal(parseResponses(out)[0].status, 500);
    assert.ok(!out.includes("Set-Cookie"), out);
  }, { validate: false });
});

Deno.test("CVE-2020-7694: request fields cannot forge or colour access log lines", async () => {
  await withServer(hello, async ({ port, access, handle }) => {
    await rawExchange(port, [
      bytes(
        'GET /a%0d%0a HTTP/1.1\r\nHost: x\r\nUser-Agent: "\xff\xfe" 200 0\r\nConnection: close\r\n\r\n',
      ),
    ]);
    handle.server.engine.accessLog?.flush();
    const lines = access.text.trimEnd().split("\n");
    assert.equal(lines.length, 1);
    assert.ok(lines[0].includes('"GET /a%0d%0a HTTP/1.1"'));
    assert.ok(lines[0].includes('"\\x22\\xff\\xfe\\x22 200 0"'), lines[0]);
  });
});

Deno.test("CVE-2024-49768: a request pipelined behind a refused one is never served", async () => {
  let served = 0;
  const app: App = (environ, startResponse) => {
    served++;
    return hello(environ, startResponse);
  };
  await withServer(app, async ({ port }) => {
    const out = await rawExchange(port, [
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n" +
      "GET /second HTTP/1.1\r\nHost: x\r\n\r\n",
    ]);
    const responses = parseResponses(out);
    assert.equal(responses.length, 1);
    assert.equal(responses[0].status, 413);
    assert.equal(served, 0);
  }, { maxBodySize: 1000 });
});

Deno.test("CVE-2024-49769: clients that close at once neither spin the server nor leak connections", async () => {
  await withServer(hello, async ({ port, handle }) => {
    for (let i = 0; i < 200; i++) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      conn.close();
    }
    const out = await rawExchange(port, ["GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"]);
    assert.equal(parseResponses(out)[0].body, "hello");
    assert.ok(
      await waitFor(() => handle.server.connectionCount === 0),
      `connections left: ${handle.server.connectionCount}`,
    );
  });
});

Deno.test("CVE-2022-31015: a client gone mid-response does not take the server down", async () => {
  const app: App = (_environ, startResponse) => {
    startResponse("200 OK", []);
    return (async function* () {
      for (let i = 0; i < 1000; i++) {
        yield "x".repeat(64 * 1024);
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
    })();
  };
  await withServer(app, async ({ port, handle }) => {
    for (let i = 0; i < 5; i++) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      await conn.write(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
      await conn.read(new Uint8Array(1024));
      conn.close();
    }
    assert.ok(await waitFor(() => handle.server.connectionCount === 0));
    const out = await rawExchange(port, ["GET / HTTP/1.1\r\nHost: x\r\n\r\n"], 200);
    assert.match(out, /^HTTP\/1.1 200 OK/);
  });
});
