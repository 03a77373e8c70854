// read(n) of chunked bodies over real sockets: framing in every cut, limits and errors in the
// middle of a read, and pipelined requests after the last chunk left whole.

import assert from "node:assert/strict";
import type { App, Input } from "../../src/tsgi/types.ts";
import { bytes, parseResponses, rawExchange, withServer } from "../support/server.ts";

/** Reads the body with read(n) (n from the query, default 7) and answers length and bytes. */
const readsN: App = async (environ, startResponse) => {
  const input = environ["tsgi.input"] as Input;
  const n = Number(new URLSearchParams(String(environ.QUERY_STRING ?? "")).get("n") ?? 7);
  const parts: string[] = [];
  let length = 0;
  while (true) {
    const piece = await input.read(n);
    if (piece.length === 0) break;
    length += piece.length;
    parts.push(new TextDecoder("latin1").decode(piece));
    if (piece.length > n) throw new Error(`read(${n}) gave ${piece.length}`);
  }
  startResponse("200 OK", [["Content-Type", "text/plain"]]);
  return [`${length}:${parts.join("|")}`];
};

const chunkedHead = (path: string, extra = "") =>
  `POST ${path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n${extra}\r\n`;
const last = "GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

Deno.test("read(n) chunked: extensions, trailers, then a pipelined request", async () => {
  await withServer(readsN, async ({ port }) => {
    const reply = await rawExchange(port, [
      chunkedHead("/?n=4") + '3;a=b;c="d"\r\nabc\r\n5 ; x\r\ndefgh\r\n0;z\r\nT: 1\r\nU: 2\r\n\r\n' +
      last,
    ]);
    const responses = parseResponses(reply);
    assert.deepEqual(responses.map((r) => r.status), [200, 200]);
    assert.equal(responses[0].body, "8:abcd|efgh");
  });
});

Deno.test("read(n) chunked: every byte its own write (size lines split across reads)", async () => {
  await withServer(readsN, async ({ port }) => {
    const wire = chunkedHead("/?n=5") + "a;ext=1\r\n0123456789\r\n5\r\nabcde\r\n0\r\nT: x\r\n\r\n" +
      last;
    const pieces = [...wire].map((c) => c);
    const reply = await rawExchange(port, pieces, 10_000);
    const responses = parseResponses(reply);
    assert.deepEqual(responses.map((r) => r.status), [200, 200]);
    assert.equal(responses[0].body, "15:01234|56789|abcde");
  });
});

Deno.test("read(n) chunked: chunk data ending exactly at read(n)'s boundary", async () => {
  await withServer(readsN, async ({ port }) => {
    for (const cut of [1, 2, 3, 4, 5, 6, 7, 8]) {
      const wire = chunkedHead("/?n=4") + "4\r\nabcd\r\n4\r\nefgh\r\n0\r\n\r\n" + last;
      const pieces: string[] = [];
      for (let i = 0; i < wire.length; i += cut) pieces.push(wire.slice(i, i + cut));
      const responses = parseResponses(await rawExchange(port, pieces, 10_000));
      assert.deepEqual(responses.map((r) => r.status), [200, 200], `cut ${cut}`);
      assert.equal(responses[0].body, "8:abcd|efgh", `cut ${cut}`);
    }
  });
});

Deno.test("read(n) chunked: --max-body-size exceeded in the middle of a read is a 413", async () => {
  await withServer(readsN, async ({ port }) => {
    const reply = await rawExchange(port, [
      chunkedHead("/?n=100") + "5\r\nabcde\r\n6\r\nfghijk\r\n0\r\n\r\n" + last,
    ]);
    const responses = parseResponses(reply);
    assert.deepEqual(responses.map((r) => r.status), [413]);
    assert.doesNotMatch(responses[0].body, /abcde/);
  }, { maxBodySize: 10 });
});

Deno.test("read(n) chunked: malformed framing mid-body is a 400 and nothing after", async () => {
  await withServer(readsN, async ({ port }) => {
    for (const bad of ["5\r\nabcdeXX\r\n", "5\r\nabcde\r\nzz\r\n", "5\r\nabcde\n0\r\n\r\n"]) {
      const reply = await rawExchange(port, [
        chunkedHead("/?n=3") + "2\r\nxy\r\n" + bad + "0\r\n\r\n" + last,
      ]);
      const responses = parseResponses(reply);
      assert.deepEqual(responses.map((r) => r.status), [400], JSON.stringify(bad));
    }
  });
});

Deno.test("read(n) chunked: huge trailers are refused (431), not buffered", async () => {
  await withServer(readsN, async ({ port }) => {
    const reply = await rawExchange(port, [
      chunkedHead("/?n=3") + "2\r\nxy\r\n0\r\nT: " + "a".repeat(200_000) + "\r\n\r\n" + last,
    ]);
    const responses = parseResponses(reply);
    assert.deepEqual(responses.map((r) => r.status), [431]);
  });
});

Deno.test("read(n) chunked: Expect: 100-continue, then the body", async () => {
  await withServer(readsN, async ({ port }) => {
    const reply = await rawExchange(port, [
      chunkedHead("/?n=4", "Expect: 100-continue\r\n") +
      "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n" + last,
    ]);
    const responses = parseResponses(reply);
    assert.deepEqual(responses.map((r) => r.status), [100, 200, 200]);
    assert.equal(responses[1].body, "5:abcd|e");
  });
});

Deno.test("read(n) chunked: a body that stalls mid-chunk gets 408 and a close", async () => {
  const seen: string[] = [];
  const app: App = async (environ, startResponse) => {
    try {
      await (environ["tsgi.input"] as Input).read(100);
    } catch (error) {
      seen.push((error as Error).name);
      throw error;
    }
    startResponse("200 OK", []);
    return ["unexpected"];
  };
  await withServer(app, async ({ port }) => {
    const reply = await rawExchange(port, [chunkedHead("/") + "a\r\nabc"], 8000);
    const responses = parseResponses(reply);
    assert.deepEqual(responses.map((r) => [r.status, r.headers.connection]), [[408, "close"]]);
    assert.deepEqual(seen, ["BodyTimeoutError"]);
  }, { bodyTimeout: 0.5, minBodyRate: 100, rateGrace: 0.5, logLevel: "info" });
});

Deno.test("read(n) chunked: the client closing mid-chunk fails the read, the server lives", async () => {
  const seen: string[] = [];
  let resolveSeen: () => void;
  const failed = new Promise<void>((resolve) => (resolveSeen = resolve));
  const app: App = async (environ, startResponse) => {
    try {
      await (environ["tsgi.input"] as Input).read(100);
    } catch (error) {
      seen.push((error as Error).name);
      resolveSeen();
      throw error;
    }
    startResponse("200 OK", []);
    return ["unexpected"];
  };
  await withServer(app, async ({ port, url }) => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await conn.write(bytes(chunkedHead("/") + "a\r\nabc"));
    conn.close();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const bound = new Promise((resolve) => (timer = setTimeout(resolve, 5000)));
    await Promise.race([failed, bound]);
    clearTimeout(timer);
    assert.deepEqual(seen, ["ClientGoneError"]);
    const after = await fetch(url, { method: "POST", body: "hello" });
    assert.equal(await after.text(), "unexpected");
  });
});

Deno.test("read(n): Content-Length with Transfer-Encoding, obs-fold and bare LF are refused", async () => {
  const shapes = [
    "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n" +
    "0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
    "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n" +
    "0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
    "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n",
    "POST / HTTP/1.1\r\nHost: x\r\nX: a\r\n chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "POST / HTTP/1.1\nHost: x\nTransfer-Encoding: chunked\n\n0\n\n",
    "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n",
    "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
    "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n" +
    "\r\n0\r\n\r\n",
    "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
    "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
    "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n",
    "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n-3\r\nabc\r\n0\r\n\r\n",
    "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\n",
  ];
  await withServer(readsN, async ({ port }) => {
    for (const shape of shapes) {
      const reply = await rawExchange(port, [shape], 3000);
      const statuses = parseResponses(reply).map((r) => r.status);
      assert.equal(statuses.length, 1, `${JSON.stringify(shape)}: ${statuses}`);
      assert.ok(statuses[0] >= 400 && statuses[0] <= 501, `${JSON.stringify(shape)}: ${statuses}`);
      assert.doesNotMatch(reply, /smuggled/);
    }
  });
});

Deno.test("read(n) chunked: one read of exactly the body, the end left unread, then the next request", async () => {
  const once: App = async (environ, startResponse) => {
    const piece = await (environ["tsgi.input"] as Input).read(8);
    startResponse("200 OK", [["Content-Type", "text/plain"]]);
    return [new TextDecoder().decode(piece)];
  };
  await withServer(once, async ({ port }) => {
    for (const tail of ["0\r\n\r\n", "0\r\nT: 1\r\n\r\n", "0;x=y\r\n\r\n"]) {
      for (const expect of ["", "Expect: 100-continue\r\n"]) {
        const wire = chunkedHead("/", expect) + "4\r\nabcd\r\n4\r\nefgh\r\n" + tail;
        const reply = await rawExchange(port, [wire, last]);
        const responses = parseResponses(reply).filter((r) => r.status !== 100);
        assert.deepEqual(responses.map((r) => [r.status, r.body]), [[200, "abcdefgh"], [200, ""]]);
      }
    }
  });
});

Deno.test("read(n) chunked: a client that waits for 100 Continue before its chunks", async () => {
  await withServer(readsN, async ({ port }) => {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    // A deadline: a server that never asks would otherwise hold the test forever.
    const timer = setTimeout(() => conn.close(), 5000);
    await conn.write(bytes(chunkedHead("/?n=4", "Expect: 100-continue\r\nConnection: close\r\n")));
    const buf = new Uint8Array(4096);
    let received = "";
    const decoder = new TextDecoder("latin1");
    // Nothing is sent until the server asks for it.
    while (!received.includes("\r\n\r\n")) {
      const n = await conn.read(buf).catch(() => null);
      if (n === null) break;
      received += decoder.decode(buf.subarray(0, n));
    }
    assert.match(received, /^HTTP\/1.1 100 Continue\r\n\r\n$/);
    await conn.write(bytes("3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"));
    for (let n; (n = await conn.read(buf).catch(() => null)) !== null;) {
      received += decoder.decode(buf.subarray(0, n));
    }
    clearTimeout(timer);
    conn.close();
    const responses = parseResponses(received);
    assert.deepEqual(responses.map((r) => [r.status, r.body]), [[100, ""], [200, "5:abcd|e"]]);
  });
});
