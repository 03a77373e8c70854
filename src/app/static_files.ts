// staticFiles(root): an app serving the files under a directory, for GET and HEAD, with
// Content-Type by extension, ETag / Last-Modified and 304s, single byte ranges (206, 416), and
// bodies streamed from disk. No request reaches a file outside the root: `..` segments,
// backslashes and NUL are refused (400), and every path is resolved (symlinks included) and
// checked to be inside the root before anything is opened (404 otherwise). Dotfiles (`.env`,
// `.git/`) are not served unless asked for; `/.well-known/` is (see isHidden()).

import { extname, join, relative, resolve, sep } from "node:path";
import type { App, Body, Environ, StartResponse } from "../tsgi/types.ts";

/** Options for staticFiles(). */
export interface StaticFilesOptions {
  /** The file served for a directory; "index.html" by default. */
  index?: string;
  /** Bytes read from disk per body chunk; 64 KiB by default. */
  chunkSize?: number;
  /** Extra or overriding Content-Types by extension: `{ ".ts": "text/plain" }`. */
  contentTypes?: Record<string, string>;
  /**
   * "deny" (the default): a path with a segment starting with "." is 404, whether it is named
   * in the request or reached through a symlink; `/.well-known/` is served all the same.
   * "allow": dotfiles are files like any other.
   */
  dotfiles?: "deny" | "allow";
}

const UTF8 = "; charset=utf-8";
const CONTENT_TYPES: Record<string, string> = {
  ".html": "text/html" + UTF8,
  ".htm": "text/html" + UTF8,
  ".css": "text/css" + UTF8,
  ".js": "text/javascript" + UTF8,
  ".mjs": "text/javascript" + UTF8,
  ".json": "application/json",
  ".map": "application/json",
  ".txt": "text/plain" + UTF8,
  ".md": "text/markdown" + UTF8,
  ".csv": "text/csv" + UTF8,
  ".xml": "application/xml",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".jpg": "image/jpeg",
  ".jpeg": "image/jpeg",
  ".gif": "image/gif",
  ".webp": "image/webp",
  ".avif": "image/avif",
  ".ico": "image/x-icon",
  ".wasm": "application/wasm",
  ".pdf": "application/pdf",
  ".zip": "application/zip",
  ".gz": "application/gzip",
  ".woff": "font/woff",
  ".woff2": "font/woff2",
  ".ttf": "font/ttf",
  ".otf": "font/otf",
  ".mp3": "audio/mpeg",
  ".mp4": "video/mp4",
  ".webm": "video/webm",
};
const DEFAULT_TYPE = "application/octet-stream";
const ALLOWED = "GET, HEAD";

/**
 * Serves the files under `root`. Throws at once when `root` is not a directory.
 *
 * ```ts
 * import { serve, staticFiles } from "../mod.ts";
 * serve(staticFiles("apps/public")); // GET /style.css -> apps/public/style.css
 * ```
 */
export function staticFiles(root: string, options: StaticFilesOptions = {}): App {
  const rootPath = realDirectory(root);
  const index = options.index ?? "index.html";
  const chunkSize = options.chunkSize ?? 64 * 1024;
  const types = { ...CONTENT_TYPES, ...options.contentTypes };
  const dotfiles = options.dotfiles ?? "deny";
  if (dotfiles !== "deny" && dotfiles !== "allow") {
    // "ignore" (Express's word) or a typo must not silently serve `.env`.
    throw new TypeError(
      `staticFiles(): dotfiles is "deny" or "allow", not ${JSON.stringify(dotfiles)}`,
    );
  }
  const hideDotfiles = dotfiles === "deny";
  return async (environ, startResponse) => {
    const method = environ.REQUEST_METHOD;
    if (method !== "GET" && method !== "HEAD") {
      return plain(startResponse, "405 Method Not Allowed", [["Allow", ALLOWED]]);
    }
    const segments = segmentsOf(environ.PATH_INFO);
    if (segments === null) return plain(startResponse, "400 Bad Request");
    if (hideDotfiles && isHidden(segments)) return plain(startResponse, "404 Not Found");
    if (!environ.PATH_INFO.endsWith("/") && await isDirectory(rootPath, segments)) {
      // As file servers do: the index's relative links must resolve inside the directory.
      return plain(startResponse, "301 Moved Permanently", [["Location", withSlash(environ)]]);
    }
    const path = await findFile(rootPath, segments, index);
    if (path === null) return plain(startResponse, "404 Not Found");
    // A symlink without a dot in its name may still lead into `.git/`.
    if (hideDotfiles && isHidden(relative(rootPath, path).split(sep))) {
      return plain(startResponse, "404 Not Found");
    }
    const file = await Deno.open(path, { read: true });
    try {
      const info = await file.stat();
      const type = types[extname(path).toLowerCase()] ?? DEFAULT_TYPE;
      return respond(environ, startResponse, { file, info, type, chunkSize });
    } catch (error) {
      file.close();
      throw error;
    }
  };
}

function realDirectory(root: string): string {
  try {
    const path = Deno.realPathSync(resolve(root));
    if (Deno.statSync(path).isDirectory) return path;
  } catch {
    // Reported below, in one message.
  }
  throw new TypeError(`staticFiles(): root ${JSON.stringify(root)} is not a directory`);
}

/**
 * The path's segments, or null when it must be refused. PATH_INFO is already percent-decoded
 * by the server, and is not decoded again here: a file named "%2e%2e" is a file, not "..".
 */
export function segmentsOf(pathInfo: string): string[] | null {
  if (pathInfo !== "" && pathInfo.charCodeAt(0) !== 0x2f) return null;
  // NUL ends a path for the OS; a backslash is a separator on Windows: neither is a name.
  if (pathInfo.includes("\0") || pathInfo.includes("\\")) return null;
  const segments: string[] = [];
  for (const segment of pathInfo.split("/")) {
    if (segment === "" || segment === ".") continue;
    if (segment === "..") return null;
    segments.push(segment);
  }
  return segments;
}

/**
 * Whether a path under the root (its segments) is a dotfile or inside a dot-directory, which
 * is how `.env`, `.git/`, `.htpasswd` and editor leftovers are kept when a project folder is
 * served. `/.well-known/` (RFC 8615) is the exception: it exists to be fetched (ACME http-01
 * challenges, security.txt), and a 404 there breaks certificate renewal in a way that is hard
 * to trace; dot-names inside it are still hidden. (Express's serve-static makes no such
 * exception: there, `.well-known` needs `dotfiles: "allow"`.)
 */
export function isHidden(segments: string[]): boolean {
  return segments.some((segment, i) =>
    segment.startsWith(".") && !(i === 0 && segment === WELL_KNOWN)
  );
}

const WELL_KNOWN = ".well-known";

/** Whether the segments name a directory inside the root. */
async function isDirectory(root: string, segments: string[]): Promise<boolean> {
  const path = await realPathInside(root, join(root, ...segments));
  return path !== null && (await Deno.stat(path)).isDirectory;
}

/** The request's own path with a slash added, its query kept: "/static?x" → "/static/?x". */
function withSlash(environ: Environ): string {
  const raw = environ.RAW_URI;
  const query = raw.indexOf("?");
  return query < 0 ? `${raw}/` : `${raw.slice(0, query)}/${raw.slice(query)}`;
}

/** The real path of the file to serve, or null: missing, not a file, or outside the root. */
async function findFile(root: string, segments: string[], index: string): Promise<string | null> {
  let path = await realPathInside(root, join(root, ...segments));
  if (path === null) return null;
  let info = await Deno.stat(path);
  if (info.isDirectory) {
    path = await realPathInside(root, join(path, index));
    if (path === null) return null;
    info = await Deno.stat(path);
  }
  return info.isFile ? path : null;
}

/** Follows every symlink; a path that ends up outside the root does not exist for us. */
async function realPathInside(root: string, path: string): Promise<string | null> {
  let real: string;
  try {
    real = await Deno.realPath(path);
  } catch {
    return null;
  }
  return real === root || real.startsWith(root.endsWith(sep) ? root : root + sep) ? real : null;
}

interface OpenFile {
  file: Deno.FsFile;
  info: Deno.FileInfo;
  type: string;
  chunkSize: number;
}

function respond(environ: Environ, startResponse: StartResponse, open: OpenFile): Body {
  const { file, info } = open;
  const mtime = info.mtime?.getTime() ?? 0;
  const validators: [string, string][] = [
    ["ETag", `"${info.size.toString(36)}-${mtime.toString(36)}"`],
    ["Last-Modified", new Date(mtime).toUTCString()],
  ];
  if (notModified(environ, validators[0][1], mtime)) {
    file.close();
    startResponse("304 Not Modified", validators);
    return [];
  }
  const range = rangeOf(environ, info.size, validators);
  if (range === UNSATISFIABLE) {
    file.close();
    return plain(startResponse, "416 Range Not Satisfiable", [
      ["Content-Range", `bytes */${info.size}`],
    ]);
  }
  const { start, end } = range ?? { start: 0, end: info.size - 1 };
  const headers: [string, string][] = [
    ["Content-Type", open.type],
    ["Content-Length", String(end - start + 1)],
    ["Accept-Ranges", "bytes"],
    ["X-Content-Type-Options", "nosniff"],
    ...validators,
  ];
  if (range !== null) headers.push(["Content-Range", `bytes ${start}-${end}/${info.size}`]);
  startResponse(range === null ? "200 OK" : "206 Partial Content", headers);
  if (environ.REQUEST_METHOD === "HEAD" || end < start) {
    file.close();
    return [];
  }
  return new FileBody(file, start, end - start + 1, open.chunkSize);
}

/** RFC 9110 §13.1.2, §13.1.3: If-None-Match (weak comparison) wins over If-Modified-Since. */
function notModified(environ: Environ, etag: string, mtime: number): boolean {
  const ifNoneMatch = environ.HTTP_IF_NONE_MATCH as string | undefined;
  if (ifNoneMatch !== undefined) {
    const opaque = (tag: string) => tag.trim().replace(/^W\//, "");
    return ifNoneMatch.trim() === "*" ||
      ifNoneMatch.split(",").some((tag) => opaque(tag) === opaque(etag));
  }
  const ifModifiedSince = environ.HTTP_IF_MODIFIED_SINCE as string | undefined;
  if (ifModifiedSince === undefined) return false;
  const since = Date.parse(ifModifiedSince);
  // HTTP dates have whole seconds; the file's mtime has more.
  return !Number.isNaN(since) && Math.floor(mtime / 1000) * 1000 <= since;
}

const UNSATISFIABLE = Symbol("unsatisfiable");

/**
 * RFC 9110 §14: one byte range (inclusive), UNSATISFIABLE for 416, or null for the whole
 * file: no Range, a syntax we ignore, several ranges (answered whole, as §14.2 allows), or an
 * If-Range that no longer matches.
 */
function rangeOf(
  environ: Environ,
  size: number,
  validators: [string, string][],
): { start: number; end: number } | typeof UNSATISFIABLE | null {
  const header = environ.HTTP_RANGE as string | undefined;
  if (header === undefined) return null;
  const ifRange = environ.HTTP_IF_RANGE as string | undefined;
  if (ifRange !== undefined && !validators.some(([, value]) => value === ifRange.trim())) {
    return null;
  }
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (match === null || (match[1] === "" && match[2] === "")) return null;
  if (match[1] === "") {
    const suffix = Number(match[2]);
    if (suffix === 0 || size === 0) return UNSATISFIABLE;
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(match[1]);
  const last = match[2] === "" ? Infinity : Number(match[2]);
  if (last < start) return null;
  if (start >= size) return UNSATISFIABLE;
  return { start, end: Math.min(last, size - 1) };
}

/** `length` bytes of a file from `start`, read a chunk at a time; close() closes the file. */
class FileBody implements AsyncIterable<Uint8Array> {
  readonly #file: Deno.FsFile;
  readonly #start: number;
  readonly #length: number;
  readonly #chunkSize: number;
  #closed = false;

  constructor(file: Deno.FsFile, start: number, length: number, chunkSize: number) {
    this.#file = file;
    this.#start = start;
    this.#length = length;
    this.#chunkSize = chunkSize;
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array> {
    if (this.#start > 0) await this.#file.seek(this.#start, Deno.SeekMode.Start);
    let remaining = this.#length;
    while (remaining > 0) {
      // A fresh buffer each time: the server may still hold the last one in its output.
      const buf = new Uint8Array(Math.min(this.#chunkSize, remaining));
      const n = await this.#file.read(buf);
      if (n === null) return; // The file shrank; the server reports the short body.
      remaining -= n;
      yield n === buf.length ? buf : buf.subarray(0, n);
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#file.close();
  }
}

const encoder = new TextEncoder();

/** A short text/plain answer: 400, 404, 405, 416. */
function plain(
  startResponse: StartResponse,
  status: string,
  extra: [string, string][] = [],
): Uint8Array[] {
  const body = encoder.encode(status.slice(4) + "\n");
  startResponse(status, [
    ["Content-Type", "text/plain; charset=utf-8"],
    ["Content-Length", String(body.length)],
    ...extra,
  ]);
  return [body];
}
