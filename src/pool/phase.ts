// A pool worker's life as one value (in the manner of Go's ConnState): the phase it is in,
// carrying only what that phase needs, and the table of moves the master may make.

/** Where a worker is in its life, as its master sees it. */
export type Phase =
  /** Started, loading the app. `generation`: the reload it was started for; a later reload
   * makes it stale. `error`: why it could not boot, in its own words, if it said so. */
  | {
    readonly name: "booting";
    readonly generation: number;
    readonly timesOutAt: number;
    readonly error?: string;
  }
  /** Ready, serving the app the pool wants now. */
  | { readonly name: "serving"; readonly timesOutAt: number }
  /** Ready, but a reload has come since: it goes once a fresh worker is ready. */
  | { readonly name: "outdated"; readonly timesOutAt: number }
  /** Ready, its request budget spent: it goes once a fresh worker is ready. */
  | { readonly name: "retiring"; readonly timesOutAt: number }
  /** Signalled to exit (TERM or QUIT); gets SIGKILL at `killAt` if it has not. */
  | { readonly name: "stopping"; readonly killAt: number }
  /** Sent SIGKILL `from` a phase: timed out, or past its `killAt`. Only its exit is left. */
  | { readonly name: "killed"; readonly from: Exclude<PhaseName, "killed"> };

export type PhaseName = Phase["name"];

/** The phases in which a worker must keep talking: silence until `timesOutAt` kills it. */
export type WatchedPhase = Extract<Phase, { timesOutAt: number }>;

/**
 * Every move the master may make. A phase may move to itself to update what it carries (a
 * heartbeat pushes `timesOutAt` back, QUIT brings `killAt` forward). Its exit ends a worker
 * in any phase; that is not a move but its removal.
 */
export const MOVES: Readonly<Record<PhaseName, readonly PhaseName[]>> = {
  // ready; ready after a reload began; trimmed (TTOU), stale, or the pool stops; timed out
  booting: ["booting", "serving", "outdated", "stopping", "killed"],
  // reload; budget spent; replaced, trimmed or the pool stops; timed out
  serving: ["serving", "outdated", "retiring", "stopping", "killed"],
  // the reload is given up (fresh workers cannot boot); then as serving
  outdated: ["outdated", "serving", "retiring", "stopping", "killed"],
  retiring: ["retiring", "stopping", "killed"],
  // past killAt
  stopping: ["stopping", "killed"],
  killed: [],
};

/** A move that is not in the table: a bug in the master, not something a worker can cause. */
export class PhaseError extends Error {
  override name = "PhaseError";
}

/**
 * `to`, when the table allows the move from `from`; throws a PhaseError otherwise. Throwing
 * rather than ignoring: every caller checks the phase first, so a refused move means the
 * master's picture of its workers is wrong, and going on would signal or count the wrong ones.
 */
export function transition(from: Phase, to: Phase): Phase {
  if (!MOVES[from.name].includes(to.name)) {
    throw new PhaseError(`a worker cannot go from ${from.name} to ${to.name}`);
  }
  if (to.name === "killed" && to.from !== from.name) {
    throw new PhaseError(`a worker killed while ${from.name} cannot say it was ${to.from}`);
  }
  return to;
}

/** Not told to go: it counts in the pool, and --timeout watches it. */
export function isWatched(phase: Phase): phase is WatchedPhase {
  return "timesOutAt" in phase;
}

/** Has loaded the app and listens (as far as the master knows). */
export function isReady(phase: Phase): boolean {
  return phase.name === "serving" || phase.name === "outdated" || phase.name === "retiring";
}

/** Loads or serves the app of reload `generation`: counts toward the number wanted. */
export function isFresh(phase: Phase, generation: number): boolean {
  return phase.name === "serving" || (phase.name === "booting" && phase.generation === generation);
}

/** In the pool but to be replaced: outdated, retiring, or booting for an earlier reload. */
export function isOld(phase: Phase, generation: number): boolean {
  return isWatched(phase) && !isFresh(phase, generation);
}

/** When the loop must act on this worker unless it speaks or exits first. */
export function deadlineOf(phase: Phase): number {
  if (isWatched(phase)) return phase.timesOutAt;
  return phase.name === "stopping" ? phase.killAt : Infinity;
}

/**
 * What a worker's exit in `phase` means: "stopped" as it was asked to, "died" while serving,
 * or "failed to boot" (its app never became ready).
 */
export function exitMeaning(phase: Phase): "stopped" | "died" | "failed to boot" {
  const name = phase.name === "killed" ? phase.from : phase.name;
  if (name === "stopping") return "stopped";
  return name === "booting" ? "failed to boot" : "died";
}
