// `tsgi.input`: the request body, streamed from the connection's read buffer through its
// framing (Content-Length or chunked), never past the body's end, never buffered whole.

import { setImmediate } from "node:timers";
import { ChunkedDecoder } from "../http/chunked.ts";
import { HttpError } from "../http/errors.ts";
import { BodyKind, type HeadLimits, type RequestHead } from "../http/parser.ts";
import { ByteInput, checkReadInto, EMPTY, limitOf } from "./byte_input.ts";
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
   * `appOwned`: `dest` is the app's, so nothing may land in it once the promise settles.
   */
  readInto(dest: Uint8Array, appOwned?: boolean): Promise<number | null>;
  /** Whether readInto() may be given the app's memory (its read in flight can be stopped). */
  readonly canReadIntoApp: boolean;
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

/**
 * Raised into the app's read when the client sends its body too slowly (data_rate.ts): the
 * answer is 408 when nothing has been sent yet, and the connection closes either way.
 */
export class BodyTimeoutError extends HttpError {
  constructor(detail: string) {
    super(408, `Request body too slow: ${detail}`);
    this.name = "BodyTimeoutError";
  }
}

/** Reads of at least this many body bytes go straight from the socket to the app. */
const DIRECT_READ_MIN = 16 * 1024;
/** The most one direct read takes at once, whatever the app asked for. */
const DIRECT_READ_MAX = 128 * 1024;

/** The input of a bodiless request: always at its end. Stateless, so one serves all. */
export const EMPTY_INPUT: Input = Object.freeze({
  read: () => Promise.resolve(EMPTY),
  readInto: (buf: Uint8Array) => {
    try {
      checkReadInto(buf);
    } catch (error) {
      return Promise.reject(error);
    }
    return Promise.resolve(0);
  },
  readline: () => Promise.resolve(EMPTY),
  readlines: () => Promise.resolve([]),
  async *[Symbol.asyncIterator]() {},
});

/** Up to this many bytes are copied one by one: a view per chunk would be garbage per chunk. */
const BYTEWISE_COPY = 32;

/**
 * Copies source[from, from + n) to target at `at`. A client may send a byte per chunk, and a
 * subarray for each is a young-generation object per body byte: enough garbage to make V8
 * grow its young generation to the maximum (tens of MB of RSS) during one upload.
 */
function copySpan(
  source: Uint8Array,
  from: number,
  target: Uint8Array,
  at: number,
  n: number,
): void {
  if (n > BYTEWISE_COPY) {
    target.set(source.subarray(from, from + n), at);
    return;
  }
  for (let k = 0; k < n; k++) target[at + k] = source[from + k];
}

/** A streamed request body. */
export class RequestInput extends ByteInput {
  readonly #source: BodySource;
  #remaining: number;
  readonly #decoder: ChunkedDecoder | null;
  #continuePending: boolean;
  #done = false;
  #failure: Error | null = null;
  /**
   * Whether the body arrives fast enough for reads of their own: until a read brings a good
   * amount, a client that only declared a large length costs no memory beyond the buffer.
   */
  #flowing = false;
  /** Where small chunks are gathered into one piece, reused from read to read. */
  #gatherScratch: Uint8Array | null = null;
  /**
   * A read of the body is reaching the connection; others wait their turn (#awaitTurn). Two at
   * once (an app's mistake) would each size a socket read by the same remaining count, and
   * together read past the body's end, into the next request.
   */
  #inTurn = false;
  /** Reads waiting for their turn, in order; made at the first that has to. */
  #waiting: (() => void)[] | null = null;

  constructor(source: BodySource, head: RequestHead, maxBody: number, limits: HeadLimits) {
    super();
    this.#source = source;
    this.#remaining = head.contentLength;
    this.#decoder = head.bodyKind === BodyKind.Chunked ? new ChunkedDecoder(maxBody, limits) : null;
    this.#continuePending = head.expectContinue;
  }

  /** True once the whole body has come off the wire (whether or not the app read it). */
  get finished(): boolean {
    return this.#done && !this.hasPending;
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

  /**
   * Reads and discards what is left, up to `limit` bytes on the wire. True when the body
   * ended within it, so the connection is positioned at the next request.
   */
  async drain(limit: number): Promise<boolean> {
    this.dropPending();
    let drained = 0;
    try {
      while (!this.#done) {
        const piece = await this.next(1 << 30);
        if (piece === null) break;
        drained += piece.length;
        if (drained > limit) return false;
      }
    } catch {
      return false;
    }
    return this.#done;
  }

  protected override expectedBytes(): number {
    return this.#decoder ? -1 : this.#remaining + this.pendingBytes;
  }

  /**
   * A read of a size the app chose goes into the one array the app gets when it can: a chunked
   * body's data is decoded into it, and a fixed-length body that comes fast is read from the
   * socket straight into it, instead of into pieces that read() would then copy together (two
   * arrays allocated, and so cleared, and one copy, per read).
   */
  override read(size?: number): Promise<Uint8Array> {
    const limit = limitOf(size);
    if (limit === Infinity) return super.read();
    if (this.#canDecodeInto(limit)) return this.#readChunkedInto(limit);
    if (this.#canReadStraight(limit)) {
      return this.#readAtLeast(Math.min(limit, this.#remaining + this.pendingBytes));
    }
    return super.read(limit);
  }

  /** Whether read(n) of a chunked body may decode into one array of n (bounded by n). */
  #canDecodeInto(n: number): boolean {
    return this.#decoder !== null && n > 0 && n <= DIRECT_READ_MAX && !this.#continuePending &&
      this.#failure === null && !this.#done && !this.#inTurn && this.pendingBytes < n;
  }

  /**
   * Whether read(n) of a fixed-length body may read the socket into the app's array. That
   * array has room for DIRECT_READ_MAX, so each socket read takes what the kernel has; what
   * comes past n is the next read's, with no copy (the app is given a view of the front).
   */
  #canReadStraight(n: number): boolean {
    const source = this.#source;
    return this.#decoder === null && n >= DIRECT_READ_MIN && n <= DIRECT_READ_MAX &&
      this.#remaining >= DIRECT_READ_MIN && this.#flowing && !this.#continuePending &&
      this.#failure === null && source.start === source.end && this.pendingBytes < n &&
      !this.#inTurn;
  }

  /**
   * On a fixed-length body with nothing buffered, the socket reads straight into the app's
   * `buf`: no array is allocated, cleared or copied. The connection guarantees the read cannot
   * land in `buf` after the promise settles, a 408 included (BodySource.canReadIntoApp).
   */
  override async readInto(buf: Uint8Array): Promise<number> {
    checkReadInto(buf);
    if (!this.#canReadIntoApp()) return super.readInto(buf);
    const source = this.#source;
    const dest = buf.length > this.#remaining ? buf.subarray(0, this.#remaining) : buf;
    let n: number | null;
    this.#inTurn = true;
    try {
      n = await source.readInto(dest, true);
      if (n === null) throw new ClientGoneError();
    } catch (error) {
      this.#failure = error as Error;
      throw error;
    } finally {
      this.#endTurn();
    }
    // The bytes went to the connection's buffer (a read was already in flight there).
    if (n === 0) return super.readInto(buf);
    this.#remaining -= n;
    if (this.#remaining === 0) this.#done = true;
    return n;
  }

  /** Whether readInto() may read the socket into the app's array: nothing else is due first. */
  #canReadIntoApp(): boolean {
    const source = this.#source;
    return this.#decoder === null && this.#remaining > 0 && !this.#continuePending &&
      this.#failure === null && this.pendingBytes === 0 && source.start === source.end &&
      source.canReadIntoApp && !this.#inTurn;
  }

  /** `n` body bytes (the ones taken and not read first) as one array; more are kept. */
  async #readAtLeast(n: number): Promise<Uint8Array> {
    const source = this.#source;
    // read() saw no other read in progress, so the turn is free.
    this.#inTurn = true;
    // Never past the body's end: what is read stays this request's.
    const room = Math.min(this.#remaining + this.pendingBytes, Math.max(n, DIRECT_READ_MAX));
    const dest = new Uint8Array(room);
    let filled = this.movePendingInto(dest);
    try {
      while (filled < n) {
        let got = source.start === source.end ? await source.readInto(dest.subarray(filled)) : 0;
        if (got === null) throw new ClientGoneError();
        if (got === 0) {
          // The bytes went to the connection's buffer (a read was already in flight there).
          if (source.start === source.end && !(await source.fill())) throw new ClientGoneError();
          got = Math.min(room - filled, source.end - source.start);
          dest.set(source.buf.subarray(source.start, source.start + got), filled);
          source.start += got;
        }
        filled += got;
        this.#remaining -= got;
      }
    } catch (error) {
      this.#failure = error as Error;
      throw error;
    } finally {
      this.#endTurn();
    }
    if (this.#remaining === 0) this.#done = true;
    if (filled === room && room === n) return dest;
    if (filled > n) this.keep(dest.subarray(n, filled));
    return dest.subarray(0, n);
  }

  /**
   * read(n) of a chunked body: the chunks' data is decoded straight into the one array the app
   * gets, however the client cut them (a byte per chunk included), instead of a piece per
   * buffer's worth and a second array to gather the pieces into.
   */
  async #readChunkedInto(n: number): Promise<Uint8Array> {
    const source = this.#source;
    // read() saw no other read in progress, so the turn is free.
    this.#inTurn = true;
    const dest = new Uint8Array(n);
    let filled = this.movePendingInto(dest);
    try {
      while (filled < n && !this.#done) {
        if (source.start === source.end && !(await source.fill())) throw new ClientGoneError();
        filled += this.#decodeInto(dest, filled);
      }
    } catch (error) {
      this.#failure = error as Error;
      throw error;
    } finally {
      this.#endTurn();
    }
    return filled === n ? dest : dest.subarray(0, filled);
  }

  /**
   * Decodes what the buffer holds into dest from `at`, as far as it has room; a chunk's data
   * past the room is kept for the next read. Returns the bytes placed (0: framing only).
   */
  #decodeInto(dest: Uint8Array, at: number): number {
    const source = this.#source;
    let placed = 0;
    while (at + placed < dest.length && source.start < source.end && !this.#done) {
      const take = this.#decodeSpan(dest.length - at - placed);
      copySpan(source.buf, (this.#decoder as ChunkedDecoder).spanStart, dest, at + placed, take);
      placed += take;
    }
    return placed;
  }

  /**
   * Decodes the buffer as far as the next span of chunk data and takes up to `room` of it,
   * from the decoder's spanStart; the rest of the span is kept for the next read. Returns how
   * many it took (0: the buffer held framing only).
   */
  #decodeSpan(room: number): number {
    const source = this.#source;
    const decoder = this.#decoder as ChunkedDecoder;
    const pos = decoder.decode(source.buf, source.start, source.end);
    if (pos instanceof HttpError) throw pos;
    source.start = pos;
    if (decoder.done) this.#done = true;
    const from = decoder.spanStart;
    const span = decoder.spanEnd - from;
    const take = Math.min(span, room);
    if (take < span) this.keep(source.buf.slice(from + take, from + span));
    return take;
  }

  protected async next(max: number): Promise<Uint8Array | null> {
    if (this.#inTurn) {
      await this.#awaitTurn();
      // The reads ahead may have left bytes pending: they come first.
      const pending = this.takePending(max);
      if (pending !== null) {
        this.#endTurn();
        return pending;
      }
    } else this.#inTurn = true;
    try {
      if (this.#failure) throw this.#failure;
      if (this.#done) return null;
      if (this.#continuePending) {
        this.#continuePending = false;
        await this.#source.sendContinue();
      }
      return this.#decoder ? await this.#nextChunked(max) : await this.#nextFixed(max);
    } catch (error) {
      this.#failure ??= error as Error;
      throw error;
    } finally {
      this.#endTurn();
    }
  }

  /** Resolves once the reads ahead of this one are done; the turn is then this one's. */
  #awaitTurn(): Promise<void> {
    return new Promise((resolve) => (this.#waiting ??= []).push(resolve));
  }

  /** Ends this read's turn; one waiting gets it, at the next turn of the event loop. */
  #endTurn(): void {
    if (this.#waiting === null || this.#waiting.length === 0) {
      this.#inTurn = false;
      return;
    }
    // Not at once: the read ending now may give back, when its caller resumes a microtask
    // later, what it took past what it wanted (readline()'s bytes after its LF), and those come
    // before anything the next read finds. Every microtask runs before an immediate (a timer
    // would do too, but nested ones are held back 4 ms each).
    setImmediate(() => this.#handOver());
  }

  #handOver(): void {
    const next = this.#waiting?.shift();
    if (next !== undefined) next();
    else this.#inTurn = false;
  }

  async #nextFixed(max: number): Promise<Uint8Array> {
    const source = this.#source;
    if (source.start === source.end && this.#remaining >= DIRECT_READ_MIN && this.#flowing) {
      // A large body skips the buffer: one copy (the kernel's) instead of two, into memory of
      // its own that is handed out in pieces, so one read serves several of the app's.
      const dest = new Uint8Array(Math.min(this.#remaining, DIRECT_READ_MAX));
      const n = await source.readInto(dest);
      if (n === null) throw new ClientGoneError();
      if (n > 0) {
        this.#flowing = n >= DIRECT_READ_MIN;
        this.#remaining -= n;
        if (this.#remaining === 0) this.#done = true;
        if (n > max) this.keep(dest.subarray(max, n));
        return dest.subarray(0, Math.min(n, max));
      }
    }
    if (source.start === source.end) {
      if (!(await source.fill())) throw new ClientGoneError();
      this.#flowing = source.end - source.start >= DIRECT_READ_MIN;
    }
    const n = Math.min(this.#remaining, source.end - source.start, max);
    const piece = source.buf.slice(source.start, source.start + n);
    source.start += n;
    this.#remaining -= n;
    if (this.#remaining === 0) this.#done = true;
    return piece;
  }

  async #nextChunked(max: number): Promise<Uint8Array | null> {
    const source = this.#source;
    while (true) {
      if (source.start === source.end && !(await source.fill())) throw new ClientGoneError();
      const piece = this.#decodeBuffered(max);
      if (piece !== null) return piece;
      if (this.#done) return null;
    }
  }

  /**
   * The body data now in the buffer, up to `max` bytes, as one piece however many chunks it
   * spans: a body sent one byte per chunk costs a copy, not an array per byte. Null when the
   * buffer held chunk framing only.
   */
  #decodeBuffered(max: number): Uint8Array | null {
    const source = this.#source;
    const decoder = this.#decoder as ChunkedDecoder;
    let first = -1;
    let length = 0;
    let gathered: Uint8Array | null = null;
    while (length < max && source.start < source.end && !this.#done) {
      const take = this.#decodeSpan(max - length);
      if (take === 0) continue;
      const from = decoder.spanStart;
      if (length === 0) first = from;
      else {
        // A second chunk: gather in scratch memory (what is still buffered bounds the size).
        if (gathered === null) {
          gathered = this.#scratch(length + take + source.end - source.start);
          gathered.set(source.buf.subarray(first, first + length));
        }
        copySpan(source.buf, from, gathered, length, take);
      }
      length += take;
    }
    if (length === 0) return null;
    return gathered === null ? source.buf.slice(first, first + length) : gathered.slice(0, length);
  }

  #scratch(size: number): Uint8Array {
    if (this.#gatherScratch === null || this.#gatherScratch.length < size) {
      this.#gatherScratch = new Uint8Array(size);
    }
    return this.#gatherScratch;
  }
}

/** A body whose start has been read already: that part first, then the rest as it comes. */
export class BufferedInput extends ByteInput {
  #start: Uint8Array | null;
  readonly #rest: Input | null;

  /** Reads up to `size` bytes of `input` now; the result gives the whole body back. */
  static async read(input: Input, size: number): Promise<BufferedInput> {
    const start = await input.read(size);
    // Fewer than asked means the body ended: nothing is left to ask the input for.
    return new BufferedInput(start, start.length < size ? null : input);
  }

  private constructor(start: Uint8Array, rest: Input | null) {
    super();
    this.#start = start.length > 0 ? start : null;
    this.#rest = rest;
  }

  protected async next(max: number): Promise<Uint8Array | null> {
    const start = this.#start;
    if (start !== null) {
      this.#start = null;
      if (start.length <= max) return start;
      this.keep(start.subarray(max));
      return start.subarray(0, max);
    }
    if (this.#rest === null) return null;
    const piece = await this.#rest.read(Math.min(max, 64 * 1024));
    return piece.length > 0 ? piece : null;
  }
}
