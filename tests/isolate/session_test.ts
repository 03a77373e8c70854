// When a child gets a session of its own (setsid): when it may start processes, which are then
// signalled and killed with it, or when its master has a terminal whose Ctrl-C would reach it.

import assert from "node:assert/strict";
import { containment } from "../../src/isolate/containment.ts";
import { parsePermissionFlags } from "../../src/process/permission_set.ts";
import { hasControllingTerminal, ownSessionPrefix } from "../../src/process/own_session.ts";

const setsid = ownSessionPrefix();

function startsWithSetsid(grants: string[], unnarrowed = false): boolean {
  const held = containment({
    permissions: parsePermissionFlags(grants),
    unnarrowed,
    memoryBytes: 0,
  });
  return setsid !== null && held.prefix[0] === setsid[0];
}

Deno.test("a child that can start no process has a session of its own only if its master has a terminal", () => {
  assert.equal(startsWithSetsid([]), setsid !== null && hasControllingTerminal());
  assert.equal(startsWithSetsid(["--allow-net", "--allow-read"]), startsWithSetsid([]));
});

Deno.test("a child that may start processes, or runs with its master's permissions, has a session of its own", () => {
  if (setsid === null) return; // Nothing to start it through: `detached` instead.
  for (const grants of [["--allow-run"], ["--allow-run=ls"], ["--allow-ffi"], ["-A"]]) {
    assert.ok(startsWithSetsid(grants), grants.join(" "));
  }
  assert.ok(startsWithSetsid([], true));
});

const PRINT_TERMINAL = `import { hasControllingTerminal } from ${
  JSON.stringify(new URL("../../src/process/own_session.ts", import.meta.url).href)
}; console.log(hasControllingTerminal());`;
const EVAL = [Deno.execPath(), "eval", "--no-config", PRINT_TERMINAL];

/** What `command` prints. */
async function output([command, ...args]: string[]): Promise<string> {
  const env = { NO_COLOR: "1" };
  const { stdout } = await new Deno.Command(command, { args, stdin: "null", env }).output();
  return new TextDecoder().decode(stdout).trim();
}

Deno.test("hasControllingTerminal: none in a session of its own, one under a pseudo-terminal", async () => {
  if (setsid === null) return;
  assert.equal(await output([setsid[0], "--wait", ...EVAL]), "false");
  // util-linux's script runs a shell command with a pseudo-terminal as its controlling terminal.
  const quoted = EVAL.map((word) => `'${word.replaceAll("'", `'"'"'`)}'`).join(" ");
  try {
    assert.match(await output(["script", "-qec", quoted, "/dev/null"]), /true/);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
});
