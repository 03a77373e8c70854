// The master–worker control protocol without processes: what encodeMessage() writes,
// parseMessage() reads back, and every other line is left to be passed through.

import assert from "node:assert/strict";
import { type ControlMessage, encodeMessage, parseMessage } from "../../src/pool/control.ts";

const decoder = new TextDecoder();

/** The line a worker writes for `message`, without its newline. */
function lineOf(message: ControlMessage): string {
  const text = decoder.decode(encodeMessage(message));
  assert.ok(text.endsWith("\n"), "a message ends its line");
  assert.ok(!text.slice(0, -1).includes("\n"), "a message is one line");
  return text.slice(0, -1);
}

Deno.test("every message survives encodeMessage and parseMessage unchanged", () => {
  const messages: ControlMessage[] = [
    { t: "ready" },
    { t: "hb", n: 0 },
    { t: "hb", n: 123_456 },
    { t: "retiring" },
    { t: "error", msg: 'Cannot import "app.ts": database unreachable' },
    { t: "error", msg: 'two\nlines, a tab\t, a quote " and é 🦕' },
    { t: "error", msg: "" },
  ];
  for (const message of messages) assert.deepEqual(parseMessage(lineOf(message)), message);
});

/** Lines parseMessage() must leave alone, by why they are not messages. */
const NOT_MESSAGES: Record<string, string[]> = {
  "lines that are not messages are null, to be passed through": [
    "",
    '127.0.0.1 - - [01/Jan/2026:00:00:00 +0000] "GET / HTTP/1.1" 200 14 "-" "curl" 0.001',
    '{"method":"GET","status":200}', // a JSON access log line
    '{"n":1,"t":"hb"}', // a message is written with "t" first; anything else is not one
    ' {"t":"ready"}',
    "ready",
    '"{\\"t\\":\\"ready\\"}"',
  ],
  "malformed JSON is not a message": [
    '{"t":"ready"',
    '{"t":"hb","n":}',
    '{"t":"ready"}}',
    '{"t":"ready",}',
    '{"t":"error","msg":"cut off',
  ],
  "unknown types and ill-typed fields are not messages": [
    '{"t":"bye"}',
    '{"t":"READY"}',
    '{"t":""}',
    '{"t":"hb"}',
    '{"t":"hb","n":"12"}',
    '{"t":"hb","n":null}',
    '{"t":"error"}',
    '{"t":"error","msg":42}',
  ],
};

for (const [name, lines] of Object.entries(NOT_MESSAGES)) {
  Deno.test(name, () => {
    for (const line of lines) assert.equal(parseMessage(line), null, line);
  });
}

Deno.test("fields a message does not have are dropped", () => {
  assert.deepEqual(parseMessage('{"t":"ready","pid":42}'), { t: "ready" });
  assert.deepEqual(parseMessage('{"t":"hb","n":3,"extra":[1]}'), { t: "hb", n: 3 });
  assert.deepEqual(parseMessage('{"t":"retiring","n":1}'), { t: "retiring" });
});
