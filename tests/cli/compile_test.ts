// `deno task compile APP` (scripts/compile.ts), checked as far as this machine allows. The
// generated entry is what the binary runs: it is type-checked with the task's flags, and run
// with `deno run` it must serve the app, take main.ts's flags, and re-run itself (not main.ts)
// for workers — the same role dispatch a compiled binary goes through. The compile step itself
// needs denort from the network; where it cannot be downloaded, that test is skipped and says so.

import assert from "node:assert/strict";
import { fromFileUrl } from "../support/paths.ts";
import { run as runCommand, spawnServer, stopServer, waitUntil } from "../support/process.ts";

const ROOT = fromFileUrl(new URL("../..", import.meta.url));
const SCRIPT = fromFileUrl(new URL("../../scripts/compile.ts", import.meta.url));
/** The permissions and unstable flag the task compiles with (scripts/compile.ts). */
const RUN_FLAGS = ["-A", "--unstable-net"];

function run(args: string[], cwd = ROOT) {
  return runCommand(Deno.execPath(), args, cwd);
}

/** Runs scripts/compile.ts into a fresh folder; returns the folder and the result. */
async function compile(spec: string, ...flags: string[]) {
  const out = await Deno.makeTempDir({ prefix: "tsgi-compile-" });
  const result = await run(["run", "-A", SCRIPT, spec, "--out", out, ...flags]);
  return { out, ...result };
}

/** Starts `command args` on a free port; its URL, log, and a stop() giving its status. */
async function startServer(command: string, args: string[], cwd: string) {
  const server = await spawnServer(command, [...args, "-b", "127.0.0.1:0", "--access-log", "off"], {
    cwd,
    deadlineMs: 30_000,
  });
  return {
    child: server.child,
    url: `http://127.0.0.1:${server.port}`,
    log: server.log,
    stop: () => stopServer(server),
  };
}

async function getText(url: string): Promise<string> {
  const response = await fetch(url, { headers: { Connection: "close" } });
  return await response.text();
}

/** The command line of a live process, as its arguments. */
function cmdline(pid: number): string[] {
  return Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0").filter((a) => a !== "");
}

Deno.test("compile --entry-only writes an entry that type-checks with the task's flags", async () => {
  const { out, code, stderr } = await compile("apps/hello.ts", "--entry-only");
  try {
    assert.equal(code, 0, stderr);
    const entry = `${out}/.entry/hello.ts`;
    const source = await Deno.readTextFile(entry);
    assert.match(source, /import \* as app from ".*apps\/hello\.ts";/);
    assert.match(source, /main\(Deno\.args, \{ app: preloaded, entry: import\.meta\.url \}\)/);
    const check = await run(["check", ...RUN_FLAGS.filter((f) => f !== "-A"), entry]);
    assert.equal(check.code, 0, check.stderr);
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

Deno.test("compile refuses an APP that is not an app, before compiling", async () => {
  const { out, code, stderr } = await compile("tests/fixtures/not_an_app.ts", "--entry-only");
  await Deno.remove(out, { recursive: true });
  assert.equal(code, 2);
  assert.match(stderr, /^compile: .*is not an app/);
});

Deno.test("the generated entry serves its built-in app, from any folder, with main.ts's flags", async () => {
  const { out, code, stderr } = await compile("tests/fixtures/named.ts:api", "--entry-only");
  assert.equal(code, 0, stderr);
  const entry = `${out}/.entry/named.ts`;
  // Run from a folder where "tests/fixtures/named.ts" does not exist: the app is built in.
  const elsewhere = await Deno.makeTempDir({ prefix: "tsgi-cwd-" });
  try {
    const server = await startServer(Deno.execPath(), ["run", ...RUN_FLAGS, entry], elsewhere);
    try {
      assert.equal(await getText(server.url), "named app");
    } finally {
      assert.equal((await server.stop()).code, 0);
    }

    const printed = await run(["run", ...RUN_FLAGS, entry, "--print-config", "--workers", "3"]);
    assert.equal(printed.code, 0, printed.stderr);
    const config = JSON.parse(printed.stdout);
    assert.equal(config.app, "tests/fixtures/named.ts:api");
    assert.equal(config.workers, 3);

    const checked = await run(["run", ...RUN_FLAGS, entry, "--check-config"], elsewhere);
    assert.equal(checked.code, 0, checked.stderr);
    assert.match(checked.stdout, /config OK: tsgi app tests\/fixtures\/named\.ts:api/);

    const other = await run(["run", ...RUN_FLAGS, entry, "apps/hello.ts"]);
    assert.equal(other.code, 2);
    assert.match(other.stderr, /serves its built-in app "tests\/fixtures\/named\.ts:api"/);
  } finally {
    await Deno.remove(out, { recursive: true });
    await Deno.remove(elsewhere, { recursive: true });
  }
});

Deno.test("the generated entry with --workers 2 re-runs itself for its workers", async () => {
  const { out, code, stderr } = await compile("apps/hello.ts", "--entry-only");
  assert.equal(code, 0, stderr);
  const entry = `${out}/.entry/hello.ts`;
  const elsewhere = await Deno.makeTempDir({ prefix: "tsgi-cwd-" });
  try {
    const server = await startServer(
      Deno.execPath(),
      ["run", ...RUN_FLAGS, entry, "--workers", "2"],
      elsewhere,
    );
    try {
      await waitUntil("2 workers are ready", () => {
        return [...server.log().matchAll(/Worker \d+ \(pid \d+\) ready/g)].length === 2;
      });
      const pids = [...server.log().matchAll(/Worker \d+ \(pid (\d+)\) ready/g)]
        .map((m) => Number(m[1]));
      for (const pid of pids) {
        const args = cmdline(pid);
        assert.ok(args.includes(entry), `worker ${pid} runs the entry: ${args.join(" ")}`);
        assert.ok(!args.some((a) => a.endsWith("main.ts")), `not main.ts: ${args.join(" ")}`);
      }
      for (let i = 0; i < 4; i++) assert.equal(await getText(server.url), "Hello, World!\n");
    } finally {
      assert.equal((await server.stop()).code, 0);
    }
  } finally {
    await Deno.remove(out, { recursive: true });
    await Deno.remove(elsewhere, { recursive: true });
  }
});

// The compile step proper. It is tried once when this file loads; if deno compile cannot
// download denort (no network here), the test is registered as ignored with the reason.
const attempt = await compile("apps/hello.ts");
const offline = attempt.code !== 0 && /cannot here/.test(attempt.stderr);
const reason = offline ? attempt.stderr.split("\n").find((l) => /cannot here/.test(l))! : "";
if (offline) {
  console.log(`compile_test: skipping the compiled binary's test: ${reason}`);
  await Deno.remove(attempt.out, { recursive: true });
}

Deno.test({
  name: offline
    ? "deno task compile builds dist/hello (skipped: deno compile cannot download denort here)"
    : "deno task compile builds dist/hello, which serves alone and with --workers 2",
  ignore: offline,
  async fn() {
    const binary = `${attempt.out}/hello`;
    try {
      assert.equal(attempt.code, 0, attempt.stderr);
      const elsewhere = await Deno.makeTempDir({ prefix: "tsgi-cwd-" });
      try {
        for (const extra of [[], ["--workers", "2"]]) {
          const server = await startServer(binary, extra, elsewhere);
          try {
            assert.equal(await getText(server.url), "Hello, World!\n");
          } finally {
            assert.equal((await server.stop()).code, 0);
          }
        }
      } finally {
        await Deno.remove(elsewhere, { recursive: true });
      }
    } finally {
      await Deno.remove(attempt.out, { recursive: true });
    }
  },
});
