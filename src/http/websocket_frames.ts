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
const MASKED = 0x80;
const MAX_CONTROL_PAYLOAD = 125;
/** The most a frame's payload gets before its bytes arrive. */
const FIRST_PAYLOAD = 64 * 1024;
/** What a fragment costs besides its bytes, counted toward the message limit. */
const FRAGMENT_COST = 64;
const fatalUtf8 = new TextDecoder("utf-8", { fatal: true });

/** Whether a code may travel in a close frame (RFC 6455 §7.4; 1004–1006 and 1015 never). */
export function isSendableCloseCode(code: number): boolean {
  if (code >= 3000 && code <= 4999) return true;
  return code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006;
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
  /** The data message being reassembled from fragments: its opcode (0 for none) and parts. */
  #messageOpcode = 0;
  #parts: Uint8Array[] = [];
  #messageSize = 0;
  /** The message's bytes plus a cost per fragment: what --ws-max-message bounds. */
  #messageBudget = 0;

  /** `maxMessage`: the largest message (all its fragments) accepted; larger is close 1009. */
  constructor(maxMessage: number) {
    this.#maxMessage = maxMessage;
  }

  push(bytes: Uint8Array): Incoming[] {
    const out: Incoming[] = [];
    if (this.failure !== null) return out;
    try {
      this.#decode(bytes, out);
    } catch (error) {
      if (!(error instanceof WebSocketProtocolError)) throw error;
      this.failure = error;
    }
    return out;
  }

  #decode(bytes: Uint8Array, out: Incoming[]): void {
    let i = 0;
    while (i < bytes.length) {
      switch (this.#state) {
        case State.Header:
          i = this.#readHeader(bytes, i);
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
      if (this.#state === State.Payload && this.#payloadFill === this.#length) {
        const done = this.#frameDone();
        if (done !== null) out.push(done);
      }
    }
  }

  #readHeader(bytes: Uint8Array, i: number): number {
    this.#header[this.#headerFill++] = bytes[i];
    if (this.#headerFill < 2) return i + 1;
    this.#headerFill = 0;
    const [b0, b1] = this.#header;
    if (b0 & RSV) throw new WebSocketProtocolError(1002, "Reserved bits set with no extension");
    if ((b1 & MASKED) === 0) throw new WebSocketProtocolError(1002, "Client frame not masked");
    this.#fin = (b0 & FIN) !== 0;
    this.#opcode = b0 & 0x0f;
    this.#checkOpcode();
    const length = b1 & 0x7f;
    if (length === 126 || length === 127) {
      this.#extendedSize = length === 126 ? 2 : 8;
      this.#extendedFill = 0;
      this.#state = State.ExtendedLength;
    } else {
      this.#setLength(length);
      this.#state = State.MaskKey;
    }
    return i + 1;
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
    // What a header declares is not yet what was sent: memory follows the bytes that come.
    this.#payload = new Uint8Array(Math.min(this.#length, FIRST_PAYLOAD));
    this.#payloadFill = 0;
    this.#state = State.Payload;
    return i + 1;
  }

  #readPayload(bytes: Uint8Array, i: number): number {
    const n = Math.min(this.#length - this.#payloadFill, bytes.length - i);
    const start = this.#payloadFill;
    if (start + n > this.#payload.length) this.#growPayload(start + n);
    this.#payload.set(bytes.subarray(i, i + n), start);
    unmask(this.#payload, start, start + n, this.#mask);
    this.#payloadFill = start + n;
    return i + n;
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
    if (op !== OPCODE.CONTINUATION) this.#messageOpcode = op;
    // Each fragment costs besides its bytes, so endless empty ones meet the limit too.
    if (payload.length > 0) this.#parts.push(payload);
    this.#messageSize += payload.length;
    this.#messageBudget += payload.length + FRAGMENT_COST;
    if (!this.#fin) return null;
    return this.#messageDone();
  }

  #messageDone(): Incoming {
    const parts = this.#parts;
    const data = parts.length === 1 ? parts[0] : join(parts, this.#messageSize);
    const op = this.#messageOpcode;
    this.#parts = [];
    this.#messageSize = 0;
    this.#messageBudget = 0;
    this.#messageOpcode = 0;
    if (op === OPCODE.BINARY) return { kind: "binary", data };
    return { kind: "text", data: utf8(data, "Text message") };
  }
}

const LITTLE_ENDIAN = new Uint8Array(Uint32Array.of(1).buffer)[0] === 1;

/**
 * XORs data[from, to) with the mask, whose byte k applies where the position is k mod 4. The
 * payload array is the decoder's own, starting at offset 0, so whole words can be done at once.
 */
function unmask(data: Uint8Array, from: number, to: number, mask: Uint8Array): void {
  let i = from;
  for (; i < to && (i & 3) !== 0; i++) data[i] ^= mask[i & 3];
  const words = LITTLE_ENDIAN && data.byteOffset % 4 === 0 ? (to - i) >>> 2 : 0;
  if (words > 0) {
    const word = (mask[0] | (mask[1] << 8) | (mask[2] << 16) | (mask[3] << 24)) >>> 0;
    const view = new Uint32Array(data.buffer, data.byteOffset + i, words);
    for (let w = 0; w < words; w++) view[w] ^= word;
    i += words * 4;
  }
  for (; i < to; i++) data[i] ^= mask[i & 3];
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

function join(parts: Uint8Array[], size: number): Uint8Array {
  const out = new Uint8Array(size);
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** One server frame (unmasked, §5.1): header and payload in one array, for one write. */
export function encodeFrame(opcode: number, payload: Uint8Array, fin = true): Uint8Array {
  const n = payload.length;
  const headerSize = n < 126 ? 2 : n < 65536 ? 4 : 10;
  const frame = new Uint8Array(headerSize + n);
  frame[0] = (fin ? FIN : 0) | opcode;
  if (n < 126) frame[1] = n;
  else if (n < 65536) {
    frame[1] = 126;
    new DataView(frame.buffer).setUint16(2, n);
  } else {
    frame[1] = 127;
    new DataView(frame.buffer).setBigUint64(2, BigInt(n));
  }
  frame.set(payload, headerSize);
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
