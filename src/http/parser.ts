// The request-head parser: pure and incremental over bytes, no I/O. `HeadScanner` finds the
// end of a head across any number of reads; `parseRequestHead` turns the complete head into
// a `RequestHead` with its body framing decided (RFC 9112 §2–§6), or an `HttpError`.

import { HttpError } from "./errors.ts";
import { environKey } from "./field_names.ts";
import {
  COLON,
  CR,
  FIELD_CHAR,
  HEX_VALUE,
  HTAB,
  LF,
  PERCENT,
  QUESTION,
  REG_NAME_CHAR,
  SP,
  TARGET_CHAR,
  TCHAR,
} from "./grammar.ts";

/** Size limits on a request head, as the CLI's --limit-request-* flags set them. */
export interface HeadLimits {
  /** Longest request line in bytes, CRLF excluded; longer is 414. */
  requestLine: number;
  /** Most header fields; more is 431. */
  fields: number;
  /** Longest header field line in bytes; longer is 431. */
  fieldSize: number;
  /** Largest whole head in bytes, request line through the blank line; larger is 431. */
  head: number;
}

export const DEFAULT_HEAD_LIMITS: Readonly<HeadLimits> = {
  requestLine: 8190,
  fields: 100,
  fieldSize: 8190,
  head: 64 * 1024,
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
 * refused as soon as it passes its limit rather than when it ends, and refuses a request line
 * without a version as soon as it ends rather than when a head that will not come does.
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
    // The whole head is bounded too: 100 fields of 8 KiB each would otherwise be 800 KiB a
    // connection. Byte-exact, so that how the head was split never changes the answer.
    const cap = start + limits.head;
    const stop = end < cap ? end : cap;
    for (; i < stop; i++) {
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
        // HTTP/0.9's `GET /` has no version and its client sends no head after it: waiting for
        // the blank line would hold the connection to the header timeout (RFC 9112 §2.3).
        if (this.#lines === 0 && !endsWithVersion(buf, lineStart, i - 1)) {
          return new HttpError(400, "Request line without an HTTP version");
        }
        this.#lines++;
      }
      lineStart = i + 1;
    }
    if (end > cap) {
      // A line already too long says so, as it would have at any split of the same bytes.
      return this.#checkPartialLine(cap - lineStart, limits) ??
        new HttpError(431, "Request head too large");
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

/** True when buf[start, end) ends in SP "HTTP/" DIGIT "." DIGIT, as an HTTP/1.x request line. */
function endsWithVersion(buf: Uint8Array, start: number, end: number): boolean {
  const v = end - 8;
  return v > start && buf[v - 1] === SP && buf[v] === 0x48 && buf[v + 1] === 0x54 &&
    buf[v + 2] === 0x54 && buf[v + 3] === 0x50 && buf[v + 4] === 0x2f && isDigit(buf[v + 5]) &&
    buf[v + 6] === 0x2e && isDigit(buf[v + 7]);
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
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
  // method = token (RFC 9110 §9.1): "#" too. gunicorn 22 refuses it by policy (IANA's
  // registry has none), not for any attack; a method the app does not know is its 405 or 501.
  while (i < end && TCHAR[text.charCodeAt(i)] === 1) i++;
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
  if (lower.startsWith("http://")) return checkTargetAuthority(target, 7);
  if (lower.startsWith("https://")) return checkTargetAuthority(target, 8);
  return new HttpError(400, "Malformed request target");
}

/**
 * The authority of an absolute-form target stands in for Host (RFC 9112 §3.2.2), so it is held
 * to Host's grammar, and an http(s) URI needs its host (RFC 9110 §4.2.1). Userinfo is an error
 * (§4.2.4): `http://good.example@evil.example/` names evil.example to a URI parser and reads as
 * good.example to a person or a lax prefix check, the phishing form §4.2.4 warns of.
 */
function checkTargetAuthority(target: string, start: number): HttpError | undefined {
  let end = start;
  let userinfo = false;
  for (; end < target.length; end++) {
    const c = target.charCodeAt(end);
    if (c === 0x2f || c === QUESTION) break;
    if (c === 0x40) userinfo = true;
  }
  if (userinfo) return new HttpError(400, "Userinfo in the request target");
  if (!isHost(target, start, end)) {
    return new HttpError(400, "Invalid authority in the request target");
  }
  return undefined;
}

/**
 * True when text[start, end) is Host = uri-host [ ":" port ] (RFC 9110 §7.2, RFC 3986 §3.2.2)
 * with a host that is not empty: an IP-literal or a reg-name (which spells IPv4 addresses too).
 * Everything else a Host could hold — a list, whitespace, userinfo (Django's CVE-2012-4520),
 * a path, a query, a fragment, a port past 65535 — lets two readers see two different hosts.
 */
function isHost(text: string, start: number, end: number): boolean {
  const hostEnd = text.charCodeAt(start) === 0x5b
    ? ipLiteralEnd(text, start, end)
    : regNameEnd(text, start, end);
  if (hostEnd === start) return false;
  return hostEnd === end || (text.charCodeAt(hostEnd) === COLON && isPort(text, hostEnd + 1, end));
}

/** Where the reg-name at text[start] ends: at the first character that is not part of it. */
function regNameEnd(text: string, start: number, end: number): number {
  let i = start;
  while (i < end) {
    const c = text.charCodeAt(i);
    if (REG_NAME_CHAR[c] === 1) i++;
    else if (c === PERCENT && i + 2 < end && isHex(text, i + 1) && isHex(text, i + 2)) i += 3;
    else break;
  }
  return i;
}

function isHex(text: string, i: number): boolean {
  return HEX_VALUE[text.charCodeAt(i)] < 16;
}

/**
 * port = 1*5DIGIT up to 65535. RFC 3986's port is *DIGIT, but `h:` is the default port to some
 * readers and an error to others, and 65616 is port 80 to a reader that keeps 16 bits.
 */
function isPort(text: string, start: number, end: number): boolean {
  if (end - start < 1 || end - start > 5) return false;
  let port = 0;
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    if (!isDigit(c)) return false;
    port = port * 10 + c - 0x30;
  }
  return port <= 65535;
}

/** IP-literal = "[" ( IPv6address / IPvFuture ) "]": where it ends, or `start` if it is not one. */
function ipLiteralEnd(text: string, start: number, end: number): number {
  const close = text.indexOf("]", start);
  if (close < 0 || close >= end) return start;
  const first = text.charCodeAt(start + 1) | 0x20;
  const valid = first === 0x76 // "v"
    ? isIpvFuture(text, start + 2, close)
    : isIpv6Address(text, start + 1, close);
  return valid ? close + 1 : start;
}

/** IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" ), after its "v". */
function isIpvFuture(text: string, start: number, end: number): boolean {
  let i = start;
  while (i < end && isHex(text, i)) i++;
  if (i === start || text.charCodeAt(i) !== 0x2e || i + 1 === end) return false;
  for (i++; i < end; i++) {
    const c = text.charCodeAt(i);
    if (REG_NAME_CHAR[c] !== 1 && c !== COLON && c !== 0x2c) return false;
  }
  return true;
}

/**
 * IPv6address (RFC 3986 §3.2.2): eight h16 pieces separated by ":", the last two of which may
 * be an IPv4address, or fewer around one "::" that stands for at least one zero piece.
 */
function isIpv6Address(text: string, start: number, end: number): boolean {
  let pieces = 0;
  let elided = false;
  let i = start;
  if (text.startsWith("::", i)) {
    elided = true;
    i += 2;
  }
  while (i < end) {
    let j = i;
    while (j < end && isHex(text, j)) j++;
    if (j < end && text.charCodeAt(j) === 0x2e) {
      // ls32's dotted form: only as the last piece.
      if (!isIpv4Address(text, i, end)) return false;
      pieces += 2;
      break;
    }
    if (j === i || j - i > 4) return false;
    pieces++;
    if (j === end) break;
    if (text.charCodeAt(j) !== COLON || j + 1 === end) return false;
    i = j + 1;
    if (text.charCodeAt(i) === COLON) {
      if (elided) return false;
      elided = true;
      i++;
    }
  }
  return elided ? pieces <= 7 : pieces === 8;
}

/** IPv4address = dec-octet "." dec-octet "." dec-octet "." dec-octet, 0–255 without leading 0s. */
function isIpv4Address(text: string, start: number, end: number): boolean {
  let i = start;
  for (let octet = 0; octet < 4; octet++) {
    if (octet > 0 && text.charCodeAt(i++) !== 0x2e) return false;
    const digitsStart = i;
    let value = 0;
    while (i < end && isDigit(text.charCodeAt(i)) && i - digitsStart < 3) {
      value = value * 10 + text.charCodeAt(i++) - 0x30;
    }
    const digits = i - digitsStart;
    if (digits === 0 || value > 255 || (digits > 1 && text.charCodeAt(digitsStart) === 0x30)) {
      return false;
    }
  }
  return i === end;
}

/** Counts of the fields whose repetition changes meaning, gathered while parsing. */
interface FieldTally {
  host: number;
  /** Where the Host value lies in the head's text (checked there: a flat string is faster). */
  hostStart: number;
  hostEnd: number;
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
    hostStart: 0,
    hostEnd: 0,
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
    const error = tallyField(key, value, valueStart, head, tally);
    if (error) return error;
    if (key !== "") fields.push(key, value);
    i = lineEnd + 2;
  }
  return checkHost(text, head, tally) ?? tally;
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
  valueStart: number,
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
      tally.hostStart = valueStart;
      tally.hostEnd = valueStart + value.length;
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

function checkHost(text: string, head: RequestHead, tally: FieldTally): HttpError | undefined {
  if (tally.host > 1) return new HttpError(400, "Repeated Host field");
  if (tally.host === 0 && head.minor === 1) return new HttpError(400, "Missing Host field");
  // An invalid Host is a 400 too. An empty one is valid: it is what a client sends for a
  // target URI without an authority (RFC 9112 §3.2).
  const { hostStart, hostEnd } = tally;
  if (hostEnd > hostStart && !isHost(text, hostStart, hostEnd)) {
    return new HttpError(400, "Invalid Host field");
  }
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
