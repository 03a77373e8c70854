// A WebSocket's outgoing frames (src/server/websocket_output.ts) against a fake connection:
// order, the snapshot at queueing, frames of one tick in one write, partial writes, large
// frames across chunks, frames made later in their place, and a failed write.

import assert from "node:assert/strict";
import { FrameOutput, type Writer } from "../../src/server/websocket_output.ts";
import { encodeFrame, OPCODE } from "../../src/http/websocket_frames.ts";

/** Records each write; takes at most `most` bytes of each; throws once told to. */
class FakeConn implements Writer {
  writes: Uint8Array[] = [];
  failing = false;
  constructor(readonly most = Infinity) {}
  write(bytes: Uint8Array): Promise<number> {
    if (this.failing) return Promise.reject(new Error("broken pipe"));
    const n = Math.min(bytes.length, this.most);
    this.writes.push(bytes.slice(0, n));
    return Promise.resolve(n);
  }
  get bytes(): number[] {
    return this.writes.flatMap((w) => [...w]);
  }
}

const text = (s: string) => new TextEncoder().encode(s);

Deno.test("frames queued before start, and in one tick, leave in order in one write", async () => {
  const output = new FrameOutput(() => assert.fail("no failure expected"));
  output.frame(OPCODE.TEXT, text("a"));
  const conn = new FakeConn();
  output.start(conn);
  const payload = text("bc");
  output.frame(OPCODE.BINARY, payload);
  // Queued means copied: a change after it does not show.
  payload[0] = 0x7a;
  assert.equal(output.queued, 3 + 4);
  await output.drained();
  assert.equal(conn.writes.length, 1);
  assert.deepEqual(conn.bytes, [0x81, 1, 0x61, 0x82, 2, 0x62, 0x63]);
  assert.equal(output.queued, 0);
});

Deno.test("a frame made later keeps its place; partial writes lose nothing", async () => {
  const conn = new FakeConn(5);
  const output = new FrameOutput(() => assert.fail("no failure expected"));
  output.start(conn);
  output.frame(OPCODE.TEXT, text("first"));
  let release = (_: Uint8Array) => {};
  const asked = new Promise<void>((turn) => {
    output.deferred(() => {
      turn();
      return new Promise<Uint8Array>((resolve) => release = resolve);
    }, 10);
  });
  output.frame(OPCODE.TEXT, text("third"));
  // Its turn comes once "first" is out, and "third" waits behind it.
  await asked;
  assert.deepEqual(conn.bytes, [...encodeFrame(OPCODE.TEXT, text("first"))]);
  release(encodeFrame(OPCODE.BINARY, text("second")));
  await output.drained();
  assert.deepEqual(conn.bytes, [
    ...encodeFrame(OPCODE.TEXT, text("first")),
    ...encodeFrame(OPCODE.BINARY, text("second")),
    ...encodeFrame(OPCODE.TEXT, text("third")),
  ]);
  assert.ok(conn.writes.every((w) => w.length <= 5));
});

Deno.test("a frame larger than a chunk is written whole, across chunks", async () => {
  const conn = new FakeConn();
  const output = new FrameOutput(() => assert.fail("no failure expected"));
  output.start(conn);
  const payload = Uint8Array.from({ length: 2.5 * 1024 * 1024 }, (_, i) => i % 251);
  output.frame(OPCODE.TEXT, text("x"));
  output.frame(OPCODE.BINARY, payload);
  await output.drained();
  const written = new Uint8Array(conn.writes.reduce((n, w) => n + w.length, 0));
  conn.writes.reduce((at, w) => (written.set(w, at), at + w.length), 0);
  const expected = [...encodeFrame(OPCODE.TEXT, text("x")), ...encodeFrame(OPCODE.BINARY, payload)];
  assert.equal(written.length, expected.length);
  assert.ok(written.every((b, i) => b === expected[i]), "the bytes written are the frames");
});

Deno.test("a failed write reports once, drops what waits, and takes nothing more", async () => {
  const conn = new FakeConn();
  let failures = 0;
  const output = new FrameOutput(() => failures++);
  output.start(conn);
  conn.failing = true;
  output.frame(OPCODE.TEXT, text("lost"));
  await output.drained();
  assert.equal(failures, 1);
  assert.equal(output.queued, 0);
  output.frame(OPCODE.TEXT, text("ignored"));
  assert.equal(output.queued, 0);
  await output.drained();
  assert.equal(failures, 1);
});
