// The Date header's value (RFC 9110 §6.6.1), formatted once per second rather than per
// response, since formatting a date costs more than the rest of a small response head.

let cachedSecond = -1;
let cachedDate = "";

/** The current time as an IMF-fixdate, e.g. "Sun, 22 Nov 2026 03:43:05 GMT". */
export function httpDate(): string {
  const now = Date.now();
  const second = Math.floor(now / 1000);
  if (second !== cachedSecond) {
    cachedSecond = second;
    cachedDate = new Date(now).toUTCString();
  }
  return cachedDate;
}
