// tsgi.input over a scripted body source: what read(n) takes from the connection. A socket
// read may bring the body's end and the next request's start together; the input must ask for
// no more than its body has left, whichever path a read takes.

import assert from "node:assert/strict";
import { BodyKind, type HeadLimits, type RequestHead } from "../../src/http/parser.ts";
import { type BodySource, RequestInput } from "../../src/tsgi/input.ts";

const LIMITS: HeadLimits = { requestLine: 8190, fields: 100, fieldSize: 8190, head: 65536 };

function head(contentLength: number): RequestHead {
  return {
    method: "POST",
    target: "/",
    minor: 1,
    fields: [],
    bodyKind: BodyKind.Length,
    contentLength,
    keepAlive: true,
    closeAsked: false,
    expectContinue: false,
  };
}

/**
 * A connection whose socket always has `wire` ready: each read takes as much of it as the
 * caller's array holds (as a socket read takes what the kernel has), into the 16 KiB buffer
 * or straight into the caller's array.
 */
class ReadySource implements BodySource {
  buf = new Uint8Array(16 * 1024);
  start = 0;
  end = 0;
  #wire: Uint8Array;
  #at = 0;

  constructor(wire: Uint8Array) {
    this.#wire = wire;
  }

  /** Bytes the input has taken: read off the wire and not left in the buffer. */
  get taken(): number {
    return this.#at - (this.end - this.start);
  }

  #take(dest: Uint8Array): number {
    const n = Math.min(dest.length, this.#wire.length - this.#at);
    dest.set(this.#wire.subarray(this.#at, this.#at + n));
    this.#at += n;
    return n;
  }

  fill(): Promise<boolean> {
    if (this.start === this.end) this.start = this.end = 0;
    const n = this.#take(this.buf.subarray(this.end));
    this.end += n;
    return Promise.resolve(n > 0);
  }

  readonly canReadIntoApp: boolean = true;

  readInto(dest: Uint8Array): Promise<number | null> {
    if (this.start < this.end) return Promise.resolve(0);
    const n = this.#take(dest);
    return Promise.resolve(n === 0 ? null : n);
  }

  sendContinue(): Promise<void> {
    return Promise.resolve();
  }
}

/** A `size`-byte body (byte i is i mod 251) with the next request right behind it. */
function bodyThenNextRequest(size: number): { source: ReadySource; input: RequestInput } {
  const next = new TextEncoder().encode("GET /next HTTP/1.1\r\nHost: x\r\n\r\n");
  const wire = new Uint8Array(size + next.length);
  for (let i = 0; i < size; i++) wire[i] = i % 251;
  wire.set(next, size);
  const source = new ReadySource(wire);
  return { source, input: new RequestInput(source, head(size), 0, LIMITS) };
}

for (const size of [20_000, 65_536 + 20_000, 131_072 + 20_000, 200_003]) {
  Deno.test(`read(65536) of a ${size}-byte body leaves the next request where it was`, async () => {
    const { source, input } = bodyThenNextRequest(size);
    let total = 0;
    for (let chunk = await input.read(65536); chunk.length > 0; chunk = await input.read(65536)) {
      for (let i = 0; i < chunk.length; i++) assert.equal(chunk[i], (total + i) % 251);
      total += chunk.length;
    }
    assert.equal(total, size);
    assert.equal(input.finished, true);
    // What is left, in the buffer or on the wire, is the next request, whole.
    assert.equal(source.taken, size);
  });
}

for (const size of [1, 20_000, 65_536 + 20_000, 200_003]) {
  Deno.test(`readInto() of a ${size}-byte body fills the caller's array, never past the body`, async () => {
    const { source, input } = bodyThenNextRequest(size);
    const buf = new Uint8Array(48 * 1024);
    let total = 0;
    for (let n = await input.readInto(buf); n > 0; n = await input.readInto(buf)) {
      assert.ok(n <= buf.length);
      for (let i = 0; i < n; i++) assert.equal(buf[i], (total + i) % 251);
      total += n;
    }
    assert.equal(total, size);
    assert.equal(await input.readInto(buf), 0, "the end stays the end");
    assert.equal(input.finished, true);
    assert.equal(source.taken, size);
  });
}

Deno.test("readInto() after readline() gives the rest of the piece first, then the socket's", async () => {
  const body = new TextEncoder().encode("line one\n" + "x".repeat(30_000));
  const source = new ReadySource(body);
  const input = new RequestInput(source, head(body.length), 0, LIMITS);
  assert.equal(new TextDecoder().decode(await input.readline()), "line one\n");
  const buf = new Uint8Array(100_000);
  let total = 0;
  for (let n = await input.readInto(buf.subarray(total)); n > 0;) {
    total += n;
    n = await input.readInto(buf.subarray(total));
  }
  assert.equal(total, 30_000);
  assert.ok(buf.subarray(0, total).every((b) => b === 0x78));
});

Deno.test("readInto() refuses what is not a Uint8Array with room", async () => {
  const input = new RequestInput(new ReadySource(new Uint8Array(10)), head(10), 0, LIMITS);
  await assert.rejects(() => input.readInto(new Uint8Array(0)), TypeError);
  await assert.rejects(() => input.readInto([1, 2] as unknown as Uint8Array), TypeError);
  assert.equal(await input.readInto(new Uint8Array(64)), 10, "and the body is still whole");
});

Deno.test("readInto() never hands the app's array to a connection that cannot stop a read", async () => {
  const body = new Uint8Array(100_000).fill(0x61);
  const appArrays: Uint8Array[] = [];
  const source = new (class extends ReadySource {
    override readonly canReadIntoApp = false;
    override readInto(dest: Uint8Array, appOwned?: boolean): Promise<number | null> {
      if (appOwned) appArrays.push(dest);
      return super.readInto(dest);
    }
  })(body);
  const input = new RequestInput(source, head(body.length), 0, LIMITS);
  const buf = new Uint8Array(64 * 1024);
  let total = 0;
  for (let n = await input.readInto(buf); n > 0; n = await input.readInto(buf)) total += n;
  assert.equal(total, body.length);
  assert.equal(appArrays.length, 0);
});

Deno.test("readline(size) that ends inside a kept piece loses none of the rest", async () => {
  // readline() keeps "b\ncdef"; readline(3) takes "b\nc" of it, and ends its line at "b\n".
  const body = new TextEncoder().encode("a\nb\ncdef");
  const input = new RequestInput(new ReadySource(body), head(body.length), 0, LIMITS);
  const text = new TextDecoder();
  assert.equal(text.decode(await input.readline()), "a\n");
  assert.equal(text.decode(await input.readline(3)), "b\n");
  const buf = new Uint8Array(64);
  const n = await input.readInto(buf);
  assert.equal(text.decode(buf.subarray(0, n)), "cdef");
});

for (const cut of [1, 7, 4096, 100_000]) {
  Deno.test(`read(65536) of a chunked body in ${cut}-byte chunks: whole reads, and the next request after`, async () => {
    const size = 150_001;
    const parts: string[] = [];
    for (let at = 0; at < size; at += cut) {
      const n = Math.min(cut, size - at);
      let data = "";
      for (let i = at; i < at + n; i++) data += String.fromCharCode(97 + (i % 26));
      parts.push(`${n.toString(16)}\r\n${data}\r\n`);
    }
    const next = "GET /next HTTP/1.1\r\nHost: x\r\n\r\n";
    const wire = new TextEncoder().encode(parts.join("") + "0\r\n\r\n" + next);
    const source = new ReadySource(wire);
    const chunked = { ...head(0), bodyKind: BodyKind.Chunked };
    const input = new RequestInput(source, chunked, 1 << 20, LIMITS);
    const sizes: number[] = [];
    let total = 0;
    for (let piece = await input.read(65536); piece.length > 0; piece = await input.read(65536)) {
      for (let i = 0; i < piece.length; i++) assert.equal(piece[i], 97 + ((total + i) % 26));
      total += piece.length;
      sizes.push(piece.length);
    }
    assert.equal(total, size);
    assert.deepEqual(sizes, [65536, 65536, size - 2 * 65536], "fewer than asked only at the end");
    assert.equal(input.finished, true);
    const rest = new TextDecoder().decode(source.buf.subarray(source.start, source.end));
    assert.equal(rest, next.slice(0, rest.length), "the next request is left where it was");
    assert.equal(source.taken, wire.length - next.length);
  });
}
