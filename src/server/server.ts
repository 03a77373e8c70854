// Listens, accepts, and owns the connections: one accept loop per listener (out of descriptors,
// refusing with 503 from a spare one; on other accept errors, backing off instead of spinning),
// one sweeper that enforces every connection's deadline, and the graceful stop (stop accepting,
// close idle connections, let active ones finish).

import { Connection, ConnState, type Engine } from "./connection.ts";
import { coarseNow, httpDate } from "./clock.ts";
import type { ConnectionInfo } from "../tsgi/environ.ts";
import { DescriptorReserve, isOutOfDescriptors } from "./fd_reserve.ts";
import { RateLimitedLog } from "./log.ts";
import { prepareFileLimit } from "./rlimit.ts";
import { adoptListener } from "./adopt.ts";
import { type Bind, formatBind, isUnixBind } from "./bind.ts";
import { listenUnix, removeSocket } from "./unix_socket.ts";

/** How often deadlines are checked; timeouts are this precise. */
const SWEEP_INTERVAL_MS = 250;
/** A sweep this late is logged as a blocked event loop. */
const STALL_LOG_MS = 500;
const MAX_ACCEPT_BACKOFF_MS = 1000;
/** A 503 normally waits this long for the client to close first (see rejectBusy()). */
const BUSY_LINGER_MS = 1000;
/**
 * Out of descriptors, the one spare is lent to each refused connection in turn, so it is held
 * briefly: long enough to read a request already sent, not to wait on a silent client.
 */
const SHED_LINGER_MS = 20;
/** On a graceful stop, how long a connection that has sent nothing yet may take to. */
const FRESH_CONNECTION_GRACE_MS = 1000;

/** What listen() opened: TCP addresses (ports resolved) and unix socket paths. */
export interface Listeners {
  addrs: Deno.NetAddr[];
  socketPaths: string[];
}

/** How listeners are opened. */
export interface ListenOptions {
  /** File mode mask for unix sockets. */
  umask?: number;
  /** Share the port with other processes (SO_REUSEPORT), as workers do. */
  reusePort?: boolean;
  /** PEM certificate and key: serve HTTPS. */
  tls?: { cert: string; key: string } | null;
}

interface Listening {
  listener: Deno.Listener;
  serverName: string;
  serverPort: string;
  urlScheme: "http" | "https";
}

/** How many connections one process takes on. */
export interface Admission {
  /** Served at once; past it, accepted connections wait. */
  maxConnections: number;
  /** Waiting at once; past it, a connection gets 503 and is closed. */
  maxPending: number;
}

const UNLIMITED: Admission = { maxConnections: Infinity, maxPending: 0 };

interface Pending {
  conn: Deno.Conn;
  listening: Listening;
}

export class Server {
  readonly engine: Engine;
  readonly #admission: Admission;
  readonly #pending: Pending[] = [];
  readonly #connections = new Set<Connection>();
  readonly #listening: Listening[] = [];
  readonly #acceptLoops: Promise<void>[] = [];
  readonly #socketPaths: string[] = [];
  #sweeper: ReturnType<typeof setInterval> | undefined;
  #closing = false;
  #lastSweep = 0;
  #emptied: (() => void) | null = null;
  readonly #reserve = new DescriptorReserve();
  readonly #overCapacityLog: RateLimitedLog;
  readonly #acceptFailureLog: RateLimitedLog;
  readonly #sheddingLog: RateLimitedLog;

  constructor(engine: Engine, admission: Admission = UNLIMITED) {
    this.engine = engine;
    this.#admission = admission;
    this.#overCapacityLog = new RateLimitedLog(engine.errorLog, "warning");
    this.#acceptFailureLog = new RateLimitedLog(engine.errorLog, "error");
    this.#sheddingLog = new RateLimitedLog(engine.errorLog, "warning");
  }

  /**
   * Opens the listeners. Throws Deno's error when an address cannot be bound (a unix socket
   * path that exists included: clearStaleSocket() decides whether it may be replaced).
   */
  listen(binds: Bind[], options: ListenOptions = {}): Listeners {
    // Raised to the hard limit, and checked against the admission flags (src/rlimit.ts).
    prepareFileLimit(this.#admission, this.engine.errorLog);
    const opened: Listeners = { addrs: [], socketPaths: [] };
    const reusePort = options.reusePort ?? false;
    const tls = options.tls ?? null;
    for (const bind of binds) {
      try {
        this.#bind(bind, reusePort, tls, options.umask ?? 0, opened);
      } catch (error) {
        // Deno's message names no address; the one that failed is what a user needs to know.
        if (error instanceof Error) error.message = `${formatBind(bind)}: ${error.message}`;
        throw error;
      }
    }
    // Every connection, served or waiting, holds a descriptor; one is kept spare for refusing
    // connections once none is left (src/fd_reserve.ts).
    this.#reserve.take();
    return opened;
  }

  /** Opens one listener and records it. */
  #bind(
    bind: Bind,
    reusePort: boolean,
    tls: { cert: string; key: string } | null,
    umask: number,
    opened: Listeners,
  ): void {
    if (isUnixBind(bind)) {
      const listener = listenUnix(bind.path, umask);
      this.#socketPaths.push(bind.path);
      this.#listening.push({ listener, serverName: bind.path, serverPort: "", urlScheme: "http" });
      opened.socketPaths.push(bind.path);
      return;
    }
    const where = { hostname: bind.hostname, port: bind.port, reusePort };
    const listener = tls ? Deno.listenTls({ ...where, ...tls }) : Deno.listen(where);
    const addr = listener.addr as Deno.NetAddr;
    this.#listening.push({
      listener,
      serverName: addr.hostname,
      serverPort: String(addr.port),
      urlScheme: tls ? "https" : "http",
    });
    opened.addrs.push(addr);
  }

  /**
   * Serves listening sockets this process inherited (from a pool's master, or systemd)
   * instead of binding. Throws AdoptError when one cannot be served (src/server/adopt.ts).
   */
  adopt(fds: number[], options: ListenOptions = {}): Listeners {
    prepareFileLimit(this.#admission, this.engine.errorLog);
    const opened: Listeners = { addrs: [], socketPaths: [] };
    const tls = options.tls ?? undefined;
    for (const fd of fds) {
      const { listener, socket } = adoptListener(fd, tls);
      const unix = socket.path !== "";
      this.#listening.push({
        listener,
        serverName: unix ? socket.path : socket.hostname,
        serverPort: unix ? "" : String(socket.port),
        urlScheme: tls && !unix ? "https" : "http",
      });
      if (!unix) {
        opened.addrs.push({ transport: "tcp", hostname: socket.hostname, port: socket.port });
      }
    }
    this.#reserve.take();
    return opened;
  }

  /** Starts accepting on every listener; resolves when all accept loops have ended. */
  serve(): Promise<void> {
    this.#lastSweep = Date.now();
    this.#sweeper = setInterval(() => this.#sweep(), SWEEP_INTERVAL_MS);
    for (const listening of this.#listening) {
      this.#acceptLoops.push(this.#acceptLoop(listening));
    }
    return Promise.all(this.#acceptLoops).then(() => {});
  }

  /**
   * A sweep that runs late means the event loop was held: an app computing without awaiting.
   * Nothing in one process can interrupt it (--workers' --timeout can), but it is named.
   */
  #noticeStall(now: number): void {
    const late = now - this.#lastSweep - SWEEP_INTERVAL_MS;
    this.#lastSweep = now;
    if (late >= STALL_LOG_MS) {
      this.engine.errorLog.warning(
        `Event loop blocked for ${late} ms: an app ran without awaiting, and every ` +
          "connection of this process waited",
      );
    }
  }

  /** Connections open now. */
  get connectionCount(): number {
    return this.#connections.size;
  }

  /** Connections accepted and waiting for a slot. */
  get pendingCount(): number {
    return this.#pending.length;
  }

  /**
   * Stops gracefully: no new connections, active ones given until `gracefulMs` to finish their
   * request, then closed; resolves when none is left. Idle keep-alive connections are closed
   * at once, unless `keepIdle`: then each keeps its keep-alive deadline (a request that comes
   * on it is answered with Connection: close), so that a proxy, whose own idle timeout is
   * shorter (docs/deploy.md), closes it first and never sends a request into the close — it
   * cannot retry a POST. A supervisor's stop (SIGTERM) keeps them; Ctrl-C does not wait.
   */
  async shutdown(gracefulMs: number, keepIdle = false): Promise<void> {
    this.#closing = true;
    this.engine.draining = true;
    for (const { listener } of this.#listening) {
      try {
        listener.close();
      } catch {
        // Already closed.
      }
    }
    // A connection the runtime accepted as the listener closed is handed over now, not after
    // the scan of idle connections below: else it would be dropped unread on exit.
    await Promise.all(this.#acceptLoops);
    // Those still waiting for a slot were never read: a 503 tells them (and a proxy) to try
    // again, where closing them would reset a request already sent.
    const lingerMs = Math.max(Math.min(BUSY_LINGER_MS, gracefulMs), SHED_LINGER_MS);
    const waiting = this.#pending.splice(0);
    const refused = waiting.map(({ conn }) => rejectBusy(conn, lingerMs));
    if (waiting.length > 0) {
      this.engine.errorLog.info(
        `Stopping: 503 sent to ${waiting.length} connection(s) still waiting for a slot`,
      );
    }
    const now = coarseNow();
    for (const connection of this.#connections) {
      // A WebSocket is told the server is going (1001) and closes within its handshake's time.
      connection.goingAway();
      if (connection.state !== ConnState.Idle) continue;
      // One just accepted may be about to send its request (a worker leaving a shared port
      // meets these): it gets a moment to, and its answer closes it.
      if (connection.requestsServed === 0) {
        connection.deadline = Math.min(connection.deadline, now + FRESH_CONNECTION_GRACE_MS);
      } else if (!keepIdle) connection.close();
    }
    if (this.#connections.size > 0) {
      const emptied = new Promise<void>((resolve) => (this.#emptied = resolve));
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timedOut = new Promise<void>((resolve) => (timer = setTimeout(resolve, gracefulMs)));
      await Promise.race([emptied, timedOut]);
      clearTimeout(timer);
      if (this.#connections.size > 0) {
        this.engine.errorLog.warning(
          `Graceful timeout: closing ${this.#connections.size} connection(s) still open`,
        );
        for (const connection of this.#connections) connection.close();
      }
    }
    await Promise.all(refused);
    clearInterval(this.#sweeper);
    await Promise.all(this.#acceptLoops);
    this.#releaseDescriptors();
    for (const path of this.#socketPaths.splice(0)) removeSocket(path);
    this.engine.accessLog?.flush();
  }

  /** Gives the spare back and writes the summaries still counted. */
  #releaseDescriptors(): void {
    this.#reserve.release();
    this.#overCapacityLog.flush();
    this.#acceptFailureLog.flush();
    this.#sheddingLog.flush();
    this.engine.proxyProtocol?.refusals.flush();
  }

  async #acceptLoop(listening: Listening): Promise<void> {
    let backoff = 0;
    while (!this.#closing) {
      let conn: Deno.Conn;
      try {
        conn = await listening.listener.accept();
        backoff = 0;
      } catch (error) {
        if (this.#closing || error instanceof Deno.errors.BadResource) return;
        // Shut down under us (a pool's master stopping: listener_close.ts stopListening()).
        if ((error as { code?: string }).code === "EINVAL") return;
        if (isOutOfDescriptors(error) && (await this.#shed(listening, error))) continue;
        // No spare, or another error: wait and retry rather than spin (Go's net/http does the
        // same), and take the spare back as soon as a descriptor is free again.
        backoff = Math.min(Math.max(5, backoff * 2), MAX_ACCEPT_BACKOFF_MS);
        this.#acceptFailureLog.note(
          `Accept failed, retrying in ${backoff} ms: ${error}`,
          (count, seconds) =>
            `Accept failed ${count} more times in the last ${seconds} s, retrying in up to ` +
            `${backoff} ms: ${error}`,
        );
        await new Promise((resolve) => setTimeout(resolve, backoff));
        this.#reserve.take();
        continue;
      }
      this.#admit(conn, listening);
    }
  }

  /**
   * Out of descriptors, the connection that could not be accepted is still queued: the spare
   * is given up so that it can be, it is told 503, and the spare is taken back once it is
   * closed. One connection at a time, each waited for, so this cannot spin. False when there
   * was no spare to give (the caller backs off).
   */
  async #shed(listening: Listening, cause: unknown): Promise<boolean> {
    if (!this.#reserve.release()) return false;
    try {
      const conn = await listening.listener.accept();
      this.#sheddingLog.note(
        `Out of file descriptors (${cause}): 503 from the spare descriptor; raise the ` +
          "open-file limit or lower --max-connections/--max-pending",
        (count, seconds) =>
          `Out of file descriptors: 503 sent to ${count} more connections in the last ` +
          `${seconds} s`,
      );
      await rejectBusy(conn, SHED_LINGER_MS);
    } catch (error) {
      // The spare went elsewhere before accept() took it (EMFILE again), or the listener
      // closed: the caller's loop sees the same on its next accept().
      if (!(error instanceof Deno.errors.BadResource) && !this.#closing) {
        this.#acceptFailureLog.note(
          `Accept failed with the spare descriptor given up: ${error}`,
          (count, seconds) =>
            `Accept failed ${count} more times in the last ${seconds} s: ${error}`,
        );
      }
    }
    // Taken back only if still serving; a failure here leaves the backoff path to retry.
    if (!this.#closing) return this.#reserve.take();
    return true;
  }

  /**
   * Past --max-connections a connection waits, unread, for a slot; past --max-pending as well
   * it is told 503 and closed, so a burst costs a bounded amount of memory.
   */
  #admit(conn: Deno.Conn, listening: Listening): void {
    const { maxConnections, maxPending } = this.#admission;
    if (this.#connections.size < maxConnections) return this.#start(conn, listening);
    if (this.#pending.length < maxPending) {
      this.#pending.push({ conn, listening });
      return;
    }
    const state = `${this.#connections.size} open, ${this.#pending.length} waiting`;
    this.#overCapacityLog.note(
      `Over capacity (${state}): 503`,
      (count, seconds) =>
        `Over capacity (${state}): 503 sent to ${count} more connections in the last ${seconds} s`,
    );
    rejectBusy(conn, BUSY_LINGER_MS);
  }

  #start(conn: Deno.Conn, listening: Listening): void {
    // Accepted while stopping: it is served all the same, with Connection: close.
    // A unix-socket peer is a local process allowed by the file's mode: trusted as a proxy.
    const unix = conn.remoteAddr.transport === "unix";
    const remote = (unix ? { hostname: "", port: "" } : conn.remoteAddr) as Deno.NetAddr;
    try {
      (conn as Deno.TcpConn).setNoDelay?.(true);
    } catch {
      // The peer may already be gone; the first read will say so.
    }
    const info: ConnectionInfo = {
      serverName: listening.serverName,
      serverPort: listening.serverPort,
      remoteAddr: remote.hostname ?? "",
      remotePort: String(remote.port ?? ""),
      urlScheme: listening.urlScheme,
      trustedProxy: unix || (this.engine.trustedProxies?.trusts(remote.hostname ?? "") ?? false),
    };
    const connection = new Connection(conn, this.engine, info);
    this.#connections.add(connection);
    connection.run().finally(() => {
      this.#connections.delete(connection);
      const next = this.#pending.shift();
      if (next) this.#start(next.conn, next.listening);
      else if (this.#connections.size === 0 && this.#emptied) this.#emptied();
    });
  }

  #sweep(): void {
    this.#noticeStall(Date.now());
    // Deadlines were set on the deadline clock, which leaves out time the process did not run.
    const now = coarseNow();
    for (const connection of this.#connections) {
      if (connection.expired(now)) connection.expire(now);
    }
  }
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // Already closed.
  }
}

const BUSY_BODY = "Service Unavailable\n";

/**
 * 503 for a connection the server has no room for. The request is read and dropped after the
 * answer (for at most `lingerMs`) so that closing does not reset the connection under it.
 * Resolves once the connection is closed; never rejects.
 */
function rejectBusy(conn: Deno.Conn, lingerMs: number): Promise<void> {
  const response = new TextEncoder().encode(
    `HTTP/1.1 503 Service Unavailable\r\nDate: ${httpDate()}\r\nRetry-After: 1\r\n` +
      `Content-Type: text/plain\r\nContent-Length: ${BUSY_BODY.length}\r\n` +
      `Connection: close\r\n\r\n${BUSY_BODY}`,
  );
  const timer = setTimeout(() => closeQuietly(conn), lingerMs);
  return (async () => {
    try {
      await conn.write(response);
      await conn.closeWrite();
      const sink = new Uint8Array(4096);
      while ((await conn.read(sink)) !== null);
    } catch {
      // The client went first, or the linger ran out; nothing to tell it.
    } finally {
      clearTimeout(timer);
      closeQuietly(conn);
    }
  })();
}
