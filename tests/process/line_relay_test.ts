// A child's output read as lines (src/process/line_relay.ts): whole lines handed on, and a
// line that never ends handed on in bounded pieces instead of held.

import assert from "node:assert/strict";
import { relayLines } from "../../src/process/line_relay.ts";

function streamOf(...parts: string[]): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  return new ReadableStream({
    start(controller) {
      for (const part of parts) controller.enqueue(encoder.encode(part));
      controller.close();
    },
  });
}

Deno.test("lines cut anywhere come out whole, the last one without its newline too", async () => {
  const lines: string[] = [];
  await relayLines(streamOf("one\ntw", "o\n\nthr", "ee"), (line) => lines.push(line));
  assert.deepEqual(lines, ["one", "two", "", "three"]);
});

Deno.test("a line with no end is handed on in 16 KiB pieces, never held whole", async () => {
  const lines: string[] = [];
  const endless = Array.from({ length: 64 }, () => "x".repeat(1024));
  await relayLines(streamOf(...endless), (line) => lines.push(line));
  assert.ok(lines.every((line) => line.length <= 16 * 1024));
  assert.equal(lines.join("").length, 64 * 1024);
});
