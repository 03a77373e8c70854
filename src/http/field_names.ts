// Maps a header name as sent to its environ key ("User-Agent" -> "HTTP_USER_AGENT") once per
// distinct spelling, so the hot path does a map look-up instead of building strings.

const MAX_CACHED_NAMES = 4096;
const cache = new Map<string, string>();

/** The key under which a header goes into environ, or "" when it must be dropped. */
export function environKey(name: string): string {
  let key = cache.get(name);
  if (key === undefined) {
    key = computeEnvironKey(name);
    // Header names are chosen by clients: bound the cache so they cannot grow it forever.
    if (cache.size < MAX_CACHED_NAMES) cache.set(name, key);
  }
  return key;
}

function computeEnvironKey(name: string): string {
  // An underscore would let "X-A_B" pose as "X-A-B" once dashes become underscores.
  if (name.includes("_")) return "";
  const upper = name.toUpperCase().replaceAll("-", "_");
  if (upper === "CONTENT_TYPE" || upper === "CONTENT_LENGTH") return upper;
  return "HTTP_" + upper;
}

const names = new Map<string, string>();

/** The header name a key stands for, lower-case ("HTTP_USER_AGENT" -> "user-agent"). */
export function headerNameOf(key: string): string {
  let name = names.get(key);
  if (name === undefined) {
    const bare = key.startsWith("HTTP_") ? key.slice(5) : key;
    name = bare.toLowerCase().replaceAll("_", "-");
    if (names.size < MAX_CACHED_NAMES) names.set(key, name);
  }
  return name;
}
