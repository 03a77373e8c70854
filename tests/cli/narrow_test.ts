// Permission flags after APP without --isolate request (src/process/least_privilege.ts): a
// single process and each worker of a pool give their set-up's grants back before the app is
// imported, so the app — its top-level code too — holds exactly the flags' grants, while the
// server goes on accepting, logging and reporting to its master.

import assert from "node:assert/strict";
import { spawnLogged, waitForListen } from "../support/process.ts";
import { ROOT } from "../support/pool.ts";

const APP = "tests/fixtures/narrow_probe.ts";
const SECRET = "TSGI_NARROW_SECRET";

interface Probe {
  atImport: Record<string, string>;
  atRequest: Record<string, string>;
  pid: number;
}

/** Runs tsgi on the probe with `args`, asks it once per `requests`, stops it. */
async function probe(
  args: string[],
  query: string,
  requests = 1,
  env: Record<string, string> = {},
): Promise<Probe[]> {
  const { child, log } = spawnLogged(Deno.execPath(), [
    "run",
    "-A",
    "main.ts",
    APP,
    "--bind",
    "127.0.0.1:0",
    ...args,
  ], { cwd: ROOT, env: { [SECRET]: "s3cret", ...env }, stdout: "merged" });
  try {
    const [, port] = await waitForListen({ child, log }, /Listening on http:\/\/\S+:(\d+)/);
    const answers: Probe[] = [];
    for (let i = 0; i < requests; i++) {
      const response = await fetch(`http://127.0.0.1:${port}/?${query}`);
      assert.equal(response.status, 200, log());
      answers.push(await response.json());
    }
    return answers;
  } catch (error) {
    throw new Error(`${error}\n--- log ---\n${log().slice(-4000)}`);
  } finally {
    child.kill("SIGTERM");
    await child.status;
  }
}

/** A port something listens on, for the probe's connect. */
function listener(): { port: number; close(): void } {
  const server = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  (async () => {
    for await (const conn of server) conn.close();
  })().catch(() => {});
  return { port: (server.addr as Deno.NetAddr).port, close: () => server.close() };
}

const REFUSED = "NotCapable";

for (const mode of [[], ["--workers", "2"]]) {
  const name = mode.length === 0 ? "a single process" : "workers";
  Deno.test(`${name}: the app holds exactly the flags' grants, from its top-level code on`, async () => {
    const peer = listener();
    const dir = Deno.makeTempDirSync();
    try {
      const grants = [`--allow-env=${SECRET}`, `--allow-net=127.0.0.1:${peer.port}`];
      const query = `port=${peer.port}&env=${SECRET}&path=${dir}/w`;
      const [answer] = await probe([...mode, ...grants], query);
      for (const outcomes of [answer.atImport, answer.atRequest]) {
        assert.equal(outcomes.read, REFUSED, "/etc/passwd");
        assert.equal(outcomes.setUpEnv, REFUSED, "tsgi's own variables");
        assert.equal(outcomes.ffi, REFUSED, "dlopen");
        assert.equal(outcomes.tsgiLibc, "ok", "tsgi's libc table is closed");
        assert.equal(outcomes.masterProc, REFUSED, "the master's /proc");
        assert.equal(outcomes.run, REFUSED, "spawn");
        assert.equal(outcomes.write, REFUSED, "write");
      }
      // Granted: the variable and the one address (not known at import: no port there).
      assert.equal(answer.atImport.env, "ok");
      assert.equal(answer.atRequest.env, "ok");
      assert.equal(answer.atRequest.connect, "ok");
    } finally {
      peer.close();
      Deno.removeSync(dir, { recursive: true });
    }
  });

  Deno.test(`${name}: each grant flag lets its operation through`, async () => {
    const dir = Deno.makeTempDirSync();
    try {
      const grants = [
        "--allow-read=/etc/passwd",
        `--allow-write=${dir}`,
        "--allow-run=true",
        "--allow-env",
        "--allow-ffi",
      ];
      const [answer] = await probe([...mode, ...grants], `path=${dir}/w&env=${SECRET}`);
      for (const operation of ["read", "write", "run", "env", "setUpEnv", "ffi"]) {
        assert.equal(answer.atRequest[operation], "ok", operation);
      }
      assert.equal(Deno.readTextFileSync(`${dir}/w`), "x");
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  });
}

Deno.test("without permission flags, a single process keeps deno's permissions", async () => {
  const [answer] = await probe([], "");
  assert.equal(answer.atRequest.read, "ok");
  assert.equal(answer.atRequest.ffi, "ok");
});

Deno.test("a narrowing marker inherited from another process does not stop a single process narrowing itself", async () => {
  // What a narrowed tsgi would have in its environment, for another PID.
  const inherited = JSON.stringify({
    setUp: { read: [], write: [], net: [], env: [], ffi: false },
    keptRead: [],
    pid: 1,
  });
  const [answer] = await probe([`--allow-env=${SECRET}`], `env=${SECRET}`, 1, {
    TSGI_NARROWED: inherited,
  });
  assert.equal(answer.atRequest.read, REFUSED, "/etc/passwd");
  assert.equal(answer.atRequest.ffi, REFUSED, "dlopen");
  assert.equal(answer.atRequest.env, "ok");
});
