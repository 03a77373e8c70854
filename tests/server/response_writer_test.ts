// The response writer's framing as a table: status × method × the app's headers × what the
// connection does next (stays open, with or without a Keep-Alive timeout, or closes) → the exact
// bytes on the wire, for TSGI apps (the writer over an in-memory socket) and for fetch apps (a
// real server, raw TCP). The expected bytes come from a model written from RFC 9110.

import assert from "node:assert/strict";
import { AppError, reasonPhrase } from "../../src/http/errors.ts";
import { toTsgiApp } from "../../src/app/fetch/to_tsgi.ts";
import { OutputBuffer } from "../../src/server/output.ts";
import {
  type KeepAliveLines,
  keepAliveLines,
  NO_KEEP_ALIVE_TIMEOUT,
  ResponseWriter,
} from "../../src/server/response.ts";
import { parseResponses, rawExchange, withServer } from "../support/server.ts";

type Fields = [string, string][];

const STATUSES = [200, 204, 304, 404, 500];
const METHODS = ["GET", "HEAD"];
const BODY = "hello";

/** What the connection does after the response, and the writer's lines for it. */
interface Next {
  label: string;
  /** The client allows the connection to stay open. */
  keepAlive: boolean;
  lines: KeepAliveLines;
  /** The Keep-Alive timeout the head announces, or 0 for none. */
  timeout: number;
}

const NEXT: Next[] = [
  { label: "kept open, no timeout", keepAlive: true, lines: NO_KEEP_ALIVE_TIMEOUT, timeout: 0 },
  { label: "kept open, --keep-alive 5", keepAlive: true, lines: keepAliveLines(5000), timeout: 4 },
  { label: "closed", keepAlive: false, lines: keepAliveLines(5000), timeout: 0 },
];

/** The header sets of the table, each named for the failure message. */
function headerCases(status: number): [string, Fields][] {
  const length = String(BODY.length);
  const cases: [string, Fields][] = [
    ["no headers", []],
    ["Content-Length", [["Content-Length", length]]],
    ["content-length, lower case", [["content-length", length]]],
    ["Transfer-Encoding", [["Transfer-Encoding", "chunked"]]],
    ["repeated names", [["X-Dup", "1"], ["X-Dup", "2"], ["Set-Cookie", "a=1"], [
      "Set-Cookie",
      "b=2; Path=/",
    ]]],
  ];
  // Every name length, beside a Content-Length: the writer once knew names by their length.
  for (let n = 1; n <= 40; n++) {
    const name = "x".repeat(n);
    cases.push([`a ${n}-character name`, [[name, `v${n}`], ["Content-Length", length]]]);
    cases.push([`a ${n}-character name alone`, [[name, `v${n}`]]]);
  }
  void status;
  return cases;
}

/** What RFC 9110 says goes out; null where the app's headers must be refused. */
function expected(status: number, method: string, fields: Fields, next: Next): string | null {
  if (fields.some(([name]) => name.toLowerCase() === "transfer-encoding")) return null;
  const bodiless = status === 204 || status === 304;
  const lines = [`HTTP/1.1 ${status} ${reasonPhrase(status)}`];
  let appLength = false;
  for (const [name, value] of fields) {
    const isLength = name.toLowerCase() === "content-length";
    appLength ||= isLength;
    if (bodiless && isLength) continue;
    lines.push(`${name}: ${value}`);
  }
  lines.push("Date: *");
  if (!bodiless && !appLength) lines.push(`Content-Length: ${BODY.length}`);
  if (!next.keepAlive) lines.push("Connection: close");
  else if (next.timeout > 0) lines.push(`Keep-Alive: timeout=${next.timeout}`);
  const body = bodiless || method === "HEAD" ? "" : BODY;
  return lines.join("\r\n") + "\r\n\r\n" + body;
}

function normalise(wire: string): string {
  return wire.replace(/\r\nDate: [^\r]*/i, "\r\nDate: *");
}

/** One response through the writer, into memory. */
async function writeOne(
  status: number,
  method: string,
  fields: Fields,
  next: Next = NEXT[0],
  body: string = BODY,
): Promise<string> {
  let wire = "";
  const latin1 = new TextDecoder("latin1");
  const out = new OutputBuffer({
    write: (bytes) => {
      wire += latin1.decode(bytes);
      return Promise.resolve(bytes.length);
    },
  });
  const writer = new ResponseWriter(out, method, 1, next.keepAlive, undefined, next.lines);
  writer.startResponse(`${status} ${reasonPhrase(status)}`, fields);
  const bodiless = status === 204 || status === 304;
  await writer.send(bodiless ? [] : [body]);
  await out.flush();
  return wire;
}

Deno.test("a text body goes out as UTF-8 with its length in bytes, ASCII or not, short or long", async () => {
  const utf8 = new TextEncoder();
  const latin1 = new TextDecoder("latin1");
  for (
    const body of ["", "plain", "café ✓ 🎉", "x".repeat(1024), "y".repeat(1025), "é".repeat(600)]
  ) {
    const wire = await writeOne(200, "GET", [], NEXT[0], body);
    const bytes = utf8.encode(body);
    assert.ok(wire.includes(`\r\nContent-Length: ${bytes.length}\r\n`), body.slice(0, 20));
    assert.ok(wire.endsWith("\r\n\r\n" + latin1.decode(bytes)), body.slice(0, 20));
  }
});

Deno.test("a text body longer than the app's Content-Length is cut there and fails", async () => {
  await assert.rejects(
    writeOne(200, "GET", [["Content-Length", "3"]], NEXT[0], "hello"),
    (error: Error) =>
      error instanceof AppError && /longer than its Content-Length/.test(error.message),
  );
});

Deno.test("the writer's framing table for TSGI apps: status × method × headers × next", async () => {
  let rows = 0;
  for (const status of STATUSES) {
    for (const method of METHODS) {
      for (const [label, fields] of headerCases(status)) {
        for (const next of NEXT) {
          const want = expected(status, method, fields, next);
          const where = `${status} ${method} with ${label}, ${next.label}`;
          if (want === null) {
            await assert.rejects(() => writeOne(status, method, fields, next), AppError, where);
          } else {
            assert.equal(normalise(await writeOne(status, method, fields, next)), want, where);
          }
          rows++;
        }
      }
    }
  }
  assert.equal(rows, STATUSES.length * METHODS.length * 85 * NEXT.length);
});

Deno.test("the Keep-Alive timeout is a second below --keep-alive, 1 at least, none at 1 s or less", () => {
  const timeout = (ms: number) => new TextDecoder().decode(keepAliveLines(ms).http11);
  assert.equal(timeout(5000), "Keep-Alive: timeout=4\r\n");
  assert.equal(timeout(75_000), "Keep-Alive: timeout=74\r\n");
  assert.equal(timeout(2000), "Keep-Alive: timeout=1\r\n");
  assert.equal(timeout(2500), "Keep-Alive: timeout=1\r\n");
  assert.equal(timeout(1500), "Keep-Alive: timeout=1\r\n");
  assert.equal(timeout(5500), "Keep-Alive: timeout=4\r\n");
  for (const ms of [1000, 500, 0]) assert.equal(timeout(ms), "", `${ms} ms`);
  // Made once per value: every connection of a server shares the same bytes.
  assert.equal(keepAliveLines(5000), keepAliveLines(5000));
  assert.equal(
    new TextDecoder().decode(keepAliveLines(5000).http10),
    "Connection: keep-alive\r\nKeep-Alive: timeout=4\r\n",
  );
});

/** One response of an HTTP/1.0 client that asked for keep-alive, or an error answer. */
async function writeWith(
  minor: number,
  keepAlive: boolean,
  write: (writer: ResponseWriter) => Promise<void> | void,
): Promise<string> {
  let wire = "";
  const latin1 = new TextDecoder("latin1");
  const out = new OutputBuffer({
    write: (bytes) => {
      wire += latin1.decode(bytes);
      return Promise.resolve(bytes.length);
    },
  });
  const writer = new ResponseWriter(out, "GET", minor, keepAlive, undefined, keepAliveLines(5000));
  await write(writer);
  await out.flush();
  return normalise(wire);
}

Deno.test("HTTP/1.0 kept open says Connection: keep-alive and the timeout; error answers too", async () => {
  const ok = (writer: ResponseWriter) => {
    writer.startResponse("200 OK", []);
    return writer.send([BODY]);
  };
  assert.equal(
    await writeWith(0, true, ok),
    "HTTP/1.1 200 OK\r\nDate: *\r\nContent-Length: 5\r\nConnection: keep-alive\r\n" +
      "Keep-Alive: timeout=4\r\n\r\nhello",
  );
  const failed = (writer: ResponseWriter) => void writer.writeErrorResponse(500, false);
  const error = "HTTP/1.1 500 Internal Server Error\r\nDate: *\r\n" +
    "Content-Type: text/plain; charset=utf-8\r\nContent-Length: 22\r\n";
  const errorBody = "\r\nInternal Server Error\n";
  assert.equal(await writeWith(1, true, failed), error + "Keep-Alive: timeout=4\r\n" + errorBody);
  assert.equal(
    await writeWith(0, true, failed),
    error + "Connection: keep-alive\r\nKeep-Alive: timeout=4\r\n" + errorBody,
  );
  assert.equal(await writeWith(1, false, failed), error + "Connection: close\r\n" + errorBody);
  const closing = (writer: ResponseWriter) => void writer.writeErrorResponse(400, true);
  assert.match(await writeWith(1, true, closing), /\r\nConnection: close\r\n\r\n/);
});

Deno.test("later changes to the app's header array or write() bytes change nothing", async () => {
  let wire = "";
  const latin1 = new TextDecoder("latin1");
  const out = new OutputBuffer({
    write: (bytes) => {
      wire += latin1.decode(bytes);
      return Promise.resolve(bytes.length);
    },
  });
  const writer = new ResponseWriter(out, "GET", 1, true);
  const headers: Fields = [["X-A", "ok"], ["Content-Length", "5"]];
  const write = writer.startResponse("200 OK", headers);
  const early = new TextEncoder().encode("he");
  write(early);
  headers[0][1] = "ok\r\nSet-Cookie: session=attacker";
  headers[1][1] = "500";
  headers.push(["Transfer-Encoding", "chunked"]);
  early.set([0x0d, 0x0a]);
  await writer.send(["llo"]);
  await out.flush();
  assert.equal(
    normalise(wire),
    "HTTP/1.1 200 OK\r\nX-A: ok\r\nContent-Length: 5\r\nDate: *\r\n\r\nhello",
  );
});

Deno.test("a header element read through a getter is read once: the checked value is sent", async () => {
  let wire = "";
  const latin1 = new TextDecoder("latin1");
  const out = new OutputBuffer({
    write: (bytes) => {
      wire += latin1.decode(bytes);
      return Promise.resolve(bytes.length);
    },
  });
  const writer = new ResponseWriter(out, "GET", 1, true);
  let reads = 0;
  const pair = ["X-A", "ok"] as [string, string];
  Object.defineProperty(pair, 1, { get: () => (reads++ === 0 ? "ok" : "ok\r\nX-Evil: 1") });
  writer.startResponse("200 OK", [pair]);
  await writer.send(["hi"]);
  await out.flush();
  assert.equal(reads, 1);
  assert.equal(
    normalise(wire),
    "HTTP/1.1 200 OK\r\nX-A: ok\r\nDate: *\r\nContent-Length: 2\r\n\r\nhi",
  );
});

Deno.test("a value with a character above U+00FF is refused, never cut to a byte", () => {
  const out = new OutputBuffer({ write: (bytes) => Promise.resolve(bytes.length) });
  const writer = new ResponseWriter(out, "GET", 1, true);
  assert.throws(() => writer.startResponse("200 OK", [["X-A", "a\u010d\u010ab"]]), AppError);
  assert.throws(() => writer.startResponse("200 \u010d\u010a", []), AppError);
});

/** The fetch side of the same table: Headers lower-cases and sorts, and joins repeats. */
function expectedFetch(status: number, method: string, fields: Fields): string {
  const bodiless = status === 204 || status === 304;
  const headers = new Headers();
  for (const [name, value] of fields) headers.append(name, value);
  const lines = [`HTTP/1.1 ${status} ${reasonPhrase(status)}`];
  let appLength = false;
  for (const [name, value] of headers) {
    if (name === "transfer-encoding" || name === "set-cookie") continue;
    appLength ||= name === "content-length";
    if (bodiless && name === "content-length") continue;
    lines.push(`${name}: ${value}`);
  }
  for (const cookie of headers.getSetCookie()) lines.push(`set-cookie: ${cookie}`);
  lines.push("Date: *");
  if (!bodiless && !appLength) lines.push(`Content-Length: ${BODY.length}`);
  lines.push("Connection: close");
  const body = bodiless || method === "HEAD" ? "" : BODY;
  return lines.join("\r\n") + "\r\n\r\n" + body;
}

Deno.test("the writer's framing table for fetch apps, over a real socket", async () => {
  const cases = headerCases(200);
  const app = toTsgiApp((request) => {
    const url = new URL(request.url);
    const status = Number(url.searchParams.get("status"));
    const fields = cases[Number(url.searchParams.get("case"))][1];
    const bodiless = status === 204 || status === 304;
    return new Response(bodiless ? null : new TextEncoder().encode(BODY), {
      status,
      headers: fields,
    });
  });
  await withServer(app, async ({ port }) => {
    for (const status of STATUSES) {
      for (const method of METHODS) {
        for (let i = 0; i < cases.length; i++) {
          const request = `${method} /?status=${status}&case=${i} HTTP/1.1\r\nHost: x\r\n` +
            "Connection: close\r\n\r\n";
          const wire = normalise(await rawExchange(port, [request]));
          const where = `${status} ${method} with ${cases[i][0]}`;
          assert.equal(wire, expectedFetch(status, method, cases[i][1]), where);
        }
      }
    }
  }, { validate: false });
});

Deno.test("a real server: Keep-Alive timeout on responses that keep the connection, not the last", async () => {
  const app = toTsgiApp(() => new Response("hi"));
  for (const [keepAlive, line] of [[5, "timeout=4"], [30, "timeout=29"], [1, undefined]] as const) {
    await withServer(app, async ({ port }) => {
      const wire = await rawExchange(port, [
        "GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" +
        "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
      ]);
      const responses = parseResponses(wire);
      assert.equal(responses.length, 3, wire);
      assert.equal(responses[0].headers["keep-alive"], line, `--keep-alive ${keepAlive}`);
      assert.equal(responses[0].headers.connection, undefined);
      assert.equal(responses[1].headers["keep-alive"], line);
      assert.equal(responses[1].headers.connection, "keep-alive");
      assert.equal(responses[2].headers["keep-alive"], undefined, "the last one closes");
      assert.equal(responses[2].headers.connection, "close");
    }, { keepAlive });
  }
});

Deno.test("an output released to the pool still takes what an app writes late, in memory of its own", () => {
  const out = new OutputBuffer({ write: (bytes) => Promise.resolve(bytes.length) });
  out.release();
  out.appendLatin1("late");
  assert.equal(out.length, 4);
});
