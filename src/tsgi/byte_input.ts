// The read/readline/readlines/iteration contract of `tsgi.input` (docs/tsgi.md), written once over
// any source of byte chunks: the socket's body (input.ts) and a ReadableStream
// (stream_input.ts) only say how to get the next chunk.

import type { Input } from "./types.ts";

export const EMPTY: Uint8Array = new Uint8Array(0);
const LF = 0x0a;
/** "As much as there is": the cap on one piece when no size was asked for. */
const WHOLE = 1 << 30;

export abstract class ByteInput implements Input {
  /** Bytes taken from the source but not yet given to the app (after a short read). */
  #pending: Uint8Array = EMPTY;

  /** At most `max` bytes of the source's next chunk; null at the end of the body. */
  protected abstract next(max: number): Promise<Uint8Array | null>;

  /** How many bytes taken from the source still wait to be read. */
  protected get pendingBytes(): number {
    return this.#pending.length;
  }

  /** Whether bytes taken from the source still wait to be read. */
  protected get hasPending(): boolean {
    return this.#pending.length > 0;
  }

  /** Moves pending bytes, as many as fit, to the start of `dest`; how many it moved. */
  protected movePendingInto(dest: Uint8Array): number {
    const pending = this.#pending;
    const n = Math.min(pending.length, dest.length);
    dest.set(n === pending.length ? pending : pending.subarray(0, n));
    this.#pending = n === pending.length ? EMPTY : pending.subarray(n);
    return n;
  }

  /** Drops the bytes taken and not read. */
  protected dropPending(): void {
    this.#pending = EMPTY;
  }

  /** Up to `size` bytes, fewer only at the end; everything left when `size` is omitted. */
  async read(size?: number): Promise<Uint8Array> {
    const limit = limitOf(size);
    const first = await this.#take(Math.min(limit, WHOLE));
    if (first === null) return EMPTY;
    if (first.length >= limit) return first;
    // However the body was cut (a client can send it a byte per chunk), the app gets one
    // array, gathered at no more than twice its size, never a list of slivers.
    const expected = this.expectedBytes();
    const most = expected < 0 ? limit : Math.min(limit, first.length + expected);
    const gathered = new Gatherer(first, most);
    while (gathered.length < limit) {
      const piece = await this.#take(Math.min(limit - gathered.length, WHOLE));
      if (piece === null) break;
      gathered.add(piece);
    }
    return gathered.bytes();
  }

  /**
   * The next piece, at most `buf.length` bytes, copied to the start of `buf`; 0 at the end.
   * Sources that can put bytes straight into the caller's memory do better (input.ts).
   */
  async readInto(buf: Uint8Array): Promise<number> {
    checkReadInto(buf);
    const piece = await this.#take(buf.length);
    if (piece === null) return 0;
    buf.set(piece);
    return piece.length;
  }

  /**
   * The next piece as it came, at most `max` bytes; empty at the end. Not part of the TSGI
   * contract: for readers that take chunks of any size (a fetch Request's body stream), which
   * read() would make wait for `max` bytes and copy the pieces together.
   */
  async readChunk(max: number): Promise<Uint8Array> {
    return (await this.#take(max)) ?? EMPTY;
  }

  /** Bytes still to come when the framing says (pending ones included); -1 when unknown. */
  protected expectedBytes(): number {
    return -1;
  }

  /** One line through its LF, at most `size` bytes; empty at the end. */
  async readline(size?: number): Promise<Uint8Array> {
    const limit = limitOf(size);
    let gathered: Gatherer | null = null;
    let total = 0;
    while (total < limit) {
      const piece = await this.#take(Math.min(limit - total, WHOLE));
      if (piece === null) break;
      const nl = piece.indexOf(LF);
      const line = nl < 0 ? piece : piece.subarray(0, nl + 1);
      if (nl >= 0 && nl + 1 < piece.length) this.#unread(piece.subarray(nl + 1));
      if (nl >= 0 && gathered === null) return line;
      if (gathered === null) gathered = new Gatherer(line, limit);
      else gathered.add(line);
      total += line.length;
      if (nl >= 0) break;
    }
    return gathered === null ? EMPTY : gathered.bytes();
  }

  /** Lines to the end, or until about `hint` bytes have been read. */
  async readlines(hint?: number): Promise<Uint8Array[]> {
    const lines: Uint8Array[] = [];
    let total = 0;
    while (hint === undefined || hint <= 0 || total < hint) {
      const line = await this.readline();
      if (line.length === 0) break;
      lines.push(line);
      total += line.length;
    }
    return lines;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    while (true) {
      const line = await this.readline();
      if (line.length === 0) return;
      yield line;
    }
  }

  /** At most `max` bytes: the pending ones first, then the source's; null at the end. */
  #take(max: number): Promise<Uint8Array | null> | Uint8Array {
    // Whole bytes only, and nothing asked is nothing read: a chunked source asked for 0 (or
    // for half a byte) would never return.
    max = Math.floor(max);
    if (!(max > 0)) return EMPTY;
    const pending = this.#pending;
    if (pending.length === 0) return this.next(max);
    if (pending.length <= max) {
      this.#pending = EMPTY;
      return pending;
    }
    this.#pending = pending.subarray(max);
    return pending.subarray(0, max);
  }

  /**
   * Gives back the end of the piece just taken. Bytes may still be pending behind it (the
   * piece was cut to a size): they come after it, not instead of it.
   */
  #unread(rest: Uint8Array): void {
    this.#pending = this.#pending.length === 0 ? rest : concat([rest, this.#pending]);
  }

  /**
   * Keeps what a source produced beyond what was asked for, for the next read. Bytes may
   * already be pending (reads at once, an app's mistake, each took a piece): these come after.
   */
  protected keep(rest: Uint8Array): void {
    this.#pending = this.#pending.length === 0 ? rest : concat([this.#pending, rest]);
  }

  /** At most `max` of the pending bytes, taken; null when none are. */
  protected takePending(max: number): Uint8Array | null {
    if (this.#pending.length === 0) return null;
    return this.#take(max) as Uint8Array;
  }
}

/**
 * readInto()'s argument: a Uint8Array with room, since 0 means the end. The app's mistake, so
 * a TypeError it sees, not a status.
 */
export function checkReadInto(buf: unknown): asserts buf is Uint8Array {
  if (!(buf instanceof Uint8Array)) {
    throw new TypeError(`tsgi.input.readInto() takes a Uint8Array, got ${typeof buf}`);
  }
  if (buf.length === 0) {
    throw new TypeError("tsgi.input.readInto() needs room for at least one byte");
  }
}

/** Past this size a gathered body grows in place instead of by copying. */
const GROW_IN_PLACE = 1024 * 1024;
/** What an unbounded read reserves (address space only: memory is committed as it fills). */
const UNBOUNDED_RESERVE = 2 ** 34;
/** The first array a gathered read allocates, when the pieces are small. */
const GATHER_START = 64 * 1024;

/**
 * Pieces gathered into one array. Small reads double a plain array (copies stay under
 * twice the size). Past GROW_IN_PLACE the bytes move once into a resizable ArrayBuffer that
 * reserves the most the read can return and commits memory only as bytes arrive: a large
 * body is allocated once, and a client that declares a huge length and sends little makes
 * the server hold no more than it sent.
 */
class Gatherer {
  #bytes: Uint8Array;
  #length = 0;
  #resizable: ArrayBuffer | null = null;
  readonly #most: number;

  /** `most` bounds what can be gathered (the read's limit, or what the framing says is left). */
  constructor(first: Uint8Array, most: number) {
    this.#most = most;
    this.#bytes = new Uint8Array(Math.min(most, Math.max(GATHER_START, first.length * 2)));
    this.add(first);
  }

  get length(): number {
    return this.#length;
  }

  add(piece: Uint8Array): void {
    const need = this.#length + piece.length;
    if (need > this.#bytes.length) this.#grow(need);
    this.#bytes.set(piece, this.#length);
    this.#length = need;
  }

  /**
   * The bytes gathered, as a view. Room grown and not filled is left as it is: untouched pages
   * cost nothing, while shrinking the buffer would make the runtime clear (and so commit) them.
   */
  bytes(): Uint8Array {
    return this.#bytes.subarray(0, this.#length);
  }

  #grow(need: number): void {
    const size = Math.min(Math.max(need, this.#bytes.length * 2), Math.max(need, this.#most));
    const resizable = this.#resizable;
    if (resizable !== null && size <= resizable.maxByteLength) {
      resizable.resize(size);
      this.#bytes = new Uint8Array(resizable);
      return;
    }
    const ceiling = Number.isFinite(this.#most) ? this.#most : UNBOUNDED_RESERVE;
    this.#resizable = size > GROW_IN_PLACE && size <= ceiling
      ? new ArrayBuffer(size, { maxByteLength: ceiling })
      : null;
    const grown = this.#resizable ? new Uint8Array(this.#resizable) : new Uint8Array(size);
    grown.set(this.#bytes.subarray(0, this.#length));
    this.#bytes = grown;
  }
}

/**
 * A size argument as a byte limit: omitted, negative or NaN means no limit; a fraction (an
 * app's mistake) is rounded down.
 */
export function limitOf(size: number | undefined): number {
  return size === undefined || size === null || !(size >= 0) ? Infinity : Math.floor(size);
}

/** The parts as one array; a single part is returned as it is. */
export function concat(parts: Uint8Array[], total?: number): Uint8Array {
  if (parts.length === 0) return EMPTY;
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(total ?? parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}
