// This process's listening sockets as the kernel sees them: Deno keeps descriptors to itself,
// so they are found in /proc/<own PID>/fd and asked about through libc.

import type { Libc } from "./libc.ts";
import { listDirectory, ownProc, readLink } from "./proc_files.ts";

const SOL_SOCKET = 1;
const SO_ACCEPTCONN = 30;
export const AF_UNIX = 1;
export const AF_INET = 2;
export const AF_INET6 = 10;

/** A listening socket: its descriptor and where it is bound. */
export interface ListeningSocket {
  fd: number;
  family: number;
  /** The TCP port (0 for a unix socket). */
  port: number;
  /** The unix socket's path ("" for TCP). */
  path: string;
  /** The IP address, as text ("" for a unix socket). */
  hostname: string;
}

/** The socket open as `fd` if it is listening; null for anything else. */
export function listeningSocket(c: Libc, fd: number): ListeningSocket | null {
  const int = new Int32Array(1);
  const len = new Uint32Array([4]);
  if (c.getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, int, len) !== 0 || int[0] !== 1) return null;
  const addr = new Uint8Array(128);
  len[0] = addr.length;
  if (c.getsockname(fd, addr, len) !== 0) return null;
  const family = addr[0] | (addr[1] << 8);
  if (family === AF_UNIX) {
    const end = addr.indexOf(0, 2);
    const path = new TextDecoder().decode(addr.subarray(2, end < 0 ? len[0] : end));
    return { fd, family, port: 0, path, hostname: "" };
  }
  if (family !== AF_INET && family !== AF_INET6) return null;
  const port = (addr[2] << 8) | addr[3];
  const hostname = family === AF_INET
    ? addr.subarray(4, 8).join(".")
    : ipv6Text(addr.subarray(8, 24));
  return { fd, family, port, path: "", hostname };
}

/** Every listening socket this process holds. */
export function listeningSockets(c: Libc): ListeningSocket[] {
  const found: ListeningSocket[] = [];
  for (const fd of socketDescriptors(c)) {
    const socket = listeningSocket(c, fd);
    if (socket !== null) found.push(socket);
  }
  return found;
}

/** Descriptors of this process that are sockets. */
export function socketDescriptors(c: Libc): number[] {
  const fds: number[] = [];
  let names: string[];
  try {
    names = listDirectory(c, `${ownProc()}/fd`);
  } catch {
    return fds;
  }
  for (const name of names) {
    const fd = Number(name);
    try {
      if (readLink(c, `${ownProc()}/fd/${fd}`).startsWith("socket:")) fds.push(fd);
    } catch {
      // Closed meanwhile.
    }
  }
  return fds;
}

function ipv6Text(bytes: Uint8Array): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i] << 8) | bytes[i + 1]).toString(16));
  return groups.join(":").replace(/(^|:)0(:0)+(:|$)/, "::").replace(/:{3,}/, "::");
}
