// What serving in one process takes, with the defaults that hold against a hostile client:
// the library's serve() and every process model start from these. The CLI's settings table
// (src/cli/settings.ts) spells each one as a flag; the values are decided here.

import type { Bind } from "./bind.ts";
import type { LogLevel } from "./log.ts";
import type { ContextTakeover } from "../http/websocket_deflate.ts";

/** A setting's value was refused; the message names the setting and the value. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/** The server's configuration. Times are in seconds, sizes and rates in bytes. */
export interface ServerConfig {
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
  maxConnections: number;
  maxPending: number;
  writeTimeout: number;
  bodyTimeout: number;
  minBodyRate: number;
  minResponseRate: number;
  rateGrace: number;
  accessLog: string;
  accessLogFormat: "text" | "json";
  certfile: string;
  keyfile: string;
  forwardedAllowIps: string;
  /** Every connection starts with a PROXY protocol header, from a peer in forwardedAllowIps. */
  proxyProtocol: boolean;
  logLevel: LogLevel;
  rootPath: string;
  /** The largest WebSocket message accepted, in bytes (all its fragments). */
  wsMaxMessage: number;
  /** Seconds between pings to a WebSocket peer; one not answered by the next closes it. */
  wsPingInterval: number;
  /** Offer permessage-deflate (RFC 7692) to WebSocket clients. */
  wsDeflate: boolean;
  /** With wsDeflate: which side keeps its compression context between messages. */
  wsDeflateContextTakeover: ContextTakeover;
  /** With wsDeflate: the most LZ77 window, as bits (9–15), either side compresses with. */
  wsDeflateWindowBits: number;
}

const GIB = 1024 * 1024 * 1024;

export const SERVER_DEFAULTS: Readonly<ServerConfig> = Object.freeze({
  bind: [{ hostname: "127.0.0.1", port: 8000 }],
  umask: 0,
  keepAlive: 5,
  headerTimeout: 10,
  gracefulTimeout: 30,
  limitRequestLine: 8190,
  limitRequestFields: 100,
  limitRequestFieldSize: 8190,
  limitRequestHead: 64 * 1024,
  maxBodySize: GIB,
  maxConnections: 1000,
  maxPending: 1000,
  writeTimeout: 30,
  bodyTimeout: 30,
  minBodyRate: 240,
  minResponseRate: 240,
  rateGrace: 5,
  accessLog: "-",
  accessLogFormat: "text",
  certfile: "",
  keyfile: "",
  forwardedAllowIps: "127.0.0.1,::1",
  proxyProtocol: false,
  logLevel: "info",
  rootPath: "",
  wsMaxMessage: 16 * 1024 * 1024,
  wsPingInterval: 30,
  wsDeflate: false,
  wsDeflateContextTakeover: "none",
  wsDeflateWindowBits: 15,
});
