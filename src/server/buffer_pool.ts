// Reuses buffers of one size. Each new connection would otherwise allocate two fresh 16 KiB
// buffers, and under a stream of short connections that churn is what the collector ends up
// spending its time on; a WebSocket's outgoing frames are copied into pooled buffers for the
// same reason (a fresh megabyte costs a collection's share, a reused one a copy).

/** Buffers of one size: the ones given back, up to a count, are handed out again. */
export class BufferPool {
  readonly size: number;
  readonly #max: number;
  readonly #free: Uint8Array[] = [];

  constructor(size: number, max: number) {
    this.size = size;
    this.#max = max;
  }

  /** A buffer of `size` bytes, reused when one is free. Its contents are whatever they were. */
  take(): Uint8Array {
    return this.#free.pop() ?? new Uint8Array(this.size);
  }

  /** Gives a buffer back once nothing refers to it any more; other sizes are dropped. */
  give(buf: Uint8Array): void {
    if (buf.byteLength === this.size && buf.byteOffset === 0 && this.#free.length < this.#max) {
      this.#free.push(buf);
    }
  }
}

/**
 * What a connection's buffer becomes once it went back to the pool: empty, so nothing can be
 * written into it, and shared, since every closed connection would otherwise make its own.
 */
export const RELEASED: Uint8Array = new Uint8Array(0);

/** The size of the connections' buffers. */
export const POOLED_SIZE = 16 * 1024;
/** The connections' buffers: at most 256 idle ones are kept (4 MiB). */
export const connectionBuffers = new BufferPool(POOLED_SIZE, 256);

/** A POOLED_SIZE buffer, reused when one is free. Its contents are whatever they were. */
export function takeBuffer(): Uint8Array {
  return connectionBuffers.take();
}

/** Gives a connection buffer back once nothing refers to it any more. */
export function giveBuffer(buf: Uint8Array): void {
  connectionBuffers.give(buf);
}
