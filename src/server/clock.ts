// Time as the hot path needs it: a millisecond clock and the Date header (RFC 9110 §6.6.1),
// both refreshed by one timer rather than read per request, since reading the clock and
// formatting a date cost more than the rest of a small response head.

const TICK_MS = 100;

let now = Date.now();
let dateValue = new Date(now).toUTCString();
let dateLine = encodeDateLine(dateValue);
let ticking = false;

function tick(): void {
  now = Date.now();
  const value = new Date(now).toUTCString();
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

/** Milliseconds since the epoch, at most TICK_MS old: for deadlines, not for measuring. */
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
