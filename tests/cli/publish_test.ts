// The package as JSR would take it: `deno publish --dry-run` checks the exports, slow types
// in the public API, the license and the files that would be published.

import assert from "node:assert/strict";
import { fromFileUrl } from "../support/paths.ts";

Deno.test("the package passes deno publish --dry-run", async () => {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["publish", "--dry-run", "--allow-dirty"],
    cwd: fromFileUrl(new URL("../..", import.meta.url)),
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
  assert.ok(output.success, text);
  assert.match(text, /Success.*Dry run complete/);
  assert.doesNotMatch(text, /file:\/\/\/.*\/tests\//, "tests are not published");
});
