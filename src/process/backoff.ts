// Failed boots in a row and the wait before the next try, for every pool of processes: a
// broken app must not be restarted in a tight loop, and a fixed one must come back at once.

const FIRST_MS = 100;
const MAX_MS = 5000;

export class BootFailures {
  #count = 0;
  /** How many failures in a row are forgiven before the waits begin. */
  readonly #free: number;

  constructor(free = 0) {
    this.#free = free;
  }

  /** Failures since the last boot that succeeded. */
  get count(): number {
    return this.#count;
  }

  /** Counts one more failure and returns the wait before the next try, in ms. */
  failed(): number {
    this.#count++;
    const over = this.#count - this.#free;
    return over <= 0 ? 0 : Math.min(MAX_MS, FIRST_MS * 2 ** (over - 1));
  }

  /** A boot succeeded (or a try was asked for on purpose): start afresh. */
  reset(): void {
    this.#count = 0;
  }
}
