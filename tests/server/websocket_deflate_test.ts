// permessage-deflate end to end (--ws-deflate): python's `websockets` (an independent RFC 7692
// implementation, which offers it by default) for round trips, with and without context
// takeover; raw sockets for what a polite client never sends (RSV1 where it may not be, a
// decompression bomb, data that is not deflate, a malformed offer).

import assert from "node:assert/strict";
import zlib from "node:zlib";
import { Hono } from "npm:hono@4";
import { upgradeWebSocket as honoUpgrade } from "../../hono.ts";
import { toTsgiApp } from "../../src/app/fetch/to_tsgi.ts";
import { upgradeWebSocket } from "../../src/app/websocket.ts";
import type { App } from "../../src/tsgi/types.ts";
import type { ServerWebSocket } from "../../src/server/websocket.ts";
import type { ServeOptions } from "../../src/server/serve.ts";
import { closeQuietly, readUntilClose, withServer } from "../support/server.ts";
import {
  type ClientPlan,
  deflateClient,
  HAS_PYTHON_WEBSOCKETS,
} from "../support/ws_deflate_client.ts";

const MIB = 1024 * 1024;
const NO_PYTHON = !HAS_PYTHON_WEBSOCKETS;

/** An echo app; each socket's `extensions` is kept in `seen`. */
function echoApp(seen: string[] = []): App {
  return toTsgiApp((request) => {
    const { socket, response } = upgradeWebSocket(request);
    seen.push(socket.extensions);
    socket.binaryType = "arraybuffer";
    socket.onmessage = (event) => socket.send(event.data);
    return response;
  });
}

const MESSAGES: ClientPlan["messages"] = [
  { kind: "text", size: 10 }, // under the threshold: sent as it is
  { kind: "text", size: 5000 },
  { kind: "text", size: 5000 }, // the same again: takeover makes it a few bytes
  { kind: "binary", size: 200_000 },
  { kind: "binary", size: 3000, pattern: "random" }, // deflate does not pay
  { kind: "text", size: 300_000, fragments: 7 },
  { kind: "binary", size: 70_000, fragments: 3 },
  { kind: "text", size: 0 },
];

const ON = { wsDeflate: true, validate: false } as const;

Deno.test({
  name: "--ws-deflate: python's websockets echoes text and binary, small, large, fragmented",
  ignore: NO_PYTHON,
  async fn() {
    const seen: string[] = [];
    await withServer(echoApp(seen), async ({ port }) => {
      const result = await deflateClient(port, { messages: MESSAGES });
      const header = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";
      assert.equal(result.extensions, header);
      assert.deepEqual(seen, [header]);
      assert.deepEqual(result.matched, MESSAGES.map(() => true));
      // The server compressed what pays: not the short one, not the noise.
      assert.deepEqual(result.compressed, [false, true, true, true, false, true, true, false]);
    }, ON);
  },
});

Deno.test({
  name: "--ws-deflate-context-takeover: contexts kept across messages, as the offer allows",
  ignore: NO_PYTHON,
  async fn() {
    const options = { ...ON, wsDeflateContextTakeover: "both", wsDeflateWindowBits: 12 } as const;
    // [the offer's parameters, the answer]: each round trip goes through the contexts kept.
    const cases: [ClientPlan["offer"], string][] = [
      [{}, "server_max_window_bits=12; client_max_window_bits=12"],
      [
        { client_no_context_takeover: true, client_max_window_bits: 9 },
        "client_no_context_takeover; server_max_window_bits=12; client_max_window_bits=9",
      ],
      [
        { server_no_context_takeover: true, server_max_window_bits: 10 },
        "server_no_context_takeover; server_max_window_bits=10; client_max_window_bits=12",
      ],
    ];
    await withServer(echoApp(), async ({ port }) => {
      for (const [offer, answer] of cases) {
        const result = await deflateClient(port, { offer, messages: MESSAGES });
        assert.equal(result.extensions, `permessage-deflate; ${answer}`);
        assert.deepEqual(result.matched, MESSAGES.map(() => true));
      }
    }, options);
  },
});

Deno.test({
  name: "--ws-deflate-context-takeover client: the client keeps its context, the server not",
  ignore: NO_PYTHON,
  async fn() {
    const options = { ...ON, wsDeflateContextTakeover: "client" } as const;
    await withServer(echoApp(), async ({ port }) => {
      const result = await deflateClient(port, { messages: MESSAGES });
      assert.equal(result.extensions, "permessage-deflate; server_no_context_takeover");
      assert.deepEqual(result.matched, MESSAGES.map(() => true));
    }, options);
  },
});

Deno.test({
  name: "without --ws-deflate the offer is not answered and messages go uncompressed",
  ignore: NO_PYTHON,
  async fn() {
    const seen: string[] = [];
    await withServer(echoApp(seen), async ({ port }) => {
      const result = await deflateClient(port, { messages: MESSAGES.slice(0, 3) });
      assert.equal(result.extensions, null);
      assert.deepEqual(seen, [""]);
      assert.deepEqual(result.matched, [true, true, true]);
      assert.deepEqual(result.compressed, []);
    }, { validate: false });
  },
});

// --- raw sockets ------------------------------------------------------------------------------

const MASK = [0x12, 0x34, 0x56, 0x78];

function clientFrame(b0: number, payload: Uint8Array): Uint8Array {
  const n = payload.length;
  const head = [b0];
  if (n < 126) head.push(0x80 | n);
  else if (n < 65536) head.push(0x80 | 126, n >> 8, n & 0xff);
  else {
    head.push(0x80 | 127);
    for (let i = 7; i >= 0; i--) head.push(Math.floor(n / 2 ** (8 * i)) & 0xff);
  }
  const out = new Uint8Array(head.length + 4 + n);
  out.set(head);
  out.set(MASK, head.length);
  for (let i = 0; i < n; i++) out[head.length + 4 + i] = payload[i] ^ MASK[i & 3];
  return out;
}

/** Raw deflate, sync-flushed, its tail removed: a compressed message's payload. */
function deflated(data: Uint8Array): Uint8Array {
  const out = zlib.deflateRawSync(data, { finishFlush: zlib.constants.Z_SYNC_FLUSH });
  return out.subarray(0, out.length - 4);
}

const text = (s: string) => new TextEncoder().encode(s);

function handshake(extensions: string | null): Uint8Array {
  const field = extensions === null ? "" : `Sec-WebSocket-Extensions: ${extensions}\r\n`;
  return text(
    "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
      `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n${field}\r\n`,
  );
}

/**
 * Shakes hands offering `extensions`, sends `frames`, and reads until the server closes (or 5
 * s pass): the response's head, what followed it, and the code of the close frame the server
 * sent (0 for none).
 */
async function exchange(port: number, extensions: string | null, frames: Uint8Array[]) {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const reading = readUntilClose(conn, 5000);
  const writeAll = async (bytes: Uint8Array) => {
    for (let done = 0; done < bytes.length;) done += await conn.write(bytes.subarray(done));
  };
  await writeAll(handshake(extensions)).catch(() => {});
  for (const frame of frames) await writeAll(frame).catch(() => {});
  const all = await reading;
  closeQuietly(conn);
  const latin1 = new TextDecoder("latin1").decode(all);
  const end = latin1.indexOf("\r\n\r\n") + 4;
  return {
    head: latin1.slice(0, end),
    rest: latin1.slice(end),
    code: closeCode(all.subarray(end)),
  };
}

/** The code of the first close frame among the server's (unmasked) frames; 0 for none. */
function closeCode(frames: Uint8Array): number {
  for (let at = 0; at + 2 <= frames.length;) {
    let n = frames[at + 1] & 0x7f;
    let start = at + 2;
    if (n === 126) [n, start] = [(frames[at + 2] << 8) | frames[at + 3], at + 4];
    else if (n === 127) {
      n = Number(new DataView(frames.buffer, frames.byteOffset + at + 2, 8).getBigUint64(0));
      start = at + 10;
    }
    if ((frames[at] & 0x0f) === 0x8) return (frames[start] << 8) | frames[start + 1];
    at = start + n;
  }
  return 0;
}

const OFFER = "permessage-deflate";
const CLOSE = clientFrame(0x88, Uint8Array.of(0x03, 0xe8));

for (
  const [name, offer, frames, code] of [
    ["a compressed message inflates and echoes", OFFER, [
      clientFrame(0xc1, deflated(text("hello ".repeat(30)))),
      CLOSE,
    ], 1000],
    ["RSV1 when the client offered nothing is 1002", null, [
      clientFrame(0xc1, deflated(text("hello"))),
    ], 1002],
    ["RSV1 on a continuation frame is 1002", OFFER, [
      clientFrame(0x41, deflated(text("hello")).subarray(0, 2)),
      clientFrame(0xc0, deflated(text("hello")).subarray(2)),
    ], 1002],
    ["RSV1 on a ping is 1002", OFFER, [clientFrame(0xc9, new Uint8Array(0))], 1002],
    ["RSV1 on a close is 1002", OFFER, [clientFrame(0xc8, Uint8Array.of(0x03, 0xe8))], 1002],
    ["data that is not deflate is 1007", OFFER, [
      clientFrame(0xc1, Uint8Array.of(0xff, 0xff, 0xff, 0xff)),
    ], 1007],
    ["a compressed text message that inflates to invalid UTF-8 is 1007", OFFER, [
      clientFrame(0xc1, deflated(Uint8Array.of(0xc3, 0x28))),
    ], 1007],
  ] as const
) {
  Deno.test(`--ws-deflate, raw socket: ${name}`, async () => {
    await withServer(echoApp(), async ({ port }) => {
      const result = await exchange(port, offer, [...frames]);
      assert.match(result.head, /^HTTP\/1\.1 101 /);
      assert.equal(result.code, code);
    }, ON);
  });
}

Deno.test("--ws-deflate: a malformed Sec-WebSocket-Extensions is a 400 that says why", async () => {
  await withServer(echoApp(), async ({ port, errors }) => {
    const result = await exchange(port, "permessage-deflate; server_max_window_bits=", []);
    assert.match(result.head, /^HTTP\/1\.1 400 /);
    // The status goes to the client, the reason to the log (as for every 400).
    const reason = "400 Invalid Sec-WebSocket-Extensions: expected a token, found the end";
    assert.ok(errors.text.includes(reason), errors.text);
    // Without the flag the field is not read: the same request is upgraded.
  }, ON);
  await withServer(echoApp(), async ({ port }) => {
    const result = await exchange(port, "permessage-deflate; server_max_window_bits=", [CLOSE]);
    assert.match(result.head, /^HTTP\/1\.1 101 /);
    assert.doesNotMatch(result.head, /Sec-WebSocket-Extensions/i);
  }, { validate: false });
});

Deno.test({
  name: "--ws-deflate: a bomb is closed with 1009 and server memory stays bounded",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    // 256 MiB of zeros: 256 KiB on the wire, far under --ws-max-message as sent.
    const bomb = deflated(new Uint8Array(256 * MIB));
    assert.ok(bomb.length < MIB);
    const options: ServeOptions & { validate: false } = { ...ON, wsMaxMessage: 4 * MIB };
    await withServer(echoApp(), async ({ port }) => {
      const before = Deno.memoryUsage().rss;
      const result = await exchange(port, OFFER, [clientFrame(0xc2, bomb)]);
      const grown = (Deno.memoryUsage().rss - before) / MIB;
      assert.equal(result.code, 1009);
      assert.ok(grown < 64, `a 256 MiB bomb grew server RSS by ${grown.toFixed(0)} MiB`);
    }, options);
  },
});

Deno.test("--ws-deflate: socket.extensions in TSGI and Hono apps too", async () => {
  const seen: string[] = [];
  const tsgi: App = (environ) => {
    const socket = (environ["tsgi.server.websocket"] as () => ServerWebSocket)();
    seen.push(`tsgi: ${socket.extensions}`);
    return [];
  };
  const hono = new Hono();
  hono.get(
    "/",
    honoUpgrade(() => ({
      onOpen: (_event, ws) => seen.push(`hono: ${(ws.raw as ServerWebSocket).extensions}`),
    })),
  );
  const agreed = "permessage-deflate; server_no_context_takeover; client_no_context_takeover";
  for (const app of [tsgi, toTsgiApp(hono)]) {
    await withServer(app, async ({ port }) => {
      const result = await exchange(port, OFFER, [CLOSE]);
      assert.match(result.head, new RegExp(`\r\nSec-WebSocket-Extensions: ${agreed}\r\n`));
    }, ON);
  }
  assert.deepEqual(seen, [`tsgi: ${agreed}`, `hono: ${agreed}`]);
});

Deno.test("--ws-deflate: Deno's own WebSocket, which offers nothing, still talks", async () => {
  await withServer(echoApp(), async ({ port }) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/`);
    const reply = new Promise<string>((resolve) => (ws.onmessage = (e) => resolve(e.data)));
    await new Promise((resolve) => (ws.onopen = resolve));
    assert.equal(ws.extensions, "");
    ws.send("x".repeat(1000));
    assert.equal(await reply, "x".repeat(1000));
    const closed = new Promise((resolve) => (ws.onclose = resolve));
    ws.close();
    await closed;
  }, ON);
});
