// A raw WebSocket client that offers permessage-deflate (Deno's own WebSocket offers none), for
// bench/ws_deflate_bench.ts: one socket, messages sent masked (and compressed when the server
// agreed), the server's messages inflated; the compression is tsgi's own
// (src/server/websocket_compression.ts) with the sides swapped. Binary messages only.

import { loadZlib, MessageCompression } from "../src/server/websocket_compression.ts";
import type { DeflateAgreement } from "../src/http/websocket_deflate.ts";

const OPEN_TIMEOUT_MS = 20_000;

export class DeflateClient {
  readonly extensions: string;
  /**
   * Called with each message's payload, inflated unless `inflate` is false (a load client that
   * only counts replies leaves the work to the server).
   */
  onmessage: ((data: Uint8Array, compressed: boolean) => void) | null = null;
  inflate = true;
  /** Without context takeover a message compresses the same every time: the last one kept. */
  #last: { payload: Uint8Array; compressed: Uint8Array | null } | null = null;
  readonly #conn: Deno.Conn;
  readonly #compression: MessageCompression | null;
  #buffer: Uint8Array = new Uint8Array(0);

  private constructor(conn: Deno.Conn, extensions: string, leftover: Uint8Array) {
    this.#conn = conn;
    this.extensions = extensions;
    this.#compression = extensions === ""
      ? null
      : new MessageCompression(clientSide(extensions), Number.MAX_SAFE_INTEGER);
    this.#buffer = leftover;
    this.#readLoop();
  }

  /** Connects to ws://host:port/path, offering `offer` (null: no Sec-WebSocket-Extensions). */
  static async open(url: string, offer: string | null): Promise<DeflateClient> {
    await loadZlib();
    const { hostname, port, pathname } = new URL(url);
    const conn = await Deno.connect({ hostname, port: Number(port) });
    const field = offer === null ? "" : `Sec-WebSocket-Extensions: ${offer}\r\n`;
    await writeAll(
      conn,
      new TextEncoder().encode(
        `GET ${pathname} HTTP/1.1\r\nHost: ${hostname}\r\nUpgrade: websocket\r\n` +
          "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
          `Sec-WebSocket-Version: 13\r\n${field}\r\n`,
      ),
    );
    let head: Uint8Array = new Uint8Array(0);
    const deadline = Date.now() + OPEN_TIMEOUT_MS;
    for (;;) {
      const end = indexOfBlankLine(head);
      if (end >= 0) {
        const text = new TextDecoder().decode(head.subarray(0, end));
        if (!text.startsWith("HTTP/1.1 101 ")) throw new Error(`no 101: ${text.slice(0, 80)}`);
        const extensions = /\r\nsec-websocket-extensions: *([^\r]*)/i.exec(text)?.[1] ?? "";
        return new DeflateClient(conn, extensions, head.slice(end + 4));
      }
      if (Date.now() > deadline) throw new Error("no 101 in time");
      const chunk = new Uint8Array(4096);
      const n = await conn.read(chunk);
      if (n === null) throw new Error("closed during the handshake");
      head = concat(head, chunk.subarray(0, n));
    }
  }

  /** Sends one binary message (compressed when agreed and it pays). */
  send(payload: Uint8Array): Promise<void> {
    const compressed = this.#compressed(payload);
    const body = compressed ?? payload;
    const b0 = 0x80 | (compressed === null ? 0 : 0x40) | 0x2;
    const n = body.length;
    const head = n < 126 ? [b0, 0x80 | n] : n < 65536 ? [b0, 0x80 | 126, n >> 8, n & 0xff] : [
      b0,
      0x80 | 127,
      0,
      0,
      0,
      0,
      (n >>> 24) & 0xff,
      (n >> 16) & 0xff,
      (n >> 8) & 0xff,
      n & 0xff,
    ];
    // A zero mask: valid framing, and no work on this side (the server unmasks all the same).
    const frame = new Uint8Array(head.length + 4 + n);
    frame.set(head);
    frame.set(body, head.length + 4);
    return writeAll(this.#conn, frame);
  }

  #compressed(payload: Uint8Array): Uint8Array | null {
    if (this.#last?.payload === payload) return this.#last.compressed;
    const compressed = this.#compression?.deflate(payload)?.slice() ?? null;
    if (!this.extensions.includes("client_no_context_takeover")) return compressed;
    this.#last = { payload, compressed };
    return compressed;
  }

  close(): void {
    try {
      this.#conn.close();
    } catch {
      // Closed already.
    }
    this.#compression?.dispose();
  }

  async #readLoop(): Promise<void> {
    const chunk = new Uint8Array(256 * 1024);
    try {
      for (;;) {
        this.#deliver();
        const n = await this.#conn.read(chunk);
        if (n === null) return;
        this.#buffer = concat(this.#buffer, chunk.subarray(0, n));
      }
    } catch {
      // The connection ended.
    }
  }

  /** Every whole (unfragmented, unmasked) server frame in the buffer. */
  #deliver(): void {
    for (;;) {
      const b = this.#buffer;
      if (b.length < 2) return;
      let n = b[1] & 0x7f;
      let start = 2;
      if (n === 126) [n, start] = [(b[2] << 8) | b[3], 4];
      else if (n === 127) [n, start] = [b[6] * 2 ** 24 + ((b[7] << 16) | (b[8] << 8) | b[9]), 10];
      if (b.length < start + n) return;
      const payload = b.subarray(start, start + n);
      this.#buffer = b.subarray(start + n);
      if ((b[0] & 0x0f) >= 0x8) continue;
      const compressed = (b[0] & 0x40) !== 0;
      const data = compressed && this.inflate
        ? (this.#compression as MessageCompression).inflate([payload])
        : payload;
      this.onmessage?.(data, compressed);
    }
  }
}

/** The agreement from the client's side: its deflate is the "server" half of the struct. */
function clientSide(header: string): DeflateAgreement {
  const bits = (name: string) => Number(new RegExp(`${name}=(\\d+)`).exec(header)?.[1] ?? 15);
  return {
    serverTakeover: !header.includes("client_no_context_takeover"),
    clientTakeover: !header.includes("server_no_context_takeover"),
    serverWindowBits: bits("client_max_window_bits"),
    clientWindowBits: bits("server_max_window_bits"),
    header,
  };
}

function indexOfBlankLine(bytes: Uint8Array): number {
  for (let i = 0; i + 3 < bytes.length; i++) {
    if (bytes[i] === 13 && bytes[i + 1] === 10 && bytes[i + 2] === 13 && bytes[i + 3] === 10) {
      return i;
    }
  }
  return -1;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length === 0) return b.slice();
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let done = 0; done < bytes.length;) done += await conn.write(bytes.subarray(done));
}
