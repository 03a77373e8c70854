// What Deno keeps inside a Response, read without the public getters that would turn it into
// Headers and a ReadableStream first: that is how `Deno.serve` answers most responses without
// the cost. The internals are found by symbol description (Deno 2.9) and checked against the
// public status; on any other runtime, or for any other Response, callers take the public path.

import type { Chunk } from "../../tsgi/types.ts";
import { findSymbol } from "../../server/runtime_symbols.ts";

/** The runtime's own marks on a Response made from a string or bytes and no headers. */
interface FixedMarks {
  status: symbol;
  body: symbol;
  headerKind: symbol;
  contentType: symbol;
  consumed: symbol;
}

let fixedMarks: FixedMarks | null | undefined;

/**
 * `new Response("text")` and `Response.json(x)` — most responses of most apps — are kept by
 * Deno as the string or bytes plus a content-type kind, and turned into Headers and a stream
 * only when asked: that is how `Deno.serve` answers them without the cost. Where this runtime
 * marks a Response so (Deno 2.9, found by symbol description, checked against the public
 * status), the body is taken as it is; anywhere else, or for any other Response, the public
 * path is used. Not touching `headers` or `body` first matters: reading them drops the marks.
 */
export function fixedResponse(
  response: Response,
): { headers: [string, string][]; body: Chunk } | null {
  if (fixedMarks === undefined) fixedMarks = findFixedMarks(response);
  if (fixedMarks === null) return null;
  const marked = response as unknown as Record<symbol, unknown>;
  const status = marked[fixedMarks.status];
  const body = marked[fixedMarks.body];
  if (status !== response.status || marked[fixedMarks.consumed] !== false) return null;
  if (typeof body !== "string" && !(body instanceof Uint8Array)) return null;
  const kind = marked[fixedMarks.headerKind];
  if (kind === 0) return { headers: [], body };
  if (kind === 1) return { headers: [["content-type", "text/plain;charset=UTF-8"]], body };
  const contentType = marked[fixedMarks.contentType];
  if (kind === 2 && typeof contentType === "string") {
    return { headers: [["content-type", contentType]], body };
  }
  return null;
}

function findFixedMarks(response: Response): FixedMarks | null {
  const status = findSymbol(response, "serve fast status");
  const body = findSymbol(response, "serve fast body");
  const headerKind = findSymbol(response, "serve fast header kind");
  const contentType = findSymbol(response, "serve fast content type");
  const consumed = findSymbol(response, "serve fast consumed");
  if (!status || !body || !headerKind || !contentType || !consumed) return null;
  return { status, body, headerKind, contentType, consumed };
}

/** A Response's inner body, as Deno keeps it. */
interface InnerBody {
  /** The stream, or a body held whole: the string or bytes it was made from, and its use. */
  streamOrStatic: ReadableStream<Uint8Array> | { body: unknown; consumed: boolean };
  /** What the body was made from (a Blob, bytes, ...). */
  source: unknown;
  unusable(): boolean;
}

/** Where a Response keeps its inner response: status, header list, body. */
let innerMark: symbol | null | undefined;

/** The inner body; null for no body; undefined where this runtime keeps it otherwise. */
function innerBodyOf(response: Response): InnerBody | null | undefined {
  if (innerMark === undefined) innerMark = findSymbol(response, "response");
  if (innerMark === null) return undefined;
  const inner = (response as unknown as Record<symbol, { body?: InnerBody | null }>)[innerMark];
  const body = inner?.body;
  if (body === null) return response.body === null ? null : undefined;
  return typeof body?.unusable === "function" ? body : undefined;
}

/**
 * The body of a Response made from a string, bytes, an ArrayBuffer, JSON or URLSearchParams, as
 * Deno holds it: one chunk, taken without a stream. Null for no body; undefined for a body
 * that is a stream (a Blob, FormData, a ReadableStream) or already used, which only the
 * public `body` can read. Call after reading `headers`, which puts a lazily made body in place.
 * The body counts as used afterwards, as after `await response.bytes()`.
 */
export function wholeBody(response: Response): Chunk | null | undefined {
  const body = innerBodyOf(response);
  if (body === null || body === undefined) return body;
  const held = body.streamOrStatic;
  if (held instanceof ReadableStream || held.consumed !== false) return undefined;
  if (typeof held.body !== "string" && !(held.body instanceof Uint8Array)) return undefined;
  held.consumed = true;
  return held.body;
}

/** Past this a Blob is streamed: a file-backed one (Deno.openAsBlob) may not fit in memory. */
const WHOLE_BLOB_MAX = 8 * 1024 * 1024;

/**
 * The Blob a Response was made from, when its stream is still untouched and the Blob small
 * enough to read whole: its bytes go out with a length, in one write, without the stream.
 */
export function blobBody(response: Response): Blob | null {
  const body = innerBodyOf(response);
  const source = body?.source;
  if (!(source instanceof Blob) || source.size > WHOLE_BLOB_MAX) return null;
  return body!.unusable() ? null : source;
}
