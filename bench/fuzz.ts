// `deno task fuzz`: the parser fuzzer of tests/fuzz/ run long. Prints the cases run and the
// corpus size; every failing input (shrunk by fast-check) is written to tests/corpus/found/
// with a sidecar saying what failed, and becomes a regression case of `deno task test`.
//
//   deno run -A bench/fuzz.ts [--runs N] [--seed S]     (default 100000 runs, a fresh seed)
//
// Exit status: 0 when every case held, 1 when something was found, 2 on a bad flag.

import { loadCorpus, saveFound } from "../tests/fuzz/corpus.ts";
import { describeFailure, runFuzz } from "../tests/fuzz/fuzz.ts";

function flag(name: string, fallback: number): number {
  const i = Deno.args.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const raw = Deno.args[i + 1] ?? "";
  const n = /^\d+$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(n)) {
    console.error(`--${name}: expected a whole number, got ${JSON.stringify(raw)}`);
    Deno.exit(2);
  }
  return n;
}

if (import.meta.main) {
  const runs = flag("runs", 100_000);
  const seed = flag("seed", Date.now() % 2 ** 31);
  const corpus = loadCorpus();
  const count = (kind: string) => corpus.filter((e) => e.kind === kind).length;
  console.log(
    `Corpus: ${corpus.length} entries (${count("valid")} valid, ${count("invalid")} invalid, ` +
      `${count("found")} found); ${runs} runs from seed ${seed}`,
  );
  const began = performance.now();
  let reported = 0;
  const stats = runFuzz({
    corpus,
    runs,
    seed,
    onProgress: (cases) => {
      if (cases - reported >= 20_000 || cases === runs) {
        reported = cases;
        console.log(`  ${cases} cases, ${((performance.now() - began) / 1000).toFixed(1)} s`);
      }
    },
    onFailure: (failure) => {
      const path = saveFound(failure.data, {
        limits: failure.limits,
        message: failure.message,
        seed: failure.seed,
      });
      console.log(`FAILED: ${describeFailure(failure)}\n  saved as ${path}`);
    },
  });
  const seconds = (performance.now() - began) / 1000;
  console.log(
    `Fuzz: ${stats.cases} cases in ${seconds.toFixed(1)} s, ${stats.outcomes} distinct outcomes, ` +
      `corpus ${corpus.length} entries, ${stats.failures.length} failure(s)`,
  );
  Deno.exit(stats.failures.length > 0 ? 1 : 0);
}
