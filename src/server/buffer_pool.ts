// Reuses the connections' 16 KiB buffers. Each new connection would otherwise allocate two
// fresh ones, and under a stream of short connections that churn is what the collector ends
// up spending its time on.

/** The size every pooled buffer has; buffers of other sizes are not kept. */
export const POOLED_SIZE = 16 * 1024;
/** At most this many idle buffers are kept (4 MiB). */
const MAX_POOLED = 256;

const free: Uint8Array[] = [];

/** A POOLED_SIZE buffer, reused when one is free. Its contents are whatever they were. */
export function takeBuffer(): Uint8Array {
  return free.pop() ?? new Uint8Array(POOLED_SIZE);
}

/** Gives a buffer back once nothing refers to it any more; other sizes are dropped. */
export function giveBuffer(buf: Uint8Array): void {
  if (buf.byteLength === POOLED_SIZE && buf.byteOffset === 0 && free.length < MAX_POOLED) {
    free.push(buf);
  }
}
