import assert from "node:assert/strict";
import { parseSizeMiB, parseTimeMs, parseWrkOutput, wrkArgv } from "./wrk.ts";

// Real wrk 4.1.0 output (`wrk -t1 -c10 -d2s --latency`), errors lines added by hand.
const OUTPUT = `Running 2s test @ http://127.0.0.1:40000/
  1 threads and 10 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   150.12us  400.50us  12.73ms   98.10%
    Req/Sec    61.07k     3.21k   66.12k    80.00%
  Latency Distribution
     50%   72.00us
     75%   95.00us
     90%  130.00us
     99%    1.22ms
  121546 requests in 2.00s, 18.78MB read
  Socket errors: connect 0, read 3, write 0, timeout 1
  Non-2xx or 3xx responses: 5
Requests/sec:  60773.00
Transfer/sec:      9.39MB
`;

Deno.test("parseWrkOutput() reads totals, percentiles and errors", () => {
  const result = parseWrkOutput(OUTPUT);
  assert.equal(result.requests, 121546);
  assert.equal(result.seconds, 2);
  assert.equal(result.requestsPerSec, 60773);
  assert.equal(result.readMiBPerSec, 9.39);
  assert.equal(result.p50Ms, 0.072);
  assert.equal(result.p99Ms, 1.22);
  assert.deepEqual(result.socketErrors, { connect: 0, read: 3, write: 0, timeout: 1 });
  assert.equal(result.non2xx, 5);
});

Deno.test("parseWrkOutput() rejects output without totals", () => {
  assert.throws(() => parseWrkOutput("unable to connect to 127.0.0.1:1 Connection refused"));
});

Deno.test("parseTimeMs() converts us, ms, s and m", () => {
  assert.equal(parseTimeMs("812.00us"), 0.812);
  assert.equal(parseTimeMs("3.50ms"), 3.5);
  assert.equal(parseTimeMs("1.20s"), 1200);
  assert.equal(parseTimeMs("1.00m"), 60_000);
});

Deno.test("parseSizeMiB() uses wrk's 1024-based units", () => {
  assert.equal(parseSizeMiB("512.00KB"), 0.5);
  assert.equal(parseSizeMiB("2.00GB"), 2048);
});

Deno.test("wrkArgv() puts taskset in front only when pinning", () => {
  const options = { url: "http://127.0.0.1:1/", connections: 50, durationSec: 5, cpu: null };
  assert.equal(wrkArgv(options)[0], "wrk");
  assert.deepEqual(wrkArgv({ ...options, cpu: 1 }).slice(0, 4), ["taskset", "-c", "1", "wrk"]);
});
