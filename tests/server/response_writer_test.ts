// The response writer's framing as a table: status × method × the app's headers → the exact
// bytes on the wire, for TSGI apps (the writer over an in-memory socket) and for fetch apps
// (a real server, raw TCP). The expected bytes come from a model written from RFC 9110.

import assert from "node:assert/strict";
import { AppError, reasonPhrase } from "../../src/http/errors.ts";
import { toTsgiApp } from "../../src/app/fetch/to_tsgi.ts";
import { OutputBuffer } from "../../src/server/output.ts";
import { ResponseWriter } from "../../src/server/response.ts";
import { rawExchange, withServer } from "../support/server.ts";

type Fields = [string, string][];

const STATUSES = [200, 204, 304, 404, 500];
const METHODS = ["GET", "HEAD"];
const BODY = "hello";

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
function expected(status: number, method: string, fields: Fields): string | null {
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
  const body = bodiless || method === "HEAD" ? "" : BODY;
  return lines.join("\r\n") + "\r\n\r\n" + body;
}

function normalise(wire: string): string {
  return wire.replace(/\r\nDate: [^\r]*/i, "\r\nDate: *");
}

/** One response through the writer, into memory. */
async function writeOne(status: number, method: string, fields: Fields): Promise<string> {
  let wire = "";
  const latin1 = new TextDecoder("latin1");
  const out = new OutputBuffer({
    write: (bytes) => {
      wire += latin1.decode(bytes);
      return Promise.resolve(bytes.length);
    },
  });
  const writer = new ResponseWriter(out, method, 1, true);
  writer.startResponse(`${status} ${reasonPhrase(status)}`, fields);
  const bodiless = status === 204 || status === 304;
  await writer.send(bodiless ? [] : [BODY]);
  await out.flush();
  return wire;
}

Deno.test("the writer's framing table for TSGI apps: status × method × headers", async () => {
  let rows = 0;
  for (const status of STATUSES) {
    for (const method of METHODS) {
      for (const [label, fields] of headerCases(status)) {
        const want = expected(status, method, fields);
        const where = `${status} ${method} with ${label}`;
        if (want === null) {
          await assert.rejects(() => writeOne(status, method, fields), AppError, where);
        } else {
          assert.equal(normalise(await writeOne(status, method, fields)), want, where);
        }
        rows++;
      }
    }
  }
  assert.equal(rows, STATUSES.length * METHODS.length * 85);
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
