// The read/readline/readlines/iteration contract of `tsgi.input` (TSGI.md), written once over
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

  /** Whether bytes taken from the source still wait to be read. */
  protected get hasPending(): boolean {
    return this.#pending.length > 0;
  }

  /** Drops the bytes taken and not read. */
  protected dropPending(): void {
    this.#pending = EMPTY;
  }

  /** Up to `size` bytes, fewer only at the end; everything left when `size` is omitted. */
  async read(size?: number): Promise<Uint8Array> {
    const limit = limitOf(size);
    const parts: Uint8Array[] = [];
    let total = 0;
    while (total < limit) {
      const piece = await this.#take(Math.min(limit - total, WHOLE));
      if (piece === null) break;
      parts.push(piece);
      total += piece.length;
    }
    return concat(parts, total);
  }

  /** One line through its LF, at most `size` bytes; empty at the end. */
  async readline(size?: number): Promise<Uint8Array> {
    const limit = limitOf(size);
    const parts: Uint8Array[] = [];
    let total = 0;
    while (total < limit) {
      const piece = await this.#take(Math.min(limit - total, WHOLE));
      if (piece === null) break;
      const nl = piece.indexOf(LF);
      const line = nl < 0 ? piece : piece.subarray(0, nl + 1);
      if (nl >= 0 && nl + 1 < piece.length) this.#pending = piece.subarray(nl + 1);
      parts.push(line);
      total += line.length;
      if (nl >= 0) break;
    }
    return concat(parts, total);
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
    const pending = this.#pending;
    if (pending.length === 0) return this.next(max);
    if (pending.length <= max) {
      this.#pending = EMPTY;
      return pending;
    }
    this.#pending = pending.subarray(max);
    return pending.subarray(0, max);
  }

  /** Keeps what a source produced beyond what was asked for, for the next read. */
  protected keep(rest: Uint8Array): void {
    this.#pending = rest;
  }
}

/** A size argument as a byte limit: omitted or negative means no limit. */
function limitOf(size: number | undefined): number {
  return size === undefined || size === null || size < 0 ? Infinity : size;
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
