// Why an exchange between the master and one child ended, and the line that child's exit is
// logged with once it has been reaped (docs/isolation.md, "Failures").

import { describeExit } from "../process/exit_status.ts";
import type { LogLevel } from "../server/log.ts";

/** What a failed exchange gave its client. */
export type Answer =
  /** An error response of the executor's own: none of the child's body had gone out. */
  | { kind: "status"; status: number }
  /** The child's response had begun: the engine cut the connection short. */
  | { kind: "aborted" }
  /** Nothing: the client went away while sending its body. */
  | { kind: "none" };

/** Why a child did not finish its response. */
export type Failure =
  /**
   * The app threw; the child said so with an ERROR frame and exits by itself. `denied` is
   * Deno's message when what it threw was a permission refused (NotCapable).
   */
  | { kind: "appFailed"; denied?: string }
  /** It ran past the timeout and was killed. */
  | { kind: "timedOut"; afterMs: number }
  /** It died, or broke the protocol (then `protocolError` says how). */
  | { kind: "crashed"; protocolError: string | null }
  /** It passed its memory cap (--isolate-memory) and was ended by V8 or the kernel. */
  | { kind: "outOfMemory"; capBytes: number };

export type Outcome =
  /** The response ended with RESPONSE_END. */
  | { kind: "done" }
  /** The engine stopped reading the body early: its client went away. */
  | { kind: "clientGone" }
  /** The engine refused the child's status or headers (and answered 500 itself). */
  | { kind: "headRefused" }
  | Failure & { answer: Answer };

/** How each failure is answered while no body byte has gone out, and named in errors. */
export const FAILURE_ANSWER: {
  readonly [Kind in Failure["kind"]]: { status: number; reason: string; said: string };
} = {
  appFailed: { status: 500, reason: "Internal Server Error", said: "app failed" },
  timedOut: { status: 504, reason: "Gateway Timeout", said: "timed out" },
  crashed: { status: 502, reason: "Bad Gateway", said: "crashed" },
  outOfMemory: { status: 502, reason: "Bad Gateway", said: "ran out of memory" },
};

/** Whether the child ends by itself after this outcome; otherwise it is killed at once. */
export function exitsByItself(outcome: Outcome): boolean {
  return outcome.kind === "done" || outcome.kind === "appFailed";
}

export interface ExitLine {
  level: LogLevel;
  message: string;
}

/** What the log says of child `pid`, reaped with `status` after `request` (escaped). */
export function exitLine(
  outcome: Outcome,
  pid: number,
  request: string,
  status: Deno.CommandStatus,
): ExitLine {
  const child = `Child ${pid}`;
  const how = describeExit(status);
  const quoted = `"${request}"`;
  switch (outcome.kind) {
    case "done":
      return status.success
        ? { level: "debug", message: `${child} exited (${how}) after ${quoted}` }
        : { level: "warning", message: `${child} exited with ${how} after answering ${quoted}` };
    case "appFailed": {
      const denied = outcome.denied === undefined ? "" : `; not permitted: ${outcome.denied}`;
      return failed(
        `${child} exited (${how}): the app failed on ${quoted}; ${answered(outcome.answer)}` +
          denied,
      );
    }
    case "timedOut":
      return failed(
        `${child} killed (${how}) after the ${outcome.afterMs / 1000} s timeout serving ` +
          `${quoted}; ${answered(outcome.answer)}`,
      );
    case "crashed": {
      const why = outcome.protocolError === null ? "" : ` (${outcome.protocolError})`;
      return failed(
        `${child} crashed (${how}) serving ${quoted}${why}; ${answered(outcome.answer)}`,
      );
    }
    case "outOfMemory":
      return failed(
        `${child} ran out of memory (cap ${mebibytes(outcome.capBytes)} MiB; ${how}) serving ` +
          `${quoted}; ${answered(outcome.answer)}`,
      );
    case "clientGone":
      return {
        level: "info",
        message: `${child} stopped (${how}): the client went away from ${quoted}`,
      };
    case "headRefused":
      return failed(`${child} stopped (${how}): its response head was refused (${quoted})`);
    default:
      return unknownOutcome(outcome);
  }
}

function mebibytes(bytes: number): string {
  const mib = bytes / 2 ** 20;
  return Number.isInteger(mib) ? String(mib) : mib.toFixed(1);
}

function failed(message: string): ExitLine {
  return { level: "error", message };
}

function answered(answer: Answer): string {
  switch (answer.kind) {
    case "status":
      return `answered ${answer.status}`;
    case "aborted":
      return "response aborted";
    case "none":
      return "answered -";
  }
}

/** Compiles only when every kind of outcome has its case above. */
function unknownOutcome(outcome: never): never {
  throw new Error(`Unknown outcome ${JSON.stringify(outcome)}`);
}
