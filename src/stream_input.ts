// `tsgi.input` over a ReadableStream (a Request's body), for TSGI apps served by a fetch
// handler: the same read/readline/readlines contract as the server's own input (input.ts).

import type { Input } from "./types.ts";

const EMPTY = new Uint8Array(0);
const LF = 0x0a;

/**
 * The Input view of a byte stream; reads only as far as asked, never the whole body at once
 * unless `read()` is called without a size.
 */
export class StreamInput implements Input {
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  /** Bytes read from the stream but not yet given to the app. */
  #pending: Uint8Array = EMPTY;
  #done = false;

  constructor(stream: ReadableStream<Uint8Array>) {
    this.#reader = stream.getReader();
  }

  async read(size?: number): Promise<Uint8Array> {
    const limit = size === undefined || size === null || size < 0 ? Infinity : size;
    const parts: Uint8Array[] = [];
    let total = 0;
    while (total < limit) {
      const piece = await this.#take(limit - total);
      if (piece === null) break;
      parts.push(piece);
      total += piece.length;
    }
    return concat(parts, total);
  }

  async readline(size?: number): Promise<Uint8Array> {
    const limit = size === undefined || size === null || size < 0 ? Infinity : size;
    const parts: Uint8Array[] = [];
    let total = 0;
    while (total < limit) {
      const piece = await this.#take(limit - total);
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

  /** At most `max` bytes: pending ones first, then the stream's next chunk; null at the end. */
  async #take(max: number): Promise<Uint8Array | null> {
    let piece = this.#pending;
    this.#pending = EMPTY;
    while (piece.length === 0) {
      if (this.#done) return null;
      const { done, value } = await this.#reader.read();
      if (done) this.#done = true;
      else piece = value;
    }
    if (piece.length <= max) return piece;
    this.#pending = piece.subarray(max);
    return piece.subarray(0, max);
  }
}

function concat(parts: Uint8Array[], total: number): Uint8Array {
  if (parts.length === 0) return EMPTY;
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(total);
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}
