// `tsgi.input`: the request body, streamed from the connection's read buffer through its
// framing (Content-Length or chunked), never past the body's end, never buffered whole.

import { ChunkedDecoder } from "./chunked.ts";
import { HttpError } from "./errors.ts";
import { BodyKind, type HeadLimits, type RequestHead } from "./parser.ts";
import type { Input } from "./types.ts";

/** The connection's side of a body: its unread bytes are buf[start, end). */
export interface BodySource {
  buf: Uint8Array;
  start: number;
  end: number;
  /** Reads more bytes into buf; false at end of stream. */
  fill(): Promise<boolean>;
  /**
   * Reads from the socket straight into `dest`, past the buffer, when the buffer is empty and
   * no read is in flight: bytes read, 0 when they went to the buffer instead, null at the end.
   */
  readInto(dest: Uint8Array): Promise<number | null>;
  /** Called once, before the first body byte is asked for, when the client expects 100. */
  sendContinue(): Promise<void>;
}

/** Raised when the client closes the connection in the middle of its body. */
export class ClientGoneError extends Error {
  constructor(message = "Client closed the connection before the request body ended") {
    super(message);
    this.name = "ClientGoneError";
  }
}

const EMPTY = new Uint8Array(0);
const LF = 0x0a;
/** Reads of at least this many body bytes go straight from the socket to the app. */
const DIRECT_READ_MIN = 16 * 1024;
/** The most one direct read asks for: the app's chunk, not the whole body. */
const DIRECT_READ_MAX = 1024 * 1024;

/** The input of a bodiless request: always at its end. Stateless, so one serves all. */
export const EMPTY_INPUT: Input = Object.freeze({
  read: () => Promise.resolve(EMPTY),
  readline: () => Promise.resolve(EMPTY),
  readlines: () => Promise.resolve([]),
  async *[Symbol.asyncIterator]() {},
});

/** A streamed request body. */
export class RequestInput implements Input {
  readonly #source: BodySource;
  #remaining: number;
  readonly #decoder: ChunkedDecoder | null;
  #continuePending: boolean;
  #done = false;
  #failure: Error | null = null;
  /** Bytes taken from the wire but not yet given to the app (after a short read). */
  #pending: Uint8Array = EMPTY;

  constructor(source: BodySource, head: RequestHead, maxBody: number, limits: HeadLimits) {
    this.#source = source;
    this.#remaining = head.contentLength;
    this.#decoder = head.bodyKind === BodyKind.Chunked ? new ChunkedDecoder(maxBody, limits) : null;
    this.#continuePending = head.expectContinue;
  }

  /** True once the whole body has come off the wire (whether or not the app read it). */
  get finished(): boolean {
    return this.#done && this.#pending.length === 0;
  }

  /** True when the client was told to send its body, or never had to be asked. */
  get bodyRequested(): boolean {
    return !this.#continuePending;
  }

  /** Body bytes still on the wire, when the framing says; -1 when unknown (chunked). */
  get remainingOnWire(): number {
    if (this.#done) return 0;
    return this.#decoder ? -1 : this.#remaining;
  }

  /** The error the body failed with, if it did: the connection cannot be reused then. */
  get failure(): Error | null {
    return this.#failure;
  }

  async read(size?: number): Promise<Uint8Array> {
    if (size === undefined || size === null || size < 0) return concat(await this.#readAll());
    if (size === 0) return EMPTY;
    const parts: Uint8Array[] = [];
    let total = 0;
    while (total < size) {
      const piece = await this.#take(size - total);
      if (piece === null) break;
      parts.push(piece);
      total += piece.length;
    }
    return concat(parts);
  }

  async readline(size?: number): Promise<Uint8Array> {
    const limit = size === undefined || size === null || size < 0 ? Infinity : size;
    const parts: Uint8Array[] = [];
    let total = 0;
    while (total < limit) {
      const piece = await this.#take(Math.min(limit - total, 1 << 30));
      if (piece === null) break;
      const nl = piece.indexOf(LF);
      if (nl >= 0 && nl + 1 < piece.length) {
        this.#pending = piece.subarray(nl + 1);
        parts.push(piece.subarray(0, nl + 1));
        break;
      }
      parts.push(piece);
      total += piece.length;
      if (nl >= 0) break;
    }
    return concat(parts);
  }

  async readlines(hint?: number): Promise<Uint8Array[]> {
    const lines: Uint8Array[] = [];
    let total = 0;
    while (hint === undefined || hint <= 0 || total < hint) {
      const line = await this.readline();
      if (line.length === 0) break;
      lines.push(line);
      total += line.length;
    }
    return lines;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    while (true) {
      const line = await this.readline();
      if (line.length === 0) return;
      yield line;
    }
  }

  /**
   * Reads and discards what is left, up to `limit` bytes on the wire. True when the body
   * ended within it, so the connection is positioned at the next request.
   */
  async drain(limit: number): Promise<boolean> {
    this.#pending = EMPTY;
    let drained = 0;
    try {
      while (!this.#done) {
        const piece = await this.#next(1 << 30);
        if (piece === null) break;
        drained += piece.length;
        if (drained > limit) return false;
      }
    } catch {
      return false;
    }
    return this.#done;
  }

  async #readAll(): Promise<Uint8Array[]> {
    const parts: Uint8Array[] = [];
    while (true) {
      const piece = await this.#take(1 << 30);
      if (piece === null) return parts;
      parts.push(piece);
    }
  }

  /** At most `max` bytes: the pending ones first, then the next from the wire; null at end. */
  #take(max: number): Promise<Uint8Array | null> | Uint8Array {
    const pending = this.#pending;
    if (pending.length === 0) return this.#next(max);
    if (pending.length <= max) {
      this.#pending = EMPTY;
      return pending;
    }
    this.#pending = pending.subarray(max);
    return pending.subarray(0, max);
  }

  async #next(max: number): Promise<Uint8Array | null> {
    if (this.#failure) throw this.#failure;
    if (this.#done) return null;
    if (this.#continuePending) {
      this.#continuePending = false;
      await this.#source.sendContinue();
    }
    try {
      return this.#decoder ? await this.#nextChunked(max) : await this.#nextFixed(max);
    } catch (error) {
      this.#failure = error as Error;
      throw error;
    }
  }

  async #nextFixed(max: number): Promise<Uint8Array> {
    const source = this.#source;
    const want = Math.min(this.#remaining, max);
    if (source.start === source.end && want >= DIRECT_READ_MIN) {
      // A large read skips the buffer: one copy (the kernel's) instead of two.
      const dest = new Uint8Array(Math.min(want, DIRECT_READ_MAX));
      const n = await source.readInto(dest);
      if (n === null) throw new ClientGoneError();
      if (n > 0) {
        this.#remaining -= n;
        if (this.#remaining === 0) this.#done = true;
        return n === dest.length ? dest : dest.subarray(0, n);
      }
    }
    if (source.start === source.end && !(await source.fill())) throw new ClientGoneError();
    const n = Math.min(this.#remaining, source.end - source.start, max);
    const piece = source.buf.slice(source.start, source.start + n);
    source.start += n;
    this.#remaining -= n;
    if (this.#remaining === 0) this.#done = true;
    return piece;
  }

  async #nextChunked(max: number): Promise<Uint8Array | null> {
    const source = this.#source;
    const decoder = this.#decoder as ChunkedDecoder;
    while (true) {
      if (source.start === source.end && !(await source.fill())) throw new ClientGoneError();
      const pos = decoder.decode(source.buf, source.start, source.end);
      if (pos instanceof HttpError) throw pos;
      source.start = pos;
      if (decoder.done) this.#done = true;
      const spanLength = decoder.spanEnd - decoder.spanStart;
      if (spanLength > 0) {
        const piece = source.buf.slice(decoder.spanStart, decoder.spanEnd);
        if (spanLength <= max) return piece;
        this.#pending = piece.subarray(max);
        return piece.subarray(0, max);
      }
      if (this.#done) return null;
    }
  }
}

function concat(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 0) return EMPTY;
  if (parts.length === 1) return parts[0];
  let total = 0;
  for (const p of parts) total += p.length;
  const out = new Uint8Array(total);
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}
