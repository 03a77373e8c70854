// --proxy-protocol end to end: raw sockets against a real server for each kind of header and
// each refusal (a peer not trusted, a malformed or missing header, one too slow, a flood), and a
// real HAProxy (`haproxy -db -f FILE`, started here on loopback as nginx_test.ts starts nginx)
// sending send-proxy and send-proxy-v2 headers, its health checks LOCAL ones. The HAProxy tests
// skip, saying why, where haproxy is not installed.

import assert from "node:assert/strict";
import { ConfigError } from "../../src/server/config.ts";
import { serve } from "../../src/server/serve.ts";
import { ErrorLog } from "../../src/server/log.ts";
import type { App } from "../../src/tsgi/types.ts";
import { fromFileUrl } from "../support/paths.ts";
import { spawnServer, stopServer, waitUntil } from "../support/process.ts";
import { bytes, parseResponses, type TestServer, withServer } from "../support/server.ts";

const MAIN = fromFileUrl(new URL("../../main.ts", import.meta.url));
const ROOT = fromFileUrl(new URL("../..", import.meta.url));

/** What the app saw of the connection, and of the request. */
interface Seen {
  remoteAddr: string;
  remotePort: string;
  serverName: string;
  serverPort: string;
  path: string;
  body: number;
}

/** Answers with what it saw, and keeps a record of it. */
function recordingApp(seen: Seen[] = []): App {
  return async (environ, startResponse) => {
    const body = await environ["tsgi.input"].read();
    const record: Seen = {
      remoteAddr: environ.REMOTE_ADDR,
      remotePort: environ.REMOTE_PORT,
      serverName: environ.SERVER_NAME,
      serverPort: environ.SERVER_PORT,
      path: environ.PATH_INFO,
      body: body.length,
    };
    seen.push(record);
    startResponse("200 OK", [["Content-Type", "application/json"]]);
    return [JSON.stringify(record)];
  };
}

function withProxyServer(
  fn: (server: TestServer) => Promise<void>,
  options: { forwardedAllowIps?: string; headerTimeout?: number; app?: App } = {},
): Promise<void> {
  const { app, ...rest } = options;
  return withServer(app ?? recordingApp(), fn, { proxyProtocol: true, ...rest });
}

/**
 * Connects, writes `pieces` (each its own write, `gapMs` apart), reads until the server closes
 * or `deadlineMs` passes; what came back, and how long the server took to close.
 */
async function exchange(
  port: number,
  pieces: (string | Uint8Array)[],
  { gapMs = 0, deadlineMs = 5000 } = {},
): Promise<{ text: string; closedAfter: number; local: Deno.NetAddr }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const started = Date.now();
  let closedAfter = Infinity;
  let text = "";
  const reading = (async () => {
    const buf = new Uint8Array(65536);
    const decoder = new TextDecoder("latin1");
    while (true) {
      const n = await conn.read(buf).catch(() => null);
      if (n === null) break;
      text += decoder.decode(buf.subarray(0, n));
    }
    closedAfter = Date.now() - started;
  })();
  try {
    for (const piece of pieces) {
      await conn.write(typeof piece === "string" ? bytes(piece) : piece).catch(() => 0);
      if (gapMs > 0) await new Promise((resolve) => setTimeout(resolve, gapMs));
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      reading,
      new Promise((resolve) => (timer = setTimeout(resolve, deadlineMs))),
    ]);
    clearTimeout(timer);
  } finally {
    try {
      conn.close();
    } catch {
      // Closed by the server first.
    }
    await reading;
  }
  return { text, closedAfter, local: conn.localAddr as Deno.NetAddr };
}

function seenIn(text: string): Seen[] {
  return parseResponses(text).map((response) => {
    assert.equal(response.status, 200, response.body);
    return JSON.parse(response.body) as Seen;
  });
}

const SIGNATURE = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];
const be16 = (n: number) => [n >> 8, n & 0xff];

function v2(command: number, family: number, payload: number[]): Uint8Array {
  return Uint8Array.from([
    ...SIGNATURE,
    0x20 | command,
    family,
    ...be16(payload.length),
    ...payload,
  ]);
}

/** 203.0.113.9:40000 → 198.51.100.1:8443, with a NOOP TLV and an ALPN one to skip. */
const V2_TCP4 = v2(0x1, 0x11, [
  ...[203, 0, 113, 9, 198, 51, 100, 1, ...be16(40000), ...be16(8443)],
  ...[0x04, 0, 2, 0, 0, 0x01, 0, 2, 0x68, 0x32],
]);
/** [2001:db8::9]:40001 → [2001:db8::1]:443. */
const V2_TCP6 = v2(0x1, 0x21, [
  ...[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9],
  ...[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
  ...be16(40001),
  ...be16(443),
]);

const GET = (path: string, extra = "") => `GET ${path} HTTP/1.1\r\nHost: x\r\n${extra}\r\n`;
const LAST = (path: string) => GET(path, "Connection: close\r\n");

function concat(...parts: (string | Uint8Array)[]): Uint8Array {
  const arrays = parts.map((p) => typeof p === "string" ? bytes(p) : p);
  const out = new Uint8Array(arrays.reduce((n, a) => n + a.length, 0));
  let at = 0;
  for (const a of arrays) {
    out.set(a, at);
    at += a.length;
  }
  return out;
}

const HEADERS: [string, Uint8Array, Omit<Seen, "path" | "body">][] = [
  [
    "v1 TCP4",
    bytes("PROXY TCP4 203.0.113.9 198.51.100.1 40000 8443\r\n"),
    {
      remoteAddr: "203.0.113.9",
      remotePort: "40000",
      serverName: "198.51.100.1",
      serverPort: "8443",
    },
  ],
  [
    "v1 TCP6",
    bytes("PROXY TCP6 2001:DB8:0::9 2001:db8::1 40001 443\r\n"),
    {
      remoteAddr: "2001:db8::9",
      remotePort: "40001",
      serverName: "2001:db8::1",
      serverPort: "443",
    },
  ],
  [
    "v2 TCP4 with TLVs",
    V2_TCP4,
    {
      remoteAddr: "203.0.113.9",
      remotePort: "40000",
      serverName: "198.51.100.1",
      serverPort: "8443",
    },
  ],
  [
    "v2 TCP6",
    V2_TCP6,
    {
      remoteAddr: "2001:db8::9",
      remotePort: "40001",
      serverName: "2001:db8::1",
      serverPort: "443",
    },
  ],
];

for (const [name, header, addresses] of HEADERS) {
  Deno.test(`--proxy-protocol ${name}: the header's addresses for every request of the connection`, async () => {
    await withProxyServer(async ({ port }) => {
      // The header, then two pipelined requests, in one write: what follows the header is
      // the first request.
      const together = await exchange(port, [concat(header, GET("/a"), LAST("/b"))]);
      assert.deepEqual(seenIn(together.text), [
        { ...addresses, path: "/a", body: 0 },
        { ...addresses, path: "/b", body: 0 },
      ]);
      // Byte by byte, a pause after each: the header is read across as many reads.
      const trickled = await exchange(
        port,
        [
          ...[...header].map((b) => Uint8Array.of(b)),
          `POST /c HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc`,
          LAST("/d"),
        ],
        { gapMs: 1 },
      );
      assert.deepEqual(seenIn(trickled.text), [
        { ...addresses, path: "/c", body: 3 },
        { ...addresses, path: "/d", body: 0 },
      ]);
    });
  });
}

Deno.test("--proxy-protocol: v1 UNKNOWN and v2 LOCAL keep the peer's own addresses", async () => {
  await withProxyServer(async ({ port }) => {
    for (
      const header of [
        bytes("PROXY UNKNOWN\r\n"),
        bytes("PROXY UNKNOWN 1.2.3.4 5.6.7.8 1 2\r\n"),
        v2(0x0, 0x00, []),
        v2(0x0, 0x11, [1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2]),
        v2(0x1, 0x00, []),
      ]
    ) {
      const { text, local } = await exchange(port, [concat(header, LAST("/"))]);
      assert.deepEqual(seenIn(text), [{
        remoteAddr: "127.0.0.1",
        remotePort: String(local.port),
        serverName: "127.0.0.1",
        serverPort: String(port),
        path: "/",
        body: 0,
      }]);
    }
  });
});

Deno.test("--proxy-protocol: X-Forwarded-For after the header counts only if its source is trusted", async () => {
  const forwarded = "X-Forwarded-For: 198.51.100.77\r\n";
  await withProxyServer(async ({ port }) => {
    // HAProxy in TCP mode passes the client's bytes as they are: a client may write anything.
    const client = await exchange(port, [
      concat(
        "PROXY TCP4 203.0.113.9 127.0.0.1 40000 80\r\n",
        GET("/", forwarded + "Connection: close\r\n"),
      ),
    ]);
    assert.equal(seenIn(client.text)[0].remoteAddr, "203.0.113.9");
    // A source that is itself a trusted proxy (a proxy behind the TCP balancer) is believed.
    const proxy = await exchange(port, [
      concat(
        "PROXY TCP4 127.0.0.1 127.0.0.1 40000 80\r\n",
        GET("/", forwarded + "Connection: close\r\n"),
      ),
    ]);
    assert.equal(seenIn(proxy.text)[0].remoteAddr, "198.51.100.77");
  });
});

/** The connection is closed at once, unanswered, with one log line saying why. */
const REFUSED: [string, (string | Uint8Array)[], RegExp, string?][] = [
  [
    "a peer not in --forwarded-allow-ips",
    ["PROXY TCP4 203.0.113.9 198.51.100.1 40000 8443\r\n" + LAST("/")],
    /PROXY protocol: connection closed: 127\.0\.0\.1 is not in --forwarded-allow-ips/,
    "192.0.2.1,10.0.0.0/8",
  ],
  [
    "no header: HTTP at once",
    [LAST("/")],
    /PROXY protocol: connection closed: no PROXY header from 127\.0\.0\.1, which sent "GET \/ HTTP\/1\.1\\x0d\\x0aHost: x\\x0d\\x0aConnect"… \(46 bytes\)/,
  ],
  [
    "a malformed v1 header",
    ["PROXY TCP4 203.0.113.9 198.51.100.1 40000 84430\r\n" + LAST("/")],
    /PROXY protocol: connection closed: malformed PROXY header \(v1: bad destination port\) from 127\.0\.0\.1/,
  ],
  [
    "a v1 line past 107 bytes",
    ["PROXY UNKNOWN " + "x".repeat(120)],
    /malformed PROXY header \(v1: no CRLF within 107 bytes\)/,
  ],
  [
    "a v2 header for UDP",
    [concat(v2(0x1, 0x12, new Array(12).fill(1)), LAST("/"))],
    /malformed PROXY header \(v2: family and transport 0x12 are not TCP\)/,
  ],
  [
    "a v2 header announcing 64 KiB",
    [Uint8Array.from([...SIGNATURE, 0x21, 0x11, 0xff, 0xff])],
    /malformed PROXY header \(v2: 65535 bytes of addresses and TLVs \(at most 2048\)\)/,
  ],
  [
    "a close before the header ends",
    ["PROXY TCP4 203.0.113.9"],
    /127\.0\.0\.1 closed the connection before a PROXY header, after "PROXY TCP4 203\.0\.113\.9" \(22 bytes\)/,
  ],
];

for (const [name, pieces, logged, forwardedAllowIps] of REFUSED) {
  Deno.test(`--proxy-protocol refuses ${name}: closed unanswered, one log line`, async () => {
    let errors = "";
    await withProxyServer(async (server) => {
      const closes = name.startsWith("a close");
      const { text, closedAfter } = await exchange(server.port, pieces, {
        deadlineMs: closes ? 100 : 5000,
      });
      assert.equal(text, "", "nothing is answered: the peer does not speak HTTP first");
      if (!closes) assert.ok(closedAfter < 2000, `closed after ${closedAfter} ms`);
      await waitUntilTrue(() => /PROXY protocol/.test(server.errors.text));
      errors = server.errors.text;
    }, forwardedAllowIps ? { forwardedAllowIps } : {});
    assert.match(errors, logged);
    assert.equal(errors.match(/PROXY protocol/g)?.length, 1, errors);
  });
}

/** Polls until `check` holds (5 s at most). */
function waitUntilTrue(check: () => boolean): Promise<void> {
  return waitUntil("the condition", check, 5000);
}

Deno.test("--proxy-protocol: a header not complete within --header-timeout closes the connection", async () => {
  let errors = "";
  await withProxyServer(async (server) => {
    const { text, closedAfter } = await exchange(server.port, ["PROXY TCP4 203.0.113.9 "], {
      deadlineMs: 5000,
    });
    assert.equal(text, "");
    assert.ok(closedAfter >= 900 && closedAfter < 3000, `closed after ${closedAfter} ms`);
    await waitUntilTrue(() => /PROXY protocol/.test(server.errors.text));
    errors = server.errors.text;
  }, { headerTimeout: 1 });
  assert.match(
    errors,
    /PROXY protocol: connection closed: no PROXY header from 127\.0\.0\.1 in time \(23 bytes\)/,
  );
});

Deno.test("--proxy-protocol: a flood of connections without a header costs a few log lines", async () => {
  let log = { text: "" };
  const count = 200;
  await withProxyServer(async (server) => {
    log = server.errors;
    const all = await Promise.all(
      Array.from({ length: count }, () => exchange(server.port, [LAST("/")], { deadlineMs: 5000 })),
    );
    assert.ok(all.every((r) => r.text === ""));
  });
  // The server has stopped: what it still counted is written.
  const errors = log.text;
  // The first line, then summaries (one a second at most; the last when the server stopped).
  const lines = errors.split("\n").filter((line) => line.includes("PROXY protocol"));
  assert.ok(lines.length <= 4, lines.join("\n"));
  const counted = lines.slice(1).map((line) =>
    Number(/: (\d+) more connections closed/.exec(line)![1])
  );
  assert.equal(1 + counted.reduce((a, b) => a + b, 0), count, lines.join("\n"));
});

Deno.test("without --proxy-protocol, a PROXY line is a bad request", async () => {
  await withServer(recordingApp(), async ({ port }) => {
    const { text } = await exchange(port, ["PROXY TCP4 203.0.113.9 198.51.100.1 40000 8443\r\n"]);
    assert.match(text, /^HTTP\/1\.1 400 /);
  });
});

Deno.test("--proxy-protocol with --certfile is refused, naming both flags", async () => {
  assert.throws(
    () =>
      serve(recordingApp(), {
        bind: [{ hostname: "127.0.0.1", port: 0 }],
        proxyProtocol: true,
        certfile: "cert.pem",
        keyfile: "key.pem",
        errorLog: new ErrorLog("error"),
      }),
    (error) =>
      error instanceof ConfigError && /--proxy-protocol with --certfile/.test(error.message),
  );
  const cli = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      MAIN,
      "apps/hello.ts",
      "--proxy-protocol",
      "--certfile",
      "c",
      "--keyfile",
      "k",
    ],
    cwd: ROOT,
    stdout: "null",
    stderr: "piped",
  }).output();
  assert.equal(cli.code, 2);
  assert.match(
    new TextDecoder().decode(cli.stderr),
    /^tsgi: --proxy-protocol with --certfile: the PROXY header comes before the TLS handshake/,
  );
});

// ---------------------------------------------------------------------------------------------
// A real HAProxy.

/** The haproxy binary: on PATH, or where Debian puts it. */
const HAPROXY = ["haproxy", "/usr/sbin/haproxy"].find((candidate) => {
  try {
    return new Deno.Command(candidate, { args: ["-v"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
});
const NO_HAPROXY = HAPROXY === undefined &&
  (console.log("skipped: haproxy is not installed (Debian: apt-get install haproxy)"), true);

/** Whether this machine has IPv6 loopback. */
const IPV6 = (() => {
  try {
    Deno.listen({ hostname: "::1", port: 0 }).close();
    return true;
  } catch {
    return false;
  }
})();

/**
 * What docs/deploy.md shows (a test below checks the page against it): HAProxy balancing at
 * the TCP layer, each connection opened with a PROXY header (`sendProxy`: send-proxy-v2 or
 * send-proxy), health checks included (v2 sends them as LOCAL, v1 as UNKNOWN).
 */
function haproxyConfig(binds: string[], servers: string[], sendProxy: string): string {
  return `defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s

frontend www
${binds.map((b) => `    bind ${b}\n`).join("")}    default_backend tsgi

backend tsgi
    option httpchk
    http-check send meth GET uri / ver HTTP/1.1 hdr Host localhost
${servers.map((s, i) => `    server tsgi${i + 1} ${s} ${sendProxy} check\n`).join("")}`;
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Starts haproxy in the foreground on `config`; resolves once `port` accepts. */
async function startHaproxy(dir: string, config: string, port: number) {
  await Deno.writeTextFile(`${dir}/haproxy.cfg`, config);
  const child = new Deno.Command(HAPROXY!, {
    args: ["-db", "-f", `${dir}/haproxy.cfg`],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let output = "";
  const drained = Promise.all([child.stdout, child.stderr].map(async (stream) => {
    for await (const piece of stream.pipeThrough(new TextDecoderStream())) output += piece;
  }));
  let exited = false;
  child.status.then(() => (exited = true));
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch {
      // Gone already.
    }
    await child.status;
    await drained;
  };
  try {
    const deadline = Date.now() + 10_000;
    while (true) {
      if (exited) throw new Error(`haproxy exited at startup: ${output}`);
      try {
        (await Deno.connect({ hostname: "127.0.0.1", port })).close();
        break;
      } catch {
        if (Date.now() > deadline) throw new Error(`haproxy did not listen: ${output}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return { stop, output: () => output };
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "tsgi-haproxy-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** exchange() to any address: all of `pieces` in one write, read until closed. */
async function exchangeTo(hostname: string, port: number, pieces: string[]) {
  const conn = await Deno.connect({ hostname, port });
  const from = conn.localAddr as Deno.NetAddr;
  await conn.write(bytes(pieces.join("")));
  let text = "";
  const buf = new Uint8Array(65536);
  const decoder = new TextDecoder("latin1");
  const timer = setTimeout(() => conn.close(), 10_000);
  try {
    for (let n = await conn.read(buf); n !== null; n = await conn.read(buf)) {
      text += decoder.decode(buf.subarray(0, n));
    }
  } catch {
    // Closed by the timer: the test fails on what came.
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch {
      // Closed already.
    }
  }
  return { text, local: from };
}

for (const sendProxy of ["send-proxy", "send-proxy-v2"]) {
  Deno.test({
    name: `HAProxy ${sendProxy} in front of tsgi: the client's address and port, HAProxy's as ` +
      "the server's, over IPv4 and IPv6; its health checks keep the peer's",
    ignore: NO_HAPROXY,
    async fn() {
      const seen: Seen[] = [];
      let tsgiPort = 0;
      await withTempDir(async (dir) => {
        await withProxyServer(async (tsgi) => {
          tsgiPort = tsgi.port;
          const port = freePort();
          const binds = [`127.0.0.1:${port}`, ...(IPV6 ? [`[::1]:${port}`] : [])];
          const haproxy = await startHaproxy(
            dir,
            // Checks every 100 ms, so that some happen during the test.
            haproxyConfig(binds, [`127.0.0.1:${tsgi.port}`], sendProxy)
              .replace(" check\n", " check inter 100\n"),
            port,
          );
          try {
            for (const hostname of ["127.0.0.1", ...(IPV6 ? ["::1"] : [])]) {
              // Keep-alive through the tunnel: three requests, one connection, one header.
              const { text, local: from } = await exchangeTo(hostname, port, [
                `POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello`,
                GET("/b"),
                LAST("/c"),
              ]);
              const client = {
                remoteAddr: hostname,
                remotePort: String(from.port),
                serverName: hostname,
                serverPort: String(port),
              };
              assert.deepEqual(seenIn(text), [
                { ...client, path: "/a", body: 5 },
                { ...client, path: "/b", body: 0 },
                { ...client, path: "/c", body: 0 },
              ]);
            }
            await waitUntil("a health check", () => seen.some((s) => s.path === "/"));
          } finally {
            await haproxy.stop();
          }
          assert.equal(tsgi.errors.text.match(/PROXY protocol/g), null, tsgi.errors.text);
        }, { app: recordingApp(seen) });
      });
      // Health checks carry no client: v2 sends LOCAL (the peer's addresses stand), v1 the
      // check's own connection; either way HAProxy's address and tsgi's port.
      const checks = seen.filter((s) => s.path === "/");
      assert.ok(checks.length > 0);
      for (const check of checks) {
        assert.equal(check.remoteAddr, "127.0.0.1");
        assert.equal(check.serverPort, String(tsgiPort));
      }
    },
  });
}

Deno.test({
  name: "HAProxy in front of `main.ts --proxy-protocol --workers 2`: the access log has the " +
    "client's address; a connection that bypasses HAProxy is closed and logged",
  ignore: NO_HAPROXY,
  async fn() {
    await withTempDir(async (dir) => {
      const tsgi = await spawnServer(Deno.execPath(), [
        ...["run", "-A", MAIN, "apps/hello.ts", "--proxy-protocol", "-b", "127.0.0.1:0"],
        ...["--access-log", "-", "--keep-alive", "5", "--workers", "2"],
      ], { cwd: ROOT, stdout: "piped" });
      try {
        const port = freePort();
        const hostname = IPV6 ? "::1" : "127.0.0.1";
        const binds = [`127.0.0.1:${port}`, ...(IPV6 ? [`[::1]:${port}`] : [])];
        const haproxy = await startHaproxy(
          dir,
          haproxyConfig(binds, [`127.0.0.1:${tsgi.port}`], "send-proxy-v2"),
          port,
        );
        try {
          const { text, local } = await exchangeTo(hostname, port, [GET("/"), LAST("/")]);
          const responses = parseResponses(text);
          assert.deepEqual(responses.map((r) => r.body), ["Hello, World!\n", "Hello, World!\n"]);
          // The first kept the connection open: the timeout, a second below --keep-alive.
          assert.equal(responses[0].headers["keep-alive"], "timeout=4");
          await waitUntil("the access log", () => tsgi.stdout().includes(`${hostname} - - [`));
          assert.ok(local.hostname === hostname);
        } finally {
          await haproxy.stop();
        }
        const direct = await exchangeTo("127.0.0.1", tsgi.port, [LAST("/")]);
        assert.equal(direct.text, "");
        await waitUntil(
          "the refusal is logged",
          () => /no PROXY header from 127\.0\.0\.1/.test(tsgi.log()),
        );
      } finally {
        assert.equal((await stopServer(tsgi)).code, 0);
      }
    });
  },
});

Deno.test("docs/deploy.md shows the HAProxy configuration these tests run", async () => {
  const doc = await Deno.readTextFile(new URL("../../docs/deploy.md", import.meta.url));
  assert.ok(
    doc.includes(haproxyConfig([":80"], ["127.0.0.1:8000"], "send-proxy-v2")),
    "the one-instance block is in docs/deploy.md",
  );
  assert.ok(
    doc.includes("deno run -A main.ts app.ts --bind 127.0.0.1:8000 --proxy-protocol"),
    "the tsgi command is in docs/deploy.md",
  );
});
