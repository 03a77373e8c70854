// The default load client of `deno task bench:ws` (bench/ws_bench.ts): the closed loop of
// bench/ws_client.ts (on each of N connections, send one binary message, wait for its echo,
// again and again) with a fraction of its cost, so that the bench measures the servers and not
// the client. It is one synchronous epoll loop over libc through FFI: no promise, event or
// array per message; frames are built and masked once, and an echo is checked in place (its
// header, and its payload whole up to 4 KiB, else at 4 KiB strides and at its end).
// Prints one JSON line on stdout, as bench/ws_client.ts does.
//
//   deno run -A bench/ws_epoll_client.ts --url ws://127.0.0.1:8000/ [--connections 64]
//                                        [--size 64] [--duration 5] [--warmup 1]

import {
  type ClientOptions,
  type ClientResult,
  parseArgs,
  Samples,
  summarize,
} from "./ws_client.ts";
import { clientFrame } from "./ws_frames.ts";

const SYMBOLS = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  connect: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
  send: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  recv: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  close: { parameters: ["i32"], result: "i32" },
  epoll_create1: { parameters: ["i32"], result: "i32" },
  epoll_ctl: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  epoll_wait: { parameters: ["i32", "buffer", "i32", "i32"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
} as const;

const AF_INET = 2;
const SOCK_STREAM = 1;
const IPPROTO_TCP = 6;
const TCP_NODELAY = 1;
const MSG_DONTWAIT = 0x40;
const MSG_NOSIGNAL = 0x4000;
const EPOLLIN = 0x1;
const EPOLLOUT = 0x4;
const EPOLL_CTL_ADD = 1;
const EPOLL_CTL_MOD = 3;
const EAGAIN = 11;
const EINTR = 4;
/** x86-64 packs struct epoll_event (12 bytes); other architectures pad it to 16. */
const EVENT_SIZE = Deno.build.arch === "x86_64" ? 12 : 16;
const EVENT_DATA_AT = Deno.build.arch === "x86_64" ? 4 : 8;
/** Payloads up to this size are compared whole; larger ones at strides of it. */
const CHECK_WHOLE = 4096;

const libc = Deno.dlopen(Deno.build.os === "linux" ? "libc.so.6" : "libc.so", SYMBOLS).symbols;

function errno(): number {
  return new Deno.UnsafePointerView(libc.__errno_location()!).getInt32();
}

function fail(what: string): never {
  throw new Error(`${what} failed (errno ${errno()})`);
}

/** The header of the server's echo: binary, FIN, unmasked. */
function echoHeader(size: number): Uint8Array {
  const frame = clientFrame(size, new Uint8Array(4));
  const head = size < 126 ? 2 : size < 65536 ? 4 : 10;
  const header = frame.slice(0, head);
  header[1] &= 0x7f;
  return header;
}

/** Whether `echo` (header and payload) is the echo of the message sent. */
function isEcho(echo: Uint8Array, header: Uint8Array, size: number): boolean {
  for (let i = 0; i < header.length; i++) if (echo[i] !== header[i]) return false;
  const at = header.length;
  const step = size <= CHECK_WHOLE ? 1 : CHECK_WHOLE;
  for (let i = 0; i < size; i += step) if (echo[at + i] !== (i & 0xff)) return false;
  for (let i = Math.max(0, size - 16); i < size; i++) if (echo[at + i] !== (i & 0xff)) return false;
  return true;
}

function sockaddr(host: string, port: number): Uint8Array {
  const address = new Uint8Array(16);
  new DataView(address.buffer).setUint16(0, AF_INET, true);
  new DataView(address.buffer).setUint16(2, port);
  address.set(host.split(".").map(Number), 4);
  return address;
}

async function acceptKey(key: string): Promise<string> {
  const magic = new TextEncoder().encode(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-1", magic));
  return btoa(String.fromCharCode(...digest));
}

/** A connected socket after its 101 (blocking calls: it is done before the loop starts). */
async function open(url: URL): Promise<number> {
  const fd = libc.socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) fail("socket");
  const address = sockaddr(url.hostname, Number(url.port || 80));
  if (libc.connect(fd, address, address.length) !== 0) fail("connect");
  const one = new Int32Array([1]);
  libc.setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, new Uint8Array(one.buffer), 4);
  const key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
  const request = new TextEncoder().encode(
    `GET ${url.pathname} HTTP/1.1\r\nHost: ${url.host}\r\nUpgrade: websocket\r\n` +
      `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
  );
  if (Number(libc.send(fd, request, BigInt(request.length), MSG_NOSIGNAL)) !== request.length) {
    fail("send");
  }
  const buf = new Uint8Array(4096);
  let head = "";
  while (!head.includes("\r\n\r\n")) {
    const n = Number(libc.recv(fd, buf, BigInt(buf.length), 0));
    if (n <= 0) throw new Error("connection closed during the handshake");
    head += new TextDecoder("latin1").decode(buf.subarray(0, n));
  }
  const accept = await acceptKey(key);
  if (!head.startsWith("HTTP/1.1 101") || !head.toLowerCase().includes(accept.toLowerCase())) {
    throw new Error(`handshake refused: ${head.split("\r\n")[0]}`);
  }
  if (!head.endsWith("\r\n\r\n")) throw new Error("bytes after the 101 before any message");
  return fd;
}

/** One connection's place in the loop. */
interface Conn {
  fd: number;
  /** Bytes of the current message written. */
  sent: number;
  /** Bytes of the current echo read. */
  got: number;
  sentAt: number;
  echo: Uint8Array;
  /** Waiting for room to write (EPOLLOUT registered). */
  blocked: boolean;
  alive: boolean;
}

function watch(epoll: number, op: number, conn: Conn, index: number, events: number): void {
  const event = new Uint8Array(EVENT_SIZE);
  const view = new DataView(event.buffer);
  view.setUint32(0, events, true);
  view.setUint32(EVENT_DATA_AT, index, true);
  if (libc.epoll_ctl(epoll, op, conn.fd, event) !== 0) fail("epoll_ctl");
}

export async function runClient(options: ClientOptions): Promise<ClientResult> {
  const url = new URL(options.url);
  const fds = await Promise.all(Array.from({ length: options.connections }, () => open(url)));
  const mask = crypto.getRandomValues(new Uint8Array(4));
  const frame = clientFrame(options.size, mask);
  const header = echoHeader(options.size);
  const echoLength = header.length + options.size;
  const epoll = libc.epoll_create1(0);
  if (epoll < 0) fail("epoll_create1");
  const conns: Conn[] = fds.map((fd) => ({
    fd,
    sent: 0,
    got: 0,
    sentAt: 0,
    echo: new Uint8Array(echoLength),
    blocked: false,
    alive: true,
  }));
  conns.forEach((conn, index) => watch(epoll, EPOLL_CTL_ADD, conn, index, EPOLLIN));

  const samples = new Samples();
  let roundTrips = 0;
  let errors = 0;
  const start = performance.now();
  const measureFrom = start + options.warmupSec * 1000;
  const end = measureFrom + options.durationSec * 1000;

  const drop = (conn: Conn) => {
    conn.alive = false;
    libc.close(conn.fd);
    errors++;
  };
  /** Writes what the kernel takes of the current message; false when the connection failed. */
  const write = (conn: Conn, index: number): boolean => {
    const rest = conn.sent === 0 ? frame : frame.subarray(conn.sent);
    const n = Number(libc.send(conn.fd, rest, BigInt(rest.length), MSG_DONTWAIT | MSG_NOSIGNAL));
    if (n < 0) {
      const code = errno();
      if (code !== EAGAIN && code !== EINTR) return false;
    } else conn.sent += n;
    const blocked = conn.sent < frame.length;
    if (blocked !== conn.blocked) {
      conn.blocked = blocked;
      watch(epoll, EPOLL_CTL_MOD, conn, index, blocked ? EPOLLIN | EPOLLOUT : EPOLLIN);
    }
    return true;
  };
  const sendNext = (conn: Conn, index: number) => {
    conn.sent = 0;
    conn.got = 0;
    conn.sentAt = performance.now();
    if (!write(conn, index)) drop(conn);
  };
  /** Reads what is there of the echo; on a whole one, counts it and sends the next message. */
  const read = (conn: Conn, index: number) => {
    const into = conn.got === 0 ? conn.echo : conn.echo.subarray(conn.got);
    const n = Number(libc.recv(conn.fd, into, BigInt(into.length), MSG_DONTWAIT));
    if (n < 0) {
      const code = errno();
      if (code !== EAGAIN && code !== EINTR) drop(conn);
      return;
    }
    if (n === 0) return drop(conn);
    conn.got += n;
    if (conn.got < echoLength) return;
    if (conn.sent < frame.length || !isEcho(conn.echo, header, options.size)) return drop(conn);
    const now = performance.now();
    if (conn.sentAt >= measureFrom && now <= end) {
      samples.push(now - conn.sentAt);
      roundTrips++;
    }
    if (now < end) sendNext(conn, index);
  };

  conns.forEach(sendNext);
  const events = new Uint8Array(EVENT_SIZE * conns.length);
  const eventView = new DataView(events.buffer);
  for (let now = performance.now(); now < end; now = performance.now()) {
    const ready = libc.epoll_wait(epoll, events, conns.length, Math.ceil(end - now));
    if (ready < 0 && errno() !== EINTR) fail("epoll_wait");
    for (let e = 0; e < ready; e++) {
      const flags = eventView.getUint32(e * EVENT_SIZE, true);
      const index = eventView.getUint32(e * EVENT_SIZE + EVENT_DATA_AT, true);
      const conn = conns[index];
      if (conn.alive && conn.blocked && (flags & EPOLLOUT) && !write(conn, index)) drop(conn);
      if (conn.alive && (flags & ~EPOLLOUT)) read(conn, index);
    }
  }
  // A masked close 1000, then the descriptor: the servers see a clean close.
  const close = new Uint8Array([0x88, 0x82, ...mask, 0x03 ^ mask[0], 0xe8 ^ mask[1]]);
  for (const conn of conns) {
    if (!conn.alive) continue;
    libc.send(conn.fd, close, BigInt(close.length), MSG_DONTWAIT | MSG_NOSIGNAL);
    libc.close(conn.fd);
  }
  libc.close(epoll);
  return summarize(options, roundTrips, samples, errors);
}

if (import.meta.main) {
  const result = await runClient(parseArgs(Deno.args));
  console.log(JSON.stringify(result));
  Deno.exit(0);
}
