// Red team: a narrowed server (permission flags after APP) that adopts inherited sockets — a
// pool's worker its master's, a single process systemd's — does it over a throwaway listener
// (src/server/adopt.ts): one on 127.0.0.1:0, or a unix socket in a temporary folder. Before the
// fix neither was in the set-up's grants: a narrowed pool on --bind unix:PATH never booted a
// worker ("Requires write access to <TMP>"), and a narrowed single process started by systemd
// exited with "cannot serve systemd's sockets: Requires net access to 127.0.0.1:0".

import assert from "node:assert/strict";
import { get, startPool, stopPool, waitUntilAsync } from "../support/pool.ts";
import { spawnLogged, waitUntil } from "../support/process.ts";
import { ROOT } from "../support/pool.ts";

const GRANT = "--allow-env=HOME";

Deno.test("a narrowed pool on a unix socket boots, serves and reloads", async () => {
  const dir = Deno.makeTempDirSync();
  const path = `${dir}/s.sock`;
  const pool = await startPool(["apps/hello.ts", "--workers", "2", GRANT], 2, {
    bind: `unix:${path}`,
  });
  try {
    assert.equal(await get({ path }), "Hello, World!\n");
    const before = pool.readyWorkers();
    Deno.kill(pool.pid, "SIGHUP");
    await waitUntil("fresh workers replaced the old ones", () => {
      const now = pool.readyWorkers();
      return now.length === 2 && now.every((pid) => !before.includes(pid));
    });
    assert.equal(await get({ path }), "Hello, World!\n");
  } finally {
    assert.equal((await stopPool(pool)).code, 0, pool.log());
    Deno.removeSync(dir, { recursive: true });
  }
});

/** Plays systemd: a listening socket (TCP on 127.0.0.1, or unix at `path`) at descriptor 3. */
const ACTIVATE = `
import os, socket, sys
path = sys.argv[1]
if path:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.bind(path)
else:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM); s.bind(("127.0.0.1", 0))
s.listen(64)
if s.fileno() != 3:
    os.dup2(s.fileno(), 3)
os.set_inheritable(3, True)
os.environ.update(LISTEN_FDS="1", LISTEN_PID=str(os.getpid()), LISTEN_FDNAMES="http")
print("port", 0 if path else s.getsockname()[1], flush=True)
os.execvp(sys.argv[2], sys.argv[2:])
`;

for (const unix of [false, true]) {
  Deno.test(`a narrowed single process serves systemd's ${unix ? "unix" : "TCP"} socket`, async () => {
    const dir = Deno.makeTempDirSync();
    const path = unix ? `${dir}/s.sock` : "";
    const { child, log: err, out, logDone: reading } = spawnLogged(
      "python3",
      ["-c", ACTIVATE, path, Deno.execPath(), "run", "-A", "main.ts", "apps/hello.ts", GRANT],
      { cwd: ROOT, stdout: "piped" },
    );
    let exited = false;
    child.status.then(() => exited = true);
    try {
      // An adopted unix socket gets no "Listening on" line: asked until it answers.
      await waitUntil(
        "the activation script says its port",
        () => /port \d+/.test(out()) || exited,
      );
      const port = Number(/port (\d+)/.exec(out())?.[1]);
      let answer = "";
      await waitUntilAsync("it answers, or exits", async () => {
        if (exited) return true;
        try {
          answer = await get(unix ? { path } : port, "/", 1000);
          return true;
        } catch {
          return false;
        }
      });
      assert.equal(answer, "Hello, World!\n", err());
    } finally {
      if (!exited) child.kill("SIGTERM");
      await child.status;
      await reading;
      Deno.removeSync(dir, { recursive: true });
    }
  });
}
