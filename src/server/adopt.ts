// A listening socket this process inherited — from a pool's master, or from systemd — served
// by a Deno listener at full speed. Deno cannot wrap a descriptor, so: open a throwaway
// listener of the same kind, find the runtime's epoll registration of its descriptor in
// /proc/<own PID>/fdinfo, put the inherited socket in its place (dup3), and register it again with
// the same events and token. The runtime's accept() then takes connections from the inherited
// socket's queue, which it may share with other processes. Linux only; anywhere a step fails
// the caller is told why and binds on its own instead.

import { type Libc, libcMissing, openLibc } from "./libc.ts";
import { AF_UNIX, type ListeningSocket, listeningSocket, socketDescriptors } from "./sockets.ts";
import { listDirectory, ownProc, readLink, readSmallFile } from "./proc_files.ts";

/** Why an inherited socket could not be adopted. */
export class AdoptError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "AdoptError";
  }
}

/** An adopted socket: the listener that serves it, and where it is really bound. */
export interface Adopted {
  listener: Deno.Listener;
  socket: ListeningSocket;
}

const O_CLOEXEC = 0o2000000;
const O_NONBLOCK = 0o4000;
const F_GETFL = 3;
const F_SETFL = 4;
const EPOLL_CTL_ADD = 1;
const EPOLL_CTL_DEL = 2;

/** The runtime's registration of a descriptor with its event loop. */
interface Registration {
  epoll: number;
  events: number;
  data: bigint;
}

/**
 * Serves the listening socket open as `fd` with a Deno listener (TLS when `tls` is given, TCP
 * only). The descriptor number `fd` is closed; the socket lives on under the listener's.
 */
export function adoptListener(fd: number, tls?: { cert: string; key: string }): Adopted {
  const c = openLibc();
  if (c === null) throw new AdoptError(libcMissing());
  const inherited = listeningSocket(c, fd);
  if (inherited === null) throw new AdoptError(`descriptor ${fd} is not a listening socket`);
  if (tls && inherited.family === AF_UNIX) {
    throw new AdoptError("HTTPS is served on TCP sockets only");
  }
  setNonBlocking(c, fd);
  const throwaway = openThrowaway(inherited.family === AF_UNIX, tls);
  try {
    const target = throwawayDescriptor(c, throwaway, fd);
    const registration = registrationOf(c, target);
    if (c.dup3(fd, target, O_CLOEXEC) !== target) throw new AdoptError("dup3 failed");
    if (!register(c, registration, target)) {
      throw new AdoptError("the event loop refused the socket (epoll_ctl)");
    }
    c.close(fd);
    return { listener: throwaway.listener, socket: { ...inherited, fd: target } };
  } catch (error) {
    throwaway.listener.close();
    throw error instanceof AdoptError ? error : new AdoptError(String(error));
  } finally {
    throwaway.cleanUp();
  }
}

/** The runtime (tokio) needs a socket that never blocks; systemd's sockets do. */
function setNonBlocking(c: Libc, fd: number): void {
  const flags = c.fcntl(fd, F_GETFL, 0);
  if (flags < 0) throw new AdoptError(`descriptor ${fd}: fcntl failed`);
  if ((flags & O_NONBLOCK) === 0 && c.fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
    throw new AdoptError(`descriptor ${fd}: cannot make it non-blocking`);
  }
}

interface Throwaway {
  listener: Deno.Listener;
  /** Where it listens: its TCP port, or its socket file. */
  port: number;
  path: string;
  cleanUp(): void;
}

/** Where a throwaway unix listener is made: in a fresh temporary folder unless set. */
let throwawayPath: string | null = null;

/**
 * Makes throwaway unix listeners at `path` (in a folder this process may write, granted by
 * its exact path) instead of in a new temporary folder: a process narrowed to its app's
 * permissions (least_privilege.ts) may not write the temporary folder.
 */
export function setThrowawayPath(path: string | null): void {
  throwawayPath = path;
}

function openThrowaway(unix: boolean, tls?: { cert: string; key: string }): Throwaway {
  if (unix && throwawayPath !== null) {
    const path = throwawayPath;
    const listener = Deno.listen({ transport: "unix", path });
    // One at a time: the path is free again for the next socket to adopt.
    const cleanUp = () => Deno.removeSync(path);
    return { listener, port: 0, path, cleanUp };
  }
  if (unix) {
    const dir = Deno.makeTempDirSync({ prefix: "tsgi-adopt-" });
    const path = `${dir}/s`;
    const listener = Deno.listen({ transport: "unix", path });
    const cleanUp = () => Deno.removeSync(dir, { recursive: true });
    return { listener, port: 0, path, cleanUp };
  }
  const where = { hostname: "127.0.0.1", port: 0 };
  const listener = tls ? Deno.listenTls({ ...where, ...tls }) : Deno.listen(where);
  return { listener, port: (listener.addr as Deno.NetAddr).port, path: "", cleanUp: () => {} };
}

function throwawayDescriptor(c: Libc, throwaway: Throwaway, except: number): number {
  for (const fd of socketDescriptors(c)) {
    if (fd === except) continue;
    const socket = listeningSocket(c, fd);
    if (socket === null) continue;
    if (throwaway.path !== "" ? socket.path === throwaway.path : socket.port === throwaway.port) {
      return fd;
    }
  }
  throw new AdoptError("the throwaway listener's descriptor was not found");
}

/**
 * The one epoll registration of `fd`, read from the kernel's fdinfo of each epoll instance
 * (an instance may be open under several descriptors: it counts once, by its inode).
 */
function registrationOf(c: Libc, fd: number): Registration {
  const found = new Map<string, Registration>();
  for (const name of listDirectory(c, `${ownProc()}/fd`)) {
    const epoll = Number(name);
    try {
      if (!readLink(c, `${ownProc()}/fd/${epoll}`).includes("eventpoll")) continue;
      const info = readSmallFile(c, `${ownProc()}/fdinfo/${epoll}`);
      const instance = /^ino:\s*(\S+)/m.exec(info)?.[1] ?? String(epoll);
      for (const line of info.split("\n")) {
        const m = /^tfd:\s*(\d+)\s+events:\s*([0-9a-f]+)\s+data:\s*([0-9a-f]+)/.exec(line);
        if (m && Number(m[1]) === fd && !found.has(instance)) {
          found.set(instance, { epoll, events: parseInt(m[2], 16), data: BigInt(`0x${m[3]}`) });
        }
      }
    } catch {
      // Closed meanwhile, or not readable: not the runtime's.
    }
  }
  if (found.size !== 1) {
    throw new AdoptError(`found ${found.size} event-loop registrations of the listener, not 1`);
  }
  return [...found.values()][0];
}

/** The events EPOLLEXCLUSIVE may go with (epoll_ctl(2)); a listener needs no other. */
const EPOLLIN = 0x1;
const EPOLLOUT = 0x4;
const EPOLLERR = 0x8;
const EPOLLHUP = 0x10;
const EPOLLET = 0x80000000;
const EPOLLEXCLUSIVE = 0x10000000;

/**
 * Registers `fd` again with the runtime's events and token. Several processes accept from a
 * shared socket, so each registration is exclusive: a connection wakes one waiting process,
 * not all of them (a process that is busy is not waiting, and the next one is woken). Where
 * the kernel refuses that (before 4.5), the plain registration is used.
 */
function register(c: Libc, registration: Registration, fd: number): boolean {
  const allowed = EPOLLIN | EPOLLOUT | EPOLLERR | EPOLLHUP | EPOLLET;
  const exclusive = ((registration.events & allowed) | EPOLLEXCLUSIVE) >>> 0;
  return add(c, registration, fd, exclusive) || add(c, registration, fd, registration.events);
}

/** struct epoll_event: packed on x86-64 (data at 4), naturally aligned elsewhere (data at 8). */
function add(c: Libc, registration: Registration, fd: number, events: number): boolean {
  const packed = Deno.build.arch === "x86_64";
  const event = new Uint8Array(packed ? 12 : 16);
  const view = new DataView(event.buffer);
  view.setUint32(0, events, true);
  view.setBigUint64(packed ? 4 : 8, registration.data, true);
  return c.epoll_ctl(registration.epoll, EPOLL_CTL_ADD, fd, event) === 0;
}

/**
 * Takes the listening socket open as `fd` out of this process's event loop, for a process
 * that holds a socket for others to accept from (a pool's master): otherwise every connection
 * that arrives wakes it for nothing. False when it could not (the cost is then a wakeup).
 */
export function detachFromEventLoop(fd: number): boolean {
  const c = openLibc();
  if (c === null) return false;
  try {
    const { epoll } = registrationOf(c, fd);
    return c.epoll_ctl(epoll, EPOLL_CTL_DEL, fd, new Uint8Array(16)) === 0;
  } catch {
    return false;
  }
}
