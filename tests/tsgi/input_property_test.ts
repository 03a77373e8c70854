// Properties of tsgi.input, on generated bodies and generated apps (fast-check): whatever mix of
// read(n), read(), readline(n), readChunk(n) and readInto(view) an app makes, one at a time or
// two at once, over a Content-Length or chunked body that arrives in random cuts, (a) the
// bytes the app gets are the body, each exactly once (in order when the reads take turns), and
// (b) nothing past the body is taken: the next request is left whole.

import assert from "node:assert/strict";
import fc from "npm:fast-check@3";
import { BodyKind, type HeadLimits, type RequestHead } from "../../src/http/parser.ts";
import { type BodySource, RequestInput } from "../../src/tsgi/input.ts";
import { concat } from "../support/server.ts";

const RUNS = 300;
const LIMITS: HeadLimits = { requestLine: 8190, fields: 100, fieldSize: 8190, head: 65536 };
const NEXT = new TextEncoder().encode("GET /next HTTP/1.1\r\nHost: x\r\n\r\n");

/** A connection whose socket hands out the wire in the given cuts, one per read, later. */
class CutSource implements BodySource {
  buf = new Uint8Array(16 * 1024);
  start = 0;
  end = 0;
  readonly canReadIntoApp = true;
  readonly #wire: Uint8Array;
  readonly #cuts: number[];
  #at = 0;
  #reads = 0;

  constructor(wire: Uint8Array, cuts: number[]) {
    this.#wire = wire;
    this.#cuts = cuts;
  }

  /** Bytes taken off the wire and not left in the buffer. */
  get taken(): number {
    return this.#at - (this.end - this.start);
  }

  async #take(dest: Uint8Array): Promise<number> {
    // Each read lands later, as a socket's does (a microtask is enough for reads to interleave).
    await Promise.resolve();
    // At most about 2,000 reads a body, so that 300 runs take seconds.
    const cut = Math.max(
      this.#cuts[this.#reads++ % this.#cuts.length],
      Math.ceil(this.#wire.length / 2000),
    );
    const n = Math.min(dest.length, cut, this.#wire.length - this.#at);
    dest.set(this.#wire.subarray(this.#at, this.#at + n));
    this.#at += n;
    return n;
  }

  async fill(): Promise<boolean> {
    if (this.start === this.end) this.start = this.end = 0;
    if (this.end === this.buf.length) throw new Error("fill() with a full buffer");
    const n = await this.#take(this.buf.subarray(this.end));
    this.end += n;
    return n > 0;
  }

  async readInto(dest: Uint8Array): Promise<number | null> {
    if (this.start < this.end) return 0;
    const n = await this.#take(dest);
    return n === 0 ? null : n;
  }

  sendContinue(): Promise<void> {
    return Promise.resolve();
  }
}

type Op =
  | { kind: "read"; size: number | undefined }
  | { kind: "readline"; size: number | undefined }
  | { kind: "readChunk"; size: number }
  | { kind: "readInto"; size: number; offset: number };

const size = fc.oneof(
  fc.integer({ min: 1, max: 40 }),
  fc.integer({ min: 1, max: 200_000 }),
  fc.constantFrom(16 * 1024, 64 * 1024, 128 * 1024),
);
const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant("read" as const), size: fc.option(size, { nil: undefined }) }),
  fc.record({ kind: fc.constant("readline" as const), size: fc.option(size, { nil: undefined }) }),
  fc.record({ kind: fc.constant("readChunk" as const), size }),
  fc.record({
    kind: fc.constant("readInto" as const),
    size,
    offset: fc.integer({ min: 0, max: 7 }),
  }),
);

/** One operation: the bytes it gave the app (empty at the end). */
async function run(input: RequestInput, o: Op): Promise<Uint8Array> {
  switch (o.kind) {
    case "read":
      return await input.read(o.size);
    case "readline":
      return await input.readline(o.size);
    case "readChunk":
      return await input.readChunk(o.size);
    case "readInto": {
      // A view into a larger array: nothing may be written outside it.
      const whole = new Uint8Array(o.size + o.offset + 8).fill(0xee);
      const view = whole.subarray(o.offset, o.offset + o.size);
      const n = await input.readInto(view);
      assert.ok(whole.subarray(0, o.offset).every((b) => b === 0xee), "written before the view");
      assert.ok(whole.subarray(o.offset + o.size).every((b) => b === 0xee), "written after it");
      return view.slice(0, n);
    }
  }
}

/** The body on the wire: as it is, or chunked in the given chunk sizes; then NEXT. */
function wireOf(body: Uint8Array, chunks: number[] | null): Uint8Array {
  const parts: Uint8Array[] = [];
  const text = (s: string) => parts.push(new TextEncoder().encode(s));
  if (chunks === null) parts.push(body);
  else {
    for (let at = 0, i = 0; at < body.length; i++) {
      const n = Math.min(chunks[i % chunks.length], body.length - at);
      text(`${n.toString(16)}\r\n`);
      parts.push(body.subarray(at, at + n));
      text("\r\n");
      at += n;
    }
    text("0\r\n\r\n");
  }
  parts.push(NEXT);
  return concat(parts);
}

function headOf(length: number, chunked: boolean): RequestHead {
  return {
    method: "POST",
    target: "/",
    minor: 1,
    fields: [],
    bodyKind: chunked ? BodyKind.Chunked : BodyKind.Length,
    contentLength: chunked ? 0 : length,
    keepAlive: true,
    closeAsked: false,
    expectContinue: false,
  };
}

const scenario = fc.record({
  length: fc.oneof(fc.integer({ min: 1, max: 300 }), fc.integer({ min: 1, max: 300_000 })),
  chunks: fc.option(fc.array(fc.oneof(fc.integer({ min: 1, max: 9 }), size), { minLength: 1 }), {
    nil: null,
  }),
  cuts: fc.array(fc.oneof(fc.integer({ min: 1, max: 100 }), size), { minLength: 1, maxLength: 8 }),
  ops: fc.array(op, { minLength: 1, maxLength: 6 }),
  together: fc.boolean(),
});

Deno.test("tsgi.input: any mix of reads, one at a time or two at once, gives the body once and takes nothing past it", async () => {
  await fc.assert(
    fc.asyncProperty(scenario, async ({ length, chunks, cuts, ops, together }) => {
      const body = new Uint8Array(length);
      for (let i = 0; i < length; i++) body[i] = (i * 31 + (i >> 8)) % 251;
      const wire = wireOf(body, chunks);
      const source = new CutSource(wire, cuts);
      const input = new RequestInput(source, headOf(length, chunks !== null), 1 << 30, LIMITS);
      const got: Uint8Array[] = [];
      // The app's reads in turn; with `together`, two of them at a time (an app's mistake).
      for (let i = 0, ended = false; !ended; i += together ? 2 : 1) {
        const batch = together
          ? [ops[i % ops.length], ops[(i + 1) % ops.length]]
          : [ops[i % ops.length]];
        const results = await Promise.all(batch.map((o) => run(input, o)));
        got.push(...results);
        ended = results.some((r) => r.length === 0) &&
          got.reduce((n, r) => n + r.length, 0) >= length;
        if (results.every((r) => r.length === 0)) ended = true;
      }
      const joined = concat(got);
      assert.equal(joined.length, length, "the app got the body's length, no more, no less");
      if (together) {
        // Two reads at once may split the bytes between them in either order: the same bytes.
        assert.deepEqual([...joined].sort((a, b) => a - b), [...body].sort((a, b) => a - b));
      } else assert.deepEqual(joined, body);
      assert.equal(input.finished, true);
      assert.equal(
        source.taken,
        wire.length - NEXT.length,
        "the next request is whole",
      );
    }),
    { numRuns: RUNS },
  );
});
