// The parser fuzzer: inputs grown from the corpus by mutation (fast-check drives the choice
// and shrinks what fails), each replayed through the pure parser and through the reference
// decoder (reference.ts). The properties, for every input:
//
// 1. no exception escapes the parser, and it never stops making progress (feed() checks);
// 2. each case finishes in bounded time (a hang or a blow-up shows as a slow case);
// 3. however the bytes are split into reads, the outcome is the same;
// 4. the parser accepts a request exactly when the reference does, and frames it the same:
//    same head, same body, the same bytes consumed — so no request can hide in another's body;
// 5. a refusal carries one of the documented statuses.
//
// Used by tests/fuzz/parser_fuzz_test.ts (a bounded run) and bench/fuzz.ts (`deno task fuzz`).

import fc from "npm:fast-check@3";
import { feed, parseSplit, type Trace } from "../support/feed.ts";
import { type CorpusEntry, latin1, show, toBytes } from "./corpus.ts";
import {
  DEFAULT_REF_LIMITS,
  referenceDecode,
  type RefLimits,
  type RefResult,
} from "./reference.ts";

/** Statuses the parser may refuse with (docs/http.md). */
export const DOCUMENTED_STATUSES = [400, 413, 414, 417, 431, 501, 505];

/** Small limits, so that mutations reach every limit check too. */
export const SMALL_LIMITS: Readonly<RefLimits> = {
  requestLine: 48,
  fields: 5,
  fieldSize: 40,
  head: 512,
  maxBody: 24,
};

/** A case taking longer than this is a hang as far as the fuzzer is concerned. */
const SLOW_CASE_MS = 2000;

/** Checks one input; returns what went wrong, or undefined when every property holds. */
export function checkInput(
  data: Uint8Array,
  limits: RefLimits = DEFAULT_REF_LIMITS,
  splits: readonly number[] = [],
): string | undefined {
  const began = performance.now();
  const opts = {
    limits: {
      requestLine: limits.requestLine,
      fields: limits.fields,
      fieldSize: limits.fieldSize,
      head: limits.head,
    },
    maxBody: limits.maxBody,
  };
  let trace: Trace;
  let whole: string;
  let split: string;
  try {
    trace = feed(data, [], opts);
    whole = JSON.stringify(parseSplit(data, [], opts));
    split = JSON.stringify(parseSplit(data, splits, opts));
  } catch (error) {
    return `parser threw: ${(error as Error)?.stack ?? error}`;
  }
  if (split !== whole) {
    return `outcome depends on the read split [${splits}]:\n  whole ${whole}\n  split ${split}`;
  }
  const text = latin1(data);
  const problem = compare(trace, referenceDecode(text, limits), text);
  if (problem) return problem;
  const elapsed = performance.now() - began;
  if (elapsed > SLOW_CASE_MS) return `case took ${elapsed.toFixed(0)} ms`;
  return undefined;
}

/** Property 4 and 5: the parser's trace against the reference's framing. */
function compare(trace: Trace, ref: RefResult, text: string): string | undefined {
  const parserEnd = trace.error
    ? `error ${trace.error.status} (${trace.error.message})`
    : trace.incomplete
    ? `incomplete ${trace.incomplete}`
    : "ok";
  const refEnd = ref.end.kind === "error"
    ? `error ${ref.end.status} (${ref.end.reason})`
    : ref.end.kind === "incomplete"
    ? `incomplete ${ref.end.where}`
    : "ok";
  const where = `parser: ${trace.requests.length} request(s) then ${parserEnd}; ` +
    `reference: ${ref.requests.length} request(s) then ${refEnd}`;
  if (trace.requests.length !== ref.requests.length) return `request count differs: ${where}`;
  for (let i = 0; i < ref.requests.length; i++) {
    const want = ref.requests[i];
    const { head, body, bodyStart, bodyEnd } = trace.requests[i];
    const got = {
      method: head.method,
      target: head.target,
      minor: head.minor,
      keepAlive: head.keepAlive,
      bodyStart,
    };
    const expected = {
      method: want.method,
      target: want.target,
      minor: want.minor,
      keepAlive: want.keepAlive,
      bodyStart: want.bodyStart,
    };
    if (JSON.stringify(got) !== JSON.stringify(expected)) {
      return `request ${i} head differs: parser ${JSON.stringify(got)}, reference ${
        JSON.stringify(expected)
      }; ${where}`;
    }
    if (!want.complete) continue;
    if (bodyEnd !== want.bodyEnd || latin1(body) !== want.body) {
      return `request ${i} body framed differently: parser [${bodyStart}, ${bodyEnd}) ` +
        `${JSON.stringify(latin1(body))}, reference [${want.bodyStart}, ${want.bodyEnd}) ` +
        `${JSON.stringify(want.body)}; ${where}`;
    }
  }
  switch (ref.end.kind) {
    case "ok":
      if (trace.error || trace.incomplete) {
        return `parser refused what the reference accepts: ${where}`;
      }
      if (trace.consumed !== text.length) {
        return `parser consumed ${trace.consumed} of ${text.length} bytes; ${where}`;
      }
      break;
    case "error":
      if (!trace.error) return `parser accepted what the reference refuses: ${where}`;
      break;
    case "incomplete":
      // The parser may refuse a partial line early (a limit passed, a bad byte seen); it may
      // not claim to be waiting for something else.
      if (!trace.error && trace.incomplete !== ref.end.where) return `end differs: ${where}`;
      break;
  }
  if (trace.error && !DOCUMENTED_STATUSES.includes(trace.error.status)) {
    return `undocumented status ${trace.error.status}; ${where}`;
  }
  return undefined;
}

// --- mutation -----------------------------------------------------------------------------

/** Single bytes every rule of the grammar turns on. */
const INTERESTING = [...'\r\n \t\x00\x0b\x0c\x7f\x80\xff:;,="05fx+-_aH/.*#%?'];

/** Fragments that change framing when dropped anywhere. */
const TOKENS = [
  "\r\n",
  "\r\n\r\n",
  "\n",
  "\r",
  " ",
  "\t",
  "Content-Length: 0\r\n",
  "Content-Length: 5\r\n",
  "Content-Length: 05\r\n",
  "Transfer-Encoding: chunked\r\n",
  "Transfer-Encoding: identity\r\n",
  "transfer-encoding: CHUNKED\r\n",
  "Host: h\r\n",
  "Connection: close\r\n",
  "Connection: keep-alive\r\n",
  "Expect: 100-continue\r\n",
  "Content-Type: a/b\r\n",
  "X-A_B: c\r\n",
  "0\r\n\r\n",
  "5\r\nhello\r\n",
  "5;ext=1\r\nhello\r\n",
  "GET / HTTP/1.1\r\nHost: h\r\n\r\n",
  "POST /s HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc",
  "HTTP/1.0",
  "HTTP/1.1",
  "chunked",
  ", chunked",
  "0x",
  "ffffffffffffff",
  "%00",
  "\xe9",
];

const NUMBERS = [0, 1, 2, 3, 4, 5, 9, 10, 15, 16, 17, 255, 4096, 65536, 2 ** 31, 2 ** 53];

type Edit =
  | { op: "byte"; at: number; byte: number; insert: boolean }
  | { op: "token"; at: number; token: string }
  | { op: "delete"; at: number; length: number }
  | { op: "duplicate"; at: number; length: number }
  | { op: "line"; kind: "swap" | "repeat" | "drop" | "fold"; a: number; b: number }
  | { op: "number"; at: number; value: number; hex: boolean }
  | { op: "case"; at: number }
  | { op: "splice"; at: number; other: number; from: number };

const at = fc.nat({ max: 1 << 20 });

const edit: fc.Arbitrary<Edit> = fc.oneof(
  fc.record({
    op: fc.constant("byte" as const),
    at,
    byte: fc.oneof(
      fc.constantFrom(...INTERESTING).map((c) => c.charCodeAt(0)),
      fc.integer({ min: 0, max: 255 }),
    ),
    insert: fc.boolean(),
  }),
  fc.record({ op: fc.constant("token" as const), at, token: fc.constantFrom(...TOKENS) }),
  fc.record({ op: fc.constant("delete" as const), at, length: fc.integer({ min: 1, max: 16 }) }),
  fc.record({
    op: fc.constant("duplicate" as const),
    at,
    length: fc.integer({ min: 1, max: 32 }),
  }),
  fc.record({
    op: fc.constant("line" as const),
    kind: fc.constantFrom("swap" as const, "repeat" as const, "drop" as const, "fold" as const),
    a: at,
    b: at,
  }),
  fc.record({
    op: fc.constant("number" as const),
    at,
    value: fc.oneof(fc.constantFrom(...NUMBERS), fc.nat({ max: 100 })),
    hex: fc.boolean(),
  }),
  fc.record({ op: fc.constant("case" as const), at }),
  fc.record({ op: fc.constant("splice" as const), at, other: at, from: at }),
);

function applyEdit(s: string, e: Edit, seeds: string[]): string {
  const i = "at" in e ? e.at % (s.length + 1) : 0;
  switch (e.op) {
    case "byte":
      return s.slice(0, i) + String.fromCharCode(e.byte) + s.slice(e.insert ? i : i + 1);
    case "token":
      return s.slice(0, i) + e.token + s.slice(i);
    case "delete":
      return s.slice(0, i) + s.slice(i + e.length);
    case "duplicate":
      return s.slice(0, i + e.length) + s.slice(i, i + e.length) + s.slice(i + e.length);
    case "line": {
      const lines = s.split("\r\n");
      const a = e.a % lines.length;
      const b = e.b % lines.length;
      if (e.kind === "swap") [lines[a], lines[b]] = [lines[b], lines[a]];
      else if (e.kind === "repeat") lines.splice(b, 0, lines[a]);
      else if (e.kind === "drop") lines.splice(a, 1);
      else lines[a] = " " + lines[a];
      return lines.join("\r\n");
    }
    case "number": {
      // Rewrite the next run of (hex) digits: a Content-Length, a chunk size, a version.
      const match = /[0-9A-Fa-f]+/.exec(s.slice(i));
      if (!match) return s;
      const start = i + match.index;
      const digits = e.hex ? e.value.toString(16) : String(e.value);
      return s.slice(0, start) + digits + s.slice(start + match[0].length);
    }
    case "case": {
      const c = s[i] ?? "";
      const flipped = c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase();
      return s.slice(0, i) + flipped + s.slice(i + 1);
    }
    case "splice": {
      const other = seeds[e.other % seeds.length];
      return s.slice(0, i) + other.slice(e.from % (other.length + 1));
    }
  }
}

/** What one fuzz case is made of; fast-check shrinks this, not the bytes. */
export interface Recipe {
  /** Corpus entries (indices) joined back to back, as a pipeline. */
  seeds: number[];
  edits: Edit[];
  small: boolean;
  splits: number[];
  /** Random bytes instead of a corpus entry, now and then. */
  random: Uint8Array | null;
}

export function recipeArbitrary(): fc.Arbitrary<Recipe> {
  return fc.record({
    seeds: fc.array(fc.nat({ max: 1 << 16 }), { minLength: 1, maxLength: 3 }),
    edits: fc.array(edit, { maxLength: 6 }),
    small: fc.boolean(),
    splits: fc.array(fc.nat({ max: 1 << 16 }), { maxLength: 6 }),
    random: fc.oneof(
      { weight: 11, arbitrary: fc.constant(null) },
      { weight: 1, arbitrary: fc.uint8Array({ maxLength: 120 }) },
    ),
  });
}

/**
 * The strings mutations start from: valid entries three times over, since edits to a request
 * that parses reach deeper rules (framing, bodies, pipelining) than edits to a refused one.
 */
export function seedPool(corpus: CorpusEntry[]): string[] {
  return corpus.flatMap((e) => {
    const s = latin1(e.data);
    return e.kind === "valid" ? [s, s, s] : [s];
  });
}

/** The bytes, limits and read splits a recipe stands for. */
export function build(
  recipe: Recipe,
  seeds: string[],
): { data: Uint8Array; limits: RefLimits; splits: number[] } {
  let s = recipe.random
    ? latin1(recipe.random)
    : recipe.seeds.map((n) => seeds[n % seeds.length]).join("");
  for (const e of recipe.edits) s = applyEdit(s, e, seeds);
  const data = toBytes(s);
  const splits = data.length < 2
    ? []
    : [...new Set(recipe.splits.map((n) => 1 + (n % (data.length - 1))))].sort((a, b) => a - b);
  return { data, limits: recipe.small ? SMALL_LIMITS : DEFAULT_REF_LIMITS, splits };
}

export interface Failure {
  data: Uint8Array;
  limits: RefLimits;
  splits: number[];
  message: string;
  seed: number;
}

export interface FuzzStats {
  cases: number;
  failures: Failure[];
  /** Distinct outcomes seen (a rough coverage figure). */
  outcomes: number;
}

/**
 * Runs `runs` cases in batches; a failing case is shrunk by fast-check, reported through
 * `onFailure` and the run goes on with a fresh seed (until `maxFailures`).
 */
export function runFuzz(options: {
  corpus: CorpusEntry[];
  runs: number;
  seed?: number;
  batch?: number;
  maxFailures?: number;
  onFailure?: (failure: Failure) => void;
  onProgress?: (cases: number) => void;
}): FuzzStats {
  const seeds = seedPool(options.corpus);
  const batch = options.batch ?? 5000;
  const maxFailures = options.maxFailures ?? 10;
  const stats: FuzzStats = { cases: 0, failures: [], outcomes: 0 };
  const outcomes = new Set<string>();
  let seed = options.seed ?? Date.now() % 2 ** 31;
  while (stats.cases < options.runs && stats.failures.length < maxFailures) {
    const numRuns = Math.min(batch, options.runs - stats.cases);
    const property = fc.property(recipeArbitrary(), (recipe) => {
      const { data, limits, splits } = build(recipe, seeds);
      const ref = referenceDecode(latin1(data), limits);
      outcomes.add(
        `${ref.requests.length}:${ref.end.kind}:${"status" in ref.end ? ref.end.status : ""}`,
      );
      const problem = checkInput(data, limits, splits);
      if (problem) throw new Error(problem);
    });
    const details = fc.check(property, { numRuns, seed });
    // Shrinking reruns the property; count the cases run, not the runs asked for.
    stats.cases += details.failed ? details.numRuns : numRuns;
    if (details.failed && details.counterexample) {
      const [recipe] = details.counterexample;
      const { data, limits, splits } = build(recipe, seeds);
      const failure: Failure = {
        data,
        limits,
        splits,
        message: checkInput(data, limits, splits) ?? String(details.error),
        seed,
      };
      stats.failures.push(failure);
      options.onFailure?.(failure);
    }
    options.onProgress?.(stats.cases);
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
  }
  stats.outcomes = outcomes.size;
  return stats;
}

/** One line per failure, for assertion messages and the CLI. */
export function describeFailure(failure: Failure): string {
  return `${failure.message}\n  input ${show(failure.data)}\n  limits ${
    JSON.stringify(failure.limits)
  } splits [${failure.splits}] seed ${failure.seed}`;
}
