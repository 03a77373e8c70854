// A WebSocket's outgoing frames, in order, one write at a time. Each frame is copied once, at
// send() (the snapshot the WebSocket API promises), header and payload together into pooled
// chunks: frames sent while a write is out, or in the same tick, leave together in the next
// write, and a large frame costs a copy into reused memory rather than a fresh allocation.

import { BufferPool, connectionBuffers } from "./buffer_pool.ts";
import { frameHeaderSize, writeFrameHeader } from "../http/websocket_frames.ts";
import type { Writer } from "./output.ts";

/**
 * Chunks for the bytes of a large frame (at most 8 kept): a message of a power of two up to
 * 1 MiB leaves with its header in one write, not with a few bytes trailing in a second.
 */
const largeChunks = new BufferPool(1024 * 1024 + 16, 8);

/** Bytes copied in, not yet written; `sealed` once its write has begun (nothing more is added). */
interface Chunk {
  buf: Uint8Array;
  fill: number;
  sealed: boolean;
  pool: BufferPool;
}

/** A frame made when its turn comes (a pong for the latest ping, a Blob's bytes); `size` counts. */
interface Deferred {
  make: () => Uint8Array | Promise<Uint8Array>;
  size: number;
}

type Entry = Chunk | Deferred;

/** The socket's side of the connection: writes that may each take part of what they are given. */
export type { Writer };

export class FrameOutput {
  readonly #entries: Entry[] = [];
  #writer: Writer | null = null;
  #queued = 0;
  #draining = false;
  #stopped = false;
  #idle: (() => void)[] = [];
  readonly #onFailure: () => void;
  /** What the write out was given: the first entry's bytes. */
  #writingBytes: Uint8Array = new Uint8Array(0);

  /** `onFailure`: a write failed (what was queued is dropped). */
  constructor(onFailure: () => void) {
    this.#onFailure = onFailure;
  }

  /** Bytes queued and not yet written, headers included. */
  get queued(): number {
    return this.#queued;
  }

  /** Writing starts: frames queued before are written first. */
  start(writer: Writer): void {
    this.#writer = writer;
    this.#schedule();
  }

  /** Copies a whole message's frame in: its header, then `payload`. */
  frame(opcode: number, payload: Uint8Array): void {
    if (this.#stopped) return;
    const n = payload.length;
    const headerSize = frameHeaderSize(n);
    this.#queued += headerSize + n;
    let tail = this.#room(headerSize, headerSize + n);
    tail.fill += writeFrameHeader(tail.buf, tail.fill, opcode, n);
    for (let at = 0; at < n;) {
      if (tail.fill === tail.buf.length) tail = this.#room(1, n - at);
      const take = Math.min(n - at, tail.buf.length - tail.fill);
      tail.buf.set(at === 0 && take === n ? payload : payload.subarray(at, at + take), tail.fill);
      tail.fill += take;
      at += take;
    }
    this.#schedule();
  }

  /** Queues a frame made when its turn comes; `size` is what it counts until then. */
  deferred(make: () => Uint8Array | Promise<Uint8Array>, size: number): void {
    if (this.#stopped) return;
    this.#queued += size;
    this.#entries.push({ make, size });
    this.#schedule();
  }

  /** Resolves once nothing is queued or being written (at once when stopped). */
  drained(): Promise<void> {
    if (!this.#draining && (this.#entries.length === 0 || this.#stopped)) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  /** The connection is gone: what is queued is dropped, and nothing more is taken. */
  stop(): void {
    this.#stopped = true;
    if (!this.#draining) this.#release();
  }

  /** The tail chunk when it has `need` bytes free, else a new one, chosen for `rest` more. */
  #room(need: number, rest: number): Chunk {
    const last = this.#entries.at(-1);
    if (
      last !== undefined && "buf" in last && !last.sealed && last.buf.length - last.fill >= need
    ) {
      return last;
    }
    const pool = rest > connectionBuffers.size ? largeChunks : connectionBuffers;
    const chunk: Chunk = { buf: pool.take(), fill: 0, sealed: false, pool };
    this.#entries.push(chunk);
    return chunk;
  }

  /** Writing begins in a microtask: what the app sends in this tick joins the same write. */
  #schedule(): void {
    if (this.#draining || this.#writer === null || this.#entries.length === 0) return;
    this.#draining = true;
    queueMicrotask(this.#next);
  }

  /**
   * Writes the first entry; its end writes the next. Plain callbacks, not an async loop: a
   * small message costs the write's promise and nothing more.
   */
  readonly #next = (): void => {
    const entry = this.#entries[0];
    if (entry === undefined || this.#stopped) return this.#settle();
    if (!("buf" in entry)) {
      this.#writeLater(entry).then(this.#next, this.#failed);
      return;
    }
    entry.sealed = true;
    this.#writingBytes = entry.buf.subarray(0, entry.fill);
    (this.#writer as Writer).write(this.#writingBytes).then(this.#wrote, this.#failed);
  };

  /** `n` bytes of the chunk being written went out (most writes take everything at once). */
  readonly #wrote = (n: number): void => {
    const bytes = this.#writingBytes;
    if (n < bytes.length) {
      writeAll(this.#writer as Writer, bytes.subarray(n)).then(() => this.#wrote(bytes.length))
        .catch(this.#failed);
      return;
    }
    const chunk = this.#entries[0] as Chunk;
    this.#queued -= chunk.fill;
    chunk.pool.give(chunk.buf);
    this.#entries.shift();
    this.#next();
  };

  readonly #failed = (): void => {
    this.#stopped = true;
    this.#onFailure();
    this.#settle();
  };

  /** A deferred frame: made, written whole, uncounted. */
  async #writeLater(entry: Deferred): Promise<void> {
    await writeAll(this.#writer as Writer, await entry.make());
    this.#queued -= entry.size;
    this.#entries.shift();
  }

  /** Nothing more to write now: those waiting for the drain are told. */
  #settle(): void {
    this.#draining = false;
    if (this.#stopped) this.#release();
    if (this.#idle.length > 0) { for (const resolve of this.#idle.splice(0)) resolve(); }
  }

  /** Drops what is queued; chunks no write holds go back to their pools. */
  #release(): void {
    for (const entry of this.#entries.splice(0)) {
      if ("buf" in entry) entry.pool.give(entry.buf);
    }
    this.#queued = 0;
  }
}

async function writeAll(writer: Writer, bytes: Uint8Array): Promise<void> {
  for (let done = 0; done < bytes.length;) done += await writer.write(bytes.subarray(done));
}
