// Responses buffered behind an async app that has not answered: they start on their way at the
// next turn of the event loop. An app that waits on nothing settles within microtasks and its
// answer leaves with the others in one write; one that waits on I/O does not hold them back.

/** What can start writing what it has buffered (an OutputBuffer). */
export interface Flushable {
  flushBehind(): unknown;
}

let waiting: Flushable[] = [];
let scheduled = false;

function flushWaiting(): void {
  const due = waiting;
  waiting = [];
  scheduled = false;
  // A connection that moved on meanwhile only writes a little sooner than it would have.
  for (const out of due) out.flushBehind();
}

/** Flushes `out` at the next turn of the event loop, unless it has nothing buffered then. */
export function flushLater(out: Flushable): void {
  waiting.push(out);
  if (scheduled) return;
  scheduled = true;
  setTimeout(flushWaiting, 0);
}
