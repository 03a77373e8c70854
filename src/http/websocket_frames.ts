// RFC 6455's framing, pure and incremental over bytes, no I/O: a decoder for what a client
// sends (masked frames, reassembled into messages, every rule of §5 checked) and an encoder for
// what a server sends. A violation is a value carrying the close code the RFC asks for.

/** Frame opcodes (RFC 6455 §5.2). */
export const OPCODE = {
  CONTINUATION: 0x0,
  TEXT: 0x1,
  BINARY: 0x2,
  CLOSE: 0x8,
  PING: 0x9,
  PONG: 0xa,
} as const;

/** Close codes the server sends (RFC 6455 §7.4.1). */
export const CLOSE_CODE = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  PROTOCOL_ERROR: 1002,
  UNSUPPORTED_DATA: 1003,
  /** Never sent: "no status code was present" (§7.1.5). */
  NO_STATUS: 1005,
  /** Never sent: "closed abnormally" (§7.1.5). */
  ABNORMAL: 1006,
  INVALID_DATA: 1007,
  POLICY_VIOLATION: 1008,
  TOO_BIG: 1009,
  INTERNAL_ERROR: 1011,
} as const;

/** A peer that broke the protocol: the code to close with, and why. */
export class WebSocketProtocolError extends Error {
  readonly code: number;

  constructor(code: number, reason: string) {
    super(reason);
    this.name = "WebSocketProtocolError";
    this.code = code;
  }
}

/** What the decoder produced: a whole message, or a control frame. */
export type Incoming =
  | { kind: "text"; data: string }
  | { kind: "binary"; data: Uint8Array }
  | { kind: "ping"; data: Uint8Array }
  | { kind: "pong"; data: Uint8Array }
  /** `code` is NO_STATUS (1005) when the peer sent none. */
  | { kind: "close"; code: number; reason: string };

const enum State {
  Header,
  ExtendedLength,
  MaskKey,
  Payload,
}

const FIN = 0x80;
const RSV = 0x70;
/** RFC 7692 §6: set on the first frame of a compressed message (permessage-deflate). */
export const RSV1 = 0x40;
const MASKED = 0x80;
const MAX_CONTROL_PAYLOAD = 125;
/** The most a frame's payload gets before its bytes arrive, outside the budget below. */
const FIRST_PAYLOAD = 64 * 1024;
/**
 * Payload bytes allocated before they arrived, across every decoder of the process. A frame
 * that fits in half of what is left gets its whole buffer at once, which the socket then reads
 * straight into; past it, a buffer grows with the bytes that come. A header is 14 bytes and a
 * declared 16 MiB is free to claim: this bounds what headers alone can make the server hold,
 * and the half keeps clients that declare much and send nothing from taking all of it.
 */
const AHEAD_BUDGET = 16 * 1024 * 1024;
let aheadInUse = 0;
/** What a fragment costs besides its bytes, counted toward the message limit. */
const FRAGMENT_COST = 64;
const fatalUtf8 = new TextDecoder("utf-8", { fatal: true });

/** Whether a code may travel in a close frame (RFC 6455 §7.4; 1004–1006 and 1015 never). */
export function isSendableCloseCode(code: number): boolean {
  if (code >= 3000 && code <= 4999) return true;
  return code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006;
}

/** Inflates a compressed message's payload (permessage-deflate, src/server/websocket_compression.ts). */
export interface MessageInflater {
  /** The fragments' payloads, in order, inflated; a violation throws WebSocketProtocolError. */
  inflate(parts: Uint8Array[]): Uint8Array;
}

/**
 * Decodes a client's frames. `push()` takes bytes as they arrive, in any cut, and returns what
 * they completed. On the first violation it stops there: `failure` holds it (what came before
 * it is still returned, a ping to answer perhaps), and the connection is to be closed with its
 * code; later pushes return nothing.
 */
export class FrameDecoder {
  /** The violation decoding stopped at, or null. */
  failure: WebSocketProtocolError | null = null;
  readonly #maxMessage: number;
  #state = State.Header;
  #header = new Uint8Array(2);
  #headerFill = 0;
  #extended = new Uint8Array(8);
  #extendedSize = 0;
  #extendedFill = 0;
  #mask = new Uint8Array(4);
  #maskFill = 0;
  #fin = false;
  #opcode = 0;
  #length = 0;
  #payload = new Uint8Array(0);
  #payloadFill = 0;
  /** This decoder's share of AHEAD_BUDGET: payload allocated and not yet arrived. */
  #ahead = 0;
  /** The data message being reassembled from fragments: its opcode (0 for none) and parts. */
  #messageOpcode = 0;
  readonly #parts: Uint8Array[] = [];
  #messageSize = 0;
  /** The message's bytes plus a cost per fragment: what --ws-max-message bounds. */
  #messageBudget = 0;
  /** permessage-deflate was agreed: RSV1 marks a compressed message. */
  readonly #inflater: MessageInflater | null;
  /** The current frame's RSV1, then the current message's. */
  #frameCompressed = false;
  #messageCompressed = false;

  /**
   * `maxMessage`: the largest message (all its fragments) accepted, on the wire and inflated;
   * larger is close 1009. `inflater`: permessage-deflate was agreed.
   */
  constructor(maxMessage: number, inflater: MessageInflater | null = null) {
    this.#maxMessage = maxMessage;
    this.#inflater = inflater;
  }

  push(bytes: Uint8Array): Incoming[] {
    const out: Incoming[] = [];
    if (this.failure !== null) return out;
    try {
      this.#decode(bytes, out);
    } catch (error) {
      this.#failed(error);
    }
    return out;
  }

  /**
   * Where the socket may read the current frame's payload to straight, skipping push()'s copy:
   * the rest of a frame whose whole buffer is there, when at least `least` bytes of it are
   * still to come (a shorter rest is better read with what follows it); otherwise null.
   */
  room(least: number): Uint8Array | null {
    if (this.#state !== State.Payload || this.failure !== null) return null;
    if (this.#payload.length !== this.#length || this.#length - this.#payloadFill < least) {
      return null;
    }
    return this.#payload.subarray(this.#payloadFill);
  }

  /** `n` bytes were read into what room() gave: what they completed, as push() returns it. */
  filled(n: number): Incoming[] {
    const out: Incoming[] = [];
    try {
      this.#took(n);
      if (this.#payloadFill === this.#length) this.#complete(out);
    } catch (error) {
      this.#failed(error);
    }
    return out;
  }

  /** The connection ended: what this decoder claimed of the budget goes back. */
  dispose(): void {
    aheadInUse -= this.#ahead;
    this.#ahead = 0;
  }

  #failed(error: unknown): void {
    if (!(error instanceof WebSocketProtocolError)) throw error;
    this.failure = error;
    this.dispose();
  }

  #decode(bytes: Uint8Array, out: Incoming[]): void {
    let i = 0;
    while (i < bytes.length) {
      switch (this.#state) {
        case State.Header:
          i = this.#headerFill === 0 ? this.#readSmallFrame(bytes, i, out) : i;
          if (i < bytes.length) i = this.#readHeader(bytes, i);
          break;
        case State.ExtendedLength:
          i = this.#readExtended(bytes, i);
          break;
        case State.MaskKey:
          i = this.#readMask(bytes, i);
          break;
        case State.Payload:
          i = this.#readPayload(bytes, i);
          break;
      }
      if (this.#state === State.Payload && this.#payloadFill === this.#length) this.#complete(out);
    }
  }

  #complete(out: Incoming[]): void {
    const done = this.#frameDone();
    if (done !== null) out.push(done);
  }

  /**
   * Small frames that are all there, from bytes[i] on: each decoded in one step, its payload
   * unmasked while it is copied out — no state steps, no views of the bytes. Returns where the
   * first frame it does not take begins (a longer or a cut one: the steps below take it).
   */
  #readSmallFrame(bytes: Uint8Array, i: number, out: Incoming[]): number {
    while (bytes.length - i >= 6) {
      const length = bytes[i + 1] & 0x7f;
      if (length > MAX_SMALL_FRAME || bytes.length - i < 6 + length) return i;
      this.#checkHeader(bytes[i], bytes[i + 1]);
      const mask = this.#mask;
      for (let k = 0; k < 4; k++) mask[k] = bytes[i + 2 + k];
      this.#payload = new Uint8Array(length);
      this.#payloadFill = 0;
      this.#state = State.Payload;
      unmaskFrom(bytes, i + 6, this.#payload, 0, length, mask);
      this.#arrived(length);
      this.#complete(out);
      i += 6 + length;
    }
    return i;
  }

  #readHeader(bytes: Uint8Array, i: number): number {
    this.#header[this.#headerFill++] = bytes[i];
    if (this.#headerFill < 2) return i + 1;
    this.#headerFill = 0;
    this.#checkHeader(this.#header[0], this.#header[1]);
    return i + 1;
  }

  /** The two bytes of a frame's header: checked, and the state that follows them set. */
  #checkHeader(b0: number, b1: number): void {
    if (b0 & (this.#inflater === null ? RSV : RSV & ~RSV1)) {
      throw new WebSocketProtocolError(1002, "Reserved bits set with no extension");
    }
    if ((b1 & MASKED) === 0) throw new WebSocketProtocolError(1002, "Client frame not masked");
    this.#fin = (b0 & FIN) !== 0;
    this.#opcode = b0 & 0x0f;
    this.#checkOpcode();
    this.#frameCompressed = (b0 & RSV1) !== 0;
    if (this.#frameCompressed) this.#checkCompressed();
    const length = b1 & 0x7f;
    if (length === 126 || length === 127) {
      this.#extendedSize = length === 126 ? 2 : 8;
      this.#extendedFill = 0;
      this.#state = State.ExtendedLength;
    } else {
      this.#setLength(length);
      this.#state = State.MaskKey;
    }
  }

  #checkOpcode(): void {
    const op = this.#opcode;
    if (op >= OPCODE.CLOSE) {
      if (op > OPCODE.PONG) throw new WebSocketProtocolError(1002, `Reserved opcode ${op}`);
      if (!this.#fin) throw new WebSocketProtocolError(1002, "Fragmented control frame");
      return;
    }
    if (op > OPCODE.BINARY) throw new WebSocketProtocolError(1002, `Reserved opcode ${op}`);
    if (op === OPCODE.CONTINUATION && this.#messageOpcode === 0) {
      throw new WebSocketProtocolError(1002, "Continuation frame with no message to continue");
    }
    if (op !== OPCODE.CONTINUATION && this.#messageOpcode !== 0) {
      throw new WebSocketProtocolError(1002, "New message before the last one ended");
    }
  }

  /** RFC 7692 §6.1: RSV1 only on a message's first frame, never on a control frame. */
  #checkCompressed(): void {
    if (this.#opcode >= OPCODE.CLOSE) {
      throw new WebSocketProtocolError(1002, "RSV1 set on a control frame");
    }
    if (this.#opcode === OPCODE.CONTINUATION) {
      throw new WebSocketProtocolError(1002, "RSV1 set on a continuation frame");
    }
  }

  #readExtended(bytes: Uint8Array, i: number): number {
    this.#extended[this.#extendedFill++] = bytes[i];
    if (this.#extendedFill < this.#extendedSize) return i + 1;
    const view = new DataView(this.#extended.buffer);
    let length: number;
    if (this.#extendedSize === 2) {
      length = view.getUint16(0);
      // §5.2: the minimal number of bytes MUST be used.
      if (length < 126) throw new WebSocketProtocolError(1002, "Length not minimally encoded");
    } else {
      const big = view.getBigUint64(0);
      if (big >> 63n) throw new WebSocketProtocolError(1002, "Length with its top bit set");
      if (big < 65536n) throw new WebSocketProtocolError(1002, "Length not minimally encoded");
      length = big > BigInt(Number.MAX_SAFE_INTEGER) ? Infinity : Number(big);
    }
    this.#setLength(length);
    this.#state = State.MaskKey;
    return i + 1;
  }

  #setLength(length: number): void {
    if (this.#opcode >= OPCODE.CLOSE && length > MAX_CONTROL_PAYLOAD) {
      throw new WebSocketProtocolError(1002, "Control frame longer than 125 bytes");
    }
    if (this.#opcode < OPCODE.CLOSE && this.#messageBudget + length > this.#maxMessage) {
      throw new WebSocketProtocolError(1009, `Message larger than ${this.#maxMessage} bytes`);
    }
    this.#length = length;
  }

  #readMask(bytes: Uint8Array, i: number): number {
    this.#mask[this.#maskFill++] = bytes[i];
    if (this.#maskFill < 4) return i + 1;
    this.#maskFill = 0;
    this.#payload = new Uint8Array(this.#firstSize());
    this.#payloadFill = 0;
    this.#state = State.Payload;
    return i + 1;
  }

  /** What a header declares is not yet what was sent: beyond the budget, memory follows bytes. */
  #firstSize(): number {
    const length = this.#length;
    if (length <= FIRST_PAYLOAD) return length;
    if (length > (AHEAD_BUDGET - aheadInUse) / 2) return FIRST_PAYLOAD;
    this.#ahead = length;
    aheadInUse += length;
    return length;
  }

  #readPayload(bytes: Uint8Array, i: number): number {
    const n = Math.min(this.#length - this.#payloadFill, bytes.length - i);
    const start = this.#payloadFill;
    if (start + n > this.#payload.length) this.#growPayload(start + n);
    this.#payload.set(bytes.subarray(i, i + n), start);
    this.#took(n);
    return i + n;
  }

  /** `n` more payload bytes are in place: unmasked there, and no longer ahead of the budget. */
  #took(n: number): void {
    const start = this.#payloadFill;
    unmask(this.#payload, start, start + n, this.#mask);
    this.#arrived(n);
  }

  /** `n` more payload bytes are in place, unmasked: no longer ahead of the budget. */
  #arrived(n: number): void {
    this.#payloadFill += n;
    const released = Math.min(n, this.#ahead);
    this.#ahead -= released;
    aheadInUse -= released;
  }

  #growPayload(need: number): void {
    const size = Math.min(this.#length, Math.max(need, this.#payload.length * 2));
    const grown = new Uint8Array(size);
    grown.set(this.#payload.subarray(0, this.#payloadFill));
    this.#payload = grown;
  }

  /** A frame's payload is complete: a control frame, or a fragment of a data message. */
  #frameDone(): Incoming | null {
    this.#state = State.Header;
    const op = this.#opcode;
    const payload = this.#payload;
    if (op === OPCODE.PING) return { kind: "ping", data: payload };
    if (op === OPCODE.PONG) return { kind: "pong", data: payload };
    if (op === OPCODE.CLOSE) return closeOf(payload);
    if (op !== OPCODE.CONTINUATION) {
      this.#messageOpcode = op;
      this.#messageCompressed = this.#frameCompressed;
    }
    // Each fragment costs besides its bytes, so endless empty ones meet the limit too.
    this.#messageSize += payload.length;
    this.#messageBudget += payload.length + FRAGMENT_COST;
    // A message of one frame (most) is its payload, with no list of parts.
    if (this.#fin && this.#parts.length === 0) {
      return this.#messageDone(this.#messageCompressed ? this.#inflate([payload]) : payload);
    }
    if (payload.length > 0) this.#parts.push(payload);
    if (!this.#fin) return null;
    return this.#messageDone(
      this.#messageCompressed ? this.#inflate(this.#parts) : join(this.#parts, this.#messageSize),
    );
  }

  /** A compressed message's fragments, inflated (permessage-deflate). */
  #inflate(parts: Uint8Array[]): Uint8Array {
    return (this.#inflater as MessageInflater).inflate(parts);
  }

  #messageDone(data: Uint8Array): Incoming {
    const op = this.#messageOpcode;
    this.#parts.length = 0;
    this.#messageSize = 0;
    this.#messageBudget = 0;
    this.#messageOpcode = 0;
    if (op === OPCODE.BINARY) return { kind: "binary", data };
    return { kind: "text", data: utf8(data, "Text message") };
  }
}

const LITTLE_ENDIAN = new Uint8Array(Uint32Array.of(1).buffer)[0] === 1;

/** The longest payload decoded in one step when its frame is all there (a 7-bit length). */
const MAX_SMALL_FRAME = 125;

/** Writes source[from, from + n) unmasked to target[at, at + n); mask byte k is for k mod 4. */
function unmaskFrom(
  source: Uint8Array,
  from: number,
  target: Uint8Array,
  at: number,
  n: number,
  mask: Uint8Array,
): void {
  for (let k = 0; k < n; k++) target[at + k] = source[from + k] ^ mask[(at + k) & 3];
}

/** From this many bytes on, 64-bit words are worth the BigInt the mask becomes. */
const WIDE_UNMASK_AT = 1024;

/**
 * XORs data[from, to) with the mask, whose byte k applies where the position is k mod 4. The
 * payload array is the decoder's own, starting at offset 0, so whole words can be done at once:
 * 64 bits at a time for long runs (V8 compiles BigInt64Array XORs to plain 64-bit ones, about
 * three times the speed of 32-bit words), 32 bits for what is left.
 */
function unmask(data: Uint8Array, from: number, to: number, mask: Uint8Array): void {
  let i = from;
  for (; i < to && (i & 7) !== 0; i++) data[i] ^= mask[i & 3];
  // (Past the loop above `i` is 8-aligned, unless it reached `to`.)
  if (LITTLE_ENDIAN && data.byteOffset % 8 === 0 && to - i >= 8) {
    if (to - i >= WIDE_UNMASK_AT) i = unmask64(data, i, to, mask);
    i = unmask32(data, i, to, mask);
  }
  for (; i < to; i++) data[i] ^= mask[i & 3];
}

/** From 8-aligned `i`, groups of four 64-bit words; returns where it stopped. */
function unmask64(data: Uint8Array, i: number, to: number, mask: Uint8Array): number {
  const words = ((to - i) >>> 5) << 2;
  const low = BigInt(maskWord(mask) >>> 0);
  const word = BigInt.asIntN(64, (low << 32n) | low);
  const view = new BigInt64Array(data.buffer, data.byteOffset + i, words);
  // Unrolled: the loop's own cost is most of the time otherwise.
  for (let w = 0; w < words; w += 4) {
    view[w] ^= word;
    view[w + 1] ^= word;
    view[w + 2] ^= word;
    view[w + 3] ^= word;
  }
  return i + words * 8;
}

/** From 4-aligned `i`, 32-bit words; returns where it stopped. */
function unmask32(data: Uint8Array, i: number, to: number, mask: Uint8Array): number {
  const words = (to - i) >>> 2;
  const word = maskWord(mask);
  const view = new Int32Array(data.buffer, data.byteOffset + i, words);
  for (let w = 0; w < words; w++) view[w] ^= word;
  return i + words * 4;
}

/** The mask as a little-endian 32-bit word. */
function maskWord(mask: Uint8Array): number {
  return mask[0] | (mask[1] << 8) | (mask[2] << 16) | (mask[3] << 24);
}

function closeOf(payload: Uint8Array): Incoming {
  if (payload.length === 0) return { kind: "close", code: CLOSE_CODE.NO_STATUS, reason: "" };
  if (payload.length === 1) throw new WebSocketProtocolError(1002, "Close frame of one byte");
  const code = (payload[0] << 8) | payload[1];
  if (!isSendableCloseCode(code)) {
    throw new WebSocketProtocolError(1002, `Invalid close code ${code}`);
  }
  return { kind: "close", code, reason: utf8(payload.subarray(2), "Close reason") };
}

function utf8(bytes: Uint8Array, what: string): string {
  try {
    return fatalUtf8.decode(bytes);
  } catch {
    throw new WebSocketProtocolError(1007, `${what} is not valid UTF-8`);
  }
}

/** The parts as one array of `size` bytes: a single part is returned as it is. */
export function join(parts: Uint8Array[], size: number): Uint8Array {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(size);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** The header's size of a server frame with `n` bytes of payload. */
export function frameHeaderSize(n: number): number {
  return n < 126 ? 2 : n < 65536 ? 4 : 10;
}

/**
 * Writes a server frame's header (unmasked, §5.1) at `target[at]`; returns its size. `opcode`
 * may carry RSV1 (a compressed message's first frame).
 */
export function writeFrameHeader(
  target: Uint8Array,
  at: number,
  opcode: number,
  n: number,
  fin = true,
): number {
  target[at] = (fin ? FIN : 0) | opcode;
  if (n < 126) {
    target[at + 1] = n;
    return 2;
  }
  const wide = n >= 65536;
  target[at + 1] = wide ? 127 : 126;
  // Big-endian, byte by byte: no DataView per frame, and `at` need not be aligned.
  const size = wide ? 8 : 2;
  for (let k = size - 1, rest = n; k >= 0; k--, rest = Math.floor(rest / 256)) {
    target[at + 2 + k] = rest & 0xff;
  }
  return 2 + size;
}

/** One server frame, header and payload in one new array (control frames, tests). */
export function encodeFrame(opcode: number, payload: Uint8Array, fin = true): Uint8Array {
  const frame = new Uint8Array(frameHeaderSize(payload.length) + payload.length);
  frame.set(payload, writeFrameHeader(frame, 0, opcode, payload.length, fin));
  return frame;
}

/** A close frame's payload: the code, then the reason (at most 123 bytes of UTF-8). */
export function closePayload(code: number, reason = ""): Uint8Array {
  const text = new TextEncoder().encode(reason);
  if (text.length > MAX_CONTROL_PAYLOAD - 2) {
    throw new RangeError("A close reason is at most 123 bytes of UTF-8");
  }
  const out = new Uint8Array(2 + text.length);
  out[0] = code >> 8;
  out[1] = code & 0xff;
  out.set(text, 2);
  return out;
}
