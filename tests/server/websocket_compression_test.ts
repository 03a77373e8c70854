// permessage-deflate's data path (src/server/websocket_compression.ts), checked against
// node:zlib's own one-shot functions: what it deflates inflates there, what they deflate it
// inflates; context takeover kept or not; the inflated size capped while inflating; bad data.

import assert from "node:assert/strict";
import zlib from "node:zlib";
import { loadZlib, MessageCompression } from "../../src/server/websocket_compression.ts";
import type { DeflateAgreement } from "../../src/http/websocket_deflate.ts";
import { WebSocketProtocolError } from "../../src/http/websocket_frames.ts";

const { Z_SYNC_FLUSH } = zlib.constants;
await loadZlib();
const TAIL = [0x00, 0x00, 0xff, 0xff];
const MIB = 1024 * 1024;

function agreement(takeover: boolean, bits = 15): DeflateAgreement {
  return {
    serverTakeover: takeover,
    clientTakeover: takeover,
    serverWindowBits: bits,
    clientWindowBits: bits,
    header: "permessage-deflate",
  };
}

const text = (n: number, seed = "") =>
  new TextEncoder().encode(`${seed} the quick brown fox jumps over the lazy dog `.repeat(n));

/** Text that compresses little on its own (base64 of noise), much against itself. */
function loose(n: number): Uint8Array {
  const noise = crypto.getRandomValues(new Uint8Array(n));
  return new TextEncoder().encode(btoa(String.fromCharCode(...noise)));
}

/** What a peer sends: raw deflate, sync-flushed, the tail removed (§7.2.1). */
function peerDeflate(data: Uint8Array): Uint8Array {
  const out = zlib.deflateRawSync(data, { finishFlush: Z_SYNC_FLUSH });
  assert.deepEqual([...out.subarray(-4)], TAIL);
  return out.subarray(0, out.length - 4);
}

/** What a peer makes of a compressed message (no context). */
function peerInflate(data: Uint8Array): Uint8Array {
  const out = zlib.inflateRawSync(Uint8Array.from([...data, ...TAIL]), {
    finishFlush: Z_SYNC_FLUSH,
  });
  return new Uint8Array(out);
}

function failureOf(fn: () => unknown): number {
  try {
    fn();
  } catch (error) {
    if (error instanceof WebSocketProtocolError) return error.code;
    throw error;
  }
  return 0;
}

for (const takeover of [false, true]) {
  const name = takeover ? "with context takeover" : "without context takeover";
  Deno.test(`MessageCompression ${name}: what the peer deflates inflates, in parts too`, () => {
    const compression = new MessageCompression(agreement(takeover), MIB);
    const message = text(200);
    const wire = peerDeflate(message);
    assert.deepEqual(compression.inflate([wire]), message);
    // The same message again, cut in three fragments (a fresh peer stream each time: the
    // inflater's context holds the first message, which a fresh stream does not refer to).
    const cuts = [wire.subarray(0, 5), wire.subarray(5, 40), wire.subarray(40)];
    assert.deepEqual(compression.inflate(cuts), message);
    compression.dispose();
  });
}

Deno.test("MessageCompression without takeover: each message stands alone", () => {
  const compression = new MessageCompression(agreement(false), MIB);
  const message = text(50);
  const first = (compression.deflate(message) as Uint8Array).slice();
  const second = (compression.deflate(message) as Uint8Array).slice();
  assert.deepEqual(second, first);
  assert.deepEqual(peerInflate(second), message);
});

Deno.test("MessageCompression with takeover: the next message refers to the last", () => {
  const compression = new MessageCompression(agreement(true), MIB);
  const message = loose(1500);
  const first = (compression.deflate(message) as Uint8Array).slice();
  const second = (compression.deflate(message) as Uint8Array).slice();
  assert.ok(second.length < first.length / 4, `${second.length} vs ${first.length}`);
  // A peer inflater that kept its context reads both.
  const peer = zlib.inflateRawSync(Uint8Array.from([...first, ...TAIL, ...second, ...TAIL]), {
    finishFlush: Z_SYNC_FLUSH,
  });
  assert.deepEqual(new Uint8Array(peer), Uint8Array.from([...message, ...message]));
  compression.dispose();
});

Deno.test("MessageCompression with takeover: the inflater keeps the peer's context", () => {
  const message = loose(1500);
  // The peer: a deflater that keeps its context (checked against zlib's inflate above).
  const peer = new MessageCompression(agreement(true), MIB);
  const first = (peer.deflate(message) as Uint8Array).slice();
  const second = (peer.deflate(message) as Uint8Array).slice();
  peer.dispose();
  const own = new MessageCompression(agreement(true), MIB);
  assert.deepEqual(own.inflate([first]), message);
  assert.deepEqual(own.inflate([second]), message);
  // Without takeover the second message cannot be read alone.
  const shared = new MessageCompression(agreement(false), MIB);
  assert.equal(failureOf(() => shared.inflate([second])), 1007);
  own.dispose();
});

Deno.test("MessageCompression: short and incompressible messages go as they are", () => {
  const compression = new MessageCompression(agreement(false), MIB);
  assert.equal(compression.deflate(new Uint8Array(10)), null);
  const noise = crypto.getRandomValues(new Uint8Array(4096));
  assert.equal(compression.deflate(noise), null);
});

Deno.test("MessageCompression: a bomb is refused with 1009 while it inflates", () => {
  const compression = new MessageCompression(agreement(false), MIB);
  // 64 MiB of zeros is ~64 KiB on the wire.
  const bomb = peerDeflate(new Uint8Array(64 * MIB));
  assert.ok(bomb.length < 128 * 1024);
  const before = Deno.memoryUsage().rss;
  assert.equal(failureOf(() => compression.inflate([bomb])), 1009);
  const grown = (Deno.memoryUsage().rss - before) / MIB;
  assert.ok(grown < 32, `inflating a refused bomb grew RSS by ${grown.toFixed(0)} MiB`);
  // Exactly at the limit is accepted.
  assert.equal(compression.inflate([peerDeflate(new Uint8Array(MIB))]).length, MIB);
  assert.equal(failureOf(() => compression.inflate([peerDeflate(new Uint8Array(MIB + 1))])), 1009);
});

Deno.test("MessageCompression: invalid deflate data is 1007, and the next message still reads", () => {
  const compression = new MessageCompression(agreement(false), MIB);
  assert.equal(failureOf(() => compression.inflate([Uint8Array.of(0xff, 0xff, 0xff)])), 1007);
  // The shared inflater was reset: another socket's message is unaffected.
  const message = text(3);
  assert.deepEqual(compression.inflate([peerDeflate(message)]), message);
});

Deno.test("MessageCompression: a final block (BFINAL) ends a message; data after it is 1007", () => {
  const compression = new MessageCompression(agreement(true), MIB);
  const message = text(3);
  const finished = zlib.deflateRawSync(message);
  assert.deepEqual(compression.inflate([finished]), message);
  // The next message is a new stream.
  assert.deepEqual(compression.inflate([peerDeflate(message)]), message);
  const after = Uint8Array.from([...finished, ...peerDeflate(message)]);
  assert.equal(failureOf(() => compression.inflate([after])), 1007);
  compression.dispose();
});
