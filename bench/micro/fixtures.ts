// Requests and a loopback-free connection for the micro-benchmarks: the engine is driven
// through its real code with a fake socket, so only its own cost is measured.

import { type Engine } from "../../src/server/connection.ts";
import { ErrorLog } from "../../src/server/log.ts";
import type { App } from "../../src/tsgi/types.ts";

const encoder = new TextEncoder();

export const SMALL_REQUEST = encoder.encode(
  "GET /plaintext HTTP/1.1\r\nHost: localhost:8080\r\nAccept: */*\r\n\r\n",
);

export const HEAVY_REQUEST = encoder.encode(
  "GET /api/v1/users/12345/orders?page=2&limit=50 HTTP/1.1\r\n" +
    "Host: api.example.com\r\n" +
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n" +
    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n" +
    "Accept-Language: en-US,en;q=0.5\r\n" +
    "Accept-Encoding: gzip, deflate, br, zstd\r\n" +
    "Referer: https://www.example.com/account/orders\r\n" +
    "Cookie: session=0123456789abcdef0123456789abcdef; theme=dark; lang=en\r\n" +
    "Cookie: tracking=off\r\n" +
    "Connection: keep-alive\r\n" +
    "Upgrade-Insecure-Requests: 1\r\n" +
    "Sec-Fetch-Dest: document\r\n" +
    "Sec-Fetch-Mode: navigate\r\n" +
    "Sec-Fetch-Site: same-origin\r\n" +
    "Priority: u=0, i\r\n" +
    "X-Request-Id: 7f3c2a9e-5b1d-4e8f-a6c0-9d2b4e1f3a57\r\n" +
    "X-Forwarded-For: 203.0.113.7\r\n\r\n",
);

const GREETING = encoder.encode("Hello, World!\n");

export const helloApp: App = (_environ, startResponse) => {
  startResponse("200 OK", [
    ["Content-Type", "text/plain; charset=utf-8"],
    ["Content-Length", String(GREETING.length)],
  ]);
  return [GREETING];
};

/** n copies of a request, back to back, as a pipelining client sends them. */
export function pipelined(request: Uint8Array, n: number): Uint8Array {
  const out = new Uint8Array(request.length * n);
  for (let i = 0; i < n; i++) out.set(request, i * request.length);
  return out;
}

export function engineFor(app: App): Engine {
  return {
    app,
    limits: { requestLine: 8190, fields: 100, fieldSize: 8190, head: 65536 },
    maxBodySize: 1 << 30,
    keepAliveMs: 5000,
    headerTimeoutMs: 10000,
    bodyRate: { minRate: 240, graceMs: 5000, stallMs: 30000 },
    responseRate: { minRate: 240, graceMs: 5000, stallMs: 30000 },
    drainTimeoutMs: 5000,
    trustedProxies: null,
    errorLog: new ErrorLog("error"),
    accessLog: null,
    environ: {
      rootPath: "",
      errors: new ErrorLog("error").stream(),
      multiprocess: false,
      runOnce: false,
    },
    draining: false,
    websocket: { maxMessage: 16 * 1024 * 1024, pingIntervalMs: 30000 },
  };
}

/** A socket that hands out `batch` `rounds` times and then ends; writes are dropped. */
export function fakeConn(batch: Uint8Array, rounds: number): Deno.Conn {
  let left = rounds;
  let written = 0;
  return {
    read(buf: Uint8Array): Promise<number | null> {
      if (left-- <= 0) return Promise.resolve(null);
      buf.set(batch);
      return Promise.resolve(batch.length);
    },
    write(bytes: Uint8Array): Promise<number> {
      written += bytes.length;
      return Promise.resolve(bytes.length);
    },
    close() {},
    get written() {
      return written;
    },
    remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 5555 },
    localAddr: { transport: "tcp", hostname: "127.0.0.1", port: 8000 },
  } as unknown as Deno.Conn;
}

export const CONNECTION_INFO = {
  serverName: "127.0.0.1",
  serverPort: "8000",
  remoteAddr: "127.0.0.1",
  remotePort: "5555",
  urlScheme: "http" as const,
  trustedProxy: false,
};
