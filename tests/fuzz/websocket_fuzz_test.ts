// A fuzz target for the WebSocket frame decoder (src/http/websocket_frames.ts): streams of valid
// masked client frames (messages fragmented at random, control frames between fragments, a close
// at the end now and then), fed as they are and mutated (bytes changed, inserted, deleted, runs
// cut out or repeated, the stream truncated), each fed whole and split at random points.
// Properties:
//
// 1. push() never throws: it returns what it decoded, and a violation sets `failure`;
// 2. the outcome (the items, and the failure's code and reason) does not depend on the split;
// 3. a failure's code is 1002, 1007 or 1009;
// 4. a valid stream decodes to exactly the messages it was built from, with no failure;
// 5. the same with permessage-deflate: messages compressed by a deflater that keeps its context,
//    RSV1 on their first frames, decoded through the inflater (src/server/websocket_compression.ts).
//
// Fixed seed and bounded runs; WS_FUZZ_RUNS and WS_FUZZ_SEED override (a failure names its seed).

import assert from "node:assert/strict";
import fc from "npm:fast-check@3";
import { FrameDecoder, type Incoming, OPCODE, RSV1 } from "../../src/http/websocket_frames.ts";
import { loadZlib, MessageCompression } from "../../src/server/websocket_compression.ts";
import type { DeflateAgreement } from "../../src/http/websocket_deflate.ts";

const RUNS = Number(Deno.env.get("WS_FUZZ_RUNS") ?? 400);
const SEED = Number(Deno.env.get("WS_FUZZ_SEED") ?? 20_261_201);
const CODES = [1002, 1007, 1009];
const encoder = new TextEncoder();

// --- building valid streams ------------------------------------------------------------------

/** One client frame, masked with `mask`, its length minimally encoded. */
function clientFrame(opcode: number, payload: Uint8Array, fin: boolean, mask: number[]): number[] {
  const n = payload.length;
  const out = [(fin ? 0x80 : 0) | opcode];
  if (n < 126) out.push(0x80 | n);
  else if (n < 65536) out.push(0x80 | 126, n >> 8, n & 0xff);
  else {
    out.push(0x80 | 127);
    for (let i = 7; i >= 0; i--) out.push(Math.floor(n / 2 ** (8 * i)) & 0xff);
  }
  out.push(...mask);
  for (let i = 0; i < n; i++) out.push(payload[i] ^ mask[i & 3]);
  return out;
}

type Control = { opcode: typeof OPCODE.PING | typeof OPCODE.PONG; data: Uint8Array };

interface MessagePlan {
  text: boolean;
  data: Uint8Array;
  /** Where the payload is cut into fragments (sorted positions, each in 0..length). */
  cuts: number[];
  /** Control frames to send after the fragment of the same index. */
  controls: Control[][];
}

interface StreamPlan {
  messages: MessagePlan[];
  close: { code: number; reason: string } | null;
  masks: number[][];
}

const bytesArb = (maxLength: number) => fc.uint8Array({ maxLength });

/** A payload: mostly short, some over 125 (16-bit length), now and then over 65535 (64-bit). */
const payloadArb: fc.Arbitrary<{ text: boolean; data: Uint8Array }> = fc.oneof(
  { weight: 4, arbitrary: fc.fullUnicodeString({ maxLength: 40 }) },
  { weight: 4, arbitrary: bytesArb(40) },
  { weight: 2, arbitrary: bytesArb(400) },
  { weight: 1, arbitrary: fc.fullUnicodeString({ minLength: 40, maxLength: 200 }) },
  { weight: 1, arbitrary: fc.integer({ min: 65536, max: 70_000 }) },
).map((value) => {
  if (typeof value === "string") return { text: true, data: encoder.encode(value) };
  if (typeof value === "number") {
    const data = new Uint8Array(value);
    for (let i = 0; i < value; i++) data[i] = (i * 31) & 0xff;
    return { text: false, data };
  }
  return { text: false, data: value };
});

const controlArb: fc.Arbitrary<Control> = fc.record({
  opcode: fc.constantFrom(OPCODE.PING, OPCODE.PONG),
  data: bytesArb(125),
});

const messageArb: fc.Arbitrary<MessagePlan> = fc.record({
  payload: payloadArb,
  cuts: fc.array(fc.nat(), { maxLength: 4 }),
  controls: fc.array(fc.array(controlArb, { maxLength: 2 }), { maxLength: 5 }),
}).map(({ payload, cuts, controls }) => ({
  text: payload.text,
  data: payload.data,
  cuts: cuts.map((c) => c % (payload.data.length + 1)).sort((a, b) => a - b),
  controls,
}));

const closeArb = fc.option(
  fc.record({
    code: fc.oneof(
      fc.constantFrom(1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014),
      fc.integer({ min: 3000, max: 4999 }),
    ),
    reason: fc.fullUnicodeString({ maxLength: 30 }),
  }),
  { freq: 3 },
);

const streamArb: fc.Arbitrary<StreamPlan> = fc.record({
  messages: fc.array(messageArb, { maxLength: 6 }),
  close: closeArb,
  masks: fc.array(fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 4, maxLength: 4 }), {
    minLength: 1,
    maxLength: 4,
  }),
});

await loadZlib();
const TAKEOVER: DeflateAgreement = {
  serverTakeover: true,
  clientTakeover: true,
  serverWindowBits: 15,
  clientWindowBits: 15,
  header: "permessage-deflate",
};

/** A decoder, with permessage-deflate (context takeover) when `deflate`. */
function newDecoder(maxMessage: number, deflate: boolean): FrameDecoder {
  return new FrameDecoder(
    maxMessage,
    deflate ? new MessageCompression(TAKEOVER, maxMessage) : null,
  );
}

/**
 * The stream's bytes and the items a decoder must give for it. With `deflate`, each message
 * that pays is compressed (one context for the whole stream) and its cuts fall in the
 * compressed bytes.
 */
function build(plan: StreamPlan, deflate = false): { bytes: Uint8Array; expected: Incoming[] } {
  const compression = deflate ? new MessageCompression(TAKEOVER, Infinity) : null;
  const out: number[] = [];
  const expected: Incoming[] = [];
  let frames = 0;
  const mask = () => plan.masks[frames++ % plan.masks.length];
  const push = (frame: number[]) => {
    for (const b of frame) out.push(b);
  };
  for (const message of plan.messages) {
    const compressed = compression?.deflate(message.data)?.slice() ?? null;
    const wire = compressed ?? message.data;
    const cuts = compressed === null
      ? message.cuts
      : message.cuts.map((c) => c % (wire.length + 1));
    const bounds = [0, ...cuts.sort((a, b) => a - b), wire.length];
    const fragments = bounds.length - 1;
    for (let f = 0; f < fragments; f++) {
      let opcode = f > 0 ? OPCODE.CONTINUATION : message.text ? OPCODE.TEXT : OPCODE.BINARY;
      if (f === 0 && compressed !== null) opcode |= RSV1;
      const part = wire.subarray(bounds[f], bounds[f + 1]);
      push(clientFrame(opcode, part, f === fragments - 1, mask()));
      // Control frames may come between fragments (§5.4), never after the last one here, so
      // that the expected order is unambiguous.
      if (f < fragments - 1) {
        for (const control of message.controls[f] ?? []) {
          push(clientFrame(control.opcode, control.data, true, mask()));
          expected.push({
            kind: control.opcode === OPCODE.PING ? "ping" : "pong",
            data: control.data,
          });
        }
      }
    }
    expected.push(
      message.text
        ? { kind: "text", data: new TextDecoder().decode(message.data) }
        : { kind: "binary", data: message.data },
    );
  }
  if (plan.close !== null) {
    // A reason cut at a byte count could split a character: keep whole characters up to 123.
    let text = "";
    for (const ch of plan.close.reason) {
      if (encoder.encode(text + ch).length > 123) break;
      text += ch;
    }
    const body = encoder.encode(text);
    const payload = new Uint8Array(2 + body.length);
    payload[0] = plan.close.code >> 8;
    payload[1] = plan.close.code & 0xff;
    payload.set(body, 2);
    push(clientFrame(OPCODE.CLOSE, payload, true, mask()));
    expected.push({ kind: "close", code: plan.close.code, reason: text });
  }
  compression?.dispose();
  return { bytes: Uint8Array.from(out), expected };
}

// --- decoding ----------------------------------------------------------------------------------

function hex(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i++) s += bytes[i].toString(16).padStart(2, "0");
  return s;
}

/** An item as a string, for comparison. */
function show(item: Incoming): string {
  switch (item.kind) {
    case "text":
      return `text:${JSON.stringify(item.data)}`;
    case "close":
      return `close:${item.code}:${JSON.stringify(item.reason)}`;
    default:
      return `${item.kind}:${hex(item.data)}`;
  }
}

interface Outcome {
  items: string[];
  failure: string | null;
  code: number | null;
}

/** Feeds `bytes` to a new decoder, cut at `splits` (sorted, within the stream). */
function decode(bytes: Uint8Array, splits: number[], maxMessage: number, deflate = false): Outcome {
  const decoder = newDecoder(maxMessage, deflate);
  const items: string[] = [];
  let from = 0;
  for (const at of [...splits, bytes.length]) {
    if (at < from) continue;
    // push() is under test for throwing: an exception here fails the property.
    for (const item of decoder.push(bytes.subarray(from, at))) items.push(show(item));
    from = at;
  }
  const failure = decoder.failure;
  if (failure !== null) {
    // Nothing more comes out after a failure.
    assert.deepEqual(decoder.push(Uint8Array.of(0x82, 0x80, 0, 0, 0, 0)), []);
  }
  return {
    items,
    failure: failure === null ? null : `${failure.code} ${failure.message}`,
    code: failure?.code ?? null,
  };
}

/** Split points drawn from fast-check's numbers, fitted to a stream's length. */
function fit(raw: number[], length: number): number[] {
  if (length < 2) return [];
  return [...new Set(raw.map((n) => 1 + (n % (length - 1))))].sort((a, b) => a - b);
}

const splitsArb = fc.array(fc.nat(), { maxLength: 12 });

/** The outcome, checked to be the same for every split tried (properties 1–3). */
function outcomeEverySplit(
  bytes: Uint8Array,
  splitSets: number[][],
  max: number,
  deflate = false,
): Outcome {
  const whole = decode(bytes, [], max, deflate);
  if (whole.code !== null) assert.ok(CODES.includes(whole.code), `code ${whole.failure}`);
  const tries = [...splitSets];
  if (bytes.length <= 2048) tries.push(Array.from({ length: bytes.length }, (_, i) => i));
  for (const splits of tries) {
    assert.deepEqual(decode(bytes, splits, max, deflate), whole, `split at ${splits.join(",")}`);
  }
  return whole;
}

// --- mutations ---------------------------------------------------------------------------------

type Mutation =
  | { op: "set"; at: number; byte: number }
  | { op: "xor"; at: number; bit: number }
  | { op: "insert"; at: number; bytes: Uint8Array }
  | { op: "delete"; at: number; count: number }
  | { op: "repeat"; at: number; count: number }
  | { op: "truncate"; at: number };

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({
    op: fc.constant("set" as const),
    at: fc.nat(),
    // The bytes that steer the decoder most: flags, opcodes, length markers.
    byte: fc.oneof(
      fc.constantFrom(0x00, 0x01, 0x02, 0x08, 0x09, 0x0a, 0x80, 0x81, 0x82, 0x88, 0x89, 0x8a),
      fc.constantFrom(0x7e, 0x7f, 0xfe, 0xff, 0xc0, 0xf0, 0x03, 0x0b, 0x7d),
      fc.integer({ min: 0, max: 255 }),
    ),
  }),
  fc.record({ op: fc.constant("xor" as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ op: fc.constant("insert" as const), at: fc.nat(), bytes: bytesArb(12) }),
  fc.record({
    op: fc.constant("delete" as const),
    at: fc.nat(),
    count: fc.integer({ min: 1, max: 16 }),
  }),
  fc.record({
    op: fc.constant("repeat" as const),
    at: fc.nat(),
    count: fc.integer({ min: 1, max: 16 }),
  }),
  fc.record({ op: fc.constant("truncate" as const), at: fc.nat() }),
);

function mutate(bytes: Uint8Array, mutations: Mutation[]): Uint8Array {
  let s = Array.from(bytes);
  for (const m of mutations) {
    const at = s.length === 0 ? 0 : m.at % (s.length + (m.op === "insert" ? 1 : 0));
    if (m.op === "set" && s.length > 0) s[at] = m.byte;
    else if (m.op === "xor" && s.length > 0) s[at] ^= 1 << m.bit;
    else if (m.op === "insert") s.splice(at, 0, ...m.bytes);
    else if (m.op === "delete") s.splice(at, m.count);
    else if (m.op === "repeat") s.splice(at, 0, ...s.slice(at, at + m.count));
    else if (m.op === "truncate") s = s.slice(0, at);
  }
  return Uint8Array.from(s);
}

// --- the properties ----------------------------------------------------------------------------

Deno.test("valid frame streams decode to exactly the messages they were built from, however split", () => {
  fc.assert(
    fc.property(streamArb, fc.array(splitsArb, { maxLength: 3 }), (plan, rawSplits) => {
      const { bytes, expected } = build(plan);
      const outcome = outcomeEverySplit(
        bytes,
        rawSplits.map((raw) => fit(raw, bytes.length)),
        1 << 20,
      );
      assert.equal(outcome.failure, null);
      assert.deepEqual(outcome.items, expected.map(show));
    }),
    { seed: SEED, numRuns: RUNS },
  );
});

Deno.test("mutated frame streams: no throw, the same outcome for every split, codes 1002/1007/1009", () => {
  const seen = new Map<number | null, number>();
  fc.assert(
    fc.property(
      streamArb,
      fc.array(mutationArb, { minLength: 1, maxLength: 4 }),
      fc.array(splitsArb, { minLength: 1, maxLength: 3 }),
      fc.constantFrom(64, 4096, 1 << 20),
      (plan, mutations, rawSplits, maxMessage) => {
        const bytes = mutate(build(plan).bytes, mutations);
        const outcome = outcomeEverySplit(
          bytes,
          rawSplits.map((raw) => fit(raw, bytes.length)),
          maxMessage,
        );
        seen.set(outcome.code, (seen.get(outcome.code) ?? 0) + 1);
      },
    ),
    { seed: SEED + 1, numRuns: RUNS * 4 },
  );
  // The mutations reach every kind of refusal, and leave some streams whole.
  for (const code of [null, ...CODES]) {
    assert.ok((seen.get(code) ?? 0) > 0, `no case ended with ${code}: ${[...seen]}`);
  }
});

Deno.test("random bytes: no throw, the same outcome for every split, codes 1002/1007/1009", () => {
  fc.assert(
    fc.property(bytesArb(300), splitsArb, fc.constantFrom(16, 4096), (bytes, raw, maxMessage) => {
      // Random bytes with the mask bit forced on the second byte, so that some get past it.
      const data = bytes.length > 1
        ? Uint8Array.from(bytes, (b, i) => (i === 1 ? b | 0x80 : b))
        : bytes;
      outcomeEverySplit(data, [fit(raw, data.length)], maxMessage);
    }),
    { seed: SEED + 2, numRuns: RUNS * 2 },
  );
});

Deno.test("permessage-deflate streams decode to their messages; mutated, fail the same however split", () => {
  fc.assert(
    fc.property(streamArb, fc.array(splitsArb, { maxLength: 2 }), (plan, rawSplits) => {
      const { bytes, expected } = build(plan, true);
      const splits = rawSplits.map((raw) => fit(raw, bytes.length));
      const outcome = outcomeEverySplit(bytes, splits, 1 << 20, true);
      assert.equal(outcome.failure, null);
      assert.deepEqual(outcome.items, expected.map(show));
    }),
    { seed: SEED + 3, numRuns: RUNS / 2 },
  );
  const seen = new Map<number | null, number>();
  fc.assert(
    fc.property(
      streamArb,
      fc.array(mutationArb, { minLength: 1, maxLength: 4 }),
      splitsArb,
      fc.constantFrom(64, 4096, 1 << 20),
      (plan, mutations, raw, maxMessage) => {
        const bytes = mutate(build(plan, true).bytes, mutations);
        const outcome = outcomeEverySplit(bytes, [fit(raw, bytes.length)], maxMessage, true);
        seen.set(outcome.code, (seen.get(outcome.code) ?? 0) + 1);
      },
    ),
    { seed: SEED + 4, numRuns: RUNS * 2 },
  );
  for (const code of [null, ...CODES]) {
    assert.ok((seen.get(code) ?? 0) > 0, `no case ended with ${code}: ${[...seen]}`);
  }
});
