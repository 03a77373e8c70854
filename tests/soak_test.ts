// A short soak (bench/soak.ts, which `deno task soak` runs for 60 s): mixed load against a real
// `main.ts apps/echo.ts` child, then no descriptor leak and no unbounded RSS growth.

import assert from "node:assert/strict";
import { formatReport, soak } from "../bench/soak.ts";

const SECONDS = Number(Deno.env.get("SOAK_SECONDS") ?? 10);

Deno.test(`server under ${SECONDS} s of mixed load: no error, no descriptor leak, RSS levels off`, async () => {
  const report = await soak({
    seconds: SECONDS,
    // Fewer clients than the task's: this runs beside the rest of the suite.
    clients: { keepAlive: 2, fresh: 2, pipelined: 1, upload: 1, aborted: 2 },
  });
  console.log(formatReport(report));
  assert.equal(report.errors, 0, report.errorSamples.join("\n"));
  assert.ok(report.requests > SECONDS * 100, `only ${report.requests} requests served`);
  assert.ok(report.aborted > 0 && Object.values(report.served).every((n) => n > 0));
  // soak() polls (15 s at most) for the count to come back once every client has closed.
  assert.ok(
    report.fds.end <= report.fds.start,
    `open descriptors: ${report.fds.start} before the load, ${report.fds.end} after`,
  );
  // A fresh V8 heap grows to its working size in the first seconds, then holds: the second
  // half of the run may not add much, and nothing may come near a leak's slope.
  const MB = 2 ** 20;
  assert.ok(
    report.rss.end - report.rss.mid < 64 * MB,
    `RSS grew ${((report.rss.end - report.rss.mid) / MB).toFixed(1)} MB in the second half`,
  );
  assert.ok(
    report.rss.peak - report.rss.start < 256 * MB,
    `RSS peaked ${((report.rss.peak - report.rss.start) / MB).toFixed(1)} MB above its start`,
  );
});
