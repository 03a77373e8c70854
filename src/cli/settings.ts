// Every setting is declared once here — flag, default, validation, help — and the CLI parser,
// the config file (src/config_file.ts) and the --help text are all generated from this table
// (gunicorn's config.py, made data). A setting's config-file key is its `key`.

import type { LogLevel } from "../server/log.ts";
import { TrustedProxies } from "../server/proxy.ts";
import type { BindAddress } from "../server/server.ts";
import type { UnixBind } from "../server/unix_socket.ts";

/** Where to listen: a TCP address or a unix socket. */
export type Bind = BindAddress | UnixBind;

/** True for a unix-socket bind. */
export function isUnixBind(bind: Bind): bind is UnixBind {
  return "path" in bind;
}

/** The server's configuration, as the CLI produces it. */
export interface Config {
  bind: Bind[];
  umask: number;
  keepAlive: number;
  headerTimeout: number;
  gracefulTimeout: number;
  limitRequestLine: number;
  limitRequestFields: number;
  limitRequestFieldSize: number;
  limitRequestHead: number;
  maxBodySize: number;
  accessLog: string;
  accessLogFormat: "text" | "json";
  certfile: string;
  keyfile: string;
  forwardedAllowIps: string;
  logLevel: LogLevel;
  rootPath: string;
  appFactory: boolean;
  validate: boolean;
  workers: number;
  maxRequests: number;
  maxRequestsJitter: number;
  timeout: number;
  maxConnections: number;
  maxPending: number;
  writeTimeout: number;
  bodyTimeout: number;
  minBodyRate: number;
  minResponseRate: number;
  rateGrace: number;
  isolate: "none" | "request";
  spares: number;
  maxChildren: number;
  maxQueue: number;
  reload: boolean;
}

/** A setting's value was refused; the message names the flag and the value. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/** One setting: how it is spelled on the command line, parsed, defaulted and explained. */
export interface Setting {
  key: keyof Config;
  flag: string;
  short?: string;
  metavar: string;
  /** The default as it would be written on the command line. */
  default: string;
  multiple?: boolean;
  /** A flag that takes no value: present means "true". */
  boolean?: boolean;
  help: string;
  /** Validates a value as the command line spells it and returns it typed. */
  parse(raw: string, flag: string): unknown;
  /**
   * The inverse of parse: a typed value spelled as the command line takes it. Used by
   * --print-config and for typed values in a config file, which then go through parse like
   * any flag. Default: `String(value)`.
   */
  format?(value: unknown): string;
}

const GIB = 1024 * 1024 * 1024;

export const SETTINGS: readonly Setting[] = [
  {
    key: "bind",
    flag: "bind",
    short: "b",
    metavar: "ADDR",
    default: "127.0.0.1:8000",
    multiple: true,
    help: "Address to listen on: HOST:PORT, :PORT (all interfaces), [::1]:PORT, or " +
      "unix:/path/to.sock. Repeatable; port 0 takes a free port.",
    parse: parseBind,
    format: (value) => formatBind(value as Bind),
  },
  {
    key: "umask",
    flag: "umask",
    metavar: "MODE",
    default: "0",
    help: "Octal umask for unix socket files: 0 gives mode 0666, 007 gives 0660.",
    parse: (raw, flag) => {
      if (!/^0?o?[0-7]{1,3}$/.test(raw)) fail(flag, "an octal mode like 007", raw);
      return parseInt(raw.replace(/^0?o/, ""), 8);
    },
    // A number in a config file is the mode itself (0o007 in TypeScript), not its digits.
    format: (value) =>
      typeof value === "number" ? `0o${value.toString(8).padStart(3, "0")}` : String(value),
  },
  {
    key: "keepAlive",
    flag: "keep-alive",
    metavar: "SECONDS",
    default: "5",
    help: "How long an idle keep-alive connection is held open.",
    parse: parseSeconds,
  },
  {
    key: "headerTimeout",
    flag: "header-timeout",
    metavar: "SECONDS",
    default: "10",
    help: "Time allowed to receive a whole request head.",
    parse: parseSeconds,
  },
  {
    key: "gracefulTimeout",
    flag: "graceful-timeout",
    metavar: "SECONDS",
    default: "30",
    help: "On SIGTERM/SIGINT, how long in-flight requests may take to finish.",
    parse: parseSeconds,
  },
  {
    key: "limitRequestLine",
    flag: "limit-request-line",
    metavar: "BYTES",
    default: "8190",
    help: "Longest request line; longer is answered 414.",
    parse: positiveInteger,
  },
  {
    key: "limitRequestFields",
    flag: "limit-request-fields",
    metavar: "N",
    default: "100",
    help: "Most header fields in a request; more is answered 431.",
    parse: nonNegativeInteger,
  },
  {
    key: "limitRequestFieldSize",
    flag: "limit-request-field-size",
    metavar: "BYTES",
    default: "8190",
    help: "Longest header field line; longer is answered 431.",
    parse: positiveInteger,
  },
  {
    key: "limitRequestHead",
    flag: "limit-request-head",
    metavar: "BYTES",
    default: "65536",
    help: "Largest whole request head, request line through the blank line (suffixes K, M " +
      "allowed); larger is answered 431.",
    parse: parseSize,
  },
  {
    key: "maxBodySize",
    flag: "max-body-size",
    metavar: "BYTES",
    default: String(GIB),
    help: "Largest request body (suffixes K, M, G allowed); larger is answered 413. 0: no limit.",
    parse: parseSize,
  },
  {
    key: "maxConnections",
    flag: "max-connections",
    metavar: "N",
    default: "1000",
    help: "Most connections served at once by one process; more wait (see --max-pending).",
    parse: positiveInteger,
  },
  {
    key: "maxPending",
    flag: "max-pending",
    metavar: "N",
    default: "1000",
    help: "Most accepted connections waiting for a free slot; beyond it a connection is " +
      "answered 503 with Retry-After and closed.",
    parse: nonNegativeInteger,
  },
  {
    key: "writeTimeout",
    flag: "write-timeout",
    metavar: "SECONDS",
    default: "30",
    help: "A write to a client that makes no progress for this long closes the connection " +
      "(slow readers); 0: never.",
    parse: parseSeconds,
  },
  {
    key: "bodyTimeout",
    flag: "body-timeout",
    metavar: "SECONDS",
    default: "30",
    help: "While the app waits for the request body, a wait this long with no byte closes the " +
      "connection (408 if nothing was answered yet); 0: never.",
    parse: parseSeconds,
  },
  {
    key: "minBodyRate",
    flag: "min-body-rate",
    metavar: "BYTES",
    default: "240",
    help: "Bytes per second a request body must average while the app waits for it, after a " +
      "grace (--rate-grace); slower is 408 and close, as in Kestrel. 0: no minimum.",
    parse: parseSize,
  },
  {
    key: "minResponseRate",
    flag: "min-response-rate",
    metavar: "BYTES",
    default: "240",
    help: "Bytes per second a client must average while the server waits to write to it, " +
      "after --rate-grace; slower closes the connection. 0: no minimum.",
    parse: parseSize,
  },
  {
    key: "rateGrace",
    flag: "rate-grace",
    metavar: "SECONDS",
    default: "5",
    help: "Waiting time before --min-body-rate and --min-response-rate apply (TCP slow start).",
    parse: parseSeconds,
  },
  {
    key: "accessLog",
    flag: "access-log",
    metavar: "PATH|-|off",
    default: "-",
    help: "Where access log lines go: a file, - for stdout, off for nowhere.",
    parse: (raw) => raw,
  },
  {
    key: "accessLogFormat",
    flag: "access-log-format",
    metavar: "FORMAT",
    default: "text",
    help: "text: combined log format plus the duration; json: one JSON object per request.",
    parse: (raw, flag) => oneOf(raw, flag, ["text", "json"]),
  },
  {
    key: "certfile",
    flag: "certfile",
    metavar: "PATH",
    default: "",
    help: "PEM certificate (chain) for HTTPS; needs --keyfile.",
    parse: (raw) => raw,
  },
  {
    key: "keyfile",
    flag: "keyfile",
    metavar: "PATH",
    default: "",
    help: "PEM private key for HTTPS; needs --certfile.",
    parse: (raw) => raw,
  },
  {
    key: "forwardedAllowIps",
    flag: "forwarded-allow-ips",
    metavar: "IPS",
    default: "127.0.0.1,::1",
    help: "Peers trusted to set X-Forwarded-For/-Proto and Forwarded: addresses, IPv4 CIDR " +
      "blocks, or * for all. From others these headers change nothing.",
    parse: (raw, flag) => {
      try {
        return TrustedProxies.check(raw);
      } catch (error) {
        throw new ConfigError(`--${flag}: ${(error as Error).message}`);
      }
    },
  },
  {
    key: "logLevel",
    flag: "log-level",
    metavar: "LEVEL",
    default: "info",
    help: "Error log verbosity: debug, info, warning or error.",
    parse: (raw, flag) => oneOf(raw, flag, ["debug", "info", "warning", "error"]),
  },
  {
    key: "rootPath",
    flag: "root-path",
    metavar: "PREFIX",
    default: "",
    help: "Mount prefix the app is served under; it becomes SCRIPT_NAME.",
    parse: parseRootPath,
  },
  {
    key: "appFactory",
    flag: "app-factory",
    metavar: "",
    default: "false",
    boolean: true,
    help: "The export is a function called once (and awaited) to build the app.",
    parse: parseBoolean,
  },
  {
    key: "validate",
    flag: "validate",
    metavar: "",
    default: "false",
    boolean: true,
    help: "Wrap the app in the TSGI validator: contract breaches become 500s naming the rule.",
    parse: parseBoolean,
  },
  {
    key: "workers",
    flag: "workers",
    short: "w",
    metavar: "N",
    default: "0",
    help: "Worker processes under a supervising master; 0 serves in this process.",
    parse: nonNegativeInteger,
  },
  {
    key: "maxRequests",
    flag: "max-requests",
    metavar: "N",
    default: "0",
    help: "A worker retires after about this many requests and is replaced; 0: never.",
    parse: nonNegativeInteger,
  },
  {
    key: "maxRequestsJitter",
    flag: "max-requests-jitter",
    metavar: "N",
    default: "0",
    help: "Random extra requests (0 to N) added to --max-requests per worker, so they do not " +
      "all retire at once.",
    parse: nonNegativeInteger,
  },
  {
    key: "timeout",
    flag: "timeout",
    short: "t",
    metavar: "SECONDS",
    default: "30",
    help: "A worker silent for this long (hung request, blocked event loop) is killed and " +
      "replaced; 0: never.",
    parse: parseSeconds,
  },
  {
    key: "isolate",
    flag: "isolate",
    metavar: "MODE",
    default: "none",
    help: "none: apps run in the serving process; request: each request runs in a fresh " +
      "child process that serves only it.",
    parse: (raw, flag) => oneOf(raw, flag, ["none", "request"]),
  },
  {
    key: "spares",
    flag: "spares",
    metavar: "N",
    default: "2",
    help: "With --isolate request: children started ahead, app imported, waiting for a request.",
    parse: nonNegativeInteger,
  },
  {
    key: "maxChildren",
    flag: "max-children",
    metavar: "N",
    default: "32",
    help: "With --isolate request: most children alive at once; further requests wait in order.",
    parse: positiveInteger,
  },
  {
    key: "maxQueue",
    flag: "max-queue",
    metavar: "N",
    default: "1024",
    help: "With --isolate request: most requests waiting for a child; beyond it, 503 with " +
      "Retry-After.",
    parse: nonNegativeInteger,
  },
  {
    key: "reload",
    flag: "reload",
    metavar: "",
    default: "false",
    boolean: true,
    help: "Development: when a .ts, .js or .json file under the app's folder changes, replace " +
      "the workers (implies --workers 1 or more); a broken edit keeps the last good app serving.",
    parse: parseBoolean,
  },
];

function parseBoolean(raw: string, flag: string): boolean {
  if (raw === "true") return true;
  if (raw === "false") return false;
  return fail(flag, "true or false", raw);
}

function fail(flag: string, expected: string, raw: string): never {
  throw new ConfigError(`--${flag}: expected ${expected}, got ${JSON.stringify(raw)}`);
}

/** "HOST:PORT", ":PORT", "[v6]:PORT", "HOST" (port 8000), or "unix:/path". */
export function parseBind(raw: string, flag = "bind"): Bind {
  if (raw.startsWith("unix:")) {
    const path = raw.slice(5);
    if (path === "" || path.includes("\0")) fail(flag, "unix:/path/to.sock", raw);
    return { path };
  }
  return parseTcpBind(raw, flag);
}

/** "HOST:PORT", ":PORT", "[v6]:PORT", or "HOST" (port 8000). */
export function parseTcpBind(raw: string, flag = "bind"): BindAddress {
  let host = raw;
  let port = "8000";
  if (raw.startsWith("[")) {
    const close = raw.indexOf("]");
    if (close < 0) fail(flag, "[IPv6]:PORT", raw);
    host = raw.slice(1, close);
    const rest = raw.slice(close + 1);
    if (rest !== "") {
      if (!rest.startsWith(":")) fail(flag, "[IPv6]:PORT", raw);
      port = rest.slice(1);
    }
  } else {
    const colon = raw.lastIndexOf(":");
    if (colon >= 0) {
      if (raw.indexOf(":") !== colon) fail(flag, "HOST:PORT (IPv6 in brackets)", raw);
      host = raw.slice(0, colon) || "0.0.0.0";
      port = raw.slice(colon + 1);
    }
  }
  if (host === "") fail(flag, "HOST:PORT", raw);
  const n = /^\d{1,5}$/.test(port) ? Number(port) : -1;
  if (n < 0 || n > 65535) fail(flag, "a port from 0 to 65535", raw);
  return { hostname: host, port: n };
}

/** A bind as --bind spells it: "127.0.0.1:8000", "[::1]:8000", "unix:/path". */
export function formatBind(bind: Bind): string {
  if (isUnixBind(bind)) return `unix:${bind.path}`;
  const host = bind.hostname.includes(":") ? `[${bind.hostname}]` : bind.hostname;
  return `${host}:${bind.port}`;
}

function parseSeconds(raw: string, flag: string): number {
  const n = /^\d+(\.\d+)?$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isFinite(n)) fail(flag, "a number of seconds (0 or more)", raw);
  return n;
}

function nonNegativeInteger(raw: string, flag: string): number {
  if (!/^\d{1,15}$/.test(raw)) fail(flag, "a whole number (0 or more)", raw);
  return Number(raw);
}

function positiveInteger(raw: string, flag: string): number {
  const n = /^\d{1,15}$/.test(raw) ? Number(raw) : 0;
  if (n < 1) fail(flag, "a whole number (1 or more)", raw);
  return n;
}

const SIZE_UNITS: Record<string, number> = { "": 1, K: 1024, M: 1024 ** 2, G: GIB };

/** Bytes, optionally with K, M or G (powers of 1024; "KiB", "MB" spellings accepted). */
export function parseSize(raw: string, flag: string): number {
  const match = /^(\d{1,15})\s*([KMG]?)(i?B)?$/i.exec(raw);
  if (!match) fail(flag, "a size in bytes, like 1048576 or 10M", raw);
  const n = Number(match[1]) * SIZE_UNITS[match[2].toUpperCase()];
  if (!Number.isSafeInteger(n)) fail(flag, "a size below 2^53 bytes", raw);
  return n;
}

function oneOf<T extends string>(raw: string, flag: string, choices: T[]): T {
  if (!choices.includes(raw as T)) fail(flag, `one of ${choices.join(", ")}`, raw);
  return raw as T;
}

function parseRootPath(raw: string, flag: string): string {
  if (raw === "" || raw === "/") return "";
  if (!raw.startsWith("/") || /[?#\s]/.test(raw)) fail(flag, "a path starting with /", raw);
  return raw.replace(/\/+$/, "");
}

/** The configuration with every setting at its default. */
export function defaultConfig(): Config {
  const config: Record<string, unknown> = {};
  for (const setting of SETTINGS) {
    const value = setting.parse(setting.default, setting.flag);
    config[setting.key] = setting.multiple ? [value] : value;
  }
  return config as unknown as Config;
}
