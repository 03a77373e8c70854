// tsgi.input.readInto() over a real socket: a large body straight into the app's array, a
// chunked one through the buffer, and, when the body is cut off (408), no byte landing in the
// app's array once its read has failed.

import assert from "node:assert/strict";
import type { App, Input } from "../../src/tsgi/types.ts";
import { BodyTimeoutError } from "../../src/tsgi/input.ts";
import type { ServeOptions } from "../../src/server/serve.ts";
import { hasOpenssl, makeCertificate } from "../support/tls.ts";
import {
  bytes,
  closeQuietly,
  concat,
  parseResponses,
  rawExchange,
  readUntilClose,
  waitFor,
  withServer,
} from "../support/server.ts";

/** Sum of the bytes mod 2^32, and their count. */
function checksum(chunks: Iterable<Uint8Array>): string {
  let sum = 0;
  let length = 0;
  for (const chunk of chunks) {
    for (let i = 0; i < chunk.length; i++) sum = (sum + chunk[i]) >>> 0;
    length += chunk.length;
  }
  return `${length} ${sum}`;
}

/** Reads the body with readInto() into one reused 64 KiB array; answers its checksum. */
const sumsBody: App = async (environ, startResponse) => {
  // tsgi's server always has it (the type leaves it optional for other inputs).
  const input = environ["tsgi.input"] as Required<Input>;
  const buf = new Uint8Array(64 * 1024);
  let sum = 0;
  let length = 0;
  for (let n = await input.readInto(buf); n > 0; n = await input.readInto(buf)) {
    for (let i = 0; i < n; i++) sum = (sum + buf[i]) >>> 0;
    length += n;
  }
  startResponse("200 OK", [["Content-Type", "text/plain"]]);
  return [`${length} ${sum}`];
};

function patterned(size: number): Uint8Array {
  const body = new Uint8Array(size);
  for (let i = 0; i < size; i++) body[i] = (i * 7) % 251;
  return body;
}

Deno.test("readInto(): a 4 MiB body, then a pipelined request on the same connection", async () => {
  const body = patterned(4 * 1024 * 1024);
  await withServer(sumsBody, async ({ port }) => {
    const reply = await rawExchange(port, [
      `POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n`,
      body,
      "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    ], 20_000);
    const responses = parseResponses(reply);
    assert.deepEqual(responses.map((r) => r.status), [200, 200]);
    assert.equal(responses[0].body, checksum([body]));
    assert.equal(responses[1].body, checksum([bytes("hello")]));
  });
});

Deno.test("readInto(): a chunked body, cut anywhere, reads the same", async () => {
  const body = patterned(300_000);
  const framed: Uint8Array[] = [
    bytes("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"),
  ];
  for (let at = 0, size = 1; at < body.length; at += size, size = size * 3 + 1) {
    const piece = body.subarray(at, Math.min(body.length, at + size));
    framed.push(bytes(`${piece.length.toString(16)}\r\n`), piece, bytes("\r\n"));
  }
  framed.push(bytes("0\r\n\r\n"));
  const wire = concat(framed);
  await withServer(sumsBody, async ({ port }) => {
    const pieces = [wire.subarray(0, 100), wire.subarray(100, 70_001), wire.subarray(70_001)];
    const [response] = parseResponses(await rawExchange(port, pieces, 20_000));
    assert.equal(response.status, 200);
    assert.equal(response.body, checksum([body]));
  });
});

/**
 * A body that stalls after its first bytes, so readInto()'s read waits on the socket, into the
 * app's array, until --body-timeout cuts it off; then more bytes come. True when none of them
 * landed in the array once the app's read had failed.
 */
async function untouchedAfter408(
  connect: (port: number) => Promise<Deno.Conn>,
  options: ServeOptions = {},
): Promise<boolean> {
  const SENTINEL = 0xee;
  const buf = new Uint8Array(64 * 1024).fill(SENTINEL);
  let failed!: (error: unknown) => void;
  const readFailed = new Promise<unknown>((resolve) => (failed = resolve));
  let lateSent!: () => void;
  const late = new Promise<void>((resolve) => (lateSent = resolve));
  let untouched = true;
  const app: App = async (environ, startResponse) => {
    const input = environ["tsgi.input"] as Required<Input>;
    try {
      // The first bytes came with the head; the next read waits on the socket, into `buf`.
      while ((await input.readInto(buf)) > 0) buf.fill(SENTINEL);
    } catch (error) {
      failed(error);
      // The connection is still open: the client's late bytes arrive while the app holds it.
      await late;
      await waitFor(() => buf.some((b) => b !== SENTINEL), 300);
      untouched = buf.every((b) => b === SENTINEL);
      throw error;
    }
    startResponse("200 OK", []);
    return ["unexpected"];
  };
  await withServer(app, async ({ port }) => {
    const conn = await connect(port);
    await conn.write(bytes("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nfirst"));
    assert.ok((await readFailed) instanceof BodyTimeoutError, "the stalled read failed with 408");
    await conn.write(new Uint8Array(50_000).fill(0x4c));
    lateSent();
    const reply = new Uint8Array(4096);
    const n = await conn.read(reply);
    conn.close();
    assert.ok(
      n !== null && new TextDecoder().decode(reply.subarray(0, n)).startsWith("HTTP/1.1 408"),
    );
  }, { bodyTimeout: 0.5, logLevel: "info", ...options });
  return untouched;
}

Deno.test("readInto(): after a 408, bytes that come later never land in the app's array", async () => {
  const connect = (port: number) => Deno.connect({ hostname: "127.0.0.1", port });
  assert.ok(
    await untouchedAfter408(connect),
    "a read cut off by the timeout wrote into the app's array afterwards",
  );
});

Deno.test({
  name: "readInto(): over HTTPS too, no byte lands in the app's array after a 408",
  ignore: !hasOpenssl() && (console.log("skipped: openssl is not installed"), true),
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      const { cert, key } = await makeCertificate(dir);
      const caCerts = [await Deno.readTextFile(cert)];
      const connect = (port: number) => Deno.connectTls({ hostname: "127.0.0.1", port, caCerts });
      assert.ok(
        await untouchedAfter408(connect, { certfile: cert, keyfile: key }),
        "a read cut off by the timeout wrote into the app's array afterwards",
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/** One way an app reads (part of) a body: what it got, as text. */
type BodyRead = (input: Required<Input>) => Promise<string>;
const latin1 = new TextDecoder("latin1");
const READS: Record<string, BodyRead> = {
  "readInto()": async (input) => {
    const buf = new Uint8Array(100);
    return latin1.decode(buf.subarray(0, await input.readInto(buf)));
  },
  "read(100)": async (input) => latin1.decode(await input.read(100)),
  "read(20000)": async (input) => latin1.decode(await input.read(20_000)),
  "readline()": async (input) => latin1.decode(await input.readline()),
};
const PAIRS = [
  ["readInto()", "readInto()"],
  ["read(100)", "read(100)"],
  ["readInto()", "read(100)"],
  ["read(20000)", "readInto()"],
  ["readline()", "read(20000)"],
];

for (const [first, second] of PAIRS) {
  Deno.test(`${first} and ${second} at once never read past the body, into the next request`, async () => {
    // An app's mistake, but the framing is the server's: the body is 10 bytes, whoever asks.
    const seen: string[] = [];
    let reading!: () => void;
    const bothReading = new Promise<void>((resolve) => (reading = resolve));
    const app: App = async (environ, startResponse) => {
      if (environ.PATH_INFO === "/a") {
        const input = environ["tsgi.input"] as Required<Input>;
        const both = Promise.all([READS[first](input), READS[second](input)]);
        reading();
        seen.push(...await both);
        seen.push(latin1.decode(await input.read()));
      }
      startResponse("200 OK", []);
      return [environ.PATH_INFO as string];
    };
    await withServer(app, async ({ port }) => {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      await conn.write(bytes("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n"));
      // Both reads wait on the socket before the body and the next request come, in one write.
      await bothReading;
      await conn.write(
        bytes("0123456789GET /b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
      );
      const responses = parseResponses(latin1.decode(await readUntilClose(conn)));
      closeQuietly(conn);
      assert.equal(seen.join("").length, 10, `the body read, and nothing past it: ${seen}`);
      assert.deepEqual([...seen.join("")].sort().join(""), "0123456789");
      assert.deepEqual(responses.map((r) => [r.status, r.body]), [[200, "/a"], [200, "/b"]]);
    });
  });
}

Deno.test("readInto() and read() at once on a stalled body: both fail with 408, neither waits on", async () => {
  // An app's mistake, two reads at once; the first to get bytes must not stop the body's clock
  // for the other, or a client that stalls holds the connection for ever.
  let reading!: () => void;
  const bothReading = new Promise<void>((resolve) => (reading = resolve));
  const app: App = async (environ) => {
    const input = environ["tsgi.input"] as Required<Input>;
    const both = Promise.all([input.readInto(new Uint8Array(1000)), input.read(50)]);
    reading();
    await both;
    throw new Error("unreachable: the body never ends");
  };
  await withServer(app, async ({ port }) => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await conn.write(bytes("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"));
    await bothReading;
    await conn.write(bytes("01234"));
    const [response] = parseResponses(latin1.decode(await readUntilClose(conn, 10_000)));
    closeQuietly(conn);
    assert.equal(response?.status, 408);
  }, { bodyTimeout: 0.5, logLevel: "info" });
});
