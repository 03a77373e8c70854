// A per-request child's states without processes: the moves the table allows and refuses,
// and the counts the pool derives from its children.

import assert from "node:assert/strict";
import {
  ChildLife,
  type ChildState,
  countStates,
  IllegalTransition,
  TRANSITIONS,
} from "../../src/isolate/child_state.ts";

const STATES: ChildState[] = ["starting", "idle", "busy", "exited"];

/** A child brought to `state` along allowed moves. */
function childIn(state: ChildState): ChildLife {
  const path: Record<ChildState, ChildState[]> = {
    starting: [],
    idle: ["idle"],
    busy: ["idle", "busy"],
    exited: ["exited"],
  };
  const child = new ChildLife();
  for (const next of path[state]) child.moveTo(next);
  assert.equal(child.state, state);
  return child;
}

Deno.test("allowed: starting → idle → busy → exited, and any live state → exited", () => {
  const allowed = STATES.flatMap((from) => TRANSITIONS[from].map((to) => `${from} → ${to}`));
  assert.deepEqual(allowed, [
    "starting → idle",
    "starting → exited",
    "idle → busy",
    "idle → exited",
    "busy → exited",
  ]);
});

Deno.test("a child starts as starting and serves one request in its life", () => {
  const child = new ChildLife();
  assert.equal(child.state, "starting");
  assert.equal(child.moveTo("idle"), "starting");
  assert.equal(child.moveTo("busy"), "idle");
  assert.equal(child.moveTo("exited"), "busy");
  assert.equal(child.state, "exited");
});

Deno.test("every move the table does not list is refused and leaves the state as it was", () => {
  for (const from of STATES) {
    for (const to of STATES) {
      const child = childIn(from);
      if (TRANSITIONS[from].includes(to)) {
        assert.equal(child.moveTo(to), from);
        assert.equal(child.state, to);
        continue;
      }
      assert.throws(() => child.moveTo(to), (error: Error) => {
        assert.ok(error instanceof IllegalTransition, `${from} → ${to}`);
        assert.equal(error.message, `A child cannot go from ${from} to ${to}`);
        return true;
      });
      assert.equal(child.state, from);
    }
  }
});

Deno.test("a busy child never goes back to idle, and a reaped one never comes back", () => {
  assert.throws(() => childIn("busy").moveTo("idle"), IllegalTransition);
  assert.throws(() => childIn("starting").moveTo("busy"), IllegalTransition);
  for (const to of STATES) assert.throws(() => childIn("exited").moveTo(to), IllegalTransition);
});

Deno.test("countStates counts each state afresh, following the children's moves", () => {
  assert.deepEqual(countStates([]), { starting: 0, idle: 0, busy: 0, exited: 0 });
  const children = [childIn("starting"), childIn("starting"), childIn("idle"), childIn("busy")];
  assert.deepEqual(countStates(children), { starting: 2, idle: 1, busy: 1, exited: 0 });
  children[0].moveTo("idle");
  children[2].moveTo("busy");
  children[3].moveTo("exited");
  assert.deepEqual(countStates(children), { starting: 1, idle: 1, busy: 1, exited: 1 });
});
