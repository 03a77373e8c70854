// permessage-deflate's data path (RFC 7692 §7.2): a socket's messages inflated, with the
// inflated size capped while inflating, and deflated, over node:zlib driven synchronously.
// Without context takeover (the default) a process shares one inflater and one deflater per
// window size, reset after every message: an idle socket holds no zlib state at all.

import type * as NodeZlib from "node:zlib";
import type { DeflateAgreement } from "../http/websocket_deflate.ts";
import { MIN_DEFLATE_WINDOW_BITS } from "../http/websocket_deflate.ts";
import { join, WebSocketProtocolError } from "../http/websocket_frames.ts";

/**
 * node:zlib, loaded by loadZlib() on a server that offers permessage-deflate only: importing it
 * brings in Node's compatibility layer, and with it the --isolate master streamed 50 MB with
 * 70 MiB more RSS than without (tests/isolate/isolate_test.ts).
 */
let zlib: typeof NodeZlib | null = null;
let loading: Promise<void> | null = null;
/** Z_SYNC_FLUSH (zlib.h), a constant. */
const Z_SYNC_FLUSH = 2;

/** Loads node:zlib once; MessageCompression needs it loaded. */
export function loadZlib(): Promise<void> {
  return loading ??= import("node:zlib").then((module) => {
    zlib = module.default;
  });
}

/** Whether this runtime's node:zlib has the handle ZlibStream drives; undefined: not known yet. */
let usable: boolean | undefined;

/**
 * Loads node:zlib and checks its handle, on a server that offers permessage-deflate, well
 * before a client asks: the handle is node's internal one, and a runtime without it gets plain
 * WebSockets (one log line says so) rather than sockets that fail after their 101.
 */
export function prepareZlib(warn: (line: string) => void): void {
  const refuse = (why: string) => {
    usable = false;
    warn(`permessage-deflate is off: ${why}; --ws-deflate sockets open uncompressed`);
  };
  loadZlib().then(() => {
    if (handleWorks()) usable = true;
    else refuse("this runtime's node:zlib has no synchronous stream handle");
  }, (error) => refuse(`node:zlib did not load (${error})`));
}

/**
 * False once prepareZlib() found no handle: sockets no longer agree to deflate then. Before it
 * knows, they do (a socket's attach() waits for node:zlib, and fails with 1011 without it).
 */
export function zlibUsable(): boolean {
  return usable !== false;
}

/**
 * A socket's compression, once node:zlib is loaded; null where it did not load or, as
 * prepareZlib() found, lacks the handle ZlibStream drives.
 */
export async function openCompression(
  agreement: DeflateAgreement,
  maxMessage: number,
): Promise<MessageCompression | null> {
  const loaded = await loadZlib().then(() => true, () => false);
  return loaded && zlibUsable() ? new MessageCompression(agreement, maxMessage) : null;
}

function handleWorks(): boolean {
  try {
    const stream = new ZlibStream("deflate", 15);
    const out: Uint8Array[] = [];
    stream.write(Uint8Array.of(0x61), out, 0, 1024);
    stream.close();
    return out.length > 0;
  } catch {
    return false;
  }
}
/** §7.2.1: what a sync flush ends with, removed by the sender and put back by the receiver. */
const TAIL = Uint8Array.of(0x00, 0x00, 0xff, 0xff);
/** The output buffer zlib writes into; what it produced is copied out of it. */
const SCRATCH_SIZE = 64 * 1024;
const scratch = new Uint8Array(SCRATCH_SIZE);
/**
 * Messages shorter than this are sent as they are (RSV1 clear, §6): under it deflate saves a
 * few bytes (5% of 64 bytes of JSON) for 3–6 µs.
 */
const COMPRESS_FROM = 256;
/**
 * zlib's fastest level: 16 KiB of JSON-like text deflates at ~560 MiB/s to 1/3.5 of its size,
 * against ~130 MiB/s and 1/5.75 at zlib's default (6), which ws and python's websockets use.
 */
const LEVEL = 1;

/**
 * The zlib handle behind a node:zlib stream: the binding node's own *Sync functions drive, used
 * here for a stream that persists across calls (their one-shot calls close it, and create a
 * fresh stream per call: 10–20 µs a message against ~1.5 µs).
 */
interface ZlibHandle {
  writeSync(
    flush: number,
    input: Uint8Array,
    inOffset: number,
    inLength: number,
    output: Uint8Array,
    outOffset: number,
    outLength: number,
  ): void;
  onerror: (message: string, errno: number) => void;
  reset(): void;
  close(): void;
}

/** One raw deflate or inflate stream, fed synchronously. */
class ZlibStream {
  readonly #handle: ZlibHandle;
  /** After each write: [output space left, input left]. */
  readonly #state: Uint32Array;
  #error: string | null = null;

  constructor(kind: "deflate" | "inflate", windowBits: number) {
    // chunkSize 64 (the least): the stream's own output buffer goes unused.
    if (zlib === null) throw new Error("loadZlib() first");
    const stream = kind === "deflate"
      ? zlib.createDeflateRaw({ windowBits, level: LEVEL, chunkSize: 64 })
      : zlib.createInflateRaw({ windowBits, chunkSize: 64 });
    const inner = stream as unknown as { _handle?: ZlibHandle; _writeState?: Uint32Array };
    if (
      typeof inner._handle?.writeSync !== "function" || !(inner._writeState instanceof Uint32Array)
    ) {
      throw new Error("node:zlib's stream has no synchronous handle");
    }
    this.#handle = inner._handle;
    this.#state = inner._writeState;
    this.#handle.onerror = (message) => (this.#error = message);
  }

  /** The last write met the end of the stream (a block with BFINAL set) with input left. */
  ended = false;

  /**
   * Feeds `input` with a sync flush, appending copies of what comes out to `out`; returns the
   * total produced, `produced` included, or -1 as soon as that passes `limit`. A zlib error
   * throws ZlibError (the stream is then to be reset).
   */
  write(input: Uint8Array, out: Uint8Array[], produced: number, limit: number): number {
    let inAt = 0;
    for (;;) {
      const h = this.#handle;
      h.writeSync(Z_SYNC_FLUSH, input, inAt, input.length - inAt, scratch, 0, SCRATCH_SIZE);
      if (this.#error !== null) throw new ZlibError(this.#error);
      const [outLeft, inLeft] = this.#state;
      const n = SCRATCH_SIZE - outLeft;
      produced += n;
      // Checked chunk by chunk: a bomb never inflates more than a chunk past the limit.
      if (produced > limit) return -1;
      if (n > 0) out.push(scratch.slice(0, n));
      inAt = input.length - inLeft;
      // Output space left: zlib took all it could (at the stream's end, not all it was given).
      if (outLeft !== 0) {
        this.ended = inLeft > 0;
        return produced;
      }
    }
  }

  reset(): void {
    this.#error = null;
    this.#handle.reset();
  }

  close(): void {
    this.#handle.close();
  }
}

class ZlibError extends Error {}

/** Streams shared by every socket without context takeover: each is reset after a message. */
let sharedInflater: ZlibStream | null = null;
const sharedDeflaters = new Map<number, ZlibStream>();

/** A socket's compression: its own streams with context takeover, the shared ones without. */
export class MessageCompression {
  readonly #agreement: DeflateAgreement;
  readonly #maxMessage: number;
  #inflater: ZlibStream | null = null;
  #deflater: ZlibStream | null = null;

  constructor(agreement: DeflateAgreement, maxMessage: number) {
    this.#agreement = agreement;
    this.#maxMessage = maxMessage;
  }

  /**
   * A compressed message's payload (its fragments, in order) inflated. Larger than the message
   * limit is 1009, found while inflating; data that is not deflate is 1007, as ws has it.
   */
  inflate(parts: Uint8Array[]): Uint8Array {
    const own = this.#agreement.clientTakeover;
    const stream = own ? (this.#inflater ??= this.#newInflater()) : sharedInflate();
    const out: Uint8Array[] = [];
    let produced = 0;
    try {
      for (const part of [...parts, TAIL]) {
        produced = stream.write(part, out, produced, this.#maxMessage);
        if (produced === -1) {
          throw new WebSocketProtocolError(1009, `Message larger than ${this.#maxMessage} bytes`);
        }
        // Input left over: the stream ended (a block with BFINAL set). Only the tail may follow
        // it; the peer's next message then starts a stream of its own.
        if (stream.ended) {
          if (part !== TAIL) throw new ZlibError("data after the end of the deflate stream");
          stream.reset();
        }
      }
    } catch (error) {
      stream.reset();
      if (error instanceof ZlibError) {
        throw new WebSocketProtocolError(1007, `Invalid compressed data: ${error.message}`);
      }
      throw error;
    }
    if (!own) stream.reset();
    return join(out, produced);
  }

  /** A message's payload deflated (tail removed), or null to send it as it is. */
  deflate(payload: Uint8Array): Uint8Array | null {
    if (payload.length < COMPRESS_FROM) return null;
    const own = this.#agreement.serverTakeover;
    const bits = this.#agreement.serverWindowBits;
    const stream = own ? (this.#deflater ??= newDeflater(bits)) : sharedDeflate(bits);
    const out: Uint8Array[] = [];
    const produced = stream.write(payload, out, 0, Infinity);
    if (!own) {
      stream.reset();
      // Without takeover no context depends on it: data deflate only grows goes as it is.
      if (produced - TAIL.length >= payload.length) return null;
    }
    return join(out, produced).subarray(0, produced - TAIL.length);
  }

  /** The socket ended: its own streams are freed. */
  dispose(): void {
    this.#inflater?.close();
    this.#deflater?.close();
    this.#inflater = this.#deflater = null;
  }

  #newInflater(): ZlibStream {
    // zlib may have compressed with 9 where 8 was agreed; a wider window inflates either.
    const bits = Math.max(this.#agreement.clientWindowBits, MIN_DEFLATE_WINDOW_BITS);
    return new ZlibStream("inflate", bits);
  }
}

function sharedInflate(): ZlibStream {
  return sharedInflater ??= new ZlibStream("inflate", 15);
}

function sharedDeflate(bits: number): ZlibStream {
  let stream = sharedDeflaters.get(bits);
  if (stream === undefined) sharedDeflaters.set(bits, stream = newDeflater(bits));
  return stream;
}

/**
 * A deflater for `bits` of window. (Its memory does not follow zlib's 2^(bits+2) +
 * 2^(memLevel+9) here: Deno's zlib takes ~145 KiB per deflater whatever the two, measured.)
 */
function newDeflater(bits: number): ZlibStream {
  return new ZlibStream("deflate", bits);
}
