// Time as the hot path needs it: a millisecond clock for deadlines and the Date header
// (RFC 9110 §6.6.1), both refreshed by one timer rather than read per request, since reading
// the clock and formatting a date cost more than the rest of a small response head.

const TICK_MS = 100;
/**
 * The most one tick moves the deadline clock. A longer gap between ticks is time the process
 * did not run (its event loop held, or the machine gave its CPU away), and a client is not to
 * blame for that: its bytes may have waited in the socket the whole time.
 */
const MAX_STEP_MS = 250;

let wall = Date.now();
let now = wall;
let dateValue = new Date(wall).toUTCString();
let dateLine = encodeDateLine(dateValue);
let ticking = false;

function tick(): void {
  const time = Date.now();
  now += Math.min(Math.max(time - wall, 0), MAX_STEP_MS);
  wall = time;
  const value = new Date(time).toUTCString();
  if (value !== dateValue) {
    dateValue = value;
    dateLine = encodeDateLine(value);
  }
}

function encodeDateLine(value: string): Uint8Array {
  return new TextEncoder().encode(`Date: ${value}\r\n`);
}

/** Starts the timer on first use; it never keeps the process alive by itself. */
function ensureTicking(): void {
  if (ticking) return;
  ticking = true;
  tick();
  const timer = setInterval(tick, TICK_MS);
  Deno.unrefTimer(timer);
}

/**
 * The deadline clock, in milliseconds: it runs with the wall clock, at most TICK_MS behind,
 * while the event loop turns, and stands nearly still while the process does not run. Only
 * for deadlines and waits compared with each other; not a date, not for measuring.
 */
export function coarseNow(): number {
  if (!ticking) ensureTicking();
  return now;
}

/** The current time as an IMF-fixdate, e.g. "Sun, 22 Nov 2026 03:43:05 GMT". */
export function httpDate(): string {
  if (!ticking) ensureTicking();
  return dateValue;
}

/** The whole "Date: …\r\n" header line as bytes, made once per second. */
export function httpDateLine(): Uint8Array {
  if (!ticking) ensureTicking();
  return dateLine;
}
