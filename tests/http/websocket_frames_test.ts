// RFC 6455 framing (src/http/websocket_frames.ts) as a table of cases, each decoded whole and
// split at every byte boundary: the messages it gives, or the close code it refuses with.

import assert from "node:assert/strict";
import {
  closePayload,
  encodeFrame,
  FrameDecoder,
  type Incoming,
  isSendableCloseCode,
  OPCODE,
  WebSocketProtocolError,
} from "../../src/http/websocket_frames.ts";
import {
  acceptKey,
  checkHandshake,
  offeredProtocols,
  VersionError,
} from "../../src/http/websocket_handshake.ts";
import { HttpError } from "../../src/http/errors.ts";

const MASK = [0x37, 0xfa, 0x21, 0x3d];
const encoder = new TextEncoder();

/** A client frame: masked unless told not to; the length field as RFC 6455 spells it. */
function clientFrame(
  opcode: number,
  payload: Uint8Array | string,
  { fin = true, masked = true, rsv = 0, lengthBytes = 0 } = {},
): number[] {
  const data = typeof payload === "string" ? encoder.encode(payload) : payload;
  const bytes = [(fin ? 0x80 : 0) | rsv | opcode];
  const m = masked ? 0x80 : 0;
  const n = data.length;
  const width = lengthBytes || (n < 126 ? 0 : n < 65536 ? 2 : 8);
  if (width === 0) bytes.push(m | n);
  else if (width === 2) bytes.push(m | 126, n >> 8, n & 0xff);
  else {
    bytes.push(m | 127);
    for (let i = 7; i >= 0; i--) bytes.push(Math.floor(n / 2 ** (8 * i)) & 0xff);
  }
  if (masked) bytes.push(...MASK);
  data.forEach((b, i) => bytes.push(masked ? b ^ MASK[i & 3] : b));
  return bytes;
}

type Outcome = Incoming[] | { close: number };

/** Decodes `bytes` fed in the pieces `splits` cuts them into. */
function decode(bytes: number[], splits: number[], max = 1 << 20): Outcome {
  const decoder = new FrameDecoder(max);
  const out: Incoming[] = [];
  let from = 0;
  for (const to of [...splits, bytes.length]) {
    out.push(...decoder.push(Uint8Array.from(bytes.slice(from, to))));
    if (decoder.failure instanceof WebSocketProtocolError) return { close: decoder.failure.code };
    from = to;
  }
  return out;
}

/**
 * The same outcome whole, and split once at every byte boundary (for a long input: every one
 * of its first 32 bytes, where the headers are, and a hundred through the payload).
 */
function assertEverySplit(bytes: number[], expected: Outcome, max?: number): void {
  assert.deepEqual(decode(bytes, [], max), expected);
  const step = bytes.length > 1000 ? Math.ceil(bytes.length / 100) : 1;
  for (let at = 1; at < bytes.length; at += at < 32 ? 1 : step) {
    assert.deepEqual(decode(bytes, [at], max), expected, `split at ${at}`);
  }
}

const text = (data: string): Incoming => ({ kind: "text", data });
const binary = (data: number[]): Incoming => ({ kind: "binary", data: Uint8Array.from(data) });
const close = (code: number, reason = ""): Incoming => ({ kind: "close", code, reason });

const CASES: [string, number[], Outcome][] = [
  ["a text message", clientFrame(OPCODE.TEXT, "Hello"), [text("Hello")]],
  ["an empty text message", clientFrame(OPCODE.TEXT, ""), [text("")]],
  ["a binary message", clientFrame(OPCODE.BINARY, Uint8Array.of(0, 255, 7)), [binary([0, 255, 7])]],
  ["a 200-byte message (16-bit length)", clientFrame(OPCODE.TEXT, "x".repeat(200)), [
    text("x".repeat(200)),
  ]],
  ["a 70,000-byte message (64-bit length)", clientFrame(OPCODE.BINARY, new Uint8Array(70000)), [
    { kind: "binary", data: new Uint8Array(70000) },
  ]],
  ["a fragmented text message", [
    ...clientFrame(OPCODE.TEXT, "Hel", { fin: false }),
    ...clientFrame(OPCODE.CONTINUATION, "l", { fin: false }),
    ...clientFrame(OPCODE.CONTINUATION, "o"),
  ], [text("Hello")]],
  ["a ping between fragments", [
    ...clientFrame(OPCODE.TEXT, "Hel", { fin: false }),
    ...clientFrame(OPCODE.PING, "p"),
    ...clientFrame(OPCODE.CONTINUATION, "lo"),
  ], [{ kind: "ping", data: encoder.encode("p") }, text("Hello")]],
  ["UTF-8 cut between fragments", [
    ...clientFrame(OPCODE.TEXT, Uint8Array.of(0xce), { fin: false }),
    ...clientFrame(OPCODE.CONTINUATION, Uint8Array.of(0xba)),
  ], [text("κ")]],
  ["a pong", clientFrame(OPCODE.PONG, "x"), [{ kind: "pong", data: encoder.encode("x") }]],
  ["a close with a code and reason", clientFrame(OPCODE.CLOSE, closePayload(1000, "bye")), [
    close(1000, "bye"),
  ]],
  ["a close with no code", clientFrame(OPCODE.CLOSE, ""), [close(1005)]],
  ["a close with an application code", clientFrame(OPCODE.CLOSE, closePayload(4000)), [
    close(4000),
  ]],
  // Violations, each with the code RFC 6455 asks for.
  ["an unmasked client frame", clientFrame(OPCODE.TEXT, "x", { masked: false }), { close: 1002 }],
  ["a reserved bit", clientFrame(OPCODE.TEXT, "x", { rsv: 0x40 }), { close: 1002 }],
  ["a reserved data opcode", clientFrame(0x3, "x"), { close: 1002 }],
  ["a reserved control opcode", clientFrame(0xb, "x"), { close: 1002 }],
  ["a fragmented ping", clientFrame(OPCODE.PING, "x", { fin: false }), { close: 1002 }],
  ["a 126-byte ping", clientFrame(OPCODE.PING, "x".repeat(126)), { close: 1002 }],
  ["a continuation of nothing", clientFrame(OPCODE.CONTINUATION, "x"), { close: 1002 }],
  ["a new message inside a fragmented one", [
    ...clientFrame(OPCODE.TEXT, "a", { fin: false }),
    ...clientFrame(OPCODE.TEXT, "b"),
  ], { close: 1002 }],
  ["a 16-bit length under 126", clientFrame(OPCODE.TEXT, "x", { lengthBytes: 2 }), { close: 1002 }],
  ["a 64-bit length under 65536", clientFrame(OPCODE.TEXT, "x", { lengthBytes: 8 }), {
    close: 1002,
  }],
  ["a 64-bit length with its top bit", [0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0], { close: 1002 }],
  ["invalid UTF-8 in a text message", clientFrame(OPCODE.TEXT, Uint8Array.of(0xff)), {
    close: 1007,
  }],
  ["a close of one byte", clientFrame(OPCODE.CLOSE, Uint8Array.of(3)), { close: 1002 }],
  ["a close with code 1005", clientFrame(OPCODE.CLOSE, closePayload(1005)), { close: 1002 }],
  ["a close with code 999", clientFrame(OPCODE.CLOSE, closePayload(999)), { close: 1002 }],
  [
    "a close reason that is not UTF-8",
    clientFrame(
      OPCODE.CLOSE,
      Uint8Array.of(0x03, 0xe8, 0xff),
    ),
    { close: 1007 },
  ],
];

for (const [name, bytes, expected] of CASES) {
  Deno.test(`FrameDecoder: ${name}, however it is split`, () => assertEverySplit(bytes, expected));
}

Deno.test("FrameDecoder: a message over the limit is 1009, counted across fragments", () => {
  assert.deepEqual(decode(clientFrame(OPCODE.BINARY, new Uint8Array(11)), [], 10), { close: 1009 });
  const fragments = [
    ...clientFrame(OPCODE.TEXT, "123456", { fin: false }),
    ...clientFrame(OPCODE.CONTINUATION, "78901"),
  ];
  assert.deepEqual(decode(fragments, [], 10), { close: 1009 });
  // Refused at its header: a client that announces 2^40 bytes gets no allocation.
  const huge = [0x82, 0xff, 0, 0, 1, 0, 0, 0, 0, 0];
  assert.deepEqual(decode(huge, [], 1 << 20), { close: 1009 });
});

Deno.test("encodeFrame: server frames are unmasked, with the shortest length field", () => {
  assert.deepEqual([...encodeFrame(OPCODE.TEXT, encoder.encode("Hi"))], [0x81, 2, 0x48, 0x69]);
  const medium = encodeFrame(OPCODE.BINARY, new Uint8Array(300));
  assert.deepEqual([...medium.subarray(0, 4)], [0x82, 126, 1, 44]);
  const large = encodeFrame(OPCODE.BINARY, new Uint8Array(70000), false);
  assert.deepEqual([...large.subarray(0, 10)], [0x02, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]);
  assert.equal(large.length, 70010);
});

Deno.test("close codes that may be sent, and close payloads", () => {
  for (const code of [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 4999]) {
    assert.ok(isSendableCloseCode(code), String(code));
  }
  for (const code of [0, 999, 1004, 1005, 1006, 1015, 1100, 2999, 5000]) {
    assert.ok(!isSendableCloseCode(code), String(code));
  }
  assert.deepEqual([...closePayload(1001, "go")], [0x03, 0xe9, 0x67, 0x6f]);
  assert.throws(() => closePayload(1000, "x".repeat(124)), RangeError);
});

const handshake = (fields: Record<string, string>) => (name: string) => fields[name];
const GOOD = {
  connection: "keep-alive, Upgrade",
  upgrade: "websocket",
  "sec-websocket-version": "13",
  "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
};

Deno.test("the opening handshake: the RFC's example key and its accept value", async () => {
  assert.equal(checkHandshake("GET", 1, handshake(GOOD)), GOOD["sec-websocket-key"]);
  // RFC 6455 §1.3's own example.
  assert.equal(await acceptKey("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
});

Deno.test("the opening handshake: each missing or wrong part is refused with its status", () => {
  const refused: [string, string, number, Record<string, string>][] = [
    ["POST", "a POST", 400, GOOD],
    ["GET", "no Connection: upgrade", 400, { ...GOOD, connection: "keep-alive" }],
    ["GET", "no Upgrade: websocket", 400, { ...GOOD, upgrade: "h2c" }],
    ["GET", "a short key", 400, { ...GOOD, "sec-websocket-key": "c2hvcnQ=" }],
    ["GET", "a key that is not base64", 400, { ...GOOD, "sec-websocket-key": "!".repeat(24) }],
    ["GET", "version 8", 426, { ...GOOD, "sec-websocket-version": "8" }],
  ];
  for (const [method, what, status, fields] of refused) {
    const result = checkHandshake(method, 1, handshake(fields));
    assert.ok(result instanceof HttpError, what);
    assert.equal(result.status, status, what);
  }
  assert.ok(
    checkHandshake("GET", 1, handshake({ ...GOOD, "sec-websocket-version": "8" })) instanceof
      VersionError,
  );
  const http10 = checkHandshake("GET", 0, handshake(GOOD));
  assert.ok(http10 instanceof HttpError && http10.status === 400);
});

Deno.test("offered subprotocols, in the client's order", () => {
  const field = handshake({ "sec-websocket-protocol": "chat, superchat ,  v2" });
  assert.deepEqual(offeredProtocols(field), ["chat", "superchat", "v2"]);
  assert.deepEqual(offeredProtocols(handshake({})), []);
});

Deno.test("FrameDecoder: what came before a violation is still given, then nothing more", () => {
  const decoder = new FrameDecoder(1 << 20);
  const bytes = [
    ...clientFrame(OPCODE.PING, "p"),
    ...clientFrame(OPCODE.TEXT, "x", { masked: false }),
  ];
  assert.deepEqual(decoder.push(Uint8Array.from(bytes)), [
    { kind: "ping", data: encoder.encode("p") },
  ]);
  assert.equal(decoder.failure?.code, 1002);
  assert.deepEqual(decoder.push(Uint8Array.from(clientFrame(OPCODE.TEXT, "y"))), []);
});

/** A payload of `n` bytes that no mask or offset mistake leaves unchanged. */
function patterned(n: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 7 + (i >> 8)) & 0xff);
}

Deno.test("FrameDecoder: a large frame is the same pushed in odd pieces or read into room()", () => {
  // Odd sizes and cuts: the 64- and 32-bit unmasking meets every alignment of a piece's ends.
  const payload = patterned(300_005);
  const bytes = Uint8Array.from(clientFrame(OPCODE.BINARY, payload));
  const pushed = new FrameDecoder(1 << 20);
  const out: Incoming[] = [];
  for (let at = 0; at < bytes.length; at += 7777) {
    out.push(...pushed.push(bytes.subarray(at, at + 7777)));
  }
  assert.deepEqual(out, [{ kind: "binary", data: payload }]);

  const direct = new FrameDecoder(1 << 20);
  assert.deepEqual(direct.push(bytes.subarray(0, 14 + 3)), []);
  let at = 17;
  const read: Incoming[] = [];
  for (let room = direct.room(1); room !== null; room = direct.room(1)) {
    const n = Math.min(room.length, 65_537, bytes.length - at);
    room.set(bytes.subarray(at, at + n));
    at += n;
    read.push(...direct.filled(n));
  }
  assert.equal(at, bytes.length);
  assert.deepEqual(read, [{ kind: "binary", data: payload }]);
});

Deno.test("FrameDecoder: declared lengths claim a shared budget, and dispose() returns it", () => {
  const header = (length: number) =>
    Uint8Array.of(0x82, 0xff, 0, 0, 0, 0, length >>> 24, (length >> 16) & 0xff, 0, 0, 1, 2, 3, 4);
  // No frame takes more than half of what is left: 16 MiB declared is not claimed at all.
  const greedy = new FrameDecoder(32 << 20);
  greedy.push(header(16 << 20));
  assert.equal(greedy.room(1), null);
  const claimers = [8, 4, 2].map((mib) => {
    const claimer = new FrameDecoder(32 << 20);
    claimer.push(header(mib << 20));
    assert.equal(claimer.room(1)?.length, mib << 20, `${mib} MiB fits in half of what is left`);
    return claimer;
  });
  // 2 MiB is left: the next large frame's buffer grows with its bytes, no room to read to.
  const grower = new FrameDecoder(32 << 20);
  grower.push(header(2 << 20));
  assert.equal(grower.room(1), null);
  for (const claimer of [greedy, ...claimers]) claimer.dispose();
  const claimant = new FrameDecoder(32 << 20);
  claimant.push(header(1 << 20));
  assert.equal(claimant.room(1)?.length, 1 << 20);
  // A small rest is better read with what follows it.
  assert.equal(claimant.room((1 << 20) + 1), null);
  for (const decoder of [grower, claimant]) decoder.dispose();
});
