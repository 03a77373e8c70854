// RateLimitedLog: the first of a run of events is logged at once, the rest summed up in at most
// one line per interval; driven by a fake clock, so nothing here sleeps.

import assert from "node:assert/strict";
import { ErrorLog, type LogClock, RateLimitedLog } from "../../src/server/log.ts";
import { MemorySink } from "../support/server.ts";

/** A clock that moves only when told to, and runs the timers that come due on the way. */
class FakeClock implements LogClock {
  time = 1_000_000;
  #timers = new Map<number, { at: number; fn: () => void }>();
  #nextId = 1;

  now(): number {
    return this.time;
  }
  setTimer(fn: () => void, ms: number): number {
    const id = this.#nextId++;
    this.#timers.set(id, { at: this.time + ms, fn });
    return id;
  }
  clearTimer(id: unknown): void {
    this.#timers.delete(id as number);
  }
  get pendingTimers(): number {
    return this.#timers.size;
  }

  advance(ms: number): void {
    const until = this.time + ms;
    while (true) {
      const due = [...this.#timers].filter(([, t]) =>
        t.at <= until
      ).sort((a, b) => a[1].at - b[1].at)[0];
      if (due === undefined) break;
      this.#timers.delete(due[0]);
      this.time = due[1].at;
      due[1].fn();
    }
    this.time = until;
  }
}

function setup(level: "debug" | "warning" | "error" = "debug") {
  const sink = new MemorySink();
  const clock = new FakeClock();
  const limited = new RateLimitedLog(new ErrorLog(level, sink), "warning", 1000, clock);
  const lines = () =>
    sink.text.split("\n").filter(Boolean).map((l) => l.replace(/^\[.*?\] \[.*?\] /, ""));
  const refuse = () =>
    limited.note(
      "Over capacity: 503",
      (count, seconds) =>
        `Over capacity: 503 sent to ${count} connections in the last ${seconds} s`,
    );
  return { clock, limited, lines, refuse };
}

Deno.test("RateLimitedLog: a burst of 2,000 is the first line and one summary a second later", () => {
  const { clock, lines, refuse } = setup();
  refuse();
  assert.deepEqual(lines(), ["[WARNING] Over capacity: 503"], "the first at once");
  for (let i = 0; i < 1999; i++) {
    refuse();
    clock.advance(0.25);
  }
  assert.equal(lines().length, 1, "the rest counted, not written");
  clock.advance(1000);
  assert.deepEqual(lines(), [
    "[WARNING] Over capacity: 503",
    "[WARNING] Over capacity: 503 sent to 1,999 connections in the last 1.0 s",
  ]);
  clock.advance(10_000);
  assert.equal(lines().length, 2, "nothing more once the burst is over");
});

Deno.test("RateLimitedLog: a steady stream gives one line a second, each with its count", () => {
  const { clock, lines, refuse } = setup();
  // 10 events a second for 5 s: 50 in all, 1 + 9 + 4 × 10.
  for (let i = 0; i < 50; i++) {
    refuse();
    clock.advance(100);
  }
  clock.advance(1000);
  assert.deepEqual(lines(), [
    "[WARNING] Over capacity: 503",
    "[WARNING] Over capacity: 503 sent to 9 connections in the last 1.0 s",
    "[WARNING] Over capacity: 503 sent to 10 connections in the last 1.0 s",
    "[WARNING] Over capacity: 503 sent to 10 connections in the last 1.0 s",
    "[WARNING] Over capacity: 503 sent to 10 connections in the last 1.0 s",
    "[WARNING] Over capacity: 503 sent to 10 connections in the last 1.0 s",
  ]);
});

Deno.test("RateLimitedLog: events an interval apart are each logged as they come", () => {
  const { clock, lines, refuse } = setup();
  refuse();
  clock.advance(1000);
  refuse();
  clock.advance(5000);
  refuse();
  assert.deepEqual(lines(), Array(3).fill("[WARNING] Over capacity: 503"));
});

Deno.test("RateLimitedLog: flush() writes what is counted now and cancels the timer", () => {
  const { clock, limited, lines, refuse } = setup();
  refuse();
  refuse();
  refuse();
  clock.advance(300);
  assert.equal(clock.pendingTimers, 1);
  limited.flush();
  assert.equal(clock.pendingTimers, 0);
  assert.deepEqual(lines(), [
    "[WARNING] Over capacity: 503",
    "[WARNING] Over capacity: 503 sent to 2 connections in the last 0.3 s",
  ]);
  limited.flush();
  assert.equal(lines().length, 2, "nothing counted, nothing written");
});

Deno.test("RateLimitedLog: below the log level it writes nothing and sets no timer", () => {
  const { clock, lines, refuse } = setup("error");
  for (let i = 0; i < 100; i++) refuse();
  clock.advance(5000);
  assert.deepEqual(lines(), []);
  assert.equal(clock.pendingTimers, 0);
});
