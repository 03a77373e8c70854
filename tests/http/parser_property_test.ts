// Properties of the request parser, checked on generated inputs (fast-check), each run also
// under a random read split: (a) a valid request serialized and parsed gives back exactly what
// was generated; (b) no input — random bytes, or a valid stream with random edits — makes the
// parser throw, stall, or answer differently when split; (c) whatever the parser accepts is
// framed exactly as its headers declare, checked against an independent reference decoder.

import { deepStrictEqual, ok } from "node:assert/strict";
import fc from "npm:fast-check@3";
import { BodyKind } from "../../src/http/parser.ts";
import { bytes, feed, type Outcome, type ParsedRequest, parseSplit } from "../support/feed.ts";

const RUNS = 300;

const DIGITS = "0123456789";
const ALPHA = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/** tchar (RFC 9110 §5.6.2). */
const TCHARS = "!#$%&'*+-.^_`|~" + DIGITS + ALPHA;
/** Methods: tchar (RFC 9110 §9.1), less "_". */
const METHOD_CHARS = "!#$%&'*+-.^`|~" + DIGITS + ALPHA;
/** A safe path alphabet: unreserved, sub-delims, ":", "@", "/", "?", "%". */
const PATH_CHARS = ALPHA + DIGITS + "-._~!$&'()*+,;=:@/?%";
/** field-vchar = VCHAR / obs-text. */
const VCHARS = Array.from({ length: 0x7e - 0x21 + 1 }, (_, i) => String.fromCharCode(0x21 + i))
  .concat(Array.from({ length: 0x80 }, (_, i) => String.fromCharCode(0x80 + i)));
/** Header names the generator leaves to the framing model (any case). */
const SPECIAL = new Set([
  "host",
  "content-length",
  "transfer-encoding",
  "connection",
  "expect",
  "content-type",
]);

function word(alphabet: string | string[], minLength: number, maxLength: number) {
  return fc.array(fc.constantFrom(...alphabet), { minLength, maxLength }).map((a) => a.join(""));
}

const latin1Data = fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 40 })
  .map((codes) => String.fromCharCode(...codes));

const method = word(METHOD_CHARS, 1, 10).filter((m) => m !== "CONNECT");
const path = word(PATH_CHARS, 0, 30).map((p) => "/" + p);
const headerName = word(TCHARS, 1, 12).filter((n) => !SPECIAL.has(n.toLowerCase()));
/** A value as sent, OWS around and inside included; the parser trims the outer OWS. */
const headerValue = fc.array(
  fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom(...VCHARS) },
    { weight: 1, arbitrary: fc.constantFrom(" ", "\t") },
  ),
  { maxLength: 20 },
).map((a) => a.join(""));
const extension = fc.constantFrom("", ";a", ";a=b", ' ;q="x y"', "\t;n=v;m", ";\xe9");

/** One chunk of a chunked body: its size as written (hex of either case, zero-padded). */
function sizeLine(size: number, upper: boolean, zeros: number, ext: string): string {
  const hex = size.toString(16);
  return "0".repeat(zeros) + (upper ? hex.toUpperCase() : hex) + ext + "\r\n";
}

/** What the parser should deliver for a generated request, and the request's bytes. */
interface Generated {
  raw: string;
  expected: ParsedRequest;
}

function environKeyOf(name: string): string {
  return name.includes("_") ? "" : "HTTP_" + name.toUpperCase().replaceAll("-", "_");
}

const request: fc.Arbitrary<Generated> = fc.record({
  method,
  path,
  absolute: fc.boolean(),
  minor: fc.constantFrom(0, 1),
  headers: fc.array(fc.tuple(headerName, headerValue), { maxLength: 6 }),
  // Host = uri-host [ ":" port ] (RFC 9110 §7.2), or empty: a reg-name and maybe a port here.
  host: fc.oneof(
    fc.constant(""),
    fc.tuple(
      word(ALPHA + DIGITS + ".-", 1, 12),
      fc.option(fc.integer({ min: 0, max: 65535 }), { nil: undefined }),
    ).map(([name, port]) => port === undefined ? name : `${name}:${port}`),
  ),
  hostAt: fc.nat(),
  contentType: fc.option(word(ALPHA + "/+-", 1, 10), { nil: undefined }),
  connection: fc.constantFrom(
    undefined,
    "close",
    "keep-alive",
    "Keep-Alive",
    "close, keep-alive",
    "keep-alive,close",
    "upgrade",
    "CLOSE",
  ),
  expect: fc.boolean(),
  bodyKind: fc.constantFrom("none", "length", "chunked"),
  body: latin1Data,
  cuts: fc.array(fc.nat(), { maxLength: 4 }),
  chunkStyle: fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 3 }), extension), {
    minLength: 6,
    maxLength: 6,
  }),
  trailers: fc.array(fc.tuple(word(TCHARS, 1, 8), headerValue), { maxLength: 2 }),
  framingAt: fc.nat(),
}).map((g): Generated => {
  const target = g.absolute ? "http://" + (g.host || "h") + g.path : g.path;
  const lines: [string, string][] = g.headers.map(([n, v]) => [n, v]);
  const insert = (at: number, line: [string, string]) =>
    lines.splice(at % (lines.length + 1), 0, line);
  if (g.minor === 1) insert(g.hostAt, ["Host", g.host]);
  if (g.contentType !== undefined) insert(g.hostAt + 1, ["Content-Type", g.contentType]);
  if (g.connection !== undefined) insert(g.framingAt + 2, ["Connection", g.connection]);
  if (g.expect) insert(g.framingAt + 1, ["Expect", "100-continue"]);

  let body = "";
  let encoded = "";
  const kind = g.bodyKind === "chunked" && g.minor === 0 ? "length" : g.bodyKind;
  if (kind === "length") {
    body = g.body;
    encoded = body;
    insert(g.framingAt, ["Content-Length", String(body.length)]);
  } else if (kind === "chunked") {
    body = g.body;
    insert(g.framingAt, ["Transfer-Encoding", "chunked"]);
    const cuts = [...new Set(g.cuts.map((c) => c % (body.length + 1)))].filter((c) => c > 0)
      .sort((a, b) => a - b);
    let at = 0;
    [...cuts, body.length].forEach((cut, i) => {
      if (cut === at) return;
      const [upper, zeros, ext] = g.chunkStyle[i % g.chunkStyle.length];
      encoded += sizeLine(cut - at, upper, zeros, ext) + body.slice(at, cut) + "\r\n";
      at = cut;
    });
    const [, zeros, ext] = g.chunkStyle[5];
    encoded += sizeLine(0, false, zeros, ext);
    for (const [n, v] of g.trailers) encoded += `${n}:${v}\r\n`;
    encoded += "\r\n";
  }

  const fields: string[] = [];
  for (const [name, value] of lines) {
    const key = name === "Content-Type"
      ? "CONTENT_TYPE"
      : name === "Content-Length"
      ? "CONTENT_LENGTH"
      : environKeyOf(name);
    if (key !== "") fields.push(key, value.replace(/^[ \t]+|[ \t]+$/g, ""));
  }
  const options = (g.connection ?? "").split(",").map((o) => o.trim().toLowerCase());
  const keepAlive = !options.includes("close") &&
    (g.minor === 1 || options.includes("keep-alive"));
  const expected: ParsedRequest = {
    method: g.method,
    target,
    minor: g.minor,
    fields,
    body,
    keepAlive,
  };
  if (g.expect && g.minor === 1) expected.expectContinue = true;
  const head = `${g.method} ${target} HTTP/1.${g.minor}\r\n` +
    lines.map(([n, v]) => `${n}:${v}\r\n`).join("") + "\r\n";
  return { raw: head + encoded, expected };
});

/** One to three requests back to back on one connection. */
const pipeline = fc.array(request, { minLength: 1, maxLength: 3 }).map((requests) => ({
  raw: requests.map((r) => r.raw).join(""),
  expected: requests.map((r) => r.expected) as Outcome,
}));

/** Read splits for a stream of `length` bytes, from arbitrary naturals. */
function splitsFor(seeds: number[], length: number): number[] {
  if (length < 2) return [];
  return [...new Set(seeds.map((s) => 1 + (s % (length - 1))))].sort((a, b) => a - b);
}

const splitSeeds = fc.array(fc.nat(), { maxLength: 8 });

Deno.test("parseSplit() gives back exactly the generated requests, however split", () => {
  fc.assert(
    fc.property(pipeline, splitSeeds, ({ raw, expected }, seeds) => {
      const data = bytes(raw);
      deepStrictEqual(parseSplit(data, []), expected);
      deepStrictEqual(parseSplit(data, splitsFor(seeds, data.length)), expected);
    }),
    { numRuns: RUNS },
  );
});

/** Bytes a mutation writes: the ones every rule of the grammar turns on. */
const INTERESTING = [...'\r\n \t\x00\x0b\x0c\x7f\x80\xff:;,05fx+-"_aH/.'];

const mutation = fc.record({
  at: fc.nat(),
  op: fc.constantFrom("replace", "insert", "delete", "duplicate"),
  byte: fc.constantFrom(...INTERESTING),
});

/** A valid pipeline with one to four random edits. */
const mutated = fc.tuple(pipeline, fc.array(mutation, { minLength: 1, maxLength: 4 })).map(
  ([{ raw }, edits]) => {
    let s = raw;
    for (const { at, op, byte } of edits) {
      const i = at % (s.length + 1);
      if (op === "replace") s = s.slice(0, i) + byte + s.slice(i + 1);
      else if (op === "insert") s = s.slice(0, i) + byte + s.slice(i);
      else if (op === "delete") s = s.slice(0, i) + s.slice(i + 1);
      else s = s.slice(0, i) + s.slice(i, i + 8) + s.slice(i);
    }
    return bytes(s);
  },
);

/** Random bytes built from the tokens of a request, so that they get past the first line. */
const httpish = fc.array(
  fc.constantFrom(
    "GET",
    "POST",
    " ",
    "/",
    "*",
    "HTTP/1.1",
    "HTTP/1.0",
    "\r\n",
    "\r",
    "\n",
    "Host: h",
    ":",
    "Content-Length: ",
    "Transfer-Encoding: chunked",
    "Connection: close",
    "0",
    "5",
    "ff",
    ";",
    "\x00",
    "\t",
    "a",
    "\xe9",
  ),
  { maxLength: 40 },
).map((parts) => bytes(parts.join("")));

const anyInput = fc.oneof(
  fc.uint8Array({ maxLength: 200 }),
  httpish,
  mutated,
);

Deno.test("parseSplit() never throws and answers the same however an input is split", () => {
  fc.assert(
    fc.property(anyInput, splitSeeds, (data, seeds) => {
      // feed() throws when the parser breaks its contract (no progress, result out of range).
      const whole = parseSplit(data, []);
      deepStrictEqual(parseSplit(data, splitsFor(seeds, data.length)), whole);
      const last = whole.at(-1);
      if (last && "error" in last) ok([400, 413, 414, 417, 431, 501, 505].includes(last.error));
    }),
    { numRuns: RUNS },
  );
});

Deno.test("parseSplit() feeds one byte at a time without stalling", () => {
  fc.assert(
    fc.property(anyInput, (data) => {
      const all = Array.from({ length: Math.max(0, data.length - 1) }, (_, i) => i + 1);
      deepStrictEqual(parseSplit(data, all), parseSplit(data, []));
    }),
    { numRuns: 100 },
  );
});

const TCHAR_RE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const FIELD_VALUE_RE = /^[\t\x20-\x7e\x80-\xff]*$/;
const CHUNK_SIZE_RE = /^([0-9a-fA-F]{1,13})(?:[ \t]*;[\t\x20-\x7e\x80-\xff]*)?\r\n/;
const TRAILER_RE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[\t\x20-\x7e\x80-\xff]*\r\n/;

/** A strict chunked decoder written apart from src/: the body, or null if `s` is not exactly one. */
function referenceChunked(s: string): string | null {
  let body = "";
  for (;;) {
    const m = CHUNK_SIZE_RE.exec(s);
    if (!m) return null;
    const size = parseInt(m[1], 16);
    s = s.slice(m[0].length);
    if (size === 0) break;
    if (s.length < size + 2 || s.slice(size, size + 2) !== "\r\n") return null;
    body += s.slice(0, size);
    s = s.slice(size + 2);
  }
  for (let t = TRAILER_RE.exec(s); t; t = TRAILER_RE.exec(s)) s = s.slice(t[0].length);
  return s === "\r\n" ? body : null;
}

function values(fields: string[], key: string): string[] {
  return fields.filter((_, i) => i % 2 === 1 && fields[i - 1] === key);
}

Deno.test("feed() frames every accepted body exactly as its headers declare", () => {
  fc.assert(
    fc.property(fc.oneof(mutated, httpish, pipeline.map((p) => bytes(p.raw))), (data) => {
      const trace = feed(data, []);
      const text = String.fromCharCode(...data);
      trace.requests.forEach(({ head, body, bodyStart, bodyEnd }, i) => {
        // The last request's body is whole only when the stream neither failed nor ran out.
        const complete = i < trace.requests.length - 1 ||
          (trace.error === undefined && trace.incomplete === undefined);
        // Nothing that can end a line or a string ever reaches the application.
        ok(TCHAR_RE.test(head.method), `method ${JSON.stringify(head.method)}`);
        ok(/^[\x21-\x7e]+$/.test(head.target), `target ${JSON.stringify(head.target)}`);
        for (let f = 1; f < head.fields.length; f += 2) {
          ok(FIELD_VALUE_RE.test(head.fields[f]), `value ${JSON.stringify(head.fields[f])}`);
          ok(!/^[ \t]|[ \t]$/.test(head.fields[f]), "value not trimmed");
        }
        const lengths = values(head.fields, "CONTENT_LENGTH");
        const codings = values(head.fields, "HTTP_TRANSFER_ENCODING");
        const latin1 = String.fromCharCode(...body);
        if (head.bodyKind === BodyKind.Chunked) {
          deepStrictEqual(lengths, []);
          deepStrictEqual(codings.map((c) => c.toLowerCase()), ["chunked"]);
          ok(head.minor === 1);
          if (complete) {
            deepStrictEqual(referenceChunked(text.slice(bodyStart, bodyEnd)), latin1);
          }
        } else {
          deepStrictEqual(codings, []);
          for (const l of lengths) ok(/^[0-9]+$/.test(l) && Number(l) === head.contentLength);
          const declared = head.bodyKind === BodyKind.Length ? head.contentLength : 0;
          if (head.bodyKind === BodyKind.None) ok(lengths.every((l) => Number(l) === 0));
          if (complete) deepStrictEqual(body.length, declared);
          deepStrictEqual(text.slice(bodyStart, bodyEnd), latin1);
        }
      });
    }),
    { numRuns: RUNS },
  );
});
