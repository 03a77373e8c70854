// The TSGI 1.0 contract as TypeScript types (docs/tsgi.md): what an app receives and
// returns. Everything the server and the adapters exchange with apps is typed here.

/** A chunk of a response body: bytes, or a string sent as UTF-8. */
export type Chunk = Uint8Array | string;

/** What an app returns: chunks to send, as they come, or a promise of them. */
export type Body = Iterable<Chunk> | AsyncIterable<Chunk>;

/** `(status, headers, excInfo?) => write`, as docs/tsgi.md defines it. */
export type StartResponse = (
  status: string,
  headers: [string, string][],
  excInfo?: unknown,
) => (chunk: Chunk) => void;

/** The request body stream, `environ["tsgi.input"]`. */
export interface Input extends AsyncIterable<Uint8Array> {
  /** Up to `size` bytes (all that is left when omitted); empty at the end. */
  read(size?: number): Promise<Uint8Array>;
  /**
   * tsgi's addition to TSGI 1.0, which its servers always provide (optional here, so that an
   * Input built by middleware or another server still type-checks): the bytes that are there
   * now, at least one, up to `buf.length`, placed at the start of the caller's `buf`; how many,
   * 0 at the end only.
   */
  readInto?(buf: Uint8Array): Promise<number>;
  /** One line, through its LF, of at most `size` bytes; empty at the end. */
  readline(size?: number): Promise<Uint8Array>;
  /** Lines until the end, or until about `hint` bytes have been read. */
  readlines(hint?: number): Promise<Uint8Array[]>;
}

/** `environ["tsgi.errors"]`: text into the server's error log. */
export interface ErrorStream {
  write(s: string): void;
  writelines(lines: Iterable<string>): void;
  flush(): void;
}

/** The per-request environ: CGI variables, HTTP_* headers and the tsgi.* keys. */
export interface Environ {
  REQUEST_METHOD: string;
  SCRIPT_NAME: string;
  PATH_INFO: string;
  QUERY_STRING: string;
  RAW_URI: string;
  REQUEST_URI: string;
  SERVER_NAME: string;
  SERVER_PORT: string;
  SERVER_PROTOCOL: string;
  REMOTE_ADDR: string;
  REMOTE_PORT: string;
  CONTENT_TYPE?: string;
  CONTENT_LENGTH?: string;
  "tsgi.version": readonly [number, number];
  "tsgi.url_scheme": "http" | "https";
  "tsgi.input": Input;
  "tsgi.errors": ErrorStream;
  "tsgi.multithread": boolean;
  "tsgi.multiprocess": boolean;
  "tsgi.run_once": boolean;
  /**
   * This server's extra (docs/tsgi.md): a signal that aborts when the client goes away before
   * the response is done. Absent under other servers and adapters that do not offer it.
   */
  "tsgi.server.signal"?: () => AbortSignal;
  [key: string]: unknown;
}

/** A TSGI application. */
export type App = (environ: Environ, startResponse: StartResponse) => Body | Promise<Body>;

/** A fetch app: an object with `fetch(request)`, as Hono apps and `deno serve` modules are. */
export interface FetchApp {
  fetch(request: Request, ...rest: unknown[]): Response | Promise<Response>;
}
