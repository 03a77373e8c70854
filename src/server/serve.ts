// Serving an app in this process: builds the engine from a configuration, opens the
// listeners and returns a handle to stop them. The CLI and the tests both start here.

import type { Engine } from "./connection.ts";
import { AccessLog, ErrorLog, RateLimitedLog, type Sink } from "./log.ts";
import { Server } from "./server.ts";
import { TrustedProxies } from "./proxy.ts";
import { openTelemetry } from "./telemetry.ts";
import { type BindAddress, isUnixBind, urlOf as bindUrl } from "./bind.ts";
import { ConfigError, SERVER_DEFAULTS, type ServerConfig } from "./config.ts";
import { prepareZlib } from "./websocket_compression.ts";
import type { App } from "../tsgi/types.ts";

/**
 * The most time spent reading and dropping a body the app left unread, to keep the
 * connection; past it the connection closes instead (as the body's rate rules also say).
 */
const DRAIN_TIMEOUT_MS = 5000;

export interface ServeOptions extends Partial<ServerConfig> {
  /** Error log; by default stderr at `logLevel`. */
  errorLog?: ErrorLog;
  /** Where access lines go when `accessLog` is not a path, "-" or "off". */
  accessSink?: Sink;
  /** Share the port with other processes (workers). */
  reusePort?: boolean;
  /**
   * Listening sockets this process inherited, by descriptor (from a pool's master, or from
   * systemd): served instead of binding `bind`. Serving them throws AdoptError when it can't.
   */
  inherited?: number[];
  multiprocess?: boolean;
  runOnce?: boolean;
}

/** A running server. */
export interface ServerHandle {
  /** The bound TCP addresses, ports resolved. */
  addrs: Deno.NetAddr[];
  /** The unix sockets listened on. */
  socketPaths: string[];
  server: Server;
  /** Resolves when the server has stopped. */
  finished: Promise<void>;
  /**
   * Graceful stop; `gracefulMs` defaults to the configured graceful timeout. `keepIdle`: idle
   * keep-alive connections keep their deadline instead of closing at once (Server.shutdown).
   */
  shutdown(gracefulMs?: number, keepIdle?: boolean): Promise<void>;
}

/** Starts serving `app`; throws Deno's error when an address cannot be bound. */
export function serve(app: App, options: ServeOptions = {}): ServerHandle {
  return listen(options).start(app);
}

/** A server whose sockets are bound and logs open, that accepts nothing until it has its app. */
export interface BoundServer {
  /** The bound TCP addresses, ports resolved. */
  addrs: Deno.NetAddr[];
  /** The unix sockets listened on. */
  socketPaths: string[];
  /** Starts accepting, for `app`. */
  start(app: App): ServerHandle;
  /** Closes the sockets without serving (the app could not be had). */
  close(): Promise<void>;
}

/**
 * Binds (or adopts) the sockets and opens the logs, without an app yet: a process that gives
 * up its set-up's permissions before it imports the app does it between the two
 * (the CLI and a pool's worker, when permission flags are given).
 */
export function listen(options: ServeOptions = {}): BoundServer {
  const config: ServerConfig = { ...SERVER_DEFAULTS, ...stripUndefined(options) };
  const errorLog = options.errorLog ?? new ErrorLog(config.logLevel);
  const engine: Engine = {
    app: notStarted,
    limits: {
      requestLine: config.limitRequestLine,
      fields: config.limitRequestFields,
      fieldSize: config.limitRequestFieldSize,
      head: config.limitRequestHead,
    },
    maxBodySize: config.maxBodySize,
    keepAliveMs: config.keepAlive * 1000,
    headerTimeoutMs: config.headerTimeout * 1000,
    bodyRate: {
      minRate: config.minBodyRate,
      graceMs: config.rateGrace * 1000,
      stallMs: config.bodyTimeout * 1000,
    },
    responseRate: {
      minRate: config.minResponseRate,
      graceMs: config.rateGrace * 1000,
      stallMs: config.writeTimeout * 1000,
    },
    drainTimeoutMs: DRAIN_TIMEOUT_MS,
    errorLog,
    accessLog: openAccessLog(config.accessLog, config.accessLogFormat, options.accessSink),
    trustedProxies: new TrustedProxies(config.forwardedAllowIps),
    environ: {
      rootPath: config.rootPath,
      errors: errorLog.stream(),
      multiprocess: options.multiprocess ?? false,
      runOnce: options.runOnce ?? false,
    },
    draining: false,
    websocket: {
      maxMessage: config.wsMaxMessage,
      pingIntervalMs: config.wsPingInterval * 1000,
      deflate: config.wsDeflate
        ? {
          contextTakeover: config.wsDeflateContextTakeover,
          windowBits: config.wsDeflateWindowBits,
        }
        : null,
    },
    proxyProtocol: config.proxyProtocol
      ? { refusals: new RateLimitedLog(errorLog, "warning") }
      : null,
    telemetry: openTelemetry(),
  };
  if (config.wsDeflate) prepareZlib((line) => errorLog.warning(line));
  const server = new Server(engine, {
    maxConnections: config.maxConnections,
    maxPending: config.maxPending,
  });
  const tls = loadTls(config);
  if (tls && options.inherited === undefined && config.bind.some(isUnixBind)) {
    throw new ConfigError("--certfile with a unix:... bind: HTTPS is served on TCP binds only");
  }
  const { addrs, socketPaths } = options.inherited !== undefined
    ? server.adopt(options.inherited, { tls })
    : server.listen(config.bind, {
      reusePort: options.reusePort ?? false,
      tls,
      umask: config.umask,
    });
  return {
    addrs,
    socketPaths,
    start(app: App): ServerHandle {
      engine.app = app;
      const finished = server.serve();
      return {
        addrs,
        socketPaths,
        server,
        finished,
        shutdown: (gracefulMs = config.gracefulTimeout * 1000, keepIdle = false) =>
          server.shutdown(gracefulMs, keepIdle),
      };
    },
    close: () => server.shutdown(0),
  };
}

/** The app of a server that has not started: it accepts nothing, so this is never called. */
const notStarted: App = () => {
  throw new Error("The server has not started");
};

function openAccessLog(
  target: string,
  format: "text" | "json",
  sink: Sink | undefined,
): AccessLog | null {
  if (target === "off") return null;
  if (sink) return new AccessLog(sink, format);
  if (target === "-") return new AccessLog(Deno.stdout, format);
  return new AccessLog(Deno.openSync(target, { append: true, create: true }), format);
}

/** The certificate and key for HTTPS, read from --certfile/--keyfile; null for plain HTTP. */
export function loadTls(config: ServerConfig): { cert: string; key: string } | null {
  if (config.certfile === "" && config.keyfile === "") return null;
  if (config.proxyProtocol) {
    // The PROXY header comes before the TLS handshake, and Deno's TLS listener does the
    // handshake itself: it would read the header as a malformed ClientHello.
    throw new ConfigError(
      "--proxy-protocol with --certfile: the PROXY header comes before the TLS handshake, " +
        "which Deno's TLS listener does itself; terminate TLS at the proxy, or drop one flag",
    );
  }
  if (config.certfile === "" || config.keyfile === "") {
    throw new ConfigError("--certfile and --keyfile go together: give both or neither");
  }
  return { cert: readPem(config.certfile, "certfile"), key: readPem(config.keyfile, "keyfile") };
}

function readPem(path: string, flag: string): string {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (error) {
    throw new ConfigError(`--${flag}: cannot read "${path}": ${(error as Error).message}`);
  }
  if (!text.includes("-----BEGIN ")) {
    throw new ConfigError(`--${flag}: "${path}" is not a PEM file`);
  }
  return text;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const key in o) if (o[key] !== undefined) out[key] = o[key];
  return out;
}

/** "http://127.0.0.1:8000" for a bound address. */
export function urlOf(addr: Deno.NetAddr | BindAddress, scheme = "http"): string {
  return bindUrl(addr, scheme);
}
