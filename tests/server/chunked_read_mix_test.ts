// Reads of every kind mixed on chunked bodies over a real socket, some at once, with the
// disconnect signal asked for on the way: each body arrives exactly once, nothing hangs (every
// request has a deadline), and the pipelined request after each is served whole.

import assert from "node:assert/strict";
import type { App, Input } from "../../src/tsgi/types.ts";
import { bytes, closeQuietly, concat, parseResponses, withServer } from "../support/server.ts";

/** A small deterministic generator (mulberry32), so that a failure can be replayed. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Full = Input & { readInto(buf: Uint8Array): Promise<number> };

/** One read of a kind the plan (a string of op letters) says; the bytes it gave. */
async function oneRead(input: Full, op: string, size: number): Promise<Uint8Array> {
  switch (op) {
    case "n":
      return await input.read(size);
    case "l":
      return await input.readline(size);
    case "L":
      return await input.readline();
    case "i": {
      const buf = new Uint8Array(size);
      const n = await input.readInto(buf);
      return buf.slice(0, n);
    }
    default:
      return await input.read();
  }
}

/**
 * Reads the body as the query's plan says (ops, sizes, "+" for two at once, "s" for the
 * signal) and answers the bytes in hex, sorted when reads overlapped.
 */
const mixes: App = async (environ, startResponse) => {
  const input = environ["tsgi.input"] as Full;
  const params = new URLSearchParams(String(environ.QUERY_STRING));
  const plan = (params.get("plan") ?? "").split(",");
  const parts: Uint8Array[] = [];
  let overlapped = false;
  let step = 0;
  while (true) {
    const item = plan[step++ % plan.length];
    if (item === "s") {
      (environ["tsgi.server.signal"] as () => AbortSignal)();
      continue;
    }
    const reads = item.split("+").map((r) => oneRead(input, r[0], Number(r.slice(1)) || 1));
    overlapped ||= reads.length > 1;
    const got = await Promise.all(reads);
    parts.push(...got);
    if (got.every((g) => g.length === 0)) break;
  }
  let body = concat(parts);
  if (overlapped) body = body.slice().sort();
  startResponse("200 OK", [["Content-Type", "text/plain"], [
    "X-Overlapped",
    overlapped ? "yes" : "no",
  ]]);
  return [Array.from(body, (b) => b.toString(16).padStart(2, "0")).join("")];
};

const OPS = ["n", "l", "L", "i", "a"];

function planOf(next: () => number): string {
  const items: string[] = [];
  const count = 1 + Math.floor(next() * 5);
  for (let k = 0; k < count; k++) {
    if (next() < 0.15) {
      items.push("s");
      continue;
    }
    const one = () => OPS[Math.floor(next() * OPS.length)] + (1 + Math.floor(next() * 40));
    items.push(next() < 0.3 ? `${one()}+${one()}` : one());
  }
  // A plan that reads nothing would loop: end with a sized read.
  items.push(`n${1 + Math.floor(next() * 20)}`);
  return items.join(",");
}

function wireOf(body: Uint8Array, next: () => number): Uint8Array {
  const parts: Uint8Array[] = [];
  for (let at = 0; at < body.length;) {
    const size = Math.min(body.length - at, 1 + Math.floor(next() * 12));
    const ext = next() < 0.3 ? ";e=1" : "";
    parts.push(
      bytes(`${size.toString(16)}${ext}\r\n`),
      body.subarray(at, at + size),
      bytes("\r\n"),
    );
    at += size;
  }
  parts.push(bytes(next() < 0.3 ? "0\r\nT: v\r\n\r\n" : "0\r\n\r\n"));
  return concat(parts);
}

async function exchange(port: number, wire: Uint8Array, cuts: number[]): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  conn.setNoDelay(true);
  const received: Uint8Array[] = [];
  const reading = (async () => {
    const buf = new Uint8Array(65536);
    while (true) {
      const n = await conn.read(buf).catch(() => null);
      if (n === null) return;
      received.push(buf.slice(0, n));
    }
  })();
  let at = 0;
  for (const cut of cuts) {
    await conn.write(wire.subarray(at, Math.min(wire.length, at + cut)));
    at = Math.min(wire.length, at + cut);
    // Lets the server read between pieces; not a synchronisation.
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
  await conn.write(wire.subarray(at));
  let timer: ReturnType<typeof setTimeout> | undefined;
  const bound = new Promise<"hung">((resolve) => (timer = setTimeout(resolve, 5000, "hung")));
  const ended = await Promise.race([reading, bound]);
  clearTimeout(timer);
  closeQuietly(conn);
  await reading;
  if (ended === "hung") throw new Error("no answer within 5 s");
  return new TextDecoder("latin1").decode(concat(received));
}

Deno.test("mixed reads of chunked bodies, some at once, with the signal: exact and no hang", async () => {
  const next = random(Number(Deno.env.get("MIX_SEED") ?? 7));
  await withServer(mixes, async ({ port }) => {
    for (let round = 0; round < 150; round++) {
      const length = Math.floor(next() * 200);
      const body = new Uint8Array(length);
      for (let i = 0; i < length; i++) body[i] = next() < 0.1 ? 0x0a : 0x41 + (i % 26);
      const plan = planOf(next);
      // Mostly chunked; a Content-Length body now and then, for readInto()'s own path.
      const chunked = next() < 0.8;
      const framing = chunked ? "Transfer-Encoding: chunked" : `Content-Length: ${length}`;
      const target = `/?plan=${encodeURIComponent(plan)}`;
      const head = `POST ${target} HTTP/1.1\r\nHost: x\r\n${framing}\r\n\r\n`;
      const wire = concat([
        bytes(head),
        chunked ? wireOf(body, next) : body,
        bytes("GET /?plan=a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
      ]);
      const cuts = Array.from(
        { length: Math.floor(next() * 6) },
        () => 1 + Math.floor(next() * 30),
      );
      const what = `round ${round}, ${framing}, plan ${plan}, length ${length}, cuts ${cuts}`;
      const responses = parseResponses(await exchange(port, wire, cuts));
      assert.deepEqual(responses.map((r) => r.status), [200, 200], what);
      // The app sorts what it got when reads overlapped (which got what is up to them).
      const sorted = responses[0].headers["x-overlapped"] === "yes";
      const want = sorted ? body.slice().sort() : body;
      const hex = Array.from(want, (b) => b.toString(16).padStart(2, "0")).join("");
      assert.equal(responses[0].body, hex, what);
      assert.equal(responses[1].body, "", what);
    }
  }, { validate: false });
});
