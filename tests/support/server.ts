// Test support: a real tsgi server on port 0 in this process, with its logs captured, and
// real clients — raw TCP for exact bytes, fetch for ordinary use.

import { ErrorLog, type Sink } from "../../src/server/log.ts";
import { serve, type ServeOptions, type ServerHandle } from "../../src/server/serve.ts";
import type { App } from "../../src/tsgi/types.ts";
import { validate } from "../../src/app/validate.ts";

/** A sink that keeps what is written, for asserting on log lines. */
export class MemorySink implements Sink {
  text = "";
  #decoder = new TextDecoder();
  writeSync(bytes: Uint8Array): number {
    this.text += this.#decoder.decode(bytes);
    return bytes.length;
  }
}

export interface TestServer {
  handle: ServerHandle;
  port: number;
  url: string;
  errors: MemorySink;
  access: MemorySink;
}

/**
 * Runs `fn` against a server serving `app`, and always stops the server afterwards. The app
 * runs inside validate(), so every test also checks the server against the TSGI contract;
 * `{ validate: false }` is for tests of apps that break the contract on purpose.
 */
export async function withServer(
  app: App,
  fn: (server: TestServer) => Promise<void>,
  options: ServeOptions & { validate?: boolean } = {},
): Promise<void> {
  const errors = new MemorySink();
  const access = new MemorySink();
  const { validate: check, ...serveOptions } = options;
  const handle = serve(check === false ? app : validate(app), {
    bind: [{ hostname: "127.0.0.1", port: 0 }],
    errorLog: new ErrorLog(options.logLevel ?? "debug", errors),
    accessLog: "sink",
    accessSink: access,
    ...serveOptions,
  });
  const port = handle.addrs[0].port;
  try {
    await fn({ handle, port, url: `http://127.0.0.1:${port}`, errors, access });
  } finally {
    await handle.shutdown(1000);
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("latin1");

/** Bytes from a string whose code points are all below 256, one byte each. */
export function bytes(s: string): Uint8Array {
  return Uint8Array.from(s, (c) => c.charCodeAt(0));
}

/**
 * Sends raw bytes (in the given pieces, each its own write) and reads until the server
 * closes or `deadlineMs` passes. Returns everything received, decoded byte for byte.
 */
export async function rawExchange(
  port: number,
  pieces: (string | Uint8Array)[],
  deadlineMs = 5000,
): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const reading = readUntilClose(conn, deadlineMs);
  try {
    for (const piece of pieces) {
      // A write may take part of a large piece: the rest follows, unless the server closed.
      const all = typeof piece === "string" ? bytes(piece) : piece;
      for (let at = 0, n = 1; at < all.length && n > 0; at += n) {
        n = await conn.write(all.subarray(at)).catch(() => 0);
      }
    }
    return decoder.decode(await reading);
  } finally {
    closeQuietly(conn);
  }
}

/**
 * Reads `conn` until the peer closes it, or until `deadlineMs` passes, when it is closed (which
 * ends the read): a silent server fails the caller's assertions instead of hanging the test.
 * Everything received, as one array.
 */
export async function readUntilClose(conn: Deno.Conn, deadlineMs = 5000): Promise<Uint8Array> {
  const received: Uint8Array[] = [];
  const buf = new Uint8Array(64 * 1024);
  const timer = setTimeout(() => closeQuietly(conn), deadlineMs);
  try {
    for (let n; (n = await conn.read(buf).catch(() => null)) !== null;) {
      received.push(buf.slice(0, n));
    }
  } finally {
    clearTimeout(timer);
  }
  return concat(received);
}

/** Closes `conn`, which the peer or a deadline may have closed already. */
export function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // Closed already.
  }
}

/** The parts as one array. */
export function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

/** A parsed response from a raw exchange. */
export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * Splits a byte stream of responses (as rawExchange returns it) into responses, following
 * Content-Length and chunked framing; interim 1xx responses are returned as their own entries.
 */
export function parseResponses(stream: string, headRequests = 0): RawResponse[] {
  const responses: RawResponse[] = [];
  let pos = 0;
  let heads = headRequests;
  while (pos < stream.length) {
    const headEnd = stream.indexOf("\r\n\r\n", pos);
    if (headEnd < 0) {
      throw new Error(`Truncated response head: ${JSON.stringify(stream.slice(pos))}`);
    }
    const lines = stream.slice(pos, headEnd).split("\r\n");
    const status = Number(lines[0].split(" ")[1]);
    const headers: Record<string, string> = {};
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(":");
      const name = line.slice(0, colon).toLowerCase();
      const value = line.slice(colon + 1).trim();
      headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
    }
    pos = headEnd + 4;
    let body = "";
    const noBody = status < 200 || status === 204 || status === 304 || heads-- > 0;
    if (noBody) {
      // nothing
    } else if (headers["transfer-encoding"] === "chunked") {
      while (true) {
        const lineEnd = stream.indexOf("\r\n", pos);
        const size = parseInt(stream.slice(pos, lineEnd), 16);
        pos = lineEnd + 2;
        if (size === 0) {
          pos = stream.indexOf("\r\n", pos) + 2;
          break;
        }
        body += stream.slice(pos, pos + size);
        pos += size + 2;
      }
    } else if (headers["content-length"] !== undefined) {
      const length = Number(headers["content-length"]);
      body = stream.slice(pos, pos + length);
      pos += length;
    } else {
      body = stream.slice(pos);
      pos = stream.length;
    }
    responses.push({ status, headers, body });
  }
  return responses;
}

/** Polls `check` until it is true or the deadline passes; returns its last answer. */
export async function waitFor(
  check: () => boolean,
  deadlineMs = 5000,
  stepMs = 10,
): Promise<boolean> {
  const until = Date.now() + deadlineMs;
  while (!check()) {
    if (Date.now() > until) return false;
    await new Promise((resolve) => setTimeout(resolve, stepMs));
  }
  return true;
}

export { encoder };

/**
 * The memory this isolate holds (V8 heap plus external buffers), in bytes. `deno test
 * --parallel` runs several test files in one process, so the process's RSS moves with the
 * other files' tests; this moves with this file's server only.
 */
export function isolateMemory(): number {
  const usage = Deno.memoryUsage();
  return usage.heapTotal + usage.external;
}
