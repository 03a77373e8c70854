// The parser against the corpus (tests/corpus/) and against mutations of it: a bounded run of
// the fuzzer in fuzz.ts. `deno task fuzz` (bench/fuzz.ts) runs the same properties longer.

import assert from "node:assert/strict";
import { everySplit, parseSplit } from "../support/feed.ts";
import { type CorpusEntry, latin1, loadCorpus, show } from "./corpus.ts";
import { checkInput, describeFailure, runFuzz } from "./fuzz.ts";
import { referenceDecode } from "./reference.ts";

/** Cases per `deno task test` run; FUZZ_RUNS and FUZZ_SEED override (a failure names its seed). */
const RUNS = Number(Deno.env.get("FUZZ_RUNS") ?? 20_000);
const SEED = Number(Deno.env.get("FUZZ_SEED") ?? 20_260_701);

const corpus = loadCorpus();
const of = (kind: CorpusEntry["kind"]) => corpus.filter((e) => e.kind === kind);

/** Every split for a short entry; for a long one, one byte at a time and a few cuts. */
function* splitsOf(data: Uint8Array): Generator<number[]> {
  if (data.length <= 400) return yield* everySplit(data);
  yield [];
  yield Array.from({ length: data.length - 1 }, (_, i) => i + 1);
  for (const step of [2, 7, 1000]) {
    yield Array.from({ length: Math.ceil(data.length / step) - 1 }, (_, i) => (i + 1) * step);
  }
}

Deno.test("corpus holds 30+ entries, valid and invalid, every invalid one named by its status", () => {
  assert.ok(of("valid").length >= 15, `valid entries: ${of("valid").length}`);
  assert.ok(of("invalid").length >= 30, `invalid entries: ${of("invalid").length}`);
  for (const entry of of("invalid")) {
    assert.ok([400, 413, 414, 417, 431, 501, 505].includes(entry.status!), entry.name);
  }
});

Deno.test("parseSplit() accepts every valid corpus entry to its last byte, as the reference does", () => {
  for (const entry of of("valid")) {
    const ref = referenceDecode(latin1(entry.data), entry.limits);
    assert.equal(ref.end.kind, "ok", `reference refuses valid/${entry.name}`);
    const whole = parseSplit(entry.data, []);
    assert.ok(whole.length > 0, entry.name);
    for (const outcome of whole) {
      assert.ok("method" in outcome, `valid/${entry.name}: ${JSON.stringify(outcome)}`);
    }
    for (const splits of splitsOf(entry.data)) {
      const problem = checkInput(entry.data, entry.limits, splits);
      assert.equal(problem, undefined, `valid/${entry.name}: ${problem}`);
    }
  }
});

Deno.test("parseSplit() refuses every invalid corpus entry with the status in its name, however split", () => {
  for (const entry of of("invalid")) {
    const ref = referenceDecode(latin1(entry.data), entry.limits);
    assert.notEqual(ref.end.kind, "ok", `the reference accepts invalid/${entry.name}`);
    const want = JSON.stringify(parseSplit(entry.data, []));
    assert.deepEqual(
      JSON.parse(want).at(-1),
      { error: entry.status },
      `invalid/${entry.name}: ${want}`,
    );
    for (const splits of splitsOf(entry.data)) {
      const got = JSON.stringify(parseSplit(entry.data, splits));
      assert.equal(got, want, `invalid/${entry.name} split at [${splits}]`);
    }
    const problem = checkInput(entry.data, entry.limits);
    assert.equal(problem, undefined, `invalid/${entry.name}: ${problem}`);
  }
});

Deno.test("parser holds every fuzz property on the inputs the fuzzer once failed on (corpus/found)", () => {
  for (const entry of of("found")) {
    const problem = checkInput(entry.data, entry.limits);
    assert.equal(problem, undefined, `found/${entry.name} ${show(entry.data)}: ${problem}`);
  }
});

Deno.test(`parser holds every fuzz property on ${RUNS} mutations of the corpus`, () => {
  const stats = runFuzz({ corpus, runs: RUNS, seed: SEED, maxFailures: 3 });
  assert.deepEqual(
    stats.failures.map(describeFailure),
    [],
    `fuzz failures (rerun with FUZZ_SEED=${SEED}; keep them with deno task fuzz)`,
  );
  assert.equal(stats.cases, RUNS);
  // A fuzzer stuck on one outcome tests little: the mutations must reach many rules.
  assert.ok(stats.outcomes >= 25, `distinct outcomes: ${stats.outcomes}`);
});
