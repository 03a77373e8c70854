// Minimum data rates for a request body and for a response, as Kestrel enforces them: time
// counts only while the server waits on the client, and once a grace period has passed the
// bytes moved must keep up with a floor rate. A single wait with no byte at all is bounded too.

/** What a transfer must keep up. Zero turns a rule off. */
export interface RateRule {
  /** Bytes per second, averaged over the time spent waiting on the client. */
  minRate: number;
  /** Waiting time before the rate applies (TCP slow start, a client's first hiccup). */
  graceMs: number;
  /** The longest single wait that moves no byte. */
  stallMs: number;
}

/** Why a transfer was cut off; `Ok` while it keeps up. */
export const enum RateVerdict {
  Ok,
  /** One wait passed `stallMs` with nothing moved. */
  Stalled,
  /** Past the grace period, the average fell below `minRate`. */
  TooSlow,
}

/**
 * The clock of one transfer. The owner calls `begin()` when it starts waiting on the client
 * and `end()` with the bytes that wait brought; the sweeper calls `check()`.
 */
export class TransferClock {
  readonly #rule: RateRule;
  /** Time spent in waits that have ended. */
  #waitedMs = 0;
  /** When the wait in progress began, or -1. */
  #waitingSince = -1;
  #bytes = 0;

  constructor(rule: RateRule) {
    this.#rule = rule;
  }

  /** Bytes moved so far. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Whether a wait is in progress. */
  get waiting(): boolean {
    return this.#waitingSince >= 0;
  }

  /** Total waiting time at `now`, the wait in progress included. */
  waitedMs(now: number): number {
    return this.#waitedMs + (this.#waitingSince >= 0 ? now - this.#waitingSince : 0);
  }

  begin(now: number): void {
    if (this.#waitingSince < 0) this.#waitingSince = now;
  }

  end(now: number, bytes: number): void {
    if (this.#waitingSince >= 0) this.#waitedMs += now - this.#waitingSince;
    this.#waitingSince = -1;
    this.#bytes += bytes;
  }

  /**
   * Counts afresh for a new response on the same connection, so bytes moved for earlier ones
   * buy no slack; not in the middle of a wait, which would reset a stalled one's time.
   */
  restart(): void {
    if (this.#waitingSince >= 0) return;
    this.#waitedMs = 0;
    this.#bytes = 0;
  }

  /** Counts bytes that came without a wait (already buffered, or read ahead). */
  add(bytes: number): void {
    this.#bytes += bytes;
  }

  /** Only a transfer that is waiting can be too slow: a server that is not asking never is. */
  check(now: number): RateVerdict {
    if (this.#waitingSince < 0) return RateVerdict.Ok;
    const rule = this.#rule;
    if (rule.stallMs > 0 && now - this.#waitingSince > rule.stallMs) return RateVerdict.Stalled;
    const waited = this.#waitedMs + now - this.#waitingSince;
    if (rule.minRate > 0 && waited > rule.graceMs && this.#bytes < rule.minRate * waited / 1000) {
      return RateVerdict.TooSlow;
    }
    return RateVerdict.Ok;
  }

  /** One line for the log: what moved in how long. */
  describe(now: number): string {
    return `${this.#bytes} bytes in ${(this.waitedMs(now) / 1000).toFixed(1)} s of waiting`;
  }
}
