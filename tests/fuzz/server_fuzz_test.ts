// The corpus and its mutations sent over raw TCP to a real server. For every stream the app
// records what it was called with; the properties:
//
// - the requests the app sees are a prefix of those the reference decoder frames at the top
//   level — same method, target and body — so a request hidden in a body is never served;
// - the server answers with well-formed responses (a valid status line, framed) or closes;
// - it keeps serving: a plain request afterwards is answered 200, and no connection is left.

import assert from "node:assert/strict";
import fc from "npm:fast-check@3";
import type { App } from "../../src/tsgi/types.ts";
import { waitFor, withServer } from "../support/server.ts";
import { latin1, loadCorpus, show } from "./corpus.ts";
import { build, recipeArbitrary, seedPool } from "./fuzz.ts";
import { referenceDecode } from "./reference.ts";

const CASES = Number(Deno.env.get("FUZZ_SERVER_RUNS") ?? 1000);
const SEED = Number(Deno.env.get("FUZZ_SEED") ?? 20_260_701);
const CASE_DEADLINE_MS = 5000;

const corpus = loadCorpus();

interface Served {
  method: string;
  target: string;
  /** The body as the app read it; undefined if reading it failed. */
  body?: string;
}

/** An app that records each call and answers with what it saw. */
function recordingApp(log: Served[]): App {
  return async (environ, startResponse) => {
    const entry: Served = { method: environ.REQUEST_METHOD, target: environ.RAW_URI };
    log.push(entry);
    const body = await environ["tsgi.input"].read();
    entry.body = latin1(body);
    startResponse("200 OK", [["Content-Type", "text/plain"]]);
    return [`${entry.method} ${entry.target} ${body.length}\n`];
  };
}

/** Sends `data`, half-closes, and reads until the server closes (or the deadline). */
async function exchange(
  port: number,
  data: Uint8Array,
): Promise<{ text: string; closed: boolean }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const parts: Uint8Array[] = [];
  let closed = false;
  const reading = (async () => {
    const buf = new Uint8Array(64 * 1024);
    while (true) {
      const n = await conn.read(buf).catch(() => null);
      if (n === null) return void (closed = true);
      parts.push(buf.slice(0, n));
    }
  })();
  try {
    await conn.write(data);
    await conn.closeWrite();
  } catch {
    // The server may refuse and close before everything was written.
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([reading, new Promise((r) => (timer = setTimeout(r, CASE_DEADLINE_MS)))]);
  clearTimeout(timer);
  try {
    conn.close();
  } catch {
    // Closed already.
  }
  await reading;
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) all.set(p, (at += p.length) - p.length);
  return { text: latin1(all), closed };
}

const STATUS_LINE = /^HTTP\/1\.1 ([1-5][0-9]{2}) [^\r\n]*\r\n/;

/**
 * Splits a response stream strictly; `methods` are the served requests' methods in order
 * (HEAD responses carry no body). Returns the final statuses, or throws saying what is wrong.
 */
function parseStream(text: string, methods: string[]): number[] {
  const statuses: number[] = [];
  let pos = 0;
  while (pos < text.length) {
    const line = STATUS_LINE.exec(text.slice(pos, pos + 200));
    if (!line) throw new Error(`bad status line at ${pos}: ${JSON.stringify(text.slice(pos))}`);
    const headEnd = text.indexOf("\r\n\r\n", pos);
    if (headEnd < 0) throw new Error(`truncated head: ${JSON.stringify(text.slice(pos))}`);
    const status = Number(line[1]);
    const fields = new Map<string, string>();
    for (const field of text.slice(pos + line[0].length, headEnd + 2).split("\r\n").slice(0, -1)) {
      const m = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+): ?([\t\x20-\x7e\x80-\xff]*)$/.exec(field);
      if (!m) throw new Error(`bad response field ${JSON.stringify(field)}`);
      fields.set(m[1].toLowerCase(), m[2]);
    }
    pos = headEnd + 4;
    if (status < 200) continue;
    const method = methods[statuses.length];
    statuses.push(status);
    if (method === "HEAD" || status === 204 || status === 304) continue;
    if (fields.get("transfer-encoding") === "chunked") {
      for (;;) {
        const lineEnd = text.indexOf("\r\n", pos);
        const size = /^[0-9a-f]+$/.test(text.slice(pos, lineEnd))
          ? parseInt(text.slice(pos, lineEnd), 16)
          : NaN;
        if (lineEnd < 0 || Number.isNaN(size)) throw new Error("bad chunked response");
        pos = lineEnd + 2 + size + 2;
        if (size === 0) break;
      }
      if (pos > text.length) throw new Error("truncated chunked response");
    } else if (fields.has("content-length")) {
      pos += Number(fields.get("content-length"));
      if (pos > text.length) throw new Error("truncated response body");
    } else {
      pos = text.length;
    }
  }
  return statuses;
}

/** What is wrong with how the server handled `data`, or undefined. */
function judge(data: Uint8Array, served: Served[], text: string, closed: boolean): string[] {
  const problems: string[] = [];
  const ref = referenceDecode(latin1(data));
  if (!closed) problems.push(`server neither finished nor closed within ${CASE_DEADLINE_MS} ms`);
  if (served.length > ref.requests.length) {
    problems.push(`app called ${served.length} times, reference frames ${ref.requests.length}`);
  }
  served.forEach((got, i) => {
    const want = ref.requests[i];
    if (!want) return;
    if (got.method !== want.method || got.target !== want.target) {
      problems.push(
        `request ${i} is ${got.method} ${got.target}, reference ${want.method} ${want.target} (a request smuggled in a body?)`,
      );
    } else if (got.body !== undefined && (!want.complete || got.body !== want.body)) {
      problems.push(
        `request ${i} body ${JSON.stringify(got.body)}, reference ${JSON.stringify(want.body)}`,
      );
    }
  });
  try {
    const statuses = parseStream(text, served.map((s) => s.method));
    if (statuses.length > served.length + 1) {
      problems.push(`${statuses.length} responses for ${served.length} requests served`);
    }
  } catch (error) {
    problems.push(`response stream: ${(error as Error).message}`);
  }
  return problems;
}

async function assertStillServing(port: number): Promise<void> {
  const out = await exchange(
    port,
    new TextEncoder().encode("GET /alive HTTP/1.1\r\nHost: x\r\n\r\n"),
  );
  assert.match(out.text, /^HTTP\/1\.1 200 OK\r\n/, "the server keeps serving");
}

Deno.test("server answers each invalid corpus entry with its status, then closes", async () => {
  const served: Served[] = [];
  await withServer(recordingApp(served), async ({ port }) => {
    for (const entry of corpus.filter((e) => e.kind === "invalid")) {
      served.length = 0;
      const { text, closed } = await exchange(port, entry.data);
      const problems = judge(entry.data, served, text, closed);
      assert.deepEqual(problems, [], `invalid/${entry.name}`);
      const statuses = parseStream(text, served.map((s) => s.method));
      assert.equal(statuses.at(-1), entry.status, `invalid/${entry.name}: ${text}`);
      assert.ok(
        served.every((s) => !s.target.includes("never") && !s.target.includes("two")),
        `invalid/${entry.name} served ${JSON.stringify(served)}`,
      );
    }
    await assertStillServing(port);
  });
});

Deno.test("server serves each valid corpus entry's requests in order, nothing hidden in a body", async () => {
  const served: Served[] = [];
  await withServer(recordingApp(served), async ({ port }) => {
    for (const entry of corpus.filter((e) => e.kind === "valid")) {
      served.length = 0;
      const { text, closed } = await exchange(port, entry.data);
      assert.deepEqual(judge(entry.data, served, text, closed), [], `valid/${entry.name}`);
      const ref = referenceDecode(latin1(entry.data));
      // Served up to and including the first request that does not keep the connection.
      const kept = ref.requests.findIndex((r) => !r.keepAlive);
      const expected = kept < 0 ? ref.requests.length : kept + 1;
      assert.equal(served.length, expected, `valid/${entry.name}: ${JSON.stringify(served)}`);
      assert.ok(served.every((s) => s.body !== undefined), `valid/${entry.name} bodies`);
      assert.ok(!served.some((s) => s.target === "/smuggled"), `valid/${entry.name}`);
    }
  });
});

Deno.test(`server handles ${CASES} mutated request streams: answers or closes, serves only what is framed`, async () => {
  const served: Served[] = [];
  const seeds = seedPool(corpus);
  const recipes = fc.sample(recipeArbitrary(), { numRuns: CASES, seed: SEED });
  await withServer(recordingApp(served), async ({ port, handle }) => {
    const failures: string[] = [];
    let calls = 0;
    let refused = 0;
    for (const [i, recipe] of recipes.entries()) {
      const { data } = build({ ...recipe, small: false }, seeds);
      served.length = 0;
      const { text, closed } = await exchange(port, data);
      const problems = judge(data, served, text, closed);
      calls += served.length;
      if (/^HTTP\/1\.1 4/m.test(text)) refused++;
      if (problems.length > 0) failures.push(`${show(data)}\n  ${problems.join("\n  ")}`);
      if (failures.length >= 3) break;
      if (i % 50 === 49) await assertStillServing(port);
    }
    assert.deepEqual(failures, [], `server fuzz failures (FUZZ_SEED=${SEED})`);
    // Not a vacuous run: many streams reached the app, many were refused.
    assert.ok(
      calls >= CASES / 4 && refused >= CASES / 4,
      `${calls} app calls, ${refused} refusals`,
    );
    console.log(`${CASES} streams: ${calls} app calls, ${refused} with a 4xx`);
    await assertStillServing(port);
    assert.ok(
      await waitFor(() => handle.server.connectionCount === 0),
      `connections left open: ${handle.server.connectionCount}`,
    );
  }, { logLevel: "error" });
});
