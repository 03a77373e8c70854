// The framed protocol between an isolating master and its per-request children
// (docs/isolation.md), spoken over a unix socket of the master's (channel.ts). A frame is a
// type byte, a 4-byte big-endian payload length and the payload. Bodies travel as a run of
// frames of at most 64 KiB, each write awaited, so neither side ever holds a whole body and a
// slow reader slows the writer down through the socket.

/**
 * The environment variable that tells a child started as this program again (a compiled
 * binary, or an entry other than main.ts) how to load the app: JSON, a ChildLoad. A child
 * started with least privilege gets the same JSON as its one argument instead.
 */
export const CHILD_LOAD_ENV = "TSGI_CHILD_APP";

/** What a child needs to load the app and reach its master, without parsing a command line. */
export interface ChildLoad {
  spec: string;
  appFactory: boolean;
  validate: boolean;
  /**
   * The master's socket (channel.ts), and the token this child says on it first; without one
   * here, the token comes on the child's stdin (a narrowed child: its arguments are readable in
   * /proc by whatever may read /proc, its stdin pipe is not).
   */
  socket: string;
  token?: string;
  /** Grants the child had only to connect; revoked before the app is imported. */
  revoke: Deno.PermissionDescriptor[];
}

/** The frame types. Master → child: START, REQUEST_HEAD, BODY, BODY_END, ERROR. */
export const FRAME = {
  /** child → master: the app is imported, send the request. Empty. */
  READY: 1,
  /** master → child: the request, as JSON (RequestHead). */
  REQUEST_HEAD: 2,
  /** master → child: request body bytes. */
  BODY: 3,
  /** master → child: the request body ended. Empty. */
  BODY_END: 4,
  /** child → master: the response status and headers, as JSON (ResponseHead). */
  RESPONSE_HEAD: 5,
  /** child → master: response body bytes. */
  RESPONSE_BODY: 6,
  /** child → master: the response is complete; the child exits next. Empty. */
  RESPONSE_END: 7,
  /** child → master: the app failed; UTF-8 message. master → child: the request body failed. */
  ERROR: 8,
  /** child → master: the app asked for the request body: start sending it. Empty. */
  PULL: 9,
  /**
   * master → child: import the app now. Sent once the child's connection is matched and its
   * memory cgroup holds it, so that nothing the app allocates escapes the cap. Empty.
   */
  START: 10,
} as const;

/** The highest frame type; a higher one is a broken protocol. */
const LAST_TYPE = FRAME.START;

export type FrameType = typeof FRAME[keyof typeof FRAME];

/** Largest payload of one body frame: bodies are cut into frames this size or smaller. */
export const BODY_FRAME_MAX = 64 * 1024;
/** Largest payload of any frame (a request or response head in JSON). */
export const FRAME_MAX = 16 * 1024 * 1024;
const HEADER_BYTES = 5;
const EMPTY = new Uint8Array(0);

/** The request as REQUEST_HEAD carries it. */
export interface RequestHeadFrame {
  /** The environ's serialisable entries: CGI variables, HTTP_* fields, scalar extras. */
  environ: Record<string, string | number | boolean>;
  /** Whether the request has a body at all (if not, the child never sends PULL). */
  body: boolean;
  /** With tracing on: the master's server span, as traceparent/tracestate, for the app. */
  trace?: Record<string, string>;
}

/** The response head as RESPONSE_HEAD carries it. */
export interface ResponseHeadFrame {
  status: string;
  headers: [string, string][];
}

export interface Frame {
  type: number;
  payload: Uint8Array;
}

/** The peer broke the protocol: a truncated frame, an unknown type, an oversized length. */
export class FrameError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "FrameError";
  }
}

/** One frame's bytes, header and payload in a single buffer (one write, one syscall). */
export function encodeFrame(type: FrameType, payload: Uint8Array = EMPTY): Uint8Array {
  const bytes = new Uint8Array(HEADER_BYTES + payload.length);
  bytes[0] = type;
  new DataView(bytes.buffer).setUint32(1, payload.length);
  bytes.set(payload, HEADER_BYTES);
  return bytes;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeJson(type: FrameType, value: unknown): Uint8Array {
  return encodeFrame(type, encoder.encode(JSON.stringify(value)));
}

export function decodeJson<T>(frame: Frame): T {
  return JSON.parse(decoder.decode(frame.payload)) as T;
}

export function decodeText(frame: Frame): string {
  return decoder.decode(frame.payload);
}

/** Bytes to read frames from: a stream, or a connection read with read(). */
export interface ByteSource {
  /** The next bytes; null at the end. */
  read(): Promise<Uint8Array | null>;
  cancel(): Promise<void>;
}

/** Bytes to write frames to. */
export interface ByteSink {
  write(bytes: Uint8Array): Promise<void>;
  close(): Promise<void>;
  abort(): Promise<void>;
}

/** A ReadableStream as a ByteSource. */
export function streamSource(stream: ReadableStream<Uint8Array>): ByteSource {
  const reader = stream.getReader();
  return {
    read: () => reader.read().then((r) => (r.done ? null : r.value)),
    cancel: () => reader.cancel().catch(() => {}),
  };
}

/**
 * A file or connection read with read() as a ByteSource. A child reads its connection this
 * way: making the stream costs it start-up time, which is each isolated request's cost.
 */
export function fileSource(file: { read(buf: Uint8Array): Promise<number | null> }): ByteSource {
  let ended = false;
  return {
    async read() {
      if (ended) return null;
      const buf = new Uint8Array(BODY_FRAME_MAX + HEADER_BYTES);
      const n = await file.read(buf);
      if (n === null) ended = true;
      return n === null ? null : buf.subarray(0, n);
    },
    cancel() {
      ended = true;
      return Promise.resolve();
    },
  };
}

/** A WritableStream as a ByteSink. */
export function streamSink(stream: WritableStream<Uint8Array>): ByteSink {
  const writer = stream.getWriter();
  return {
    write: (bytes) => writer.write(bytes),
    close: () => writer.close(),
    abort: () => writer.abort(),
  };
}

/** A file or connection written with write() as a ByteSink; see fileSource(). */
export function fileSink(
  file: { write(bytes: Uint8Array): Promise<number>; close(): void },
): ByteSink {
  const close = () => {
    try {
      file.close();
    } catch {
      // Closed already.
    }
    return Promise.resolve();
  };
  return {
    async write(bytes) {
      for (let done = 0; done < bytes.length;) done += await file.write(bytes.subarray(done));
    },
    close,
    abort: close,
  };
}

/**
 * Reads frames off a byte source, as they come, whatever its own chunking. A stream is told
 * from a ByteSource by its shape, not with `instanceof ReadableStream`: Deno loads its streams
 * on the first touch of that global, 2 to 3 ms of a child's start that it never needs.
 */
export class FrameReader {
  readonly #source: ByteSource;
  /** Bytes read but not yet consumed: chunks[0] from `offset` on, then the rest whole. */
  #chunks: Uint8Array[] = [];
  #offset = 0;
  #available = 0;
  #ended = false;

  constructor(source: ReadableStream<Uint8Array> | ByteSource) {
    this.#source = "getReader" in source ? streamSource(source) : source;
  }

  /** The next frame; null when the stream ends cleanly between frames. */
  async next(): Promise<Frame | null> {
    if (!(await this.#want(HEADER_BYTES))) {
      if (this.#available === 0) return null;
      throw new FrameError(`Stream ended inside a frame header (${this.#available} bytes)`);
    }
    const header = this.#take(HEADER_BYTES);
    const type = header[0];
    const length = new DataView(header.buffer, header.byteOffset, HEADER_BYTES).getUint32(1);
    if (type < FRAME.READY || type > LAST_TYPE) {
      throw new FrameError(`Unknown frame type ${type}`);
    }
    if (length > FRAME_MAX) throw new FrameError(`Frame of ${length} bytes is too large`);
    if (!(await this.#want(length))) {
      throw new FrameError(`Stream ended inside a frame (${this.#available} of ${length} bytes)`);
    }
    return { type, payload: length === 0 ? EMPTY : this.#take(length) };
  }

  /** Stops reading and releases the stream (its descriptor is closed). */
  async cancel(): Promise<void> {
    this.#ended = true;
    this.#chunks = [];
    this.#available = 0;
    await this.#source.cancel().catch(() => {});
  }

  /** Reads until `n` bytes are buffered; false when the stream ends first. */
  async #want(n: number): Promise<boolean> {
    while (this.#available < n) {
      if (this.#ended) return false;
      const value = await this.#source.read();
      if (value === null) {
        this.#ended = true;
        return false;
      }
      if (value.length === 0) continue;
      this.#chunks.push(value);
      this.#available += value.length;
    }
    return true;
  }

  /** `n` buffered bytes: a view when one chunk holds them, else a copy across chunks. */
  #take(n: number): Uint8Array {
    this.#available -= n;
    const first = this.#chunks[0];
    if (first.length - this.#offset >= n) {
      const out = first.subarray(this.#offset, this.#offset + n);
      this.#offset += n;
      if (this.#offset === first.length) {
        this.#chunks.shift();
        this.#offset = 0;
      }
      return out;
    }
    const out = new Uint8Array(n);
    let filled = 0;
    while (filled < n) {
      const chunk = this.#chunks[0];
      const piece = Math.min(chunk.length - this.#offset, n - filled);
      out.set(chunk.subarray(this.#offset, this.#offset + piece), filled);
      filled += piece;
      this.#offset += piece;
      if (this.#offset === chunk.length) {
        this.#chunks.shift();
        this.#offset = 0;
      }
    }
    return out;
  }
}

/**
 * Writes frames to a byte stream in call order (a stream told by its shape: see FrameReader).
 * Each write's promise resolves when the bytes are in the pipe, which is the backpressure; a
 * failed write fails every later one.
 */
export class FrameWriter {
  readonly #writer: ByteSink;
  #closed = false;
  #last: Promise<void> = Promise.resolve();

  constructor(sink: WritableStream<Uint8Array> | ByteSink) {
    this.#writer = "getWriter" in sink ? streamSink(sink) : sink;
  }

  write(frame: Uint8Array): Promise<void> {
    if (this.#closed) return Promise.reject(new FrameError("Frame channel is closed"));
    // A stream keeps writes in order itself; a file sink needs them chained.
    const write = this.#last.then(() => this.#writer.write(frame));
    this.#last = write.catch(() => {});
    return write;
  }

  /** Body bytes as frames of at most BODY_FRAME_MAX, each write awaited. */
  async writeBody(type: FrameType, bytes: Uint8Array): Promise<void> {
    for (let at = 0; at < bytes.length; at += BODY_FRAME_MAX) {
      await this.write(encodeFrame(type, bytes.subarray(at, at + BODY_FRAME_MAX)));
    }
  }

  /** Closes the stream after what is queued; never throws. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#last;
    await this.#writer.close().catch(() => {});
  }

  /** Closes the stream at once, dropping what is queued; never throws. */
  async abort(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#writer.abort().catch(() => {});
  }
}
