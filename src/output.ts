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

const INITIAL_SIZE = 16 * 1024;
/** Past this a chunk is written directly rather than copied into the buffer. */
const COPY_LIMIT = 64 * 1024;

export class OutputBuffer {
  readonly #writer: Writer;
  #buf: Uint8Array = new Uint8Array(INITIAL_SIZE);
  #spare: Uint8Array | null = null;
  #len = 0;
  #inFlight: Promise<void> | null = null;
  /** Bytes handed to the socket so far. */
  written = 0;

  constructor(writer: Writer) {
    this.#writer = writer;
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
    return this.#flushThen(bytes);
  }

  /**
   * Writes everything buffered. Writes never overlap: a flush waits for the one in flight,
   * and what is appended meanwhile goes into the other of two buffers.
   */
  async flush(): Promise<void> {
    while (this.#inFlight) await this.#inFlight;
    if (this.#len === 0) return;
    const full = this.#buf.subarray(0, this.#len);
    this.#buf = this.#spare ?? new Uint8Array(INITIAL_SIZE);
    this.#spare = full.length > 4 * COPY_LIMIT ? null : new Uint8Array(full.buffer);
    this.#len = 0;
    const write = this.#writeAll(full);
    this.#inFlight = write;
    try {
      await write;
    } finally {
      this.#inFlight = null;
    }
  }

  async #flushThen(bytes: Uint8Array): Promise<void> {
    await this.flush();
    while (this.#inFlight) await this.#inFlight;
    const write = this.#writeAll(bytes);
    this.#inFlight = write;
    try {
      await write;
    } finally {
      this.#inFlight = null;
    }
  }

  async #writeAll(bytes: Uint8Array): Promise<void> {
    let done = 0;
    try {
      while (done < bytes.length) {
        done += await this.#writer.write(done === 0 ? bytes : bytes.subarray(done));
      }
    } catch (error) {
      throw new WriteFailedError(error);
    } finally {
      this.written += done;
    }
  }

  #reserve(n: number): void {
    if (this.#len + n > this.#buf.length) this.#grow(this.#len + n);
  }

  #grow(need: number): void {
    let size = this.#buf.length * 2;
    while (size < need) size *= 2;
    const grown = new Uint8Array(size);
    grown.set(this.#buf.subarray(0, this.#len));
    this.#buf = grown;
  }
}
