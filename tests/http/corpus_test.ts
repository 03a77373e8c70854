// Each valid corpus request (tests/corpus/valid/NAME.http) against its expected parse written
// beside it (NAME.json), as gunicorn's tests/requests/valid pairs do: the corpus tests elsewhere
// only check that a request is accepted, these check what it was parsed to.

import assert from "node:assert/strict";
import { assertEverySplit, type Outcome, type ParsedRequest } from "../support/feed.ts";

const VALID_DIR = new URL("../corpus/valid/", import.meta.url);

/** The file names in the valid corpus ending in `ext`, without it, sorted. */
function namesWith(ext: string): string[] {
  return [...Deno.readDirSync(VALID_DIR)]
    .filter((e) => e.isFile && e.name.endsWith(ext))
    .map((e) => e.name.slice(0, -ext.length))
    .sort();
}

const REQUIRED_KEYS = ["body", "fields", "keepAlive", "method", "minor", "target"];

/**
 * Checks one expected request is shaped as `parseSplit()` reports one, so a typo in a
 * hand-edited file fails here by name rather than as a puzzling difference.
 */
function checkShape(name: string, index: number, request: Record<string, unknown>): void {
  const where = `${name}.json, request ${index}`;
  const keys = Object.keys(request).filter((k) => k !== "expectContinue").sort();
  assert.deepEqual(keys, REQUIRED_KEYS, `${where}: keys`);
  // parseSplit() sets it only when true, so false would never match.
  if ("expectContinue" in request) assert.equal(request.expectContinue, true, where);
  const fields = request.fields as unknown[];
  assert.ok(Array.isArray(fields) && fields.length % 2 === 0, `${where}: fields not pairs`);
}

/** NAME.json as an outcome; a missing file is a failure, not a skip. */
function readExpected(name: string): Outcome {
  let text: string;
  try {
    text = Deno.readTextFileSync(new URL(`${name}.json`, VALID_DIR));
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
    throw new Error(
      `tests/corpus/valid/${name}.json is missing: a valid corpus entry comes with its ` +
        "expected parse (method, target, minor, fields, body, keepAlive of each request)",
    );
  }
  const expected = JSON.parse(text);
  assert.ok(Array.isArray(expected) && expected.length > 0, `${name}.json: a list of requests`);
  expected.forEach((request, i) => checkShape(name, i, request));
  return expected as ParsedRequest[];
}

Deno.test("every valid corpus entry has its expected parse, and every expectation its entry", () => {
  const requests = namesWith(".http");
  const expectations = namesWith(".json");
  assert.ok(requests.length > 0, "no valid corpus entries found");
  assert.deepEqual(
    requests.filter((n) => !expectations.includes(n)),
    [],
    ".http files without a .json",
  );
  assert.deepEqual(
    expectations.filter((n) => !requests.includes(n)),
    [],
    ".json files without a .http",
  );
});

for (const name of namesWith(".http")) {
  Deno.test(`corpus valid/${name}.http parses to its .json, however split`, () => {
    const raw = Deno.readFileSync(new URL(`${name}.http`, VALID_DIR));
    // Unsplit, at every byte boundary, and in runs of 1, 2, 3 and 7 bytes: the files are
    // small, so every cut is cheap.
    assertEverySplit(raw, readExpected(name));
  });
}
