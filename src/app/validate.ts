// validate(app): TSGI's wsgiref.validate. Sits between a server and an app and checks both
// sides of the contract (docs/tsgi.md) on every request: the environ the server built,
// and how the app uses startResponse, write(), its body, tsgi.input and tsgi.errors. A breach
// throws ValidationError naming the rule; the server answers 500 and logs the message.

import { AppError } from "../http/errors.ts";
import { HOP_BY_HOP } from "../http/grammar.ts";
import type {
  App,
  Body,
  Chunk,
  Environ,
  ErrorStream,
  Input,
  StartResponse,
} from "../tsgi/types.ts";

/** The rules validate() enforces; each error names one. */
export type Rule =
  | "environ-key"
  | "environ-value"
  | "status-form"
  | "headers-list"
  | "header-name"
  | "header-value"
  | "header-hop-by-hop"
  | "start-twice"
  | "start-before-body"
  | "body-type"
  | "chunk-type"
  | "write-after-end"
  | "call-after-close"
  | "input-args"
  | "errors-write"
  | "server-input"
  | "server-close-twice"
  | "server-iterate-after-close";

/** A breach of the TSGI contract, by the app or by the server; `rule` says which. */
export class ValidationError extends AppError {
  readonly rule: Rule;

  constructor(rule: Rule, detail: string) {
    super(`TSGI rule "${rule}" broken: ${detail}`);
    this.name = "ValidationError";
    this.rule = rule;
  }
}

function fail(rule: Rule, detail: string): never {
  throw new ValidationError(rule, detail);
}

/**
 * Wraps an app so that every request checks the contract on both sides.
 *
 * ```ts
 * import { serve, validate } from "../mod.ts";
 * import hello from "../apps/hello.ts";
 * serve(validate(hello)); // or: deno run -A main.ts apps/hello.ts --validate
 * ```
 */
export function validate(app: App): App {
  return (environ, startResponse) => {
    checkEnviron(environ);
    const guard = new Guard(startResponse);
    const guarded: Environ = {
      ...environ,
      "tsgi.input": guard.input(environ["tsgi.input"]),
      "tsgi.errors": guard.errors(environ["tsgi.errors"]),
    };
    const result = app(guarded, guard.startResponse);
    return result instanceof Promise ? result.then((body) => guard.body(body)) : guard.body(result);
  };
}

// --- the environ (the server's side) -----------------------------------------------------

const STRING_KEYS = [
  "REQUEST_METHOD",
  "SCRIPT_NAME",
  "PATH_INFO",
  "QUERY_STRING",
  "RAW_URI",
  "REQUEST_URI",
  "SERVER_NAME",
  "SERVER_PORT",
  "SERVER_PROTOCOL",
  "REMOTE_ADDR",
  "REMOTE_PORT",
] as const;
const BOOLEAN_KEYS = ["tsgi.multithread", "tsgi.multiprocess", "tsgi.run_once"] as const;
/** RFC 9110 §5.6.2 token. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const DIGITS = /^\d+$/;

/** Every required key with its type (docs/tsgi.md's table), and the forms the values take. */
export function checkEnviron(environ: Environ): void {
  if (environ === null || typeof environ !== "object" || Array.isArray(environ)) {
    fail("environ-key", `environ must be a plain object, got ${describe(environ)}`);
  }
  for (const key of STRING_KEYS) requireType(environ, key, "string");
  for (const key of BOOLEAN_KEYS) requireType(environ, key, "boolean");
  for (const key of ["CONTENT_TYPE", "CONTENT_LENGTH"]) {
    if (key in environ) requireType(environ, key, "string");
  }
  for (const key in environ) {
    if (key.startsWith("HTTP_")) requireType(environ, key, "string");
  }
  checkGatewayKeys(environ);
  checkForms(environ);
}

function requireType(environ: Environ, key: string, type: string): void {
  if (!(key in environ)) fail("environ-key", `environ["${key}"] is missing`);
  const actual: string = typeof environ[key];
  if (actual !== type) {
    fail("environ-key", `environ["${key}"] must be a ${type}, got ${describe(environ[key])}`);
  }
}

function checkGatewayKeys(environ: Environ): void {
  const version = environ["tsgi.version"];
  if (!Array.isArray(version) || version[0] !== 1 || version[1] !== 0 || version.length !== 2) {
    fail("environ-key", `environ["tsgi.version"] must be [1, 0], got ${describe(version)}`);
  }
  const scheme = environ["tsgi.url_scheme"];
  if (scheme !== "http" && scheme !== "https") {
    fail(
      "environ-key",
      `environ["tsgi.url_scheme"] must be "http" or "https", got ${describe(scheme)}`,
    );
  }
  requireMethods(environ, "tsgi.input", ["read", "readline", "readlines"]);
  if (typeof (environ["tsgi.input"] as Input)[Symbol.asyncIterator] !== "function") {
    fail("environ-key", `environ["tsgi.input"] must be async-iterable by line`);
  }
  requireMethods(environ, "tsgi.errors", ["write", "writelines", "flush"]);
}

function requireMethods(environ: Environ, key: string, methods: string[]): void {
  const value = environ[key] as Record<string, unknown> | undefined;
  if (value === null || typeof value !== "object") {
    fail("environ-key", `environ["${key}"] must be an object, got ${describe(value)}`);
  }
  for (const method of methods) {
    if (typeof value[method] !== "function") {
      fail("environ-key", `environ["${key}"] has no ${method}() method`);
    }
  }
}

function checkForms(environ: Environ): void {
  const value = (detail: string) => fail("environ-value", detail);
  if (!TOKEN.test(environ.REQUEST_METHOD)) {
    value(`REQUEST_METHOD ${q(environ.REQUEST_METHOD)} is not a token`);
  }
  const script = environ.SCRIPT_NAME;
  if (script !== "" && (!script.startsWith("/") || script.endsWith("/"))) {
    value(`SCRIPT_NAME ${q(script)} must be "" or start with "/" and not end with one`);
  }
  const path = environ.PATH_INFO;
  if (path !== "" && path !== "*" && !path.startsWith("/")) {
    value(`PATH_INFO ${q(path)} must be "" or start with "/"`);
  }
  if (script === "" && path === "") value(`SCRIPT_NAME and PATH_INFO are both empty`);
  if (!DIGITS.test(environ.SERVER_PORT)) {
    value(`SERVER_PORT ${q(environ.SERVER_PORT)} is not a port`);
  }
  if (environ.SERVER_PROTOCOL !== "HTTP/1.0" && environ.SERVER_PROTOCOL !== "HTTP/1.1") {
    value(`SERVER_PROTOCOL ${q(environ.SERVER_PROTOCOL)} is not HTTP/1.0 or HTTP/1.1`);
  }
  if (environ.CONTENT_LENGTH !== undefined && !DIGITS.test(environ.CONTENT_LENGTH)) {
    value(`CONTENT_LENGTH ${q(environ.CONTENT_LENGTH)} is not a decimal length`);
  }
  for (const key of ["HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"]) {
    if (key in environ) value(`environ has ${key}; it must be ${key.slice(5)}`);
  }
}

// --- the app's side ----------------------------------------------------------------------

/** "200 OK": three digits (a final status), a space, a reason without controls. */
const STATUS = /^[2-5]\d\d [\t\x20-\x7e\x80-\xff]*$/;
/** RFC 9110 §5.5 field-value: visible characters, spaces and tabs, obs-text; no CR, LF, NUL. */
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/** One request's state: what the app has called, and whether the body ended or closed. */
class Guard {
  readonly startResponse: StartResponse;
  readonly #start: StartResponse;
  #started = false;
  #ended = false;
  #closed = false;

  constructor(start: StartResponse) {
    this.#start = start;
    this.startResponse = (status, headers, excInfo) =>
      this.#startResponse(status, headers, excInfo);
  }

  #startResponse(status: string, headers: [string, string][], excInfo?: unknown) {
    this.#live("startResponse()");
    if (this.#started && (excInfo === undefined || excInfo === null)) {
      fail("start-twice", "startResponse() called a second time without excInfo");
    }
    checkStatus(status);
    checkHeaders(headers);
    this.#started = true;
    const write = this.#start(status, headers, excInfo);
    return (chunk: Chunk) => {
      if (this.#ended) fail("write-after-end", "write() called after the body ended or closed");
      checkChunk(chunk, "write()");
      write(chunk);
    };
  }

  #live(what: string): void {
    if (this.#closed) fail("call-after-close", `${what} called after the body was closed`);
  }

  /** The app's body, checked as the server reads it. */
  body(body: Body): Body {
    if (typeof body === "string") fail("body-type", "the app returned a string; return [string]");
    if (Array.isArray(body)) return this.#array(body);
    if (body !== null && typeof body === "object") {
      if (Symbol.asyncIterator in body) return this.#asyncBody(body as AsyncIterable<Chunk>);
      if (Symbol.iterator in body) return this.#syncBody(body as Iterable<Chunk>);
    }
    return fail("body-type", `the app returned ${describe(body)}, not an iterable of chunks`);
  }

  #array(body: Chunk[]): Body {
    body.forEach((chunk) => checkChunk(chunk, "the body"));
    if (!this.#started) fail("start-before-body", "the app returned a body before startResponse()");
    return Object.assign([...body], { close: this.#closer(body) });
  }

  #asyncBody(body: AsyncIterable<Chunk>): Body {
    return {
      [Symbol.asyncIterator]: () => {
        const chunks = body[Symbol.asyncIterator]();
        return {
          next: async () => this.#checked(await this.#next(() => chunks.next())),
          return: async (value?: unknown) =>
            (await chunks.return?.(value)) ?? { done: true, value: undefined },
        } as AsyncIterator<Chunk>;
      },
      close: this.#closer(body),
    } as Body;
  }

  #syncBody(body: Iterable<Chunk>): Body {
    return {
      [Symbol.iterator]: () => {
        const chunks = body[Symbol.iterator]();
        return {
          next: () => this.#checked(this.#next(() => chunks.next())),
          return: (value?: unknown) => chunks.return?.(value) ?? { done: true, value: undefined },
        } as Iterator<Chunk>;
      },
      close: this.#closer(body),
    } as Body;
  }

  #next<T>(next: () => T): T {
    if (this.#closed) fail("server-iterate-after-close", "the server read the body after close()");
    return next();
  }

  #checked(result: IteratorResult<Chunk>): IteratorResult<Chunk> {
    if (result.done) {
      this.#ended = true;
      if (!this.#started) fail("start-before-body", "the body ended before startResponse()");
      return result;
    }
    checkChunk(result.value, "the body");
    const empty = result.value.length === 0;
    if (!empty && !this.#started) {
      fail("start-before-body", "the body produced a chunk before startResponse()");
    }
    return result;
  }

  /** The body's close(), for the server: exactly once (docs/tsgi.md). */
  #closer(body: unknown): () => unknown {
    const close = (body as { close?: unknown }).close;
    return () => {
      if (this.#closed) fail("server-close-twice", "the server called the body's close() twice");
      this.#closed = true;
      this.#ended = true;
      return typeof close === "function" ? close.call(body) : undefined;
    };
  }

  /** `tsgi.input`, checked on each call. */
  input(input: Input): Input {
    const result = <T>(what: string, value: Promise<T>, check: (v: T) => boolean) =>
      value.then((v) => {
        if (!check(v)) fail("server-input", `tsgi.input.${what} resolved to ${describe(v)}`);
        return v;
      });
    const isBytes = (v: unknown) => v instanceof Uint8Array;
    const isLines = (v: unknown) => Array.isArray(v) && v.every(isBytes);
    const checked: Input = {
      read: (size?: number) => {
        this.#inputCall("read()", size);
        return result("read()", input.read(size), isBytes);
      },
      readline: (size?: number) => {
        this.#inputCall("readline()", size);
        return result("readline()", input.readline(size), isBytes);
      },
      readlines: (hint?: number) => {
        this.#inputCall("readlines()", hint);
        return result("readlines()", input.readlines(hint), isLines);
      },
      [Symbol.asyncIterator]: () => {
        this.#inputCall("iteration", undefined);
        return input[Symbol.asyncIterator]();
      },
    };
    // tsgi's addition, only where the input has it: the app's feature test must see the truth.
    const readInto = input.readInto;
    if (typeof readInto === "function") {
      checked.readInto = (buf: Uint8Array) => {
        if (!(buf instanceof Uint8Array)) {
          fail("input-args", `tsgi.input readInto() takes a Uint8Array, got ${describe(buf)}`);
        }
        const room = buf.length;
        const n = readInto.call(input, buf);
        return result("readInto()", n, (n) => Number.isInteger(n) && n >= 0 && n <= room);
      };
    }
    return checked;
  }

  #inputCall(what: string, size: unknown): void {
    // Reading after close() is not refused: the input is at its end by then and says so.
    if (size !== undefined && size !== null && !Number.isInteger(size)) {
      fail("input-args", `tsgi.input ${what} takes an integer size, got ${describe(size)}`);
    }
  }

  /** `tsgi.errors`, checked on each call. */
  errors(errors: ErrorStream): ErrorStream {
    const text = (s: unknown, what: string) => {
      if (typeof s !== "string") {
        fail("errors-write", `tsgi.errors.${what} takes strings, got ${describe(s)}`);
      }
    };
    return {
      write: (s: string) => {
        text(s, "write()");
        errors.write(s);
      },
      writelines: (lines: Iterable<string>) => {
        const all = [...lines];
        all.forEach((s) => text(s, "writelines()"));
        errors.writelines(all);
      },
      flush: () => errors.flush(),
    };
  }
}

function checkStatus(status: unknown): void {
  if (typeof status !== "string" || !STATUS.test(status)) {
    fail("status-form", `status must be "200 OK" form (200-599), got ${describe(status)}`);
  }
}

function checkHeaders(headers: unknown): void {
  if (!Array.isArray(headers)) {
    fail("headers-list", `headers must be an array of [name, value], got ${describe(headers)}`);
  }
  for (const pair of headers) {
    const isPair = Array.isArray(pair) && pair.length === 2 &&
      typeof pair[0] === "string" && typeof pair[1] === "string";
    if (!isPair) {
      fail("headers-list", `each header must be [string, string], got ${describe(pair)}`);
    }
    const [name, value] = pair as [string, string];
    if (!TOKEN.test(name)) fail("header-name", `header name ${q(name)} is not a token`);
    if (!FIELD_VALUE.test(value)) {
      fail("header-value", `header "${name}" has CR, LF, NUL or another control in its value`);
    }
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower)) fail("header-hop-by-hop", `header "${name}" is the server's to set`);
    if (lower === "content-length" && !DIGITS.test(value)) {
      fail("header-value", `Content-Length ${q(value)} is not a decimal length`);
    }
  }
}

function checkChunk(chunk: unknown, where: string): asserts chunk is Chunk {
  if (!(chunk instanceof Uint8Array) && typeof chunk !== "string") {
    fail("chunk-type", `${where} gave ${describe(chunk)}; chunks must be Uint8Array or string`);
  }
}

function q(s: string): string {
  return JSON.stringify(s);
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (typeof value === "string") return q(value.length > 40 ? value.slice(0, 40) + "…" : value);
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (value instanceof Uint8Array) return `${value.length} bytes`;
  if (typeof value === "object") return `an object (${value.constructor?.name ?? "Object"})`;
  return `${typeof value} ${String(value)}`;
}
