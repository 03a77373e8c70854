// WebSockets end to end: Deno's own WebSocket client against fetch apps (upgradeWebSocket), TSGI
// apps (environ["tsgi.server.websocket"]) and Hono's helper; and raw sockets for what a polite
// client never sends.

import assert from "node:assert/strict";
import { Hono } from "npm:hono@4";
import { upgradeWebSocket as honoUpgrade } from "../../hono.ts";
import { toTsgiApp } from "../../src/app/fetch/to_tsgi.ts";
import { upgradeWebSocket } from "../../src/app/websocket.ts";
import type { App } from "../../src/tsgi/types.ts";
import type { WebSocketUpgrade } from "../../src/app/websocket.ts";
import { withServer } from "../support/server.ts";

/** A fetch app that echoes every message back, and answers "plain" to other requests. */
const echoFetch = toTsgiApp((request) => {
  if (request.headers.get("upgrade") !== "websocket") return new Response("plain");
  const { socket, response } = upgradeWebSocket(request);
  socket.onmessage = (event) => socket.send(event.data);
  return response;
});

/** Connects, sends each message, and resolves with the replies and how it closed. */
async function converse(url: string, messages: (string | Uint8Array)[], closeWith?: number) {
  const ws = new WebSocket(url);
  ws.binaryType = "arraybuffer";
  const replies: (string | number[])[] = [];
  const closed = new Promise<CloseEvent>((resolve) => (ws.onclose = resolve));
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = reject;
  });
  const all = new Promise<void>((resolve) => {
    ws.onmessage = (event) => {
      replies.push(typeof event.data === "string" ? event.data : [...new Uint8Array(event.data)]);
      if (replies.length === messages.length) resolve();
    };
  });
  for (const message of messages) ws.send(message);
  if (messages.length > 0) await all;
  ws.close(closeWith ?? 1000, "done");
  const event = await closed;
  return { replies, code: event.code, reason: event.reason, wasClean: event.wasClean };
}

Deno.test("a fetch app's upgradeWebSocket(): echo of text and binary, then a clean close", async () => {
  await withServer(echoFetch, async ({ port }) => {
    const result = await converse(`ws://127.0.0.1:${port}/`, ["hello", Uint8Array.of(1, 2, 3)]);
    assert.deepEqual(result.replies, ["hello", [1, 2, 3]]);
    assert.equal(result.code, 1000);
    assert.equal(result.wasClean, true);
    // The same app still serves plain requests.
    assert.equal(await (await fetch(`http://127.0.0.1:${port}/`)).text(), "plain");
  }, { validate: false });
});

Deno.test("a TSGI app takes the socket from environ['tsgi.server.websocket']", async () => {
  const app: App = (environ, startResponse) => {
    const upgrade = environ["tsgi.server.websocket"] as WebSocketUpgrade | undefined;
    if (upgrade === undefined) {
      startResponse("200 OK", [["Content-Type", "text/plain"]]);
      return ["no upgrade offered"];
    }
    const socket = upgrade();
    socket.onmessage = (event) => socket.send(`tsgi: ${event.data}`);
    return [];
  };
  await withServer(app, async ({ port }) => {
    const result = await converse(`ws://127.0.0.1:${port}/chat`, ["one", "two"]);
    assert.deepEqual(result.replies, ["tsgi: one", "tsgi: two"]);
    assert.equal(await (await fetch(`http://127.0.0.1:${port}/`)).text(), "no upgrade offered");
  }, { validate: false });
});

Deno.test("Hono's upgradeWebSocket helper from tsgi's hono.ts", async () => {
  const hono = new Hono();
  hono.get(
    "/ws",
    honoUpgrade(() => ({
      onMessage(event, ws) {
        ws.send(`hono: ${event.data}`);
      },
    })),
  );
  await withServer(toTsgiApp(hono), async ({ port }) => {
    const result = await converse(`ws://127.0.0.1:${port}/ws`, ["hi"]);
    assert.deepEqual(result.replies, ["hono: hi"]);
  }, { validate: false });
});

/** Sends raw bytes on a fresh connection and reads until the server closes (or 3 s). */
async function raw(port: number, bytes: Uint8Array): Promise<Uint8Array> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(bytes);
  const chunks: number[] = [];
  const buf = new Uint8Array(4096);
  const until = Date.now() + 3000;
  while (Date.now() < until) {
    const n = await conn.read(buf).catch(() => null);
    if (n === null) break;
    chunks.push(...buf.subarray(0, n));
  }
  try {
    conn.close();
  } catch {
    // Closed by the server.
  }
  return Uint8Array.from(chunks);
}

const HANDSHAKE = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/** What follows the 101's head. */
function afterHead(bytes: Uint8Array): { head: string; frames: number[] } {
  const text = new TextDecoder("latin1").decode(bytes);
  const end = text.indexOf("\r\n\r\n") + 4;
  return { head: text.slice(0, end), frames: [...bytes.subarray(end)] };
}

Deno.test("the 101 carries the accept key the RFC gives for its example key", async () => {
  await withServer(echoFetch, async ({ port }) => {
    // A ping, then an unmasked frame: the server answers pong, then closes with 1002.
    const ping = [0x89, 0x80, 1, 2, 3, 4];
    const unmasked = [0x81, 0x02, 0x68, 0x69];
    const bytes = new Uint8Array([...new TextEncoder().encode(HANDSHAKE), ...ping, ...unmasked]);
    const { head, frames } = afterHead(await raw(port, bytes));
    assert.match(head, /^HTTP\/1\.1 101 Switching Protocols\r\n/);
    assert.match(head, /\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=\r\n/);
    // A pong with the ping's (empty) payload, then close 1002.
    assert.deepEqual(frames.slice(0, 2), [0x8a, 0x00]);
    assert.equal(frames[2], 0x88);
    assert.deepEqual(frames.slice(4, 6), [0x03, 0xea]);
  }, { validate: false });
});

Deno.test("a handshake for another version is 426 with Sec-WebSocket-Version: 13", async () => {
  await withServer(echoFetch, async ({ port }) => {
    const request = HANDSHAKE.replace("Version: 13", "Version: 8");
    const { head } = afterHead(await raw(port, new TextEncoder().encode(request)));
    assert.match(head, /^HTTP\/1\.1 426 /);
    assert.match(head, /\r\nSec-WebSocket-Version: 13\r\n/);
  }, { validate: false });
});

Deno.test("a graceful stop closes every socket with 1001", async () => {
  let port = 0;
  let stop: (() => Promise<void>) | undefined;
  const closed = withServer(echoFetch, async (server) => {
    port = server.port;
    stop = () => server.handle.shutdown(2000);
    const ws = new WebSocket(`ws://127.0.0.1:${port}/`);
    await new Promise((resolve) => (ws.onopen = resolve));
    const event = new Promise<CloseEvent>((resolve) => (ws.onclose = resolve));
    await stop();
    const close = await event;
    assert.equal(close.code, 1001);
  }, { validate: false });
  await closed;
});
