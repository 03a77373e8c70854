// The request-head parser: pure and incremental over bytes, no I/O. `HeadScanner` finds the
// end of a head across any number of reads; `parseRequestHead` turns the complete head into
// a `RequestHead` with its body framing decided (RFC 9112 §2–§6), or an `HttpError`.

import { HttpError } from "./errors.ts";
import { environKey } from "./field_names.ts";
import { COLON, CR, FIELD_CHAR, HTAB, LF, METHOD_CHAR, SP, TARGET_CHAR, TCHAR } from "./grammar.ts";

/** Size limits on a request head, as the CLI's --limit-request-* flags set them. */
export interface HeadLimits {
  /** Longest request line in bytes, CRLF excluded; longer is 414. */
  requestLine: number;
  /** Most header fields; more is 431. */
  fields: number;
  /** Longest header field line in bytes; longer is 431. */
  fieldSize: number;
}

export const DEFAULT_HEAD_LIMITS: Readonly<HeadLimits> = {
  requestLine: 8190,
  fields: 100,
  fieldSize: 8190,
};

/** How the request's body is delimited (RFC 9112 §6.3). */
export const enum BodyKind {
  None = 0,
  Length = 1,
  Chunked = 2,
}

/** A parsed request head. `fields` is flat: environ key, value, environ key, value, … */
export interface RequestHead {
  method: string;
  target: string;
  /** The minor version of HTTP/1.x: 0 or 1. */
  minor: number;
  fields: string[];
  bodyKind: BodyKind;
  /** The declared length, when `bodyKind` is `Length`. */
  contentLength: number;
  /** Whether the client allows the connection to stay open after this request. */
  keepAlive: boolean;
  /** The client sent Connection: close; it wins over keep-alive, whatever the order. */
  closeAsked: boolean;
  expectContinue: boolean;
}

const MAX_LEADING_BLANK_BYTES = 32;

/**
 * Finds where a request head ends, keeping its place between reads so each byte is looked at
 * once. Enforces the size limits while the head is still arriving, so an endless line is
 * refused as soon as it passes its limit rather than when it ends.
 */
export class HeadScanner {
  /** Bytes of blank lines before the request line (RFC 9112 §2.2 says to ignore them). */
  leading = 0;
  #scanned = 0;
  #lineStart = 0;
  #lines = 0;

  reset(): void {
    this.leading = 0;
    this.#scanned = 0;
    this.#lineStart = 0;
    this.#lines = 0;
  }

  /**
   * Scans buf[start, end), where `start` is where the head begins. Returns the head's length
   * in bytes through its blank line, 0 when more bytes are needed, or the error.
   */
  scan(buf: Uint8Array, start: number, end: number, limits: HeadLimits): number | HttpError {
    let i = start + this.#scanned;
    let lineStart = start + this.#lineStart;
    for (; i < end; i++) {
      if (buf[i] !== LF) continue;
      const crlf = i > lineStart && buf[i - 1] === CR;
      const lineLength = i - lineStart - (crlf ? 1 : 0);
      // Length first, so a line both too long and badly ended gets one status however split.
      const error = lineLength > 0 ? this.#checkLine(lineLength, limits) : undefined;
      if (error) return error;
      // RFC 9112 §2.2: a bare LF would let a lenient peer see different lines (CVE-2019-16785).
      if (!crlf) return new HttpError(400, "Bare LF in request head");
      if (lineLength === 0) {
        if (this.#lines > 0) {
          this.#reset();
          return i + 1 - start;
        }
        this.leading = i + 1 - start;
        // Blank lines before the request line are tolerated, not without end.
        if (this.leading > MAX_LEADING_BLANK_BYTES) {
          return new HttpError(400, "Too many blank lines before the request line");
        }
      } else {
        this.#lines++;
      }
      lineStart = i + 1;
    }
    this.#scanned = end - start;
    this.#lineStart = lineStart - start;
    return this.#checkPartialLine(end - lineStart, limits) ?? 0;
  }

  #reset(): void {
    this.#scanned = 0;
    this.#lineStart = 0;
    this.#lines = 0;
  }

  #checkLine(length: number, limits: HeadLimits): HttpError | undefined {
    if (this.#lines === 0) {
      if (length > limits.requestLine) return new HttpError(414, "Request line too long");
    } else if (length > limits.fieldSize) {
      return new HttpError(431, "Header field too long");
    } else if (this.#lines > limits.fields) {
      return new HttpError(431, "Too many header fields");
    }
    return undefined;
  }

  #checkPartialLine(length: number, limits: HeadLimits): HttpError | undefined {
    // `length` may already include the line's CR: allow one byte for it.
    if (this.#lines === 0) {
      if (length > limits.requestLine + 1) return new HttpError(414, "Request line too long");
    } else if (length > limits.fieldSize + 1) {
      return new HttpError(431, "Header field too long");
    }
    return undefined;
  }
}

const asciiDecoder = new TextDecoder();

/** Decodes bytes as ISO-8859-1 exactly, as HTTP field values are (RFC 9110 §5.5). */
export function decodeLatin1(buf: Uint8Array, start: number, end: number): string {
  let s = "";
  for (let i = start; i < end; i += 4096) {
    const part = buf.subarray(i, Math.min(end, i + 4096));
    s += String.fromCharCode.apply(null, part as unknown as number[]);
  }
  return s;
}

/** Returned by the field loop on obs-text, to re-run the parse on an exact decoding. */
const NOT_ASCII = new HttpError(400, "Non-ASCII byte in request head");

/**
 * Parses a complete request head, buf[start, end), ending with its blank line. The bytes are
 * decoded once as UTF-8, which for ASCII (the common case, and the fast one) is exact; a head
 * with obs-text in a value is decoded again as Latin-1 so that no byte is changed.
 */
export function parseRequestHead(
  buf: Uint8Array,
  start: number,
  end: number,
): RequestHead | HttpError {
  const text = asciiDecoder.decode(buf.subarray(start, end));
  // UTF-8 shortens a valid multi-byte run and turns a stray byte into U+FFFD: either way a
  // byte above 0x7f shows, by length here or by code in the field loop.
  if (text.length === end - start) {
    const result = parseHeadText(text, true);
    if (result !== NOT_ASCII) return result;
  }
  return parseHeadText(decodeLatin1(buf, start, end), false);
}

function parseHeadText(text: string, ascii: boolean): RequestHead | HttpError {
  const lineEnd = text.indexOf("\r\n");
  const head = parseRequestLine(text, lineEnd);
  if (head instanceof HttpError) return head;
  const tally = parseFields(text, lineEnd + 2, head, ascii);
  if (tally instanceof HttpError) return tally;
  return decideFraming(head, tally);
}

function parseRequestLine(text: string, end: number): RequestHead | HttpError {
  let i = 0;
  while (i < end && METHOD_CHAR[text.charCodeAt(i)] === 1) i++;
  if (i === 0 || text.charCodeAt(i) !== SP) return badRequestLine(text);
  const method = text.slice(0, i);
  const targetStart = ++i;
  while (i < end && TARGET_CHAR[text.charCodeAt(i)] === 1) i++;
  if (i === targetStart || text.charCodeAt(i) !== SP) return badRequestLine(text);
  const target = text.slice(targetStart, i);
  const minor = parseVersion(text, i + 1, end);
  if (minor instanceof HttpError) return minor;
  const formError = checkTargetForm(method, target);
  if (formError) return formError;
  return {
    method,
    target,
    minor,
    fields: [],
    bodyKind: BodyKind.None,
    contentLength: 0,
    keepAlive: minor === 1,
    closeAsked: false,
    expectContinue: false,
  };
}

function badRequestLine(text: string): HttpError {
  if (text.startsWith("PRI * HTTP/2.0")) return new HttpError(505, "HTTP/2 is not supported");
  return malformed();
}

function malformed(): HttpError {
  return new HttpError(400, "Malformed request line");
}

/** HTTP-version = "HTTP/" DIGIT "." DIGIT (RFC 9112 §2.3); we speak 1.0 and 1.1. */
function parseVersion(text: string, i: number, end: number): number | HttpError {
  if (end - i !== 8 || !text.startsWith("HTTP/", i) || text.charCodeAt(i + 6) !== 0x2e) {
    return malformed();
  }
  const major = text.charCodeAt(i + 5) - 0x30;
  const minor = text.charCodeAt(i + 7) - 0x30;
  if (major < 0 || major > 9 || minor < 0 || minor > 9) return malformed();
  if (major !== 1) return new HttpError(505, `HTTP/${major}.${minor} is not supported`);
  if (minor > 1) return new HttpError(505, `HTTP/1.${minor} is not supported`);
  return minor;
}

/** RFC 9112 §3.2: asterisk-form only for OPTIONS; authority-form only for CONNECT. */
function checkTargetForm(method: string, target: string): HttpError | undefined {
  if (method === "CONNECT") return new HttpError(501, "CONNECT is not supported");
  const first = target.charCodeAt(0);
  if (first === 0x2f) return undefined;
  if (target === "*") {
    return method === "OPTIONS"
      ? undefined
      : new HttpError(400, "Asterisk-form is only for OPTIONS");
  }
  const lower = target.slice(0, 8).toLowerCase();
  if (lower.startsWith("http://") || lower.startsWith("https://")) return undefined;
  return new HttpError(400, "Malformed request target");
}

/** Counts of the fields whose repetition changes meaning, gathered while parsing. */
interface FieldTally {
  host: number;
  transferEncoding: string | undefined;
  transferEncodings: number;
  contentLength: string | undefined;
  contentType: number;
}

function parseFields(
  text: string,
  i: number,
  head: RequestHead,
  ascii: boolean,
): FieldTally | HttpError {
  const tally: FieldTally = {
    host: 0,
    transferEncoding: undefined,
    transferEncodings: 0,
    contentLength: undefined,
    contentType: 0,
  };
  const fields = head.fields;
  const end = text.length - 2;
  while (i < end) {
    const first = text.charCodeAt(i);
    if (first === SP || first === HTAB) {
      return new HttpError(400, "Obsolete line folding is not accepted");
    }
    // The name is hashed while it is checked, so a known spelling needs no new string.
    let colon = i;
    let hash = 0;
    for (let c = first; TCHAR[c] === 1; c = text.charCodeAt(++colon)) hash = (hash * 31 + c) | 0;
    if (colon === i || text.charCodeAt(colon) !== COLON) {
      return new HttpError(400, "Invalid header field name");
    }
    // One pass checks the value and finds the line's end (the scanner made every LF a CRLF).
    let lineEnd = colon + 1;
    let c = text.charCodeAt(lineEnd);
    while (FIELD_CHAR[c] === 1) c = text.charCodeAt(++lineEnd);
    if (c !== CR || text.charCodeAt(lineEnd + 1) !== LF) {
      if (c > 0xff && ascii) return NOT_ASCII;
      return new HttpError(400, "Invalid character in header field value");
    }
    let valueStart = colon + 1;
    let valueEnd = lineEnd;
    while (valueStart < valueEnd && isOws(text.charCodeAt(valueStart))) valueStart++;
    while (valueEnd > valueStart && isOws(text.charCodeAt(valueEnd - 1))) valueEnd--;
    const key = cachedEnvironKey(text, i, colon, hash);
    const value = text.slice(valueStart, valueEnd);
    const error = tallyField(key, value, head, tally);
    if (error) return error;
    if (key !== "") fields.push(key, value);
    i = lineEnd + 2;
  }
  return checkHost(head, tally) ?? tally;
}

const NAME_SLOTS = 512;
const slotNames: string[] = new Array(NAME_SLOTS).fill("");
const slotKeys: string[] = new Array(NAME_SLOTS).fill("");

/** environKey() for text[start, end), by a direct-mapped cache of spellings seen before. */
function cachedEnvironKey(text: string, start: number, end: number, hash: number): string {
  const slot = hash & (NAME_SLOTS - 1);
  const name = slotNames[slot];
  if (name.length === end - start && text.startsWith(name, start)) return slotKeys[slot];
  const fresh = text.slice(start, end);
  const key = environKey(fresh);
  slotNames[slot] = fresh;
  slotKeys[slot] = key;
  return key;
}

function isOws(c: number): boolean {
  return c === SP || c === HTAB;
}

function tallyField(
  key: string,
  value: string,
  head: RequestHead,
  tally: FieldTally,
): HttpError | undefined {
  switch (key) {
    case "CONTENT_LENGTH":
      if (tally.contentLength !== undefined && tally.contentLength !== value) {
        return new HttpError(400, "Conflicting Content-Length fields");
      }
      tally.contentLength = value;
      break;
    case "CONTENT_TYPE":
      if (++tally.contentType > 1) return new HttpError(400, "Repeated Content-Type field");
      break;
    case "HTTP_HOST":
      tally.host++;
      break;
    case "HTTP_TRANSFER_ENCODING":
      tally.transferEncodings++;
      tally.transferEncoding = value;
      break;
    case "HTTP_CONNECTION":
      applyConnectionOptions(value, head);
      break;
    case "HTTP_EXPECT":
      if (value.toLowerCase() !== "100-continue") {
        return new HttpError(417, "Only Expect: 100-continue is supported");
      }
      head.expectContinue = head.minor === 1;
      break;
  }
  return undefined;
}

/** Connection = #connection-option (RFC 9110 §7.6.1); only close and keep-alive matter here. */
function applyConnectionOptions(value: string, head: RequestHead): void {
  for (const part of value.split(",")) {
    const option = trimOws(part).toLowerCase();
    if (option === "close") head.keepAlive = false;
    else if (option === "keep-alive" && head.minor === 0 && !head.closeAsked) head.keepAlive = true;
    if (option === "close") head.closeAsked = true;
  }
}

function checkHost(head: RequestHead, tally: FieldTally): HttpError | undefined {
  if (tally.host > 1) return new HttpError(400, "Repeated Host field");
  if (tally.host === 0 && head.minor === 1) return new HttpError(400, "Missing Host field");
  return undefined;
}

/** RFC 9112 §6.1–§6.3: chunked or Content-Length, never both, never guessed. */
function decideFraming(head: RequestHead, tally: FieldTally): RequestHead | HttpError {
  if (tally.transferEncoding !== undefined) return frameChunked(head, tally);
  if (tally.contentLength !== undefined) {
    const length = parseContentLength(tally.contentLength);
    if (length instanceof HttpError) return length;
    head.contentLength = length;
    head.bodyKind = length > 0 ? BodyKind.Length : BodyKind.None;
  }
  return head;
}

function frameChunked(head: RequestHead, tally: FieldTally): RequestHead | HttpError {
  // Each of these is a smuggling vector when a peer reads the message the other way:
  // CL+TE (RFC 9112 §6.1), TE on 1.0, stacked TE fields (CVE-2024-1135, CVE-2021-21299).
  if (tally.contentLength !== undefined) {
    return new HttpError(400, "Both Transfer-Encoding and Content-Length");
  }
  if (head.minor === 0) return new HttpError(400, "Transfer-Encoding on HTTP/1.0");
  if (tally.transferEncodings > 1) return new HttpError(400, "Repeated Transfer-Encoding field");
  const codings = (tally.transferEncoding as string).split(",");
  let chunked = 0;
  for (const coding of codings) {
    const name = trimOws(coding).toLowerCase();
    if (name === "") return new HttpError(400, "Empty transfer coding");
    if (name !== "chunked") return new HttpError(501, "Unsupported transfer coding");
    chunked++;
  }
  if (chunked !== 1) return new HttpError(400, "Repeated chunked transfer coding");
  head.bodyKind = BodyKind.Chunked;
  return head;
}

function trimOws(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && isOws(s.charCodeAt(a))) a++;
  while (b > a && isOws(s.charCodeAt(b - 1))) b--;
  return s.slice(a, b);
}

/** Content-Length = 1*DIGIT (RFC 9110 §8.6); no sign, no spaces, no list, no hex. */
export function parseContentLength(value: string): number | HttpError {
  if (value.length === 0) return new HttpError(400, "Invalid Content-Length");
  let n = 0;
  for (let i = 0; i < value.length; i++) {
    const d = value.charCodeAt(i) - 0x30;
    if (d < 0 || d > 9) return new HttpError(400, "Invalid Content-Length");
    n = n * 10 + d;
  }
  if (n > Number.MAX_SAFE_INTEGER) return new HttpError(413, "Content-Length too large");
  return n;
}
