// One client connection: read a head, build the environ, call the app, write the response,
// and again while keep-alive holds. Its state (idle, reading a head, active, closed) and its
// deadline are read by the server's sweeper, which is what enforces the timeouts.

import { type SocketIo, socketIo } from "./socket_io.ts";
import { flushLater } from "./late_flush.ts";
import { giveBuffer, RELEASED, takeBuffer } from "./buffer_pool.ts";
import { coarseNow } from "./clock.ts";
import { type RateRule, RateVerdict, TransferClock } from "./data_rate.ts";
import { buildEnviron, type ConnectionInfo, type EnvironDefaults } from "../tsgi/environ.ts";
import { AppError, HttpError } from "../http/errors.ts";
import { BodyTimeoutError, ClientGoneError, EMPTY_INPUT, RequestInput } from "../tsgi/input.ts";
import { type AccessLog, type ErrorLog, escapeLogField, type RateLimitedLog } from "./log.ts";
import { OutputBuffer, WriteFailedError } from "./output.ts";
import {
  BodyKind,
  type HeadLimits,
  HeadScanner,
  parseRequestHead,
  type RequestHead,
} from "../http/parser.ts";
import { parseProxyHeader, ProxyHeaderError } from "../http/proxy_protocol.ts";
import { applyForwarded, type TrustedProxies } from "./proxy.ts";
import {
  type ClosePolicy,
  type KeepAliveLines,
  keepAliveLines,
  ResponseWriter,
} from "./response.ts";
import type { App, Body, Environ } from "../tsgi/types.ts";
import {
  type AcceptedUpgrade,
  asksForWebSocket,
  switchingProtocols,
  UpgradeOffer,
} from "./upgrade.ts";
import type { WebSocketLimits } from "./websocket.ts";
import type { RequestTelemetry, Telemetry } from "./telemetry.ts";

/** Everything a connection needs from its server, shared by all connections. */
export interface Engine {
  app: App;
  limits: HeadLimits;
  /** Largest request body in bytes; 0 for no limit. */
  maxBodySize: number;
  keepAliveMs: number;
  headerTimeoutMs: number;
  /** What a request body must keep up while the app waits for it (--min-body-rate, …). */
  bodyRate: RateRule;
  /** What a client must keep up while it reads a response (--min-response-rate, …). */
  responseRate: RateRule;
  /** The most time spent reading and dropping a body the app left unread. */
  drainTimeoutMs: number;
  errorLog: ErrorLog;
  accessLog: AccessLog | null;
  /** Peers whose forwarding headers are believed; null for none. */
  trustedProxies: TrustedProxies | null;
  environ: EnvironDefaults;
  /** Set when the server is stopping: finish the current request, then close. */
  draining: boolean;
  /** What a WebSocket on an upgraded connection may do (--ws-max-message, …). */
  websocket: WebSocketLimits;
  /** --proxy-protocol: every connection starts with a PROXY header. Absent or null: off. */
  proxyProtocol?: ProxyProtocolRule | null;
  /** OpenTelemetry (OTEL_DENO=true): a span and metrics per request. Absent or null: off. */
  telemetry?: Telemetry | null;
}

/** What --proxy-protocol needs: where the connections it closes are logged. */
export interface ProxyProtocolRule {
  /** One line for the first refusal, then a count a second at most: a flood costs a few. */
  refusals: RateLimitedLog;
}

/**
 * Where a connection is, as Go's net/http ConnState says it; each state has its deadline,
 * which the server's sweeper enforces. The transitions:
 *
 *   Idle ──byte──▶ ReadingHead ──head──▶ Active ──response──▶ Idle (keep-alive)
 *   Active ──response, body unread──▶ Draining ──body ended──▶ Idle
 *   Active | ReadingHead | Draining ──closing answer──▶ Lingering ──▶ Closed
 *   any ──end of stream, error, deadline──▶ Closed
 *
 * Idle: --keep-alive (--header-timeout before the first request); ReadingHead:
 * --header-timeout; Active: none (the body's and the response's rates, see data_rate.ts);
 * Draining: the engine's drainTimeoutMs; Lingering: LINGER_MS.
 */
export const enum ConnState {
  /** Waiting for the first byte of a request. */
  Idle,
  /** Some of a head has come in. */
  ReadingHead,
  /** A request is being served. */
  Active,
  /** The response is done; the body the app left unread is being read and dropped. */
  Draining,
  /** An answer that closes the connection was sent; what the client still sends is dropped. */
  Lingering,
  /** A WebSocket owns the connection after a 101; its pings, not a deadline, watch the peer. */
  Upgraded,
  Closed,
}

const BODY_READ_BUFFER = 64 * 1024;
/** An unread body up to this size is read and dropped to keep the connection; past it, close. */
const DRAIN_LIMIT = 256 * 1024;
/** How long, and how much, a closing connection reads and drops after an error answer. */
const LINGER_MS = 2000;
const LINGER_BYTES = 256 * 1024;
/** No socket read is in flight. */
const NOT_READING = 0;
/** A read whose caller awaits it. */
const OWN_READ = 1;
/** What is reading the socket: nobody, an own read, or a watch (the promise of its landing). */
type Reading = typeof NOT_READING | typeof OWN_READ | Promise<void>;

const RESOLVED_FALSE = Promise.resolve(false);
const RESOLVED_NULL = Promise.resolve(null);
const encoder = new TextEncoder();
const CONTINUE = encoder.encode("HTTP/1.1 100 Continue\r\n\r\n");

export class Connection implements ClosePolicy {
  buf: Uint8Array = takeBuffer();
  /** buf as a view of itself, kept so a read into an empty buffer allocates nothing. */
  #wholeView: Uint8Array = this.buf;
  start = 0;
  end = 0;
  state: ConnState = ConnState.Idle;
  /** When the current state's time runs out (ms since the epoch); Infinity for none. */
  deadline: number;
  /** The peer's addresses, or those its PROXY header gave. */
  info: ConnectionInfo;

  readonly #conn: Deno.Conn;
  /** The socket's reads and writes (socket_io.ts). */
  readonly #io: SocketIo;
  readonly #engine: Engine;
  readonly #out: OutputBuffer;
  readonly #scanner = new HeadScanner();
  #requests = 0;
  /**
   * The one socket read that may be in flight. An own read (fill, readInto, linger) is
   * awaited by its caller, and its end-of-stream is the signal's too. A watch, started by
   * requestSignal() while the app runs, lands in the buffer by itself: the next fill() takes
   * its bytes instead of starting a read of its own. Nothing moves the buffer under either.
   */
  #reading: Reading = NOT_READING;
  /** The peer closed its side, or the socket failed: no more bytes will come. */
  #ended = false;
  /** The current request's body, while it is being served. */
  #input: RequestInput | null = null;
  /** The current request body's clock, from its head until the next request's. */
  #bodyClock: TransferClock | null = null;
  /**
   * Fails the body read in progress, when its clock runs out. One at most: tsgi.input lets its
   * reads reach the connection one at a time, however many the app starts at once.
   */
  #cancelBodyWait: ((error: Error) => void) | null = null;
  /**
   * The socket read in flight is into the app's own memory (tsgi.input.readInto): it must be
   * stopped before the app is told its read failed, or it could land there afterwards.
   */
  #readingIntoApp = false;
  /** The WebSocket the current request may become (an Upgrade: websocket request). */
  #upgrade: UpgradeOffer | null = null;
  /** The head of the request being served, for log lines. */
  #head: RequestHead | null = null;
  /** The connection closes on an answer the client may still be sending to: close gently. */
  #lingering = false;
  /** The current request's disconnect signal, made on demand. */
  #abort: AbortController | null = null;
  readonly #signal = () => this.requestSignal();
  /** What a response that keeps the connection says: the Keep-Alive timeout, encoded once. */
  readonly #keepAliveLines: KeepAliveLines;
  /** Waiting for the PROXY header (--proxy-protocol), which comes before any request. */
  #awaitingProxyHeader = false;
  /** The current request's span and metrics, when telemetry is on; ended with its log line. */
  #telemetry: RequestTelemetry | null = null;

  constructor(conn: Deno.Conn, engine: Engine, info: ConnectionInfo) {
    this.#conn = conn;
    this.#engine = engine;
    this.info = info;
    this.#io = socketIo(conn);
    this.#out = new OutputBuffer(this.#io, engine.responseRate);
    this.deadline = coarseNow() + engine.headerTimeoutMs;
    this.#keepAliveLines = keepAliveLines(engine.keepAliveMs);
  }

  /** Serves requests until the connection ends. Never throws. */
  async run(): Promise<void> {
    try {
      const proxy = this.#engine.proxyProtocol;
      if (proxy && !(await this.#readProxyHeader(proxy))) return;
      while (this.state !== ConnState.Closed) {
        this.#bodyClock = null;
        // A head already in the buffer (pipelining) is served without waiting on anything.
        const buffered = this.#bufferedHead();
        const head = buffered === undefined ? await this.#readHead() : buffered;
        if (head === null) break;
        if (head instanceof HttpError) {
          await this.#refuse(undefined, head, this.#clock());
          break;
        }
        let reusable = this.#serve(head);
        if (reusable instanceof Promise) reusable = await reusable;
        if (!reusable) break;
      }
      if (this.state !== ConnState.Closed) await this.#out.flush();
      if (this.#lingering && this.state !== ConnState.Closed) await this.#linger();
    } catch (error) {
      if (!(error instanceof WriteFailedError)) {
        this.#engine.errorLog.error("Connection failed", error);
      }
    } finally {
      this.close();
      this.#releaseBuffers();
      // A request the connection failed in the middle of: its span and count end here.
      this.#telemetry?.abandon();
      this.#telemetry = null;
    }
  }

  /**
   * --proxy-protocol: the header that comes before the first request, within the header
   * timeout (the deadline the connection started with), from a trusted peer only. Its
   * addresses replace the peer's; the bytes after it stay in the buffer for the first head.
   * False when the connection is to be closed: each such is one note in the refusals' log.
   */
  async #readProxyHeader(rule: ProxyProtocolRule): Promise<boolean> {
    const peer = this.info.remoteAddr || "a unix-socket peer";
    if (!this.info.trustedProxy) {
      this.#refuseProxy(rule, `${peer} is not in --forwarded-allow-ips`);
      return false;
    }
    this.#awaitingProxyHeader = true;
    try {
      while (true) {
        const header = parseProxyHeader(this.buf, this.start, this.end);
        if (header instanceof ProxyHeaderError) {
          const what = header.missing
            ? "no PROXY header"
            : `malformed PROXY header (${header.reason})`;
          this.#refuseProxy(rule, `${what} from ${peer}, which sent ${this.#preview()}`);
          return false;
        }
        if (header !== undefined) {
          this.start += header.length;
          const addresses = header.addresses;
          if (addresses === null) {
            // v2 LOCAL is the proxy's own connection; any other header without addresses
            // relays a client nobody named: its forwarding headers are not to be believed.
            if (!header.local) this.info = { ...this.info, trustedProxy: false };
            return true;
          }
          const client = addresses.sourceAddress;
          this.info = {
            ...this.info,
            remoteAddr: client,
            remotePort: String(addresses.sourcePort),
            serverName: addresses.destinationAddress,
            serverPort: String(addresses.destinationPort),
            // The bytes that follow are the client's own: its forwarding headers are believed
            // only if it is a trusted proxy itself.
            trustedProxy: this.#engine.trustedProxies?.trusts(client) ?? false,
          };
          return true;
        }
        if (!(await this.fill())) {
          // The sweeper has said why when the deadline closed it.
          if (this.state !== ConnState.Closed) {
            const sent = this.end > this.start ? `after ${this.#preview()}` : "having sent nothing";
            this.#refuseProxy(rule, `${peer} closed the connection before a PROXY header, ${sent}`);
          }
          return false;
        }
      }
    } finally {
      this.#awaitingProxyHeader = false;
    }
  }

  #refuseProxy(rule: ProxyProtocolRule, why: string): void {
    rule.refusals.note(
      `PROXY protocol: connection closed: ${why}`,
      (count, seconds) =>
        `PROXY protocol: ${count} more connections closed in the last ${seconds} s; the ` +
        `last: ${why}`,
    );
  }

  /** The start of what the peer sent, escaped for the log: `"GET / HTTP/1.1\x0d\x0a…"`. */
  #preview(): string {
    const total = this.end - this.start;
    const shown = this.buf.subarray(this.start, this.start + Math.min(total, 32));
    const more = total > shown.length ? "…" : "";
    return `"${escapeLogField(String.fromCharCode(...shown))}"${more} (${total} bytes)`;
  }

  /**
   * RFC 9112 §9.6: closing both ways while the client still sends would reset the connection
   * and could destroy the answer before it is read. So: write side first, then read and drop
   * what comes, for LINGER_MS and LINGER_BYTES at most (the sweeper holds the deadline).
   */
  async #linger(): Promise<void> {
    if (this.#reading !== NOT_READING || this.#ended) return;
    try {
      await this.#conn.closeWrite();
    } catch {
      return;
    }
    this.state = ConnState.Lingering;
    this.deadline = coarseNow() + LINGER_MS;
    let dropped = 0;
    while (dropped < LINGER_BYTES && this.state === ConnState.Lingering) {
      this.start = this.end = 0;
      const n = await this.#readSocket(this.#wholeView);
      if (n === null) return;
      dropped += n;
    }
  }

  /** Back to the pool, unless a read may still land in the buffer. */
  #releaseBuffers(): void {
    this.#out.release();
    if (this.#reading !== NOT_READING) return;
    giveBuffer(this.buf);
    this.buf = this.#wholeView = RELEASED;
    this.start = this.end = 0;
  }

  /** Requests this connection has begun to serve. */
  get requestsServed(): number {
    return this.#requests;
  }

  /** Closes the socket; a pending read or write then fails, which ends run(). */
  close(): void {
    if (this.state === ConnState.Closed) return;
    this.state = ConnState.Closed;
    // No read starts after this: the buffer may go back to the pool.
    this.#ended = true;
    try {
      this.#conn.close();
    } catch {
      // Already closed by the peer or by a failed write.
    }
  }

  /**
   * Whether a timeout has run out at `now`: the state's deadline, a request body that comes
   * too slowly, or a response the client reads too slowly.
   */
  expired(now: number): boolean {
    if (this.deadline < now) return true;
    if (this.#out.clock.check(now) !== RateVerdict.Ok) return true;
    return this.#bodyClock !== null && this.#bodyClock.check(now) !== RateVerdict.Ok;
  }

  /** The sweeper's call when expired() says so. */
  expire(now: number): void {
    const log = this.#engine.errorLog;
    const peer = this.info.remoteAddr;
    const body = this.#bodyClock;
    const bodyVerdict = body === null ? RateVerdict.Ok : body.check(now);
    if (body !== null && bodyVerdict !== RateVerdict.Ok && this.#cancelBodyWait !== null) {
      const detail = describeSlow(bodyVerdict, body, now);
      log.info(`Request body too slow from ${peer}: ${detail}`);
      // The connection closes after this, so no read of it is wanted again.
      if (this.#readingIntoApp) this.#io.cancelRead();
      // The app's read fails with it: 408 if nothing was sent yet; the connection closes.
      this.#cancelBodyWait(new BodyTimeoutError(detail));
      return;
    }
    const out = this.#out.clock;
    const outVerdict = out.check(now);
    if (outVerdict !== RateVerdict.Ok) {
      const what = outVerdict === RateVerdict.Stalled ? "Write timed out" : "Write too slow";
      log.info(`${what}: ${peer} reads too slowly (${describeSlow(outVerdict, out, now)})`);
    } else if (this.#awaitingProxyHeader && this.#engine.proxyProtocol) {
      const sent = `${this.end - this.start} bytes`;
      this.#refuseProxy(
        this.#engine.proxyProtocol,
        `no PROXY header from ${peer} in time (${sent})`,
      );
    } else if (this.state === ConnState.ReadingHead) {
      log.info(`Request head not received in time from ${peer}`);
    } else if (this.state === ConnState.Draining) {
      log.info(`Unread request body from ${peer} not drained in time`);
    }
    this.close();
  }

  /**
   * Reads more bytes into buf; false at end of stream or when the socket was closed. While a
   * request is served this is a body read, and rejects with BodyTimeoutError when too slow.
   */
  fill(): Promise<boolean> {
    const backlog = this.#out.flushBehind();
    if (backlog || this.#reading !== NOT_READING || this.#bodyClock !== null) {
      return this.#fillWaiting(backlog);
    }
    if (this.#ended) return RESOLVED_FALSE;
    // The common case, a head read: one promise from the socket to the caller, no async frames
    // between (each would cost its allocations on every request).
    this.#makeRoom();
    this.#reading = OWN_READ;
    return this.#io.read(this.end === 0 ? this.#wholeView : this.buf.subarray(this.end))
      .then(this.#filled, this.#fillFailed);
  }

  /** A head read landed: `n` bytes, 0 at the end of the stream. */
  readonly #filled = (n: number): boolean => {
    this.#reading = NOT_READING;
    if (n === 0) {
      this.#readDone(null);
      return false;
    }
    this.end += n;
    return true;
  };

  readonly #fillFailed = (): boolean => this.#filled(0);

  /** fill() behind a write in flight, a watch's read, or on a request body's clock. */
  async #fillWaiting(backlog: Promise<void> | undefined): Promise<boolean> {
    if (backlog) await backlog;
    if (this.#reading instanceof Promise) {
      await this.#waitBody(this.#reading);
      return !this.#ended;
    }
    if (this.#ended) return false;
    this.#makeRoom();
    const n = await this.#waitBody(
      this.#readSocket(this.end === 0 ? this.#wholeView : this.buf.subarray(this.end)),
    );
    if (n !== null) this.end += n;
    return n !== null;
  }

  /** A read while a request is served runs on the body's clock; others are the head's. */
  #waitBody<T>(read: Promise<T>): Promise<T> {
    const clock = this.#bodyClock;
    return clock === null ? read : this.#timedWait(clock, read);
  }

  /**
   * Waits on a read that expire() may cut short. The read itself goes on (a socket read
   * cannot be taken back), and #releaseBuffers() leaves its buffer alone until it lands.
   */
  async #timedWait<T>(clock: TransferClock, read: Promise<T>): Promise<T> {
    clock.begin(coarseNow());
    const cancelled = new Promise<never>((_, reject) => (this.#cancelBodyWait = reject));
    try {
      return await Promise.race([read, cancelled]);
    } finally {
      this.#cancelBodyWait = null;
      clock.end(coarseNow(), 0);
    }
  }

  /** A read of the socket into `view`; null at its end (which also fires the signal). */
  async #readSocket(view: Uint8Array): Promise<number | null> {
    let n: number | null;
    this.#reading = OWN_READ;
    try {
      n = (await this.#io.read(view)) || null;
    } catch {
      n = null;
    } finally {
      this.#reading = NOT_READING;
    }
    if (n === null) this.#readDone(null);
    else this.#bodyClock?.add(n);
    return n;
  }

  /** BodySource.canReadIntoApp: the socket's read in flight can be stopped (socket_io.ts). */
  get canReadIntoApp(): boolean {
    return this.#io.canCancelRead;
  }

  /** BodySource.readInto(): a read past the buffer, for large bodies. */
  async readInto(dest: Uint8Array, appOwned = false): Promise<number | null> {
    const backlog = this.#out.flushBehind();
    if (backlog) await backlog;
    if (this.#reading instanceof Promise || this.end > this.start) {
      if (this.#reading instanceof Promise) await this.#waitBody(this.#reading);
      return this.#ended && this.end === this.start ? null : 0;
    }
    if (this.#ended) return null;
    if (!appOwned) return await this.#waitBody(this.#readSocket(dest));
    this.#readingIntoApp = true;
    try {
      return await this.#waitBody(this.#readSocket(dest));
    } finally {
      this.#readingIntoApp = false;
    }
  }

  /**
   * A read started to watch for a disconnect while the app runs. At most one read is in
   * flight (this, fill()'s or readInto()'s), and nothing moves the buffer while it is: a later
   * fill() takes this read's bytes instead of starting its own.
   */
  #startRead(): void {
    this.#makeRoom();
    const view = this.end === 0 ? this.#wholeView : this.buf.subarray(this.end);
    this.#reading = this.#io.read(view).then(
      (n) => this.#readDone(n || null),
      () => this.#readDone(null),
    );
  }

  #readDone(n: number | null): void {
    this.#reading = NOT_READING;
    if (n === null) {
      this.#ended = true;
      this.#abort?.abort(new ClientGoneError("Client closed the connection"));
    } else {
      this.end += n;
      this.#bodyClock?.add(n);
    }
  }

  /**
   * `environ["tsgi.server.signal"]()`: a signal that aborts when the client goes away before
   * the response is done. Watching costs a read in flight, so it starts only when asked.
   */
  requestSignal(): AbortSignal {
    if (this.#abort === null) {
      this.#abort = new AbortController();
      if (this.#ended) this.#abort.abort(new ClientGoneError("Client closed the connection"));
      // With the buffer full (a pipelined flood) there is nothing to read into: no watch.
      else if (this.#reading === NOT_READING && this.end < this.buf.length) {
        this.#startRead();
      }
    }
    return this.#abort.signal;
  }

  async sendContinue(): Promise<void> {
    await this.#out.append(CONTINUE);
    await this.#out.flush();
  }

  #makeRoom(): void {
    if (this.start === this.end) this.start = this.end = 0;
    if (this.end < this.buf.length) return;
    const used = this.end - this.start;
    if (this.start > 0 && used <= this.buf.length / 2) {
      this.buf.copyWithin(0, this.start, this.end);
    } else {
      const grown = new Uint8Array(this.buf.length * 2);
      grown.set(this.buf.subarray(this.start, this.end));
      this.buf = this.#wholeView = grown;
    }
    this.start = 0;
    this.end = used;
  }

  /** The next head if the buffer holds all of it; undefined when more bytes are needed. */
  #bufferedHead(): RequestHead | HttpError | undefined {
    this.#scanner.reset();
    return this.end === this.start ? undefined : this.#scanHead();
  }

  /**
   * Scans on from where the scanner stopped. A complete head is parsed and taken out of the
   * buffer; undefined when the buffer ends first.
   */
  #scanHead(): RequestHead | HttpError | undefined {
    const scanner = this.#scanner;
    const length = scanner.scan(this.buf, this.start, this.end, this.#engine.limits);
    if (length === 0) return undefined;
    if (length instanceof HttpError) return length;
    const headStart = this.start + scanner.leading;
    this.start += length;
    return parseRequestHead(this.buf, headStart, this.start);
  }

  /** Reads until a head is complete; null when the connection ended between requests. */
  #readHead(): Promise<RequestHead | HttpError | null> {
    const engine = this.#engine;
    // The scanner keeps its place from #bufferedHead()'s look at the partial head.
    this.state = this.end > this.start ? ConnState.ReadingHead : ConnState.Idle;
    this.deadline = coarseNow() +
      (this.#requests > 0 && this.state === ConnState.Idle
        ? engine.keepAliveMs
        : engine.headerTimeoutMs);
    if (engine.draining && this.state === ConnState.Idle && this.#requests > 0) {
      return RESOLVED_NULL;
    }
    return this.fill().then(this.#headFilled);
  }

  // A head that comes in one read (every keep-alive request, nearly) is read by a promise
  // callback, not an async loop, whose frame would be garbage on every request.
  readonly #headFilled = (more: boolean) => {
    if (!more) return null;
    if (this.state === ConnState.Idle) {
      this.state = ConnState.ReadingHead;
      this.deadline = coarseNow() + this.#engine.headerTimeoutMs;
    }
    return this.#scanHead() ?? this.#readRestOfHead();
  };

  /**
   * The rest of a head that takes more reads, in a loop: a callback returning the next read's
   * promise would chain one promise per read, all held until the head is complete (a head sent
   * a byte at a time held ~100 B a byte, up to 6.5 MB per connection at the 64 KiB limit).
   */
  async #readRestOfHead(): Promise<RequestHead | HttpError | null> {
    while (await this.fill()) {
      const head = this.#scanHead();
      if (head !== undefined) return head;
    }
    return null;
  }

  /**
   * Answers a request the server refuses — a malformed head (`head` undefined), a body too
   * large, an environ it cannot build — with its status, and closes: past such a request the
   * stream cannot be trusted.
   */
  #refuse(head: RequestHead | undefined, error: HttpError, began: number): Promise<boolean> {
    this.state = ConnState.Active;
    this.#lingering = true;
    this.#engine.errorLog.info(`${error.status} ${error.message} from ${this.info.remoteAddr}`);
    const response = new ResponseWriter(this.#out, head?.method ?? "GET", head?.minor ?? 1, false);
    response.writeErrorResponse(error.status, true);
    this.#logAccess(head, response, began, undefined);
    return this.#flushThen(false);
  }

  /** Serves one request; true (or a promise of it) when the connection may carry another. */
  #serve(head: RequestHead): boolean | Promise<boolean> {
    const engine = this.#engine;
    this.state = ConnState.Active;
    this.deadline = Infinity;
    this.#requests++;
    this.#head = head;
    const began = this.#clock();
    let input: RequestInput | HttpError | null = null;
    this.#out.clock.restart();
    if (head.bodyKind !== BodyKind.None) {
      input = this.#openInput(head);
      if (input instanceof HttpError) return this.#refuse(head, input, began);
      this.#bodyClock = new TransferClock(engine.bodyRate);
    }
    this.#input = input;
    const environ = buildEnviron(head, this.info, engine.environ, input ?? EMPTY_INPUT);
    if (environ instanceof HttpError) return this.#refuse(head, environ, began);
    environ["tsgi.server.signal"] = this.#signal;
    this.#upgrade = null;
    if (input === null && asksForWebSocket(head, environ)) {
      this.#upgrade = new UpgradeOffer(head, environ, engine.websocket.deflate ?? null);
      environ["tsgi.server.websocket"] = this.#upgrade.take;
    }
    if (this.info.trustedProxy) applyForwarded(environ, engine.trustedProxies as TrustedProxies);
    const response = new ResponseWriter(
      this.#out,
      head.method,
      head.minor,
      head.keepAlive,
      this,
      this.#keepAliveLines,
    );
    const called = engine.telemetry == null
      ? this.#callApp(environ, response)
      : this.#callAppTraced(engine.telemetry, head, environ, response);
    if (called) return called.then(() => this.#afterResponse(head, response, environ, began));
    return this.#afterResponse(head, response, environ, began);
  }

  /** The request being served, as the log shows it: `"GET /path HTTP/1.1" from 10.0.0.1`. */
  #requestLine(): string {
    const head = this.#head;
    const line = head === null ? "-" : `${head.method} ${head.target} ${protocolOf(head)}`;
    return `"${escapeLogField(line)}" from ${this.info.remoteAddr}`;
  }

  /** The WebSocket the app took, when it answered nothing itself: the server writes the 101. */
  #upgradeTaken(response: ResponseWriter): AcceptedUpgrade | null {
    const accepted = this.#upgrade?.accepted ?? null;
    return accepted !== null && !response.started ? accepted : null;
  }

  /**
   * Writes the 101 and gives the connection to the socket, with what the client sent after
   * its handshake; resolves false (no more HTTP) when the socket has ended. The access log
   * line says 101, and how long the socket lived.
   */
  async #handOver(head: RequestHead, upgrade: AcceptedUpgrade, began: number): Promise<boolean> {
    this.#abort = null;
    this.#input = null;
    await this.#out.append(await switchingProtocols(upgrade));
    await this.#out.flush();
    this.state = ConnState.Upgraded;
    this.deadline = Infinity;
    // A read a disconnect watch started is the socket's first: it is handed over pending, so
    // a client silent after its handshake meets the socket's pings, not a wait here.
    const watch = this.#reading instanceof Promise ? this.#reading : null;
    const pending = watch?.then(() => this.buf.slice(this.start, this.end)) ?? null;
    const leftover = watch === null ? this.buf.slice(this.start, this.end) : new Uint8Array(0);
    if (watch === null) {
      this.start = this.end = 0;
      // The HTTP buffers go back to the pool: a socket that lives for hours holds its own only.
      this.#releaseBuffers();
    }
    // Upgraded while the server stops: the socket opens only to be told so (1001).
    if (this.#engine.draining) upgrade.socket.goingAway();
    await upgrade.socket.attach(this.#conn, leftover, this.#engine.websocket, pending);
    this.#logAccess(head, { status: 101, bodyBytes: 0 }, began, undefined);
    return false;
  }

  /** The server is stopping: an upgraded connection's socket closes with 1001. */
  goingAway(): void {
    if (this.state === ConnState.Upgraded) this.#upgrade?.accepted?.socket.goingAway();
  }

  /** The ClosePolicy the response asks when its head is written. */
  closeAfterResponse(): boolean {
    return this.#engine.draining || (this.#input !== null && !canFinishInput(this.#input));
  }

  #afterResponse(
    head: RequestHead,
    response: ResponseWriter,
    environ: Environ,
    began: number,
  ): boolean | Promise<boolean> {
    const upgrade = this.#upgradeTaken(response);
    if (upgrade !== null) return this.#handOver(head, upgrade, began);
    this.#abort = null;
    this.#logAccess(head, response, began, environ);
    const input = this.#input;
    this.#input = null;
    if (!response.keepAlive || this.#engine.draining) return this.#flushThen(false);
    if (input !== null && !input.finished) return this.#finishInput(input);
    // Responses to pipelined requests leave together, flushed when the next read is due.
    return true;
  }

  async #flushThen(reusable: boolean): Promise<boolean> {
    await this.#out.flush();
    return reusable;
  }

  #openInput(head: RequestHead): RequestInput | HttpError {
    const max = this.#engine.maxBodySize;
    if (head.bodyKind === BodyKind.Length && max > 0 && head.contentLength > max) {
      return new HttpError(413, "Request body too large");
    }
    // Large bodies move faster through larger reads; a small one fits the buffer as it is (a
    // connection that only declares a body should cost little). Never move the buffer under a
    // read in flight.
    const fits = head.bodyKind === BodyKind.Length &&
      head.contentLength <= this.buf.length - this.end;
    if (!fits && this.buf.length < BODY_READ_BUFFER && this.#reading === NOT_READING) {
      this.#growReadBuffer();
    }
    return new RequestInput(this, head, max, this.#engine.limits);
  }

  #growReadBuffer(): void {
    const grown = new Uint8Array(BODY_READ_BUFFER);
    grown.set(this.buf.subarray(this.start, this.end));
    this.end -= this.start;
    this.start = 0;
    this.buf = this.#wholeView = grown;
  }

  /** #callApp with the request's span active, from which its end is #logAccess's. */
  #callAppTraced(
    telemetry: Telemetry,
    head: RequestHead,
    environ: Environ,
    response: ResponseWriter,
  ): Promise<void> | undefined {
    // The request body's size when its framing says it (none for chunked).
    const size = head.bodyKind === BodyKind.Chunked ? -1 : head.contentLength;
    const request = this.#telemetry = telemetry.start(environ, size);
    return request.run(() => this.#callApp(environ, response));
  }

  /** Calls the app and sends its response; undefined when nothing had to be awaited. */
  #callApp(environ: Environ, response: ResponseWriter): Promise<void> | undefined {
    let result: Body | Promise<Body>;
    try {
      result = this.#engine.app(environ, response.startResponse);
    } catch (error) {
      return this.#appFailed(error, response);
    }
    if (result instanceof Promise) return this.#callAppAsync(result, response);
    return this.#send(result, response);
  }

  #callAppAsync(result: Promise<Body>, response: ResponseWriter): Promise<void> {
    // Responses to earlier pipelined requests wait in the buffer: a slow app must not hold
    // them back, a quick one should see its answer leave with them (late_flush.ts).
    if (this.#out.length > 0) flushLater(this.#out);
    return result.then(
      (body) => this.#send(body, response),
      (error) => this.#appFailed(error, response),
    );
  }

  /** Sends the app's body; undefined when nothing had to be awaited. Closes the body. */
  #send(body: Body, response: ResponseWriter): Promise<void> | undefined {
    let sent: Promise<void> | undefined;
    try {
      if (this.#upgradeTaken(response) === null) sent = response.send(body);
    } catch (error) {
      const failed = this.#appFailed(error, response);
      this.#closeBody(body);
      return failed;
    }
    if (sent) return this.#awaitSent(sent, body, response);
    this.#closeBody(body);
    return undefined;
  }

  async #awaitSent(sent: Promise<void>, body: Body, response: ResponseWriter): Promise<void> {
    try {
      await sent;
    } catch (error) {
      await this.#appFailed(error, response);
    } finally {
      this.#closeBody(body);
    }
  }

  /** docs/tsgi.md: close() is called exactly once, however the response ended. */
  #closeBody(body: Body): void {
    const close = (body as { close?: unknown })?.close;
    if (typeof close !== "function") return;
    try {
      const result = close.call(body);
      if (result instanceof Promise) {
        result.catch((error) => this.#engine.errorLog.error("Body close() failed", error));
      }
    } catch (error) {
      this.#engine.errorLog.error("Body close() failed", error);
    }
  }

  #appFailed(error: unknown, response: ResponseWriter): Promise<void> | undefined {
    const log = this.#engine.errorLog;
    if (error instanceof WriteFailedError || error instanceof ClientGoneError) {
      log.debug(`${error.message} (${this.info.remoteAddr})`);
      this.#abort?.abort(error);
      response.keepAlive = false;
      this.close();
      return undefined;
    }
    const status = error instanceof HttpError ? error.status : 500;
    if (error instanceof BodyTimeoutError) {
      // expire() said so when it happened.
    } else if (error instanceof HttpError) {
      log.info(`${status} ${error.message} from ${this.info.remoteAddr}`);
    } else if (error instanceof AppError) {
      log.error(`App error: ${error.message} (${this.#requestLine()})`);
    } else log.error(`App raised an exception (${this.#requestLine()})`, error);
    // A body error means the stream is out of step; after our own 500 it is still in step.
    const closeAfter = error instanceof HttpError;
    this.#lingering ||= closeAfter && !(error instanceof BodyTimeoutError);
    const headerLines = error instanceof HttpError ? error.headerLines : "";
    if (response.writeErrorResponse(status, closeAfter, headerLines)) return undefined;
    log.error(`Response aborted: the app failed after its head was sent (${this.#requestLine()})`);
    response.keepAlive = false;
    return this.#abortResponse();
  }

  /**
   * Earlier pipelined responses are whole and go out; this one ends short, and closing the
   * connection tells the client so.
   */
  async #abortResponse(): Promise<void> {
    await this.#out.flush().catch(() => {});
    this.close();
  }

  /** After the response: reach the end of the body, or give up the connection. */
  async #finishInput(input: RequestInput): Promise<boolean> {
    this.state = ConnState.Draining;
    this.deadline = coarseNow() + this.#engine.drainTimeoutMs;
    const reusable = canFinishInput(input) && await input.drain(DRAIN_LIMIT);
    this.#lingering = !reusable;
    if (!reusable) await this.#out.flush();
    return reusable;
  }

  /** A timestamp for the access log's duration; free when there is no access log. */
  #clock(): number {
    return this.#engine.accessLog === null ? 0 : performance.now();
  }

  #logAccess(
    head: RequestHead | undefined,
    response: { status: number; bodyBytes: number },
    began: number,
    env: Environ | undefined,
  ): void {
    if (this.#telemetry !== null) {
      this.#telemetry.end(response.status, response.bodyBytes);
      this.#telemetry = null;
    }
    const accessLog = this.#engine.accessLog;
    if (accessLog === null) return;
    accessLog.write({
      remoteAddr: this.info.remoteAddr,
      method: head?.method ?? "-",
      target: head?.target ?? "-",
      protocol: head ? protocolOf(head) : "-",
      status: response.status,
      bytesSent: response.bodyBytes,
      referer: env?.HTTP_REFERER as string | undefined,
      userAgent: env?.HTTP_USER_AGENT as string | undefined,
      duration: (performance.now() - began) / 1000,
    });
  }
}

/** Whether what is left of a body can be read and dropped to keep the connection. */
function canFinishInput(input: RequestInput): boolean {
  if (input.failure) return false;
  if (input.finished) return true;
  // The client was never told to send its body: it may or may not, so the stream is lost.
  if (!input.bodyRequested) return false;
  return input.remainingOnWire <= DRAIN_LIMIT;
}

function protocolOf(head: RequestHead): string {
  return head.minor === 1 ? "HTTP/1.1" : "HTTP/1.0";
}

function describeSlow(verdict: RateVerdict, clock: TransferClock, now: number): string {
  const why = verdict === RateVerdict.Stalled ? "stalled" : "below the minimum rate";
  return `${why}, ${clock.describe(now)}`;
}
