// The parent-death signal's set-up: util-linux's setpriv found and checked, or its absence
// told in one line while children are still started (directly) and serve.

import assert from "node:assert/strict";
import { deathSignalPrefix } from "../../src/process/death_signal.ts";
import { isolatedApp } from "../../src/isolate/executor.ts";
import { ErrorLog } from "../../src/server/log.ts";
import { MemorySink, withServer } from "../support/server.ts";

Deno.test("deathSignalPrefix finds setpriv where it is, and says why not where it is not", () => {
  const found = deathSignalPrefix("SIGKILL");
  if ("prefix" in found) {
    assert.match(found.prefix[0], /\/setpriv$/);
    assert.deepEqual(found.prefix.slice(1), ["--pdeathsig", "SIGKILL", "--"]);
  }
  assert.deepEqual(deathSignalPrefix("SIGKILL", ["/nonexistent"]), {
    missing: "util-linux's setpriv was not found",
  });
  // A program that runs but is no util-linux program is not taken for one.
  const fake = Deno.makeTempDirSync();
  try {
    Deno.symlinkSync(Deno.execPath(), `${fake}/setpriv`);
    assert.deepEqual(deathSignalPrefix("SIGKILL", [fake]), {
      missing: "util-linux's setpriv was not found",
    });
  } finally {
    Deno.removeSync(fake, { recursive: true });
  }
});

Deno.test("without setpriv (nor setsid), the pool says so in one warning line and its children still serve", async () => {
  const sink = new MemorySink();
  const errorLog = new ErrorLog("debug", sink);
  const app = isolatedApp("apps/hello.ts", {
    errorLog,
    spares: 1,
    maxChildren: 2,
    maxQueue: 4,
    timeout: 10,
    isolateMemory: 0,
    utilLinuxDirs: ["/nonexistent"],
  });
  try {
    await withServer(app, async (server) => {
      const response = await fetch(server.url);
      assert.equal(response.status, 200);
      assert.equal(await response.text(), "Hello, World!\n");
    }, { errorLog, validate: false });
  } finally {
    await app.close();
  }
  const warnings = sink.text.split("\n").filter((l) => l.includes("[WARNING]"));
  assert.deepEqual(warnings.map((l) => l.replace(/^.*\[WARNING\] /, "")), [
    "Children are started directly: util-linux's setpriv was not found; a busy child " +
    "outlives a master killed with SIGKILL",
  ]);
});
