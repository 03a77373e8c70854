// Reading `deno run`'s own flags from a command line (src/process/runtime_flags.ts).

import assert from "node:assert/strict";
import { ownRunFlags, runFlagsOf } from "../../src/process/runtime_flags.ts";

const deno = "/usr/bin/deno";

Deno.test("the flags before the module are the runtime's; after it, the program's", () => {
  assert.deepEqual(
    runFlagsOf([deno, "run", "-A", "--config", "x/deno.json", "main.ts", "app.ts", "-w", "2"]),
    ["-A", "--config", "x/deno.json"],
  );
  assert.deepEqual(
    runFlagsOf([deno, "run", "-c", "d.json", "--env-file=.env", "--lock=l.json", "m.ts"]),
    ["-c", "d.json", "--env-file=.env", "--lock=l.json"],
  );
  assert.deepEqual(runFlagsOf([deno, "run", "--v8-flags=--max-old-space-size=64", "m.ts"]), [
    "--v8-flags=--max-old-space-size=64",
  ]);
  assert.deepEqual(runFlagsOf([deno, "run", "-L", "debug", "--allow-net=a.com", "m.ts"]), [
    "-L",
    "debug",
    "--allow-net=a.com",
  ]);
});

Deno.test("a debugger or watcher belongs to the first process only", () => {
  assert.deepEqual(runFlagsOf([deno, "run", "--inspect=0.0.0.0:9229", "--watch", "-A", "m.ts"]), [
    "-A",
  ]);
});

Deno.test("what is not `deno run MODULE` has no run flags", () => {
  assert.equal(runFlagsOf([deno, "serve", "-A", "m.ts"]), null);
  assert.equal(runFlagsOf([deno, "run", "-A"]), null);
});

Deno.test("this test process's own flags are read from /proc", () => {
  // `deno test` is not `deno run`: nothing to pass on, and no exception.
  assert.equal(ownRunFlags(), null);
});
