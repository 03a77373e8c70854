// The pool's listening sockets. The master binds each address once, so a second server on the
// same address fails as it should, and hands the sockets to its workers as inherited
// descriptors; each worker adopts them (src/server/adopt.ts) and all accept from one queue, as
// gunicorn's workers do: a busy worker takes no connection, and one that stops leaves nothing
// queued behind. Where descriptors cannot be shared (no FFI, not Linux, a runtime whose
// internals differ), the workers bind the same TCP addresses with SO_REUSEPORT instead, as
// before, after one warning line.

import { AdoptError, adoptListener, detachFromEventLoop } from "../server/adopt.ts";
import { type Bind, type BindAddress, formatBind, isUnixBind, urlOf } from "../server/bind.ts";
import { libcMissing, openLibc } from "../server/libc.ts";
import { type ListeningSocket, listeningSocket, listeningSockets } from "../server/sockets.ts";
import { clearStaleSocket, listenUnix, removeSocket } from "../server/unix_socket.ts";

const F_SETFD = 2;

/** How the workers get their listeners. */
export type PoolListeners = SharedListeners | ReusePortListeners;

/** One accept queue per address, shared: the workers adopt these descriptors. */
export interface SharedListeners {
  mode: "shared";
  /** Inheritable descriptors, in the order of the binds. */
  fds: number[];
  /** Where each is bound, for "Listening on". */
  urls: string[];
  /** Closes what this process holds; `keepFiles` leaves unix socket files for a successor. */
  release(keepFiles: boolean): void;
}

/** Each worker binds the addresses itself, with SO_REUSEPORT (the fallback). */
export interface ReusePortListeners {
  mode: "reuseport";
  /** The addresses, every port concrete. */
  binds: BindAddress[];
  urls: string[];
  /** Port 0 resolved is held by a probe until a worker listens too; then it may go. */
  release(keepFiles: boolean): void;
}

/** Why the sockets cannot be shared here; null when they can. */
export function sharingUnavailable(): string | null {
  const c = openLibc();
  if (c === null) return libcMissing();
  // The same steps a worker takes, tried once in this process on a socket of its own.
  const fd = c.socket(2, 1, 0);
  const loopback = new Uint8Array([2, 0, 0, 0, 127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
  if (fd < 0 || c.bind(fd, loopback, 16) !== 0 || c.listen(fd, 1) !== 0) {
    if (fd >= 0) c.close(fd);
    return "cannot make a test socket";
  }
  try {
    adoptListener(fd).listener.close();
    return null;
  } catch (error) {
    c.close(fd);
    return error instanceof AdoptError ? error.message : String(error);
  }
}

/**
 * Binds `binds` once, exclusively, and makes each socket inheritable. Throws Deno's error
 * (naming the address) when one is taken.
 */
export async function bindShared(binds: Bind[], umask: number): Promise<SharedListeners> {
  const held: Deno.Listener[] = [];
  const files: string[] = [];
  const sockets: ListeningSocket[] = [];
  const release = (keepFiles: boolean) => {
    for (const listener of held) listener.close();
    if (!keepFiles) { for (const path of files) removeSocket(path); }
  };
  try {
    for (const bind of binds) {
      const listener = await openExclusive(bind, umask);
      held.push(listener);
      if (isUnixBind(bind)) files.push(bind.path);
      sockets.push(descriptorOf(listener, bind));
    }
  } catch (error) {
    release(false);
    throw error;
  }
  return shared(sockets, release);
}

/** Sockets this process inherited (systemd's, or an upgraded master's): shared as they are. */
export function inheritShared(fds: number[]): SharedListeners {
  const c = openLibc();
  if (c === null) throw new AdoptError(libcMissing());
  const sockets = fds.map((fd) => {
    const socket = listeningSocket(c, fd);
    if (socket === null) throw new AdoptError(`descriptor ${fd} is not a listening socket`);
    return socket;
  });
  return shared(sockets, () => sockets.forEach((s) => c.close(s.fd)));
}

function shared(sockets: ListeningSocket[], release: (keep: boolean) => void): SharedListeners {
  const c = openLibc()!;
  for (const socket of sockets) {
    // Inherited by the workers under the same number; never accepted from here.
    if (c.fcntl(socket.fd, F_SETFD, 0) !== 0) {
      release(false);
      throw new AdoptError(`descriptor ${socket.fd}: cannot make it inheritable`);
    }
    detachFromEventLoop(socket.fd);
  }
  return { mode: "shared", fds: sockets.map((s) => s.fd), urls: sockets.map(urlOfSocket), release };
}

async function openExclusive(bind: Bind, umask: number): Promise<Deno.Listener> {
  try {
    if (!isUnixBind(bind)) return Deno.listen({ hostname: bind.hostname, port: bind.port });
    await clearStaleSocket(bind.path);
    return listenUnix(bind.path, umask);
  } catch (error) {
    if (error instanceof Error) error.message = `${formatBind(bind)}: ${error.message}`;
    throw error;
  }
}

/** The descriptor under `listener`, found among this process's listening sockets. */
function descriptorOf(listener: Deno.Listener, bind: Bind): ListeningSocket {
  const c = openLibc()!;
  const port = isUnixBind(bind) ? 0 : (listener.addr as Deno.NetAddr).port;
  const found = listeningSockets(c).find((s) =>
    isUnixBind(bind) ? s.path === bind.path : s.path === "" && s.port === port
  );
  if (found === undefined) throw new AdoptError(`no descriptor found for ${formatBind(bind)}`);
  return found;
}

function urlOfSocket(socket: ListeningSocket): string {
  return socket.path !== ""
    ? `unix:${socket.path}`
    : urlOf({ hostname: socket.hostname, port: socket.port });
}

/**
 * The fallback: checks that no one else serves each address (a non-shared bind fails when
 * another process has it, SO_REUSEPORT or not), then resolves port 0 to a port all workers
 * can share, held by a SO_REUSEPORT probe until the first worker listens too.
 */
export function reservePorts(binds: Bind[]): ReusePortListeners {
  const unix = binds.find(isUnixBind);
  if (unix) {
    throw new AdoptError(
      `--bind unix:${unix.path} needs the shared sockets, which cannot be had here`,
    );
  }
  const resolved: BindAddress[] = [];
  const probes: Deno.Listener[] = [];
  try {
    for (const bind of binds as BindAddress[]) {
      if (bind.port !== 0) Deno.listen({ hostname: bind.hostname, port: bind.port }).close();
      const probe = Deno.listen({ hostname: bind.hostname, port: bind.port, reusePort: true });
      resolved.push({ hostname: bind.hostname, port: (probe.addr as Deno.NetAddr).port });
      if (bind.port === 0) probes.push(probe);
      else probe.close();
    }
  } catch (error) {
    for (const probe of probes) probe.close();
    const bind = binds[resolved.length];
    if (error instanceof Error && bind) error.message = `${formatBind(bind)}: ${error.message}`;
    throw error;
  }
  return {
    mode: "reuseport",
    binds: resolved,
    urls: resolved.map((b) => urlOf(b)),
    release: () => probes.splice(0).forEach((p) => p.close()),
  };
}
