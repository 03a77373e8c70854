// Reads and writes a connection's socket with the runtime's own ops when it offers them.
// Deno.Conn's read() and write() are async functions that wrap the op's promise in a second one
// (and keep a set of pending reads for unref()); on a keep-alive request that is garbage made
// twice per request. Calling the op directly halves it. The ops are found once, and checked on
// the first connection; anywhere they are not what we expect, the public methods are used.

import { findSymbol } from "./runtime_symbols.ts";

/** What the engine needs of a socket: Deno.Conn's read() and write(). */
export interface SocketIo {
  /** Bytes read into `buf` (never empty); 0 at the end of the stream, as the op says it. */
  read(buf: Uint8Array): Promise<number>;
  /** Bytes written from `buf` (maybe fewer than its length). */
  write(buf: Uint8Array): Promise<number>;
  /** Whether cancelRead() is there: the runtime's op is. */
  readonly canCancelRead: boolean;
  /**
   * Stops the read in flight before it puts a byte into its buffer (it rejects), and every
   * later read of the socket. Only where canCancelRead says so.
   */
  cancelRead(): void;
}

interface CoreOps {
  read(rid: number, buf: Uint8Array): Promise<number>;
  write(rid: number, buf: Uint8Array): Promise<number>;
  cancelRead?: (rid: number) => void;
}

const RID = "Deno.internal.rid";

function findCore(): CoreOps | null {
  const internal = (Deno as unknown as Record<symbol, unknown>)[
    (Deno as unknown as { internal: symbol }).internal
  ] as { core?: Partial<CoreOps> } | undefined;
  const core = internal?.core;
  if (typeof core?.read !== "function" || typeof core?.write !== "function") return null;
  return core as CoreOps;
}

/** The symbol Deno keeps a connection's resource id under, found on the first connection. */
let ridSymbol: symbol | null | undefined;

function ridOf(conn: Deno.Conn): number | null {
  if (ridSymbol === undefined) {
    ridSymbol = findSymbol(conn, RID);
  }
  if (ridSymbol === null) return null;
  const rid = (conn as unknown as Record<symbol, unknown>)[ridSymbol];
  return Number.isInteger(rid) ? rid as number : null;
}

let core: CoreOps | null | undefined;

/** The socket's own ops when the runtime has them, else the connection itself. */
export function socketIo(conn: Deno.Conn): SocketIo {
  if (core === undefined) core = findCore();
  const rid = core === null ? null : ridOf(conn);
  if (rid === null || core === null) return new ConnIo(conn);
  return new DirectIo(core, rid, !isTls(conn));
}

// The cancelRead op stops a read on a TCP or unix socket; on a TLS connection it does nothing
// (the read goes on and lands), so there it is not offered.
function isTls(conn: Deno.Conn): boolean {
  return typeof (conn as Partial<Deno.TlsConn>).handshake === "function";
}

class DirectIo implements SocketIo {
  readonly #core: CoreOps;
  readonly #rid: number;
  readonly #cancellable: boolean;

  constructor(core: CoreOps, rid: number, cancellable: boolean) {
    this.#core = core;
    this.#rid = rid;
    this.#cancellable = cancellable;
  }

  read(buf: Uint8Array): Promise<number> {
    return this.#core.read(this.#rid, buf);
  }

  get canCancelRead(): boolean {
    return this.#cancellable && typeof this.#core.cancelRead === "function";
  }

  cancelRead(): void {
    this.#core.cancelRead?.(this.#rid);
  }

  write(buf: Uint8Array): Promise<number> {
    return this.#core.write(this.#rid, buf);
  }
}

/** The public methods, where the ops are not what we expect. */
class ConnIo implements SocketIo {
  readonly #conn: Deno.Conn;

  constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  read(buf: Uint8Array): Promise<number> {
    return this.#conn.read(buf).then(endAsZero);
  }

  readonly canCancelRead = false;

  cancelRead(): void {
    throw new Error("Deno.Conn has no way to cancel a read");
  }

  write(buf: Uint8Array): Promise<number> {
    return this.#conn.write(buf);
  }
}

// Deno.Conn's read() says null at the end of the stream, where the op says 0.
const endAsZero = (n: number | null): number => n ?? 0;
