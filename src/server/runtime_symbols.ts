// Deno keeps some internals under symbols that only their descriptions name (a connection's
// resource id, a Response's fast-path marks). Every user of those internals finds them the
// same way, here, and falls back to the public API when one is not there.

/** The own symbol of `object` described as `description`; null when it has none. */
export function findSymbol(object: object, description: string): symbol | null {
  return Object.getOwnPropertySymbols(object).find((s) => s.description === description) ?? null;
}
