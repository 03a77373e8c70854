// The request parser against a corpus of raw requests, valid and malformed, each replayed
// unsplit and cut at every byte boundary (tests/support/feed.ts): the outcome must be the same
// however the bytes arrive. Strings here are Latin-1: one char per byte.

import { deepStrictEqual } from "node:assert/strict";
import { DEFAULT_HEAD_LIMITS, type HeadLimits, HeadScanner } from "../../src/http/parser.ts";
import {
  assertEverySplit,
  bytes,
  type FeedOptions,
  H,
  type Outcome,
  parseSplit,
  req,
} from "../support/feed.ts";

interface Case {
  name: string;
  raw: string;
  expect: Outcome;
  opts?: FeedOptions;
  /** Set on a case that shows a known parser bug, so the shared suite stays green. */
  ignore?: boolean;
}

/** `GET /` on HTTP/1.1 with only `Host: h`. */
const GET = req("GET", "/", ["HTTP_HOST", "h"]);
const HTTP10 = { minor: 0, keepAlive: false };

function err(status: number): { error: number } {
  return { error: status };
}

/** A request with `Host: h` and the given extra header lines (each without its CRLF). */
function withFields(...lines: string[]): string {
  return `GET / HTTP/1.1\r\n${H}${lines.map((l) => l + "\r\n").join("")}\r\n`;
}

/** A chunked POST whose body section is `body`. */
function chunked(body: string): string {
  return `POST /u HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n${body}`;
}

const POST_CHUNKED = ["HTTP_HOST", "h", "HTTP_TRANSFER_ENCODING", "chunked"];
const postChunked = (body: string) => req("POST", "/u", POST_CHUNKED, { body });

const VALID: Case[] = [
  {
    name: "parseRequestHead() accepts a minimal GET",
    raw: `GET / HTTP/1.1\r\n${H}\r\n`,
    expect: [GET],
  },
  {
    name: "parseRequestHead() maps header names to environ keys in order",
    raw: "GET /a/b?x=1&y=%20 HTTP/1.1\r\nHost: example.com:8080\r\nUser-Agent: t/1.0\r\n" +
      "Accept: */*\r\nContent-Type: text/plain\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n",
    expect: [
      req("GET", "/a/b?x=1&y=%20", [
        "HTTP_HOST",
        "example.com:8080",
        "HTTP_USER_AGENT",
        "t/1.0",
        "HTTP_ACCEPT",
        "*/*",
        "CONTENT_TYPE",
        "text/plain",
        "HTTP_X_FORWARDED_FOR",
        "1.2.3.4",
      ]),
    ],
  },
  {
    name: "parseRequestHead() accepts a POST with a Content-Length body",
    raw: `POST /form HTTP/1.1\r\n${H}Content-Type: a/b\r\nContent-Length: 5\r\n\r\nhello`,
    expect: [
      req("POST", "/form", ["HTTP_HOST", "h", "CONTENT_TYPE", "a/b", "CONTENT_LENGTH", "5"], {
        body: "hello",
      }),
    ],
  },
  {
    name: "parseRequestHead() accepts HEAD",
    raw: `HEAD /x HTTP/1.1\r\n${H}\r\n`,
    expect: [req("HEAD", "/x", ["HTTP_HOST", "h"])],
  },
  {
    name: "parseRequestHead() accepts any token as a method, case kept",
    raw: `PROPFIND /d HTTP/1.1\r\n${H}\r\nget / HTTP/1.1\r\n${H}\r\n`,
    expect: [
      req("PROPFIND", "/d", ["HTTP_HOST", "h"]),
      req("get", "/", ["HTTP_HOST", "h"]),
    ],
  },
  {
    name: "parseRequestHead() accepts every tchar in a method, # included (RFC 9110 §9.1)",
    raw: `G#T / HTTP/1.1\r\n${H}\r\n!#$%&'*+-.^_\`|~09AZaz / HTTP/1.1\r\n${H}\r\n`,
    expect: [
      req("G#T", "/", ["HTTP_HOST", "h"]),
      req("!#$%&'*+-.^_`|~09AZaz", "/", ["HTTP_HOST", "h"]),
    ],
  },
  ...[
    "example.com:8080",
    "EXAMPLE.com:0",
    "a:65535",
    "a:00080",
    "192.0.2.1:80",
    "[::1]",
    "[::1]:8080",
    "[2001:db8::ff00:42:8329]",
    "[2001:0db8:0000:0000:0000:ff00:0042:8329]",
    "[::ffff:192.0.2.1]",
    "[1:2:3:4:5:6:7::]",
    "[::2:3:4:5:6:7:8]",
    "[v1.fe80::a+en1]",
    "xn--caf-dma.example",
    "caf%C3%A9.example",
    "a_b~c-d.e!$&'()*+;=",
  ].map((host): Case => ({
    name: `parseRequestHead() accepts Host: ${host}`,
    raw: `GET / HTTP/1.1\r\nHost: ${host}\r\n\r\n`,
    expect: [req("GET", "/", ["HTTP_HOST", host])],
  })),
  {
    name: "parseRequestHead() accepts a Host beside an absolute-form target that differs",
    raw: `GET http://a.example/ HTTP/1.1\r\nHost: b.example\r\n\r\n`,
    expect: [req("GET", "http://a.example/", ["HTTP_HOST", "b.example"])],
  },
  {
    name: "parseRequestHead() accepts an absolute-form target as sent",
    raw: `GET http://example.com/a?b=c HTTP/1.1\r\n${H}\r\n` +
      `GET HTTPS://Example.com:443 HTTP/1.1\r\n${H}\r\n`,
    expect: [
      req("GET", "http://example.com/a?b=c", ["HTTP_HOST", "h"]),
      req("GET", "HTTPS://Example.com:443", ["HTTP_HOST", "h"]),
    ],
  },
  {
    name: "parseRequestHead() accepts absolute-form targets with an IP-literal, a port, no path",
    raw: `GET http://[::1]:8080/x HTTP/1.1\r\n${H}\r\n` +
      `GET http://192.0.2.1?q HTTP/1.1\r\n${H}\r\n`,
    expect: [
      req("GET", "http://[::1]:8080/x", ["HTTP_HOST", "h"]),
      req("GET", "http://192.0.2.1?q", ["HTTP_HOST", "h"]),
    ],
  },
  {
    name: "parseRequestHead() accepts OPTIONS *",
    raw: `OPTIONS * HTTP/1.1\r\n${H}\r\n`,
    expect: [req("OPTIONS", "*", ["HTTP_HOST", "h"])],
  },
  {
    name: "HeadScanner.scan() skips CRLFs before the request line",
    raw: `\r\n\r\nGET / HTTP/1.1\r\n${H}\r\n`,
    expect: [GET],
  },
  {
    name: "HeadScanner.scan() skips 32 bytes of CRLFs before the request line",
    raw: "\r\n".repeat(16) + `GET / HTTP/1.1\r\n${H}\r\n`,
    expect: [GET],
  },
  {
    name: "HeadScanner.scan() skips a CRLF after a body, before the next request",
    raw: `POST / HTTP/1.1\r\n${H}Content-Length: 1\r\n\r\nx\r\nGET / HTTP/1.1\r\n${H}\r\n`,
    expect: [
      req("POST", "/", ["HTTP_HOST", "h", "CONTENT_LENGTH", "1"], { body: "x" }),
      GET,
    ],
  },
  {
    name: "parseRequestHead() keeps obs-text in values byte for byte (Latin-1)",
    raw: withFields(
      "X-Name: caf\xe9 \xff\x80",
      "X-Utf8: \xc3\xa9\xe2\x82\xac",
      "X-Mixed: \xc3\x80\x80",
    ),
    expect: [
      req("GET", "/", [
        "HTTP_HOST",
        "h",
        "HTTP_X_NAME",
        "caf\xe9 \xff\x80",
        "HTTP_X_UTF8",
        "\xc3\xa9\xe2\x82\xac",
        "HTTP_X_MIXED",
        "\xc3\x80\x80",
      ]),
    ],
  },
  {
    name: "parseRequestHead() keeps a lone invalid UTF-8 byte as its Latin-1 char",
    raw: withFields("X: a\x80b"),
    expect: [req("GET", "/", ["HTTP_HOST", "h", "HTTP_X", "a\x80b"])],
  },
  {
    name: "parseRequestHead() trims OWS around values and keeps it inside",
    raw: withFields("X-A: \t a \t b \t", "X-Empty:", "X-Spaces:   "),
    expect: [
      req("GET", "/", [
        "HTTP_HOST",
        "h",
        "HTTP_X_A",
        "a \t b",
        "HTTP_X_EMPTY",
        "",
        "HTTP_X_SPACES",
        "",
      ]),
    ],
  },
  {
    name: "parseRequestHead() keeps every visible ASCII char in a value",
    raw: withFields("X: !\"#$%&'()*+,-./09:;<=>?@AZ[\\]^_`az{|}~"),
    expect: [
      req("GET", "/", ["HTTP_HOST", "h", "HTTP_X", "!\"#$%&'()*+,-./09:;<=>?@AZ[\\]^_`az{|}~"]),
    ],
  },
  {
    name: "parseRequestHead() keeps repeated fields separately, in order",
    raw: withFields("Cookie: a=1", "Accept: x", "Cookie: b=2"),
    expect: [
      req("GET", "/", [
        "HTTP_HOST",
        "h",
        "HTTP_COOKIE",
        "a=1",
        "HTTP_ACCEPT",
        "x",
        "HTTP_COOKIE",
        "b=2",
      ]),
    ],
  },
  {
    name: "parseRequestHead() drops header names that hold an underscore",
    raw: withFields("X-A_B: 1", "X-A-B: 2", "_: 3"),
    expect: [req("GET", "/", ["HTTP_HOST", "h", "HTTP_X_A_B", "2"])],
  },
  {
    name: "parseRequestHead() takes no body framing from Content_Length",
    raw: `POST / HTTP/1.1\r\n${H}Content_Length: 5\r\n\r\nhello`,
    expect: [req("POST", "/", ["HTTP_HOST", "h"]), { incomplete: "head" }],
  },
  {
    name: "parseRequestHead() takes no body framing from Transfer_Encoding",
    raw: `POST / HTTP/1.1\r\n${H}Transfer_Encoding: chunked\r\n\r\n`,
    expect: [req("POST", "/", ["HTTP_HOST", "h"])],
  },
  {
    name: "parseRequestHead() accepts an empty Host on HTTP/1.1",
    raw: "GET / HTTP/1.1\r\nHost:\r\n\r\n",
    expect: [req("GET", "/", ["HTTP_HOST", ""])],
  },
  {
    name: "parseRequestHead() accepts HTTP/1.0 without Host",
    raw: "GET / HTTP/1.0\r\n\r\n",
    expect: [req("GET", "/", [], HTTP10)],
  },
  {
    name: "parseRequestHead() accepts a Host field name in any case",
    raw: "GET / HTTP/1.1\r\nhOsT: h\r\n\r\n",
    expect: [GET],
  },
  {
    name: "parseRequestHead() parses several pipelined requests in one buffer",
    raw: `GET /1 HTTP/1.1\r\n${H}\r\n` +
      `POST /2 HTTP/1.1\r\n${H}Content-Length: 3\r\n\r\nabc` +
      `POST /3 HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n2\r\nde\r\n1\r\nf\r\n0\r\n\r\n` +
      `GET /4 HTTP/1.0\r\n\r\n` +
      `HEAD /5 HTTP/1.1\r\n${H}Connection: close\r\n\r\n`,
    expect: [
      req("GET", "/1", ["HTTP_HOST", "h"]),
      req("POST", "/2", ["HTTP_HOST", "h", "CONTENT_LENGTH", "3"], { body: "abc" }),
      req("POST", "/3", ["HTTP_HOST", "h", "HTTP_TRANSFER_ENCODING", "chunked"], { body: "def" }),
      req("GET", "/4", [], HTTP10),
      req("HEAD", "/5", ["HTTP_HOST", "h", "HTTP_CONNECTION", "close"], { keepAlive: false }),
    ],
  },
  {
    name: "parseRequestHead() parses a body that looks like a request as body",
    raw: `POST / HTTP/1.1\r\n${H}Content-Length: 18\r\n\r\nGET / HTTP/1.1\r\n\r\n`,
    expect: [
      req("POST", "/", ["HTTP_HOST", "h", "CONTENT_LENGTH", "18"], {
        body: "GET / HTTP/1.1\r\n\r\n",
      }),
    ],
  },
  {
    name: "parseRequestHead() keeps HTTP/1.1 alive by default",
    raw: `GET / HTTP/1.1\r\n${H}\r\n`,
    expect: [GET],
  },
  {
    name: "parseRequestHead() closes HTTP/1.1 on Connection: close, any case",
    raw: withFields("Connection: CLOSE"),
    expect: [req("GET", "/", ["HTTP_HOST", "h", "HTTP_CONNECTION", "CLOSE"], { keepAlive: false })],
  },
  {
    name: "parseRequestHead() keeps HTTP/1.1 alive on Connection: keep-alive, upgrade",
    raw: withFields("Connection: Keep-Alive, Upgrade"),
    expect: [req("GET", "/", ["HTTP_HOST", "h", "HTTP_CONNECTION", "Keep-Alive, Upgrade"])],
  },
  {
    name: "parseRequestHead() closes HTTP/1.0 by default",
    raw: "GET / HTTP/1.0\r\nHost: h\r\n\r\n",
    expect: [req("GET", "/", ["HTTP_HOST", "h"], HTTP10)],
  },
  {
    name: "parseRequestHead() keeps HTTP/1.0 alive on Connection: keep-alive",
    raw: "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    expect: [req("GET", "/", ["HTTP_CONNECTION", "keep-alive"], { minor: 0 })],
  },
  {
    name: "parseRequestHead() lets close win over keep-alive in one field, either order",
    raw: "GET /a HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n" +
      "GET /b HTTP/1.0\r\nConnection: close,keep-alive\r\n\r\n" +
      `GET /c HTTP/1.1\r\n${H}Connection: keep-alive , close\r\n\r\n`,
    expect: [
      req("GET", "/a", ["HTTP_CONNECTION", "keep-alive, close"], HTTP10),
      req("GET", "/b", ["HTTP_CONNECTION", "close,keep-alive"], HTTP10),
      req("GET", "/c", ["HTTP_HOST", "h", "HTTP_CONNECTION", "keep-alive , close"], {
        keepAlive: false,
      }),
    ],
  },
  {
    name: "parseRequestHead() lets close win over keep-alive across fields, either order",
    raw: "GET /a HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n" +
      "GET /b HTTP/1.0\r\nConnection: close\r\nConnection: keep-alive\r\n\r\n",
    expect: [
      req("GET", "/a", ["HTTP_CONNECTION", "keep-alive", "HTTP_CONNECTION", "close"], HTTP10),
      req("GET", "/b", ["HTTP_CONNECTION", "close", "HTTP_CONNECTION", "keep-alive"], HTTP10),
    ],
  },
  {
    name: "parseRequestHead() sets expectContinue for Expect: 100-continue on HTTP/1.1",
    raw: `POST / HTTP/1.1\r\n${H}Expect: 100-Continue\r\nContent-Length: 2\r\n\r\nok`,
    expect: [
      req("POST", "/", ["HTTP_HOST", "h", "HTTP_EXPECT", "100-Continue", "CONTENT_LENGTH", "2"], {
        body: "ok",
        expectContinue: true,
      }),
    ],
  },
  {
    name: "parseRequestHead() ignores Expect: 100-continue on HTTP/1.0",
    raw: "GET / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n",
    expect: [req("GET", "/", ["HTTP_EXPECT", "100-continue"], HTTP10)],
  },
  {
    name: "parseRequestHead() accepts identical duplicate Content-Length fields",
    raw: `POST / HTTP/1.1\r\n${H}Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc`,
    expect: [
      req("POST", "/", ["HTTP_HOST", "h", "CONTENT_LENGTH", "3", "CONTENT_LENGTH", "3"], {
        body: "abc",
      }),
    ],
  },
  {
    name: "parseRequestHead() trims OWS around Content-Length",
    raw: `POST / HTTP/1.1\r\n${H}Content-Length: \t 5 \t\r\n\r\nhello`,
    expect: [req("POST", "/", ["HTTP_HOST", "h", "CONTENT_LENGTH", "5"], { body: "hello" })],
  },
  {
    name: "parseRequestHead() reads Content-Length with leading zeros as decimal",
    raw: `POST / HTTP/1.1\r\n${H}Content-Length: 010\r\n\r\n0123456789`,
    expect: [req("POST", "/", ["HTTP_HOST", "h", "CONTENT_LENGTH", "010"], { body: "0123456789" })],
  },
  {
    name: "parseRequestHead() frames no body for Content-Length: 0",
    raw: `POST / HTTP/1.1\r\n${H}Content-Length: 0\r\n\r\n` + `GET / HTTP/1.1\r\n${H}\r\n`,
    expect: [req("POST", "/", ["HTTP_HOST", "h", "CONTENT_LENGTH", "0"]), GET],
  },
  {
    name: "parseRequestHead() frames a GET body by its Content-Length",
    raw: `GET / HTTP/1.1\r\n${H}Content-Length: 4\r\n\r\nbody` + `GET / HTTP/1.1\r\n${H}\r\n`,
    expect: [req("GET", "/", ["HTTP_HOST", "h", "CONTENT_LENGTH", "4"], { body: "body" }), GET],
  },
  {
    name: "parseRequestHead() accepts a request line of exactly the limit",
    raw: `GET /${"a".repeat(8190 - 14)} HTTP/1.1\r\n${H}\r\n`,
    expect: [req("GET", "/" + "a".repeat(8190 - 14), ["HTTP_HOST", "h"])],
  },
  {
    name: "parseRequestHead() accepts a field line of exactly the limit",
    raw: withFields("X: " + "v".repeat(8190 - 3)),
    expect: [req("GET", "/", ["HTTP_HOST", "h", "HTTP_X", "v".repeat(8190 - 3)])],
  },
  {
    name: "parseRequestHead() accepts exactly the limit of fields",
    raw: withFields(...Array.from({ length: 99 }, (_, i) => `X${i}: ${i}`)),
    expect: [
      req("GET", "/", [
        "HTTP_HOST",
        "h",
        ...Array.from({ length: 99 }, (_, i) => [`HTTP_X${i}`, `${i}`]).flat(),
      ]),
    ],
  },
  {
    name: "parseRequestHead() applies smaller configured limits",
    raw: withFields("X: 12345"),
    opts: { limits: { requestLine: 14, fields: 2, fieldSize: 8, head: 64 } },
    expect: [req("GET", "/", ["HTTP_HOST", "h", "HTTP_X", "12345"])],
  },
];

const CHUNKED_VALID: Case[] = [
  {
    name: "ChunkedDecoder.decode() decodes a chunked body",
    raw: chunked("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
    expect: [postChunked("hello world")],
  },
  {
    name: "ChunkedDecoder.decode() reads hex sizes in upper and lower case",
    raw: chunked(
      "A\r\n0123456789\r\nb\r\nabcdefghijk\r\n1F\r\n" + "x".repeat(31) + "\r\n0\r\n\r\n",
    ),
    expect: [postChunked("0123456789abcdefghijk" + "x".repeat(31))],
  },
  {
    name: "ChunkedDecoder.decode() reads sizes with leading zeros",
    raw: chunked("0003\r\nabc\r\n000\r\n\r\n"),
    expect: [postChunked("abc")],
  },
  {
    name: "ChunkedDecoder.decode() skips chunk extensions",
    raw: chunked('3;name=value;q="a b;c"\r\nabc\r\n2 ; x\r\nde\r\n0;last\r\n\r\n'),
    expect: [postChunked("abcde")],
  },
  {
    name: "ChunkedDecoder.decode() accepts 4096 extension bytes after the semicolon",
    raw: chunked("1;" + "e".repeat(4096) + "\r\nx\r\n0\r\n\r\n"),
    expect: [postChunked("x")],
  },
  {
    name: "ChunkedDecoder.decode() skips trailer fields",
    raw: chunked("3\r\nabc\r\n0\r\nExpires: never\r\nX-Sum: \xe9 1\r\nEmpty:\r\n\r\n") +
      `GET / HTTP/1.1\r\n${H}\r\n`,
    expect: [postChunked("abc"), GET],
  },
  {
    name: "ChunkedDecoder.decode() leaves the next pipelined request unread",
    raw: chunked("1\r\na\r\n0\r\n\r\n") + `GET / HTTP/1.1\r\n${H}\r\n`,
    expect: [postChunked("a"), GET],
  },
  {
    name: "ChunkedDecoder.decode() keeps binary chunk data byte for byte",
    raw: chunked("6\r\n\r\n\x00\xff0\n\r\n0\r\n\r\n"),
    expect: [postChunked("\r\n\x00\xff0\n")],
  },
  {
    name: "parseRequestHead() accepts Transfer-Encoding chunked in any case, with OWS",
    raw: `POST / HTTP/1.1\r\n${H}Transfer-Encoding:  ChunKed \t\r\n\r\n0\r\n\r\n`,
    expect: [req("POST", "/", ["HTTP_HOST", "h", "HTTP_TRANSFER_ENCODING", "ChunKed"])],
  },
  {
    name: "ChunkedDecoder.decode() accepts a body of exactly maxBody",
    raw: chunked("2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n"),
    opts: { maxBody: 4 },
    expect: [postChunked("abcd")],
  },
  {
    name: "ChunkedDecoder.decode() waits for the final CRLF at the end of input",
    raw: chunked("1\r\na\r\n0\r\n"),
    expect: [postChunked("a"), { incomplete: "body" }],
  },
  {
    name: "ChunkedDecoder.decode() waits for the rest of a chunk at the end of input",
    raw: chunked("5\r\nabc"),
    expect: [postChunked("abc"), { incomplete: "body" }],
  },
  {
    name: "parseRequestHead() waits for the rest of a Content-Length body",
    raw: `POST / HTTP/1.1\r\n${H}Content-Length: 9\r\n\r\nabc`,
    expect: [
      req("POST", "/", ["HTTP_HOST", "h", "CONTENT_LENGTH", "9"], { body: "abc" }),
      { incomplete: "body" },
    ],
  },
  {
    name: "HeadScanner.scan() waits for the rest of a head at the end of input",
    raw: `GET / HTTP/1.1\r\n${H}\r`,
    expect: [{ incomplete: "head" }],
  },
];

/** Malformed heads: [what the test name says is refused, raw, status]. */
const MALFORMED_HEADS: [string, string, number][] = [
  // Line endings (RFC 9112 §2.2; CVE-2019-16785, CVE-2022-32214, CVE-2023-30589).
  ["a bare LF ending the request line", `GET / HTTP/1.1\n${H}\r\n`, 400],
  ["a bare LF ending a field line", "GET / HTTP/1.1\r\nHost: h\n\r\n", 400],
  ["a bare LF ending the head", `GET / HTTP/1.1\r\n${H}\n`, 400],
  ["bare LFs throughout", "GET / HTTP/1.1\nHost: h\n\n", 400],
  ["a bare LF before the request line", `\nGET / HTTP/1.1\r\n${H}\r\n`, 400],
  ["a bare LF inside a value", `GET / HTTP/1.1\r\n${H}X: a\nb\r\n\r\n`, 400],
  ["a bare CR ending the request line", `GET / HTTP/1.1\r${H}\r\n`, 400],
  ["a bare CR ending a field line", `GET / HTTP/1.1\r\n${H}X: a\rY: b\r\n\r\n`, 400],
  ["a bare CR inside a value", withFields("X: a\rb"), 400],
  ["a CR CR LF line end", withFields("X: a\r"), 400],
  ["a bare CR inside a field name", withFields("X\r-Y: a"), 400],
  ["a bare CR inside the target", `GET /a\rb HTTP/1.1\r\n${H}\r\n`, 400],
  ["a head ended by CRLF CR X", `GET / HTTP/1.1\r\n${H}\rX\r\n\r\n`, 400],
  ["a lone CR line in the head", `GET / HTTP/1.1\r\n${H}\r\r\n\r\n`, 400],
  [
    "more than 32 bytes of blank lines first",
    "\r\n".repeat(17) + `GET / HTTP/1.1\r\n${H}\r\n`,
    400,
  ],
  // Field names (RFC 9112 §5.1; CVE-2021-22959, CVE-2024-27982).
  ["a space before the colon", withFields("Content-Length : 0"), 400],
  ["a tab before the colon", withFields("X\t: a"), 400],
  ["an empty field name", withFields(": a"), 400],
  ["a field line without a colon", withFields("X-No-Colon"), 400],
  ["a non-token char in a field name", withFields("X(Y): a"), 400],
  ["a NUL in a field name", withFields("X\x00Y: a"), 400],
  ["obs-text in a field name", withFields("X\xe9: a"), 400],
  ["obs-fold with a space", withFields("X: a", " b"), 400],
  ["obs-fold with a tab", withFields("X: a", "\tb"), 400],
  ["a space before the first field name", `GET / HTTP/1.1\r\n Host: h\r\n\r\n`, 400],
  ["a space before Content-Length", withFields(" Content-Length: 5"), 400],
  // Field values (RFC 9110 §5.5).
  ["a NUL in a value", withFields("X: a\x00b"), 400],
  ["a SOH in a value", withFields("X: \x01"), 400],
  ["a vertical tab in a value", withFields("X: a\x0bb"), 400],
  ["a form feed in a value", withFields("X: a\x0cb"), 400],
  ["an ESC in a value", withFields("X: \x1b[31m"), 400],
  ["a US (0x1f) in a value", withFields("X: \x1f"), 400],
  ["a DEL in a value", withFields("X: a\x7fb"), 400],
  ["a NUL in Host", "GET / HTTP/1.1\r\nHost: h\x00.evil\r\n\r\n", 400],
  // Methods (RFC 9110 §9.1: method = token).
  ["a method with @ in it (G@T)", `G@T / HTTP/1.1\r\n${H}\r\n`, 400],
  ["a method with a slash in it", `GET/ / HTTP/1.1\r\n${H}\r\n`, 400],
  ["a method with a NUL in it", `GE\x00T / HTTP/1.1\r\n${H}\r\n`, 400],
  ["a method with obs-text in it", `G\xc9T / HTTP/1.1\r\n${H}\r\n`, 400],
  ["an empty method", ` / HTTP/1.1\r\n${H}\r\n`, 400],
  ["a tab after the method", `GET\t/ HTTP/1.1\r\n${H}\r\n`, 400],
  ["two spaces after the method", `GET  / HTTP/1.1\r\n${H}\r\n`, 400],
  // Targets (RFC 9112 §3.2).
  ["an empty target", `GET  HTTP/1.1\r\n${H}\r\n`, 400],
  ["a missing target", `GET HTTP/1.1\r\n${H}\r\n`, 400],
  ["a space inside the target", `GET /a b HTTP/1.1\r\n${H}\r\n`, 400],
  ["a tab inside the target", `GET /a\tb HTTP/1.1\r\n${H}\r\n`, 400],
  ["a NUL inside the target", `GET /a\x00b HTTP/1.1\r\n${H}\r\n`, 400],
  ["an ESC inside the target", `GET /\x1b[2J HTTP/1.1\r\n${H}\r\n`, 400],
  ["a DEL inside the target", `GET /a\x7f HTTP/1.1\r\n${H}\r\n`, 400],
  ["obs-text inside the target", `GET /caf\xe9 HTTP/1.1\r\n${H}\r\n`, 400],
  ["UTF-8 inside the target", `GET /\xc3\xa9 HTTP/1.1\r\n${H}\r\n`, 400],
  ["a relative target", `GET a/b HTTP/1.1\r\n${H}\r\n`, 400],
  ["authority-form for GET", `GET example.com:80 HTTP/1.1\r\n${H}\r\n`, 400],
  ["asterisk-form for GET", `GET * HTTP/1.1\r\n${H}\r\n`, 400],
  ["asterisk-form for POST", `POST * HTTP/1.1\r\n${H}Content-Length: 0\r\n\r\n`, 400],
  [
    "CONNECT (authority-form)",
    `CONNECT example.com:443 HTTP/1.1\r\nHost: example.com\r\n\r\n`,
    501,
  ],
  ["CONNECT with an origin-form target", `CONNECT / HTTP/1.1\r\n${H}\r\n`, 501],
  // Versions (RFC 9112 §2.3: HTTP-version = "HTTP/" DIGIT "." DIGIT).
  ["HTTP/2.0", `GET / HTTP/2.0\r\n${H}\r\n`, 505],
  ["the HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505],
  ["HTTP/3.0", `GET / HTTP/3.0\r\n${H}\r\n`, 505],
  ["HTTP/1.2", `GET / HTTP/1.2\r\n${H}\r\n`, 505],
  ["HTTP/1.9", `GET / HTTP/1.9\r\n${H}\r\n`, 505],
  ["HTTP/0.9 spelled out", `GET / HTTP/0.9\r\n${H}\r\n`, 505],
  ["a request line without a version", `GET /\r\n${H}\r\n`, 400],
  ["HTTP/1.1x", `GET / HTTP/1.1x\r\n${H}\r\n`, 400],
  ["http/1.1 in lower case", `GET / http/1.1\r\n${H}\r\n`, 400],
  ["HTTP/01.1", `GET / HTTP/01.1\r\n${H}\r\n`, 400],
  ["HTTP/1.01", `GET / HTTP/1.01\r\n${H}\r\n`, 400],
  ["HTTP/1", `GET / HTTP/1\r\n${H}\r\n`, 400],
  ["HTTP/1,1", `GET / HTTP/1,1\r\n${H}\r\n`, 400],
  ["HTTP/1.a", `GET / HTTP/1.a\r\n${H}\r\n`, 400],
  ["HTTP/a.1", `GET / HTTP/a.1\r\n${H}\r\n`, 400],
  ["a space after the version", `GET / HTTP/1.1 \r\n${H}\r\n`, 400],
  ["a tab before the version", `GET /\tHTTP/1.1\r\n${H}\r\n`, 400],
  ["a request line of only a method", `GET\r\n${H}\r\n`, 400],
  // Host (RFC 9112 §3.2).
  ["HTTP/1.1 without Host", "GET / HTTP/1.1\r\nX: y\r\n\r\n", 400],
  ["two Host fields on HTTP/1.1", withFields("Host: h"), 400],
  ["two Host fields differing in case", withFields("host: other"), 400],
  ["two Host fields on HTTP/1.0", "GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400],
  ["two Host fields, one empty", withFields("Host:"), 400],
  ...[
    ["a list", "a, b"],
    ["a list without a space", "a,b"],
    ["a space inside", "a b"],
    ["a tab inside", "a\tb"],
    ["a path", "a/b"],
    ["a slash alone", "/"],
    ["userinfo (CVE-2012-4520)", "user:pw@evil.example"],
    ["an @", "good.example@evil.example"],
    ["a query", "a?b"],
    ["a fragment", "a#b"],
    ["a backslash", "a\\b"],
    ["a quote", '"a"'],
    ["obs-text", "caf\xe9"],
    ["a bad percent-encoding", "a%zz"],
    ["a cut percent-encoding", "a%4"],
    ["an empty port", "a:"],
    ["a port of six digits", "a:000080"],
    ["a port above 65535", "a:65536"],
    ["a signed port", "a:+80"],
    ["a port with letters", "a:80a"],
    ["two ports", "a:80:81"],
    ["only a port", ":80"],
    ["an unbracketed IPv6 address", "::1"],
    ["an unclosed IP-literal", "[::1"],
    ["an empty IP-literal", "[]"],
    ["a port glued to an IP-literal", "[::1]80"],
    ["an IPv6 address with nine pieces", "[1:2:3:4:5:6:7:8:9]"],
    ["an IPv6 address with two ::", "[1::2::3]"],
    ["an IPv6 piece of five digits", "[12345::]"],
    ["an IPv6 address of eight pieces and ::", "[1:2:3:4:5:6:7::8]"],
    ["an IPv6 address ending in one colon", "[1:2:3:4:5:6:7:]"],
    ["an IPv4 tail with a leading zero", "[::ffff:192.0.2.01]"],
    ["an IPv4 tail above 255", "[::ffff:192.0.2.256]"],
    ["an IPv4 address inside an IPv6 one", "[::1.2.3.4:5]"],
    ["a zone identifier", "[fe80::1%25eth0]"],
    ["an IPvFuture without its dot", "[v1]"],
    ["an IPvFuture without a version", "[v.a]"],
  ].map(([what, host]): [string, string, number] => [
    `Host with ${what}: ${JSON.stringify(host)}`,
    `GET / HTTP/1.1\r\nHost: ${host}\r\n\r\n`,
    400,
  ]),
  ["an invalid Host on HTTP/1.0", "GET / HTTP/1.0\r\nHost: a b\r\n\r\n", 400],
  [
    "an invalid Host beside an absolute-form target",
    "GET http://a.example/ HTTP/1.1\r\nHost: a/b\r\n\r\n",
    400,
  ],
  // absolute-form (RFC 9110 §4.2.1, §4.2.4).
  [
    "userinfo in an absolute-form target",
    `GET http://user:pw@a.example/ HTTP/1.1\r\n${H}\r\n`,
    400,
  ],
  ["a bare @ in an absolute-form authority", `GET http://@a.example/ HTTP/1.1\r\n${H}\r\n`, 400],
  ["userinfo in an https target", `GET https://u@a.example?x HTTP/1.1\r\n${H}\r\n`, 400],
  ["an absolute-form target without a host", `GET http:///a HTTP/1.1\r\n${H}\r\n`, 400],
  ["an absolute-form target of only a scheme", `GET http:// HTTP/1.1\r\n${H}\r\n`, 400],
  ["an absolute-form port above 65535", `GET http://a:70000/ HTTP/1.1\r\n${H}\r\n`, 400],
  ["a fragment in an absolute-form authority", `GET http://a#b/ HTTP/1.1\r\n${H}\r\n`, 400],
  ["two Content-Type fields", withFields("Content-Type: a/b", "Content-Type: c/d"), 400],
  ["an Expect other than 100-continue", withFields("Expect: 200-ok"), 417],
  // Transfer-Encoding (RFC 9112 §6.1, §6.3).
  [
    "Content-Length with Transfer-Encoding",
    `POST / HTTP/1.1\r\n${H}Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
    400,
  ],
  [
    "Transfer-Encoding with Content-Length after it",
    `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n`,
    400,
  ],
  ["Transfer-Encoding on HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400],
  [
    "two Transfer-Encoding fields",
    `POST / HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n`,
    400,
  ],
  [
    "Transfer-Encoding gzip then chunked in two fields",
    `POST / HTTP/1.1\r\n${H}Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n`,
    400,
  ],
  ["Transfer-Encoding: chunked, chunked", withFields("Transfer-Encoding: chunked, chunked"), 400],
  ["Transfer-Encoding: chunked,chunked", withFields("Transfer-Encoding: chunked,chunked"), 400],
  ["Transfer-Encoding: gzip, chunked", withFields("Transfer-Encoding: gzip, chunked"), 501],
  ["Transfer-Encoding: chunked, gzip", withFields("Transfer-Encoding: chunked, gzip"), 501],
  ["Transfer-Encoding: chunked, identity", withFields("Transfer-Encoding: chunked, identity"), 501],
  ["Transfer-Encoding: identity", withFields("Transfer-Encoding: identity"), 501],
  ["Transfer-Encoding: chunkedchunked", withFields("Transfer-Encoding: chunkedchunked"), 501],
  ["Transfer-Encoding: xchunked", withFields("Transfer-Encoding: xchunked"), 501],
  ["Transfer-Encoding: chunked;q=1", withFields("Transfer-Encoding: chunked;q=1"), 501],
  ['Transfer-Encoding: "chunked"', withFields('Transfer-Encoding: "chunked"'), 501],
  ["Transfer-Encoding: \\x0bchunked", withFields("Transfer-Encoding: \x0bchunked"), 400],
  ["Transfer-Encoding: \\x0cchunked", withFields("Transfer-Encoding: \x0cchunked"), 400],
  ["Transfer-Encoding: \\rchunked", withFields("Transfer-Encoding: \rchunked"), 400],
  ["Transfer-Encoding: chunked\\x00", withFields("Transfer-Encoding: chunked\x00"), 400],
  ["an empty Transfer-Encoding", withFields("Transfer-Encoding:"), 400],
  ["Transfer-Encoding: chunked,", withFields("Transfer-Encoding: chunked,"), 400],
  ["Transfer-Encoding: , chunked", withFields("Transfer-Encoding: , chunked"), 400],
  ["a folded Transfer-Encoding", withFields("Transfer-Encoding: chunked", " , identity"), 400],
  // Content-Length (RFC 9110 §8.6: 1*DIGIT).
  ["Content-Length: +5", withFields("Content-Length: +5"), 400],
  ["Content-Length: -1", withFields("Content-Length: -1"), 400],
  ["Content-Length: 0x5", withFields("Content-Length: 0x5"), 400],
  ["Content-Length: 1 2", withFields("Content-Length: 1 2"), 400],
  ["Content-Length: 5, 5", withFields("Content-Length: 5, 5"), 400],
  ["Content-Length: 5,5", withFields("Content-Length: 5,5"), 400],
  ["Content-Length: abc", withFields("Content-Length: abc"), 400],
  ["Content-Length: 99 balloons", withFields("Content-Length: 99 balloons"), 400],
  ["Content-Length: 5.0", withFields("Content-Length: 5.0"), 400],
  ["Content-Length: 1e3", withFields("Content-Length: 1e3"), 400],
  ["an empty Content-Length", withFields("Content-Length:"), 400],
  ["Content-Length with full-width digits", withFields("Content-Length: \xef\xbc\x95"), 400],
  ["differing Content-Length fields", withFields("Content-Length: 1", "Content-Length: 2"), 400],
  [
    "Content-Length fields differing only in leading zeros",
    withFields("Content-Length: 1", "Content-Length: 01"),
    400,
  ],
  ["a 20-digit Content-Length", withFields("Content-Length: 99999999999999999999"), 413],
  ["a Content-Length of 2^53", withFields("Content-Length: 9007199254740992"), 413],
];

const LIMITS: [string, string, number][] = [
  [
    "a request line one byte over the limit (414)",
    `GET /${"a".repeat(8190 - 13)} HTTP/1.1\r\n${H}\r\n`,
    414,
  ],
  ["a request line of 9000 bytes with no end (414)", `GET /${"a".repeat(9000)}`, 414],
  ["a field line one byte over the limit (431)", withFields("X: " + "v".repeat(8190 - 2)), 431],
  ["a field line of 9000 bytes with no end (431)", `GET / HTTP/1.1\r\nX: ${"v".repeat(9000)}`, 431],
  [
    "one field more than the limit (431)",
    withFields(...Array.from({ length: 100 }, (_, i) => `X${i}: ${i}`)),
    431,
  ],
];

/**
 * Malformed chunked bodies: [what is refused, the body section, status, the body decoded
 * before the error, options].
 */
const MALFORMED_CHUNKED: [string, string, number, string, FeedOptions?][] = [
  ["a chunk size of 0x5", "0x5\r\nhello\r\n0\r\n\r\n", 400, ""],
  ["a chunk size of +5", "+5\r\nhello\r\n0\r\n\r\n", 400, ""],
  ["a chunk size of -5", "-5\r\nhello\r\n0\r\n\r\n", 400, ""],
  ["an empty chunk size", "\r\nhello\r\n0\r\n\r\n", 400, ""],
  ["an empty chunk size after a chunk", "1\r\na\r\n\r\n0\r\n\r\n", 400, "a"],
  ["a chunk size that is not hex", "g\r\nhello\r\n0\r\n\r\n", 400, ""],
  ["a space before the chunk size", " 5\r\nhello\r\n0\r\n\r\n", 400, ""],
  ["whitespace after the chunk size without an extension", "5 \r\nhello\r\n0\r\n\r\n", 400, ""],
  ["a chunk size of 17 hex digits (overflow)", "fffffffffffffffff\r\nx\r\n0\r\n\r\n", 413, ""],
  ["a chunk size of 2^64 + 5", "10000000000000005\r\nhello\r\n0\r\n\r\n", 413, ""],
  ["a bare LF ending the size line", "5\nhello\r\n0\r\n\r\n", 400, ""],
  ["a bare CR ending the size line", "5\rhello\r\n0\r\n\r\n", 400, ""],
  ["a bare CR in an extension", "5;a\rb\r\nhello\r\n0\r\n\r\n", 400, ""],
  ["a bare LF in an extension", "5;a\nb\r\nhello\r\n0\r\n\r\n", 400, ""],
  ["a NUL in an extension", "5;a=\x00\r\nhello\r\n0\r\n\r\n", 400, ""],
  ["a DEL in an extension", "5;a=\x7f\r\nhello\r\n0\r\n\r\n", 400, ""],
  ["4097 extension bytes after the semicolon", "1;" + "e".repeat(4097) + "\r\nx\r\n", 400, ""],
  [
    "extensions over 4096 bytes in total across chunks",
    "1;" + "e".repeat(3000) + "\r\na\r\n1;" + "e".repeat(1097) + "\r\nb\r\n0\r\n\r\n",
    400,
    "a",
  ],
  ["chunk data followed by a bare LF", "5\r\nhello\n0\r\n\r\n", 400, "hello"],
  ["chunk data not followed by CRLF", "5\r\nhelloXX0\r\n\r\n", 400, "hello"],
  ["a chunk longer than its size", "3\r\nhello\r\n0\r\n\r\n", 400, "hel"],
  ["a missing final CRLF before the next request", `0\r\nGET / HTTP/1.1\r\n${H}\r\n`, 400, ""],
  ["a final CR followed by a byte other than LF", "0\r\n\rX", 400, ""],
  ["a bare LF as the final line", "0\r\n\n", 400, ""],
  ["a trailer with a space before the colon", "0\r\nX : y\r\n\r\n", 400, ""],
  ["a trailer without a colon", "0\r\nX\r\n\r\n", 400, ""],
  ["a trailer with an empty name", "0\r\n: y\r\n\r\n", 400, ""],
  ["a folded trailer", "0\r\nX: y\r\n z\r\n\r\n", 400, ""],
  ["a trailer ending in a bare LF", "0\r\nX: y\n\r\n", 400, ""],
  ["a trailer with a bare CR in its value", "0\r\nX: a\rb\r\n\r\n", 400, ""],
  ["a trailer with a NUL in its value", "0\r\nX: a\x00\r\n\r\n", 400, ""],
  ["a body over maxBody (413)", "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", 413, "abc", { maxBody: 4 }],
  ["one chunk over maxBody (413)", "5\r\nhello\r\n0\r\n\r\n", 413, "", { maxBody: 4 }],
  [
    "more trailer fields than the limit (431)",
    "0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n",
    431,
    "",
    { limits: { ...DEFAULT_HEAD_LIMITS, fields: 2 } },
  ],
  [
    "a trailer field over the size limit (431)",
    "0\r\nX: " + "v".repeat(40) + "\r\n\r\n",
    431,
    "",
    { limits: { ...DEFAULT_HEAD_LIMITS, fieldSize: 32 } },
  ],
];

const MALFORMED: Case[] = [
  ...MALFORMED_HEADS.map(([what, raw, status]): Case => ({
    name: `parseRequestHead() rejects ${what} with ${status}`,
    raw,
    expect: [err(status)],
  })),
  ...LIMITS.map(([what, raw, status]): Case => ({
    name: `HeadScanner.scan() rejects ${what}`,
    raw,
    expect: [err(status)],
  })),
  ...MALFORMED_CHUNKED.map(([what, section, status, body, opts]): Case => ({
    name: `ChunkedDecoder.decode() rejects ${what}`,
    raw: chunked(section),
    opts,
    expect: [postChunked(body), err(status)],
  })),
  {
    name: "ChunkedDecoder.decode() rejects the h11 PoC (any two bytes after chunk data)",
    raw: chunked("5\r\nAAAAAXX2\r\n45\r\n0\r\n\r\nGET /two HTTP/1.1\r\n" + H + "\r\n"),
    expect: [postChunked("AAAAA"), err(400)],
  },
  {
    name: "parseRequestHead() stops at the first malformed request in a pipeline",
    raw:
      `GET /1 HTTP/1.1\r\n${H}\r\nGET /2 HTTP/1.1\r\nHost : h\r\n\r\nGET /3 HTTP/1.1\r\n${H}\r\n`,
    expect: [req("GET", "/1", ["HTTP_HOST", "h"]), err(400)],
  },
  {
    name: "ChunkedDecoder.decode() bounds whitespace between the chunk size and an extension",
    raw: chunked("1" + " ".repeat(5000) + ";a\r\nx\r\n0\r\n\r\n"),
    expect: [postChunked(""), err(400)],
  },
  {
    name: "HeadScanner.scan() refuses a request line without a version before the head ends",
    raw: "GET /\r\n",
    expect: [err(400)],
  },
  {
    name: "HeadScanner.scan() refuses a request line without a version before its fields",
    raw: `GET /\r\n${H}`,
    expect: [err(400)],
  },
  {
    name: "HeadScanner.scan() refuses a versionless line after a served request",
    raw: `GET / HTTP/1.1\r\n${H}\r\nGET /next\r\n`,
    expect: [GET, err(400)],
  },
  {
    name: "HeadScanner.scan() refuses a versionless line after blank lines",
    raw: "\r\n\r\nGET /\r\n",
    expect: [err(400)],
  },
  {
    name: "HeadScanner.scan() waits for the rest of a request line that may yet get a version",
    raw: "GET / HTTP/1.1",
    expect: [{ incomplete: "head" }],
  },
  {
    name: "HeadScanner.scan() refuses a head over --limit-request-head with 431, however split",
    raw: withFields("X-A: " + "a".repeat(20), "X-B: " + "b".repeat(20)),
    opts: { limits: { ...DEFAULT_HEAD_LIMITS, head: 64 } },
    expect: [err(431)],
  },
  {
    name: "HeadScanner.scan() refuses a head that has not ended by --limit-request-head",
    raw: "GET / HTTP/1.1\r\nHost: h\r\nX-A: " + "a".repeat(80),
    opts: { limits: { ...DEFAULT_HEAD_LIMITS, head: 64 } },
    expect: [err(431)],
  },
  {
    name: "HeadScanner.scan() takes a head exactly --limit-request-head long",
    raw: "GET / HTTP/1.1\r\nHost: h\r\n\r\n",
    opts: { limits: { ...DEFAULT_HEAD_LIMITS, head: 27 } },
    expect: [req("GET", "/", ["HTTP_HOST", "h"])],
  },
  {
    name: "HeadScanner.scan() refuses a too-long versionless line as too long",
    raw: "GET /" + "a".repeat(30) + "\r\n",
    opts: { limits: { ...DEFAULT_HEAD_LIMITS, requestLine: 20 } },
    expect: [err(414)],
  },
];

for (const c of [...VALID, ...CHUNKED_VALID, ...MALFORMED]) {
  Deno.test({
    name: c.name,
    ignore: c.ignore,
    fn() {
      const raw = bytes(c.raw);
      deepStrictEqual(parseSplit(raw, [], c.opts), c.expect);
      assertEverySplit(raw, c.expect, c.opts);
    },
  });
}

Deno.test({
  name: "HeadScanner.scan() refuses a long line then a bare LF with one status however split",
  fn() {
    const limits: HeadLimits = { ...DEFAULT_HEAD_LIMITS, requestLine: 20 };
    const raw = bytes("GET /" + "a".repeat(30) + "\n");
    deepStrictEqual(parseSplit(raw, [25], { limits }), parseSplit(raw, [], { limits }));
  },
});

Deno.test("HeadScanner.scan() resumes from where it stopped and reports leading CRLFs", () => {
  const raw = bytes(`\r\n\r\nGET / HTTP/1.1\r\n${H}\r\nGET /next HTTP/1.1\r\n`);
  const headEnd = 4 + `GET / HTTP/1.1\r\n${H}\r\n`.length;
  const scanner = new HeadScanner();
  deepStrictEqual(scanner.scan(raw, 0, 10, DEFAULT_HEAD_LIMITS), 0);
  deepStrictEqual(scanner.scan(raw, 0, 20, DEFAULT_HEAD_LIMITS), 0);
  // The head ends at its blank line, however much of the next request is already there.
  deepStrictEqual(scanner.scan(raw, 0, raw.length, DEFAULT_HEAD_LIMITS), headEnd);
  deepStrictEqual(scanner.leading, 4);
  scanner.reset();
  deepStrictEqual(scanner.leading, 0);
  deepStrictEqual(scanner.scan(raw, headEnd, raw.length, DEFAULT_HEAD_LIMITS), 0);
});
