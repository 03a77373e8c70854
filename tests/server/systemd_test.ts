// systemd socket activation, with a script playing systemd's part: the server serves the
// socket it was handed at descriptor 3, and binds nothing of its own.

import assert from "node:assert/strict";
import { fromFileUrl } from "../support/paths.ts";
import { waitUntil } from "../support/process.ts";

const ROOT = fromFileUrl(new URL("../..", import.meta.url));
const ACTIVATE = fromFileUrl(new URL("../fixtures/systemd_activate.py", import.meta.url));

async function hasPython(): Promise<boolean> {
  try {
    return (await new Deno.Command("python3", { args: ["--version"] }).output()).success;
  } catch {
    return false;
  }
}

/** Starts `main.ts APP args` under the activation script; its port and its stderr so far. */
function activated(args: string[]) {
  const child = new Deno.Command("python3", {
    args: [ACTIVATE, Deno.execPath(), "run", "-A", "main.ts", "apps/hello.ts", ...args],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let out = "";
  let err = "";
  (async () => {
    for await (const s of child.stdout.pipeThrough(new TextDecoderStream())) out += s;
  })();
  (async () => {
    for await (const s of child.stderr.pipeThrough(new TextDecoderStream())) err += s;
  })();
  return { child, out: () => out, err: () => err };
}

Deno.test({
  name: "started by systemd (LISTEN_FDS), a single process serves the socket it was handed",
  ignore: !(await hasPython()),
  async fn() {
    // A --bind that cannot be bound proves that nothing is bound: the handed socket is served.
    const server = activated(["-b", "unix:/nonexistent/dir/x.sock", "--access-log", "off"]);
    try {
      await waitUntil("the server says where it listens", () => /Listening on/.test(server.err()));
      const port = Number(/port (\d+)/.exec(server.out())![1]);
      assert.match(server.err(), new RegExp(`Listening on http://127\\.0\\.0\\.1:${port}`));
      const response = await fetch(`http://127.0.0.1:${port}/`);
      assert.equal(response.status, 200);
      assert.equal(await response.text(), "Hello, World!\n");
    } finally {
      server.child.kill("SIGTERM");
      const status = await server.child.status;
      assert.equal(status.code, 0, server.err());
    }
  },
});
