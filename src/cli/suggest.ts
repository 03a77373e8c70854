// "Did you mean": the closest known name to one that is not, for flags and config keys.

/** Names people reach for that tsgi spells otherwise. */
const ALIASES: Record<string, string> = {
  port: "bind",
  host: "bind",
  address: "bind",
  listen: "bind",
  "num-workers": "workers",
  threads: "workers",
  "worker-connections": "max-connections",
};

/** The known name closest to `name` (case and dashes aside), or undefined if none is close. */
export function closest(name: string, known: readonly string[]): string | undefined {
  const plain = name.replace(/^-+/, "");
  const alias = ALIASES[plain.toLowerCase()];
  if (alias !== undefined) {
    const match = known.find((k) => normalise(k) === normalise(alias));
    if (match !== undefined) return match;
  }
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of known) {
    const d = distance(normalise(plain), normalise(candidate));
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  // Close means a typo or two, and never most of the word.
  const allowed = Math.min(2, Math.floor(plain.length / 3));
  return bestDistance <= allowed ? best : undefined;
}

function normalise(name: string): string {
  return name.toLowerCase().replaceAll("-", "").replaceAll("_", "");
}

/** Levenshtein distance. */
function distance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      current[j] = Math.min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost);
    }
    previous = current;
  }
  return previous[b.length];
}
