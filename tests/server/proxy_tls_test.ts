// HTTPS with --certfile/--keyfile, forwarding headers from trusted proxies only, and the JSON
// access log.

import assert from "node:assert/strict";
import type { App, Environ } from "../../src/tsgi/types.ts";
import { parseResponses, rawExchange, withServer } from "../support/server.ts";
import { TrustedProxies } from "../../src/server/proxy.ts";
import { hasOpenssl, makeCertificate } from "../support/tls.ts";

let seen: Environ | undefined;
const recorder: App = (environ, startResponse) => {
  seen = environ;
  startResponse("200 OK", [["Content-Type", "text/plain"]]);
  return [`${environ["tsgi.url_scheme"]} ${environ.REMOTE_ADDR}`];
};

Deno.test({
  name: "server speaks HTTPS with --certfile/--keyfile and says so in tsgi.url_scheme",
  ignore: !hasOpenssl() && (console.log("skipped: openssl is not installed"), true),
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      const { cert, key } = await makeCertificate(dir);
      await withServer(recorder, async ({ port }) => {
        const client = Deno.createHttpClient({ caCerts: [await Deno.readTextFile(cert)] });
        try {
          const response = await fetch(`https://127.0.0.1:${port}/`, { client });
          assert.equal(await response.text(), "https 127.0.0.1");
        } finally {
          client.close();
        }
      }, { certfile: cert, keyfile: key });
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("serve() refuses a missing or non-PEM certificate with a message naming the flag", async () => {
  const { serve } = await import("../../src/server/serve.ts");
  assert.throws(
    () => serve(recorder, { certfile: "/nonexistent.pem", keyfile: "/nonexistent.pem" }),
    /--certfile: cannot read/,
  );
  assert.throws(
    () => serve(recorder, { certfile: "deno.json", keyfile: "deno.json" }),
    /--certfile: "deno.json" is not a PEM file/,
  );
  assert.throws(
    () => serve(recorder, { certfile: "deno.json" }),
    /--certfile and --keyfile go together/,
  );
});

Deno.test("X-Forwarded-For and X-Forwarded-Proto count only from a trusted peer", async () => {
  const request = "GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.9, 10.0.0.2\r\n" +
    "X-Forwarded-Proto: https\r\nConnection: close\r\n\r\n";
  await withServer(recorder, async ({ port }) => {
    assert.equal(parseResponses(await rawExchange(port, [request]))[0].body, "https 10.0.0.2");
    assert.equal(seen?.HTTP_X_FORWARDED_FOR, "203.0.113.9, 10.0.0.2");
  });
  await withServer(recorder, async ({ port }) => {
    assert.equal(parseResponses(await rawExchange(port, [request]))[0].body, "https 203.0.113.9");
  }, { forwardedAllowIps: "127.0.0.1,10.0.0.0/8" });
  await withServer(recorder, async ({ port }) => {
    assert.equal(parseResponses(await rawExchange(port, [request]))[0].body, "http 127.0.0.1");
  }, { forwardedAllowIps: "192.0.2.1" });
});

Deno.test("the standard Forwarded header sets the client and scheme from a trusted peer", async () => {
  await withServer(recorder, async ({ port }) => {
    const out = await rawExchange(port, [
      'GET / HTTP/1.1\r\nHost: x\r\nForwarded: for="[2001:db8::1]:4711";proto=https\r\n' +
      "Connection: close\r\n\r\n",
    ]);
    assert.equal(parseResponses(out)[0].body, "https 2001:db8::1");
  });
});

Deno.test("TrustedProxies matches addresses, IPv4 blocks, mapped IPv4 and *", () => {
  const trusted = new TrustedProxies("127.0.0.1, ::1, 10.1.0.0/16");
  assert.ok(trusted.trusts("127.0.0.1"));
  assert.ok(trusted.trusts("::ffff:127.0.0.1"));
  assert.ok(trusted.trusts("::1"));
  assert.ok(trusted.trusts("10.1.255.3"));
  assert.ok(!trusted.trusts("10.2.0.1"));
  assert.ok(!trusted.trusts("192.0.2.1"));
  assert.ok(new TrustedProxies("*").trusts("198.51.100.7"));
  assert.throws(() => TrustedProxies.check("127.0.0.1,example.com"), /example.com/);
});

Deno.test("--access-log-format json writes one JSON object per request", async () => {
  await withServer(recorder, async ({ port, access, handle }) => {
    await rawExchange(port, [
      "GET /j?x=1 HTTP/1.1\r\nHost: x\r\nUser-Agent: t\r\nConnection: close\r\n\r\n",
    ]);
    handle.server.engine.accessLog?.flush();
    const record = JSON.parse(access.text.trim());
    assert.equal(record.method, "GET");
    assert.equal(record.target, "/j?x=1");
    assert.equal(record.status, 200);
    assert.equal(record.user_agent, "t");
    assert.equal(record.remote_addr, "127.0.0.1");
    assert.equal(typeof record.duration, "number");
  }, { accessLogFormat: "json" });
});
