// Every setting is declared once here — flag, default, section, validation, help — and the CLI
// parser, the config file (config_file.ts), --help and docs/settings.md are all generated from
// this table (gunicorn's config.py, made data). A setting's config-file key is its `key`. The
// server's own defaults are decided where serving is (src/server/config.ts); this table spells
// them as flags.

import type { LoadOptions } from "../app/loader.ts";
import type { PoolSettings } from "../pool/config.ts";
import { type Bind, BindError, formatBind, parseBind } from "../server/bind.ts";
import { ConfigError, SERVER_DEFAULTS, type ServerConfig } from "../server/config.ts";
import { TrustedProxies } from "../server/proxy.ts";
import { NO_GRANTS, parsePermissionFlag, PermissionFlagError } from "../process/permission_set.ts";

export { ConfigError };

/** The whole configuration: the server's, the pool's, isolation's and the CLI's own. */
export interface Config extends ServerConfig, PoolSettings, Required<LoadOptions> {
  isolate: "none" | "request";
  spares: number;
  maxChildren: number;
  maxQueue: number;
  /** Deno permission flags for the app, as Deno spells them (`--allow-net=…`). */
  permissions: string[];
  /** Most memory one isolated child may use, in bytes; 0: no cap. */
  isolateMemory: number;
  reload: boolean;
  /** A worker's RSS in bytes past which it asks to be replaced (src/pool/worker.ts); 0: never. */
  maxMemory: number;
}

/** The groups --help and docs/settings.md show the settings in, in this order. */
export const SECTIONS = {
  binding: "Binding",
  tls: "TLS and proxies",
  limits: "Limits and timeouts",
  workers: "Workers",
  isolation: "Isolation",
  logging: "Logging",
  app: "The app",
  development: "Development",
} as const;

export type Section = keyof typeof SECTIONS;

/** One setting: how it is spelled on the command line, parsed, defaulted and explained. */
export interface Setting<K extends keyof Config = keyof Config> {
  key: K;
  flag: string;
  short?: string;
  metavar: string;
  default: Config[K];
  section: Section;
  /** Repeatable: each use adds a value. */
  multiple?: boolean;
  /** A flag that takes no value: present means "true". */
  boolean?: boolean;
  help: string;
  /**
   * Validates the values given, as the command line spells them (the last one counts, or
   * each for a repeatable setting), and returns the setting's typed value.
   */
  parse(raws: readonly string[], flag: string): Config[K];
  /**
   * A typed value (or one element of a repeatable one) spelled as the command line takes it.
   * Used by --help, --print-config and for typed values in a config file, which then go
   * through parse like any flag. Default: `String(value)`.
   */
  format?(value: unknown): string;
}

/** Any one setting, typed by its own key. */
export type AnySetting = { [K in keyof Config]: Setting<K> }[keyof Config];

/** A setting given once: the last value wins. */
function single<T>(parse: (raw: string, flag: string) => T) {
  return (raws: readonly string[], flag: string): T => parse(raws[raws.length - 1], flag);
}

/** A repeatable setting: every value, in order. */
function each<T>(parse: (raw: string, flag: string) => T) {
  return (raws: readonly string[], flag: string): T[] => raws.map((raw) => parse(raw, flag));
}

const GIB = 1024 * 1024 * 1024;

const SETTINGS_BY_KEY: { [K in keyof Config]: Setting<K> } = {
  bind: {
    key: "bind",
    flag: "bind",
    short: "b",
    metavar: "ADDR",
    default: SERVER_DEFAULTS.bind,
    section: "binding",
    multiple: true,
    help: "Address to listen on: HOST:PORT, :PORT (all interfaces), [::1]:PORT, or " +
      "unix:/path/to.sock. Repeatable; port 0 takes a free port.",
    parse: each(parseBindFlag),
    format: (value) => formatBind(value as Bind),
  },
  umask: {
    key: "umask",
    flag: "umask",
    metavar: "MODE",
    default: SERVER_DEFAULTS.umask,
    section: "binding",
    help: "Octal umask for unix socket files: 0 gives mode 0666, 007 gives 0660.",
    parse: single((raw, flag) => {
      if (!/^0?o?[0-7]{1,3}$/.test(raw)) fail(flag, "an octal mode like 007", raw);
      return parseInt(raw.replace(/^0?o/, ""), 8);
    }),
    // A number in a config file is the mode itself (0o007 in TypeScript), not its digits.
    format: (value) =>
      typeof value === "number" ? `0o${value.toString(8).padStart(3, "0")}` : String(value),
  },
  keepAlive: {
    key: "keepAlive",
    flag: "keep-alive",
    metavar: "SECONDS",
    default: SERVER_DEFAULTS.keepAlive,
    section: "limits",
    help: "How long an idle keep-alive connection is held open.",
    parse: single(parseSeconds),
  },
  headerTimeout: {
    key: "headerTimeout",
    flag: "header-timeout",
    metavar: "SECONDS",
    default: SERVER_DEFAULTS.headerTimeout,
    section: "limits",
    help: "Time allowed to receive a whole request head.",
    parse: single(parseSeconds),
  },
  gracefulTimeout: {
    key: "gracefulTimeout",
    flag: "graceful-timeout",
    metavar: "SECONDS",
    default: SERVER_DEFAULTS.gracefulTimeout,
    section: "workers",
    help: "On SIGTERM/SIGINT, how long in-flight requests may take to finish.",
    parse: single(parseSeconds),
  },
  limitRequestLine: {
    key: "limitRequestLine",
    flag: "limit-request-line",
    metavar: "BYTES",
    default: SERVER_DEFAULTS.limitRequestLine,
    section: "limits",
    help: "Longest request line; longer is answered 414.",
    parse: single(positiveInteger),
  },
  limitRequestFields: {
    key: "limitRequestFields",
    flag: "limit-request-fields",
    metavar: "N",
    default: SERVER_DEFAULTS.limitRequestFields,
    section: "limits",
    help: "Most header fields in a request; more is answered 431.",
    parse: single(nonNegativeInteger),
  },
  limitRequestFieldSize: {
    key: "limitRequestFieldSize",
    flag: "limit-request-field-size",
    metavar: "BYTES",
    default: SERVER_DEFAULTS.limitRequestFieldSize,
    section: "limits",
    help: "Longest header field line; longer is answered 431.",
    parse: single(positiveInteger),
  },
  limitRequestHead: {
    key: "limitRequestHead",
    flag: "limit-request-head",
    metavar: "BYTES",
    default: SERVER_DEFAULTS.limitRequestHead,
    section: "limits",
    help: "Largest whole request head, request line through the blank line (suffixes K, M " +
      "allowed); larger is answered 431.",
    parse: single(parseSize),
  },
  maxBodySize: {
    key: "maxBodySize",
    flag: "max-body-size",
    metavar: "BYTES",
    default: SERVER_DEFAULTS.maxBodySize,
    section: "limits",
    help: "Largest request body (suffixes K, M, G allowed); larger is answered 413. 0: no limit.",
    parse: single(parseSize),
  },
  maxConnections: {
    key: "maxConnections",
    flag: "max-connections",
    metavar: "N",
    default: SERVER_DEFAULTS.maxConnections,
    section: "limits",
    help: "Most connections served at once by one process; more wait (see --max-pending).",
    parse: single(positiveInteger),
  },
  maxPending: {
    key: "maxPending",
    flag: "max-pending",
    metavar: "N",
    default: SERVER_DEFAULTS.maxPending,
    section: "limits",
    help: "Most accepted connections waiting for a free slot; beyond it a connection is " +
      "answered 503 with Retry-After and closed. On a graceful stop, those still waiting get " +
      "the same 503.",
    parse: single(nonNegativeInteger),
  },
  writeTimeout: {
    key: "writeTimeout",
    flag: "write-timeout",
    metavar: "SECONDS",
    default: SERVER_DEFAULTS.writeTimeout,
    section: "limits",
    help: "A write to a client that makes no progress for this long closes the connection " +
      "(slow readers); 0: never.",
    parse: single(parseSeconds),
  },
  bodyTimeout: {
    key: "bodyTimeout",
    flag: "body-timeout",
    metavar: "SECONDS",
    default: SERVER_DEFAULTS.bodyTimeout,
    section: "limits",
    help: "While the app waits for the request body, a wait this long with no byte closes the " +
      "connection (408 if nothing was answered yet); 0: never.",
    parse: single(parseSeconds),
  },
  minBodyRate: {
    key: "minBodyRate",
    flag: "min-body-rate",
    metavar: "BYTES",
    default: SERVER_DEFAULTS.minBodyRate,
    section: "limits",
    help: "Bytes per second a request body must average while the app waits for it, after a " +
      "grace (--rate-grace); slower is 408 and close, as in Kestrel. 0: no minimum.",
    parse: single(parseSize),
  },
  minResponseRate: {
    key: "minResponseRate",
    flag: "min-response-rate",
    metavar: "BYTES",
    default: SERVER_DEFAULTS.minResponseRate,
    section: "limits",
    help: "Bytes per second a client must average while the server waits to write to it, " +
      "after --rate-grace; slower closes the connection. 0: no minimum.",
    parse: single(parseSize),
  },
  rateGrace: {
    key: "rateGrace",
    flag: "rate-grace",
    metavar: "SECONDS",
    default: SERVER_DEFAULTS.rateGrace,
    section: "limits",
    help: "Waiting time before --min-body-rate and --min-response-rate apply (TCP slow start).",
    parse: single(parseSeconds),
  },
  accessLog: {
    key: "accessLog",
    flag: "access-log",
    metavar: "PATH|-|off",
    default: SERVER_DEFAULTS.accessLog,
    section: "logging",
    help: "Where access log lines go: a file, - for stdout, off for nowhere.",
    parse: single((raw) => raw),
  },
  accessLogFormat: {
    key: "accessLogFormat",
    flag: "access-log-format",
    metavar: "FORMAT",
    default: SERVER_DEFAULTS.accessLogFormat,
    section: "logging",
    help: "text: combined log format plus the duration; json: one JSON object per request.",
    parse: single((raw, flag) => oneOf(raw, flag, ["text", "json"])),
  },
  certfile: {
    key: "certfile",
    flag: "certfile",
    metavar: "PATH",
    default: SERVER_DEFAULTS.certfile,
    section: "tls",
    help: "PEM certificate (chain) for HTTPS; needs --keyfile.",
    parse: single((raw) => raw),
  },
  keyfile: {
    key: "keyfile",
    flag: "keyfile",
    metavar: "PATH",
    default: SERVER_DEFAULTS.keyfile,
    section: "tls",
    help: "PEM private key for HTTPS; needs --certfile.",
    parse: single((raw) => raw),
  },
  forwardedAllowIps: {
    key: "forwardedAllowIps",
    flag: "forwarded-allow-ips",
    metavar: "IPS",
    default: SERVER_DEFAULTS.forwardedAllowIps,
    section: "tls",
    help: "Peers trusted to set X-Forwarded-For/-Proto and Forwarded: addresses, IPv4 CIDR " +
      "blocks, or * for all. From others these headers change nothing.",
    parse: single((raw, flag) => {
      try {
        return TrustedProxies.check(raw);
      } catch (error) {
        throw new ConfigError(`--${flag}: ${(error as Error).message}`);
      }
    }),
  },
  proxyProtocol: {
    key: "proxyProtocol",
    flag: "proxy-protocol",
    metavar: "",
    default: SERVER_DEFAULTS.proxyProtocol,
    section: "tls",
    boolean: true,
    help: "Every connection starts with a PROXY protocol header, v1 or v2 (HAProxy's " +
      "send-proxy and send-proxy-v2, AWS NLB), taken only from peers in --forwarded-allow-ips; " +
      "its source becomes REMOTE_ADDR/REMOTE_PORT, its destination SERVER_NAME/SERVER_PORT. A " +
      "connection from another peer, or with no valid header within --header-timeout, is " +
      "closed. Not with --certfile.",
    parse: single(parseBoolean),
  },
  logLevel: {
    key: "logLevel",
    flag: "log-level",
    metavar: "LEVEL",
    default: SERVER_DEFAULTS.logLevel,
    section: "logging",
    help: "Error log verbosity: debug, info, warning or error.",
    parse: single((raw, flag) => oneOf(raw, flag, ["debug", "info", "warning", "error"])),
  },
  rootPath: {
    key: "rootPath",
    flag: "root-path",
    metavar: "PREFIX",
    default: SERVER_DEFAULTS.rootPath,
    section: "app",
    help: "Mount prefix the app is served under; it becomes SCRIPT_NAME.",
    parse: single(parseRootPath),
  },
  wsMaxMessage: {
    key: "wsMaxMessage",
    flag: "ws-max-message",
    metavar: "BYTES",
    default: SERVER_DEFAULTS.wsMaxMessage,
    section: "limits",
    help: "The largest WebSocket message accepted (suffixes K, M, G allowed), all its fragments " +
      "counted; larger closes the socket with 1009.",
    parse: single(parseSize),
  },
  wsPingInterval: {
    key: "wsPingInterval",
    flag: "ws-ping-interval",
    metavar: "SECONDS",
    default: SERVER_DEFAULTS.wsPingInterval,
    section: "limits",
    help: "A ping to each WebSocket peer this often; one that has not answered by the next " +
      "ping is closed (1001). 0: no pings.",
    parse: single(parseSeconds),
  },
  wsDeflate: {
    key: "wsDeflate",
    flag: "ws-deflate",
    metavar: "",
    default: SERVER_DEFAULTS.wsDeflate,
    section: "limits",
    boolean: true,
    help: "Offer WebSocket clients permessage-deflate (RFC 7692): messages of 256 bytes or " +
      "more are sent compressed, and a compressed message inflating past --ws-max-message is " +
      "closed with 1009 while it inflates. With --ws-deflate-context-takeover none each " +
      "message is compressed on its own and an idle socket holds no compression state.",
    parse: single(parseBoolean),
  },
  wsDeflateContextTakeover: {
    key: "wsDeflateContextTakeover",
    flag: "ws-deflate-context-takeover",
    metavar: "MODE",
    default: SERVER_DEFAULTS.wsDeflateContextTakeover,
    section: "limits",
    help: "With --ws-deflate: which side keeps its compression context from one message to " +
      "the next (better ratios on small, similar messages), at a cost per socket that has " +
      "used it: none; client (an inflater per socket, ~20 KiB); both (a deflater too, " +
      "~250 KiB in all). docs/websocket.md has the figures.",
    parse: single((raw, flag) => oneOf(raw, flag, ["none", "client", "both"])),
  },
  wsDeflateWindowBits: {
    key: "wsDeflateWindowBits",
    flag: "ws-deflate-window-bits",
    metavar: "BITS",
    default: SERVER_DEFAULTS.wsDeflateWindowBits,
    section: "limits",
    help: "With --ws-deflate: the largest LZ77 window, 2^BITS bytes (9–15), the server " +
      "compresses with and asks clients to compress with when they allow it.",
    parse: single((raw, flag) => {
      const n = /^\d{1,2}$/.test(raw) ? Number(raw) : 0;
      if (n < 9 || n > 15) fail(flag, "a number of bits from 9 to 15", raw);
      return n;
    }),
  },
  appFactory: {
    key: "appFactory",
    flag: "app-factory",
    metavar: "",
    default: false,
    section: "app",
    boolean: true,
    help: "The export is a function called once (and awaited) to build the app.",
    parse: single(parseBoolean),
  },
  validate: {
    key: "validate",
    flag: "validate",
    metavar: "",
    default: false,
    section: "app",
    boolean: true,
    help: "Wrap the app in the TSGI validator: contract breaches become 500s naming the rule.",
    parse: single(parseBoolean),
  },
  workers: {
    key: "workers",
    flag: "workers",
    short: "w",
    metavar: "N",
    default: 0,
    section: "workers",
    help: "Worker processes under a supervising master; 0 serves in this process.",
    parse: single(nonNegativeInteger),
  },
  maxRequests: {
    key: "maxRequests",
    flag: "max-requests",
    metavar: "N",
    default: 0,
    section: "workers",
    help: "A worker retires after about this many requests and is replaced; 0: never.",
    parse: single(nonNegativeInteger),
  },
  maxRequestsJitter: {
    key: "maxRequestsJitter",
    flag: "max-requests-jitter",
    metavar: "N",
    default: 0,
    section: "workers",
    help: "Random extra requests (0 to N) added to --max-requests per worker, so they do not " +
      "all retire at once.",
    parse: single(nonNegativeInteger),
  },
  maxMemory: {
    key: "maxMemory",
    flag: "max-memory",
    metavar: "SIZE",
    default: 0,
    section: "workers",
    help: "A worker whose resident memory (RSS) passes this size (suffixes K, M, G allowed) " +
      "asks to be replaced, as for --max-requests, and logs its RSS; checked every second. 0: " +
      "no limit.",
    parse: single(parseSize),
  },
  timeout: {
    key: "timeout",
    flag: "timeout",
    short: "t",
    metavar: "SECONDS",
    default: 30,
    section: "workers",
    help: "A worker silent for this long (hung request, blocked event loop) is killed and " +
      "replaced; 0: never.",
    parse: single(parseSeconds),
  },
  reusePort: {
    key: "reusePort",
    flag: "reuse-port",
    metavar: "",
    default: false,
    section: "workers",
    boolean: true,
    help: "Workers bind each address themselves with SO_REUSEPORT, the kernel spreading " +
      "connections by hash, instead of accepting from the master's sockets in turn (a busy " +
      "worker's share then waits for it). Without FFI this is what happens anyway.",
    parse: single(parseBoolean),
  },
  isolate: {
    key: "isolate",
    flag: "isolate",
    metavar: "MODE",
    default: "none",
    section: "isolation",
    help: "none: apps run in the serving process; request: each request runs in a fresh " +
      "child process that serves only it.",
    parse: single((raw, flag) => oneOf(raw, flag, ["none", "request"])),
  },
  spares: {
    key: "spares",
    flag: "spares",
    metavar: "N",
    default: 2,
    section: "isolation",
    help: "With --isolate request: children started ahead, app imported, waiting for a request.",
    parse: single(nonNegativeInteger),
  },
  maxChildren: {
    key: "maxChildren",
    flag: "max-children",
    metavar: "N",
    default: 32,
    section: "isolation",
    help: "With --isolate request: most children alive at once; further requests wait in order.",
    parse: single(positiveInteger),
  },
  maxQueue: {
    key: "maxQueue",
    flag: "max-queue",
    metavar: "N",
    default: 1024,
    section: "isolation",
    help: "With --isolate request: most requests waiting for a child; beyond it, 503 with " +
      "Retry-After.",
    parse: single(nonNegativeInteger),
  },
  permissions: {
    key: "permissions",
    flag: "permissions",
    metavar: "FLAG",
    default: [NO_GRANTS],
    section: "isolation",
    multiple: true,
    help: "A Deno permission flag for the app, spelled as Deno spells it and written as it is " +
      "after APP: --allow-read[=PATHS], --allow-write, --allow-net, --allow-env, --allow-run, " +
      "--allow-sys, --allow-ffi, --allow-import (each =LIST or whole), the same with --deny-, " +
      "or --allow-all. The app — isolated children, workers or the single process — gets read " +
      "access to its folder and the module cache, plus exactly these (none: nothing more; " +
      "without any flag, workers and a single process keep deno's own). In a config file, a list.",
    parse: (raws) => {
      if (raws.length > 1 && raws.includes(NO_GRANTS)) {
        throw new ConfigError(`"${NO_GRANTS}" stands alone: no permission flag beside it`);
      }
      return raws.map(parsePermissionsFlag);
    },
  },
  isolateMemory: {
    key: "isolateMemory",
    flag: "isolate-memory",
    metavar: "SIZE",
    default: 512 * 1024 * 1024,
    section: "isolation",
    help: "With --isolate request: most memory one child may use (suffixes K, M, G): its V8 " +
      "heap limit, and a memory cgroup of its own where one can be made. A child past it is " +
      "ended (502). 0: no cap.",
    parse: single(parseMemoryCap),
    format: (value) => formatSize(value as number),
  },
  reload: {
    key: "reload",
    flag: "reload",
    metavar: "",
    default: false,
    section: "development",
    boolean: true,
    help: "Development: when a .ts, .js or .json file under the app's folder changes, replace " +
      "the workers (implies --workers 1 or more); a broken edit keeps the last good app serving.",
    parse: single(parseBoolean),
  },
};

/** Every setting, in the order --help shows them within their sections. */
export const SETTINGS: readonly AnySetting[] = Object.values(SETTINGS_BY_KEY);

/** The setting a config key names. */
export function settingFor(key: string): AnySetting | undefined {
  return Object.hasOwn(SETTINGS_BY_KEY, key) ? SETTINGS_BY_KEY[key as keyof Config] : undefined;
}

/** A default as the command line would spell it, for --help and the docs. */
export function formatDefault(setting: AnySetting): string {
  const values: unknown[] = Array.isArray(setting.default) ? setting.default : [setting.default];
  return values.map((v) => (setting.format ? setting.format(v) : String(v))).join(", ");
}

/** Sets one setting's value in `values`, typed by its key. */
export function assignSetting<K extends keyof Config>(
  values: Partial<Config>,
  setting: Setting<K>,
  value: Config[K],
): void {
  values[setting.key] = value;
}

function parseBindFlag(raw: string, flag: string): Bind {
  try {
    return parseBind(raw);
  } catch (error) {
    if (error instanceof BindError) fail(flag, error.expected, raw);
    throw error;
  }
}

function parseBoolean(raw: string, flag: string): boolean {
  if (raw === "true") return true;
  if (raw === "false") return false;
  return fail(flag, "true or false", raw);
}

function fail(flag: string, expected: string, raw: string): never {
  throw new ConfigError(`--${flag}: expected ${expected}, got ${JSON.stringify(raw)}`);
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

function parsePermissionsFlag(raw: string): string {
  if (raw === NO_GRANTS) return raw;
  try {
    parsePermissionFlag(raw);
  } catch (error) {
    if (error instanceof PermissionFlagError) throw new ConfigError(error.message);
    throw error;
  }
  return raw;
}

/** The smallest cap a child can start under: Deno's own start takes about 40 MiB. */
const MEMORY_CAP_MIN = 64 * 1024 * 1024;

function parseMemoryCap(raw: string, flag: string): number {
  const bytes = parseSize(raw, flag);
  if (bytes !== 0 && bytes < MEMORY_CAP_MIN) fail(flag, "0 or a size of 64M or more", raw);
  return bytes;
}

/** Bytes as the largest whole unit that spells them ("512M"), for --help and the docs. */
function formatSize(bytes: number): string {
  for (const unit of ["G", "M", "K"]) {
    const n = bytes / SIZE_UNITS[unit];
    if (bytes > 0 && Number.isInteger(n)) return `${n}${unit}`;
  }
  return String(bytes);
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

/** The configuration with every setting at its default (fresh copies, for a caller to change). */
export function defaultConfig(): Config {
  const values: Partial<Config> = {};
  for (const setting of SETTINGS) assignSetting(values, setting, structuredClone(setting.default));
  // Every key is set: SETTINGS_BY_KEY's type requires a setting for each.
  return values as Config;
}
