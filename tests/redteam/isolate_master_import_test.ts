// Red team: under --isolate request the master imported the app itself (to make a broken one
// exit status 2 before any child ran), with the master's own permissions (`deno run -A`): an
// untrusted app's top-level code ran unconfined in the master. Here it would write a file,
// using an environment variable no child is given. Now the first child's READY, or its load
// error, is the check (src/isolate/child_pool.ts ready()).

import assert from "node:assert/strict";
import { spawnLogged, tsgiArgs, waitForListen } from "../support/process.ts";
import { ROOT } from "../support/pool.ts";

/** An app whose top-level code writes a file where TSGI_RT_MARK says. */
const WRITER = "tests/redteam/fixtures/toplevel_writer.ts";

Deno.test({
  name: "--isolate request: the app's top-level code never runs with the master's permissions",
  async fn() {
    const dir = Deno.makeTempDirSync();
    const mark = `${dir}/mark`;
    const server = spawnLogged(
      Deno.execPath(),
      tsgiArgs(WRITER, "--isolate", "request", "--bind", "127.0.0.1:0"),
      { cwd: ROOT, env: { TSGI_RT_MARK: mark } },
    );
    try {
      const [, port] = await waitForListen(server, /Listening on http:\/\/\S+:(\d+)/);
      assert.equal((await fetch(`http://127.0.0.1:${port}/`)).status, 200);
      const written = [...Deno.readDirSync(dir)].map((e) => e.name);
      assert.deepEqual(written, [], `written by ${written} (the master is ${server.child.pid})`);
    } finally {
      server.child.kill("SIGINT");
      await server.child.status;
      Deno.removeSync(dir, { recursive: true });
    }
  },
});

Deno.test("--isolate request --check-config checks the app in a child, not in this process", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const output = await new Deno.Command(Deno.execPath(), {
      args: tsgiArgs(WRITER, "--isolate", "request", "--check-config"),
      cwd: ROOT,
      env: { TSGI_RT_MARK: `${dir}/mark` },
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(output.code, 0, new TextDecoder().decode(output.stderr));
    assert.match(new TextDecoder().decode(output.stdout), /config OK: an isolated app/);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), []);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
