// Red-team findings on --proxy-protocol (src/server/connection.ts #readProxyHeader).
// Each test is ignored while its bug stands; remove `ignore: true` once it is fixed.

import assert from "node:assert/strict";
import type { App } from "../../src/tsgi/types.ts";
import { parseResponses, rawExchange, withServer } from "../support/server.ts";

const whoApp: App = (environ, startResponse) => {
  startResponse("200 OK", [["Content-Type", "text/plain"]]);
  return [`${environ.REMOTE_ADDR} ${environ["tsgi.url_scheme"]}`];
};

for (
  const [name, header] of [
    ["v1 PROXY UNKNOWN", "PROXY UNKNOWN\r\n"],
    [
      "v2 PROXY over AF_UNIX",
      // Signature, v2 PROXY, UNIX stream, 216 address bytes (zeros).
      String.fromCharCode(
        0x0d,
        0x0a,
        0x0d,
        0x0a,
        0x00,
        0x0d,
        0x0a,
        0x51,
        0x55,
        0x49,
        0x54,
        0x0a,
        0x21,
        0x31,
        0x00,
        0xd8,
      ) + "\0".repeat(216),
    ],
  ] as const
) {
  Deno.test({
    // Found by a red-team pass, now fixed: a PROXY header that names no address (v1 UNKNOWN, v2 PROXY with a non-IP family)
    // returns early in #readProxyHeader (`if (addresses === null) return true;`) and leaves
    // info.trustedProxy = true, so the relayed client's own X-Forwarded-For / Forwarded /
    // X-Forwarded-Proto are believed: any client of the proxy picks its REMOTE_ADDR and scheme.
    name: `redteam: after a ${name} header the client's X-Forwarded-For is not believed`,

    async fn() {
      await withServer(whoApp, async ({ port }) => {
        const out = await rawExchange(port, [
          header +
          "GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 6.6.6.6\r\n" +
          "X-Forwarded-Proto: https\r\nConnection: close\r\n\r\n",
        ]);
        const [response] = parseResponses(out);
        assert.equal(response.status, 200);
        assert.notEqual(response.body, "6.6.6.6 https", "client spoofed its address and scheme");
      }, { proxyProtocol: true });
    },
  });
}
