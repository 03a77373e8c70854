// The isolation protocol's frames without processes: the bytes a frame is, a reader that
// finds the same frames however the stream is cut, the broken streams it refuses, and the
// writer's order, body cutting and closing.

import assert from "node:assert/strict";
import { decodeJson, decodeText, encodeFrame, encodeJson } from "../../src/isolate/frames.ts";
import {
  BODY_FRAME_MAX,
  fileSink,
  fileSource,
  FRAME,
  FRAME_MAX,
  FrameError,
  FrameReader,
  FrameWriter,
} from "../../src/isolate/frames.ts";
import type { ByteSink, Frame, FrameType } from "../../src/isolate/frames.ts";

const encoder = new TextEncoder();

/** A stream that yields `chunks` one read at a time, and says whether it was cancelled. */
function streamOf(
  chunks: Uint8Array[],
): { stream: ReadableStream<Uint8Array>; cancelled(): boolean } {
  let cancelled = false;
  let at = 0;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (at < chunks.length) controller.enqueue(chunks[at++]);
      else controller.close();
    },
    cancel() {
      cancelled = true;
    },
  });
  return { stream, cancelled: () => cancelled };
}

async function readAll(chunks: Uint8Array[]): Promise<Frame[]> {
  const reader = new FrameReader(streamOf(chunks).stream);
  const frames: Frame[] = [];
  for (let frame = await reader.next(); frame !== null; frame = await reader.next()) {
    frames.push(frame);
  }
  return frames;
}

function concat(parts: Uint8Array[]): Uint8Array {
  return Uint8Array.from(parts.flatMap((part) => [...part]));
}

/** A frame header that claims `length` bytes of payload, with none of them. */
function header(type: number, length: number): Uint8Array {
  const bytes = new Uint8Array(5);
  bytes[0] = type;
  new DataView(bytes.buffer).setUint32(1, length);
  return bytes;
}

/** A conversation as the master sees it, every kind of frame a child sends. */
const CONVERSATION: [FrameType, Uint8Array][] = [
  [FRAME.READY, new Uint8Array(0)],
  [FRAME.PULL, new Uint8Array(0)],
  [FRAME.ERROR, encoder.encode("NotCapable: Requires read access")],
  [FRAME.RESPONSE_HEAD, encoder.encode('{"status":"200 OK","headers":[]}')],
  [FRAME.RESPONSE_BODY, Uint8Array.from({ length: 300 }, (_, i) => i % 256)],
  [FRAME.RESPONSE_END, new Uint8Array(0)],
];
const WIRE = concat(CONVERSATION.map(([type, payload]) => encodeFrame(type, payload)));

function assertConversation(frames: Frame[]): void {
  assert.deepEqual(
    frames.map((f) => [f.type, [...f.payload]]),
    CONVERSATION.map(([type, payload]) => [type, [...payload]]),
  );
}

Deno.test("encodeFrame: a type byte, a big-endian length, then the payload", () => {
  const frame = encodeFrame(FRAME.BODY, Uint8Array.of(7, 8, 9));
  assert.deepEqual([...frame], [FRAME.BODY, 0, 0, 0, 3, 7, 8, 9]);
  assert.deepEqual([...encodeFrame(FRAME.BODY_END)], [FRAME.BODY_END, 0, 0, 0, 0]);
  const big = encodeFrame(FRAME.BODY, new Uint8Array(0x010203));
  assert.deepEqual([...big.subarray(0, 5)], [FRAME.BODY, 0, 1, 2, 3]);
});

Deno.test("encodeJson and decodeJson, encodeFrame and decodeText, round-trip", async () => {
  const head = { environ: { PATH_INFO: "/é", CONTENT_LENGTH: 3, HTTPS: false }, body: true };
  const text = "the app failed: ünïcode";
  const [json, error] = await readAll([
    encodeJson(FRAME.REQUEST_HEAD, head),
    encodeFrame(FRAME.ERROR, encoder.encode(text)),
  ]);
  assert.equal(json.type, FRAME.REQUEST_HEAD);
  assert.deepEqual(decodeJson(json), head);
  assert.equal(error.type, FRAME.ERROR);
  assert.equal(decodeText(error), text);
});

Deno.test("FrameReader finds the same frames wherever the stream is cut in two", async () => {
  for (let cut = 0; cut <= WIRE.length; cut++) {
    assertConversation(await readAll([WIRE.subarray(0, cut), WIRE.subarray(cut)]));
  }
});

Deno.test("FrameReader finds the same frames in a stream of single bytes", async () => {
  assertConversation(await readAll([...WIRE].map((b) => Uint8Array.of(b))));
});

Deno.test("FrameReader: one chunk holding everything, and empty chunks in between", async () => {
  assertConversation(await readAll([WIRE]));
  const empty = new Uint8Array(0);
  assertConversation(await readAll([empty, WIRE.subarray(0, 7), empty, WIRE.subarray(7), empty]));
});

Deno.test("FrameReader: a stream that ends between frames ends cleanly, every time", async () => {
  const reader = new FrameReader(streamOf([encodeFrame(FRAME.READY)]).stream);
  assert.equal((await reader.next())?.type, FRAME.READY);
  assert.equal(await reader.next(), null);
  assert.equal(await reader.next(), null);
  assert.deepEqual(await readAll([]), []);
});

Deno.test("FrameReader refuses a stream that ends inside a header or a payload", async () => {
  const frame = encodeFrame(FRAME.RESPONSE_BODY, new Uint8Array(10));
  for (let cut = 1; cut < frame.length; cut++) {
    const where = cut < 5 ? /inside a frame header/ : /inside a frame \(\d+ of 10 bytes\)/;
    await assert.rejects(readAll([frame.subarray(0, cut)]), (error: Error) => {
      assert.ok(error instanceof FrameError, `cut at ${cut}: ${error}`);
      assert.match(error.message, where);
      return true;
    });
  }
});

Deno.test("FrameReader refuses an unknown type", async () => {
  for (const type of [0, FRAME.START + 1, 255]) {
    await assert.rejects(readAll([header(type, 0)]), FrameError, `type ${type}`);
  }
  // Past the good frames before it.
  const reader = new FrameReader(streamOf([encodeFrame(FRAME.READY), header(42, 0)]).stream);
  assert.equal((await reader.next())?.type, FRAME.READY);
  await assert.rejects(reader.next(), /Unknown frame type 42/);
});

Deno.test("FrameReader refuses a length over FRAME_MAX before reading the payload", async () => {
  // Only the header is there: the reader must not wait for (or buffer) the claimed bytes.
  await assert.rejects(readAll([header(FRAME.RESPONSE_HEAD, FRAME_MAX + 1)]), /too large/);
  await assert.rejects(readAll([header(FRAME.BODY, 0xffffffff)]), FrameError);
});

Deno.test("FrameReader takes a frame of exactly FRAME_MAX", async () => {
  const payload = new Uint8Array(FRAME_MAX).fill(7);
  const frames = await readAll([encodeFrame(FRAME.RESPONSE_HEAD, payload)]);
  assert.equal(frames.length, 1);
  assert.equal(frames[0].payload.length, FRAME_MAX);
  assert.equal(frames[0].payload[FRAME_MAX - 1], 7);
});

Deno.test("FrameReader.cancel() ends the frames and cancels the stream", async () => {
  const { stream, cancelled } = streamOf([encodeFrame(FRAME.READY), encodeFrame(FRAME.PULL)]);
  const reader = new FrameReader(stream);
  assert.equal((await reader.next())?.type, FRAME.READY);
  await reader.cancel();
  assert.equal(cancelled(), true);
  assert.equal(await reader.next(), null);
});

Deno.test("FrameReader over fileSource: a file read as a child reads stdin", async () => {
  let at = 0;
  const file = {
    // A read returns at most 5 bytes, as a pipe may.
    read(buf: Uint8Array): Promise<number | null> {
      if (at === WIRE.length) return Promise.resolve(null);
      const n = Math.min(5, buf.length, WIRE.length - at);
      buf.set(WIRE.subarray(at, at + n));
      at += n;
      return Promise.resolve(n);
    },
  };
  const reader = new FrameReader(fileSource(file));
  const frames: Frame[] = [];
  for (let frame = await reader.next(); frame !== null; frame = await reader.next()) {
    frames.push(frame);
  }
  assertConversation(frames);
});

/** A sink that keeps what it is given, in order. */
function recordingSink(): ByteSink & { written: Uint8Array[]; closed: string | null } {
  const sink = {
    written: [] as Uint8Array[],
    closed: null as string | null,
    write(bytes: Uint8Array) {
      sink.written.push(bytes.slice());
      return Promise.resolve();
    },
    close() {
      sink.closed = "closed";
      return Promise.resolve();
    },
    abort() {
      sink.closed = "aborted";
      return Promise.resolve();
    },
  };
  return sink;
}

Deno.test("FrameWriter.writeBody cuts a body into frames of at most BODY_FRAME_MAX", async () => {
  const sink = recordingSink();
  const writer = new FrameWriter(sink);
  const body = Uint8Array.from({ length: 2 * BODY_FRAME_MAX + 10 }, (_, i) => i % 251);
  await writer.writeBody(FRAME.BODY, body);
  await writer.close();
  assert.equal(sink.closed, "closed");
  const frames = await readAll(sink.written);
  assert.deepEqual(frames.map((f) => f.payload.length), [BODY_FRAME_MAX, BODY_FRAME_MAX, 10]);
  assert.ok(frames.every((f) => f.type === FRAME.BODY));
  assert.deepEqual(concat(frames.map((f) => f.payload)), body);
});

Deno.test("FrameWriter keeps call order over a sink whose writes finish out of order", async () => {
  const order: number[] = [];
  const sink: ByteSink = {
    // The first write is the slowest: chained, it still lands first.
    write: (bytes) =>
      new Promise((resolve) =>
        setTimeout(() => {
          order.push(bytes[5]);
          resolve();
        }, bytes[5] === 0 ? 20 : 0)
      ),
    close: () => Promise.resolve(),
    abort: () => Promise.resolve(),
  };
  const writer = new FrameWriter(sink);
  await Promise.all([0, 1, 2].map((n) => writer.write(encodeFrame(FRAME.BODY, Uint8Array.of(n)))));
  assert.deepEqual(order, [0, 1, 2]);
});

Deno.test("FrameWriter: writes after close() or abort() fail; closing never throws", async () => {
  const closed = new FrameWriter(recordingSink());
  await closed.close();
  await closed.close();
  await assert.rejects(closed.write(encodeFrame(FRAME.READY)), FrameError);

  const sink = recordingSink();
  const aborted = new FrameWriter(sink);
  await aborted.abort();
  await aborted.close();
  assert.equal(sink.closed, "aborted");
  await assert.rejects(aborted.write(encodeFrame(FRAME.READY)), FrameError);

  const failing = new FrameWriter({
    write: () => Promise.reject(new Error("broken pipe")),
    close: () => Promise.reject(new Error("broken pipe")),
    abort: () => Promise.reject(new Error("broken pipe")),
  });
  await assert.rejects(failing.write(encodeFrame(FRAME.READY)), /broken pipe/);
  await failing.close();
});

Deno.test("FrameWriter over a WritableStream: a failed write fails every later one", async () => {
  const stream = new WritableStream<Uint8Array>({
    write: () => Promise.reject(new Error("child gone")),
  });
  const writer = new FrameWriter(stream);
  await assert.rejects(writer.write(encodeFrame(FRAME.BODY_END)), /child gone/);
  await assert.rejects(writer.write(encodeFrame(FRAME.BODY_END)), /child gone/);
  await writer.abort();
});

Deno.test("fileSink writes a frame whole over a file that takes part of each write", async () => {
  const taken: number[] = [];
  let closes = 0;
  const file = {
    write(bytes: Uint8Array): Promise<number> {
      const n = Math.min(3, bytes.length);
      taken.push(...bytes.subarray(0, n));
      return Promise.resolve(n);
    },
    close() {
      closes++;
      if (closes > 1) throw new Deno.errors.BadResource("closed twice");
    },
  };
  const writer = new FrameWriter(fileSink(file));
  const frame = encodeFrame(FRAME.RESPONSE_BODY, encoder.encode("hello, world"));
  await writer.write(frame);
  assert.deepEqual(taken, [...frame]);
  const sink = fileSink(file);
  await sink.close();
  await sink.abort(); // a second close of the file is swallowed
  assert.equal(closes, 2);
});
