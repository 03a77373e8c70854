// Replays a raw request stream through the pure parser — HeadScanner, parseRequestHead and
// the body decoders — the way the connection loop does, with the bytes arriving in pieces cut
// at chosen offsets, and reduces what came out to a plain value tests can compare. A case is
// run unsplit and then cut at every byte boundary: the outcome must never depend on the cuts.

import { deepStrictEqual } from "node:assert/strict";
import { HttpError } from "../../src/http/errors.ts";
import { ChunkedDecoder } from "../../src/http/chunked.ts";
import {
  BodyKind,
  decodeLatin1,
  DEFAULT_HEAD_LIMITS,
  type HeadLimits,
  HeadScanner,
  parseRequestHead,
  type RequestHead,
} from "../../src/http/parser.ts";

/** One request as the parser delivered it; `body` is its decoded body as Latin-1. */
export interface ParsedRequest {
  method: string;
  target: string;
  minor: number;
  /** Flat, as `RequestHead.fields`: environ key, value, environ key, value, … */
  fields: string[];
  body: string;
  keepAlive: boolean;
  /** Present, and true, only when the client sent `Expect: 100-continue` on HTTP/1.1. */
  expectContinue?: true;
}

/** The stream was refused: the status of the `HttpError` the parser returned. */
export interface Refused {
  error: number;
}

/** The stream ended inside a head or a body: the parser was still waiting for bytes. */
export interface Truncated {
  incomplete: "head" | "body";
}

/** The requests in order, then at most one `Refused` or `Truncated`. */
export type Outcome = (ParsedRequest | Refused | Truncated)[];

export interface FeedOptions {
  /** Head limits for the scanner and the trailer section; `DEFAULT_HEAD_LIMITS` if absent. */
  limits?: HeadLimits;
  /** The chunked decoder's body bound; 0 (the default) is none. */
  maxBody?: number;
}

/** One request with what the parser said about it, and where its body lay in the stream. */
export interface TracedRequest {
  head: RequestHead;
  /** The decoded body bytes. */
  body: Uint8Array;
  /** Offsets in the raw stream of the first and past the last byte of the encoded body. */
  bodyStart: number;
  bodyEnd: number;
}

/** Everything `feed()` saw: richer than `Outcome`, for the framing properties. */
export interface Trace {
  requests: TracedRequest[];
  error?: HttpError;
  incomplete?: "head" | "body";
  /** Raw-stream offset of the first byte not consumed. */
  consumed: number;
}

/** Junk before the stream, so the parser is never called with `start` = 0. */
const PREFIX = "JUNK";
/** What lies past the bytes that have arrived: a parser reading there would see a blank line. */
const POISON = 0x0a;

/**
 * Feeds `raw` to the parser in pieces ending at each offset of `splits` (then at the end) and
 * returns what it produced. Throws only when the parser breaks its own contract (a result out
 * of range, no progress): that is a bug, never a client error.
 */
export function feed(raw: Uint8Array, splits: readonly number[], opts: FeedOptions = {}): Trace {
  const limits = opts.limits ?? DEFAULT_HEAD_LIMITS;
  const base = PREFIX.length;
  const buf = new Uint8Array(base + raw.length + 8).fill(POISON);
  for (let i = 0; i < base; i++) buf[i] = PREFIX.charCodeAt(i);

  const trace: Trace = { requests: [], consumed: 0 };
  const scanner = new HeadScanner();
  let pos = base;
  let current: TracedRequest | undefined;
  let bodyParts: Uint8Array[] = [];
  let remaining = 0;
  let decoder: ChunkedDecoder | undefined;

  const finishBody = () => {
    const request = current as TracedRequest;
    request.body = concat(bodyParts);
    request.bodyEnd = pos - base;
    current = undefined;
    decoder = undefined;
    bodyParts = [];
  };
  const fail = (error: HttpError) => {
    if (current) finishBody();
    trace.error = error;
  };

  // Consumes what buf[pos, end) allows; false once the stream has been refused.
  const advance = (end: number): boolean => {
    for (;;) {
      if (current === undefined) {
        if (pos === end) return true;
        const length = scanner.scan(buf, pos, end, limits);
        if (length instanceof HttpError) {
          fail(length);
          return false;
        }
        if (length === 0) return true;
        if (!(length > 0 && length <= end - pos && scanner.leading < length)) {
          throw new Error(`HeadScanner.scan() returned ${length} for ${end - pos} bytes`);
        }
        const head = parseRequestHead(buf, pos + scanner.leading, pos + length);
        if (head instanceof HttpError) {
          fail(head);
          return false;
        }
        scanner.reset();
        pos += length;
        current = { head, body: new Uint8Array(0), bodyStart: pos - base, bodyEnd: pos - base };
        trace.requests.push(current);
        if (head.bodyKind === BodyKind.Length) remaining = head.contentLength;
        else if (head.bodyKind === BodyKind.Chunked) {
          decoder = new ChunkedDecoder(opts.maxBody ?? 0, limits);
        } else finishBody();
      } else if (decoder === undefined) {
        const n = Math.min(remaining, end - pos);
        bodyParts.push(buf.slice(pos, pos + n));
        pos += n;
        remaining -= n;
        if (remaining > 0) return true;
        finishBody();
      } else {
        if (pos === end) return true;
        const next = decoder.decode(buf, pos, end);
        if (next instanceof HttpError) {
          fail(next);
          return false;
        }
        const { spanStart, spanEnd } = decoder;
        if (!(next > pos && next <= end && pos <= spanStart && spanStart <= spanEnd)) {
          throw new Error(`ChunkedDecoder.decode() made no progress at ${pos - base}`);
        }
        if (spanEnd > next) throw new Error("ChunkedDecoder span runs past its position");
        if (spanEnd > spanStart) bodyParts.push(buf.slice(spanStart, spanEnd));
        pos = next;
        if (decoder.done) finishBody();
      }
    }
  };

  let arrived = 0;
  for (const cut of [...checkSplits(splits, raw.length), raw.length]) {
    buf.set(raw.subarray(arrived, cut), base + arrived);
    arrived = cut;
    if (!advance(base + cut)) break;
  }
  trace.consumed = pos - base;
  if (trace.error === undefined) {
    if (current !== undefined) {
      trace.incomplete = "body";
      finishBody();
    } else if (trace.consumed < raw.length) trace.incomplete = "head";
  }
  return trace;
}

/** `feed()` reduced to its comparable outcome. */
export function parseSplit(
  raw: Uint8Array,
  splits: readonly number[],
  opts: FeedOptions = {},
): Outcome {
  const trace = feed(raw, splits, opts);
  const outcome: Outcome = trace.requests.map(({ head, body }) => {
    const request: ParsedRequest = {
      method: head.method,
      target: head.target,
      minor: head.minor,
      fields: head.fields,
      body: decodeLatin1(body, 0, body.length),
      keepAlive: head.keepAlive,
    };
    if (head.expectContinue) request.expectContinue = true;
    return request;
  });
  if (trace.error) outcome.push({ error: trace.error.status });
  else if (trace.incomplete) outcome.push({ incomplete: trace.incomplete });
  return outcome;
}

/**
 * The ways to cut `raw` every case is replayed with: unsplit, at each single byte boundary,
 * one byte at a time, and in runs of 2, 3 and 7 bytes.
 */
export function* everySplit(raw: Uint8Array): Generator<number[]> {
  yield [];
  for (let i = 1; i < raw.length; i++) yield [i];
  for (const step of [1, 2, 3, 7]) {
    if (step >= raw.length) break;
    const cuts: number[] = [];
    for (let i = step; i < raw.length; i += step) cuts.push(i);
    yield cuts;
  }
}

/**
 * Asserts that `raw`, cut in every way `everySplit()` gives, parses to `expected`; the failure
 * message names the cuts.
 */
export function assertEverySplit(
  raw: Uint8Array,
  expected: Outcome,
  opts: FeedOptions = {},
): void {
  const want = JSON.stringify(expected);
  for (const splits of everySplit(raw)) {
    const got = parseSplit(raw, splits, opts);
    if (JSON.stringify(got) !== want) {
      deepStrictEqual(got, expected, `outcome differs when split at [${splits.join(",")}]`);
    }
  }
}

/** Bytes from a string whose every char is a byte (Latin-1); throws on anything wider. */
export function bytes(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0xff) throw new RangeError(`Cannot encode "${s[i]}" as a byte`);
    out[i] = c;
  }
  return out;
}

function checkSplits(splits: readonly number[], length: number): number[] {
  let last = 0;
  for (const cut of splits) {
    if (!(cut > last && cut < length)) {
      throw new RangeError(`Cannot split ${length} bytes at ${splits.join(",")}`);
    }
    last = cut;
  }
  return [...splits];
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** The Host field line most test requests carry. */
export const H = "Host: h\r\n";

/** An HTTP/1.1 request as parsed, keep-alive, no body unless `more` says. */
export function req(
  method: string,
  target: string,
  fields: string[],
  more: Partial<ParsedRequest> = {},
): ParsedRequest {
  return { method, target, minor: 1, fields, body: "", keepAlive: true, ...more };
}
