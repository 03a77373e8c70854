// The pool worker's phases without processes: the table of moves, and what the supervisor
// reads off a phase (fresh, old, ready, its deadline, what its exit means).

import assert from "node:assert/strict";
import * as phases from "../../src/pool/phase.ts";
import type { Phase, PhaseName } from "../../src/pool/phase.ts";

const NAMES: PhaseName[] = ["booting", "serving", "outdated", "retiring", "stopping", "killed"];

/** The current reload in these tests. */
const GENERATION = 2;

/** One phase of each name, as the master would build it. */
const SAMPLE: Record<PhaseName, Phase> = {
  booting: { name: "booting", generation: GENERATION, timesOutAt: 1000 },
  serving: { name: "serving", timesOutAt: 1000 },
  outdated: { name: "outdated", timesOutAt: 1000 },
  retiring: { name: "retiring", timesOutAt: 1000 },
  stopping: { name: "stopping", killAt: 2000 },
  killed: { name: "killed", from: "serving" },
};

/** A phase named `to` that may follow `from`: a killed one says what it was killed from. */
function next(from: Phase, to: PhaseName): Phase {
  if (to !== "killed" || from.name === "killed") return SAMPLE[to];
  return { name: "killed", from: from.name };
}

/** The table, written out again: a change to the moves must be made on purpose, twice. */
const EXPECTED_MOVES = parseTable(`
  booting  → booting serving outdated stopping killed
  serving  → serving outdated retiring stopping killed
  outdated → outdated serving retiring stopping killed
  retiring → retiring stopping killed
  stopping → stopping killed
  killed   →
`);

function parseTable(text: string): Record<PhaseName, PhaseName[]> {
  const table: Partial<Record<PhaseName, PhaseName[]>> = {};
  for (const row of text.trim().split("\n")) {
    const [from, to] = row.split("→").map((side) => side.trim());
    table[from as PhaseName] = to === "" ? [] : to.split(/ +/) as PhaseName[];
  }
  return table as Record<PhaseName, PhaseName[]>;
}

/** Every (from, to) pair, and whether it is a move. */
function allPairs(): { from: PhaseName; to: PhaseName; allowed: boolean }[] {
  return NAMES.flatMap((from) =>
    NAMES.map((to) => ({ from, to, allowed: EXPECTED_MOVES[from].includes(to) }))
  );
}

Deno.test("the table of moves is the one written down", () => {
  assert.deepEqual(phases.MOVES, EXPECTED_MOVES);
});

Deno.test("every move in the table is accepted", () => {
  for (const { from, to } of allPairs().filter((pair) => pair.allowed)) {
    const target = next(SAMPLE[from], to);
    assert.equal(phases.transition(SAMPLE[from], target), target, `${from} → ${to}`);
  }
});

Deno.test("every move not in the table is refused", () => {
  for (const { from, to } of allPairs().filter((pair) => !pair.allowed)) {
    assert.throws(
      () => phases.transition(SAMPLE[from], next(SAMPLE[from], to)),
      phases.PhaseError,
      `${from} → ${to}`,
    );
  }
});

Deno.test("the moves that would undo a decision are refused by name", () => {
  const refused: [PhaseName, PhaseName][] = [
    ["stopping", "serving"], // a worker signalled to exit cannot be taken back
    ["killed", "stopping"], // nor one sent SIGKILL
    ["killed", "killed"],
    ["retiring", "serving"], // a spent budget stays spent, even when a reload is given up
    ["serving", "booting"],
    ["booting", "retiring"], // only a ready worker has a budget to spend
  ];
  for (const [from, to] of refused) {
    assert.throws(
      () => phases.transition(SAMPLE[from], next(SAMPLE[from], to)),
      new RegExp(`cannot go from ${from} to ${to}`),
    );
  }
});

Deno.test("a killed phase must name the phase it was killed from", () => {
  const wrong: Phase = { name: "killed", from: "booting" };
  assert.throws(() => phases.transition(SAMPLE.serving, wrong), phases.PhaseError);
  assert.deepEqual(phases.transition(SAMPLE.booting, wrong), wrong);
});

Deno.test("fresh, old and ready, as the supervisor counts them", () => {
  const stale: Phase = { name: "booting", generation: GENERATION - 1, timesOutAt: 1000 };
  const cases: [Phase, { fresh: boolean; old: boolean; ready: boolean; watched: boolean }][] = [
    [SAMPLE.booting, { fresh: true, old: false, ready: false, watched: true }],
    [stale, { fresh: false, old: true, ready: false, watched: true }],
    [SAMPLE.serving, { fresh: true, old: false, ready: true, watched: true }],
    [SAMPLE.outdated, { fresh: false, old: true, ready: true, watched: true }],
    [SAMPLE.retiring, { fresh: false, old: true, ready: true, watched: true }],
    [SAMPLE.stopping, { fresh: false, old: false, ready: false, watched: false }],
    [SAMPLE.killed, { fresh: false, old: false, ready: false, watched: false }],
  ];
  for (const [phase, expected] of cases) {
    const actual = {
      fresh: phases.isFresh(phase, GENERATION),
      old: phases.isOld(phase, GENERATION),
      ready: phases.isReady(phase),
      watched: phases.isWatched(phase),
    };
    assert.deepEqual(actual, expected, JSON.stringify(phase));
  }
});

Deno.test("a phase's deadline: its timeout, its killAt, or none once killed", () => {
  assert.equal(phases.deadlineOf(SAMPLE.booting), 1000);
  assert.equal(phases.deadlineOf(SAMPLE.retiring), 1000);
  assert.equal(phases.deadlineOf(SAMPLE.stopping), 2000);
  assert.equal(phases.deadlineOf(SAMPLE.killed), Infinity);
  assert.equal(phases.deadlineOf({ name: "serving", timesOutAt: Infinity }), Infinity);
});

Deno.test("an exit means what the phase it happened in says", () => {
  assert.equal(phases.exitMeaning(SAMPLE.booting), "failed to boot");
  assert.equal(phases.exitMeaning({ name: "killed", from: "booting" }), "failed to boot");
  for (const name of ["serving", "outdated", "retiring"] as const) {
    assert.equal(phases.exitMeaning(SAMPLE[name]), "died");
    assert.equal(phases.exitMeaning({ name: "killed", from: name }), "died");
  }
  assert.equal(phases.exitMeaning(SAMPLE.stopping), "stopped");
  assert.equal(phases.exitMeaning({ name: "killed", from: "stopping" }), "stopped");
});
