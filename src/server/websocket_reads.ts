// What a WebSocket reads into. An idle socket has a read in flight all its life, and the buffer
// of that read is what it costs most: a small one of its own while messages come one at a
// time (a large frame's rest is read straight into its message anyway), a pooled 16 KiB one
// only while reads come full.

import { giveBuffer, takeBuffer } from "./buffer_pool.ts";

/** The idle socket's read: a small message whole, a large one's header and first bytes. */
const IDLE_READ = 2048;

export class SocketReads {
  readonly #small = new Uint8Array(IDLE_READ);
  #large: Uint8Array | null = null;

  /** The buffer for the next read. */
  get current(): Uint8Array {
    return this.#large ?? this.#small;
  }

  /**
   * `n` bytes were read into `current` and consumed: a full small read takes the pooled buffer
   * for the next ones, a short read into the pooled buffer gives it back.
   */
  read(n: number): void {
    if (this.#large === null) {
      if (n === IDLE_READ) this.#large = takeBuffer();
    } else if (n < IDLE_READ) this.release();
  }

  /** The pooled buffer goes back, if held. */
  release(): void {
    if (this.#large !== null) giveBuffer(this.#large);
    this.#large = null;
  }
}
