// Where a server listens, written once: the kinds of address, how --bind spells one (read and
// written back), and the URL a bound address is reached at.

/** A TCP address to listen on. Port 0 takes a free port. */
export interface BindAddress {
  hostname: string;
  port: number;
}

/** A unix-socket address to listen on. */
export interface UnixBind {
  path: string;
}

/** Where to listen: a TCP address or a unix socket. */
export type Bind = BindAddress | UnixBind;

/** A bind that cannot be read; the message says what was expected. */
export class BindError extends Error {
  constructor(readonly expected: string) {
    super(`expected ${expected}`);
    this.name = "BindError";
  }
}

/** True for a unix-socket bind. */
export function isUnixBind(bind: Bind): bind is UnixBind {
  return "path" in bind;
}

/** "HOST:PORT", ":PORT", "[v6]:PORT", "HOST" (port 8000), or "unix:/path". */
export function parseBind(raw: string): Bind {
  if (raw.startsWith("unix:")) {
    const path = raw.slice(5);
    if (path === "" || path.includes("\0")) throw new BindError("unix:/path/to.sock");
    return { path };
  }
  return parseTcpBind(raw);
}

/** "HOST:PORT", ":PORT", "[v6]:PORT", or "HOST" (port 8000). */
export function parseTcpBind(raw: string): BindAddress {
  let host = raw;
  let port = "8000";
  if (raw.startsWith("[")) {
    const close = raw.indexOf("]");
    if (close < 0) throw new BindError("[IPv6]:PORT");
    host = raw.slice(1, close);
    const rest = raw.slice(close + 1);
    if (rest !== "") {
      if (!rest.startsWith(":")) throw new BindError("[IPv6]:PORT");
      port = rest.slice(1);
    }
  } else {
    const colon = raw.lastIndexOf(":");
    if (colon >= 0) {
      if (raw.indexOf(":") !== colon) throw new BindError("HOST:PORT (IPv6 in brackets)");
      host = raw.slice(0, colon) || "0.0.0.0";
      port = raw.slice(colon + 1);
    }
  }
  if (host === "") throw new BindError("HOST:PORT");
  const n = /^\d{1,5}$/.test(port) ? Number(port) : -1;
  if (n < 0 || n > 65535) throw new BindError("a port from 0 to 65535");
  return { hostname: host, port: n };
}

/** A bind as --bind spells it: "127.0.0.1:8000", "[::1]:8000", "unix:/path". */
export function formatBind(bind: Bind): string {
  if (isUnixBind(bind)) return `unix:${bind.path}`;
  const host = bind.hostname.includes(":") ? `[${bind.hostname}]` : bind.hostname;
  return `${host}:${bind.port}`;
}

/** "http://127.0.0.1:8000", with IPv6 hosts in brackets. */
export function urlOf(addr: BindAddress, scheme = "http"): string {
  return `${scheme}://${formatBind(addr)}`;
}
