// What an untrusted app can and cannot do under --isolate request (docs/isolation.md, "What a
// child may do"): a real master runs tests/fixtures/isolate_hostile.ts, and each path of it
// tries one thing. Under the defaults each is refused inside the app (500, and a log line that
// names the permission and the request), or ends the child alone (502); with a grant flag, the
// same thing goes through. The master serves on afterwards every time.

import assert from "node:assert/strict";
import {
  childrenOf,
  exited,
  procStat,
  spawnLogged,
  waitForListen,
  waitUntil,
} from "../support/process.ts";
import { isGroupGuard, ISOLATE_FLAGS, ROOT } from "../support/pool.ts";

const APP = "tests/fixtures/isolate_hostile.ts";
/** A variable of the master's environment that no child is given unless it is listed. */
const SECRET = "TSGI_TEST_SECRET";

interface Master {
  child: Deno.ChildProcess;
  port: number;
  log(): string;
}

async function startMaster(args: string[]): Promise<Master> {
  const { child, log } = spawnLogged(Deno.execPath(), [
    "run",
    "-A",
    // Modules imported from this test's own host must not be written to the project's lock.
    "--no-lock",
    "main.ts",
    APP,
    ...ISOLATE_FLAGS,
    ...args,
  ], { cwd: ROOT, env: { [SECRET]: "s3cret" }, stdout: "merged" });
  const listening = /Listening on http:\/\/\S+:(\d+)/;
  const [, port] = await waitForListen({ child, log }, listening, "master");
  await waitUntil("a spare is ready", () => /Child \d+ ready/.test(log()));
  return { child, port: Number(port), log };
}

async function withMaster(args: string[], fn: (master: Master) => Promise<void>): Promise<void> {
  const master = await startMaster(args);
  try {
    await fn(master);
    // Whatever a child did, the master still serves.
    assert.deepEqual(await get(master.port, "/hello"), { status: 200, body: "hello" });
  } catch (error) {
    throw new Error(`${error}\n--- master log ---\n${master.log().slice(-5000)}`);
  } finally {
    master.child.kill("SIGTERM");
    await master.child.status;
  }
}

/** GET `path` on a connection of its own: the status and the body (Content-Length). */
async function get(port: number, path: string): Promise<{ status: number; body: string }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(
      new TextEncoder().encode(`GET ${path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n`),
    );
    let raw = "";
    const buf = new Uint8Array(64 * 1024);
    const decoder = new TextDecoder();
    while (true) {
      const n = await conn.read(buf).catch(() => null);
      if (n === null) break;
      raw += decoder.decode(buf.subarray(0, n), { stream: true });
    }
    const at = raw.indexOf("\r\n\r\n");
    const head = raw.slice(0, at);
    let body = raw.slice(at + 4);
    if (/^transfer-encoding: chunked$/im.test(head)) body = unchunk(body);
    return { status: Number(head.split(" ")[1] ?? 0), body: body.trim() };
  } finally {
    try {
      conn.close();
    } catch {
      // Closed by the server.
    }
  }
}

/** A module on a "remote" host: an HTTP server on a free port, each URL fresh (no cache). */
function serveModule(): { url: string; port: number; close(): Promise<void> } {
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () =>
      new Response('export const x = "a remote module";', {
        headers: { "content-type": "application/typescript" },
      }),
  );
  const port = server.addr.port;
  return {
    url: `http://127.0.0.1:${port}/module-${crypto.randomUUID()}.ts`,
    port,
    close: () => server.shutdown(),
  };
}

/** The names in a spare child's /proc/PID/environ. */
function childEnvironmentNames(master: Master): string[] {
  for (const child of childrenOf(master.child.pid).filter((p) => !isGroupGuard(p))) {
    try {
      const raw = Deno.readTextFileSync(`/proc/${child.pid}/environ`);
      return raw.split("\0").filter((v) => v !== "").map((v) => v.split("=")[0]).sort();
    } catch {
      // Gone in the meantime: the next one.
    }
  }
  throw new Error("The master has no child");
}

/** A chunked body's data (text bodies only). */
function unchunk(body: string): string {
  let out = "";
  let at = 0;
  while (at < body.length) {
    const eol = body.indexOf("\r\n", at);
    const size = parseInt(body.slice(at, eol), 16);
    if (!(size > 0)) break;
    out += body.slice(eol + 2, eol + 2 + size);
    at = eol + 2 + size + 2;
  }
  return out;
}

/** The error line of a request the app failed on for lack of a permission. */
function deniedLine(path: string, denied: string): RegExp {
  const escaped = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
  return new RegExp(
    `Child \\d+ exited \\(exit code 1\\): the app failed on "GET ${escaped(path)} HTTP/1.1"; ` +
      `answered 500; not permitted: Requires ${escaped(denied)}`,
  );
}

Deno.test("under the defaults, each thing an untrusted app tries fails inside it: 500 and a line naming the permission", async () => {
  const dir = Deno.makeTempDirSync();
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let connections = 0;
  (async () => {
    for await (const conn of listener) {
      connections++;
      conn.close();
    }
  })();
  const target = `${dir}/written.txt`;
  const modules = serveModule();
  const cases: [string, string][] = [
    [`/import?url=${modules.url}`, `import access to "127.0.0.1:${modules.port}"`],
    ["/read-passwd", 'read access to "/etc/passwd"'],
    [`/write?path=${target}`, `write access to "${target}"`],
    ["/spawn", "run access to"],
    [`/connect?port=${listener.addr.port}`, `net access to "127.0.0.1:${listener.addr.port}"`],
    [`/env?name=${SECRET}`, `env access to "${SECRET}"`],
    ["/sys", 'sys access to "hostname"'],
    ["/dlopen", 'ffi access to "libc.so.6"'],
    ["/kill-parent", "run access"],
    ["/stop-parent", "run access"],
    // The frames' socket: its grants were revoked before the app was imported.
    ["/master-socket", "read access to"],
  ];
  try {
    await withMaster([], async (master) => {
      for (const [path, denied] of cases) {
        const response = await get(master.port, path);
        assert.equal(response.status, 500, path);
        assert.equal(response.body, "Internal Server Error", path);
        await waitUntil(
          `the log says ${path} was refused`,
          () => deniedLine(path, denied).test(master.log()),
        );
      }
      // Its own folder it may read.
      const own = await get(master.port, "/read-own");
      assert.deepEqual(own, {
        status: 200,
        body:
          "// An app that tries, one path each, what an untrusted app might: the --isolate request",
      });
      // The app sees Deno's NotCapable and may catch it.
      assert.deepEqual(await get(master.port, "/read-caught"), { status: 200, body: "NotCapable" });
      // Nothing got through: no file, no connection, and the master neither killed nor stopped.
      assert.throws(() => Deno.statSync(target), Deno.errors.NotFound);
      assert.equal(connections, 0);
      assert.notEqual(procStat(master.child.pid)?.state, "T");
    });
  } finally {
    listener.close();
    await modules.close();
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("what the app writes to Deno.stdout goes to the error log under its PID, not into the protocol", async () => {
  await withMaster([], async (master) => {
    assert.deepEqual(await get(master.port, "/stdout"), { status: 200, body: "still fine" });
    await waitUntil(
      "the app's stdout is in the log",
      () =>
        /\[INFO\] \[child \d+\] garbage on stdout/.test(master.log()) &&
        /\[child \d+\] \\x01\\x00\\x00\\x00\\x00\\x07/.test(master.log()),
    );
  });
});

Deno.test("each grant flag lets its operation through, and only what --allow-env lists reaches the child's environment", async () => {
  const dir = Deno.makeTempDirSync();
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  (async () => {
    for await (const conn of listener) conn.close();
  })();
  const port = listener.addr.port;
  const modules = serveModule();
  const grants = [
    `--allow-import=127.0.0.1:${modules.port}`,
    "--allow-read=/etc/passwd,/proc",
    `--allow-write=${dir}`,
    "--allow-run=echo,sleep",
    `--allow-net=127.0.0.1:${port}`,
    `--allow-env=${SECRET}`,
    "--allow-sys=hostname",
    "--allow-ffi",
  ];
  try {
    await withMaster(grants, async (master) => {
      const firstLine = Deno.readTextFileSync("/etc/passwd").split("\n")[0];
      const expected: [string, string | RegExp][] = [
        ["/read-passwd", firstLine],
        [`/write?path=${dir}/written.txt`, "wrote"],
        ["/spawn", "spawned"],
        [`/connect?port=${port}`, "connected"],
        [`/env?name=${SECRET}`, "s3cret"],
        ["/sys", Deno.hostname()],
        ["/dlopen", /^getpid \d+$/],
        [`/import?url=${modules.url}`, "a remote module"],
      ];
      for (const [path, body] of expected) {
        const response = await get(master.port, path);
        assert.equal(response.status, 200, `${path}: ${response.body}`);
        if (typeof body === "string") assert.equal(response.body, body, path);
        else assert.match(response.body, body, path);
      }
      assert.equal(Deno.readTextFileSync(`${dir}/written.txt`), "written by an isolated child\n");
      // A child's whole environment, as the kernel has it: the master's SECRET is there only
      // because it is listed, beside what the runtime needs.
      assert.deepEqual(childEnvironmentNames(master), [
        "DENO_DIR",
        "DENO_V8_FLAGS",
        "NO_COLOR",
        "PATH",
        SECRET,
      ]);
      // What a child starts is in its process group, which is killed once the child is reaped.
      const sleeper = await get(master.port, "/spawn-sleeper");
      assert.equal(sleeper.status, 200);
      await waitUntil(
        `the child's own child ${sleeper.body} is killed with it`,
        () => procStat(Number(sleeper.body)) === null,
      );
    });
  } finally {
    listener.close();
    await modules.close();
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("--deny-* narrows a grant: --allow-read=/etc --deny-read=/etc/passwd", async () => {
  await withMaster(["--allow-read=/etc", "--deny-read=/etc/passwd"], async (master) => {
    const response = await get(master.port, "/read-passwd");
    assert.equal(response.status, 500);
    await waitUntil(
      "the refusal is logged",
      () => deniedLine("/read-passwd", 'read access to "/etc/passwd"').test(master.log()),
    );
  });
});

Deno.test("--isolate-memory: a child past its cap (V8 heap or ArrayBuffers) ends alone: 502 and a line with the cap", async () => {
  await withMaster(["--isolate-memory", "128M"], async (master) => {
    const noCgroup = /only the V8 heap is capped/.test(master.log());
    const paths = noCgroup ? ["/alloc-heap"] : ["/alloc-heap", "/alloc-buffers"];
    for (const path of paths) {
      const response = await get(master.port, path);
      assert.equal(response.status, 502, path);
      const line = new RegExp(
        `Child \\d+ ran out of memory \\(cap 128 MiB; signal SIG(KILL|TRAP|ABRT)\\) serving ` +
          `"GET ${path} HTTP/1.1"; answered 502`,
      );
      await waitUntil(`the log says ${line}`, () => line.test(master.log()), 30_000);
    }
  });
});

Deno.test("a busy child dies with its master, even when the master is killed with SIGKILL", async () => {
  const master = await startMaster([]);
  try {
    const busy = get(master.port, "/busy").catch(() => null);
    await waitUntil(
      "a child is busy (running, not sleeping)",
      () => childrenOf(master.child.pid).some((p) => p.state === "R"),
    );
    const children = childrenOf(master.child.pid).map((p) => p.pid);
    master.child.kill("SIGKILL");
    await master.child.status;
    await busy;
    for (const pid of children) {
      await waitUntil(`child ${pid} is gone`, () => procStat(pid) === null, 5000);
    }
  } catch (error) {
    master.child.kill("SIGKILL");
    throw new Error(`${error}\n--- master log ---\n${master.log().slice(-3000)}`);
  }
});

Deno.test("what a busy child started dies with a master killed with SIGKILL (--allow-run)", async () => {
  const master = await startMaster(["--allow-run=sleep"]);
  let sleepers: number[] = [];
  try {
    const busy = get(master.port, "/sleeper-then-busy").catch(() => null);
    const grandchildren = () =>
      childrenOf(master.child.pid).flatMap((child) => childrenOf(child.pid))
        .filter((p) => p.comm === "sleep").map((p) => p.pid);
    await waitUntil("the busy child has started sleep", () => grandchildren().length > 0);
    sleepers = grandchildren();
    master.child.kill("SIGKILL");
    await master.child.status;
    await busy;
    for (const pid of sleepers) {
      await waitUntil(`sleep ${pid} is gone`, () => exited(pid), 5000);
    }
  } catch (error) {
    master.child.kill("SIGKILL");
    for (const pid of sleepers) Deno.kill(pid, "SIGKILL");
    throw new Error(`${error}\n--- master log ---\n${master.log().slice(-3000)}`);
  }
});

Deno.test("a child's token is not in its command line, which any child granted /proc can read", async () => {
  await withMaster(["--allow-read=/proc"], async (master) => {
    const loads = [];
    for (const child of childrenOf(master.child.pid).filter((p) => !isGroupGuard(p))) {
      let args: string[];
      try {
        args = (await Deno.readTextFile(`/proc/${child.pid}/cmdline`)).split("\0");
      } catch {
        continue; // Gone meanwhile.
      }
      loads.push(...args.filter((arg) => arg.startsWith("{")).map((arg) => JSON.parse(arg)));
    }
    assert.ok(loads.length > 0, "a spare child's load was found in its command line");
    for (const load of loads) {
      assert.equal(typeof load.socket, "string");
      assert.equal("token" in load, false, JSON.stringify(load));
    }
  });
});
