// A server-side WebSocket on a connection the HTTP engine has handed over after its 101: the
// API of `Deno.upgradeWebSocket`'s socket (events, send, close, readyState, bufferedAmount) over
// RFC 6455 framing (src/http/websocket_frames.ts), with pings answered, the close handshake,
// a ping deadline for a peer gone quiet, and writes that wait on the peer
// (src/server/websocket_output.ts), so a client that reads nothing is cut off, not buffered for.

import {
  CLOSE_CODE,
  closePayload,
  encodeFrame,
  FrameDecoder,
  frameHeaderSize,
  type Incoming,
  isSendableCloseCode,
  OPCODE,
  RSV1,
  WebSocketProtocolError,
} from "../http/websocket_frames.ts";
import type { DeflateAgreement, DeflatePolicy } from "../http/websocket_deflate.ts";
import { type MessageCompression, openCompression } from "./websocket_compression.ts";
import { socketIo } from "./socket_io.ts";
import { FrameOutput } from "./websocket_output.ts";
import { SocketReads } from "./websocket_reads.ts";

/** How a socket behaves; the server's flags set these. */
export interface WebSocketLimits {
  /** The largest message accepted (all its fragments); larger is close 1009. */
  maxMessage: number;
  /** A ping every this many ms; a peer that has not answered one by the next is closed. 0: no pings. */
  pingIntervalMs: number;
  /** permessage-deflate's terms (--ws-deflate), or null: not offered. */
  deflate?: DeflatePolicy | null;
}

/** What the socket is doing (the WebSocket API's readyState values). */
export const enum ReadyState {
  CONNECTING = 0,
  OPEN = 1,
  CLOSING = 2,
  CLOSED = 3,
}

type Handler<E extends Event> = ((this: ServerWebSocket, event: E) => unknown) | null;

const encoder = new TextEncoder();
/** The most bytes queued for a peer that does not read, beyond one largest message. */
const MAX_BUFFERED = 16 * 1024 * 1024;
/** The largest control frame: two bytes of header and 125 of payload. */
const MAX_CONTROL_FRAME = 127;
/** Past this many bytes waiting to be written, the peer is not read from until they go. */
const PAUSE_READING_AT = 1024 * 1024;
/** How long a close handshake may take before the connection is cut. */
const CLOSE_TIMEOUT_MS = 5000;

/** The socket an app holds. Events fire once the server has attached it to its connection. */
export class ServerWebSocket extends EventTarget {
  static readonly CONNECTING = ReadyState.CONNECTING;
  static readonly OPEN = ReadyState.OPEN;
  static readonly CLOSING = ReadyState.CLOSING;
  static readonly CLOSED = ReadyState.CLOSED;

  readonly url: string;
  readonly protocol: string;
  /** The permessage-deflate agreed, as the 101 said it; "" for none. */
  readonly extensions: string;
  binaryType: BinaryType = "blob";
  onopen: Handler<Event> = null;
  onmessage: Handler<MessageEvent> = null;
  onclose: Handler<CloseEvent> = null;
  onerror: Handler<Event> = null;

  #state = ReadyState.CONNECTING;
  #conn: Deno.Conn | null = null;
  #limits: WebSocketLimits | null = null;
  /** What send() and the protocol queue, written in order once attached. */
  readonly #output = new FrameOutput(() => this.#finish(CLOSE_CODE.ABNORMAL, "", false));
  #closeSent = false;
  #closeTimer: ReturnType<typeof setTimeout> | undefined;
  #pingTimer: ReturnType<typeof setInterval> | undefined;
  #awaitingPong = false;
  /** The latest ping's payload, for the one pong that may wait to be written. */
  #pongPayload: Uint8Array = new Uint8Array(0);
  #pongQueued = false;
  /** The connection was closed: queued writes are dropped. */
  #cutOff = false;
  /** The URL's origin, for each message event. */
  readonly #origin: string;
  readonly #deflate: DeflateAgreement | null;
  /** Inflates and deflates messages while attached, when permessage-deflate was agreed. */
  #compression: MessageCompression | null = null;

  constructor(url: string, protocol: string, deflate: DeflateAgreement | null = null) {
    super();
    this.url = url;
    this.protocol = protocol;
    this.extensions = deflate?.header ?? "";
    this.#deflate = deflate;
    this.#origin = new URL(url).origin;
  }

  get readyState(): number {
    return this.#state;
  }

  /** Bytes sent and not yet written, frame headers included. */
  get bufferedAmount(): number {
    return this.#output.queued;
  }

  /** Sends a message: a string as text; bytes, an ArrayBuffer or a Blob as binary. */
  send(data: string | ArrayBufferLike | ArrayBufferView | Blob): void {
    if (this.#state === ReadyState.CONNECTING) {
      throw new DOMException("The socket is not open yet", "InvalidStateError");
    }
    if (this.#state !== ReadyState.OPEN) return;
    if (typeof data === "string") return this.#queueMessage(OPCODE.TEXT, encoder.encode(data));
    if (data instanceof Blob) {
      // Kept in order with the messages after it: its bytes are read when its turn comes.
      // Never compressed: a context the messages sent meanwhile went through cannot take it.
      const frame = async () =>
        encodeFrame(OPCODE.BINARY, new Uint8Array(await data.arrayBuffer()));
      return this.#queueLater(frame, frameHeaderSize(data.size) + data.size);
    }
    // The output copies the bytes at once: later changes do not show.
    const bytes = ArrayBuffer.isView(data)
      ? new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
      : new Uint8Array(data as ArrayBuffer);
    this.#queueMessage(OPCODE.BINARY, bytes);
  }

  /** Starts the close handshake (code 1000, or 3000–4999 from an app). */
  close(code?: number, reason = ""): void {
    if (code !== undefined && code !== 1000 && (code < 3000 || code > 4999)) {
      throw new DOMException(`Invalid close code ${code}`, "InvalidAccessError");
    }
    if (this.#state >= ReadyState.CLOSING) return;
    this.#state = ReadyState.CLOSING;
    this.#sendClose(code ?? CLOSE_CODE.NORMAL, reason);
  }

  /**
   * The server's side: the 101 is out, `conn` is the socket's now, `leftover` what the client
   * sent after its handshake. Resolves when the connection has ended.
   */
  async attach(
    conn: Deno.Conn,
    leftover: Uint8Array,
    limits: WebSocketLimits,
    pending: Promise<Uint8Array> | null = null,
  ): Promise<void> {
    const compression = this.#deflate === null
      ? null
      : await openCompression(this.#deflate, limits.maxMessage);
    this.#conn = conn;
    this.#limits = limits;
    const wasClosing = this.#state === ReadyState.CLOSING;
    if (!wasClosing) this.#state = ReadyState.OPEN;
    // The socket's own ops, as the HTTP side reads and writes it (socket_io.ts): a message
    // each way per round trip, and each of Deno.Conn's wrappers costs its promise and frame.
    const io = socketIo(conn);
    this.#output.start(io);
    this.#fire("open", new Event("open"));
    this.#startPings();
    if (this.#deflate !== null && compression === null) {
      // Agreed before the server found this runtime's node:zlib wanting (prepareZlib()).
      this.#fail(CLOSE_CODE.INTERNAL_ERROR, "permessage-deflate is unavailable");
      await this.#output.drained();
      return;
    }
    this.#compression = compression;
    const decoder = new FrameDecoder(limits.maxMessage, compression);
    const reads = new SocketReads();
    try {
      if (leftover.length > 0) this.#handleAll(decoder.push(leftover));
      // A read the HTTP side had in flight is this socket's first (pings already run).
      if (pending !== null) this.#handleAll(decoder.push(await pending));
      while (this.#state !== ReadyState.CLOSED && decoder.failure === null) {
        // A peer that does not read what it is sent is not read from either: what it sends
        // (pings, say) would only pile up answers.
        if (this.#output.queued > PAUSE_READING_AT) await this.#output.drained();
        // The rest of a large frame is read straight into its message, not copied there.
        const buf = reads.current;
        const room = decoder.room(buf.length);
        const n = await io.read(room ?? buf);
        if (n === 0) break;
        if (room !== null) this.#handleAll(decoder.filled(n));
        else {
          this.#handleAll(decoder.push(buf.subarray(0, n)));
          reads.read(n);
        }
      }
    } catch {
      // The connection failed: an abnormal close, below.
    } finally {
      reads.release();
      decoder.dispose();
    }
    const failure: WebSocketProtocolError | null = decoder.failure;
    if (failure !== null) this.#fail(failure.code, failure.message);
    else this.#finish(CLOSE_CODE.ABNORMAL, "", false);
    // Once closed: the events above may still have sent.
    compression?.dispose();
    this.#compression = null;
    await this.#output.drained();
  }

  /** The server is stopping: close 1001, and the connection within the handshake's time. */
  goingAway(): void {
    if (this.#state >= ReadyState.CLOSING) return;
    this.#state = ReadyState.CLOSING;
    this.#sendClose(CLOSE_CODE.GOING_AWAY, "server stopping");
  }

  #handleAll(incoming: Incoming[]): void {
    for (const item of incoming) this.#handle(item);
  }

  #handle(item: Incoming): void {
    switch (item.kind) {
      case "text":
        if (this.#state === ReadyState.OPEN) this.#message(item.data);
        return;
      case "binary":
        if (this.#state === ReadyState.OPEN) {
          // The decoder's own array, exactly the message: its buffer is the message's.
          const data = item.data as Uint8Array<ArrayBuffer>;
          this.#message(this.binaryType === "blob" ? new Blob([data]) : data.buffer);
        }
        return;
      case "ping":
        if (!this.#closeSent) this.#pong(item.data);
        return;
      case "pong":
        this.#awaitingPong = false;
        return;
      case "close":
        this.#closeReceived(item.code, item.reason);
        return;
    }
  }

  #message(data: string | ArrayBuffer | Blob): void {
    this.#fire("message", new MessageEvent("message", { data, origin: this.#origin }));
  }

  /** §5.5.1: echo the code (or send none for none), then the connection ends. */
  #closeReceived(code: number, reason: string): void {
    if (!this.#closeSent) {
      this.#state = ReadyState.CLOSING;
      this.#sendClose(code === CLOSE_CODE.NO_STATUS ? -1 : code, "");
    }
    this.#finish(code, reason, true);
  }

  #fail(code: number, reason: string): void {
    this.#fire("error", new ErrorEvent("error", { message: reason }));
    if (!this.#closeSent) this.#sendClose(code, reason.slice(0, 100));
    this.#finish(code, reason, false);
  }

  /** Sends a close frame (none when `code` is -1: an empty one) and bounds the handshake. */
  #sendClose(code: number, reason: string): void {
    if (this.#closeSent) return;
    this.#closeSent = true;
    const payload = code < 0 || !isSendableCloseCode(code)
      ? new Uint8Array(0)
      : closePayload(code, reason);
    this.#queue(OPCODE.CLOSE, payload);
    this.#closeTimer = setTimeout(() => this.#cut(), CLOSE_TIMEOUT_MS);
  }

  /** The end: the close event once, the connection closed after what was queued went out. */
  #finish(code: number, reason: string, wasClean: boolean): void {
    if (this.#state === ReadyState.CLOSED) return;
    this.#state = ReadyState.CLOSED;
    clearInterval(this.#pingTimer);
    this.#output.drained().then(() => this.#cut());
    this.#fire("close", new CloseEvent("close", { code, reason, wasClean }));
  }

  /**
   * §5.5.3: a pong with the ping's payload, as soon as practical — and only one waiting at a
   * time, for the latest ping (the RFC allows it), so a flood of pings queues nothing.
   */
  #pong(payload: Uint8Array): void {
    this.#pongPayload = payload;
    if (this.#pongQueued) return;
    this.#pongQueued = true;
    // In its place in the queue; its payload is the latest ping's when its turn comes.
    this.#queueLater(() => {
      this.#pongQueued = false;
      return encodeFrame(OPCODE.PONG, this.#pongPayload);
    }, MAX_CONTROL_FRAME);
  }

  #cut(): void {
    this.#cutOff = true;
    this.#output.stop();
    clearTimeout(this.#closeTimer);
    try {
      this.#conn?.close();
    } catch {
      // Closed already.
    }
  }

  #startPings(): void {
    const interval = this.#limits?.pingIntervalMs ?? 0;
    if (interval <= 0) return;
    this.#pingTimer = setInterval(() => {
      if (this.#awaitingPong) return this.#fail(CLOSE_CODE.GOING_AWAY, "no pong in time");
      this.#awaitingPong = true;
      this.#queue(OPCODE.PING, new Uint8Array(0));
    }, interval);
    Deno.unrefTimer(this.#pingTimer);
  }

  /** A data message: deflated first when permessage-deflate was agreed and it pays. */
  #queueMessage(opcode: number, payload: Uint8Array): void {
    const compressed = this.#compression?.deflate(payload) ?? null;
    if (compressed === null) this.#queue(opcode, payload);
    else this.#queue(opcode | RSV1, compressed);
  }

  /** Queues a frame; bufferedAmount counts it until it is written. */
  #queue(opcode: number, payload: Uint8Array): void {
    if (this.#admits(frameHeaderSize(payload.length) + payload.length)) {
      this.#output.frame(opcode, payload);
    }
  }

  /** Queues a frame made when its turn comes, counted as `size` until then. */
  #queueLater(make: () => Uint8Array | Promise<Uint8Array>, size: number): void {
    if (this.#admits(size)) this.#output.deferred(make, size);
  }

  /**
   * Whether `size` more bytes may wait. A peer that reads nothing while the app keeps sending
   * is cut off past MAX_BUFFERED, rather than the server holding without bound what it will
   * not take.
   */
  #admits(size: number): boolean {
    if (this.#cutOff) return false;
    const bound = MAX_BUFFERED + (this.#limits?.maxMessage ?? 0);
    if (this.#output.queued + size <= bound) return true;
    this.#fire("error", new ErrorEvent("error", { message: "peer does not read" }));
    this.#finish(CLOSE_CODE.POLICY_VIOLATION, "peer does not read", false);
    this.#cut();
    return false;
  }

  #fire(type: string, event: Event): void {
    const handler =
      (type === "open"
        ? this.onopen
        : type === "message"
        ? this.onmessage
        : type === "close"
        ? this.onclose
        : this.onerror) as Handler<Event>;
    try {
      handler?.call(this, event);
    } catch (error) {
      reportError(error);
    }
    this.dispatchEvent(event);
  }
}
