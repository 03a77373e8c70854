// Builds the per-request environ (docs/tsgi.md) from a parsed head and the connection's addresses:
// CGI variables, HTTP_* fields, and the tsgi.* keys.

import { HttpError } from "../http/errors.ts";
import { HEX_VALUE, PERCENT, QUESTION } from "../http/grammar.ts";
import type { RequestHead } from "../http/parser.ts";
import type { Environ, ErrorStream, Input } from "./types.ts";

/** What stays the same for every request on one connection. */
export interface ConnectionInfo {
  serverName: string;
  serverPort: string;
  remoteAddr: string;
  remotePort: string;
  urlScheme: "http" | "https";
  /** The peer is a proxy trusted to say who the client is (--forwarded-allow-ips). */
  trustedProxy: boolean;
}

/** What stays the same for every request the server serves. */
export interface EnvironDefaults {
  /** The mount prefix, SCRIPT_NAME; "" or a path starting with "/" and not ending in one. */
  rootPath: string;
  errors: ErrorStream;
  multiprocess: boolean;
  runOnce: boolean;
}

const VERSION: readonly [number, number] = Object.freeze([1, 0] as const);
const PROTOCOLS = ["HTTP/1.0", "HTTP/1.1"];

/** The environ for one request, or a 400 when its path is not valid percent-encoded UTF-8. */
export function buildEnviron(
  head: RequestHead,
  conn: ConnectionInfo,
  defaults: EnvironDefaults,
  input: Input,
): Environ | HttpError {
  const target = head.target;
  const pathStart = pathStartOf(target);
  const q = target.indexOf("?", pathStart);
  const rawPath = q < 0 ? target.slice(pathStart) : target.slice(pathStart, q);
  const path = rawPath.includes("%") ? percentDecodePath(rawPath) : rawPath;
  if (path instanceof HttpError) return path;
  const [scriptName, pathInfo] = splitRootPath(path, defaults.rootPath);
  const environ: Environ = {
    REQUEST_METHOD: head.method,
    SCRIPT_NAME: scriptName,
    PATH_INFO: pathInfo,
    QUERY_STRING: q < 0 ? "" : target.slice(q + 1),
    RAW_URI: target,
    REQUEST_URI: target,
    SERVER_NAME: conn.serverName,
    SERVER_PORT: conn.serverPort,
    SERVER_PROTOCOL: PROTOCOLS[head.minor],
    REMOTE_ADDR: conn.remoteAddr,
    REMOTE_PORT: conn.remotePort,
    "tsgi.version": VERSION,
    "tsgi.url_scheme": conn.urlScheme,
    "tsgi.input": input,
    "tsgi.errors": defaults.errors,
    "tsgi.multithread": false,
    "tsgi.multiprocess": defaults.multiprocess,
    "tsgi.run_once": defaults.runOnce,
  };
  addFields(environ, head.fields);
  if (pathStart > 0) environ.HTTP_HOST = authorityOf(target, pathStart);
  return environ;
}

function addFields(environ: Environ, fields: string[]): void {
  for (let i = 0; i < fields.length; i += 2) {
    const key = fields[i];
    const previous = environ[key];
    if (previous === undefined) environ[key] = fields[i + 1];
    else if (key === "HTTP_COOKIE") environ[key] = previous + "; " + fields[i + 1];
    // Identical repeats of Content-Length are allowed by the parser and mean one length.
    else if (key !== "CONTENT_LENGTH") environ[key] = previous + ", " + fields[i + 1];
  }
}

/** Where the path starts: 0 in origin-form, after the authority in absolute-form. */
function pathStartOf(target: string): number {
  if (target.charCodeAt(0) === 0x2f || target === "*") return 0;
  const authorityStart = target.indexOf("//") + 2;
  let i = authorityStart;
  while (i < target.length) {
    const c = target.charCodeAt(i);
    if (c === 0x2f || c === QUESTION) break;
    i++;
  }
  return i;
}

/** RFC 9112 §3.2.2: in absolute-form the target's authority replaces the Host field. */
function authorityOf(target: string, pathStart: number): string {
  return target.slice(target.indexOf("//") + 2, pathStart);
}

function splitRootPath(path: string, rootPath: string): [string, string] {
  if (rootPath === "") return ["", path];
  if (path.startsWith(rootPath)) {
    const rest = path.slice(rootPath.length);
    if (rest === "" || rest.charCodeAt(0) === 0x2f) return [rootPath, rest];
  }
  return [rootPath, path];
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/** Decodes %XX escapes and then UTF-8; a bad escape or bad UTF-8 is the client's 400. */
export function percentDecodePath(raw: string): string | HttpError {
  const bytes = new Uint8Array(raw.length);
  let n = 0;
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c !== PERCENT) {
      bytes[n++] = c;
      continue;
    }
    const hi = HEX_VALUE[raw.charCodeAt(i + 1)] ?? 255;
    const lo = HEX_VALUE[raw.charCodeAt(i + 2)] ?? 255;
    if (hi === 255 || lo === 255) return new HttpError(400, "Invalid percent-encoding in path");
    bytes[n++] = hi * 16 + lo;
    i += 2;
  }
  try {
    return strictUtf8.decode(bytes.subarray(0, n));
  } catch {
    return new HttpError(400, "Path is not valid UTF-8");
  }
}

/**
 * The authority a request was made to, for building its URL: its Host, else the server's
 * address. An empty Host (legal, RFC 9110 §7.2) must not leave "http:///…": a URL parser would
 * take the path's first segment for the host.
 */
export function requestAuthority(environ: Environ): string {
  const host = environ.HTTP_HOST as string | undefined;
  if (host) return host;
  const name = environ.SERVER_NAME;
  return `${name.includes(":") ? `[${name}]` : name}:${environ.SERVER_PORT}`;
}
