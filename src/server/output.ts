// The connection's write side: small pieces (heads, small chunks, pipelined responses) are
// gathered in one reused buffer and leave in one write; large bodies go out as they are.

/** What the output writes to: a Deno.Conn, or anything with the same write. */
export interface Writer {
  write(bytes: Uint8Array): Promise<number>;
}

/** Raised when writing to the client fails: it has gone, and nothing more can be sent. */
export class WriteFailedError extends Error {
  constructor(cause: unknown) {
    super(`Writing to the client failed: ${(cause as Error)?.message ?? String(cause)}`);
    this.name = "WriteFailedError";
  }
}

import { giveBuffer, RELEASED, takeBuffer } from "./buffer_pool.ts";
import { coarseNow } from "./clock.ts";
import { type RateRule, TransferClock } from "./data_rate.ts";

const RESOLVED = Promise.resolve();
const NO_RATE: RateRule = { minRate: 0, graceMs: 0, stallMs: 0 };
/** Past this a chunk is written directly rather than copied into the buffer. */
const COPY_LIMIT = 64 * 1024;

export class OutputBuffer {
  readonly #writer: Writer;
  #buf: Uint8Array = takeBuffer();
  #spare: Uint8Array | null = null;
  #len = 0;
  #inFlight: Promise<void> | null = null;
  /** Writes queued and not finished; #inFlight is the last of them. */
  #queued = 0;
  #failure: WriteFailedError | null = null;
  /** Bytes handed to the socket so far. */
  written = 0;
  /** Time spent waiting on the socket, and what it took: a slow reader shows here. */
  readonly clock: TransferClock;

  constructor(writer: Writer, rule: RateRule = NO_RATE) {
    this.#writer = writer;
    this.clock = new TransferClock(rule);
  }

  /** Bytes buffered and not yet written. */
  get length(): number {
    return this.#len;
  }

  /**
   * Appends text of code points below 256, one byte each: ASCII, or Latin-1 as HTTP fields
   * are (RFC 9110 §5.5). A plain loop beats the encoder's call for a response head's size.
   */
  appendLatin1(s: string): void {
    const n = s.length;
    this.#reserve(n);
    const buf = this.#buf;
    let len = this.#len;
    for (let i = 0; i < n; i++) buf[len++] = s.charCodeAt(i);
    this.#len = len;
  }

  /** Appends text known to be ASCII (a small body), one byte a character, as append() would. */
  appendAscii(s: string): Promise<void> | undefined {
    this.appendLatin1(s);
    return this.#len >= COPY_LIMIT ? this.flush() : undefined;
  }

  /** Makes room for `n` more bytes, so that the put* calls that follow need no checks. */
  reserve(n: number): void {
    if (this.#len + n > this.#buf.length) this.#grow(this.#len + n);
  }

  /** Like appendLatin1(), into room made by reserve(). */
  putLatin1(s: string): void {
    const buf = this.#buf;
    let len = this.#len;
    for (let i = 0; i < s.length; i++) buf[len++] = s.charCodeAt(i);
    this.#len = len;
  }

  /** Puts a few bytes (a constant) into room made by reserve(). */
  putBytes(bytes: Uint8Array): void {
    const buf = this.#buf;
    let len = this.#len;
    for (let i = 0; i < bytes.length; i++) buf[len++] = bytes[i];
    this.#len = len;
  }

  /** Puts a non-negative integer in decimal into room made by reserve(). */
  putDecimal(n: number): void {
    this.putLatin1(String(n));
  }

  /** Appends bytes; a large piece flushes what is buffered and is written on its own. */
  append(bytes: Uint8Array): Promise<void> | undefined {
    if (bytes.length <= COPY_LIMIT) {
      this.#reserve(bytes.length);
      this.#buf.set(bytes, this.#len);
      this.#len += bytes.length;
      return this.#len >= COPY_LIMIT ? this.flush() : undefined;
    }
    if (this.#len > 0) this.#startFlush();
    this.#queue(bytes, null);
    return this.flush();
  }

  /**
   * Writes everything buffered; resolves when it, and every write before it, is done, and
   * rejects with WriteFailedError when any of them failed. Writes never overlap: each starts
   * when the one before has finished, and what is appended meanwhile goes into another buffer.
   */
  flush(): Promise<void> {
    if (this.#len > 0) this.#startFlush();
    const inFlight = this.#inFlight;
    if (inFlight !== null) return inFlight.then(this.#throwIfFailed);
    return this.#failure ? Promise.reject(this.#failure) : RESOLVED;
  }

  /**
   * Starts writing what is buffered without waiting for it, so the next read is already on its
   * way. Returns a promise only when an earlier write is still unfinished: the caller should
   * wait on it, so a client that does not read cannot make the server buffer without end. The
   * promise never rejects; a failure shows in `failure` and at the next flush().
   */
  flushBehind(): Promise<void> | undefined {
    const backlog = this.#inFlight;
    if (this.#len > 0) this.#startFlush();
    return backlog ?? undefined;
  }

  /** The first write failure, if any: the connection is of no further use then. */
  get failure(): Error | null {
    return this.#failure;
  }

  readonly #throwIfFailed = (): void => {
    if (this.#failure) throw this.#failure;
  };

  #startFlush(): void {
    const full = this.#buf;
    const len = this.#len;
    this.#buf = this.#spare ?? takeBuffer();
    this.#spare = null;
    this.#len = 0;
    this.#queue(full.subarray(0, len), full);
  }

  /** Queues a write behind the one in flight. `recycle` is the buffer to reuse afterwards. */
  #queue(bytes: Uint8Array, recycle: Uint8Array | null): void {
    this.#queued++;
    const previous = this.#inFlight;
    this.#inFlight = previous === null && this.#failure === null
      ? this.#writeAlone(bytes, recycle)
      : this.#write(previous, bytes, recycle);
  }

  /**
   * A write with nothing ahead of it, the common case: one promise from the socket to the
   * caller, no async frame (whose allocations every keep-alive response would pay). Only one
   * such write is in flight at a time, so its bytes wait in fields, not a closure.
   */
  #writeAlone(bytes: Uint8Array, recycle: Uint8Array | null): Promise<void> {
    this.#aloneBytes = bytes;
    this.#aloneRecycle = recycle;
    this.clock.begin(coarseNow());
    return this.#writer.write(bytes).then(this.#wroteAlone, this.#aloneFailed);
  }

  #aloneBytes: Uint8Array | null = null;
  #aloneRecycle: Uint8Array | null = null;

  readonly #wroteAlone = (n: number): Promise<void> | undefined => {
    this.clock.end(coarseNow(), n);
    const bytes = this.#aloneBytes as Uint8Array;
    const recycle = this.#aloneRecycle;
    this.#aloneBytes = this.#aloneRecycle = null;
    this.written += n;
    // A short write: the rest goes the general way, which finishes the bookkeeping.
    if (n < bytes.length) return this.#write(null, bytes.subarray(n), recycle);
    this.#finished(recycle);
  };

  readonly #aloneFailed = (error: unknown): void => {
    this.clock.end(coarseNow(), 0);
    this.#failure = new WriteFailedError(error);
    const recycle = this.#aloneRecycle;
    this.#aloneBytes = this.#aloneRecycle = null;
    this.#finished(recycle);
  };

  /** A queued write is done: its buffer is kept for reuse, and the queue may be empty. */
  #finished(recycle: Uint8Array | null): void {
    // A buffer grown for one large head should not stay large for the connection's life.
    if (recycle !== null && recycle.length <= 4 * COPY_LIMIT) this.#spare = recycle;
    if (--this.#queued === 0) this.#inFlight = null;
  }

  /** One queued write. It never rejects: the failure is kept, and every later write skipped. */
  async #write(
    previous: Promise<void> | null,
    bytes: Uint8Array,
    recycle: Uint8Array | null,
  ): Promise<void> {
    if (previous !== null) await previous;
    let done = 0;
    const clock = this.clock;
    try {
      while (this.#failure === null && done < bytes.length) {
        clock.begin(coarseNow());
        const n = await this.#writer.write(done === 0 ? bytes : bytes.subarray(done));
        clock.end(coarseNow(), n);
        done += n;
      }
    } catch (error) {
      clock.end(coarseNow(), 0);
      this.#failure = new WriteFailedError(error);
    }
    this.written += done;
    this.#finished(recycle);
  }

  /** Hands the buffers back to the pool; the output must not be used afterwards. */
  release(): void {
    if (this.#inFlight !== null) return;
    giveBuffer(this.#buf);
    if (this.#spare) giveBuffer(this.#spare);
    this.#spare = null;
    // Whatever is written after this (an app still running) lands in memory of its own.
    this.#buf = RELEASED;
    this.#len = 0;
  }

  #reserve(n: number): void {
    if (this.#len + n > this.#buf.length) this.#grow(this.#len + n);
  }

  #grow(need: number): void {
    // From a released (empty) buffer too: doubling nothing would never reach `need`.
    let size = Math.max(this.#buf.length * 2, 256);
    while (size < need) size *= 2;
    const grown = new Uint8Array(size);
    grown.set(this.#buf.subarray(0, this.#len));
    this.#buf = grown;
  }
}
