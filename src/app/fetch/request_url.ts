// The URL of the Request a fetch app gets: scheme://authority from the environ, then the path
// and query, spelled as `new Request(url).url` would spell them. Parsing a URL is a good part
// of a small request's cost, so a plain target (most are) is appended to a base checked once
// per authority, and only the others go through the parser.

import type { Environ } from "../../tsgi/types.ts";
import { HttpError } from "../../http/errors.ts";
import { percentDecodePath, requestAuthority } from "../../tsgi/environ.ts";

/** scheme://host/path?query, the path being SCRIPT_NAME + PATH_INFO. */
export function urlOf(environ: Environ): string {
  return `${environ["tsgi.url_scheme"]}://${requestAuthority(environ)}${targetOf(environ)}`;
}

/** The URL as `new Request(urlOf(environ)).url` has it; `base` is checkedBase()'s. */
export function lazyUrl(base: string, environ: Environ): string {
  const target = targetOf(environ);
  return isPlainTarget(target) ? base + target : new URL(base + target).href;
}

/** The last authority and scheme found valid, and their base as a URL spells it. */
let lastAuthority = "";
let lastScheme = "";
let lastBase = "";

/**
 * scheme://authority as a URL spells it (lower-case host, no default port), checked now as
 * `new Request(url)` would check it, so that a Host no URL can hold is a 400 before the app
 * runs, not an error when it first reads `url`. Only the authority can fail a URL: the target
 * always starts with "/". A connection's requests all name the same authority, so one is kept.
 */
export function checkedBase(environ: Environ): string {
  const authority = requestAuthority(environ);
  const scheme = environ["tsgi.url_scheme"];
  if (authority === lastAuthority && scheme === lastScheme) return lastBase;
  let root: string;
  try {
    root = new URL(`${scheme}://${authority}/`).href;
  } catch {
    throw new HttpError(400, "Request cannot be expressed as a URL and headers");
  }
  lastAuthority = authority;
  lastScheme = scheme;
  return (lastBase = root.slice(0, -1));
}

/**
 * The path and query. The raw target keeps the client's encoding (`%2F` stays `%2F`), so it
 * is used whenever it still names SCRIPT_NAME + PATH_INFO; middleware that rewrote the path
 * (a router, a rewrite) gets the path re-encoded from the environ instead.
 */
function targetOf(environ: Environ): string {
  const raw = environ.RAW_URI;
  const path = environ.SCRIPT_NAME + environ.PATH_INFO;
  const pathStart = raw.charCodeAt(0) === 0x2f ? 0 : raw.indexOf("/", raw.indexOf("//") + 2);
  if (pathStart >= 0) {
    const q = raw.indexOf("?", pathStart);
    const rawPath = q < 0 ? raw.slice(pathStart) : raw.slice(pathStart, q);
    if (rawPath === path || (rawPath.includes("%") && percentDecodePath(rawPath) === path)) {
      return pathStart === 0 ? raw : raw.slice(pathStart);
    }
  }
  const query = environ.QUERY_STRING;
  return encodePath(path) + (query === "" ? "" : "?" + query);
}

function encodePath(path: string): string {
  const encoded = encodeURI(path).replaceAll("?", "%3F").replaceAll("#", "%23");
  return encoded.charCodeAt(0) === 0x2f ? encoded : "/" + encoded;
}

/**
 * Characters the URL parser keeps as they are in a path and a query of an http(s) URL:
 * letters, digits, - . _ ~ ! $ & ( ) * + , ; = : @ / ? and %. Anything else (a space, a
 * quote, a backslash, #, non-ASCII) it encodes, drops or reads otherwise.
 */
const PLAIN = new Uint8Array(128);
for (const c of "-._~!$&()*+,;=:@/?%") PLAIN[c.charCodeAt(0)] = 1;
for (let c = 0x30; c <= 0x39; c++) PLAIN[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) PLAIN[c] = PLAIN[c + 0x20] = 1;

/**
 * Whether the parser would leave `target` as it is: plain characters only, and no segment of
 * the path that starts with "." or "%" (dot segments, "%2e" among them, are resolved).
 */
function isPlainTarget(target: string): boolean {
  let inPath = true;
  for (let i = 0; i < target.length; i++) {
    const c = target.charCodeAt(i);
    if (c >= 128 || PLAIN[c] === 0) return false;
    if (c === 0x3f /* ? */) inPath = false;
    else if (inPath && (c === 0x2e || c === 0x25) && target.charCodeAt(i - 1) === 0x2f) {
      return false;
    }
  }
  return true;
}
