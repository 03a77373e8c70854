// The group guard (src/process/group_guard.ts): at the end of its input it kills the groups still
// listed, and only those.

import assert from "node:assert/strict";
import { startGroupGuard } from "../../src/process/group_guard.ts";
import { exited, procStat, waitUntil } from "../support/process.ts";

/** `sleep 300` leading a process group of its own (setsid keeps the PID of a non-leader). */
function sleeperInOwnGroup(): Deno.ChildProcess {
  return new Deno.Command("setsid", { args: ["sleep", "300"], stdout: "null" }).spawn();
}

Deno.test("the guard kills the groups still listed when its input ends, and no others", async () => {
  const guard = startGroupGuard();
  if ("missing" in guard) throw new Error(guard.missing);
  const listed = sleeperInOwnGroup();
  const forgotten = sleeperInOwnGroup();
  try {
    await waitUntil(
      "both sleep",
      () => [listed, forgotten].every((p) => procStat(p.pid)?.comm === "sleep"),
    );
    guard.add(listed.pid);
    guard.add(forgotten.pid);
    guard.remove(forgotten.pid);
    await guard.close();
    assert.equal((await listed.status).signal, "SIGKILL");
    assert.equal(exited(forgotten.pid), false);
  } finally {
    for (const p of [listed, forgotten]) {
      try {
        p.kill("SIGKILL");
      } catch { /* gone */ }
      await p.status;
    }
  }
});

Deno.test("without a shell, the guard says why in one line", () => {
  const guard = startGroupGuard("/nonexistent/sh");
  assert.ok("missing" in guard);
  assert.match(guard.missing, /\/nonexistent\/sh cannot be started/);
});
