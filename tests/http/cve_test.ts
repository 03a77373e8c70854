// One regression test per request-parsing CVE of a peer server (shared/reference/
// parser-cves.md), at the parser level: each payload is replayed unsplit and cut at every byte
// boundary, and must be refused (or framed) the one safe way.
//
// Covered elsewhere, at the server level (not about parsing a request):
// - CVE-2018-1000164 (gunicorn), CVE-2020-7695 (uvicorn/httptools): CR/LF in *response* header
//   values — startResponse() validation and the response writer.
// - CVE-2020-7694 (uvicorn): log injection — access-log escaping. The parser's part (control
//   bytes refused in the target) is tested below under its id.
// - CVE-2022-31015, CVE-2024-49769 (waitress): socket races (close during select, close before
//   getpeername) — the connection loop.
// - CVE-2024-49768 (waitress): a pipelined request processed after an error — the connection
//   loop must close on the first HttpError; here, only that the parser stops there.

import { deepStrictEqual, ok } from "node:assert/strict";
import { HttpError } from "../../src/http/errors.ts";
import { ChunkedDecoder } from "../../src/http/chunked.ts";
import { DEFAULT_HEAD_LIMITS, HeadScanner, parseRequestHead } from "../../src/http/parser.ts";
import {
  assertEverySplit,
  bytes,
  H,
  type Outcome,
  type ParsedRequest,
  parseSplit,
  req,
} from "../support/feed.ts";

/** Asserts the outcome of `raw`, unsplit and under every split. */
function check(raw: string, expected: Outcome): void {
  const data = bytes(raw);
  deepStrictEqual(parseSplit(data, []), expected);
  assertEverySplit(data, expected);
}

/** Asserts that `raw` is refused with `status` before any request is delivered. */
function refused(raw: string, status: number): void {
  check(raw, [{ error: status }]);
}

function post(fields: string, body = ""): string {
  return `POST / HTTP/1.1\r\n${H}${fields}\r\n${body}`;
}

const CHUNKED_HEAD = ["HTTP_HOST", "h", "HTTP_TRANSFER_ENCODING", "chunked"];

// --- gunicorn -----------------------------------------------------------------------------

Deno.test("CVE-2024-1135: parseRequestHead() refuses multiple Transfer-Encoding fields", () => {
  refused(post("Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n", "0\r\n\r\n"), 400);
  refused(post("Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n"), 400);
  refused(post("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"), 400);
});

Deno.test("CVE-2024-1135: parseRequestHead() refuses chunked that is not the only coding", () => {
  refused(post("Transfer-Encoding: chunked, gzip\r\n"), 501);
  refused(post("Transfer-Encoding: gzip, chunked\r\n"), 501);
});

Deno.test("CVE-2024-6827: parseRequestHead() never falls back to Content-Length", () => {
  // An invalid Transfer-Encoding beside a Content-Length must not be read as CL (TE.CL).
  refused(post("Transfer-Encoding: chunked_x\r\nContent-Length: 4\r\n", "0\r\n\r\n"), 400);
  refused(post("Content-Length: 4\r\nTransfer-Encoding: xchunked\r\n", "0\r\n\r\n"), 400);
  // Alone, an unknown coding is 501, not a body of unknown framing.
  refused(post("Transfer-Encoding: chunked_x\r\n", "0\r\n\r\n"), 501);
});

// --- waitress -----------------------------------------------------------------------------

Deno.test("CVE-2019-16785: HeadScanner.scan() refuses a bare LF as a line end", () => {
  refused(
    `POST / HTTP/1.1\r\n${H}Content-Length: 100\r\nX-Header: x\nContent-Length: 0\r\n\r\n`,
    400,
  );
  refused("GET / HTTP/1.1\nHost: h\n\n", 400);
});

Deno.test("CVE-2019-16786: parseRequestHead() refuses unsupported transfer codings (501)", () => {
  refused(post("Transfer-Encoding: gzip, chunked\r\n", "0\r\n\r\n"), 501);
  refused(post("Transfer-Encoding: identity\r\n", "0\r\n\r\n"), 501);
  refused(post("Transfer-Encoding: identity\r\nContent-Length: 1\r\n", "x"), 400);
});

Deno.test("CVE-2019-16789: parseRequestHead() refuses non-OWS whitespace in Transfer-Encoding", () => {
  refused(post("Transfer-Encoding: \x0bchunked\r\n", "0\r\n\r\n"), 400);
  refused(post("Transfer-Encoding: \x0bchunked\r\nContent-Length: 5\r\n", "0\r\n\r\n"), 400);
  refused(post("Transfer-Encoding: chunked\x0c\r\n", "0\r\n\r\n"), 400);
  refused(post("Transfer-Encoding: \xa0chunked\r\n", "0\r\n\r\n"), 501);
});

Deno.test("CVE-2019-16792: parseRequestHead() refuses two differing Content-Length fields", () => {
  refused(post("Content-Length: 10\r\nContent-Length: 0\r\n", "0123456789"), 400);
  refused(post("Content-Length: 10, 0\r\n", "0123456789"), 400);
});

Deno.test("CVE-2020-5236: parseRequestHead() validates a pathological value in linear time", () => {
  // waitress's header regex backtracked on runs of whitespace; ours is a single pass.
  const value = " \t".repeat(4000) + "x" + " \t".repeat(40) + "\x00";
  const raw = bytes(`GET / HTTP/1.1\r\n${H}X: ${value}\r\n\r\n`);
  const scanner = new HeadScanner();
  const began = performance.now();
  for (let i = 0; i < 20; i++) {
    scanner.reset();
    const length = scanner.scan(raw, 0, raw.length, DEFAULT_HEAD_LIMITS) as number;
    const head = parseRequestHead(raw, 0, length);
    ok(head instanceof HttpError && head.status === 400);
  }
  ok(performance.now() - began < 500, "20 parses of an 8 KB value took over 500 ms");
});

Deno.test("CVE-2022-24761: parseRequestHead() refuses a signed Content-Length", () => {
  refused(post("Content-Length: +10\r\n", "0123456789"), 400);
});

Deno.test("CVE-2022-24761: ChunkedDecoder.decode() refuses signed and 0x chunk sizes", () => {
  const head = req("POST", "/", CHUNKED_HEAD);
  for (const size of ["0x01", "+01", "-01", " 1"]) {
    check(post("Transfer-Encoding: chunked\r\n", `${size}\r\nx\r\n0\r\n\r\n`), [
      head,
      { error: 400 },
    ]);
  }
});

Deno.test("CVE-2022-24761: ChunkedDecoder.decode() refuses invalid chunk-extension bytes", () => {
  const head = req("POST", "/", CHUNKED_HEAD);
  for (const ext of [";a=\x00", ";\x01", ";a\rb", ";a\nb", ";\x7f"]) {
    check(post("Transfer-Encoding: chunked\r\n", `1${ext}\r\nx\r\n0\r\n\r\n`), [
      head,
      { error: 400 },
    ]);
  }
});

Deno.test("CVE-2024-49768: parseRequestHead() delivers nothing after the first error", () => {
  check(
    `GET /1 HTTP/1.1\r\n${H}\r\nGET /2 HTTP/1.1\r\n${H}Content-Length: x\r\n\r\n` +
      `GET /3 HTTP/1.1\r\n${H}\r\n`,
    [req("GET", "/1", ["HTTP_HOST", "h"]), { error: 400 }],
  );
});

Deno.test("waitress #464/#465: parseRequestHead() refuses CL+TE and a repeated TE", () => {
  refused(post("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n"), 400);
  refused(post("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n"), 400);
});

// --- uvicorn / h11 ------------------------------------------------------------------------

Deno.test("CVE-2020-7694: parseRequestHead() refuses control bytes in the target", () => {
  // Log injection itself is the access log's to escape; the parser refuses the raw bytes.
  refused(`GET /\x1b[2J\x1b[1;1H HTTP/1.1\r\n${H}\r\n`, 400);
  refused(`GET /a\rb HTTP/1.1\r\n${H}\r\n`, 400);
});

Deno.test("CVE-2025-43859: ChunkedDecoder.decode() refuses any two bytes after chunk data", () => {
  check(
    post("Transfer-Encoding: chunked\r\n", "5\r\nAAAAAXX2\r\n45\r\n0\r\n\r\n") +
      `GET /two HTTP/1.1\r\n${H}\r\n`,
    [req("POST", "/", CHUNKED_HEAD, { body: "AAAAA" }), { error: 400 }],
  );
});

// --- Node llhttp --------------------------------------------------------------------------

Deno.test("CVE-2021-22959: parseRequestHead() refuses a space between name and colon", () => {
  refused(post("Content-Length : 5\r\n", "hello"), 400);
  refused(post("Transfer-Encoding : chunked\r\n", "0\r\n\r\n"), 400);
});

Deno.test("CVE-2021-22960: ChunkedDecoder.decode() refuses a size line ended by a bare CR", () => {
  check(post("Transfer-Encoding: chunked\r\n", "5\rhello\r\n0\r\n\r\n"), [
    req("POST", "/", CHUNKED_HEAD),
    { error: 400 },
  ]);
  check(post("Transfer-Encoding: chunked\r\n", "5;ext\rhello\r\n0\r\n\r\n"), [
    req("POST", "/", CHUNKED_HEAD),
    { error: 400 },
  ]);
});

Deno.test("CVE-2022-32213: parseRequestHead() refuses Transfer-Encoding: chunkedchunked", () => {
  refused(post("Transfer-Encoding: chunkedchunked\r\n", "0\r\n\r\n"), 501);
});

Deno.test("CVE-2022-32214: HeadScanner.scan() refuses fields not delimited by CRLF", () => {
  refused(`GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n`, 400);
  refused(`GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n`, 400);
});

Deno.test("CVE-2022-32215: parseRequestHead() refuses a multi-line Transfer-Encoding", () => {
  refused(post("Transfer-Encoding: chunked\r\n , identity\r\n", "0\r\n\r\n"), 400);
  refused(post("Transfer-Encoding: chunked\r\n\t, identity\r\n", "0\r\n\r\n"), 400);
});

Deno.test("CVE-2022-35256: parseRequestHead() refuses a field line not ended by CRLF", () => {
  refused(`GET / HTTP/1.1\r\n${H}Content-Length: 5\r\r\n\r\nhello`, 400);
  refused(`GET / HTTP/1.1\r\n${H}X: y\r\r\n\r\n`, 400);
});

Deno.test("CVE-2023-30589: parseRequestHead() refuses a bare CR as a field delimiter", () => {
  refused(`GET / HTTP/1.1\r\n${H}Content-Length: 5\rX: y\r\n\r\nhello`, 400);
  refused(`GET / HTTP/1.1\rHost: h\r\n\r\n`, 400);
});

Deno.test("CVE-2024-22019: ChunkedDecoder.decode() bounds chunk-extension bytes", () => {
  const raw = bytes("1;" + "e".repeat(100_000));
  const decoder = new ChunkedDecoder(0, DEFAULT_HEAD_LIMITS);
  // Fed in small reads, the error comes once the bound is passed, not at the line's end.
  let pos = 0;
  let result: number | HttpError = 0;
  while (pos < raw.length) {
    result = decoder.decode(raw, pos, Math.min(raw.length, pos + 512));
    if (result instanceof HttpError) break;
    pos = result;
  }
  ok(result instanceof HttpError && result.status === 400);
  ok(pos <= 4096 + 512, `refused only after ${pos} bytes`);
});

Deno.test("CVE-2024-27982: parseRequestHead() refuses a space before a field name", () => {
  refused(`POST / HTTP/1.1\r\n${H} Content-Length: 5\r\n\r\nhello`, 400);
  refused(`POST / HTTP/1.1\r\n Content-Length: 5\r\n${H}\r\nhello`, 400);
});

Deno.test("CVE-2025-23167: HeadScanner.scan() refuses a head ended by CRLF CR X", () => {
  refused(`GET / HTTP/1.1\r\n${H}\rX\r\n\r\n`, 400);
  refused(`GET / HTTP/1.1\r\n${H}\rGET /smuggled HTTP/1.1\r\n${H}\r\n`, 400);
});

Deno.test("CVE-2018-7159: parseRequestHead() refuses spaces inside Content-Length", () => {
  refused(post("Content-Length: 1 2\r\n", "012345678901"), 400);
});

// --- hyper --------------------------------------------------------------------------------

Deno.test("CVE-2020-35863: parseRequestHead() frames a GET body by Content-Length", () => {
  // The body of a GET is body, never a second request.
  check(
    `GET / HTTP/1.1\r\n${H}Content-Length: 21\r\n\r\nGET /admin HTTP/1.1\r\n` +
      `GET / HTTP/1.1\r\n${H}\r\n`,
    [
      req("GET", "/", ["HTTP_HOST", "h", "CONTENT_LENGTH", "21"], {
        body: "GET /admin HTTP/1.1\r\n",
      }),
      req("GET", "/", ["HTTP_HOST", "h"]),
    ],
  );
});

Deno.test("CVE-2021-21299: parseRequestHead() refuses multiple Transfer-Encoding fields", () => {
  refused(post("Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n"), 400);
  refused(post("Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n"), 400);
});

Deno.test("CVE-2021-32714: ChunkedDecoder.decode() refuses chunk sizes that overflow", () => {
  for (const size of ["fffffffffffffffff", "10000000000000001", "ffffffffffffffff"]) {
    check(post("Transfer-Encoding: chunked\r\n", `${size}\r\nx\r\n0\r\n\r\n`), [
      req("POST", "/", CHUNKED_HEAD),
      { error: 413 },
    ]);
  }
});

Deno.test("CVE-2021-32715: parseRequestHead() refuses Content-Length: +5", () => {
  refused(post("Content-Length: +5\r\n", "hello"), 400);
});

// --- related classes ----------------------------------------------------------------------

Deno.test("CVE-2022-24790 (Puma): parseRequestHead() refuses Content-Length abc and 99 balloons", () => {
  refused(post("Content-Length: abc\r\n"), 400);
  refused(post("Content-Length: 99 balloons\r\n"), 400);
});

Deno.test("CVE-2022-1705 (Go): parseRequestHead() refuses Transfer-Encoding: \\rchunked", () => {
  refused(post("Transfer-Encoding: \rchunked\r\n", "0\r\n\r\n"), 400);
});

Deno.test("CVE-2023-39326 (Go): ChunkedDecoder.decode() bounds extensions across chunks", () => {
  // Many one-byte chunks, each with a small extension: the total is bounded, not each one.
  const body = ("1;" + "e".repeat(60) + "\r\nx\r\n").repeat(100) + "0\r\n\r\n";
  const outcome = parseSplit(bytes(post("Transfer-Encoding: chunked\r\n", body)), []);
  deepStrictEqual(outcome.at(-1), { error: 400 });
  const delivered = (outcome[0] as ParsedRequest).body.length;
  ok(delivered < 100, `delivered ${delivered} bytes of data for ${delivered * 61} of extensions`);
});

Deno.test("CVE-2012-4520 (Django): parseRequestHead() refuses userinfo in Host and in the target", () => {
  // Host poisoning: links built from `user:pw@evil.example` point at evil.example.
  refused("GET / HTTP/1.1\r\nHost: user:pw@evil.example\r\n\r\n", 400);
  refused("GET / HTTP/1.1\r\nHost: good.example@evil.example\r\n\r\n", 400);
  refused(`GET http://good.example@evil.example/ HTTP/1.1\r\n${H}\r\n`, 400);
});

Deno.test("Host confusion: parseRequestHead() refuses a Host two readers can read two ways", () => {
  // Two Host lines joined by a proxy, a path or a query a lax reader keeps, a padded port.
  for (const host of ["a.example, evil.example", "a.example,evil.example", "evil.example/a"]) {
    refused(`GET / HTTP/1.1\r\nHost: ${host}\r\n\r\n`, 400);
  }
  for (const host of ["evil.example?.a.example", "evil.example#.a.example", "a.example:80 x"]) {
    refused(`GET / HTTP/1.1\r\nHost: ${host}\r\n\r\n`, 400);
  }
  refused("GET / HTTP/1.1\r\nHost: a.example\r\nHost: evil.example\r\n\r\n", 400);
});
