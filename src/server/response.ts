// The response side of one request: `startResponse` as docs/tsgi.md defines it, the checks on what
// the app sends, the framing (Content-Length, chunked, or close), and the body's bytes.

import { httpDate, httpDateLine } from "./clock.ts";
import { AppError, reasonPhrase } from "../http/errors.ts";
import { HOP_BY_HOP, isFieldValue, isToken } from "../http/grammar.ts";
import type { OutputBuffer } from "./output.ts";
import type { Body, Chunk, StartResponse } from "../tsgi/types.ts";

/** Decides, when the head is written, whether the connection must close afterwards. */
export interface ClosePolicy {
  closeAfterResponse(): boolean;
}

const NEVER_CLOSE: ClosePolicy = { closeAfterResponse: () => false };

const CHECKED_SLOTS = 16;
const checkedNames: unknown[] = new Array(CHECKED_SLOTS).fill(undefined);
const checkedValues: unknown[] = new Array(CHECKED_SLOTS).fill(undefined);
const checkedFlags: number[] = new Array(CHECKED_SLOTS).fill(0);
const CONTENT_LENGTH = 1;

/**
 * Checks one response header pair and returns its flags; throws AppError when it may not be
 * sent. A pair that passes is remembered for its place in the list.
 */
function checkHeader(name: unknown, value: unknown, index: number): number {
  if (typeof name !== "string" || !isToken(name)) {
    throw new AppError(`Invalid response header name ${JSON.stringify(name)}`);
  }
  if (typeof value !== "string") {
    throw new AppError(`Response header "${name}" has a value that is not a string`);
  }
  if (!isFieldValue(value)) {
    throw new AppError(`Response header "${name}" has CR, LF, NUL or another control`);
  }
  let flags = 0;
  const n = name.length;
  if (n === 2 || n === 7 || n === 10 || n === 14 || n === 16 || n === 17) {
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower)) {
      throw new AppError(`Response header "${name}" is hop-by-hop: the server sets it`);
    }
    if (lower === "content-length") {
      if (parseDecimal(value) < 0) throw new AppError(`Invalid response Content-Length "${value}"`);
      flags |= CONTENT_LENGTH;
    }
  }
  if (index < CHECKED_SLOTS) {
    checkedNames[index] = name;
    checkedValues[index] = value;
    checkedFlags[index] = flags;
  }
  return flags;
}

const encoder = new TextEncoder();
const EMPTY = new Uint8Array(0);
const CRLF = encoder.encode("\r\n");
const COLON_SPACE = encoder.encode(": ");
const STATUS_LINE_START = encoder.encode("HTTP/1.1 ");
const CONTENT_LENGTH_START = encoder.encode("Content-Length: ");
const CHUNKED_LINE = encoder.encode("Transfer-Encoding: chunked\r\n");
const CLOSE_LINE = encoder.encode("Connection: close\r\n");
/**
 * What a response says when its connection stays open: on HTTP/1.1 the Keep-Alive line alone,
 * on HTTP/1.0 "Connection: keep-alive" as well. Made once for each --keep-alive value.
 */
export interface KeepAliveLines {
  readonly http11: Uint8Array;
  readonly http10: Uint8Array;
  /** The same as text, for the answers written as one string (writeErrorResponse()). */
  readonly text11: string;
  readonly text10: string;
}

function makeKeepAliveLines(keepAliveLine: string): KeepAliveLines {
  const text10 = "Connection: keep-alive\r\n" + keepAliveLine;
  return {
    http11: encoder.encode(keepAliveLine),
    http10: encoder.encode(text10),
    text11: keepAliveLine,
    text10,
  };
}

/** No Keep-Alive line: what a writer made without a server's --keep-alive says. */
export const NO_KEEP_ALIVE_TIMEOUT: KeepAliveLines = makeKeepAliveLines("");

const keepAliveLinesByMs = new Map<number, KeepAliveLines>();

/**
 * The lines for an idle timeout of `keepAliveMs`: `Keep-Alive: timeout=N` with N a second
 * below it (1 at least), so that a client or proxy stops reusing an idle connection before the
 * server closes it, rather than sending a request into the close. None for 1 s or less.
 */
export function keepAliveLines(keepAliveMs: number): KeepAliveLines {
  let lines = keepAliveLinesByMs.get(keepAliveMs);
  if (lines === undefined) {
    const seconds = Math.max(1, Math.floor(keepAliveMs / 1000 - 1));
    lines = keepAliveMs > 1000
      ? makeKeepAliveLines(`Keep-Alive: timeout=${seconds}\r\n`)
      : NO_KEEP_ALIVE_TIMEOUT;
    keepAliveLinesByMs.set(keepAliveMs, lines);
  }
  return lines;
}

/** Room for what every head has besides the app's fields: status line, Date, framing. */
const FIXED_HEAD_BYTES = 160;
/** The app's Content-Length, or none needed (no body, or the close ends it). */
const FRAMING_APP = 0;
const FRAMING_LENGTH = 1;
const FRAMING_CHUNKED = 2;

/**
 * One response. Created per request; `startResponse` is handed to the app, then `send()` is
 * given what the app returned. Work that needs no waiting is done without awaiting, so a
 * pipelined run of small responses costs no promise per response.
 */
export class ResponseWriter {
  readonly startResponse: StartResponse;
  /** Whether the connection can serve another request after this response. */
  keepAlive: boolean;
  /** The status sent, or 0 before the head went out. */
  status = 0;
  /** Body bytes produced for the wire (after framing decisions; HEAD counts none). */
  bodyBytes = 0;

  readonly #out: OutputBuffer;
  readonly #method: string;
  readonly #minor: number;
  readonly #policy: ClosePolicy;
  readonly #keepAliveLines: KeepAliveLines;
  #statusLine = "";
  #statusCode = 0;
  /**
   * The app's headers as they were when startResponse() checked them — name, value, name,
   * value — so that what was checked is what is written, whatever happens to the app's array
   * afterwards. Null until startResponse().
   */
  #fields: string[] | null = null;
  /** Where the app's Content-Length name is in #fields, or -1. */
  #lengthField = -1;
  /** The app's Content-Length, or -1. */
  #declaredLength = -1;
  #headSent = false;
  #chunked = false;
  #noBody = false;
  #legacy: Uint8Array[] | null = null;

  /**
   * `keepAlive` is whether the client allows the connection to stay open; `policy` may still
   * close it when the head is written. `keepAliveLines` are what a head says when it stays
   * open (keepAliveLines()).
   */
  constructor(
    out: OutputBuffer,
    method: string,
    minor: number,
    keepAlive: boolean,
    policy: ClosePolicy = NEVER_CLOSE,
    keepAliveLines: KeepAliveLines = NO_KEEP_ALIVE_TIMEOUT,
  ) {
    this.#out = out;
    this.#method = method;
    this.#minor = minor;
    this.keepAlive = keepAlive;
    this.#policy = policy;
    this.#keepAliveLines = keepAliveLines;
    this.startResponse = (status, headers, excInfo) => this.#start(status, headers, excInfo);
  }

  /** True once the app has called startResponse(). */
  get started(): boolean {
    return this.#fields !== null;
  }

  /** True once any byte of the response head has been produced. */
  get headSent(): boolean {
    return this.#headSent;
  }

  #start(status: string, headers: [string, string][], excInfo?: unknown) {
    if (this.#fields !== null) {
      if (excInfo === undefined || excInfo === null) {
        throw new AppError("startResponse() called a second time without excInfo");
      }
      // docs/tsgi.md: once bytes are out the status cannot change; the app's error goes on.
      if (this.#headSent) throw excInfo;
    }
    const code = checkStatus(status);
    this.#declaredLength = -1;
    this.#lengthField = -1;
    this.#fields = this.#checkHeaders(headers);
    this.#statusLine = status;
    this.#statusCode = code;
    return (chunk: Chunk) => this.#legacyWrite(chunk);
  }

  /** Copies the app's headers, each element read once, and checks the copy. */
  #checkHeaders(headers: [string, string][]): string[] {
    if (!Array.isArray(headers)) throw new AppError("startResponse() headers must be an array");
    const count = headers.length;
    const fields: string[] = [];
    for (let i = 0; i < count; i++) {
      const pair = headers[i];
      if (!Array.isArray(pair) || pair.length !== 2) {
        throw new AppError("startResponse() headers must be [name, value] pairs");
      }
      const name = pair[0];
      const value = pair[1];
      // Apps send the same headers in the same order: a pair seen at this place before
      // needs no second look at its characters (strings cannot change once made).
      const flags = i < CHECKED_SLOTS && checkedNames[i] === name && checkedValues[i] === value
        ? checkedFlags[i]
        : checkHeader(name, value, i);
      if (flags & CONTENT_LENGTH) this.#setDeclaredLength(value, fields.length);
      fields.push(name, value);
    }
    return fields;
  }

  #setDeclaredLength(value: string, index: number): void {
    if (this.#declaredLength >= 0) throw new AppError("Repeated response Content-Length");
    this.#declaredLength = parseDecimal(value);
    this.#lengthField = index;
  }

  #legacyWrite(chunk: Chunk): void {
    if (this.#fields === null) throw new AppError("write() called before startResponse()");
    // Kept until the body is sent: a copy, so the app's later changes to its array do not show.
    (this.#legacy ??= []).push(chunk instanceof Uint8Array ? chunk.slice() : toBytes(chunk));
  }

  /**
   * Sends what the app returned and finishes the response; undefined when that took no
   * waiting. Throws (or rejects with) AppError for a body that breaks the contract, and
   * WriteFailedError (output.ts) when the client cannot be written to.
   */
  send(body: Body): Promise<void> | undefined {
    if (Array.isArray(body)) return this.#sendArray(body);
    if (body !== null && typeof body === "object") {
      if (Symbol.asyncIterator in body) return this.#sendAsync(body as AsyncIterable<Chunk>);
      if (Symbol.iterator in body) {
        return this.#sendSync((body as Iterable<Chunk>)[Symbol.iterator]());
      }
    }
    if (typeof body === "string") throw new AppError("App returned a string; return [string]");
    throw new AppError(`App returned ${describe(body)}, which is not an iterable body`);
  }

  /** The common case: every chunk is known, so the length can be too. */
  #sendArray(body: Chunk[]): Promise<void> | undefined {
    if (this.#legacy !== null) return this.#sendSync(body[Symbol.iterator]());
    this.#requireStarted();
    if (body.length === 1) {
      const chunk = body[0];
      // Short ASCII text goes into the buffer as it is: no encoder call, no array for it.
      const piece = typeof chunk === "string" && isShortAscii(chunk) ? chunk : toBytes(chunk);
      if (!this.#headSent) this.#writeHead(piece.length);
      const pending = this.#writeBody(piece);
      return pending ? pending.then(() => this.#finish()) : this.#finish();
    }
    const chunks = body.map(toBytes);
    let total = 0;
    for (const bytes of chunks) total += bytes.length;
    if (!this.#headSent) this.#writeHead(total);
    return this.#sendSync(chunks[Symbol.iterator]());
  }

  #sendSync(chunks: Iterator<Chunk>): Promise<void> | undefined {
    while (true) {
      const next = chunks.next();
      if (next.done) return this.#legacy !== null ? this.#finishLegacy() : this.#finish();
      const pending = this.#writeChunk(toBytes(next.value));
      if (pending) return pending.then(() => this.#sendSync(chunks));
    }
  }

  async #sendAsync(body: AsyncIterable<Chunk>): Promise<void> {
    for await (const chunk of body) {
      const pending = this.#writeChunk(toBytes(chunk));
      if (pending) await pending;
      // docs/tsgi.md: each chunk is sent as it comes.
      await this.#out.flush();
    }
    await (this.#legacy !== null ? this.#finishLegacy() : this.#finish());
  }

  #writeChunk(bytes: Uint8Array): Promise<void> | undefined {
    if (this.#legacy !== null) return this.#writeLegacyThen(bytes);
    if (bytes.length === 0) return undefined;
    this.#requireStarted();
    if (!this.#headSent) this.#writeHead(-1);
    return this.#writeBody(bytes);
  }

  /** Bytes given to the legacy write() go before the body's (docs/tsgi.md). */
  async #writeLegacyThen(bytes: Uint8Array): Promise<void> {
    const legacy = this.#legacy as Uint8Array[];
    this.#legacy = null;
    for (const piece of legacy) await this.#writeChunk(piece);
    await this.#writeChunk(bytes);
  }

  async #finishLegacy(): Promise<void> {
    await this.#writeLegacyThen(EMPTY);
    this.#finish();
  }

  /** Ends the body: an empty body's head, the last chunk, or the length check. */
  #finish(): undefined {
    this.#requireStarted();
    if (!this.#headSent) this.#writeHead(0);
    if (this.#chunked) {
      this.#out.appendLatin1("0\r\n\r\n");
    } else if (
      this.#declaredLength >= 0 && !this.#noBody && this.bodyBytes < this.#declaredLength
    ) {
      this.keepAlive = false;
      throw new AppError(
        `Body shorter than its Content-Length (${this.bodyBytes} of ${this.#declaredLength} bytes)`,
      );
    }
    return undefined;
  }

  #requireStarted(): void {
    if (this.#fields === null) throw new AppError("App returned a body without startResponse()");
  }

  /**
   * Writes the head. `knownLength` is the whole body's length when the server knows it, or -1.
   * Decides the framing: the app's Content-Length, ours, chunked, or close at the end.
   */
  #writeHead(knownLength: number): void {
    const code = this.#statusCode;
    if (this.keepAlive && this.#policy.closeAfterResponse()) this.keepAlive = false;
    const bodiless = code === 204 || code === 304;
    this.#noBody = bodiless || this.#method === "HEAD";
    const framing = this.#framing(knownLength, bodiless);
    const fields = this.#fields as string[];
    const out = this.#out;
    const keepAliveLines = this.#keepAliveLines;
    let size = this.#statusLine.length + FIXED_HEAD_BYTES + keepAliveLines.http10.length;
    for (let i = 0; i < fields.length; i++) size += fields[i].length + 2;
    out.reserve(size);
    out.putBytes(STATUS_LINE_START);
    out.putLatin1(this.#statusLine);
    out.putBytes(CRLF);
    // RFC 9110 §8.6, §15.3.5, §15.4.5: 204 and 304 carry no Content-Length (docs/tsgi.md).
    const skip = bodiless ? this.#lengthField : -1;
    for (let i = 0; i < fields.length; i += 2) {
      if (i === skip) continue;
      out.putLatin1(fields[i]);
      out.putBytes(COLON_SPACE);
      out.putLatin1(fields[i + 1]);
      out.putBytes(CRLF);
    }
    out.putBytes(httpDateLine());
    if (framing === FRAMING_LENGTH) {
      out.putBytes(CONTENT_LENGTH_START);
      out.putDecimal(knownLength);
      out.putBytes(CRLF);
    } else if (framing === FRAMING_CHUNKED) out.putBytes(CHUNKED_LINE);
    if (!this.keepAlive) out.putBytes(CLOSE_LINE);
    else out.putBytes(this.#minor === 0 ? keepAliveLines.http10 : keepAliveLines.http11);
    out.putBytes(CRLF);
    this.#headSent = true;
    this.status = code;
  }

  /**
   * Decides how the body is delimited; the server's own length goes out only when known. A
   * HEAD answer carries the length GET would; 204 and 304 carry no framing at all.
   */
  #framing(knownLength: number, bodiless: boolean): number {
    if (this.#declaredLength >= 0 || bodiless) return FRAMING_APP;
    if (knownLength >= 0) {
      this.#declaredLength = knownLength;
      return FRAMING_LENGTH;
    }
    if (this.#noBody) return FRAMING_APP;
    if (this.#minor === 1) {
      this.#chunked = true;
      return FRAMING_CHUNKED;
    }
    // HTTP/1.0 without a length: the end of the connection ends the body.
    this.keepAlive = false;
    return FRAMING_APP;
  }

  /** Writes body bytes, or text isShortAscii() passed (one byte a character). */
  #writeBody(bytes: Uint8Array | string): Promise<void> | undefined {
    if (this.#noBody) return undefined;
    const declared = this.#declaredLength;
    if (declared >= 0 && !this.#chunked && this.bodyBytes + bytes.length > declared) {
      return this.#overflow(toBytes(bytes), declared);
    }
    this.bodyBytes += bytes.length;
    const out = this.#out;
    if (!this.#chunked) {
      return typeof bytes === "string" ? out.appendAscii(bytes) : out.append(bytes);
    }
    out.appendLatin1(bytes.length.toString(16) + "\r\n");
    const pending = out.append(toBytes(bytes));
    if (pending) return pending.then(() => void this.#out.append(CRLF));
    return this.#out.append(CRLF);
  }

  /** Sends up to the declared length and fails: the stream stays well framed, then closes. */
  async #overflow(bytes: Uint8Array, declared: number): Promise<void> {
    const room = declared - this.bodyBytes;
    if (room > 0) await this.#out.append(bytes.subarray(0, room));
    this.bodyBytes = declared;
    this.keepAlive = false;
    throw new AppError(`Body longer than its Content-Length (${declared} bytes)`);
  }

  /**
   * The response for an app that failed before sending anything: a short 500 (or the status
   * its error carries) with a generic body. Returns false when the head had already gone out,
   * in which case the only honest thing left is to abort the connection.
   */
  writeErrorResponse(status: number, closeAfter: boolean, headerLines = ""): boolean {
    if (this.#headSent) return false;
    const reason = reasonPhrase(status);
    const body = reason + "\n";
    this.keepAlive = this.keepAlive && !closeAfter && !this.#policy.closeAfterResponse();
    this.#out.appendLatin1(
      `HTTP/1.1 ${status} ${reason}\r\nDate: ${httpDate()}\r\n` +
        `Content-Type: text/plain; charset=utf-8\r\nContent-Length: ${body.length}\r\n` +
        headerLines + (this.keepAlive ? this.#keepAliveText() : "Connection: close\r\n") + "\r\n" +
        (this.#method === "HEAD" ? "" : body),
    );
    this.#headSent = true;
    this.status = status;
    this.bodyBytes = this.#method === "HEAD" ? 0 : body.length;
    return true;
  }

  #keepAliveText(): string {
    return this.#minor === 0 ? this.#keepAliveLines.text10 : this.#keepAliveLines.text11;
  }
}

/** "200 OK": three digits from 200 to 599, a space, a reason without controls. */
function checkStatus(status: string): number {
  if (typeof status !== "string" || status.length < 4 || status.charCodeAt(3) !== 0x20) {
    throw new AppError(`Invalid status ${JSON.stringify(status)}: expected "200 OK" form`);
  }
  const code = parseDecimal(status.slice(0, 3));
  if (code < 100 || code > 599) throw new AppError(`Invalid status code in "${status}"`);
  if (code < 200) throw new AppError(`Status "${status}" is informational, not a final status`);
  if (!isFieldValue(status)) {
    throw new AppError(`Status ${JSON.stringify(status)} holds a control character`);
  }
  return code;
}

function parseDecimal(s: string): number {
  if (s.length === 0 || s.length > 15) return -1;
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const d = s.charCodeAt(i) - 0x30;
    if (d < 0 || d > 9) return -1;
    n = n * 10 + d;
  }
  return n;
}

/** Past this, text is encoded in one call rather than checked character by character. */
const ASCII_TEXT_MAX = 1024;

function isShortAscii(text: string): boolean {
  if (text.length > ASCII_TEXT_MAX) return false;
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 0x7f) return false;
  return true;
}

function toBytes(chunk: Chunk): Uint8Array {
  if (chunk instanceof Uint8Array) return chunk;
  if (typeof chunk === "string") return encoder.encode(chunk);
  throw new AppError(`Body yielded ${describe(chunk)}; chunks must be Uint8Array or string`);
}

function describe(value: unknown): string {
  if (value === null || value === undefined) return String(value);
  if (Array.isArray(value)) return "an array";
  return typeof value === "object"
    ? `an object (${value.constructor?.name ?? "Object"})`
    : `${/^[aeiou]/.test(typeof value) ? "an" : "a"} ${typeof value}`;
}
