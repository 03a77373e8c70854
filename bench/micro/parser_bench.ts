// Requests parsed per second: `deno bench -A bench/micro/` (or `deno task bench:micro`).
import { HeadScanner, parseRequestHead } from "../../src/http/parser.ts";
import { HEAVY_REQUEST, SMALL_REQUEST } from "./fixtures.ts";

const limits = { requestLine: 8190, fields: 100, fieldSize: 8190, head: 65536 };
const scanner = new HeadScanner();

function scanAndParse(request: Uint8Array) {
  scanner.reset();
  const length = scanner.scan(request, 0, request.length, limits) as number;
  return parseRequestHead(request, scanner.leading, length);
}

Deno.bench("parse a small request head", { group: "parser", baseline: true }, () => {
  scanAndParse(SMALL_REQUEST);
});

Deno.bench("parse a header-heavy request head (17 fields)", { group: "parser" }, () => {
  scanAndParse(HEAVY_REQUEST);
});
