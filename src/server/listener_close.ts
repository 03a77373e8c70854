// Closing listening sockets without resetting the connections queued on them, on Linux.
//
// Closing a listening socket resets every connection still waiting in its accept queue, a
// request perhaps already sent on it — which a proxy cannot retry for a POST. So a server that
// stops (a single process: cli.ts), and a worker that leaves a SO_REUSEPORT group while its siblings serve on
// (the kernel does not pass a closed socket's queue to the others unless the sysctl
// net.ipv4.tcp_migrate_req is 1), waits for an instant when its accept queues are empty
// (getsockopt TCP_INFO gives the queue's length in `tcpi_unacked` on a listening socket) and
// closes its listeners right then, in the same synchronous pass. A pool's master stops its
// shared sockets listening the same way, with shutdown() (stopListening()).
//
// It cannot use Deno's close() for that: the runtime closes the descriptor only after the
// pending accept() has been cancelled, later in the event loop, while connections keep
// arriving. So the listening descriptor is replaced in place (dup3) by a private listening
// socket bound to 127.0.0.1 that nobody knows: that closes the socket at once, and the
// runtime's pending accept() just never completes, until the server closes the listener as it
// always does, closing the stand-in. Deno exposes no descriptors, so they are found in
// /proc/<own PID>/fd and the calls go through FFI; where either is missing (another OS, no
// --allow-ffi), nothing happens here and the server's own close is all there is.

import { type Libc, openLibc } from "./libc.ts";
import { AF_INET, listeningSockets } from "./sockets.ts";

const IPPROTO_TCP = 6;
const TCP_INFO = 11;
const AF_INET_SOCKADDR_LEN = 16;
const SOCK_STREAM = 1;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const O_CLOEXEC = 0o2000000;
/** Offset of `tcpi_unacked` in struct tcp_info (linux/tcp.h): 8 bytes of u8, then 4 u32s. */
const TCPI_UNACKED = 24;

/** This process's listening TCP sockets bound to one of `ports`, by descriptor. */
function listeningOn(c: Libc, ports: Set<number>): number[] {
  return listeningSockets(c).filter((s) => s.path === "" && ports.has(s.port)).map((s) => s.fd);
}

function acceptQueueLength(c: LeaveCalls, fd: number): number {
  return tcpAcceptQueue(c, fd) ?? 0;
}

/** The accept queue's length of the TCP listening socket `fd`; null when it is not one. */
function tcpAcceptQueue(c: LeaveCalls, fd: number): number | null {
  const info = new Uint8Array(256);
  const len = new Uint32Array([info.length]);
  if (c.getsockopt(fd, IPPROTO_TCP, TCP_INFO, info, len) !== 0) return null;
  return new DataView(info.buffer).getUint32(TCPI_UNACKED, true);
}

/** Closes the socket open as `fd` by putting a private, idle listening socket in its place. */
function replaceWithStandIn(c: LeaveCalls, fd: number): boolean {
  const standIn = c.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (standIn < 0) return false;
  // 127.0.0.1, port 0: struct sockaddr_in, family in host order, port and address in network.
  const addr = new Uint8Array([AF_INET, 0, 0, 0, 127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
  const ok = c.bind(standIn, addr, AF_INET_SOCKADDR_LEN) === 0 && c.listen(standIn, 1) === 0 &&
    c.dup3(standIn, fd, O_CLOEXEC) === fd;
  c.close(standIn);
  return ok;
}

/** The libc calls that leaving a group takes once its listeners are known. */
const LEAVE_SYMBOLS = {
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  listen: { parameters: ["i32", "i32"], result: "i32" },
  dup3: { parameters: ["i32", "i32", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
} as const;

type LeaveCalls = Deno.DynamicLibrary<typeof LEAVE_SYMBOLS>["symbols"];

/**
 * Closes the prepared listeners at an instant when none has a connection queued, or after
 * `deadlineMs` whatever they hold; resolves false when it could not (the server's own close
 * does it then, resetting what is queued).
 */
export type Leave = (deadlineMs?: number) => Promise<boolean>;

/**
 * Prepares, while this process may still use FFI, the leave of its listeners on `ports`: the
 * descriptors are found now and the few calls the leave takes are kept by the function
 * returned, in a table of its own. A worker narrowed to its app's permissions gives FFI back
 * and closes tsgi's shared libc table before the app is imported (least_privilege.ts); the
 * function keeps working then, while nothing the app can import leads to its table.
 */
export function prepareLeave(ports: number[]): Leave {
  const c = openLibc();
  if (c === null) return () => Promise.resolve(false);
  let fds: number[];
  let calls: LeaveCalls;
  try {
    fds = listeningOn(c, new Set(ports));
    calls = Deno.dlopen("libc.so.6", LEAVE_SYMBOLS).symbols;
  } catch {
    return () => Promise.resolve(false);
  }
  return (deadlineMs = 1000) => leave(calls, fds, deadlineMs);
}

async function leave(c: LeaveCalls, fds: number[], deadlineMs: number): Promise<boolean> {
  if (fds.length === 0) return false;
  await untilQueuesEmpty(c, fds, deadlineMs);
  return fds.map((fd) => replaceWithStandIn(c, fd)).every(Boolean);
}

/**
 * Resolves at an instant when the accept queues of `fds` are all empty (the accept loops empty
 * them meanwhile), or once `deadlineMs` has passed; the caller acts in the same pass.
 */
async function untilQueuesEmpty(c: LeaveCalls, fds: number[], deadlineMs: number): Promise<void> {
  const until = Date.now() + deadlineMs;
  while (!fds.every((fd) => acceptQueueLength(c, fd) === 0) && Date.now() <= until) {
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
}

const SHUT_RDWR = 2;

/**
 * Stops the shared listening sockets open as `fds` from listening, for a whole pool that is
 * stopping: at an instant when their accept queues are empty (the workers, still accepting,
 * empty them meanwhile), or after `deadlineMs`. shutdown() acts on the socket, not on this
 * process's descriptor: from then on a new connection is refused — a proxy tries its next
 * upstream, which it may do even for a POST, as nothing was sent — where one queued until the
 * last descriptor closed would be reset after the request was sent. The workers' accept()
 * fails with EINVAL and their accept loops end. False where it could not (no FFI, not Linux).
 */
export async function stopListening(sockets: number[], deadlineMs = 1000): Promise<boolean> {
  const c = openLibc();
  // TCP only: a unix socket's queue cannot be read, so it is left to close as before.
  const fds = c === null ? [] : sockets.filter((fd) => tcpAcceptQueue(c, fd) !== null);
  if (c === null || fds.length === 0) return false;
  await untilQueuesEmpty(c, fds, deadlineMs);
  return fds.map((fd) => c.shutdown(fd, SHUT_RDWR) === 0).every(Boolean);
}
