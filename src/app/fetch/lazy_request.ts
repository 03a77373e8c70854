// A Request made the way Deno.serve makes its own: the runtime's Request constructor, called
// with its internal token (as Request.prototype.clone() calls it), then given an inner request
// whose URL and header list are computed when first read. Most handlers read one header or
// none, and `new Request(url, init)` costs more than the rest of a hello request together
// (docs/performance.md, "Fetch apps: where the time goes"). The result is a Request in every
// way the runtime knows one: its own constructor made it, and every getter, body reader,
// clone() and fetch() run the runtime's code on the inner request.
//
// The internals are found by symbol description (Deno 2.9), and checked once on a sample;
// on a runtime where anything differs, lazyRequestsWork() is false and callers build Requests
// the public way.

/** A Request's inner body: the runtime's own class, taken from a sample Request. */
type InnerBodyClass = new (stream: ReadableStream<Uint8Array>) => object;

interface Internals {
  /** Request's "illegal constructor" token: `new Request(token)` is a bare, branded Request. */
  token: symbol;
  /** Where a Request keeps its inner request. */
  inner: symbol;
  /** Where a Request keeps the guard its Headers get. */
  guard: symbol;
  InnerBody: InnerBodyClass;
}

let internals: Internals | null | undefined;

/** The inner request the runtime's getters read, with the URL and header list on demand. */
class InnerRequest {
  method: string;
  body: object | null;
  redirectMode = "follow";
  redirectCount = 0;
  urlList: (() => string)[];
  urlListProcessed: string[] = [];
  clientRid = null;
  blobUrlEntry = null;
  #headerList: [string, string][] | null = null;
  readonly #headers: () => [string, string][];

  constructor(
    method: string,
    url: () => string,
    headers: () => [string, string][],
    body: object | null,
  ) {
    this.method = method;
    this.urlList = [url];
    this.#headers = headers;
    this.body = body;
  }

  get headerList(): [string, string][] {
    return (this.#headerList ??= this.#headers());
  }

  set headerList(list: [string, string][]) {
    this.#headerList = list;
  }

  url(): string {
    return (this.urlListProcessed[0] ??= this.urlList[0]());
  }

  currentUrl(): string {
    const last = this.urlList.length - 1;
    return (this.urlListProcessed[last] ??= this.urlList[last]());
  }
}

/** What a lazily built Request is made of; `url` and `headers` are called once at most. */
export interface LazyParts {
  /** Already valid and normalized (GET, POST, ...): the constructor's checks are skipped. */
  method: string;
  /** The URL as `new Request(url).url` spells it. */
  url: () => string;
  /** Lower-case names, values as they came. */
  headers: () => [string, string][];
  body: ReadableStream<Uint8Array> | null;
}

/**
 * Fills a Request that `construct(token)` made (a Request, or a subclass whose constructor
 * passes the token on to Request's) with `parts`. Only when lazyRequestsWork().
 */
export function lazyRequest<R extends Request>(
  construct: (token: symbol) => R,
  parts: LazyParts,
): R {
  const { token, inner, guard, InnerBody } = internals as Internals;
  const request = construct(token);
  const fields = request as unknown as Record<symbol, unknown>;
  const body = parts.body === null ? null : new InnerBody(parts.body);
  fields[inner] = new InnerRequest(
    parts.method,
    parts.url,
    parts.headers,
    body,
  );
  fields[guard] = "request";
  return request;
}

/** Whether this runtime's Request can be built lazily (checked once, on a sample). */
export function lazyRequestsWork(): boolean {
  if (internals === undefined) internals = findInternals();
  return internals !== null;
}

function findInternals(): Internals | null {
  try {
    const sample = new Request("http://x/", {
      method: "POST",
      body: new ReadableStream(),
      duplex: "half",
    } as RequestInit);
    const found = symbolsOf(sample);
    const token = found.get("[[webidl.brand]]");
    const inner = found.get("request");
    const guard = found.get("headers guard");
    if (!token || !inner || !guard) return null;
    const InnerBody = (sample as unknown as Record<symbol, { body: object }>)[inner].body
      .constructor as InnerBodyClass;
    const candidate = { token, inner, guard, InnerBody };
    return behaves(candidate) ? candidate : null;
  } catch {
    return null;
  }
}

function symbolsOf(object: object): Map<string, symbol> {
  const byName = new Map<string, symbol>();
  for (const symbol of Object.getOwnPropertySymbols(object)) {
    if (symbol.description) byName.set(symbol.description, symbol);
  }
  return byName;
}

/** A sample built with `candidate` answers as the public constructor's would. */
function behaves(candidate: Internals): boolean {
  const saved = internals;
  internals = candidate;
  try {
    const request = lazyRequest((token) => new Request(token as unknown as string), {
      method: "POST",
      url: () => "http://h:1/p?q",
      headers: () => [["x-a", "1"], ["content-type", "text/plain"]],
      body: null,
    });
    const copy = request.clone();
    return request instanceof Request && request.url === "http://h:1/p?q" &&
      request.method === "POST" && request.headers.get("X-A") === "1" &&
      copy.url === request.url && copy.headers.get("content-type") === "text/plain" &&
      request.body === null && request.signal instanceof AbortSignal;
  } finally {
    internals = saved;
  }
}
