// A per-request child's life as the pool sees it: the states, the only moves between them,
// and the counts the pool's stats and bounds are derived from.

/**
 * starting: spawned, importing the app · idle: ready, waiting for a request (a spare) ·
 * busy: lent to one request · exited: reaped (its slot is free again).
 */
export type ChildState = "starting" | "idle" | "busy" | "exited";

/**
 * The moves a child can make. A child serves one request, so busy never goes back to idle;
 * any child can die, so each live state can end in exited, and nothing leaves exited.
 */
export const TRANSITIONS: { readonly [From in ChildState]: readonly ChildState[] } = {
  starting: ["idle", "exited"],
  idle: ["busy", "exited"],
  busy: ["exited"],
  exited: [],
};

/** A move the table does not allow: a bug in the pool's bookkeeping, never the child's doing. */
export class IllegalTransition extends Error {
  constructor(from: ChildState, to: ChildState) {
    super(`A child cannot go from ${from} to ${to}`);
    this.name = "IllegalTransition";
  }
}

/** A child's state, changed only through moveTo(), which refuses a move the table forbids. */
export class ChildLife {
  #state: ChildState = "starting";

  get state(): ChildState {
    return this.#state;
  }

  /** Moves to `next` and returns the state left. */
  moveTo(next: ChildState): ChildState {
    const was = this.#state;
    if (!TRANSITIONS[was].includes(next)) throw new IllegalTransition(was, next);
    this.#state = next;
    return was;
  }
}

export type StateCounts = { [State in ChildState]: number };

/** How many of `children` are in each state, counted afresh: no counter to fall out of step. */
export function countStates(children: Iterable<{ readonly state: ChildState }>): StateCounts {
  const counts: StateCounts = { starting: 0, idle: 0, busy: 0, exited: 0 };
  for (const child of children) counts[child.state]++;
  return counts;
}
