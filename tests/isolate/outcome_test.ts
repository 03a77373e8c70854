// How an isolated exchange's end is told, without processes: the log line and level for each
// outcome, the status each failure is answered with, and which children are left to exit.

import assert from "node:assert/strict";
import {
  exitLine,
  exitsByItself,
  FAILURE_ANSWER,
  type Outcome,
} from "../../src/isolate/outcome.ts";

const REQUEST = "GET /path HTTP/1.1";

function exited(code: number): Deno.CommandStatus {
  return { success: code === 0, code, signal: null };
}
const KILLED: Deno.CommandStatus = { success: false, code: 137, signal: "SIGKILL" };

function line(outcome: Outcome, status: Deno.CommandStatus): string {
  const { level, message } = exitLine(outcome, 42, REQUEST, status);
  return `${level}: ${message}`;
}

Deno.test("a clean exit after the response is debug; an unclean one a warning", () => {
  assert.equal(
    line({ kind: "done" }, exited(0)),
    `debug: Child 42 exited (exit code 0) after "${REQUEST}"`,
  );
  assert.equal(
    line({ kind: "done" }, exited(7)),
    `warning: Child 42 exited with exit code 7 after answering "${REQUEST}"`,
  );
});

Deno.test("each failure is an error line saying what the client was given", () => {
  const cases: [Outcome, Deno.CommandStatus, string][] = [
    [
      { kind: "appFailed", answer: { kind: "status", status: 500 } },
      exited(1),
      `Child 42 exited (exit code 1): the app failed on "${REQUEST}"; answered 500`,
    ],
    [
      { kind: "appFailed", answer: { kind: "status", status: 413 } },
      exited(1),
      `Child 42 exited (exit code 1): the app failed on "${REQUEST}"; answered 413`,
    ],
    [
      { kind: "appFailed", answer: { kind: "none" } },
      exited(1),
      `Child 42 exited (exit code 1): the app failed on "${REQUEST}"; answered -`,
    ],
    [
      { kind: "crashed", protocolError: null, answer: { kind: "status", status: 502 } },
      exited(3),
      `Child 42 crashed (exit code 3) serving "${REQUEST}"; answered 502`,
    ],
    [
      {
        kind: "crashed",
        protocolError: "FrameError: Unknown frame type 99",
        answer: { kind: "aborted" },
      },
      KILLED,
      `Child 42 crashed (signal SIGKILL) serving "${REQUEST}" ` +
      `(FrameError: Unknown frame type 99); response aborted`,
    ],
    [
      { kind: "timedOut", afterMs: 2500, answer: { kind: "status", status: 504 } },
      KILLED,
      `Child 42 killed (signal SIGKILL) after the 2.5 s timeout serving "${REQUEST}"; answered 504`,
    ],
    [
      {
        kind: "appFailed",
        denied: 'Requires read access to "/etc/passwd", run again with the --allow-read flag',
        answer: { kind: "status", status: 500 },
      },
      exited(1),
      `Child 42 exited (exit code 1): the app failed on "${REQUEST}"; answered 500; ` +
      'not permitted: Requires read access to "/etc/passwd", run again with the --allow-read flag',
    ],
    [
      { kind: "outOfMemory", capBytes: 256 * 2 ** 20, answer: { kind: "status", status: 502 } },
      KILLED,
      `Child 42 ran out of memory (cap 256 MiB; signal SIGKILL) serving "${REQUEST}"; ` +
      "answered 502",
    ],
    [
      { kind: "outOfMemory", capBytes: 96 * 2 ** 20, answer: { kind: "aborted" } },
      { success: false, code: 133, signal: "SIGTRAP" },
      `Child 42 ran out of memory (cap 96 MiB; signal SIGTRAP) serving "${REQUEST}"; ` +
      "response aborted",
    ],
    [
      { kind: "headRefused" },
      KILLED,
      `Child 42 stopped (signal SIGKILL): its response head was refused ("${REQUEST}")`,
    ],
  ];
  for (const [outcome, status, message] of cases) {
    assert.deepEqual(exitLine(outcome, 42, REQUEST, status), { level: "error", message });
  }
});

Deno.test("a client that went away is an info line", () => {
  assert.equal(
    line({ kind: "clientGone" }, KILLED),
    `info: Child 42 stopped (signal SIGKILL): the client went away from "${REQUEST}"`,
  );
});

Deno.test("before any body byte: 500 for the app, 502 for a crash or past the memory cap, 504 for a timeout", () => {
  const statuses = Object.entries(FAILURE_ANSWER).map(([kind, a]) =>
    `${kind} ${a.status} ${a.reason}`
  );
  assert.deepEqual(statuses, [
    "appFailed 500 Internal Server Error",
    "timedOut 504 Gateway Timeout",
    "crashed 502 Bad Gateway",
    "outOfMemory 502 Bad Gateway",
  ]);
});

Deno.test("only a child that finished or reported its app's failure may exit by itself", () => {
  const status = { kind: "status", status: 500 } as const;
  const kept: Outcome[] = [{ kind: "done" }, { kind: "appFailed", answer: status }];
  const killed: Outcome[] = [
    { kind: "clientGone" },
    { kind: "headRefused" },
    { kind: "crashed", protocolError: null, answer: status },
    { kind: "timedOut", afterMs: 1000, answer: status },
    { kind: "outOfMemory", capBytes: 2 ** 26, answer: status },
  ];
  assert.ok(kept.every(exitsByItself));
  assert.ok(!killed.some(exitsByItself));
});
