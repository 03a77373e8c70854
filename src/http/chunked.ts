// Decodes the chunked transfer coding (RFC 9112 §7.1) incrementally over bytes, with no I/O:
// each call consumes what it can and points at the next span of body data in the input.

import { HttpError } from "./errors.ts";
import {
  CHUNK_EXT_CHAR,
  COLON,
  CR,
  FIELD_CHAR,
  HEX_VALUE,
  HTAB,
  LF,
  SEMICOLON,
  SP,
  TCHAR,
} from "./grammar.ts";
import type { HeadLimits } from "./parser.ts";

const enum State {
  Size,
  SizeSpace,
  Extension,
  SizeLf,
  Data,
  DataCr,
  DataLf,
  TrailerStart,
  TrailerName,
  TrailerValue,
  TrailerLf,
  FinalLf,
  Done,
}

/** Chunk extensions are legal but useless to us; past this many bytes they are an attack. */
const MAX_EXTENSION_BYTES = 4096;
/** Sixteen hex digits overflow 2^53 long before; any size near this is refused anyway. */
const MAX_SIZE_DIGITS = 13;

/**
 * A chunked-body decoder. `decode()` returns the position it stopped at; when it stopped at
 * data, that data is buf[spanStart, spanEnd). `done` turns true after the last CRLF.
 */
export class ChunkedDecoder {
  spanStart = 0;
  spanEnd = 0;
  #state = State.Size;
  #size = 0;
  #digits = 0;
  #extensionBytes = 0;
  #lineBytes = 0;
  #trailers = 0;
  #total = 0;
  readonly #maxBody: number;
  readonly #limits: HeadLimits;

  /** `maxBody` bounds the decoded size (0: none); `limits` bounds the trailer section. */
  constructor(maxBody: number, limits: HeadLimits) {
    this.#maxBody = maxBody;
    this.#limits = limits;
  }

  get done(): boolean {
    return this.#state === State.Done;
  }

  /** Decoded body bytes so far. */
  get total(): number {
    return this.#total;
  }

  /**
   * Consumes buf[pos, end) up to the end of the next data span or of the input. Returns the
   * new position; the span is empty when no data was reached.
   */
  decode(buf: Uint8Array, pos: number, end: number): number | HttpError {
    this.spanStart = this.spanEnd = pos;
    while (pos < end) {
      if (this.#state === State.Data) {
        const n = Math.min(this.#size, end - pos);
        this.spanStart = pos;
        this.spanEnd = pos + n;
        this.#size -= n;
        if (this.#size === 0) this.#state = State.DataCr;
        return pos + n;
      }
      const error = this.#step(buf[pos]);
      if (error) return error;
      pos++;
      if (this.#state === State.Done) break;
    }
    return pos;
  }

  #step(c: number): HttpError | undefined {
    switch (this.#state) {
      case State.Size:
        return this.#sizeDigit(c);
      case State.SizeSpace:
        // BWS is allowed only before a ";" that starts an extension, and counts toward its bound.
        if (c === SEMICOLON) this.#state = State.Extension;
        else if (c !== SP && c !== HTAB) return new HttpError(400, "Invalid chunk size line");
        else if (++this.#extensionBytes > MAX_EXTENSION_BYTES) {
          return new HttpError(400, "Chunk extensions too long");
        }
        return undefined;
      case State.Extension:
        return this.#extension(c);
      case State.SizeLf:
        return this.#sizeLineEnd(c);
      case State.DataCr:
        if (c !== CR) return new HttpError(400, "Chunk data not terminated by CRLF");
        this.#state = State.DataLf;
        return undefined;
      case State.DataLf:
        if (c !== LF) return new HttpError(400, "Chunk data not terminated by CRLF");
        this.#state = State.Size;
        return undefined;
      default:
        return this.#trailer(c);
    }
  }

  #sizeDigit(c: number): HttpError | undefined {
    const value = HEX_VALUE[c];
    if (value !== 255) {
      // No sign, no 0x, no overflow (CVE-2022-24761, CVE-2021-32714).
      if (++this.#digits > MAX_SIZE_DIGITS) return new HttpError(413, "Chunk size too large");
      this.#size = this.#size * 16 + value;
      return undefined;
    }
    if (this.#digits === 0) return new HttpError(400, "Invalid chunk size");
    if (c === CR) this.#state = State.SizeLf;
    else if (c === SEMICOLON) this.#state = State.Extension;
    else if (c === SP || c === HTAB) this.#state = State.SizeSpace;
    else return new HttpError(400, "Invalid chunk size");
    return undefined;
  }

  #extension(c: number): HttpError | undefined {
    if (c === CR) {
      this.#state = State.SizeLf;
      return undefined;
    }
    // Bounded, against "chunkloris" (CVE-2024-22019) and read amplification (CVE-2023-39326).
    if (++this.#extensionBytes > MAX_EXTENSION_BYTES) {
      return new HttpError(400, "Chunk extensions too long");
    }
    if (CHUNK_EXT_CHAR[c] === 0) return new HttpError(400, "Invalid character in chunk extension");
    return undefined;
  }

  #sizeLineEnd(c: number): HttpError | undefined {
    if (c !== LF) return new HttpError(400, "Chunk size line not terminated by CRLF");
    const size = this.#size;
    this.#digits = 0;
    if (size === 0) {
      this.#state = State.TrailerStart;
      return undefined;
    }
    this.#total += size;
    if (this.#maxBody > 0 && this.#total > this.#maxBody) {
      return new HttpError(413, "Request body too large");
    }
    this.#state = State.Data;
    return undefined;
  }

  /** trailer-section = *( field-line CRLF ) CRLF (RFC 9112 §7.1.2); fields are checked, not kept. */
  #trailer(c: number): HttpError | undefined {
    switch (this.#state) {
      case State.TrailerStart:
        if (c === CR) {
          this.#state = State.FinalLf;
          return undefined;
        }
        if (++this.#trailers > this.#limits.fields) {
          return new HttpError(431, "Too many trailer fields");
        }
        this.#lineBytes = 0;
        this.#state = State.TrailerName;
        return this.#trailerName(c);
      case State.TrailerName:
        return this.#trailerName(c);
      case State.TrailerValue:
        if (c === CR) {
          this.#state = State.TrailerLf;
          return undefined;
        }
        if (FIELD_CHAR[c] === 0) return new HttpError(400, "Invalid character in trailer field");
        return this.#countTrailerByte();
      case State.TrailerLf:
        if (c !== LF) return new HttpError(400, "Trailer field not terminated by CRLF");
        this.#state = State.TrailerStart;
        return undefined;
      default: // State.FinalLf
        // The last CRLF is required (gunicorn #3382): without it the body has not ended.
        if (c !== LF) return new HttpError(400, "Chunked body not terminated by CRLF");
        this.#state = State.Done;
        return undefined;
    }
  }

  #trailerName(c: number): HttpError | undefined {
    if (c === COLON && this.#lineBytes > 0) this.#state = State.TrailerValue;
    else if (TCHAR[c] === 0) return new HttpError(400, "Invalid trailer field name");
    return this.#countTrailerByte();
  }

  #countTrailerByte(): HttpError | undefined {
    if (++this.#lineBytes > this.#limits.fieldSize) {
      return new HttpError(431, "Trailer field too long");
    }
    return undefined;
  }
}
